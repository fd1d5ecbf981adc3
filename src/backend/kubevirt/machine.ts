/**
 * KubeVirtMachine: the Machine seam over one KubeVirt VirtualMachine.
 *
 * Reads come from three single-object watches (VM, VMI, media DataVolume) while they are healthy,
 * else from direct GETs, so an API outage surfaces as Unavailable instead of stale answers.
 * Decisions that depend on the current state (power actions, boot writes, media) always re-read
 * first. Seam events are produced by diffing the derived view after every change the watches see.
 */
import { EventEmitter } from 'node:events';
import type { Logger } from '../../common/logger.js';
import {
  BackendError,
  POWER_ACTIONS,
  type BootOverride,
  type BootTarget,
  type Capabilities,
  type InsertMediaRequest,
  type Machine,
  type MachineEvent,
  type MachineListener,
  type MachineSnapshot,
  type MediaSlot,
  type MediaSlotId,
  type PowerAction,
  type PowerState,
  type SystemInfo,
} from '../types.js';
import { validateBootChange, validateImageUrl } from '../validate.js';
import {
  buildBootPatch,
  bootSignature,
  deriveBootOverride,
  listBootDevices,
  parseSaved,
  planBootWrite,
  supportedTargets,
} from './boot.js';
import { isKubeApiError, type JsonPatchOp, type KubeClient } from '../../kube/client.js';
import { Resources } from '../../kube/resources.js';
import { toBackendError } from './errors.js';
import { systemInfo } from './identity.js';
import { ObjectWatch } from './informer.js';
import {
  addVolumeBody,
  dataVolumeManifest,
  deriveSlot,
  mediaDataVolumeName,
  mediaSize,
  pickCdrom,
  probeImageSize,
  volumeFor,
  type MediaTlsOptions,
} from './media.js';
import { derivePowerState, effectiveRunStrategy, isVmiRunning, planPowerAction, resolveConflict, type VmAction } from './power.js';
import type { DataVolume, Disk, VirtualMachine, VirtualMachineInstance } from './types.js';

export interface KubeVirtMachineConfig {
  client: KubeClient;
  namespace: string;
  name: string;
  logger: Logger;
  storageClassName?: string;
  volumeMode?: 'Filesystem' | 'Block';
  /** watch retry backoff bounds (ms); defaults 200 / 10000 */
  watchMinBackoffMs?: number;
  watchMaxBackoffMs?: number;
  /** timeout of the HEAD request that sizes a media image (ms), default 10000 */
  mediaProbeTimeoutMs?: number;
  /** TLS of https image servers: CA for CDI (ConfigMap) and for the HEAD probe (file), skip-verify */
  mediaTls?: MediaTlsOptions;
}

interface View {
  vm: VirtualMachine;
  vmi: VirtualMachineInstance | undefined;
  dv: DataVolume | undefined;
}

const ALL_TARGETS: BootTarget[] = ['none', 'pxe', 'hdd', 'cd'];
const WRITE_ATTEMPTS = 5;

export class KubeVirtMachine implements Machine {
  private readonly client: KubeClient;
  private readonly ns: string;
  private readonly name: string;
  private readonly logger: Logger;
  private readonly dvName: string;
  private readonly vmWatch: ObjectWatch<VirtualMachine>;
  private readonly vmiWatch: ObjectWatch<VirtualMachineInstance>;
  private readonly dvWatch: ObjectWatch<DataVolume>;
  private readonly events = new EventEmitter();
  private generation = 1;
  private last: { power?: PowerState; boot?: string; media?: string; info?: string } = {};
  private lastBootedUid: string | undefined;
  private bootedInitialised = false;
  private restoring = false;
  private mediaError: string | undefined;
  private closed = false;
  private retryTimer: NodeJS.Timeout | undefined;

