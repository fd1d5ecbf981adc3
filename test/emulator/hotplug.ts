/**
 * KubeVirt volume hotplug and CD-ROM inject/eject as upstream does them (kubevirt/kubevirt, v1.9):
 * the feature gates, the webhook's disk/volume rules, ApplyVolumeRequestOnVMISpec for the
 * addvolume/removevolume API, the declarative hotplug sync VM template → running VMI, and the
 * VMI volumeStatus of hotplugged volumes. Pure functions over plain objects; kubevirt.ts wires them.
 */
import { clone, deepEqual } from './patch.js';
import { ApiError } from './status.js';

type Obj = Record<string, unknown>;

function obj(v: unknown): Obj {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : {};
}

function arr(v: unknown): Obj[] {
  return Array.isArray(v) ? (v as Obj[]) : [];
}

/**
 * The two gates that decide how volumes are hot-plugged, as feature-gates.ts evaluates them
 * (KubeVirt v1.9: DeclarativeHotplugVolumes Beta, on unless disabled; HotplugVolumes Deprecated,
 * on only when listed). KubeVirt 1.6–1.8 (DeclarativeHotplugVolumes Alpha, off by default) or
 * older: disable DeclarativeHotplugVolumes, with or without HotplugVolumes.
 */
export interface KubevirtFeatureGates {
  declarativeHotplugVolumes: boolean;
  hotplugVolumes: boolean;
}

/**
 * Whether virt-controller syncs hotpluggable template volumes into the running VMI:
 * pkg/virt-controller/watch/vm/vm.go handleDeclarativeVolumeHotplug skips it when HotplugVolumes
 * is enabled or DeclarativeHotplugVolumes is not.
 */
export function declarativeSyncOn(g: KubevirtFeatureGates): boolean {
  return g.declarativeHotplugVolumes && !g.hotplugVolumes;
}

/** pkg/storage/types/volume.go IsDeclarativeHotplugVolume: a hotpluggable DataVolume or PVC. */
export function isDeclarativeHotplugVolume(v: Obj | undefined): boolean {
  return !!v && !!(obj(v.dataVolume).hotpluggable || obj(v.persistentVolumeClaim).hotpluggable);
}

function disksOf(spec: Obj): Obj[] {
  return arr(obj(obj(spec.domain).devices).disks);
}

interface Cause {
  type: string;
  message: string;
  field: string;
}

/**
 * The webhook's disk/volume rules for a VMI spec (VM template or VMI):
 * - validateVolumes (pkg/virt-api/webhooks/validating-webhook/admitters/vmi-create-admitter.go):
 *   "<volumes[i]> and <volumes[j]> must not have the same Name.", "<volumes[i]> must have exactly
 *   one source type set", "DataVolume 'name' must be set";
 * - validateDiskName (pkg/storage/admitters/disks.go): the same for disks;
 * - validateBootOrder (vmi-create-admitter.go): every disk needs a volume of its name
 *   ("<disks[i].Name> '<name>' not found."), except a CD-ROM under DeclarativeHotplugVolumes; a
 *   CD-ROM without a volume otherwise: "DeclarativeHotplugVolumes feature gate not enabled, cannot
 *   define an empty CD-ROM disk".
 */
/** The volume source fields validateVolumes counts (vmi-create-admitter.go, v1.9). */
const VOLUME_SOURCES = [
  'persistentVolumeClaim', 'sysprep', 'cloudInitNoCloud', 'cloudInitConfigDrive', 'containerDisk', 'ephemeral', 'emptyDisk', 'hostDisk',
  'dataVolume', 'configMap', 'secret', 'downwardAPI', 'serviceAccount', 'downwardMetrics', 'memoryDump', 'containerPath',
];

