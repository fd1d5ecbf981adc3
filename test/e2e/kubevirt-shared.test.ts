/**
 * Shared mode on KubeVirt end to end (issue 16): the real controller (src/controller/manager.ts)
 * reconciles three Shared VirtualMachineBMCs on the apiserver emulator into shard 0's fleet
 * ConfigMap and Role; the shard agent (src/agent/kubevirt-fleet.ts) runs with that shard's
 * ServiceAccount (RBAC-checked by the emulator) and follows the ConfigMap. Each credential sees
 * and controls only its VM over Redfish and over IPMI (ipmitool lanplus -C 17 on its port); the
 * VMs and VMIs come from one namespace watch each, not one per VM (counted in the audit log).
 */
import { expect } from 'chai';
import { startKubeVirtFleet, type KubeVirtFleet } from '../../src/agent/kubevirt-fleet.js';
import { parseAccountsDocument, seedDigest, type AccountsDocument } from '../../src/agent/accounts-secret.js';
import { nullLogger } from '../../src/common/logger.js';
import type { ApiServerEmulator, AuditEntry, KubeObject } from '../emulator/index.js';
import { NS, secretObj, startEnv, vmbmcObj, vmObj, waitReady, type Env } from '../controller/fixtures.js';
import { until } from '../backend/kubevirt-fixtures.js';
import { haveCommand, requireClient } from '../helpers/clients.js';
import { run } from '../helpers/exec.js';

const SHARD_SA = `system:serviceaccount:${NS}:virtbmc-shard-0`;
const b64 = (s: string): string => Buffer.from(s).toString('base64');
const basic = (u: string, p: string): string => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;
/** a loopback address of its own (the shard's IPMI ports are fixed, 10001...: no clash with other suites) */
const ADDR = `127.${1 + Math.floor(Math.random() * 250)}.${1 + Math.floor(Math.random() * 250)}.${1 + Math.floor(Math.random() * 250)}`;

