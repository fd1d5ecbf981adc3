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
 * A create makes the DataVolume first, then patches the VM; when the patch fails for good the
 * DataVolume is deleted again, so nothing is left half made. A DataVolume name already taken (409,
 * e.g. left by a crash between the two steps) skips to the next slot: the agent never adopts or
 * overwrites a DataVolume it did not just create.
 */
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
  name?: string;
  storageClassName?: string;
  volumeMode?: 'Filesystem' | 'Block';
}

/** The blank DataVolume of a new volume, owned by the VM (deleting the VM cleans it up). */
export function volumeDataVolumeManifest(o: VolumeManifestOptions): DataVolume & { apiVersion: string; kind: string } {
  return ownedDataVolume(o, o.name !== undefined ? { [VOLUME_NAME_ANNOTATION]: o.name } : undefined, { blank: {} }, storageQuantity(o.bytes));
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
}

export class MachineVolumes {
  constructor(private readonly d: MachineVolumesDeps) {}

  async list(): Promise<VolumeInfo[]> {
    const { vm, vmi } = await this.d.view(false);
    const out: VolumeInfo[] = [];
    for (const s of ourSlots(vm)) {
      const dv = await this.dataVolume(s.dvName);
      // a DataVolume of that name that someone else made is not ours: its slot is no volume here
      if (dv && !isOurs(dv)) continue;
      out.push(volumeInfo(s, dv, vmi));
    }
    return out;
  }

  async create(req: CreateVolumeRequest): Promise<VolumeInfo> {
    const bytes = validateVolumeRequest(req);
    let { vm } = await this.d.view(true);
    const skipped = new Set<number>();
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
      try {
        vm = await this.attach(vm, disk, dvName);
      } catch (e) {
        await this.d.client.delete(Resources.dataVolume, this.d.namespace, dvName).catch((err: unknown) => this.d.logger.warn({ err, dataVolume: dvName }, 'could not delete the DataVolume of a failed create'));
        throw e;
      }
      this.d.logger.info({ disk, dataVolume: dvName }, 'volume added to the VM spec (applies at the next start)');
      const { vmi } = await this.d.view(false);
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

  /** Patch the disk and volume in; re-read and retry when the VM moved meanwhile. Returns the VM as written. */
  private async attach(seen: VirtualMachine, disk: string, dvName: string): Promise<VirtualMachine> {
    let vm = seen;
    for (let attempt = 0; attempt < WRITE_ATTEMPTS; attempt++) {
      if (!freeSlots(vm).some((n) => bmcVolumeDiskName(n) === disk)) throw new BackendError('Busy', `disk name ${disk} was taken meanwhile; try again`, { retryAfterSeconds: 1 });
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
