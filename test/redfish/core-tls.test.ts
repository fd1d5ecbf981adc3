/**
 * HTTPS: TLS and plain HTTP on one port (first-byte peek), plain HTTP redirected (308) or refused;
 * close() also ends keep-alive connections.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { ADMIN, startTestAgent } from '../helpers/agent.js';

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function request(mod: typeof http | typeof https, url: string, opts: https.RequestOptions = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = mod.request(url, { ...opts, rejectUnauthorized: false, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

describe('Redfish over TLS', () => {
  let dir: string;
  let cert: Buffer;
  let key: Buffer;
  before(function () {
    this.timeout(20_000);
    dir = mkdtempSync(join(tmpdir(), 'rf-tls-'));
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
      '-subj', '/CN=127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
    ], { stdio: 'ignore' });
    cert = readFileSync(join(dir, 'cert.pem'));
    key = readFileSync(join(dir, 'key.pem'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('serves HTTPS and redirects plain HTTP on the same port with 308', async () => {
    const t = await startTestAgent({ ipmi: false, redfish: { port: 0, tls: { cert, key, plainHttp: 'redirect' } } });
    try {
      expect(t.agent.redfish?.url).to.equal(`https://127.0.0.1:${t.redfishPort}/redfish/v1`);
      const root = await request(https, `https://127.0.0.1:${t.redfishPort}/redfish/v1`);
      expect(root.status).to.equal(200);
      expect(root.headers['odata-version']).to.equal('4.0');
      expect((JSON.parse(root.body) as { Id: string }).Id).to.equal('RootService');
      const auth = `Basic ${Buffer.from('admin:password').toString('base64')}`;
      const sys = await request(https, `https://127.0.0.1:${t.redfishPort}/redfish/v1/Systems/1`, { headers: { Authorization: auth } });
      expect(sys.status).to.equal(200);

      const plain = await request(http, `http://127.0.0.1:${t.redfishPort}/redfish/v1/Systems?x=1`);
      expect(plain.status).to.equal(308);
      expect(plain.headers.location).to.equal(`https://127.0.0.1:${t.redfishPort}/redfish/v1/Systems?x=1`);
      // the redirect carries nothing from the service
      expect(plain.body).to.equal('');
      const named = await request(http, `http://127.0.0.1:${t.redfishPort}/redfish`, { headers: { Host: 'bmc.example:80' } });
      expect(named.headers.location).to.equal(`https://bmc.example:${t.redfishPort}/redfish`);
      const odd = await request(http, `http://127.0.0.1:${t.redfishPort}/redfish`, { headers: { Host: 'a/b@c' } });
      expect(odd.headers.location).to.equal(`https://127.0.0.1:${t.redfishPort}/redfish`);
    } finally {
      await t.close();
    }
  });

  it('refuses plain HTTP when told to, while HTTPS keeps working', async () => {
    const t = await startTestAgent({ ipmi: false, redfish: { port: 0, tls: { cert, key, plainHttp: 'refuse' } } });
    try {
      let failed: unknown;
      try {
        await request(http, `http://127.0.0.1:${t.redfishPort}/redfish/v1`);
      } catch (e) {
        failed = e;
      }
      expect(String(failed)).to.match(/socket hang up|ECONNRESET/);
      expect((await request(https, `https://127.0.0.1:${t.redfishPort}/redfish/v1`)).status).to.equal(200);
    } finally {
      await t.close();
    }
  });

  it('close() ends idle keep-alive connections and open event streams at once', async () => {
    const t = await startTestAgent({ ipmi: false });
    const agent = new http.Agent({ keepAlive: true });
    const raw = net.connect(t.redfishPort, '127.0.0.1');
    try {
      const r = await request(http, `${t.redfishUrl}/redfish/v1`, { agent });
      expect(r.status).to.equal(200);
      const idle = Object.values(agent.freeSockets).flat();
      expect(idle, 'one idle keep-alive socket').to.have.length(1);
      const closed = (s: net.Socket) => new Promise<void>((resolve) => s.once('close', () => resolve()).on('error', () => undefined)); // a reset is expected
      const idleClosed = closed(idle[0]!);
      // an open Server-Sent Events stream: a response in progress, which no server timer ends, so
      // only close() destroying the connection ends it (a close() that waits for it fails on the
      // test timeout; no elapsed-time bound needed)
      raw.setEncoding('latin1');
      let got = '';
      const auth = Buffer.from(`${ADMIN.username}:${ADMIN.password}`).toString('base64');
      raw.write(`GET /redfish/v1/EventService/SSE HTTP/1.1\r\nHost: x\r\nAuthorization: Basic ${auth}\r\n\r\n`);
      await new Promise<void>((resolve) => raw.on('data', (d: string) => (got += d, got.includes('\r\n\r\n') && resolve())));
      expect(got).to.match(/^HTTP\/1\.1 200/);
      expect(got).to.match(/text\/event-stream/i);
      const rawClosed = closed(raw);
      await t.close();
      await Promise.all([idleClosed, rawClosed]);
    } finally {
      raw.destroy();
      await t.close();
      agent.destroy();
    }
  });
});
