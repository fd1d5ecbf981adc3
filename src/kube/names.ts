/**
 * Names of cluster objects that both the agent and the controller must agree on: the agent creates
 * them, the controller grants the agent access to exactly these names (RBAC resourceNames).
 */
import { createHash } from 'node:crypto';

const MAX_DNS_LABEL = 63;

/**
 * The DataVolume that backs virtual media in one CD-ROM drive of a VM: `<vm>-vmedia-<drive>`,
 * a DNS label of at most 63 characters. A name too long for that is shortened and gets a hash of
 * (vm, drive), so two drives never share a DataVolume.
 */
export function mediaDataVolumeName(vmName: string, driveName: string): string {
  const plain = `${vmName}-vmedia-${driveName}`;
  if (plain.length <= MAX_DNS_LABEL) return plain;
  const hash = createHash('sha256').update(`${vmName}/${driveName}`).digest('hex').slice(0, 8);
  const room = MAX_DNS_LABEL - '-vmedia-'.length - hash.length - 1;
  // split what is left between the VM and the drive name, keeping each non-empty
  const vmPart = vmName.slice(0, Math.max(1, room - Math.min(driveName.length, Math.floor(room / 3)))).replace(/[-.]+$/, '');
  const drivePart = driveName.slice(0, Math.max(1, room - vmPart.length)).replace(/[-.]+$/, '');
  return `${vmPart}-vmedia-${drivePart}-${hash}`.slice(0, MAX_DNS_LABEL);
}

/** The ConfigMap holding a VM's Redfish event subscriptions: `<vm>-virtbmc-events`. */
export function eventsConfigMapName(vmName: string): string {
  const suffix = '-virtbmc-events';
  return `${vmName.slice(0, MAX_DNS_LABEL - suffix.length).replace(/[-.]+$/, '')}${suffix}`;
}

/**
 * Volumes created over Redfish (POST .../Storage/1/Volumes): at most MAX_BMC_VOLUMES per VM, slot
 * n (1-based) being the VM disk and volume `bmc-volume-<n>` backed by the DataVolume
 * `<vm>-bmc-volume-<n>`. Fixed names, so the controller can grant the agent get/delete on exactly
 * these DataVolumes (RBAC resourceNames) and a retry or a crash never leaves a name nobody may delete.
 */
export const MAX_BMC_VOLUMES = 8;

export function bmcVolumeDiskName(slot: number): string {
  return `bmc-volume-${slot}`;
}

/** `<vm>-bmc-volume-<n>`, a DNS label (the VM name shortened, with a hash, when too long). */
export function bmcVolumeDataVolumeName(vmName: string, slot: number): string {
  const suffix = `-bmc-volume-${slot}`;
  const plain = `${vmName}${suffix}`;
  if (plain.length <= MAX_DNS_LABEL) return plain;
  const hash = createHash('sha256').update(vmName).digest('hex').slice(0, 8);
  return `${vmName.slice(0, MAX_DNS_LABEL - suffix.length - hash.length - 1).replace(/[-.]+$/, '')}-${hash}${suffix}`;
}

/** Every DataVolume name bmcVolumeDataVolumeName gives the VM, slot 1 to MAX_BMC_VOLUMES. */
export function bmcVolumeDataVolumeNames(vmName: string): string[] {
  return Array.from({ length: MAX_BMC_VOLUMES }, (_, i) => bmcVolumeDataVolumeName(vmName, i + 1));
}
