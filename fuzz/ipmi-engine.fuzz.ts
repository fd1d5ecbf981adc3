/**
 * Fuzz target: the IPMI session engine (src/ipmi/session/engine.ts) fed a series of datagrams,
 * i.e. the handshake state machines (RMCP+ Open Session/RAKP, v1.5 challenge/activate), the
 * session table limits and the lockout.
 *
 * Input: a mode byte, then u16-length-prefixed chunks (fuzz/common.ts chunks()).
 * - mode even: each chunk is a whole datagram from one of four source addresses (chunk's first
 *   byte picks it), sent to a fresh engine in order; the clock moves on by the chunk's second byte
 *   × 100 ms, so handshakes expire and lockouts end.
 * - mode odd: a real session is made first, RMCP+ suite 3 or 17 (bit 1) or IPMI 1.5 MD5 (bit 2);
 *   each chunk is then a LAN message sent inside that session, with valid integrity (and
 *   encryption for RMCP+), so the fuzzer reaches the command handlers behind authentication.
 * Invariants: handleNow never throws nor logs "unexpected error"; replies stay under 1 KiB; the
 * session table stays within its caps; the lockout's memory stays bounded; no reply ever carries
 * the password.
 */
import { Writable } from 'node:stream';
import { LoginLockout, MAX_TRACKED } from '../src/accounts/lockout.js';
import { SimulatedMachine } from '../src/backend/simulator/simulator.js';
import { createLogger } from '../src/common/logger.js';
import {
  AuthType,
  PayloadType,
  RmcpClass,
  aesEncrypt,
  authHash,
  decodeOpenSessionResponse,
  decodeRakp2,
  decodeLanResponse,
  decodeRmcpPlus,
  decodeV15,
  deriveKeys,
  encodeLanRequest,
  encodeV15,
  password16,
  encodeOpenSessionRequest,
  encodeRakp1,
  encodeRakp3,
  encodeRmcpHeader,
  encodeRmcpPlus,
  rakp3AuthCode,
  sessionIntegrityKey,
  type RakpInputs,
} from '../src/ipmi/codec/index.js';
import { buildCommandTable } from '../src/ipmi/commands/index.js';
import { IpmiEngine } from '../src/ipmi/session/engine.js';
import { chunks, invariant } from './common.js';

const PASSWORD = 'Fuzz-pw-1234';
const USERS = [
  { username: 'admin', password: PASSWORD, role: 'Administrator' as const },
  { username: 'op', password: 'op-pw-5678', role: 'Operator' as const },
];
const SOURCES = ['10.0.0.1', '10.0.0.2', '::ffff:10.0.0.1', 'fd00::9'];
const MAX_SESSIONS = 4;
const COMMANDS = buildCommandTable();
const GUID = Buffer.alloc(16, 0x5a);

/** Collects log lines above warn: an "unexpected error" is a crash. */
const errors: string[] = [];
const sink = new Writable({
  write(chunk: Buffer, _enc, cb) {
    const line = chunk.toString();
    if (line.includes('unexpected error')) errors.push(line);
    cb();
  },
});
const logger = createLogger('error', sink);

function engine(clock: { t: number }, lockout: LoginLockout): IpmiEngine {
  return new IpmiEngine({
    machine: new SimulatedMachine({ powerOnDelayMs: 0, powerOffDelayMs: 0, mediaInsertDelayMs: 0 }),
    users: USERS,
    logger,
    commands: COMMANDS,
    allowInsecure: false,
    channel: 1,
    guid: GUID,
    now: () => clock.t,
    maxSessions: MAX_SESSIONS,
    idleTimeoutMs: 60_000,
    handshakeTimeoutMs: 5_000,
    lockout,
  });
}

const pre = (payloadType: number, payload: Buffer) =>
  Buffer.concat([encodeRmcpHeader(RmcpClass.IPMI), encodeRmcpPlus({ payloadType, encrypted: false, authenticated: false, sessionId: 0, sequence: 0, payload })]);

