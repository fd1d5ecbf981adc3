/**
 * The slices of the KubeVirt and CDI object shapes this backend reads and writes. Everything is
 * optional because objects come from the API server and any field may be missing.
 */
import type { KubeObjectBase, ObjectMeta } from '../../kube/types.js';

export interface Condition {
  type?: string;
  status?: string;
  reason?: string;
  message?: string;
}

export interface Disk {
  name: string;
  bootOrder?: number;
  serial?: string;
  disk?: { bus?: string; readonly?: boolean; [k: string]: unknown };
  lun?: { bus?: string; readonly?: boolean; [k: string]: unknown };
  cdrom?: { bus?: string; readonly?: boolean; [k: string]: unknown };
  [k: string]: unknown;
}

export interface Interface {
  name: string;
  bootOrder?: number;
  macAddress?: string;
  model?: string;
  [k: string]: unknown;
}

export interface Volume {
  name: string;
  dataVolume?: { name?: string; hotpluggable?: boolean };
  persistentVolumeClaim?: { claimName?: string; hotpluggable?: boolean };
  containerDisk?: { image?: string };
  emptyDisk?: { capacity?: string };
  [k: string]: unknown;
}

export interface Bootloader {
  efi?: { secureBoot?: boolean; persistent?: boolean } | null;
  bios?: Record<string, unknown> | null;
}

export interface Firmware {
  uuid?: string;
  serial?: string;
  bootloader?: Bootloader;
  [k: string]: unknown;
}

export interface DomainSpec {
  cpu?: { cores?: number; sockets?: number; threads?: number; model?: string };
  memory?: { guest?: string };
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  firmware?: Firmware;
  features?: { acpi?: { enabled?: boolean }; smm?: { enabled?: boolean } };
  devices?: { disks?: Disk[]; interfaces?: Interface[] };
  /** VEP 171 (KubeVirt ≥ 1.8, RebootPolicy gate): Terminate ends the VMI on a guest reboot */
  rebootPolicy?: 'Reboot' | 'Terminate' | string;
}

export interface VmiSpec {
  domain?: DomainSpec;
  /** amd64 | arm64 | s390x; the VMI gets the cluster default from virt-api's mutator when unset */
  architecture?: string;
  volumes?: Volume[];
  terminationGracePeriodSeconds?: number;
}

export type RunStrategy = 'Always' | 'RerunOnFailure' | 'Manual' | 'Halted' | 'Once';

export interface VirtualMachine extends KubeObjectBase {
  spec?: {
    running?: boolean;
    runStrategy?: RunStrategy | string;
    instancetype?: { name?: string; kind?: string };
    dataVolumeTemplates?: { metadata?: ObjectMeta; spec?: { storage?: { resources?: { requests?: Record<string, string> } }; pvc?: { resources?: { requests?: Record<string, string> } } } }[];
    template?: { metadata?: ObjectMeta; spec?: VmiSpec };
  };
  status?: {
    printableStatus?: string;
    ready?: boolean;
    created?: boolean;
    conditions?: Condition[];
    stateChangeRequests?: { action?: string; uid?: string }[];
    volumeRequests?: unknown[];
  };
}

export interface VirtualMachineInstance extends KubeObjectBase {
  spec?: VmiSpec;
  status?: {
    phase?: string;
    /** kubevirt/kubevirt staging/src/kubevirt.io/api/core/v1/types.go VirtualMachineInstanceStatus.PhaseTransitionTimestamps */
    phaseTransitionTimestamps?: { phase?: string; phaseTransitionTimestamp?: string }[];
    conditions?: Condition[];
    interfaces?: { name?: string; mac?: string; ipAddress?: string; ipAddresses?: string[]; linkState?: string }[];
    guestOSInfo?: { name?: string; prettyName?: string; version?: string; versionId?: string; id?: string };
    volumeStatus?: {
      name?: string;
      phase?: string;
      reason?: string;
      message?: string;
      hotplugVolume?: unknown;
      persistentVolumeClaimInfo?: { claimName?: string; capacity?: Record<string, string> };
    }[];
  };
}

export interface DataVolume extends KubeObjectBase {
  spec?: { source?: { http?: { url?: string }; blank?: Record<string, never> }; [k: string]: unknown };
  status?: { phase?: string; progress?: string; conditions?: Condition[] };
}
