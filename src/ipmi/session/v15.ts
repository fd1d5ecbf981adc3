/**
 * IPMI 1.5 session establishment (IPMI v2.0 §22.16–22.17): Get Session Challenge and Activate
 * Session. Auth type MD5; straight password (the password in clear in every packet) and NONE only
 * when insecure mode is on (--ipmi-allow-insecure).
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { AuthType, password16, verifyV15AuthCode, type LanRequest, type V15Packet } from '../codec/index.js';
import type { Logger } from '../../common/logger.js';
import { CC, Privilege, privilegeForRole, type IpmiResponse } from '../types.js';
import { findUser, type EngineContext, type Remote } from './context.js';
import { loginFailed, sessionOpened } from '../../events/emit.js';
import { SeqWindow, type Session } from './table.js';

const CHALLENGE_TTL_MS = 30_000;

export function authTypeAllowed(ctx: EngineContext, t: number): boolean {
  return t === AuthType.MD5 || ((t === AuthType.PASSWORD || t === AuthType.NONE) && ctx.allowInsecure);
}

/** Get Session Challenge 06/39. A locked-out account/source pair gets Node Busy (C0h): try later. */
export function getSessionChallenge(ctx: EngineContext, req: LanRequest, remote: Remote, log: Logger): IpmiResponse | undefined {
  const now = ctx.now();
  if (req.data.length < 17) return { cc: CC.REQUEST_DATA_LENGTH_INVALID };
  const authTypeCode = req.data[0]! & 0x0f;
  if (!authTypeAllowed(ctx, authTypeCode)) return { cc: CC.INVALID_DATA_FIELD };
  const raw = req.data.subarray(1, 17);
  const end = raw.indexOf(0);
  const name = raw.subarray(0, end < 0 ? 16 : end);
  if (name.length === 0) return { cc: 0x82 }; // null user names are not enabled
  const user = findUser(ctx.users, name);
  if (!user) {
    const locked = ctx.lockout.recordFailure(remote.address);
    loginFailed(ctx.machine, 'ipmi', undefined, remote.address);
    log.warn({ user: name.toString('latin1'), locked: locked?.scope }, 'IPMI 1.5 login refused: unknown user');
    return { cc: 0x81 };
  }
  const lock = ctx.lockout.check(remote.address, user.username);
  if (lock) {
    log.warn({ user: user.username, scope: lock.scope, retryAfterMs: lock.retryAfterMs }, 'IPMI 1.5 login refused: locked out after failed logins');
    return { cc: CC.NODE_BUSY };
  }
  // Bounded map: expired entries go first, then the oldest.
  for (const [id, c] of ctx.challenges) if (now - c.createdAt > CHALLENGE_TTL_MS) ctx.challenges.delete(id);
  if (ctx.challenges.size >= Math.max(ctx.table.opts.maxSessions, 8)) {
    const first = ctx.challenges.keys().next();
    if (!first.done) ctx.challenges.delete(first.value);
  }
  let tempId = ctx.table.newId();
  while (ctx.challenges.has(tempId)) tempId = ctx.table.newId();
  const challenge = randomBytes(16);
  ctx.challenges.set(tempId, { tempId, challenge, authTypeCode, user, remoteAddress: remote.address, createdAt: now });
  const data = Buffer.alloc(20);
  data.writeUInt32LE(tempId, 0);
  challenge.copy(data, 4);
  return { cc: CC.OK, data };
}

export interface ActivateOutcome {
  /** Response to send (header: auth type, seq = console's initial outbound seq, temp id) */
  result: IpmiResponse;
  authTypeCode: number;
  pw16: Buffer;
  headerSeq: number;
  tempId: number;
}

/**
 * Activate Session 06/3A, arriving with the temporary id from the challenge. Undefined = drop
 * silently (unknown or expired challenge, or another source address).
 */
