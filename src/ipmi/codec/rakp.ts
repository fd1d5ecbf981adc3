/**
 * RMCP+ session setup messages (IPMI v2.0 §13.17–13.24) and the key exchange arithmetic
 * (§13.31–13.32): RAKP auth codes, SIK, K1, K2 and the RAKP4 integrity check value.
 */
import { createHmac } from 'node:crypto';
import { fail, ok, type Decoded } from './result.js';
import type { HashName } from './suites.js';

/** RMCP+ / RAKP message status codes (Table 13-15). */
export const RakpStatus = {
  OK: 0x00,
  INSUFFICIENT_RESOURCES: 0x01,
  INVALID_SESSION_ID: 0x02,
  INVALID_PAYLOAD_TYPE: 0x03,
  INVALID_AUTH_ALG: 0x04,
  INVALID_INTEGRITY_ALG: 0x05,
  NO_MATCHING_AUTH_PAYLOAD: 0x06,
  NO_MATCHING_INTEGRITY_PAYLOAD: 0x07,
  INACTIVE_SESSION_ID: 0x08,
  INVALID_ROLE: 0x09,
  UNAUTHORIZED_ROLE: 0x0a,
  INSUFFICIENT_RESOURCES_FOR_ROLE: 0x0b,
  INVALID_NAME_LENGTH: 0x0c,
  UNAUTHORIZED_NAME: 0x0d,
  UNAUTHORIZED_GUID: 0x0e,
  INVALID_INTEGRITY_CHECK: 0x0f,
  INVALID_CONF_ALG: 0x10,
  NO_CIPHER_SUITE_MATCH: 0x11,
  ILLEGAL_PARAMETER: 0x12,
} as const;

/** One algorithm proposal; `alg` is undefined for a wildcard (payload length 0: "BMC chooses"). */
export interface AlgorithmProposal {
  alg: number | undefined;
}

export interface OpenSessionRequest {
  tag: number;
  /** Requested maximum privilege; 0 = highest matching the proposed algorithms */
  maxPrivilege: number;
  consoleSessionId: number;
  auth: AlgorithmProposal;
  integrity: AlgorithmProposal;
  conf: AlgorithmProposal;
}

function decodeProposal(buf: Buffer, off: number, type: number): Decoded<AlgorithmProposal> {
  if (buf[off] !== type) return fail('bad-field', `algorithm payload type ${buf[off]} (want ${type})`);
  const len = buf[off + 3]!;
  if (len === 0) return ok({ alg: undefined });
  if (len !== 8) return fail('bad-field', `algorithm payload length ${len}`);
  return ok({ alg: buf[off + 4]! & 0x3f });
}

export function decodeOpenSessionRequest(p: Buffer): Decoded<OpenSessionRequest> {
  if (p.length < 32) return fail('truncated', 'Open Session Request shorter than 32 bytes');
  const auth = decodeProposal(p, 8, 0);
  if (!auth.ok) return auth;
  const integrity = decodeProposal(p, 16, 1);
  if (!integrity.ok) return integrity;
  const conf = decodeProposal(p, 24, 2);
  if (!conf.ok) return conf;
  return ok({
    tag: p[0]!,
    maxPrivilege: p[1]! & 0x0f,
    consoleSessionId: p.readUInt32LE(4),
    auth: auth.value,
    integrity: integrity.value,
    conf: conf.value,
  });
}

function algPayload(type: number, alg: number): Buffer {
  return Buffer.from([type, 0, 0, 8, alg & 0x3f, 0, 0, 0]);
}

export function encodeOpenSessionRequest(r: {
  tag: number;
  maxPrivilege: number;
  consoleSessionId: number;
  auth: number;
  integrity: number;
  conf: number;
}): Buffer {
  const head = Buffer.alloc(8);
  head[0] = r.tag;
  head[1] = r.maxPrivilege & 0x0f;
  head.writeUInt32LE(r.consoleSessionId >>> 0, 4);
  return Buffer.concat([head, algPayload(0, r.auth), algPayload(1, r.integrity), algPayload(2, r.conf)]);
}

