/**
 * RMCP+ session establishment (IPMI v2.0 §13.17–13.24): Open Session, RAKP1/2 and RAKP3/4.
 * Each handler returns the response payload, or undefined to stay silent.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import {
  RakpStatus,
  authHash,
  decodeOpenSessionRequest,
  decodeRakp1,
  decodeRakp3,
  deriveKeys,
  encodeOpenSessionResponse,
  encodeRakp2,
  encodeRakp4,
  rakp2AuthCode,
  rakp3AuthCode,
  rakp4Icv,
  rakp4IcvLength,
  sessionIntegrityKey,
  supportedSuites,
  type CipherSuite,
  type OpenSessionRequest,
  type RakpInputs,
} from '../codec/index.js';
import { Privilege, privilegeForRole } from '../types.js';
import type { Logger } from '../../common/logger.js';
import { findUser, type EngineContext, type Remote } from './context.js';
import { loginFailed, sessionOpened } from '../../events/emit.js';
import type { CreateRefusal, Session } from './table.js';

/** Picks the most preferred allowed suite matching the proposal, or the RMCP+ status explaining why none does. */
export function negotiateSuite(req: OpenSessionRequest, allowInsecure: boolean): { suite: CipherSuite } | { status: number } {
  const suites = supportedSuites(allowInsecure);
  const a = req.auth.alg;
  const i = req.integrity.alg;
  const c = req.conf.alg;
  const match = suites.find(
    (s) => (a === undefined || s.auth === a) && (i === undefined || s.integrity === i) && (c === undefined || s.conf === c),
  );
  if (match) return { suite: match };
  if (a !== undefined && !suites.some((s) => s.auth === a)) return { status: RakpStatus.INVALID_AUTH_ALG };
  if (i !== undefined && !suites.some((s) => s.integrity === i)) return { status: RakpStatus.INVALID_INTEGRITY_ALG };
  if (c !== undefined && !suites.some((s) => s.conf === c)) return { status: RakpStatus.INVALID_CONF_ALG };
  return { status: RakpStatus.NO_CIPHER_SUITE_MATCH };
}

function openError(tag: number, status: number, consoleId: number): Buffer {
  return encodeOpenSessionResponse({ tag, status, maxPrivilege: 0, consoleSessionId: consoleId, bmcSessionId: 0, auth: 0, integrity: 0, conf: 0 });
}

