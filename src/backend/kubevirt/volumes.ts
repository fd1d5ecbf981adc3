/**
 * Volumes created over Redfish on a KubeVirt VM: a blank CDI DataVolume (`spec.source.blank`,
 * `spec.storage` with the requested size rounded up to a whole MiB, the storage class and volume
 * mode of `--storage-class` / `--volume-mode` or the cluster default) and, in the VM spec, a virtio
 * disk and a `dataVolume` volume of that name. KubeVirt builds the domain when a VMI starts, and
 * a virtio disk cannot be hot-plugged, so the guest gets the disk at the VM's next start.
 *
 * Names (src/kube/names.ts): slot n is the disk/volume `bmc-volume-<n>` backed by the DataVolume
 * `<vm>-bmc-volume-<n>`, n = 1..MAX_BMC_VOLUMES. A volume is ours only when the VM spec has that
 * disk AND that volume pointing at that DataVolume AND the DataVolume carries our managed-by
 * label: a user's own disk of any name is never listed, changed or deleted.
 *
 * Writes are JSON patches guarded by the VM's resourceVersion (re-read and retried when it moved).
 * A create makes the DataVolume first, then patches the VM. The DataVolume carries the create's
 * request id (annotation VOLUME_REQUEST_ANNOTATION: the Redfish retry token, else a random one) and
 * an owner reference to the VM (uid), so a DataVolume left between the two steps (the patch failed
 * and so did the rollback, or the agent died) is never lost:
 * - a retry of the same request (same requestId) finds it: the volume when the patch had landed
 *   (the answer is given again), else it attaches it (adopts it) while it is young;
 * - otherwise the sweep deletes it once it is ORPHAN_GRACE_MS old and neither the VM template nor
 *   the VMI uses it: at every create, a while after start, and again after each sweep that saw a
 *   younger one or could not delete one. A create in flight attaches only within
 *   ATTACH_DEADLINE_MS of making its DataVolume, and adoption only takes one younger than
 *   ORPHAN_GRACE_MS - ATTACH_DEADLINE_MS, so no patch can attach what a sweep (of this agent or
 *   another, e.g. during a rollout) deletes.
 * The sweep only touches DataVolumes named for a slot of this VM that carry our label AND the
 * request annotation AND an owner reference with the VM's uid: a user's DataVolume (or one of
 * another VM, or one an older agent made without the annotation) is never deleted. A DataVolume
 * name already taken (409, or seen when the create reads the slots) is skipped: the agent never
 * overwrites a DataVolume. Reads are by name (the Role's get/delete on the slot names): no list.
 */
import { randomUUID } from 'node:crypto';
import { mapBounded } from '../../common/bounded.js';
import type { Logger } from '../../common/logger.js';
import { isKubeApiError, type JsonPatchOp, type KubeClient } from '../../kube/client.js';
import { MAX_BMC_VOLUMES, bmcVolumeDataVolumeName, bmcVolumeDiskName } from '../../kube/names.js';
import { Resources } from '../../kube/resources.js';
import { BackendError, type CreateVolumeRequest, type VolumeInfo, type VolumeState } from '../types.js';
import { validateVolumeRequest } from '../validate.js';
import { parseQuantity } from './identity.js';
import { MANAGED_BY_LABEL, dataVolumeError, ownedDataVolume } from './media.js';
import { isVmiRunning } from './power.js';
import type { DataVolume, Disk, VirtualMachine, VirtualMachineInstance, Volume } from './types.js';

/** The display name given at creation (Redfish Volume Name). */
export const VOLUME_NAME_ANNOTATION = 'bmc.kubevirt.io/volume-name';
/** The request that made a volume DataVolume (CreateVolumeRequest.requestId, else random): what a retry looks for, and the sweep's mark. */
export const VOLUME_REQUEST_ANNOTATION = 'bmc.kubevirt.io/volume-request';
/** A volume DataVolume of ours that the VM does not use is deleted once it is this old (by its creationTimestamp). */
export const ORPHAN_GRACE_MS = 5 * 60_000;
/** A create patches the VM only this long after making its DataVolume (then it gives up and rolls back). */
export const ATTACH_DEADLINE_MS = 60_000;
/** DataVolume GETs in flight at once per operation (8 slots at most) */
export const READ_CONCURRENCY = 4;
/** After a sweep could not finish (API errors), try again this much later */
const SWEEP_RETRY_MS = 30_000;
const WRITE_ATTEMPTS = 5;
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/** A whole-MiB byte count as Kubernetes prints a BinarySI quantity: "10Gi", "1536Mi". */
export function storageQuantity(bytes: number): string {
  if (bytes % GiB === 0) return `${bytes / GiB}Gi`;
  return `${Math.ceil(bytes / MiB)}Mi`;
}

