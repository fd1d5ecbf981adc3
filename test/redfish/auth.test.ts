/**
 * Authentication and authorisation: what needs credentials, Basic auth, roles and privileges
 * (Privilege Registry), accounts and roles resources, the login lockout (more in lockout.test.ts).
 */
import { expect } from 'chai';
import { ADMIN, OPERATOR, READONLY, startTestAgent, type TestAgent } from '../helpers/agent.js';
import type { UserAccount } from '../../src/accounts/types.js';

const basic = (u: { username: string; password: string }): string =>
  `Basic ${Buffer.from(`${u.username}:${u.password}`).toString('base64')}`;

interface Reply {
  status: number;
  headers: Headers;
  json: Record<string, unknown>;
}

async function call(t: TestAgent, path: string, opts: { user?: UserAccount | { username: string; password: string }; method?: string; body?: unknown; headers?: Record<string, string> } = {}): Promise<Reply> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.user) headers.Authorization = basic(opts.user);
  if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(`${t.redfishUrl}${path}`, {
    method: opts.method ?? 'GET',
    headers,
    ...(opts.body !== undefined ? { body: JSON.stringify(opts.body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, json: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

const messageId = (r: Reply): unknown =>
  ((r.json.error as Record<string, unknown>)['@Message.ExtendedInfo'] as Record<string, unknown>[])[0]?.MessageId;

describe('Redfish auth', () => {
  let t: TestAgent;
  beforeEach(async () => {
    t = await startTestAgent({ ipmi: false, sim: { initialPower: 'Off' } });
  });
  afterEach(async () => t?.close());

  it('requires credentials everywhere except the public documents and login', async () => {
    for (const p of ['/redfish/v1/Systems', '/redfish/v1/Systems/1', '/redfish/v1/SessionService', '/redfish/v1/AccountService/Accounts', '/redfish/v1/Registries']) {
      const r = await call(t, p);
      expect(r.status, p).to.equal(401);
      expect(r.headers.get('www-authenticate'), p).to.match(/^Basic realm="/);
      expect(messageId(r)).to.equal('Base.1.22.1.NoValidSession');
    }
    const reset = await call(t, '/redfish/v1/Systems/1/Actions/ComputerSystem.Reset', { method: 'POST', body: { ResetType: 'On' } });
    expect(reset.status).to.equal(401);
    expect(await t.sim.getPowerState()).to.equal('Off');
    expect((await call(t, '/redfish/v1')).status).to.equal(200);
    expect((await call(t, '/redfish')).status).to.equal(200);
  });

  it('accepts HTTP Basic and rejects a wrong password or an unknown user with 401 + WWW-Authenticate', async () => {
    expect((await call(t, '/redfish/v1/Systems', { user: ADMIN })).status).to.equal(200);
    for (const bad of [{ username: 'admin', password: 'nope' }, { username: 'nobody', password: 'password' }, { username: '', password: '' }]) {
      const r = await call(t, '/redfish/v1/Systems', { user: bad });
      expect(r.status).to.equal(401);
      expect(r.headers.get('www-authenticate')).to.match(/^Basic realm=/);
    }
    const garbage = await call(t, '/redfish/v1/Systems', { headers: { Authorization: 'Bearer abc' } });
    expect(garbage.status).to.equal(401);
    const badToken = await call(t, '/redfish/v1/Systems', { headers: { 'X-Auth-Token': 'f'.repeat(64) } });
    expect(badToken.status).to.equal(401);
    expect(messageId(badToken)).to.equal('Base.1.22.1.NoValidSession');
  });

  it('ReadOnly gets 403 InsufficientPrivilege on privileged operations and nothing changes', async () => {
    const patch = await call(t, '/redfish/v1/SessionService', { user: READONLY, method: 'PATCH', body: { SessionTimeout: 600 } });
    expect(patch.status).to.equal(403);
    expect(messageId(patch)).to.equal('Base.1.22.1.InsufficientPrivilege');
    const reset = await call(t, '/redfish/v1/Systems/1/Actions/ComputerSystem.Reset', { user: READONLY, method: 'POST', body: { ResetType: 'On' } });
    expect(reset.status).to.equal(403);
    expect(await t.sim.getPowerState()).to.equal('Off');
    const ss = await call(t, '/redfish/v1/SessionService', { user: READONLY });
    expect(ss.status).to.equal(200);
    expect(ss.json.SessionTimeout).to.equal(1800);
  });

  it('Operator may reset the system (ConfigureComponents) but not configure the session service (ConfigureManager)', async () => {
    const reset = await call(t, '/redfish/v1/Systems/1/Actions/ComputerSystem.Reset', { user: OPERATOR, method: 'POST', body: { ResetType: 'On' } });
    expect(reset.status).to.equal(204);
    // the test agent's simulator powers on with no delay, and the 204 comes after the backend call
    expect(await t.sim.getPowerState()).to.equal('On');
    const patch = await call(t, '/redfish/v1/SessionService', { user: OPERATOR, method: 'PATCH', body: { SessionTimeout: 600 } });
    expect(patch.status).to.equal(403);
    const admin = await call(t, '/redfish/v1/SessionService', { user: ADMIN, method: 'PATCH', body: { SessionTimeout: 600 } });
    expect(admin.status).to.equal(200);
    expect(admin.json.SessionTimeout).to.equal(600);
  });

  it('lists accounts (all for Administrator, own for others) without passwords, and the standard roles', async () => {
    const all = await call(t, '/redfish/v1/AccountService/Accounts', { user: ADMIN });
    expect(all.json['Members@odata.count']).to.equal(3);
    const names: string[] = [];
    for (const m of all.json.Members as { '@odata.id': string }[]) {
      const acc = await call(t, m['@odata.id'], { user: ADMIN });
      expect(acc.status).to.equal(200);
      expect(acc.json.Password).to.equal(null);
      expect(JSON.stringify(acc.json)).to.not.contain(ADMIN.password).and.not.contain(OPERATOR.password);
      names.push(`${String(acc.json.UserName)}:${String(acc.json.RoleId)}`);
    }
    expect(names).to.have.members(['admin:Administrator', 'operator:Operator', 'viewer:ReadOnly']);

    const mine = await call(t, '/redfish/v1/AccountService/Accounts', { user: READONLY });
    // Account Ids are the IPMI user ids (admin 2, operator 3, viewer 4)
    expect(mine.json.Members).to.deep.equal([{ '@odata.id': '/redfish/v1/AccountService/Accounts/4' }]);
    expect((await call(t, '/redfish/v1/AccountService/Accounts/4', { user: READONLY })).status).to.equal(200);
    const other = await call(t, '/redfish/v1/AccountService/Accounts/2', { user: READONLY });
    expect(other.status).to.equal(403);
    expect((await call(t, '/redfish/v1/AccountService/Accounts/9', { user: ADMIN })).status).to.equal(404);

    const roles: Record<string, string[]> = {};
    for (const r of ['Administrator', 'Operator', 'ReadOnly']) {
      const role = await call(t, `/redfish/v1/AccountService/Roles/${r}`, { user: READONLY });
      expect(role.json.IsPredefined).to.equal(true);
      roles[r] = role.json.AssignedPrivileges as string[];
    }
    expect(roles.Administrator).to.have.members(['Login', 'ConfigureManager', 'ConfigureUsers', 'ConfigureSelf', 'ConfigureComponents']);
    expect(roles.Operator).to.have.members(['Login', 'ConfigureSelf', 'ConfigureComponents']);
    expect(roles.ReadOnly).to.have.members(['Login', 'ConfigureSelf']);
  });

  it('locks an account out for this source after AccountLockoutThreshold failures (Basic and sessions alike), even for the right password', async () => {
    for (let i = 0; i < 3; i++) expect((await call(t, '/redfish/v1/Systems', { user: { username: 'admin', password: `x${i}` } })).status).to.equal(401);
    for (let i = 0; i < 2; i++) {
      const r = await call(t, '/redfish/v1/SessionService/Sessions', { method: 'POST', body: { UserName: 'admin', Password: `y${i}` } });
      expect(r.status).to.equal(401);
    }
    const blocked = await call(t, '/redfish/v1/SessionService/Sessions', { method: 'POST', body: { UserName: 'admin', Password: 'password' } });
    expect(blocked.status).to.equal(429);
    expect(Number(blocked.headers.get('retry-after'))).to.be.within(1, 30);
    expect(blocked.headers.get('x-auth-token')).to.equal(null);
    expect((await call(t, '/redfish/v1/Systems', { user: ADMIN })).status).to.equal(429);
    // The lock is for this account from this source: another account from here is not blocked.
    expect((await call(t, '/redfish/v1/Systems', { user: READONLY })).status).to.equal(200);
  });

  it('a valid login of another account does not reset the failure count (one account cannot open guessing at another)', async () => {
    for (let i = 0; i < 4; i++) expect((await call(t, '/redfish/v1/Systems', { user: { username: 'admin', password: `x${i}` } })).status).to.equal(401);
    expect((await call(t, '/redfish/v1/Systems', { user: READONLY })).status).to.equal(200);
    const login = await call(t, '/redfish/v1/SessionService/Sessions', { method: 'POST', body: { UserName: READONLY.username, Password: READONLY.password } });
    expect(login.status).to.equal(201);
    expect((await call(t, '/redfish/v1/Systems', { user: { username: 'admin', password: 'x9' } })).status).to.equal(401);
    expect((await call(t, '/redfish/v1/Systems', { user: ADMIN })).status).to.equal(429);
  });
});
