/**
 * KubeVirt backend power control against the apiserver emulator: every runStrategy (and the
 * deprecated spec.running) × every power action, KubeVirt's 409s, state derivation and events.
 */
import { expect } from 'chai';
import { isBackendError, type MachineEvent, type PowerAction, type PowerState } from '../../src/backend/types.js';
import type { KubeVirtMachine } from '../../src/backend/kubevirt/index.js';
import type { ApiServerEmulator } from '../emulator/index.js';
import { NS, VM_NAME, closeAll, emulatorPerTest, newMachine, startEmulator, until, vmFixture, vmOf, vmiOf, vmiPhase, waitPower } from './kubevirt-fixtures.js';

interface Strategy {
  label: string;
  runStrategy?: string;
  running?: boolean;
  /** power state the VM settles in by itself */
  initial: 'On' | 'Off';
}

const STRATEGIES: Strategy[] = [
  { label: 'runStrategy Always', runStrategy: 'Always', initial: 'On' },
  { label: 'runStrategy RerunOnFailure', runStrategy: 'RerunOnFailure', initial: 'On' },
  { label: 'runStrategy Once', runStrategy: 'Once', initial: 'On' },
  { label: 'runStrategy Manual', runStrategy: 'Manual', initial: 'Off' },
  { label: 'runStrategy Halted', runStrategy: 'Halted', initial: 'Off' },
  { label: 'spec.running true', running: true, initial: 'On' },
  { label: 'spec.running false', running: false, initial: 'Off' },
];

/** Expected outcome: the state it settles in, whether a new VMI must appear, or the error code. */
type Outcome = { state: PowerState; newVmi?: boolean } | { error: 'Conflict' | 'Unsupported' | 'Busy' };

function expected(s: Strategy, action: PowerAction): Outcome {
  if (action === 'nmi') return { error: 'Unsupported' };
  if (s.initial === 'On') {
    switch (action) {
      case 'on':
      case 'resume':
        return { state: 'On' };
      case 'gracefulOff':
      case 'forceOff':
        return { state: 'Off' };
      case 'gracefulRestart':
        return { state: 'On', newVmi: false }; // soft reboot inside the same VMI
      case 'forceRestart':
      case 'powerCycle':
        // KubeVirt refuses restart requests under Once
        return s.runStrategy === 'Once' ? { error: 'Conflict' } : { state: 'On', newVmi: true };
      case 'pause':
        return { state: 'Paused' };
    }
  }
  switch (action) {
    case 'on':
    case 'powerCycle':
      return { state: 'On', newVmi: true };
    case 'gracefulOff':
    case 'forceOff':
      return { state: 'Off' };
    default:
      return { error: 'Conflict' };
  }
}

const ACTIONS: PowerAction[] = ['on', 'gracefulOff', 'forceOff', 'gracefulRestart', 'forceRestart', 'powerCycle', 'nmi', 'pause', 'resume'];

