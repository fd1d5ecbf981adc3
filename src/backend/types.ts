/**
 * The backend seam: one model of a machine that both protocols (IPMI, Redfish) speak to and that
 * every backend (simulator, KubeVirt) implements. It describes a machine, not a protocol: the
 * protocol layers translate their own vocabularies (Chassis Control codes, Redfish ResetType) into
 * these actions and map BackendError codes onto completion codes / HTTP status.
 */

/** Observable power state. Transitional states exist so callers can answer "busy" honestly. */
export type PowerState = 'On' | 'Off' | 'PoweringOn' | 'PoweringOff' | 'Paused';

/**
 * Power actions.
 * - on: power on (no-op when already on)
 * - gracefulOff: ACPI shutdown request; the guest decides
 * - forceOff: pull the plug
 * - gracefulRestart: ask the guest to reboot (ACPI); requires the machine to be on
 * - forceRestart: hard reset; requires the machine to be on
 * - powerCycle: off then on; when off it simply powers on
 * - nmi: diagnostic interrupt to the guest; requires the machine to be on
 * - pause / resume: freeze and thaw the running guest
 */
export type PowerAction =
  | 'on'
  | 'gracefulOff'
  | 'forceOff'
  | 'gracefulRestart'
  | 'forceRestart'
  | 'powerCycle'
  | 'nmi'
  | 'pause'
  | 'resume';

export const POWER_ACTIONS: readonly PowerAction[] = [
  'on',
  'gracefulOff',
  'forceOff',
  'gracefulRestart',
  'forceRestart',
  'powerCycle',
  'nmi',
  'pause',
  'resume',
];

/** Boot override target, in Redfish-neutral lower camel case. */
export type BootTarget =
  | 'none'
  | 'pxe'
  | 'hdd'
  | 'cd'
  | 'usb'
  | 'floppy'
  | 'biosSetup'
  | 'diags'
  | 'uefiHttp';

export const BOOT_TARGETS: readonly BootTarget[] = [
  'none',
  'pxe',
  'hdd',
  'cd',
  'usb',
  'floppy',
  'biosSetup',
  'diags',
  'uefiHttp',
];

/** disabled: no override; once: consumed by the next boot; continuous: every boot. */
export type BootEnabled = 'disabled' | 'once' | 'continuous';
export type BootMode = 'UEFI' | 'Legacy';

export interface BootOverride {
  target: BootTarget;
  enabled: BootEnabled;
  mode: BootMode;
}

/** What a backend can honour; protocols advertise exactly this (e.g. Redfish AllowableValues). */
export interface Capabilities {
  powerActions: readonly PowerAction[];
  bootTargets: readonly BootTarget[];
  bootModes: readonly BootMode[];
}

export interface NetworkInterface {
  /** Stable id, e.g. "default" or "nic0" */
  id: string;
  macAddress: string;
  /** Addresses reported by the guest, when known */
  ipv4Addresses?: string[];
  /** IPv6 addresses reported by the guest, when known */
  ipv6Addresses?: string[];
  /** Link speed, when the platform reports one (KubeVirt does not) */
  speedMbps?: number;
  /** Link state as the platform reports it; absent = unknown (follows the power state) */
  linkUp?: boolean;
  /** The virtual NIC model (KubeVirt interface model: virtio, e1000e, ...), when known */
  model?: string;
}

/** CPU topology as the guest sees it (sockets × cores × threads logical CPUs). */
export interface ProcessorInfo {
  sockets: number;
  cores: number;
  threads: number;
  /** The CPU model the VM asks for (e.g. "host-passthrough", "Skylake-Server"), else "Virtual CPU" */
  model: string;
  /** CPU architecture in KubeVirt's (Go's) terms: amd64, arm64, s390x; absent when unknown */
  architecture?: string;
}

/**
 * One disk device of the machine. kind follows the VM's disk type; CD-ROM drives are also media
 * slots (virtual media).
 */
