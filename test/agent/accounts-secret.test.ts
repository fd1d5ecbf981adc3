/**
 * KubeVirt mode account persistence (src/agent/accounts-secret.ts) against the apiserver
 * emulator, as the agent's ServiceAccount bound to the Role the controller generates
 * (src/controller/agent-rbac.ts, RBAC-checked): a user made and a password changed over IPMI
 * (real ipmitool) land in the auth Secret, survive an agent restart and log in afterwards; a
 * concurrent edit of the Secret (409) loses neither change; the Secret's own username/password
 * stay untouched, and a changed pair re-seeds the admin.
 */
import { expect } from 'chai';
import { startAgent, type Agent } from '../../src/agent/agent.js';
import {
  ACCOUNTS_KEY,
  AccountsDocumentError,
  parseAccountsDocument,
  secretAccountStore,
  seedDigest,
  startingAccounts,
} from '../../src/agent/accounts-secret.js';
import type { UserAccount } from '../../src/accounts/types.js';
import { SimulatedMachine } from '../../src/backend/simulator/simulator.js';
import { nullLogger } from '../../src/common/logger.js';
import { agentRoleRules } from '../../src/controller/agent-rbac.js';
import { KubeClient } from '../../src/kube/client.js';
import type { ApiServerEmulator, KubeObject } from '../emulator/index.js';
import { grantServiceAccount } from '../emulator/helpers.js';
import { startEmulator } from '../backend/kubevirt-fixtures.js';
import { haveCommand, requireClient } from '../helpers/clients.js';
import { run } from '../helpers/exec.js';

const NS = 'default';
const SECRET = 'vm1-bmc-auth';
const SA = 'bmc1-virtbmc';
const ADMIN: UserAccount = { username: 'admin', password: 'Initial-pw1', role: 'Administrator' };
const b64 = (s: string) => Buffer.from(s).toString('base64');
const unb64 = (s: string | undefined) => Buffer.from(s ?? '', 'base64').toString('utf8');

type Secret = KubeObject & { data?: Record<string, string> };