export function diskVolumeCauses(prefix: string, spec: Obj, gates: KubevirtFeatureGates): Cause[] {
  const causes: Cause[] = [];
  const volumes = arr(spec.volumes);
  const disks = disksOf(spec);
  const volIdx = new Map<string, number>();
  volumes.forEach((v, i) => {
    const n = String(v.name ?? '');
    // exactly one source per volume, and a dataVolume names its DataVolume (validateVolumes)
    const sources = VOLUME_SOURCES.filter((k) => v[k] !== undefined && v[k] !== null);
    if (v.dataVolume !== undefined && v.dataVolume !== null && !obj(v.dataVolume).name) {
      causes.push({ type: 'FieldValueRequired', message: "DataVolume 'name' must be set", field: `${prefix}.volumes[${i}].name` });
    }
    if (sources.length !== 1) {
      causes.push({ type: 'FieldValueInvalid', message: `${prefix}.volumes[${i}] must have exactly one source type set`, field: `${prefix}.volumes[${i}]` });
    }
    const other = volIdx.get(n);
    if (other === undefined) volIdx.set(n, i);
    else {
      causes.push({
        type: 'FieldValueInvalid',
        message: `${prefix}.volumes[${i}] and ${prefix}.volumes[${other}] must not have the same Name.`,
        field: `${prefix}.volumes[${i}].name`,
      });
    }
  });
  const diskPath = `${prefix}.domain.devices.disks`;
  disks.forEach((d, i) => {
    for (let j = 0; j < i; j++) {
      if (disks[j]!.name === d.name) {
        causes.push({ type: 'FieldValueInvalid', message: `${diskPath}[${i}] and ${diskPath}[${j}] must not have the same Name.`, field: `${diskPath}[${i}].name` });
      }
    }
  });
  disks.forEach((d, i) => {
    if (volIdx.has(String(d.name ?? ''))) return;
    const cdrom = d.cdrom !== undefined && d.cdrom !== null;
    if (!cdrom) {
      causes.push({ type: 'FieldValueInvalid', message: `${diskPath}[${i}].Name '${String(d.name)}' not found.`, field: `${diskPath}[${i}].name` });
    } else if (!gates.declarativeHotplugVolumes) {
      causes.push({
        type: 'FieldValueInvalid',
        message: 'DeclarativeHotplugVolumes feature gate not enabled, cannot define an empty CD-ROM disk',
        field: `${diskPath}[${i}].name`,
      });
    }
  });
  return causes;
}

/**
 * A validating webhook's denial as the apiserver returns it: 422 Invalid, the message
 * `admission webhook "<name>" denied the request: <cause messages joined by ", ">`
 * (pkg/util/webhooks/webhooks.go ToAdmissionResponse; k8s.io/apiserver webhook errors ToStatusErr).
 */
export function webhookDenied(webhook: string, causes: Cause[]): ApiError {
  const shown = causes.slice(0, 10);
  let msg = shown.map((c) => c.message).join(', ');
  if (causes.length > 10) msg += `, and ${causes.length - 10} more validation errors`;
  return new ApiError(422, `admission webhook "${webhook}" denied the request: ${msg}`, 'Invalid', {
    causes: causes.map((c) => ({ reason: c.type, message: c.message, field: c.field })),
  });
}

export interface VolumeRequest {
  addVolumeOptions?: { name: string; disk: Obj; volumeSource: Obj; dryRun?: string[] };
  removeVolumeOptions?: { name: string; dryRun?: string[] };
}

/**
 * pkg/controller/controller.go ApplyVolumeRequestOnVMISpec: add appends a volume AND a disk, both
 * named like the request (no check whether a disk of that name exists: a CD-ROM drive named like
 * the volume ends up declared twice); remove drops the volume and the disk of exactly that name.
 */
export function applyVolumeRequest(spec: Obj, req: VolumeRequest): Obj {
  const s = clone(spec);
  const domain = obj(s.domain);
  const devices = obj(domain.devices);
  let volumes = arr(s.volumes);
  let disks = arr(devices.disks);
  if (req.addVolumeOptions) {
    const o = req.addVolumeOptions;
    if (!volumes.some((v) => v.name === o.name)) {
      const src = obj(o.volumeSource);
      const vol: Obj = { name: o.name };
      if (src.persistentVolumeClaim) vol.persistentVolumeClaim = { ...clone(obj(src.persistentVolumeClaim)), hotpluggable: true };
      else if (src.dataVolume) vol.dataVolume = { ...clone(obj(src.dataVolume)), hotpluggable: true };
      volumes = [...volumes, vol];
      if (o.disk) disks = [...disks, { ...clone(o.disk), name: o.name }];
    }
  } else if (req.removeVolumeOptions) {
    const n = req.removeVolumeOptions.name;
    volumes = volumes.filter((v) => v.name !== n);
    disks = disks.filter((d) => d.name !== n);
  }
  s.volumes = volumes;
  devices.disks = disks;
  domain.devices = devices;
  s.domain = domain;
  return s;
}

