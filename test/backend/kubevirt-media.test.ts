/**
 * KubeVirt backend virtual media against the emulator: one slot per CD-ROM drive, HEAD sizing on a
 * loopback image server, DataVolume import progress, loading the drive by a template volume named
 * like it (declarative hotplug into the running VMI, Inserted only once the VMI reports it Ready),
 * eject that leaves the drive declared, the clear errors, and clusters without declarative hotplug.
 */
import { expect } from 'chai';
import type { KubeVirtMachine } from '../../src/backend/kubevirt/index.js';
import { isBackendError, type MachineEvent, type MediaSlot } from '../../src/backend/types.js';
import type { ApiServerEmulator, KubeObject } from '../emulator/index.js';
import {
  NS,
  captureLogger,
  closeAll,
  emulatorPerTest,
  newMachine,
  startEmulator,
  startImageServer,
  until,
  vmFixture,
  vmOf,
  vmiOf,
  waitPower,
  type ImageServer,
} from './kubevirt-fixtures.js';

const DV = 'vm1-vmedia-cdrom';
const GiB = 2 ** 30;

function dvOf(emu: ApiServerEmulator, name = DV): KubeObject | undefined {
  return emu.get('cdi.kubevirt.io/v1beta1', 'DataVolume', NS, name);
}

type Obj = Record<string, unknown>;
function templateSpec(vm: KubeObject): { volumes?: Obj[]; domain: { devices: { disks: Obj[] } } } {
  return (vm.spec as { template: { spec: { volumes?: Obj[]; domain: { devices: { disks: Obj[] } } } } }).template.spec;
}
function vmiVolumeStatus(emu: ApiServerEmulator, name: string): Obj | undefined {
  return ((vmiOf(emu)?.status as { volumeStatus?: Obj[] } | undefined)?.volumeStatus ?? []).find((s) => s.name === name);
}
function restartRequired(emu: ApiServerEmulator): boolean {
  return ((vmOf(emu).status as { conditions?: { type: string; status: string }[] }).conditions ?? []).some((c) => c.type === 'RestartRequired' && c.status === 'True');
}
async function slotState(m: KubeVirtMachine, id: string, state: MediaSlot['state'], timeoutMs = 4000): Promise<MediaSlot> {
  return until(async () => {
    const s = (await m.listMedia()).find((x) => x.id === id);
    return s?.state === state ? s : undefined;
  }, `${id} ${state}`, timeoutMs);
}

