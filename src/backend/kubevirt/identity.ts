/**
 * SystemInfo from a VM (and its VMI when one exists): firmware UUID and serial, CPU and memory
 * sizing, NIC MACs, guest OS as the guest agent reports it.
 */
import type { NetworkInterface, SystemInfo } from '../types.js';
import type { VirtualMachine, VirtualMachineInstance } from './types.js';

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
  const domain = vm?.spec?.template?.spec?.domain;
  const cpu = domain?.cpu;
  if (cpu && (cpu.cores !== undefined || cpu.sockets !== undefined || cpu.threads !== undefined)) {
    return Math.max(1, (cpu.cores ?? 1) * (cpu.sockets ?? 1) * (cpu.threads ?? 1));
  }
  const req = parseQuantity(domain?.resources?.requests?.cpu ?? domain?.resources?.limits?.cpu);
  return Number.isFinite(req) && req > 0 ? Math.max(1, Math.ceil(req)) : 1;
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
  const reported = vmi?.status?.interfaces ?? [];
  if (reported.some((i) => i.mac)) {
    return reported
      .filter((i) => i.mac)
      .map((i, n) => {
        const ips = (i.ipAddresses ?? (i.ipAddress ? [i.ipAddress] : [])).filter((ip) => ip.includes('.'));
        return {
          id: i.name ?? `nic${n}`,
          macAddress: i.mac!.toLowerCase(),
          ...(ips.length > 0 ? { ipv4Addresses: ips } : {}),
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
  if (vm.metadata?.namespace) info.namespace = vm.metadata.namespace;
  if (guestName || guestVersion) {
    info.guestOs = { ...(guestName ? { name: guestName } : {}), ...(guestVersion ? { version: guestVersion } : {}) };
  }
  return info;
}
