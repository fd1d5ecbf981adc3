/**
 * KubeVirtMachine: the Machine seam over one KubeVirt VirtualMachine.
 *
 * Reads come from three single-object watches (VM, VMI, media DataVolume) while they are healthy,
 * else from direct GETs, so an API outage surfaces as Unavailable instead of stale answers.
 * Decisions that depend on the current state (power actions, boot writes, media) always re-read
 * first. Seam events are produced by diffing the derived view after every change the watches see.
 * The pieces: machine-writes.ts (power actions, boot override, VM patches), machine-media.ts
 * (virtual media), machine-boot.ts (the boot-once life cycle), machine-events.ts (seam events).
 */
import type { Logger } from '../../common/logger.js';
import {
  BackendError,
  isBackendError,
  POWER_ACTIONS,
  type BootOverride,
  type BootTarget,
  type Capabilities,
  type ConsoleStream,
  type InsertMediaRequest,
  type Machine,
  type MachineListener,
  type MachineHealth,
  type MachineSnapshot,
  type MediaSlot,
  type MediaSlotId,
  type PowerAction,
  type PowerState,
  type SystemInfo,
  type CreateVolumeRequest,
  type VolumeInfo,
} from '../types.js';
import { deriveBootOverride, supportedTargets } from './boot.js';
import { isKubeApiError, type KubeClient } from '../../kube/client.js';
import { Resources } from '../../kube/resources.js';
import { KubeVirtConsole } from './console.js';
import { toBackendError } from './errors.js';
import { systemInfo } from './identity.js';
import { assetTagPatch, secureBootPatch } from './inventory.js';
import { ownWatch, type ObjectSource } from './informer.js';
import { BootOnceKeeper } from './machine-boot.js';
import { MachineEventFeed } from './machine-events.js';
import { MachineMedia, type MachineMediaConfig } from './machine-media.js';
import { VmWrites } from './machine-writes.js';
import { derivePowerState, isVmiRunning } from './power.js';
import { MachineVolumes, ORPHAN_GRACE_MS } from './volumes.js';
import type { DataVolume, VirtualMachine, VirtualMachineInstance } from './types.js';

/** The media fields (client, names, storage, probe, TLS, egress, hotplug timeout) are MachineMediaConfig's. */
export interface KubeVirtMachineConfig extends MachineMediaConfig {
  /** silent-watch bounds (ms), see ObjectWatchOptions: check after 30000, re-open after 90000, retry while the API is down every 1000 */
  watchSilenceProbeMs?: number;
  watchMaxSilenceMs?: number;
  watchStaleRetryMs?: number;
  /** the client serves other machines too (shared mode): close() leaves it open */
  sharedClient?: boolean;
  /**
   * The first sweep of volume DataVolumes left by unfinished creates (volumes.ts), this long after
   * start (ms); default ORPHAN_GRACE_MS, and in shared mode a random extra of up to as much again,
   * so many systems do not read their slots at once
   */
  volumeSweepDelayMs?: number;
  /** the wall clock the volume orphan grace is measured on (tests); default Date.now */
  clock?: () => number;
}

interface View {
  vm: VirtualMachine;
  vmi: VirtualMachineInstance | undefined;
  /** media DataVolumes per CD-ROM drive (read only when asked for) */
  dvs?: Map<string, DataVolume | undefined>;
}

const ALL_TARGETS: BootTarget[] = ['none', 'pxe', 'hdd', 'cd'];
/** a watch unhealthy for longer than this (a normal re-watch takes milliseconds) makes reads Warning */
const WATCH_GRACE_MS = 5_000;

export class KubeVirtMachine implements Machine {
  private readonly client: KubeClient;
  private readonly ns: string;
  private readonly name: string;
  private readonly logger: Logger;
  private readonly vmWatch: ObjectSource<VirtualMachine>;
  private readonly vmiWatch: ObjectSource<VirtualMachineInstance>;
  private readonly media: MachineMedia;
  private readonly volumes: MachineVolumes;
  private readonly feed: MachineEventFeed;
  private closed = false;
  private readonly bootOnce: BootOnceKeeper;
  /** power actions, boot override and VM patches (machine-writes.ts) */
  private readonly writes: VmWrites;

