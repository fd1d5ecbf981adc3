/**
 * Virtual media from an https image server with a self-signed certificate (made with openssl in a
 * temp dir, served on 127.0.0.1): the agent's HEAD fails without the CA, works with the CA file or
 * with skip-verify; a named CA ConfigMap becomes the DataVolume's CDI certConfigMap. The virtbmc
 * CLI takes these settings from flags, with the controller's environment variables as fallback.
 */
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { resolveMediaTls, type KubeVirtMachine } from '../../src/backend/kubevirt/index.js';
import { isBackendError } from '../../src/backend/types.js';
import type { ApiServerEmulator, KubeObject } from '../emulator/index.js';
import { NS, emulatorPerTest, newMachine, until, vmFixture, waitPower } from './kubevirt-fixtures.js';
import { spawnVirtbmc } from '../helpers/virtbmc-process.js';

const DV = 'vm1-vmedia-cdrom';

function dvOf(emu: ApiServerEmulator): KubeObject | undefined {
  return emu.get('cdi.kubevirt.io/v1beta1', 'DataVolume', NS, DV);
}

function httpSourceOf(emu: ApiServerEmulator): { url?: string; certConfigMap?: string } | undefined {
  return (dvOf(emu)?.spec as { source?: { http?: { url?: string; certConfigMap?: string } } } | undefined)?.source?.http;
}

describe('kubevirt backend: virtual media over https (CA file, CA ConfigMap, skip-verify)', function () {
  this.timeout(30000);
  let dir: string;
  let caFile: string;
  let server: https.Server;
  let heads: string[];
  let imageUrl: string;
  let emu: ApiServerEmulator;
  let m: KubeVirtMachine | undefined;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'virtbmc-media-tls-'));
    caFile = join(dir, 'cert.pem');
    // a self-signed server certificate for 127.0.0.1; being its own issuer, it is also the CA
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=virtbmc-test-image-server',
      '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', caFile,
    ], { stdio: 'ignore' });
    heads = [];
    server = https.createServer({ cert: readFileSync(caFile), key: readFileSync(join(dir, 'key.pem')) }, (req, res) => {
      heads.push(`${req.method ?? ''} ${req.url ?? ''}`);
      res.writeHead(200, { 'content-length': String(5 * 2 ** 30), 'content-type': 'application/octet-stream' }).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    imageUrl = `https://127.0.0.1:${(server.address() as AddressInfo).port}/install.iso`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  });

  emulatorPerTest({ dataVolumeImportMs: 100 }, {
    set: (e) => {
      heads.length = 0;
      emu = e;
      emu.create(vmFixture({ runStrategy: 'Always' }));
    },
    get: () => emu,
  });

  it('without a CA the HEAD fails verification: InvalidArgument, no DataVolume', async () => {
    m = await newMachine(emu);
    await waitPower(m, 'On');
    const e = await m.insertMedia('cdrom', { image: imageUrl }).catch((err: unknown) => err);
    expect(isBackendError(e) && e.code).to.equal('InvalidArgument');
    expect((e as Error).message).to.match(/not reachable: .*(self-signed|certificate)/i);
    expect(dvOf(emu)).to.equal(undefined);
  });

  it('with the CA file the HEAD verifies; the CA ConfigMap becomes the DataVolume certConfigMap', async () => {
    m = await newMachine(emu, { mediaTls: { caFile, caConfigMap: 'image-ca' } });
    await waitPower(m, 'On');
    const slot = await m.insertMedia('cdrom', { image: imageUrl });
    expect(slot.state).to.equal('inserting');
    expect(heads).to.deep.equal(['HEAD /install.iso']);
    expect(httpSourceOf(emu)).to.deep.equal({ url: imageUrl, certConfigMap: 'image-ca' });
    const storage = (dvOf(emu)!.spec as { storage: { resources: { requests: { storage: string } } } }).storage;
    expect(storage.resources.requests.storage).to.equal('6Gi'); // the size came from the verified HEAD
  });

  it('with skip-verify the HEAD works without a CA; the DataVolume gets no certConfigMap', async () => {
    m = await newMachine(emu, { mediaTls: { insecureSkipVerify: true } });
    await waitPower(m, 'On');
    await m.insertMedia('cdrom', { image: imageUrl });
    expect(heads).to.deep.equal(['HEAD /install.iso']);
    expect(httpSourceOf(emu)).to.deep.equal({ url: imageUrl });
  });

  it('an unreadable CA file is reported as Unavailable, not blamed on the URL', async () => {
    m = await newMachine(emu, { mediaTls: { caFile: join(dir, 'missing.pem') } });
    await waitPower(m, 'On');
    const e = await m.insertMedia('cdrom', { image: imageUrl }).catch((err: unknown) => err);
    expect(isBackendError(e) && e.code).to.equal('Unavailable');
    expect((e as Error).message).to.contain('missing.pem');
    expect(heads).to.deep.equal([]);
  });

  it('virtbmc CLI: the controller environment variables and the flags reach the backend', async function () {
    // one agent process (a start costs seconds of TypeScript loading); the precedence rules are
    // covered by the resolveMediaTls tests below. The limits below only stop a hung test: under
    // taskset -c 0 with a CPU hog the start alone took past the suite's 30 s once; nothing is timed.
    this.timeout(180_000);
    const clean: NodeJS.ProcessEnv = { ...process.env };
    for (const k of Object.keys(clean)) if (k.startsWith('VIRTBMC_') || k === 'KUBECONFIG') delete clean[k];
    const p = spawnVirtbmc(
      [
        NS, 'vm1', '--kubeconfig', emu.kubeconfigPath, '--address', '127.0.0.1', '--no-ipmi', '--redfish-port', '0',
        '--log-level', 'warn', '--media-ca-configmap', 'flag-ca',
      ],
      {
        // the CA file comes from the environment; the ConfigMap flag beats its variable
        env: { ...clean, BMC_PASSWORD: 'cli-pw-123', VIRTBMC_MEDIA_ALLOW: '127.0.0.0/8', VIRTBMC_MEDIA_CA_FILE: caFile, VIRTBMC_MEDIA_CA_CONFIGMAP: 'env-ca' },
      },
    );
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    try {
      await until(() => /virtbmc ready/.test(out) || p.exitCode !== null, 'ready line', 150_000);
      const base = /redfish=(http:\/\/127\.0\.0\.1:\d+)/.exec(out)?.[1];
      expect(base, err).to.be.a('string');
      await until(() => (emu.get('kubevirt.io/v1', 'VirtualMachineInstance', NS, 'vm1')?.status as { phase?: string } | undefined)?.phase === 'Running', 'VMI Running', 60_000);
      const res = await fetch(`${base!}/redfish/v1/Systems/1/VirtualMedia/cdrom/Actions/VirtualMedia.InsertMedia`, {
        method: 'POST',
        headers: { authorization: 'Basic ' + Buffer.from('admin:cli-pw-123').toString('base64'), 'content-type': 'application/json' },
        body: JSON.stringify({ Image: imageUrl, TransferProtocolType: 'HTTPS' }),
      });
      expect(res.status, `${await res.text()} ${err}`).to.be.oneOf([200, 202, 204]);
      // InsertMedia runs as a Redfish task: wait for it to get as far as the DataVolume
      await until(() => dvOf(emu), 'media DataVolume', 60_000);
      expect(heads).to.deep.equal(['HEAD /install.iso']); // verified with the CA file from VIRTBMC_MEDIA_CA_FILE
      expect(httpSourceOf(emu)).to.deep.equal({ url: imageUrl, certConfigMap: 'flag-ca' });
    } finally {
      if (p.exitCode === null) {
        p.kill('SIGTERM');
        await once(p, 'exit');
      }
    }
  });
});

