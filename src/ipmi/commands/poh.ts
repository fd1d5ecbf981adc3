/**
 * Get POH Counter (chassis 0x0F, IPMI v2.0 §28.14): the machine's power-on hours.
 *
 * What is counted depends on what the platform records:
 * - A backend that knows when the current power-on period began (`Machine.poweredOnSince`;
 *   KubeVirt: the running VMI's Running transition) is asked at each request: POH is the uptime of
 *   the current VM start. KubeVirt keeps no total across starts, so a power cycle (a new VMI)
 *   starts again from 0, and an agent restart changes nothing.
 * - Otherwise (the simulator) the agent counts itself from the backend's power events: time in
 *   any state but Off (as Get Chassis Status reports power), starting when the IPMI server starts.
 *   Given a PohPersistence (`virtbmc --poh-file`), the total survives agent restarts: it is saved
 *   on every power-off, every POH_SAVE_INTERVAL_MS while on, and when the server stops, so a crash
 *   loses at most that interval.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { Machine, PowerState } from '../../backend/types.js';
import { NetFn, Privilege, type CommandContext, type CommandSpec, type IpmiResponse } from '../types.js';
import { badLength, le32, ok, spec } from './util.js';

/** Minutes per count reported in byte 1 */
export const POH_MINUTES_PER_COUNT = 60;
/** How often a running machine's total is saved */
export const POH_SAVE_INTERVAL_MS = 60_000;

/** Where the counted total lives between agent runs (milliseconds powered on). */
export interface PohPersistence {
  load(): number;
  save(poweredOnMs: number): void;
}

/**
 * A PohPersistence in a small JSON file (`{"version":1,"poweredOnMs":N}`), replaced atomically
 * (temporary file + rename). A missing file is a total of 0; a malformed one throws at load, so a
 * typo in the path to another file is not silently overwritten.
 */
export function pohFile(path: string): PohPersistence {
  return {
    load() {
      let text: string;
      try {
        text = readFileSync(path, 'utf8');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 0;
        throw e;
      }
      const doc = JSON.parse(text) as { version?: unknown; poweredOnMs?: unknown };
      if (doc.version !== 1 || typeof doc.poweredOnMs !== 'number' || !Number.isFinite(doc.poweredOnMs) || doc.poweredOnMs < 0) {
        throw new Error(`${path}: not a POH state file`);
      }
      return doc.poweredOnMs;
    },
    save(ms) {
      const tmp = `${path}.${process.pid}.tmp`;
      writeFileSync(tmp, `${JSON.stringify({ version: 1, poweredOnMs: Math.floor(ms) })}\n`);
      renameSync(tmp, path);
    },
  };
}

interface PohState {
  /** Powered time accumulated before the current on period, ms */
  accumulatedMs: number;
  /** ms epoch the current on period started; undefined when off */
  onSince: number | undefined;
  now: () => number;
  persistence: PohPersistence | undefined;
  timer: NodeJS.Timeout | undefined;
  off: () => void;
}

const states = new WeakMap<Machine, PohState>();
const isOn = (p: PowerState) => p !== 'Off';

function total(s: PohState, t = s.now()): number {
  return s.accumulatedMs + (s.onSince !== undefined ? Math.max(0, t - s.onSince) : 0);
}

function save(s: PohState): void {
  try {
    s.persistence?.save(total(s));
  } catch {
    // a full or read-only disk must not break the BMC; the next save tries again
  }
}

/**
 * Start counting for a machine (idempotent); `power` is its power state now. `persistence` gives
 * the total to continue from and takes the new one.
 */
export function trackPowerOnHours(machine: Machine, power: PowerState, now: () => number = Date.now, persistence?: PohPersistence): void {
  if (states.has(machine)) return;
  let saved = 0;
  try {
    saved = Math.max(0, persistence?.load() ?? 0);
  } catch {
    saved = 0;
  }
  const s: PohState = { accumulatedMs: saved, onSince: isOn(power) ? now() : undefined, now, persistence, timer: undefined, off: () => undefined };
  states.set(machine, s);
  if (persistence) {
    s.timer = setInterval(() => {
      if (s.onSince !== undefined) save(s);
    }, POH_SAVE_INTERVAL_MS);
    s.timer.unref();
  }
  s.off = machine.on((ev) => {
    if (ev.type !== 'power') return;
    const t = now();
    if (isOn(ev.to) && s.onSince === undefined) s.onSince = t;
    else if (!isOn(ev.to) && s.onSince !== undefined) {
      s.accumulatedMs += t - s.onSince;
      s.onSince = undefined;
      save(s);
    }
  });
}

/** Stops counting for a machine (the IPMI server closes), saving the total first. */
export function stopPowerOnHours(machine: Machine): void {
  const s = states.get(machine);
  if (!s) return;
  save(s);
  if (s.timer) clearInterval(s.timer);
  s.off();
  states.delete(machine);
}

/** Powered-on milliseconds counted so far. */
export function poweredOnMs(machine: Machine, now?: number): number {
  const s = states.get(machine);
  return s ? total(s, now ?? s.now()) : 0;
}

async function getPoh(ctx: CommandContext): Promise<IpmiResponse> {
  const bad = badLength(ctx.req.data, 0);
  if (bad) return bad;
  let ms: number;
  if (ctx.machine.poweredOnSince) {
    const since = await ctx.machine.poweredOnSince();
    ms = since ? Math.max(0, Date.now() - since.getTime()) : 0;
  } else {
    if (!states.has(ctx.machine)) trackPowerOnHours(ctx.machine, await ctx.machine.getPowerState());
    ms = poweredOnMs(ctx.machine);
  }
  const counts = Math.floor(ms / (POH_MINUTES_PER_COUNT * 60_000));
  return ok([POH_MINUTES_PER_COUNT, ...le32(counts >>> 0)]);
}

export function pohCommands(): CommandSpec[] {
  return [spec(NetFn.CHASSIS, 0x0f, 'Get POH Counter', Privilege.User, getPoh)];
}