export interface DiskInfo {
  /** The disk's name in the VM (a DNS label): safe in a URL path segment */
  id: string;
  kind: 'disk' | 'lun' | 'cdrom';
  /** Bus as the VM declares it: virtio, sata, scsi, usb */
  bus?: string;
  /** Size in bytes, when the backing volume reports it */
  capacityBytes?: number;
  /** What backs it, e.g. "PersistentVolumeClaim root-pvc", "DataVolume root-dv", "ContainerDisk quay.io/x" */
  volume?: string;
  readOnly?: boolean;
  /** Serial number the VM gives the disk */
  serialNumber?: string;
}

export interface FirmwareInfo {
  type: 'UEFI' | 'BIOS';
  version?: string;
  /** Secure Boot at the next start (the VM spec); false with BIOS firmware */
  secureBoot: boolean;
  /** Secure Boot of the running instance, when one runs */
  secureBootCurrent?: boolean;
}

export interface SystemInfo {
  /** SMBIOS/firmware UUID, canonical lower-case 8-4-4-4-12 form */
  uuid: string;
  /** VM name */
  name: string;
  namespace?: string;
  serialNumber: string;
  manufacturer: string;
  model: string;
  cpuCount: number;
  /** Guest memory in MiB */
  memoryMiB: number;
  nics: NetworkInterface[];
  biosVersion?: string;
  /** Guest-reported OS name/version and hostname, when an agent reports them */
  guestOs?: { name?: string; version?: string; hostName?: string };
  /** CPU topology and model (cpuCount = sockets × cores × threads) */
  processors?: ProcessorInfo;
  disks?: DiskInfo[];
  firmware?: FirmwareInfo;
  /** Settable asset tag ('' when none) */
  assetTag?: string;
  sku?: string;
  partNumber?: string;
}

/**
 * A volume this service created for the machine: a new blank disk (KubeVirt: a CDI DataVolume with
 * a disk and volume in the VM spec), attached from the machine's next start.
 * - provisioning: the backing storage is being made (CDI: the DataVolume has not succeeded yet)
 * - waiting: the storage is bound only when a consumer starts (WaitForFirstConsumer)
 * - ready: the storage exists
 * - error: provisioning failed (error says why)
 */
export type VolumeState = 'provisioning' | 'waiting' | 'ready' | 'error';

export interface VolumeInfo {
  /** The disk's name in the machine (a DNS label, safe in a URL path segment); also its Drive id */
  id: string;
  /** The name given at creation, else the id */
  name: string;
  /** Size in bytes: the storage's reported capacity when known, else the size requested (rounded as the platform rounds it) */
  capacityBytes: number;
  state: VolumeState;
  /** Whether the running instance has the disk (false while off, and until the next start after a create) */
  attached: boolean;
  /** Why provisioning failed (state error) */
  error?: string;
  /** What backs it, e.g. "DataVolume vm-bmc-volume-1" */
  backing: string;
  /** The requestId of the create that made it, when it had one (a retry of that create finds it) */
  requestId?: string;
}

export interface CreateVolumeRequest {
  /** Requested size in bytes (a positive integer); the backend rounds it up as its storage does */
  capacityBytes: number;
  /** Display name (printable, at most 63 characters) */
  name?: string;
  /**
   * An opaque id of this request that a retry carries too (Redfish: a digest of the user, the
   * Idempotency-Key / X-Request-Id and the request): kept with the volume, so a retry that reaches
   * a restarted agent finds the volume (or the half-made one) the first attempt made instead of
   * making a second
   */
  requestId?: string;
}

/**
 * A virtual media slot's stable id, which Redfish also uses as the VirtualMedia Id: the simulator
 * has "Cd" and "UsbStick"; KubeVirt has one slot per CD-ROM drive the VM declares, named like the
 * drive's disk. A DNS label or a short word: safe in a URL path segment.
 */
export type MediaSlotId = string;
export type MediaKind = 'cd' | 'usb';

/**
 * State of a virtual media slot.
 * - empty: nothing inserted
 * - inserting: the image is being fetched/imported (progress 0..100 when known)
 * - inserted: the image is attached to the machine
 * - error: the last insert failed (error says why); eject clears it
 */
