/**
 * Session table: random non-zero 32-bit ids, sliding sequence windows, idle and handshake
 * expiry, and caps: active sessions, half-open RMCP+ handshakes, and half-open handshakes per source.
 */
import { randomBytes } from 'node:crypto';
import type { UserAccount } from '../../accounts/types.js';
import type { CipherSuite } from '../codec/suites.js';
import type { AesCbcSession } from './crypto.js';
import { DuplicateCache } from './dedup.js';
import { Privilege, type IpmiResponse, type SessionView } from '../types.js';

/**
 * Accepts sequence numbers within [highest-below, highest+above] (32-bit wrap-around) that have
 * not been seen yet. Check first, commit only after the packet has authenticated.
 * Seen numbers are a bitmask: bit i = (highest - i) was seen; `below` must be < 32.
 */
export class SeqWindow {
  private highest: number;
  private seen = 0;

  constructor(
    start: number,
    private readonly below: number,
    private readonly above: number,
  ) {
    this.highest = start >>> 0;
  }

  check(seq: number): boolean {
    if (seq === 0) return false;
    const d = (seq - this.highest) | 0;
    if (d < -this.below || d > this.above) return false;
    return d > 0 || (this.seen & (1 << -d)) === 0;
  }

  commit(seq: number): void {
    const d = ((seq >>> 0) - this.highest) | 0;
    if (d > 0) {
      this.seen = d >= 32 ? 1 : ((this.seen << d) | 1) >>> 0;
      this.highest = seq >>> 0;
    } else if (-d < 32) {
      this.seen = (this.seen | (1 << -d)) >>> 0;
    }
  }
}

export type SessionState =
  /** RMCP+: Open Session answered, waiting for RAKP1 */
  | 'opened'
  /** RMCP+: RAKP2 sent, waiting for RAKP3 */
  | 'rakp'
  | 'active';

export interface RmcpPlusKeys {
  suite: CipherSuite;
  consoleId: number;
  /** Requested max privilege from Open Session (0 = any) */
  openMaxPriv: number;
  rm?: Buffer;
  rc?: Buffer;
  role?: number;
  username?: Buffer;
  k1?: Buffer;
  /** AES key, K2[0..15] */
  aesKey?: Buffer;
  /** AES contexts for this session's packets, made from aesKey on first use */
  aes?: AesCbcSession;
  /** RAKP2 already sent, kept so a retransmitted RAKP1 gets the same answer (same Rc) */
  rakp2?: Buffer;
  /** RAKP4 already sent, kept so a retransmitted RAKP3 gets the same answer */
  rakp4?: Buffer;
  rakp3Code?: Buffer;
}

export interface V15Keys {
  authType: 'md5' | 'password' | 'none';
  authTypeCode: number;
  pw16: Buffer;
}


export class Session implements SessionView {
  id: number;
  readonly handle: number;
  readonly remote: string;
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly protocol: 'rmcp+' | 'v15';
  state: SessionState;
  username = '';
  user?: UserAccount;
  userId = 0;
  /** The account's AccountStore.sessionStamp at login; the session ends once that changes */
  accountStamp: number | undefined;
  privilege: Privilege = Privilege.User;
  maxPrivilege: Privilege = Privilege.User;
  readonly createdAt: number;
  lastActivity: number;
  /** BMC → console sequence number */
  outSeq = 1;
  inbound: SeqWindow;
  rmcp?: RmcpPlusKeys;
  v15?: V15Keys;
  /** Recent requests of this session and their answers, to spot retransmissions (dedup.ts) */
  readonly recent = new DuplicateCache<IpmiResponse | undefined>();

  constructor(init: { id: number; handle: number; remoteAddress: string; remotePort: number; protocol: 'rmcp+' | 'v15'; now: number }) {
    this.id = init.id;
    this.handle = init.handle;
    this.remoteAddress = init.remoteAddress;
    this.remotePort = init.remotePort;
    this.remote = `${init.remoteAddress}:${init.remotePort}`;
    this.protocol = init.protocol;
    this.state = init.protocol === 'rmcp+' ? 'opened' : 'active';
    this.createdAt = init.now;
    this.lastActivity = init.now;
    this.inbound = init.protocol === 'rmcp+' ? new SeqWindow(0, 16, 15) : new SeqWindow(0, 8, 8);
  }

  get authType(): SessionView['authType'] {
    return this.protocol === 'rmcp+' ? 'rmcp+' : (this.v15?.authType ?? 'none');
  }

  get cipherSuite(): number | undefined {
    return this.rmcp?.suite.id;
  }

  /** Next outbound sequence number (never 0). */
  nextOutSeq(): number {
    const s = this.outSeq;
    this.outSeq = (this.outSeq + 1) >>> 0 || 1;
    return s;
  }
}

export interface SessionTableOptions {
  /** Active sessions at most; half-open RMCP+ handshakes have a budget of the same size of their own */
  maxSessions: number;
  idleTimeoutMs: number;
  handshakeTimeoutMs: number;
  /** Half-open RMCP+ handshakes one source address may hold at once (default MAX_HALF_OPEN_PER_SOURCE) */
  maxHalfOpenPerSource?: number;
}

