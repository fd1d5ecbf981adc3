/**
 * One account store behind both protocols, driven by the real clients: an account made or changed
 * over one protocol logs in over the other. ipmitool (`user set name/password/priv`, `user
 * enable`, `user list`, `user test`, then logins over -I lanplus -C 3/-C 17 and -I lan), redfishtool
 * (`AccountService adduser/setpassword/deleteuser`), Redfish REST (last Administrator,
 * PasswordChangeRequired, write-only Password), and Tacklebox `rf_accounts.py` as a development
 * check gated like test/redfish/events-clients.test.ts (TACKLEBOX_DIR, TACKLEBOX_PYTHONPATH).
 */
import { expect } from 'chai';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { accountsFileWriter, readAccountsFile } from '../../src/accounts/file.js';
import { AccountStore } from '../../src/accounts/store.js';
import { ADMIN, READONLY, startTestAgent, type TestAgent } from '../helpers/agent.js';
import { haveCommand, requireClient } from '../helpers/clients.js';
import { run } from '../helpers/exec.js';

const TACKLEBOX = process.env.TACKLEBOX_DIR;
const TACKLEBOX_PY = process.env.TACKLEBOX_PYTHONPATH ?? '';
const devIt = TACKLEBOX ? it : it.skip;

const ipmi = (t: TestAgent, user: string, password: string, transport: string[], cmd: string) =>
  run('ipmitool', [...transport, '-H', '127.0.0.1', '-p', String(t.ipmiPort), '-U', user, '-P', password, '-N', '2', '-R', '2', ...cmd.split(' ')]);
const LANPLUS17 = ['-I', 'lanplus', '-C', '17'];

