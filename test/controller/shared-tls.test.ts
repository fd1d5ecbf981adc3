/**
 * TLS for shard agents (issues 14 and 16): on the apiserver emulator a shard gets ONE certificate
 * naming every member's Service (minted Secret virtbmc-shard-<k>-tls owned by the fleet ConfigMap,
 * or a cert-manager Certificate), re-minted when the members change; the members' Services map 80
 * and 443 to the shard's TLS port; a shard of Disabled members only serves plain HTTP. The agent,
 * started with the shard Deployment's own arguments and the minted files, answers verified HTTPS
 * for two member Service names and 308 for plain HTTP. Also: deleting a minted per-VM `<agent>-tls`
 * Secret wakes its BMC (re-minted at once, not at the next resync).
 */
import { expect } from 'chai';
import type { ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sinon from 'sinon';
import { parseFleet } from '../../src/controller/shard.js';
import { WorkQueue } from '../../src/controller/workqueue.js';
import { serviceDnsNames } from '../../src/controller/tls.js';
import type { ApiServerEmulator, KubeObject } from '../emulator/index.js';
import { getDeployment, getService, getVmbmc, NS, secretObj, startEnv, vmbmcObj, vmObj, waitReady, type Env } from './fixtures.js';
import { endpointPort, readyEndpoints, spawnVirtbmc } from '../helpers/virtbmc-process.js';

const SECRET = 'virtbmc-shard-0-tls';

type Pod = { volumes: Array<{ name: string; secret?: { secretName: string } }>; containers: Array<{ args: string[]; ports: Array<{ name: string; containerPort: number }>; readinessProbe: { httpGet: { scheme: string } } }> };
const pod = (d: KubeObject | undefined): Pod => (d!.spec as { template: { spec: Pod } }).template.spec;
const ports = (svc: KubeObject | undefined): string[] =>
  ((svc!.spec as { ports: Array<{ port: number; protocol: string; targetPort: number }> }).ports ?? []).map((p) => `${p.port}/${p.protocol}->${p.targetPort}`);
const data = (s: KubeObject, k: string): string => Buffer.from((s.data as Record<string, string>)[k]!, 'base64').toString('utf8');
const sans = (s: KubeObject): string[] => (new X509Certificate(data(s, 'tls.crt')).subjectAltName ?? '').split(', ').map((x) => x.replace(/^DNS:/, ''));
const membersNames = (...bmcs: string[]): string[] => bmcs.sort().flatMap((n) => serviceDnsNames(`${n}-virtbmc`, NS));

/** A GET over verified HTTPS to 127.0.0.1:port, presenting `servername` (SNI and the name checked against the certificate). */
function httpsGet(port: number, servername: string, ca: string, path: string, auth: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, path, servername, ca, rejectUnauthorized: true, headers: { host: servername, authorization: auth }, agent: false }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

function httpsPost(port: number, servername: string, ca: string, path: string, auth: string, body: unknown): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const text = JSON.stringify(body);
    const req = https.request(
      { method: 'POST', host: '127.0.0.1', port, path, servername, ca, rejectUnauthorized: true, headers: { host: servername, authorization: auth, 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }, agent: false },
      (res) => {
        let out = '';
        res.on('data', (d: Buffer) => (out += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: out }));
      },
    );
    req.on('error', reject);
    req.end(text);
  });
}

function httpGet(port: number, host: string, path: string): Promise<{ status: number; location?: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, headers: { host }, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, ...(res.headers.location ? { location: res.headers.location } : {}) }));
    });
    req.on('error', reject);
    req.end();
  });
}

const basic = (u: string, p: string): string => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;

