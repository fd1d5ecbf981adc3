/**
 * Chassis netFn (0x00): capabilities, status, power control, identify, restart cause and the
 * System Boot Options parameters (IPMI v2.0 §28).
 */
import type { PowerAction, PowerState } from '../../backend/types.js';
import { CC, NetFn, Privilege, type CommandContext, type CommandSpec, type IpmiResponse } from '../types.js';
import { BOOT_FLAGS_LENGTH, bootFlagsToOverride, overrideToBootFlags } from './boot-options.js';
import { indicatorOf } from '../../backend/indicator.js';
import { IPMI_BOOT_ATTRIBUTION_MS, bmcState, type BmcState } from './state.js';
import { badLength, fail, ok, spec } from './util.js';

/** Boot options completion codes (§28.12). */
export const BootOptionsCC = {
  PARAMETER_NOT_SUPPORTED: 0x80,
  SET_IN_PROGRESS: 0x81,
  READ_ONLY: 0x82,
} as const;

export const BootParam = {
  SET_IN_PROGRESS: 0,
  VALID_BIT_CLEARING: 3,
  BOOT_INFO_ACK: 4,
  BOOT_FLAGS: 5,
} as const;

/** Chassis Control request codes (§28.3) → backend actions. */
export const CHASSIS_CONTROL: Readonly<Record<number, PowerAction>> = {
  0: 'forceOff',
  1: 'on',
  2: 'powerCycle',
  3: 'forceRestart',
  4: 'nmi',
  5: 'gracefulOff',
};

/** Controls that make no sense on a machine that is off (the spec's "not supported in present state"). */
const NEEDS_POWER = new Set([3, 4, 5]);
/** Controls that start a boot, for "last power event" and restart cause. */
const BOOTS = new Set([1, 2, 3]);

/**
 * Whether Get Chassis Status reports power on. Everything but Off counts: PoweringOn means power
 * has been applied and the guest is starting (as on a physical box, where the OS boots well after
 * the power-good signal), PoweringOff and Paused guests still hold their resources.
 */
export function powerBit(p: PowerState): boolean {
  return p !== 'Off';
}

/**
 * Restore policy bits 6:5 of the current power state byte. The seam does not say what the
 * platform does after an outage (that is the VM's run strategy), so report "unknown" (11b).
 */
const RESTORE_POLICY_UNKNOWN = 0x60;

/**
 * Get Chassis Status. Synchronous when the backend knows the power state at once (powerStateNow):
 * it is what `ipmitool chassis power status` polls, so it should cost no promise hop.
 */
function chassisStatus(ctx: CommandContext): IpmiResponse | Promise<IpmiResponse> {
  const bad = badLength(ctx.req.data, 0);
  if (bad) return bad;
  const p = ctx.machine.powerStateNow?.();
  return p !== undefined ? chassisStatusFor(ctx, p) : ctx.machine.getPowerState().then((q) => chassisStatusFor(ctx, q));
}

function chassisStatusFor(ctx: CommandContext, p: PowerState): IpmiResponse {
  const state = bmcState(ctx.machine);
  const current = (powerBit(p) ? 0x01 : 0x00) | RESTORE_POLICY_UNKNOWN;
  const lastEvent = state.lastBootViaIpmi ? 0x10 : 0x00;
  // Byte 3: [6] identify state reported, [5:4] identify state.
  const misc = 0x40 | (indicatorOf(ctx.machine).ipmiState() << 4);
  return ok([current, lastEvent, misc]);
}

