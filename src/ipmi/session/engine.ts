/**
 * Datagram-level IPMI engine: classifies each UDP payload (ASF, IPMI 1.5, RMCP+), runs the
 * session handshakes, authenticates and decrypts in-session packets, dispatches requests and
 * builds the reply datagram. No sockets here: server.ts owns the socket. The command table is run
 * by execute.ts (privileges, handler outcome → completion code: completion.ts); replies are framed
 * and protected by framing.ts.
 * Every malformed, unauthenticated or replayed datagram yields `undefined` (nothing sent).
 */
import { countSessions, instrumentIpmiCommands } from '../../common/metrics.js';
import type { Logger } from '../../common/logger.js';
import {
  AuthType,
  PayloadType,
  RmcpClass,
  decodeAsf,
  decodeLanRequest,
  decodeRmcpHeader,
  decodeRmcpPlus,
  decodeV15,
  encodeAsfPong,
  encodeV15,
  isAsfPing,
  responseFor,
  verifyIntegrity,
  verifyV15AuthCode,
  type LanRequest,
  type RmcpPlusPacket,
  type V15Packet,
} from '../codec/index.js';
import { NetFn, type CommandSpec, type IpmiResponse } from '../types.js';
import { SessionCmd, sessionCommands } from './commands.js';
import type { EngineCommandTable, EngineContext, EngineSettings, Envelope, Remote, SessionLayerContext } from './context.js';
import { executeCommand, type PendingResponse } from './execute.js';
import { frameReply, RMCP_IPMI, sessionAes, sessionK1, wrapForSession, wrapPreSession } from './framing.js';
import { LoginLockout } from '../../accounts/lockout.js';
import { AccountStore, type AccountChange } from '../../accounts/store.js';
import { handleOpenSession, handleRakp1, handleRakp3 } from './rmcpplus.js';
import { SessionTable, type Session, type SessionTableOptions } from './table.js';
import { activateSession, authTypeAllowed } from './v15.js';
import type { SolManager } from '../sol/manager.js';

export { DUPLICATE_WINDOW_MS } from './dedup.js';

/** Larger datagrams are dropped unread. */
export const MAX_DATAGRAM = 1024;

export interface EngineOptions extends EngineSettings, SessionTableOptions {
  /** The agent's login lockout, shared with Redfish (src/accounts/lockout.ts); default: a private one */
  lockout?: LoginLockout;
}

/**
 * A reply, or a promise of one. Most of the path is synchronous; only command handlers that wait
 * for the backend make it a promise, so a datagram costs one promise hop rather than one per layer.
 */
type Reply = Buffer | undefined | Promise<Buffer | undefined>;

function isPromise<T>(v: T | Promise<T>): v is Promise<T> {
  return v instanceof Promise;
}

export class IpmiEngine {
  readonly ctx: EngineContext;
  /** Every command: the session-layer rows (session/commands.ts) and ctx.commands */
  private readonly table: EngineCommandTable;
  /** The SOL service, when the server runs one (attachSol) */
  private sol: SolManager | undefined;
  /** Sends a datagram that answers no request (SOL output); set with attachSol */
  private output: ((buf: Buffer, remote: Remote) => void) | undefined;

  /** Routes in-session SOL payloads (type 1) to `sol`, which sends its packets through `output`. */
  attachSol(sol: SolManager, output: (buf: Buffer, remote: Remote) => void): void {
    this.sol = sol;
    this.output = output;
    sol.bind({
      transmit: (id, payload) => this.transmitSol(id, payload),
      isLive: (id) => this.ctx.table.live(id, this.ctx.now())?.state === 'active',
    });
  }

  /** A SOL payload to a session, protected like its other payloads; false when the session is gone. */
  private transmitSol(id: number, payload: Buffer): boolean {
    const s = this.ctx.table.get(id);
    if (!s || s.state !== 'active' || !s.rmcp || !this.output) return false;
    const buf = wrapForSession(s, PayloadType.SOL, payload);
    this.output(buf, { address: s.remoteAddress, port: s.remotePort });
    return true;
  }

