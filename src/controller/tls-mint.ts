/**
 * A self-signed X.509 server certificate for an agent's Redfish HTTPS, minted by the controller
 * when cert-manager is not installed (src/controller/tls.ts). ECDSA P-256 key and SHA-256
 * signature from node:crypto's WebCrypto; the certificate structure (RFC 5280) is built with pkijs.
 *
 * Self-signed rather than signed by a controller CA: there is then no signing key the controller
 * must keep and protect (whoever held it could issue certificates for any name), a leaked agent
 * key affects one BMC only, and the certificate is its own trust anchor (the Secret's ca.crt, as
 * cert-manager's selfSigned issuer does): pin it, or trust it per BMC.
 */
import { createPrivateKey, randomBytes, webcrypto, X509Certificate } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { OID, distinguishedName, keyUsageValue, pem, subjectAltNames } from '../common/x509.js';

let engineSet = false;
function engine(): void {
  if (engineSet) return;
  pkijs.setEngine('node', new pkijs.CryptoEngine({ name: 'node', crypto: webcrypto as unknown as ConstructorParameters<typeof pkijs.CryptoEngine>[0]['crypto'] }));
  engineSet = true;
}

export interface MintOptions {
  /** subjectAltName dNSName entries; the first is also the subject CN */
  dnsNames: string[];
  notBefore: Date;
  notAfter: Date;
}

export interface MintedCertificate {
  certPem: string;
  keyPem: string;
}

/**
 * A certificate serial from 16 random bytes: positive (top bit clear) and minimal as DER requires
 * (X.690 8.3.2: the first nine bits of an INTEGER are not all zero, so the first byte is never 00h
 * before a byte below 80h). Setting bit 6 of the first byte does both: 126 random bits, always 16
 * bytes. (With only the top bit cleared, 1 serial in 256 began 00h 0xh, and OpenSSL refused the
 * certificate: "asn1 illegal padding".)
 */
export function serialFrom(random: Uint8Array): Uint8Array {
  const serial = Uint8Array.from(random);
  serial[0] = (serial[0]! & 0x7f) | 0x40;
  return serial;
}

export async function mintSelfSigned(o: MintOptions): Promise<MintedCertificate> {
  if (o.dnsNames.length === 0) throw new Error('a certificate needs at least one DNS name');
  engine();
  const keys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const cert = new pkijs.Certificate();
  cert.version = 2;
  cert.serialNumber = new asn1js.Integer({ valueHex: serialFrom(randomBytes(16)) });
  const name = distinguishedName({ commonName: o.dnsNames[0]!.slice(0, 64) });
  cert.subject = name;
  cert.issuer = name;
  cert.notBefore.value = o.notBefore;
  cert.notAfter.value = o.notAfter;
  await cert.subjectPublicKeyInfo.importKey(keys.publicKey);
  const spki = await webcrypto.subtle.exportKey('spki', keys.publicKey);
  const skid = await webcrypto.subtle.digest('SHA-1', spki);

  const eku = new pkijs.ExtKeyUsage({ keyPurposes: [OID.serverAuth] });
  cert.extensions = [
    new pkijs.Extension({ extnID: OID.basicConstraints, critical: true, extnValue: new pkijs.BasicConstraints({ cA: false }).toSchema().toBER(false) }),
    new pkijs.Extension({ extnID: OID.keyUsage, critical: true, extnValue: keyUsageValue(['digitalSignature']) }),
    new pkijs.Extension({ extnID: OID.extKeyUsage, critical: false, extnValue: eku.toSchema().toBER(false) }),
    new pkijs.Extension({ extnID: OID.subjectKeyId, critical: false, extnValue: new asn1js.OctetString({ valueHex: skid }).toBER(false) }),
    new pkijs.Extension({ extnID: OID.subjectAltName, critical: false, extnValue: subjectAltNames(o.dnsNames).toSchema().toBER(false) }),
  ];
  await cert.sign(keys.privateKey, 'SHA-256');
  const certPem = pem('CERTIFICATE', cert.toSchema(true).toBER(false));
  const keyPem = pem('PRIVATE KEY', await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  return { certPem, keyPem };
}

export interface CertificateFacts {
  notBefore: number;
  notAfter: number;
  dnsNames: string[];
  /** the key in the same Secret belongs to this certificate */
  keyMatches: boolean;
}

/** What a PEM certificate (and its key) says, or undefined when it does not parse. */
export function inspectCertificate(certPem: string, keyPem?: string): CertificateFacts | undefined {
  try {
    const x = new X509Certificate(certPem);
    const dnsNames = (x.subjectAltName ?? '')
      .split(/,\s*/)
      .filter((s) => s.startsWith('DNS:'))
      .map((s) => s.slice(4));
    let keyMatches = false;
    if (keyPem) {
      try {
        keyMatches = x.checkPrivateKey(createPrivateKey(keyPem));
      } catch {
        keyMatches = false;
      }
    }
    return { notBefore: Date.parse(x.validFrom), notAfter: Date.parse(x.validTo), dnsNames, keyMatches };
  } catch {
    return undefined;
  }
}