describe('KubeVirt shared mode end to end: the shard agent on the controller\'s fleet ConfigMap @e2e', function () {
  this.timeout(90_000);
  let env: Env | undefined;
  let fleet: KubeVirtFleet | undefined;
  let base = '';

  const emu = (): ApiServerEmulator => (env as Env).emu;
  const id = (n: string): string => `${NS}.vm-${n}`;
  const rf = async (method: string, path: string, auth: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> => {
    const res = await fetch(base + path, {
      method,
      headers: { authorization: auth, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
  };
  const systemsSeen = async (auth: string): Promise<string[] | number> => {
    const r = await rf('GET', '/redfish/v1/Systems', auth);
    return r.status === 200 ? (r.body.Members as { '@odata.id': string }[]).map((m) => m['@odata.id']) : r.status;
  };
  const ipmitool = (port: number, password: string, cmd: string) =>
    run('ipmitool', ['-I', 'lanplus', '-C', '17', '-H', ADDR, '-p', String(port), '-U', 'admin', '-P', password, '-N', '2', '-R', '2', ...cmd.split(' ')], 30_000);
  const vmi = (n: string): KubeObject | undefined => emu().get('kubevirt.io/v1', 'VirtualMachineInstance', NS, `vm-${n}`);
  const shardAudit = (pred: (a: AuditEntry) => boolean): AuditEntry[] => emu().audit.filter((a) => a.user === SHARD_SA && pred(a));

  async function start(names: string[]): Promise<void> {
    env = await startEnv({ shards: 1 });
    for (const n of names) {
      emu().create(vmObj(`vm-${n}`));
      emu().create(secretObj(`s-${n}`, `pw-${n}`));
      emu().create(vmbmcObj(n, `vm-${n}`, `s-${n}`, { mode: 'Shared' }));
    }
    for (const n of names) await waitReady(emu(), n);
    await startAgent();
  }

  async function startAgent(): Promise<void> {
    fleet = await startKubeVirtFleet({
      // the shard's own ServiceAccount: every call the agent makes is checked against the Role the controller wrote
      kubeConfig: emu().asServiceAccount(NS, 'virtbmc-shard-0').makeKubeConfig(),
      configMap: { namespace: NS, name: 'virtbmc-shard-0' },
      logger: process.env.FLEET_DEBUG ? (await import('pino')).pino({ level: 'debug' }, (await import('pino')).pino.destination(2)) : nullLogger(),
      machine: { watchMinBackoffMs: 20, watchMaxBackoffMs: 200 },
      requestTimeoutMs: 3000,
      syncTimeoutMs: 3000,
      // the test polls with credentials that are about to become valid: no lockout in the way
      shared: { address: ADDR, redfishPort: 0, ipmi: {}, lockoutPolicy: { threshold: 0, durationSeconds: 30, counterResetAfterSeconds: 30 } },
    });
    base = `http://${ADDR}:${fleet.agent.redfish.port}`;
  }

  afterEach(async () => {
    await fleet?.close();
    fleet = undefined;
    await env?.close();
    env = undefined;
  });

  it('3 VMs, 3 Secrets: each credential sees and controls only its VM over Redfish and ipmitool; one VM and one VMI watch for all', async function () {
    requireClient(this, haveCommand('ipmitool'), 'ipmitool');
    await start(['a', 'b', 'c']);
    const f = fleet as KubeVirtFleet;
    expect(f.agent.ids()).to.deep.equal([id('a'), id('b'), id('c')]);
    // ports as the controller allocated them (the VMBMC's Service maps 623 to that port)
    const cm = emu().get('v1', 'ConfigMap', NS, 'virtbmc-shard-0')!;
    const doc = JSON.parse((cm.data as Record<string, string>)['fleet.json']!) as { systems: { id: string; ipmiPort: number }[] };
    for (const s of doc.systems) expect(f.agent.ipmiPort(s.id)).to.equal(s.ipmiPort).and.to.be.at.least(10001);

    // Redfish: the same user name, three passwords; each sees its own system only
    for (const n of ['a', 'b', 'c']) {
      expect(await systemsSeen(basic('admin', `pw-${n}`))).to.deep.equal([`/redfish/v1/Systems/${id(n)}`]);
      for (const other of ['a', 'b', 'c'].filter((o) => o !== n)) {
        expect((await rf('GET', `/redfish/v1/Systems/${id(other)}`, basic('admin', `pw-${n}`))).status, `${n} reads ${other}`).to.equal(404);
        const reset = await rf('POST', `/redfish/v1/Systems/${id(other)}/Actions/ComputerSystem.Reset`, basic('admin', `pw-${n}`), { ResetType: 'On' });
        expect(reset.status, `${n} resets ${other}`).to.equal(404);
      }
    }
    expect(await systemsSeen(basic('admin', 'wrong'))).to.equal(401);
    expect((await rf('GET', `/redfish/v1/Systems/${id('a')}`, basic('admin', 'pw-a'))).body.PowerState).to.equal('Off');
    const on = await rf('POST', `/redfish/v1/Systems/${id('a')}/Actions/ComputerSystem.Reset`, basic('admin', 'pw-a'), { ResetType: 'On' });
    expect(on.status, JSON.stringify(on.body)).to.be.oneOf([200, 202, 204]);
    await until(() => vmi('a')?.status && (vmi('a')!.status as { phase?: string }).phase === 'Running', 'VMI vm-a Running', 10_000);
    await until(async () => (await rf('GET', `/redfish/v1/Systems/${id('a')}`, basic('admin', 'pw-a'))).body.PowerState === 'On', 'Redfish PowerState On', 10_000);
    expect(vmi('b'), 'vm-b untouched').to.equal(undefined);
    expect(vmi('c'), 'vm-c untouched').to.equal(undefined);

    // IPMI: each VM's port takes only its own password
    const portB = f.agent.ipmiPort(id('b'))!;
    expect((await ipmitool(portB, 'pw-b', 'chassis power status')).out).to.contain('Chassis Power is off');
    const wrong = await ipmitool(portB, 'pw-a', 'chassis power status');
    expect(wrong.code, wrong.out).to.not.equal(0);
    const ipmiOn = await ipmitool(portB, 'pw-b', 'chassis power on');
    expect(ipmiOn.code, ipmiOn.out).to.equal(0);
    await until(() => vmi('b') !== undefined, 'VMI vm-b', 10_000);
    await until(async () => (await ipmitool(portB, 'pw-b', 'chassis power status')).out.includes('Chassis Power is on'), 'ipmitool power on', 20_000);
    expect(vmi('c'), 'vm-c untouched by b').to.equal(undefined);
    expect((await ipmitool(f.agent.ipmiPort(id('c'))!, 'pw-c', 'chassis power status')).out).to.contain('Chassis Power is off');

    // watches: one namespace-wide VM watch and one VMI watch serve the three machines (per-VM: 3 + 3)
    const watches = (res: string) => shardAudit((a) => a.verb === 'watch' && a.resource === res);
    expect(watches('virtualmachines').map((a) => a.name)).to.deep.equal([undefined]);
    expect(watches('virtualmachineinstances').map((a) => a.name)).to.deep.equal([undefined]);
    expect(f.watches.size).to.equal(2);
    // the Secrets: named single-object watches (the Role grants no namespace-wide Secret read); no
    // account changed, so no get or update either (the watch's object is the base of a later write)
    expect(watches('secrets').map((a) => a.name).sort()).to.deep.equal(['s-a', 's-b', 's-c']);
    expect(shardAudit((a) => a.resource === 'secrets' && a.verb !== 'list' && a.verb !== 'watch')).to.deep.equal([]);
    // and nothing the agent asked for was refused: the controller's Role fits what the agent calls
    expect(shardAudit((a) => a.code === 403)).to.deep.equal([]);
  });

  it('at runtime: a new VMBMC adds a system, a deleted one removes it, a Secret change takes effect, a lost Secret leaves no account, dropped watches recover', async function () {
    requireClient(this, haveCommand('ipmitool'), 'ipmitool');
    await start(['a', 'b', 'c']);
    const f = fleet as KubeVirtFleet;
    const addedBefore = f.watches.created;

    // the controller writes a 4th system into the ConfigMap (and its Role): the agent adds only it
    const machineA = f.agent.machine(id('a'));
    emu().create(vmObj('vm-d'));
    emu().create(secretObj('s-d', 'pw-d'));
    emu().create(vmbmcObj('d', 'vm-d', 's-d', { mode: 'Shared' }));
    await until(async () => Array.isArray(await systemsSeen(basic('admin', 'pw-d'))), 'system d served', 15_000);
    expect(await systemsSeen(basic('admin', 'pw-d'))).to.deep.equal([`/redfish/v1/Systems/${id('d')}`]);
    expect(f.agent.machine(id('a')), 'a untouched').to.equal(machineA);
    expect(f.watches.created, 'd joined the namespace watches').to.equal(addedBefore);
    const portD = f.agent.ipmiPort(id('d'))!;
    expect((await ipmitool(portD, 'pw-d', 'chassis power status')).out).to.contain('Chassis Power is off');

    // a deleted VMBMC leaves the ConfigMap: its system, port and accounts go
    const portB = f.agent.ipmiPort(id('b'))!;
    emu().delete('bmc.kubevirt.io/v1beta1', 'VirtualMachineBMC', NS, 'b');
    await until(() => !f.agent.ids().includes(id('b')), 'system b removed', 15_000);
    expect(await systemsSeen(basic('admin', 'pw-b'))).to.equal(401);
    expect((await ipmitool(portB, 'pw-b', 'chassis power status')).code).to.not.equal(0);
    expect(f.agent.ids()).to.deep.equal([id('a'), id('c'), id('d')]);

    // a password change in the Secret: the old one stops working, the new one works, both protocols;
    // a Redfish session opened with the old password ends with it
    const login = await fetch(`${base}/redfish/v1/SessionService/Sessions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ UserName: 'admin', Password: 'pw-a' }),
    });
    expect(login.status).to.equal(201);
    const token = login.headers.get('x-auth-token')!;
    const withToken = async () => (await fetch(`${base}/redfish/v1/Systems/${id('a')}`, { headers: { 'x-auth-token': token } })).status;
    expect(await withToken()).to.equal(200);
    const sA = emu().get('v1', 'Secret', NS, 's-a')!;
    emu().update({ ...sA, data: { username: b64('admin'), password: b64('pw-a-2') } });
    await until(async () => (await systemsSeen(basic('admin', 'pw-a'))) === 401, 'old password refused', 10_000);
    expect(await systemsSeen(basic('admin', 'pw-a-2'))).to.deep.equal([`/redfish/v1/Systems/${id('a')}`]);
    expect(await withToken(), 'the old session ended').to.equal(401);
    const portA = f.agent.ipmiPort(id('a'))!;
    expect((await ipmitool(portA, 'pw-a-2', 'chassis power status')).out).to.contain('Chassis Power is off');
    expect((await ipmitool(portA, 'pw-a', 'chassis power status')).code).to.not.equal(0);

    // the VMBMC names another Secret: the controller rewrites the entry, the agent restarts that system alone on it
    const machineC = f.agent.machine(id('c'));
    emu().create(secretObj('s-a-other', 'pw-a-other'));
    const vA = emu().get('bmc.kubevirt.io/v1beta1', 'VirtualMachineBMC', NS, 'a')!;
    emu().update({ ...vA, spec: { ...(vA.spec as object), authSecretRef: { name: 's-a-other' } } });
    await until(async () => Array.isArray(await systemsSeen(basic('admin', 'pw-a-other'))), 'the new Secret\'s account', 15_000);
    expect(await systemsSeen(basic('admin', 'pw-a-2'))).to.equal(401);
    expect(f.agent.machine(id('c')), 'c untouched').to.equal(machineC);

    // the Secret deleted: the system has no account (whatever the controller does with it), the agent serves on
    emu().delete('v1', 'Secret', NS, 's-c');
    await until(async () => (await systemsSeen(basic('admin', 'pw-c'))) === 401, 'no account without the Secret', 10_000);
    expect(await systemsSeen(basic('admin', 'pw-d'))).to.deep.equal([`/redfish/v1/Systems/${id('d')}`]);
    emu().create(secretObj('s-c', 'pw-c-new'));
    await until(async () => Array.isArray(await systemsSeen(basic('admin', 'pw-c-new'))), 'account back with the Secret', 15_000);

    // dropped watches and a compacted history (410 on re-watch): everything re-lists and follows again
    const vmWatchesBefore = shardAudit((a) => a.verb === 'watch' && a.resource === 'virtualmachines').length;
    emu().faults.dropWatches();
    emu().faults.expireHistory();
    const sD = emu().get('v1', 'Secret', NS, 's-d')!;
    emu().update({ ...sD, data: { username: b64('admin'), password: b64('pw-d-2') } });
    await until(async () => Array.isArray(await systemsSeen(basic('admin', 'pw-d-2'))), 'Secret change seen after the drop', 15_000);
    const on = await rf('POST', `/redfish/v1/Systems/${id('d')}/Actions/ComputerSystem.Reset`, basic('admin', 'pw-d-2'), { ResetType: 'On' });
    expect(on.status, JSON.stringify(on.body)).to.be.oneOf([200, 202, 204]);
    await until(() => vmi('d') !== undefined, 'VMI vm-d', 10_000);
    await until(async () => (await ipmitool(portD, 'pw-d-2', 'chassis power status')).out.includes('Chassis Power is on'), 'IPMI sees vm-d on after the drop', 20_000);
    // the cache follows the server again: the VM watch is re-opened (namespace-wide, still one stream for all)
    await until(() => {
      const w = shardAudit((a) => a.verb === 'watch' && a.resource === 'virtualmachines');
      return w.length > vmWatchesBefore && w.every((a) => a.name === undefined);
    }, 'VM watch re-opened', 10_000);
    // ConfigMap changes are still followed after the drop
    emu().delete('bmc.kubevirt.io/v1beta1', 'VirtualMachineBMC', NS, 'd');
    await until(() => !f.agent.ids().includes(id('d')), 'system d removed after the drop', 15_000);
    expect(shardAudit((a) => a.code === 403)).to.deep.equal([]);
  });

  it('account changes over Redfish and ipmitool go to each system\'s own Secret (virtbmc-accounts), survive a restart of the shard agent, and their echo restarts nothing', async function () {
    requireClient(this, haveCommand('ipmitool'), 'ipmitool');
    await start(['a', 'b', 'c']);
    let f = fleet as KubeVirtFleet;
    const secret = (n: string): KubeObject => emu().get('v1', 'Secret', NS, `s-${n}`)!;
    const saved = (n: string): AccountsDocument | undefined => parseAccountsDocument(secret(n).data as Record<string, string>, `s-${n}`);
    const untouchedC = secret('c').metadata.resourceVersion;
    const fleetVersion = emu().get('v1', 'ConfigMap', NS, 'virtbmc-shard-0')!.metadata.resourceVersion;
    const machines = Object.fromEntries(['a', 'b', 'c'].map((n) => [n, f.agent.machine(id(n))]));

    // Redfish on a: the Secret's account gets a new password, and an Operator is created
    const patch = await rf('PATCH', '/redfish/v1/AccountService/Accounts/2', basic('admin', 'pw-a'), { Password: 'pw-a-new' });
    expect(patch.status, JSON.stringify(patch.body)).to.equal(200);
    const op = await rf('POST', '/redfish/v1/AccountService/Accounts', basic('admin', 'pw-a-new'), { UserName: 'op', Password: 'op-pw-1', RoleId: 'Operator' });
    expect(op.status, JSON.stringify(op.body)).to.equal(201);
    // IPMI on b: Set User Password of user 2 (the Secret's account) over its own port
    const portB = f.agent.ipmiPort(id('b'))!;
    const set = await ipmitool(portB, 'pw-b', 'user set password 2 pw-b-new');
    expect(set.code, set.out).to.equal(0);

    // written to the system's own Secret, in the per-VM format (src/agent/accounts-secret.ts)
    const docA = saved('a')!;
    expect(docA.accounts.map((a) => [a.id, a.username, a.password, a.role])).to.deep.equal([
      [2, 'admin', 'pw-a-new', 'Administrator'],
      [3, 'op', 'op-pw-1', 'Operator'],
    ]);
    expect(docA.seed).to.equal(seedDigest({ username: 'admin', password: 'pw-a' }));
    expect(saved('b')!.accounts.map((a) => [a.id, a.username, a.password])).to.deep.equal([[2, 'admin', 'pw-b-new']]);
    expect(b64('pw-a'), 'the Secret\'s own keys are not written').to.equal((secret('a').data as Record<string, string>).password);
    expect(secret('c').metadata.resourceVersion, 'another system\'s Secret untouched').to.equal(untouchedC);
    expect(saved('c')).to.equal(undefined);

    // the echo of those writes reached the agent: it changed nothing (no reset to the Secret's password, no restart)
    for (const n of ['a', 'b']) await until(() => f.secretVersion(id(n)) === secret(n).metadata.resourceVersion, `echo of s-${n} followed`, 10_000);
    expect(await systemsSeen(basic('admin', 'pw-a-new'))).to.deep.equal([`/redfish/v1/Systems/${id('a')}`]);
    expect(await systemsSeen(basic('admin', 'pw-a'))).to.equal(401);
    expect((await ipmitool(portB, 'pw-b-new', 'chassis power status')).out).to.contain('Chassis Power is off');
    for (const n of ['a', 'b', 'c']) expect(f.agent.machine(id(n)), `${n} not restarted`).to.equal(machines[n]);
    expect(emu().get('v1', 'ConfigMap', NS, 'virtbmc-shard-0')!.metadata.resourceVersion, 'the controller did not rewrite the fleet').to.equal(fleetVersion);

    // the shard agent restarts: the accounts come back from the Secrets
    await f.close();
    fleet = undefined;
    await startAgent();
    f = fleet as unknown as KubeVirtFleet;
    expect(await systemsSeen(basic('admin', 'pw-a-new'))).to.deep.equal([`/redfish/v1/Systems/${id('a')}`]);
    expect(await systemsSeen(basic('op', 'op-pw-1'))).to.deep.equal([`/redfish/v1/Systems/${id('a')}`]);
    expect(await systemsSeen(basic('admin', 'pw-a'))).to.equal(401);
    expect(await systemsSeen(basic('admin', 'pw-c'))).to.deep.equal([`/redfish/v1/Systems/${id('c')}`]);
    const portB2 = f.agent.ipmiPort(id('b'))!;
    expect((await ipmitool(portB2, 'pw-b-new', 'chassis power status')).out).to.contain('Chassis Power is off');
    expect((await ipmitool(portB2, 'pw-b', 'chassis power status')).code, 'old IPMI password refused').to.not.equal(0);

    // a new password in the Secret (someone rotates it): the seed account takes it, op stays, written back
    emu().update({ ...secret('a'), data: { ...(secret('a').data as object), password: b64('pw-a-rotated') } });
    await until(async () => Array.isArray(await systemsSeen(basic('admin', 'pw-a-rotated'))), 'rotated password', 10_000);
    expect(await systemsSeen(basic('admin', 'pw-a-new'))).to.equal(401);
    expect(await systemsSeen(basic('op', 'op-pw-1'))).to.deep.equal([`/redfish/v1/Systems/${id('a')}`]);
    await until(() => saved('a')?.seed === seedDigest({ username: 'admin', password: 'pw-a-rotated' }), 'rotation saved', 10_000);
    expect(saved('a')!.accounts.map((a) => [a.username, a.password])).to.deep.equal([['admin', 'pw-a-rotated'], ['op', 'op-pw-1']]);

    // RBAC: reads and writes of exactly the changed Secrets, by name; nothing refused
    const secretCalls = shardAudit((a) => a.resource === 'secrets' && a.verb !== 'list' && a.verb !== 'watch');
    const calls = new Set(secretCalls.map((a) => `${a.verb} ${a.name}`));
    expect([...calls].filter((c) => c.startsWith('update')).sort()).to.deep.equal(['update s-a', 'update s-b']);
    // a get happens only after a 409 (the watch's object is the base of each write)
    for (const c of calls) expect(['get s-a', 'get s-b', 'update s-a', 'update s-b'], c).to.include(c);
    expect(shardAudit((a) => a.code === 403)).to.deep.equal([]);
  });
});
