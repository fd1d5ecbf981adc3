/**
 * What the system is made of, read live from the backend seam (SystemInfo): Processors (one per
 * socket), Memory (the guest memory as one module), Storage with one Drive per disk (CD-ROM drives
 * are virtual media, see virtualmedia.ts), SimpleStorage (the same disks, for clients that read
 * only that), SecureBoot (PATCH SecureBootEnable: applies at the next start) and Bios with its
 * settings object Bios/Settings (PATCH Attributes/SecureBoot: the same write, applied at the next start).
 *
 * Nothing here invents hardware facts the platform does not know: a VM has no DIMM type, no drive
 * rotation speed, no CPU manufacturer; those properties are left out (a drive's MediaType, which
 * Ironic's profile requires, is null: unknown). Storage has one controller per bus its drives use
 * and a Volumes collection of the disks created through this service (volumes.ts; no RAID).
 */
import type { DiskInfo, MachineSnapshot, NetworkInterface, ProcessorInfo, SystemInfo } from '../../backend/types.js';
import { RedfishError, renderMessage } from '../core/errors.js';
import { checkIfMatch, collection, sendResource } from '../core/odata.js';
import { validatePatch, withWriteableProperties, type WritableTree } from '../core/patch.js';
import type { OperationHandlers, RedfishContext } from '../core/types.js';
import { VOLUMES, volumePath } from './volumes.js';
import { CHASSIS, CHASSIS_ID, SYSTEM, SYSTEM_ID, backend, link, propertyPaths, requireId, status, type Annotated, type Schemas } from '../core/resource.js';

export const PROCESSORS = `${SYSTEM}/Processors`;
export const MEMORY = `${SYSTEM}/Memory`;
export const STORAGE = `${SYSTEM}/Storage`;
export const SIMPLE_STORAGE = `${SYSTEM}/SimpleStorage`;
export const SECURE_BOOT = `${SYSTEM}/SecureBoot`;
export const BIOS = `${SYSTEM}/Bios`;
/** The one storage subsystem and the one memory module. */
const STORAGE_ID = '1';
const MEMORY_ID = 'GuestMemory';

async function snapshot(ctx: RedfishContext): Promise<MachineSnapshot> {
  requireId(ctx, 'ComputerSystemId', SYSTEM_ID, 'ComputerSystem');
  return backend(ctx.state.deps.machine.snapshot());
}

/** The processor topology (sockets × cores × threads), from the seam or, for old backends, cpuCount sockets. */
export function processorsOf(info: SystemInfo): ProcessorInfo {
  return info.processors ?? { sockets: Math.max(1, info.cpuCount), cores: 1, threads: 1, model: 'Virtual CPU' };
}

/** KubeVirt architecture → Redfish ProcessorArchitecture and InstructionSet (s390x has neither: OEM). */
const ARCH: Record<string, [Schemas['Processor_v1_22_0_ProcessorArchitecture'], Schemas['Processor_v1_22_0_InstructionSet']]> = {
  amd64: ['x86', 'x86-64'],
  arm64: ['ARM', 'ARM-A64'],
  s390x: ['OEM', 'OEM'],
};

const running = (snap: MachineSnapshot): boolean => snap.power === 'On' || snap.power === 'Paused';

// ---- Processors ------------------------------------------------------------------------------

const processorIds = (info: SystemInfo): string[] => Array.from({ length: processorsOf(info).sockets }, (_, i) => `CPU${i}`);

function processorBody(info: SystemInfo, id: string, index: number): Record<string, unknown> {
  const p = processorsOf(info);
  const body: Annotated<Schemas['Processor_v1_22_0_Processor']> = {
    '@odata.type': '#Processor.v1_22_0.Processor',
    '@odata.id': `${PROCESSORS}/${id}`,
    Id: id,
    Name: `Virtual CPU socket ${index}`,
    Description: `Virtual CPU socket ${index}: ${p.cores} core(s) of ${p.threads} thread(s)`,
    ProcessorType: 'CPU',
    Model: p.model,
    Socket: `Socket ${index}`,
    TotalCores: p.cores,
    TotalEnabledCores: p.cores,
    TotalThreads: p.cores * p.threads,
    Status: status(),
  };
  const arch = p.architecture ? ARCH[p.architecture] : undefined;
  if (arch) [body.ProcessorArchitecture, body.InstructionSet] = arch;
  return body;
}

// ---- Memory ----------------------------------------------------------------------------------

