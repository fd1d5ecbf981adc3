/**
 * RMCP+ cipher suites (IPMI v2.0 §22.15.2, Table 22-20) we can speak. Algorithm numbers are the
 * wire values of the Open Session payloads.
 */
export const AuthAlg = { RAKP_NONE: 0, HMAC_SHA1: 1, HMAC_MD5: 2, HMAC_SHA256: 3 } as const;
export const IntegrityAlg = { NONE: 0, HMAC_SHA1_96: 1, HMAC_MD5_128: 2, MD5_128: 3, HMAC_SHA256_128: 4 } as const;
export const ConfAlg = { NONE: 0, AES_CBC_128: 1, XRC4_128: 2, XRC4_40: 3 } as const;

export interface CipherSuite {
  id: number;
  auth: number;
  integrity: number;
  conf: number;
}

const ALL: readonly CipherSuite[] = [
  { id: 17, auth: AuthAlg.HMAC_SHA256, integrity: IntegrityAlg.HMAC_SHA256_128, conf: ConfAlg.AES_CBC_128 },
  { id: 3, auth: AuthAlg.HMAC_SHA1, integrity: IntegrityAlg.HMAC_SHA1_96, conf: ConfAlg.AES_CBC_128 },
  { id: 16, auth: AuthAlg.HMAC_SHA256, integrity: IntegrityAlg.HMAC_SHA256_128, conf: ConfAlg.NONE },
  { id: 2, auth: AuthAlg.HMAC_SHA1, integrity: IntegrityAlg.HMAC_SHA1_96, conf: ConfAlg.NONE },
  // Suites without packet integrity let anyone who sees the session id inject commands.
  { id: 15, auth: AuthAlg.HMAC_SHA256, integrity: IntegrityAlg.NONE, conf: ConfAlg.NONE },
  { id: 1, auth: AuthAlg.HMAC_SHA1, integrity: IntegrityAlg.NONE, conf: ConfAlg.NONE },
  { id: 0, auth: AuthAlg.RAKP_NONE, integrity: IntegrityAlg.NONE, conf: ConfAlg.NONE },
];

/** Suites offered, most preferred first. Without allowInsecure only suites with integrity protection. */
export function supportedSuites(allowInsecure: boolean): readonly CipherSuite[] {
  return allowInsecure ? ALL : ALL.filter((s) => s.integrity !== IntegrityAlg.NONE);
}

export function suiteById(id: number, allowInsecure: boolean): CipherSuite | undefined {
  return supportedSuites(allowInsecure).find((s) => s.id === id);
}

export type HashName = 'sha1' | 'sha256';

/** Hash behind a RAKP authentication algorithm; undefined for RAKP-none. */
export function authHash(auth: number): HashName | undefined {
  if (auth === AuthAlg.HMAC_SHA1) return 'sha1';
  if (auth === AuthAlg.HMAC_SHA256) return 'sha256';
  return undefined;
}

/** Length of the RAKP4 integrity check value for an authentication algorithm. */
export function rakp4IcvLength(auth: number): number {
  if (auth === AuthAlg.HMAC_SHA1) return 12;
  if (auth === AuthAlg.HMAC_SHA256) return 16;
  return 0;
}

export function integrityHash(integrity: number): HashName | undefined {
  if (integrity === IntegrityAlg.HMAC_SHA1_96) return 'sha1';
  if (integrity === IntegrityAlg.HMAC_SHA256_128) return 'sha256';
  return undefined;
}

/** Length of the per-packet authCode for an integrity algorithm. */
export function authCodeLength(integrity: number): number {
  if (integrity === IntegrityAlg.HMAC_SHA1_96) return 12;
  if (integrity === IntegrityAlg.HMAC_SHA256_128) return 16;
  return 0;
}

/** Get Channel Cipher Suites record bytes for a list of suites (standard records). */
export function cipherSuiteRecords(suites: readonly CipherSuite[]): Buffer {
  const out: number[] = [];
  for (const s of suites) out.push(0xc0, s.id, s.auth & 0x3f, 0x40 | (s.integrity & 0x3f), 0x80 | (s.conf & 0x3f));
  return Buffer.from(out);
}
