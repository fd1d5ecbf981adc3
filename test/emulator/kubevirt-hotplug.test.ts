/**
 * The emulator's volume hotplug against upstream KubeVirt (see hotplug.ts for the sources): the
 * gates of the addvolume/removevolume API, what that API does to a CD-ROM drive, the webhook's disk
 * and volume rules, declarative hotplug of a CD into an empty drive (live, no RestartRequired), and
 * the older-cluster models.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import { expect } from 'chai';
import { startApiServer, type ApiServerEmulator, type EmulatorOptions, type KubeObject } from './index.js';
import { rawRequest, vmiSubresource, vmSubresource, type RawReply } from './helpers.js';

const NS = 'default';
type Obj = Record<string, unknown>;
interface VolStatus {
  name: string;
  phase?: string;
  reason?: string;
  message?: string;
  hotplugVolume?: Obj;
}

/** A VM with a root disk and an empty CD-ROM drive (no volume), as DeclarativeHotplugVolumes allows. */
function vmWithDrive(name: string, runStrategy: string, extraDisks: Obj[] = []): KubeObject {
  return {
    apiVersion: 'kubevirt.io/v1',
    kind: 'VirtualMachine',
    metadata: { name, namespace: NS },
    spec: {
      runStrategy,
      template: {
        spec: {
          domain: { devices: { disks: [{ name: 'root', disk: { bus: 'virtio' } }, { name: 'cdrom', cdrom: { bus: 'sata' } }, ...extraDisks] } },
          volumes: [{ name: 'root', containerDisk: { image: 'img' } }],
        },
      },
    },
  };
}

function dataVolume(name: string): KubeObject {
  return {
    apiVersion: 'cdi.kubevirt.io/v1beta1',
    kind: 'DataVolume',
    metadata: { name, namespace: NS },
    spec: { source: { http: { url: 'http://127.0.0.1/x.iso' } }, storage: { resources: { requests: { storage: '1Gi' } } } },
  };
}

const CD_VOLUME = { name: 'cdrom', dataVolume: { name: 'iso', hotpluggable: true } };