function memoryBody(info: SystemInfo): Record<string, unknown> {
  const body: Annotated<Schemas['Memory_v1_23_0_Memory']> = {
    '@odata.type': '#Memory.v1_23_0.Memory',
    '@odata.id': `${MEMORY}/${MEMORY_ID}`,
    Id: MEMORY_ID,
    Name: 'Guest memory',
    Description: 'The memory the VM gives its guest (one virtual module)',
    MemoryType: 'DRAM',
    CapacityMiB: info.memoryMiB,
    Status: status(),
  };
  return body;
}

// ---- Storage / Drives ------------------------------------------------------------------------

/** Disks that are drives (CD-ROM drives are virtual media slots). */
const drivesOf = (info: SystemInfo): DiskInfo[] => (info.disks ?? []).filter((d) => d.kind !== 'cdrom');
const drivePath = (d: DiskInfo): string => `${STORAGE}/${STORAGE_ID}/Drives/${encodeURIComponent(d.id)}`;

/** Bus → Redfish Protocol: virtio-blk is a PCIe function; SATA/USB are what they say; SCSI (virtio-scsi) has no Redfish value. */
const PROTOCOLS: Record<string, Schemas['Protocol_Protocol']> = { virtio: 'PCIe', sata: 'SATA', usb: 'USB' };

function driveDescription(d: DiskInfo): string {
  const what = d.kind === 'lun' ? 'LUN' : 'disk';
  return `${d.bus ?? 'virtual'} ${what} ${d.id}${d.volume ? `, backed by ${d.volume}` : ''}`;
}

function driveBody(d: DiskInfo, volume = false): Record<string, unknown> {
  const body: Annotated<Schemas['Drive_v1_22_0_Drive']> = {
    '@odata.type': '#Drive.v1_22_0.Drive',
    '@odata.id': drivePath(d),
    Id: d.id,
    Name: `Virtual ${d.kind === 'lun' ? 'LUN' : 'disk'} ${d.id}`,
    Description: driveDescription(d),
    Status: status(),
    WriteCacheEnabled: false,
    // null: whatever backs a virtual disk (a PVC, an image) tells the VM nothing about SSD or HDD
    MediaType: null,
  };
  if (d.capacityBytes !== undefined) body.CapacityBytes = d.capacityBytes;
  const protocol = d.bus ? PROTOCOLS[d.bus] : undefined;
  if (protocol) body.Protocol = protocol;
  if (d.serialNumber) body.SerialNumber = d.serialNumber;
  if (d.readOnly) body.WriteCacheEnabled = false;
  // only a disk created as a Volume has one (volumes.ts); the VM's other disks are no logical volumes
  body.Links = { Volumes: volume ? [link(volumePath(d.id))] : [], 'Volumes@odata.count': volume ? 1 : 0 };
  return body;
}

// ---- Storage controllers (one per bus the drives use) ------------------------------------------

const CONTROLLERS = `${STORAGE}/${STORAGE_ID}/Controllers`;

/**
 * The virtual controller behind each bus, as KubeVirt/QEMU build it: virtio-blk disks are PCI
 * functions of their own, SATA disks hang off an AHCI controller (q35), SCSI disks off one
 * virtio-scsi controller, USB disks off the xHCI controller; all of them sit on the guest's PCIe bus.
 */
const CONTROLLER_KINDS: Record<string, { name: string; device?: Schemas['Protocol_Protocol'] }> = {
  virtio: { name: 'VirtIO block', device: 'PCIe' },
  sata: { name: 'AHCI SATA controller', device: 'SATA' },
  scsi: { name: 'VirtIO SCSI controller' },
  usb: { name: 'xHCI USB controller', device: 'USB' },
};

/** Buses of this storage subsystem's drives, in first-seen order (a disk without one: KubeVirt's default, virtio). */
function busesOf(info: SystemInfo): string[] {
  return [...new Set(drivesOf(info).map((d) => d.bus ?? 'virtio'))].filter((b) => b in CONTROLLER_KINDS);
}

function controllerBody(info: SystemInfo, bus: string): Record<string, unknown> {
  const kind = CONTROLLER_KINDS[bus]!;
  const drives = drivesOf(info).filter((d) => (d.bus ?? 'virtio') === bus);
  const body: Annotated<Schemas['StorageController_v1_11_0_StorageController']> = {
    '@odata.type': '#StorageController.v1_11_0.StorageController',
    '@odata.id': `${CONTROLLERS}/${bus}`,
    Id: bus,
    Name: kind.name,
    Description: `The virtual ${bus} controller of ${drives.map((d) => d.id).join(', ')}`,
    Status: status(),
    SupportedControllerProtocols: ['PCIe'],
    // no RAID: every disk is presented as is
    SupportedRAIDTypes: [],
  };
  if (kind.device) body.SupportedDeviceProtocols = [kind.device];
  return body;
}