function payloadOf(d: Buffer | undefined): Buffer {
  invariant(d !== undefined, 'no answer during the scripted handshake');
  const p = decodeRmcpPlus(d.subarray(4));
  invariant(p.ok, 'scripted handshake answer does not decode');
  return p.value.payload;
}

interface Established {
  bmcId: number;
  k1: Buffer;
  aes: Buffer;
  suite: { auth: number; integrity: number; conf: number };
}

/** Open Session + RAKP 1–4 straight into the engine (synchronous: the session layer never waits). */
function handshake(e: IpmiEngine, suiteId: number): Established {
  const suite = suiteId === 17 ? { auth: 3, integrity: 4, conf: 1 } : { auth: 1, integrity: 1, conf: 1 };
  const remote = { address: '10.9.9.9', port: 623 };
  const consoleId = 0x1234;
  const osr = decodeOpenSessionResponse(payloadOf(e.handleNow(pre(PayloadType.OPEN_SESSION_REQUEST, encodeOpenSessionRequest({ tag: 1, maxPrivilege: 0, consoleSessionId: consoleId, ...suite })), remote, logger) as Buffer));
  invariant(osr.ok && osr.value.status === 0, 'scripted Open Session refused');
  const bmcId = osr.value.bmcSessionId;
  const rm = Buffer.alloc(16, 0x11);
  const r2 = decodeRakp2(payloadOf(e.handleNow(pre(PayloadType.RAKP1, encodeRakp1({ tag: 2, bmcSessionId: bmcId, rm, role: 0x14, username: Buffer.from('admin') })), remote, logger) as Buffer));
  invariant(r2.ok && r2.value.status === 0, 'scripted RAKP1 refused');
  const hash = authHash(suite.auth) ?? 'sha1';
  const inputs: RakpInputs = { hash, kuid: Buffer.from(PASSWORD), consoleSessionId: consoleId, bmcSessionId: bmcId, rm, rc: Buffer.from(r2.value.rc), guid: GUID, role: 0x14, username: Buffer.from('admin') };
  const r4 = payloadOf(e.handleNow(pre(PayloadType.RAKP3, encodeRakp3({ tag: 3, status: 0, bmcSessionId: bmcId, authCode: rakp3AuthCode(inputs) })), remote, logger) as Buffer);
  invariant(r4[1] === 0, 'scripted RAKP3 refused');
  const keys = deriveKeys(hash, sessionIntegrityKey(inputs));
  return { bmcId, k1: keys.k1, aes: keys.k2.subarray(0, 16), suite };
}

/** Get Session Challenge + Activate Session (MD5) straight into the engine; the session id and next sequence. */
function activateV15(e: IpmiEngine): { sid: number; seq: number; pw16: Buffer } {
  const remote = { address: '10.9.9.8', port: 623 };
  const pw16 = password16(PASSWORD);
  const lan = (cmd: number, data: Buffer) => encodeLanRequest({ rsSA: 0x20, netFn: 6, rsLUN: 0, rqSA: 0x81, rqSeq: 4, rqLUN: 0, cmd, data });
  const answer = (d: Buffer | undefined) => {
    invariant(d !== undefined, 'no answer during the scripted v1.5 login');
    const p = decodeV15(d.subarray(4));
    invariant(p.ok, 'scripted v1.5 answer does not decode');
    const r = decodeLanResponse(p.value.message);
    invariant(r.ok && r.value.cc === 0, 'scripted v1.5 login refused');
    return r.value.data;
  };
  const name = Buffer.alloc(16);
  name.write('admin');
  const hdr = encodeRmcpHeader(RmcpClass.IPMI);
  const ch = answer(e.handleNow(Buffer.concat([hdr, encodeV15(AuthType.NONE, 0, 0, lan(0x39, Buffer.concat([Buffer.from([AuthType.MD5]), name])))]), remote, logger) as Buffer);
  const temp = ch.readUInt32LE(0);
  const outSeq = Buffer.alloc(4);
  outSeq.writeUInt32LE(0x1000);
  const act = answer(
    e.handleNow(Buffer.concat([hdr, encodeV15(AuthType.MD5, 0, temp, lan(0x3a, Buffer.concat([Buffer.from([AuthType.MD5, 4]), ch.subarray(4, 20), outSeq])), pw16)]), remote, logger) as Buffer,
  );
  return { sid: act.readUInt32LE(1), seq: act.readUInt32LE(5), pw16 };
}