  constructor(private readonly cfg: KubeVirtMachineConfig) {
    this.client = cfg.client;
    this.ns = cfg.namespace;
    this.name = cfg.name;
    this.logger = cfg.logger;
    this.feed = new MachineEventFeed(cfg.logger);
    const common = {
      client: cfg.client,
      logger: cfg.logger,
      name: cfg.name,
      ...(cfg.watchMinBackoffMs !== undefined ? { minBackoffMs: cfg.watchMinBackoffMs } : {}),
      ...(cfg.watchMaxBackoffMs !== undefined ? { maxBackoffMs: cfg.watchMaxBackoffMs } : {}),
      ...(cfg.watchSilenceProbeMs !== undefined ? { silenceProbeMs: cfg.watchSilenceProbeMs } : {}),
      ...(cfg.watchMaxSilenceMs !== undefined ? { maxSilenceMs: cfg.watchMaxSilenceMs } : {}),
      ...(cfg.watchStaleRetryMs !== undefined ? { staleRetryMs: cfg.watchStaleRetryMs } : {}),
    };
    const source = cfg.watchSource ?? ownWatch;
    this.vmWatch = source<VirtualMachine>({ ...common, kind: 'VirtualMachine', resource: Resources.vm, namespace: this.ns, onChange: () => this.changed() });
    this.vmiWatch = source<VirtualMachineInstance>({
      ...common,
      kind: 'VirtualMachineInstance',
      resource: Resources.vmi,
      namespace: this.ns,
      onChange: () => this.changed(),
    });
    this.bootOnce = new BootOnceKeeper({ client: cfg.client, namespace: this.ns, name: this.name, logger: cfg.logger, vmWatch: this.vmWatch, vmiWatch: this.vmiWatch });
    const host = {
      view: (fresh: boolean) => this.view(fresh, false),
      offerVm: (vm: VirtualMachine) => this.vmWatch.offer(vm),
      vmMoved: (seen: VirtualMachine) => this.vmMoved(seen),
      mapError: (e: unknown, what: string) => this.mapError(e, what),
    };
    this.media = new MachineMedia(cfg, { ...host, changed: () => this.changed() });
    const { client, logger, bootOnce } = this;
    this.writes = new VmWrites({ client, namespace: this.ns, name: this.name, logger, host, bootOnce, capabilities: () => this.capabilities });
    this.volumes = new MachineVolumes({
      client,
      namespace: this.ns,
      logger,
      storageClassName: cfg.storageClassName,
      volumeMode: cfg.volumeMode,
      ...(cfg.clock ? { now: cfg.clock } : {}),
      ...host,
    });
  }

  /** Start the watches and wait (up to syncTimeoutMs) for their first lists. */
  async start(syncTimeoutMs = 5_000): Promise<void> {
    const started = Date.now();
    this.vmWatch.start();
    this.vmiWatch.start();
    await Promise.all([this.vmWatch.waitSynced(syncTimeoutMs), this.vmiWatch.waitSynced(syncTimeoutMs)]);
    // one DataVolume watch per CD-ROM drive, known once the VM is
    this.media.syncDrives(this.vmWatch.current);
    await this.media.waitSynced(Math.max(0, syncTimeoutMs - (Date.now() - started)));
    // DataVolumes a create left behind (an agent that died between making one and patching the VM)
    const delay = this.cfg.volumeSweepDelayMs ?? ORPHAN_GRACE_MS * (this.cfg.sharedClient ? 1 + Math.random() : 1);
    this.volumes.scheduleSweep(delay);
  }

  // ---- Machine -------------------------------------------------------------------------------

