/**
 * Virtual media on KubeVirt, the way KubeVirt itself loads a CD: every CD-ROM drive the VM declares
 * (a disk with `cdrom`, usually without a volume: an empty drive) is one slot, its id the disk's
 * name. Insert imports the image into a CDI DataVolume named mediaDataVolumeName(vm, drive) and
 * adds a hotpluggable volume *named like the drive* to spec.template.spec.volumes; KubeVirt's
 * declarative hotplug (DeclarativeHotplugVolumes) carries it into a running VMI, a stopped VM uses
 * it at its next start. Eject removes that volume only (the drive stays declared) and deletes the
 * DataVolume. The slot state is derived from the cluster (DataVolume phase/progress, template
 * volume, the VMI's volumeStatus), so it survives an agent restart.
 *
 * Not addvolume/removevolume: KubeVirt's ApplyVolumeRequestOnVMISpec (pkg/controller/controller.go)
 * appends a new disk named like the volume (the webhook then rejects the duplicate disk name) and
 * removevolume drops the disk of that name too: the drive itself.
 *
 * KubeVirt cannot hot-plug USB media, so there is no USB slot; a VM without a CD-ROM drive has
 * no slot at all.
 *
 * Sizing: the image's Content-Length (from a HEAD request to the URL the user gave, the only
 * outbound request the agent makes itself; redirects are not followed) plus 10 %, rounded up to
 * whole GiB, at least 1 GiB: room for filesystem overhead on Filesystem-mode PVCs.
 *
 * TLS of the image server (MediaTlsOptions): a named CA ConfigMap becomes the DataVolume's
 * `source.http.certConfigMap` (CDI trusts it for the import); the HEAD request trusts the CA file
 * (the same bundle, mounted into the agent) or, with insecureSkipVerify, verifies nothing. CDI has
 * no per-DataVolume switch to skip verification of an http source, so insecureSkipVerify only
 * affects the agent's own HEAD.
 */
import type { MediaSlot } from '../types.js';
import type { JsonPatchOp } from '../../kube/client.js';
import type { DataVolume, Disk, VirtualMachine, VirtualMachineInstance, Volume } from './types.js';

export const IMAGE_ANNOTATION = 'bmc.kubevirt.io/image';
export const VM_LABEL = 'bmc.kubevirt.io/vm';
export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MEDIA_MARGIN = 0.1;
const GiB = 2 ** 30;

/** How the agent and CDI treat the TLS certificate of an https image URL. */
export interface MediaTlsOptions {
  /** the agent's HEAD request does not verify the server certificate (CDI's import still does) */
  insecureSkipVerify?: boolean;
  /** ConfigMap in the VM's namespace with the CA bundle CDI trusts for the import (certConfigMap) */
  caConfigMap?: string;
  /** PEM file with the CA bundle the agent's HEAD request trusts, besides the system roots */
  caFile?: string;
}

/**
 * The agent's media TLS settings: each value given on the command line (`flags`) wins over its
 * environment variable, which virtbmc-controller sets from the VirtualMachineBMC's
 * spec.redfish.virtualMedia.tls. A malformed VIRTBMC_MEDIA_INSECURE_SKIP_VERIFY throws.
 */
export function resolveMediaTls(flags: MediaTlsOptions, env: Record<string, string | undefined>): MediaTlsOptions {
  let insecure = flags.insecureSkipVerify === true;
  const raw = env.VIRTBMC_MEDIA_INSECURE_SKIP_VERIFY;
  const v = raw?.trim().toLowerCase();
  if (flags.insecureSkipVerify === undefined && v) {
    if (v === 'true' || v === '1') insecure = true;
    else if (v !== 'false' && v !== '0') throw new Error(`VIRTBMC_MEDIA_INSECURE_SKIP_VERIFY must be true or false, got "${raw}"`);
  }
  const caConfigMap = flags.caConfigMap || env.VIRTBMC_MEDIA_CA_CONFIGMAP || undefined;
  const caFile = flags.caFile || env.VIRTBMC_MEDIA_CA_FILE || undefined;
  return { ...(insecure ? { insecureSkipVerify: true } : {}), ...(caConfigMap ? { caConfigMap } : {}), ...(caFile ? { caFile } : {}) };
}

/** PVC size for an image of `bytes`: +10 %, rounded up to whole GiB, at least 1 GiB. */
export function mediaSize(bytes: number): string {
  const gib = Math.max(1, Math.ceil((bytes * (1 + MEDIA_MARGIN)) / GiB));
  return `${gib}Gi`;
}

export { mediaDataVolumeName } from '../../kube/names.js';

/** The CD-ROM drives the VM declares (disks with `cdrom`), in spec order: one media slot each. */
export function cdromDrives(vm: VirtualMachine | undefined): Disk[] {
  return (vm?.spec?.template?.spec?.domain?.devices?.disks ?? []).filter((d) => d.cdrom !== undefined && d.cdrom !== null);
}

