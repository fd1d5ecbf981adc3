/**
 * Volumes created over Redfish on the KubeVirt backend, against the emulator (whose CDI webhook and
 * VM webhook validate like upstream: test/emulator/cdi.ts, hotplug.ts): a blank DataVolume plus a
 * disk and volume in the VM spec, attached from the next start; deletion of only what it created.
 */
import { expect } from 'chai';
import type { KubeVirtMachine } from '../../src/backend/kubevirt/index.js';
import { isBackendError } from '../../src/backend/types.js';
import { MAX_BMC_VOLUMES } from '../../src/kube/names.js';
import { ATTACH_DEADLINE_MS, ORPHAN_GRACE_MS, VOLUME_REQUEST_ANNOTATION, volumeDataVolumeManifest } from '../../src/backend/kubevirt/volumes.js';
import type { VirtualMachine } from '../../src/backend/kubevirt/types.js';
import type { ApiServerEmulator, KubeObject } from '../emulator/index.js';
import { NS, VM_NAME, devicesOf, emulatorPerTest, newMachine, until, vmFixture, vmOf, waitPower } from './kubevirt-fixtures.js';

type Obj = Record<string, unknown>;
const DV = 'cdi.kubevirt.io/v1beta1';
const GiB = 2 ** 30;

const volumesOf = (vm: KubeObject): Obj[] => ((vm.spec as { template: { spec: { volumes: Obj[] } } }).template.spec.volumes ?? []);

