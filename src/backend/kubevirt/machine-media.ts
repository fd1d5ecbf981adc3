/**
 * The virtual media part of KubeVirtMachine: one slot per CD-ROM drive of the VM, one
 * single-object DataVolume watch per drive (fieldSelector metadata.name=<vm>-vmedia-<drive>, so an
 * RBAC rule with resourceNames can allow exactly it), created and stopped as drives appear and
 * disappear in the VM template. Insert and eject are JSON patches of spec.template.spec.volumes
 * (see media.ts for why not addvolume/removevolume).
 *
 * Detecting a cluster without declarative hotplug (the choice, and why):
 * - the VM webhook answers a patch that empties a drive with "DeclarativeHotplugVolumes feature
 *   gate not enabled, cannot define an empty CD-ROM disk" → Unsupported naming the gate;
 * - a running VMI that does not take our template volume into its spec or volumeStatus within
 *   hotplugSyncTimeoutMs (KubeVirt < 1.6, or the deprecated HotplugVolumes gate on, which switches
 *   declarative hotplug off: pkg/virt-controller/watch/vm/vm.go handleDeclarativeVolumeHotplug)
 *   → the slot goes to error with a message naming what the cluster needs.
 * Reading the KubeVirt CR's featureGates instead would need cluster-level RBAC the agent should not
 * have, and Beta gates are on without being listed there (pkg/virt-config/featuregate).
 */
import type { EgressPolicy } from '../egress.js';
import type { Logger } from '../../common/logger.js';
import { isKubeApiError, type KubeClient } from '../../kube/client.js';
import { Resources } from '../../kube/resources.js';
import { BackendError, type InsertMediaRequest, type MachineEvent, type MediaSlot, type MediaSlotId } from '../types.js';
import { validateImageUrl } from '../validate.js';
import { ownWatch, type ObjectSource, type ObjectSourceFactory } from './informer.js';
import {
  NEEDS_GATE_MESSAGE,
  cdromDrives,
  dataVolumeManifest,
  deriveDriveSlot,
  ejectVolumePatch,
  insertVolumePatch,
  mediaDataVolumeName,
  mediaSize,
  needsDeclarativeHotplug,
  probeImageSize,
  vmiHasVolume,
  vmiLive,
  volumeFor,
  type DriveLocalState,
  type MediaTlsOptions,
} from './media.js';
import type { DataVolume, Disk, VirtualMachine, VirtualMachineInstance } from './types.js';

const WRITE_ATTEMPTS = 5;

/**
 * The configuration the media part takes; KubeVirtMachineConfig (machine.ts) extends it with the
 * watch tuning only the machine uses, so each field is declared once.
 */
export interface MachineMediaConfig {
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
  /** Where image URLs may point (src/backend/egress.ts); default EgressPolicy.DEFAULT (no loopback, link-local, metadata) */
  mediaEgress?: EgressPolicy;
  /** how long a running VMI may take to pick up an inserted CD-ROM volume before the slot reports an error (ms), default 30000 */
  hotplugSyncTimeoutMs?: number;
  /**
   * Where the VM, VMI and media DataVolume views come from; default a watch of their own each
   * (informer.ts ObjectWatch). Shared mode passes one that shares a watch per namespace for the
   * VM and VMI (shared-informer.ts SharedWatches).
   */
  watchSource?: ObjectSourceFactory;
}

/** What the media part needs from its machine. */
export interface MediaHost {
  /** the current VM and VMI (fresh: direct GETs) */
  view(fresh: boolean): Promise<{ vm: VirtualMachine; vmi: VirtualMachineInstance | undefined }>;
  /** use our own write's answer as the newest VM */
  offerVm(vm: VirtualMachine): void;
  /** whether the VM changed since `seen` was read */
  vmMoved(seen: VirtualMachine): Promise<boolean>;
  mapError(e: unknown, what: string): BackendError;
  /** the media state changed: re-derive and emit */
  changed(): void;
}

interface Drive {
  dvName: string;
  watch: ObjectSource<DataVolume>;
}

export class MachineMedia {
  private readonly drives = new Map<string, Drive>();
  private readonly local = new Map<string, DriveLocalState>();
  /** drive → when our volume reached the template while a VMI was live (for the hotplug sync check) */
  /** runningSeen: the VMI was Running at the patch or at the previous check (see watchSync). */
  private readonly patchedAt = new Map<string, { vmiUid: string | undefined; timer: NodeJS.Timeout; expired: boolean; runningSeen: boolean }>();
  private last = new Map<string, string>();
  private initialised = false;
  private stopped = false;

