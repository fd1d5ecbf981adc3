/**
 * The BMC watchdog timer (IPMI v2.0 §27: Reset 0x06/0x22, Set 0x06/0x24, Get 0x06/0x25): a real
 * countdown kept by the agent, whose timeout action is carried out on the VM through the backend
 * seam, once: hard reset → forceRestart, power down → forceOff, power cycle → powerCycle; a
 * pre-timeout NMI interrupt → the seam's nmi. SMI and messaging pre-timeout interrupts have no
 * counterpart for a VM and are refused (0xCC).
 *
 * This is the BMC's watchdog, reset by whoever talks IPMI to the BMC (over LAN: the guest has no
 * KCS/SSIF path to this agent). It is not the guest-visible watchdog device KubeVirt can add to a
 * VM (spec.domain.devices.watchdog, i6300esb), which QEMU runs inside the VM and this agent
 * neither sees nor drives.
 */
import type { Machine, PowerAction } from '../../backend/types.js';
import type { Logger } from '../../common/logger.js';
import { perObject } from '../../common/per-object.js';
import { CC, NetFn, Privilege, type CommandContext, type CommandSpec, type IpmiResponse } from '../types.js';
import { badLength, fail, le16, ok, spec } from './util.js';

export const WatchdogCmd = { RESET: 0x22, SET: 0x24, GET: 0x25 } as const;

/** Reset Watchdog Timer: "attempt to start un-initialized watchdog" (§27.5). */
export const WATCHDOG_UNINITIALIZED = 0x80;

/** Timeout actions (byte 2 bits 2:0) → backend power actions; 0 = no action. */
export const WATCHDOG_ACTIONS: Readonly<Record<number, PowerAction | undefined>> = {
  0: undefined,
  1: 'forceRestart',
  2: 'forceOff',
  3: 'powerCycle',
};

const PRETIMEOUT_NONE = 0;
const PRETIMEOUT_NMI = 2;

export interface WatchdogState {
  /** Byte 1 of Set: timer use (bits 2:0) and "don't log" (bit 7) */
  use: number;
  /** Byte 2: pre-timeout interrupt (bits 6:4) and timeout action (bits 2:0) */
  actions: number;
  /** Pre-timeout interval, seconds */
  pretimeout: number;
  /** Timer use expiration flags (bits 5:1) */
  expirationFlags: number;
  /** Initial countdown, 100 ms units */
  initial: number;
  configured: boolean;
  running: boolean;
  /** ms epoch the running countdown reaches 0 */
  deadline: number;
  /** Countdown left when stopped, 100 ms units */
  remaining: number;
  /** How many times the timer expired (each expiry acts once) */
  expiries: number;
  timer?: ReturnType<typeof setTimeout>;
  preTimer?: ReturnType<typeof setTimeout>;
}

const states = perObject<Machine, WatchdogState>(() => ({ use: 0, actions: 0, pretimeout: 0, expirationFlags: 0, initial: 0, configured: false, running: false, deadline: 0, remaining: 0, expiries: 0 }));

export function watchdogState(machine: Machine): WatchdogState {
  return states.get(machine);
}

function clearTimers(s: WatchdogState): void {
  if (s.timer) clearTimeout(s.timer);
  if (s.preTimer) clearTimeout(s.preTimer);
  delete s.timer;
  delete s.preTimer;
}

function stop(s: WatchdogState): void {
  if (s.running) s.remaining = present(s);
  s.running = false;
  clearTimers(s);
}

/** Present countdown value in 100 ms units. */
function present(s: WatchdogState, now = Date.now()): number {
  if (!s.running) return s.remaining;
  return Math.max(0, Math.ceil((s.deadline - now) / 100));
}

async function act(machine: Machine, action: PowerAction, logger: Logger, what: string): Promise<void> {
  try {
    await machine.power(action);
    logger.warn({ action }, `watchdog ${what}: action carried out`);
  } catch (err) {
    logger.warn({ action, err }, `watchdog ${what}: action failed`);
  }
}