/** "CD-ROM <disk> (<bus>)": what Redfish shows as the slot's Name. */
export function driveDisplayName(d: Disk): string {
  const bus = typeof d.cdrom?.bus === 'string' && d.cdrom.bus ? d.cdrom.bus : 'sata'; // KubeVirt's default CD-ROM bus
  return `CD-ROM ${d.name} (${bus})`;
}

export function volumeFor(vm: VirtualMachine | undefined, name: string): Volume | undefined {
  return (vm?.spec?.template?.spec?.volumes ?? []).find((v) => v.name === name);
}

export function parseProgress(p: string | undefined): number | undefined {
  if (!p) return undefined;
  const n = Number.parseFloat(p.replace('%', ''));
  return Number.isFinite(n) ? Math.max(0, Math.min(100, Math.floor(n))) : undefined;
}

/**
 * The import failed: CDI reports Failed, a Running=False condition with an error reason, or a
 * namespace ResourceQuota that refused the PVC or the importer pod (reason ErrExceededQuota on the
 * Bound or Running condition while the phase stays Pending: kubevirt/containerized-data-importer
 * pkg/controller/datavolume/controller-base.go handlePvcCreation, pkg/controller/common/util.go
 * HandleFailedPod). CDI keeps retrying a quota failure; the slot reports it until eject.
 */
export function dataVolumeError(dv: DataVolume): string | undefined {
  const e = rawDataVolumeError(dv);
  return e === undefined ? undefined : withoutUrlQueries(e);
}

/**
 * A message with every http(s) URL in it cut before its query and fragment. CDI's import errors
 * quote the URL it fetched (Go's url.Error: `Get "https://host/x.iso?X-Amz-Signature=...": ...`),
 * and a pre-signed image URL carries its access token in the query; slot errors reach Redfish
 * task messages, VirtualMedia conditions and logs.
 */
