/**
 * KubeVirtMachine: the Machine seam over one KubeVirt VirtualMachine.
 *
 * Reads come from three single-object watches (VM, VMI, media DataVolume) while they are healthy,
 * else from direct GETs, so an API outage surfaces as Unavailable instead of stale answers.
 * Decisions that depend on the current state (power actions, boot writes, media) always re-read
 * first. Seam events are produced by diffing the derived view after every change the watches see.
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
} from '../types.js';
import { validateBootChange } from '../validate.js';
import {
  buildBootPatch,
  deriveBootOverride,
  listBootDevices,
  planBootWrite,
  rebootTerminates,
  supportedTargets,
} from './boot.js';
import { isKubeApiError, type KubeClient } from '../../kube/client.js';
import { Resources } from '../../kube/resources.js';
import { KubeVirtConsole } from './console.js';
import { toBackendError } from './errors.js';
import { systemInfo } from './identity.js';
import { assetTagPatch, secureBootPatch } from './inventory.js';
import type { JsonPatchOp } from '../../kube/client.js';
import { ownWatch, type ObjectSource } from './informer.js';
import { BootOnceKeeper, nextBootDiffers } from './machine-boot.js';
import { MachineEventFeed } from './machine-events.js';
import { MachineMedia, type MachineMediaConfig } from './machine-media.js';
import { derivePowerState, effectiveRunStrategy, isVmiRunning, planPowerAction, resolveConflict, type VmAction } from './power.js';
import type { DataVolume, VirtualMachine, VirtualMachineInstance } from './types.js';

/** The media fields (client, names, storage, probe, TLS, egress, hotplug timeout) are MachineMediaConfig's. */
export interface KubeVirtMachineConfig extends MachineMediaConfig {
  /** silent-watch bounds (ms), see ObjectWatchOptions: check after 30000, re-open after 90000, retry while the API is down every 1000 */
  watchSilenceProbeMs?: number;
  watchMaxSilenceMs?: number;
  watchStaleRetryMs?: number;
  /** the client serves other machines too (shared mode): close() leaves it open */
  sharedClient?: boolean;
}

interface View {
  vm: VirtualMachine;
  vmi: VirtualMachineInstance | undefined;
  /** media DataVolumes per CD-ROM drive (read only when asked for) */
  dvs?: Map<string, DataVolume | undefined>;
}