describe('kubevirt backend: volumes (blank DataVolume + VM disk)', () => {
  let emu: ApiServerEmulator;
  let m: KubeVirtMachine | undefined;
  emulatorPerTest({}, { set: (e) => void (emu = e), get: () => emu });
  afterEach(() => {
    m = undefined;
  });

  it('creates a blank DataVolume sized like CDI (whole MiB, default storage class) and adds a virtio disk + dataVolume volume; listed, then ready', async () => {
    emu.create(vmFixture({ runStrategy: 'Halted' }));
    m = await newMachine(emu);
    const v = await m.createVolume({ capacityBytes: 10 ** 9, name: 'scratch' });
    expect(v).to.deep.include({ id: 'bmc-volume-1', name: 'scratch', attached: false, backing: `DataVolume ${VM_NAME}-bmc-volume-1` });
    // 10^9 bytes rounded up to 954 MiB (CDI aligns images to 1 MiB)
    expect(v.capacityBytes).to.equal(954 * 2 ** 20);
    const dv = emu.get(DV, 'DataVolume', NS, `${VM_NAME}-bmc-volume-1`)!;
    expect(dv.spec).to.deep.equal({ source: { blank: {} }, storage: { resources: { requests: { storage: '954Mi' } } } });
    expect(dv.metadata.labels).to.deep.include({ 'app.kubernetes.io/managed-by': 'virtbmc' });
    expect(dv.metadata.ownerReferences?.[0]).to.deep.include({ kind: 'VirtualMachine', name: VM_NAME });
    const vm = vmOf(emu);
    expect(devicesOf(vm).disks.map((d) => d.name)).to.deep.equal(['root', 'cdrom', 'bmc-volume-1']);
    expect(devicesOf(vm).disks[2]).to.deep.equal({ name: 'bmc-volume-1', disk: { bus: 'virtio' } });
    expect(volumesOf(vm)).to.deep.include({ name: 'bmc-volume-1', dataVolume: { name: `${VM_NAME}-bmc-volume-1` } });
    // the emulated CDI provisions it: provisioning, then ready
    await until(async () => (await m!.listVolumes())[0]?.state === 'ready', 'DataVolume Succeeded');
    const [listed] = await m.listVolumes();
    expect(listed).to.deep.include({ id: 'bmc-volume-1', name: 'scratch', capacityBytes: 954 * 2 ** 20, attached: false });
    // it is a drive of the VM too (from the spec)
    expect((await m.getSystemInfo()).disks?.map((d) => d.id)).to.include('bmc-volume-1');
  });

  it('a running VM gets the disk at its next start (a new VMI), not before', async () => {
    emu.create(vmFixture({ runStrategy: 'Always' }));
    m = await newMachine(emu);
    await waitPower(m, 'On');
    const v = await m.createVolume({ capacityBytes: GiB });
    expect(v.attached).to.equal(false);
    expect(emu.get(DV, 'DataVolume', NS, `${VM_NAME}-bmc-volume-1`)?.spec).to.deep.include({ storage: { resources: { requests: { storage: '1Gi' } } } });
    await until(async () => (await m!.listVolumes())[0]?.state === 'ready', 'ready');
    expect((await m.listVolumes())[0]?.attached).to.equal(false);
    await m.power('forceRestart');
    await until(async () => (await m!.listVolumes())[0]?.attached === true, 'attached after the restart');
  });

  it('deletes only what it created: disk, volume and DataVolume go; the user disks and a foreign DataVolume stay; root is no volume', async () => {
    emu.create(vmFixture({ runStrategy: 'Halted' }));
    // a DataVolume of slot 1's name that someone else made: the create skips to slot 2 and never touches it
    emu.create({ apiVersion: DV, kind: 'DataVolume', metadata: { name: `${VM_NAME}-bmc-volume-1`, namespace: NS }, spec: { source: { blank: {} }, storage: { resources: { requests: { storage: '1Gi' } } } } });
    m = await newMachine(emu);
    const v = await m.createVolume({ capacityBytes: GiB });
    expect(v.id).to.equal('bmc-volume-2');
    const err = await m.deleteVolume('root').catch((e: unknown) => e);
    expect(isBackendError(err, 'NotFound'), String(err)).to.equal(true);
    await m.deleteVolume('bmc-volume-2');
    const vm = vmOf(emu);
    expect(devicesOf(vm).disks.map((d) => d.name)).to.deep.equal(['root', 'cdrom']);
    expect(volumesOf(vm).map((x) => x.name)).to.deep.equal(['root']);
    await until(() => !emu.get(DV, 'DataVolume', NS, `${VM_NAME}-bmc-volume-2`), 'our DataVolume deleted');
    expect(emu.get(DV, 'DataVolume', NS, `${VM_NAME}-bmc-volume-1`), 'the foreign DataVolume').to.not.equal(undefined);
    expect(await m.listVolumes()).to.deep.equal([]);
    const again = await m.deleteVolume('bmc-volume-2').catch((e: unknown) => e);
    expect(isBackendError(again, 'NotFound')).to.equal(true);
  });

  it('a user disk named like a slot, with a DataVolume of its own, is no volume: skipped and never listed', async () => {
    const vm = vmFixture({ runStrategy: 'Halted' });
    const spec = (vm.spec as { template: { spec: { domain: { devices: { disks: Obj[] } }; volumes: Obj[] } } }).template.spec;
    spec.domain.devices.disks.push({ name: 'bmc-volume-1', disk: { bus: 'virtio' } });
    spec.volumes.push({ name: 'bmc-volume-1', dataVolume: { name: 'users-own' } });
    emu.create(vm);
    m = await newMachine(emu);
    expect(await m.listVolumes()).to.deep.equal([]);
    expect((await m.createVolume({ capacityBytes: GiB })).id).to.equal('bmc-volume-2');
    const err = await m.deleteVolume('bmc-volume-1').catch((e: unknown) => e);
    expect(isBackendError(err, 'NotFound')).to.equal(true);
    expect(devicesOf(vmOf(emu)).disks.map((d) => d.name)).to.include('bmc-volume-1');
  });

  it('concurrent creates take different slots (the resourceVersion guard); the limit is a Conflict; a failed VM patch deletes the new DataVolume', async () => {
    emu.create(vmFixture({ runStrategy: 'Halted' }));
    m = await newMachine(emu);
    const [a, b] = await Promise.all([m.createVolume({ capacityBytes: GiB }), m.createVolume({ capacityBytes: GiB })]);
    expect([a.id, b.id].sort()).to.deep.equal(['bmc-volume-1', 'bmc-volume-2']);
    expect(devicesOf(vmOf(emu)).disks.filter((d) => String(d.name).startsWith('bmc-volume-'))).to.have.length(2);
    // a patch the API refuses for good (500): nothing half made is left
    emu.faults.failNext(1, 500, (req) => req.method === 'PATCH' && req.path.includes('/virtualmachines/'));
    const failed = await m.createVolume({ capacityBytes: GiB }).catch((e: unknown) => e);
    expect(isBackendError(failed), String(failed)).to.equal(true);
    await until(() => !emu.get(DV, 'DataVolume', NS, `${VM_NAME}-bmc-volume-3`), 'rolled back');
    expect(devicesOf(vmOf(emu)).disks).to.have.length(4);
    for (let i = 2; i < MAX_BMC_VOLUMES; i++) await m.createVolume({ capacityBytes: GiB });
    expect(await m.listVolumes()).to.have.length(MAX_BMC_VOLUMES);
    const full = await m.createVolume({ capacityBytes: GiB }).catch((e: unknown) => e);
    expect(isBackendError(full, 'Conflict'), String(full)).to.equal(true);
  });

  // ---- DataVolumes left between the two steps (issue 13 follow-up): never lost, never a user's ----

  const dvOf = (slot: number): KubeObject | undefined => emu.get(DV, 'DataVolume', NS, `${VM_NAME}-bmc-volume-${slot}`);
  const vmPatch = (req: { method: string; path: string }): boolean => req.method === 'PATCH' && req.path.endsWith(`/virtualmachines/${VM_NAME}`);
  const dvDelete = (req: { method: string; path: string }): boolean => req.method === 'DELETE' && req.path.includes('/datavolumes/');
  /** A clock the test moves forward: the agent measures a DataVolume's age on it against the emulator's creationTimestamp. */
  const testClock = (): { now: () => number; advance: (ms: number) => void } => {
    let offset = 0;
    return { now: () => Date.now() + offset, advance: (ms) => void (offset += ms) };
  };

  it('a failed VM patch whose rollback fails too: the DataVolume is never listed, kept through its grace (slot skipped), then deleted by the next create, which reuses the slot', async () => {
    emu.create(vmFixture({ runStrategy: 'Halted' }));
    const clock = testClock();
    m = await newMachine(emu, { clock: clock.now });
    emu.faults.failNext(1, 500, vmPatch);
    emu.faults.failNext(1, 500, dvDelete);
    const failed = await m.createVolume({ capacityBytes: GiB, name: 'lost' }).catch((e: unknown) => e);
    expect(isBackendError(failed), String(failed)).to.equal(true);
    const orphan = dvOf(1);
    expect(orphan, 'left behind by the failed rollback').to.not.equal(undefined);
    expect(orphan!.metadata.annotations?.[VOLUME_REQUEST_ANNOTATION]).to.be.a('string');
    expect(await m.listVolumes()).to.deep.equal([]);
    // within the grace (a create elsewhere could still be attaching it): left alone, the next slot is taken
    const second = await m.createVolume({ capacityBytes: GiB });
    expect(second.id).to.equal('bmc-volume-2');
    expect(dvOf(1)?.metadata.uid).to.equal(orphan!.metadata.uid);
    clock.advance(ORPHAN_GRACE_MS);
    const third = await m.createVolume({ capacityBytes: 2 * GiB });
    expect(third.id, 'the swept slot is free again').to.equal('bmc-volume-1');
    const fresh = dvOf(1)!;
    expect(fresh.metadata.uid, 'a new DataVolume, not the orphan').to.not.equal(orphan!.metadata.uid);
    expect(fresh.spec).to.deep.include({ storage: { resources: { requests: { storage: '2Gi' } } } });
    expect((await m.listVolumes()).map((v) => [v.id, v.capacityBytes])).to.deep.equal([
      ['bmc-volume-1', 2 * GiB],
      ['bmc-volume-2', GiB],
    ]);
    expect(emu.list(DV, 'DataVolume', NS).map((d) => d.metadata.name).sort()).to.deep.equal([`${VM_NAME}-bmc-volume-1`, `${VM_NAME}-bmc-volume-2`]);
  });

  it('the API server out of reach right after the DataVolume is made (the VM patch and the rollback time out, never executed): the create fails, the DataVolume is kept through its grace, then swept', async function () {
    this.timeout(30_000);
    emu.create(vmFixture({ runStrategy: 'Halted' }));
    const clock = testClock();
    m = await newMachine(emu, { clock: clock.now, requestTimeoutMs: 1_500 });
    let cut = false;
    // once the DataVolume POST has come in, every later request waits longer than the client does
    emu.faults.failNext(1, 500, (req) => {
      if (!cut && req.method === 'POST' && req.path.endsWith('/datavolumes')) {
        cut = true;
        emu.faults.delayResponses(4_000);
      }
      return false;
    });
    const failed = await m.createVolume({ capacityBytes: GiB }).catch((e: unknown) => e);
    expect(isBackendError(failed), String(failed)).to.equal(true);
    expect(cut).to.equal(true);
    emu.faults.delayResponses(0);
    const orphan = dvOf(1);
    expect(orphan, 'made before the cut').to.not.equal(undefined);
    expect(devicesOf(vmOf(emu)).disks.map((d) => d.name)).to.deep.equal(['root', 'cdrom']);
    // the API back (a fresh VM read answers): a delete of no volume is NotFound, not Unavailable
    await until(async () => isBackendError(await m!.deleteVolume('bmc-volume-8').catch((e: unknown) => e), 'NotFound'), 'API reachable again');
    expect(dvOf(1)?.metadata.uid, 'kept within its grace').to.equal(orphan!.metadata.uid);
    clock.advance(ORPHAN_GRACE_MS);
    expect((await m.createVolume({ capacityBytes: GiB })).id).to.equal('bmc-volume-1');
    expect(dvOf(1)?.metadata.uid, 'swept, and the slot made again').to.not.equal(orphan!.metadata.uid);
    expect(emu.list(DV, 'DataVolume', NS)).to.have.length(1);
  });

  it('an agent that died between the DataVolume and the VM patch: the restarted agent sweeps it once old; a user\'s, an older agent\'s (no request mark), another VM\'s and a used one stay', async () => {
    emu.create(vmFixture({ runStrategy: 'Halted' }));
    const first = await newMachine(emu);
    // the first agent "dies" after making the DataVolume: its VM patch and its rollback both fail, then it is gone
    emu.faults.failNext(1, 500, vmPatch);
    emu.faults.failNext(1, 500, dvDelete);
    expect(isBackendError(await first.createVolume({ capacityBytes: GiB }).catch((e: unknown) => e))).to.equal(true);
    await first.close();
    const orphanUid = dvOf(1)!.metadata.uid;
    const vm = vmOf(emu) as VirtualMachine;
    const blank = { source: { blank: {} }, storage: { resources: { requests: { storage: '1Gi' } } } };
    // slot 2: the user's own DataVolume of that name (no labels); slot 3: ours but made before the request mark
    emu.create({ apiVersion: DV, kind: 'DataVolume', metadata: { name: `${VM_NAME}-bmc-volume-2`, namespace: NS }, spec: blank });
    const old = volumeDataVolumeManifest({ namespace: NS, vm, dvName: `${VM_NAME}-bmc-volume-3`, bytes: GiB, request: 'x' });
    delete old.metadata!.annotations![VOLUME_REQUEST_ANNOTATION];
    emu.create(old as KubeObject);
    // slot 4: marked, but owned by an earlier VM of the same name (another uid): not this VM's to judge
    const other = volumeDataVolumeManifest({ namespace: NS, vm: { ...vm, metadata: { ...vm.metadata, uid: 'an-earlier-vm' } }, dvName: `${VM_NAME}-bmc-volume-4`, bytes: GiB, request: 'y' });
    emu.create(other as KubeObject);
    // slot 5: marked and ours, used by the VM (added by hand under another disk name): in use, kept
    emu.create(volumeDataVolumeManifest({ namespace: NS, vm, dvName: `${VM_NAME}-bmc-volume-5`, bytes: GiB, request: 'z' }) as KubeObject);
    const edited = vmOf(emu);
    const spec = (edited.spec as { template: { spec: { domain: { devices: { disks: Obj[] } }; volumes: Obj[] } } }).template.spec;
    spec.domain.devices.disks.push({ name: 'extra', disk: { bus: 'virtio' } });
    spec.volumes.push({ name: 'extra', dataVolume: { name: `${VM_NAME}-bmc-volume-5` } });
    emu.update(edited);

    const clock = testClock();
    clock.advance(ORPHAN_GRACE_MS);
    // the restarted agent: its first sweep (right away here, 5 minutes after start by default)
    m = await newMachine(emu, { clock: clock.now, volumeSweepDelayMs: 0 });
    await emu.waitFor(() => dvOf(1) === undefined || undefined);
    // a create sweeps the same slots itself, awaited: whatever the start sweep would delete, this one would too
    const made = await m.createVolume({ capacityBytes: GiB });
    expect(made.id, 'the swept slot is free again').to.equal('bmc-volume-1');
    expect(dvOf(1)?.metadata.uid).to.not.equal(orphanUid);
    for (const slot of [2, 3, 4, 5]) expect(dvOf(slot), `slot ${slot}`).to.not.equal(undefined);
    expect(devicesOf(vmOf(emu)).disks.map((d) => d.name)).to.include('extra');
  });

  it('a retried create (same requestId): after a failed patch it attaches the DataVolume the first attempt made (same uid, no second); after a patch that landed it answers that volume again', async () => {
    emu.create(vmFixture({ runStrategy: 'Halted' }));
    const clock = testClock();
    m = await newMachine(emu, { clock: clock.now });
    emu.faults.failNext(1, 500, vmPatch);
    emu.faults.failNext(1, 500, dvDelete);
    expect(isBackendError(await m.createVolume({ capacityBytes: GiB, name: 'data', requestId: 'req-1' }).catch((e: unknown) => e))).to.equal(true);
    const uid = dvOf(1)!.metadata.uid;
    const retried = await m.createVolume({ capacityBytes: GiB, name: 'data', requestId: 'req-1' });
    expect(retried).to.deep.include({ id: 'bmc-volume-1', name: 'data', requestId: 'req-1' });
    expect(dvOf(1)!.metadata.uid, 'adopted, not made again').to.equal(uid);
    expect(volumesOf(vmOf(emu))).to.deep.include({ name: 'bmc-volume-1', dataVolume: { name: `${VM_NAME}-bmc-volume-1` } });
    // once more (its answer lost too): the same volume, nothing new
    expect((await m.createVolume({ capacityBytes: GiB, name: 'data', requestId: 'req-1' })).id).to.equal('bmc-volume-1');
    expect(emu.list(DV, 'DataVolume', NS)).to.have.length(1);
    expect(devicesOf(vmOf(emu)).disks.filter((d) => String(d.name).startsWith('bmc-volume-'))).to.have.length(1);
    // another request is another volume
    expect((await m.createVolume({ capacityBytes: GiB, requestId: 'req-2' })).id).to.equal('bmc-volume-2');

    // an orphan too old to adopt safely (a sweep may be about to delete it): a retry makes a new volume instead
    emu.faults.failNext(1, 500, vmPatch);
    emu.faults.failNext(1, 500, dvDelete);
    expect(isBackendError(await m.createVolume({ capacityBytes: GiB, requestId: 'req-3' }).catch((e: unknown) => e))).to.equal(true);
    const stale = dvOf(3)!.metadata.uid;
    clock.advance(ORPHAN_GRACE_MS - ATTACH_DEADLINE_MS);
    expect((await m.createVolume({ capacityBytes: GiB, requestId: 'req-3' })).id).to.equal('bmc-volume-4');
    expect(dvOf(3)?.metadata.uid, 'left to the sweep').to.equal(stale);
  });

  it('a VM patch that landed although its answer was an error: the create succeeds, nothing is rolled back', async () => {
    emu.create(vmFixture({ runStrategy: 'Halted' }));
    m = await newMachine(emu);
    // the API server applies the patch, then the answer is lost (here: replaced by a 500)
    emu.faults.failNext(1, 500, (req) => {
      if (!vmPatch(req)) return false;
      const vm = vmOf(emu);
      const tpl = (vm.spec as { template: { spec: { domain: { devices: { disks: Obj[] } }; volumes: Obj[] } } }).template.spec;
      tpl.domain.devices.disks.push({ name: 'bmc-volume-1', disk: { bus: 'virtio' } });
      tpl.volumes.push({ name: 'bmc-volume-1', dataVolume: { name: `${VM_NAME}-bmc-volume-1` } });
      emu.update(vm);
      return true;
    });
    const v = await m.createVolume({ capacityBytes: GiB, name: 'kept' });
    expect(v).to.deep.include({ id: 'bmc-volume-1', name: 'kept' });
    expect(dvOf(1)).to.not.equal(undefined);
    expect((await m.listVolumes()).map((x) => x.id)).to.deep.equal(['bmc-volume-1']);
  });

  it('refuses a bad size before any API call', async () => {
    emu.create(vmFixture({ runStrategy: 'Halted' }));
    m = await newMachine(emu);
    for (const capacityBytes of [0, -1, 1.5, Number.NaN, 2 ** 60]) {
      const err = await m.createVolume({ capacityBytes }).catch((e: unknown) => e);
      expect(isBackendError(err, 'InvalidArgument'), `${capacityBytes}: ${String(err)}`).to.equal(true);
    }
    expect(emu.list(DV, 'DataVolume', NS)).to.deep.equal([]);
  });
});
