import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mintSelfSigned } from '../../src/controller/tls-mint.js';
import { getDeployment, secretObj, startEnv, vmObj, vmbmcObj, waitReady, NS } from './fixtures.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

type Container = { args: string[]; volumeMounts: Array<{ name: string; mountPath: string }>; env: Array<{ name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string }; fieldRef?: { fieldPath: string } } }> };

/**
 * The pod the controller describes really runs: the agent command line and environment from the
 * generated Deployment start `virtbmc` in KubeVirt mode against the same (emulated) apiserver, and
 * the credentials from the Secret open its Redfish API. Only the listen address and ports are
 * swapped for loopback and free ports, and the Secret volume's mount path for a directory holding
 * the same files (what the kubelet would mount).
 */
function get(url: string, opts: https.RequestOptions & { json?: unknown } = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string; peerSan?: string; peerSerial?: string }> {
  const mod = url.startsWith('https:') ? https : http;
  const { json, ...reqOpts } = opts;
  const payload = json === undefined ? undefined : JSON.stringify(json);
  return new Promise((resolveP, reject) => {
    const headers = { ...(reqOpts.headers ?? {}), ...(payload ? { 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(payload)) } : {}) };
    const req = mod.request(url, { ...reqOpts, ...(payload ? { method: 'POST' } : {}), headers, agent: false }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => {
        const sock = res.socket as import('node:tls').TLSSocket;
        const peer = typeof sock.getPeerCertificate === 'function' ? sock.getPeerCertificate() : undefined;
        resolveP({ status: res.statusCode ?? 0, headers: res.headers, body, ...(peer?.subjectaltname ? { peerSan: peer.subjectaltname, peerSerial: peer.serialNumber } : {}) });
      });
    });
    req.on('error', reject);
    req.end(payload);
  });
}