  /** The VMI's serial console (src/backend/kubevirt/console.ts), bridged while a viewer is attached. */
  openConsole(): ConsoleStream {
    if (!this.serialConsole) {
      this.serialConsole = new KubeVirtConsole({ kc: this.client.kc, namespace: this.ns, name: this.name, logger: this.logger.child({ console: 'serial' }) });
      const vmi = this.vmiWatch.current;
      this.serialConsole.setRunningVmi(isVmiRunning(vmi) ? vmi!.metadata?.uid : undefined);
    }
    return this.serialConsole.open();
  }

  private serialConsole: KubeVirtConsole | undefined;

  /**
   * When the running VMI entered phase Running (its status.phaseTransitionTimestamps, kubevirt
   * staging/src/kubevirt.io/api/core/v1/types.go): the start of this power-on period, for IPMI's
   * POH counter. KubeVirt keeps no power-on total across VMIs, so each start begins at 0.
   */
  async poweredOnSince(): Promise<Date | undefined> {
    const vmi = this.vmiWatch.current;
    if (!isVmiRunning(vmi)) return undefined;
    const running = (vmi!.status?.phaseTransitionTimestamps ?? []).filter((t) => t.phase === 'Running' && t.phaseTransitionTimestamp);
    const at = running.length > 0 ? Date.parse(running[running.length - 1]!.phaseTransitionTimestamp!) : NaN;
    return Number.isFinite(at) ? new Date(at) : undefined;
  }

  get capabilities(): Capabilities {
    const vm = this.vmWatch.current;
    return {
      powerActions: POWER_ACTIONS.filter((a) => a !== 'nmi'),
      bootTargets: vm ? supportedTargets(vm) : ALL_TARGETS,
      bootModes: ['UEFI', 'Legacy'],
    };
  }

  /**
   * A status read. While the Kubernetes API cannot be reached, the last state seen is returned with
   * health Critical (saying since when and why) instead of failing, so Redfish can show it for what
   * it is; without any state seen yet, it fails with Unavailable. Single-value reads
   * (getPowerState, ...) never serve a stale cache: they fail with Unavailable meanwhile.
   */
  async snapshot(): Promise<MachineSnapshot> {
    let v: View;
    let health: MachineHealth;
    try {
      v = await this.view();
      health = this.health();
    } catch (e) {
      const stale = await this.staleView(e);
      if (!stale) throw e;
      ({ v, health } = stale);
    }
    return {
      health,
      power: derivePowerState(v.vm, v.vmi),
      boot: deriveBootOverride(v.vm),
      info: systemInfo(v.vm, v.vmi),
      media: this.slots(v),
      generation: this.feed.generation,
    };
  }

  /**
   * snapshot()'s generation while a snapshot taken now would read the watch caches and be healthy
   * (Machine.currentGeneration): both watches current, the VM seen, the API reachable, health OK;
   * undefined otherwise (the caller then takes the snapshot, which reads directly or serves the
   * last state as Critical). The generation moves with every change the watches see (feed.diff).
   */
  currentGeneration(): number | undefined {
    if (this.closed || !this.vmWatch.healthy || !this.vmiWatch.healthy || !this.vmWatch.current) return undefined;
    return this.health().status === 'OK' ? this.feed.generation : undefined;
  }

  async getPowerState(): Promise<PowerState> {
    const v = await this.view();
    return derivePowerState(v.vm, v.vmi);
  }

  /**
   * The power state from the watch caches while both watches are current, as getPowerState reads
   * it then, without a request or an await; undefined otherwise (an outage, before the first list,
   * no VM), and the caller asks getPowerState, which refreshes or fails. Never a stale cache.
   */
  powerStateNow(): PowerState | undefined {
    if (this.closed || !this.vmWatch.healthy || !this.vmiWatch.healthy) return undefined;
    const vm = this.vmWatch.current;
    return vm ? derivePowerState(vm, this.vmiWatch.current) : undefined;
  }

