/**
 * System Boot Options parameter 5 ("boot flags", IPMI v2.0 §28.12/28.13 Table 28-14) and its
 * mapping onto the backend's BootOverride. Pure functions: no I/O, no state.
 *
 * Byte 1: [7] flags valid, [6] persistent (all future boots), [5] EFI boot, [4:0] reserved.
 * Byte 2: [7] CMOS clear, [6] lock keyboard, [5:2] boot device selector, [1] screen blank,
 *         [0] lock out reset button.
 * Bytes 3..5: console/verbosity/lock-out flags, BIOS mux, device instance. Stored and echoed only.
 */
import type { BootEnabled, BootMode, BootOverride, BootTarget, Capabilities } from '../../backend/types.js';

export const BOOT_FLAGS_LENGTH = 5;

export const FLAG_VALID = 0x80;
export const FLAG_PERSISTENT = 0x40;
export const FLAG_EFI = 0x20;
export const DEVICE_MASK = 0x3c;

/** Boot device selector values as they appear in byte 2 (already shifted into bits 5:2). */
export const BootDevice = {
  NONE: 0x00,
  PXE: 0x04,
  HDD: 0x08,
  HDD_SAFE: 0x0c,
  DIAG: 0x10,
  CD: 0x14,
  BIOS_SETUP: 0x18,
  REMOTE_FLOPPY: 0x1c,
  REMOTE_CD: 0x20,
  REMOTE_MEDIA: 0x24,
  REMOTE_HDD: 0x2c,
  FLOPPY: 0x3c,
} as const;

/**
 * Selector → backend target. Safe mode is still the disk. The "remote" selectors name media
 * attached through the BMC, which for a VM is virtual media: remote CD/primary remote media boot
 * the virtual CD, remote floppy/primary removable media boots the virtual USB slot.
 * Selectors the spec reserves (0x28, 0x30, 0x34, 0x38) map to nothing.
 */
const DEVICE_TO_TARGET: ReadonlyMap<number, BootTarget> = new Map<number, BootTarget>([
  [BootDevice.NONE, 'none'],
  [BootDevice.PXE, 'pxe'],
  [BootDevice.HDD, 'hdd'],
  [BootDevice.HDD_SAFE, 'hdd'],
  [BootDevice.DIAG, 'diags'],
  [BootDevice.CD, 'cd'],
  [BootDevice.BIOS_SETUP, 'biosSetup'],
  [BootDevice.REMOTE_FLOPPY, 'usb'],
  [BootDevice.REMOTE_CD, 'cd'],
  [BootDevice.REMOTE_MEDIA, 'cd'],
  [BootDevice.REMOTE_HDD, 'hdd'],
  [BootDevice.FLOPPY, 'floppy'],
]);

/**
 * Target → the selector we report when the stored raw selector does not already name it.
 * IPMI has no HTTP boot; a UEFI HTTP override is network boot, the nearest being PXE.
 */
const TARGET_TO_DEVICE: Readonly<Record<BootTarget, number>> = {
  none: BootDevice.NONE,
  pxe: BootDevice.PXE,
  hdd: BootDevice.HDD,
  cd: BootDevice.CD,
  usb: BootDevice.REMOTE_FLOPPY,
  floppy: BootDevice.FLOPPY,
  biosSetup: BootDevice.BIOS_SETUP,
  diags: BootDevice.DIAG,
  uefiHttp: BootDevice.PXE,
};

export function deviceToTarget(selector: number): BootTarget | undefined {
  return DEVICE_TO_TARGET.get(selector & DEVICE_MASK);
}

export function targetToDevice(target: BootTarget): number {
  return TARGET_TO_DEVICE[target];
}

export interface DecodedBootFlags {
  valid: boolean;
  persistent: boolean;
  efi: boolean;
  /** Byte 2 bits 5:2, unshifted (e.g. 0x04 for PXE) */
  device: number;
}

export function decodeBootFlags(bytes: Uint8Array): DecodedBootFlags {
  const b1 = bytes[0] ?? 0;
  const b2 = bytes[1] ?? 0;
  return {
    valid: (b1 & FLAG_VALID) !== 0,
    persistent: (b1 & FLAG_PERSISTENT) !== 0,
    efi: (b1 & FLAG_EFI) !== 0,
    device: b2 & DEVICE_MASK,
  };
}

export type BootFlagsToOverride =
  | { ok: true; change: Partial<BootOverride> }
  | { ok: false; reason: string };

/**
 * Translate a Set System Boot Options parameter 5 write into a BootOverride change for this
 * machine. valid+persistent → continuous, valid → once, not valid → disabled. A device the
 * machine cannot boot from is refused when the flags are valid (the caller answers 0xCC); when
 * the flags are not valid the device is kept only if the machine supports it. A boot type the
 * machine does not offer leaves its mode alone: most clients cannot say "don't care" and send
 * the legacy bit by default.
 */
export function bootFlagsToOverride(bytes: Uint8Array, caps: Capabilities): BootFlagsToOverride {
  if (bytes.length !== BOOT_FLAGS_LENGTH) return { ok: false, reason: 'boot flags need 5 bytes' };
  const f = decodeBootFlags(bytes);
  const target = deviceToTarget(f.device);
  const enabled: BootEnabled = !f.valid ? 'disabled' : f.persistent ? 'continuous' : 'once';
  const change: Partial<BootOverride> = { enabled };
  const targetSupported = target !== undefined && caps.bootTargets.includes(target);
  if (f.valid && !targetSupported) {
    return {
      ok: false,
      reason:
        target === undefined
          ? `boot device selector 0x${f.device.toString(16)} is reserved`
          : `boot target ${target} is not supported by this machine`,
    };
  }
  if (targetSupported) change.target = target;
  const mode: BootMode = f.efi ? 'UEFI' : 'Legacy';
  if (caps.bootModes.includes(mode)) change.mode = mode;
  return { ok: true, change };
}

/**
 * The parameter 5 bytes to report: the machine's override decides valid/persistent/EFI/device,
 * every other bit comes from the last stored write. The stored selector wins when it names the
 * current target (so "safe mode" or "remote CD" read back as written); otherwise the target's
 * canonical selector is used (a Redfish change, or a consumed once override).
 */
export function overrideToBootFlags(boot: BootOverride, stored: Uint8Array): Buffer {
  const out = Buffer.alloc(BOOT_FLAGS_LENGTH);
  for (let i = 0; i < BOOT_FLAGS_LENGTH; i++) out[i] = stored[i] ?? 0;
  const storedPersistent = (out[0]! & FLAG_PERSISTENT) !== 0;
  let b1 = out[0]! & 0x1f;
  if (boot.enabled !== 'disabled') b1 |= FLAG_VALID;
  // Persistence is only defined by the override while it is enabled; a disabled one keeps the
  // bit that was written.
  if (boot.enabled === 'continuous' || (boot.enabled === 'disabled' && storedPersistent)) b1 |= FLAG_PERSISTENT;
  if (boot.mode === 'UEFI') b1 |= FLAG_EFI;
  const storedDevice = out[1]! & DEVICE_MASK;
  const device = deviceToTarget(storedDevice) === boot.target ? storedDevice : targetToDevice(boot.target);
  out[0] = b1;
  out[1] = (out[1]! & ~DEVICE_MASK) | device;
  return out;
}
