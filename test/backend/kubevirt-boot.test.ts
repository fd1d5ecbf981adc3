/**
 * KubeVirt backend boot override against the emulator: targets → device boot orders, UEFI/Legacy,
 * once (consumed by the VMI that boots it, kept in the template while that VMI runs so KubeVirt
 * raises no RestartRequired, restored when it ends; guest reboots with and without rebootPolicy;
 * agent restarts), continuous, conflict retries, unsupported targets, identity read-back.
 */
import { Watch } from '@kubernetes/client-node';
import { expect } from 'chai';
import { ONCE_ANNOTATION, type SavedBoot } from '../../src/backend/kubevirt/boot.js';
import type { KubeVirtMachine } from '../../src/backend/kubevirt/index.js';
import { KubeClient } from '../../src/kube/client.js';
import { Resources } from '../../src/kube/resources.js';
import { isBackendError, type MachineEvent } from '../../src/backend/types.js';
import type { ApiServerEmulator, KubeObject } from '../emulator/index.js';
import {
  FW_UUID,
  NS,
  VM_NAME,
  bootOrders,
  emulatorPerTest,
  newMachine,
  until,
  vmFixture,
  vmOf,
  vmiOf,
  vmiPhase,
  waitPower,
} from './kubevirt-fixtures.js';

function annotation(emu: ApiServerEmulator): string | undefined {
  return vmOf(emu).metadata.annotations?.[ONCE_ANNOTATION];
}

function saved(emu: ApiServerEmulator): SavedBoot | undefined {
  const raw = annotation(emu);
  return raw === undefined ? undefined : (JSON.parse(raw) as SavedBoot);
}

function restartRequired(emu: ApiServerEmulator): boolean {
  return (vmOf(emu).status as { conditions?: { type: string; status: string }[] } | undefined)?.conditions?.some(
    (c) => c.type === 'RestartRequired' && c.status === 'True',
  ) ?? false;
}

function withRebootPolicy(vm: KubeObject, policy: string): KubeObject {
  (vm.spec as { template: { spec: { domain: Record<string, unknown> } } }).template.spec.domain.rebootPolicy = policy;
  return vm;
}

/**
 * Wait until nothing is left to happen (the assertions after it are about what did NOT happen):
 * the emulated controllers have no step pending, the machine's caches (and the recorder's watch)
 * hold the VM and VMI the API server holds, the machine has no boot-once write under way, and the
 * store's resourceVersion stayed put across two such checks. Event-driven; no sleep.
 */
async function settle(emu: ApiServerEmulator, m: KubeVirtMachine, rr?: { rv(): string | undefined }): Promise<void> {
  let lastRv: string | undefined;
  let stable = 0;
  await until(async () => {
    await emu.settled();
    const s = m.syncState();
    const vmRv = vmOf(emu).metadata.resourceVersion;
    const caughtUp = !s.busy && s.vm === vmRv && s.vmi === vmiOf(emu)?.metadata.resourceVersion && (!rr || rr.rv() === vmRv);
    const rv = emu.resourceVersion();
    stable = caughtUp && rv === lastRv ? stable + 1 : 0;
    lastRv = rv;
    return stable >= 2;
  }, 'the machine and the emulated controllers to settle');
}

/**
 * Every version of the VM the API server publishes from now on (a watch sees each write), so a
 * RestartRequired that was set and cleared in between two polls is still caught.
 */
async function recordRestartRequired(emu: ApiServerEmulator): Promise<{ trueSeen(): boolean; events(): number; rv(): string | undefined; stop(): void }> {
  let seen = false;
  let n = 0;
  /** the resourceVersion of the last version seen (the VM's current one to begin with) */
  let rv = vmOf(emu).metadata.resourceVersion;
  const ctl = await new Watch(emu.makeKubeConfig()).watch(
    `/apis/kubevirt.io/v1/namespaces/${NS}/virtualmachines`,
    { fieldSelector: `metadata.name=${VM_NAME}`, resourceVersion: emu.resourceVersion() },
    (_type: string, o: KubeObject) => {
      n++;
      rv = o.metadata.resourceVersion;
      const c = (o.status as { conditions?: { type: string; status: string }[] } | undefined)?.conditions ?? [];
      if (c.some((x) => x.type === 'RestartRequired' && x.status === 'True')) seen = true;
    },
    () => undefined,
  );
  return { trueSeen: () => seen, events: () => n, rv: () => rv, stop: () => ctl.abort() };
}

