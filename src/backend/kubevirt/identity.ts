/**
 * SystemInfo from a VM (and its VMI when one exists): firmware UUID and serial, CPU topology and
 * memory sizing, disks with their capacity, firmware and Secure Boot, NICs with the addresses the
 * guest agent reports, asset tag / SKU / part number, guest OS as the guest agent reports it.
 *
 * Everything comes from the VM and VMI objects the agent already watches: disk capacity from the
 * VMI's volumeStatus (virt-controller copies the PVC's status.capacity there) or, while no VMI
 * runs, from the VM's dataVolumeTemplates request, so no PVC/DataVolume read (and no extra RBAC
 * grant) is needed.
 */
import type { DiskInfo, FirmwareInfo, NetworkInterface, ProcessorInfo, SystemInfo } from '../types.js';
import type { DomainSpec, VirtualMachine, VirtualMachineInstance } from './types.js';

/** VM annotation holding the Redfish/IPMI asset tag (written by setAssetTag). */
export const ASSET_TAG_ANNOTATION = 'bmc.kubevirt.io/asset-tag';
/** VM labels an operator may set for the SKU and part number a BMC reports. */
export const SKU_LABEL = 'bmc.kubevirt.io/sku';
export const PART_NUMBER_LABEL = 'bmc.kubevirt.io/part-number';

const BINARY: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60 };
const DECIMAL: Record<string, number> = { k: 1e3, K: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18, m: 1e-3 };

/** Parse a Kubernetes quantity ("2Gi", "512M", "1.5G", "1e9", "500m") to a number; NaN if invalid. */
export function parseQuantity(q: string | number | undefined): number {
  if (typeof q === 'number') return q;
  if (typeof q !== 'string') return NaN;
  const m = /^\s*([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|[kKMGTPEm]))?\s*$/.exec(q);
  if (!m) return NaN;
  const base = Number(m[1]);
  if (m[2]) return Number(m[1] + m[2]);
  if (m[3]) return base * (BINARY[m[3]] ?? DECIMAL[m[3]] ?? NaN);
  return base;
}

