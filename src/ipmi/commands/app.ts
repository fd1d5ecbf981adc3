/**
 * Application netFn (0x06) commands other than session management (owned by the session layer):
 * device identity, GUIDs, self test, ACPI state, users and channels.
 */
import type { PowerState } from '../../backend/types.js';
import { CC, NetFn, Privilege, type CommandContext, type CommandSpec } from '../types.js';
import { badLength, fail, le16, ok, spec } from './util.js';

/**
 * IANA Private Enterprise Number 57683, registered to the Cloud Native Computing Foundation,
 * KubeVirt's home foundation (see /usr/share/misc/enterprise-numbers.txt). IPMI carries it as a
 * 20-bit little-endian value; ipmitool prints the number and the registry's name for it.
 */
export const MANUFACTURER_ID = 57683;
/** Our own product number under that id. */
export const PRODUCT_ID = 0x0001;
/** Device ID byte; 0x20 mirrors the BMC's IPMB address, as many BMCs do. */
export const DEVICE_ID = 0x20;
export const DEVICE_REVISION = 0x01;
/** Firmware revision reported by Get Device ID; tracks the package version (0.1.0). */
export const FIRMWARE = { major: 0, minor: 1, patch: 0 } as const;

/** Additional device support bits (Get Device ID byte 6). */
export const DeviceSupport = {
  SENSOR: 0x01,
  SDR_REPOSITORY: 0x02,
  SEL: 0x04,
  FRU_INVENTORY: 0x08,
  CHASSIS: 0x80,
} as const;

const SUPPORT = DeviceSupport.CHASSIS | DeviceSupport.FRU_INVENTORY | DeviceSupport.SEL | DeviceSupport.SDR_REPOSITORY;

function bcd(n: number): number {
  const v = Math.max(0, Math.min(99, Math.trunc(n)));
  return ((Math.trunc(v / 10) & 0x0f) << 4) | (v % 10);
}

/** Get Device ID response data: 15 bytes (11 mandatory + 4 aux firmware revision). */
export function deviceIdData(): Buffer {
  return Buffer.from([
    DEVICE_ID,
    DEVICE_REVISION & 0x0f, // bit 7 clear: no device SDRs (the SDR repository holds our records)
    FIRMWARE.major & 0x7f, // bit 7 clear: device available, not updating
    bcd(FIRMWARE.minor),
    0x02, // IPMI 2.0 (BCD, low nibble major)
    SUPPORT,
    MANUFACTURER_ID & 0xff,
    (MANUFACTURER_ID >>> 8) & 0xff,
    (MANUFACTURER_ID >>> 16) & 0x0f,
    ...le16(PRODUCT_ID),
    FIRMWARE.major,
    FIRMWARE.minor,
    FIRMWARE.patch,
    0x00,
  ]);
}

/**
 * A UUID (canonical 8-4-4-4-12 text) in the byte order IPMI specifies for GUIDs: the whole
 * 16-byte RFC 4122 value reversed (least significant byte of the node first, time_low's most
 * significant byte last). Verified with the real clients: freeipmi's bmc-info reverses the bytes
 * back, and ipmitool's `mc guid` auto-detects "IPMI" encoding (its version nibble is valid only in
 * that reading for RFC 4122 variant UUIDs) and prints the same text. The SMBIOS mixed-endian
 * layout would make ipmitool warn "IPMI Specification violation" and freeipmi print garbage.
 */
export function uuidToGuidBytes(uuid: string): Buffer {
  const hex = uuid.replace(/-/g, '');
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw new Error(`not a UUID: ${uuid}`);
  return Buffer.from(hex, 'hex').reverse();
}

async function guid(ctx: CommandContext) {
  const bad = badLength(ctx.req.data, 0);
  if (bad) return bad;
  const info = await ctx.machine.getSystemInfo();
  try {
    return ok(uuidToGuidBytes(info.uuid));
  } catch {
    ctx.logger.warn({ uuid: info.uuid }, 'machine UUID is not a UUID; cannot report a GUID');
    return fail(CC.RESPONSE_NOT_PROVIDED);
  }
}