export function withoutUrlQueries(msg: string): string {
  return msg.replace(/\b(https?:\/\/[^\s"'<>?#]*)[?#][^\s"'<>]*/gi, '$1');
}

function rawDataVolumeError(dv: DataVolume): string | undefined {
  const conds = dv.status?.conditions ?? [];
  const quota = conds.find((c) => c.reason === 'ErrExceededQuota' && c.status !== 'True');
  if (quota && dv.status?.phase !== 'Succeeded') {
    return `the namespace's ResourceQuota refused the import: ${quota.message ?? 'exceeded quota'}`;
  }
  if (dv.status?.phase === 'Failed') {
    const c = conds.find((x) => x.message);
    return c?.message ?? 'the DataVolume import failed';
  }
  if (dv.status?.phase === 'Succeeded') return undefined;
  const running = conds.find((c) => c.type === 'Running');
  if (running && running.status === 'False' && /error|fail|crash|backoff/i.test(running.reason ?? '')) {
    return running.message ?? `import ${running.reason}`;
  }
  return undefined;
}

/** What the agent itself knows about a drive that the cluster objects do not (yet) show. */
export interface DriveLocalState {
  /** an insert or eject of ours is under way */
  busy?: 'inserting' | 'ejecting';
  /** the last insert of ours failed for a reason the cluster objects do not show */
  error?: string;
  /** the VMI that was running when our volume reached the template had not picked it up in time */
  notSynced?: boolean;
}

/**
 * Whether the running VMI has our CD really attached: KubeVirt reports the hot-plugged volume in
 * status.volumeStatus with phase Ready once virt-handler attached it to the domain
 * (kubevirt/kubevirt pkg/virt-handler/vm.go: "Successfully attach hotplugged volume"), and the
 * VMI spec holds that volume with our DataVolume. The spec check matters: a volume that left the
 * VMI spec (an eject) keeps its status entry, still Ready, until its attachment pod is gone
 * (pkg/virt-controller/watch/vmi/storage.go updateVolumeStatus, phaseForUnpluggedVolume), so right
 * after an eject and a new insert into the same drive the old medium's entry would read as the new
 * one attached.
 */
export function vmiVolumeReady(vmi: VirtualMachineInstance | undefined, volume: string, dvName: string): boolean {
  const inSpec = (vmi?.spec?.volumes ?? []).some((v) => v.name === volume && v.dataVolume?.name === dvName);
  return inSpec && (vmi?.status?.volumeStatus ?? []).some((s) => s.name === volume && s.phase === 'Ready');
}

/** The VMI knows the volume at all (in its spec or its volumeStatus): declarative hotplug has synced it. */
export function vmiHasVolume(vmi: VirtualMachineInstance | undefined, volume: string): boolean {
  return (vmi?.spec?.volumes ?? []).some((v) => v.name === volume) || (vmi?.status?.volumeStatus ?? []).some((s) => s.name === volume);
}

/** A VMI that exists and has not ended: media changes must reach it to count. */
export function vmiLive(vmi: VirtualMachineInstance | undefined): boolean {
  const p = vmi?.status?.phase;
  return !!vmi && !vmi.metadata?.deletionTimestamp && p !== 'Succeeded' && p !== 'Failed';
}

export const NOT_SYNCED_MESSAGE =
  'the running VM did not pick up the CD-ROM volume: loading a CD-ROM drive of a running VM needs KubeVirt >= 1.6 with the ' +
  'DeclarativeHotplugVolumes feature gate on and the deprecated HotplugVolumes gate off; the medium stays in the VM ' +
  'template and is used at the next start (eject to undo)';

export const NOT_SYNCED_MIGRATION_MESSAGE =
  'the running VM did not pick up the CD-ROM volume: KubeVirt does not hot-plug template volumes into the running VM of a ' +
  'VirtualMachine with spec.updateVolumesStrategy Migration; the medium stays in the VM template and is used at the next start (eject to undo)';

/**
 * Why a running VMI did not take our template volume: declarative hotplug is skipped for a VM
 * with updateVolumesStrategy Migration whatever the gates (pkg/storage/hotplug/hotplug.go
 * HandleDeclarativeVolumes), else the cluster lacks it.
 */
export function notSyncedMessage(vm: VirtualMachine): string {
  const strategy = (vm.spec as { updateVolumesStrategy?: unknown } | undefined)?.updateVolumesStrategy;
  return strategy === 'Migration' ? NOT_SYNCED_MIGRATION_MESSAGE : NOT_SYNCED_MESSAGE;
}

/**
 * One CD-ROM drive's slot as seen in the cluster.
 * - inserted: our DataVolume finished importing, its volume is in the template under the drive's
 *   name and, while a VMI runs, the VMI reports that volume Ready (really attached); with no VMI
 *   running, the template is enough: the next start attaches it.
 * - inserting: importing, or imported but not attached yet (progress from CDI's status.progress).
 * - error: CDI failed, our own last call failed, or the parts do not fit together.
 * - a volume the BMC did not put there shows as inserted, without an image.
 */
export function deriveDriveSlot(
  drive: Disk,
  vm: VirtualMachine,
  vmi: VirtualMachineInstance | undefined,
  dv: DataVolume | undefined,
  dvName: string,
  local: DriveLocalState = {},
): MediaSlot {
  const base: MediaSlot = { id: drive.name, kind: 'cd', name: driveDisplayName(drive), state: 'empty', writeProtected: true };
  if (local.busy === 'ejecting') return base;
  const vol = volumeFor(vm, drive.name);
  const ours = vol?.dataVolume?.name === dvName;
  if (dv?.metadata?.deletionTimestamp) dv = undefined; // being deleted: as good as gone
  if (dv) {
    const image = dv.metadata?.annotations?.[IMAGE_ANNOTATION] ?? dv.spec?.source?.http?.url;
    const withImage = image ? { ...base, image } : base;
    const err = local.error ?? dataVolumeError(dv);
    if (err) return { ...withImage, state: 'error', error: err };
    const progress = dv.status?.phase === 'Succeeded' ? 100 : parseProgress(dv.status?.progress);
    const inserting: MediaSlot = { ...withImage, state: 'inserting', ...(progress !== undefined ? { progress } : {}) };
    if (!ours) {
      if (local.busy === 'inserting') return inserting;
      return { ...withImage, state: 'error', error: `DataVolume ${dvName} is not loaded into CD-ROM ${drive.name}; eject to clear` };
    }
    if (dv.status?.phase !== 'Succeeded') return inserting;
    if (vmiLive(vmi)) {
      if (vmiVolumeReady(vmi, drive.name, dvName)) return { ...withImage, state: 'inserted', progress: 100 };
      if (local.notSynced && !vmiHasVolume(vmi, drive.name)) return { ...withImage, state: 'error', error: notSyncedMessage(vm) };
      return inserting;
    }
    return { ...withImage, state: 'inserted', progress: 100 };
  }
  if (local.busy === 'inserting') return { ...base, state: 'inserting', progress: 0 };
  if (ours) return { ...base, state: 'error', error: `DataVolume ${dvName} is missing; eject to clear` };
  if (vol) return { ...base, state: 'inserted' }; // something the BMC did not put there
  if (local.error) return { ...base, state: 'error', error: local.error };
  return base;
}

/** The template volume that loads our DataVolume into the drive: named like the drive, hotpluggable. */
export function mediaVolume(drive: string, dvName: string): Volume {
  return { name: drive, dataVolume: { name: dvName, hotpluggable: true } };
}

/**
 * JSON patch that loads the drive: append the volume to spec.template.spec.volumes, guarded by the
 * resourceVersion read (a concurrent writer makes the test fail → re-read, retry).
 */
export function insertVolumePatch(vm: VirtualMachine, drive: string, dvName: string): JsonPatchOp[] {
  const test: JsonPatchOp = { op: 'test', path: '/metadata/resourceVersion', value: vm.metadata?.resourceVersion ?? '' };
  const vols = vm.spec?.template?.spec?.volumes;
  if (vols === undefined) return [test, { op: 'add', path: '/spec/template/spec/volumes', value: [mediaVolume(drive, dvName)] }];
  return [test, { op: 'add', path: '/spec/template/spec/volumes/-', value: mediaVolume(drive, dvName) }];
}

/**
 * JSON patch that empties the drive: remove exactly our volume (tested by index, name and
 * DataVolume name first), never the disk. Undefined when the template has no such volume.
 */
export function ejectVolumePatch(vm: VirtualMachine, drive: string, dvName: string): JsonPatchOp[] | undefined {
  const vols = vm.spec?.template?.spec?.volumes ?? [];
  const i = vols.findIndex((v) => v.name === drive && v.dataVolume?.name === dvName);
  if (i < 0) return undefined;
  const at = `/spec/template/spec/volumes/${i}`;
  return [
    { op: 'test', path: `${at}/name`, value: drive },
    { op: 'test', path: `${at}/dataVolume/name`, value: dvName },
    { op: 'remove', path: at },
  ];
}

/**
 * The VM webhook's answer when the cluster lacks DeclarativeHotplugVolumes (kubevirt/kubevirt
 * pkg/virt-api/webhooks/validating-webhook/admitters/vmi-create-admitter.go: "DeclarativeHotplugVolumes
 * feature gate not enabled, cannot define an empty CD-ROM disk"). Ejecting empties the drive, which
 * such a cluster refuses.
 */
export function needsDeclarativeHotplug(kubeMessage: string): boolean {
  return /DeclarativeHotplugVolumes/.test(kubeMessage);
}

export const NEEDS_GATE_MESSAGE =
  "the cluster needs KubeVirt's DeclarativeHotplugVolumes feature gate (KubeVirt >= 1.6; on by default from 1.9) to load and empty a CD-ROM drive";

export interface MediaManifestOptions {
  namespace: string;
  vm: VirtualMachine;
  dvName: string;
  url: string;
  size: string;
  storageClassName?: string;
  volumeMode?: 'Filesystem' | 'Block';
  /** CDI certConfigMap: ConfigMap with the CA that signs the image server's certificate */
  certConfigMap?: string;
}

/**
 * A DataVolume of ours for a VM (media and Redfish volumes): labelled as ours and with the VM's
 * name, owned by the VM through a plain (non-controller) owner reference, so deleting the VM cleans
 * it up and KubeVirt's VM controller does not adopt it as one of its dataVolumeTemplates.
 */
export function ownedDataVolume(
  o: { vm: VirtualMachine; dvName: string; namespace: string; storageClassName?: string; volumeMode?: 'Filesystem' | 'Block' },
  annotations: Record<string, string> | undefined,
  source: Record<string, unknown>,
  storage: string,
): DataVolume & { apiVersion: string; kind: string } {
  const vmName = o.vm.metadata?.name ?? '';
  const labels: Record<string, string> = { [MANAGED_BY_LABEL]: 'virtbmc' };
  if (vmName.length <= 63) labels[VM_LABEL] = vmName;
  return {
    apiVersion: 'cdi.kubevirt.io/v1beta1',
    kind: 'DataVolume',
    metadata: {
      name: o.dvName,
      namespace: o.namespace,
      labels,
      ...(annotations ? { annotations } : {}),
      ...(o.vm.metadata?.uid
        ? { ownerReferences: [{ apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachine', name: vmName, uid: o.vm.metadata.uid }] }
        : {}),
    },
    spec: {
      source,
      storage: {
        resources: { requests: { storage } },
        ...(o.storageClassName ? { storageClassName: o.storageClassName } : {}),
        ...(o.volumeMode ? { volumeMode: o.volumeMode } : {}),
      },
    },
  };
}

export function dataVolumeManifest(o: MediaManifestOptions): DataVolume & { apiVersion: string; kind: string } {
  return ownedDataVolume(
    o,
    {
      [IMAGE_ANNOTATION]: o.url,
      // import right away even with WaitForFirstConsumer storage: the VM consumes it only once attached
      'cdi.kubevirt.io/storage.bind.immediate.requested': 'true',
    },
    { http: { url: o.url, ...(o.certConfigMap ? { certConfigMap: o.certConfigMap } : {}) } },
    o.size,
  );
}

// The image URL check (HEAD, sizes the DataVolume) is shared with the simulator: backend/probe.ts.
export { probeImageSize, type ProbeOptions } from '../probe.js';
