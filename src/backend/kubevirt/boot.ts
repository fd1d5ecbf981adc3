/**
 * Boot override on a KubeVirt VM, as pure functions over the VM object.
 *
 * KubeVirt expresses boot order per device (disks and interfaces carry `bootOrder`, unique values
 * > 0) and the firmware type in spec.template.spec.domain.firmware.bootloader (efi or bios). A
 * boot target puts its class of devices first and numbers every device sequentially, so the other
 * devices stay bootable as fallbacks in their previous relative order.
 *
 * Read-back is derived from what is in the spec, never from what was asked:
 * - target: the class of the device with the lowest bootOrder ('none' when no device has one);
 * - enabled: 'once' when a boot-once override is pending, else 'continuous' when any device
 *   has a bootOrder, else 'disabled';
 * - mode: 'UEFI' when bootloader.efi is set, else 'Legacy' (KubeVirt's default is BIOS).
 *
 * "Once" (KubeVirt has no one-time boot order) writes the one-time order into the template and
 * saves the previous orders and bootloader, plus the uid of the VMI present at the time, in the
 * annotation ONCE_ANNOTATION. Its life cycle (see onceStep and docs/kubevirt.md "Boot override"):
 * 1. pending: the next VMI is created from the template, so it boots the one-time order;
 * 2. consumed: a VMI with another uid runs. The template KEEPS the one-time order while that VMI
 *    runs, because virt-controller compares the template with the spec the VMI started from
 *    (syncRestartRequired, pkg/virt-controller/watch/vm/vm.go) and boot order is not
 *    live-updatable: restoring now would flag the VM RestartRequired. The annotation records
 *    `consumedBy`; reads already show the next boot (the saved orders, enabled not 'once');
 * 3. restored: when that VMI ends (BMC restart: just before the call; BMC off, guest shutdown,
 *    crash: once it is gone or final) the saved orders go back and the annotation is removed.
 */
import type { BootEnabled, BootMode, BootOverride, BootTarget } from '../types.js';
import { pointerSegment, type JsonPatchOp } from '../../kube/client.js';
import type { Bootloader, Disk, Interface, VirtualMachine } from './types.js';

export const ONCE_ANNOTATION = 'bmc.kubevirt.io/boot-once';

/** The boot targets a device class stands for. */
export type DeviceClass = 'pxe' | 'hdd' | 'cd';

export interface BootDevice {
  kind: 'disk' | 'interface';
  /** index in spec.template.spec.domain.devices.disks / interfaces */
  index: number;
  name: string;
  cls: DeviceClass;
  bootOrder?: number;
}

/** What a boot-once override saved, serialised as JSON into ONCE_ANNOTATION. */
export interface SavedBoot {
  /** device key (deviceKey) → its bootOrder before the override, null when it had none */
  orders: Record<string, number | null>;
  /** the bootloader before the override, null when the VM had none */
  bootloader: Bootloader | null;
  /** uid of the VMI that existed when the override was set (null: none); a VMI with another uid consumes it */
  vmiUid: string | null;
  /** uid of the VMI that booted with the one-time order (null: still pending) */
  consumedBy: string | null;
}

export function deviceKey(d: Pick<BootDevice, 'kind' | 'name'>): string {
  return `${d.kind}/${d.name}`;
}

function diskClass(d: Disk): DeviceClass {
  return d.cdrom !== undefined && d.cdrom !== null ? 'cd' : 'hdd';
}

export function listBootDevices(vm: VirtualMachine | undefined): BootDevice[] {
  const devices = vm?.spec?.template?.spec?.domain?.devices;
  const out: BootDevice[] = [];
  (devices?.disks ?? []).forEach((d: Disk, index) => {
    out.push({ kind: 'disk', index, name: d.name, cls: diskClass(d), ...(d.bootOrder !== undefined ? { bootOrder: d.bootOrder } : {}) });
  });
  (devices?.interfaces ?? []).forEach((i: Interface, index) => {
    out.push({ kind: 'interface', index, name: i.name, cls: 'pxe', ...(i.bootOrder !== undefined ? { bootOrder: i.bootOrder } : {}) });
  });
  return out;
}