describe('accounts in the VirtualMachineBMC auth Secret (KubeVirt mode) @e2e', function () {
  this.timeout(60_000);
  let emu: ApiServerEmulator;
  let client: KubeClient;
  let agent: Agent | undefined;
  let sim: SimulatedMachine;

  const secretNow = () => emu.get('v1', 'Secret', NS, SECRET) as Secret;
  const docNow = () => parseAccountsDocument(secretNow().data, 'test')!;

  async function start(configured: UserAccount[] = [ADMIN]): Promise<Agent> {
    const { store } = await secretAccountStore({ client, namespace: NS, name: SECRET, configured, logger: nullLogger(), loadAttempts: 1 });
    sim = new SimulatedMachine({ powerOnDelayMs: 0, powerOffDelayMs: 0 });
    agent = await startAgent({ machine: sim, users: configured, accounts: store, logger: nullLogger(), address: '127.0.0.1', ipmi: { port: 0 }, redfish: false });
    return agent;
  }
  async function stop(): Promise<void> {
    await agent?.close();
    agent = undefined;
  }
  const ipmitool = (user: string, pw: string, ...cmd: string[]) =>
    run('ipmitool', ['-I', 'lanplus', '-C', '17', '-H', '127.0.0.1', '-p', String(agent!.ipmi!.port), '-U', user, '-P', pw, '-N', '1', '-R', '2', ...cmd], 20_000);

  beforeEach(async () => {
    emu = await startEmulator();
    emu.create({ apiVersion: 'v1', kind: 'Secret', metadata: { name: SECRET, namespace: NS }, type: 'Opaque', data: { username: b64(ADMIN.username), password: b64(ADMIN.password), other: b64('keep me') } } as KubeObject);
    // the Role the controller writes for this VirtualMachineBMC, bound to the agent's ServiceAccount
    grantServiceAccount(emu, NS, SA, agentRoleRules('vm1', [], { accountsSecret: SECRET }));
    client = new KubeClient(emu.asServiceAccount(NS, SA).makeKubeConfig(), { logger: nullLogger() });
  });
  afterEach(async () => {
    await stop();
    client?.close();
    await emu?.close();
  });

  it('ipmitool: a new user and a changed password survive an agent restart and log in; the Secret keeps its own keys', async function () {
    requireClient(this, haveCommand('ipmitool'), 'ipmitool');
    await start();
    expect(secretNow().data?.[ACCOUNTS_KEY], 'nothing written before a change').to.equal(undefined);
    for (const cmd of [
      ['user', 'set', 'name', '3', 'bob'],
      ['user', 'set', 'password', '3', 'Bob-pw-1'],
      ['user', 'priv', '3', '4', '1'],
      ['user', 'enable', '3'],
    ]) {
      const r = await ipmitool(ADMIN.username, ADMIN.password, ...cmd);
      expect(r.code, `${cmd.join(' ')}: ${r.out}`).to.equal(0);
    }
    // bob (an Administrator now) changes the admin's password
    const chg = await ipmitool('bob', 'Bob-pw-1', 'user', 'set', 'password', '2', 'Changed-pw2');
    expect(chg.code, chg.out).to.equal(0);

    const doc = docNow();
    expect(doc.seed).to.equal(seedDigest(ADMIN));
    expect(doc.accounts.map((a) => [a.id, a.username, a.role, a.enabled])).to.deep.equal([
      [2, 'admin', 'Administrator', true],
      [3, 'bob', 'Administrator', true],
    ]);
    // the Secret's own keys are the user's: never rewritten (the controller's hash covers them)
    expect(unb64(secretNow().data?.password)).to.equal(ADMIN.password);
    expect(unb64(secretNow().data?.other)).to.equal('keep me');

    await stop();
    await start();
    expect((await ipmitool(ADMIN.username, 'Changed-pw2', 'chassis', 'power', 'status')).code).to.equal(0);
    expect((await ipmitool('bob', 'Bob-pw-1', 'chassis', 'power', 'status')).code).to.equal(0);
    const old = await ipmitool(ADMIN.username, ADMIN.password, 'chassis', 'power', 'status');
    expect(old.code, 'the old password no longer works').to.not.equal(0);

    // only get/update of that one Secret, each allowed
    const calls = emu.audit.filter((e) => e.resource === 'secrets');
    expect(calls.length).to.be.greaterThan(0);
    expect([...new Set(calls.map((e) => `${e.verb} ${e.name} ${e.code}`))].sort()).to.deep.equal([`get ${SECRET} 200`, `update ${SECRET} 200`]);
  });

  it('a concurrent edit of the Secret (409) is read again and written over: neither change is lost', async () => {
    const a = await start();
    await a.accounts.create({ username: 'carol', password: 'Carol-pw1', role: 'Operator' });
    // someone edits another key meanwhile: the agent's cached resourceVersion is stale now
    const s = secretNow();
    emu.update({ ...s, data: { ...s.data, note: b64('edited by kubectl') } } as KubeObject);
    const conflictsBefore = emu.audit.filter((e) => e.verb === 'update' && e.code === 409).length;
    await a.accounts.create({ username: 'dave', password: 'Dave-pw-1', role: 'ReadOnly' });
    expect(emu.audit.filter((e) => e.verb === 'update' && e.code === 409).length, 'one 409, then a retry').to.equal(conflictsBefore + 1);
    expect(docNow().accounts.map((x) => x.username)).to.deep.equal(['admin', 'carol', 'dave']);
    expect(unb64(secretNow().data?.note)).to.equal('edited by kubectl');
  });

  it('a failed write changes nothing: without the update grant the change is refused and undone', async () => {
    const a = await start();
    const role = emu.get('rbac.authorization.k8s.io/v1', 'Role', NS, SA)!;
    emu.update({ ...role, rules: agentRoleRules('vm1', []) } as KubeObject);
    let err: unknown;
    try {
      await a.accounts.create({ username: 'erin', password: 'Erin-pw-1', role: 'Operator' });
    } catch (e) {
      err = e;
    }
    expect(err, 'the create fails').to.not.equal(undefined);
    expect(a.accounts.byName('erin')).to.equal(undefined);
    expect(secretNow().data?.[ACCOUNTS_KEY]).to.equal(undefined);
  });

  it("a changed username/password in the Secret re-seeds the admin and keeps the other accounts", async () => {
    const a = await start();
    await a.accounts.create({ username: 'bob', password: 'Bob-pw-1', role: 'Operator' });
    await a.accounts.update(2, { password: 'Changed-pw2' });
    await stop();
    // the user rotates the Secret (which also rolls the agent)
    const s = secretNow();
    emu.update({ ...s, data: { ...s.data, username: b64('root'), password: b64('Rotated-pw3') } } as KubeObject);
    const rotated: UserAccount = { username: 'root', password: 'Rotated-pw3', role: 'Administrator' };
    const b = await start([rotated]);
    expect(b.accounts.list().map((x) => [x.id, x.username, x.role])).to.deep.equal([
      [2, 'root', 'Administrator'],
      [3, 'bob', 'Operator'],
    ]);
    expect(b.accounts.verify('root', 'Rotated-pw3')).to.not.equal(undefined);
    expect(b.accounts.verify('admin', 'Changed-pw2')).to.equal(undefined);
    expect(docNow().seed).to.equal(seedDigest(rotated));
  });

  it('a malformed accounts key stops the start (never overwritten with the seed)', async () => {
    const s = secretNow();
    emu.update({ ...s, data: { ...s.data, [ACCOUNTS_KEY]: b64('{"version": 7}') } } as KubeObject);
    let err: unknown;
    try {
      await start();
    } catch (e) {
      err = e;
    }
    expect(err).to.be.instanceOf(AccountsDocumentError);
    expect(unb64(secretNow().data?.[ACCOUNTS_KEY])).to.equal('{"version": 7}');
  });
});