async function rf(t: TestAgent, method: string, path: string, auth: [string, string], body?: unknown) {
  const res = await fetch(t.redfishUrl + path, {
    method,
    headers: {
      Authorization: `Basic ${Buffer.from(`${auth[0]}:${auth[1]}`).toString('base64')}`,
      ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

const messageIds = (b: Record<string, unknown>): string[] => {
  const err = b.error as { '@Message.ExtendedInfo'?: { MessageId: string }[] } | undefined;
  const list = err?.['@Message.ExtendedInfo'] ?? (b['@Message.ExtendedInfo'] as { MessageId: string }[] | undefined) ?? [];
  return list.map((m) => m.MessageId.replace(/^Base\.[\d.]+\./, ''));
};

describe('accounts over both protocols with real clients @e2e', function () {
  this.timeout(90_000);
  let t: TestAgent;
  beforeEach(async () => {
    t = await startTestAgent({ users: [ADMIN, READONLY] });
  });
  afterEach(async () => {
    await t.close();
  });

  it('ipmitool creates a user, sets its password and privilege; it logs in over lanplus -C 3/-C 17, lan and Redfish', async function () {
    requireClient(this, haveCommand('ipmitool'), 'ipmitool');
    const adm = (cmd: string) => ipmi(t, ADMIN.username, ADMIN.password, LANPLUS17, cmd);
    for (const cmd of ['user set name 5 bob', 'user set password 5 bob-pass-1', 'user priv 5 3 1', 'user enable 5']) {
      const r = await adm(cmd);
      expect(r.code, `${cmd}: ${r.out}`).to.equal(0);
    }
    const list = await adm('user list 1');
    expect(list.out).to.match(/^5\s+bob\s+.*OPERATOR\s*$/m);
    expect((await adm('user test 5 16 bob-pass-1')).out).to.match(/Success/);
    expect((await adm('user test 5 16 wrong')).out).to.match(/password incorrect/i);
    for (const transport of [['-I', 'lanplus', '-C', '3'], LANPLUS17, ['-I', 'lan']]) {
      const r = await ipmi(t, 'bob', 'bob-pass-1', [...transport, '-L', 'OPERATOR'], 'chassis power status');
      expect(r.code, `${transport.join(' ')}: ${r.out}`).to.equal(0);
      expect(r.out).to.match(/Chassis Power is off/);
    }
    // the same account over Redfish, with the IPMI id as its Id
    const acct = await rf(t, 'GET', '/redfish/v1/AccountService/Accounts/5', ['bob', 'bob-pass-1']);
    expect(acct.status).to.equal(200);
    expect(acct.body).to.include({ UserName: 'bob', RoleId: 'Operator', Enabled: true, Password: null });
    // the old password stops working at once after a change over IPMI
    expect((await adm('user set password 5 bob-pass-2')).code).to.equal(0);
    expect((await ipmi(t, 'bob', 'bob-pass-1', [...LANPLUS17, '-L', 'OPERATOR'], 'chassis power status')).code).to.not.equal(0);
    expect((await rf(t, 'GET', '/redfish/v1/AccountService/Accounts/5', ['bob', 'bob-pass-2'])).status).to.equal(200);
  });

  it('ipmitool cannot disable or demote the last Administrator, and an Operator cannot set passwords', async function () {
    requireClient(this, haveCommand('ipmitool'), 'ipmitool');
    const adm = (cmd: string) => ipmi(t, ADMIN.username, ADMIN.password, LANPLUS17, cmd);
    expect((await adm('user priv 2 3 1')).code).to.not.equal(0);
    expect((await adm('user disable 2')).code).to.not.equal(0);
    expect(t.agent.accounts.byName('admin')).to.include({ role: 'Administrator', enabled: true });
    await t.agent.accounts.create({ username: 'op', password: 'op-pass', role: 'Operator' });
    const r = await ipmi(t, 'op', 'op-pass', [...LANPLUS17, '-L', 'OPERATOR'], 'user set password 2 hijacked');
    expect(r.code).to.not.equal(0);
    expect(t.agent.accounts.verify('admin', ADMIN.password)).to.not.equal(undefined);
  });

  it('redfishtool adduser/setpassword/deleteuser; the new account logs in over IPMI', async function () {
    requireClient(this, haveCommand('redfishtool'), 'redfishtool');
    requireClient(this, haveCommand('ipmitool'), 'ipmitool');
    const rt = (...args: string[]) => run('redfishtool', ['-S', 'Never', '-r', `127.0.0.1:${t.redfishPort}`, '-u', ADMIN.username, '-p', ADMIN.password, 'AccountService', ...args]);
    expect((await rt('adduser', 'carol', 'carol-pw-1', 'Administrator')).code).to.equal(0);
    expect((await rt('setpassword', 'carol', 'carol-pw-2')).code).to.equal(0);
    const r = await ipmi(t, 'carol', 'carol-pw-2', LANPLUS17, 'chassis power status');
    expect(r.code, r.out).to.equal(0);
    expect((await ipmi(t, 'carol', 'carol-pw-1', LANPLUS17, 'chassis power status')).code).to.not.equal(0);
    expect((await rt('deleteuser', 'carol')).code).to.equal(0);
    expect(t.agent.accounts.byName('carol')).to.equal(undefined);
  });

  it('Redfish: 201 + Location, write-only Password, policy 400s, last Administrator, limit', async () => {
    const admin: [string, string] = [ADMIN.username, ADMIN.password];
    const c = await rf(t, 'POST', '/redfish/v1/AccountService/Accounts', admin, { UserName: 'dave', Password: 'dave-pw', RoleId: 'ReadOnly' });
    expect(c.status).to.equal(201);
    expect(c.headers.get('location')).to.equal(c.body['@odata.id']);
    expect(JSON.stringify(c.body)).to.not.include('dave-pw');
    const long = await rf(t, 'POST', '/redfish/v1/AccountService/Accounts', admin, { UserName: 'x', Password: 'p'.repeat(21), RoleId: 'ReadOnly' });
    expect(long.status).to.equal(400);
    expect(messageIds(long.body)).to.include('PropertyValueIncorrect');
    const badName = await rf(t, 'POST', '/redfish/v1/AccountService/Accounts', admin, { UserName: 'a:b', Password: 'pw', RoleId: 'ReadOnly' });
    expect(messageIds(badName.body)).to.include('PropertyValueFormatError');
    const annotations = await rf(t, 'PATCH', c.body['@odata.id'] as string, admin, { '@odata.id': `${c.body['@odata.id'] as string}/` });
    expect(annotations.status).to.equal(400);
    expect(messageIds(annotations.body)).to.include('NoOperation');
    const demote = await rf(t, 'PATCH', '/redfish/v1/AccountService/Accounts/2', admin, { RoleId: 'Operator' });
    expect(demote.status).to.equal(400);
    expect((await rf(t, 'DELETE', '/redfish/v1/AccountService/Accounts/2', admin)).status).to.equal(400);
    // a ReadOnly user may change only its own password
    const ro: [string, string] = [READONLY.username, READONLY.password];
    expect((await rf(t, 'PATCH', '/redfish/v1/AccountService/Accounts/3', ro, { RoleId: 'Administrator' })).status).to.equal(403);
    expect((await rf(t, 'PATCH', '/redfish/v1/AccountService/Accounts/2', ro, { Password: 'mine-now' })).status).to.equal(403);
    expect((await rf(t, 'PATCH', '/redfish/v1/AccountService/Accounts/3', ro, { Password: 'viewer-pw-2' })).status).to.equal(200);
    // fill every id: the next create is CreateLimitReachedForResource
    const max = t.agent.accounts.maxUserId;
    for (let i = t.agent.accounts.list().length + 2; i <= max; i++) {
      expect((await rf(t, 'POST', '/redfish/v1/AccountService/Accounts', admin, { UserName: `u${i}`, Password: 'pw', RoleId: 'ReadOnly' })).status).to.equal(201);
    }
    const full = await rf(t, 'POST', '/redfish/v1/AccountService/Accounts', admin, { UserName: 'one-more', Password: 'pw', RoleId: 'ReadOnly' });
    expect(full.status).to.equal(400);
    expect(messageIds(full.body)).to.include('CreateLimitReachedForResource');
  });

  it('PasswordChangeRequired: session login with the message, own account readable, all else 403 until the password PATCH', async () => {
    const admin: [string, string] = [ADMIN.username, ADMIN.password];
    const c = await rf(t, 'POST', '/redfish/v1/AccountService/Accounts', admin, { UserName: 'erin', Password: 'erin-pw', RoleId: 'Operator', PasswordChangeRequired: true });
    const uri = c.body['@odata.id'] as string;
    const erin: [string, string] = ['erin', 'erin-pw'];
    const s = await fetch(`${t.redfishUrl}/redfish/v1/SessionService/Sessions`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ UserName: 'erin', Password: 'erin-pw' }),
    });
    expect(s.status).to.equal(201);
    expect(messageIds((await s.json()) as Record<string, unknown>)).to.include('PasswordChangeRequired');
    expect((await rf(t, 'GET', uri, erin)).status).to.equal(200);
    const other = await rf(t, 'GET', '/redfish/v1/Systems', erin);
    expect(other.status).to.equal(403);
    expect(messageIds(other.body)).to.include('PasswordChangeRequired');
    expect((await rf(t, 'PATCH', uri, erin, { Password: 'erin-pw-2' })).status).to.equal(200);
    expect((await rf(t, 'GET', '/redfish/v1/Systems', ['erin', 'erin-pw-2'])).status).to.equal(200);
  });

  devIt('Tacklebox rf_accounts.py --add/--setpassword/--setrole/--delete (development check)', async function () {
    const tb = (...args: string[]) =>
      run('env', ['-u', 'REQUESTS_CA_BUNDLE', '-u', 'CURL_CA_BUNDLE', `PYTHONPATH=${TACKLEBOX_PY}:${TACKLEBOX!}`, '/usr/bin/python3', join(TACKLEBOX!, 'scripts/rf_accounts.py'), '-r', t.redfishUrl, '-u', ADMIN.username, '-p', ADMIN.password, ...args], 30_000);
    expect((await tb('--add', 'frank', 'frank-pw-1', 'ReadOnly')).code).to.equal(0);
    expect((await tb('--setpassword', 'frank', 'frank-pw-2')).code).to.equal(0);
    expect((await tb('--setrole', 'frank', 'Operator')).code).to.equal(0);
    expect(t.agent.accounts.verify('frank', 'frank-pw-2')).to.include({ role: 'Operator' });
    expect((await tb('--delete', 'frank')).code).to.equal(0);
    expect(t.agent.accounts.byName('frank')).to.equal(undefined);
  });
});

describe('accounts file (simulator persistence)', () => {
  it('writes every change (mode 0600) and a new store restores ids, roles and passwords', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'acc-'));
    try {
      const file = join(dir, 'accounts.json');
      expect(readAccountsFile(file)).to.equal(undefined);
      const s = new AccountStore([ADMIN], { persist: accountsFileWriter(file) });
      await s.create({ username: 'gina', password: 'gina-pw', role: 'Operator', id: 7 });
      await s.update(2, { password: 'new-admin-pw' });
      expect(statSync(file).mode & 0o777).to.equal(0o600);
      const restored = new AccountStore(readAccountsFile(file)!);
      expect(restored.get(7)).to.include({ username: 'gina', role: 'Operator' });
      expect(restored.verify('admin', 'new-admin-pw')).to.not.equal(undefined);
      expect(readFileSync(file, 'utf8')).to.include('"version": 1');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