const ALL_TARGETS: BootTarget[] = ['none', 'pxe', 'hdd', 'cd'];
const WRITE_ATTEMPTS = 5;
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
  private readonly feed: MachineEventFeed;
  private closed = false;
  private readonly bootOnce: BootOnceKeeper;

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
    this.media = new MachineMedia(cfg, {
      view: (fresh) => this.view(fresh, false),
      offerVm: (vm) => this.vmWatch.offer(vm),
      vmMoved: (seen) => this.vmMoved(seen),
      mapError: (e, what) => this.mapError(e, what),
      changed: () => this.changed(),
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

  async power(action: PowerAction): Promise<void> {
    if (!(POWER_ACTIONS as readonly string[]).includes(action)) {
      throw new BackendError('InvalidArgument', `unknown power action ${String(action)}`);
    }
    const v = await this.view(true, false);
    const state = derivePowerState(v.vm, v.vmi);
    // the next boot differs from what the VMI booted (a boot write since it started, or a consumed
    // boot-once whose previous order comes back): a soft reboot inside the VMI would not apply it
    const pendingBootChange = nextBootDiffers(v.vm, v.vmi);
    const softRebootEndsVmi = rebootTerminates(v.vmi?.spec) && effectiveRunStrategy(v.vm) !== 'Always';
    const plan = planPowerAction(action, { state, vmi: v.vmi, pendingBootChange, softRebootEndsVmi });
    if (plan.kind === 'noop') return;
    if (plan.kind === 'error') throw plan.error;
    const { call } = plan;
    const target = call.target === 'vm' ? Resources.vmActions : Resources.vmiActions;
    this.logger.info({ action, state, call: call.sub, body: call.body }, 'power action');
    // a new VMI follows: a consumed boot-once override is over, restore the previous order first
    // (an off leaves it to the watch: restored once the VMI is gone, see boot.ts onceStep)
    // (not for a restart KubeVirt refuses anyway: runStrategy Halted/Once, subresource.go)
    const refusedRestart = call.sub === 'restart' && ['Halted', 'Once'].includes(effectiveRunStrategy(v.vm));
    if ((call.sub === 'restart' && !refusedRestart) || call.sub === 'start') await this.beforeNewVmi(action);
    try {
      await this.client.putSubresource(target, this.ns, this.name, call.sub, call.body);
    } catch (e) {
      if (isKubeApiError(e, 409)) {
        const after = await this.view(true, false);
        const stateAfter = derivePowerState(after.vm, after.vmi);
        // a soft reboot the guest cannot take: fall back to a graceful VMI restart
        if (call.sub === 'softreboot' && /agent|ACPI/i.test(e.kubeMessage) && stateAfter === 'On') {
          return this.putPower('restart', {}, action);
        }
        const verdict = resolveConflict(action, stateAfter, effectiveRunStrategy(after.vm), e.kubeMessage);
        if (verdict === 'ok') return;
        throw verdict;
      }
      throw this.mapError(e, `power ${action}`);
    }
  }

  async setBootOverride(change: Partial<BootOverride>): Promise<BootOverride> {
    validateBootChange(change, this.capabilities);
    for (let attempt = 0; attempt < WRITE_ATTEMPTS; attempt++) {
      const v = await this.view(true, false);
      const current = deriveBootOverride(v.vm);
      const next: BootOverride = { ...current, ...change };
      // a target alone arms it once when no override is active (what most BMCs do)
      if (change.target !== undefined && change.enabled === undefined && current.enabled === 'disabled') next.enabled = 'once';
      if (next.target === 'none') next.enabled = 'disabled';
      if (next.enabled === 'disabled') next.target = 'none';
      if (next.target !== 'none' && !listBootDevices(v.vm).some((d) => d.cls === next.target)) {
        throw new BackendError('Unsupported', `the VM has no device for boot target ${next.target}`);
      }
      const write = planBootWrite(v.vm, next, v.vmi?.metadata?.uid ?? null);
      if (!write) return current;
      try {
        const updated = await this.client.jsonPatch<VirtualMachine>(Resources.vm, this.ns, this.name, buildBootPatch(v.vm, write));
        if (updated?.metadata) this.vmWatch.offer(updated);
        this.logger.info({ boot: next }, 'boot override written');
        return deriveBootOverride(updated?.metadata ? updated : (await this.view(true, false)).vm);
      } catch (e) {
        if (isKubeApiError(e, 409)) continue; // changed under us: re-read, retry
        // 422 is both "the resourceVersion test failed" and "the new spec is invalid": only the
        // former is worth a retry, and it shows as a moved resourceVersion
        if (isKubeApiError(e, 422) && (await this.vmMoved(v.vm))) continue;
        throw this.mapError(e, 'set boot override');
      }
    }
    throw new BackendError('Busy', 'the VM kept changing while writing the boot override; try again', { retryAfterSeconds: 1 });
  }

  /** The asset tag, kept in a VM annotation (src/backend/kubevirt/inventory.ts). */
  async setAssetTag(tag: string): Promise<void> {
    await this.patchVm('set asset tag', (vm) => assetTagPatch(vm, tag));
  }

  /** Secure Boot in the VM template (and SMM, which it needs): the next VMI boots with it. */
  async setSecureBoot(enabled: boolean): Promise<void> {
    await this.patchVm('set Secure Boot', (vm) => secureBootPatch(vm, enabled));
    this.logger.info({ secureBoot: enabled }, 'secure boot written (applies at the next start)');
  }

  /** Re-read the VM, JSON-patch it (guarded by its resourceVersion), retry when it moved meanwhile. */
  private async patchVm(what: string, build: (vm: VirtualMachine) => JsonPatchOp[]): Promise<void> {
    for (let attempt = 0; attempt < WRITE_ATTEMPTS; attempt++) {
      const v = await this.view(true, false);
      const ops = build(v.vm);
      if (ops.length === 0) return;
      try {
        const updated = await this.client.jsonPatch<VirtualMachine>(Resources.vm, this.ns, this.name, ops);
        if (updated?.metadata) this.vmWatch.offer(updated);
        return;
      } catch (e) {
        if (isKubeApiError(e, 409)) continue;
        if (isKubeApiError(e, 422) && (await this.vmMoved(v.vm))) continue;
        throw this.mapError(e, what);
      }
    }
    throw new BackendError('Busy', `the VM kept changing while trying to ${what}; try again`, { retryAfterSeconds: 1 });
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
    await Promise.all([this.vmWatch.stop(), this.vmiWatch.stop(), this.media.stop()]);
    if (!this.cfg.sharedClient) this.client.close();
    this.feed.close();
  }

  // ---- internals -----------------------------------------------------------------------------

  /** Boot-once: put the previous order back before a power call that creates the next VMI. */
  private async beforeNewVmi(action: PowerAction): Promise<void> {
    try {
      await this.bootOnce.beforeNewVmi();
    } catch (e) {
      throw isBackendError(e) ? e : this.mapError(e, `power ${action}: restore the boot order of a boot-once override`);
    }
  }

  /** PUT a VM action subresource (restart, ...) and map its failure. */
  private async putPower(sub: VmAction, body: unknown, action: PowerAction): Promise<void> {
    if (sub === 'restart' || sub === 'start') await this.beforeNewVmi(action);
    try {
      await this.client.putSubresource(Resources.vmActions, this.ns, this.name, sub, body);
    } catch (e) {
      throw this.mapError(e, `power ${action}`);
    }
  }

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
