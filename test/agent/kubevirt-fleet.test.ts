/**
 * The KubeVirt fleet agent's edges (src/agent/kubevirt-fleet.ts) on the apiserver emulator, with a
 * hand-written fleet ConfigMap: a system whose Secret is missing runs without accounts and gets one
 * when the Secret appears; a Secret that loses a key takes the account away; foreign-namespace
 * entries are ignored; a deleted ConfigMap serves nothing; Secret decoding and references.
 */
import { expect } from 'chai';
import { parseConfigMapRef, secretCredentials, type KubeVirtFleet } from '../../src/agent/kubevirt-fleet.js';
import { ACCOUNTS_KEY, parseAccountsDocument, seedDigest } from '../../src/agent/accounts-secret.js';
import type { ApiServerEmulator, KubeObject } from '../emulator/index.js';
import { startEmulator, startShardFleet, until, vmFixture } from '../backend/kubevirt-fixtures.js';

const NS = 'default';
const b64 = (s: string): string => Buffer.from(s).toString('base64');
const secret = (name: string, data: Record<string, string>): KubeObject => ({ apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace: NS }, data });
const sys = (vm: string, namespace = NS) => ({ id: `${namespace}.${vm}`, namespace, vm, vmbmc: vm, vmbmcUid: `uid-${vm}`, secretName: `s-${vm}`, ipmiPort: 0 });
const cm = (systems: unknown[]): KubeObject => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'virtbmc-shard-0', namespace: NS }, data: { 'fleet.json': JSON.stringify({ systems }) } });

