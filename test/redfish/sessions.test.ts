/**
 * Redfish sessions: login, use, ownership, logout, idle expiry, SessionTimeout bounds; tokens and
 * passwords never reach the logs.
 */
import { expect } from 'chai';
import { SimulatedMachine } from '../../src/backend/simulator/simulator.js';
import { createLogger, nullLogger } from '../../src/common/logger.js';
import { MemorySessionStore } from '../../src/redfish/core/sessions.js';
import { startRedfishServer } from '../../src/redfish/server.js';
import { ADMIN, OPERATOR, READONLY, startTestAgent, type TestAgent } from '../helpers/agent.js';
import { lineSink } from '../helpers/log.js';

interface Reply {
  status: number;
  headers: Headers;
  json: Record<string, unknown>;
}

async function call(base: string, path: string, opts: { token?: string; basic?: { username: string; password: string }; method?: string; body?: unknown } = {}): Promise<Reply> {
  const headers: Record<string, string> = {};
  if (opts.token) headers['X-Auth-Token'] = opts.token;
  if (opts.basic) headers.Authorization = `Basic ${Buffer.from(`${opts.basic.username}:${opts.basic.password}`).toString('base64')}`;
  if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(`${base}${path}`, {
    method: opts.method ?? 'GET',
    headers,
    ...(opts.body !== undefined ? { body: JSON.stringify(opts.body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, json: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

async function login(base: string, user: { username: string; password: string }): Promise<{ token: string; location: string; reply: Reply }> {
  const reply = await call(base, '/redfish/v1/SessionService/Sessions', { method: 'POST', body: { UserName: user.username, Password: user.password } });
  return { token: reply.headers.get('x-auth-token') ?? '', location: reply.headers.get('location') ?? '', reply };
}

describe('Redfish sessions', () => {
  let t: TestAgent;
  beforeEach(async () => {
    t = await startTestAgent({ ipmi: false });
  });
  afterEach(async () => t?.close());

  it('login returns 201 with the Session, Location and a 32-byte X-Auth-Token that then authenticates', async () => {
    const { token, location, reply } = await login(t.redfishUrl, ADMIN);
    expect(reply.status).to.equal(201);
    expect(token).to.match(/^[0-9a-f]{64}$/);
    expect(location).to.match(/^\/redfish\/v1\/SessionService\/Sessions\/[0-9a-f]+$/);
    expect(reply.json['@odata.id']).to.equal(location);
    expect(reply.json['@odata.type']).to.match(/^#Session\.v1_\d+_\d+\.Session$/);
    expect(reply.json.UserName).to.equal('admin');
    expect(reply.json.Password).to.equal(null);
    expect(location.endsWith(`/${String(reply.json.Id)}`)).to.equal(true);

    expect((await call(t.redfishUrl, '/redfish/v1/Systems', { token })).status).to.equal(200);
    const own = await call(t.redfishUrl, location, { token });
    expect(own.status).to.equal(200);
    expect(own.json.Id).to.equal(reply.json.Id);
    const list = await call(t.redfishUrl, '/redfish/v1/SessionService/Sessions', { token });
    expect(list.json.Members).to.deep.equal([{ '@odata.id': location }]);

    const ctxLogin = await call(t.redfishUrl, '/redfish/v1/SessionService/Sessions', {
      method: 'POST',
      body: { UserName: 'viewer', Password: READONLY.password, Context: 'ironic-conductor-1' },
    });
    expect(ctxLogin.status).to.equal(201);
    expect(ctxLogin.json.Context).to.equal('ironic-conductor-1');
  });

  it('DELETE revokes the session immediately: its token then gets 401', async () => {
    const { token, location } = await login(t.redfishUrl, OPERATOR);
    expect((await call(t.redfishUrl, '/redfish/v1/Systems', { token })).status).to.equal(200);
    const del = await call(t.redfishUrl, location, { token, method: 'DELETE' });
    expect(del.status).to.equal(204);
    const after = await call(t.redfishUrl, '/redfish/v1/Systems', { token });
    expect(after.status).to.equal(401);
    expect(after.headers.get('www-authenticate')).to.match(/^Basic/);
    expect((await call(t.redfishUrl, location, { basic: ADMIN })).status).to.equal(404);
  });

  it('a wrong password gets 401 with WWW-Authenticate, no token, no session and no hint which field was wrong', async () => {
    const wrongPw = await login(t.redfishUrl, { username: 'admin', password: 'wrong' });
    const wrongUser = await login(t.redfishUrl, { username: 'ghost', password: 'password' });
    for (const r of [wrongPw, wrongUser]) {
      expect(r.reply.status).to.equal(401);
      expect(r.token).to.equal('');
      expect(r.location).to.equal('');
      expect(r.reply.headers.get('www-authenticate')).to.match(/^Basic realm=/);
    }
    expect(wrongPw.reply.json).to.deep.equal(wrongUser.reply.json);
    const list = await call(t.redfishUrl, '/redfish/v1/SessionService/Sessions', { basic: ADMIN });
    expect(list.json['Members@odata.count']).to.equal(0);
    const missing = await call(t.redfishUrl, '/redfish/v1/SessionService/Sessions', { method: 'POST', body: { UserName: 'admin' } });
    expect(missing.status).to.equal(400);
    const typed = await call(t.redfishUrl, '/redfish/v1/SessionService/Sessions', { method: 'POST', body: { UserName: 'admin', Password: 5 } });
    expect(typed.status).to.equal(400);
  });

  it('a user sees and deletes only their own sessions; an Administrator sees all', async () => {
    const admin = await login(t.redfishUrl, ADMIN);
    const viewer = await login(t.redfishUrl, READONLY);
    const vList = await call(t.redfishUrl, '/redfish/v1/SessionService/Sessions', { token: viewer.token });
    expect(vList.json.Members).to.deep.equal([{ '@odata.id': viewer.location }]);
    expect((await call(t.redfishUrl, admin.location, { token: viewer.token })).status).to.equal(403);
    expect((await call(t.redfishUrl, admin.location, { token: viewer.token, method: 'DELETE' })).status).to.equal(403);
    expect((await call(t.redfishUrl, '/redfish/v1/Systems', { token: admin.token })).status).to.equal(200);

    const aList = await call(t.redfishUrl, '/redfish/v1/SessionService/Sessions', { token: admin.token });
    expect(aList.json['Members@odata.count']).to.equal(2);
    expect((await call(t.redfishUrl, viewer.location, { token: admin.token })).json.UserName).to.equal('viewer');
    expect((await call(t.redfishUrl, viewer.location, { token: admin.token, method: 'DELETE' })).status).to.equal(204);
    expect((await call(t.redfishUrl, '/redfish/v1/Systems', { token: viewer.token })).status).to.equal(401);
  });

  it('SessionTimeout is patchable by an Administrator within 30..86400', async () => {
    for (const bad of [29, 86401]) {
      const r = await call(t.redfishUrl, '/redfish/v1/SessionService', { basic: ADMIN, method: 'PATCH', body: { SessionTimeout: bad } });
      expect(r.status).to.equal(400);
      const info = (r.json.error as Record<string, unknown>)['@Message.ExtendedInfo'] as Record<string, unknown>[];
      expect(info[0]?.MessageId).to.equal('Base.1.22.1.PropertyValueOutOfRange');
    }
    const typed = await call(t.redfishUrl, '/redfish/v1/SessionService', { basic: ADMIN, method: 'PATCH', body: { SessionTimeout: '60' } });
    expect(typed.status).to.equal(400);
    const ok = await call(t.redfishUrl, '/redfish/v1/SessionService', { basic: ADMIN, method: 'PATCH', body: { SessionTimeout: 30 } });
    expect(ok.status).to.equal(200);
    expect((await call(t.redfishUrl, '/redfish/v1/SessionService', { basic: READONLY })).json.SessionTimeout).to.equal(30);
  });
});

describe('Redfish session expiry', () => {
  it('rejects a session idle for longer than sessionTimeoutSeconds (the server on a manual clock)', async () => {
    let now = Date.parse('2026-01-01T00:00:00Z');
    const server = await startRedfishServer(
      { address: '127.0.0.1', port: 0, machine: new SimulatedMachine({ powerOnDelayMs: 0, powerOffDelayMs: 0 }), users: [ADMIN], logger: nullLogger(), sessionTimeoutSeconds: 30 },
      { now: () => new Date(now) },
    );
    try {
      const base = `http://127.0.0.1:${server.port}`;
      const { token } = await login(base, ADMIN);
      expect((await call(base, '/redfish/v1/SessionService', { token })).json.SessionTimeout).to.equal(30);
      now += 29_000; // idle, but within the timeout: still valid, and this use refreshes it
      expect((await call(base, '/redfish/v1/Systems', { token })).status, 'after 29 s idle').to.equal(200);
      now += 29_000;
      expect((await call(base, '/redfish/v1/Systems', { token })).status, '29 s after the last use').to.equal(200);
      now += 31_000; // idle longer than the timeout
      expect((await call(base, '/redfish/v1/Systems', { token })).status, '31 s after the last use').to.equal(401);
    } finally {
      await server.close();
    }
  });

  it('refreshes the idle timer on every use (store with an injected clock)', () => {
    let now = 0;
    const store = new MemorySessionStore(60, () => new Date(now));
    const { session, token } = store.create(ADMIN);
    for (let i = 0; i < 5; i++) {
      now += 50_000; // within the timeout each time
      expect(store.authenticate(token)?.id).to.equal(session.id);
    }
    now += 60_000;
    expect(store.authenticate(token)).to.equal(undefined);
    expect(store.get(session.id)).to.equal(undefined);
    expect(store.list()).to.deep.equal([]);
    expect(store.authenticate('0'.repeat(64))).to.equal(undefined);
  });

  it('bounds sessions: per user the least recently used goes, in total the service refuses', () => {
    let now = 0;
    const store = new MemorySessionStore(600, () => new Date(now), 5, 3);
    const first = store.create(ADMIN);
    now += 1;
    const second = store.create(ADMIN);
    now += 1;
    store.authenticate(first.token); // first is now more recently used than second
    now += 1;
    store.create(ADMIN);
    now += 1;
    store.create(ADMIN); // 4th for admin: drops its least recently used (second)
    expect(store.authenticate(second.token)).to.equal(undefined);
    expect(store.authenticate(first.token)?.id).to.equal(first.session.id);
    expect(store.list().filter((x) => x.username === 'admin')).to.have.length(3);
    store.create(READONLY);
    store.create(READONLY);
    let err: unknown;
    try {
      store.create(OPERATOR);
    } catch (e) {
      err = e;
    }
    expect(String((err as { messageId?: string }).messageId)).to.equal('Base.1.22.1.SessionLimitExceeded');
    expect((err as { status?: number }).status).to.equal(503);
  });

  it('never logs passwords or tokens', async () => {
    const lines: string[] = [];
    const sink = lineSink(lines);
    const machine = new SimulatedMachine();
    const server = await startRedfishServer({
      address: '127.0.0.1',
      port: 0,
      machine,
      users: [ADMIN, READONLY],
      logger: createLogger('trace', sink),
    });
    try {
      const base = `http://127.0.0.1:${server.port}`;
      const { token, location } = await login(base, ADMIN);
      await login(base, { username: 'viewer', password: 'not-the-password' });
      await call(base, '/redfish/v1/Systems', { token });
      await call(base, '/redfish/v1/Systems', { basic: READONLY });
      const insert = await fetch(`${base}/redfish/v1/Managers/BMC/VirtualMedia/Cd/Actions/VirtualMedia.InsertMedia`, {
        method: 'POST',
        headers: { 'X-Auth-Token': token, 'Content-Type': 'application/json' },
        body: JSON.stringify({ Image: 'http://u:media-secret@h.example/x.iso' }),
      });
      expect(insert.status).to.equal(400);
      const signed = await fetch(`${base}/redfish/v1/Managers/BMC/VirtualMedia/Cd/Actions/VirtualMedia.InsertMedia`, {
        method: 'POST',
        headers: { 'X-Auth-Token': token, 'Content-Type': 'application/json' },
        body: JSON.stringify({ Image: 'http://h.example/x.iso?X-Amz-Signature=presigned-token' }),
      });
      expect(signed.status).to.equal(202); // runs as a task; wait for it to end (nothing serves h.example)
      for (let i = 0; i < 1000; i++) {
        const m = await fetch(base + (signed.headers.get('location') as string), { headers: { 'X-Auth-Token': token } });
        await m.arrayBuffer();
        if (m.status !== 202) break;
        await new Promise((r) => setTimeout(r, 10));
      }
      await call(base, location, { token, method: 'DELETE' });
      const all = lines.join('');
      expect(all).to.contain('redfish session created');
      expect(all).to.contain('redfish login failed');
      expect(all).to.contain('virtual media insert');
      expect(all).to.contain('virtual media insert failed');
      for (const secret of [token, ADMIN.password, READONLY.password, 'not-the-password', 'media-secret', 'presigned-token']) expect(all).to.not.contain(secret);
    } finally {
      await server.close();
      await machine.close();
    }
  });
});