export interface VolumeSlot {
  slot: number;
  disk: string;
  dvName: string;
}

/** The slots of the VM spec that hold one of our volumes (disk + volume naming our DataVolume). */
export function ourSlots(vm: VirtualMachine): VolumeSlot[] {
  const vmName = vm.metadata?.name ?? '';
  const spec = vm.spec?.template?.spec;
  const disks = spec?.domain?.devices?.disks ?? [];
  const vols = spec?.volumes ?? [];
  const out: VolumeSlot[] = [];
  for (let slot = 1; slot <= MAX_BMC_VOLUMES; slot++) {
    const disk = bmcVolumeDiskName(slot);
    const dvName = bmcVolumeDataVolumeName(vmName, slot);
    if (disks.some((d) => d.name === disk) && vols.some((v) => v.name === disk && v.dataVolume?.name === dvName)) out.push({ slot, disk, dvName });
  }
  return out;
}

/** The slots whose disk/volume name the VM spec does not use, lowest first (empty when all are taken). */
export function freeSlots(vm: VirtualMachine): number[] {
  const spec = vm.spec?.template?.spec;
  const used = new Set([...(spec?.domain?.devices?.disks ?? []).map((d) => d.name), ...(spec?.volumes ?? []).map((v) => v.name)]);
  const out: number[] = [];
  for (let slot = 1; slot <= MAX_BMC_VOLUMES; slot++) if (!used.has(bmcVolumeDiskName(slot))) out.push(slot);
  return out;
}

export interface VolumeManifestOptions {
  namespace: string;
  vm: VirtualMachine;
  dvName: string;
  bytes: number;
  /** the create's request id (VOLUME_REQUEST_ANNOTATION) */
  request: string;
  name?: string;
  storageClassName?: string;
  volumeMode?: 'Filesystem' | 'Block';
}

/** The blank DataVolume of a new volume, owned by the VM (deleting the VM cleans it up). */
export function volumeDataVolumeManifest(o: VolumeManifestOptions): DataVolume & { apiVersion: string; kind: string } {
  const annotations: Record<string, string> = { [VOLUME_REQUEST_ANNOTATION]: o.request };
  if (o.name !== undefined) annotations[VOLUME_NAME_ANNOTATION] = o.name;
  return ownedDataVolume(o, annotations, { blank: {} }, storageQuantity(o.bytes));
}

/** JSON patch adding our disk and volume to the VM template, guarded by the resourceVersion read. */
export function addVolumePatch(vm: VirtualMachine, disk: string, dvName: string): JsonPatchOp[] {
  const ops: JsonPatchOp[] = [{ op: 'test', path: '/metadata/resourceVersion', value: vm.metadata?.resourceVersion ?? '' }];
  const spec = vm.spec?.template?.spec;
  const d: Disk = { name: disk, disk: { bus: 'virtio' } };
  const v: Volume = { name: disk, dataVolume: { name: dvName } };
  if (!spec?.domain?.devices) ops.push({ op: 'add', path: '/spec/template/spec/domain/devices', value: { disks: [d] } });
  else if (!spec.domain.devices.disks) ops.push({ op: 'add', path: '/spec/template/spec/domain/devices/disks', value: [d] });
  else ops.push({ op: 'add', path: '/spec/template/spec/domain/devices/disks/-', value: d });
  ops.push(spec?.volumes ? { op: 'add', path: '/spec/template/spec/volumes/-', value: v } : { op: 'add', path: '/spec/template/spec/volumes', value: [v] });
  return ops;
}

