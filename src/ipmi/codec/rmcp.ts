/**
 * RMCP framing (ASF 2.0 / IPMI v2.0 §13.1): a 4-byte header in front of every datagram, plus the
 * ASF presence ping/pong pair used by discovery tools and `ipmitool -I lan`.
 */
import { fail, ok, type Decoded } from './result.js';

export const RMCP_VERSION = 0x06;
export const RMCP_NO_ACK = 0xff;
export const RmcpClass = { ASF: 0x06, IPMI: 0x07, OEM: 0x08 } as const;
export const ASF_IANA = 4542;
const ASF_PING = 0x80;
const ASF_PONG = 0x40;

export interface RmcpHeader {
  version: number;
  sequence: number;
  /** Class bits 4:0 */
  msgClass: number;
  /** Bit 7 of the class byte */
  isAck: boolean;
}

export const RMCP_HEADER_LENGTH = 4;

export function decodeRmcpHeader(buf: Buffer): Decoded<RmcpHeader> {
  if (buf.length < RMCP_HEADER_LENGTH) return fail('truncated', 'shorter than an RMCP header');
  if (buf[0] !== RMCP_VERSION) return fail('bad-version', `RMCP version ${buf[0]}`);
  const cls = buf[3]!;
  return ok({ version: buf[0], sequence: buf[2]!, msgClass: cls & 0x1f, isAck: (cls & 0x80) !== 0 });
}

export function encodeRmcpHeader(msgClass: number, sequence = RMCP_NO_ACK): Buffer {
  return Buffer.from([RMCP_VERSION, 0x00, sequence & 0xff, msgClass & 0x1f]);
}

export interface AsfMessage {
  iana: number;
  type: number;
  tag: number;
  data: Buffer;
}

/** Decodes the ASF part that follows the RMCP header. */
export function decodeAsf(body: Buffer): Decoded<AsfMessage> {
  if (body.length < 8) return fail('truncated', 'ASF message shorter than 8 bytes');
  const len = body[7]!;
  if (body.length < 8 + len) return fail('truncated', 'ASF data shorter than its length field');
  return ok({ iana: body.readUInt32BE(0), type: body[4]!, tag: body[5]!, data: body.subarray(8, 8 + len) });
}

export function isAsfPing(m: AsfMessage): boolean {
  return m.iana === ASF_IANA && m.type === ASF_PING;
}

/** Whole pong datagram (RMCP header included) answering a ping with the given tag. */
export function encodeAsfPong(tag: number, rmcpSequence = RMCP_NO_ACK): Buffer {
  const body = Buffer.alloc(8 + 16);
  body.writeUInt32BE(ASF_IANA, 0);
  body[4] = ASF_PONG;
  body[5] = tag & 0xff;
  body[7] = 16;
  body.writeUInt32BE(ASF_IANA, 8); // no OEM: the ASF IANA
  // 12..15 OEM-defined: zero
  body[16] = 0x81; // IPMI supported, ASF 1.0
  body[17] = 0x00; // no RMCP security extensions
  return Buffer.concat([encodeRmcpHeader(RmcpClass.ASF, rmcpSequence), body]);
}

/** An ASF ping datagram (for tests and tools). */
export function encodeAsfPing(tag: number): Buffer {
  const body = Buffer.alloc(8);
  body.writeUInt32BE(ASF_IANA, 0);
  body[4] = ASF_PING;
  body[5] = tag & 0xff;
  return Buffer.concat([encodeRmcpHeader(RmcpClass.ASF), body]);
}