function storageBody(info: SystemInfo): Record<string, unknown> {
  const drives = drivesOf(info);
  const body: Annotated<Schemas['Storage_v1_21_0_Storage']> = {
    '@odata.type': '#Storage.v1_21_0.Storage',
    '@odata.id': `${STORAGE}/${STORAGE_ID}`,
    Id: STORAGE_ID,
    Name: 'Virtual storage',
    Description: 'The disks of the VM',
    Drives: drives.map((d) => link(drivePath(d))),
    'Drives@odata.count': drives.length,
    Controllers: link(CONTROLLERS),
    // the disks created through this service (volumes.ts); the VM's own disks are Drives only
    Volumes: link(VOLUMES),
    Status: status(),
  };
  return body;
}

function simpleStorageBody(info: SystemInfo): Record<string, unknown> {
  const body: Annotated<Schemas['SimpleStorage_v1_3_2_SimpleStorage']> = {
    '@odata.type': '#SimpleStorage.v1_3_2.SimpleStorage',
    '@odata.id': `${SIMPLE_STORAGE}/${STORAGE_ID}`,
    Id: STORAGE_ID,
    Name: 'Virtual storage',
    Description: 'The disks of the VM',
    // the full representation (Tacklebox and others then skip these Devices)
    Links: { Storage: link(`${STORAGE}/${STORAGE_ID}`) },
    Devices: drivesOf(info).map((d) => ({
      Name: d.id,
      ...(d.capacityBytes !== undefined ? { CapacityBytes: d.capacityBytes } : {}),
      Status: status(),
    })),
    Status: status(),
  };
  return body;
}

// ---- SecureBoot ------------------------------------------------------------------------------

/** What a SecureBoot PATCH may change (nothing when the backend cannot write the VM's firmware settings). */
const secureBootWritable = (canSet: boolean): WritableTree => (canSet ? { SecureBootEnable: 'boolean' } : {});

function secureBootBody(snap: MachineSnapshot, writable: WritableTree): Record<string, unknown> {
  const fw = snap.info.firmware;
  const body: Annotated<Schemas['SecureBoot_v1_1_2_SecureBoot']> = {
    '@odata.type': '#SecureBoot.v1_1_2.SecureBoot',
    '@odata.id': SECURE_BOOT,
    Id: 'SecureBoot',
    Name: 'UEFI Secure Boot',
    Description:
      fw?.type === 'BIOS'
        ? 'The VM boots BIOS firmware: Secure Boot needs UEFI'
        : 'SecureBootEnable is what the VM boots with at its next start; SecureBootCurrentBoot what the running guest booted with',
    SecureBootEnable: fw?.secureBoot ?? false,
  };
  if (running(snap) && fw?.secureBootCurrent !== undefined) body.SecureBootCurrentBoot = fw.secureBootCurrent ? 'Enabled' : 'Disabled';
  return withWriteableProperties(body, writable);
}

/**
 * Bios and its settings object (DSP0266 "Settings resource"; Bios_v1.xml): the Bios resource shows
 * what the firmware runs with, Bios/Settings what the VM spec asks for at its next start, the only
 * apply time a VM has (`OnReset`: KubeVirt builds the domain when a VMI starts). The one writable
 * attribute is SecureBoot (the same VM-spec write as SecureBoot.SecureBootEnable). FirmwareType is
 * read-only here: the VM's bootloader is written by Boot.BootSourceOverrideMode, which a Once
 * override restores after its boot (backend/kubevirt/boot.ts), so it is no lasting firmware setting.
 * FirmwareType comes from the VM spec in both (the seam reports no running firmware type);
 * SecureBoot in Bios is what the running guest booted with when KubeVirt reports it.
 * There is no attribute registry (the attributes are described in docs/redfish.md).
 */
export const BIOS_SETTINGS = `${BIOS}/Settings`;

/** What a Bios/Settings PATCH may change, inside Attributes (nothing when the backend cannot write the VM's firmware). */
const biosWritable = (canSet: boolean): WritableTree => ({ Attributes: { object: canSet ? { SecureBoot: 'boolean' } : {} } });