async function chassisControl(ctx: CommandContext): Promise<IpmiResponse> {
  const d = ctx.req.data;
  const bad = badLength(d, 1);
  if (bad) return bad;
  const code = d[0]!;
  const action = code <= 0x0f ? CHASSIS_CONTROL[code] : undefined;
  if (action === undefined) return fail(CC.INVALID_DATA_FIELD);
  if (NEEDS_POWER.has(code) && (await ctx.machine.getPowerState()) === 'Off') {
    return fail(CC.NOT_SUPPORTED_IN_PRESENT_STATE);
  }
  const state = bmcState(ctx.machine);
  const boots = BOOTS.has(code);
  const previousPending = state.ipmiBootPendingUntil;
  // Mark before calling: a backend may report the boot while the call is still running.
  if (boots) state.ipmiBootPendingUntil = Date.now() + IPMI_BOOT_ATTRIBUTION_MS;
  try {
    await ctx.machine.power(action);
  } catch (e) {
    if (boots) state.ipmiBootPendingUntil = previousPending;
    throw e;
  }
  ctx.logger.info({ action, user: ctx.session.username }, 'chassis control');
  return ok();
}

function chassisIdentify(ctx: CommandContext): IpmiResponse {
  const d = ctx.req.data;
  const bad = badLength(d, 0, 2);
  if (bad) return bad;
  // the same indicator Redfish IndicatorLED/LocationIndicatorActive show (backend/indicator.ts)
  const indicator = indicatorOf(ctx.machine);
  if (d.length === 2 && (d[1]! & 0x01) !== 0) indicator.identify(Infinity);
  else indicator.identify(d.length === 0 ? 15 : d[0]!); // spec default interval: 15 s
  return ok();
}

/**
 * Set Power Restore Policy (§28.8). What happens after an outage is the VM's run strategy, which
 * the seam neither reports nor sets, so no policy is offered: "no change" (3) answers with an empty
 * support mask, and asking for a policy is an invalid value.
 */
function powerRestorePolicy(ctx: CommandContext): IpmiResponse {
  const d = ctx.req.data;
  const bad = badLength(d, 1);
  if (bad) return bad;
  const policy = d[0]! & 0x07;
  if (policy !== 3 || (d[0]! & 0xf8) !== 0) return fail(CC.INVALID_DATA_FIELD);
  return ok([0x00]);
}

/** Restart cause codes (§28.11): 0 unknown, 1 chassis control command. */
function restartCause(ctx: CommandContext): IpmiResponse {
  const bad = badLength(ctx.req.data, 0);
  if (bad) return bad;
  const state = bmcState(ctx.machine);
  return ok([state.lastBootViaIpmi ? 0x01 : 0x00, ctx.channel]);
}

/** Data length of each writable parameter. */
const PARAM_LENGTH: Readonly<Record<number, number>> = {
  [BootParam.SET_IN_PROGRESS]: 1,
  [BootParam.VALID_BIT_CLEARING]: 1,
  [BootParam.BOOT_INFO_ACK]: 2,
  [BootParam.BOOT_FLAGS]: BOOT_FLAGS_LENGTH,
};

/**
 * A "set in progress" nobody completes (a client killed mid-transaction) is dropped after this
 * long. Without it every later ipmitool run would get 0x81 on its first write, and ipmitool then
 * stops writing parameter 0, so nothing would ever clear it.
 */
export const SET_IN_PROGRESS_TIMEOUT_MS = 60_000;

function setInProgress(state: BmcState, now = Date.now()): number {
  if (state.setInProgress !== 0 && now - state.setInProgressSince > SET_IN_PROGRESS_TIMEOUT_MS) state.setInProgress = 0;
  return state.setInProgress;
}