  constructor(opts: EngineOptions) {
    // Only real authentication failures count (bad RAKP3, bad Activate Session auth code, unknown
    // user): an abandoned handshake is not one, so nothing is counted when a handshake expires.
    const lockout = opts.lockout ?? new LoginLockout(undefined, opts.now);
    const accounts = opts.accounts ?? new AccountStore(opts.users, { requireAdmin: false });
    this.ctx = {
      ...opts,
      accounts,
      users: accounts.users,
      table: new SessionTable({
        maxSessions: opts.maxSessions,
        idleTimeoutMs: opts.idleTimeoutMs,
        handshakeTimeoutMs: opts.handshakeTimeoutMs,
        ...(opts.maxHalfOpenPerSource !== undefined ? { maxHalfOpenPerSource: opts.maxHalfOpenPerSource } : {}),
      }),
      lockout,
      challenges: new Map(),
    };
    const table = new Map<number, CommandSpec<SessionLayerContext>>(this.ctx.commands);
    for (const c of sessionCommands(this.ctx)) {
      const key = (c.netFn << 8) | c.cmd;
      if (table.has(key)) throw new Error(`IPMI command ${c.netFn.toString(16)}/${c.cmd.toString(16)} is a session-layer command`);
      table.set(key, c);
    }
    // agent metrics (src/agent/metrics.ts): every answer by command and completion code
    instrumentIpmiCommands(table, this.ctx.machine);
    this.table = table;
    countSessions(this.ctx.machine, 'ipmi', () => this.ctx.table.active().length);
  }

  /**
   * Whether the session's account is still the one that logged in (not deleted, disabled,
   * renamed, re-roled or given a new password since): Redfish drops such sessions at their next
   * request, and so does IPMI.
   */
  private accountCurrent(s: Session): boolean {
    return s.accountStamp !== undefined && this.ctx.accounts.sessionStamp(s.userId) === s.accountStamp;
  }

  /** Ends a session whose account changed; its datagram is dropped, as for a closed session. */
  private endForAccount(s: Session, log: Logger): undefined {
    this.ctx.table.delete(s.id);
    this.sol?.sessionClosed(s.id);
    log.info({ sid: s.id, user: s.username }, 'IPMI session ended: its account was deleted, disabled or changed');
    return undefined;
  }

  /**
   * Ends, at once, every session whose account changed (the store's change event), so a SOL
   * console that only listens does not outlive its account either. The session that renamed its
   * own account or set its own password (`change.origin`) goes on with the new stamp; a change of
   * its role or Enabled ends it like any other. Returns how many ended.
   */
  endStaleSessions(log: Logger, change?: AccountChange): number {
    let n = 0;
    for (const s of this.ctx.table.active()) {
      if (this.accountCurrent(s)) continue;
      if (change?.type === 'updated' && change.origin === `ipmi-session:${s.id}` && change.account.id === s.userId && change.account.role === change.before.role) {
        const stamp = this.ctx.accounts.sessionStamp(s.userId);
        if (stamp !== undefined) {
          s.accountStamp = stamp;
          continue;
        }
      }
      this.endForAccount(s, log);
      n++;
    }
    return n;
  }

  /** Expire idle sessions and stale handshakes. */
  sweep(): number {
    const n = this.ctx.table.sweep(this.ctx.now());
    this.sol?.sweep();
    return n;
  }

  /** Handles one datagram; resolves to the reply datagram or undefined. Never rejects. */
  handle(buf: Buffer, remote: Remote, log: Logger): Promise<Buffer | undefined> {
    const r = this.handleNow(buf, remote, log);
    return isPromise(r) ? r : Promise.resolve(r);
  }

  /**
   * Like handle, but answers synchronously when no command handler has to wait (malformed and
   * session-layer datagrams, handlers that return a plain value). Never throws or rejects.
   */
  handleNow(buf: Buffer, remote: Remote, log: Logger): Reply {
    let r: Reply;
    try {
      r = this.handleUnsafe(buf, remote, log);
    } catch (e) {
      return this.unexpected(e, log);
    }
    return isPromise(r) ? r.catch((e: unknown) => this.unexpected(e, log)) : r;
  }