/**
 * pkg/storage/hotplug/hotplug.go HandleDeclarativeVolumes (patchHotplugVolumes) for a running VMI:
 * hotpluggable volumes gone from or changed in the VM template leave the VMI spec; new ones join it
 * (unless the VMI still reports a status for that name, i.e. is unplugging it); disks follow their
 * volumes, except that a CD-ROM disk still declared in the template stays (the drive remains,
 * empty). Returns the new VMI volumes and disks, or undefined when nothing changes.
 */
export function declarativeHotplug(vmTemplateSpec: Obj, vmiSpec: Obj, vmiStatus: Obj): { volumes: Obj[]; disks: Obj[] } | undefined {
  const vmVols = new Map(arr(vmTemplateSpec.volumes).map((v) => [String(v.name), v]));
  const vmDisks = new Map(disksOf(vmTemplateSpec).map((d) => [String(d.name), d]));
  const vmiVols = arr(vmiSpec.volumes);
  const vmiDisks = disksOf(vmiSpec);
  // filterHotplugVMIVolumes
  const kept = vmiVols.filter((v) => {
    if (!isDeclarativeHotplugVolume(v)) return true;
    const vmVol = vmVols.get(String(v.name));
    if (!vmVol) return false;
    return !(isDeclarativeHotplugVolume(vmVol) && !deepEqual(vmVol, v));
  });
  // getNewHotplugVMVolumes
  const vmiVolNames = new Set(vmiVols.map((v) => String(v.name)));
  const withStatus = new Set(arr(vmiStatus.volumeStatus).map((s) => String(s.name)));
  const added = arr(vmTemplateSpec.volumes).filter((v) => isDeclarativeHotplugVolume(v) && !vmiVolNames.has(String(v.name)) && !withStatus.has(String(v.name)));
  const volumes = [...kept, ...added.map((v) => clone(v))];
  const newVols = new Map(volumes.map((v) => [String(v.name), v]));
  // filterHotplugVMIDisks
  const keptDisks = vmiDisks.filter((d) => {
    if (newVols.has(String(d.name))) return true;
    const vmDisk = vmDisks.get(String(d.name));
    if (!vmDisk) return false;
    const vmVolExists = vmVols.has(String(d.name));
    const bothCdrom = vmDisk.cdrom !== undefined && vmDisk.cdrom !== null && d.cdrom !== undefined && d.cdrom !== null;
    return !(vmVolExists && !bothCdrom);
  });
  // getNewHotplugVMDisks
  const vmiDiskNames = new Set(vmiDisks.map((d) => String(d.name)));
  const addedDisks = disksOf(vmTemplateSpec).filter((d) => {
    const v = newVols.get(String(d.name));
    return !!v && isDeclarativeHotplugVolume(v) && !vmiDiskNames.has(String(d.name));
  });
  const disks = [...keptDisks, ...addedDisks.map((d) => clone(d))];
  if (deepEqual(vmiVols, volumes) && deepEqual(vmiDisks, disks)) return undefined;
  return { volumes, disks };
}

/**
 * The volumeStatus entry of one VMI volume.
 * - A hotplugged DataVolume/PVC whose import has not finished has no attachment pod yet: its phase
 *   comes from the PVC (pkg/virt-controller/watch/vmi/storage.go getVolumePhaseMessageReason):
 *   Pending/FailedPvcNotFound "PVC <name> not found", or Bound/PVCNotReady "PVC is in phase Bound".
 * - Once the claim is ready, virt-controller creates the attachment pod: AttachedToNode/SuccessfulCreate
 *   "Created hotplug attachment pod <pod>, for volume <name>" (pkg/virt-controller/watch/vmi/storage.go
 *   processHotplugVolumeStatus), with hotplugVolume.attachPodName/attachPodUID; then virt-handler
 *   mounts it, MountedToPod/VolumeMountedToPod "Volume <name> has been mounted in virt-launcher pod",
 *   and attaches it to the domain, Ready/VolumeReady "Successfully attach hotplugged volume <name>
 *   to VM" (pkg/virt-handler/vm.go). advanceHotplugPhase() gives the next step.
 * - Other volumes: Ready with no hotplugVolume (virt-controller sets hotplugVolume only for hotplugged ones).
 */
