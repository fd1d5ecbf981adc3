/**
 * Pure parts of the KubeVirt backend: power-state derivation and action planning, boot order
 * computation and patches, identity, media sizing and slot derivation, error mapping.
 */
import { expect } from 'chai';
import { jsonPatch } from '../emulator/patch.js';
import { isBackendError, type PowerAction, type PowerState } from '../../src/backend/types.js';
import { nullLogger } from '../../src/common/logger.js';
import {
  ONCE_ANNOTATION,
  bootSignature,
  buildBootPatch,
  computeBootOrders,
  consumeWrite,
  deriveBootOverride,
  listBootDevices,
  nextBootVm,
  onceStep,
  parseSaved,
  planBootWrite,
  restoreWrite,
  supportedTargets,
} from '../../src/backend/kubevirt/boot.js';
import { toBackendError } from '../../src/backend/kubevirt/errors.js';
import { KubeApiError } from '../../src/kube/client.js';
import { rbacNeed } from '../../src/kube/resources.js';
import { canonicalUuid, cpuCount, memoryMiB, parseQuantity, systemInfo } from '../../src/backend/kubevirt/identity.js';
import {
  cdromDrives,
  dataVolumeError,
  deriveDriveSlot,
  ejectVolumePatch,
  insertVolumePatch,
  mediaDataVolumeName,
  mediaSize,
  needsDeclarativeHotplug,
  parseProgress,
} from '../../src/backend/kubevirt/media.js';
import {
  derivePowerState,
  effectiveRunStrategy,
  planPowerAction,
  resolveConflict,
} from '../../src/backend/kubevirt/power.js';
import type { VirtualMachine, VirtualMachineInstance } from '../../src/backend/kubevirt/types.js';

function vmWith(devices: { disks?: object[]; interfaces?: object[] }, extra: Partial<VirtualMachine> = {}): VirtualMachine {
  return {
    apiVersion: 'kubevirt.io/v1',
    kind: 'VirtualMachine',
    metadata: { name: 'vm1', namespace: 'ns', uid: '11111111-2222-3333-4444-555555555555', resourceVersion: '7' },
    spec: { runStrategy: 'Halted', template: { spec: { domain: { devices: devices as never } } } },
    ...extra,
  };
}

const DEVICES = {
  disks: [
    { name: 'root', disk: { bus: 'virtio' } },
    { name: 'data', disk: { bus: 'virtio' } },
    { name: 'cd', cdrom: { bus: 'sata' } },
  ],
  interfaces: [{ name: 'default', masquerade: {} }],
};

function vmi(phase: string, extra: Partial<VirtualMachineInstance> = {}): VirtualMachineInstance {
  return { metadata: { name: 'vm1', uid: 'vmi-uid-1' }, status: { phase }, ...extra };
}

