/**
 * Storage netFn (0x0A): FRU inventory device 0, the SDR repository and the SEL.
 *
 * The SDR repository holds one record, the Management Controller Device Locator for this BMC.
 * It cannot be empty: on an empty repository ipmitool (`sdr list`, `fru print`) tries to erase and
 * rebuild it from sensors, and fails. There are no sensors, so `sdr list` (sensors only) prints
 * nothing and `sdr list all` shows the BMC.
 *
 * The SEL is the agent's event history (src/events/hub.ts, the same entries as the Redfish Manager
 * EventLog) as 16-byte records (src/events/sel.ts): Get SEL Info/Entry, Reserve SEL, Add SEL Entry
 * (an event of its own), Clear SEL (also clears the EventLog), Get SEL Time (the agent's clock).
 * Clear SEL and partial reads need the current reservation; a Clear cancels it (§31.2).
 */
import { CC, NetFn, Privilege, type CommandContext, type CommandSpec, type IpmiResponse } from '../types.js';
import { eventsOf } from '../../events/index.js';
import { MANAGER_URI } from '../../events/machine.js';
import { SEL_RECORD_LENGTH, selRecord, selRecordId } from '../../events/sel.js';
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

const SEL_VERSION = 0x51;
const FIRST = 0x0000;
const LAST = 0xffff;
const secs = (d: Date | undefined): number => (d ? Math.floor(d.getTime() / 1000) >>> 0 : NO_TIMESTAMP);

function selInfo(ctx: CommandContext): IpmiResponse {
  const bad = badLength(ctx.req.data, 0);
  if (bad) return bad;
  const { hub } = eventsOf(ctx.machine);
  const log = hub.log();
  // overflow: the history wrapped since the last clear, older entries were overwritten
  const overflow = hub.logWrapped();
  return ok([
    SEL_VERSION,
    ...le16(log.length),
    ...le16(Math.min(0xfffe, (hub.historySize - log.length) * SEL_RECORD_LENGTH)),
    ...le32(secs(hub.lastLogAddTime)),
    ...le32(secs(hub.lastClearTime)),
    (overflow ? 0x80 : 0x00) | 0x02, // Reserve SEL supported; no delete, partial add or alloc info
  ]);
}

function reserveSel(ctx: CommandContext): IpmiResponse {
  const bad = badLength(ctx.req.data, 0);
  if (bad) return bad;
  const state = bmcState(ctx.machine);
  state.selReservation = nextReservation(state.selReservation);
  return ok(le16(state.selReservation));
}

function getSelEntry(ctx: CommandContext): IpmiResponse {
  const d = ctx.req.data;
  const bad = badLength(d, 6);
  if (bad) return bad;
  const reservation = d.readUInt16LE(0);
  const recordId = d.readUInt16LE(2);
  const offset = d[4]!;
  const count = d[5]!;
  const partial = offset !== 0 || (count !== 0xff && count < SEL_RECORD_LENGTH);
  if (partial && reservation !== bmcState(ctx.machine).selReservation) return fail(CC.RESERVATION_CANCELLED);
  const log = eventsOf(ctx.machine).hub.log();
  if (log.length === 0) return fail(CC.NOT_PRESENT);
  const index = recordId === FIRST ? 0 : recordId === LAST ? log.length - 1 : log.findIndex((e) => selRecordId(e.id) === recordId);
  if (index < 0) return fail(CC.NOT_PRESENT);
  if (offset >= SEL_RECORD_LENGTH) return fail(CC.PARAMETER_OUT_OF_RANGE);
  const record = selRecord(log[index]!);
  const next = index + 1 < log.length ? selRecordId(log[index + 1]!.id) : LAST;
  const n = count === 0xff ? SEL_RECORD_LENGTH - offset : Math.min(count, SEL_RECORD_LENGTH - offset);
  return ok(Buffer.concat([Buffer.from(le16(next)), record.subarray(offset, offset + n)]));
}

function addSelEntry(ctx: CommandContext): IpmiResponse {
  const d = ctx.req.data;
  const bad = badLength(d, SEL_RECORD_LENGTH);
  if (bad) return bad;
  const event = eventsOf(ctx.machine).hub.emit({
    kind: 'sel',
    key: 'ResourceChanged',
    reason: 'SelEntryAdded',
    source: 'ipmi',
    args: [],
    origin: MANAGER_URI,
    resourceType: 'Manager',
    detail: { sel: d.toString('hex') },
  });
  return ok(le16(selRecordId(event.id)));
}

function clearSel(ctx: CommandContext): IpmiResponse {
  const d = ctx.req.data;
  const bad = badLength(d, 6);
  if (bad) return bad;
  const state = bmcState(ctx.machine);
  if (d.readUInt16LE(0) !== state.selReservation || state.selReservation === 0) return fail(CC.RESERVATION_CANCELLED);
  if (d.subarray(2, 5).toString('latin1') !== 'CLR') return fail(CC.INVALID_DATA_FIELD);
  const action = d[5]!;
  if (action !== 0xaa && action !== 0x00) return fail(CC.INVALID_DATA_FIELD);
  if (action === 0xaa) {
    eventsOf(ctx.machine).hub.clearLog();
    ctx.logger.info('SEL cleared');
    // the erase cancels the reservation (IPMI 2.0 §31.2)
    state.selReservation = nextReservation(state.selReservation);
  }
  return ok([0x01]); // erasure completed
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
    spec(NetFn.STORAGE, 0x43, 'Get SEL Entry', Privilege.User, getSelEntry),
    spec(NetFn.STORAGE, 0x44, 'Add SEL Entry', Privilege.Operator, addSelEntry),
    spec(NetFn.STORAGE, 0x47, 'Clear SEL', Privilege.Operator, clearSel),
    spec(NetFn.STORAGE, 0x48, 'Get SEL Time', Privilege.User, (ctx) =>
      badLength(ctx.req.data, 0) ?? ok(le32(secs(eventsOf(ctx.machine).hub.now()))),
    ),
  ];
}
