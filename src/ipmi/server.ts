/**
 * The IPMI LAN server: one UDP socket carrying ASF ping, IPMI 1.5 and IPMI 2.0 (RMCP+). The
 * protocol work happens in session/engine.ts; this file owns the socket, the timers and the
 * per-datagram logger.
 */
import { createHash } from 'node:crypto';
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { lookup as dnsLookup, type LookupOneOptions } from 'node:dns';
import { isIP, isIPv6 } from 'node:net';
import type { ProtocolServer, ProtocolServerOptions } from '../accounts/types.js';
import { newRequestId, type Logger } from '../common/logger.js';
import { buildCommandTable } from './commands/index.js';
import { uuidToGuidBytes } from './commands/app.js';
import { stopPowerOnHours, trackPowerOnHours, type PohPersistence } from './commands/poh.js';
import { stopWatchdog } from './commands/watchdog.js';
import type { NetworkModel } from '../common/network.js';
import type { AccountStore } from '../accounts/store.js';
import { DEFAULT_LOCKOUT_POLICY, LoginLockout, type LockoutPolicy } from '../accounts/lockout.js';
import { IpmiEngine } from './session/engine.js';
import { SolManager } from './sol/manager.js';
import type { CommandSpec } from './types.js';

export interface IpmiServerOptions extends ProtocolServerOptions {
  /**
   * The machine's account store, shared by both protocols (src/accounts/store.ts); one per machine,
   * never a module singleton. Absent: the server wraps `users` in a private store of its own.
   */
  accounts?: AccountStore;
  /** Allow cipher suite 0 and IPMI 1.5 auth types NONE and straight password (off by default). */
  allowInsecure?: boolean;
  /** Idle session timeout in seconds (default 60). */
  sessionTimeoutSeconds?: number;
  /** Maximum concurrent sessions (default 32). */
  maxSessions?: number;
  /** Seconds a half-open handshake may wait for its next message (default 5). */
  handshakeTimeoutSeconds?: number;
  /** Half-open RMCP+ handshakes one source address may hold at once (default 4). */
  maxHalfOpenPerSource?: number;
  /** The agent's login lockout, shared with Redfish; default: a private one with `lockoutPolicy`. */
  lockout?: LoginLockout;
  /** Policy of the private lockout when `lockout` is not given (default DEFAULT_LOCKOUT_POLICY). */
  lockoutPolicy?: Partial<LockoutPolicy>;
  /** Clock in ms (tests); default Date.now. */
  now?: () => number;
  /** Command table override (tests); default: the full table from ./commands. */
  commands?: ReadonlyMap<number, CommandSpec>;
  /**
   * Serial-over-LAN (payload type 1) to the machine's console, when the backend has one. On by
   * default; false turns it off (SOL then reads as disabled).
   */
  sol?: false | { outputLimit?: number };
  /** The agent's network identity (Get LAN Configuration Parameters); without it addresses read as 0. */
  network?: NetworkModel;
  /** Where the counted power-on hours survive restarts (simulator `--poh-file`); default: memory */
  poh?: PohPersistence;
  /**
   * The timer that expires idle sessions and stale handshakes, shared with other servers (a shared
   * agent's one socket per VM); default: a 1 s timer of this server's own.
   */
  sweeper?: SweepGroup;
}

/**
 * One 1 s timer sweeping the session tables of many IPMI servers: a shared agent with 1,000 VMs
 * has 1,000 sockets, whose own timers were 1,000 event-loop wake-ups a second (~14 ms of CPU per
 * second while idle, docs/scale.md "Shared mode CPU per request"); together they are one. The timer
 * runs while the group has members and does not keep the process alive.
 */
export class SweepGroup {
  private readonly members = new Set<() => void>();
  private timer: ReturnType<typeof setInterval> | undefined;

  constructor(private readonly everyMs = 1000) {}

  /** Sweep with the others from now on; returns what stops it. */
  add(sweep: () => void): () => void {
    this.members.add(sweep);
    if (!this.timer) {
      this.timer = setInterval(() => {
        for (const m of [...this.members]) m();
      }, this.everyMs);
      this.timer.unref();
    }
    return () => {
      this.members.delete(sweep);
      if (this.members.size === 0 && this.timer) {
        clearInterval(this.timer);
        this.timer = undefined;
      }
    };
  }

  get size(): number {
    return this.members.size;
  }
}

const LEVELS = new Set(['trace', 'debug', 'info', 'warn', 'error', 'fatal']);

/** What a datagram's logger needs to make its child: the server's logger and the sender. */
interface DatagramLog {
  parent: Logger;
  remote: RemoteInfo;
  child: Logger | undefined;
}

/** One handler for every datagram's logger (no closures per datagram). */
const datagramLogHandler: ProxyHandler<DatagramLog> = {
  get(st, prop) {
    const parent = st.parent;
    if (typeof prop === 'string' && LEVELS.has(prop) && !parent.isLevelEnabled(prop)) return noop;
    // A child logs at its parent's level: asking needs no child.
    if (prop === 'isLevelEnabled' && !st.child) return (level: string) => parent.isLevelEnabled(level);
    const c = (st.child ??= parent.child({ rid: newRequestId(), remote: `${st.remote.address}:${st.remote.port}` }));
    const v = Reflect.get(c, prop, c) as unknown;
    return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(c) : v;
  },
};

/**
 * A datagram's logger, a child of `parent` with a request id and the sender, made only when
 * something is actually logged: most datagrams log nothing, and building a pino child for each one
 * would cost more than handling the datagram.
 */
export function datagramLogger(parent: Logger, remote: RemoteInfo): Logger {
  return new Proxy<DatagramLog>({ parent, remote, child: undefined }, datagramLogHandler) as unknown as Logger;
}

