/**
 * KubeVirtMachine.poweredOnSince (IPMI Get POH Counter in KubeVirt mode): the running VMI's
 * Running transition from status.phaseTransitionTimestamps, undefined without a running VMI, and
 * a new VMI (power cycle) starts a new period. Against the apiserver emulator.
 */
import { expect } from 'chai';
import type { KubeVirtMachine } from '../../src/backend/kubevirt/index.js';
import { buildCommandTable, commandKey } from '../../src/ipmi/commands/index.js';
import { Privilege, type CommandContext } from '../../src/ipmi/types.js';
import { nullLogger } from '../../src/common/logger.js';
import type { ApiServerEmulator } from '../emulator/index.js';
import { closeAll, newMachine, startEmulator, until, vmFixture, vmiOf, vmiPhase, waitPower } from './kubevirt-fixtures.js';

const runningAt = (emu: ApiServerEmulator): number => {
  const ts = ((vmiOf(emu)?.status as { phaseTransitionTimestamps?: { phase: string; phaseTransitionTimestamp: string }[] } | undefined)?.phaseTransitionTimestamps ?? []).filter((t) => t.phase === 'Running');
  return Date.parse(ts.at(-1)!.phaseTransitionTimestamp);
};

describe('kubevirt backend: power-on time for POH', function () {
  this.timeout(20_000);
  let emu: ApiServerEmulator;
  let m: KubeVirtMachine;
  afterEach(async () => closeAll(emu));

  it('is the running VMI\'s Running transition, undefined while off, new after a power cycle; Get POH Counter uses it', async () => {
    emu = await startEmulator();
    emu.create(vmFixture({ runStrategy: 'Halted' }));
    m = await newMachine(emu);
    expect(await m.poweredOnSince()).to.equal(undefined);
    await m.power('on');
    await until(() => vmiPhase(emu) === 'Running', 'VMI Running');
    await waitPower(m, 'On');
    const first = await until(() => m.poweredOnSince(), 'poweredOnSince');
    expect(first.getTime()).to.equal(runningAt(emu));

    // Get POH Counter through the command table: 60 minutes per count, a fresh VMI has 0 hours
    const spec = buildCommandTable().get(commandKey(0x00, 0x0f))!;
    const ctx = {
      req: { netFn: 0, cmd: 0x0f, lun: 0, data: Buffer.alloc(0) },
      session: { id: 1, username: 'a', privilege: Privilege.User, maxPrivilege: Privilege.User, authType: 'rmcp+', remote: '' },
      machine: m,
      users: [],
      logger: nullLogger(),
      channel: 1,
    } as unknown as CommandContext;
    const r = await spec.handler(ctx);
    expect(Buffer.from(r!.data!).toString('hex')).to.equal('3c00000000');

    const uid = vmiOf(emu)!.metadata.uid;
    await m.power('forceRestart');
    await until(() => vmiPhase(emu) === 'Running' && vmiOf(emu)!.metadata.uid !== uid, 'new VMI Running');
    const second = await until(async () => {
      const s = await m.poweredOnSince();
      return s && s.getTime() === runningAt(emu) ? s : undefined;
    }, 'the new VMI\'s Running time');
    expect(second.getTime()).to.be.at.least(first.getTime());

    await m.power('forceOff');
    await until(() => vmiOf(emu) === undefined, 'VMI gone');
    await until(async () => (await m.poweredOnSince()) === undefined, 'undefined once off');
  });
});
