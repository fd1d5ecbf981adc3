/**
 * Redfish volumes in shared mode end to end: one KubeVirt fleet agent (src/agent/kubevirt-fleet.ts)
 * serving two VMs with their own Secrets, on the apiserver emulator. A tenant creates a volume on its
 * own system only and its DataVolume and disk land in its own VM; the other tenant's volumes are
 * 404 for it (list, get, delete, create), as if they did not exist; Names and retry keys are per
 * system and per user.
 */
import { expect } from 'chai';
import type { KubeVirtFleet } from '../../src/agent/kubevirt-fleet.js';
import type { ApiServerEmulator, KubeObject } from '../emulator/index.js';
import { devicesOf, startEmulator, startShardFleet, vmFixture, vmOf } from '../backend/kubevirt-fixtures.js';

const NS = 'default';
const DV = 'cdi.kubevirt.io/v1beta1';
const GiB = 2 ** 30;
const b64 = (s: string): string => Buffer.from(s).toString('base64');
const secret = (name: string, username: string, password: string): KubeObject => ({ apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace: NS }, data: { username: b64(username), password: b64(password) } });
const sys = (vm: string) => ({ id: `${NS}.${vm}`, namespace: NS, vm, vmbmc: vm, vmbmcUid: `uid-${vm}`, secretName: `s-${vm}`, ipmiPort: 0 });
const CRED = { one: ['alice', 'alice-pw-1'], two: ['bob', 'bob-pw-22'] } as const;
type Tenant = keyof typeof CRED;
const vols = (vm: Tenant): string => `/redfish/v1/Systems/${NS}.${vm}/Storage/1/Volumes`;