  constructor(
    private readonly cfg: MachineMediaConfig,
    private readonly host: MediaHost,
  ) {}

  /** Start a DataVolume watch for every CD-ROM drive `vm` declares, stop those of drives gone. */
  syncDrives(vm: VirtualMachine | undefined): void {
    if (this.stopped || !vm) return;
    const want = new Set(cdromDrives(vm).map((d) => d.name));
    for (const [name, d] of this.drives) {
      if (!want.has(name)) {
        void d.watch.stop();
        this.drives.delete(name);
        this.local.delete(name);
      }
    }
    for (const name of want) {
      if (this.drives.has(name)) continue;
      const dvName = mediaDataVolumeName(this.cfg.name, name);
      const watch = (this.cfg.watchSource ?? ownWatch)<DataVolume>({
        client: this.cfg.client,
        logger: this.cfg.logger,
        name: dvName,
        kind: 'DataVolume',
        resource: Resources.dataVolume,
        namespace: this.cfg.namespace,
        ...(this.cfg.watchMinBackoffMs !== undefined ? { minBackoffMs: this.cfg.watchMinBackoffMs } : {}),
        // CDI may be absent: retry slowly then
        maxBackoffMs: Math.max(this.cfg.watchMaxBackoffMs ?? 10_000, 30_000),
        onChange: () => this.host.changed(),
      });
      this.drives.set(name, { dvName, watch });
      watch.start();
    }
  }

