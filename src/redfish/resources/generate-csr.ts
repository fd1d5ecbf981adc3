/**
 * CertificateService.GenerateCSR's parameters: what a request may hold, what this service does
 * with each, and the ActionInfo that says so (the two are built from the same tables, so they
 * cannot disagree). The key pair and the PKCS#10 request are made by src/common/x509.ts; the
 * handler and the pending key are in certificates.ts and tls-certificate.ts.
 *
 * - KeyPairAlgorithm: TCG algorithm names. TPM_ALG_RSA (KeyBitLength 2048, 3072 or 4096; default
 *   2048) and TPM_ALG_ECDSA (KeyCurveId TPM_ECC_NIST_P256 or TPM_ECC_NIST_P384; default P-256,
 *   the controller's own certificates' curve): the key of a TLS server certificate signs, so an EC
 *   key is an ECDSA one (TPM_ALG_ECDH, a key-agreement scheme, is not offered).
 * - KeyUsage: DigitalSignature, KeyEncipherment (RSA only), KeyAgreement (EC only) become the
 *   request's keyUsage extension, ServerAuthentication and ClientAuthentication its
 *   extendedKeyUsage; other usages do not belong on an HTTPS certificate and are refused. None
 *   given: DigitalSignature (and KeyEncipherment for RSA) with ServerAuthentication.
 * - AlternativeNames: subjectAltName entries, an IPv4/IPv6 literal as an iPAddress, anything else
 *   as a dNSName (a host name, or a wildcard `*.` in front of one).
 * - ChallengePassword and the personal name parts (ContactPerson, GivenName, Initials, Surname,
 *   UnstructuredName) are not supported (ActionParameterNotSupported): the request names a server.
 */
import { isIP } from 'node:net';
import { OID, type CsrOptions, type KeySpec, type KeyUsageBit, type NameParts } from '../../common/x509.js';
import { RedfishError } from '../core/errors.js';
import type { Annotated, Schemas } from '../core/resource.js';

export const GENERATE_CSR = 'CertificateService.GenerateCSR';

const RSA_BITS = [2048, 3072, 4096] as const;
const CURVES = { TPM_ECC_NIST_P256: 'P-256', TPM_ECC_NIST_P384: 'P-384' } as const;
const ALGORITHMS = ['TPM_ALG_RSA', 'TPM_ALG_ECDSA'] as const;
const DEFAULT_ALGORITHM = 'TPM_ALG_ECDSA';
const DEFAULT_CURVE = 'TPM_ECC_NIST_P256';
const DEFAULT_RSA_BITS = 2048;

/** Redfish KeyUsage → keyUsage bit or extendedKeyUsage purpose, and the key type it needs. */
const USAGES: Record<string, { bit?: KeyUsageBit; purpose?: string; only?: 'rsa' | 'ec' }> = {
  DigitalSignature: { bit: 'digitalSignature' },
  KeyEncipherment: { bit: 'keyEncipherment', only: 'rsa' },
  KeyAgreement: { bit: 'keyAgreement', only: 'ec' },
  ServerAuthentication: { purpose: OID.serverAuth },
  ClientAuthentication: { purpose: OID.clientAuth },
};

/** The subject's string parameters: NameParts field and upper bound (RFC 5280 appendix A ub-*). */
const NAME_PARAMS = {
  CommonName: { part: 'commonName', max: 64 },
  Country: { part: 'country', max: 2 },
  State: { part: 'state', max: 128 },
  City: { part: 'city', max: 128 },
  Organization: { part: 'organization', max: 64 },
  OrganizationalUnit: { part: 'organizationalUnit', max: 64 },
  Email: { part: 'email', max: 128 },
} as const satisfies Record<string, { part: keyof NameParts; max: number }>;

const SUPPORTED = ['CertificateCollection', ...Object.keys(NAME_PARAMS), 'AlternativeNames', 'KeyPairAlgorithm', 'KeyBitLength', 'KeyCurveId', 'KeyUsage'];
const NOT_SUPPORTED = ['ChallengePassword', 'ContactPerson', 'GivenName', 'Initials', 'Surname', 'UnstructuredName'];
/** Every parameter the schema defines (the rest are ActionParameterUnknown). */
export const GENERATE_CSR_PARAMETERS: readonly string[] = [...SUPPORTED, ...NOT_SUPPORTED];

