/**
 * KubeVirt backend virtual media against the emulator: HEAD sizing on a loopback image server,
 * DataVolume import progress, hot-plug into the CD-ROM disk, eject, and the clear errors.
 */
import { expect } from 'chai';
import type { KubeVirtMachine } from '../../src/backend/kubevirt/index.js';
import { isBackendError, type MachineEvent, type MediaSlot } from '../../src/backend/types.js';
import type { ApiServerEmulator, KubeObject } from '../emulator/index.js';
import { NS, captureLogger, emulatorPerTest, newMachine, startEmulator, startImageServer, until, vmFixture, vmOf, vmiOf, waitPower, type ImageServer } from './kubevirt-fixtures.js';

const DV = 'vm1-vmedia-cd0';
const GiB = 2 ** 30;

function dvOf(emu: ApiServerEmulator): KubeObject | undefined {
  return emu.get('cdi.kubevirt.io/v1beta1', 'DataVolume', NS, DV);
}

type Obj = Record<string, unknown>;
function templateSpec(vm: KubeObject): { volumes?: Obj[]; domain: { devices: { disks: Obj[] } } } {
  return (vm.spec as { template: { spec: { volumes?: Obj[]; domain: { devices: { disks: Obj[] } } } } }).template.spec;
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
    await m.insertMedia('cd0', { image: images.url('/signed.iso?X-Amz-Signature=sekrit') });
    const lines = cap.lines();
    expect(lines.some((l) => l.includes('virtual media inserted') && l.includes(images.url('/signed.iso')))).to.equal(true);
    expect(lines.join('\n')).to.not.contain('sekrit');
  });

  it('insert: sizes from HEAD, imports into a DataVolume, hot-plugs it into the CD-ROM; eject undoes it', async () => {
    emu.create(vmFixture({ runStrategy: 'Always' }));
    m = await newMachine(emu, { storageClassName: 'fast-ssd' });
    await waitPower(m, 'On');
    expect(await m.listMedia()).to.deep.equal([{ id: 'cd0', kind: 'cd', state: 'empty', writeProtected: true }]);
    const events: MediaSlot[] = [];
    m.on((e: MachineEvent) => {
      if (e.type === 'media') events.push(e.slot);
    });

    const slot = await m.insertMedia('cd0', { image: images.url('/os.iso') });
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

    // hot-plugged into the existing CD-ROM disk (same name), hotpluggable
    const added = emu.kubevirt.actions.find((a) => a.action === 'addvolume')!;
    expect(added.body).to.deep.equal({
      name: 'cdrom',
      disk: { name: 'cdrom', cdrom: { bus: 'sata', readonly: true } },
      volumeSource: { dataVolume: { name: DV, hotpluggable: true } },
    });
    await until(() => templateSpec(vmOf(emu)).volumes?.some((v) => v.name === 'cdrom'), 'volume in the VM spec');

    const done = await until(async () => {
      const [s] = await m!.listMedia();
      return s?.state === 'inserted' ? s : undefined;
    }, 'inserted');
    expect(done).to.deep.include({ state: 'inserted', image: images.url('/os.iso'), progress: 100 });
    expect(events.some((e) => e.state === 'inserting' && e.progress !== undefined && e.progress > 0 && e.progress < 100)).to.equal(true);
    expect(events.at(-1)!.state).to.equal('inserted');
    const vmiVolumes = ((vmiOf(emu)!.spec as { volumes: Obj[] }).volumes ?? []).map((v) => v.name);
    expect(vmiVolumes).to.include('cdrom');

    // a second insert without eject is refused
    const again = await m.insertMedia('cd0', { image: images.url('/tiny.iso') }).catch((e: unknown) => e);
    expect(isBackendError(again, 'Conflict'), String(again)).to.equal(true);

    const ejected = await m.ejectMedia('cd0');
    expect(ejected.state).to.equal('empty');
    expect(emu.kubevirt.actions.find((a) => a.action === 'removevolume')!.body).to.deep.equal({ name: 'cdrom' });
    await until(() => dvOf(emu) === undefined, 'DataVolume deleted');
    // the CD-ROM drive itself stays, so the slot is there for the next insert
    const disks = templateSpec(vmOf(emu)).domain.devices.disks.map((d) => d.name);
    expect(disks).to.deep.equal(['root', 'cdrom']);
    expect(templateSpec(vmOf(emu)).volumes?.some((v) => v.name === 'cdrom')).to.equal(false);
    expect(await m.ejectMedia('cd0')).to.deep.include({ state: 'empty' }); // idempotent

    const second = await m.insertMedia('cd0', { image: images.url('/tiny.iso') });
    expect(second.state).to.equal('inserting');
    expect((dvOf(emu)!.spec as { storage: { resources: { requests: { storage: string } } } }).storage.resources.requests.storage).to.equal('1Gi');
  });

  it('an import failure shows as error with CDI message; eject clears it', async () => {
    emu.create(vmFixture({ runStrategy: 'Halted' }));
    m = await newMachine(emu);
    await m.insertMedia('cd0', { image: images.url('/os.iso') });
    // CDI reports the importer failing (the emulator never downloads anything)
    const dv = dvOf(emu)!;
    dv.status = {
      phase: 'ImportInProgress',
      progress: 'N/A',
      conditions: [{ type: 'Running', status: 'False', reason: 'Error', message: 'Unable to process data: unexpected EOF' }],
    };
    emu.update(dv);
    const failed = await until(async () => {
      const [s] = await m!.listMedia();
      return s?.state === 'error' ? s : undefined;
    }, 'error state');
    expect(failed.error).to.equal('Unable to process data: unexpected EOF');
    await m.ejectMedia('cd0');
    await until(() => dvOf(emu) === undefined, 'DataVolume deleted');
    expect((await m.listMedia())[0]!.state).to.equal('empty');
  });

  it('rejects bad URLs with InvalidArgument before creating anything', async () => {
    emu.create(vmFixture());
    m = await newMachine(emu);
    const cases: [string, RegExp][] = [
      ['ftp://127.0.0.1/x.iso', /scheme/],
      ['not a url', /not a valid URL/],
      [images.url('/missing.iso'), /HTTP 404/],
      [images.url('/redirect.iso'), /redirects/],
      ['http://127.0.0.1:1/closed.iso', /not reachable/],
      ['http://user:secret@127.0.0.1/x.iso', /credentials/],
    ];
    for (const [image, msg] of cases) {
      const err = await m.insertMedia('cd0', { image }).catch((e: unknown) => e);
      expect(isBackendError(err, 'InvalidArgument'), `${image}: ${String(err)}`).to.equal(true);
      expect((err as Error).message).to.match(msg);
    }
    const wp = await m.insertMedia('cd0', { image: images.url('/os.iso'), writeProtected: false }).catch((e: unknown) => e);
    expect(isBackendError(wp, 'InvalidArgument')).to.equal(true);
    expect(emu.list('cdi.kubevirt.io/v1beta1', 'DataVolume', NS)).to.have.length(0);
    // the redirect was reported, not followed
    expect(images.requests.map((r) => r.url)).to.not.include('/elsewhere.iso');
  });

  it('a VM without a CD-ROM has no slot; usb0 does not exist on KubeVirt', async () => {
    emu.create(vmFixture({ cdrom: false }));
    m = await newMachine(emu);
    expect(await m.listMedia()).to.deep.equal([]);
    const err = await m.insertMedia('cd0', { image: images.url('/os.iso') }).catch((e: unknown) => e);
    expect(isBackendError(err, 'Unsupported'), String(err)).to.equal(true);
    expect((err as Error).message).to.match(/CD-ROM/);
    const usb = await m.insertMedia('usb0', { image: images.url('/os.iso') }).catch((e: unknown) => e);
    expect(isBackendError(usb, 'NotFound'), String(usb)).to.equal(true);
    expect((usb as Error).message).to.match(/USB/);
    expect(images.requests).to.have.length(0);
  });

  it('CDI not installed → Unsupported with a clear message', async () => {
    await emu.close();
    emu = await startEmulator({ cdi: false });
    emu.create(vmFixture());
    m = await newMachine(emu);
    expect((await m.listMedia())[0]!.state).to.equal('empty');
    const err = await m.insertMedia('cd0', { image: images.url('/os.iso') }).catch((e: unknown) => e);
    expect(isBackendError(err, 'Unsupported'), String(err)).to.equal(true);
    expect((err as Error).message).to.match(/CDI is not installed/);
  });
});