function biosAttributes(snap: MachineSnapshot, pending: boolean): Record<string, string | boolean> {
  const fw = snap.info.firmware;
  // the running guest's Secure Boot state when it is known, else (off, or not reported) what the VM spec says
  const current = running(snap) && fw?.secureBootCurrent !== undefined ? fw.secureBootCurrent : fw?.secureBoot;
  const attrs: Record<string, string | boolean> = { FirmwareType: fw?.type ?? 'UEFI', SecureBoot: (pending ? fw?.secureBoot : current) ?? false };
  if (fw?.version) attrs.FirmwareVersion = fw.version;
  return attrs;
}

function biosBody(snap: MachineSnapshot): Record<string, unknown> {
  const fw = snap.info.firmware;
  const body: Annotated<Schemas['Bios_v1_2_3_Bios']> = {
    '@odata.type': '#Bios.v1_2_3.Bios',
    '@odata.id': BIOS,
    Id: 'BIOS',
    Name: 'Virtual firmware',
    Description: `${fw?.type === 'BIOS' ? 'SeaBIOS' : 'OVMF (UEFI)'} firmware of the VM as it runs; changes go to ${BIOS_SETTINGS} and apply at the next start`,
    Attributes: biosAttributes(snap, false) as never,
    '@Redfish.Settings': {
      '@odata.type': '#Settings.v1_4_0.Settings',
      SettingsObject: link(BIOS_SETTINGS),
      SupportedApplyTimes: ['OnReset'],
    },
  };
  return body;
}

function biosSettingsBody(snap: MachineSnapshot, writable: WritableTree): Record<string, unknown> {
  const body: Annotated<Schemas['Bios_v1_2_3_Bios']> = {
    '@odata.type': '#Bios.v1_2_3.Bios',
    '@odata.id': BIOS_SETTINGS,
    Id: 'Settings',
    Name: 'Virtual firmware: pending settings',
    Description: 'The firmware settings of the VM spec, applied when the VM next starts',
    Attributes: biosAttributes(snap, true) as never,
  };
  return withWriteableProperties(body, writable);
}

/**
 * Write Secure Boot into the VM spec (applied at the next start), for SecureBoot and Bios/Settings
 * PATCH alike: refused up front with BIOS firmware (Secure Boot needs UEFI); `property` names the
 * field in the caller's body.
 */
async function writeSecureBoot(ctx: RedfishContext, before: MachineSnapshot, want: boolean, property: string): Promise<void> {
  const machine = ctx.state.deps.machine;
  if (!machine.setSecureBoot) throw new RedfishError(400, 'PropertyNotWritable', [property], { property });
  if (want && before.info.firmware?.type === 'BIOS') {
    throw new RedfishError(400, 'PropertyValueConflict', [property, 'Boot/BootSourceOverrideMode'], {
      property,
      detail: 'Secure Boot needs UEFI firmware; the VM boots BIOS (PATCH Systems/1 Boot/BootSourceOverrideMode to UEFI first).',
    });
  }
  await backend(machine.setSecureBoot(want));
  ctx.state.logger.info({ secureBoot: want }, 'secure boot set');
}

/**
 * A settings PATCH may say when to apply (DSP0266 "Settings resource": `@Redfish.SettingsApplyTime`,
 * sushy's `set_attributes(..., apply_time=...)`): OnReset is the only time a VM applies firmware
 * settings, so that one is accepted (and removed before the property check), any other refused.
 */
function withoutApplyTime(raw: unknown): unknown {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw) || !Object.hasOwn(raw, '@Redfish.SettingsApplyTime')) return raw;
  const { '@Redfish.SettingsApplyTime': when, ...rest } = raw as Record<string, unknown>;
  const applyTime = typeof when === 'object' && when !== null ? (when as Record<string, unknown>).ApplyTime : undefined;
  if (applyTime !== undefined && applyTime !== 'OnReset') {
    throw new RedfishError(400, 'PropertyValueNotInList', [String(applyTime), '@Redfish.SettingsApplyTime/ApplyTime'], {
      property: '#/@Redfish.SettingsApplyTime/ApplyTime',
      detail: 'Firmware settings of a VM apply when it next starts: ApplyTime OnReset is the only one supported.',
    });
  }
  const others = typeof when === 'object' && when !== null ? Object.keys(when).filter((k) => k !== 'ApplyTime' && !k.startsWith('@odata.')) : ['@Redfish.SettingsApplyTime'];
  if (others.length > 0) {
    throw new RedfishError(400, 'PropertyValueNotInList', [others.join(', '), '@Redfish.SettingsApplyTime'], {
      property: '#/@Redfish.SettingsApplyTime',
      detail: 'Only ApplyTime OnReset is supported (no maintenance window).',
    });
  }
  return rest;
}