/** Canonical lower-case 8-4-4-4-12 form, or undefined when the input is not a UUID. */
export function canonicalUuid(s: string | undefined): string | undefined {
  if (!s) return undefined;
  const hex = s.replace(/[{}-]/g, '').toLowerCase();
  if (!/^[0-9a-f]{32}$/.test(hex)) return undefined;
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export function cpuCount(vm: VirtualMachine | undefined): number {
  const p = topology(vm?.spec?.template?.spec?.domain);
  return p.sockets * p.cores * p.threads;
}

/**
 * The guest CPU topology as virt-launcher builds it (kubevirt/kubevirt
 * pkg/virt-launcher/virtwrap/converter/vcpu/vcpu.go GetCPUTopology): unset counts are 1; with no
 * topology at all the CPU limit (else request), rounded up, becomes the socket count.
 */
export function topology(domain: DomainSpec | undefined): ProcessorInfo {
  const cpu = domain?.cpu;
  const pos = (n: number | undefined): number => (typeof n === 'number' && Number.isInteger(n) && n > 0 ? n : 1);
  const model = cpu?.model && cpu.model.trim() !== '' ? cpu.model : 'Virtual CPU';
  if (cpu && (cpu.cores || cpu.sockets || cpu.threads)) {
    return { sockets: pos(cpu.sockets), cores: pos(cpu.cores), threads: pos(cpu.threads), model };
  }
  const q = parseQuantity(domain?.resources?.limits?.cpu ?? domain?.resources?.requests?.cpu);
  return { sockets: Number.isFinite(q) && q > 0 ? Math.max(1, Math.ceil(q)) : 1, cores: 1, threads: 1, model };
}

/** The domain that describes the hardware now: the running VMI's (instance types expand into it), else the VM template's. */
function currentDomain(vm: VirtualMachine | undefined, vmi: VirtualMachineInstance | undefined): DomainSpec | undefined {
  return vmi?.spec?.domain ?? vm?.spec?.template?.spec?.domain;
}

/**
 * The VM's disks (template order): bus, read-only, what backs them and their size. Size: the VMI's
 * volumeStatus[].persistentVolumeClaimInfo.capacity (the PVC's status, kubevirt/kubevirt
 * pkg/virt-controller/watch/vmi volume status), else the VM's dataVolumeTemplates storage request,
 * else an emptyDisk's capacity; unknown for a containerDisk.
 */
export function disks(vm: VirtualMachine, vmi: VirtualMachineInstance | undefined): DiskInfo[] {
  const spec = vm.spec?.template?.spec;
  const volumes = new Map((spec?.volumes ?? []).map((v) => [v.name, v]));
  const status = new Map((vmi?.status?.volumeStatus ?? []).map((s) => [s.name, s]));
  const templates = new Map((vm.spec?.dataVolumeTemplates ?? []).map((t) => [t.metadata?.name, t]));
  const out: DiskInfo[] = [];
  for (const d of spec?.domain?.devices?.disks ?? []) {
    const kind: DiskInfo['kind'] = d.cdrom != null ? 'cdrom' : d.lun != null ? 'lun' : 'disk';
    const target = d.cdrom ?? d.lun ?? d.disk ?? {};
    const info: DiskInfo = { id: d.name, kind, bus: target.bus ?? (kind === 'cdrom' ? 'sata' : 'virtio') };
    if (target.readonly === true || kind === 'cdrom') info.readOnly = true;
    if (d.serial) info.serialNumber = d.serial;
    const vol = volumes.get(d.name);
    let bytes = NaN;
    const pvcInfo = status.get(d.name)?.persistentVolumeClaimInfo;
    if (pvcInfo?.capacity?.storage) bytes = parseQuantity(pvcInfo.capacity.storage);
    if (vol?.dataVolume?.name) {
      info.volume = `DataVolume ${vol.dataVolume.name}`;
      const t = templates.get(vol.dataVolume.name)?.spec;
      if (!Number.isFinite(bytes)) bytes = parseQuantity(t?.storage?.resources?.requests?.storage ?? t?.pvc?.resources?.requests?.storage);
    } else if (vol?.persistentVolumeClaim?.claimName) {
      info.volume = `PersistentVolumeClaim ${vol.persistentVolumeClaim.claimName}`;
    } else if (vol?.containerDisk) {
      info.volume = `ContainerDisk ${vol.containerDisk.image ?? ''}`.trim();
    } else if (vol?.emptyDisk) {
      info.volume = 'EmptyDisk';
      if (!Number.isFinite(bytes)) bytes = parseQuantity(vol.emptyDisk.capacity);
    } else if (vol) {
      const src = Object.keys(vol).find((k) => k !== 'name');
      if (src) info.volume = src;
    }
    if (Number.isFinite(bytes) && bytes > 0) info.capacityBytes = Math.round(bytes);
    out.push(info);
  }
  return out;
}

/**
 * Firmware: UEFI when bootloader.efi is set, else BIOS (KubeVirt's default). Secure Boot is on
 * when efi is set and efi.secureBoot is not false (kubevirt/kubevirt
 * pkg/virt-api/webhooks/validating-webhook/admitters/vmi-create-admitter.go secureBootEnabled).
 * secureBoot is the VM template's (next start), secureBootCurrent the running VMI's.
 */
export function firmware(vm: VirtualMachine, vmi: VirtualMachineInstance | undefined): FirmwareInfo {
  const sb = (d: DomainSpec | undefined): { uefi: boolean; secure: boolean } => {
    const efi = d?.firmware?.bootloader?.efi;
    return { uefi: efi != null, secure: efi != null && efi.secureBoot !== false };
  };
  const next = sb(vm.spec?.template?.spec?.domain);
  const out: FirmwareInfo = { type: next.uefi ? 'UEFI' : 'BIOS', secureBoot: next.secure };
  if (vmi?.spec?.domain) out.secureBootCurrent = sb(vmi.spec.domain).secure;
  return out;
}

export function memoryMiB(vm: VirtualMachine | undefined): number {
  const domain = vm?.spec?.template?.spec?.domain;
  for (const q of [domain?.memory?.guest, domain?.resources?.requests?.memory, domain?.resources?.limits?.memory]) {
    const bytes = parseQuantity(q);
    if (Number.isFinite(bytes) && bytes > 0) return Math.round(bytes / 2 ** 20);
  }
  return 0;
}

/** NICs: the VMI's reported interfaces when running, else the spec's fixed MACs. MAC-less ones are left out. */
export function nics(vm: VirtualMachine | undefined, vmi: VirtualMachineInstance | undefined): NetworkInterface[] {
  return baseNics(vm, vmi).map((n) => {
    // interfaces[].model, "virtio" when unset (kubevirt/kubevirt staging/src/kubevirt.io/api/core/v1/schema.go Interface.Model)
    const spec = (vm?.spec?.template?.spec?.domain?.devices?.interfaces ?? []).find((i) => i.name === n.id);
    return spec ? { ...n, model: spec.model ?? 'virtio' } : n;
  });
}

function baseNics(vm: VirtualMachine | undefined, vmi: VirtualMachineInstance | undefined): NetworkInterface[] {
  const reported = vmi?.status?.interfaces ?? [];
  if (reported.some((i) => i.mac)) {
    return reported
      .filter((i) => i.mac)
      .map((i, n) => {
        const all = i.ipAddresses ?? (i.ipAddress ? [i.ipAddress] : []);
        const ips = all.filter((ip) => ip.includes('.'));
        const v6 = all.filter((ip) => ip.includes(':'));
        // linkState: "up" / "down" (kubevirt/kubevirt staging/src/kubevirt.io/api/core/v1/types.go VirtualMachineInstanceNetworkInterface)
        const link = i.linkState === 'up' ? { linkUp: true } : i.linkState === 'down' ? { linkUp: false } : {};
        return {
          id: i.name ?? `nic${n}`,
          macAddress: i.mac!.toLowerCase(),
          ...(ips.length > 0 ? { ipv4Addresses: ips } : {}),
          ...(v6.length > 0 ? { ipv6Addresses: v6 } : {}),
          ...link,
        };
      });
  }
  return (vm?.spec?.template?.spec?.domain?.devices?.interfaces ?? [])
    .filter((i) => i.macAddress)
    .map((i) => ({ id: i.name, macAddress: i.macAddress!.toLowerCase() }));
}

export function systemInfo(vm: VirtualMachine, vmi: VirtualMachineInstance | undefined): SystemInfo {
  const fw = vm.spec?.template?.spec?.domain?.firmware;
  const vmiFw = vmi?.spec?.domain?.firmware;
  const uuid =
    canonicalUuid(fw?.uuid) ?? canonicalUuid(vmiFw?.uuid) ?? canonicalUuid(vm.metadata?.uid) ?? '00000000-0000-0000-0000-000000000000';
  const guest = vmi?.status?.guestOSInfo;
  const guestName = guest?.prettyName ?? guest?.name;
  const guestVersion = guest?.version ?? guest?.versionId;
  const info: SystemInfo = {
    uuid,
    name: vm.metadata?.name ?? '',
    serialNumber: fw?.serial ?? vmiFw?.serial ?? vm.metadata?.uid ?? '',
    manufacturer: 'KubeVirt',
    model: 'VirtualMachine',
    cpuCount: cpuCount(vm),
    memoryMiB: memoryMiB(vm),
    nics: nics(vm, vmi),
  };
  const proc = topology(currentDomain(vm, vmi));
  const arch = vmi?.spec?.architecture ?? vm.spec?.template?.spec?.architecture;
  if (arch) proc.architecture = arch;
  info.processors = proc;
  info.cpuCount = proc.sockets * proc.cores * proc.threads;
  if (vmi?.spec?.domain) {
    const running = memoryMiB({ spec: { template: { spec: { domain: vmi.spec.domain } } } });
    if (running > 0) info.memoryMiB = running;
  }
  info.disks = disks(vm, vmi);
  info.firmware = firmware(vm, vmi);
  const labels = vm.metadata?.labels ?? {};
  info.assetTag = vm.metadata?.annotations?.[ASSET_TAG_ANNOTATION] ?? '';
  const sku = labels[SKU_LABEL] ?? vm.spec?.instancetype?.name;
  if (sku) info.sku = sku;
  if (labels[PART_NUMBER_LABEL]) info.partNumber = labels[PART_NUMBER_LABEL];
  if (vm.metadata?.namespace) info.namespace = vm.metadata.namespace;
  if (guestName || guestVersion) {
    info.guestOs = { ...(guestName ? { name: guestName } : {}), ...(guestVersion ? { version: guestVersion } : {}) };
  }
  return info;
}