/** Boot targets this VM's devices can express, for Capabilities.bootTargets. */
export function supportedTargets(vm: VirtualMachine | undefined): BootTarget[] {
  const classes = new Set(listBootDevices(vm).map((d) => d.cls));
  return (['none', 'pxe', 'hdd', 'cd'] as const).filter((t) => t === 'none' || classes.has(t));
}

/** Devices in the order the firmware would try them now: by bootOrder, unordered ones last in spec order. */
export function effectiveOrder(devices: BootDevice[]): BootDevice[] {
  return devices
    .map((d, pos) => ({ d, pos }))
    .sort((a, b) => (a.d.bootOrder ?? Infinity) - (b.d.bootOrder ?? Infinity) || a.pos - b.pos)
    .map((x) => x.d);
}

export function deriveTarget(devices: BootDevice[]): BootTarget {
  const ordered = devices.filter((d) => d.bootOrder !== undefined);
  if (ordered.length === 0) return 'none';
  return effectiveOrder(ordered)[0]!.cls;
}

export function deriveMode(vm: VirtualMachine | undefined): BootMode {
  return modeOf(vm?.spec?.template?.spec?.domain?.firmware?.bootloader);
}

function modeOf(bl: Bootloader | undefined): BootMode {
  return bl?.efi !== undefined && bl.efi !== null ? 'UEFI' : 'Legacy';
}

export function parseSaved(vm: VirtualMachine | undefined): SavedBoot | undefined {
  const raw = vm?.metadata?.annotations?.[ONCE_ANNOTATION];
  if (raw === undefined) return undefined;
  try {
    const v = JSON.parse(raw) as Partial<SavedBoot>;
    if (typeof v !== 'object' || v === null || typeof v.orders !== 'object' || v.orders === null) return undefined;
    return {
      orders: v.orders,
      bootloader: v.bootloader ?? null,
      vmiUid: typeof v.vmiUid === 'string' ? v.vmiUid : null,
      consumedBy: typeof v.consumedBy === 'string' ? v.consumedBy : null,
    };
  } catch {
    return undefined;
  }
}

/**
 * The VM as its next boot will see it: for a consumed boot-once override, the template with the
 * saved orders and bootloader put back and without the annotation; otherwise the VM itself.
 */
export function nextBootVm(vm: VirtualMachine): VirtualMachine {
  const saved = parseSaved(vm);
  if (!saved || saved.consumedBy === null) return vm;
  const copy = JSON.parse(JSON.stringify(vm)) as VirtualMachine;
  const annotations = { ...(copy.metadata?.annotations ?? {}) };
  delete annotations[ONCE_ANNOTATION];
  copy.metadata = { ...copy.metadata, annotations };
  const domain = copy.spec?.template?.spec?.domain;
  if (domain) {
    for (const d of listBootDevices(copy)) {
      const list = (d.kind === 'disk' ? domain.devices?.disks : domain.devices?.interfaces) as { bootOrder?: number }[] | undefined;
      const dev = list?.[d.index];
      if (!dev) continue;
      const want = saved.orders[deviceKey(d)];
      if (want === null || want === undefined) delete dev.bootOrder;
      else dev.bootOrder = want;
    }
    if (saved.bootloader === null) {
      if (domain.firmware) delete domain.firmware.bootloader;
    } else domain.firmware = { ...(domain.firmware ?? {}), bootloader: saved.bootloader };
  }
  return copy;
}

/** The boot override in effect for the next boot, derived from the VM spec and the boot-once annotation. */
export function deriveBootOverride(vm: VirtualMachine | undefined): BootOverride {
  const base = vm ? nextBootVm(vm) : vm;
  const devices = listBootDevices(base);
  const target = deriveTarget(devices);
  const mode = deriveMode(base);
  let enabled: BootEnabled;
  if (base?.metadata?.annotations?.[ONCE_ANNOTATION] !== undefined) enabled = 'once';
  else if (target !== 'none') enabled = 'continuous';
  else enabled = 'disabled';
  return { target, enabled, mode };
}