/** JSON patch removing exactly our disk and volume (each tested by index and name first). */
export function removeVolumePatch(vm: VirtualMachine, disk: string, dvName: string): JsonPatchOp[] | undefined {
  const spec = vm.spec?.template?.spec;
  const di = (spec?.domain?.devices?.disks ?? []).findIndex((d) => d.name === disk);
  const vi = (spec?.volumes ?? []).findIndex((v) => v.name === disk && v.dataVolume?.name === dvName);
  if (di < 0 || vi < 0) return undefined;
  return [
    { op: 'test', path: `/spec/template/spec/domain/devices/disks/${di}/name`, value: disk },
    { op: 'test', path: `/spec/template/spec/volumes/${vi}/name`, value: disk },
    { op: 'test', path: `/spec/template/spec/volumes/${vi}/dataVolume/name`, value: dvName },
    { op: 'remove', path: `/spec/template/spec/domain/devices/disks/${di}` },
    { op: 'remove', path: `/spec/template/spec/volumes/${vi}` },
  ];
}

/** Whether a DataVolume is one this agent made (its managed-by label). */
export const isOurs = (dv: DataVolume | undefined): dv is DataVolume => dv?.metadata?.labels?.[MANAGED_BY_LABEL] === 'virtbmc';

/**
 * Whether `dv` is a volume DataVolume this agent made for this very VM: our label, the request
 * annotation, and an owner reference with the VM's uid (a VM deleted and made again under the same
 * name has another uid). Only these are ever adopted or swept.
 */
export function isOurVolumeDataVolume(dv: DataVolume | undefined, vm: VirtualMachine): dv is DataVolume {
  const uid = vm.metadata?.uid;
  if (!isOurs(dv) || !uid || dv.metadata?.annotations?.[VOLUME_REQUEST_ANNOTATION] === undefined) return false;
  return (dv.metadata.ownerReferences ?? []).some((r) => r.kind === 'VirtualMachine' && r.uid === uid);
}

/** The DataVolume / claim names the VM (template and dataVolumeTemplates) and the VMI use. */
export function namesInUse(vm: VirtualMachine, vmi: VirtualMachineInstance | undefined): Set<string> {
  const names = new Set<string>();
  for (const v of [...(vm.spec?.template?.spec?.volumes ?? []), ...(vmi?.spec?.volumes ?? [])]) {
    if (v.dataVolume?.name) names.add(v.dataVolume.name);
    if (v.persistentVolumeClaim?.claimName) names.add(v.persistentVolumeClaim.claimName);
  }
  for (const t of vm.spec?.dataVolumeTemplates ?? []) if (t.metadata?.name) names.add(t.metadata.name);
  return names;
}

/** How old a DataVolume is (ms, by its creationTimestamp); undefined when it has none readable. */
function ageOf(dv: DataVolume, now: number): number | undefined {
  const t = Date.parse(dv.metadata?.creationTimestamp ?? '');
  return Number.isFinite(t) ? now - t : undefined;
}

/**
 * What the sweep does with a slot's DataVolume: `keep` (none, not one of our volume DataVolumes,
 * used by the VM or its VMI, already being deleted, or of unknown age), `wait` ms until it is
 * ORPHAN_GRACE_MS old, or `delete`.
 */
export function orphanAction(dv: DataVolume | undefined, vm: VirtualMachine, vmi: VirtualMachineInstance | undefined, now: number): { kind: 'keep' } | { kind: 'wait'; ms: number } | { kind: 'delete' } {
  if (!isOurVolumeDataVolume(dv, vm) || dv.metadata?.deletionTimestamp || namesInUse(vm, vmi).has(dv.metadata?.name ?? '')) return { kind: 'keep' };
  const age = ageOf(dv, now);
  if (age === undefined) return { kind: 'keep' };
  return age >= ORPHAN_GRACE_MS ? { kind: 'delete' } : { kind: 'wait', ms: ORPHAN_GRACE_MS - age };
}

/** One slot's DataVolume as read by name: `dv` undefined when there is none; `known` false when the read failed. */
interface SlotRead {
  slot: number;
  dvName: string;
  dv: DataVolume | undefined;
  known: boolean;
}