describe('kubevirt backend logic', () => {
  describe('power state derivation', () => {
    const cases: [string, string | undefined, VirtualMachineInstance | undefined, PowerState][] = [
      ['stopped, no VMI', 'Stopped', undefined, 'Off'],
      ['starting', 'Starting', undefined, 'PoweringOn'],
      ['provisioning', 'Provisioning', undefined, 'PoweringOn'],
      ['waiting for volumes', 'WaitingForVolumeBinding', undefined, 'PoweringOn'],
      ['VMI scheduling', 'Starting', vmi('Scheduling'), 'PoweringOn'],
      ['VMI pending, no status yet', undefined, vmi('Pending'), 'PoweringOn'],
      ['running', 'Running', vmi('Running'), 'On'],
      ['running VMI with lagging status', 'Stopped', vmi('Running'), 'On'],
      ['stopping', 'Stopping', vmi('Running'), 'PoweringOff'],
      ['terminating', 'Terminating', vmi('Running'), 'PoweringOff'],
      ['VMI being deleted', 'Running', vmi('Running', { metadata: { uid: 'x', deletionTimestamp: 'now' } }), 'PoweringOff'],
      ['paused condition', 'Running', vmi('Running', { status: { phase: 'Running', conditions: [{ type: 'Paused', status: 'True' }] } }), 'Paused'],
      ['paused printable status', 'Paused', vmi('Running'), 'Paused'],
      ['guest shut down (Succeeded)', 'Stopped', vmi('Succeeded'), 'Off'],
      ['failed VMI', 'CrashLoopBackOff', vmi('Failed'), 'Off'],
    ];
    for (const [title, printable, theVmi, want] of cases) {
      it(`${title} → ${want}`, () => {
        const vm = vmWith(DEVICES, printable ? { status: { printableStatus: printable } } : {});
        expect(derivePowerState(vm, theVmi)).to.equal(want);
      });
    }

    it('run strategy: runStrategy wins, spec.running maps to Always/Halted, default Halted', () => {
      expect(effectiveRunStrategy({ spec: { runStrategy: 'Manual' } })).to.equal('Manual');
      expect(effectiveRunStrategy({ spec: { running: true } })).to.equal('Always');
      expect(effectiveRunStrategy({ spec: { running: false } })).to.equal('Halted');
      expect(effectiveRunStrategy({ spec: {} })).to.equal('Halted');
    });
  });

  describe('power action planning', () => {
    const running = vmi('Running');
    const plan = (a: PowerAction, state: PowerState, pending = false) => planPowerAction(a, { state, vmi: running, pendingBootChange: pending });
    const call = (a: PowerAction, state: PowerState, pending = false) => {
      const p = plan(a, state, pending);
      if (p.kind !== 'call') throw new Error(`expected a call for ${a} in ${state}, got ${p.kind}`);
      return `${p.call.target}/${p.call.sub} ${JSON.stringify(p.call.body)}`;
    };
    const errCode = (a: PowerAction, state: PowerState) => {
      const p = plan(a, state);
      return p.kind === 'error' ? p.error.code : p.kind;
    };

    it('maps each action onto the KubeVirt subresource', () => {
      expect(call('on', 'Off')).to.equal('vm/start {}');
      expect(call('gracefulOff', 'On')).to.equal('vm/stop {}');
      expect(call('forceOff', 'On')).to.equal('vm/stop {"gracePeriod":0}');
      expect(call('gracefulRestart', 'On')).to.equal('vmi/softreboot {}');
      expect(call('forceRestart', 'On')).to.equal('vm/restart {"gracePeriodSeconds":0}');
      expect(call('powerCycle', 'On')).to.equal('vm/restart {"gracePeriodSeconds":0}');
      expect(call('powerCycle', 'Off')).to.equal('vm/start {}');
      expect(call('pause', 'On')).to.equal('vmi/pause {}');
      expect(call('resume', 'Paused')).to.equal('vmi/unpause {}');
    });

    it('a graceful restart with a pending boot change restarts the VMI instead of a soft reboot', () => {
      expect(call('gracefulRestart', 'On', true)).to.equal('vm/restart {}');
    });

    it('a graceful restart of a rebootPolicy Terminate VMI that KubeVirt would not recreate restarts the VMI (a soft reboot would leave it off)', () => {
      const term = vmi('Running', { spec: { domain: { rebootPolicy: 'Terminate' } } });
      const p = planPowerAction('gracefulRestart', { state: 'On', vmi: term, pendingBootChange: false, softRebootEndsVmi: true });
      expect(p.kind === 'call' && p.call.sub).to.equal('restart');
      const q = planPowerAction('gracefulRestart', { state: 'On', vmi: term, pendingBootChange: false, softRebootEndsVmi: false });
      expect(q.kind === 'call' && q.call.sub).to.equal('softreboot');
    });

    it('a graceful restart without guest agent and with ACPI off restarts the VMI', () => {
      const noAcpi = vmi('Running', { spec: { domain: { features: { acpi: { enabled: false } } } } });
      const p = planPowerAction('gracefulRestart', { state: 'On', vmi: noAcpi, pendingBootChange: false });
      expect(p.kind === 'call' && p.call.sub).to.equal('restart');
      const withAgent = vmi('Running', {
        spec: { domain: { features: { acpi: { enabled: false } } } },
        status: { phase: 'Running', conditions: [{ type: 'AgentConnected', status: 'True' }] },
      });
      const q = planPowerAction('gracefulRestart', { state: 'On', vmi: withAgent, pendingBootChange: false });
      expect(q.kind === 'call' && q.call.sub).to.equal('softreboot');
    });

    it('answers idempotent requests without a call and refuses impossible ones', () => {
      expect(errCode('on', 'On')).to.equal('noop');
      expect(errCode('on', 'PoweringOn')).to.equal('noop');
      expect(errCode('gracefulOff', 'Off')).to.equal('noop');
      expect(errCode('forceOff', 'Off')).to.equal('noop');
      expect(errCode('pause', 'Paused')).to.equal('noop');
      expect(errCode('resume', 'On')).to.equal('noop');
      expect(errCode('forceRestart', 'Off')).to.equal('Conflict');
      expect(errCode('gracefulRestart', 'Off')).to.equal('Conflict');
      expect(errCode('pause', 'Off')).to.equal('Conflict');
      expect(errCode('resume', 'Off')).to.equal('Conflict');
      expect(errCode('on', 'Paused')).to.equal('Conflict');
      expect(errCode('forceRestart', 'PoweringOn')).to.equal('Busy');
      expect(errCode('on', 'PoweringOff')).to.equal('Busy');
      expect(errCode('nmi', 'On')).to.equal('Unsupported');
    });

    it('resolves KubeVirt 409s: success when the end state holds, Busy or Conflict otherwise', () => {
      expect(resolveConflict('on', 'On', 'Always', 'VM is already running')).to.equal('ok');
      expect(resolveConflict('gracefulOff', 'Off', 'Manual', 'VM is not running')).to.equal('ok');
      // Always: KubeVirt (re)starts the VM by itself, so a refused manual start is still satisfied
      expect(resolveConflict('on', 'Off', 'Always', 'Always does not support manual start requests')).to.equal('ok');
      const halted = resolveConflict('on', 'Off', 'Halted', 'something else');
      expect(isBackendError(halted, 'Conflict')).to.equal(true);
      const once = resolveConflict('forceRestart', 'On', 'Once', 'RunStategy Once does not support manual restart requests');
      expect(isBackendError(once, 'Conflict')).to.equal(true);
      expect(isBackendError(resolveConflict('forceRestart', 'PoweringOff', 'Always', 'x'), 'Busy')).to.equal(true);
    });
  });

  describe('boot order', () => {
    it('puts the chosen class first with sequential unique orders over all devices', () => {
      const devs = listBootDevices(vmWith(DEVICES));
      const pxe = computeBootOrders(devs, 'pxe');
      expect(Object.fromEntries(pxe)).to.deep.equal({ 'interface/default': 1, 'disk/root': 2, 'disk/data': 3, 'disk/cd': 4 });
      const cd = computeBootOrders(devs, 'cd');
      expect(Object.fromEntries(cd)).to.deep.equal({ 'disk/cd': 1, 'disk/root': 2, 'disk/data': 3, 'interface/default': 4 });
      const values = [...cd.values()].sort();
      expect(new Set(values).size).to.equal(values.length);
    });

    it('keeps the existing relative order of the other devices', () => {
      const vm = vmWith({
        disks: [{ name: 'a', disk: {}, bootOrder: 3 }, { name: 'b', disk: {}, bootOrder: 1 }],
        interfaces: [{ name: 'n', bootOrder: 2 }],
      });
      expect(Object.fromEntries(computeBootOrders(listBootDevices(vm), 'pxe'))).to.deep.equal({ 'interface/n': 1, 'disk/b': 2, 'disk/a': 3 });
    });

    it('derives target/enabled/mode from the spec and the annotation', () => {
      expect(deriveBootOverride(vmWith(DEVICES))).to.deep.equal({ target: 'none', enabled: 'disabled', mode: 'Legacy' });
      const cont = vmWith({ disks: [{ name: 'root', disk: {}, bootOrder: 2 }], interfaces: [{ name: 'n', bootOrder: 1 }] });
      expect(deriveBootOverride(cont)).to.deep.equal({ target: 'pxe', enabled: 'continuous', mode: 'Legacy' });
      cont.metadata!.annotations = { [ONCE_ANNOTATION]: JSON.stringify({ orders: {}, bootloader: null, vmiUid: null }) };
      cont.spec!.template!.spec!.domain!.firmware = { bootloader: { efi: { secureBoot: false } } };
      expect(deriveBootOverride(cont)).to.deep.equal({ target: 'pxe', enabled: 'once', mode: 'UEFI' });
    });

    it('supported targets follow the devices the VM has', () => {
      expect(supportedTargets(vmWith(DEVICES))).to.deep.equal(['none', 'pxe', 'hdd', 'cd']);
      expect(supportedTargets(vmWith({ disks: [{ name: 'root', disk: {} }] }))).to.deep.equal(['none', 'hdd']);
    });

    it('once: saves the previous orders, bootloader and VMI uid; the patch applies and guards the resourceVersion', () => {
      const vm = vmWith({ disks: [{ name: 'root', disk: {}, bootOrder: 1 }, { name: 'cd', cdrom: {} }], interfaces: [{ name: 'n' }] });
      const write = planBootWrite(vm, { target: 'pxe', enabled: 'once', mode: 'UEFI' }, 'vmi-a')!;
      const ops = buildBootPatch(vm, write);
      expect(ops[0]).to.deep.equal({ op: 'test', path: '/metadata/resourceVersion', value: '7' });
      const after = jsonPatch(vm, ops) as VirtualMachine;
      expect(deriveBootOverride(after)).to.deep.equal({ target: 'pxe', enabled: 'once', mode: 'UEFI' });
      expect(after.spec!.template!.spec!.domain!.firmware!.bootloader).to.deep.equal({ efi: { secureBoot: false } });
      const saved = parseSaved(after)!;
      expect(saved).to.deep.equal({ orders: { 'disk/root': 1, 'disk/cd': null, 'interface/n': null }, bootloader: null, vmiUid: 'vmi-a', consumedBy: null });

      // restoring gives back exactly the original devices and firmware
      const restored = jsonPatch(after, buildBootPatch(after, { orders: saved.orders, bootloader: saved.bootloader, annotation: null })) as VirtualMachine;
      expect(restored.spec!.template!.spec!.domain!.devices).to.deep.equal(vm.spec!.template!.spec!.domain!.devices);
      expect(restored.spec!.template!.spec!.domain!.firmware?.bootloader).to.equal(undefined);
      expect(restored.metadata!.annotations?.[ONCE_ANNOTATION]).to.equal(undefined);
    });

    it('once consumed: the template keeps the one-time order, reads and nextBootVm show the saved one; restoreWrite gives it back', () => {
      const vm = vmWith({ disks: [{ name: 'root', disk: {}, bootOrder: 1 }, { name: 'cd', cdrom: {} }], interfaces: [{ name: 'n' }] });
      const armed = jsonPatch(vm, buildBootPatch(vm, planBootWrite(vm, { target: 'pxe', enabled: 'once', mode: 'UEFI' }, null)!)) as VirtualMachine;
      const consumed = jsonPatch(armed, buildBootPatch(armed, consumeWrite(armed, 'vmi-b')!)) as VirtualMachine;
      // only the annotation changed: nothing KubeVirt compares with the VMI's start revision
      expect(consumed.spec).to.deep.equal(armed.spec);
      expect(parseSaved(consumed)!.consumedBy).to.equal('vmi-b');
      expect(deriveBootOverride(consumed)).to.deep.equal({ target: 'hdd', enabled: 'continuous', mode: 'Legacy' });
      const next = nextBootVm(consumed);
      expect(next.spec!.template!.spec!.domain!.devices).to.deep.equal(vm.spec!.template!.spec!.domain!.devices);
      expect(next.spec!.template!.spec!.domain!.firmware?.bootloader).to.equal(undefined);
      expect(consumed.spec!.template!.spec!.domain!.devices!.interfaces![0]!.bootOrder).to.equal(1); // nextBootVm copies
      const restored = jsonPatch(consumed, buildBootPatch(consumed, restoreWrite(consumed)!)) as VirtualMachine;
      expect(restored.spec!.template!.spec!.domain!.devices).to.deep.equal(vm.spec!.template!.spec!.domain!.devices);
      expect(restored.metadata!.annotations?.[ONCE_ANNOTATION]).to.equal(undefined);
    });

    it('a write while consumed is planned against the next boot and writes all of it', () => {
      const vm = vmWith({ disks: [{ name: 'root', disk: {} }, { name: 'cd', cdrom: {} }], interfaces: [{ name: 'n' }] });
      const armed = jsonPatch(vm, buildBootPatch(vm, planBootWrite(vm, { target: 'cd', enabled: 'once', mode: 'Legacy' }, null)!)) as VirtualMachine;
      const consumed = jsonPatch(armed, buildBootPatch(armed, consumeWrite(armed, 'vmi-b')!)) as VirtualMachine;
      // disabled is what the next boot does already: nothing to write
      expect(planBootWrite(consumed, { target: 'none', enabled: 'disabled', mode: 'Legacy' }, 'vmi-b')).to.equal(undefined);
      // a mode change alone still puts the saved orders back (the template holds the one-time ones)
      const uefi = jsonPatch(consumed, buildBootPatch(consumed, planBootWrite(consumed, { target: 'none', enabled: 'disabled', mode: 'UEFI' }, 'vmi-b')!)) as VirtualMachine;
      expect(deriveBootOverride(uefi)).to.deep.equal({ target: 'none', enabled: 'disabled', mode: 'UEFI' });
      expect(listBootDevices(uefi).map((d) => d.bootOrder)).to.deep.equal([undefined, undefined, undefined]);
      expect(uefi.metadata!.annotations?.[ONCE_ANNOTATION]).to.equal(undefined);
      // once again while consumed: pending for the VMI after vmi-b, saving the next-boot orders
      const again = jsonPatch(consumed, buildBootPatch(consumed, planBootWrite(consumed, { target: 'pxe', enabled: 'once', mode: 'Legacy' }, 'vmi-b')!)) as VirtualMachine;
      expect(parseSaved(again)).to.deep.equal({ orders: { 'disk/root': null, 'disk/cd': null, 'interface/n': null }, bootloader: null, vmiUid: 'vmi-b', consumedBy: null });
      expect(deriveBootOverride(again)).to.deep.equal({ target: 'pxe', enabled: 'once', mode: 'Legacy' });
    });

    describe('onceStep: when a boot-once is consumed and when its order goes back', () => {
      const vmi = (uid: string, phase: string, extra: { deleting?: boolean; rebootPolicy?: string } = {}) => ({
        metadata: { uid, ...(extra.deleting ? { deletionTimestamp: '2026-01-01T00:00:00Z' } : {}) },
        spec: extra.rebootPolicy ? { domain: { rebootPolicy: extra.rebootPolicy } } : {},
        status: { phase },
      });
      const withOnce = (runStrategy: string, consumedBy: string | null, stateChangeRequests?: { action: string }[]): VirtualMachine => {
        const vm = vmWith(DEVICES, {});
        vm.spec!.runStrategy = runStrategy;
        vm.metadata!.annotations = { [ONCE_ANNOTATION]: JSON.stringify({ orders: {}, bootloader: null, vmiUid: 'old', consumedBy }) };
        if (stateChangeRequests) vm.status = { stateChangeRequests };
        return vm;
      };

      it('pending: consumed by a running VMI other than the one present at set time, never by that one or a starting one', () => {
        expect(onceStep(withOnce('Always', null), vmi('old', 'Running')).kind).to.equal('none');
        expect(onceStep(withOnce('Always', null), vmi('new', 'Scheduling')).kind).to.equal('none');
        expect(onceStep(withOnce('Always', null), vmi('new', 'Running', { deleting: true })).kind).to.equal('none');
        expect(onceStep(withOnce('Always', null), vmi('new', 'Running'))).to.deep.equal({ kind: 'consume', uid: 'new' });
        expect(onceStep(withOnce('Always', null), undefined).kind).to.equal('none');
        expect(onceStep(vmWith(DEVICES), vmi('new', 'Running')).kind).to.equal('none');
      });

      it('consumed: kept while its VMI runs; restored when it is gone, final, or replaced', () => {
        expect(onceStep(withOnce('Always', 'c'), vmi('c', 'Running')).kind).to.equal('none');
        expect(onceStep(withOnce('Halted', 'c'), undefined).kind).to.equal('restore');
        expect(onceStep(withOnce('Manual', 'c'), vmi('c', 'Succeeded')).kind).to.equal('restore');
        expect(onceStep(withOnce('Always', 'c'), vmi('c', 'Failed')).kind).to.equal('restore');
        expect(onceStep(withOnce('Always', 'c'), vmi('d', 'Running')).kind).to.equal('restore');
      });

      it('consumed and being deleted: restore now only when a new VMI follows, else once it is gone', () => {
        // BMC off: stop moved runStrategy to Halted (or queued a Stop only): wait
        expect(onceStep(withOnce('Halted', 'c'), vmi('c', 'Running', { deleting: true })).kind).to.equal('none');
        expect(onceStep(withOnce('Manual', 'c', [{ action: 'Stop' }]), vmi('c', 'Running', { deleting: true })).kind).to.equal('none');
        // restart (Stop + Start) or Always: the next VMI comes right after
        expect(onceStep(withOnce('Manual', 'c', [{ action: 'Stop' }, { action: 'Start' }]), vmi('c', 'Running', { deleting: true })).kind).to.equal('restore');
        expect(onceStep(withOnce('Always', 'c'), vmi('c', 'Running', { deleting: true })).kind).to.equal('restore');
      });

      it('rebootPolicy Terminate under Always restores while the VMI runs (a guest reboot is replaced at once); not under Manual', () => {
        expect(onceStep(withOnce('Always', 'c'), vmi('c', 'Running', { rebootPolicy: 'Terminate' })).kind).to.equal('restore');
        expect(onceStep(withOnce('Manual', 'c'), vmi('c', 'Running', { rebootPolicy: 'Terminate' })).kind).to.equal('none');
        expect(onceStep(withOnce('Always', 'c'), vmi('c', 'Running', { rebootPolicy: 'Reboot' })).kind).to.equal('none');
      });
    });

    it('the boot signature ignores devices without an order (a VMI may have extra ones)', () => {
      const vm = vmWith({ disks: [{ name: 'root', disk: {}, bootOrder: 1 }] });
      const vmiSpec = { domain: { devices: { disks: [{ name: 'root', disk: {}, bootOrder: 1 }, { name: 'hotplugged', disk: {} }] } } };
      expect(bootSignature(vm.spec!.template!.spec)).to.equal(bootSignature(vmiSpec));
      vmiSpec.domain.devices.disks[0]!.bootOrder = 2;
      expect(bootSignature(vm.spec!.template!.spec)).to.not.equal(bootSignature(vmiSpec));
    });

    it('a stale resourceVersion makes the patch fail its test op', () => {
      const vm = vmWith(DEVICES);
      const ops = buildBootPatch(vm, { orders: computeBootOrders(listBootDevices(vm), 'hdd') });
      let err: unknown;
      try {
        jsonPatch({ ...vm, metadata: { ...vm.metadata, resourceVersion: '8' } }, ops);
      } catch (e) {
        err = e;
      }
      expect((err as { code?: number })?.code).to.equal(422);
      expect(JSON.stringify((err as { details?: unknown }).details)).to.match(/resourceVersion/);
    });

    it('continuous then disabled: removes the orders; nothing to write when unchanged', () => {
      const vm = vmWith(DEVICES);
      const cont = jsonPatch(vm, buildBootPatch(vm, planBootWrite(vm, { target: 'hdd', enabled: 'continuous', mode: 'Legacy' }, null)!)) as VirtualMachine;
      expect(deriveBootOverride(cont)).to.deep.include({ target: 'hdd', enabled: 'continuous' });
      expect(planBootWrite(cont, { target: 'hdd', enabled: 'continuous', mode: 'Legacy' }, null)).to.equal(undefined);
      const off = jsonPatch(cont, buildBootPatch(cont, planBootWrite(cont, { target: 'none', enabled: 'disabled', mode: 'Legacy' }, null)!)) as VirtualMachine;
      expect(deriveBootOverride(off)).to.deep.equal({ target: 'none', enabled: 'disabled', mode: 'Legacy' });
    });
  });

  describe('identity', () => {
    it('parses quantities', () => {
      expect(parseQuantity('2Gi')).to.equal(2 * 2 ** 30);
      expect(parseQuantity('512M')).to.equal(512e6);
      expect(parseQuantity('1.5Gi')).to.equal(1.5 * 2 ** 30);
      expect(parseQuantity('500m')).to.equal(0.5);
      expect(parseQuantity('1e9')).to.equal(1e9);
      expect(Number.isNaN(parseQuantity('lots'))).to.equal(true);
    });

    it('reads CPU, memory, UUID, serial, MACs and guest OS', () => {
      const vm = vmWith(
        { interfaces: [{ name: 'default', macAddress: '02:AA:BB:CC:DD:EE' }] },
        {},
      );
      const domain = vm.spec!.template!.spec!.domain!;
      domain.cpu = { cores: 2, sockets: 2, threads: 1 };
      domain.memory = { guest: '4Gi' };
      domain.firmware = { uuid: 'A1B2C3D4-0000-4000-8000-00000000000F', serial: 'SER-1' };
      expect(cpuCount(vm)).to.equal(4);
      expect(memoryMiB(vm)).to.equal(4096);
      const off = systemInfo(vm, undefined);
      expect(off).to.deep.include({ uuid: 'a1b2c3d4-0000-4000-8000-00000000000f', serialNumber: 'SER-1', name: 'vm1', namespace: 'ns' });
      expect(off.manufacturer).to.equal('KubeVirt');
      expect(off.model).to.equal('VirtualMachine');
      expect(off.nics).to.deep.equal([{ id: 'default', macAddress: '02:aa:bb:cc:dd:ee', model: 'virtio' }]);
      const on = systemInfo(vm, {
        status: {
          phase: 'Running',
          interfaces: [{ name: 'default', mac: '02:00:00:00:00:01', ipAddresses: ['10.0.0.5', 'fd00::5'] }],
          guestOSInfo: { prettyName: 'Fedora Linux 40', version: '40' },
        },
      });
      expect(on.nics).to.deep.equal([{ id: 'default', macAddress: '02:00:00:00:00:01', ipv4Addresses: ['10.0.0.5'], ipv6Addresses: ['fd00::5'], model: 'virtio' }]);
      expect(on.guestOs).to.deep.equal({ name: 'Fedora Linux 40', version: '40' });
    });

    it('falls back to the VM uid for the UUID and resources for sizing', () => {
      const vm = vmWith({});
      vm.spec!.template!.spec!.domain!.resources = { requests: { cpu: '1500m', memory: '1Gi' } };
      expect(cpuCount(vm)).to.equal(2);
      expect(memoryMiB(vm)).to.equal(1024);
      expect(systemInfo(vm, undefined).uuid).to.equal('11111111-2222-3333-4444-555555555555');
      expect(canonicalUuid('not-a-uuid')).to.equal(undefined);
    });
  });

  describe('media', () => {
    it('sizes with a 10 % margin rounded up to whole GiB, at least 1 GiB', () => {
      expect(mediaSize(1000)).to.equal('1Gi');
      expect(mediaSize(2 ** 30)).to.equal('2Gi'); // 1.1 GiB → 2
      expect(mediaSize(4.5 * 2 ** 30)).to.equal('5Gi'); // 4.95 GiB → 5
      expect(mediaSize(4.6 * 2 ** 30)).to.equal('6Gi'); // 5.06 GiB → 6
    });

    it('names the DataVolume per drive within 63 characters, distinct per drive', () => {
      expect(mediaDataVolumeName('vm1', 'cdrom')).to.equal('vm1-vmedia-cdrom');
      const a = mediaDataVolumeName('x'.repeat(80), 'cdrom-a');
      const b = mediaDataVolumeName('x'.repeat(80), 'cdrom-b');
      expect(a.length).to.be.at.most(63);
      expect(a).to.match(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
      expect(a).to.not.equal(b);
    });

    it('one slot per CD-ROM drive, named after the disk and its bus', () => {
      expect(cdromDrives(vmWith({ disks: [{ name: 'root', disk: {} }] }))).to.deep.equal([]);
      const two = vmWith({ disks: [{ name: 'root', disk: {} }, { name: 'cd1', cdrom: { bus: 'sata' } }, { name: 'cd2', cdrom: { bus: 'scsi' } }] });
      expect(cdromDrives(two).map((d) => d.name)).to.deep.equal(['cd1', 'cd2']);
      const slot = deriveDriveSlot(cdromDrives(two)[1]!, two, undefined, undefined, 'vm1-vmedia-cd2');
      expect(slot).to.deep.equal({ id: 'cd2', kind: 'cd', name: 'CD-ROM cd2 (scsi)', state: 'empty', writeProtected: true });
    });

    it('derives the slot from the DataVolume, the template volume and the VMI volumeStatus', () => {
      const vm = vmWith(DEVICES);
      const drive = cdromDrives(vm)[0]!;
      const dvName = 'vm1-vmedia-cd';
      const dv = { metadata: { name: dvName, annotations: { 'bmc.kubevirt.io/image': 'http://127.0.0.1/x.iso' } }, status: { phase: 'ImportInProgress', progress: '42.50%' } };
      // importing, our volume already in the template
      const plugged = vmWith(DEVICES);
      plugged.spec!.template!.spec!.volumes = [{ name: 'cd', dataVolume: { name: dvName, hotpluggable: true } }];
      expect(deriveDriveSlot(drive, plugged, undefined, dv, dvName)).to.deep.include({ state: 'inserting', progress: 42, image: 'http://127.0.0.1/x.iso' });
      const done = { ...dv, status: { phase: 'Succeeded', progress: '100.0%' } };
      // stopped VM: imported + in the template = inserted (used at the next start)
      expect(deriveDriveSlot(drive, plugged, undefined, done, dvName)).to.deep.include({ state: 'inserted', progress: 100 });
      // running VM: only once the VMI reports the volume Ready
      const running = vmi('Running', { spec: { volumes: [{ name: 'cd', dataVolume: { name: dvName, hotpluggable: true } }] }, status: { phase: 'Running', volumeStatus: [{ name: 'cd', phase: 'AttachedToNode' }] } });
      expect(deriveDriveSlot(drive, plugged, running, done, dvName)).to.deep.include({ state: 'inserting', progress: 100 });
      running.status!.volumeStatus = [{ name: 'cd', phase: 'Ready', reason: 'VolumeReady' }];
      expect(deriveDriveSlot(drive, plugged, running, done, dvName)).to.deep.include({ state: 'inserted', progress: 100 });
      // eject then insert again: the previous medium left the VMI spec but its status entry stays
      // Ready until its attachment pod is gone (virt-controller storage.go phaseForUnpluggedVolume);
      // the new insert is not attached until the VMI spec holds its volume again
      const unplugging = vmi('Running', { spec: { volumes: [] }, status: { phase: 'Running', volumeStatus: [{ name: 'cd', phase: 'Ready', reason: 'VolumeReady' }] } });
      expect(deriveDriveSlot(drive, plugged, unplugging, done, dvName)).to.deep.include({ state: 'inserting', progress: 100 });
      // a VMI volume of that name that loads another claim is not ours either
      const other = vmi('Running', { spec: { volumes: [{ name: 'cd', dataVolume: { name: 'someone-else', hotpluggable: true } }] }, status: { phase: 'Running', volumeStatus: [{ name: 'cd', phase: 'Ready' }] } });
      expect(deriveDriveSlot(drive, plugged, other, done, dvName)).to.deep.include({ state: 'inserting' });
      // a running VMI that never took the volume (no declarative hotplug): error naming the gate
      const stale = vmi('Running');
      expect(deriveDriveSlot(drive, plugged, stale, done, dvName, { notSynced: true })).to.deep.include({ state: 'error' });
      expect(deriveDriveSlot(drive, plugged, stale, done, dvName, { notSynced: true }).error).to.match(/DeclarativeHotplugVolumes/);
      // with updateVolumesStrategy Migration KubeVirt skips declarative hotplug whatever the gates: say so
      const migrating = JSON.parse(JSON.stringify(plugged)) as typeof plugged;
      (migrating.spec as Record<string, unknown>).updateVolumesStrategy = 'Migration';
      expect(deriveDriveSlot(drive, migrating, stale, done, dvName, { notSynced: true }).error).to.match(/updateVolumesStrategy Migration/);
      // our DataVolume without our volume: an insert in progress, else a leftover to eject
      expect(deriveDriveSlot(drive, vm, undefined, dv, dvName, { busy: 'inserting' })).to.deep.include({ state: 'inserting' });
      expect(deriveDriveSlot(drive, vm, undefined, dv, dvName)).to.deep.include({ state: 'error' });
      // a volume the BMC did not put there
      const foreign = vmWith(DEVICES);
      foreign.spec!.template!.spec!.volumes = [{ name: 'cd', containerDisk: { image: 'x' } }];
      expect(deriveDriveSlot(drive, foreign, undefined, undefined, dvName)).to.deep.include({ state: 'inserted' });
      const failed = { ...dv, status: { phase: 'ImportInProgress', conditions: [{ type: 'Running', status: 'False', reason: 'Error', message: 'Unable to connect to http data source' }] } };
      expect(deriveDriveSlot(drive, plugged, undefined, failed, dvName)).to.deep.include({ state: 'error', error: 'Unable to connect to http data source' });
      expect(dataVolumeError({ status: { phase: 'Failed' } })).to.be.a('string');
      // CDI quotes the URL it fetched (Go url.Error): a pre-signed URL's query (its token) is cut
      const leaky = {
        status: {
          phase: 'ImportInProgress',
          conditions: [{ type: 'Running', status: 'False', reason: 'Error', message: 'Unable to process data: HTTP request errored: Get "https://img.example/os.iso?X-Amz-Signature=sekrit&X-Amz-Credential=AKIA#frag": dial tcp: i/o timeout' }],
        },
      };
      expect(dataVolumeError(leaky)).to.equal('Unable to process data: HTTP request errored: Get "https://img.example/os.iso": dial tcp: i/o timeout');
      expect(deriveDriveSlot(drive, plugged, undefined, { ...dv, ...leaky }, dvName).error).to.not.match(/sekrit|AKIA/);
      // CDI's quota refusal: phase Pending, Bound=False with reason ErrExceededQuota
      const quota = {
        status: {
          phase: 'Pending',
          conditions: [{ type: 'Bound', status: 'False', reason: 'ErrExceededQuota', message: 'persistentvolumeclaims "vm1-vmedia-cd" is forbidden: exceeded quota: storage, requested: requests.storage=2Gi, used: requests.storage=9Gi, limited: requests.storage=10Gi' }],
        },
      };
      expect(dataVolumeError(quota)).to.match(/^the namespace's ResourceQuota refused the import: .*exceeded quota/);
      expect(deriveDriveSlot(drive, plugged, undefined, { ...dv, ...quota }, dvName)).to.deep.include({ state: 'error' });
      expect(parseProgress('N/A')).to.equal(undefined);
    });

    it('insert and eject patch the template volumes only, guarded', () => {
      const vm = vmWith(DEVICES);
      expect(insertVolumePatch(vm, 'cd', 'dv1')).to.deep.equal([
        { op: 'test', path: '/metadata/resourceVersion', value: '7' },
        { op: 'add', path: '/spec/template/spec/volumes', value: [{ name: 'cd', dataVolume: { name: 'dv1', hotpluggable: true } }] },
      ]);
      vm.spec!.template!.spec!.volumes = [{ name: 'root', containerDisk: {} }, { name: 'cd', dataVolume: { name: 'dv1', hotpluggable: true } }];
      expect(insertVolumePatch(vm, 'cd', 'dv1')[1]).to.deep.include({ op: 'add', path: '/spec/template/spec/volumes/-' });
      expect(ejectVolumePatch(vm, 'cd', 'dv1')).to.deep.equal([
        { op: 'test', path: '/spec/template/spec/volumes/1/name', value: 'cd' },
        { op: 'test', path: '/spec/template/spec/volumes/1/dataVolume/name', value: 'dv1' },
        { op: 'remove', path: '/spec/template/spec/volumes/1' },
      ]);
      expect(ejectVolumePatch(vm, 'cd', 'other-dv')).to.equal(undefined);
      expect(needsDeclarativeHotplug('DeclarativeHotplugVolumes feature gate not enabled, cannot define an empty CD-ROM disk')).to.equal(true);
      expect(needsDeclarativeHotplug('spec.template.spec.volumes[1] and spec.template.spec.volumes[0] must not have the same Name.')).to.equal(false);
    });
  });

  describe('errors', () => {
    it('maps API failures onto seam codes', () => {
      const mk = (status: number) => new KubeApiError(status, 'PUT', '/apis/subresources.kubevirt.io/v1/namespaces/ns/virtualmachines/vm1/start', { message: 'm' }, 'x');
      expect(toBackendError(mk(0), 'op', nullLogger()).code).to.equal('Unavailable');
      expect(toBackendError(mk(500), 'op', nullLogger()).code).to.equal('Unavailable');
      expect(toBackendError(mk(404), 'op', nullLogger()).code).to.equal('NotFound');
      expect(toBackendError(mk(409), 'op', nullLogger()).code).to.equal('Conflict');
      expect(toBackendError(mk(403), 'op', nullLogger()).code).to.equal('Unavailable');
      expect(toBackendError(mk(403), 'op', nullLogger()).message).to.match(/update on virtualmachines\/start\.subresources\.kubevirt\.io/);
    });

    it('derives the RBAC need of a request', () => {
      expect(rbacNeed('GET', '/apis/kubevirt.io/v1/namespaces/ns/virtualmachines', { watch: true })).to.deep.equal({
        verb: 'watch',
        group: 'kubevirt.io',
        resource: 'virtualmachines',
      });
      expect(rbacNeed('PATCH', '/apis/kubevirt.io/v1/namespaces/ns/virtualmachines/vm1')).to.deep.include({ verb: 'patch' });
      expect(rbacNeed('POST', '/apis/cdi.kubevirt.io/v1beta1/namespaces/ns/datavolumes')).to.deep.equal({
        verb: 'create',
        group: 'cdi.kubevirt.io',
        resource: 'datavolumes',
      });
    });
  });
});