export function handleOpenSession(ctx: EngineContext, payload: Buffer, remote: Remote, log: Logger): Buffer | undefined {
  const now = ctx.now();
  const d = decodeOpenSessionRequest(payload);
  if (!d.ok) {
    log.debug({ reason: d.message }, 'malformed open session request');
    return payload.length >= 8 ? openError(payload[0]!, RakpStatus.ILLEGAL_PARAMETER, payload.readUInt32LE(4)) : undefined;
  }
  const req = d.value;
  if (req.consoleSessionId === 0) return openError(req.tag, RakpStatus.INVALID_SESSION_ID, 0);
  if (req.maxPrivilege > Privilege.Administrator) return openError(req.tag, RakpStatus.INVALID_ROLE, req.consoleSessionId);
  const lock = ctx.lockout.check(remote.address);
  if (lock) {
    log.warn({ retryAfterMs: lock.retryAfterMs }, 'open session refused: this source is locked out after failed logins');
    return openError(req.tag, RakpStatus.INSUFFICIENT_RESOURCES, req.consoleSessionId);
  }
  const n = negotiateSuite(req, ctx.allowInsecure);
  if ('status' in n) {
    log.info({ status: n.status, auth: req.auth.alg, integrity: req.integrity.alg, conf: req.conf.alg }, 'open session: algorithms refused');
    return openError(req.tag, n.status, req.consoleSessionId);
  }
  if (!ctx.table.hasRoomForActive(now)) {
    log.warn('open session refused: every active session slot is taken');
    return openError(req.tag, RakpStatus.INSUFFICIENT_RESOURCES, req.consoleSessionId);
  }
  // A retransmitted Open Session (our answer was lost): the same handshake again, not a second one.
  const again = ctx.table.openedBy(remote.address, remote.port, req.consoleSessionId, now);
  if (again?.rmcp && again.rmcp.suite.id === n.suite.id && again.rmcp.openMaxPriv === req.maxPrivilege) {
    return encodeOpenSessionResponse({
      tag: req.tag,
      status: RakpStatus.OK,
      maxPrivilege: req.maxPrivilege || Privilege.Administrator,
      consoleSessionId: req.consoleSessionId,
      bmcSessionId: again.id,
      auth: n.suite.auth,
      integrity: n.suite.integrity,
      conf: n.suite.conf,
    });
  }
  const refusal: { reason?: CreateRefusal } = {};
  const session = ctx.table.create({ remoteAddress: remote.address, remotePort: remote.port, protocol: 'rmcp+', now, state: 'opened' }, refusal);
  if (!session) {
    if (refusal.reason === 'source-busy') {
      // This source already holds its half-open handshakes. Legitimate consoles finish theirs in a
      // round trip or two, so this is a burst (8 ipmitool runs started at once from one host) or a
      // flood that will expire: no answer, and the console retransmits (ipmitool after -N seconds,
      // pyghmi, freeipmi likewise) into a free slot. An "insufficient resources" answer made ipmitool
      // give up at once (seen with 8 parallel `ipmitool exec` sessions, bench/ipmi-exec.ts). The
      // bound itself stays: a harvester still gets no more handshakes at a time.
      log.warn({ reason: refusal.reason }, 'open session dropped: too many handshakes in progress from this source (the console retries)');
      return undefined;
    }
    // Nothing is evicted for a newcomer: a flood gets "insufficient resources" (IPMI v2.0 table 13-15).
    log.warn({ reason: refusal.reason }, 'open session refused: no free handshake slot');
    return openError(req.tag, RakpStatus.INSUFFICIENT_RESOURCES, req.consoleSessionId);
  }
  session.rmcp = { suite: n.suite, consoleId: req.consoleSessionId, openMaxPriv: req.maxPrivilege };
  log.debug({ sid: session.id, suite: n.suite.id }, 'open session');
  // 0 means "highest level matching": answer the real ceiling, checked against the user at RAKP1.
  return encodeOpenSessionResponse({
    tag: req.tag,
    status: RakpStatus.OK,
    maxPrivilege: req.maxPrivilege || Privilege.Administrator,
    consoleSessionId: req.consoleSessionId,
    bmcSessionId: session.id,
    auth: n.suite.auth,
    integrity: n.suite.integrity,
    conf: n.suite.conf,
  });
}

function rakp2Error(tag: number, status: number, consoleId: number): Buffer {
  return encodeRakp2({ tag, status, consoleSessionId: consoleId, rc: Buffer.alloc(0), guid: Buffer.alloc(0), authCode: Buffer.alloc(0) });
}

function handshakeSession(ctx: EngineContext, id: number, remote: Remote): Session | undefined {
  const s = ctx.table.live(id, ctx.now());
  if (!s || s.protocol !== 'rmcp+' || !s.rmcp || s.remoteAddress !== remote.address) return undefined;
  return s;
}

function inputsFor(s: Session, ctx: EngineContext): RakpInputs | undefined {
  const k = s.rmcp;
  const hash = k ? authHash(k.suite.auth) : undefined;
  if (!k || !s.user || !k.rm || !k.rc || k.role === undefined || !k.username) return undefined;
  return {
    hash: hash ?? 'sha1',
    kuid: Buffer.from(s.user.password, 'utf8'),
    consoleSessionId: k.consoleId,
    bmcSessionId: s.id,
    rm: k.rm,
    rc: k.rc,
    guid: ctx.guid,
    role: k.role,
    username: k.username,
  };
}

/** Whether a RAKP1 repeats the one that made this handshake's RAKP2 (same Rm, role and user name). */
function sameRakp1(k: NonNullable<Session['rmcp']>, r: { rm: Buffer; role: number; username: Buffer }): boolean {
  return (
    k.rm !== undefined &&
    k.username !== undefined &&
    k.role === r.role &&
    k.rm.length === r.rm.length &&
    timingSafeEqual(k.rm, r.rm) &&
    k.username.equals(r.username)
  );
}