/** The seam's view of one volume, from the VM slot, its DataVolume and the running VMI. */
export function volumeInfo(s: VolumeSlot, dv: DataVolume | undefined, vmi: VirtualMachineInstance | undefined): VolumeInfo {
  const requested = parseQuantity((dv?.spec?.storage as { resources?: { requests?: Record<string, string> } } | undefined)?.resources?.requests?.storage);
  const status = vmi?.status?.volumeStatus?.find((v) => v.name === s.disk);
  const reported = parseQuantity(status?.persistentVolumeClaimInfo?.capacity?.storage);
  // the running instance has it (a finished VMI kept under Manual/RerunOnFailure is no running guest)
  const attached = isVmiRunning(vmi) && (vmi!.spec?.volumes ?? []).some((v) => v.name === s.disk && v.dataVolume?.name === s.dvName);
  let state: VolumeState;
  let error: string | undefined;
  const phase = dv?.status?.phase;
  if (!dv) {
    state = 'error';
    error = `DataVolume ${s.dvName} is missing`;
  } else if ((error = dataVolumeError(dv)) !== undefined || phase === 'Failed') {
    state = 'error';
    error ??= `DataVolume ${s.dvName} failed`;
  } else if (phase === 'Succeeded') state = 'ready';
  else if (phase === 'WaitForFirstConsumer' || phase === 'PendingPopulation') state = 'waiting';
  else state = 'provisioning';
  return {
    id: s.disk,
    name: dv?.metadata?.annotations?.[VOLUME_NAME_ANNOTATION] ?? s.disk,
    capacityBytes: Number.isFinite(reported) ? reported : Number.isFinite(requested) ? requested : 0,
    state,
    attached,
    ...(error !== undefined ? { error } : {}),
    backing: `DataVolume ${s.dvName}`,
    ...(dv?.metadata?.annotations?.[VOLUME_REQUEST_ANNOTATION] !== undefined ? { requestId: dv.metadata.annotations[VOLUME_REQUEST_ANNOTATION] } : {}),
  };
}

export interface MachineVolumesDeps {
  client: KubeClient;
  namespace: string;
  logger: Logger;
  storageClassName?: string | undefined;
  volumeMode?: 'Filesystem' | 'Block' | undefined;
  /** The VM and VMI (fresh: read from the API server, not the watch caches) */
  view(fresh: boolean): Promise<{ vm: VirtualMachine; vmi: VirtualMachineInstance | undefined }>;
  offerVm(vm: VirtualMachine): void;
  vmMoved(seen: VirtualMachine): Promise<boolean>;
  mapError(e: unknown, what: string): BackendError;
  /** the wall clock the orphan grace is measured on (ms since the epoch, like creationTimestamp); default Date.now */
  now?: () => number;
}

export class MachineVolumes {
  private readonly now: () => number;
  /** DataVolumes this process made (or adopts) and is attaching right now: never swept */
  private readonly attaching = new Set<string>();
  private sweepTimer: NodeJS.Timeout | undefined;
  private sweepAt = Infinity;
  private closed = false;

  constructor(private readonly d: MachineVolumesDeps) {
    this.now = d.now ?? Date.now;
  }

  async list(): Promise<VolumeInfo[]> {
    const { vm, vmi } = await this.d.view(false);
    const slots = ourSlots(vm);
    const dvs = await mapBounded(slots, READ_CONCURRENCY, (s) => this.dataVolume(s.dvName));
    const out: VolumeInfo[] = [];
    slots.forEach((s, i) => {
      const dv = dvs[i];
      // a DataVolume of that name that someone else made is not ours: its slot is no volume here
      if (dv && !isOurs(dv)) return;
      out.push(volumeInfo(s, dv, vmi));
    });
    return out;
  }