const MAX_ALT_NAMES = 64;
/** A host name (labels of letters, digits, hyphens; not starting or ending with one), or `*.` before one. */
const HOST = /^(\*\.)?(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;
const EMAIL = /^[!-~]+@[A-Za-z0-9.-]+$/;

const typeError = (v: unknown, name: string) =>
  new RedfishError(400, 'ActionParameterValueTypeError', [JSON.stringify(v) ?? String(v), name, GENERATE_CSR], { property: name });
const formatError = (v: string, name: string, detail: string) =>
  new RedfishError(400, 'ActionParameterValueFormatError', [v, name, GENERATE_CSR], { property: name, detail });
const notInList = (v: string, name: string) => new RedfishError(400, 'ActionParameterValueNotInList', [v, name, GENERATE_CSR], { property: name });
const conflict = (name: string, v: string, detail: string) => new RedfishError(400, 'ActionParameterValueConflict', [name, v], { property: name, detail });

function nameParameter(body: Record<string, unknown>, name: keyof typeof NAME_PARAMS): string | undefined {
  const v = body[name];
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string') throw typeError(v, name);
  const { max } = NAME_PARAMS[name];
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(v)) throw formatError(v, name, `${name} must not hold control characters.`);
  if (name === 'Country') {
    if (!/^[A-Z]{2}$/.test(v)) throw formatError(v, name, 'Country must be a two-letter ISO 3166 code in capitals, e.g. US.');
  } else if ([...v].length > max) {
    throw formatError(v, name, `${name} is at most ${max} characters (RFC 5280).`);
  }
  if (name === 'Email' && !EMAIL.test(v)) throw formatError(v, name, 'Email must be an ASCII address such as admin@example.com.');
  return v;
}

function stringArray(body: Record<string, unknown>, name: string): string[] | undefined {
  const v = body[name];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw typeError(v, name);
  return v as string[];
}

/**
 * The request a GenerateCSR body asks for, checked (the body's keys are already known to be
 * GENERATE_CSR_PARAMETERS). `collection` is the one CertificateCollection this service installs
 * certificates into.
 */