  constructor(private readonly cfg: KubeVirtMachineConfig) {
    this.client = cfg.client;
    this.ns = cfg.namespace;
    this.name = cfg.name;
    this.logger = cfg.logger;
    this.dvName = mediaDataVolumeName(cfg.name);
    const common = {
      client: cfg.client,
      logger: cfg.logger,
      name: cfg.name,
      ...(cfg.watchMinBackoffMs !== undefined ? { minBackoffMs: cfg.watchMinBackoffMs } : {}),
      ...(cfg.watchMaxBackoffMs !== undefined ? { maxBackoffMs: cfg.watchMaxBackoffMs } : {}),
    };
    this.vmWatch = new ObjectWatch<VirtualMachine>({ ...common, kind: 'VirtualMachine', resource: Resources.vm, namespace: this.ns, onChange: () => this.changed() });
    this.vmiWatch = new ObjectWatch<VirtualMachineInstance>({
      ...common,
      kind: 'VirtualMachineInstance',
      resource: Resources.vmi,
      namespace: this.ns,
      onChange: () => this.changed(),
    });
    this.dvWatch = new ObjectWatch<DataVolume>({
      ...common,
      name: this.dvName,
      kind: 'DataVolume',
      resource: Resources.dataVolume,
      namespace: this.ns,
      // CDI may be absent: retry slowly then
      maxBackoffMs: Math.max(cfg.watchMaxBackoffMs ?? 10_000, 30_000),
      onChange: () => this.changed(),
    });
    this.events.setMaxListeners(0);
  }

  /** Start the watches and wait (up to syncTimeoutMs) for their first lists. */
  async start(syncTimeoutMs = 5_000): Promise<void> {
    this.vmWatch.start();
    this.vmiWatch.start();
    this.dvWatch.start();
    await Promise.all([
      this.vmWatch.waitSynced(syncTimeoutMs),
      this.vmiWatch.waitSynced(syncTimeoutMs),
      this.dvWatch.waitSynced(syncTimeoutMs),
    ]);
  }

  // ---- Machine -------------------------------------------------------------------------------

  get capabilities(): Capabilities {
    const vm = this.vmWatch.current;
    return {
      powerActions: POWER_ACTIONS.filter((a) => a !== 'nmi'),
      bootTargets: vm ? supportedTargets(vm) : ALL_TARGETS,
      bootModes: ['UEFI', 'Legacy'],
    };
  }

  async snapshot(): Promise<MachineSnapshot> {
    const v = await this.view();
    return {
      power: derivePowerState(v.vm, v.vmi),
      boot: deriveBootOverride(v.vm),
      info: systemInfo(v.vm, v.vmi),
      media: this.slots(v),
      generation: this.generation,
    };
  }