  async getBootOverride(): Promise<BootOverride> {
    return deriveBootOverride((await this.view()).vm);
  }

  async getSystemInfo(): Promise<SystemInfo> {
    const v = await this.view();
    return systemInfo(v.vm, v.vmi);
  }

  async listMedia(): Promise<MediaSlot[]> {
    return this.slots(await this.view());
  }

  insertMedia(slotId: MediaSlotId, req: InsertMediaRequest): Promise<MediaSlot> {
    if (this.closed) return Promise.reject(new BackendError('Unavailable', 'the KubeVirt backend is closed'));
    return this.media.insert(slotId, req);
  }

  ejectMedia(slotId: MediaSlotId): Promise<MediaSlot> {
    if (this.closed) return Promise.reject(new BackendError('Unavailable', 'the KubeVirt backend is closed'));
    return this.media.eject(slotId);
  }

  power(action: PowerAction): Promise<void> {
    return this.writes.power(action);
  }

  setBootOverride(change: Partial<BootOverride>): Promise<BootOverride> {
    return this.writes.setBootOverride(change);
  }

  /** Volumes created over Redfish: blank DataVolumes with a disk in the VM spec (src/backend/kubevirt/volumes.ts). */
  listVolumes(): Promise<VolumeInfo[]> {
    return this.volumes.list();
  }

  createVolume(req: CreateVolumeRequest): Promise<VolumeInfo> {
    return this.volumes.create(req);
  }

  deleteVolume(id: string): Promise<void> {
    return this.volumes.delete(id);
  }

  /** The asset tag, kept in a VM annotation (src/backend/kubevirt/inventory.ts). */
  async setAssetTag(tag: string): Promise<void> {
    await this.writes.patchVm('set asset tag', (vm) => assetTagPatch(vm, tag));
  }

  /** Secure Boot in the VM template (and SMM, which it needs): the next VMI boots with it. */
  async setSecureBoot(enabled: boolean): Promise<void> {
    await this.writes.patchVm('set Secure Boot', (vm) => secureBootPatch(vm, enabled));
    this.logger.info({ secureBoot: enabled }, 'secure boot written (applies at the next start)');
  }

  /**
   * What the machine's caches hold and whether its own boot-once bookkeeping is under way: lets a
   * caller (tests) tell when the machine has caught up with the API server and has nothing left
   * to write.
   */
  syncState(): { vm: string | undefined; vmi: string | undefined; busy: boolean } {
    return { vm: this.vmWatch.current?.metadata?.resourceVersion, vmi: this.vmiWatch.current?.metadata?.resourceVersion, busy: this.bootOnce.busy };
  }

  on(listener: MachineListener): () => void {
    return this.feed.on(listener);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.serialConsole?.close();
    this.bootOnce.close();
    this.volumes.close();
    await Promise.all([this.vmWatch.stop(), this.vmiWatch.stop(), this.media.stop()]);
    if (!this.cfg.sharedClient) this.client.close();
    this.feed.close();
  }

  // ---- internals -----------------------------------------------------------------------------

  /** Whether the VM changed since `seen` was read (a failed resourceVersion test). */
  private async vmMoved(seen: VirtualMachine): Promise<boolean> {
    const now = await this.vmWatch.refresh().catch(() => undefined);
    return !now || now.metadata?.resourceVersion !== seen.metadata?.resourceVersion;
  }

  private slots(v: View): MediaSlot[] {
    return this.media.slots(v.vm, v.vmi, v.dvs);
  }

  private mapError(e: unknown, what: string): BackendError {
    if (isKubeApiError(e, 404) && !(e.path.includes('/datavolumes') && e.method === 'POST')) {
      return new BackendError('NotFound', `${what}: VirtualMachine ${this.ns}/${this.name} not found`, { cause: e });
    }
    return toBackendError(e, what, this.logger);
  }