export function parseGenerateCsr(body: Record<string, unknown>, collection: string): CsrOptions {
  for (const p of NOT_SUPPORTED) {
    if (body[p] !== undefined) throw new RedfishError(400, 'ActionParameterNotSupported', [p, GENERATE_CSR], { property: p });
  }
  for (const p of ['CertificateCollection', 'CommonName']) {
    if (body[p] === undefined) throw new RedfishError(400, 'ActionParameterMissing', [GENERATE_CSR, p], { property: p });
  }
  const col = body.CertificateCollection;
  const colId = typeof col === 'object' && col !== null && !Array.isArray(col) ? (col as Record<string, unknown>)['@odata.id'] : undefined;
  if (typeof colId !== 'string') throw typeError(col, 'CertificateCollection');
  if (colId.replace(/\/$/, '') !== collection) {
    throw new RedfishError(400, 'ActionParameterValueNotInList', [colId, 'CertificateCollection', GENERATE_CSR], {
      property: 'CertificateCollection',
      detail: `CertificateCollection must name ${collection}, the only certificate collection of this service.`,
    });
  }
  if (typeof body.CommonName !== 'string') throw typeError(body.CommonName, 'CommonName');
  if (body.CommonName === '') throw formatError('', 'CommonName', 'CommonName must not be empty.');
  const subject: NameParts = { commonName: '' };
  for (const name of Object.keys(NAME_PARAMS) as (keyof typeof NAME_PARAMS)[]) {
    const v = nameParameter(body, name);
    if (v !== undefined) subject[NAME_PARAMS[name].part] = v;
  }

  const altNames = stringArray(body, 'AlternativeNames') ?? [];
  if (altNames.length > MAX_ALT_NAMES) throw formatError(`${altNames.length} names`, 'AlternativeNames', `AlternativeNames holds at most ${MAX_ALT_NAMES} names.`);
  for (const n of altNames) {
    if (!isIP(n) && !HOST.test(n)) throw formatError(n, 'AlternativeNames', 'Each alternative name must be a host name (optionally *. before it) or an IPv4/IPv6 address.');
  }

  const alg = body.KeyPairAlgorithm ?? DEFAULT_ALGORITHM;
  if (typeof alg !== 'string') throw typeError(alg, 'KeyPairAlgorithm');
  if (!(ALGORITHMS as readonly string[]).includes(alg)) throw notInList(alg, 'KeyPairAlgorithm');
  const bits = body.KeyBitLength;
  if (bits !== undefined && bits !== null && !Number.isInteger(bits)) throw typeError(bits, 'KeyBitLength');
  const curve = body.KeyCurveId;
  if (curve !== undefined && curve !== null && typeof curve !== 'string') throw typeError(curve, 'KeyCurveId');
  let key: KeySpec;
  if (alg === 'TPM_ALG_RSA') {
    if (typeof curve === 'string') throw conflict('KeyCurveId', curve, 'KeyCurveId applies to TPM_ALG_ECDSA keys, not to TPM_ALG_RSA.');
    const b = typeof bits === 'number' ? bits : DEFAULT_RSA_BITS;
    if (!(RSA_BITS as readonly number[]).includes(b)) throw notInList(String(b), 'KeyBitLength');
    key = { type: 'rsa', bits: b as (typeof RSA_BITS)[number] };
  } else {
    const c = typeof curve === 'string' ? curve : DEFAULT_CURVE;
    if (!(c in CURVES)) throw notInList(c, 'KeyCurveId');
    const named = CURVES[c as keyof typeof CURVES];
    const size = named === 'P-256' ? 256 : 384;
    if (typeof bits === 'number' && bits !== size) throw conflict('KeyBitLength', String(bits), `An ECDSA key on ${c} is ${size} bits; leave KeyBitLength out or give ${size}.`);
    key = { type: 'ec', curve: named };
  }

  const usages = stringArray(body, 'KeyUsage') ?? [];
  const chosen = usages.length > 0 ? usages : key.type === 'rsa' ? ['DigitalSignature', 'KeyEncipherment', 'ServerAuthentication'] : ['DigitalSignature', 'ServerAuthentication'];
  const keyUsage: KeyUsageBit[] = [];
  const extKeyUsage: string[] = [];
  for (const u of new Set(chosen)) {
    const m = USAGES[u];
    if (!m) throw notInList(u, 'KeyUsage');
    if (m.only && m.only !== key.type) throw conflict('KeyUsage', u, `${u} applies to ${m.only === 'rsa' ? 'TPM_ALG_RSA' : 'TPM_ALG_ECDSA'} keys only.`);
    if (m.bit) keyUsage.push(m.bit);
    if (m.purpose) extKeyUsage.push(m.purpose);
  }
  return { subject, altNames, keyUsage, extKeyUsage, key };
}

export function generateCsrActionInfo(path: string): Record<string, unknown> {
  // a subject part: a string of at most its RFC 5280 length, no default
  const part = (Name: keyof typeof NAME_PARAMS, Required = false) => ({
    Name,
    Required,
    DataType: 'String' as const,
    AllowablePattern: Name === 'Country' ? '^[A-Z]{2}$' : `^.{1,${NAME_PARAMS[Name].max}}$`,
    ...(Required ? {} : { NoDefaultValue: true }),
  });
  const body: Annotated<Schemas['ActionInfo_v1_5_0_ActionInfo']> = {
    '@odata.type': '#ActionInfo.v1_5_0.ActionInfo',
    '@odata.id': path,
    Id: 'GenerateCSRActionInfo',
    Name: 'Generate CSR Action Info',
    Parameters: [
      { Name: 'CertificateCollection', Required: true, DataType: 'Object', ObjectDataType: '#CertificateCollection.CertificateCollection' },
      part('CommonName', true),
      { Name: 'AlternativeNames', Required: false, DataType: 'StringArray', ArraySizeMaximum: MAX_ALT_NAMES, NoDefaultValue: true },
      part('Organization'),
      part('OrganizationalUnit'),
      part('City'),
      part('State'),
      part('Country'),
      part('Email'),
      { Name: 'KeyPairAlgorithm', Required: false, DataType: 'String', AllowableValues: [...ALGORITHMS], DefaultValue: DEFAULT_ALGORITHM },
      { Name: 'KeyBitLength', Required: false, DataType: 'Number', AllowableNumbers: RSA_BITS.map(String), DefaultValue: String(DEFAULT_RSA_BITS) },
      { Name: 'KeyCurveId', Required: false, DataType: 'String', AllowableValues: Object.keys(CURVES), DefaultValue: DEFAULT_CURVE },
      { Name: 'KeyUsage', Required: false, DataType: 'StringArray', AllowableValues: Object.keys(USAGES) },
    ],
  };
  return body;
}