export type MediaState = 'empty' | 'inserting' | 'inserted' | 'error';

export interface MediaSlot {
  id: MediaSlotId;
  kind: MediaKind;
  /** Human-readable name, e.g. "Virtual CD" or "CD-ROM cdrom (sata)" */
  name?: string;
  state: MediaState;
  image?: string;
  writeProtected: boolean;
  progress?: number;
  error?: string;
}

export interface InsertMediaRequest {
  /** http:// or https:// URL of the image */
  image: string;
  writeProtected?: boolean;
}

/**
 * How far a read can be trusted. OK: the backend follows the platform live. Warning: the state was
 * read, but live updates are interrupted (it is re-read on every request meanwhile). Critical: the
 * platform cannot be reached; what the snapshot shows is the last state seen (`since` is when the
 * trouble began, `message` says what is wrong and how old the state is).
 */
export type HealthStatus = 'OK' | 'Warning' | 'Critical';

export interface MachineHealth {
  status: HealthStatus;
  message?: string;
  since?: Date;
}

/** Everything a status read needs, in one call (cheap: served from the backend's cache). */
export interface MachineSnapshot {
  power: PowerState;
  boot: BootOverride;
  info: SystemInfo;
  media: MediaSlot[];
  /** Incremented on every observable change: usable as an ETag source. */
  generation: number;
  /** Whether the state is current; absent means OK. */
  health?: MachineHealth;
}

export type MachineEvent =
  | { type: 'power'; from: PowerState; to: PowerState }
  | { type: 'boot'; boot: BootOverride }
  | { type: 'media'; slot: MediaSlot }
  /** A boot happened (power on, reset, cycle): a once override has been consumed if one was set. */
  | { type: 'booted' };

export type MachineListener = (event: MachineEvent) => void;

/** The machine one agent manages. All methods reject with BackendError on failure. */
export interface Machine {
  readonly capabilities: Capabilities;
  snapshot(): Promise<MachineSnapshot>;
  getPowerState(): Promise<PowerState>;
  /**
   * The power state when the backend holds it without waiting (the simulator always does), else
   * undefined, and the caller asks getPowerState. Throws the BackendError getPowerState would
   * reject with. Lets IPMI answer Get Chassis Status, its most frequent command, without a promise
   * hop per datagram (docs/ipmi.md "Performance"). Optional: backends may leave it out.
   */
  powerStateNow?(): PowerState | undefined;
  /**
   * The generation a snapshot() taken now would carry, when the backend knows it without waiting
   * and that snapshot would be healthy (health OK, no error); undefined otherwise, and the caller
   * takes the snapshot. Lets a reader that kept what it made from a snapshot of that generation
   * (the Systems/1 answer, resources/systems.ts) skip making a snapshot it would not use: with a
   * shared agent's 1,000 machines the simulator's snapshot copy walked a cold machine on every GET
   * (docs/scale.md "Shared mode CPU per request"). Optional: backends may leave it out.
   */
  currentGeneration?(): number | undefined;
  /** Starts the action; resolves once it has been accepted (the state may still be transitional). */
  power(action: PowerAction): Promise<void>;
  getBootOverride(): Promise<BootOverride>;
  /** Partial update: unspecified fields keep their current value. */
  setBootOverride(change: Partial<BootOverride>): Promise<BootOverride>;
  getSystemInfo(): Promise<SystemInfo>;
  listMedia(): Promise<MediaSlot[]>;
  insertMedia(slot: MediaSlotId, req: InsertMediaRequest): Promise<MediaSlot>;
  ejectMedia(slot: MediaSlotId): Promise<MediaSlot>;
  /** Set the asset tag ('' clears it); persisted by the backend (KubeVirt: a VM annotation). */
  setAssetTag?(tag: string): Promise<void>;
  /**
   * Enable or disable UEFI Secure Boot for the next start (a running guest keeps what it booted
   * with). Conflict when the firmware is BIOS.
   */
  setSecureBoot?(enabled: boolean): Promise<void>;
  /**
   * Volumes this service created (listVolumes), a new blank disk (createVolume: applied at the
   * machine's next start, resolves once the disk is in the machine's definition), and the removal
   * of one of them (deleteVolume: NotFound for any disk the service did not create; the running
   * instance keeps it until its next start). All three or none.
   */
  listVolumes?(): Promise<VolumeInfo[]>;
  createVolume?(req: CreateVolumeRequest): Promise<VolumeInfo>;
  deleteVolume?(id: string): Promise<void>;
  /**
   * When the current power-on period began, as the platform records it (KubeVirt: the VMI's
   * Running transition); undefined while off. Backends without such a record leave it out, and
   * IPMI's POH counter counts power events itself.
   */
  poweredOnSince?(): Promise<Date | undefined>;
  /** Subscribe to changes; returns an unsubscribe function. */
  on(listener: MachineListener): () => void;
  /** Release watches/timers. */
  close(): Promise<void>;
  /**
   * The machine's serial console, when the backend has one (see src/backend/console.ts). Each call
   * attaches one more viewer; the console itself lives as long as the machine.
   */
  openConsole?(): ConsoleStream;
}