/** (Re)start the countdown from the initial value. */
function start(machine: Machine, s: WatchdogState, logger: Logger, countdown = s.initial): void {
  clearTimers(s);
  const ms = countdown * 100;
  s.running = true;
  s.deadline = Date.now() + ms;
  const pre = (s.actions >> 4) & 0x07;
  if (pre === PRETIMEOUT_NMI && s.pretimeout > 0) {
    const at = ms - s.pretimeout * 1000;
    s.preTimer = setTimeout(() => {
      delete s.preTimer;
      void act(machine, 'nmi', logger, 'pre-timeout');
    }, Math.max(0, at));
    s.preTimer.unref?.();
  }
  s.timer = setTimeout(() => {
    delete s.timer;
    if (s.preTimer) clearTimeout(s.preTimer);
    delete s.preTimer;
    s.running = false;
    s.remaining = 0;
    s.expiries++;
    s.expirationFlags |= (1 << (s.use & 0x07)) & 0x3e;
    const action = WATCHDOG_ACTIONS[s.actions & 0x07];
    logger.warn({ use: s.use & 0x07, action: action ?? 'none' }, 'watchdog timer expired');
    if (action) void act(machine, action, logger, 'timeout');
  }, ms);
  s.timer.unref?.();
}

function setWatchdog(ctx: CommandContext): IpmiResponse {
  const d = ctx.req.data;
  const bad = badLength(d, 6);
  if (bad) return bad;
  const use = d[0]! & 0x07;
  const dontStop = (d[0]! & 0x40) !== 0;
  const action = d[1]! & 0x07;
  const pre = (d[1]! >> 4) & 0x07;
  const pretimeout = d[2]!;
  const initial = d.readUInt16LE(4);
  if (use < 1 || use > 5 || action > 3 || (pre !== PRETIMEOUT_NONE && pre !== PRETIMEOUT_NMI)) return fail(CC.INVALID_DATA_FIELD);
  if (pre !== PRETIMEOUT_NONE && pretimeout * 10 > initial) return fail(CC.INVALID_DATA_FIELD);
  const s = watchdogState(ctx.machine);
  const wasRunning = s.running;
  stop(s);
  s.use = d[0]! & 0x87;
  s.actions = (pre << 4) | action;
  s.pretimeout = pretimeout;
  s.expirationFlags &= ~(d[3]! & 0x3e);
  s.initial = initial;
  s.remaining = initial;
  s.configured = true;
  // "Don't stop": a running timer goes on counting down from the new value (§27.6)
  if (wasRunning && dontStop) start(ctx.machine, s, ctx.logger);
  ctx.logger.info({ use, action, initial, running: s.running, user: ctx.session.username }, 'watchdog timer set');
  return ok();
}

function resetWatchdog(ctx: CommandContext): IpmiResponse {
  const bad = badLength(ctx.req.data, 0);
  if (bad) return bad;
  const s = watchdogState(ctx.machine);
  if (!s.configured) return fail(WATCHDOG_UNINITIALIZED);
  start(ctx.machine, s, ctx.logger);
  return ok();
}

function getWatchdog(ctx: CommandContext): IpmiResponse {
  const bad = badLength(ctx.req.data, 0);
  if (bad) return bad;
  const s = watchdogState(ctx.machine);
  return ok([
    (s.use & 0x87) | (s.running ? 0x40 : 0x00),
    s.actions,
    s.pretimeout,
    s.expirationFlags,
    ...le16(s.initial),
    ...le16(present(s)),
  ]);
}

/** Stop a machine's watchdog (agent shutdown, tests). */
export function stopWatchdog(machine: Machine): void {
  const s = states.peek(machine);
  if (s) stop(s);
}

export function watchdogCommands(): CommandSpec[] {
  return [
    spec(NetFn.APP, WatchdogCmd.RESET, 'Reset Watchdog Timer', Privilege.Operator, resetWatchdog),
    spec(NetFn.APP, WatchdogCmd.SET, 'Set Watchdog Timer', Privilege.Operator, setWatchdog),
    spec(NetFn.APP, WatchdogCmd.GET, 'Get Watchdog Timer', Privilege.User, getWatchdog),
  ];
}
