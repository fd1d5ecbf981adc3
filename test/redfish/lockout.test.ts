/**
 * Redfish side of the shared login lockout (src/accounts/lockout.ts): per account and source,
 * the AccountService knobs (served, PATCHable by Administrators, validated), and one lockout for
 * both protocols in the agent. Other sources come from other loopback addresses (127.0.0.2…);
 * time comes from an injected clock.
 */
import { expect } from 'chai';
import http from 'node:http';
import type { ProtocolServer, UserAccount } from '../../src/accounts/types.js';
import { startAgent } from '../../src/agent/agent.js';
import { SimulatedMachine } from '../../src/backend/simulator/simulator.js';
import { nullLogger } from '../../src/common/logger.js';
import { startRedfishServer } from '../../src/redfish/server.js';
import { ADMIN, OPERATOR, READONLY } from '../helpers/agent.js';
import { RmcpPlusConsole } from '../ipmi/session-client.js';

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  json: Record<string, unknown>;
}

/** One request from a chosen loopback source address. */
function request(
  port: number,
  path: string,
  o: { from?: string; user?: { username: string; password: string }; method?: string; body?: unknown; headers?: Record<string, string> } = {},
): Promise<Reply> {
  const payload = o.body === undefined ? undefined : JSON.stringify(o.body);
  const headers: Record<string, string> = { ...o.headers };
  if (o.user) headers.Authorization = `Basic ${Buffer.from(`${o.user.username}:${o.user.password}`).toString('base64')}`;
  if (payload !== undefined) headers['Content-Type'] = 'application/json';
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, path, method: o.method ?? 'GET', headers, localAddress: o.from ?? '127.0.0.1', agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode ?? 0, headers: res.headers, json: text ? (JSON.parse(text) as Record<string, unknown>) : {} });
        });
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

const login = (port: number, from: string, user: { username: string; password: string }) =>
  request(port, '/redfish/v1/SessionService/Sessions', { from, method: 'POST', body: { UserName: user.username, Password: user.password } });
const messageId = (r: Reply): string =>
  String(((r.json.error as Record<string, unknown>)['@Message.ExtendedInfo'] as Record<string, unknown>[])[0]?.MessageId);

const USERS: UserAccount[] = [ADMIN, OPERATOR, READONLY];