/** ResetRequired when a running guest has not booted with the Secure Boot state just written. */
function resetRequiredIf(after: MachineSnapshot, want: boolean | undefined, out: Record<string, unknown>): void {
  if (want !== undefined && running(after) && after.info.firmware?.secureBootCurrent !== want) {
    out['@Message.ExtendedInfo'] = [renderMessage({ messageId: 'ResetRequired', args: [`${SYSTEM}/Actions/ComputerSystem.Reset`, 'PowerCycle'] })];
  }
}

// ---- Chassis NetworkAdapters (one per virtual NIC; the System's EthernetInterfaces carry the addresses) ----

const ADAPTERS = `${CHASSIS}/NetworkAdapters`;

function adapterBody(nic: NetworkInterface): Record<string, unknown> {
  const body: Annotated<Schemas['NetworkAdapter_v1_14_0_NetworkAdapter']> = {
    '@odata.type': '#NetworkAdapter.v1_14_0.NetworkAdapter',
    '@odata.id': `${ADAPTERS}/${encodeURIComponent(nic.id)}`,
    Id: nic.id,
    Name: `Virtual NIC ${nic.id}`,
    Description: `Virtual network adapter ${nic.id} (MAC ${nic.macAddress.toUpperCase()}); see ${SYSTEM}/EthernetInterfaces/${nic.id}`,
    Status: status(),
  };
  if (nic.model) body.Model = nic.model;
  return body;
}

