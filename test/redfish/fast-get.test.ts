/**
 * The GET/HEAD fast path (src/redfish/fast-get.ts) answers byte for byte what the koa path does:
 * status, every header in order (Date aside) and body, for each resource it serves, each role,
 * Basic and X-Auth-Token, If-None-Match, HEAD, and the requests it must hand to koa (wrong or no
 * credentials, lockout, PasswordChangeRequired, query strings, a backend outage). After each state
 * change (power, boot override, media, asset tag, health, serial console) both are also compared
 * with a reference app on fresh deps (no Systems/1 answer cached), so a stale cache cannot pass.
 */
import { indicatorOf } from '../../src/backend/indicator.js';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import sinon from 'sinon';
import { AccountStore } from '../../src/accounts/store.js';
import { SimulatedMachine } from '../../src/backend/simulator/simulator.js';
import { nullLogger } from '../../src/common/logger.js';
import { attachMetrics } from '../../src/common/metrics.js';
import { createRedfishApp, redfishCallback } from '../../src/redfish/app.js';
import type { RedfishDeps } from '../../src/redfish/core/types.js';
import type { FastGetStats } from '../../src/redfish/fast-get.js';
import { modules } from '../../src/redfish/resources/index.js';
import { Tenancy, TenantSessionStore } from '../../src/redfish/core/tenancy.js';
import { MemorySessionStore } from '../../src/redfish/core/sessions.js';
import { DEFAULT_LOCKOUT_POLICY, LoginLockout } from '../../src/accounts/lockout.js';
import { REDFISH_IDS } from '../../src/redfish/core/types.js';
import { createRedfishDeps } from '../../src/redfish/server.js';
import { ADMIN, OPERATOR, READONLY, redfishClient } from '../helpers/agent.js';
import { LOOPBACK_MEDIA, startImageServer } from '../helpers/images.js';

interface Answer {
  status: number;
  headers: string[];
  body: string;
}

const basic = (u: { username: string; password: string }): string => `Basic ${Buffer.from(`${u.username}:${u.password}`).toString('base64')}`;

function listen(listener: http.RequestListener): Promise<{ server: http.Server; port: number }> {
  const server = http.createServer(listener);
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as AddressInfo).port })));
}

/** One request; the raw header list in order without Date (and Connection/Keep-Alive, node's own). */
function request(port: number, method: string, path: string, headers: Record<string, string>): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const raw = res.rawHeaders;
        const out: string[] = [];
        for (let i = 0; i < raw.length; i += 2) {
          const name = raw[i] as string;
          if (['date', 'connection', 'keep-alive'].includes(name.toLowerCase())) continue;
          out.push(`${name}: ${raw[i + 1] as string}`);
        }
        resolve({ status: res.statusCode ?? 0, headers: out, body: Buffer.concat(chunks).toString('utf8') });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

const PATHS = ['/redfish/v1', '/redfish/v1/Systems', '/redfish/v1/Systems/1', '/redfish/v1/Managers', '/redfish/v1/Managers/BMC', '/redfish/v1/Chassis', '/redfish/v1/Chassis/1'];

