/**
 * App netFn (0x06) commands a real BMC answers that ipmitool's common flows call (they answered
 * C1 before): Get/Set BMC Global Enables (`mc getenables` / `mc setenables`, IPMI v2.0 §22.1-22.2),
 * Get/Set System Info Parameters (`mc getsysinfo`, §22.14a-b) and Get User Payload Access
 * (`sol payload status`, §24.6).
 */
import { CC, NetFn, Privilege, type CommandContext, type CommandSpec, type IpmiResponse } from '../types.js';
import { FIRST_USER_ID } from '../../accounts/store.js';
import { badLength, fail, ok, spec } from './util.js';

/**
 * Global enables byte (§22.2): bit 3 System Event Logging. There is no system interface (KCS/BT/
 * SSIF) to the guest, so the receive message queue and event message buffer (bits 0-2) do not
 * exist; the SEL is written by the agent. Only "no change" sets are accepted.
 */
export const GLOBAL_ENABLES = 0x08;

/** Parameter revision of System Info Parameters (§22.14a) */
const SYSINFO_REVISION = 0x11;
/** Completion codes of Set/Get System Info Parameters */
export const SysInfoCC = { PARAM_NOT_SUPPORTED: 0x80, SET_IN_PROGRESS: 0x81, READ_ONLY: 0x82 } as const;

export const SysInfoParam = {
  SET_IN_PROGRESS: 0,
  SYSTEM_FIRMWARE_VERSION: 1,
  SYSTEM_NAME: 2,
  PRIMARY_OS_NAME: 3,
  OS_NAME: 4,
} as const;

/** First block holds 14 string bytes, later blocks 16 (§22.14a Table 22-16a) */
const FIRST_BLOCK = 14;
const NEXT_BLOCK = 16;
/** Strings are at most 256 bytes (the length byte) */
const MAX_STRING = 255;

async function sysInfoString(ctx: CommandContext, param: number): Promise<string | undefined> {
  const info = await ctx.machine.getSystemInfo();
  switch (param) {
    case SysInfoParam.SYSTEM_FIRMWARE_VERSION:
      return info.firmware?.version ?? info.biosVersion ?? '';
    case SysInfoParam.SYSTEM_NAME:
      // The guest's host name when its agent reports one, else the VM's name
      return info.guestOs?.hostName ?? info.name;
    case SysInfoParam.PRIMARY_OS_NAME:
    case SysInfoParam.OS_NAME:
      return [info.guestOs?.name, info.guestOs?.version].filter(Boolean).join(' ');
    default:
      return undefined;
  }
}

/** One block of a string parameter: set 0 carries encoding (0 = ASCII/Latin-1) and length. */
export function sysInfoBlock(text: string, set: number): Buffer | undefined {
  const bytes = Buffer.from(text, 'latin1').subarray(0, MAX_STRING);
  if (set === 0) {
    const chunk = Buffer.alloc(FIRST_BLOCK);
    bytes.copy(chunk, 0, 0, FIRST_BLOCK);
    return Buffer.concat([Buffer.from([0, 0x00, bytes.length]), chunk]);
  }
  const start = FIRST_BLOCK + (set - 1) * NEXT_BLOCK;
  if (start >= bytes.length) return undefined;
  const chunk = Buffer.alloc(NEXT_BLOCK);
  bytes.copy(chunk, 0, start, start + NEXT_BLOCK);
  return Buffer.concat([Buffer.from([set]), chunk]);
}

async function getSysInfo(ctx: CommandContext): Promise<IpmiResponse> {
  const d = ctx.req.data;
  const bad = badLength(d, 4);
  if (bad) return bad;
  const param = d[1]!;
  const set = d[2]!;
  if (param === SysInfoParam.SET_IN_PROGRESS) {
    return d[0]! & 0x80 ? ok([SYSINFO_REVISION]) : ok([SYSINFO_REVISION, 0x00]);
  }
  const text = await sysInfoString(ctx, param);
  if (text === undefined) return fail(SysInfoCC.PARAM_NOT_SUPPORTED);
  // Bit 7 of byte 1: "get parameter revision only"
  if (d[0]! & 0x80) return ok([SYSINFO_REVISION]);
  const block = sysInfoBlock(text, set);
  if (!block) return fail(CC.PARAMETER_OUT_OF_RANGE);
  return ok(Buffer.concat([Buffer.from([SYSINFO_REVISION]), block]));
}

function setSysInfo(ctx: CommandContext): IpmiResponse {
  const d = ctx.req.data;
  if (d.length < 2) return fail(CC.REQUEST_DATA_LENGTH_INVALID);
  const param = d[0]!;
  // The values come from the VM (its spec and guest agent): the guest has no in-band path to
  // write them, and a LAN client must not overwrite what the platform reports.
  if (param >= SysInfoParam.SYSTEM_FIRMWARE_VERSION && param <= SysInfoParam.OS_NAME) return fail(SysInfoCC.READ_ONLY);
  if (param === SysInfoParam.SET_IN_PROGRESS) return ok();
  return fail(SysInfoCC.PARAM_NOT_SUPPORTED);
}

function getGlobalEnables(ctx: CommandContext): IpmiResponse {
  return badLength(ctx.req.data, 0) ?? ok([GLOBAL_ENABLES]);
}

function setGlobalEnables(ctx: CommandContext): IpmiResponse {
  const bad = badLength(ctx.req.data, 1);
  if (bad) return bad;
  return ctx.req.data[0] === GLOBAL_ENABLES ? ok() : fail(CC.INVALID_DATA_FIELD);
}

/**
 * Get User Payload Access (§24.6): which payloads a user may activate. Every configured user may
 * activate SOL (payload 1) subject to the SOL privilege parameter; no OEM payloads.
 */
function getUserPayloadAccess(ctx: CommandContext): IpmiResponse {
  const d = ctx.req.data;
  const bad = badLength(d, 2);
  if (bad) return bad;
  const ch = d[0]! & 0x0f;
  if (ch !== 0x0e && ch !== ctx.channel) return fail(CC.INVALID_DATA_FIELD);
  const uid = d[1]! & 0x3f;
  if (uid === 0 || uid > 63) return fail(CC.INVALID_DATA_FIELD);
  // the store's enabled account with this id; a bare context without a store reads `users` from id 2
  const exists = ctx.accounts ? ctx.accounts.get(uid)?.enabled === true : uid >= FIRST_USER_ID && ctx.users[uid - FIRST_USER_ID] !== undefined;
  return ok([exists ? 0x02 : 0x00, 0x00, 0x00, 0x00]);
}

export function bmcInfoCommands(): CommandSpec[] {
  return [
    spec(NetFn.APP, 0x2e, 'Set BMC Global Enables', Privilege.Administrator, setGlobalEnables),
    spec(NetFn.APP, 0x2f, 'Get BMC Global Enables', Privilege.User, getGlobalEnables),
    spec(NetFn.APP, 0x4d, 'Get User Payload Access', Privilege.Operator, getUserPayloadAccess),
    spec(NetFn.APP, 0x58, 'Set System Info Parameters', Privilege.Administrator, setSysInfo),
    spec(NetFn.APP, 0x59, 'Get System Info Parameters', Privilege.User, getSysInfo),
  ];
}