describe('kubevirt backend: virtual media', function () {
  this.timeout(20000);
  let emu: ApiServerEmulator;
  let images: ImageServer;
  let m: KubeVirtMachine | undefined;

  emulatorPerTest({ dataVolumeImportMs: 150 }, {
    set: async (e) => {
      emu = e;
      images = await startImageServer({ '/os.iso': 3 * GiB, '/tiny.iso': 1000, '/redirect.iso': 1, '/signed.iso?X-Amz-Signature=sekrit': 1000 });
    },
    get: () => emu,
    others: () => [images],
  });

  it('logs the image URL without its query (a pre-signed URL carries its token there)', async () => {
    emu.create(vmFixture({ runStrategy: 'Always' }));
    const cap = captureLogger();
    m = await newMachine(emu, { logger: cap.logger });
    await waitPower(m, 'On');
    await m.insertMedia('cdrom', { image: images.url('/signed.iso?X-Amz-Signature=sekrit') });
    const lines = cap.lines();
    expect(lines.some((l) => l.includes('virtual media inserted') && l.includes(images.url('/signed.iso')))).to.equal(true);
    expect(lines.join('\n')).to.not.contain('sekrit');
  });

  it('running VM, empty CD-ROM drive: insert loads a volume named like the drive, Inserted once the VMI has it Ready; eject keeps the drive', async () => {
    emu.create(vmFixture({ runStrategy: 'Always' }));
    m = await newMachine(emu, { storageClassName: 'fast-ssd' });
    await waitPower(m, 'On');
    const vmiUid = vmiOf(emu)!.metadata.uid;
    expect(await m.listMedia()).to.deep.equal([{ id: 'cdrom', kind: 'cd', name: 'CD-ROM cdrom (sata)', state: 'empty', writeProtected: true }]);
    const events: MediaSlot[] = [];
    m.on((e: MachineEvent) => {
      if (e.type === 'media') events.push(e.slot);
    });

    const slot = await m.insertMedia('cdrom', { image: images.url('/os.iso') });
    expect(slot.state).to.equal('inserting');
    expect(slot.image).to.equal(images.url('/os.iso'));
    // the agent's only own outbound request: one HEAD to the URL it was given
    expect(images.requests).to.deep.equal([{ method: 'HEAD', url: '/os.iso' }]);

    const dv = dvOf(emu)!;
    const storage = (dv.spec as { storage: { resources: { requests: { storage: string } }; storageClassName?: string } }).storage;
    expect(storage.resources.requests.storage).to.equal('4Gi'); // 3 GiB + 10 % → 3.3 → 4 GiB
    expect(storage.storageClassName).to.equal('fast-ssd');
    expect((dv.spec as { source: { http: { url: string } } }).source.http.url).to.equal(images.url('/os.iso'));
    expect(dv.metadata.ownerReferences?.[0]).to.deep.include({ kind: 'VirtualMachine', name: 'vm1' });

    // the drive is loaded through the template, never through addvolume (which would add a second disk)
    expect(emu.kubevirt.actions.filter((a) => a.action === 'addvolume' || a.action === 'removevolume')).to.deep.equal([]);
    const tpl = templateSpec(vmOf(emu));
    expect(tpl.volumes?.find((v) => v.name === 'cdrom')).to.deep.equal({ name: 'cdrom', dataVolume: { name: DV, hotpluggable: true } });
    expect(tpl.domain.devices.disks.map((d) => d.name)).to.deep.equal(['root', 'cdrom']);

    const done = await slotState(m, 'cdrom', 'inserted');
    expect(done).to.deep.include({ state: 'inserted', image: images.url('/os.iso'), progress: 100 });
    // Inserted is read back from the VMI: its volumeStatus has the volume Ready
    expect(vmiVolumeStatus(emu, 'cdrom')).to.deep.include({ phase: 'Ready', reason: 'VolumeReady' });
    expect(events.some((e) => e.state === 'inserting' && e.progress !== undefined && e.progress > 0 && e.progress < 100)).to.equal(true);
    expect(events.at(-1)!.state).to.equal('inserted');
    expect(events.every((e) => e.id === 'cdrom')).to.equal(true);
    // live: the same VMI, and KubeVirt flags nothing
    expect(vmiOf(emu)!.metadata.uid).to.equal(vmiUid);
    expect(restartRequired(emu)).to.equal(false);

    // a second insert without eject is refused
    const again = await m.insertMedia('cdrom', { image: images.url('/tiny.iso') }).catch((e: unknown) => e);
    expect(isBackendError(again, 'Conflict'), String(again)).to.equal(true);

    const ejected = await m.ejectMedia('cdrom');
    expect(ejected.state).to.equal('empty');
    await until(() => dvOf(emu) === undefined, 'DataVolume deleted');
    // the volume is gone, the CD-ROM drive itself stays declared (in the VM and the VMI)
    expect(templateSpec(vmOf(emu)).domain.devices.disks.map((d) => d.name)).to.deep.equal(['root', 'cdrom']);
    expect(templateSpec(vmOf(emu)).volumes?.some((v) => v.name === 'cdrom')).to.equal(false);
    await until(() => !((vmiOf(emu)!.spec as { volumes: Obj[] }).volumes.some((v) => v.name === 'cdrom')), 'volume unplugged from the VMI');
    expect(((vmiOf(emu)!.spec as { domain: { devices: { disks: Obj[] } } }).domain.devices.disks).map((d) => d.name)).to.deep.equal(['root', 'cdrom']);
    expect(await m.ejectMedia('cdrom')).to.deep.include({ state: 'empty' }); // idempotent
    expect(vmiOf(emu)!.metadata.uid).to.equal(vmiUid);
    expect(restartRequired(emu)).to.equal(false);
    expect(emu.kubevirt.actions.filter((a) => a.action === 'addvolume' || a.action === 'removevolume')).to.deep.equal([]);

    // and again: the drive is there for the next insert
    const second = await m.insertMedia('cdrom', { image: images.url('/tiny.iso') });
    expect(second.state).to.equal('inserting');
    expect((dvOf(emu)!.spec as { storage: { resources: { requests: { storage: string } } } }).storage.resources.requests.storage).to.equal('1Gi');
    await slotState(m, 'cdrom', 'inserted');
  });

  it('eject then insert at once on a running VM: not Inserted while the VMI still unplugs the previous medium', async () => {
    // phases slow enough that the second import ends while the ejected medium's entry still reads Ready
    const slow = await startEmulator({ dataVolumeImportMs: 20, vmiPhaseDelayMs: 400 });
    try {
      slow.create(vmFixture({ runStrategy: 'Always' }));
      const mm = await newMachine(slow);
      await waitPower(mm, 'On', 15000);
      const vmiSpecHas = (): boolean => ((vmiOf(slow)!.spec as { volumes?: Obj[] }).volumes ?? []).some((v) => v.name === 'cdrom');
      await mm.insertMedia('cdrom', { image: images.url('/tiny.iso') });
      await slotState(mm, 'cdrom', 'inserted', 15000);
      // what the VMI looked like each time the slot was reported inserted from now on
      const seenAtInserted: { inSpec: boolean; phase: unknown }[] = [];
      mm.on((e: MachineEvent) => {
        if (e.type === 'media' && e.slot.state === 'inserted') seenAtInserted.push({ inSpec: vmiSpecHas(), phase: vmiVolumeStatus(slow, 'cdrom')?.phase });
      });
      await mm.ejectMedia('cdrom');
      const second = await mm.insertMedia('cdrom', { image: images.url('/tiny.iso') });
      expect(second.state).to.equal('inserting');
      await slotState(mm, 'cdrom', 'inserted', 15000);
      expect(vmiSpecHas()).to.equal(true);
      expect(seenAtInserted.length).to.be.greaterThan(0);
      expect(seenAtInserted.every((x) => x.inSpec && x.phase === 'Ready'), JSON.stringify(seenAtInserted)).to.equal(true);
    } finally {
      await closeAll(slow);
    }
  });

  it('stopped VM: inserted once imported (used at the next start); the next VMI has the CD attached', async () => {
    emu.create(vmFixture({ runStrategy: 'Halted' }));
    m = await newMachine(emu);
    await m.insertMedia('cdrom', { image: images.url('/os.iso') });
    await slotState(m, 'cdrom', 'inserted');
    expect(vmiOf(emu)).to.equal(undefined);
    await m.power('on');
    await waitPower(m, 'On');
    expect(((vmiOf(emu)!.spec as { volumes: Obj[] }).volumes).map((v) => v.name)).to.include('cdrom');
    await until(() => vmiVolumeStatus(emu, 'cdrom')?.phase === 'Ready', 'volume Ready in the VMI');
    // the agent's watch follows a moment later
    await slotState(m, 'cdrom', 'inserted');
    // the agent derives it all from the cluster: a new agent sees the same
    await m.close();
    m = await newMachine(emu);
    expect((await m.listMedia())[0]).to.deep.include({ state: 'inserted', image: images.url('/os.iso') });
  });

  it('one slot per CD-ROM drive, each with its own DataVolume', async () => {
    emu.create(vmFixture({ runStrategy: 'Halted', extraCdroms: ['cd2'] }));
    m = await newMachine(emu);
    expect((await m.listMedia()).map((s) => [s.id, s.name, s.state])).to.deep.equal([
      ['cdrom', 'CD-ROM cdrom (sata)', 'empty'],
      ['cd2', 'CD-ROM cd2 (scsi)', 'empty'],
    ]);
    await m.insertMedia('cd2', { image: images.url('/tiny.iso') });
    expect(dvOf(emu, 'vm1-vmedia-cd2')).to.not.equal(undefined);
    expect(dvOf(emu)).to.equal(undefined);
    await slotState(m, 'cd2', 'inserted');
    expect((await m.listMedia()).find((s) => s.id === 'cdrom')!.state).to.equal('empty');
    expect(templateSpec(vmOf(emu)).volumes?.find((v) => v.name === 'cd2')).to.deep.equal({ name: 'cd2', dataVolume: { name: 'vm1-vmedia-cd2', hotpluggable: true } });
    // a drive added later gets its slot (and its watch)
    const vm = vmOf(emu);
    templateSpec(vm).domain.devices.disks.push({ name: 'cd3', cdrom: { bus: 'scsi' } });
    emu.update(vm);
    await until(async () => (await m!.listMedia()).some((s) => s.id === 'cd3'), 'slot cd3');
    await m.insertMedia('cd3', { image: images.url('/tiny.iso') });
    await slotState(m, 'cd3', 'inserted');
  });

  it('the template patch is guarded: a conflict is re-read and retried, a refusal undoes the DataVolume; concurrent inserts run once', async () => {
    emu.create(vmFixture({ runStrategy: 'Halted' }));
    m = await newMachine(emu);
    const vmPatch = (r: { method: string; path: string }) => r.method === 'PATCH' && r.path.endsWith('/virtualmachines/vm1');
    const patches = () => emu.audit.filter((a) => a.verb === 'patch' && a.resource === 'virtualmachines' && a.name === 'vm1');
    // a conflict (the VM changed under us): re-read, retried, loaded once
    emu.faults.failNext(1, 409, vmPatch);
    await m.insertMedia('cdrom', { image: images.url('/tiny.iso') });
    expect(patches().map((a) => a.code)).to.deep.equal([409, 200]);
    expect(templateSpec(vmOf(emu)).volumes?.filter((v) => v.name === 'cdrom')).to.have.length(1);
    await m.ejectMedia('cdrom');
    await until(() => dvOf(emu) === undefined, 'DataVolume deleted');

    // KubeVirt refuses the patch (the VM did not move): the DataVolume is deleted again, the error returned
    emu.faults.failNext(1, 422, vmPatch);
    const refused = await m.insertMedia('cdrom', { image: images.url('/tiny.iso') }).catch((e: unknown) => e);
    expect(isBackendError(refused, 'Conflict'), String(refused)).to.equal(true);
    await until(() => dvOf(emu) === undefined, 'DataVolume undone');
    expect((await m.listMedia())[0]!.state).to.equal('empty');

    // two inserts at once into one drive: one runs, the other is refused
    const results = await Promise.allSettled([
      m.insertMedia('cdrom', { image: images.url('/tiny.iso') }),
      m.insertMedia('cdrom', { image: images.url('/os.iso') }),
    ]);
    expect(results.filter((r) => r.status === 'fulfilled')).to.have.length(1);
    const rejected = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    expect(isBackendError(rejected.reason, 'Busy') || isBackendError(rejected.reason, 'Conflict'), String(rejected.reason)).to.equal(true);
    expect(templateSpec(vmOf(emu)).volumes?.filter((v) => v.name === 'cdrom')).to.have.length(1);
    expect(emu.list('cdi.kubevirt.io/v1beta1', 'DataVolume', NS)).to.have.length(1);
  });

  it('an import failure shows as error with CDI message; eject clears it', async () => {
    emu.create(vmFixture({ runStrategy: 'Halted' }));
    m = await newMachine(emu);
    await m.insertMedia('cdrom', { image: images.url('/os.iso') });
    // CDI reports the importer failing (the emulator never downloads anything)
    const dv = dvOf(emu)!;
    dv.status = {
      phase: 'ImportInProgress',
      progress: 'N/A',
      conditions: [{ type: 'Running', status: 'False', reason: 'Error', message: 'Unable to process data: unexpected EOF' }],
    };
    emu.update(dv);
    const failed = await slotState(m, 'cdrom', 'error');
    expect(failed.error).to.equal('Unable to process data: unexpected EOF');
    await m.ejectMedia('cdrom');
    await until(() => dvOf(emu) === undefined, 'DataVolume deleted');
    expect((await m.listMedia())[0]!.state).to.equal('empty');
    expect(templateSpec(vmOf(emu)).volumes?.some((v) => v.name === 'cdrom')).to.equal(false);
  });

  it('rejects bad URLs with InvalidArgument before creating or patching anything', async () => {
    emu.create(vmFixture());
    m = await newMachine(emu);
    const rv = vmOf(emu).metadata.resourceVersion;
    const cases: [string, RegExp][] = [
      ['ftp://127.0.0.1/x.iso', /scheme/],
      ['not a url', /not a valid URL/],
      [images.url('/missing.iso'), /HTTP 404/],
      [images.url('/redirect.iso'), /redirects/],
      ['http://127.0.0.1:1/closed.iso', /not reachable/],
      ['http://user:secret@127.0.0.1/x.iso', /credentials/],
    ];
    for (const [image, msg] of cases) {
      const err = await m.insertMedia('cdrom', { image }).catch((e: unknown) => e);
      expect(isBackendError(err, 'InvalidArgument'), `${image}: ${String(err)}`).to.equal(true);
      expect((err as Error).message).to.match(msg);
    }
    const wp = await m.insertMedia('cdrom', { image: images.url('/os.iso'), writeProtected: false }).catch((e: unknown) => e);
    expect(isBackendError(wp, 'InvalidArgument')).to.equal(true);
    expect(emu.list('cdi.kubevirt.io/v1beta1', 'DataVolume', NS)).to.have.length(0);
    expect(vmOf(emu).metadata.resourceVersion).to.equal(rv);
    expect((await m.listMedia())[0]!.state).to.equal('empty');
    // the redirect was reported, not followed
    expect(images.requests.map((r) => r.url)).to.not.include('/elsewhere.iso');
  });

  it('a VM without a CD-ROM drive has no slot; unknown slots are NotFound', async () => {
    emu.create(vmFixture({ cdrom: false }));
    m = await newMachine(emu);
    expect(await m.listMedia()).to.deep.equal([]);
    const err = await m.insertMedia('cdrom', { image: images.url('/os.iso') }).catch((e: unknown) => e);
    expect(isBackendError(err, 'NotFound'), String(err)).to.equal(true);
    expect((err as Error).message).to.match(/declares no CD-ROM drive/);
    const usb = await m.insertMedia('UsbStick', { image: images.url('/os.iso') }).catch((e: unknown) => e);
    expect(isBackendError(usb, 'NotFound'), String(usb)).to.equal(true);
    expect(images.requests).to.have.length(0);
  });

  it('a drive holding a volume the BMC did not put there shows inserted and cannot be ejected by us', async () => {
    const vm = vmFixture();
    (vm.spec as { template: { spec: { volumes: Obj[] } } }).template.spec.volumes.push({ name: 'cdrom', containerDisk: { image: 'quay.io/x/virtio-win' } });
    emu.create(vm);
    m = await newMachine(emu);
    expect((await m.listMedia())[0]).to.deep.include({ id: 'cdrom', state: 'inserted' });
    const err = await m.ejectMedia('cdrom').catch((e: unknown) => e);
    expect(isBackendError(err, 'Conflict'), String(err)).to.equal(true);
    expect((err as Error).message).to.match(/did not insert/);
    const ins = await m.insertMedia('cdrom', { image: images.url('/tiny.iso') }).catch((e: unknown) => e);
    expect(isBackendError(ins, 'Conflict'), String(ins)).to.equal(true);
    expect(templateSpec(vmOf(emu)).volumes?.find((v) => v.name === 'cdrom')).to.deep.equal({ name: 'cdrom', containerDisk: { image: 'quay.io/x/virtio-win' } });
  });

  it('CDI not installed → Unsupported with a clear message', async () => {
    await emu.close();
    emu = await startEmulator({ cdi: false });
    emu.create(vmFixture());
    m = await newMachine(emu);
    expect((await m.listMedia())[0]!.state).to.equal('empty');
    const err = await m.insertMedia('cdrom', { image: images.url('/os.iso') }).catch((e: unknown) => e);
    expect(isBackendError(err, 'Unsupported'), String(err)).to.equal(true);
    expect((err as Error).message).to.match(/CDI is not installed/);
  });

  it('a cluster whose running VMs do not take template volumes (HotplugVolumes on, no declarative hotplug): error naming the gate', async () => {
    await emu.close();
    emu = await startEmulator({ dataVolumeImportMs: 60, kubevirtFeatureGates: ['HotplugVolumes'] });
    emu.create(vmFixture({ runStrategy: 'Always' }));
    m = await newMachine(emu, { hotplugSyncTimeoutMs: 400 });
    await waitPower(m, 'On');
    const events: MediaSlot[] = [];
    m.on((e) => {
      if (e.type === 'media') events.push(e.slot);
    });
    await m.insertMedia('cdrom', { image: images.url('/tiny.iso') });
    const failed = await slotState(m, 'cdrom', 'error');
    expect(failed.error).to.match(/DeclarativeHotplugVolumes feature gate on and the deprecated HotplugVolumes gate off/);
    await until(() => events.at(-1)?.state === 'error', 'the error as a media event');
    expect(events.some((e) => e.state === 'inserted')).to.equal(false);
    // eject undoes it cleanly
    await m.ejectMedia('cdrom');
    await until(() => dvOf(emu) === undefined, 'DataVolume deleted');
    expect((await m.listMedia())[0]!.state).to.equal('empty');
  });

  it('insert while the VMI is still starting: no "lacks declarative hotplug" error before it runs (KubeVirt syncs running VMIs only)', async () => {
    const slow = await startEmulator({ dataVolumeImportMs: 20, vmiPhaseDelayMs: 1500 });
    try {
      slow.create(vmFixture({ runStrategy: 'Always' }));
      const mm = await newMachine(slow, { hotplugSyncTimeoutMs: 1500 });
      await until(() => vmiOf(slow) !== undefined && (vmiOf(slow)!.status as { phase?: string } | undefined)?.phase !== 'Running', 'a VMI that is not running yet');
      const events: MediaSlot[] = [];
      mm.on((e) => {
        if (e.type === 'media') events.push(e.slot);
      });
      await mm.insertMedia('cdrom', { image: images.url('/tiny.iso') });
      // the VMI takes several sync timeouts to start, then KubeVirt attaches the CD
      await slotState(mm, 'cdrom', 'inserted', 15000);
      expect(events.filter((e) => e.state === 'error'), JSON.stringify(events)).to.deep.equal([]);
    } finally {
      await closeAll(slow);
    }
  });

  it('the sync timeout counts running time only: a VMI that turns Running between checks gets a whole timeout before the "lacks declarative hotplug" error', async () => {
    // HotplugVolumes on: the running VMI never takes the volume, so the error must come, but no
    // sooner than one timeout after the VMI turned Running (a lower bound: load cannot break it)
    const timeoutMs = 1200;
    const slow = await startEmulator({ dataVolumeImportMs: 20, vmiPhaseDelayMs: 700, kubevirtFeatureGates: ['HotplugVolumes'] });
    try {
      slow.create(vmFixture({ runStrategy: 'Always' }));
      const mm = await newMachine(slow, { hotplugSyncTimeoutMs: timeoutMs });
      await until(() => vmiOf(slow) !== undefined && (vmiOf(slow)!.status as { phase?: string } | undefined)?.phase !== 'Running', 'a VMI that is not running yet');
      let errorAt = 0;
      mm.on((e) => {
        if (e.type === 'media' && e.slot.state === 'error' && errorAt === 0) errorAt = Date.now();
      });
      await mm.insertMedia('cdrom', { image: images.url('/tiny.iso') });
      // the emulator's store event: no later than any client can have seen the phase
      await slow.waitFor(() => (vmiOf(slow)?.status as { phase?: string } | undefined)?.phase === 'Running', 15000);
      const runningAt = Date.now();
      expect(errorAt, 'no error before the VMI ran').to.equal(0);
      const failed = await slotState(mm, 'cdrom', 'error', 15000);
      expect(failed.error).to.match(/DeclarativeHotplugVolumes feature gate on/);
      await until(() => errorAt !== 0, 'the error as a media event');
      expect(errorAt - runningAt, 'running time before the error').to.be.at.least(timeoutMs - 50);
    } finally {
      await closeAll(slow);
    }
  });

  it('a cluster without DeclarativeHotplugVolumes refuses to empty a drive: Unsupported naming the gate', async () => {
    emu.create(vmFixture({ runStrategy: 'Halted' }));
    m = await newMachine(emu);
    await m.insertMedia('cdrom', { image: images.url('/tiny.iso') });
    await slotState(m, 'cdrom', 'inserted');
    // the admin turns the gate off (KubeVirt CR): an empty CD-ROM drive is no longer valid
    emu.kubevirt.setFeatureGates({ disabledFeatureGates: ['DeclarativeHotplugVolumes'] });
    const err = await m.ejectMedia('cdrom').catch((e: unknown) => e);
    expect(isBackendError(err, 'Unsupported'), String(err)).to.equal(true);
    expect((err as Error).message).to.match(/needs KubeVirt's DeclarativeHotplugVolumes feature gate/);
    // nothing was lost: the CD is still loaded, the DataVolume still there
    expect(dvOf(emu)).to.not.equal(undefined);
    expect((await m.listMedia())[0]!.state).to.equal('inserted');
  });
});