  async create(req: CreateVolumeRequest): Promise<VolumeInfo> {
    const bytes = validateVolumeRequest(req);
    let { vm, vmi } = await this.d.view(true);
    const reads = await this.readSlots(vm);
    if (req.requestId !== undefined) {
      const found = await this.resume(vm, vmi, reads, req.requestId);
      if (found) return found;
    }
    const freed = await this.sweepSlots(vm, vmi, reads);
    // a slot whose DataVolume name is taken (a user's, or one of ours still in its grace) is skipped
    const skipped = new Set<number>(reads.filter((r) => r.dv && !freed.has(r.slot)).map((r) => r.slot));
    const request = req.requestId ?? randomUUID();
    for (let attempt = 0; attempt < WRITE_ATTEMPTS + MAX_BMC_VOLUMES; attempt++) {
      const slot = freeSlots(vm).find((n) => !skipped.has(n));
      if (slot === undefined) throw new BackendError('Conflict', `the VM has no free volume slot (at most ${MAX_BMC_VOLUMES} volumes are created through the BMC)`);
      const disk = bmcVolumeDiskName(slot);
      const dvName = bmcVolumeDataVolumeName(vm.metadata?.name ?? '', slot);
      const manifest = volumeDataVolumeManifest({
        namespace: this.d.namespace,
        vm,
        dvName,
        bytes,
        request,
        ...(req.name !== undefined ? { name: req.name } : {}),
        ...(this.d.storageClassName ? { storageClassName: this.d.storageClassName } : {}),
        ...(this.d.volumeMode ? { volumeMode: this.d.volumeMode } : {}),
      });
      let dv: DataVolume;
      try {
        dv = await this.d.client.create<DataVolume>(Resources.dataVolume, this.d.namespace, manifest);
      } catch (e) {
        if (isKubeApiError(e, 409)) {
          skipped.add(slot); // a DataVolume of this name exists (not one we just made): leave it alone
          continue;
        }
        throw this.d.mapError(e, 'create the volume DataVolume');
      }
      this.d.logger.info({ dataVolume: dvName, storage: storageQuantity(bytes) }, 'volume DataVolume created');
      this.attaching.add(dvName);
      try {
        vm = await this.attach(vm, disk, dvName, this.now());
      } catch (e) {
        if (!(await this.rollBack(dv, dvName))) throw e;
        // the patch landed although its answer was an error (e.g. lost on the way): the volume is made
        vm = (await this.d.view(true)).vm;
      } finally {
        this.attaching.delete(dvName);
      }
      this.d.logger.info({ disk, dataVolume: dvName }, 'volume added to the VM spec (applies at the next start)');
      ({ vmi } = await this.d.view(false));
      return volumeInfo({ slot, disk, dvName }, dv, vmi);
    }
    throw new BackendError('Busy', 'the VM kept changing while adding the volume; try again', { retryAfterSeconds: 1 });
  }

  async delete(id: string): Promise<void> {
    for (let attempt = 0; attempt < WRITE_ATTEMPTS; attempt++) {
      const { vm } = await this.d.view(true);
      const s = ourSlots(vm).find((x) => x.disk === id);
      const dv = s ? await this.dataVolume(s.dvName) : undefined;
      if (!s || (dv && !isOurs(dv))) throw new BackendError('NotFound', `no volume ${id} was created by the BMC`);
      const ops = removeVolumePatch(vm, s.disk, s.dvName);
      if (!ops) throw new BackendError('NotFound', `no volume ${id} was created by the BMC`);
      try {
        const updated = await this.d.client.jsonPatch<VirtualMachine>(Resources.vm, this.d.namespace, vm.metadata?.name ?? '', [
          { op: 'test', path: '/metadata/resourceVersion', value: vm.metadata?.resourceVersion ?? '' },
          ...ops,
        ]);
        if (updated?.metadata) this.d.offerVm(updated);
      } catch (e) {
        if (isKubeApiError(e, 409)) continue;
        if (isKubeApiError(e, 422) && (await this.d.vmMoved(vm))) continue;
        throw this.d.mapError(e, 'remove the volume from the VM');
      }
      if (dv) {
        try {
          await this.d.client.delete(Resources.dataVolume, this.d.namespace, s.dvName);
        } catch (e) {
          if (!isKubeApiError(e, 404)) throw this.d.mapError(e, 'delete the volume DataVolume');
        }
      }
      this.d.logger.info({ disk: s.disk, dataVolume: s.dvName }, 'volume removed from the VM spec and its DataVolume deleted');
      return;
    }
    throw new BackendError('Busy', 'the VM kept changing while removing the volume; try again', { retryAfterSeconds: 1 });
  }