describe('accounts document (pure)', () => {
  it('startingAccounts: the configured users without a document, the saved list while the seed matches', () => {
    expect(startingAccounts(undefined, [ADMIN]).accounts).to.deep.equal([ADMIN]);
    const saved = [{ id: 2, username: 'admin', password: 'x-Changed', role: 'Administrator' as const, enabled: true, passwordChangeRequired: false }];
    const r = startingAccounts({ version: 1, seed: seedDigest(ADMIN), seedId: 2, accounts: saved }, [ADMIN]);
    expect(r).to.deep.equal({ accounts: saved, seedId: 2, reseeded: false });
  });

  it('startingAccounts: a new seed whose name another account holds takes over that name', () => {
    const saved = [
      { id: 2, username: 'admin', password: 'a', role: 'Administrator' as const, enabled: true, passwordChangeRequired: false },
      { id: 4, username: 'root', password: 'b', role: 'ReadOnly' as const, enabled: true, passwordChangeRequired: false },
    ];
    const r = startingAccounts({ version: 1, seed: seedDigest(ADMIN), seedId: 2, accounts: saved }, [{ username: 'root', password: 'new', role: 'Administrator' }]);
    expect(r.reseeded).to.equal(true);
    expect(r.accounts.map((a) => [(a as { id: number }).id, a.username, a.role])).to.deep.equal([[2, 'root', 'Administrator']]);
  });

  it('parseAccountsDocument rejects what is not a version 1 document', () => {
    expect(parseAccountsDocument({}, 'x')).to.equal(undefined);
    for (const bad of ['nope', '{"version":1}', JSON.stringify({ version: 1, seed: 's', seedId: 2, accounts: [{ id: 1, username: 'a', password: 'b', role: 'Administrator', enabled: true, passwordChangeRequired: false }] })]) {
      expect(() => parseAccountsDocument({ [ACCOUNTS_KEY]: b64(bad) }, 'x')).to.throw(AccountsDocumentError);
    }
  });
});
