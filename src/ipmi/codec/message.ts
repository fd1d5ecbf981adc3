/**
 * The IPMI LAN message carried inside both session formats (IPMI v2.0 §13.8):
 * request  rsSA | netFn/rsLUN | chk1 | rqSA | rqSeq/rqLUN | cmd | data | chk2
 * response rqSA | netFn/rqLUN | chk1 | rsSA | rqSeq/rsLUN | cmd | cc | data | chk2
 */
import { fail, ok, type Decoded } from './result.js';

export const BMC_SA = 0x20;
export const REMOTE_SWID = 0x81;

/** 8-bit two's complement checksum: (sum(bytes) + checksum) mod 256 == 0. */
export function checksum(buf: Buffer, start = 0, end = buf.length): number {
  let sum = 0;
  for (let i = start; i < end; i++) sum = (sum + buf[i]!) & 0xff;
  return (0x100 - sum) & 0xff;
}

export interface LanRequest {
  rsSA: number;
  netFn: number;
  rsLUN: number;
  rqSA: number;
  rqSeq: number;
  rqLUN: number;
  cmd: number;
  data: Buffer;
}

export interface LanResponse {
  rqSA: number;
  /** The response netFn (request netFn + 1) */
  netFn: number;
  rqLUN: number;
  rsSA: number;
  rqSeq: number;
  rsLUN: number;
  cmd: number;
  cc: number;
  data: Buffer;
}

export const MIN_LAN_MESSAGE = 7;

export function decodeLanRequest(msg: Buffer): Decoded<LanRequest> {
  if (msg.length < MIN_LAN_MESSAGE) return fail('truncated', `IPMI message of ${msg.length} bytes`);
  if (checksum(msg, 0, 2) !== msg[2]) return fail('bad-checksum', 'header checksum mismatch');
  if (checksum(msg, 3, msg.length - 1) !== msg[msg.length - 1]) return fail('bad-checksum', 'data checksum mismatch');
  return ok({
    rsSA: msg[0]!,
    netFn: msg[1]! >> 2,
    rsLUN: msg[1]! & 0x03,
    rqSA: msg[3]!,
    rqSeq: msg[4]! >> 2,
    rqLUN: msg[4]! & 0x03,
    cmd: msg[5]!,
    // a view into the message (no handler writes to its request data)
    data: msg.subarray(6, msg.length - 1),
  });
}

export function encodeLanRequest(r: LanRequest): Buffer {
  const out = Buffer.alloc(7 + r.data.length);
  out[0] = r.rsSA;
  out[1] = ((r.netFn & 0x3f) << 2) | (r.rsLUN & 3);
  out[2] = checksum(out, 0, 2);
  out[3] = r.rqSA;
  out[4] = ((r.rqSeq & 0x3f) << 2) | (r.rqLUN & 3);
  out[5] = r.cmd;
  r.data.copy(out, 6);
  out[out.length - 1] = checksum(out, 3, out.length - 1);
  return out;
}

export function decodeLanResponse(msg: Buffer): Decoded<LanResponse> {
  if (msg.length < 8) return fail('truncated', `IPMI response of ${msg.length} bytes`);
  if (checksum(msg, 0, 2) !== msg[2]) return fail('bad-checksum', 'header checksum mismatch');
  if (checksum(msg, 3, msg.length - 1) !== msg[msg.length - 1]) return fail('bad-checksum', 'data checksum mismatch');
  return ok({
    rqSA: msg[0]!,
    netFn: msg[1]! >> 2,
    rqLUN: msg[1]! & 3,
    rsSA: msg[3]!,
    rqSeq: msg[4]! >> 2,
    rsLUN: msg[4]! & 3,
    cmd: msg[5]!,
    cc: msg[6]!,
    data: Buffer.from(msg.subarray(7, msg.length - 1)),
  });
}

export function encodeLanResponse(r: LanResponse): Buffer {
  const out = Buffer.allocUnsafe(8 + r.data.length); // every byte is written below
  out[0] = r.rqSA;
  out[1] = ((r.netFn & 0x3f) << 2) | (r.rqLUN & 3);
  out[2] = checksum(out, 0, 2);
  out[3] = r.rsSA;
  out[4] = ((r.rqSeq & 0x3f) << 2) | (r.rsLUN & 3);
  out[5] = r.cmd;
  out[6] = r.cc;
  r.data.copy(out, 7);
  out[out.length - 1] = checksum(out, 3, out.length - 1);
  return out;
}

/** The response to a request: odd netFn, swapped addresses, echoed sequence and LUNs. */
const NO_DATA = Buffer.alloc(0);

export function responseFor(req: LanRequest, cc: number, data: Buffer = NO_DATA): Buffer {
  return encodeLanResponse({
    rqSA: req.rqSA,
    netFn: (req.netFn + 1) & 0x3f,
    rqLUN: req.rqLUN,
    rsSA: req.rsSA,
    rqSeq: req.rqSeq,
    rsLUN: req.rsLUN,
    cmd: req.cmd,
    cc,
    data,
  });
}