/** ACPI system power state (Get ACPI Power State byte 1): S0/G0 working, S1 sleeping, S5/G2 soft off. */
export function acpiSystemState(p: PowerState): number {
  switch (p) {
    case 'On':
    case 'PoweringOn':
    case 'PoweringOff':
      return 0x00;
    case 'Paused':
      return 0x01;
    case 'Off':
      return 0x05;
  }
}

/** Channel 0x0E means "the channel this request came in on"; we have one LAN channel. */
export function resolveChannel(ctx: CommandContext, requested: number): number | undefined {
  const ch = requested & 0x0f;
  if (ch === 0x0e || ch === ctx.channel) return ctx.channel;
  return undefined;
}

const CHANNEL_MEDIUM_LAN_802_3 = 0x04;
/** IPMB-1.0 is the protocol type the spec assigns to LAN channels (Table 6-2). */
const CHANNEL_PROTOCOL_IPMB = 0x01;
const SESSION_SUPPORT_MULTI = 0x80;
/** The IPMI forum's IANA number (7154), which the spec puts in Get Channel Info for its protocols. */
const IPMI_FORUM_IANA = [0xf2, 0x1b, 0x00];

/**
 * Set Channel Security Keys (IPMI v2.0 §22.25): key ids, operations and completion codes. freeipmi
 * names them in libfreeipmi/include/freeipmi/cmds/ipmi-messaging-support-cmds.h and
 * libfreeipmi/include/freeipmi/spec/ipmi-comp-code-spec.h (chu11/freeipmi-mirror).
 */
export const SecurityKey = { K_R: 0x00, K_G: 0x01 } as const;
export const SecurityKeyOp = { READ: 0x00, SET: 0x01, LOCK: 0x02 } as const;
export const SecurityKeyCC = {
  INSUFFICIENT_KEY_BYTES: 0x81,
  TOO_MANY_KEY_BYTES: 0x82,
  KEY_DOES_NOT_MEET_CRITERIA: 0x83,
  K_R_NOT_USED: 0x84,
} as const;
/** K_G is 20 bytes (§13.31). */
export const K_G_LENGTH = 20;
/** Lock status "key is not lockable" (response byte 2, bits 1:0). */
const KEY_NOT_LOCKABLE = 0x00;

/**
 * This BMC has no K_G of its own: it is the null key, so RAKP's SIK is keyed with the user's
 * password (K_UID), which is what §13.31 prescribes for a null K_G (src/ipmi/codec/rakp.ts
 * sessionIntegrityKey). Reading K_G therefore returns 20 zero bytes; writing the null key again is
 * a no-op; any other value is refused with 83h, since two-key logins are not implemented. K_R is
 * not used: Rm/Rc come from node:crypto's random generator, which the spec's 84h describes.
 */
function channelSecurityKeys(ctx: CommandContext) {
  const d = ctx.req.data;
  if (d.length < 3) return fail(CC.REQUEST_DATA_LENGTH_INVALID);
  if (resolveChannel(ctx, d[0]!) === undefined) return fail(CC.INVALID_DATA_FIELD);
  const op = d[1]! & 0x03;
  const key = d[2]!;
  const value = d.subarray(3);
  if (op === 0x03 || (key !== SecurityKey.K_R && key !== SecurityKey.K_G)) return fail(CC.INVALID_DATA_FIELD);
  if (op !== SecurityKeyOp.SET && value.length > 0) return fail(CC.REQUEST_DATA_LENGTH_INVALID);
  if (key === SecurityKey.K_R) return fail(SecurityKeyCC.K_R_NOT_USED);
  switch (op) {
    case SecurityKeyOp.READ:
      return ok([KEY_NOT_LOCKABLE, ...Buffer.alloc(K_G_LENGTH)]);
    case SecurityKeyOp.SET:
      if (value.length < K_G_LENGTH) return fail(SecurityKeyCC.INSUFFICIENT_KEY_BYTES);
      if (value.length > K_G_LENGTH) return fail(SecurityKeyCC.TOO_MANY_KEY_BYTES);
      if (value.some((b) => b !== 0)) {
        ctx.logger.info('Set Channel Security Keys refused: only the null K_G is supported');
        return fail(SecurityKeyCC.KEY_DOES_NOT_MEET_CRITERIA);
      }
      return ok([KEY_NOT_LOCKABLE]);
    default:
      // Lock: this key cannot be locked (lock status 00b "not lockable")
      return fail(CC.INVALID_DATA_FIELD);
  }
}