export function activateSession(ctx: EngineContext, p: V15Packet, req: LanRequest, remote: Remote, log: Logger): ActivateOutcome | undefined {
  const now = ctx.now();
  const ch = ctx.challenges.get(p.sessionId);
  if (!ch || ch.remoteAddress !== remote.address || now - ch.createdAt > CHALLENGE_TTL_MS) return undefined;
  const pw16 = password16(ch.user.password);
  if (p.authType !== ch.authTypeCode || !verifyV15AuthCode(p, pw16)) {
    ctx.challenges.delete(p.sessionId);
    const locked = ctx.lockout.recordFailure(remote.address, ch.user.username);
    loginFailed(ctx.machine, 'ipmi', ch.user.username, remote.address);
    log.warn({ user: ch.user.username, locked: locked?.scope }, 'IPMI 1.5 login refused: bad auth code (wrong password?)');
    // Fail fast instead of letting the client time out, but sign the refusal with a random key:
    // an auth code made with the real password would hand out a hash to brute-force offline.
    return { result: { cc: CC.UNSPECIFIED }, authTypeCode: p.authType, pw16: randomBytes(16), headerSeq: 0, tempId: ch.tempId };
  }
  const reply = (result: IpmiResponse, headerSeq = 0): ActivateOutcome => ({ result, authTypeCode: ch.authTypeCode, pw16, headerSeq, tempId: ch.tempId });
  if (req.data.length < 22) return reply({ cc: CC.REQUEST_DATA_LENGTH_INVALID });
  const initialOutbound = req.data.readUInt32LE(18) || 1;
  if ((req.data[0]! & 0x0f) !== ch.authTypeCode) return reply({ cc: CC.INVALID_DATA_FIELD }, initialOutbound);
  if (!timingSafeEqual(req.data.subarray(2, 18), ch.challenge)) return reply({ cc: 0x85 }, initialOutbound);
  const requested = req.data[1]! & 0x0f;
  const ceiling = privilegeForRole(ch.user.role);
  if (requested < Privilege.Callback || requested > ceiling) return reply({ cc: 0x86 }, initialOutbound);
  ctx.challenges.delete(ch.tempId);
  ctx.lockout.recordSuccess(remote.address, ch.user.username);
  if (!ctx.table.hasRoomForActive(now)) {
    log.warn('activate session refused: session table full');
    return reply({ cc: 0x81 }, initialOutbound);
  }
  const s: Session | undefined = ctx.table.create({ remoteAddress: remote.address, remotePort: remote.port, protocol: 'v15', now, state: 'active' });
  if (!s) return reply({ cc: 0x81 }, initialOutbound);
  const inbound = randomBytes(4).readUInt32LE(0) || 1;
  s.user = ch.user;
  s.username = ch.user.username;
  s.userId = ctx.accounts.idForName(ch.user.username);
  s.accountStamp = ctx.accounts.sessionStamp(s.userId);
  s.maxPrivilege = requested;
  sessionOpened(ctx.machine, 'ipmi', s.id.toString(16), ch.user.username, remote.address);
  s.privilege = Math.min(Privilege.User, requested);
  s.v15 = {
    authType: ch.authTypeCode === AuthType.MD5 ? 'md5' : ch.authTypeCode === AuthType.PASSWORD ? 'password' : 'none',
    authTypeCode: ch.authTypeCode,
    pw16,
  };
  s.outSeq = (initialOutbound + 1) >>> 0 || 1;
  s.inbound = new SeqWindow((inbound - 1) >>> 0, 8, 8);
  const data = Buffer.alloc(10);
  data[0] = ch.authTypeCode;
  data.writeUInt32LE(s.id, 1);
  data.writeUInt32LE(inbound, 5);
  data[9] = requested;
  log.info({ sid: s.id, user: s.username, authType: s.v15.authType, maxPrivilege: requested }, 'IPMI 1.5 session activated');
  return reply({ cc: CC.OK, data }, initialOutbound);
}