/**
 * - connected: bytes flow both ways
 * - offline: nothing to read and nothing accepted (the VM is off, or its console cannot be reached
 *   yet); becomes connected by itself when the VM runs again
 */
export type ConsoleState = 'connected' | 'offline';

export type ConsoleEvent =
  /** Output from the guest */
  | { type: 'data'; data: Buffer }
  | { type: 'state'; state: ConsoleState }
  /** Room again in the input queue after write() accepted less than offered */
  | { type: 'drain' };

/**
 * One viewer's attachment to a machine's serial console: the same stream serves IPMI SOL now and
 * a browser console later. Memory is bounded: the backlog is a ring of recent output, the input
 * queue has a fixed size.
 */
export interface ConsoleStream {
  /** Recent output (at most the ring size), as it was when this viewer attached. */
  readonly backlog: Buffer;
  readonly state: ConsoleState;
  /**
   * Queues bytes for the guest. Returns how many were taken: fewer than offered when the input
   * queue is full (wait for 'drain'), 0 when offline. Never throws.
   */
  write(data: Buffer): number;
  /** A serial break to the guest (dropped when offline or unsupported). */
  sendBreak(): void;
  /** Drops input queued but not yet delivered to the guest. */
  flushInput(): void;
  /**
   * Back-pressure towards the guest: true asks the source to stop producing output until this
   * viewer calls hold(false) (the KubeVirt bridge stops reading its websocket, so the guest's
   * serial port blocks). The console holds while any viewer holds.
   */
  hold(on: boolean): void;
  /** Subscribe; returns an unsubscribe function. */
  on(listener: (event: ConsoleEvent) => void): () => void;
  /** Detach this viewer (the console stays for others). */
  close(): void;
}

export type BackendErrorCode =
  /** The VM (or slot) does not exist */
  | 'NotFound'
  /** The request conflicts with the current state (e.g. restart while off) */
  | 'Conflict'
  /** A transition is in progress; retry later */
  | 'Busy'
  /** The backend (e.g. the Kubernetes API) cannot be reached */
  | 'Unavailable'
  /** The backend cannot do this at all (e.g. NMI on a platform without it) */
  | 'Unsupported'
  /** The request itself is invalid (e.g. a bad image URL) */
  | 'InvalidArgument';

export class BackendError extends Error {
  readonly code: BackendErrorCode;
  /** Suggested delay before retrying, for Busy/Unavailable */
  readonly retryAfterSeconds?: number;

  constructor(code: BackendErrorCode, message: string, opts: { cause?: unknown; retryAfterSeconds?: number } = {}) {
    super(message, opts.cause !== undefined ? { cause: opts.cause } : undefined);
    this.name = 'BackendError';
    this.code = code;
    if (opts.retryAfterSeconds !== undefined) this.retryAfterSeconds = opts.retryAfterSeconds;
  }
}

export function isBackendError(e: unknown, code?: BackendErrorCode): e is BackendError {
  return e instanceof BackendError && (code === undefined || e.code === code);
}