describe('shared mode: Redfish volumes per tenant (KubeVirt fleet, two VMs)', function () {
  this.timeout(30_000);
  let emu: ApiServerEmulator;
  let fleet: KubeVirtFleet | undefined;
  let base = '';

  const call = async (who: Tenant, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; location: string | null; body: Record<string, unknown> }> => {
    const [u, p] = CRED[who];
    const res = await fetch(base + path, {
      method,
      headers: { authorization: `Basic ${b64(`${u}:${p}`)}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    return { status: res.status, location: res.headers.get('location'), body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
  };
  const members = (r: { body: Record<string, unknown> }): string[] => (r.body.Members as { '@odata.id': string }[]).map((m) => m['@odata.id']);
  const dataVolumes = (): string[] => emu.list(DV, 'DataVolume', NS).map((d) => d.metadata.name ?? '').sort();
  const bmcDisks = (vm: Tenant): string[] => devicesOf(vmOf(emu, vm)).disks.map((d) => String(d.name)).filter((n) => n.startsWith('bmc-volume-'));

  beforeEach(async () => {
    emu = await startEmulator();
    for (const vm of ['one', 'two'] as const) {
      emu.create(vmFixture({ name: vm, cdrom: false, runStrategy: 'Halted' }));
      emu.create(secret(`s-${vm}`, CRED[vm][0], CRED[vm][1]));
    }
    emu.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'virtbmc-shard-0', namespace: NS }, data: { 'fleet.json': JSON.stringify({ systems: [sys('one'), sys('two')] }) } });
    fleet = await startShardFleet(emu, NS);
    base = `http://127.0.0.1:${fleet.agent.redfish.port}`;
  });
  afterEach(async () => {
    await fleet?.close();
    fleet = undefined;
    await emu.close();
  });

  it("each tenant creates on its own system only, into its own VM; the other's volumes are 404 for it; Names and retry keys are per system", async () => {
    expect(fleet!.agent.ids()).to.deep.equal([`${NS}.one`, `${NS}.two`]);
    // the same Idempotency-Key from both tenants: two requests, not a retry of one another
    const a = await call('one', 'POST', vols('one'), { CapacityBytes: GiB, Name: 'data' }, { 'Idempotency-Key': 'k-1' });
    expect(a.status, JSON.stringify(a.body)).to.equal(201);
    expect(a.location).to.equal(`${vols('one')}/bmc-volume-1`);
    expect(a.body).to.deep.include({ '@odata.id': `${vols('one')}/bmc-volume-1`, Id: 'bmc-volume-1', Name: 'data', CapacityBytes: GiB });
    const b = await call('two', 'POST', `${vols('two')}/Members`, { CapacityBytes: 2 * GiB, Name: 'data' }, { 'Idempotency-Key': 'k-1' });
    expect(b.status, JSON.stringify(b.body)).to.equal(201);
    expect(b.location).to.equal(`${vols('two')}/bmc-volume-1`);
    expect(b.body).to.deep.include({ Name: 'data', CapacityBytes: 2 * GiB });

    // each DataVolume and disk in its own VM
    expect(dataVolumes()).to.deep.equal(['one-bmc-volume-1', 'two-bmc-volume-1']);
    for (const vm of ['one', 'two'] as const) {
      const dv = emu.get(DV, 'DataVolume', NS, `${vm}-bmc-volume-1`)!;
      expect(dv.metadata.ownerReferences?.map((r) => [r.kind, r.name, r.uid])).to.deep.equal([['VirtualMachine', vm, vmOf(emu, vm).metadata.uid]]);
      expect(dv.metadata.labels).to.deep.include({ 'bmc.kubevirt.io/vm': vm });
      expect(bmcDisks(vm)).to.deep.equal(['bmc-volume-1']);
    }
    expect(emu.get(DV, 'DataVolume', NS, 'one-bmc-volume-1')!.spec).to.deep.include({ storage: { resources: { requests: { storage: '1Gi' } } } });
    expect(emu.get(DV, 'DataVolume', NS, 'two-bmc-volume-1')!.spec).to.deep.include({ storage: { resources: { requests: { storage: '2Gi' } } } });

    // each lists its own
    expect(members(await call('one', 'GET', vols('one')))).to.deep.equal([`${vols('one')}/bmc-volume-1`]);
    expect(members(await call('two', 'GET', vols('two')))).to.deep.equal([`${vols('two')}/bmc-volume-1`]);

    // the other tenant's: 404 for list, get, delete and create, and nothing changes in the cluster
    const before = { dvs: dataVolumes(), one: bmcDisks('one'), two: bmcDisks('two') };
    for (const [who, other] of [['one', 'two'], ['two', 'one']] as const) {
      expect((await call(who, 'GET', vols(other))).status, `${who} lists ${other}`).to.equal(404);
      expect((await call(who, 'GET', `${vols(other)}/bmc-volume-1`)).status, `${who} gets ${other}'s`).to.equal(404);
      expect((await call(who, 'DELETE', `${vols(other)}/bmc-volume-1`)).status, `${who} deletes ${other}'s`).to.equal(404);
      expect((await call(who, 'POST', vols(other), { CapacityBytes: GiB })).status, `${who} creates on ${other}`).to.equal(404);
    }
    expect({ dvs: dataVolumes(), one: bmcDisks('one'), two: bmcDisks('two') }).to.deep.equal(before);

    // a retry of tenant one's request (same key, body, user) is that request: no second disk
    const retry = await call('one', 'POST', vols('one'), { CapacityBytes: GiB, Name: 'data' }, { 'Idempotency-Key': 'k-1' });
    expect([retry.status, retry.location]).to.deep.equal([201, `${vols('one')}/bmc-volume-1`]);
    expect(bmcDisks('one')).to.deep.equal(['bmc-volume-1']);

    // one's delete removes only its own
    expect((await call('one', 'DELETE', `${vols('one')}/bmc-volume-1`)).status).to.equal(204);
    await emu.waitFor(() => !emu.get(DV, 'DataVolume', NS, 'one-bmc-volume-1') || undefined);
    expect(dataVolumes()).to.deep.equal(['two-bmc-volume-1']);
    expect(bmcDisks('one')).to.deep.equal([]);
    expect(bmcDisks('two')).to.deep.equal(['bmc-volume-1']);
    expect(members(await call('one', 'GET', vols('one')))).to.deep.equal([]);
    expect(members(await call('two', 'GET', vols('two')))).to.deep.equal([`${vols('two')}/bmc-volume-1`]);
  });
});