/** Whether the VM spec asks KubeVirt to end the VMI on a guest reboot (VEP 171 rebootPolicy: Terminate). */
export function rebootTerminates(spec: { domain?: { rebootPolicy?: string } } | undefined): boolean {
  return spec?.domain?.rebootPolicy === 'Terminate';
}

/** What the machine has to do about a boot-once override, given the VM and its VMI as they are now. */
export type OnceStep =
  | { kind: 'none' }
  /** a VMI other than the one present at set time runs: it booted the one-time order */
  | { kind: 'consume'; uid: string }
  /** the consuming VMI is over (or never existed): put the saved orders back */
  | { kind: 'restore'; why: string };

export interface OnceVmi {
  metadata?: { uid?: string; deletionTimestamp?: string | null };
  spec?: { domain?: { rebootPolicy?: string } };
  status?: { phase?: string };
}

/**
 * Decide the boot-once step. The restore is timed so that KubeVirt never sees a template that
 * differs from the spec a still-existing VMI started from unless a new VMI follows at once
 * (virt-controller only compares while a VMI exists and clears RestartRequired at the next start;
 * pkg/virt-controller/watch/vm/vm.go sync, syncRestartRequired, startVMI):
 * - no VMI, or a VMI other than the consumer: restore now;
 * - the consumer Succeeded/Failed (guest shutdown, crash, rebootPolicy Terminate): restore now, the
 *   VM controller recreates it (runStrategy Always) from the template soon;
 * - the consumer is being deleted: restore now when a new VMI follows (runStrategy Always, or a
 *   Start state change request as `restart` queues), else wait until it is gone;
 * - the consumer runs: keep the one-time order in the template; except when a guest reboot ends
 *   it and KubeVirt recreates it at once (rebootPolicy Terminate under runStrategy Always): no
 *   agent can restore between the two, so restore now. KubeVirt then shows RestartRequired while
 *   that VMI runs, which is true: the restored order applies at its next (guest) reboot.
 */
export function onceStep(vm: VirtualMachine | undefined, vmi: OnceVmi | undefined): OnceStep {
  const saved = parseSaved(vm);
  if (!vm || !saved) return { kind: 'none' };
  const uid = vmi?.metadata?.uid;
  const phase = vmi?.status?.phase ?? '';
  const final = phase === 'Succeeded' || phase === 'Failed';
  const deleting = !!vmi?.metadata?.deletionTimestamp;
  if (saved.consumedBy === null) {
    if (uid && phase === 'Running' && !deleting && uid !== saved.vmiUid) return { kind: 'consume', uid };
    return { kind: 'none' };
  }
  if (!vmi || !uid) return { kind: 'restore', why: 'the VMI that booted it is gone' };
  if (uid !== saved.consumedBy) return { kind: 'restore', why: `a later VMI (${uid}) exists` };
  if (final) return { kind: 'restore', why: `the VMI that booted it ended (${phase})` };
  const always = vm.spec?.runStrategy === 'Always' || (vm.spec?.runStrategy === undefined && vm.spec?.running === true);
  if (deleting) {
    const startFollows = always || (vm.status?.stateChangeRequests ?? []).some((r) => r.action === 'Start');
    return startFollows ? { kind: 'restore', why: 'the VMI that booted it is being replaced' } : { kind: 'none' };
  }
  if (always && rebootTerminates(vmi.spec)) {
    return { kind: 'restore', why: 'rebootPolicy Terminate: a guest reboot replaces the VMI at once, so the order goes back now' };
  }
  return { kind: 'none' };
}

/** The write that marks a pending override consumed by a VMI (annotation only: no spec change). */
export function consumeWrite(vm: VirtualMachine, uid: string): BootWrite | undefined {
  const saved = parseSaved(vm);
  if (!saved) return undefined;
  return { annotation: JSON.stringify({ ...saved, consumedBy: uid } satisfies SavedBoot) };
}