describe('resolveMediaTls (virtbmc flags over the controller environment variables)', () => {
  const env = { VIRTBMC_MEDIA_INSECURE_SKIP_VERIFY: 'true', VIRTBMC_MEDIA_CA_CONFIGMAP: 'env-cm', VIRTBMC_MEDIA_CA_FILE: '/env/ca.crt' };

  it('takes the environment when no flag is given', () => {
    expect(resolveMediaTls({}, env)).to.deep.equal({ insecureSkipVerify: true, caConfigMap: 'env-cm', caFile: '/env/ca.crt' });
    expect(resolveMediaTls({}, {})).to.deep.equal({});
  });

  it('lets each flag win over its variable', () => {
    expect(resolveMediaTls({ caConfigMap: 'flag-cm', caFile: '/flag/ca.crt' }, env)).to.deep.equal({
      insecureSkipVerify: true,
      caConfigMap: 'flag-cm',
      caFile: '/flag/ca.crt',
    });
    expect(resolveMediaTls({ insecureSkipVerify: true }, { VIRTBMC_MEDIA_INSECURE_SKIP_VERIFY: 'false' })).to.deep.equal({ insecureSkipVerify: true });
  });

  it('reads the boolean strictly', () => {
    for (const v of ['true', 'TRUE', '1']) expect(resolveMediaTls({}, { VIRTBMC_MEDIA_INSECURE_SKIP_VERIFY: v })).to.deep.equal({ insecureSkipVerify: true });
    for (const v of ['false', '0', '']) expect(resolveMediaTls({}, { VIRTBMC_MEDIA_INSECURE_SKIP_VERIFY: v })).to.deep.equal({});
    expect(() => resolveMediaTls({}, { VIRTBMC_MEDIA_INSECURE_SKIP_VERIFY: 'maybe' })).to.throw(/must be true or false, got "maybe"/);
  });
});