export interface OpenSessionResponse {
  tag: number;
  status: number;
  maxPrivilege: number;
  consoleSessionId: number;
  bmcSessionId: number;
  auth: number;
  integrity: number;
  conf: number;
}

/** A status other than 0 gives the short error form: tag | status | 00 | 00 | SIDm. */
export function encodeOpenSessionResponse(r: OpenSessionResponse): Buffer {
  const head = Buffer.alloc(r.status === 0 ? 12 : 8);
  head[0] = r.tag;
  head[1] = r.status;
  head[2] = r.status === 0 ? r.maxPrivilege & 0x0f : 0;
  head.writeUInt32LE(r.consoleSessionId >>> 0, 4);
  if (r.status !== 0) return head;
  head.writeUInt32LE(r.bmcSessionId >>> 0, 8);
  return Buffer.concat([head, algPayload(0, r.auth), algPayload(1, r.integrity), algPayload(2, r.conf)]);
}

export function decodeOpenSessionResponse(p: Buffer): Decoded<OpenSessionResponse> {
  if (p.length < 8) return fail('truncated', 'Open Session Response truncated');
  const base = { tag: p[0]!, status: p[1]!, maxPrivilege: p[2]! & 0x0f, consoleSessionId: p.readUInt32LE(4) };
  if (base.status !== 0) return ok({ ...base, bmcSessionId: 0, auth: 0, integrity: 0, conf: 0 });
  if (p.length < 36) return fail('truncated', 'Open Session Response truncated');
  return ok({ ...base, bmcSessionId: p.readUInt32LE(8), auth: p[16]! & 0x3f, integrity: p[24]! & 0x3f, conf: p[32]! & 0x3f });
}

export interface Rakp1 {
  tag: number;
  bmcSessionId: number;
  rm: Buffer;
  /** The whole role byte, including the name-only lookup bit 4 */
  role: number;
  username: Buffer;
}

export function decodeRakp1(p: Buffer): Decoded<Rakp1> {
  if (p.length < 28) return fail('truncated', 'RAKP1 shorter than 28 bytes');
  const ulen = p[27]!;
  if (ulen > 16) return fail('bad-length', 'RAKP1 user name longer than 16');
  if (p.length < 28 + ulen) return fail('truncated', 'RAKP1 user name truncated');
  return ok({
    tag: p[0]!,
    bmcSessionId: p.readUInt32LE(4),
    rm: Buffer.from(p.subarray(8, 24)),
    role: p[24]!,
    username: Buffer.from(p.subarray(28, 28 + ulen)),
  });
}

export function encodeRakp1(r: Rakp1): Buffer {
  const out = Buffer.alloc(28 + r.username.length);
  out[0] = r.tag;
  out.writeUInt32LE(r.bmcSessionId >>> 0, 4);
  r.rm.copy(out, 8, 0, 16);
  out[24] = r.role;
  out[27] = r.username.length;
  r.username.copy(out, 28);
  return out;
}

export interface Rakp2 {
  tag: number;
  status: number;
  consoleSessionId: number;
  rc: Buffer;
  guid: Buffer;
  authCode: Buffer;
}

/** Errors (status != 0) carry only tag | status | 00 00 | SIDm. */
export function encodeRakp2(r: Rakp2): Buffer {
  const head = Buffer.alloc(8);
  head[0] = r.tag;
  head[1] = r.status;
  head.writeUInt32LE(r.consoleSessionId >>> 0, 4);
  if (r.status !== 0) return head;
  return Buffer.concat([head, r.rc, r.guid, r.authCode]);
}

export function decodeRakp2(p: Buffer): Decoded<Rakp2> {
  if (p.length < 8) return fail('truncated', 'RAKP2 truncated');
  const base = { tag: p[0]!, status: p[1]!, consoleSessionId: p.readUInt32LE(4) };
  if (base.status !== 0) return ok({ ...base, rc: Buffer.alloc(0), guid: Buffer.alloc(0), authCode: Buffer.alloc(0) });
  if (p.length < 40) return fail('truncated', 'RAKP2 truncated');
  return ok({ ...base, rc: p.subarray(8, 24), guid: p.subarray(24, 40), authCode: p.subarray(40) });
}

