/**
 * IPMI v1.5 session wrapper (IPMI v2.0 §13.6, §22.17): authType | seq | sessionId | [authCode] |
 * msgLen | msg. Auth types NONE, MD5 and straight password; MD2 is not available in OpenSSL 3.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { fail, ok, type Decoded } from './result.js';

export const AuthType = { NONE: 0, MD2: 1, MD5: 2, PASSWORD: 4, OEM: 5, RMCPPLUS: 6 } as const;
export type V15AuthType = 0 | 2 | 4;

export interface V15Packet {
  authType: number;
  sequence: number;
  sessionId: number;
  /** 16 bytes, or empty for auth type NONE */
  authCode: Buffer;
  /** The IPMI LAN message */
  message: Buffer;
}

/** Decodes the bytes after the RMCP header. Trailing bytes after msgLen (legacy pad) are ignored. */
export function decodeV15(body: Buffer): Decoded<V15Packet> {
  if (body.length < 10) return fail('truncated', 'IPMI 1.5 session header truncated');
  const authType = body[0]!;
  if (authType === AuthType.RMCPPLUS) return fail('bad-field', 'RMCP+ packet, not IPMI 1.5');
  if (authType > 5 || authType === 3) return fail('bad-field', `auth type ${authType}`);
  const sequence = body.readUInt32LE(1);
  const sessionId = body.readUInt32LE(5);
  let off = 9;
  let authCode = Buffer.alloc(0);
  if (authType !== AuthType.NONE) {
    if (body.length < off + 17) return fail('truncated', 'IPMI 1.5 auth code truncated');
    authCode = Buffer.from(body.subarray(off, off + 16));
    off += 16;
  }
  const len = body[off]!;
  off += 1;
  if (body.length < off + len) return fail('truncated', 'IPMI 1.5 message shorter than its length field');
  return ok({ authType, sequence, sessionId, authCode, message: Buffer.from(body.subarray(off, off + len)) });
}

/** Zero-pads (or truncates) a password to the 16-byte IPMI 1.5 form. */
export function password16(password: string | Buffer): Buffer {
  const out = Buffer.alloc(16);
  Buffer.from(password).copy(out, 0, 0, 16);
  return out;
}

/** AuthCode for an IPMI 1.5 packet: MD5(pw16 | sid | msg | seq | pw16), or pw16 itself for straight password. */
export function v15AuthCode(authType: number, pw16: Buffer, sessionId: number, sequence: number, message: Buffer): Buffer {
  if (authType === AuthType.PASSWORD) return Buffer.from(pw16);
  if (authType !== AuthType.MD5) return Buffer.alloc(0);
  // the digest input built once and hashed with one update (every byte written: pooled memory is fine)
  const n = message.length;
  const input = Buffer.allocUnsafe(40 + n);
  pw16.copy(input, 0, 0, 16);
  input.writeUInt32LE(sessionId >>> 0, 16);
  message.copy(input, 20);
  input.writeUInt32LE(sequence >>> 0, 20 + n);
  pw16.copy(input, 24 + n, 0, 16);
  return createHash('md5').update(input).digest();
}

/** Constant-time check of a received packet's auth code. */
export function verifyV15AuthCode(p: V15Packet, pw16: Buffer): boolean {
  if (p.authType === AuthType.NONE) return true;
  if (p.authType !== AuthType.MD5 && p.authType !== AuthType.PASSWORD) return false;
  const expected = v15AuthCode(p.authType, pw16, p.sessionId, p.sequence, p.message);
  return p.authCode.length === expected.length && timingSafeEqual(p.authCode, expected);
}

/**
 * Encodes the bytes after the RMCP header; computes the auth code when a password is given. `lead`
 * bytes (the RMCP header) are put in front, so a whole datagram is one allocation.
 */
export function encodeV15(
  authType: number,
  sequence: number,
  sessionId: number,
  message: Buffer,
  pw16?: Buffer,
  lead?: Buffer,
): Buffer {
  const at = lead ? lead.length : 0;
  const hasAuth = authType !== AuthType.NONE;
  const out = Buffer.alloc(at + 9 + (hasAuth ? 16 : 0) + 1 + message.length);
  if (lead) lead.copy(out, 0);
  out[at] = authType;
  out.writeUInt32LE(sequence >>> 0, at + 1);
  out.writeUInt32LE(sessionId >>> 0, at + 5);
  let off = at + 9;
  if (hasAuth) {
    const code = v15AuthCode(authType, pw16 ?? Buffer.alloc(16), sessionId, sequence, message);
    code.copy(out, off);
    off += 16;
  }
  out[off] = message.length;
  message.copy(out, off + 1);
  return out;
}
