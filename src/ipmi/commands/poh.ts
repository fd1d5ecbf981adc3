/**
 * Get POH Counter (chassis 0x0F, IPMI v2.0 §28.14): the power-on hours of the machine, counted
 * by the agent from the backend's power events: time in any state but Off (as Get Chassis Status
 * reports power). Counting starts when the IPMI server starts (trackPowerOnHours); a VM already
 * running then is counted from that moment, so the counter is a lower bound of the VM's uptime
 * and restarts with the agent.
 */
import type { Machine, PowerState } from '../../backend/types.js';
import { NetFn, Privilege, type CommandContext, type CommandSpec, type IpmiResponse } from '../types.js';
import { badLength, le32, ok, spec } from './util.js';

/** Minutes per count reported in byte 1 */
export const POH_MINUTES_PER_COUNT = 60;

interface PohState {
  /** Powered time accumulated before the current on period, ms */
  accumulatedMs: number;
  /** ms epoch the current on period started; undefined when off */
  onSince: number | undefined;
}

const states = new WeakMap<Machine, PohState>();
const isOn = (p: PowerState) => p !== 'Off';

/** Start counting for a machine (idempotent); `power` is its power state now. */
export function trackPowerOnHours(machine: Machine, power: PowerState, now: () => number = Date.now): void {
  if (states.has(machine)) return;
  const s: PohState = { accumulatedMs: 0, onSince: isOn(power) ? now() : undefined };
  states.set(machine, s);
  machine.on((ev) => {
    if (ev.type !== 'power') return;
    const t = now();
    if (isOn(ev.to) && s.onSince === undefined) s.onSince = t;
    else if (!isOn(ev.to) && s.onSince !== undefined) {
      s.accumulatedMs += t - s.onSince;
      s.onSince = undefined;
    }
  });
}

/** Powered-on milliseconds so far. */
export function poweredOnMs(machine: Machine, now = Date.now()): number {
  const s = states.get(machine);
  if (!s) return 0;
  return s.accumulatedMs + (s.onSince !== undefined ? now - s.onSince : 0);
}

async function getPoh(ctx: CommandContext): Promise<IpmiResponse> {
  const bad = badLength(ctx.req.data, 0);
  if (bad) return bad;
  if (!states.has(ctx.machine)) trackPowerOnHours(ctx.machine, await ctx.machine.getPowerState());
  const counts = Math.floor(poweredOnMs(ctx.machine) / (POH_MINUTES_PER_COUNT * 60_000));
  return ok([POH_MINUTES_PER_COUNT, ...le32(counts >>> 0)]);
}

export function pohCommands(): CommandSpec[] {
  return [spec(NetFn.CHASSIS, 0x0f, 'Get POH Counter', Privilege.User, getPoh)];
}