/** The write that puts the saved orders and bootloader back and drops the annotation. */
export function restoreWrite(vm: VirtualMachine): BootWrite | undefined {
  const saved = parseSaved(vm);
  if (!saved) return undefined;
  return { orders: saved.orders, bootloader: saved.bootloader, annotation: null };
}

/** Sequential orders 1..n over all devices with the target's class first. */
export function computeBootOrders(devices: BootDevice[], target: DeviceClass): Map<string, number> {
  const current = effectiveOrder(devices);
  const first = current.filter((d) => d.cls === target);
  const rest = current.filter((d) => d.cls !== target);
  const out = new Map<string, number>();
  [...first, ...rest].forEach((d, i) => out.set(deviceKey(d), i + 1));
  return out;
}

/** The current orders, in the form SavedBoot keeps them. */
export function currentOrders(devices: BootDevice[]): Record<string, number | null> {
  return Object.fromEntries(devices.map((d) => [deviceKey(d), d.bootOrder ?? null]));
}

export function bootloaderFor(mode: BootMode, current: Bootloader | undefined): Bootloader {
  if (mode === 'UEFI') {
    // efi {} alone defaults to Secure Boot, which needs the SMM feature; ask for plain UEFI.
    return current?.efi ? current : { efi: { secureBoot: false } };
  }
  return current?.bios && !current.efi ? current : { bios: {} };
}

export interface BootWrite {
  /** new orders by device key; a device missing from the map (or null) loses its bootOrder */
  orders?: Map<string, number> | Record<string, number | null>;
  /** new bootloader; null removes it; undefined leaves it alone */
  bootloader?: Bootloader | null;
  /** new annotation value; null removes it; undefined leaves it alone */
  annotation?: string | null;
}

const DEVICES = '/spec/template/spec/domain/devices';
const DOMAIN = '/spec/template/spec/domain';

function orderOf(orders: BootWrite['orders'], key: string): number | undefined {
  if (!orders) return undefined;
  const v = orders instanceof Map ? orders.get(key) : orders[key];
  return v === null ? undefined : v;
}

/**
 * JSON patch for a boot write, guarded by a test of metadata.resourceVersion so a concurrent
 * change makes it fail (and the caller re-reads and retries) instead of overwriting.
 */
export function buildBootPatch(vm: VirtualMachine, write: BootWrite): JsonPatchOp[] {
  const ops: JsonPatchOp[] = [{ op: 'test', path: '/metadata/resourceVersion', value: vm.metadata?.resourceVersion ?? '' }];
  if (write.orders) {
    for (const d of listBootDevices(vm)) {
      const want = orderOf(write.orders, deviceKey(d));
      const path = `${DEVICES}/${d.kind === 'disk' ? 'disks' : 'interfaces'}/${d.index}`;
      if (want === d.bootOrder) continue;
      // guard the index → device mapping the orders were computed from
      ops.push({ op: 'test', path: `${path}/name`, value: d.name });
      if (want === undefined) ops.push({ op: 'remove', path: `${path}/bootOrder` });
      else ops.push({ op: 'add', path: `${path}/bootOrder`, value: want });
    }
  }
  if (write.bootloader !== undefined) {
    const firmware = vm.spec?.template?.spec?.domain?.firmware;
    const current = firmware?.bootloader;
    if (write.bootloader === null) {
      if (current !== undefined) ops.push({ op: 'remove', path: `${DOMAIN}/firmware/bootloader` });
    } else if (JSON.stringify(current) !== JSON.stringify(write.bootloader)) {
      if (firmware) ops.push({ op: 'add', path: `${DOMAIN}/firmware/bootloader`, value: write.bootloader });
      else ops.push({ op: 'add', path: `${DOMAIN}/firmware`, value: { bootloader: write.bootloader } });
    }
  }
  if (write.annotation !== undefined) {
    const annotations = vm.metadata?.annotations;
    const has = annotations?.[ONCE_ANNOTATION] !== undefined;
    if (write.annotation === null) {
      if (has) ops.push({ op: 'remove', path: `/metadata/annotations/${pointerSegment(ONCE_ANNOTATION)}` });
    } else if (annotations) {
      ops.push({ op: 'add', path: `/metadata/annotations/${pointerSegment(ONCE_ANNOTATION)}`, value: write.annotation });
    } else {
      ops.push({ op: 'add', path: '/metadata/annotations', value: { [ONCE_ANNOTATION]: write.annotation } });
    }
  }
  return ops;
}