function bootloader(emu: ApiServerEmulator): unknown {
  return ((vmOf(emu).spec as { template: { spec: { domain: { firmware?: { bootloader?: unknown } } } } }).template.spec.domain.firmware
    ?.bootloader);
}

describe('kubevirt backend: boot override', function () {
  this.timeout(20000);
  let emu: ApiServerEmulator;
  let m: KubeVirtMachine | undefined;
  let m2: KubeVirtMachine | undefined;

  emulatorPerTest({}, {
    set: (e) => {
      emu = e;
    },
    get: () => emu,
  });

  it('continuous targets rewrite the device boot orders; disabled removes them', async () => {
    emu.create(vmFixture());
    m = await newMachine(emu);
    expect(await m.getBootOverride()).to.deep.equal({ target: 'none', enabled: 'disabled', mode: 'Legacy' });

    expect(await m.setBootOverride({ target: 'pxe', enabled: 'continuous' })).to.deep.equal({ target: 'pxe', enabled: 'continuous', mode: 'Legacy' });
    expect(bootOrders(vmOf(emu))).to.deep.equal({ 'interface/default': 1, 'disk/root': 2, 'disk/cdrom': 3 });

    // the chosen class goes first; the others keep their previous relative order
    await m.setBootOverride({ target: 'hdd' });
    expect(bootOrders(vmOf(emu))).to.deep.equal({ 'disk/root': 1, 'interface/default': 2, 'disk/cdrom': 3 });
    await m.setBootOverride({ target: 'cd' });
    expect(bootOrders(vmOf(emu))).to.deep.equal({ 'disk/cdrom': 1, 'disk/root': 2, 'interface/default': 3 });
    expect(await m.getBootOverride()).to.deep.equal({ target: 'cd', enabled: 'continuous', mode: 'Legacy' });
    expect(annotation(emu)).to.equal(undefined);

    await m.setBootOverride({ enabled: 'disabled' });
    expect(bootOrders(vmOf(emu))).to.deep.equal({ 'disk/root': undefined, 'disk/cdrom': undefined, 'interface/default': undefined });
    expect(await m.getBootOverride()).to.deep.equal({ target: 'none', enabled: 'disabled', mode: 'Legacy' });
  });

  it('UEFI and Legacy set the firmware bootloader (plain UEFI, no Secure Boot)', async () => {
    emu.create(vmFixture());
    m = await newMachine(emu);
    await m.setBootOverride({ mode: 'UEFI' });
    expect(bootloader(emu)).to.deep.equal({ efi: { secureBoot: false } });
    // the firmware uuid/serial next to it are untouched
    expect((await m.getSystemInfo()).uuid).to.equal(FW_UUID);
    expect((await m.getBootOverride()).mode).to.equal('UEFI');
    await m.setBootOverride({ mode: 'Legacy' });
    expect(bootloader(emu)).to.deep.equal({ bios: {} });
    expect((await m.getBootOverride()).mode).to.equal('Legacy');
  });

  it('once set while off: the next VMI boots it, the template keeps it while that VMI runs (no RestartRequired), off restores it', async () => {
    emu.create(vmFixture({ runStrategy: 'Halted' }));
    const rr = await recordRestartRequired(emu);
    m = await newMachine(emu);
    const events: MachineEvent[] = [];
    m.on((e) => events.push(e));
    const result = await m.setBootOverride({ target: 'pxe', enabled: 'once', mode: 'UEFI' });
    expect(result).to.deep.equal({ target: 'pxe', enabled: 'once', mode: 'UEFI' });
    expect(saved(emu)).to.deep.equal({
      orders: { 'disk/root': null, 'disk/cdrom': null, 'interface/default': null },
      bootloader: null,
      vmiUid: null,
      consumedBy: null,
    });

    await m.power('on');
    await until(() => vmiPhase(emu) === 'Running', 'VMI running');
    const uid = vmiOf(emu)!.metadata.uid;
    // the VMI booted with the override ...
    expect(bootOrders(vmiOf(emu), true)['interface/default']).to.equal(1);
    expect(((vmiOf(emu)!.spec as { domain: { firmware?: { bootloader?: unknown } } }).domain.firmware?.bootloader)).to.deep.equal({
      efi: { secureBoot: false },
    });
    // ... which is now consumed; the template keeps the one-time order while this VMI runs
    await until(() => saved(emu)?.consumedBy === uid, 'consumed by the VMI');
    expect(bootOrders(vmOf(emu))['interface/default']).to.equal(1);
    expect(bootloader(emu)).to.deep.equal({ efi: { secureBoot: false } });
    // reads show what the next boot will do
    await until(async () => (await m!.getBootOverride()).enabled === 'disabled', 'read-back: next boot');
    expect(await m.getBootOverride()).to.deep.equal({ target: 'none', enabled: 'disabled', mode: 'Legacy' });
    await until(() => events.some((e) => e.type === 'boot' && e.boot.enabled === 'disabled'), 'boot event');
    expect(events.some((e) => e.type === 'booted')).to.equal(true);

    await m.power('gracefulOff');
    await until(() => !vmiOf(emu), 'VMI gone');
    await until(() => annotation(emu) === undefined, 'restored after the VMI is gone');
    expect(bootOrders(vmOf(emu))).to.deep.equal({ 'disk/root': undefined, 'disk/cdrom': undefined, 'interface/default': undefined });
    expect(bootloader(emu)).to.equal(undefined);

    await m.power('on');
    await until(() => vmiPhase(emu) === 'Running' && vmiOf(emu)!.metadata.uid !== uid, 'next VMI');
    expect(bootOrders(vmiOf(emu), true)['interface/default']).to.equal(undefined);
    await settle(emu, m!, rr);
    expect(rr.trueSeen(), 'RestartRequired was never set').to.equal(false);
    expect(rr.events()).to.be.greaterThan(5); // the recorder really saw the VM change
    rr.stop();
  });

  it('once set while running: RestartRequired pending until the BMC power cycle; the new VMI boots it and the flag goes; off restores with none', async () => {
    emu.create(vmFixture({ runStrategy: 'Always' }));
    m = await newMachine(emu);
    await waitPower(m, 'On');
    const first = vmiOf(emu)!.metadata.uid;
    await m.setBootOverride({ target: 'cd', enabled: 'once' });
    expect(saved(emu)!.vmiUid).to.equal(first);
    // a real pending change: KubeVirt flags it, and the BMC reads it as pending
    await until(() => restartRequired(emu), 'RestartRequired (pending)');
    await settle(emu, m!);
    expect(saved(emu)!.consumedBy).to.equal(null);
    expect(await m.getBootOverride()).to.deep.equal({ target: 'cd', enabled: 'once', mode: 'Legacy' });

    await m.power('powerCycle');
    await until(() => vmiPhase(emu) === 'Running' && vmiOf(emu)!.metadata.uid !== first, 'new VMI');
    const second = vmiOf(emu)!.metadata.uid;
    expect(bootOrders(vmiOf(emu), true)['disk/cdrom']).to.equal(1);
    await until(() => !restartRequired(emu), 'RestartRequired gone');
    await until(() => saved(emu)?.consumedBy === second, 'consumed');
    const rr = await recordRestartRequired(emu);
    await settle(emu, m!, rr);
    expect(restartRequired(emu)).to.equal(false);

    await m.power('gracefulOff');
    await until(() => !vmiOf(emu) && annotation(emu) === undefined, 'VMI gone and order restored');
    expect(bootOrders(vmOf(emu))['disk/cdrom']).to.equal(undefined);
    await settle(emu, m!, rr);
    expect(rr.trueSeen(), 'RestartRequired after the power cycle').to.equal(false);
    expect((vmOf(emu).status as { conditions?: { type: string }[] }).conditions?.some((c) => c.type === 'RestartRequired')).to.equal(false);
    rr.stop();
  });

  it('a BMC restart of the VMI that booted once restores first, so the next VMI boots the previous order', async () => {
    emu.create(vmFixture({ runStrategy: 'Always' }));
    m = await newMachine(emu);
    await waitPower(m, 'On');
    await m.setBootOverride({ target: 'pxe', enabled: 'once' });
    await m.power('forceRestart');
    const booted = await until(() => vmiPhase(emu) === 'Running' && saved(emu)?.consumedBy === vmiOf(emu)!.metadata.uid && vmiOf(emu)!.metadata.uid, 'consumed');
    expect(bootOrders(vmiOf(emu), true)['interface/default']).to.equal(1);
    // a graceful restart would be a soft reboot inside the VMI: it restarts the VMI instead
    await m.power('gracefulRestart');
    expect(emu.kubevirt.actions.map((a) => a.action)).to.not.include('softreboot');
    await until(() => vmiPhase(emu) === 'Running' && vmiOf(emu)!.metadata.uid !== booted, 'next VMI');
    expect(bootOrders(vmiOf(emu), true)['interface/default']).to.equal(undefined);
    expect(annotation(emu)).to.equal(undefined);
    await until(() => !restartRequired(emu), 'no RestartRequired on the new VMI');
  });

  it('a guest reboot without rebootPolicy is a warm reboot: same VMI, the one-time device again', async () => {
    emu.create(vmFixture({ runStrategy: 'Halted' }));
    m = await newMachine(emu);
    await m.setBootOverride({ target: 'pxe', enabled: 'once' });
    await m.power('on');
    await until(() => vmiPhase(emu) === 'Running' && saved(emu)?.consumedBy === vmiOf(emu)!.metadata.uid, 'consumed');
    const uid = vmiOf(emu)!.metadata.uid;
    emu.kubevirt.guestReboot(NS, VM_NAME);
    await settle(emu, m!);
    expect(emu.kubevirt.warmReboots(NS, VM_NAME)).to.equal(1);
    expect(vmiOf(emu)!.metadata.uid).to.equal(uid);
    // the VMI keeps its spec: the guest boots the one-time device again (documented)
    expect(bootOrders(vmiOf(emu), true)['interface/default']).to.equal(1);
    expect(saved(emu)?.consumedBy).to.equal(uid);
    expect(restartRequired(emu)).to.equal(false);
  });

  it('rebootPolicy Terminate (Always): a guest reboot ends the VMI and the next one boots the previous order', async () => {
    emu.create(withRebootPolicy(vmFixture({ runStrategy: 'Always' }), 'Terminate'));
    m = await newMachine(emu);
    await waitPower(m, 'On');
    await m.setBootOverride({ target: 'pxe', enabled: 'once' });
    await m.power('powerCycle');
    await until(() => vmiPhase(emu) === 'Running' && bootOrders(vmiOf(emu), true)['interface/default'] === 1, 'VMI with the once order');
    const uid = vmiOf(emu)!.metadata.uid;
    // KubeVirt recreates the VMI right after a guest reboot, so the order went back already
    await until(() => annotation(emu) === undefined, 'restored while the once VMI runs');
    expect(await m.getBootOverride()).to.deep.include({ target: 'none', enabled: 'disabled' });
    emu.kubevirt.guestReboot(NS, VM_NAME);
    await until(() => vmiPhase(emu) === 'Running' && vmiOf(emu)!.metadata.uid !== uid, 'next VMI after the guest reboot');
    expect(bootOrders(vmiOf(emu), true)['interface/default']).to.equal(undefined);
    await until(() => !restartRequired(emu), 'no RestartRequired on the next VMI');
  });

  it('rebootPolicy Terminate (Manual): the template keeps the once order until the guest reboot ends the VMI; graceful restart is no soft reboot', async () => {
    emu.create(withRebootPolicy(vmFixture({ runStrategy: 'Manual' }), 'Terminate'));
    m = await newMachine(emu);
    await m.setBootOverride({ target: 'pxe', enabled: 'once' });
    await m.power('on');
    await until(() => vmiPhase(emu) === 'Running' && saved(emu)?.consumedBy === vmiOf(emu)!.metadata.uid, 'consumed');
    // a soft reboot would end the VMI for good under Manual: the BMC restarts the VMI instead
    await m.power('gracefulRestart');
    expect(emu.kubevirt.actions.filter((a) => a.action === 'softreboot')).to.have.length(0);
    await until(() => vmiPhase(emu) === 'Running' && bootOrders(vmiOf(emu), true)['interface/default'] === undefined, 'restarted with the old order');
    // once more, and this time the guest reboots itself: the VMI ends (Succeeded), the order comes back
    await m.setBootOverride({ target: 'pxe', enabled: 'once' });
    await m.power('gracefulRestart');
    await until(() => vmiPhase(emu) === 'Running' && saved(emu)?.consumedBy === vmiOf(emu)!.metadata.uid, 'consumed again');
    emu.kubevirt.guestReboot(NS, VM_NAME);
    await until(() => vmiPhase(emu) === 'Succeeded', 'VMI ended by the guest reboot');
    await until(() => annotation(emu) === undefined, 'restored');
    expect(bootOrders(vmOf(emu))['interface/default']).to.equal(undefined);
    await waitPower(m, 'Off');
  });

  it('an agent restart between set and boot keeps the semantics', async () => {
    emu.create(vmFixture({ runStrategy: 'Halted' }));
    m = await newMachine(emu);
    await m.setBootOverride({ target: 'pxe', enabled: 'once' });
    await m.close();
    m = undefined;
    m2 = await newMachine(emu);
    expect(await m2.getBootOverride()).to.deep.equal({ target: 'pxe', enabled: 'once', mode: 'Legacy' });
    await m2.power('on');
    await until(() => vmiPhase(emu) === 'Running' && saved(emu)?.consumedBy === vmiOf(emu)!.metadata.uid, 'consumed by the new agent');
    expect(bootOrders(vmiOf(emu), true)['interface/default']).to.equal(1);
    expect(bootOrders(vmOf(emu))['interface/default']).to.equal(1);
    expect(restartRequired(emu)).to.equal(false);
  });

  it('an agent restart between boot and stop keeps the semantics: consumed is kept, the order comes back when the VMI is gone', async () => {
    const vm = vmFixture({ runStrategy: 'Halted' });
    // the VM starts with its own continuous order: root disk first
    const disks = (vm.spec as { template: { spec: { domain: { devices: { disks: { bootOrder?: number }[] } } } } }).template.spec.domain.devices.disks;
    disks[0]!.bootOrder = 1;
    emu.create(vm);
    const rr = await recordRestartRequired(emu);
    m = await newMachine(emu);
    await m.setBootOverride({ target: 'pxe', enabled: 'once' });
    await m.power('on');
    await until(() => vmiPhase(emu) === 'Running' && saved(emu)?.consumedBy === vmiOf(emu)!.metadata.uid, 'consumed');
    await m.close();
    m = undefined;

    // a fresh agent reads the next boot, and leaves the running VMI's order alone
    m2 = await newMachine(emu);
    expect(await m2.getBootOverride()).to.deep.equal({ target: 'hdd', enabled: 'continuous', mode: 'Legacy' });
    await settle(emu, m2!, rr);
    expect(bootOrders(vmOf(emu))['interface/default']).to.equal(1);
    await m2.close();
    m2 = undefined;

    // the VM is stopped while no agent runs (e.g. by virtctl); the next agent restores
    const client = new KubeClient(emu.makeKubeConfig());
    await client.putSubresource(Resources.vmActions, NS, VM_NAME, 'stop', {});
    await until(() => !vmiOf(emu), 'VMI gone');
    expect(annotation(emu)).to.not.equal(undefined);
    m2 = await newMachine(emu);
    await until(() => annotation(emu) === undefined, 'restored by the new agent');
    expect(bootOrders(vmOf(emu))).to.deep.equal({ 'disk/root': 1, 'disk/cdrom': undefined, 'interface/default': undefined });
    expect(await m2.getBootOverride()).to.deep.include({ target: 'hdd', enabled: 'continuous' });
    client.close();
    expect(rr.trueSeen()).to.equal(false);
    rr.stop();
  });

  it('a consumed once that the VMI ends by itself (guest shutdown under Manual) is restored; changing the override while consumed writes the next boot', async () => {
    emu.create(vmFixture({ runStrategy: 'Manual' }));
    m = await newMachine(emu);
    await m.setBootOverride({ target: 'cd', enabled: 'once' });
    await m.power('on');
    await until(() => vmiPhase(emu) === 'Running' && saved(emu)?.consumedBy === vmiOf(emu)!.metadata.uid, 'consumed');
    // while consumed, a continuous pxe is for the next boot: written now (a real pending change)
    expect(await m.setBootOverride({ target: 'pxe', enabled: 'continuous' })).to.deep.equal({ target: 'pxe', enabled: 'continuous', mode: 'Legacy' });
    expect(annotation(emu)).to.equal(undefined);
    expect(bootOrders(vmOf(emu))).to.deep.equal({ 'interface/default': 1, 'disk/root': 2, 'disk/cdrom': 3 });
    await until(() => restartRequired(emu), 'pending change flagged');
    // once again, then the guest shuts down: the VMI stays Succeeded under Manual, the order comes back
    await m.setBootOverride({ enabled: 'disabled' });
    await m.setBootOverride({ target: 'cd', enabled: 'once' });
    await m.power('forceRestart');
    await until(() => vmiPhase(emu) === 'Running' && saved(emu)?.consumedBy === vmiOf(emu)!.metadata.uid, 'consumed again');
    emu.kubevirt.guestShutdown(NS, VM_NAME);
    await until(() => annotation(emu) === undefined, 'restored after the guest shutdown');
    expect(bootOrders(vmOf(emu))).to.deep.equal({ 'disk/root': undefined, 'disk/cdrom': undefined, 'interface/default': undefined });
  });

  it('Always: the once VMI shuts down by itself and KubeVirt recreates it at once; the order comes back, RestartRequired tells whether the race was lost', async () => {
    emu.create(vmFixture({ runStrategy: 'Always' }));
    m = await newMachine(emu);
    await waitPower(m, 'On');
    await m.setBootOverride({ target: 'pxe', enabled: 'once' });
    await m.power('powerCycle');
    await until(() => vmiPhase(emu) === 'Running' && saved(emu)?.consumedBy === vmiOf(emu)!.metadata.uid, 'consumed');
    const uid = vmiOf(emu)!.metadata.uid;
    emu.kubevirt.guestShutdown(NS, VM_NAME);
    await until(() => vmiPhase(emu) === 'Running' && vmiOf(emu)!.metadata.uid !== uid, 'recreated VMI');
    await until(() => annotation(emu) === undefined, 'restored');
    expect(bootOrders(vmOf(emu))['interface/default']).to.equal(undefined);
    // the emulator recreates in the same instant (no pod teardown): if the new VMI was created
    // before the restore it booted the one-time order, and KubeVirt rightly flags the VM until its next restart
    const lost = bootOrders(vmiOf(emu), true)['interface/default'] === 1;
    await until(() => restartRequired(emu) === lost, `RestartRequired ${String(lost)}`);
    await settle(emu, m!);
    expect(restartRequired(emu)).to.equal(lost);
  });

  it('a restore the API refuses is retried by itself; a restart whose restore fails is refused, not run', async () => {
    emu.create(vmFixture({ runStrategy: 'Always' }));
    m = await newMachine(emu);
    await waitPower(m, 'On');
    await m.setBootOverride({ target: 'pxe', enabled: 'once' });
    await m.power('powerCycle');
    await until(() => vmiPhase(emu) === 'Running' && saved(emu)?.consumedBy === vmiOf(emu)!.metadata.uid, 'consumed');
    const uid = vmiOf(emu)!.metadata.uid;
    // the restore before a restart fails: the restart is not sent (it would boot the one-time order again)
    emu.faults.failNext(1, 500, (req) => req.method === 'PATCH' && req.path.includes('/virtualmachines/'));
    const err = await m.power('forceRestart').catch((e: unknown) => e);
    expect(isBackendError(err), String(err)).to.equal(true);
    expect(vmiOf(emu)!.metadata.uid).to.equal(uid);
    expect(emu.kubevirt.actions.filter((a) => a.action === 'restart')).to.have.length(1); // the power cycle's only
    // off: the watch restores once the VMI is gone; the first attempt fails, a retry (the next VM event, or the timer) lands
    emu.faults.failNext(1, 500, (req) => req.method === 'PATCH' && req.path.includes('/virtualmachines/'));
    await m.power('gracefulOff');
    await until(() => !vmiOf(emu), 'VMI gone');
    // the retry timer starts at 2 s (machine-boot.ts RETRY_MIN_MS): no bound of its own here
    await until(() => annotation(emu) === undefined, 'restored by the retry');
    const patches = emu.audit.filter((a) => a.verb === 'patch' && a.resource === 'virtualmachines').map((a) => a.code);
    expect(patches.slice(-3)).to.deep.equal([500, 500, 200]);
    expect(bootOrders(vmOf(emu))['interface/default']).to.equal(undefined);
  });

  it('a restart KubeVirt refuses (runStrategy Once) leaves a consumed once as it is', async () => {
    emu.create(vmFixture({ runStrategy: 'Halted' }));
    m = await newMachine(emu);
    await m.setBootOverride({ target: 'pxe', enabled: 'once' });
    const vm = vmOf(emu);
    (vm.spec as { runStrategy: string }).runStrategy = 'Once';
    emu.update(vm);
    await until(() => vmiPhase(emu) === 'Running' && saved(emu)?.consumedBy === vmiOf(emu)!.metadata.uid, 'consumed');
    const err = await m.power('forceRestart').catch((e: unknown) => e);
    expect(isBackendError(err, 'Conflict'), String(err)).to.equal(true);
    expect(saved(emu)?.consumedBy).to.equal(vmiOf(emu)!.metadata.uid);
    expect(bootOrders(vmOf(emu))['interface/default']).to.equal(1);
    await settle(emu, m!);
    expect(restartRequired(emu)).to.equal(false);
  });

  it('retries when the VM changes between read and write (JSON patch test on resourceVersion)', async () => {
    emu.create(vmFixture());
    m = await newMachine(emu);
    let bumped = 0;
    // right before the first patch lands, someone else edits the VM (its resourceVersion moves on)
    emu.faults.failNext(1, 500, (req) => {
      if (req.method === 'PATCH' && bumped === 0) {
        bumped++;
        const vm = vmOf(emu);
        vm.metadata.labels = { ...(vm.metadata.labels ?? {}), touched: 'yes' };
        emu.update(vm);
      }
      return false;
    });
    await m.setBootOverride({ target: 'pxe', enabled: 'continuous' });
    const patches = emu.audit.filter((a) => a.verb === 'patch' && a.resource === 'virtualmachines');
    expect(patches.map((p) => p.code)).to.deep.equal([422, 200]);
    expect(bootOrders(vmOf(emu))['interface/default']).to.equal(1);
    expect(vmOf(emu).metadata.labels?.touched).to.equal('yes'); // the other writer's change survived
  });

  it('a 422 that is not a lost race (the VM did not move) is reported, not retried', async () => {
    emu.create(vmFixture());
    m = await newMachine(emu);
    emu.faults.failNext(1, 422, (req) => req.method === 'PATCH');
    const err = await m.setBootOverride({ target: 'pxe', enabled: 'continuous' }).catch((e: unknown) => e);
    expect(isBackendError(err, 'InvalidArgument'), String(err)).to.equal(true);
    expect(emu.audit.filter((a) => a.verb === 'patch').map((a) => a.code)).to.deep.equal([422]);
  });

  it('refuses targets KubeVirt cannot express and leaves them out of the capabilities', async () => {
    emu.create(vmFixture({ cdrom: false, interfaces: false }));
    m = await newMachine(emu);
    expect(m.capabilities.bootTargets).to.deep.equal(['none', 'hdd']);
    for (const target of ['biosSetup', 'uefiHttp', 'usb', 'floppy', 'diags', 'pxe', 'cd'] as const) {
      const err = await m.setBootOverride({ target, enabled: 'once' }).catch((e: unknown) => e);
      expect(isBackendError(err, 'Unsupported'), `${target}: ${String(err)}`).to.equal(true);
    }
    expect(emu.audit.filter((a) => a.verb === 'patch')).to.have.length(0);
  });

  it('a target alone arms a one-time override; identity reads from the spec and the VMI', async () => {
    emu.create(vmFixture({ runStrategy: 'Always' }));
    m = await newMachine(emu);
    await waitPower(m, 'On');
    expect(await m.setBootOverride({ target: 'pxe' })).to.deep.equal({ target: 'pxe', enabled: 'once', mode: 'Legacy' });
    emu.kubevirt.setGuestAgent(NS, VM_NAME, { guestOSInfo: { name: 'Fedora Linux', prettyName: 'Fedora Linux 40', version: '40' } });
    const info = await until(async () => {
      const i = await m!.getSystemInfo();
      return i.guestOs ? i : undefined;
    }, 'guest OS');
    expect(info).to.deep.include({ uuid: FW_UUID, serialNumber: 'SN-0001', cpuCount: 2, memoryMiB: 2048, name: VM_NAME, namespace: NS });
    expect(info.manufacturer).to.equal('KubeVirt');
    expect(info.model).to.equal('VirtualMachine');
    expect(info.nics[0]!.macAddress).to.equal('02:11:22:33:44:55');
    expect(info.guestOs).to.deep.equal({ name: 'Fedora Linux 40', version: '40' });
  });
});