  async getPowerState(): Promise<PowerState> {
    const v = await this.view();
    return derivePowerState(v.vm, v.vmi);
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

  async power(action: PowerAction): Promise<void> {
    if (!(POWER_ACTIONS as readonly string[]).includes(action)) {
      throw new BackendError('InvalidArgument', `unknown power action ${String(action)}`);
    }
    const v = await this.view(true, false);
    const state = derivePowerState(v.vm, v.vmi);
    const pendingBootChange =
      v.vmi !== undefined && bootSignature(v.vm.spec?.template?.spec) !== bootSignature(v.vmi.spec);
    const plan = planPowerAction(action, { state, vmi: v.vmi, pendingBootChange });
    if (plan.kind === 'noop') return;
    if (plan.kind === 'error') throw plan.error;
    const { call } = plan;
    const target = call.target === 'vm' ? Resources.vmActions : Resources.vmiActions;
    this.logger.info({ action, state, call: call.sub, body: call.body }, 'power action');
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

  async insertMedia(slotId: MediaSlotId, req: InsertMediaRequest): Promise<MediaSlot> {
    this.checkSlotId(slotId);
    // validateImageUrl refuses credentials: CDI takes them from a Secret, never from the URL
    const url = validateImageUrl(req.image);
    if (req.writeProtected === false) throw new BackendError('InvalidArgument', 'CD-ROM media is always write-protected');
    const v = await this.view(true);
    const disk = pickCdrom(v.vm, this.dvName);
    if (!disk) throw new BackendError('Unsupported', 'the VM has no CD-ROM disk to insert media into; add a cdrom disk to its spec');
    const slot = deriveSlot(v.vm, v.dv, this.dvName, this.mediaError)!;
    if (slot.state === 'inserting' || slot.state === 'inserted') {
      throw new BackendError('Conflict', `cd0 already holds ${slot.image ?? 'a volume'}; eject it first`);
    }
    if (slot.state === 'error') await this.clearMedia(v); // a failed earlier insert: clean up first

    const tls = this.cfg.mediaTls ?? {};
    const size = mediaSize(
      await probeImageSize(url, {
        ...(this.cfg.mediaProbeTimeoutMs !== undefined ? { timeoutMs: this.cfg.mediaProbeTimeoutMs } : {}),
        tls,
      }),
    );
    const manifest = dataVolumeManifest({
      namespace: this.ns,
      vm: v.vm,
      dvName: this.dvName,
      url: url.href,
      size,
      ...(this.cfg.storageClassName ? { storageClassName: this.cfg.storageClassName } : {}),
      ...(this.cfg.volumeMode ? { volumeMode: this.cfg.volumeMode } : {}),
      ...(tls.caConfigMap ? { certConfigMap: tls.caConfigMap } : {}),
    });
    let created: DataVolume;
    try {
      created = await this.client.create<DataVolume>(Resources.dataVolume, this.ns, manifest);
    } catch (e) {
      if (isKubeApiError(e, 404)) {
        throw new BackendError('Unsupported', 'CDI is not installed (the cdi.kubevirt.io DataVolume API was not found); virtual media needs CDI');
      }
      if (isKubeApiError(e, 409)) throw new BackendError('Conflict', 'a media DataVolume for this VM already exists; eject first');
      throw this.mapError(e, 'create media DataVolume');
    }
    this.dvWatch.offer(created);
    this.mediaError = undefined;
    try {
      await this.client.putSubresource(Resources.vmActions, this.ns, this.name, 'addvolume', addVolumeBody(disk, this.dvName));
    } catch (e) {
      // undo the import so nothing is left behind, then report why KubeVirt refused
      await this.client.delete(Resources.dataVolume, this.ns, this.dvName).catch(() => undefined);
      if (isKubeApiError(e) && e.status >= 400 && e.status < 500 && e.status !== 403 && e.status !== 404) {
        throw new BackendError(
          'Conflict',
          `KubeVirt refused to hot-plug the image into CD-ROM ${disk.name}: ${e.kubeMessage} (needs the DeclarativeHotplugVolumes feature gate)`,
        );
      }
      throw this.mapError(e, 'hot-plug media volume');
    }
    // without the query: a pre-signed image URL carries its access token there
    this.logger.info({ image: url.origin + url.pathname, size, dataVolume: this.dvName, disk: disk.name }, 'virtual media inserted');
    const after = await this.view(true).catch(() => undefined);
    return (after && deriveSlot(after.vm, after.dv ?? created, this.dvName, this.mediaError)) ?? {
      id: 'cd0',
      kind: 'cd',
      state: 'inserting',
      image: url.href,
      writeProtected: true,
      progress: 0,
    };
  }

  async ejectMedia(slotId: MediaSlotId): Promise<MediaSlot> {
    this.checkSlotId(slotId);
    const v = await this.view(true);
    const disk = pickCdrom(v.vm, this.dvName);
    if (!disk) throw new BackendError('NotFound', 'the VM has no CD-ROM disk');
    const slot = deriveSlot(v.vm, v.dv, this.dvName, this.mediaError)!;
    if (slot.state === 'empty') return slot;
    const vol = volumeFor(v.vm, disk.name);
    if (vol && vol.dataVolume?.name !== this.dvName && !v.dv) {
      throw new BackendError('Conflict', `CD-ROM ${disk.name} holds volume ${vol.name}, which the BMC did not insert; it cannot eject it`);
    }
    await this.clearMedia(v);
    this.logger.info({ dataVolume: this.dvName }, 'virtual media ejected');
    const after = await this.view(true);
    return deriveSlot(after.vm, after.dv, this.dvName, this.mediaError) ?? { id: 'cd0', kind: 'cd', state: 'empty', writeProtected: true };
  }

  on(listener: MachineListener): () => void {
    this.events.on('event', listener);
    return () => this.events.off('event', listener);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    await Promise.all([this.vmWatch.stop(), this.vmiWatch.stop(), this.dvWatch.stop()]);
    this.client.close();
    this.events.removeAllListeners();
  }

  // ---- internals -----------------------------------------------------------------------------

  private checkSlotId(slotId: MediaSlotId): void {
    if (slotId === 'usb0') throw new BackendError('NotFound', 'KubeVirt cannot hot-plug USB media; this VM only has cd0');
    if (slotId !== 'cd0') throw new BackendError('NotFound', `no virtual media slot ${String(slotId)}`);
  }

  /** PUT a VM action subresource (restart, ...) and map its failure. */
  private async putPower(sub: VmAction, body: unknown, action: PowerAction): Promise<void> {
    try {
      await this.client.putSubresource(Resources.vmActions, this.ns, this.name, sub, body);
    } catch (e) {
      throw this.mapError(e, `power ${action}`);
    }
  }

  private async clearMedia(v: View): Promise<void> {
    const disk = pickCdrom(v.vm, this.dvName);
    const vol = disk ? volumeFor(v.vm, disk.name) : undefined;
    if (disk && vol?.dataVolume?.name === this.dvName) {
      const index = (v.vm.spec?.template?.spec?.domain?.devices?.disks ?? []).findIndex((d) => d.name === disk.name);
      try {
        await this.client.putSubresource(Resources.vmActions, this.ns, this.name, 'removevolume', { name: disk.name });
      } catch (e) {
        // already gone is fine; anything else is reported
        const fresh = await this.vmWatch.refresh().catch(() => undefined);
        if (!(isKubeApiError(e) && e.status < 500 && fresh && volumeFor(fresh, disk.name)?.dataVolume?.name !== this.dvName)) {
          throw this.mapError(e, 'unplug media volume');
        }
      }
      await this.keepCdromDrive(disk, index);
    }
    if (v.dv) {
      try {
        await this.client.delete(Resources.dataVolume, this.ns, this.dvName);
      } catch (e) {
        if (!isKubeApiError(e, 404)) throw this.mapError(e, 'delete media DataVolume');
      }
    }
    this.mediaError = undefined;
  }

  /**
   * removevolume takes the disk of the same name out of the VM spec along with the volume; put
   * the (now empty) CD-ROM drive back so the slot exists for the next insert. Waits for KubeVirt
   * to process the volume request first.
   */
  private async keepCdromDrive(disk: Disk, index: number): Promise<void> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const vm = this.vmWatch.healthy ? this.vmWatch.current : await this.vmWatch.refresh().catch(() => undefined);
      if (vm && !volumeFor(vm, disk.name) && (vm.status?.volumeRequests ?? []).length === 0) {
        const disks = vm.spec?.template?.spec?.domain?.devices?.disks;
        if (!disks || disks.some((d) => d.name === disk.name)) return;
        const at = Math.max(0, Math.min(index, disks.length));
        const ops: JsonPatchOp[] = [
          { op: 'test', path: '/metadata/resourceVersion', value: vm.metadata?.resourceVersion ?? '' },
          { op: 'add', path: `/spec/template/spec/domain/devices/disks/${at}`, value: disk },
        ];
        try {
          const updated = await this.client.jsonPatch<VirtualMachine>(Resources.vm, this.ns, this.name, ops);
          if (updated?.metadata) this.vmWatch.offer(updated);
          return;
        } catch (e) {
          if (!(isKubeApiError(e, 409) || (isKubeApiError(e, 422) && (await this.vmMoved(vm))))) {
            throw this.mapError(e, 'restore the CD-ROM drive');
          }
        }
      }
      if (Date.now() > deadline) {
        throw new BackendError('Busy', 'KubeVirt has not processed the media removal yet; try again', { retryAfterSeconds: 2 });
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  /** Whether the VM changed since `seen` was read (a failed resourceVersion test). */
  private async vmMoved(seen: VirtualMachine): Promise<boolean> {
    const now = await this.vmWatch.refresh().catch(() => undefined);
    return !now || now.metadata?.resourceVersion !== seen.metadata?.resourceVersion;
  }

  private slots(v: View): MediaSlot[] {
    const s = deriveSlot(v.vm, v.dv, this.dvName, this.mediaError);
    return s ? [s] : [];
  }

  private mapError(e: unknown, what: string): BackendError {
    if (isKubeApiError(e, 404) && !(e.path.includes('/datavolumes') && e.method === 'POST')) {
      return new BackendError('NotFound', `${what}: VirtualMachine ${this.ns}/${this.name} not found`, { cause: e });
    }
    return toBackendError(e, what, this.logger);
  }

  /**
   * The current VM/VMI/DataVolume. From the watch caches while they are healthy (unless `fresh`),
   * else by direct GETs (the DataVolume only when `withMedia`). Throws NotFound when the VM does not exist, Unavailable when the API
   * cannot be reached.
   */
  private async view(fresh = false, withMedia = true): Promise<View> {
    if (this.closed) throw new BackendError('Unavailable', 'the KubeVirt backend is closed');
    try {
      const [vm, vmi, dv] = await Promise.all([
        !fresh && this.vmWatch.healthy ? this.vmWatch.current : this.vmWatch.refresh(),
        !fresh && this.vmiWatch.healthy ? this.vmiWatch.current : this.vmiWatch.refresh(),
        // CDI being absent must not make VM reads fail: the DataVolume read is best effort
        !withMedia || (!fresh && this.dvWatch.healthy) || this.dvWatch.missing
          ? this.dvWatch.current
          : this.dvWatch.refresh().catch(() => this.dvWatch.current),
      ]);
      if (!vm) throw new BackendError('NotFound', `VirtualMachine ${this.ns}/${this.name} not found`);
      return { vm, vmi, dv };
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
    const power = derivePowerState(vm, vmi);
    const boot = deriveBootOverride(vm);
    const slot = deriveSlot(vm, this.dvWatch.current, this.dvName, this.mediaError);
    const info = systemInfo(vm, vmi);
    const bootKey = JSON.stringify(boot);
    const mediaKey = JSON.stringify(slot ?? null);
    const infoKey = JSON.stringify(info);
    const out: MachineEvent[] = [];
    if (this.last.power !== undefined && this.last.power !== power) out.push({ type: 'power', from: this.last.power, to: power });
    if (this.last.boot !== undefined && this.last.boot !== bootKey) out.push({ type: 'boot', boot });
    if (this.last.media !== undefined && this.last.media !== mediaKey && slot) out.push({ type: 'media', slot });
    const changed =
      this.last.power !== power || this.last.boot !== bootKey || this.last.media !== mediaKey || this.last.info !== infoKey;
    this.last = { power, boot: bootKey, media: mediaKey, info: infoKey };

    // a VMI we have not seen running before has booted
    const runningUid = isVmiRunning(vmi) ? vmi!.metadata?.uid : undefined;
    if (runningUid && runningUid !== this.lastBootedUid) {
      if (this.bootedInitialised) out.push({ type: 'booted' });
      this.lastBootedUid = runningUid;
    }
    this.bootedInitialised = true;
    if (changed) this.generation++;
    for (const ev of out) this.emit(ev);

    const saved = parseSaved(vm);
    if (saved && runningUid && runningUid !== saved.vmiUid) void this.restoreOnce();
  }

  private emit(ev: MachineEvent): void {
    for (const l of this.events.listeners('event') as MachineListener[]) {
      try {
        l(ev);
      } catch (e) {
        this.logger.warn({ err: e instanceof Error ? e.message : String(e) }, 'machine listener threw');
      }
    }
  }

  /** The next VMI runs: put back the boot orders and firmware a boot-once override replaced. */
  private async restoreOnce(): Promise<void> {
    if (this.restoring || this.closed) return;
    this.restoring = true;
    try {
      for (let attempt = 0; attempt < WRITE_ATTEMPTS && !this.closed; attempt++) {
        const vm = await this.vmWatch.refresh();
        const saved = parseSaved(vm);
        const vmi = this.vmiWatch.current;
        const uid = isVmiRunning(vmi) ? vmi!.metadata?.uid : undefined;
        if (!vm || !saved || !uid || uid === saved.vmiUid) return;
        const ops = buildBootPatch(vm, { orders: saved.orders, bootloader: saved.bootloader, annotation: null });
        try {
          const updated = await this.client.jsonPatch<VirtualMachine>(Resources.vm, this.ns, this.name, ops);
          if (updated?.metadata) this.vmWatch.offer(updated);
          this.logger.info({ vmi: uid }, 'boot-once override consumed; previous boot order restored');
          return;
        } catch (e) {
          if (isKubeApiError(e, 409) || (isKubeApiError(e, 422) && (await this.vmMoved(vm)))) continue;
          throw e;
        }
      }
    } catch (e) {
      this.logger.warn({ err: e instanceof Error ? e.message : String(e) }, 'restoring the boot order after a boot-once failed; retrying');
      this.retryTimer = setTimeout(() => {
        this.retryTimer = undefined;
        this.changed();
      }, 2_000);
      this.retryTimer.unref();
    } finally {
      this.restoring = false;
    }
  }
}