/**
 * Plan the write for a requested override against the VM as it is now. Returns undefined when
 * nothing needs to change. Throws nothing: validation happens before.
 */
export function planBootWrite(
  vm: VirtualMachine,
  next: BootOverride,
  vmiUid: string | null,
): BootWrite | undefined {
  // a consumed once is already "over" for the next boot: plan against that view
  const consumed = parseSaved(vm)?.consumedBy != null;
  const base = nextBootVm(vm);
  const devices = listBootDevices(base);
  const current = deriveBootOverride(base);
  const saved = parseSaved(base);
  const currentBl = base.spec?.template?.spec?.domain?.firmware?.bootloader;
  const wantDisabled = next.enabled === 'disabled' || next.target === 'none';
  const modeChanged = next.mode !== current.mode;
  const write: BootWrite = {};

  if (wantDisabled) {
    if (saved) {
      write.orders = saved.orders;
      write.bootloader = modeChanged ? bootloaderFor(next.mode, currentBl) : saved.bootloader;
      write.annotation = null;
    } else {
      if (current.target !== 'none') write.orders = {};
      if (modeChanged) write.bootloader = bootloaderFor(next.mode, currentBl);
    }
  } else {
    const target = next.target as DeviceClass;
    const orders = computeBootOrders(devices, target);
    const ordersChanged = devices.some((d) => orders.get(deviceKey(d)) !== d.bootOrder);
    if (ordersChanged) write.orders = orders;
    if (modeChanged) write.bootloader = bootloaderFor(next.mode, currentBl);
    if (next.enabled === 'once') {
      const keep: SavedBoot = saved
        ? { ...saved, vmiUid, consumedBy: null }
        : { orders: currentOrders(devices), bootloader: currentBl ?? null, vmiUid, consumedBy: null };
      // re-arm only when something changes or the override was not pending yet
      if (!saved || ordersChanged || modeChanged || saved.vmiUid !== vmiUid) write.annotation = JSON.stringify(keep);
    } else if (saved) {
      write.annotation = null;
    }
  }
  if (write.orders === undefined && write.bootloader === undefined && write.annotation === undefined) return undefined;
  if (consumed) {
    // the real template still holds the one-time order: write the whole next-boot state
    write.orders ??= currentOrders(devices);
    if (write.bootloader === undefined) write.bootloader = currentBl ?? null;
    if (write.annotation === undefined) write.annotation = null;
  }
  return write;
}

/** Canonical JSON of what decides the next boot (orders + bootloader) of a VM or VMI spec. */
export function bootSignature(spec: { domain?: { devices?: { disks?: Disk[]; interfaces?: Interface[] }; firmware?: { bootloader?: Bootloader } } } | undefined): string {
  // only devices that carry an order count: a VMI may have extra (e.g. hot-plugged) devices
  const disks = (spec?.domain?.devices?.disks ?? []).filter((d) => d.bootOrder !== undefined).map((d) => `disk/${d.name}=${d.bootOrder}`);
  const ifaces = (spec?.domain?.devices?.interfaces ?? []).filter((i) => i.bootOrder !== undefined).map((i) => `interface/${i.name}=${i.bootOrder}`);
  return JSON.stringify([[...disks, ...ifaces].sort(), modeOf(spec?.domain?.firmware?.bootloader)]);
}