describe('Redfish GET fast path', () => {
  let machine: SimulatedMachine;
  let accounts: AccountStore;
  let deps: RedfishDeps;
  let sol = false;
  let stats: FastGetStats;
  let fast: { server: http.Server; port: number };
  let koa: { server: http.Server; port: number };
  let observe: sinon.SinonSpy;
  const servers: http.Server[] = [];
  const fixed = new Date('2026-01-02T03:04:05Z');
  let token: string;

  beforeEach(async () => {
    machine = new SimulatedMachine({ powerOnDelayMs: 0, powerOffDelayMs: 0, mediaInsertDelayMs: 0, mediaProbe: { egress: LOOPBACK_MEDIA } });
    accounts = new AccountStore([ADMIN, OPERATOR, READONLY, { username: 'fresh', password: 'fresh-pw-1', role: 'Operator' }], { requireAdmin: false });
    observe = sinon.spy();
    attachMetrics(machine, { observe, setSessionCounter: () => undefined });
    sol = false;
    deps = await createRedfishDeps(
      { machine, accounts, users: accounts.users, logger: nullLogger(), address: '127.0.0.1', port: 0, ipmiPort: 6230, serialConsole: () => sol },
      { now: () => fixed },
    );
    const app = createRedfishApp(deps, modules);
    stats = { served: 0, passed: 0, again: 0 };
    fast = await listen(redfishCallback(app, { stats }));
    koa = await listen(redfishCallback(app, { fast: false }));
    servers.push(fast.server, koa.server);
    token = deps.sessions.create(OPERATOR).token;
  });

  afterEach(async () => {
    for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
  });

  /** A reference answer: a new app on a copy of the deps (its own, empty Systems/1 cache), koa only. */
  async function reference(method: string, path: string, headers: Record<string, string>): Promise<Answer> {
    const ref = await listen(redfishCallback(createRedfishApp({ ...deps }, modules), { fast: false }));
    servers.push(ref.server);
    return request(ref.port, method, path, headers);
  }

  /** The same request to koa and to the fast path: equal answers; returns the fast one. */
  async function same(method: string, path: string, headers: Record<string, string>): Promise<Answer> {
    const k = await request(koa.port, method, path, headers);
    const f = await request(fast.port, method, path, headers);
    expect(f, `${method} ${path} ${JSON.stringify(headers)}`).to.deep.equal(k);
    return f;
  }

  it('answers every fast resource as koa does, for each role and both kinds of authentication, GET and HEAD', async () => {
    const auths: Record<string, string>[] = [
      { Authorization: basic(ADMIN) },
      { Authorization: basic(OPERATOR) },
      { Authorization: basic(READONLY) },
      { 'X-Auth-Token': token },
      { 'X-Auth-Token': token, 'OData-Version': '4.0' },
    ];
    for (const path of PATHS) {
      for (const auth of auths) {
        for (const method of ['GET', 'HEAD']) {
          const before = stats.served;
          const a = await same(method, path, auth);
          expect(a.status).to.equal(200);
          if (method === 'HEAD') expect(a.body).to.equal('');
          else expect(JSON.parse(a.body)['@odata.id']).to.equal(path);
          expect(a.headers.some((h) => h.startsWith('ETag: W/"'))).to.equal(true);
          // Basic was remembered by the koa request just before: every one is served fast
          expect(stats.served - before, `${method} ${path}`).to.equal(1);
        }
      }
    }
    // the service root needs no authentication
    const before = stats.served;
    expect((await same('GET', '/redfish/v1', {})).status).to.equal(200);
    expect(stats.served).to.equal(before + 1);
  });

  it('If-None-Match: 304 for the current ETag or *, 200 for another, in both paths', async () => {
    const auth = { Authorization: basic(ADMIN) };
    for (const path of PATHS) {
      const first = await same('GET', path, auth);
      const etag = (first.headers.find((h) => h.startsWith('ETag: ')) as string).slice('ETag: '.length);
      for (const inm of [etag, `W/"0000000000000000", ${etag}`, '*']) {
        for (const method of ['GET', 'HEAD']) {
          const a = await same(method, path, { ...auth, 'If-None-Match': inm });
          expect(a.status).to.equal(304);
          expect(a.body).to.equal('');
        }
      }
      expect((await same('GET', path, { ...auth, 'If-None-Match': 'W/"0000000000000000"' })).status).to.equal(200);
    }
  });

  it('hands to koa what it does not serve, with the same answers', async () => {
    await same('GET', '/redfish/v1/Systems/1', { Authorization: basic(ADMIN) });
    const cases: [string, string, Record<string, string>, number][] = [
      ['GET', '/redfish/v1/Systems/1', { Authorization: basic({ username: 'admin', password: 'wrong' }) }, 401],
      ['GET', '/redfish/v1/Systems/1', {}, 401],
      ['GET', '/redfish/v1/Systems/1', { 'X-Auth-Token': 'no-such-token' }, 401],
      ['GET', '/redfish/v1/Systems/1', { Authorization: 'Bearer x' }, 401],
      ['GET', '/redfish/v1/Systems/1', { Authorization: basic(ADMIN), 'OData-Version': '4.01' }, 412],
      ['GET', '/redfish/v1/Systems/1?$expand=.', { Authorization: basic(ADMIN) }, 501],
      ['GET', '/redfish/v1/Systems?only', { Authorization: basic(ADMIN) }, 200],
      ['GET', '/redfish/v1/Systems/1/', { Authorization: basic(ADMIN) }, 200],
      ['GET', '/redfish/v1/Systems/2', { Authorization: basic(ADMIN) }, 404],
      ['DELETE', '/redfish/v1/Systems/1', { Authorization: basic(ADMIN) }, 405],
    ];
    for (const [method, path, headers, status] of cases) {
      const before = stats.served;
      expect((await same(method, path, headers)).status, `${method} ${path}`).to.equal(status);
      expect(stats.served, `${method} ${path}`).to.equal(before);
    }
    // the first Basic request of an account is checked by koa (then remembered), the next is fast
    const fresh = { Authorization: basic({ username: 'fresh', password: 'fresh-pw-1' }) };
    const before = stats.served;
    await request(fast.port, 'GET', '/redfish/v1/Chassis/1', fresh);
    expect(stats.served).to.equal(before);
    await same('GET', '/redfish/v1/Chassis/1', fresh);
    expect(stats.served).to.equal(before + 1);
  });

  it('lockout and PasswordChangeRequired answer as koa does (429, 403), never fast', async () => {
    const good = { Authorization: basic(OPERATOR) };
    await same('GET', '/redfish/v1/Systems/1', good);
    for (let i = 0; i < 5; i++) await request(koa.port, 'GET', '/redfish/v1/Systems/1', { Authorization: basic({ username: 'operator', password: 'bad' }) });
    const before = stats.served;
    const locked = await same('GET', '/redfish/v1/Systems/1', good);
    expect(locked.status).to.equal(429);
    expect(stats.served).to.equal(before);

    const viewer = { Authorization: basic(READONLY) };
    await same('GET', '/redfish/v1/Chassis/1', viewer);
    const served = stats.served;
    await accounts.update(accounts.idForName('viewer'), { passwordChangeRequired: true });
    expect((await same('GET', '/redfish/v1/Chassis/1', viewer)).status).to.equal(403);
    expect((await same('GET', '/redfish/v1/Chassis/1', { 'X-Auth-Token': deps.sessions.create(READONLY).token })).status).to.equal(403);
    expect(stats.served).to.equal(served);
  });

  it('follows every state change the bodies show (against a reference without any cache)', async () => {
    const auth = { Authorization: basic(ADMIN) };
    const check = async (label: string): Promise<Record<string, unknown>> => {
      let system: Record<string, unknown> = {};
      for (const path of ['/redfish/v1/Systems/1', '/redfish/v1/Chassis/1', '/redfish/v1/Managers/BMC']) {
        const a = await same('GET', path, auth);
        expect(a, `${label}: ${path}`).to.deep.equal(await reference('GET', path, auth));
        if (path.endsWith('Systems/1')) system = JSON.parse(a.body) as Record<string, unknown>;
      }
      return system;
    };
    await machine.power('on');
    expect((await check('on')).PowerState).to.equal('On');
    await machine.power('forceOff');
    expect((await check('off')).PowerState).to.equal('Off');
    await machine.setBootOverride({ target: 'pxe', enabled: 'once' });
    const boot = (await check('boot')).Boot as Record<string, unknown>;
    expect([boot.BootSourceOverrideTarget, boot.BootSourceOverrideEnabled]).to.deep.equal(['Pxe', 'Once']);
    const img = await startImageServer({ '/x.iso': 4096 });
    try {
      await machine.insertMedia('Cd', { image: img.url('/x.iso') });
      await check('media');
    } finally {
      await img.close();
    }
    await machine.setAssetTag('rack-7');
    expect((await check('asset tag')).AssetTag).to.equal('rack-7');
    // the identify indicator is the agent's, not a snapshot change: the prepared answer must follow it
    indicatorOf(machine).setLed('Lit');
    expect((await check('indicator lit')).IndicatorLED).to.equal('Lit');
    indicatorOf(machine).setLed('Off');
    expect((await check('indicator off')).LocationIndicatorActive).to.equal(false);
    sol = true;
    expect(((await check('sol')).SerialConsole as { IPMI: { ServiceEnabled: boolean } }).IPMI.ServiceEnabled).to.equal(true);
    machine.setStale('API hangs');
    expect(((await check('stale')).Status as { Health: string }).Health).to.equal('Critical');
    machine.setStale(undefined);
    expect(((await check('recovered')).Status as { Health: string }).Health).to.equal('OK');
    await machine.power('on');
    expect((await check('on again')).PowerState).to.equal('On');
  });

  it('between two changes the kept Systems/1 answer is sent without a snapshot; a change, a stale view and an outage are seen at once', async () => {
    const auth = { Authorization: basic(ADMIN) };
    const snap = sinon.spy(machine, 'snapshot');
    try {
      const first = await request(fast.port, 'GET', '/redfish/v1/Systems/1', auth);
      snap.resetHistory();
      const again = await request(fast.port, 'GET', '/redfish/v1/Systems/1', auth);
      expect([again.status, again.body]).to.deep.equal([first.status, first.body]);
      expect(snap.callCount).to.equal(0);
      const power = (JSON.parse(first.body) as { PowerState: string }).PowerState;
      await machine.power(power === 'On' ? 'forceOff' : 'on');
      const changed = JSON.parse((await request(fast.port, 'GET', '/redfish/v1/Systems/1', auth)).body) as { PowerState: string };
      expect(changed.PowerState).to.equal(power === 'On' ? 'Off' : 'On');
      expect(snap.callCount).to.equal(1);
      machine.setStale('API hangs');
      const stale = JSON.parse((await request(fast.port, 'GET', '/redfish/v1/Systems/1', auth)).body) as { Status: { Health: string } };
      expect(stale.Status.Health).to.equal('Critical');
      machine.setStale(undefined);
      machine.setAvailable(false);
      expect((await request(fast.port, 'GET', '/redfish/v1/Systems/1', auth)).status).to.be.oneOf([500, 503]);
      machine.setAvailable(true);
      expect((await request(fast.port, 'GET', '/redfish/v1/Systems/1', auth)).status).to.equal(200);
      snap.resetHistory();
      expect((await request(fast.port, 'GET', '/redfish/v1/Systems/1', auth)).status).to.equal(200);
      expect(snap.callCount).to.equal(0);
    } finally {
      snap.restore();
    }
  });

  it('a kept answer is sent again byte for byte while nothing changes, for its role only; a change of the body or of the role is seen at once', async () => {
    const admin = { Authorization: basic(ADMIN) };
    const ro = { Authorization: basic(READONLY) };
    const path = '/redfish/v1/Systems/1';
    const first = await same('GET', path, admin);
    let again = stats.again;
    for (const method of ['GET', 'GET', 'HEAD']) {
      expect(await same(method, path, admin)).to.deep.equal(method === 'GET' ? first : { ...first, body: '' });
      expect(stats.again, method).to.equal(++again);
    }
    expect(first).to.deep.equal(await reference('GET', path, admin));
    // another role: its own Allow, never the administrator's answer
    const allow = (a: Answer): string | undefined => a.headers.find((h) => h.startsWith('Allow: '));
    const readOnly = await same('GET', path, ro);
    expect(allow(readOnly)).to.not.equal(allow(first));
    expect(stats.again).to.equal(again);
    expect(await same('GET', path, ro)).to.deep.equal(readOnly);
    expect(stats.again).to.equal(++again);
    // an account's role changes: its next answer is the new role's
    const op = { Authorization: basic(OPERATOR) };
    const asOperator = await same('GET', path, op);
    expect(await same('GET', path, op)).to.deep.equal(asOperator);
    expect(allow(asOperator)).to.not.equal(allow(readOnly));
    const id = accounts.idForName(OPERATOR.username);
    await accounts.update(id, { role: 'ReadOnly' });
    expect(allow(await same('GET', path, op))).to.equal(allow(readOnly));
    await accounts.update(id, { role: 'Operator' });
    expect(allow(await same('GET', path, op))).to.equal(allow(asOperator));
    // a change of the body: a new answer, equal to the reference's
    await machine.power(JSON.parse(first.body).PowerState === 'On' ? 'forceOff' : 'on');
    again = stats.again;
    const changed = await same('GET', path, admin);
    expect(changed.body).to.not.equal(first.body);
    expect(stats.again).to.equal(again);
    expect(changed).to.deep.equal(await reference('GET', path, admin));
  });

  it('a backend outage reaches koa (its error answer), metrics count each answer once', async () => {
    const auth = { Authorization: basic(ADMIN) };
    await same('GET', '/redfish/v1/Systems/1', auth);
    observe.resetHistory();
    const a = await request(fast.port, 'GET', '/redfish/v1/Systems/1', auth);
    expect(a.status).to.equal(200);
    expect(observe.callCount).to.equal(1);
    expect(observe.firstCall.args.slice(0, 3)).to.deep.equal(['redfish', 'getSystem', '200']);
    machine.setAvailable(false);
    observe.resetHistory();
    const before = stats.passed;
    const down = await same('GET', '/redfish/v1/Systems/1', auth);
    expect(down.status).to.be.oneOf([500, 503]);
    expect(stats.passed).to.equal(before + 1);
    expect(observe.callCount).to.equal(2);
    expect(observe.secondCall.args.slice(0, 3)).to.deep.equal(['redfish', 'getSystem', String(down.status)]);
  });
});

