/**
 * Storage netFn (0x0A): FRU inventory device 0, the SDR repository and the SEL.
 *
 * The SDR repository holds one record, the Management Controller Device Locator for this BMC.
 * It cannot be empty: on an empty repository ipmitool (`sdr list`, `fru print`) tries to erase and
 * rebuild it from sensors, and fails. There are no sensors, so `sdr list` (sensors only) prints
 * nothing and `sdr list all` shows the BMC. The SEL is empty: nothing is logged to it.
 */
import { CC, NetFn, Privilege, type CommandContext, type CommandSpec, type IpmiResponse } from '../types.js';
import { buildFruImage } from './fru.js';
import { bmcState, nextReservation } from './state.js';
import { badLength, fail, le16, le32, ok, spec } from './util.js';

/** Largest Read FRU Data chunk we return; it fits an IPMI 1.5 message with room to spare. */
export const MAX_FRU_READ = 128;
const BMC_ADDRESS = 0x20;
const SDR_VERSION = 0x51;
const SDR_TYPE_MC_LOCATOR = 0x12;
export const BMC_ID_STRING = 'KubeVirtBMC';
/** Entity 0x06: system management module (the BMC). */
const ENTITY_SYSTEM_MANAGEMENT_MODULE = 0x06;
const LAST_RECORD = 0xffff;
const SDR_RECORD_ID = 0x0001;
/** Storage timestamps are seconds since 1970; the repository was "written" at start-up. */
const STARTED = Math.floor(Date.now() / 1000);
const NO_TIMESTAMP = 0xffffffff;

/** Management Controller Device Locator record (SDR type 12h) describing this BMC. */
export function mcLocatorRecord(): Buffer {
  const id = Buffer.from(BMC_ID_STRING, 'latin1').subarray(0, 16);
  const body = Buffer.from([
    BMC_ADDRESS, // slave address
    0x00, // channel 0 (primary IPMB)
    0x00, // power state notification / global initialization: defaults
    0x8e, // capabilities: chassis, FRU inventory, SEL, SDR repository
    0x00,
    0x00,
    0x00, // reserved
    ENTITY_SYSTEM_MANAGEMENT_MODULE,
    0x01, // entity instance
    0x00, // OEM
    0xc0 | id.length,
    ...id,
  ]);
  return Buffer.concat([Buffer.from([...le16(SDR_RECORD_ID), SDR_VERSION, SDR_TYPE_MC_LOCATOR, body.length]), body]);
}

async function fruAreaInfo(ctx: CommandContext): Promise<IpmiResponse> {
  const d = ctx.req.data;
  const bad = badLength(d, 1);
  if (bad) return bad;
  if (d[0] !== 0) return fail(CC.NOT_PRESENT);
  const image = buildFruImage(await ctx.machine.getSystemInfo());
  return ok([...le16(image.length), 0x00]); // bit 0 clear: byte access
}

async function readFru(ctx: CommandContext): Promise<IpmiResponse> {
  const d = ctx.req.data;
  const bad = badLength(d, 4);
  if (bad) return bad;
  if (d[0] !== 0) return fail(CC.NOT_PRESENT);
  const offset = d.readUInt16LE(1);
  const image = buildFruImage(await ctx.machine.getSystemInfo());
  if (offset >= image.length) return fail(CC.PARAMETER_OUT_OF_RANGE);
  // Fewer bytes than asked is allowed: the count byte says how many came back.
  const n = Math.min(d[3]!, MAX_FRU_READ, image.length - offset);
  return ok(Buffer.concat([Buffer.from([n]), image.subarray(offset, offset + n)]));
}

function sdrRepositoryInfo(ctx: CommandContext): IpmiResponse {
  const bad = badLength(ctx.req.data, 0);
  if (bad) return bad;
  return ok([
    SDR_VERSION,
    ...le16(1), // record count
    ...le16(0), // free space: read-only repository
    ...le32(STARTED), // most recent addition
    ...le32(NO_TIMESTAMP), // most recent erase: never
    0x02, // operations: Reserve SDR Repository supported; updates not supported
  ]);
}

function reserveSdr(ctx: CommandContext): IpmiResponse {
  const bad = badLength(ctx.req.data, 0);
  if (bad) return bad;
  const state = bmcState(ctx.machine);
  state.sdrReservation = nextReservation(state.sdrReservation);
  return ok(le16(state.sdrReservation));
}

function getSdr(ctx: CommandContext): IpmiResponse {
  const d = ctx.req.data;
  const bad = badLength(d, 6);
  if (bad) return bad;
  const reservation = d.readUInt16LE(0);
  const recordId = d.readUInt16LE(2);
  const offset = d[4]!;
  const count = d[5]!;
  // Partial reads must carry the current reservation (§33.12).
  if (offset !== 0 && reservation !== bmcState(ctx.machine).sdrReservation) return fail(CC.RESERVATION_CANCELLED);
  if (recordId !== 0 && recordId !== SDR_RECORD_ID) return fail(CC.NOT_PRESENT);
  const record = mcLocatorRecord();
  if (offset > record.length) return fail(CC.PARAMETER_OUT_OF_RANGE);
  const n = count === 0xff ? record.length - offset : Math.min(count, record.length - offset);
  return ok(Buffer.concat([Buffer.from(le16(LAST_RECORD)), record.subarray(offset, offset + n)]));
}

function selInfo(ctx: CommandContext): IpmiResponse {
  const bad = badLength(ctx.req.data, 0);
  if (bad) return bad;
  return ok([
    SDR_VERSION, // SEL version 1.5 (same encoding)
    ...le16(0), // entries
    ...le16(0), // free space: nothing is logged
    ...le32(NO_TIMESTAMP), // last addition: never
    ...le32(NO_TIMESTAMP), // last erase: never
    0x02, // operations: Reserve SEL supported
  ]);
}

function reserveSel(ctx: CommandContext): IpmiResponse {
  const bad = badLength(ctx.req.data, 0);
  if (bad) return bad;
  const state = bmcState(ctx.machine);
  state.selReservation = nextReservation(state.selReservation);
  return ok(le16(state.selReservation));
}

export function storageCommands(): CommandSpec[] {
  return [
    spec(NetFn.STORAGE, 0x10, 'Get FRU Inventory Area Info', Privilege.User, fruAreaInfo),
    spec(NetFn.STORAGE, 0x11, 'Read FRU Data', Privilege.User, readFru),
    spec(NetFn.STORAGE, 0x20, 'Get SDR Repository Info', Privilege.User, sdrRepositoryInfo),
    spec(NetFn.STORAGE, 0x22, 'Reserve SDR Repository', Privilege.User, reserveSdr),
    spec(NetFn.STORAGE, 0x23, 'Get SDR', Privilege.User, getSdr),
    spec(NetFn.STORAGE, 0x40, 'Get SEL Info', Privilege.User, selInfo),
    spec(NetFn.STORAGE, 0x42, 'Reserve SEL', Privilege.User, reserveSel),
    // The SEL has no entries to return.
    spec(NetFn.STORAGE, 0x43, 'Get SEL Entry', Privilege.User, (ctx) => badLength(ctx.req.data, 6) ?? fail(CC.NOT_PRESENT)),
    spec(NetFn.STORAGE, 0x48, 'Get SEL Time', Privilege.User, (ctx) =>
      badLength(ctx.req.data, 0) ?? ok(le32(Math.floor(Date.now() / 1000))),
    ),
  ];
}