describe('kubevirt backend: power', function () {
  this.timeout(20000);
  let emu: ApiServerEmulator;
  let m: KubeVirtMachine | undefined;

  afterEach(async () => {
    await m?.close();
    m = undefined;
  });

  describe('runStrategy × action table', () => {
    // one emulator for the whole table, one VM per case
    let shared: ApiServerEmulator;
    let n = 0;
    before(async () => {
      shared = await startEmulator();
    });
    after(() => closeAll(shared));
    /** One case on its own VM; throws a descriptive error when the outcome is not the expected one. */
    async function runCase(s: Strategy, action: PowerAction): Promise<void> {
      const want = expected(s, action);
      const name = `t${++n}`;
      shared.create(vmFixture({ name, ...(s.running !== undefined ? { running: s.running } : { runStrategy: s.runStrategy! }) }));
      const mm = await newMachine(shared, { name });
      try {
        await waitPower(mm, s.initial);
        const vmiOfT = () => vmiOf(shared, name);
        const uidBefore = vmiOfT()?.metadata.uid;
        const callsBefore = shared.kubevirt.actions.length;
        let err: unknown;
        try {
          await mm.power(action);
        } catch (e) {
          err = e;
        }
        if ('error' in want) {
          expect(isBackendError(err, want.error), `expected ${want.error}, got ${String(err)}`).to.equal(true);
          await waitPower(mm, s.initial);
          expect(vmiOfT()?.metadata.uid, 'VMI untouched').to.equal(uidBefore);
          return;
        }
        expect(err, String(err)).to.equal(undefined);
        if (want.newVmi) {
          await until(() => vmiPhase(shared, name) === 'Running' && vmiOfT()?.metadata.uid !== uidBefore, 'a new running VMI');
        }
        await waitPower(mm, want.state);
        if (want.newVmi === false) expect(vmiOfT()?.metadata.uid, 'same VMI').to.equal(uidBefore);
        if (want.state === 'Off') await until(() => vmiOfT() === undefined || vmiPhase(shared, name) === 'Succeeded', 'the VMI gone');
        const mine = shared.kubevirt.actions.slice(callsBefore).filter((a) => a.name === name);
        const calls = mine.map((a) => a.action);
        // observable proof of the mapping: which subresource was called with what
        if (action === 'gracefulRestart' && s.initial === 'On') expect(calls).to.deep.equal(['softreboot']);
        if (action === 'forceOff' && s.initial === 'On') {
          expect(calls).to.deep.equal(['stop']);
          expect(mine.at(-1)!.body).to.deep.equal({ gracePeriod: 0 });
        }
        if ((action === 'forceRestart' || action === 'powerCycle') && s.initial === 'On') {
          expect(calls).to.deep.equal(['restart']);
          expect(mine.at(-1)!.body).to.deep.equal({ gracePeriodSeconds: 0 });
        }
        if (action === 'pause') expect(calls).to.deep.equal(['pause']);
        if ((action === 'on' || action === 'resume') && s.initial === 'On') expect(calls).to.deep.equal([]);
        if ((action === 'gracefulOff' || action === 'forceOff') && s.initial === 'Off') expect(calls).to.deep.equal([]);
      } finally {
        await mm.close();
      }
    }

    for (const s of STRATEGIES) {
      const summary = ACTIONS.map((a) => {
        const w = expected(s, a);
        return `${a}→${'error' in w ? w.error : w.state}`;
      }).join(', ');
      it(`${s.label} (settles ${s.initial}): ${summary}`, async () => {
        // the nine actions run side by side, each on its own VM
        const results = await Promise.allSettled(ACTIONS.map((a) => runCase(s, a)));
        const failures = results.flatMap((r, i) => (r.status === 'rejected' ? [`${ACTIONS[i]}: ${String(r.reason)}`] : []));
        expect(failures).to.deep.equal([]);
      });
    }
  });

  describe('scenarios', () => {
  emulatorPerTest({}, {
    set: (e) => {
      emu = e;
    },
    get: () => emu,
  });

  it('resume after pause returns to On through VMI unpause', async () => {
    emu.create(vmFixture({ runStrategy: 'Always' }));
    m = await newMachine(emu);
    await waitPower(m, 'On');
    await m.power('pause');
    await waitPower(m, 'Paused');
    await m.power('pause'); // idempotent
    await m.power('resume');
    await waitPower(m, 'On');
    expect(emu.kubevirt.actions.map((a) => a.action)).to.deep.equal(['pause', 'unpause']);
    expect(isBackendError(await m.power('gracefulRestart').catch((e: unknown) => e))).to.equal(false);
  });

  it('starting under Halted switches the VM to Always; stopping under Manual keeps Manual', async () => {
    emu.create(vmFixture({ runStrategy: 'Halted' }));
    m = await newMachine(emu);
    await m.power('on');
    await waitPower(m, 'On');
    expect((vmOf(emu).spec as { runStrategy: string }).runStrategy).to.equal('Always');
    await m.close();
    await emu.close();

    emu = await startEmulator();
    emu.create(vmFixture({ runStrategy: 'Manual' }));
    m = await newMachine(emu);
    await m.power('on');
    await waitPower(m, 'On');
    await m.power('gracefulOff');
    await waitPower(m, 'Off');
    expect((vmOf(emu).spec as { runStrategy: string }).runStrategy).to.equal('Manual');
  });

  it('a 409 "VM is already running" when someone else started the VM is a success', async () => {
    emu.create(vmFixture({ runStrategy: 'Manual' }));
    m = await newMachine(emu);
    await waitPower(m, 'Off');
    // the start request loses a race: another client starts the VM first, KubeVirt answers 409
    emu.faults.failNext(1, 409, (req) => {
      if (req.method !== 'PUT' || !req.path.endsWith('/start')) return false;
      const vm = vmOf(emu);
      vm.spec = { ...(vm.spec as object), runStrategy: 'Always' };
      emu.update(vm);
      return true;
    });
    await m.power('on');
    const starts = emu.audit.filter((a) => a.subresource === 'start');
    expect(starts.map((a) => a.code)).to.deep.equal([409]);
    await waitPower(m, 'On');
  });

  for (const rs of ['Manual', 'RerunOnFailure'] as const) {
    it(`${rs}: after the guest shut down by itself the VM reads Off, and on starts a new VMI`, async () => {
      emu.create(vmFixture({ runStrategy: rs }));
      m = await newMachine(emu);
      if (rs === 'Manual') await m.power('on');
      await waitPower(m, 'On');
      const uid = vmiOf(emu)!.metadata.uid;
      emu.kubevirt.guestShutdown(NS, VM_NAME);
      await waitPower(m, 'Off');
      await m.power('on');
      await until(() => vmiPhase(emu) === 'Running' && vmiOf(emu)!.metadata.uid !== uid, 'a new VMI');
      await waitPower(m, 'On');
    });
  }

  it('Once: after the guest shut down, on is refused (KubeVirt allows no manual start)', async () => {
    emu.create(vmFixture({ runStrategy: 'Once' }));
    m = await newMachine(emu);
    await waitPower(m, 'On');
    emu.kubevirt.guestShutdown(NS, VM_NAME);
    await waitPower(m, 'Off');
    const err = await m.power('on').catch((e: unknown) => e);
    expect(isBackendError(err, 'Conflict'), String(err)).to.equal(true);
    expect((err as Error).message).to.match(/Once/);
  });

  it('Always: after a guest shutdown KubeVirt restarts the VM; a graceful restart with a pending boot change restarts the VMI', async () => {
    emu.create(vmFixture({ runStrategy: 'Always' }));
    m = await newMachine(emu);
    await waitPower(m, 'On');
    const first = vmiOf(emu)!.metadata.uid;
    emu.kubevirt.guestShutdown(NS, VM_NAME);
    await until(() => vmiPhase(emu) === 'Running' && vmiOf(emu)!.metadata.uid !== first, 'KubeVirt restarting the VM');
    await waitPower(m, 'On');
    const second = vmiOf(emu)!.metadata.uid;
    await m.setBootOverride({ target: 'pxe', enabled: 'continuous' });
    const n = emu.kubevirt.actions.length;
    await m.power('gracefulRestart');
    expect(emu.kubevirt.actions.slice(n).map((a) => a.action)).to.deep.equal(['restart']);
    expect(emu.kubevirt.actions.at(-1)!.body).to.deep.equal({});
    await until(() => vmiPhase(emu) === 'Running' && vmiOf(emu)!.metadata.uid !== second, 'a new VMI');
    const ifaces = ((vmiOf(emu)!.spec as { domain: { devices: { interfaces: { bootOrder?: number }[] } } }).domain.devices.interfaces);
    expect(ifaces[0]!.bootOrder).to.equal(1);
  });

  it('a soft reboot the guest cannot take (no agent, ACPI off) falls back to a VMI restart', async () => {
    const vm = vmFixture({ runStrategy: 'Always' });
    ((vm.spec as { template: { spec: { domain: Record<string, unknown> } } }).template.spec.domain).features = { acpi: { enabled: false } };
    emu.create(vm);
    m = await newMachine(emu);
    await waitPower(m, 'On');
    const uid = vmiOf(emu)!.metadata.uid;
    await m.power('gracefulRestart');
    expect(emu.kubevirt.actions.map((a) => a.action)).to.deep.equal(['restart']);
    await until(() => vmiPhase(emu) === 'Running' && vmiOf(emu)!.metadata.uid !== uid, 'a new VMI');
    // with the guest agent connected, the soft reboot goes through
    emu.kubevirt.setGuestAgent(NS, VM_NAME, { guestOSInfo: { name: 'Fedora Linux', version: '40' } });
    await until(async () => (await m!.getSystemInfo()).guestOs?.name === 'Fedora Linux', 'guest OS info');
    await m.power('gracefulRestart');
    expect(emu.kubevirt.actions.at(-1)!.action).to.equal('softreboot');
  });

  it('emits power and booted events from the watch', async () => {
    emu.create(vmFixture({ runStrategy: 'Halted' }));
    m = await newMachine(emu);
    const events: MachineEvent[] = [];
    m.on((e) => events.push(e));
    const gen0 = (await m.snapshot()).generation;
    await m.power('on');
    await until(() => events.some((e) => e.type === 'booted'), 'booted event');
    const powers = events.filter((e) => e.type === 'power').map((e) => (e as { to: PowerState }).to);
    expect(powers).to.include('PoweringOn');
    expect(powers.at(-1)).to.equal('On');
    expect((await m.snapshot()).generation).to.be.greaterThan(gen0);
  });

  it('reports NotFound for a VM that does not exist', async () => {
    m = await newMachine(emu, { name: 'ghost' });
    const err = await m.getPowerState().catch((e: unknown) => e);
    expect(isBackendError(err, 'NotFound'), String(err)).to.equal(true);
    const err2 = await m.power('on').catch((e: unknown) => e);
    expect(isBackendError(err2, 'NotFound'), String(err2)).to.equal(true);
    // the VM appears later: the watch picks it up
    emu.create(vmFixture({ name: 'ghost', runStrategy: 'Always' }));
    await waitPower(m, 'On');
  });

  it('capabilities leave NMI out', () => {
    return (async () => {
      emu.create(vmFixture());
      m = await newMachine(emu);
      expect(m.capabilities.powerActions).to.not.include('nmi');
      expect(m.capabilities.powerActions).to.include('powerCycle');
    })();
  });
  });
});