describe('Redfish GET fast path, shared mode (tenancy)', () => {
  const fixed = new Date('2026-01-02T03:04:05Z');
  const servers: http.Server[] = [];
  let machines: Map<string, SimulatedMachine>;
  let stats: FastGetStats;
  let fast: number;
  let koa: number;
  let tenancy: Tenancy;

  beforeEach(async () => {
    const now = (): Date => fixed;
    const lockout = new LoginLockout(DEFAULT_LOCKOUT_POLICY, () => fixed.getTime());
    const root: RedfishDeps = {
      machine: {} as never,
      users: [],
      accounts: new AccountStore([], { requireAdmin: false }),
      sessions: new MemorySessionStore(1800, now),
      lockout,
      logger: nullLogger(),
      startedAt: fixed,
      serviceUuid: '00000000-0000-4000-8000-000000000000',
      ids: REDFISH_IDS,
      now,
      tls: false,
    };
    tenancy = new Tenancy(root);
    machines = new Map();
    for (const id of ['ns.a', 'ns.b']) {
      const machine = new SimulatedMachine({ name: id, powerOnDelayMs: 0, powerOffDelayMs: 0 });
      machines.set(id, machine);
      const accounts = new AccountStore([{ username: 'admin', password: `pw-${id}`, role: 'Administrator' }, { username: 'viewer', password: 'shared-pw', role: 'ReadOnly' }], { requireAdmin: false });
      const deps = await createRedfishDeps({ machine, accounts, users: accounts.users, logger: nullLogger(), address: '127.0.0.1', port: 0, lockout }, { now });
      deps.sessions = new TenantSessionStore(deps.sessions, tenancy.allocateSeq());
      tenancy.add({ id, deps });
    }
    const app = createRedfishApp(root, modules, tenancy);
    stats = { served: 0, passed: 0, again: 0 };
    const f = await listen(redfishCallback(app, { stats }));
    const k = await listen(redfishCallback(app, { fast: false }));
    servers.push(f.server, k.server);
    fast = f.port;
    koa = k.port;
  });

  afterEach(async () => {
    for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
  });

  async function same(method: string, path: string, headers: Record<string, string>): Promise<Answer> {
    const k = await request(koa, method, path, headers);
    const f = await request(fast, method, path, headers);
    expect(f, `${method} ${path} ${JSON.stringify(headers)}`).to.deep.equal(k);
    return f;
  }

  it("answers each tenant's resources and collections as koa does, under the tenant's ids, and follows state changes", async () => {
    const a = { Authorization: basic({ username: 'admin', password: 'pw-ns.a' }) };
    const both = { Authorization: basic({ username: 'viewer', password: 'shared-pw' }) };
    const paths = (id: string): string[] => ['/redfish/v1/Systems', `/redfish/v1/Systems/${id}`, '/redfish/v1/Managers', `/redfish/v1/Managers/${id}`, '/redfish/v1/Chassis', `/redfish/v1/Chassis/${id}`];
    for (const [auth, ids] of [[a, ['ns.a']], [both, ['ns.a', 'ns.b']]] as const) {
      for (const id of ids) {
        for (const path of paths(id)) {
          for (const method of ['GET', 'HEAD']) {
            const before = stats.served;
            const got = await same(method, path, auth);
            expect(got.status, path).to.equal(200);
            expect(stats.served - before, path).to.equal(1);
            if (method === 'GET' && !path.endsWith('s')) expect(JSON.parse(got.body).Id).to.equal(id);
          }
        }
      }
      expect(JSON.parse((await same('GET', '/redfish/v1/Systems', auth)).body)['Members@odata.count']).to.equal(ids.length);
    }
    const etag = ((await same('GET', '/redfish/v1/Systems/ns.a', a)).headers.find((h) => h.startsWith('ETag: ')) as string).slice(6);
    expect((await same('GET', '/redfish/v1/Systems/ns.a', { ...a, 'If-None-Match': etag })).status).to.equal(304);
    await machines.get('ns.a')!.setBootOverride({ target: 'pxe', enabled: 'once' });
    const after = JSON.parse((await same('GET', '/redfish/v1/Systems/ns.a', a)).body) as { Boot: { BootSourceOverrideTarget: string } };
    expect(after.Boot.BootSourceOverrideTarget).to.equal('Pxe');
    expect((await same('GET', '/redfish/v1/Systems/ns.a', { ...a, 'If-None-Match': etag })).status).to.equal(200);
    expect(JSON.parse((await same('GET', '/redfish/v1/Systems/ns.b', both)).body).Boot.BootSourceOverrideTarget).to.equal('None');
    // one tenant's identify indicator is its own
    indicatorOf(machines.get('ns.b')!).identify(Infinity);
    expect(JSON.parse((await same('GET', '/redfish/v1/Systems/ns.b', both)).body).IndicatorLED).to.equal('Blinking');
    expect(JSON.parse((await same('GET', '/redfish/v1/Systems/ns.a', a)).body).IndicatorLED).to.equal('Off');
    // handed to koa: another tenant's system (404), wrong credentials (401), the service root
    const before = stats.served;
    expect((await same('GET', '/redfish/v1/Systems/ns.b', a)).status).to.equal(404);
    expect((await same('GET', '/redfish/v1/Systems/ns.a', { Authorization: basic({ username: 'admin', password: 'no' }) })).status).to.equal(401);
    expect((await same('GET', '/redfish/v1/Systems/1', a)).status).to.equal(404);
    expect((await same('GET', '/redfish/v1', {})).status).to.equal(200);
    expect(stats.served).to.equal(before);
  });

  it('what a caller was resolved to is kept only while nothing changed: a password change, a removed system and a role change are seen at once', async () => {
    const a = { Authorization: basic({ username: 'admin', password: 'pw-ns.a' }) };
    const both = { Authorization: basic({ username: 'viewer', password: 'shared-pw' }) };
    const created = await redfishClient(`http://127.0.0.1:${koa}`)('POST', '/redfish/v1/SessionService/Sessions', { UserName: 'viewer', Password: 'shared-pw' }, null);
    expect(created.status).to.equal(201);
    const token = { 'X-Auth-Token': String(created.headers.get('x-auth-token')) };
    for (const auth of [a, both, token]) {
      const first = await same('GET', '/redfish/v1/Systems/ns.a', auth);
      expect(first.status).to.equal(200);
      const again = stats.again;
      expect(await same('GET', '/redfish/v1/Systems/ns.a', auth)).to.deep.equal(first);
      expect(stats.again).to.equal(again + 1);
    }
    // the session and the shared viewer see ns.b until it leaves
    expect((await same('GET', '/redfish/v1/Systems/ns.b', token)).status).to.equal(200);
    expect((await same('GET', '/redfish/v1/Systems/ns.b', both)).status).to.equal(200);
    const b = tenancy.get('ns.b')!;
    const store = tenancy.get('ns.a')!.deps.sessions as TenantSessionStore;
    const resolvedTo = (): Array<string | undefined> => store.list().map((x) => store.scopeEntry(x.id)?.resolved?.home.id);
    expect(resolvedTo()).to.deep.equal(['ns.b']); // the session's last request was ns.b's system
    tenancy.remove('ns.b');
    // nothing keeps the leaving tenant's deps alive
    expect(resolvedTo()).to.deep.equal([undefined]);
    expect((await same('GET', '/redfish/v1/Systems/ns.b', token)).status).to.equal(404);
    expect((await same('GET', '/redfish/v1/Systems/ns.b', both)).status).to.equal(404);
    expect((await same('GET', '/redfish/v1/Systems/ns.a', token)).status).to.equal(200);
    tenancy.add(b);
    expect((await same('GET', '/redfish/v1/Systems/ns.b', both)).status).to.equal(200);
    // ns.a's admin password changes: the old one is refused at once, the new one served
    const accounts = tenancy.get('ns.a')!.deps.accounts!;
    await accounts.update(accounts.idForName('admin'), { password: 'pw-ns.a-2' });
    expect((await same('GET', '/redfish/v1/Systems/ns.a', a)).status).to.equal(401);
    expect((await same('GET', '/redfish/v1/Systems/ns.a', { Authorization: basic({ username: 'admin', password: 'pw-ns.a-2' }) })).status).to.equal(200);
    // the viewer becomes an Operator of ns.a: its session's next answer carries the new role's Allow
    const allow = (x: Answer): string | undefined => x.headers.find((h) => h.startsWith('Allow: '));
    const before = allow(await same('GET', '/redfish/v1/Systems/ns.a', token));
    await accounts.update(accounts.idForName('viewer'), { role: 'Operator' });
    const after = allow(await same('GET', '/redfish/v1/Systems/ns.a', token));
    expect(after).to.not.equal(before);
    // the viewer's account in ns.a is disabled: its session there ends, Basic is refused, ns.b still serves it
    await accounts.update(accounts.idForName('viewer'), { enabled: false });
    expect((await same('GET', '/redfish/v1/Systems/ns.a', token)).status).to.equal(401);
    expect((await same('GET', '/redfish/v1/Systems/ns.a', both)).status).to.equal(404);
    expect((await same('GET', '/redfish/v1/Systems/ns.b', both)).status).to.equal(200);
  });
});
