/**
 * Shared mode over HTTPS (src/agent/shared.ts with `tls`): one listener, the per-VM code path of
 * src/redfish/server.ts listenRedfish: TLS and plain HTTP on one port, plain HTTP answered 308 to
 * the redirect port, the certificate re-read from its files (fake interval timer, no waiting), and
 * no tenant may replace it over Redfish (ReplaceCertificate, GenerateCSR) even when the files are
 * writable.
 */
import { expect } from 'chai';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sinon from 'sinon';
import { startSharedAgent, type SharedAgent } from '../../src/agent/shared.js';
import { SimulatedMachine } from '../../src/backend/simulator/simulator.js';
import { nullLogger } from '../../src/common/logger.js';
import { mintSelfSigned } from '../../src/controller/tls-mint.js';

const basic = (u: string, p: string): string => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;

function request(o: https.RequestOptions & { body?: string }, secure: boolean): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string; peer?: X509Certificate }> {
  return new Promise((resolve, reject) => {
    const req = (secure ? https : http).request({ host: '127.0.0.1', agent: false, ...o }, (res) => {
      const raw = (res.socket as { getPeerX509Certificate?: () => X509Certificate | undefined }).getPeerX509Certificate?.();
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body, ...(raw ? { peer: raw } : {}) }));
    });
    req.on('error', reject);
    req.end(o.body);
  });
}

describe('shared mode over HTTPS: one certificate for every system', function () {
  this.timeout(20_000);
  let agent: SharedAgent | undefined;
  let clock: sinon.SinonFakeTimers | undefined;
  afterEach(async () => {
    clock?.restore();
    clock = undefined;
    await agent?.close();
    agent = undefined;
  });

  it('serves verified HTTPS for two systems, 308 on plain HTTP, reloads the files, refuses ReplaceCertificate', async () => {
    const names = ['a-virtbmc', 'a-virtbmc.ns.svc', 'b-virtbmc', 'b-virtbmc.ns.svc'];
    const now = Date.now();
    const first = await mintSelfSigned({ dnsNames: names, notBefore: new Date(now - 60_000), notAfter: new Date(now + 3600_000) });
    const dir = mkdtempSync(join(tmpdir(), 'virtbmc-shared-tls-'));
    const certFile = join(dir, 'tls.crt');
    const keyFile = join(dir, 'tls.key');
    writeFileSync(certFile, first.certPem);
    writeFileSync(keyFile, first.keyPem, { mode: 0o600 });
    // only the reload interval is faked: sockets and the koa stack keep their real timers
    clock = sinon.useFakeTimers({ toFake: ['setInterval', 'clearInterval'], now });
    agent = await startSharedAgent({
      logger: nullLogger(),
      address: '127.0.0.1',
      redfishPort: 0,
      ipmi: false,
      tls: { cert: first.certPem, key: first.keyPem, certFile, keyFile, plainHttp: 'redirect', redirectPort: 443, reloadSeconds: 5 },
      backend: async (s) => ({ machine: new SimulatedMachine({ name: s.vm }), users: [{ username: 'admin', password: `pw-${s.vm}`, role: 'Administrator' }] }),
    });
    await agent.apply([
      { id: 'ns.a', namespace: 'ns', vm: 'a', ipmiPort: 0 },
      { id: 'ns.b', namespace: 'ns', vm: 'b', ipmiPort: 0 },
    ]);
    const port = agent.redfish.port;
    expect(agent.redfish.url).to.match(/^https:/);
    for (const vm of ['a', 'b']) {
      const servername = `${vm}-virtbmc.ns.svc`;
      const r = await request({ port, path: '/redfish/v1/Systems', servername, ca: first.certPem, headers: { host: servername, authorization: basic('admin', `pw-${vm}`) } }, true);
      expect(r.status, r.body).to.equal(200);
      expect((JSON.parse(r.body) as { Members: Array<{ '@odata.id': string }> }).Members.map((m) => m['@odata.id'])).to.deep.equal([`/redfish/v1/Systems/ns.${vm}`]);
      const plain = await request({ port, path: '/redfish/v1/Systems', headers: { host: servername } }, false);
      expect([plain.status, plain.headers.location]).to.deep.equal([308, `https://${servername}/redfish/v1/Systems`]);
    }
    // ManagerNetworkProtocol tells HTTPS on, HTTP off, for each tenant
    const proto = await request({ port, path: '/redfish/v1/Managers/ns.a/NetworkProtocol', servername: 'a-virtbmc', ca: first.certPem, headers: { authorization: basic('admin', 'pw-a') } }, true);
    const p = JSON.parse(proto.body) as { HTTPS: { ProtocolEnabled: boolean }; HTTP: { ProtocolEnabled: boolean } };
    expect([p.HTTPS.ProtocolEnabled, p.HTTP.ProtocolEnabled]).to.deep.equal([true, false]);

    // ReplaceCertificate: refused although the files are writable (one tenant must not swap everyone's certificate)
    const other = await mintSelfSigned({ dnsNames: ['evil.example'], notBefore: new Date(now - 60_000), notAfter: new Date(now + 3600_000) });
    const body = JSON.stringify({
      CertificateUri: { '@odata.id': '/redfish/v1/Managers/BMC/NetworkProtocol/HTTPS/Certificates/1' },
      CertificateString: other.certPem + other.keyPem,
      CertificateType: 'PEM',
    });
    const rep = await request(
      { method: 'POST', port, path: '/redfish/v1/CertificateService/Actions/CertificateService.ReplaceCertificate', servername: 'a-virtbmc', ca: first.certPem, headers: { authorization: basic('admin', 'pw-a'), 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) }, body },
      true,
    );
    expect(rep.status, rep.body).to.equal(400);
    expect(rep.body).to.contain('ActionNotSupported');
    // GenerateCSR likewise: no key is made for a certificate that cannot be installed
    const csrBody = JSON.stringify({ CertificateCollection: { '@odata.id': '/redfish/v1/Managers/BMC/NetworkProtocol/HTTPS/Certificates' }, CommonName: 'evil.example' });
    const csr = await request(
      { method: 'POST', port, path: '/redfish/v1/CertificateService/Actions/CertificateService.GenerateCSR', servername: 'a-virtbmc', ca: first.certPem, headers: { authorization: basic('admin', 'pw-a'), 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(csrBody)) }, body: csrBody },
      true,
    );
    expect(csr.status, csr.body).to.equal(400);
    expect(csr.body).to.contain('ActionNotSupported').and.not.contain('CERTIFICATE REQUEST');

    // the files are rotated (a re-minted Secret): served to new connections after the next reload tick
    const second = await mintSelfSigned({ dnsNames: [...names, 'c-virtbmc'], notBefore: new Date(now - 60_000), notAfter: new Date(now + 7200_000) });
    writeFileSync(keyFile, second.keyPem);
    writeFileSync(certFile, second.certPem);
    const before = await request({ port, path: '/redfish/v1', servername: 'a-virtbmc', ca: first.certPem }, true);
    expect(before.peer?.fingerprint256).to.equal(new X509Certificate(first.certPem).fingerprint256);
    clock.tick(5000);
    const after = await request({ port, path: '/redfish/v1', servername: 'c-virtbmc', ca: second.certPem }, true);
    expect(after.status).to.equal(200);
    expect(after.peer?.fingerprint256).to.equal(new X509Certificate(second.certPem).fingerprint256);
  });
});