describe('Redfish login lockout (per account and source, AccountService knobs)', () => {
  let server: ProtocolServer;
  const clock = { t: Date.parse('2026-01-01T00:00:00Z') };
  beforeEach(async () => {
    server = await startRedfishServer(
      { address: '127.0.0.1', port: 0, machine: new SimulatedMachine(), users: USERS, logger: nullLogger(), lockoutPolicy: { threshold: 3, durationSeconds: 120, counterResetAfterSeconds: 60 } },
      { now: () => new Date(clock.t) },
    );
  });
  afterEach(() => server.close());

  it('the owner logs in from a clean source during a brute force from another; the attacker source stays locked', async () => {
    for (let i = 0; i < 10; i++) {
      const r = await login(server.port, '127.0.0.2', { username: 'admin', password: `guess${i}` });
      expect(r.status).to.equal(i < 3 ? 401 : 429);
      const owner = await login(server.port, '127.0.0.1', ADMIN);
      expect(owner.status, `owner during attempt ${i}`).to.equal(201);
    }
    const attackerRight = await login(server.port, '127.0.0.2', ADMIN);
    expect(attackerRight.status).to.equal(429);
    expect(Number(attackerRight.headers['retry-after'])).to.equal(120);
    expect(messageId(attackerRight)).to.match(/ServiceTemporarilyUnavailable$/);
    // Basic auth is the same mechanism.
    expect((await request(server.port, '/redfish/v1/Systems', { from: '127.0.0.2', user: ADMIN })).status).to.equal(429);
    expect((await request(server.port, '/redfish/v1/Systems', { from: '127.0.0.3', user: ADMIN })).status).to.equal(200);
  });

  it('SNAT (attacker and owner share one address): the owner is held back at most AccountLockoutDuration', async () => {
    for (let i = 0; i < 3; i++) await login(server.port, '127.0.0.4', { username: 'admin', password: `guess${i}` });
    expect((await login(server.port, '127.0.0.4', ADMIN)).status).to.equal(429);
    clock.t += 60_000;
    // Attempts during the lock neither count nor extend it.
    for (let i = 0; i < 5; i++) expect((await login(server.port, '127.0.0.4', { username: 'admin', password: 'more' })).status).to.equal(429);
    const wait = await login(server.port, '127.0.0.4', ADMIN);
    expect(Number(wait.headers['retry-after'])).to.equal(60);
    clock.t += 60_000;
    expect((await login(server.port, '127.0.0.4', ADMIN)).status).to.equal(201);
  });

  it('failures further apart than AccountLockoutCounterResetAfter do not add up', async () => {
    for (let i = 0; i < 6; i++) {
      expect((await login(server.port, '127.0.0.5', { username: 'admin', password: `slow${i}` })).status).to.equal(401);
      clock.t += 61_000;
    }
    expect((await login(server.port, '127.0.0.5', ADMIN)).status).to.equal(201);
  });

  it('spraying unknown user names locks the source (never the accounts elsewhere)', async () => {
    for (let i = 0; i < 12; i++) expect((await login(server.port, '127.0.0.6', { username: `u${i}`, password: 'x' })).status).to.equal(401);
    expect((await login(server.port, '127.0.0.6', READONLY)).status).to.equal(429);
    expect((await login(server.port, '127.0.0.7', READONLY)).status).to.equal(201);
  });

  it('AccountService serves the knobs; an Administrator PATCHes them (validated); Operator and ReadOnly may not', async () => {
    const get = await request(server.port, '/redfish/v1/AccountService', { user: READONLY });
    expect(get.status).to.equal(200);
    expect([get.json.AccountLockoutThreshold, get.json.AccountLockoutDuration, get.json.AccountLockoutCounterResetAfter]).to.deep.equal([3, 120, 60]);
    const patch = (user: UserAccount, body: unknown) => request(server.port, '/redfish/v1/AccountService', { user, method: 'PATCH', body });
    expect((await patch(OPERATOR, { AccountLockoutThreshold: 9 })).status).to.equal(403);
    expect((await patch(READONLY, { AccountLockoutThreshold: 9 })).status).to.equal(403);
    const range = await patch(ADMIN, { AccountLockoutThreshold: -1, AccountLockoutDuration: 0 });
    expect(range.status).to.equal(400);
    expect(messageId(range)).to.match(/PropertyValueOutOfRange$/);
    const type = await patch(ADMIN, { AccountLockoutDuration: '30' });
    expect(messageId(type)).to.match(/PropertyValueTypeError$/);
    const conflict = await patch(ADMIN, { AccountLockoutCounterResetAfter: 500 });
    expect(conflict.status).to.equal(400);
    expect(messageId(conflict)).to.match(/PropertyValueConflict$/);
    const unknown = await patch(ADMIN, { AccountLockoutWhatever: 1 });
    expect(messageId(unknown)).to.match(/PropertyUnknown$/);
    // Nothing of the refused PATCHes was applied.
    const same = await request(server.port, '/redfish/v1/AccountService', { user: ADMIN });
    expect([same.json.AccountLockoutThreshold, same.json.AccountLockoutDuration, same.json.AccountLockoutCounterResetAfter]).to.deep.equal([3, 120, 60]);
    const ok = await patch(ADMIN, { AccountLockoutThreshold: 1, AccountLockoutDuration: 10, AccountLockoutCounterResetAfter: 10 });
    expect(ok.status).to.equal(200);
    expect([ok.json.AccountLockoutThreshold, ok.json.AccountLockoutDuration, ok.json.AccountLockoutCounterResetAfter]).to.deep.equal([1, 10, 10]);
    // In force at once: one failure now locks the pair, for 10 s.
    expect((await login(server.port, '127.0.0.8', { username: 'operator', password: 'nope' })).status).to.equal(401);
    const locked = await login(server.port, '127.0.0.8', OPERATOR);
    expect(locked.status).to.equal(429);
    expect(Number(locked.headers['retry-after'])).to.equal(10);
    // Threshold 0: no lockout at all.
    expect((await patch(ADMIN, { AccountLockoutThreshold: 0 })).status).to.equal(200);
    for (let i = 0; i < 10; i++) expect((await login(server.port, '127.0.0.9', { username: 'viewer', password: `x${i}` })).status).to.equal(401);
    expect((await login(server.port, '127.0.0.9', READONLY)).status).to.equal(201);
  });
});

describe('one lockout for IPMI and Redfish in the agent', () => {
  it('Redfish failures lock the same account for IPMI from that source; a PATCHed threshold applies to IPMI too', async () => {
    const agent = await startAgent({
      machine: new SimulatedMachine({ powerOnDelayMs: 0, powerOffDelayMs: 0 }),
      users: USERS,
      logger: nullLogger(),
      address: '127.0.0.1',
      ipmi: { port: 0 },
      redfish: { port: 0 },
      lockoutPolicy: { threshold: 3, durationSeconds: 300, counterResetAfterSeconds: 300 },
    });
    const consoles: RmcpPlusConsole[] = [];
    const ipmi = (user: UserAccount) => {
      const c = new RmcpPlusConsole(agent.ipmi!.port, user.username, user.password, 3, user === READONLY ? 0x12 : user === OPERATOR ? 0x13 : 0x14);
      consoles.push(c);
      return c.handshake();
    };
    try {
      const port = agent.redfish!.port;
      for (let i = 0; i < 3; i++) expect((await login(port, '127.0.0.1', { username: 'admin', password: `g${i}` })).status).to.equal(401);
      expect((await ipmi(ADMIN)).rakp2Status).to.equal(0x01); // locked for IPMI too
      expect((await ipmi(OPERATOR)).established).to.equal(true); // other accounts are not
      expect((await request(port, '/redfish/v1/AccountService', { from: '127.0.0.2', user: ADMIN, method: 'PATCH', body: { AccountLockoutThreshold: 1 } })).status).to.equal(200);
      const wrong = new RmcpPlusConsole(agent.ipmi!.port, 'operator', 'wrong', 3, 0x13);
      consoles.push(wrong);
      expect((await wrong.handshake()).rakp4Status).to.equal(0x0f);
      // One IPMI failure locked the operator pair; with threshold 1 the source aggregate (4 × 1)
      // is reached too by the 4 failures from 127.0.0.1, so Open Session itself is refused.
      expect((await ipmi(OPERATOR)).openStatus).to.equal(0x01);
      expect((await login(port, '127.0.0.1', OPERATOR)).status).to.equal(429); // and Redfish sees it
    } finally {
      consoles.forEach((c) => c.close());
      await agent.close();
    }
  });
});