  private unexpected(e: unknown, log: Logger): undefined {
    log.error({ err: e }, 'unexpected error while handling an IPMI datagram');
    return undefined;
  }

  private drop(log: Logger, reason: string): undefined {
    log.debug({ reason }, 'datagram dropped');
    return undefined;
  }

  private handleUnsafe(buf: Buffer, remote: Remote, log: Logger): Reply {
    if (buf.length > MAX_DATAGRAM) return this.drop(log, 'oversized');
    const h = decodeRmcpHeader(buf);
    if (!h.ok) return this.drop(log, h.message);
    if (h.value.isAck) return undefined;
    const body = buf.subarray(4);
    if (h.value.msgClass === RmcpClass.ASF) {
      const m = decodeAsf(body);
      if (!m.ok || !isAsfPing(m.value)) return this.drop(log, 'not an ASF ping');
      return encodeAsfPong(m.value.tag, h.value.sequence);
    }
    if (h.value.msgClass !== RmcpClass.IPMI) return this.drop(log, `RMCP class ${h.value.msgClass}`);
    if (body.length > 0 && body[0] === AuthType.RMCPPLUS) {
      const p = decodeRmcpPlus(body);
      if (!p.ok) return this.drop(log, p.message);
      return this.handleRmcpPlus(p.value, remote, log);
    }
    const p = decodeV15(body);
    if (!p.ok) return this.drop(log, p.message);
    return this.handleV15(p.value, remote, log);
  }

  // ---- RMCP+ -----------------------------------------------------------------------------------

  private handleRmcpPlus(p: RmcpPlusPacket, remote: Remote, log: Logger): Reply {
    const ctx = this.ctx;
    if (p.sessionId === 0) {
      if (p.authenticated || p.encrypted) return this.drop(log, 'pre-session packet with security bits');
      const pre = (type: number, payload: Buffer | undefined) => payload && wrapPreSession(type, payload);
      switch (p.payloadType) {
        case PayloadType.IPMI: {
          const req = decodeLanRequest(p.payload);
          if (!req.ok) return this.drop(log, req.message);
          return this.dispatch(req.value, { kind: 'rmcp-pre' }, remote, log);
        }
        case PayloadType.OPEN_SESSION_REQUEST:
          return pre(PayloadType.OPEN_SESSION_RESPONSE, handleOpenSession(ctx, p.payload, remote, log));
        case PayloadType.RAKP1:
          return pre(PayloadType.RAKP2, handleRakp1(ctx, p.payload, remote, log));
        case PayloadType.RAKP3:
          return pre(PayloadType.RAKP4, handleRakp3(ctx, p.payload, remote, log));
        default:
          return this.drop(log, `pre-session payload type ${p.payloadType}`);
      }
    }
    const s = ctx.table.live(p.sessionId, ctx.now());
    if (!s || s.protocol !== 'rmcp+' || s.state !== 'active' || !s.rmcp) return this.drop(log, 'unknown session');
    if (!this.accountCurrent(s)) return this.endForAccount(s, log);
    const suite = s.rmcp.suite;
    const needAuth = suite.integrity !== 0;
    const needEnc = suite.conf !== 0;
    if (p.authenticated !== needAuth || p.encrypted !== needEnc) return this.drop(log, 'security bits do not match the session');
    if (needAuth && !verifyIntegrity(p, suite.integrity, sessionK1(s))) return this.drop(log, 'bad integrity code');
    if (!s.inbound.check(p.sequence)) return this.drop(log, `sequence ${p.sequence} outside the window or replayed`);
    const isSol = p.payloadType === PayloadType.SOL && this.sol !== undefined;
    if (p.payloadType !== PayloadType.IPMI && !isSol) return this.drop(log, `payload type ${p.payloadType} not supported in session`);
    let msg = p.payload;
    if (needEnc) {
      const d = sessionAes(s).decrypt(p.payload);
      if (!d.ok) return this.drop(log, d.message);
      msg = d.value;
    }
    s.inbound.commit(p.sequence);
    s.lastActivity = ctx.now();
    if (isSol) {
      // SOL answers (ACKs, output) go out through the SOL layer, not as a reply to this datagram.
      this.sol!.receive(s.id, msg);
      return undefined;
    }
    const req = decodeLanRequest(msg);
    if (!req.ok) return this.drop(log, req.message);
    return this.dispatch(req.value, { kind: 'session', session: s }, remote, log);
  }