function check(e: IpmiEngine, lockout: LoginLockout, reply: Buffer | undefined): void {
  invariant(errors.length === 0, `engine logged an unexpected error: ${errors.splice(0).join(' | ')}`);
  if (reply) {
    invariant(reply.length <= 1024, `reply of ${reply.length} bytes`);
    invariant(!reply.includes(PASSWORD), 'reply carries the password');
  }
  invariant(e.ctx.table.activeCount <= MAX_SESSIONS, 'more active sessions than maxSessions');
  invariant(e.ctx.table.size <= 2 * MAX_SESSIONS, 'session table beyond its active + half-open budgets');
  invariant(lockout.tracked.pairs <= MAX_TRACKED && lockout.tracked.sources <= MAX_TRACKED, 'lockout memory unbounded');
}

type Reply = ReturnType<IpmiEngine['handleNow']>;

/**
 * Sends the datagrams in order; stays synchronous while every reply is (most are: only command
 * handlers that wait for the backend answer later), so the fuzzer runs at full speed.
 */
function sendAll(e: IpmiEngine, lockout: LoginLockout, items: readonly { d: Buffer; address: string; port: number; before?: () => void }[], from = 0): void | Promise<void> {
  for (let i = from; i < items.length; i++) {
    const it = items[i]!;
    it.before?.();
    const r: Reply = e.handleNow(it.d, { address: it.address, port: it.port }, logger);
    if (r instanceof Promise) {
      return r.then((reply) => {
        check(e, lockout, reply);
        return sendAll(e, lockout, items, i + 1);
      });
    }
    check(e, lockout, r);
  }
}

export function fuzz(data: Buffer): void | Promise<void> {
  if (data.length === 0) return;
  const clock = { t: 1_000_000 };
  const lockout = new LoginLockout({ threshold: 3, durationSeconds: 2, counterResetAfterSeconds: 2 }, () => clock.t);
  const e = engine(clock, lockout);
  const parts = chunks(data.subarray(1), 16);
  if ((data[0]! & 1) === 0) {
    return sendAll(
      e,
      lockout,
      parts.map((d) => ({
        d,
        address: SOURCES[(d[0] ?? 0) & 3]!,
        port: 40000 + ((d[0] ?? 0) >> 2),
        before: () => (clock.t += (d[1] ?? 0) * 100),
      })),
    );
  }
  if (data[0]! & 4) {
    const v = activateV15(e);
    const hdr = encodeRmcpHeader(RmcpClass.IPMI);
    return sendAll(
      e,
      lockout,
      parts.map((msg, i) => ({ d: Buffer.concat([hdr, encodeV15(AuthType.MD5, (v.seq + i) >>> 0, v.sid, msg, v.pw16)]), address: '10.9.9.8', port: 623 })),
    );
  }
  const s = handshake(e, data[0]! & 2 ? 17 : 3);
  const enc = s.suite.conf !== 0;
  return sendAll(
    e,
    lockout,
    parts.map((msg, i) => ({
      d: Buffer.concat([
        encodeRmcpHeader(RmcpClass.IPMI),
        encodeRmcpPlus(
          { payloadType: PayloadType.IPMI, encrypted: enc, authenticated: true, sessionId: s.bmcId, sequence: i + 1, payload: enc ? aesEncrypt(s.aes, Buffer.alloc(16, i), msg) : msg },
          { alg: s.suite.integrity, k1: s.k1 },
        ),
      ]),
      address: '10.9.9.9',
      port: 623,
    })),
  );
}
