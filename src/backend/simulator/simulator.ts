/**
 * The simulator backend: one in-memory VM that behaves the way a KubeVirt VM does as seen through
 * a BMC. Power on passes through PoweringOn for a configurable delay; a graceful shutdown only
 * takes effect when the simulated guest listens to ACPI; restart while off is refused; power cycle
 * while off powers on; a "once" boot override is consumed by the next boot. Delays of 0 make every
 * transition synchronous, which keeps tests deterministic.
 */
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import {
  BOOT_TARGETS,
  BackendError,
  POWER_ACTIONS,
  type BootOverride,
  type BootTarget,
  type Capabilities,
  type ConsoleStream,
  type DiskInfo,
  type ProcessorInfo,
  type InsertMediaRequest,
  type Machine,
  type MachineEvent,
  type MachineListener,
  type MachineSnapshot,
  type MediaSlot,
  type MediaSlotId,
  type NetworkInterface,
  type PowerAction,
  type PowerState,
  type SystemInfo,
  type CreateVolumeRequest,
  type VolumeInfo,
} from '../types.js';
import { probeImage, type ProbeOptions } from '../probe.js';
import { validateBootChange, validateImageUrl, validateVolumeRequest } from '../validate.js';
import { MAX_BMC_VOLUMES, bmcVolumeDiskName } from '../../kube/names.js';
import { SimulatedConsole } from './console.js';

/** Progress steps of a simulated insert (25, 50, 75 %, then inserted). */
const MEDIA_STEPS = 4;

export interface SimulatorOptions {
  name?: string;
  namespace?: string;
  uuid?: string;
  serialNumber?: string;
  cpuCount?: number;
  memoryMiB?: number;
  nics?: NetworkInterface[];
  /** CPU topology (default 1 socket × cpuCount cores × 1 thread) and model (default "Virtual CPU") */
  processors?: ProcessorInfo;
  /** Disks (default one 20 GiB virtio disk "root" and the CD-ROM drive) */
  disks?: DiskInfo[];
  /** Firmware (default UEFI, Secure Boot off) */
  firmware?: 'UEFI' | 'BIOS';
  secureBoot?: boolean;
  assetTag?: string;
  sku?: string;
  partNumber?: string;
  initialPower?: 'On' | 'Off';
  /** Time spent in PoweringOn before On (ms). */
  powerOnDelayMs?: number;
  /** Time spent in PoweringOff before Off after an accepted ACPI shutdown (ms). */
  powerOffDelayMs?: number;
  /** Whether the guest reacts to ACPI power button events (graceful shutdown/restart). */
  acpiListening?: boolean;
  /** Time an image insert spends in "inserting" (ms). */
  mediaInsertDelayMs?: number;
  /** How the image URL is checked before an insert (timeout, TLS trust of https servers). */
  mediaProbe?: ProbeOptions;
  /**
   * The timers behind the power transitions and the media insert steps (default: the global ones).
   * Tests pass their own to step through a transition deterministically.
   */
  timers?: SimulatorTimers;
}

/** setTimeout/clearTimeout as the simulator uses them. */
export interface SimulatorTimers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const GLOBAL_TIMERS: SimulatorTimers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

/** What the simulated firmware booted from, newest last: lets tests observe once/continuous. */
export interface BootRecord {
  target: BootTarget;
  mode: BootOverride['mode'];
  at: number;
}

const SIM_CAPABILITIES: Capabilities = {
  powerActions: POWER_ACTIONS,
  bootTargets: BOOT_TARGETS.filter((t) => t !== 'floppy' && t !== 'diags'),
  bootModes: ['UEFI', 'Legacy'],
};

/** A name-based UUID (RFC 4122 version 5 layout over SHA-1) so a VM's UUID is stable across runs. */
/**
 * A deep copy of plain data (objects, arrays, primitives: what SystemInfo holds), so a caller can
 * never change the simulator's own state. Same result as structuredClone on such data, without its
 * serialise/deserialise round trip (it ran on every snapshot, i.e. every Redfish GET).
 */
function copyData<T>(v: T): T {
  if (typeof v !== 'object' || v === null) return v;
  if (Array.isArray(v)) return v.map(copyData) as T;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(v)) out[k] = copyData((v as Record<string, unknown>)[k]);
  return out as T;
}