  /**
   * Sweep once now: read the VM (fresh) and every slot's DataVolume, delete what orphanAction says.
   * Never throws (errors are logged and the sweep is tried again later).
   */
  async sweep(): Promise<void> {
    if (this.closed) return;
    try {
      const { vm, vmi } = await this.d.view(true);
      await this.sweepSlots(vm, vmi, await this.readSlots(vm));
    } catch (e) {
      if (e instanceof BackendError && e.code === 'NotFound') return; // no VM: Kubernetes' garbage collector deletes what it owned
      this.d.logger.warn({ err: e }, 'volume DataVolume sweep failed; trying again later');
      this.scheduleSweep(SWEEP_RETRY_MS);
    }
  }

  /** Run sweep() in `ms` (or earlier, when one is due earlier already). The timer does not keep the process alive. */
  scheduleSweep(ms: number): void {
    if (this.closed) return;
    const at = this.now() + ms;
    if (this.sweepTimer && this.sweepAt <= at) return;
    if (this.sweepTimer) clearTimeout(this.sweepTimer);
    this.sweepAt = at;
    this.sweepTimer = setTimeout(() => {
      this.sweepTimer = undefined;
      this.sweepAt = Infinity;
      void this.sweep();
    }, Math.max(0, ms));
    this.sweepTimer.unref();
  }

  close(): void {
    this.closed = true;
    if (this.sweepTimer) clearTimeout(this.sweepTimer);
    this.sweepTimer = undefined;
  }

  /**
   * A retry of create `requestId` (its first answer lost, e.g. the agent restarted): the volume that
   * attempt made when the VM already uses its DataVolume; else its DataVolume attached now (adopted)
   * when it is young enough that no sweep can delete it meanwhile. Undefined: make a new one.
   */
  private async resume(vm: VirtualMachine, vmi: VirtualMachineInstance | undefined, reads: SlotRead[], requestId: string): Promise<VolumeInfo | undefined> {
    const r = reads.find((x) => isOurVolumeDataVolume(x.dv, vm) && x.dv.metadata?.annotations?.[VOLUME_REQUEST_ANNOTATION] === requestId && !x.dv.metadata.deletionTimestamp);
    if (!r?.dv) return undefined;
    const s: VolumeSlot = { slot: r.slot, disk: bmcVolumeDiskName(r.slot), dvName: r.dvName };
    if (ourSlots(vm).some((x) => x.dvName === r.dvName)) {
      this.d.logger.info({ disk: s.disk, dataVolume: s.dvName }, 'a retried volume create found the volume its first attempt made');
      return volumeInfo(s, r.dv, vmi);
    }
    const age = ageOf(r.dv, this.now());
    if (age === undefined || age >= ORPHAN_GRACE_MS - ATTACH_DEADLINE_MS || this.attaching.has(r.dvName) || !freeSlots(vm).includes(r.slot)) return undefined;
    this.attaching.add(r.dvName);
    try {
      await this.attach(vm, s.disk, s.dvName, this.now());
    } finally {
      this.attaching.delete(r.dvName);
    }
    this.d.logger.info({ disk: s.disk, dataVolume: s.dvName }, 'a retried volume create attached the DataVolume its first attempt made');
    return volumeInfo(s, r.dv, (await this.d.view(false)).vmi);
  }

  /**
   * After a failed attach: true when the VM uses the DataVolume after all (the patch landed); else
   * delete it (only that very object: uid precondition). When that fails too, the sweep will.
   */
  private async rollBack(dv: DataVolume, dvName: string): Promise<boolean> {
    try {
      const { vm } = await this.d.view(true);
      if (ourSlots(vm).some((x) => x.dvName === dvName)) return true;
      await this.d.client.delete(Resources.dataVolume, this.d.namespace, dvName, 'Background', dv.metadata?.uid ? { uid: dv.metadata.uid } : undefined);
      this.d.logger.info({ dataVolume: dvName }, 'the VM patch failed: the new DataVolume was deleted again');
    } catch (err) {
      if (isKubeApiError(err, 404)) return false;
      this.d.logger.warn({ err, dataVolume: dvName }, 'could not delete the DataVolume of a failed create; the sweep deletes it once it is old enough');
      this.scheduleSweep(ORPHAN_GRACE_MS + 1_000);
    }
    return false;
  }

