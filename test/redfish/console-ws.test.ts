/**
 * The console websocket with the `ws` client (no browser): the token in the first message, the
 * backlog and echo, the session's end closing the socket, ReadOnly input ignored, and the same
 * endpoint over the agent's TLS (wss) with its HTTPS page.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import WebSocket from 'ws';
import { CLOSE_UNAUTHORIZED, CONSOLE_SUBPROTOCOL } from '../../src/redfish/console-ws.js';
import { startTestAgent, type TestAgent } from '../helpers/agent.js';

interface Conn {
  ws: WebSocket;
  text: () => string;
  json: Record<string, unknown>[];
  waitFor(pred: () => boolean, what: string): Promise<void>;
}

async function connect(url: string, token: string, opts: WebSocket.ClientOptions = {}): Promise<Conn> {
  const ws = new WebSocket(url, [CONSOLE_SUBPROTOCOL], opts);
  const out: Buffer[] = [];
  const json: Record<string, unknown>[] = [];
  const waiters: (() => void)[] = [];
  ws.on('message', (d: Buffer, binary) => {
    if (binary) out.push(d);
    else json.push(JSON.parse(d.toString()) as Record<string, unknown>);
    for (const w of [...waiters]) w();
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  expect(ws.protocol).to.equal(CONSOLE_SUBPROTOCOL);
  ws.send(JSON.stringify({ type: 'auth', token }));
  const conn: Conn = {
    ws,
    json,
    text: () => Buffer.concat(out).toString('latin1'),
    waitFor: (pred, what) =>
      new Promise<void>((resolve, reject) => {
        const check = (): void => {
          if (pred()) {
            waiters.splice(waiters.indexOf(check), 1);
            resolve();
          }
        };
        waiters.push(check);
        ws.once('close', () => (pred() ? resolve() : reject(new Error(`closed before ${what}`))));
        check();
      }),
  };
  return conn;
}

async function login(base: string, user: string, password: string, agent?: https.Agent): Promise<{ token: string; uri: string }> {
  const res = await fetchish(`${base}/redfish/v1/SessionService/Sessions`, 'POST', JSON.stringify({ UserName: user, Password: password }), {}, agent);
  expect(res.status).to.equal(201);
  return { token: res.headers['x-auth-token'] as string, uri: res.headers.location as string };
}

/** http(s) request that can skip certificate checks (fetch cannot without a global dispatcher). */
async function fetchish(url: string, method: string, body: string | undefined, headers: Record<string, string>, agent?: https.Agent) {
  const mod = url.startsWith('https:') ? https : await import('node:http');
  return new Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }>((resolve, reject) => {
    const req = mod.request(url, { method, headers: { 'Content-Type': 'application/json', ...headers }, ...(agent ? { agent } : {}) }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('console websocket', function () {
  this.timeout(20_000);
  let t: TestAgent;
  beforeEach(async () => {
    t = await startTestAgent({ sim: { initialPower: 'On' } });
  });
  afterEach(() => t.close());

  it('authenticates by the first message, sends the backlog, echoes typing, and closes when the session is deleted', async () => {
    const s = await login(t.redfishUrl, 'admin', 'password');
    const c = await connect(`ws://127.0.0.1:${t.redfishPort}/ui/ws/console/1`, s.token);
    await c.waitFor(() => c.json.some((m) => m.type === 'hello'), 'hello');
    expect(c.json[0]).to.include({ type: 'hello', user: 'admin', writer: true, state: 'connected' });
    await c.waitFor(() => c.text().includes('login: '), 'the prompt from the backlog');
    c.ws.send(Buffer.from('abc\r'));
    await c.waitFor(() => c.text().includes('you typed: abc'), 'the echo');
    const closed = new Promise<number>((resolve) => c.ws.once('close', (code) => resolve(code)));
    expect((await fetchish(`${t.redfishUrl}${s.uri}`, 'DELETE', undefined, { 'X-Auth-Token': s.token })).status).to.equal(204);
    expect(await closed).to.equal(CLOSE_UNAUTHORIZED);
  });

  it('shows a ReadOnly account the output and ignores its input, with a notice', async () => {
    const s = await login(t.redfishUrl, 'viewer', 'viewer-pw');
    const c = await connect(`ws://127.0.0.1:${t.redfishPort}/ui/ws/console/1`, s.token);
    await c.waitFor(() => c.json.some((m) => m.type === 'hello'), 'hello');
    expect(c.json[0]).to.include({ writer: false, role: 'ReadOnly' });
    const before = t.sim.serialConsole.received.length;
    c.ws.send(Buffer.from('zzz'));
    await c.waitFor(() => c.json.some((m) => m.type === 'notice'), 'the notice');
    expect(t.sim.serialConsole.received.length).to.equal(before);
    c.ws.close();
  });

  it('answers an unknown system id with 404 and a token in the URL is not an authentication', async () => {
    const status = await new Promise<number>((resolve) => {
      const ws = new WebSocket(`ws://127.0.0.1:${t.redfishPort}/ui/ws/console/2`, [CONSOLE_SUBPROTOCOL]);
      ws.on('unexpected-response', (_q, res) => resolve(res.statusCode ?? 0));
    });
    expect(status).to.equal(404);
    const s = await login(t.redfishUrl, 'admin', 'password');
    const ws = new WebSocket(`ws://127.0.0.1:${t.redfishPort}/ui/ws/console/1?token=${s.token}`, [CONSOLE_SUBPROTOCOL]);
    await new Promise((r) => ws.once('open', r));
    ws.send(JSON.stringify({ type: 'resize', cols: 80, rows: 24 }));
    expect(await new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)))).to.equal(CLOSE_UNAUTHORIZED);
  });
});

describe('web page and console over the agent TLS', function () {
  this.timeout(20_000);
  let dir: string;
  let t: TestAgent;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ui-tls-'));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
      '-subj', '/CN=127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
    t = await startTestAgent({ sim: { initialPower: 'On' }, redfish: { port: 0, tls: { cert: readFileSync(join(dir, 'cert.pem')), key: readFileSync(join(dir, 'key.pem')) } } });
  });
  after(async () => {
    await t.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves the page over HTTPS and the console over wss, refusing an http: origin', async () => {
    const agent = new https.Agent({ rejectUnauthorized: false });
    const base = `https://127.0.0.1:${t.redfishPort}`;
    const page = await fetchish(`${base}/`, 'GET', undefined, {}, agent);
    expect(page.status).to.equal(200);
    expect(page.headers['content-security-policy']).to.include("frame-ancestors 'none'");
    const s = await login(base, 'admin', 'password', agent);
    const url = `wss://127.0.0.1:${t.redfishPort}/ui/ws/console/1`;
    const c = await connect(url, s.token, { rejectUnauthorized: false, origin: base });
    await c.waitFor(() => c.json.some((m) => m.type === 'hello'), 'hello');
    expect(c.json[0]).to.include({ writer: true });
    c.ws.close();
    const status = await new Promise<number>((resolve) => {
      const ws = new WebSocket(url, [CONSOLE_SUBPROTOCOL], { rejectUnauthorized: false, origin: `http://127.0.0.1:${t.redfishPort}` });
      ws.on('unexpected-response', (_q, res) => resolve(res.statusCode ?? 0));
    });
    expect(status).to.equal(403);
  });
});
