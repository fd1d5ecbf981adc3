/**
 * The agent's events as IPMI System Event Log records (IPMI 2.0 §32.1, record type 02h "system
 * event", generator 20h = the BMC, EvM Rev 04h, sensor-specific event types 6Fh), so `ipmitool sel
 * list/elist` and freeipmi `ipmi-sel` show the same history as the Redfish EventLog.
 *
 * Mapping (sensor type, offset from IPMI 2.0 Table 42-3):
 * - power: 22h System ACPI Power State — On 00h (S0/G0 working), Off 06h (S5/G2 soft-off),
 *   PoweringOn 0Bh (legacy ON), PoweringOff 0Ch (legacy OFF), Paused 01h (S1 sleeping)
 * - boot override set, media inserted/ejected/failed, tasks, test events, Redfish service started or stopping
 *   (HeartbeatEvent RedfishServiceStarted, RedfishServiceShuttingDown): 12h System Event,
 *   00h "system reconfigured"
 * - boot override consumed: 1Dh System Boot/Restart Initiated, 07h "system restart"
 * - logins: 2Ah Session Audit — 00h session activated, 01h deactivated, 02h invalid user/password
 * - backend outage/recovery: 28h Management Subsystem Health, 03h "management controller
 *   unavailable" asserted (Critical), 01h "controller access degraded" (Warning), deasserted on recovery
 * - entries added with Add SEL Entry: their own 16 bytes (with our record id, and our timestamp
 *   for timestamped types)
 */
import type { BmcEvent } from './hub.js';

export const SEL_RECORD_LENGTH = 16;
const BMC_GENERATOR = 0x0020;
const EVM_REV = 0x04;
const SENSOR_SPECIFIC = 0x6f;
const DEASSERT = 0x80;

/** Record ids 0001h..FFFEh (0000h and FFFFh mean first/last in requests). */
export const selRecordId = (eventId: number): number => ((eventId - 1) % 0xfffe) + 1;

function sensorOf(e: BmcEvent): { type: number; offset: number; deassert?: boolean } {
  switch (e.kind) {
    case 'power': {
      const to = String(e.detail?.to ?? '');
      const offset = to === 'On' ? 0x00 : to === 'Off' ? 0x06 : to === 'PoweringOn' ? 0x0b : to === 'PoweringOff' ? 0x0c : 0x01;
      return { type: 0x22, offset };
    }
    case 'bootConsumed':
      return { type: 0x1d, offset: 0x07 };
    case 'login':
      return { type: 0x2a, offset: 0x00 };
    case 'sessionClosed':
      return { type: 0x2a, offset: 0x01 };
    case 'loginFailed':
      return { type: 0x2a, offset: 0x02 };
    case 'health': {
      const status = String(e.detail?.status ?? 'OK');
      if (status === 'OK') return { type: 0x28, offset: 0x03, deassert: true };
      return { type: 0x28, offset: status === 'Critical' ? 0x03 : 0x01 };
    }
    default:
      return { type: 0x12, offset: 0x00 };
  }
}

/** The 16-byte SEL record of an event. */
export function selRecord(e: BmcEvent): Buffer {
  const b = Buffer.alloc(SEL_RECORD_LENGTH, 0xff);
  b.writeUInt16LE(selRecordId(e.id), 0);
  const ts = Math.floor(e.time.getTime() / 1000) >>> 0;
  const raw = typeof e.detail?.sel === 'string' ? Buffer.from(e.detail.sel, 'hex') : undefined;
  if (raw && raw.length === SEL_RECORD_LENGTH) {
    raw.copy(b);
    b.writeUInt16LE(selRecordId(e.id), 0);
    // timestamped records (types < E0h) get the time the BMC logged them (§31.6)
    if ((raw[2] as number) < 0xe0) b.writeUInt32LE(ts, 3);
    return b;
  }
  const s = sensorOf(e);
  b[2] = 0x02;
  b.writeUInt32LE(ts, 3);
  b.writeUInt16LE(BMC_GENERATOR, 7);
  b[9] = EVM_REV;
  b[10] = s.type;
  b[11] = 0x01; // sensor number: no SDR sensors; one per type is enough for the tools
  b[12] = SENSOR_SPECIFIC | (s.deassert ? DEASSERT : 0);
  b[13] = s.offset; // data 2/3 unspecified (bits 7:4 zero)
  b[14] = 0xff;
  b[15] = 0xff;
  return b;
}