export function appCommands(): CommandSpec[] {
  return [
    spec(NetFn.APP, 0x01, 'Get Device ID', Privilege.User, (ctx) => badLength(ctx.req.data, 0) ?? ok(deviceIdData())),

    // A BMC reset would restart this process, whose life cycle belongs to Kubernetes.
    spec(NetFn.APP, 0x02, 'Cold Reset', Privilege.Administrator, (ctx) =>
      badLength(ctx.req.data, 0) ?? fail(CC.NOT_SUPPORTED_IN_PRESENT_STATE),
    ),
    spec(NetFn.APP, 0x03, 'Warm Reset', Privilege.Administrator, (ctx) =>
      badLength(ctx.req.data, 0) ?? fail(CC.NOT_SUPPORTED_IN_PRESENT_STATE),
    ),

    // 0x55 = no error; nothing here can fail a self test.
    spec(NetFn.APP, 0x04, 'Get Self Test Results', Privilege.User, (ctx) => badLength(ctx.req.data, 0) ?? ok([0x55, 0x00])),

    spec(NetFn.APP, 0x07, 'Get ACPI Power State', Privilege.User, async (ctx) => {
      const bad = badLength(ctx.req.data, 0);
      if (bad) return bad;
      const p = await ctx.machine.getPowerState();
      const device = p === 'Off' ? 0x03 : 0x00; // D3 when off, D0 otherwise
      return ok([acpiSystemState(p), device]);
    }),

    spec(NetFn.APP, 0x08, 'Get Device GUID', Privilege.User, guid),
    spec(NetFn.APP, 0x37, 'Get System GUID', Privilege.User, guid),

    spec(NetFn.APP, 0x41, 'Get Channel Access', Privilege.User, (ctx) => {
      const d = ctx.req.data;
      const bad = badLength(d, 2);
      if (bad) return bad;
      const ch = resolveChannel(ctx, d[0]!);
      const which = (d[1]! >> 6) & 0x03; // 01 non-volatile, 10 volatile
      if (ch === undefined || (which !== 1 && which !== 2)) return fail(CC.INVALID_DATA_FIELD);
      // PEF alerting disabled (we send no alerts), per-message and user-level auth enabled,
      // access mode "always available"; channel privilege limit ADMINISTRATOR.
      return ok([0x20 | 0x02, Privilege.Administrator]);
    }),

    spec(NetFn.APP, 0x42, 'Get Channel Info', Privilege.User, (ctx) => {
      const d = ctx.req.data;
      const bad = badLength(d, 1);
      if (bad) return bad;
      const ch = resolveChannel(ctx, d[0]!);
      if (ch === undefined) return fail(CC.INVALID_DATA_FIELD);
      // The session table is not visible here; a request inside a session proves at least one.
      const active = ctx.session.id !== 0 ? 1 : 0;
      return ok([ch, CHANNEL_MEDIUM_LAN_802_3, CHANNEL_PROTOCOL_IPMB, SESSION_SUPPORT_MULTI | active, ...IPMI_FORUM_IANA, 0, 0]);
    }),

    spec(NetFn.APP, 0x56, 'Set Channel Security Keys', Privilege.Administrator, channelSecurityKeys),

  ];
}