describe('KubeVirt fleet agent: Secrets and the fleet ConfigMap', function () {
  this.timeout(30_000);
  let emu: ApiServerEmulator;
  let fleet: KubeVirtFleet | undefined;
  let base = '';
  const seen = async (user: string, password: string): Promise<string[] | number> => {
    const r = await fetch(`${base}/redfish/v1/Systems`, { headers: { authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` } });
    return r.status === 200 ? ((await r.json()) as { Members: { '@odata.id': string }[] }).Members.map((m) => m['@odata.id']) : r.status;
  };

  beforeEach(async () => {
    emu = await startEmulator();
    for (const vm of ['one', 'two']) emu.create(vmFixture({ name: vm, cdrom: false }));
  });
  afterEach(async () => {
    await fleet?.close();
    fleet = undefined;
    await emu.close();
  });

  const start = async (): Promise<KubeVirtFleet> => {
    fleet = await startShardFleet(emu, NS);
    base = `http://127.0.0.1:${fleet.agent.redfish.port}`;
    return fleet;
  };

  it('a missing Secret: the system runs without accounts, and gets one when the Secret appears; a Secret losing its password takes it away', async () => {
    emu.create(secret('s-two', { username: b64('admin'), password: b64('pw-two') }));
    emu.create(cm([sys('one'), sys('two')]));
    const f = await start();
    expect(f.agent.ids()).to.deep.equal(['default.one', 'default.two']);
    expect(await seen('admin', 'pw-two')).to.deep.equal(['/redfish/v1/Systems/default.two']);
    expect(await seen('admin', 'pw-one')).to.equal(401);

    emu.create(secret('s-one', { username: b64('root'), password: b64('pw-one') }));
    await until(async () => Array.isArray(await seen('root', 'pw-one')), 'account from the new Secret', 10_000);
    expect(await seen('root', 'pw-one')).to.deep.equal(['/redfish/v1/Systems/default.one']);

    const s = emu.get('v1', 'Secret', NS, 's-two')!;
    emu.update({ ...s, data: { username: b64('admin') } });
    await until(async () => (await seen('admin', 'pw-two')) === 401, 'account gone with the password', 10_000);
    expect(f.agent.ids(), 'the system stays served').to.include('default.two');
    // the store refuses a user name longer than IPMI's 16 bytes: no account, no crash
    emu.update({ ...emu.get('v1', 'Secret', NS, 's-two')!, data: { username: b64('a-very-long-user-name'), password: b64('pw') } });
    emu.update({ ...emu.get('v1', 'Secret', NS, 's-one')!, data: { username: b64('root'), password: b64('pw-one-2') } });
    await until(async () => Array.isArray(await seen('root', 'pw-one-2')), 'other systems carry on', 10_000);
    expect(await seen('a-very-long-user-name', 'pw')).to.equal(401);
  });

  it('entries of another namespace are ignored; a deleted ConfigMap serves nothing; a new one serves again', async () => {
    emu.create(secret('s-one', { username: b64('admin'), password: b64('pw-one') }));
    emu.create(cm([sys('one'), sys('x', 'other')]));
    const f = await start();
    expect(f.agent.ids()).to.deep.equal(['default.one']);
    emu.delete('v1', 'ConfigMap', NS, 'virtbmc-shard-0');
    await until(() => f.agent.ids().length === 0, 'no systems');
    expect(f.watches.size, 'the namespace watches end with the last system').to.equal(0);
    emu.create(cm([sys('one')]));
    await until(() => f.agent.ids().length === 1, 'served again');
    await until(async () => Array.isArray(await seen('admin', 'pw-one')), 'login again', 10_000);
  });

  it('a saved accounts document: loaded at start, re-seeded when the Secret\'s password changed meanwhile (and saved); a malformed one leaves the system without accounts until it is fixed', async () => {
    const doc = (seedPw: string) =>
      b64(JSON.stringify({
        version: 1,
        seed: seedDigest({ username: 'admin', password: seedPw }),
        seedId: 2,
        accounts: [
          { id: 2, username: 'admin', password: 'set-over-redfish', role: 'Administrator', enabled: true, passwordChangeRequired: false },
          { id: 3, username: 'op', password: 'op-pw', role: 'Operator', enabled: true, passwordChangeRequired: false },
        ],
      }));
    // one: saved while the Secret said pw-one-old, the Secret now says pw-one; two: saved and still current
    emu.create(secret('s-one', { username: b64('admin'), password: b64('pw-one'), [ACCOUNTS_KEY]: doc('pw-one-old') }));
    emu.create(secret('s-two', { username: b64('admin'), password: b64('pw-two'), [ACCOUNTS_KEY]: doc('pw-two') }));
    const twoVersion = emu.get('v1', 'Secret', NS, 's-two')!.metadata.resourceVersion;
    emu.create(cm([sys('one'), sys('two')]));
    await start();
    expect(await seen('admin', 'pw-one'), 'the Secret\'s new password wins for the seed account').to.deep.equal(['/redfish/v1/Systems/default.one']);
    expect(await seen('op', 'op-pw')).to.deep.equal(['/redfish/v1/Systems/default.one', '/redfish/v1/Systems/default.two']);
    expect(await seen('admin', 'set-over-redfish'), 'the saved password stays for an unchanged Secret').to.deep.equal(['/redfish/v1/Systems/default.two']);
    expect(await seen('admin', 'pw-two')).to.equal(401);
    const one = parseAccountsDocument(emu.get('v1', 'Secret', NS, 's-one')!.data as Record<string, string>, 's-one')!;
    expect(one.seed, 're-seeded list saved').to.equal(seedDigest({ username: 'admin', password: 'pw-one' }));
    expect(one.accounts.map((a) => [a.username, a.password])).to.deep.equal([['admin', 'pw-one'], ['op', 'op-pw']]);
    expect(emu.get('v1', 'Secret', NS, 's-two')!.metadata.resourceVersion, 'nothing to write for two').to.equal(twoVersion);

    // while running, the store is the newest list: a hand edit of the key is read at the next start,
    // as a per-VM agent does. Malformed there: no account, nothing written over it; fixed: accounts again
    await fleet!.close();
    fleet = undefined;
    const s1 = emu.get('v1', 'Secret', NS, 's-one')!;
    emu.update({ ...s1, data: { username: b64('root'), password: b64('pw-root'), [ACCOUNTS_KEY]: b64('{"version": 7}') } });
    await start();
    expect(fleet!.agent.ids(), 'the system is served').to.deep.equal(['default.one', 'default.two']);
    expect(await seen('op', 'op-pw')).to.deep.equal(['/redfish/v1/Systems/default.two']);
    expect(await seen('root', 'pw-root')).to.equal(401);
    expect(Buffer.from((emu.get('v1', 'Secret', NS, 's-one')!.data as Record<string, string>)[ACCOUNTS_KEY]!, 'base64').toString()).to.equal('{"version": 7}');
    const s2 = emu.get('v1', 'Secret', NS, 's-one')!;
    emu.update({ ...s2, data: { username: b64('root'), password: b64('pw-root') } });
    await until(async () => Array.isArray(await seen('root', 'pw-root')), 'the Secret\'s account back', 10_000);
  });

  it('secretCredentials and parseConfigMapRef', () => {
    expect(secretCredentials(secret('s', { username: b64('u'), password: b64('p') }))).to.deep.equal({ username: 'u', password: 'p' });
    expect(secretCredentials(secret('s', { username: b64('u'), password: '' }))).to.equal(undefined);
    expect(secretCredentials(undefined)).to.equal(undefined);
    expect(parseConfigMapRef('ns/virtbmc-shard-0')).to.deep.equal({ namespace: 'ns', name: 'virtbmc-shard-0' });
    for (const bad of ['ns', '/x', 'ns/', 'NS/x', 'a/b/c']) expect(() => parseConfigMapRef(bad), bad).to.throw(/namespace/);
  });
});
