import { expect } from 'chai';
import { BackendError, type PowerAction } from '../../src/backend/types.js';
import { SimulatedMachine, stableUuid } from '../../src/backend/simulator/simulator.js';
import { maskImageCredentials } from '../../src/backend/validate.js';
import { LOOPBACK_MEDIA, startImageServer, unusedUrl, type ImageServer } from '../helpers/images.js';

async function expectError(p: Promise<unknown>, code: BackendError['code']): Promise<BackendError> {
  try {
    await p;
  } catch (e) {
    expect(e).to.be.instanceOf(BackendError);
    expect((e as BackendError).code).to.equal(code);
    return e as BackendError;
  }
  expect.fail(`expected BackendError ${code}`);
}

describe('SimulatedMachine', () => {
  describe('identity', () => {
    it('derives a stable RFC 4122 v5-layout UUID from namespace/name', async () => {
      const a = new SimulatedMachine({ name: 'vm1', namespace: 'ns' });
      const b = new SimulatedMachine({ name: 'vm1', namespace: 'ns' });
      const c = new SimulatedMachine({ name: 'vm2', namespace: 'ns' });
      const ia = await a.getSystemInfo();
      expect(ia.uuid).to.match(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      expect(ia.uuid).to.equal((await b.getSystemInfo()).uuid);
      expect(ia.uuid).to.not.equal((await c.getSystemInfo()).uuid);
      expect(stableUuid('ns/vm1')).to.equal(ia.uuid);
      expect(ia.nics[0]!.macAddress).to.match(/^02(:[0-9a-f]{2}){5}$/);
      expect(ia).to.include({ name: 'vm1', namespace: 'ns', cpuCount: 2, memoryMiB: 2048, manufacturer: 'KubeVirt' });
    });
  });

  describe('power with zero delays', () => {
    let m: SimulatedMachine;
    beforeEach(() => {
      m = new SimulatedMachine({ powerOnDelayMs: 0, powerOffDelayMs: 0 });
    });

    it('starts off and powers on, recording a boot', async () => {
      expect(await m.getPowerState()).to.equal('Off');
      await m.power('on');
      expect(await m.getPowerState()).to.equal('On');
      expect(m.bootHistory).to.have.length(1);
      await m.power('on'); // idempotent
      expect(m.bootHistory).to.have.length(1);
    });

    it('force off from any state; graceful off is a no-op when off', async () => {
      await m.power('forceOff');
      expect(await m.getPowerState()).to.equal('Off');
      await m.power('gracefulOff');
      expect(await m.getPowerState()).to.equal('Off');
      await m.power('on');
      await m.power('pause');
      await m.power('forceOff');
      expect(await m.getPowerState()).to.equal('Off');
    });

    it('graceful off works only when the guest listens to ACPI', async () => {
      await m.power('on');
      m.acpiListening = false;
      await m.power('gracefulOff');
      expect(await m.getPowerState()).to.equal('On');
      m.acpiListening = true;
      await m.power('gracefulOff');
      expect(await m.getPowerState()).to.equal('Off');
    });

    for (const action of ['forceRestart', 'gracefulRestart', 'nmi', 'pause'] as PowerAction[]) {
      it(`refuses ${action} while off with Conflict`, async () => {
        await expectError(m.power(action), 'Conflict');
        expect(await m.getPowerState()).to.equal('Off');
      });
    }

    it('power cycle while off powers on; while on it reboots', async () => {
      await m.power('powerCycle');
      expect(await m.getPowerState()).to.equal('On');
      await m.power('powerCycle');
      expect(await m.getPowerState()).to.equal('On');
      expect(m.bootHistory).to.have.length(2);
    });

    it('force restart reboots a running machine', async () => {
      await m.power('on');
      await m.power('forceRestart');
      expect(m.bootHistory).to.have.length(2);
      expect(await m.getPowerState()).to.equal('On');
    });

    it('graceful restart reboots only with ACPI', async () => {
      await m.power('on');
      m.acpiListening = false;
      await m.power('gracefulRestart');
      expect(m.bootHistory).to.have.length(1);
      m.acpiListening = true;
      await m.power('gracefulRestart');
      expect(m.bootHistory).to.have.length(2);
    });

    it('counts NMIs when on', async () => {
      await m.power('on');
      await m.power('nmi');
      expect(m.nmiCount).to.equal(1);
    });

    it('pauses and resumes; resume of a running machine is a no-op, of an off one a Conflict', async () => {
      await m.power('on');
      await m.power('pause');
      expect(await m.getPowerState()).to.equal('Paused');
      await expectError(m.power('on'), 'Conflict');
      await expectError(m.power('nmi'), 'Conflict');
      await m.power('resume');
      expect(await m.getPowerState()).to.equal('On');
      await m.power('resume');
      await m.power('forceOff');
      await expectError(m.power('resume'), 'Conflict');
    });

    it('emits power events', async () => {
      const seen: string[] = [];
      const off = m.on((e) => {
        if (e.type === 'power') seen.push(`${e.from}->${e.to}`);
        if (e.type === 'booted') seen.push('booted');
      });
      await m.power('on');
      await m.power('forceOff');
      off();
      await m.power('on');
      expect(seen).to.deep.equal(['Off->On', 'booted', 'On->Off']);
    });
  });

  describe('power with delays', () => {
    it('passes through PoweringOn and answers Busy meanwhile', async () => {
      const m = new SimulatedMachine({ powerOnDelayMs: 40, powerOffDelayMs: 40 });
      await m.power('on');
      expect(await m.getPowerState()).to.equal('PoweringOn');
      await m.power('on'); // already heading there: accepted
      const err = await expectError(m.power('forceRestart'), 'Busy');
      expect(err.retryAfterSeconds).to.be.greaterThan(0);
      await m.settle();
      expect(await m.getPowerState()).to.equal('On');
      await m.power('gracefulOff');
      expect(await m.getPowerState()).to.equal('PoweringOff');
      await m.settle();
      expect(await m.getPowerState()).to.equal('Off');
      await m.close();
    });

    it('force off interrupts a transition', async () => {
      const m = new SimulatedMachine({ powerOnDelayMs: 1000 });
      await m.power('on');
      await m.power('forceOff');
      expect(await m.getPowerState()).to.equal('Off');
      await m.settle();
      expect(await m.getPowerState()).to.equal('Off');
      expect(m.bootHistory).to.have.length(0);
    });
  });

  describe('boot override', () => {
    it('a once override is consumed by the next boot', async () => {
      const m = new SimulatedMachine();
      const set = await m.setBootOverride({ target: 'pxe', enabled: 'once' });
      expect(set).to.deep.equal({ target: 'pxe', enabled: 'once', mode: 'UEFI' });
      await m.power('on');
      expect(m.bootHistory.at(-1)).to.include({ target: 'pxe', mode: 'UEFI' });
      expect(await m.getBootOverride()).to.deep.equal({ target: 'none', enabled: 'disabled', mode: 'UEFI' });
      await m.power('forceRestart');
      expect(m.bootHistory.at(-1)!.target).to.equal('hdd');
    });

    it('a continuous override persists across boots', async () => {
      const m = new SimulatedMachine();
      await m.setBootOverride({ target: 'cd', enabled: 'continuous', mode: 'Legacy' });
      await m.power('on');
      await m.power('forceRestart');
      expect(m.bootHistory.map((b) => `${b.target}/${b.mode}`)).to.deep.equal(['cd/Legacy', 'cd/Legacy']);
      expect(await m.getBootOverride()).to.deep.equal({ target: 'cd', enabled: 'continuous', mode: 'Legacy' });
    });

    it('a partial change keeps the other fields', async () => {
      const m = new SimulatedMachine();
      await m.setBootOverride({ target: 'pxe', enabled: 'continuous' });
      expect(await m.setBootOverride({ target: 'hdd' })).to.deep.equal({ target: 'hdd', enabled: 'continuous', mode: 'UEFI' });
    });

    it('rejects unsupported targets and bad values', async () => {
      const m = new SimulatedMachine();
      await expectError(m.setBootOverride({ target: 'floppy' }), 'Unsupported');
      await expectError(m.setBootOverride({ enabled: 'sometimes' as never }), 'InvalidArgument');
      await expectError(m.setBootOverride({ mode: 'BIOS' as never }), 'Unsupported');
      expect(await m.getBootOverride()).to.deep.equal({ target: 'none', enabled: 'disabled', mode: 'UEFI' });
    });

    it('bumps the generation on changes only', async () => {
      const m = new SimulatedMachine();
      const g0 = (await m.snapshot()).generation;
      await m.setBootOverride({ target: 'none' });
      expect((await m.snapshot()).generation).to.equal(g0);
      await m.setBootOverride({ target: 'pxe' });
      expect((await m.snapshot()).generation).to.be.greaterThan(g0);
    });
  });

  describe('virtual media', () => {
    let img: ImageServer;
    beforeEach(async () => {
      img = await startImageServer({ '/boot.iso': 4096, '/other.iso': 10, '/stick.img': 2048 });
    });
    afterEach(async () => img.close());

    it('inserts and ejects, validating the URL', async () => {
      const m = new SimulatedMachine({ mediaProbe: { egress: LOOPBACK_MEDIA } });
      await expectError(m.insertMedia('Cd', { image: 'ftp://example.org/x.iso' }), 'InvalidArgument');
      await expectError(m.insertMedia('Cd', { image: 'not a url' }), 'InvalidArgument');
      await expectError(m.insertMedia('Cd', { image: 'http://example.org/' }), 'InvalidArgument');
      const cred = await expectError(m.insertMedia('Cd', { image: 'http://user:s3cret@127.0.0.1/boot.iso' }), 'InvalidArgument');
      expect(cred.message).to.match(/credentials/).and.not.include('s3cret');
      const bad = await expectError(m.insertMedia('Cd', { image: 'http://user:s3cret@' }), 'InvalidArgument');
      expect(bad.message).to.not.include('s3cret');
      expect(maskImageCredentials('https://user:s3cret@host/a.iso')).to.equal('https://***@host/a.iso');
      expect(maskImageCredentials('http://user:s3cret@')).to.equal('http://***@');
      expect(maskImageCredentials('http://host/a@b.iso')).to.equal('http://host/a@b.iso');
      expect(img.requests).to.deep.equal([]); // refused before any request
      const slot = await m.insertMedia('Cd', { image: img.url('/boot.iso') });
      expect(slot).to.include({ id: 'Cd', state: 'inserted', image: img.url('/boot.iso'), writeProtected: true });
      expect(img.requests).to.deep.equal([{ method: 'HEAD', url: '/boot.iso' }]);
      await expectError(m.insertMedia('Cd', { image: img.url('/other.iso') }), 'Conflict');
      const ejected = await m.ejectMedia('Cd');
      expect(ejected.state).to.equal('empty');
      expect(ejected.image).to.equal(undefined);
      expect((await m.ejectMedia('Cd')).state).to.equal('empty');
      await expectError(m.insertMedia('zip9' as never, { image: img.url('/boot.iso') }), 'NotFound');
    });

    it('refuses an image URL that serves nothing, naming it without its query', async () => {
      const m = new SimulatedMachine({ mediaProbe: { egress: LOOPBACK_MEDIA } });
      const missing = await expectError(m.insertMedia('Cd', { image: img.url('/missing.iso?X-Amz-Signature=tok3n') }), 'InvalidArgument');
      expect(missing.message).to.equal(`image URL ${img.base}/missing.iso answered HTTP 404 (not found)`);
      const moved = await expectError(m.insertMedia('Cd', { image: img.url('/redirect/boot.iso') }), 'InvalidArgument');
      expect(moved.message).to.match(/redirects \(HTTP 302\); give the final URL$/);
      const nobody = await unusedUrl('/x.iso?token=tok3n');
      const down = await expectError(m.insertMedia('Cd', { image: nobody }), 'InvalidArgument');
      expect(down.message).to.match(/is not reachable: connection refused$/).and.not.include('tok3n');
      expect((await m.listMedia())[0]).to.include({ state: 'empty' });
      // the slot is free again: a good URL inserts
      expect((await m.insertMedia('Cd', { image: img.url('/boot.iso') })).state).to.equal('inserted');
    });

    it('refuses a second insert while the first one checks its URL', async () => {
      const m = new SimulatedMachine({ mediaProbe: { egress: LOOPBACK_MEDIA } });
      const first = m.insertMedia('Cd', { image: img.url('/boot.iso') });
      await expectError(m.insertMedia('Cd', { image: img.url('/other.iso') }), 'Conflict');
      expect((await first).image).to.equal(img.url('/boot.iso'));
    });

    it('an eject while the URL is being checked cancels the insert', async () => {
      const m = new SimulatedMachine({ mediaProbe: { egress: LOOPBACK_MEDIA } });
      const ins = m.insertMedia('Cd', { image: img.url('/slow/boot.iso') });
      for (let i = 0; i < 500 && img.held === 0; i++) await new Promise((r) => setTimeout(r, 5));
      expect((await m.ejectMedia('Cd')).state).to.equal('empty');
      img.release();
      const e = await expectError(ins, 'Conflict');
      expect(e.message).to.match(/ejected while its image URL was being checked/);
      expect((await m.listMedia())[0]!.state).to.equal('empty');
    });

    it('reports progress while inserting', async () => {
      const m = new SimulatedMachine({ mediaInsertDelayMs: 40, mediaProbe: { egress: LOOPBACK_MEDIA } });
      const seen: number[] = [];
      m.on((ev) => {
        if (ev.type === 'media' && ev.slot.id === 'UsbStick' && ev.slot.progress !== undefined) seen.push(ev.slot.progress);
      });
      const s = await m.insertMedia('UsbStick', { image: img.url('/stick.img'), writeProtected: false });
      expect(s).to.include({ state: 'inserting', progress: 0, writeProtected: false });
      await m.settle();
      const [, usb] = await m.listMedia();
      expect(usb).to.include({ id: 'UsbStick', state: 'inserted', progress: 100 });
      expect(seen).to.deep.equal([0, 25, 50, 75, 100]);
    });
  });

  describe('outage', () => {
    it('fails every call with Unavailable until restored', async () => {
      const m = new SimulatedMachine({ mediaProbe: { egress: LOOPBACK_MEDIA } });
      m.setAvailable(false);
      await expectError(m.getPowerState(), 'Unavailable');
      await expectError(m.power('on'), 'Unavailable');
      await expectError(m.snapshot(), 'Unavailable');
      m.setAvailable(true);
      await m.power('on');
      expect(await m.getPowerState()).to.equal('On');
    });
  });
});