describe('apiserver emulator: KubeVirt volume hotplug and CD-ROM inject/eject', function () {
  this.timeout(15000);
  let emu: ApiServerEmulator;
  let kc: KubeConfig;

  async function start(opts: EmulatorOptions = {}): Promise<void> {
    emu = await startApiServer({ vmiPhaseDelayMs: 5, vmiStopDelayMs: 5, dataVolumeImportMs: 120, ...opts });
    kc = emu.makeKubeConfig();
  }
  afterEach(async () => {
    expect(emu.controllerErrors).to.deep.equal([]);
    await emu.close();
  });

  const vm = (name = 'vm'): KubeObject => emu.get('kubevirt.io/v1', 'VirtualMachine', NS, name)!;
  const vmi = (name = 'vm'): KubeObject | undefined => emu.get('kubevirt.io/v1', 'VirtualMachineInstance', NS, name);
  const tpl = (name = 'vm'): { volumes: Obj[]; domain: { devices: { disks: Obj[] } } } =>
    (vm(name).spec as { template: { spec: { volumes: Obj[]; domain: { devices: { disks: Obj[] } } } } }).template.spec;
  const vmiSpec = (): { volumes: Obj[]; domain: { devices: { disks: Obj[] } } } => vmi()!.spec as { volumes: Obj[]; domain: { devices: { disks: Obj[] } } };
  const volStatus = (name: string): VolStatus | undefined => ((vmi()?.status as { volumeStatus?: VolStatus[] } | undefined)?.volumeStatus ?? []).find((s) => s.name === name);
  const restartRequired = (): boolean =>
    ((vm().status as { conditions?: { type: string; status: string }[] }).conditions ?? []).some((c) => c.type === 'RestartRequired' && c.status === 'True');
  const running = (): Promise<KubeObject> =>
    emu.waitFor(() => {
      const v = vmi();
      return (v?.status as { phase?: string } | undefined)?.phase === 'Running' && (vm().status as { printableStatus?: string }).printableStatus === 'Running' && v;
    });
  const patchVm = (ops: unknown[]): Promise<RawReply> =>
    rawRequest(kc, 'PATCH', `/apis/kubevirt.io/v1/namespaces/${NS}/virtualmachines/vm`, ops, 'application/json-patch+json');
  const message = (r: RawReply): string => (r.body as { message?: string }).message ?? '';
  /** the emulated controllers have run every step they had scheduled */
  const settle = (): Promise<void> => emu.settled();

  it('webhook: an empty CD-ROM drive needs DeclarativeHotplugVolumes; disks need volumes; names are unique', async () => {
    await start();
    // v1.9 default: DeclarativeHotplugVolumes is Beta, so on
    expect(emu.kubevirt.hotplugGates()).to.deep.equal({ declarativeHotplugVolumes: true, hotplugVolumes: false });
    emu.create(vmWithDrive('vm', 'Halted'));
    const dupDisk = () => emu.create(vmWithDrive('dup', 'Halted', [{ name: 'cdrom', cdrom: { bus: 'sata' } }]));
    expect(dupDisk).to.throw(
      'admission webhook "virtualmachine-validator.kubevirt.io" denied the request: spec.template.spec.domain.devices.disks[2] and spec.template.spec.domain.devices.disks[1] must not have the same Name.',
    );
    const noVolume = vmWithDrive('novol', 'Halted', [{ name: 'data', disk: { bus: 'virtio' } }]);
    expect(() => emu.create(noVolume)).to.throw("spec.template.spec.domain.devices.disks[2].Name 'data' not found.");
    // one source per volume, and a dataVolume volume names its DataVolume (validateVolumes)
    const twoSources = await patchVm([{ op: 'add', path: '/spec/template/spec/volumes/-', value: { name: 'cdrom', containerDisk: { image: 'a' }, dataVolume: { name: 'x' } } }]);
    expect(twoSources.status).to.equal(422);
    expect(message(twoSources)).to.contain('spec.template.spec.volumes[1] must have exactly one source type set');
    const unnamed = await patchVm([{ op: 'add', path: '/spec/template/spec/volumes/-', value: { name: 'cdrom', dataVolume: {} } }]);
    expect(unnamed.status).to.equal(422);
    expect(message(unnamed)).to.contain("DataVolume 'name' must be set");
    const r = await patchVm([{ op: 'add', path: '/spec/template/spec/volumes/-', value: { name: 'root', containerDisk: { image: 'other' } } }]);
    expect(r.status).to.equal(422);
    expect(message(r)).to.contain('spec.template.spec.volumes[1] and spec.template.spec.volumes[0] must not have the same Name.');

    // a cluster without the gate (KubeVirt < 1.9 defaults): the empty drive itself is invalid
    emu.kubevirt.setFeatureGates({ disabledFeatureGates: ['DeclarativeHotplugVolumes'] });
    expect(() => emu.create(vmWithDrive('old', 'Halted'))).to.throw('DeclarativeHotplugVolumes feature gate not enabled, cannot define an empty CD-ROM disk');
    // loading the existing drive makes it valid again; emptying it is refused
    emu.create(dataVolume('iso'));
    expect((await patchVm([{ op: 'add', path: '/spec/template/spec/volumes/-', value: CD_VOLUME }])).status).to.equal(200);
    const eject = await patchVm([{ op: 'remove', path: '/spec/template/spec/volumes/1' }]);
    expect(eject.status).to.equal(422);
    expect(message(eject)).to.contain('DeclarativeHotplugVolumes feature gate not enabled, cannot define an empty CD-ROM disk');
  });

  it('addvolume/removevolume: 400 without a hotplug gate; named like a CD-ROM drive it duplicates the disk; removevolume takes the drive away', async () => {
    await start({ kubevirtDisabledFeatureGates: ['DeclarativeHotplugVolumes'] });
    emu.create({ ...vmWithDrive('vm', 'Always'), spec: { ...(vmWithDrive('vm', 'Always').spec as Obj), template: { spec: { domain: { devices: { disks: [{ name: 'root', disk: { bus: 'virtio' } }] } }, volumes: [{ name: 'root', containerDisk: { image: 'img' } }] } } } });
    await running();
    const add = { name: 'cdrom', disk: { cdrom: { bus: 'sata' } }, volumeSource: { dataVolume: { name: 'iso' } } };
    for (const r of [await vmSubresource(kc, NS, 'vm', 'addvolume', add), await vmSubresource(kc, NS, 'vm', 'removevolume', { name: 'cdrom' }), await vmiSubresource(kc, NS, 'vm', 'addvolume', add)]) {
      expect(r.status).to.equal(400);
      expect(message(r)).to.equal('Enable DeclarativeHotplugVolumes or HotplugVolumes feature gate to use this API.');
    }
    await emu.close();

    // v1.9 defaults: the VM API patches the template (ApplyVolumeRequestOnVMISpec appends a disk named like the volume)
    await start();
    emu.create(vmWithDrive('vm', 'Always'));
    await running();
    const dup = await vmSubresource(kc, NS, 'vm', 'addvolume', add);
    expect(dup.status).to.equal(422);
    expect(message(dup)).to.equal(
      'admission webhook "virtualmachine-validator.kubevirt.io" denied the request: spec.template.spec.domain.devices.disks[2] and spec.template.spec.domain.devices.disks[1] must not have the same Name.',
    );
    expect(tpl().domain.devices.disks.map((d) => d.name)).to.deep.equal(['root', 'cdrom']);
    // ephemeral hotplug into a VM's VMI is HotplugVolumes-only
    const eph = await vmiSubresource(kc, NS, 'vm', 'addvolume', { ...add, name: 'other', disk: { disk: { bus: 'scsi' } } });
    expect(eph.status).to.equal(400);
    expect(message(eph)).to.equal(`VMI ${NS}/vm is owned by a VM`);
    // a drive loaded the declarative way, then removevolume: the disk of that name goes too
    emu.create(dataVolume('iso'));
    expect((await patchVm([{ op: 'add', path: '/spec/template/spec/volumes/-', value: CD_VOLUME }])).status).to.equal(200);
    const rm = await vmSubresource(kc, NS, 'vm', 'removevolume', { name: 'cdrom' });
    expect(rm.status).to.equal(202);
    expect(tpl().domain.devices.disks.map((d) => d.name)).to.deep.equal(['root']);
    expect(tpl().volumes.map((v) => v.name)).to.deep.equal(['root']);
    // and a CD-ROM drive removed from a running VM needs a restart (validLiveUpdateDisks)
    await emu.waitFor(restartRequired);
  });

  it('HotplugVolumes (legacy): a CD-ROM cannot be hot-plugged as a new device (ValidateHotplugDiskConfiguration)', async () => {
    await start({ kubevirtFeatureGates: ['HotplugVolumes'] });
    emu.create(vmWithDrive('vm', 'Always'));
    await running();
    const r = await vmSubresource(kc, NS, 'vm', 'addvolume', { name: 'cd2', disk: { cdrom: { bus: 'sata' } }, volumeSource: { dataVolume: { name: 'iso' } } });
    expect(r.status).to.equal(422);
    expect(message(r)).to.contain("AddVolume request for [cd2] requires diskDevice of type 'disk' or 'lun' to be used.");
    expect((vm().status as Obj).volumeRequests).to.equal(undefined);
  });

  it('declarative hotplug: a volume named like the empty drive reaches the running VMI, Ready once imported, no RestartRequired; removing it empties the drive live', async () => {
    // phases slow enough to watch each attach step
    await start({ vmiPhaseDelayMs: 40 });
    emu.create(vmWithDrive('vm', 'Always'));
    const first = await running();
    expect((first.spec as { volumes: Obj[] }).volumes.map((v) => v.name)).to.deep.equal(['root']);
    expect(volStatus('cdrom')).to.equal(undefined);
    emu.create(dataVolume('iso'));
    expect((await patchVm([{ op: 'test', path: '/metadata/resourceVersion', value: vm().metadata.resourceVersion }, { op: 'add', path: '/spec/template/spec/volumes/-', value: CD_VOLUME }])).status).to.equal(200);
    // synced into the VMI spec right away, the drive's disk not duplicated
    await emu.waitFor(() => vmiSpec().volumes.some((v) => v.name === 'cdrom'));
    expect(vmiSpec().volumes.find((v) => v.name === 'cdrom')).to.deep.equal(CD_VOLUME);
    expect(vmiSpec().domain.devices.disks.map((d) => d.name)).to.deep.equal(['root', 'cdrom']);
    // while CDI imports, no attachment pod: the phase comes from the PVC
    const importing = await emu.waitFor(() => volStatus('cdrom'));
    expect(importing).to.deep.include({ phase: 'Bound', reason: 'PVCNotReady', message: 'PVC is in phase Bound' });
    // then the attachment pod, the mount into virt-launcher, the domain: one step after the other
    const attached = await emu.waitFor(() => (volStatus('cdrom')?.phase === 'AttachedToNode' ? volStatus('cdrom') : undefined));
    expect(attached).to.deep.include({ reason: 'SuccessfulCreate', message: 'Created hotplug attachment pod hp-volume-cdrom, for volume cdrom' });
    const mounted = await emu.waitFor(() => (volStatus('cdrom')?.phase === 'MountedToPod' ? volStatus('cdrom') : undefined));
    expect(mounted).to.deep.include({ reason: 'VolumeMountedToPod' });
    const ready = await emu.waitFor(() => (volStatus('cdrom')?.phase === 'Ready' ? volStatus('cdrom') : undefined));
    expect(ready).to.deep.include({ reason: 'VolumeReady', message: 'Successfully attach hotplugged volume cdrom to VM' });
    expect(ready.hotplugVolume).to.have.property('attachPodName');
    const dv = emu.get('cdi.kubevirt.io/v1beta1', 'DataVolume', NS, 'iso')!;
    expect((dv.status as { phase: string }).phase).to.equal('Succeeded');
    await settle();
    expect(restartRequired()).to.equal(false);
    expect(vmi()!.metadata.uid).to.equal(first.metadata.uid);

    // eject: remove only the volume (tested by index and name first); the drive stays declared
    const i = tpl().volumes.findIndex((v) => v.name === 'cdrom');
    const ej = await patchVm([
      { op: 'test', path: `/spec/template/spec/volumes/${i}/name`, value: 'cdrom' },
      { op: 'test', path: `/spec/template/spec/volumes/${i}/dataVolume/name`, value: 'iso' },
      { op: 'remove', path: `/spec/template/spec/volumes/${i}` },
    ]);
    expect(ej.status).to.equal(200);
    await emu.waitFor(() => !vmiSpec().volumes.some((v) => v.name === 'cdrom'));
    expect(vmiSpec().domain.devices.disks.map((d) => d.name)).to.deep.equal(['root', 'cdrom']);
    expect(tpl().domain.devices.disks.map((d) => d.name)).to.deep.equal(['root', 'cdrom']);
    // unplugging: the entry keeps its Ready phase while the attachment pod exists (storage.go
    // phaseForUnpluggedVolume), then says unmounted, then goes
    expect(volStatus('cdrom')).to.deep.include({ phase: 'Ready', reason: 'VolumeReady' });
    const unmounted = await emu.waitFor(() => (volStatus('cdrom')?.phase === 'UnMountedFromPod' ? volStatus('cdrom') : undefined));
    expect(unmounted).to.deep.include({ reason: 'VolumeUnMountedFromPod' });
    await emu.waitFor(() => volStatus('cdrom') === undefined);
    await settle();
    expect(restartRequired()).to.equal(false);
    expect(vmi()!.metadata.uid).to.equal(first.metadata.uid);
  });

  it('a new CD-ROM drive on a running VM is not live: RestartRequired', async () => {
    await start();
    emu.create(vmWithDrive('vm', 'Always'));
    await running();
    expect((await patchVm([{ op: 'add', path: '/spec/template/spec/domain/devices/disks/-', value: { name: 'cd2', cdrom: { bus: 'sata' } } }])).status).to.equal(200);
    await emu.waitFor(restartRequired);
    expect(vmiSpec().domain.devices.disks.map((d) => d.name)).to.deep.equal(['root', 'cdrom']);
  });

  it('a stopped VM: the loaded drive is used at the next start; with HotplugVolumes on (or no declarative hotplug) a running VMI never gets it', async () => {
    await start();
    emu.create(vmWithDrive('vm', 'Halted'));
    emu.create(dataVolume('iso'));
    expect((await patchVm([{ op: 'add', path: '/spec/template/spec/volumes/-', value: CD_VOLUME }])).status).to.equal(200);
    expect((await vmSubresource(kc, NS, 'vm', 'start')).status).to.equal(202);
    await running();
    expect(vmiSpec().volumes.map((v) => v.name)).to.deep.equal(['root', 'cdrom']);
    await emu.waitFor(() => volStatus('cdrom')?.phase === 'Ready');
    await emu.close();

    await start({ kubevirtFeatureGates: ['HotplugVolumes'] });
    emu.create(vmWithDrive('vm', 'Always'));
    await running();
    emu.create(dataVolume('iso'));
    expect((await patchVm([{ op: 'add', path: '/spec/template/spec/volumes/-', value: CD_VOLUME }])).status).to.equal(200);
    await settle();
    await settle();
    // handleDeclarativeVolumeHotplug is off while HotplugVolumes is on: the VMI keeps its volumes
    expect(vmiSpec().volumes.map((v) => v.name)).to.deep.equal(['root']);
    expect(volStatus('cdrom')).to.equal(undefined);
  });
});