  // ---- IPMI 1.5 --------------------------------------------------------------------------------

  private handleV15(p: V15Packet, remote: Remote, log: Logger): Reply {
    const ctx = this.ctx;
    if (p.sessionId === 0) {
      if (p.authType !== AuthType.NONE) return this.drop(log, 'pre-session packet with an auth code');
      const req = decodeLanRequest(p.message);
      if (!req.ok) return this.drop(log, req.message);
      return this.dispatch(req.value, { kind: 'v15-pre' }, remote, log);
    }
    if (ctx.challenges.has(p.sessionId)) {
      const req = decodeLanRequest(p.message);
      if (!req.ok) return this.drop(log, req.message);
      if (req.value.netFn !== NetFn.APP || req.value.cmd !== SessionCmd.ACTIVATE_SESSION) return this.drop(log, 'only Activate Session may use a temporary id');
      const out = activateSession(ctx, p, req.value, remote, log);
      if (!out) return undefined;
      const msg = responseFor(req.value, out.result.cc, out.result.data);
      return encodeV15(out.authTypeCode, out.headerSeq, out.tempId, msg, out.pw16, RMCP_IPMI);
    }
    const s = ctx.table.live(p.sessionId, ctx.now());
    if (!s || s.protocol !== 'v15' || s.state !== 'active' || !s.v15) return this.drop(log, 'unknown session');
    if (!this.accountCurrent(s)) return this.endForAccount(s, log);
    if (p.authType !== s.v15.authTypeCode || !authTypeAllowed(ctx, p.authType)) return this.drop(log, 'auth type does not match the session');
    if (!verifyV15AuthCode(p, s.v15.pw16)) return this.drop(log, 'bad auth code');
    if (!s.inbound.check(p.sequence)) return this.drop(log, `sequence ${p.sequence} outside the window or replayed`);
    s.inbound.commit(p.sequence);
    s.lastActivity = ctx.now();
    const req = decodeLanRequest(p.message);
    if (!req.ok) return this.drop(log, req.message);
    return this.dispatch(req.value, { kind: 'session', session: s }, remote, log);
  }

  // ---- dispatch --------------------------------------------------------------------------------

  private dispatch(req: LanRequest, env: Envelope, remote: Remote, log: Logger): Reply {
    let r: PendingResponse;
    if (env.kind === 'session') {
      // A client that lost our answer resends the same message (same rqSeq) under a new session
      // sequence number: it gets the first copy's answer, never a second execution (dedup.ts).
      const s = env.session;
      const seen = s.recent.lookup(req, this.ctx.now());
      if (seen) {
        log.info(
          { rqSeq: req.rqSeq, netFn: req.netFn, cmd: req.cmd, inFlight: seen.joined },
          seen.joined ? 'retransmitted request joined the copy still running' : 'retransmitted request answered from cache',
        );
        r = seen.result;
      } else {
        r = executeCommand(this.table, this.ctx, req, env, remote, log);
        s.recent.remember(req, r, this.ctx.now);
      }
    } else {
      r = executeCommand(this.table, this.ctx, req, env, remote, log);
    }
    return isPromise(r) ? r.then((v) => this.reply(req, env, v, log)) : this.reply(req, env, r, log);
  }

  private reply(req: LanRequest, env: Envelope, r: IpmiResponse | undefined, log: Logger): Buffer | undefined {
    if (!r) return undefined;
    const out = frameReply(env, responseFor(req, r.cc, r.data));
    if (r.closeAfter !== undefined) {
      this.ctx.table.delete(r.closeAfter);
      this.sol?.sessionClosed(r.closeAfter);
      log.info({ sid: r.closeAfter }, 'session closed');
    }
    return out;
  }
}