  /** Delete the orphans among `reads`; returns the slots it freed; a younger orphan (or a failed delete) schedules another sweep. */
  private async sweepSlots(vm: VirtualMachine, vmi: VirtualMachineInstance | undefined, reads: SlotRead[]): Promise<Set<number>> {
    const freed = new Set<number>();
    let again = Infinity;
    for (const r of reads) {
      if (!r.known || this.attaching.has(r.dvName)) continue;
      const a = orphanAction(r.dv, vm, vmi, this.now());
      if (a.kind === 'wait') again = Math.min(again, a.ms + 1_000);
      if (a.kind !== 'delete') continue;
      try {
        await this.d.client.delete(Resources.dataVolume, this.d.namespace, r.dvName, 'Background', { uid: r.dv?.metadata?.uid ?? '' });
        this.d.logger.warn(
          { dataVolume: r.dvName, request: r.dv?.metadata?.annotations?.[VOLUME_REQUEST_ANNOTATION], created: r.dv?.metadata?.creationTimestamp },
          'deleted a volume DataVolume the VM does not use (left by a create that did not finish)',
        );
        freed.add(r.slot);
      } catch (e) {
        if (isKubeApiError(e, 404)) freed.add(r.slot);
        else if (!isKubeApiError(e, 409)) {
          // 409: the name holds another object now (uid precondition), not ours to judge here
          this.d.logger.warn({ err: e, dataVolume: r.dvName }, 'could not delete an unused volume DataVolume; trying again later');
          again = Math.min(again, SWEEP_RETRY_MS);
        }
      }
    }
    if (again < Infinity) this.scheduleSweep(again);
    return freed;
  }

  /** Every slot's DataVolume by name, READ_CONCURRENCY at a time; a failed read is `known: false` (neither swept nor skipped). */
  private readSlots(vm: VirtualMachine): Promise<SlotRead[]> {
    const vmName = vm.metadata?.name ?? '';
    const slots = Array.from({ length: MAX_BMC_VOLUMES }, (_, i) => i + 1);
    return mapBounded(slots, READ_CONCURRENCY, async (slot) => {
      const dvName = bmcVolumeDataVolumeName(vmName, slot);
      try {
        return { slot, dvName, dv: await this.d.client.get<DataVolume>(Resources.dataVolume, this.d.namespace, dvName), known: true };
      } catch (e) {
        if (isKubeApiError(e, 404)) return { slot, dvName, dv: undefined, known: true };
        this.d.logger.debug({ err: e, dataVolume: dvName }, 'could not read a volume slot DataVolume');
        return { slot, dvName, dv: undefined, known: false };
      }
    });
  }

  /** Patch the disk and volume in; re-read and retry when the VM moved meanwhile. Returns the VM as written. */
  private async attach(seen: VirtualMachine, disk: string, dvName: string, since: number): Promise<VirtualMachine> {
    let vm = seen;
    for (let attempt = 0; attempt < WRITE_ATTEMPTS; attempt++) {
      if (!freeSlots(vm).some((n) => bmcVolumeDiskName(n) === disk)) throw new BackendError('Busy', `disk name ${disk} was taken meanwhile; try again`, { retryAfterSeconds: 1 });
      // past the deadline a sweep may judge the DataVolume an orphan: never attach it then
      if (this.now() - since > ATTACH_DEADLINE_MS) throw new BackendError('Busy', 'adding the volume to the VM took too long; try again', { retryAfterSeconds: 1 });
      try {
        const updated = await this.d.client.jsonPatch<VirtualMachine>(Resources.vm, this.d.namespace, vm.metadata?.name ?? '', addVolumePatch(vm, disk, dvName));
        if (updated?.metadata) this.d.offerVm(updated);
        return updated;
      } catch (e) {
        const moved = isKubeApiError(e, 409) || (isKubeApiError(e, 422) && (await this.d.vmMoved(vm)));
        if (!moved) throw this.d.mapError(e, 'add the volume to the VM');
        vm = (await this.d.view(true)).vm;
      }
    }
    throw new BackendError('Busy', 'the VM kept changing while adding the volume; try again', { retryAfterSeconds: 1 });
  }

  private async dataVolume(name: string): Promise<DataVolume | undefined> {
    try {
      return await this.d.client.get<DataVolume>(Resources.dataVolume, this.d.namespace, name);
    } catch (e) {
      if (isKubeApiError(e, 404)) return undefined;
      throw this.d.mapError(e, 'read the volume DataVolume');
    }
  }
}