  /** How current a read that view() just answered is. */
  private health(): MachineHealth {
    const r = this.client.reachability;
    if (r && !r.reachable) {
      return { status: 'Critical', message: `The Kubernetes API cannot be reached (${r.reason ?? 'no answer'})`, ...(r.since ? { since: r.since } : {}) };
    }
    // live updates have been interrupted for longer than a normal re-watch takes; reads go to the server meanwhile
    const w = [this.vmWatch, this.vmiWatch].find((x) => !x.healthy && x.unhealthySince !== undefined && Date.now() - x.unhealthySince.getTime() > WATCH_GRACE_MS);
    if (w) {
      return {
        status: 'Warning',
        message: `Live updates of the ${w.kind} from the Kubernetes API are interrupted${w.lastError ? ` (${w.lastError})` : ''}; the state is read directly`,
        ...(w.unhealthySince ? { since: w.unhealthySince } : {}),
      };
    }
    return { status: 'OK' };
  }

  /** After an Unavailable read: the last state seen, marked Critical, when there is one. */
  private async staleView(e: unknown): Promise<{ v: View; health: MachineHealth } | undefined> {
    if (!isBackendError(e, 'Unavailable') || this.closed) return undefined;
    const vm = this.vmWatch.current;
    if (!vm) return undefined;
    const r = this.client.reachability;
    const since = r && !r.reachable && r.since ? r.since : (this.vmWatch.unhealthySince ?? new Date());
    const seen = [this.vmWatch.confirmedAt, this.vmiWatch.confirmedAt].filter((d): d is Date => d !== undefined);
    const lastSeen = seen.length ? new Date(Math.min(...seen.map((d) => d.getTime()))) : undefined;
    const dvs = await this.media.dataVolumes(vm, false).catch(() => new Map<string, DataVolume | undefined>());
    const reason = r && !r.reachable ? (r.reason ?? 'no answer') : e.message;
    return {
      v: { vm, vmi: this.vmiWatch.current, dvs },
      health: {
        status: 'Critical',
        message: `The Kubernetes API cannot be reached (${reason}); the state shown is the last one seen${lastSeen ? `, at ${lastSeen.toISOString()}` : ''}, and may be out of date`,
        since,
      },
    };
  }

  /**
   * The current VM/VMI/DataVolume. From the watch caches while they are healthy (unless `fresh`),
   * else by direct GETs (the DataVolume only when `withMedia`). Throws NotFound when the VM does not exist, Unavailable when the API
   * cannot be reached.
   */
  private async view(fresh = false, withMedia = true): Promise<View> {
    if (this.closed) throw new BackendError('Unavailable', 'the KubeVirt backend is closed');
    try {
      const [vm, vmi] = await Promise.all([
        !fresh && this.vmWatch.healthy ? this.vmWatch.current : this.vmWatch.refresh(),
        !fresh && this.vmiWatch.healthy ? this.vmiWatch.current : this.vmiWatch.refresh(),
      ]);
      if (!vm) throw new BackendError('NotFound', `VirtualMachine ${this.ns}/${this.name} not found`);
      // CDI being absent must not make VM reads fail: the DataVolume reads are best effort
      return withMedia ? { vm, vmi, dvs: await this.media.dataVolumes(vm, fresh) } : { vm, vmi };
    } catch (e) {
      throw this.mapError(e, 'read VM state');
    }
  }

  /** A watch saw a change: emit seam events for what changed, consume a boot-once override. */
  private changed(): void {
    if (this.closed) return;
    const vm = this.vmWatch.current;
    const vmi = this.vmiWatch.current;
    if (!vm) {
      return;
    }
    const { events, runningUid } = this.feed.diff(vm, vmi, this.media.diff(vm, vmi));
    // a new VMI (reset, cycle, start) re-opens the console bridge; none running takes it offline
    // (before the listeners hear of it)
    this.serialConsole?.setRunningVmi(runningUid);
    this.feed.publish(events);
    this.bootOnce.changed(vm, vmi);
  }
}