async function setBootOptions(ctx: CommandContext): Promise<IpmiResponse> {
  const d = ctx.req.data;
  if (d.length < 1) return fail(CC.REQUEST_DATA_LENGTH_INVALID);
  const param = d[0]! & 0x7f;
  const markInvalid = (d[0]! & 0x80) !== 0;
  const body = d.subarray(1);
  const state = bmcState(ctx.machine);
  const len = PARAM_LENGTH[param];
  if (len === undefined) return fail(BootOptionsCC.PARAMETER_NOT_SUPPORTED);
  const setMark = () => (markInvalid ? state.invalidParams.add(param) : state.invalidParams.delete(param));
  // No data: only the parameter's valid/locked bit changes.
  if (body.length === 0) {
    setMark();
    return ok();
  }
  if (body.length !== len) return fail(CC.REQUEST_DATA_LENGTH_INVALID);

  switch (param) {
    case BootParam.SET_IN_PROGRESS: {
      const v = body[0]! & 0x03;
      if (v === 3) return fail(CC.INVALID_DATA_FIELD);
      if (v === 1) {
        if (setInProgress(state) !== 0) return fail(BootOptionsCC.SET_IN_PROGRESS);
        state.setInProgress = 1;
        state.setInProgressSince = Date.now();
      } else if (v === 0) {
        state.setInProgress = 0;
      }
      // v === 2 (commit write): writes take effect immediately, nothing to commit.
      break;
    }
    case BootParam.VALID_BIT_CLEARING:
      state.validBitClearing = body[0]! & 0x1f;
      break;
    case BootParam.BOOT_INFO_ACK: {
      const mask = body[0]! & 0x1f;
      state.bootInfoAck = (state.bootInfoAck & ~mask) | (body[1]! & mask);
      break;
    }
    case BootParam.BOOT_FLAGS: {
      const mapped = bootFlagsToOverride(body, ctx.machine.capabilities);
      if (!mapped.ok) {
        ctx.logger.info({ flags: body.toString('hex'), reason: mapped.reason }, 'boot flags refused');
        return fail(CC.INVALID_DATA_FIELD);
      }
      await ctx.machine.setBootOverride(mapped.change);
      state.bootFlags = Buffer.from(body);
      ctx.logger.info({ change: mapped.change, user: ctx.session.username }, 'boot override set');
      break;
    }
  }
  setMark();
  return ok();
}

async function getBootOptions(ctx: CommandContext): Promise<IpmiResponse> {
  const d = ctx.req.data;
  const bad = badLength(d, 3);
  if (bad) return bad;
  const param = d[0]! & 0x7f;
  const state = bmcState(ctx.machine);
  let data: Buffer;
  switch (param) {
    case BootParam.SET_IN_PROGRESS:
      data = Buffer.from([setInProgress(state)]);
      break;
    case BootParam.VALID_BIT_CLEARING:
      data = Buffer.from([state.validBitClearing]);
      break;
    case BootParam.BOOT_INFO_ACK:
      data = Buffer.from([0x00, state.bootInfoAck]);
      break;
    case BootParam.BOOT_FLAGS:
      data = overrideToBootFlags(await ctx.machine.getBootOverride(), state.bootFlags);
      break;
    default:
      return fail(BootOptionsCC.PARAMETER_NOT_SUPPORTED);
  }
  const selector = param | (state.invalidParams.has(param) ? 0x80 : 0x00);
  return ok(Buffer.concat([Buffer.from([0x01, selector]), data]));
}

export function chassisCommands(): CommandSpec[] {
  return [
    // No intrusion sensor, lockout or interlock; every management function lives at 0x20.
    spec(NetFn.CHASSIS, 0x00, 'Get Chassis Capabilities', Privilege.User, (ctx) =>
      badLength(ctx.req.data, 0) ?? ok([0x00, 0x20, 0x20, 0x20, 0x20]),
    ),
    spec(NetFn.CHASSIS, 0x01, 'Get Chassis Status', Privilege.User, chassisStatus),
    spec(NetFn.CHASSIS, 0x02, 'Chassis Control', Privilege.Operator, chassisControl),
    spec(NetFn.CHASSIS, 0x04, 'Chassis Identify', Privilege.Operator, chassisIdentify),
    spec(NetFn.CHASSIS, 0x06, 'Set Power Restore Policy', Privilege.Operator, powerRestorePolicy),
    spec(NetFn.CHASSIS, 0x07, 'Get System Restart Cause', Privilege.User, restartCause),
    spec(NetFn.CHASSIS, 0x08, 'Set System Boot Options', Privilege.Operator, setBootOptions),
    spec(NetFn.CHASSIS, 0x09, 'Get System Boot Options', Privilege.Operator, getBootOptions),
  ];
}