export function handleRakp1(ctx: EngineContext, payload: Buffer, remote: Remote, log: Logger): Buffer | undefined {
  const now = ctx.now();
  const d = decodeRakp1(payload);
  if (!d.ok) {
    log.debug({ reason: d.message }, 'malformed RAKP1');
    if (d.code === 'bad-length' && payload.length >= 8) {
      const s = handshakeSession(ctx, payload.readUInt32LE(4), remote);
      if (s?.rmcp) {
        ctx.table.delete(s.id);
        return rakp2Error(payload[0]!, RakpStatus.INVALID_NAME_LENGTH, s.rmcp.consoleId);
      }
    }
    return undefined;
  }
  const r = d.value;
  const s = handshakeSession(ctx, r.bmcSessionId, remote);
  if (!s || !s.rmcp) return rakp2Error(r.tag, RakpStatus.INVALID_SESSION_ID, 0);
  if (s.state === 'active') return rakp2Error(r.tag, RakpStatus.INVALID_SESSION_ID, s.rmcp.consoleId);
  const consoleId = s.rmcp.consoleId;
  if (s.state === 'rakp' && s.rmcp.rakp2 && sameRakp1(s.rmcp, r)) {
    // A retransmission (our RAKP2 was lost or late): the same RAKP2 from the same handshake
    // state (same Rc, same auth code), not a new nonce. Only the tag follows the request.
    const again = Buffer.from(s.rmcp.rakp2);
    again[0] = r.tag;
    return again;
  }
  const user = findUser(ctx.users, r.username);
  if (!user) {
    ctx.table.delete(s.id);
    const locked = ctx.lockout.recordFailure(remote.address);
    loginFailed(ctx.machine, 'ipmi', undefined, remote.address);
    log.warn({ user: r.username.toString('latin1').slice(0, 16), locked: locked?.scope }, 'RMCP+ login refused: unknown user');
    return rakp2Error(r.tag, RakpStatus.UNAUTHORIZED_NAME, consoleId);
  }
  const lock = ctx.lockout.check(remote.address, user.username);
  if (lock) {
    // No RAKP2 auth code (a password hash) for a locked account/source pair.
    ctx.table.delete(s.id);
    log.warn({ user: user.username, scope: lock.scope, retryAfterMs: lock.retryAfterMs }, 'RMCP+ login refused: locked out after failed logins');
    return rakp2Error(r.tag, RakpStatus.INSUFFICIENT_RESOURCES, consoleId);
  }
  const priv = r.role & 0x0f;
  if (priv < Privilege.Callback || priv > Privilege.Oem || (r.role & 0xe0) !== 0) {
    ctx.table.delete(s.id);
    return rakp2Error(r.tag, RakpStatus.INVALID_ROLE, consoleId);
  }
  const ceiling = privilegeForRole(user.role);
  if (priv > ceiling || (s.rmcp.openMaxPriv !== 0 && priv > s.rmcp.openMaxPriv)) {
    ctx.table.delete(s.id);
    log.warn({ user: user.username, requested: priv, allowed: ceiling }, 'RMCP+ login refused: role above the user\'s');
    return rakp2Error(r.tag, RakpStatus.UNAUTHORIZED_ROLE, consoleId);
  }
  s.user = user;
  s.username = user.username;
  s.userId = ctx.accounts.idForName(user.username);
  s.accountStamp = ctx.accounts.sessionStamp(s.userId);
  s.maxPrivilege = priv;
  s.privilege = Math.min(Privilege.User, priv);
  Object.assign(s.rmcp, { rm: r.rm, rc: randomBytes(16), role: r.role, username: r.username });
  s.state = 'rakp';
  s.lastActivity = now;
  const inputs = inputsFor(s, ctx)!;
  const code = authHash(s.rmcp.suite.auth) ? rakp2AuthCode(inputs) : Buffer.alloc(0);
  s.rmcp.rakp2 = encodeRakp2({ tag: r.tag, status: RakpStatus.OK, consoleSessionId: consoleId, rc: s.rmcp.rc!, guid: ctx.guid, authCode: code });
  return s.rmcp.rakp2;
}

