/**
 * The project's one X.509 / PKCS#10 encoder: the DER structures (RFC 5280 names and extensions,
 * RFC 2986 certification requests) are built with pkijs/asn1js, here and nowhere else; keys and
 * signatures come from node:crypto. Two users: the controller's self-signed certificates
 * (src/controller/tls-mint.ts) and Redfish CertificateService.GenerateCSR
 * (src/redfish/resources/certificates.ts), whose key pair is made and signed here with
 * node:crypto's generateKeyPair and sign.
 */
import { generateKeyPair, sign, type KeyObject } from 'node:crypto';
import { isIP } from 'node:net';
import { promisify } from 'node:util';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';

const generateKeyPairAsync = promisify(generateKeyPair);

/** PEM armour (RFC 7468) around DER bytes. */
export function pem(label: string, der: ArrayBuffer | Uint8Array): string {
  const b64 = Buffer.from(der instanceof Uint8Array ? der : new Uint8Array(der)).toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

/** Object identifiers (RFC 5280 4.1.2.4 and 4.2.1, RFC 2985, RFC 5758, RFC 8017). */
export const OID = {
  commonName: '2.5.4.3',
  country: '2.5.4.6',
  locality: '2.5.4.7',
  state: '2.5.4.8',
  organization: '2.5.4.10',
  organizationalUnit: '2.5.4.11',
  emailAddress: '1.2.840.113549.1.9.1',
  extensionRequest: '1.2.840.113549.1.9.14',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  subjectKeyId: '2.5.29.14',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  sha256WithRSAEncryption: '1.2.840.113549.1.1.11',
  ecdsaWithSHA256: '1.2.840.10045.4.3.2',
  ecdsaWithSHA384: '1.2.840.10045.4.3.3',
} as const;

/** The subject of a certificate or request, in this order (C, ST, L, O, OU, CN, emailAddress: OpenSSL's). */
export interface NameParts {
  country?: string | undefined;
  state?: string | undefined;
  city?: string | undefined;
  organization?: string | undefined;
  organizationalUnit?: string | undefined;
  commonName: string;
  email?: string | undefined;
}

/**
 * An X.501 Name: one RDN (a SET of one attribute) per part, in NameParts order. Country is a
 * PrintableString and emailAddress an IA5String (RFC 5280 appendix A), the rest UTF8String.
 * (pkijs' RelativeDistinguishedNames puts every attribute into one multi-valued RDN, so the
 * SEQUENCE is built here and handed to it already encoded.)
 */
export function distinguishedName(parts: NameParts): pkijs.RelativeDistinguishedNames {
  const rdns: asn1js.Set[] = [];
  const add = (oid: string, value: asn1js.BaseBlock | undefined): void => {
    if (value) rdns.push(new asn1js.Set({ value: [new pkijs.AttributeTypeAndValue({ type: oid, value: value as never }).toSchema()] }));
  };
  const utf8 = (v: string | undefined) => (v === undefined ? undefined : new asn1js.Utf8String({ value: v }));
  add(OID.country, parts.country === undefined ? undefined : new asn1js.PrintableString({ value: parts.country }));
  add(OID.state, utf8(parts.state));
  add(OID.locality, utf8(parts.city));
  add(OID.organization, utf8(parts.organization));
  add(OID.organizationalUnit, utf8(parts.organizationalUnit));
  add(OID.commonName, utf8(parts.commonName));
  add(OID.emailAddress, parts.email === undefined ? undefined : new asn1js.IA5String({ value: parts.email }));
  return pkijs.RelativeDistinguishedNames.fromBER(new asn1js.Sequence({ value: rdns }).toBER(false));
}

/** subjectAltName: dNSName entries, and iPAddress entries for names that are IPv4/IPv6 literals. */
export function subjectAltNames(names: readonly string[]): pkijs.GeneralNames {
  return new pkijs.GeneralNames({
    names: names.map((n) =>
      isIP(n) ? new pkijs.GeneralName({ type: 7, value: new asn1js.OctetString({ valueHex: ipBytes(n) }) }) : new pkijs.GeneralName({ type: 2, value: n }),
    ),
  });
}

function ipBytes(ip: string): Uint8Array {
  if (isIP(ip) === 4) return Uint8Array.from(ip.split('.').map(Number));
  // IPv6: expand '::' and an embedded IPv4 tail
  let s = ip;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (v4) {
    const b = v4[1]!.split('.').map(Number);
    s = s.slice(0, -v4[1]!.length) + `${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const [head, tail] = s.includes('::') ? (s.split('::') as [string, string]) : [s, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    const v = parseInt(g, 16);
    out[i * 2] = v >> 8;
    out[i * 2 + 1] = v & 0xff;
  });
  return out;
}

/** RFC 5280 4.2.1.3 KeyUsage bits this project sets. */
export type KeyUsageBit = 'digitalSignature' | 'keyEncipherment' | 'keyAgreement';
const KEY_USAGE_BIT: Record<KeyUsageBit, number> = { digitalSignature: 0, keyEncipherment: 2, keyAgreement: 4 };

/** The KeyUsage extension value: a BIT STRING with its trailing zero bits left out (X.690 11.2.2). */
export function keyUsageValue(bits: readonly KeyUsageBit[]): ArrayBuffer {
  let byte = 0;
  let last = 0;
  for (const b of bits) {
    const n = KEY_USAGE_BIT[b];
    byte |= 0x80 >> n;
    last = Math.max(last, n);
  }
  return new asn1js.BitString({ valueHex: new Uint8Array([byte]).buffer, unusedBits: bits.length === 0 ? 0 : 7 - last }).toBER(false);
}

/** The key pairs a certificate request can be made for. */
export type KeySpec = { type: 'rsa'; bits: 2048 | 3072 | 4096 } | { type: 'ec'; curve: 'P-256' | 'P-384' };

export interface CsrOptions {
  subject: NameParts;
  /** subjectAltName entries (DNS names, IP literals); none: no subjectAltName extension */
  altNames: readonly string[];
  keyUsage: readonly KeyUsageBit[];
  /** extendedKeyUsage purposes (OIDs); none: no extendedKeyUsage extension */
  extKeyUsage: readonly string[];
  key: KeySpec;
}

export interface GeneratedCsr {
  /** PEM "CERTIFICATE REQUEST" (PKCS#10), signed with the new private key */
  csrPem: string;
  /** The new private key: for the caller to keep, never to show */
  privateKey: KeyObject;
}

/** A new key pair (node:crypto generateKeyPair, off the event loop) and a PKCS#10 request signed with it. */
export async function generateCsr(o: CsrOptions): Promise<GeneratedCsr> {
  const { privateKey, publicKey } =
    o.key.type === 'rsa'
      ? await generateKeyPairAsync('rsa', { modulusLength: o.key.bits, publicExponent: 0x10001 })
      : await generateKeyPairAsync('ec', { namedCurve: o.key.curve });
  const csr = new pkijs.CertificationRequest();
  csr.version = 0;
  csr.subject = distinguishedName(o.subject);
  csr.subjectPublicKeyInfo = pkijs.PublicKeyInfo.fromBER(publicKey.export({ type: 'spki', format: 'der' }));
  const extensions: pkijs.Extension[] = [];
  if (o.keyUsage.length > 0) extensions.push(new pkijs.Extension({ extnID: OID.keyUsage, critical: true, extnValue: keyUsageValue(o.keyUsage) }));
  if (o.extKeyUsage.length > 0) {
    extensions.push(new pkijs.Extension({ extnID: OID.extKeyUsage, critical: false, extnValue: new pkijs.ExtKeyUsage({ keyPurposes: [...o.extKeyUsage] }).toSchema().toBER(false) }));
  }
  if (o.altNames.length > 0) extensions.push(new pkijs.Extension({ extnID: OID.subjectAltName, critical: false, extnValue: subjectAltNames(o.altNames).toSchema().toBER(false) }));
  csr.attributes = extensions.length === 0 ? [] : [new pkijs.Attribute({ type: OID.extensionRequest, values: [new pkijs.Extensions({ extensions }).toSchema()] })];

  // the CertificationRequestInfo as DER (toSchema(true) encodes it from the fields), signed by node:crypto
  const info = csr.toSchema(true).valueBlock.value[0]!;
  const tbs = new Uint8Array(info.toBER(false));
  const [hash, sigOid] = o.key.type === 'rsa' ? ['sha256', OID.sha256WithRSAEncryption] : o.key.curve === 'P-384' ? ['sha384', OID.ecdsaWithSHA384] : ['sha256', OID.ecdsaWithSHA256];
  // RSA: PKCS#1 v1.5; EC: the DER ECDSA-Sig-Value that X.509 wants (node's default dsaEncoding)
  const signature = sign(hash, tbs, privateKey);
  csr.tbsView = tbs;
  // RFC 4055: sha256WithRSAEncryption carries NULL parameters; RFC 5758: ECDSA ones carry none
  csr.signatureAlgorithm = new pkijs.AlgorithmIdentifier({ algorithmId: sigOid, ...(o.key.type === 'rsa' ? { algorithmParams: new asn1js.Null() } : {}) });
  csr.signatureValue = new asn1js.BitString({ valueHex: signature });
  return { csrPem: pem('CERTIFICATE REQUEST', csr.toSchema(false).toBER(false)), privateKey };
}