export function stableUuid(seed: string): string {
  const h = createHash('sha1').update('kubevirtbmc:' + seed).digest();
  h[6] = (h[6]! & 0x0f) | 0x50;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20, 32)}`;
}

function macFromSeed(seed: string): string {
  const h = createHash('sha1').update('mac:' + seed).digest();
  // 02:xx = locally administered unicast
  return ['02', ...[...h.subarray(0, 5)].map((b) => b.toString(16).padStart(2, '0'))].join(':');
}

export class SimulatedMachine implements Machine {
  readonly capabilities = SIM_CAPABILITIES;

  /** Guest behaviour knob, changeable at run time by tests and the demo. */
  acpiListening: boolean;
  /** Boots performed so far (what the firmware booted from). */
  readonly bootHistory: BootRecord[] = [];
  /** Number of NMIs delivered to the guest. */
  nmiCount = 0;

  private power_: PowerState;
  private boot: BootOverride = { target: 'none', enabled: 'disabled', mode: 'UEFI' };
  private readonly info: SystemInfo;
  private readonly media = new Map<MediaSlotId, MediaSlot>();
  private generation = 1;
  private available = true;
  private stale: { message: string; since: Date } | undefined;
  private timer: unknown;
  private readonly mediaTimers = new Map<MediaSlotId, unknown>();
  private readonly timers: SimulatorTimers;
  /** Slots whose image URL is being checked (an insert in its first phase); eject removes the entry */
  private readonly mediaProbing = new Map<MediaSlotId, symbol>();
  private readonly mediaProbe: ProbeOptions;
  private readonly events = new EventEmitter();
  private readonly powerOnDelayMs: number;
  private readonly powerOffDelayMs: number;
  private readonly mediaInsertDelayMs: number;
  private readonly console_: SimulatedConsole;
  /** Volumes created through createVolume, by disk id; attached once a boot happened after their creation */
  private readonly volumes = new Map<string, { name: string; capacityBytes: number; attached: boolean; requestId?: string }>();

  constructor(opts: SimulatorOptions = {}) {
    const name = opts.name ?? 'sim-vm';
    const namespace = opts.namespace ?? 'default';
    const seed = `${namespace}/${name}`;
    this.info = {
      uuid: (opts.uuid ?? stableUuid(seed)).toLowerCase(),
      name,
      namespace,
      serialNumber: opts.serialNumber ?? stableUuid('serial:' + seed).slice(0, 8).toUpperCase(),
      manufacturer: 'KubeVirt',
      model: 'KubeVirt Simulated VM',
      cpuCount: opts.cpuCount ?? 2,
      memoryMiB: opts.memoryMiB ?? 2048,
      nics: opts.nics ?? [{ id: 'default', macAddress: macFromSeed(seed), model: 'virtio' }],
      biosVersion: 'simulated-1.0',
      processors: opts.processors ?? { sockets: 1, cores: opts.cpuCount ?? 2, threads: 1, model: 'Virtual CPU', architecture: 'amd64' },
      disks: opts.disks ?? [
        { id: 'root', kind: 'disk', bus: 'virtio', capacityBytes: 20 * 2 ** 30, volume: 'Simulated volume root' },
        { id: 'cdrom', kind: 'cdrom', bus: 'sata', readOnly: true },
      ],
      firmware: { type: opts.firmware ?? 'UEFI', version: 'simulated-1.0', secureBoot: (opts.firmware ?? 'UEFI') === 'UEFI' && (opts.secureBoot ?? false) },
      assetTag: opts.assetTag ?? '',
      ...(opts.sku !== undefined ? { sku: opts.sku } : {}),
      ...(opts.partNumber !== undefined ? { partNumber: opts.partNumber } : {}),
    };
    if (opts.processors) this.info.cpuCount = opts.processors.sockets * opts.processors.cores * opts.processors.threads;
    this.power_ = opts.initialPower ?? 'Off';
    if (this.power_ === 'On') this.info.firmware!.secureBootCurrent = this.info.firmware!.secureBoot;
    this.powerOnDelayMs = opts.powerOnDelayMs ?? 0;
    this.powerOffDelayMs = opts.powerOffDelayMs ?? 0;
    this.mediaInsertDelayMs = opts.mediaInsertDelayMs ?? 0;
    this.mediaProbe = opts.mediaProbe ?? {};
    this.timers = opts.timers ?? GLOBAL_TIMERS;
    this.acpiListening = opts.acpiListening ?? true;
    this.media.set('Cd', { id: 'Cd', kind: 'cd', name: 'Virtual CD', state: 'empty', writeProtected: true });
    this.media.set('UsbStick', { id: 'UsbStick', kind: 'usb', name: 'Virtual USB Stick', state: 'empty', writeProtected: true });
    this.events.setMaxListeners(0);
    this.console_ = new SimulatedConsole(this, this.power_ === 'On', { hostName: name });
  }

  // ---- test and demo hooks -------------------------------------------------------------------

  /** Simulate an outage of the backing platform: every call fails with Unavailable until restored. */
  setAvailable(available: boolean): void {
    this.available = available;
  }

  /**
   * Simulate a platform the backend has lost sight of, as the KubeVirt backend when the Kubernetes
   * API hangs: snapshot() answers the last state with health Critical (this message, since now),
   * every other call fails with Unavailable. undefined ends it.
   */
  setStale(message: string | undefined): void {
    this.stale = message === undefined ? undefined : { message, since: this.stale?.since ?? new Date() };
    // the snapshot's health changed: a reader's view did
    this.generation++;
  }

  /** Resolves when no power transition is pending. */
  async settle(): Promise<void> {
    while (this.timer !== undefined || this.mediaTimers.size > 0) {
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  /** The serial console (boot log + echo prompt). */
  get serialConsole(): SimulatedConsole {
    return this.console_;
  }

  // ---- Machine -------------------------------------------------------------------------------

  openConsole(): ConsoleStream {
    return this.serialConsole.open();
  }

  async snapshot(): Promise<MachineSnapshot> {
    if (!this.available) this.check();
    return {
      power: this.power_,
      boot: { ...this.boot },
      info: copyData(this.info),
      media: [...this.media.values()].map((m) => ({ ...m })),
      generation: this.generation,
      health: this.stale ? { status: 'Critical', message: this.stale.message, since: this.stale.since } : { status: 'OK' },
    };
  }

  async getPowerState(): Promise<PowerState> {
    return this.powerStateNow();
  }

  /** snapshot()'s generation while it would be healthy (no outage, no stale view), else undefined. */
  currentGeneration(): number | undefined {
    return this.available && !this.stale ? this.generation : undefined;
  }

  powerStateNow(): PowerState {
    this.check();
    return this.power_;
  }

  async getBootOverride(): Promise<BootOverride> {
    this.check();
    return { ...this.boot };
  }

  async getSystemInfo(): Promise<SystemInfo> {
    this.check();
    return copyData(this.info);
  }

  async listMedia(): Promise<MediaSlot[]> {
    this.check();
    return [...this.media.values()].map((m) => ({ ...m }));
  }

  async setAssetTag(tag: string): Promise<void> {
    this.check();
    if (this.info.assetTag === tag) return;
    this.info.assetTag = tag;
    this.generation++;
  }

  // ---- volumes: as on KubeVirt, a new blank disk in the machine's definition, attached at the next boot ----

  async listVolumes(): Promise<VolumeInfo[]> {
    this.check();
    return [...this.volumes].map(([id, v]) => ({
      id,
      name: v.name,
      capacityBytes: v.capacityBytes,
      state: 'ready',
      attached: v.attached,
      backing: `Simulated volume ${id}`,
      ...(v.requestId !== undefined ? { requestId: v.requestId } : {}),
    }));
  }

  async createVolume(req: CreateVolumeRequest): Promise<VolumeInfo> {
    this.check();
    const capacityBytes = validateVolumeRequest(req);
    const disks = this.info.disks ?? (this.info.disks = []);
    let id: string | undefined;
    for (let slot = 1; slot <= MAX_BMC_VOLUMES && id === undefined; slot++) {
      const name = bmcVolumeDiskName(slot);
      if (!disks.some((d) => d.id === name)) id = name;
    }
    if (id === undefined) throw new BackendError('Conflict', `the machine has ${MAX_BMC_VOLUMES} volumes created here already, the most it takes`);
    disks.push({ id, kind: 'disk', bus: 'virtio', capacityBytes, volume: `Simulated volume ${id}` });
    this.volumes.set(id, { name: req.name ?? id, capacityBytes, attached: false, ...(req.requestId !== undefined ? { requestId: req.requestId } : {}) });
    this.generation++;
    return (await this.listVolumes()).find((v) => v.id === id)!;
  }

  async deleteVolume(id: string): Promise<void> {
    this.check();
    if (!this.volumes.has(id)) throw new BackendError('NotFound', `no volume ${id} was created here`);
    this.volumes.delete(id);
    this.info.disks = (this.info.disks ?? []).filter((d) => d.id !== id);
    this.generation++;
  }

  /** Takes effect at the next boot, as on KubeVirt: the running guest keeps what it booted with. */
  async setSecureBoot(enabled: boolean): Promise<void> {
    this.check();
    const fw = this.info.firmware!;
    if (fw.type !== 'UEFI' && enabled) throw new BackendError('Conflict', 'Secure Boot needs UEFI firmware; this machine boots BIOS');
    if (fw.secureBoot === enabled) return;
    fw.secureBoot = enabled;
    this.generation++;
  }

  async setBootOverride(change: Partial<BootOverride>): Promise<BootOverride> {
    this.check();
    validateBootChange(change, this.capabilities);
    const next: BootOverride = { ...this.boot, ...change };
    if (next.target === this.boot.target && next.enabled === this.boot.enabled && next.mode === this.boot.mode) {
      return { ...next };
    }
    this.boot = next;
    this.emit({ type: 'boot', boot: { ...next } });
    return { ...next };
  }

  async power(action: PowerAction): Promise<void> {
    this.check();
    if (!this.capabilities.powerActions.includes(action)) {
      throw new BackendError('Unsupported', `power action ${action} is not supported`);
    }
    const state = this.power_;
    if (action === 'forceOff') {
      this.cancelTimer();
      this.setPower('Off');
      return;
    }
    if (state === 'PoweringOn' || state === 'PoweringOff') {
      if (action === 'on' && state === 'PoweringOn') return; // already heading there
      if (action === 'gracefulOff' && state === 'PoweringOff') return;
      throw new BackendError('Busy', `the machine is ${state}; try again shortly`, { retryAfterSeconds: 1 });
    }
    switch (action) {
      case 'on':
        if (state === 'Paused') throw new BackendError('Conflict', 'the machine is paused; resume it instead');
        if (state === 'Off') this.startBoot();
        return;
      case 'gracefulOff':
        if (state === 'Off') return;
        if (state === 'Paused') throw new BackendError('Conflict', 'a paused guest cannot handle an ACPI shutdown');
        if (!this.acpiListening) return; // the request is delivered; the guest ignores it
        this.transition('PoweringOff', this.powerOffDelayMs, () => this.setPower('Off'));
        return;
      case 'gracefulRestart':
        this.requireRunning(state, 'restart');
        if (state === 'Paused') throw new BackendError('Conflict', 'a paused guest cannot handle an ACPI restart');
        if (!this.acpiListening) return;
        this.transition('PoweringOff', this.powerOffDelayMs, () => this.startBoot());
        return;
      case 'forceRestart':
        this.requireRunning(state, 'reset');
        this.startBoot();
        return;
      case 'powerCycle':
        if (state !== 'Off') this.setPower('Off');
        this.startBoot();
        return;
      case 'nmi':
        this.requireRunning(state, 'deliver an NMI to');
        if (state === 'Paused') throw new BackendError('Conflict', 'a paused guest cannot take an NMI');
        this.nmiCount++;
        this.generation++;
        return;
      case 'pause':
        if (state === 'Paused') return;
        this.requireRunning(state, 'pause');
        this.setPower('Paused');
        return;
      case 'resume':
        if (state === 'On') return;
        if (state !== 'Paused') throw new BackendError('Conflict', 'the machine is not paused');
        this.setPower('On');
        return;
    }
  }

  /**
   * Like a real BMC fetching a remote image: the URL must serve something (one HEAD, see
   * backend/probe.ts: unreachable, non-2xx or a redirect → InvalidArgument). Then the slot passes
   * through "inserting" with progress 25/50/75 % over mediaInsertDelayMs before "inserted" (at once
   * with a delay of 0).
   */
  async insertMedia(slotId: MediaSlotId, req: InsertMediaRequest): Promise<MediaSlot> {
    this.check();
    this.slot(slotId);
    const url = validateImageUrl(req.image);
    const busy = (): void => {
      const s = this.slot(slotId);
      if (s.state === 'inserted' || s.state === 'inserting' || this.mediaProbing.has(slotId)) {
        throw new BackendError('Conflict', `slot ${slotId} already holds an image; eject it first`);
      }
    };
    busy();
    let token: symbol | undefined = Symbol(slotId);
    this.mediaProbing.set(slotId, token);
    try {
      await probeImage(url, this.mediaProbe);
    } finally {
      if (this.mediaProbing.get(slotId) === token) this.mediaProbing.delete(slotId);
      else token = undefined; // an eject meanwhile took the slot back (and removed the entry)
    }
    if (token === undefined) throw new BackendError('Conflict', `slot ${slotId} was ejected while its image URL was being checked`);
    this.check();
    busy();
    const delayed = this.mediaInsertDelayMs > 0;
    const next: MediaSlot = {
      ...this.slot(slotId),
      image: req.image,
      writeProtected: req.writeProtected ?? true,
      state: delayed ? 'inserting' : 'inserted',
      progress: delayed ? 0 : 100,
    };
    delete next.error;
    this.setSlot(next);
    if (delayed) this.mediaStep(slotId, 1);
    return { ...next };
  }

  /** Progress step `n` of MEDIA_STEPS for slot `slotId`; the last one inserts. */
  private mediaStep(slotId: MediaSlotId, n: number): void {
    this.mediaTimers.set(
      slotId,
      this.timers.setTimeout(() => {
        this.mediaTimers.delete(slotId);
        const s = this.slot(slotId);
        if (s.state !== 'inserting') return;
        if (n >= MEDIA_STEPS) {
          this.setSlot({ ...s, state: 'inserted', progress: 100 });
          return;
        }
        this.setSlot({ ...s, progress: Math.round((100 * n) / MEDIA_STEPS) });
        this.mediaStep(slotId, n + 1);
      }, this.mediaInsertDelayMs / MEDIA_STEPS),
    );
  }

  async ejectMedia(slotId: MediaSlotId): Promise<MediaSlot> {
    this.check();
    const slot = this.slot(slotId);
    const t = this.mediaTimers.get(slotId);
    if (t !== undefined) this.timers.clearTimeout(t);
    this.mediaTimers.delete(slotId);
    this.mediaProbing.delete(slotId);
    if (slot.state === 'empty') return { ...slot };
    const next: MediaSlot = { id: slot.id, kind: slot.kind, ...(slot.name ? { name: slot.name } : {}), state: 'empty', writeProtected: slot.writeProtected };
    this.setSlot(next);
    return { ...next };
  }

  on(listener: MachineListener): () => void {
    this.events.on('event', listener);
    return () => this.events.off('event', listener);
  }

  async close(): Promise<void> {
    this.cancelTimer();
    for (const t of this.mediaTimers.values()) this.timers.clearTimeout(t);
    this.mediaTimers.clear();
    this.console_.close();
    this.events.removeAllListeners();
  }

  // ---- internals -----------------------------------------------------------------------------

  private check(): void {
    if (!this.available) throw new BackendError('Unavailable', 'simulated backend outage', { retryAfterSeconds: 5 });
    if (this.stale) throw new BackendError('Unavailable', `simulated stale view: ${this.stale.message}`, { retryAfterSeconds: 2 });
  }

  private slot(id: MediaSlotId): MediaSlot {
    const s = this.media.get(id);
    if (!s) throw new BackendError('NotFound', `no virtual media slot ${String(id)}`);
    return s;
  }

  private setSlot(slot: MediaSlot): void {
    this.media.set(slot.id, slot);
    this.generation++;
    this.emit({ type: 'media', slot: { ...slot } });
  }

  private requireRunning(state: PowerState, verb: string): void {
    if (state === 'Off') throw new BackendError('Conflict', `cannot ${verb} a machine that is off`);
  }

  private startBoot(): void {
    this.transition('PoweringOn', this.powerOnDelayMs, () => {
      this.consumeBootOverride();
      this.info.firmware!.secureBootCurrent = this.info.firmware!.secureBoot;
      for (const v of this.volumes.values()) v.attached = true;
      this.setPower('On');
      this.emit({ type: 'booted' });
    });
  }

  /** The firmware boots: record the device and drop a once override. */
  private consumeBootOverride(): void {
    const b = this.boot;
    const target: BootTarget = b.enabled === 'disabled' ? 'hdd' : b.target === 'none' ? 'hdd' : b.target;
    this.bootHistory.push({ target, mode: b.mode, at: Date.now() });
    if (b.enabled === 'once') {
      this.boot = { target: 'none', enabled: 'disabled', mode: b.mode };
      this.emit({ type: 'boot', boot: { ...this.boot } });
    }
  }

  private transition(via: PowerState, delayMs: number, done: () => void): void {
    this.cancelTimer();
    if (delayMs <= 0) {
      done();
      return;
    }
    this.setPower(via);
    this.timer = this.timers.setTimeout(() => {
      this.timer = undefined;
      done();
    }, delayMs);
  }

  private cancelTimer(): void {
    if (this.timer !== undefined) this.timers.clearTimeout(this.timer);
    this.timer = undefined;
  }

  private setPower(to: PowerState): void {
    const from = this.power_;
    if (from === to) return;
    this.power_ = to;
    if (to === 'Off') delete this.info.firmware!.secureBootCurrent;
    this.emit({ type: 'power', from, to });
  }

  private emit(event: MachineEvent): void {
    this.generation++;
    this.events.emit('event', event);
  }
}