/** Default bound on half-open handshakes per source: real consoles hold one at a time. */
export const MAX_HALF_OPEN_PER_SOURCE = 4;

/** Why create() made no session. */
export type CreateRefusal = 'full' | 'source-busy';

export class SessionTable {
  private readonly byId = new Map<number, Session>();
  private nextHandle = 1;

  /** `onExpire` hears about every session dropped by a timeout. */
  constructor(
    readonly opts: SessionTableOptions,
    private readonly onExpire?: (s: Session) => void,
  ) {}

  get size(): number {
    return this.byId.size;
  }

  get activeCount(): number {
    let n = 0;
    for (const s of this.byId.values()) if (s.state === 'active') n++;
    return n;
  }

  get(id: number): Session | undefined {
    return this.byId.get(id >>> 0);
  }

  /** The session if it exists and has not outlived its timeout (an expired one is removed). */
  live(id: number, now: number): Session | undefined {
    const s = this.byId.get(id >>> 0);
    if (!s) return undefined;
    const limit = s.state === 'active' ? this.opts.idleTimeoutMs : this.opts.handshakeTimeoutMs;
    if (now - s.lastActivity > limit) {
      this.byId.delete(s.id);
      this.onExpire?.(s);
      return undefined;
    }
    return s;
  }

  /** Active sessions in creation order. */
  active(): Session[] {
    return [...this.byId.values()].filter((s) => s.state === 'active');
  }

  /** A fresh random non-zero id not in use. */
  newId(): number {
    for (;;) {
      const id = randomBytes(4).readUInt32LE(0);
      if (id !== 0 && !this.byId.has(id)) return id;
    }
  }

  /**
   * Adds a session if there is room; never evicts anything. An active session (IPMI 1.5) needs a
   * free active slot; a half-open RMCP+ handshake needs a free slot in the half-open budget (also
   * maxSessions) and its source below maxHalfOpenPerSource. So an Open Session flood, even from
   * spoofed addresses, can neither push out established sessions nor a handshake in progress: it
   * is answered "insufficient resources" until its own handshakes time out. `refusal` says why
   * undefined was returned.
   */
  create(
    init: { remoteAddress: string; remotePort: number; protocol: 'rmcp+' | 'v15'; now: number; state?: SessionState },
    refusal?: { reason?: CreateRefusal },
  ): Session | undefined {
    this.sweep(init.now);
    const state = init.state ?? (init.protocol === 'rmcp+' ? 'opened' : 'active');
    if (state === 'active') {
      if (this.activeCount >= this.opts.maxSessions) return refuse(refusal, 'full');
    } else {
      let halfOpen = 0;
      let fromSource = 0;
      for (const s of this.byId.values()) {
        if (s.state === 'active') continue;
        halfOpen++;
        if (s.remoteAddress === init.remoteAddress) fromSource++;
      }
      if (fromSource >= (this.opts.maxHalfOpenPerSource ?? MAX_HALF_OPEN_PER_SOURCE)) return refuse(refusal, 'source-busy');
      if (halfOpen >= this.opts.maxSessions) return refuse(refusal, 'full');
    }
    const handle = this.nextHandle;
    this.nextHandle = this.nextHandle >= 0xfd ? 1 : this.nextHandle + 1;
    const s = new Session({ ...init, id: this.newId(), handle });
    s.state = state;
    this.byId.set(s.id, s);
    return s;
  }

  /** The half-open RMCP+ handshake a console opened from this address and port with this console id, if any. */
  openedBy(remoteAddress: string, remotePort: number, consoleId: number, now: number): Session | undefined {
    for (const s of this.byId.values()) {
      if (s.state === 'opened' && s.rmcp?.consoleId === consoleId && s.remotePort === remotePort && s.remoteAddress === remoteAddress) {
        return this.live(s.id, now);
      }
    }
    return undefined;
  }

  /** Whether an active session could be added without evicting anything active. */
  hasRoomForActive(now: number): boolean {
    this.sweep(now);
    return this.activeCount < this.opts.maxSessions;
  }

  delete(id: number): boolean {
    return this.byId.delete(id >>> 0);
  }

  /** Drops idle sessions and stale handshakes. Returns how many went. */
  sweep(now: number): number {
    let n = 0;
    for (const s of this.byId.values()) {
      const limit = s.state === 'active' ? this.opts.idleTimeoutMs : this.opts.handshakeTimeoutMs;
      if (now - s.lastActivity > limit) {
        this.byId.delete(s.id);
        this.onExpire?.(s);
        n++;
      }
    }
    return n;
  }

  clear(): void {
    this.byId.clear();
  }
}

function refuse(out: { reason?: CreateRefusal } | undefined, reason: CreateRefusal): undefined {
  if (out) out.reason = reason;
  return undefined;
}
