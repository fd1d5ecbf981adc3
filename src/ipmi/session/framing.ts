/**
 * The outbound side of the session layer: a message framed for the way its request arrived (an
 * IPMI 1.5 or RMCP+ pre-session datagram, or a session's: sequence number, encryption with a
 * fresh IV, integrity code with K1), in one allocation behind the RMCP header. Also the per-session
 * keys the inbound checks use (engine.ts). Sessions and their keys are table.ts's.
 */
import { AuthType, PayloadType, RmcpClass, encodeRmcpHeader, encodeRmcpPlus, encodeV15 } from '../codec/index.js';
import type { Envelope } from './context.js';
import { AesCbcSession, freshIv } from './crypto.js';
import type { Session } from './table.js';

/** The RMCP header of every IPMI datagram we send (no ACK wanted). */
export const RMCP_IPMI = encodeRmcpHeader(RmcpClass.IPMI);

/** An RMCP+ datagram behind our RMCP header. */
export function wrapRmcp(p: Parameters<typeof encodeRmcpPlus>[0], integrity?: Parameters<typeof encodeRmcpPlus>[1]): Buffer {
  return encodeRmcpPlus(p, integrity, RMCP_IPMI);
}

/** A pre-session RMCP+ datagram (no security bits) carrying `payload` of `payloadType`. */
export function wrapPreSession(payloadType: number, payload: Buffer): Buffer {
  return wrapRmcp({ payloadType, encrypted: false, authenticated: false, sessionId: 0, sequence: 0, payload });
}

/** The session's K1, the per-packet integrity key (fixed once the handshake is done). */
export function sessionK1(s: Session): Buffer {
  return s.rmcp!.k1!;
}

/** The session's AES contexts, made on first use (the session keys are fixed by then). */
export function sessionAes(s: Session): AesCbcSession {
  const k = s.rmcp!;
  return (k.aes ??= new AesCbcSession(k.aesKey!));
}

/** A payload to an RMCP+ session, protected as its cipher suite says (next outbound sequence number). */
export function wrapForSession(s: Session, payloadType: number, payload: Buffer): Buffer {
  const k = s.rmcp!;
  const enc = k.suite.conf !== 0;
  const auth = k.suite.integrity !== 0;
  return wrapRmcp(
    {
      payloadType,
      encrypted: enc,
      authenticated: auth,
      sessionId: k.consoleId,
      sequence: s.nextOutSeq(),
      payload: enc ? sessionAes(s).encrypt(freshIv(), payload) : payload,
    },
    auth ? { alg: k.suite.integrity, k1: sessionK1(s) } : undefined,
  );
}

/** An IPMI message (a response) framed for the way its request arrived. */
export function frameReply(env: Envelope, msg: Buffer): Buffer {
  if (env.kind === 'v15-pre') return encodeV15(AuthType.NONE, 0, 0, msg, undefined, RMCP_IPMI);
  if (env.kind === 'rmcp-pre') return wrapPreSession(PayloadType.IPMI, msg);
  const s = env.session;
  if (s.protocol === 'v15') {
    const v = s.v15!;
    return encodeV15(v.authTypeCode, s.nextOutSeq(), s.id, msg, v.pw16, RMCP_IPMI);
  }
  return wrapForSession(s, PayloadType.IPMI, msg);
}
