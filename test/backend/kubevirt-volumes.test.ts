/**
 * Volumes created over Redfish on the KubeVirt backend, against the emulator (whose CDI webhook and
 * VM webhook validate like upstream: test/emulator/cdi.ts, hotplug.ts): a blank DataVolume plus a
 * disk and volume in the VM spec, attached from the next start; deletion of only what it created.
 */
import { expect } from 'chai';
import type { KubeVirtMachine } from '../../src/backend/kubevirt/index.js';
import { isBackendError } from '../../src/backend/types.js';
import { MAX_BMC_VOLUMES } from '../../src/kube/names.js';
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
