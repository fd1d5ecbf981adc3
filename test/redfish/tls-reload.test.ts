/**
 * A rotated certificate reaches a running agent: the kubelet swaps a Secret volume's files, the
 * agent re-reads them every --tls-reload-seconds (sinon fake interval timer here) and new TLS
 * connections get the new certificate; a broken or half-written pair is not taken. Also the
 * redirect of plain HTTP naming the Service's HTTPS port (--https-redirect-port).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import tls from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import sinon from 'sinon';
import { mintSelfSigned } from '../../src/controller/tls-mint.js';
import { TlsCertificate } from '../../src/redfish/tls-certificate.js';
import { startTestAgent } from '../helpers/agent.js';

const names = ['bmc-virtbmc', 'bmc-virtbmc.ns', 'bmc-virtbmc.ns.svc', 'bmc-virtbmc.ns.svc.cluster.local'];
const mint = (hours = 3) => mintSelfSigned({ dnsNames: names, notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + hours * 3600_000) });

function peerSerial(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, servername: names[2] }, () => {
      const serial = s.getPeerCertificate().serialNumber;
      s.end();
      resolve(serial);
    });
    s.on('error', reject);
  });
}

function plainGet(port: number, path: string, host: string): Promise<{ status: number; location?: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, headers: { Host: host }, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, ...(res.headers.location ? { location: res.headers.location } : {}) }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('Redfish TLS: certificate reload from files, redirect port', function () {
  this.timeout(20_000);
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'rf-reload-'));
  });
  afterEach(() => {
    sinon.restore();
    rmSync(dir, { recursive: true, force: true });
  });

  it('TlsCertificate.reload: unchanged, a new matching pair taken (listeners told), a mismatched or broken pair rejected', async () => {
    const a = await mint();
    const b = await mint();
    const certFile = join(dir, 'tls.crt');
    const keyFile = join(dir, 'tls.key');
    writeFileSync(certFile, a.certPem);
    writeFileSync(keyFile, a.keyPem);
    const t = new TlsCertificate(a.certPem, a.keyPem, { certFile, keyFile });
    const seen: string[] = [];
    t.onChange((c) => seen.push(c));
    expect(t.reload()).to.equal('unchanged');
    // half-way through a swap: new certificate, old key
    writeFileSync(certFile, b.certPem);
    expect(t.reload()).to.deep.equal({ rejected: 'the key file does not match the certificate file' });
    expect(t.pem).to.equal(a.certPem);
    writeFileSync(keyFile, b.keyPem);
    expect(t.reload()).to.equal('reloaded');
    expect(t.pem).to.equal(b.certPem);
    expect(t.key).to.equal(b.keyPem);
    expect(seen).to.deep.equal([b.certPem]);
    writeFileSync(certFile, 'garbage');
    const r = t.reload();
    expect(r).to.have.property('rejected').that.matches(/do not parse/);
    expect(t.pem).to.equal(b.certPem);
    // no files: nothing to reload
    expect(new TlsCertificate(a.certPem, a.keyPem).reload()).to.equal('unchanged');
  });

  it('with a store (the Secret behind a read-only mount): replaceable, the pair saved first and installed only once saved', async () => {
    const a = await mint();
    const b = await mint();
    const saved: Array<[string, string]> = [];
    let fail = true;
    const t = new TlsCertificate(a.certPem, a.keyPem, { certFile: '/nonexistent/tls.crt', keyFile: '/nonexistent/tls.key' }, {
      save: async (c, k) => {
        if (fail) throw new Error('409 Conflict');
        saved.push([c, k]);
      },
    });
    expect(t.replaceable).to.equal(true);
    await t.replace(b.certPem + b.keyPem, b.keyPem).then(
      () => expect.fail('saved despite the store failing'),
      (e: Error) => expect(e.message).to.equal('409 Conflict'),
    );
    expect(t.pem).to.equal(a.certPem);
    fail = false;
    await t.replace(b.certPem + b.keyPem, b.keyPem);
    expect(saved).to.deep.equal([[b.certPem, b.keyPem]]);
    expect(t.pem).to.equal(b.certPem);
    // the mounted files still hold the old pair until the kubelet refreshes them: no step back to it
    const certFile = join(dir, 'tls.crt');
    const keyFile = join(dir, 'tls.key');
    writeFileSync(certFile, a.certPem);
    writeFileSync(keyFile, a.keyPem);
    const mounted = new TlsCertificate(a.certPem, a.keyPem, { certFile, keyFile }, { save: async () => undefined });
    await mounted.replace(b.certPem + b.keyPem, b.keyPem);
    expect(mounted.reload()).to.equal('unchanged');
    expect(mounted.pem).to.equal(b.certPem);
    // ... and when they do (the Secret now holds the new pair), nothing is lost either
    writeFileSync(certFile, b.certPem);
    writeFileSync(keyFile, b.keyPem);
    expect(mounted.reload()).to.equal('reloaded');
    expect(mounted.pem).to.equal(b.certPem);
    // without a store, a read-only (here: missing) location is not replaceable
    expect(new TlsCertificate(a.certPem, a.keyPem, { certFile: '/nonexistent/tls.crt', keyFile: '/nonexistent/tls.key' }).replaceable).to.equal(false);
  });

  it('a running HTTPS agent serves the rotated certificate to new connections after the reload interval, without a restart', async () => {
    const a = await mint();
    const b = await mint();
    const certFile = join(dir, 'tls.crt');
    const keyFile = join(dir, 'tls.key');
    writeFileSync(certFile, a.certPem);
    writeFileSync(keyFile, a.keyPem);
    // only the interval timer is faked: sockets and the agent's other timers run as usual
    const clock = sinon.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const t = await startTestAgent({
      ipmi: false,
      redfish: { port: 0, tls: { cert: a.certPem, key: a.keyPem, certFile, keyFile, reloadSeconds: 60, redirectPort: 443 } },
    });
    try {
      const serialA = await peerSerial(t.redfishPort);
      writeFileSync(certFile, b.certPem);
      writeFileSync(keyFile, b.keyPem);
      clock.tick(59_000);
      expect(await peerSerial(t.redfishPort), 'not before the interval').to.equal(serialA);
      clock.tick(1_000);
      const serialB = await peerSerial(t.redfishPort);
      expect(serialB).to.not.equal(serialA);
      // plain HTTP on the same port: redirected to the Service's 443 (no port in the URL)
      const r = await plainGet(t.redfishPort, '/redfish/v1/Systems', 'bmc-virtbmc.ns.svc');
      expect(r).to.deep.equal({ status: 308, location: 'https://bmc-virtbmc.ns.svc/redfish/v1/Systems' });
    } finally {
      await t.close();
    }
  });
});