  /** Wait (up to timeoutMs) for the first lists of the DataVolume watches. */
  async waitSynced(timeoutMs: number): Promise<void> {
    await Promise.all([...this.drives.values()].map((d) => d.watch.waitSynced(timeoutMs)));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const p of this.patchedAt.values()) clearTimeout(p.timer);
    this.patchedAt.clear();
    await Promise.all([...this.drives.values()].map((d) => d.watch.stop()));
    this.drives.clear();
  }

  /** The slots from the caches (and `dvs` where given). */
  slots(vm: VirtualMachine, vmi: VirtualMachineInstance | undefined, dvs?: Map<string, DataVolume | undefined>): MediaSlot[] {
    return cdromDrives(vm).map((d) => {
      const dvName = mediaDataVolumeName(this.cfg.name, d.name);
      const dv = dvs ? dvs.get(d.name) : this.drives.get(d.name)?.watch.current;
      return deriveDriveSlot(d, vm, vmi, dv, dvName, this.localOf(d.name, vmi));
    });
  }

  /**
   * The DataVolumes of all drives: from the watch caches while healthy (unless `fresh`), else by
   * direct GETs. Best effort: CDI being absent or unreachable must not make VM reads fail.
   */
  async dataVolumes(vm: VirtualMachine, fresh: boolean): Promise<Map<string, DataVolume | undefined>> {
    this.syncDrives(vm);
    const out = new Map<string, DataVolume | undefined>();
    await Promise.all(
      cdromDrives(vm).map(async (d) => {
        const w = this.drives.get(d.name)?.watch;
        if (!w) return;
        const dv = (!fresh && w.healthy) || w.missing ? w.current : await w.refresh().catch(() => w.current);
        out.set(d.name, dv);
      }),
    );
    return out;
  }

  /** Media events for the slots that changed since the last call (none on the first call). */
  diff(vm: VirtualMachine, vmi: VirtualMachineInstance | undefined): { events: MachineEvent[]; changed: boolean } {
    this.syncDrives(vm);
    const next = new Map<string, string>();
    const events: MachineEvent[] = [];
    let changed = false;
    for (const slot of this.slots(vm, vmi)) {
      const key = JSON.stringify(slot);
      next.set(slot.id, key);
      if (this.last.get(slot.id) !== key) {
        changed = true;
        if (this.initialised) events.push({ type: 'media', slot });
      }
    }
    if (next.size !== this.last.size) changed = true;
    this.last = next;
    this.initialised = true;
    return { events, changed };
  }

  async list(): Promise<MediaSlot[]> {
    const v = await this.host.view(false);
    return this.slots(v.vm, v.vmi, await this.dataVolumes(v.vm, false));
  }

  async insert(slotId: MediaSlotId, req: InsertMediaRequest): Promise<MediaSlot> {
    // validateImageUrl refuses credentials: CDI takes them from a Secret, never from the URL
    const url = validateImageUrl(req.image);
    if (req.writeProtected === false) throw new BackendError('InvalidArgument', 'CD-ROM media is always write-protected');
    const v = await this.host.view(true);
    const drive = this.driveOf(v.vm, slotId);
    const dvName = mediaDataVolumeName(this.cfg.name, drive.name);
    const dvs = await this.dataVolumes(v.vm, true);
    // check and claim the drive with no await in between: one insert or eject per drive at a time
    this.claim(drive.name);
    const slot = this.slots(v.vm, v.vmi, dvs).find((s) => s.id === drive.name)!;
    if (slot.state === 'inserting' || slot.state === 'inserted') {
      throw new BackendError('Conflict', `CD-ROM ${drive.name} already holds ${slot.image ?? 'a volume'}; eject it first`);
    }
    this.setLocal(drive.name, { busy: 'inserting' });
    try {
      // a failed earlier insert: clean up first
      if (slot.state === 'error') await this.clear(drive, dvName, dvs.get(drive.name));
      const tls = this.cfg.mediaTls ?? {};
      const size = mediaSize(
        await probeImageSize(url, {
          ...(this.cfg.mediaProbeTimeoutMs !== undefined ? { timeoutMs: this.cfg.mediaProbeTimeoutMs } : {}),
          tls,
          ...(this.cfg.mediaEgress ? { egress: this.cfg.mediaEgress } : {}),
        }),
      );
      const manifest = dataVolumeManifest({
        namespace: this.cfg.namespace,
        vm: v.vm,
        dvName,
        url: url.href,
        size,
        ...(this.cfg.storageClassName ? { storageClassName: this.cfg.storageClassName } : {}),
        ...(this.cfg.volumeMode ? { volumeMode: this.cfg.volumeMode } : {}),
        ...(tls.caConfigMap ? { certConfigMap: tls.caConfigMap } : {}),
      });
      let created: DataVolume;
      try {
        created = await this.cfg.client.create<DataVolume>(Resources.dataVolume, this.cfg.namespace, manifest);
      } catch (e) {
        if (isKubeApiError(e, 404)) {
          throw new BackendError('Unsupported', 'CDI is not installed (the cdi.kubevirt.io DataVolume API was not found); virtual media needs CDI');
        }
        if (isKubeApiError(e, 409)) throw new BackendError('Conflict', `a media DataVolume for CD-ROM ${drive.name} already exists; eject first`);
        throw this.host.mapError(e, 'create media DataVolume');
      }
      this.drives.get(drive.name)?.watch.offer(created);
      try {
        await this.loadVolume(drive, dvName);
      } catch (e) {
        // undo the import so nothing is left behind, then report why
        await this.cfg.client.delete(Resources.dataVolume, this.cfg.namespace, dvName).catch(() => undefined);
        await this.drives.get(drive.name)?.watch.refresh().catch(() => undefined);
        throw e;
      }
      // without the query: a pre-signed image URL carries its access token there
      this.cfg.logger.info({ image: url.origin + url.pathname, size, dataVolume: dvName, drive: drive.name }, 'virtual media inserted');
    } finally {
      this.setLocal(drive.name, { busy: undefined });
    }
    const after = await this.host.view(true).catch(() => undefined);
    if (!after) return { ...slot, state: 'inserting', image: url.href, progress: 0 };
    return this.slots(after.vm, after.vmi, await this.dataVolumes(after.vm, false)).find((s) => s.id === drive.name) ?? { ...slot, state: 'inserting', image: url.href, progress: 0 };
  }

  async eject(slotId: MediaSlotId): Promise<MediaSlot> {
    const v = await this.host.view(true);
    const drive = this.driveOf(v.vm, slotId);
    const dvName = mediaDataVolumeName(this.cfg.name, drive.name);
    const dvs = await this.dataVolumes(v.vm, true);
    this.claim(drive.name);
    const slot = this.slots(v.vm, v.vmi, dvs).find((s) => s.id === drive.name)!;
    if (slot.state === 'empty') return slot;
    const vol = volumeFor(v.vm, drive.name);
    if (vol && vol.dataVolume?.name !== dvName) {
      throw new BackendError('Conflict', `CD-ROM ${drive.name} holds volume ${vol.name}, which the BMC did not insert; it cannot eject it`);
    }
    this.setLocal(drive.name, { busy: 'ejecting' });
    try {
      await this.clear(drive, dvName, dvs.get(drive.name));
    } finally {
      this.setLocal(drive.name, { busy: undefined });
    }
    this.cfg.logger.info({ dataVolume: dvName, drive: drive.name }, 'virtual media ejected');
    const after = await this.host.view(true);
    return this.slots(after.vm, after.vmi, await this.dataVolumes(after.vm, true)).find((s) => s.id === drive.name) ?? { ...slot, state: 'empty' };
  }

  // ---- internals -----------------------------------------------------------------------------

  private driveOf(vm: VirtualMachine, slotId: MediaSlotId): Disk {
    const drives = cdromDrives(vm);
    const d = drives.find((x) => x.name === slotId);
    if (d) return d;
    if (drives.length === 0) {
      throw new BackendError(
        'NotFound',
        `no virtual media slot ${String(slotId)}: the VM declares no CD-ROM drive (add a disk with cdrom to spec.template.spec.domain.devices.disks)`,
      );
    }
    throw new BackendError('NotFound', `no virtual media slot ${String(slotId)}; the VM's CD-ROM drives are: ${drives.map((x) => x.name).join(', ')}`);
  }

  /** Busy while an insert or eject of ours runs on the drive (checked right before it is set). */
  private claim(drive: string): void {
    if (this.local.get(drive)?.busy) {
      throw new BackendError('Busy', `CD-ROM ${drive} is being changed; try again`, { retryAfterSeconds: 1 });
    }
  }

  private localOf(drive: string, vmi: VirtualMachineInstance | undefined): DriveLocalState {
    const l = this.local.get(drive) ?? {};
    const p = this.patchedAt.get(drive);
    // set when the timer fires, so reads and the media event agree on the moment
    const notSynced = !!p && p.expired && vmiLive(vmi) && vmi?.metadata?.uid === p.vmiUid;
    return notSynced ? { ...l, notSynced } : l;
  }

  private setLocal(drive: string, change: Partial<DriveLocalState>): void {
    const next = { ...(this.local.get(drive) ?? {}), ...change };
    for (const k of Object.keys(next) as (keyof DriveLocalState)[]) if (next[k] === undefined) delete next[k];
    if (Object.keys(next).length === 0) this.local.delete(drive);
    else this.local.set(drive, next);
    this.host.changed();
  }

  private syncTimeout(): number {
    return this.cfg.hotplugSyncTimeoutMs ?? 30_000;
  }

  /** Add our volume to the template (resourceVersion-guarded JSON patch, retried when the VM moved). */
  private async loadVolume(drive: Disk, dvName: string): Promise<void> {
    for (let attempt = 0; attempt < WRITE_ATTEMPTS; attempt++) {
      const { vm, vmi } = await this.host.view(true);
      if (!cdromDrives(vm).some((d) => d.name === drive.name)) {
        throw new BackendError('NotFound', `CD-ROM drive ${drive.name} was removed from the VM`);
      }
      const vol = volumeFor(vm, drive.name);
      if (vol?.dataVolume?.name === dvName) return;
      if (vol) throw new BackendError('Conflict', `CD-ROM ${drive.name} meanwhile holds volume ${vol.name}; eject it first`);
      try {
        const updated = await this.cfg.client.jsonPatch<VirtualMachine>(Resources.vm, this.cfg.namespace, this.cfg.name, insertVolumePatch(vm, drive.name, dvName));
        if (updated?.metadata) this.host.offerVm(updated);
        if (vmiLive(vmi) && !vmiHasVolume(vmi, drive.name)) this.watchSync(drive.name, vmi?.metadata?.uid, vmi?.status?.phase === 'Running');
        return;
      } catch (e) {
        if (isKubeApiError(e, 409)) continue;
        // 422 is both "the resourceVersion test failed" and "the webhook refused": only the
        // former is worth a retry, and it shows as a moved resourceVersion
        if (isKubeApiError(e, 422) && (await this.host.vmMoved(vm))) continue;
        throw this.patchError(e, drive, 'load the CD-ROM drive');
      }
    }
    throw new BackendError('Busy', 'the VM kept changing while loading the CD-ROM drive; try again', { retryAfterSeconds: 1 });
  }

  /** Remove our volume from the template (never the disk), then delete our DataVolume. */
  private async clear(drive: Disk, dvName: string, dv: DataVolume | undefined): Promise<void> {
    this.unwatchSync(drive.name);
    for (let attempt = 0; ; attempt++) {
      if (attempt >= WRITE_ATTEMPTS) {
        throw new BackendError('Busy', 'the VM kept changing while emptying the CD-ROM drive; try again', { retryAfterSeconds: 1 });
      }
      const { vm } = await this.host.view(true);
      const ops = ejectVolumePatch(vm, drive.name, dvName);
      if (!ops) break;
      try {
        const updated = await this.cfg.client.jsonPatch<VirtualMachine>(Resources.vm, this.cfg.namespace, this.cfg.name, ops);
        if (updated?.metadata) this.host.offerVm(updated);
        break;
      } catch (e) {
        if (isKubeApiError(e, 409)) continue;
        // a failed test op (the volume list moved under us) is a 422 too: re-read, retry
        if (isKubeApiError(e, 422) && (await this.host.vmMoved(vm))) continue;
        throw this.patchError(e, drive, 'empty the CD-ROM drive');
      }
    }
    if (dv || this.drives.get(drive.name)?.watch.current) {
      try {
        await this.cfg.client.delete(Resources.dataVolume, this.cfg.namespace, dvName);
      } catch (e) {
        if (!isKubeApiError(e, 404)) throw this.host.mapError(e, 'delete media DataVolume');
      }
      // the cache follows at once (not only when the watch event arrives)
      await this.drives.get(drive.name)?.watch.refresh().catch(() => undefined);
    }
    // an earlier error is cleared; a busy mark is the caller's to lift
    const l = this.local.get(drive.name);
    if (l?.error !== undefined) this.setLocal(drive.name, { error: undefined });
  }

  private patchError(e: unknown, drive: Disk, what: string): BackendError {
    if (isKubeApiError(e, 422) || isKubeApiError(e, 400)) {
      if (needsDeclarativeHotplug(e.kubeMessage)) {
        return new BackendError('Unsupported', `cannot ${what} ${drive.name}: ${NEEDS_GATE_MESSAGE} (KubeVirt answered: ${e.kubeMessage})`, { cause: e });
      }
      return new BackendError('Conflict', `KubeVirt refused to ${what} ${drive.name}: ${e.kubeMessage}`, { cause: e });
    }
    return this.host.mapError(e, what);
  }

  /**
   * Our volume reached the template of a live VMI: if the VMI has not taken it in time, say why.
   * The time counts while that VMI runs: KubeVirt syncs template volumes into a running VMI only
   * (pkg/storage/hotplug/hotplug.go patchHotplugVolumes: `vmi == nil || !vmi.IsRunning()` → nothing),
   * so a VMI still scheduling or pulling images is not a cluster without declarative hotplug.
   * The VMI must be Running at two checks a full timeout apart (the patch counts as a check), so it
   * has had at least one whole timeout of running time: a VMI that turned Running just before a
   * check is given another timeout rather than judged on the last few milliseconds.
   */
  private watchSync(drive: string, vmiUid: string | undefined, running: boolean): void {
    this.unwatchSync(drive);
    const arm = (): NodeJS.Timeout => {
      const timer = setTimeout(() => {
        const p = this.patchedAt.get(drive);
        if (this.stopped || !p || p.timer !== timer) return;
        void this.host
          .view(false)
          .then(({ vmi }) => {
            const cur = this.patchedAt.get(drive);
            if (this.stopped || cur !== p || p.timer !== timer) return;
            const sameVmi = vmiLive(vmi) && vmi?.metadata?.uid === p.vmiUid;
            if (sameVmi && !vmiHasVolume(vmi, drive) && !(p.runningSeen && vmi?.status?.phase === 'Running')) {
              // not running yet, or only since this interval: KubeVirt has not had its whole chance
              p.runningSeen = vmi?.status?.phase === 'Running';
              p.timer = arm();
              return;
            }
            p.expired = true;
            this.host.changed();
            if (vmiLive(vmi) && !vmiHasVolume(vmi, drive)) {
              this.cfg.logger.warn({ drive }, 'the running VM has not picked up the inserted CD-ROM volume: the cluster lacks declarative hotplug');
            }
          })
          .catch(() => {
            // no current view: decide at the next check
            if (!this.stopped && this.patchedAt.get(drive) === p && p.timer === timer) p.timer = arm();
          });
      }, this.syncTimeout());
      timer.unref();
      return timer;
    };
    this.patchedAt.set(drive, { vmiUid, timer: arm(), expired: false, runningSeen: running });
  }

  private unwatchSync(drive: string): void {
    const p = this.patchedAt.get(drive);
    if (p) clearTimeout(p.timer);
    this.patchedAt.delete(drive);
  }
}