export function volumeStatusFor(v: Obj, claim: { exists: boolean; ready: boolean }, attachPodUid: () => string): Obj {
  const name = String(v.name);
  if (!isDeclarativeHotplugVolume(v)) return { name, target: '', phase: 'Ready', reason: 'VolumeReady', message: 'Volume is ready' };
  const claimName = String(obj(v.dataVolume).name ?? obj(v.persistentVolumeClaim).claimName ?? '');
  if (!claim.exists) return { name, target: '', phase: 'Pending', reason: 'FailedPvcNotFound', message: `PVC ${claimName} not found`, hotplugVolume: {} };
  if (!claim.ready) return { name, target: '', phase: 'Bound', reason: 'PVCNotReady', message: 'PVC is in phase Bound', hotplugVolume: {} };
  const pod = `hp-volume-${name}`;
  return {
    name,
    target: '',
    phase: 'AttachedToNode',
    reason: 'SuccessfulCreate',
    message: `Created hotplug attachment pod ${pod}, for volume ${name}`,
    hotplugVolume: { attachPodName: pod, attachPodUID: attachPodUid() },
  };
}

/** The next virt-handler step of an attaching hotplugged volume (see volumeStatusFor), or undefined when done. */
export function advanceHotplugPhase(s: Obj): Obj | undefined {
  const name = String(s.name);
  if (s.phase === 'AttachedToNode') {
    return { ...s, phase: 'MountedToPod', reason: 'VolumeMountedToPod', message: `Volume ${name} has been mounted in virt-launcher pod` };
  }
  if (s.phase === 'MountedToPod') {
    return { ...s, phase: 'Ready', reason: 'VolumeReady', message: `Successfully attach hotplugged volume ${name} to VM` };
  }
  return undefined;
}

/**
 * pkg/storage/admitters/storagehotplug.go ValidateHotplugDiskConfiguration: a hot-plugged disk is a
 * `disk` on scsi/virtio or a `lun` on scsi; a CD-ROM cannot be hot-plugged as a new device.
 */
export function hotplugDiskCauses(disk: Obj | undefined, name: string, prefix: string, field: string): Cause[] {
  const bad = (message: string): Cause[] => [{ type: 'FieldValueInvalid', message, field }];
  if (!disk) return bad(`${prefix} for [${name}] requires the disk field to be set.`);
  const bus = String(obj(disk.disk).bus ?? obj(disk.lun).bus ?? obj(disk.cdrom).bus ?? '');
  if (disk.disk) {
    if (bus !== 'scsi' && bus !== 'virtio') return bad(`${prefix} for disk [${name}] requires bus to be 'scsi' or 'virtio'. [${bus}] is not permitted.`);
  } else if (disk.lun) {
    if (bus !== 'scsi') return bad(`${prefix} for LUN [${name}] requires bus to be 'scsi'. [${bus}] is not permitted.`);
  } else {
    return bad(`${prefix} for [${name}] requires diskDevice of type 'disk' or 'lun' to be used.`);
  }
  return [];
}

/**
 * The VMI update webhook's storage checks (storagehotplug.go AdmitHotplugStorage, the parts that
 * concern disks and volumes): every disk but an empty CD-ROM (under DeclarativeHotplugVolumes)
 * maps to exactly one volume, and a newly hot-plugged volume's new disk passes
 * ValidateHotplugDiskConfiguration.
 */
export function vmiStorageUpdateCauses(newSpec: Obj, oldSpec: Obj, gates: KubevirtFeatureGates): Cause[] {
  const names = new Set(arr(newSpec.volumes).filter((v) => !v.memoryDump).map((v) => String(v.name)));
  let required = arr(obj(obj(newSpec.domain).devices).filesystems).length;
  for (const d of disksOf(newSpec)) {
    if (!names.has(String(d.name)) && d.cdrom !== undefined && d.cdrom !== null && gates.declarativeHotplugVolumes) continue;
    required++;
  }
  if (required !== names.size) {
    return [{ type: 'FieldValueInvalid', message: `mismatch between volumes declared (${names.size}) and required (${required})`, field: '' }];
  }
  const oldVols = new Set(arr(oldSpec.volumes).map((v) => String(v.name)));
  const oldDisks = new Set(disksOf(oldSpec).map((d) => String(d.name)));
  const newDisks = new Map(disksOf(newSpec).map((d) => [String(d.name), d]));
  for (const v of arr(newSpec.volumes)) {
    const n = String(v.name);
    if (!isDeclarativeHotplugVolume(v) || oldVols.has(n)) continue;
    const d = newDisks.get(n);
    if (!d) return [{ type: 'FieldValueInvalid', message: `disk ${n} does not exist`, field: '' }];
    if (!oldDisks.has(n)) {
      const c = hotplugDiskCauses(d, n, 'Hotplug configuration', '');
      if (c.length) return c;
    }
  }
  return [];
}