describe('shard agents over HTTPS (shared mode, TLS by default)', function () {
  // only stops a hung test (each agent start compiles it with tsx: seconds, more on a loaded core); nothing is timed
  this.timeout(120_000);
  let env: Env | undefined;
  let agent: ChildProcess | undefined;
  afterEach(async () => {
    if (agent && agent.exitCode === null) {
      const gone = new Promise((r) => agent!.once('exit', r));
      agent.kill('SIGTERM');
      await gone;
    }
    agent = undefined;
    await env?.close();
    env = undefined;
  });

  function seed(emu: ApiServerEmulator, n: string, spec: Record<string, unknown> = {}): void {
    emu.create(vmObj(`vm-${n}`));
    emu.create(secretObj(`s-${n}`, `pw-${n}`));
    emu.create(vmbmcObj(n, `vm-${n}`, `s-${n}`, { mode: 'Shared', ...spec }));
  }

  it('one minted certificate for the shard naming every member; the agent with the Deployment\'s args serves verified HTTPS per Service name and 308 on HTTP; re-minted when members change', async () => {
    env = await startEnv({ shards: 1 });
    const { emu } = env;
    seed(emu, 'a');
    seed(emu, 'b');
    // a Disabled member of a shard that serves HTTPS: served over HTTPS too (its names in the certificate)
    seed(emu, 'c', { redfish: { tls: { mode: 'Disabled' } } });
    for (const n of ['a', 'b', 'c']) await waitReady(emu, n);
    const cm = emu.get('v1', 'ConfigMap', NS, 'virtbmc-shard-0')!;
    expect(parseFleet(cm)?.tls).to.equal(true);
    const s1 = await emu.waitFor(() => emu.get('v1', 'Secret', NS, SECRET));
    expect(s1.type).to.equal('kubernetes.io/tls');
    expect(s1.metadata?.labels).to.include({ 'app.kubernetes.io/managed-by': 'virtbmc-controller', 'bmc.kubevirt.io/shard': '0' });
    expect(s1.metadata?.ownerReferences).to.deep.equal([{ apiVersion: 'v1', kind: 'ConfigMap', name: 'virtbmc-shard-0', uid: cm.metadata?.uid, controller: true }]);
    expect(sans(s1)).to.deep.equal(membersNames('a', 'b', 'c'));
    // the Deployment: HTTPS port, the mount, an HTTPS readiness probe, the redirect naming 443
    const dep = getDeployment(emu, 'virtbmc-shard-0');
    const p = pod(dep);
    expect(p.volumes).to.deep.include({ name: 'redfish-tls', secret: { secretName: SECRET } });
    expect(p.containers[0]!.readinessProbe.httpGet.scheme).to.equal('HTTPS');
    expect(p.containers[0]!.ports.find((x) => x.name === 'redfish')?.containerPort).to.equal(8443);
    const args = p.containers[0]!.args;
    expect(args).to.include.members(['--tls-cert', '/etc/virtbmc/tls/tls.crt', '--tls-key', '/etc/virtbmc/tls/tls.key', '--https-redirect-port', '443']);
    for (const n of ['a', 'b', 'c']) expect(ports(getService(emu, `${n}-virtbmc`)), n).to.deep.equal([`623/UDP->${(getVmbmc(emu, n)!.status as { ipmiPort: number }).ipmiPort}`, '80/TCP->8443', '443/TCP->8443']);

    // the shard agent as the Deployment runs it (its own args), with the Secret's files where the mount puts them
    const dir = mkdtempSync(join(tmpdir(), 'virtbmc-shard-tls-'));
    writeFileSync(join(dir, 'tls.crt'), data(s1, 'tls.crt'));
    writeFileSync(join(dir, 'tls.key'), data(s1, 'tls.key'), { mode: 0o600 });
    writeFileSync(join(dir, 'kubeconfig'), emu.asServiceAccount(NS, 'virtbmc-shard-0').makeKubeConfig().exportConfig());
    // port 0: the agent binds a free port and names it in its ready line
    const swap: Record<string, string> = { '0.0.0.0': '127.0.0.1', '8443': '0', '/etc/virtbmc/tls/tls.crt': join(dir, 'tls.crt'), '/etc/virtbmc/tls/tls.key': join(dir, 'tls.key') };
    const cli = [...args.map((a) => swap[a] ?? a), '--kubeconfig', join(dir, 'kubeconfig'), '--no-ipmi', '--log-level', 'warn'];
    agent = spawnVirtbmc(cli, { env: { ...process.env, POD_NAMESPACE: NS } });
    let out = '';
    agent.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    await new Promise<void>((resolve, reject) => {
      agent!.stdout?.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('virtbmc ready')) resolve();
      });
      agent!.once('exit', (code) => reject(new Error(`agent exited ${code}: ${out}`)));
    });
    expect(out).to.match(/shared 3 systems .* redfish=https:\/\//);
    const port = endpointPort(readyEndpoints(out).redfish);
    const ca = data(s1, 'ca.crt');
    for (const n of ['a', 'b']) {
      const host = `${n}-virtbmc.${NS}.svc`;
      const r = await httpsGet(port, host, ca, '/redfish/v1/Systems', basic('admin', `pw-${n}`));
      expect(r.status, r.body).to.equal(200);
      expect((JSON.parse(r.body) as { Members: Array<{ '@odata.id': string }> }).Members.map((m) => m['@odata.id'])).to.deep.equal([`/redfish/v1/Systems/${NS}.vm-${n}`]);
      // plain HTTP on the same port (the Service's 80): 308 to the Service's 443
      expect(await httpGet(port, host, '/redfish/v1/Systems')).to.deep.equal({ status: 308, location: `https://${host}/redfish/v1/Systems` });
    }
    // a name the certificate does not carry fails verification
    const wrong = await httpsGet(port, 'evil.example', ca, '/redfish/v1', '').then(
      () => 'verified',
      (e: NodeJS.ErrnoException) => e.code,
    );
    expect(wrong).to.equal('ERR_TLS_CERT_ALTNAME_INVALID');
    // each tenant sees the shard's certificate (CertificateService), and no tenant's Administrator may replace it
    const hostA = `a-virtbmc.${NS}.svc`;
    const certRes = await httpsGet(port, hostA, ca, `/redfish/v1/Managers/${NS}.vm-a/NetworkProtocol/HTTPS/Certificates/1`, basic('admin', 'pw-a'));
    expect(certRes.status, certRes.body).to.equal(200);
    const shown = JSON.parse(certRes.body) as { CertificateString: string; Description: string };
    expect(new X509Certificate(shown.CertificateString).fingerprint256).to.equal(new X509Certificate(ca).fingerprint256);
    expect(shown.Description).to.contain('every system of a shared agent');
    const proto = JSON.parse((await httpsGet(port, hostA, ca, `/redfish/v1/Managers/${NS}.vm-a/NetworkProtocol`, basic('admin', 'pw-a'))).body) as { HTTPS: { ProtocolEnabled: boolean }; HTTP: { ProtocolEnabled: boolean } };
    expect([proto.HTTPS.ProtocolEnabled, proto.HTTP.ProtocolEnabled]).to.deep.equal([true, false]);
    const replace = await httpsPost(port, hostA, ca, '/redfish/v1/CertificateService/Actions/CertificateService.ReplaceCertificate', basic('admin', 'pw-a'), {
      // (the tenant's internal Manager id: shared mode does not map ids inside request bodies yet,
      // a Manager/<namespace>.<vm> URI here is refused as ActionParameterValueError: docs/scale.md "Request bodies are not rewritten")
      CertificateUri: { '@odata.id': '/redfish/v1/Managers/BMC/NetworkProtocol/HTTPS/Certificates/1' },
      CertificateString: data(s1, 'tls.crt') + data(s1, 'tls.key'),
      CertificateType: 'PEM',
    });
    expect(replace.status, replace.body).to.equal(400);
    expect(replace.body, replace.body).to.contain('ActionNotSupported');

    // a member joins: the certificate is re-minted with its names too (same Secret, new key)
    seed(emu, 'd');
    await waitReady(emu, 'd');
    const s2 = await emu.waitFor(() => {
      const s = emu.get('v1', 'Secret', NS, SECRET);
      return s && sans(s).length === 16 ? s : undefined;
    });
    expect(sans(s2)).to.deep.equal(membersNames('a', 'b', 'c', 'd'));
    expect(data(s2, 'tls.key')).to.not.equal(data(s1, 'tls.key'));
    expect(s2.metadata?.uid).to.equal(s1.metadata?.uid);
    // the pod is not rolled for that: the agent re-reads the mounted files
    expect(JSON.stringify(getDeployment(emu, 'virtbmc-shard-0')!.spec)).to.equal(JSON.stringify(dep!.spec));

    // the Secret deleted by hand: the shard wakes and mints it again
    emu.delete('v1', 'Secret', NS, SECRET);
    const s3 = await emu.waitFor(() => emu.get('v1', 'Secret', NS, SECRET));
    expect(s3.metadata?.uid).to.not.equal(s2.metadata?.uid);
    expect(sans(s3)).to.deep.equal(membersNames('a', 'b', 'c', 'd'));
  });

  it('the shard certificate is renewed at 2/3 of its lifetime (fake clock), not before, and the shard asks to come back then', async () => {
    const HOUR = 3600_000;
    let now = Date.parse('2031-05-01T12:00:00Z');
    const addAfter = sinon.spy(WorkQueue.prototype, 'addAfter');
    try {
      env = await startEnv({ shards: 1, tls: { now: () => now, validityMs: 3 * HOUR } });
      const { emu, mgr } = env;
      seed(emu, 'a');
      await waitReady(emu, 'a');
      const s1 = await emu.waitFor(() => emu.get('v1', 'Secret', NS, SECRET));
      const x1 = new X509Certificate(data(s1, 'tls.crt'));
      expect(Date.parse(x1.validFrom)).to.equal(now);
      expect(Date.parse(x1.validTo)).to.equal(now + 3 * HOUR);
      const renewAt = now + 2 * HOUR;
      expect(addAfter.calledWith(`shard|${NS}/0`, renewAt - now), JSON.stringify(addAfter.args)).to.equal(true);
      const beside = async () => {
        try {
          await mgr.controller.reconcileShard(`${NS}/0`);
        } catch (e) {
          if (!/: 409 /.test((e as Error).message)) throw e;
        }
      };
      now = renewAt - 1000;
      await beside();
      expect(emu.get('v1', 'Secret', NS, SECRET)!.metadata?.resourceVersion).to.equal(s1.metadata?.resourceVersion);
      now = renewAt;
      await beside();
      const s2 = emu.get('v1', 'Secret', NS, SECRET)!;
      const x2 = new X509Certificate(data(s2, 'tls.crt'));
      expect(x2.serialNumber).to.not.equal(x1.serialNumber);
      expect(x2.subjectAltName).to.equal(x1.subjectAltName);
      expect(Date.parse(x2.validFrom)).to.equal(renewAt);
    } finally {
      addAfter.restore();
    }
  });

  it('a shard of Disabled members only serves plain HTTP: no certificate, Services 80 → 8000; the Secret goes when the last Auto member opts out', async () => {
    env = await startEnv({ shards: 1 });
    const { emu } = env;
    seed(emu, 'a');
    seed(emu, 'b', { redfish: { tls: { mode: 'Disabled' } } });
    for (const n of ['a', 'b']) await waitReady(emu, n);
    await emu.waitFor(() => emu.get('v1', 'Secret', NS, SECRET));
    const a = getVmbmc(emu, 'a')!;
    emu.update({ ...a, spec: { ...(a.spec as object), redfish: { tls: { mode: 'Disabled' } } } });
    await emu.waitFor(() => !emu.get('v1', 'Secret', NS, SECRET));
    await emu.waitFor(() => parseFleet(emu.get('v1', 'ConfigMap', NS, 'virtbmc-shard-0'))?.tls === undefined);
    for (const n of ['a', 'b']) await emu.waitFor(() => ports(getService(emu, `${n}-virtbmc`)).join() === `623/UDP->${(getVmbmc(emu, n)!.status as { ipmiPort: number }).ipmiPort},80/TCP->8000`);
    const p = pod(getDeployment(emu, 'virtbmc-shard-0'));
    expect(p.volumes.map((v) => v.name)).to.deep.equal(['tmp']);
    expect(p.containers[0]!.args).to.not.include('--tls-cert');
    expect(p.containers[0]!.readinessProbe.httpGet.scheme).to.equal('HTTP');
  });

  it('cert-manager installed: one Certificate for the shard with every member\'s names, its Secret mounted; nothing minted', async () => {
    env = await startEnv({ shards: 1 }, { certManager: true });
    const { emu } = env;
    seed(emu, 'a');
    seed(emu, 'b');
    const cert = await emu.waitFor(() => {
      const c = emu.get('cert-manager.io/v1', 'Certificate', NS, 'virtbmc-shard-0');
      return c && (c.spec as { dnsNames: string[] }).dnsNames.length === 8 ? c : undefined;
    });
    expect(cert.spec).to.deep.include({ secretName: 'virtbmc-shard-0-cm-tls', dnsNames: membersNames('a', 'b'), usages: ['server auth', 'digital signature'] });
    expect(cert.metadata?.ownerReferences?.[0]).to.include({ kind: 'ConfigMap', name: 'virtbmc-shard-0', controller: true });
    await emu.waitFor(() => getDeployment(emu, 'virtbmc-shard-0') && pod(getDeployment(emu, 'virtbmc-shard-0')).volumes.some((v) => v.secret?.secretName === 'virtbmc-shard-0-cm-tls'));
    expect(emu.get('v1', 'Secret', NS, SECRET)).to.equal(undefined);
  });

  it('a minted per-VM <agent>-tls Secret deleted by hand wakes its BMC: minted again at once (not at the next resync)', async () => {
    env = await startEnv({ resyncMs: 0 });
    const { emu } = env;
    emu.create(vmObj('vm'));
    emu.create(secretObj('creds'));
    emu.create(vmbmcObj('p', 'vm', 'creds'));
    await waitReady(emu, 'p');
    const s1 = emu.get('v1', 'Secret', NS, 'p-virtbmc-tls')!;
    emu.delete('v1', 'Secret', NS, 'p-virtbmc-tls');
    const s2 = await emu.waitFor(() => emu.get('v1', 'Secret', NS, 'p-virtbmc-tls'));
    expect(s2.metadata?.uid).to.not.equal(s1.metadata?.uid);
    expect(sans(s2)).to.deep.equal(serviceDnsNames('p-virtbmc', NS));
  });
});
