/**
 * The SOL payload (payload type 1) header, IPMI v2.0 §15.9 Table 15-2:
 *   packet sequence number (bits 3:0; 0 = an ACK/NACK-only packet carrying no characters) |
 *   packet ACK/NACK sequence number (bits 3:0; 0 = this packet acknowledges nothing) |
 *   accepted character count | operation/status | character data…
 * The operation/status byte has different bits in each direction (Status below).
 */
import { fail, ok, type Decoded } from '../codec/result.js';

export const SOL_HEADER = 4;
/** The accepted-character count is one byte: at most 255 characters per packet. */
export const SOL_MAX_CHARS = 255;

/** Remote console → BMC operation bits. */
export const ConsoleOp = {
  NACK: 0x40,
  /** Ring/WOR: assert RI (we have no ring line; ignored) */
  RING_WOR: 0x20,
  GENERATE_BREAK: 0x10,
  /** "Deassert CTS": hold the serial line's output */
  CTS_PAUSE: 0x08,
  DROP_DCD_DSR: 0x04,
  /** Flush data queued from the console for the system */
  FLUSH_INBOUND: 0x02,
  /** Flush data queued from the system for the console */
  FLUSH_OUTBOUND: 0x01,
} as const;

/** BMC → remote console status bits. */
export const BmcStatus = {
  NACK: 0x40,
  /** Character transfer unavailable (e.g. the system is powered off) */
  TRANSFER_UNAVAILABLE: 0x20,
  /** SOL is deactivating: the last packet of this activation */
  DEACTIVATING: 0x10,
  /** Characters from the system were lost (our output buffer overflowed) */
  TRANSMIT_OVERRUN: 0x08,
  BREAK_DETECTED: 0x04,
} as const;

export interface SolPacket {
  /** 1..15, or 0 for a packet without characters */
  seq: number;
  /** 1..15 = the packet acknowledged (or NACKed), 0 = none */
  ackSeq: number;
  acceptedCount: number;
  /** Operation (console→BMC) or status (BMC→console) bits */
  op: number;
  data: Buffer;
}

export function decodeSol(payload: Buffer): Decoded<SolPacket> {
  if (payload.length < SOL_HEADER) return fail('truncated', 'SOL payload shorter than its 4-byte header');
  const data = payload.subarray(SOL_HEADER);
  if (data.length > SOL_MAX_CHARS) return fail('bad-length', 'SOL payload carries more than 255 characters');
  return ok({ seq: payload[0]! & 0x0f, ackSeq: payload[1]! & 0x0f, acceptedCount: payload[2]!, op: payload[3]!, data });
}

export function encodeSol(p: SolPacket): Buffer {
  const out = Buffer.allocUnsafe(SOL_HEADER + p.data.length);
  out[0] = p.seq & 0x0f;
  out[1] = p.ackSeq & 0x0f;
  out[2] = p.acceptedCount & 0xff;
  out[3] = p.op & 0xff;
  p.data.copy(out, SOL_HEADER);
  return out;
}