export const handlers: OperationHandlers = {
  listChassisNetworkAdapters: async (ctx) => {
    requireId(ctx, 'ChassisId', CHASSIS_ID, 'Chassis');
    const info = await backend(ctx.state.deps.machine.getSystemInfo());
    sendResource(ctx, collection(ctx, ADAPTERS, 'NetworkAdapterCollection', 'Network Adapter Collection', info.nics.map((n) => `${ADAPTERS}/${encodeURIComponent(n.id)}`)));
  },

  getChassisNetworkAdapter: async (ctx) => {
    requireId(ctx, 'ChassisId', CHASSIS_ID, 'Chassis');
    const info = await backend(ctx.state.deps.machine.getSystemInfo());
    const id = ctx.params.NetworkAdapterId ?? '';
    const nic = info.nics.find((n) => n.id === id);
    if (!nic) throw new RedfishError(404, 'ResourceNotFound', ['NetworkAdapter', id]);
    sendResource(ctx, adapterBody(nic), { etag: true });
  },

  listSystemProcessors: async (ctx) => {
    const snap = await snapshot(ctx);
    sendResource(ctx, collection(ctx, PROCESSORS, 'ProcessorCollection', 'Processor Collection', processorIds(snap.info).map((id) => `${PROCESSORS}/${id}`)));
  },

  getSystemProcessor: async (ctx) => {
    const snap = await snapshot(ctx);
    const id = ctx.params.ProcessorId ?? '';
    const index = processorIds(snap.info).indexOf(id);
    if (index < 0) throw new RedfishError(404, 'ResourceNotFound', ['Processor', id]);
    sendResource(ctx, processorBody(snap.info, id, index), { etag: true });
  },

  listSystemMemory: async (ctx) => {
    const snap = await snapshot(ctx);
    const members = snap.info.memoryMiB > 0 ? [`${MEMORY}/${MEMORY_ID}`] : [];
    sendResource(ctx, collection(ctx, MEMORY, 'MemoryCollection', 'Memory Collection', members));
  },

  getSystemMemory: async (ctx) => {
    const snap = await snapshot(ctx);
    const id = ctx.params.MemoryId ?? '';
    if (id !== MEMORY_ID || snap.info.memoryMiB <= 0) throw new RedfishError(404, 'ResourceNotFound', ['Memory', id]);
    sendResource(ctx, memoryBody(snap.info), { etag: true });
  },

  listSystemStorage: async (ctx) => {
    await snapshot(ctx);
    sendResource(ctx, collection(ctx, STORAGE, 'StorageCollection', 'Storage Collection', [`${STORAGE}/${STORAGE_ID}`]));
  },

  getSystemStorage: async (ctx) => {
    const snap = await snapshot(ctx);
    requireId(ctx, 'StorageId', STORAGE_ID, 'Storage');
    sendResource(ctx, storageBody(snap.info), { etag: true });
  },

  listSystemStorageControllers: async (ctx) => {
    const snap = await snapshot(ctx);
    requireId(ctx, 'StorageId', STORAGE_ID, 'Storage');
    sendResource(ctx, collection(ctx, CONTROLLERS, 'StorageControllerCollection', 'Storage Controller Collection', busesOf(snap.info).map((b) => `${CONTROLLERS}/${b}`)));
  },

  getSystemStorageController: async (ctx) => {
    const snap = await snapshot(ctx);
    requireId(ctx, 'StorageId', STORAGE_ID, 'Storage');
    const id = ctx.params.StorageControllerId ?? '';
    if (!busesOf(snap.info).includes(id)) throw new RedfishError(404, 'ResourceNotFound', ['StorageController', id]);
    sendResource(ctx, controllerBody(snap.info, id), { etag: true });
  },

  getSystemDrive: async (ctx) => {
    const snap = await snapshot(ctx);
    requireId(ctx, 'StorageId', STORAGE_ID, 'Storage');
    const id = ctx.params.DriveId ?? '';
    const d = drivesOf(snap.info).find((x) => x.id === id);
    if (!d) throw new RedfishError(404, 'ResourceNotFound', ['Drive', id]);
    // a disk this service created is also a Volume (volumes.ts): the two link each other
    const machine = ctx.state.deps.machine;
    const volume = machine.listVolumes ? (await backend(machine.listVolumes())).some((v) => v.id === d.id) : false;
    sendResource(ctx, driveBody(d, volume), { etag: true });
  },

  listSystemSimpleStorage: async (ctx) => {
    await snapshot(ctx);
    sendResource(ctx, collection(ctx, SIMPLE_STORAGE, 'SimpleStorageCollection', 'Simple Storage Collection', [`${SIMPLE_STORAGE}/${STORAGE_ID}`]));
  },

  getSystemSimpleStorage: async (ctx) => {
    const snap = await snapshot(ctx);
    requireId(ctx, 'SimpleStorageId', STORAGE_ID, 'SimpleStorage');
    sendResource(ctx, simpleStorageBody(snap.info), { etag: true });
  },

  getSystemSecureBoot: async (ctx) => {
    sendResource(ctx, secureBootBody(await snapshot(ctx), secureBootWritable(ctx.state.deps.machine.setSecureBoot !== undefined)), { etag: true });
  },

  patchSystemSecureBoot: async (ctx) => {
    const machine = ctx.state.deps.machine;
    const before = await snapshot(ctx);
    const writable = secureBootWritable(machine.setSecureBoot !== undefined);
    const current = secureBootBody(before, writable);
    checkIfMatch(ctx, current);
    const body = validatePatch((ctx.request as { body?: unknown }).body, {
      writable,
      readOnly: propertyPaths(current).concat(['SecureBootCurrentBoot', 'SecureBootMode', 'SecureBootDatabases']),
    });
    const want = body.SecureBootEnable as boolean | undefined;
    if (want !== undefined) await writeSecureBoot(ctx, before, want, 'SecureBootEnable');
    const after = await backend(machine.snapshot());
    const out = secureBootBody(after, writable);
    // applied at the next start: a running guest keeps what it booted with until a new instance boots
    resetRequiredIf(after, want, out);
    sendResource(ctx, out, { etag: true });
  },

  getSystemBios: async (ctx) => {
    sendResource(ctx, biosBody(await snapshot(ctx)), { etag: true });
  },

  getSystemBiosSettings: async (ctx) => {
    sendResource(ctx, biosSettingsBody(await snapshot(ctx), biosWritable(ctx.state.deps.machine.setSecureBoot !== undefined)), { etag: true });
  },

  patchSystemBiosSettings: async (ctx) => {
    const machine = ctx.state.deps.machine;
    const before = await snapshot(ctx);
    const writable = biosWritable(machine.setSecureBoot !== undefined);
    const current = biosSettingsBody(before, writable);
    checkIfMatch(ctx, current);
    const body = validatePatch(withoutApplyTime((ctx.request as { body?: unknown }).body), { writable, readOnly: propertyPaths(current) });
    const want = (body.Attributes as { SecureBoot?: boolean } | undefined)?.SecureBoot;
    if (want !== undefined) await writeSecureBoot(ctx, before, want, 'Attributes/SecureBoot');
    const after = await backend(machine.snapshot());
    const out = biosSettingsBody(after, writable);
    resetRequiredIf(after, want, out);
    sendResource(ctx, out, { etag: true });
  },
};
