/**
 * KubeVirt backend boot override against the emulator: targets → device boot orders, UEFI/Legacy,
 * once (consumed by the next VMI, restored from the annotation, also by a new Machine instance),
 * continuous, conflict retries, unsupported targets, identity read-back.
 */
import { expect } from 'chai';
import { ONCE_ANNOTATION } from '../../src/backend/kubevirt/boot.js';
import type { KubeVirtMachine } from '../../src/backend/kubevirt/index.js';
import { KubeClient } from '../../src/kube/client.js';
import { Resources } from '../../src/kube/resources.js';
import { isBackendError, type MachineEvent } from '../../src/backend/types.js';
import type { ApiServerEmulator } from '../emulator/index.js';
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

  it('once: applies at the next VMI, then the previous orders and firmware come back', async () => {
    emu.create(vmFixture({ runStrategy: 'Halted' }));
    m = await newMachine(emu);
    const events: MachineEvent[] = [];
    m.on((e) => events.push(e));
    const result = await m.setBootOverride({ target: 'pxe', enabled: 'once', mode: 'UEFI' });
    expect(result).to.deep.equal({ target: 'pxe', enabled: 'once', mode: 'UEFI' });
    expect(JSON.parse(annotation(emu)!)).to.deep.equal({
      orders: { 'disk/root': null, 'disk/cdrom': null, 'interface/default': null },
      bootloader: null,
      vmiUid: null,
    });

    await m.power('on');
    await until(() => vmiPhase(emu) === 'Running', 'VMI running');
    // the VMI booted with the override ...
    expect(bootOrders(vmiOf(emu), true)['interface/default']).to.equal(1);
    expect(((vmiOf(emu)!.spec as { domain: { firmware?: { bootloader?: unknown } } }).domain.firmware?.bootloader)).to.deep.equal({
      efi: { secureBoot: false },
    });
    // ... and the VM spec is back to what it was
    await until(() => annotation(emu) === undefined, 'annotation removed');
    expect(bootOrders(vmOf(emu))).to.deep.equal({ 'disk/root': undefined, 'disk/cdrom': undefined, 'interface/default': undefined });
    expect(bootloader(emu)).to.equal(undefined);
    await until(async () => (await m!.getBootOverride()).enabled === 'disabled', 'read-back disabled');
    await until(() => events.some((e) => e.type === 'boot' && e.boot.enabled === 'disabled'), 'boot event');
    expect(events.some((e) => e.type === 'booted')).to.equal(true);
  });

  it('once set while running is consumed by the restart, not by the VMI already running', async () => {
    emu.create(vmFixture({ runStrategy: 'Always' }));
    m = await newMachine(emu);
    await waitPower(m, 'On');
    const uid = vmiOf(emu)!.metadata.uid;
    await m.setBootOverride({ target: 'cd', enabled: 'once' });
    expect(JSON.parse(annotation(emu)!).vmiUid).to.equal(uid);
    // nothing is consumed while the same VMI keeps running
    await new Promise((r) => setTimeout(r, 100));
    expect(annotation(emu)).to.not.equal(undefined);
    await m.power('forceRestart');
    await until(() => vmiPhase(emu) === 'Running' && vmiOf(emu)!.metadata.uid !== uid, 'new VMI');
    expect(bootOrders(vmiOf(emu), true)['disk/cdrom']).to.equal(1);
    await until(() => annotation(emu) === undefined, 'restored');
    expect(bootOrders(vmOf(emu))['disk/cdrom']).to.equal(undefined);
  });

  it('once survives an agent restart: a new Machine restores after the next VMI', async () => {
    const vm = vmFixture({ runStrategy: 'Always' });
    // the VM starts with its own continuous order: root disk first
    const disks = (vm.spec as { template: { spec: { domain: { devices: { disks: { bootOrder?: number }[] } } } } }).template.spec.domain.devices
      .disks;
    disks[0]!.bootOrder = 1;
    emu.create(vm);
    m = await newMachine(emu);
    await waitPower(m, 'On');
    const uid = vmiOf(emu)!.metadata.uid;
    expect(await m.getBootOverride()).to.deep.include({ target: 'hdd', enabled: 'continuous' });
    await m.setBootOverride({ target: 'pxe', enabled: 'once' });
    await m.close();
    m = undefined;

    // with no agent running, the VM is restarted (e.g. by another tool)
    const client = new KubeClient(emu.makeKubeConfig());
    await client.putSubresource(Resources.vmActions, NS, VM_NAME, 'restart', { gracePeriodSeconds: 0 });
    await until(() => vmiPhase(emu) === 'Running' && vmiOf(emu)!.metadata.uid !== uid, 'new VMI');
    expect(annotation(emu)).to.not.equal(undefined);

    // a fresh agent sees the pending once, and consumes it right away since the new VMI runs
    m2 = await newMachine(emu);
    await until(() => annotation(emu) === undefined, 'restored by the new machine');
    expect(bootOrders(vmOf(emu))).to.deep.equal({ 'disk/root': 1, 'disk/cdrom': undefined, 'interface/default': undefined });
    await until(async () => (await m2!.getBootOverride()).target === 'hdd', 'read-back hdd');
    expect(await m2.getBootOverride()).to.deep.include({ target: 'hdd', enabled: 'continuous' });
  });

  it('a new Machine keeps a pending once while the VM is still on its old VMI', async () => {
    emu.create(vmFixture({ runStrategy: 'Always' }));
    m = await newMachine(emu);
    await waitPower(m, 'On');
    await m.setBootOverride({ target: 'pxe', enabled: 'once' });
    await m.close();
    m = undefined;
    m2 = await newMachine(emu);
    expect(await m2.getBootOverride()).to.deep.equal({ target: 'pxe', enabled: 'once', mode: 'Legacy' });
    await new Promise((r) => setTimeout(r, 100));
    expect(annotation(emu)).to.not.equal(undefined);
    await m2.power('powerCycle');
    await until(() => annotation(emu) === undefined, 'consumed by the power cycle');
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