describe('the agent Deployment the controller generates', function () {
  // only stops a hung test (kubectl and agent starts: seconds each, more on a loaded core); nothing is timed
  this.timeout(120_000);

  it('starts a working virtbmc with the Secret credentials, serving HTTPS with the minted certificate and redirecting HTTP to the Service 443', async () => {
    const env = await startEnv();
    const { emu } = env;
    let child: ReturnType<typeof spawn> | undefined;
    let mount: string | undefined;
    try {
      emu.create(vmObj('vm'));
      emu.create(secretObj('creds', 'pod-pw', 'bmcadmin'));
      emu.create(vmbmcObj('bmc', 'vm', 'creds'));
      await waitReady(emu, 'bmc');
      const c = (getDeployment(emu, 'bmc-virtbmc')!.spec as { template: { spec: { containers: Container[] } } }).template.spec.containers[0]!;
      const secret = emu.get('v1', 'Secret', NS, 'creds')!.data as Record<string, string>;
      const podEnv: Record<string, string> = {};
      for (const e of c.env) {
        // what the kubelet fills in: Secret keys, and the downward API (the pod's IP: loopback here)
        const ref = e.valueFrom?.secretKeyRef;
        const field = e.valueFrom?.fieldRef?.fieldPath;
        if (e.value !== undefined) podEnv[e.name] = e.value;
        else if (ref) podEnv[e.name] = Buffer.from(secret[ref.key]!, 'base64').toString('utf8');
        else if (field === 'status.podIP') podEnv[e.name] = '127.0.0.1';
        else throw new Error(`unexpected env source of ${e.name}`);
      }
      // the Secret volume (TLS by default: the certificate the controller minted), as the kubelet mounts it
      const spec = (getDeployment(emu, 'bmc-virtbmc')!.spec as { template: { spec: { volumes: Array<{ name: string; secret?: { secretName: string } }> } } }).template.spec;
      const tlsVolume = spec.volumes.find((v) => v.name === 'redfish-tls')!;
      expect(tlsVolume.secret?.secretName).to.equal('bmc-virtbmc-tls');
      const mountPath = c.volumeMounts.find((m) => m.name === 'redfish-tls')!.mountPath;
      const tlsData = emu.get('v1', 'Secret', NS, 'bmc-virtbmc-tls')!.data as Record<string, string>;
      mount = mkdtempSync(join(tmpdir(), 'virtbmc-tls-'));
      for (const k of ['tls.crt', 'tls.key']) writeFileSync(join(mount, k), Buffer.from(tlsData[k]!, 'base64'), { mode: 0o600 });
      const caPem = Buffer.from(tlsData['ca.crt']!, 'base64').toString('utf8');
      const loopback: Record<string, string> = { '--address': '127.0.0.1', '--ipmi-port': '0', '--redfish-port': '0' };
      const args = c.args.map((a, i) => loopback[c.args[i - 1] ?? ''] ?? (a.startsWith(`${mountPath}/`) ? join(mount!, a.slice(mountPath.length + 1)) : a));
      expect(c.args).to.include.members(['--tls-cert', `${mountPath}/tls.crt`, '--tls-key', `${mountPath}/tls.key`, '--https-redirect-port', '443']);
      expect(args.slice(0, 2)).to.deep.equal([NS, 'vm']);
      child = spawn(process.execPath, ['--import', 'tsx', resolve(root, 'src/cmd/virtbmc.ts'), ...args, '--kubeconfig', emu.kubeconfigPath, '--log-level', 'silent'], {
        cwd: root,
        env: { PATH: process.env.PATH ?? '', ...podEnv },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      let err = '';
      child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
      const redfish = await emu.waitFor(() => {
        if (child!.exitCode !== null) throw new Error(`virtbmc exited ${child!.exitCode}: ${err}`);
        return /redfish=(https:\/\/\S+)/.exec(out)?.[1];
      }, 100_000); // the start is not timed: a hang guard
      expect(out).to.contain(`VirtualMachine ${NS}/vm`);
      expect(out).to.match(/ipmi=udp:\/\/127\.0\.0\.1:\d+/);
      const base = redfish.replace(/\/redfish\/v1\/?$/, '');
      // verified HTTPS: the Secret's ca.crt is the trust anchor, the Service's DNS name the identity
      const tlsOpts = { ca: caPem, servername: `bmc-virtbmc.${NS}.svc` };
      const auth = `Basic ${Buffer.from('bmcadmin:pod-pw').toString('base64')}`;
      const ok = await get(`${base}/redfish/v1/Systems`, { ...tlsOpts, headers: { Authorization: auth } });
      expect(ok.status).to.equal(200);
      expect(ok.peerSan).to.equal(`DNS:bmc-virtbmc, DNS:bmc-virtbmc.${NS}, DNS:bmc-virtbmc.${NS}.svc, DNS:bmc-virtbmc.${NS}.svc.cluster.local`);
      const bad = await get(`${base}/redfish/v1/Systems`, { ...tlsOpts, headers: { Authorization: `Basic ${Buffer.from('bmcadmin:wrong').toString('base64')}` } });
      expect(bad.status).to.equal(401);
      // the readiness probe path answers without credentials (the probe's scheme is HTTPS)
      expect((await get(`${base}/redfish/v1`, tlsOpts)).status).to.equal(200);
      // another name than the Service's is refused by a verifying client
      const wrongName = await get(`${base}/redfish/v1`, { ca: caPem, servername: 'other.example' }).then(() => 'accepted', (e: Error) => e.message);
      expect(wrongName).to.match(/altnames|Hostname/i);
      // plain HTTP on the same port (the Service's 80 → this port): 308 to https on the Service's 443
      const plain = await get(`${base.replace('https:', 'http:')}/redfish/v1/Systems?x=1`, { headers: { Host: `bmc-virtbmc.${NS}.svc` } });
      expect(plain.status).to.equal(308);
      expect(plain.headers.location).to.equal(`https://bmc-virtbmc.${NS}.svc/redfish/v1/Systems?x=1`);

      // Redfish ReplaceCertificate on the read-only mount: the new pair goes into the Secret (and is served at once)
      const before = emu.get('v1', 'Secret', NS, 'bmc-virtbmc-tls')!;
      const svc = await get(`${base}/redfish/v1/CertificateService`, { ...tlsOpts, headers: { Authorization: auth } });
      expect(JSON.parse(svc.body).Actions).to.have.property('#CertificateService.ReplaceCertificate');
      const admins = await mintSelfSigned({ dnsNames: ['bmc.corp.example'], notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 30 * 24 * 3600_000) });
      const replaced = await get(`${base}/redfish/v1/CertificateService/Actions/CertificateService.ReplaceCertificate`, {
        ...tlsOpts,
        headers: { Authorization: auth },
        json: { CertificateString: admins.certPem + admins.keyPem, CertificateType: 'PEM', CertificateUri: { '@odata.id': '/redfish/v1/Managers/BMC/NetworkProtocol/HTTPS/Certificates/1' } },
      });
      expect(replaced.status, replaced.body).to.equal(200);
      const after = emu.get('v1', 'Secret', NS, 'bmc-virtbmc-tls')!;
      const afterData = after.data as Record<string, string>;
      expect(Buffer.from(afterData['tls.crt']!, 'base64').toString()).to.equal(admins.certPem);
      expect(Buffer.from(afterData['tls.key']!, 'base64').toString()).to.equal(admins.keyPem);
      expect(afterData['ca.crt']).to.equal(undefined);
      expect(after.metadata?.annotations?.['bmc.kubevirt.io/tls-source']).to.equal('redfish');
      expect(after.metadata?.ownerReferences).to.deep.equal(before.metadata?.ownerReferences);
      const served = await get(`${base}/redfish/v1`, { ca: admins.certPem, servername: 'bmc.corp.example' });
      expect(served.peerSan).to.equal('DNS:bmc.corp.example');
      // the controller keeps the Administrator's certificate (no re-minting for its other names)
      await env.mgr.controller.reconcile(`${NS}/bmc`);
      expect(emu.get('v1', 'Secret', NS, 'bmc-virtbmc-tls')!.metadata?.resourceVersion).to.equal(after.metadata?.resourceVersion);
    } finally {
      if (child && child.exitCode === null) {
        child.kill('SIGTERM');
        await new Promise((r) => child!.once('exit', r));
      }
      await env.close();
      if (mount) rmSync(mount, { recursive: true, force: true });
    }
  });
});