export function handleRakp3(ctx: EngineContext, payload: Buffer, remote: Remote, log: Logger): Buffer | undefined {
  const now = ctx.now();
  const d = decodeRakp3(payload);
  if (!d.ok) return undefined;
  const r = d.value;
  const s = handshakeSession(ctx, r.bmcSessionId, remote);
  if (!s || !s.rmcp) return encodeRakp4({ tag: r.tag, status: RakpStatus.INVALID_SESSION_ID, consoleSessionId: 0, icv: Buffer.alloc(0) });
  const k = s.rmcp;
  if (s.state === 'active') {
    // A retransmitted RAKP3 (our RAKP4 was lost): same answer again, nothing else.
    if (k.rakp4 && k.rakp3Code && k.rakp3Code.length === r.authCode.length && timingSafeEqual(k.rakp3Code, r.authCode)) return k.rakp4;
    return undefined;
  }
  if (s.state !== 'rakp') return encodeRakp4({ tag: r.tag, status: RakpStatus.INVALID_SESSION_ID, consoleSessionId: k.consoleId, icv: Buffer.alloc(0) });
  if (r.status !== 0) {
    // Typically the console found our RAKP2 auth code wrong, i.e. its password is wrong.
    // That is the console telling us the password it holds is wrong: a real failure, counted.
    ctx.table.delete(s.id);
    const locked = ctx.lockout.recordFailure(remote.address, s.username);
    loginFailed(ctx.machine, 'ipmi', s.username, remote.address);
    log.warn({ status: r.status, user: s.username, locked: locked?.scope }, 'console aborted the RMCP+ handshake');
    return undefined;
  }
  const inputs = inputsFor(s, ctx)!;
  const hash = authHash(k.suite.auth);
  const expected = hash ? rakp3AuthCode(inputs) : Buffer.alloc(0);
  if (expected.length !== r.authCode.length || !timingSafeEqual(expected, r.authCode)) {
    ctx.table.delete(s.id);
    const locked = ctx.lockout.recordFailure(remote.address, s.username);
    loginFailed(ctx.machine, 'ipmi', s.username, remote.address);
    log.warn({ user: s.username, locked: locked?.scope }, 'RMCP+ login refused: bad RAKP3 auth code (wrong password?)');
    return encodeRakp4({ tag: r.tag, status: RakpStatus.INVALID_INTEGRITY_CHECK, consoleSessionId: k.consoleId, icv: Buffer.alloc(0) });
  }
  ctx.lockout.recordSuccess(remote.address, s.username);
  if (!ctx.table.hasRoomForActive(now)) {
    ctx.table.delete(s.id);
    log.warn({ user: s.username }, 'RMCP+ session refused: every active session slot is taken');
    return encodeRakp4({ tag: r.tag, status: RakpStatus.INSUFFICIENT_RESOURCES, consoleSessionId: k.consoleId, icv: Buffer.alloc(0) });
  }
  sessionOpened(ctx.machine, 'ipmi', s.id.toString(16), s.username ?? '', remote.address);
  let icv: Buffer = Buffer.alloc(0);
  if (hash) {
    // The SIK is only needed here: the session keeps just the keys derived from it.
    const sik = sessionIntegrityKey(inputs);
    const keys = deriveKeys(hash, sik);
    k.k1 = keys.k1;
    k.aesKey = keys.k2.subarray(0, 16);
    icv = rakp4Icv(hash, sik, inputs.rm, s.id, ctx.guid, rakp4IcvLength(k.suite.auth));
  }
  s.state = 'active';
  s.lastActivity = now;
  k.rakp3Code = Buffer.from(r.authCode);
  k.rakp4 = encodeRakp4({ tag: r.tag, status: RakpStatus.OK, consoleSessionId: k.consoleId, icv });
  log.info({ sid: s.id, user: s.username, suite: k.suite.id, maxPrivilege: s.maxPrivilege }, 'RMCP+ session established');
  return k.rakp4;
}