const noop = () => undefined;

/**
 * Socket lookup that answers IP literals at once. We only ever send to the address a datagram came
 * from, and dns.lookup would defer every reply by a tick just to hand that address back.
 */
function literalLookup(host: string, opts: LookupOneOptions, cb: (err: NodeJS.ErrnoException | null, address: string, family: number) => void): void {
  const family = isIP(host);
  if (family !== 0) cb(null, host, family);
  else dnsLookup(host, opts, cb);
}

/** The GUID sent in RAKP2: the machine's UUID in IPMI layout, or a stable stand-in if unknown. */
async function bmcGuid(opts: IpmiServerOptions): Promise<Buffer> {
  try {
    return uuidToGuidBytes((await opts.machine.getSystemInfo()).uuid);
  } catch {
    return createHash('sha256').update('kubevirtbmc-ipmi').digest().subarray(0, 16);
  }
}

/** The IPMI server; `solEnabled` tells whether Serial-over-LAN can be activated right now. */
export interface IpmiProtocolServer extends ProtocolServer {
  solEnabled(): boolean;
}

export async function startIpmiServer(opts: IpmiServerOptions): Promise<IpmiProtocolServer> {
  const log = opts.logger;
  const now = opts.now ?? Date.now;
  let boundPort = opts.port;
  const sol =
    opts.sol === false
      ? undefined
      : new SolManager({
          machine: opts.machine,
          logger: log.child({ payload: 'sol' }),
          channel: 1,
          port: () => boundPort,
          ...(opts.sol?.outputLimit !== undefined ? { outputLimit: opts.sol.outputLimit } : {}),
        });
  const lockout = opts.lockout ?? new LoginLockout({ ...DEFAULT_LOCKOUT_POLICY, ...opts.lockoutPolicy }, now);
  // Power-on hours (Get POH Counter): a backend that records when the machine came on is asked
  // at each request; otherwise they are counted from now on, continuing a saved total
  if (!opts.machine.poweredOnSince) {
    try {
      trackPowerOnHours(opts.machine, await opts.machine.getPowerState(), Date.now, opts.poh);
    } catch {
      // backend unreachable at start: counting starts at the first POH request instead
    }
  }
  const lan = {
    allowInsecure: opts.allowInsecure ?? false,
    port: () => boundPort,
    lockoutPolicy: () => lockout.policy,
    ...(opts.network ? { network: opts.network } : {}),
  };
  const engine = new IpmiEngine({
    machine: opts.machine,
    users: opts.users,
    ...(opts.accounts ? { accounts: opts.accounts } : {}),
    logger: log,
    commands: opts.commands ?? buildCommandTable(sol ? { sol, lan } : { lan }),
    allowInsecure: opts.allowInsecure ?? false,
    channel: 1,
    guid: await bmcGuid(opts),
    now,
    maxSessions: opts.maxSessions ?? 32,
    idleTimeoutMs: (opts.sessionTimeoutSeconds ?? 60) * 1000,
    handshakeTimeoutMs: (opts.handshakeTimeoutSeconds ?? 5) * 1000,
    ...(opts.maxHalfOpenPerSource !== undefined ? { maxHalfOpenPerSource: opts.maxHalfOpenPerSource } : {}),
    lockout,
  });
  // A deleted, disabled or changed account loses its sessions as soon as the store says so
  const unsubscribe = engine.ctx.accounts.onChange((change) => engine.endStaleSessions(log, change));
  if (opts.allowInsecure) log.warn('IPMI insecure mode: cipher suite 0 and IPMI 1.5 auth types NONE and straight password are accepted');

  const socket: Socket = createSocket({ type: isIPv6(opts.address) ? 'udp6' : 'udp4', lookup: literalLookup });
  let closed = false;
  socket.on('message', (msg: Buffer, rinfo: RemoteInfo) => {
    const rlog = datagramLogger(log, rinfo);
    // Send errors surface as socket 'error' events (logged below). A reply that a slow handler
    // finishes after close() is dropped: send on a closed socket throws, which here would be an
    // unhandled rejection.
    const reply = engine.handleNow(msg, rinfo, rlog);
    if (reply instanceof Promise) {
      void reply.then((r) => {
        if (r && !closed) socket.send(r, rinfo.port, rinfo.address);
      });
    } else if (reply) {
      socket.send(reply, rinfo.port, rinfo.address);
    }
  });
  socket.on('error', (err) => log.error({ err }, 'IPMI socket error'));

  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    socket.once('error', onError);
    socket.bind(opts.port, opts.address, () => {
      socket.off('error', onError);
      resolve();
    });
  });
  const addr = socket.address();
  boundPort = addr.port;
  if (sol) {
    engine.attachSol(sol, (buf, r) => {
      if (!closed) socket.send(buf, r.port, r.address);
    });
  }
  const stopSweeping = (opts.sweeper ?? new SweepGroup()).add(() => engine.sweep());
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  log.info({ address: addr.address, port: addr.port }, 'IPMI server listening');

  return {
    name: 'ipmi',
    address: addr.address,
    port: addr.port,
    url: `udp://${host}:${addr.port}`,
    solEnabled: () => sol !== undefined && sol.available && sol.config.enabled,
    async close() {
      if (closed) return;
      closed = true;
      stopSweeping();
      unsubscribe();
      sol?.closeAll();
      // The watchdog is this server's: it must not act on the machine once the BMC is gone
      stopWatchdog(opts.machine);
      stopPowerOnHours(opts.machine);
      engine.ctx.table.clear();
      await new Promise<void>((resolve) => socket.close(() => resolve()));
    },
  };
}