export interface Rakp3 {
  tag: number;
  status: number;
  bmcSessionId: number;
  authCode: Buffer;
}

export function decodeRakp3(p: Buffer): Decoded<Rakp3> {
  if (p.length < 8) return fail('truncated', 'RAKP3 shorter than 8 bytes');
  return ok({ tag: p[0]!, status: p[1]!, bmcSessionId: p.readUInt32LE(4), authCode: Buffer.from(p.subarray(8)) });
}

export function encodeRakp3(r: Rakp3): Buffer {
  const head = Buffer.alloc(8);
  head[0] = r.tag;
  head[1] = r.status;
  head.writeUInt32LE(r.bmcSessionId >>> 0, 4);
  return Buffer.concat([head, r.authCode]);
}

export interface Rakp4 {
  tag: number;
  status: number;
  consoleSessionId: number;
  icv: Buffer;
}

export function encodeRakp4(r: Rakp4): Buffer {
  const head = Buffer.alloc(8);
  head[0] = r.tag;
  head[1] = r.status;
  head.writeUInt32LE(r.consoleSessionId >>> 0, 4);
  return r.status === 0 ? Buffer.concat([head, r.icv]) : head;
}

export function decodeRakp4(p: Buffer): Decoded<Rakp4> {
  if (p.length < 8) return fail('truncated', 'RAKP4 truncated');
  return ok({ tag: p[0]!, status: p[1]!, consoleSessionId: p.readUInt32LE(4), icv: p.subarray(8) });
}

// ---- key exchange ---------------------------------------------------------------------------

function u32le(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
}

function hmac(hash: HashName, key: Buffer, ...parts: Buffer[]): Buffer {
  const h = createHmac(hash, key);
  for (const p of parts) h.update(p);
  return h.digest();
}

/** The values both ends feed into the RAKP HMACs. */
export interface RakpInputs {
  hash: HashName;
  /** User password bytes (Kuid) */
  kuid: Buffer;
  consoleSessionId: number;
  bmcSessionId: number;
  rm: Buffer;
  rc: Buffer;
  guid: Buffer;
  role: number;
  username: Buffer;
}

function nameField(i: RakpInputs): Buffer {
  return Buffer.concat([Buffer.from([i.role, i.username.length]), i.username]);
}

/** RAKP2 key exchange auth code (BMC → console). */
export function rakp2AuthCode(i: RakpInputs): Buffer {
  return hmac(i.hash, i.kuid, u32le(i.consoleSessionId), u32le(i.bmcSessionId), i.rm, i.rc, i.guid, nameField(i));
}

/** RAKP3 key exchange auth code (console → BMC; the BMC recomputes and compares). */
export function rakp3AuthCode(i: RakpInputs): Buffer {
  return hmac(i.hash, i.kuid, i.rc, u32le(i.consoleSessionId), nameField(i));
}

/** Session Integrity Key; kg defaults to Kuid ("one-key" logins). */
export function sessionIntegrityKey(i: RakpInputs, kg?: Buffer): Buffer {
  return hmac(i.hash, kg && kg.some((b) => b !== 0) ? kg : i.kuid, i.rm, i.rc, nameField(i));
}

/** K1 (integrity key) and K2 (AES key source) from the SIK: HMAC over 20 bytes of 0x01 / 0x02. */
export function deriveKeys(hash: HashName, sik: Buffer): { k1: Buffer; k2: Buffer } {
  return { k1: hmac(hash, sik, Buffer.alloc(20, 1)), k2: hmac(hash, sik, Buffer.alloc(20, 2)) };
}

/** RAKP4 integrity check value, truncated to the algorithm's length. */
export function rakp4Icv(hash: HashName, sik: Buffer, rm: Buffer, bmcSessionId: number, guid: Buffer, length: number): Buffer {
  return hmac(hash, sik, rm, u32le(bmcSessionId), guid).subarray(0, length);
}
