/**
 * Fuzz target: the RMCP / ASF / IPMI 1.5 / RMCP+ / RAKP / LAN message decoders
 * (src/ipmi/codec). Invariants: a decoder never throws, only answers {ok:false}; what decodes
 * re-encodes to the same bytes where the encoding is canonical (LAN request and response, RMCP
 * header, v1.5 packet without auth code, Open Session Request, RAKP 1 and 3).
 */
import {
  decodeAsf,
  decodeLanRequest,
  decodeLanResponse,
  decodeOpenSessionRequest,
  decodeOpenSessionResponse,
  decodeRakp1,
  decodeRakp2,
  decodeRakp3,
  decodeRakp4,
  decodeRmcpHeader,
  decodeRmcpPlus,
  decodeV15,
  encodeLanRequest,
  encodeRakp1,
  encodeRakp3,
  encodeRmcpHeader,
} from '../src/ipmi/codec/index.js';
import { invariant } from './common.js';

function noThrow<T>(what: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw new Error(`${what} threw: ${(e as Error).message}`, { cause: e });
  }
}

function same(a: object, b: object): boolean {
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((k) => {
    const x = (a as Record<string, unknown>)[k];
    const y = (b as Record<string, unknown>)[k];
    return Buffer.isBuffer(x) && Buffer.isBuffer(y) ? x.equals(y) : x === y;
  });
}

export function fuzz(data: Buffer): void {
  const h = noThrow('decodeRmcpHeader', () => decodeRmcpHeader(data));
  if (h.ok && !h.value.isAck && data[1] === 0 && (data[3]! & 0x60) === 0) {
    invariant(encodeRmcpHeader(h.value.msgClass, h.value.sequence).equals(data.subarray(0, 4)), 'RMCP header does not round-trip');
  }
  const body = data.subarray(Math.min(4, data.length));
  noThrow('decodeAsf', () => decodeAsf(body));
  noThrow('decodeV15', () => decodeV15(body));
  const p = noThrow('decodeRmcpPlus', () => decodeRmcpPlus(body));
  if (p.ok) invariant(p.value.payload.length <= body.length, 'RMCP+ payload longer than the datagram');

  // Message-level decoders get the raw input too (they see payloads in real traffic).
  const req = noThrow('decodeLanRequest', () => decodeLanRequest(data));
  if (req.ok) {
    const again = encodeLanRequest(req.value);
    invariant(again.equals(data), `LAN request does not round-trip: ${data.toString('hex')} -> ${again.toString('hex')}`);
  }
  noThrow('decodeLanResponse', () => decodeLanResponse(data));
  noThrow('decodeOpenSessionRequest', () => decodeOpenSessionRequest(data));
  noThrow('decodeOpenSessionResponse', () => decodeOpenSessionResponse(data));
  const r1 = noThrow('decodeRakp1', () => decodeRakp1(data));
  if (r1.ok) {
    // Reserved bytes are ignored on decode, so compare what was decoded, not the raw bytes.
    const again = decodeRakp1(encodeRakp1(r1.value));
    invariant(again.ok && same(again.value, r1.value), 'RAKP1 does not round-trip');
    invariant(r1.value.username.length <= 16, 'RAKP1 user name over 16 bytes accepted');
  }
  noThrow('decodeRakp2', () => decodeRakp2(data));
  const r3 = noThrow('decodeRakp3', () => decodeRakp3(data));
  if (r3.ok) {
    const again = decodeRakp3(encodeRakp3(r3.value));
    invariant(again.ok && same(again.value, r3.value), 'RAKP3 does not round-trip');
  }
  noThrow('decodeRakp4', () => decodeRakp4(data));
}
