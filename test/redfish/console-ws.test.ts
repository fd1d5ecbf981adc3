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
import { CLOSE_FORBIDDEN, CLOSE_NO_CONSOLE, CLOSE_UNAUTHORIZED, CONSOLE_SUBPROTOCOL } from '../../src/redfish/console-ws.js';
import { startTestAgent, startTestFleet, type TestAgent } from '../helpers/agent.js';
import type { SharedAgent } from '../../src/agent/shared.js';
import type { UserAccount } from '../../src/accounts/types.js';
import { SimulatedMachine } from '../../src/backend/simulator/simulator.js';

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

  it('refuses a ReadOnly account (ConfigureComponents, as bmcweb asks of its console): 4403, no output, no input', async () => {
    const s = await login(t.redfishUrl, 'viewer', 'viewer-pw');
    const c = await connect(`ws://127.0.0.1:${t.redfishPort}/ui/ws/console/1`, s.token);
    const code = await new Promise<number>((resolve) => c.ws.once('close', (n) => resolve(n)));
    expect(code).to.equal(CLOSE_FORBIDDEN);
    expect(c.json).to.have.length(1);
    expect(c.json[0]).to.include({ type: 'error', code: 'InsufficientPrivilege' });
    expect(c.text()).to.equal(''); // not even the backlog
    expect(c.json.some((m) => m.type === 'hello')).to.equal(false);
  });

  it('refuses a session whose account must change its password until it has, and closes an open console when an Administrator requires it', async () => {
    const admin = { Authorization: `Basic ${Buffer.from('admin:password').toString('base64')}` };
    const made = await fetchish(`${t.redfishUrl}/redfish/v1/AccountService/Accounts`, 'POST',
      JSON.stringify({ UserName: 'newop', Password: 'first-pass-1', RoleId: 'Operator', PasswordChangeRequired: true }), admin);
    expect(made.status).to.equal(201);
    const acct = made.headers.location as string;
    const s = await login(t.redfishUrl, 'newop', 'first-pass-1');
    const url = `ws://127.0.0.1:${t.redfishPort}/ui/ws/console/1`;
    const c = await connect(url, s.token);
    expect(await new Promise<number>((resolve) => c.ws.once('close', (n) => resolve(n)))).to.equal(CLOSE_FORBIDDEN);
    expect(c.json[0]).to.include({ type: 'error', code: 'PasswordChangeRequired' });
    expect(c.text()).to.equal('');
    // the user changes the password (the one thing the session may do): the same session now attaches
    const changed = await fetchish(`${t.redfishUrl}${acct}`, 'PATCH', JSON.stringify({ Password: 'second-pass-2' }), { 'X-Auth-Token': s.token });
    expect(changed.status).to.equal(200);
    const c2 = await connect(url, s.token);
    await c2.waitFor(() => c2.json.some((m) => m.type === 'hello'), 'hello');
    expect(c2.json[0]).to.include({ type: 'hello', user: 'newop', writer: true });
    // an Administrator requires a new password: the next keystroke closes the console, unsent
    const again = await fetchish(`${t.redfishUrl}${acct}`, 'PATCH', JSON.stringify({ PasswordChangeRequired: true }), admin);
    expect(again.status).to.equal(200);
    const before = t.sim.serialConsole.received.length;
    const closed = new Promise<number>((resolve) => c2.ws.once('close', (n) => resolve(n)));
    c2.ws.send(Buffer.from('x'));
    expect(await closed).to.equal(CLOSE_FORBIDDEN);
    expect(t.sim.serialConsole.received.length).to.equal(before);
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

describe('console websocket in shared mode (one port, many VMs)', function () {
  this.timeout(20_000);
  let agent: SharedAgent;
  let base: string;
  let machines: Map<string, SimulatedMachine>;
  // ops has the same credentials on vm-a and vm-b; vm-c has an ops too, with another password
  const ACCOUNTS: Record<string, UserAccount[]> = {
    'ns.vm-a': [{ username: 'ops', password: 'ops-shared-pw', role: 'Operator' }],
    'ns.vm-b': [{ username: 'ops', password: 'ops-shared-pw', role: 'Operator' }],
    'ns.vm-c': [{ username: 'ops', password: 'another-pw', role: 'Administrator' }],
  };
  before(async () => {
    ({ agent, machines, base } = await startTestFleet({ accounts: ACCOUNTS, sim: { initialPower: 'On' } }));
  });
  after(async () => {
    await agent?.close();
  });

  it("attaches each of the session's systems to its own machine, and answers another VM's id like an unknown one", async () => {
    const s = await login(base, 'ops', 'ops-shared-pw');
    for (const id of ['ns.vm-a', 'ns.vm-b']) {
      const c = await connect(`ws://127.0.0.1:${agent.redfish.port}/ui/ws/console/${id}`, s.token);
      await c.waitFor(() => c.json.some((m) => m.type === 'hello'), `hello of ${id}`);
      expect(c.json[0]).to.include({ type: 'hello', user: 'ops', role: 'Operator', writer: true });
      const m = machines.get(id) as SimulatedMachine;
      const before = m.serialConsole.received.length;
      c.ws.send(Buffer.from(`to-${id}\r`));
      await c.waitFor(() => c.text().includes(`you typed: to-${id}`), `the echo of ${id}`);
      expect(m.serialConsole.received.length).to.be.greaterThan(before);
      for (const other of ['ns.vm-a', 'ns.vm-b', 'ns.vm-c'].filter((x) => x !== id)) {
        expect(Buffer.concat((machines.get(other) as SimulatedMachine).serialConsole.received).toString()).not.to.include(`to-${id}`);
      }
      c.ws.close();
    }
    // the upgrade of any id is accepted (existence is not told before authentication) ...
    const codes: number[] = [];
    for (const id of ['ns.vm-c', 'ns.no-such-vm']) {
      const c = await connect(`ws://127.0.0.1:${agent.redfish.port}/ui/ws/console/${id}`, s.token);
      codes.push(await new Promise<number>((resolve) => c.ws.once('close', (n) => resolve(n))));
      expect(c.text()).to.equal('');
      expect(c.json[0]).to.include({ type: 'error' });
    }
    // ... and after it, a VM of another user and a missing one get the same answer
    expect(codes).to.deep.equal([CLOSE_NO_CONSOLE, CLOSE_NO_CONSOLE]);
    const bad = await connect(`ws://127.0.0.1:${agent.redfish.port}/ui/ws/console/ns.vm-c`, `3.${'f'.repeat(64)}`);
    expect(await new Promise<number>((resolve) => bad.ws.once('close', (n) => resolve(n)))).to.equal(CLOSE_UNAUTHORIZED);
  });
});
