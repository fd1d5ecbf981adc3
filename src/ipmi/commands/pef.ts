/**
 * Platform Event Filtering (Sensor/Event netFn 0x04; IPMI v2.0 §17, §30): this BMC filters no
 * events and sends no alerts (no PET traps, no alert destinations: Get LAN Configuration
 * Parameters 17 says 0), and it takes no PEF actions on the VM. What it answers says exactly that:
 *
 * - Get PEF Capabilities: version 1.5 (51h), no action supported, an event filter table of 0 entries.
 * - Get PEF Configuration Parameters: PEF, its event messages and both startup delays disabled, no
 *   global action enabled, delays 0, 0 event filters, 0 alert policy entries, 0 alert strings but
 *   the volatile string 0 (empty, as §30.6 requires selector 0 to exist), the system GUID
 *   parameter not used (the GUID comes from Get System GUID).
 * - Set PEF Configuration Parameters: set-in-progress works; the rest is 82h "read-only": there is
 *   nothing that could carry out an enabled PEF.
 *
 * freeipmi's `ipmi-config --category=pef` needs these numbers to build its sections
 * (ipmi-config/ipmi-config-category-pef-sections.c): without them it stops with "Unable to get
 * Number of Alert Policy Entries".
 */
import { CC, NetFn, Privilege, type CommandContext, type CommandSpec, type IpmiResponse } from '../types.js';
import { badLength, fail, ok, spec } from './util.js';

export const PefCmd = { GET_CAPABILITIES: 0x10, SET_CONFIG: 0x12, GET_CONFIG: 0x13 } as const;

/** Parameter revision byte (§30.3: 11h). */
export const PEF_PARAM_REVISION = 0x11;

export const PefParam = {
  SET_IN_PROGRESS: 0,
  PEF_CONTROL: 1,
  ACTION_GLOBAL_CONTROL: 2,
  STARTUP_DELAY: 3,
  ALERT_STARTUP_DELAY: 4,
  NUMBER_OF_EVENT_FILTERS: 5,
  EVENT_FILTER_TABLE: 6,
  EVENT_FILTER_TABLE_DATA_1: 7,
  NUMBER_OF_ALERT_POLICY_ENTRIES: 8,
  ALERT_POLICY_TABLE: 9,
  SYSTEM_GUID: 10,
  NUMBER_OF_ALERT_STRINGS: 11,
  ALERT_STRING_KEYS: 12,
  ALERT_STRINGS: 13,
} as const;

/** Completion codes of Get/Set PEF Configuration Parameters (§30.3, §30.4). */
export const PefCC = { PARAM_NOT_SUPPORTED: 0x80, SET_IN_PROGRESS: 0x81, READ_ONLY: 0x82 } as const;

/** The value of one parameter (without the revision byte), or a completion code. */
export function pefParameter(param: number, setSelector: number, blockSelector: number, setInProgress: number): Buffer | number {
  switch (param) {
    case PefParam.SET_IN_PROGRESS:
      return Buffer.from([setInProgress]);
    case PefParam.PEF_CONTROL:
    case PefParam.ACTION_GLOBAL_CONTROL:
    case PefParam.STARTUP_DELAY:
    case PefParam.ALERT_STARTUP_DELAY:
      return Buffer.from([0x00]);
    case PefParam.NUMBER_OF_EVENT_FILTERS:
    case PefParam.NUMBER_OF_ALERT_POLICY_ENTRIES:
    case PefParam.NUMBER_OF_ALERT_STRINGS:
      return Buffer.from([0x00]);
    case PefParam.SYSTEM_GUID:
      // Bit 0 clear: Get System GUID's value is used in PET traps (none are sent)
      return Buffer.alloc(17);
    case PefParam.ALERT_STRING_KEYS:
      // Only the volatile string 0 exists: no event filter, no string set
      return setSelector === 0 ? Buffer.from([0x00, 0x00, 0x00]) : CC.PARAMETER_OUT_OF_RANGE;
    case PefParam.ALERT_STRINGS:
      // String 0, block 1: the empty string (its NUL terminator)
      return setSelector === 0 && blockSelector <= 1 ? Buffer.from([0x00, 0x01, 0x00]) : CC.PARAMETER_OUT_OF_RANGE;
    case PefParam.EVENT_FILTER_TABLE:
    case PefParam.EVENT_FILTER_TABLE_DATA_1:
    case PefParam.ALERT_POLICY_TABLE:
      // Their tables have no entries
      return CC.PARAMETER_OUT_OF_RANGE;
    default:
      return PefCC.PARAM_NOT_SUPPORTED;
  }
}

const KNOWN = new Set<number>(Object.values(PefParam));

export function pefCommands(): CommandSpec[] {
  const state = { setInProgress: 0 };

  const capabilities = (ctx: CommandContext): IpmiResponse =>
    // PEF version 1.5, no action (alert, power down, reset, power cycle, OEM, diagnostic interrupt), 0 filter entries
    badLength(ctx.req.data, 0) ?? ok([0x51, 0x00, 0x00]);

  const get = (ctx: CommandContext): IpmiResponse => {
    const d = ctx.req.data;
    const bad = badLength(d, 3);
    if (bad) return bad;
    const value = pefParameter(d[0]! & 0x7f, d[1]!, d[2]!, state.setInProgress);
    if (typeof value === 'number') return fail(value);
    if (d[0]! & 0x80) return ok([PEF_PARAM_REVISION]);
    return ok(Buffer.concat([Buffer.from([PEF_PARAM_REVISION]), value]));
  };

  const set = (ctx: CommandContext): IpmiResponse => {
    const d = ctx.req.data;
    if (d.length < 2) return fail(CC.REQUEST_DATA_LENGTH_INVALID);
    const param = d[0]! & 0x7f;
    if (param === PefParam.SET_IN_PROGRESS) {
      if (d.length !== 2) return fail(CC.REQUEST_DATA_LENGTH_INVALID);
      const v = d[1]! & 0x03;
      if (v === 3) return fail(CC.INVALID_DATA_FIELD);
      if (v === 1 && state.setInProgress === 1) return fail(PefCC.SET_IN_PROGRESS);
      if (v !== 2) state.setInProgress = v;
      return ok();
    }
    if (KNOWN.has(param)) {
      ctx.logger.info({ param }, 'Set PEF Configuration refused: this BMC takes no PEF actions');
      return fail(PefCC.READ_ONLY);
    }
    return fail(PefCC.PARAM_NOT_SUPPORTED);
  };

  return [
    spec(NetFn.SENSOR_EVENT, PefCmd.GET_CAPABILITIES, 'Get PEF Capabilities', Privilege.User, capabilities),
    spec(NetFn.SENSOR_EVENT, PefCmd.SET_CONFIG, 'Set PEF Configuration Parameters', Privilege.Administrator, set),
    spec(NetFn.SENSOR_EVENT, PefCmd.GET_CONFIG, 'Get PEF Configuration Parameters', Privilege.Operator, get),
  ];
}
