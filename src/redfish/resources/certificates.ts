/**
 * CertificateService and the one certificate this service has: the HTTPS certificate of the
 * Redfish server, at Managers/1/NetworkProtocol/HTTPS/Certificates/1. ReplaceCertificate works
 * when the certificate came from files the agent may write, or with a Secret to keep it in
 * (src/redfish/tls-certificate.ts); the server then serves the new one to new connections.
 * Read-only otherwise (a Kubernetes Secret mount without the Secret, shared mode), and then
 * neither action is advertised and both answer ActionNotSupported with the reason.
 *
 * GenerateCSR (the flow of a BMC: request, CA signs, install the certificate alone): a new key
 * pair and a PKCS#10 request for it (parameters: generate-csr.ts); the private key becomes the
 * collection's pending key (kept beside the key in use, so it survives a restart:
 * tls-certificate.ts), and ReplaceCertificate with only a certificate installs it with that key
 * when they match. A newer GenerateCSR replaces the pending key.
 */
import type { X509Certificate } from 'node:crypto';
import { generateCsr } from '../../common/x509.js';
import { RedfishError } from '../core/errors.js';
import { collection, sendResource } from '../core/odata.js';
import type { OperationHandlers, RedfishContext } from '../core/types.js';
import { CertificateError, privateKeyPem, type TlsCertificate } from '../tls-certificate.js';
import { MANAGER, MANAGER_ID, actionBody, link, requireId, type Annotated, type Schemas } from '../core/resource.js';
import { GENERATE_CSR, GENERATE_CSR_PARAMETERS, generateCsrActionInfo, parseGenerateCsr } from './generate-csr.js';

export const CERTIFICATE_SERVICE = '/redfish/v1/CertificateService';
const LOCATIONS = `${CERTIFICATE_SERVICE}/CertificateLocations`;
const REPLACE = `${CERTIFICATE_SERVICE}/Actions/CertificateService.ReplaceCertificate`;
const CSR = `${CERTIFICATE_SERVICE}/Actions/${GENERATE_CSR}`;
const CSR_INFO = `${CERTIFICATE_SERVICE}/GenerateCSRActionInfo`;
export const HTTPS_CERTIFICATES = `${MANAGER}/NetworkProtocol/HTTPS/Certificates`;
const CERT_ID = '1';
const HTTPS_CERT = `${HTTPS_CERTIFICATES}/${CERT_ID}`;
const TYPES = ['PEM', 'PEMchain'];

const store = (ctx: RedfishContext): TlsCertificate | undefined => ctx.state.deps.certificate;

/** "CN=x\nO=y" (node's X509Certificate.subject) → a Redfish Identifier. */
function identifier(dn: string): Record<string, string> {
  const keys: Record<string, string> = { CN: 'CommonName', O: 'Organization', OU: 'OrganizationalUnit', L: 'City', ST: 'State', C: 'Country', emailAddress: 'Email' };
  const out: Record<string, string> = {};
  for (const line of dn.split('\n')) {
    const i = line.indexOf('=');
    if (i <= 0) continue;
    const k = keys[line.slice(0, i)];
    if (k && out[k] === undefined) out[k] = line.slice(i + 1);
  }
  return out;
}

const iso = (d: string): string => new Date(d).toISOString().replace(/\.\d{3}Z$/, 'Z');

function certificateBody(cert: TlsCertificate): Record<string, unknown> {
  const x: X509Certificate = cert.certificate;
  const body: Annotated<Schemas['Certificate_v1_11_0_Certificate']> = {
    '@odata.type': '#Certificate.v1_11_0.Certificate',
    '@odata.id': HTTPS_CERT,
    Id: CERT_ID,
    Name: 'HTTPS certificate',
    Description: cert.replaceable
      ? 'The certificate of the Redfish HTTPS server; CertificateService.ReplaceCertificate replaces it'
      : `The certificate of the Redfish HTTPS server; read-only: ${cert.readOnlyReason}`,
    CertificateString: cert.pem,
    CertificateType: cert.pem.split('BEGIN CERTIFICATE').length > 2 ? 'PEMchain' : 'PEM',
    CertificateUsageTypes: ['Web'],
    Issuer: identifier(x.issuer),
    Subject: identifier(x.subject),
    ValidNotBefore: iso(x.validFrom),
    ValidNotAfter: iso(x.validTo),
    SerialNumber: x.serialNumber.replace(/(..)(?!$)/g, '$1:'),
    Fingerprint: x.fingerprint256,
    FingerprintHashAlgorithm: 'TPM_ALG_SHA256',
  };
  return body;
}

export const handlers: OperationHandlers = {
  getCertificateService: async (ctx) => {
    const cert = store(ctx);
    const body: Annotated<Schemas['CertificateService_v1_2_1_CertificateService']> = {
      '@odata.type': '#CertificateService.v1_2_1.CertificateService',
      '@odata.id': CERTIFICATE_SERVICE,
      Id: 'CertificateService',
      Name: 'Certificate Service',
      Description: cert?.replaceable
        ? 'The HTTPS certificate can be replaced, with a certificate and its key or with a certificate signed for GenerateCSR'
        : 'Certificates are listed; none can be replaced here',
      CertificateLocations: link(LOCATIONS),
    };
    if (cert?.replaceable) {
      body.Actions = {
        '#CertificateService.GenerateCSR': { target: CSR, '@Redfish.ActionInfo': CSR_INFO },
        '#CertificateService.ReplaceCertificate': { target: REPLACE, 'CertificateType@Redfish.AllowableValues': TYPES },
      };
    }
    sendResource(ctx, body, { etag: true });
  },

  getCertificateLocations: async (ctx) => {
    const body: Annotated<Schemas['CertificateLocations_v1_0_4_CertificateLocations']> = {
      '@odata.type': '#CertificateLocations.v1_0_4.CertificateLocations',
      '@odata.id': LOCATIONS,
      Id: 'CertificateLocations',
      Name: 'Certificate Locations',
      Links: { Certificates: store(ctx) ? [link(HTTPS_CERT)] : [] },
    };
    sendResource(ctx, body, { etag: true });
  },

  listHttpsCertificates: async (ctx) => {
    requireId(ctx, 'ManagerId', MANAGER_ID, 'Manager');
    sendResource(ctx, collection(ctx, HTTPS_CERTIFICATES, 'CertificateCollection', 'HTTPS Certificate Collection', store(ctx) ? [HTTPS_CERT] : []));
  },

  getHttpsCertificate: async (ctx) => {
    requireId(ctx, 'ManagerId', MANAGER_ID, 'Manager');
    const cert = store(ctx);
    const id = ctx.params.CertificateId ?? '';
    if (!cert || id !== CERT_ID) throw new RedfishError(404, 'ResourceNotFound', ['Certificate', id]);
    sendResource(ctx, certificateBody(cert), { etag: true });
  },

  getGenerateCsrActionInfo: async (ctx) => {
    sendResource(ctx, generateCsrActionInfo(CSR_INFO), { etag: true });
  },

  generateCsr: async (ctx) => {
    const cert = store(ctx);
    const body = actionBody(ctx, GENERATE_CSR, GENERATE_CSR_PARAMETERS);
    if (!cert) throw new RedfishError(400, 'ActionNotSupported', [GENERATE_CSR], { detail: 'The service is not serving HTTPS, so it has no certificate to request.' });
    if (!cert.replaceable) {
      throw new RedfishError(400, 'ActionNotSupported', [GENERATE_CSR], { detail: `The certificate cannot be replaced, so a request for a new one would lead nowhere: ${cert.readOnlyReason}.` });
    }
    const options = parseGenerateCsr(body, HTTPS_CERTIFICATES);
    const csrPem = await cert.withNewPendingKey(async () => {
      const made = await generateCsr(options);
      return { privateKey: made.privateKey, request: made.csrPem };
    });
    const k = options.key;
    // what was asked for, never the key
    ctx.state.logger.info({ commonName: options.subject.commonName, key: k.type === 'rsa' ? `RSA ${k.bits}` : `EC ${k.curve}` }, 'GenerateCSR: new key pair pending for the HTTPS certificate');
    const out: Annotated<Schemas['CertificateService_v1_2_1_GenerateCSRResponse']> = { CSRString: csrPem, CertificateCollection: link(HTTPS_CERTIFICATES) };
    sendResource(ctx, out);
  },

  replaceCertificate: async (ctx) => {
    const action = 'CertificateService.ReplaceCertificate';
    const cert = store(ctx);
    const body = actionBody(ctx, action, ['CertificateString', 'CertificateType', 'CertificateUri']);
    for (const p of ['CertificateString', 'CertificateType', 'CertificateUri']) {
      if (body[p] === undefined) throw new RedfishError(400, 'ActionParameterMissing', [action, p], { property: p });
    }
    if (typeof body.CertificateString !== 'string') {
      throw new RedfishError(400, 'ActionParameterValueTypeError', [JSON.stringify(body.CertificateString), 'CertificateString', action], { property: 'CertificateString' });
    }
    if (typeof body.CertificateType !== 'string' || !TYPES.includes(body.CertificateType)) {
      throw new RedfishError(400, 'ActionParameterValueNotInList', [String(body.CertificateType), 'CertificateType', action], { property: 'CertificateType' });
    }
    const uri = (body.CertificateUri as { '@odata.id'?: unknown } | null)?.['@odata.id'];
    if (typeof uri !== 'string' || uri.replace(/\/$/, '') !== HTTPS_CERT || !cert) {
      throw new RedfishError(400, 'ActionParameterValueError', ['CertificateUri', action], {
        property: 'CertificateUri',
        detail: `CertificateUri must name ${HTTPS_CERT}, the only certificate of this service${cert ? '' : ' (and the service is not serving HTTPS)'}.`,
      });
    }
    if (!cert.replaceable) {
      throw new RedfishError(400, 'ActionNotSupported', [action], { detail: `The certificate cannot be replaced: ${cert.readOnlyReason}.` });
    }
    // no key: the certificate must belong to the pending GenerateCSR key (tls-certificate.ts says why not)
    const key = privateKeyPem(body.CertificateString);
    try {
      await cert.replace(body.CertificateString, key);
    } catch (e) {
      if (e instanceof CertificateError) {
        throw new RedfishError(400, 'ActionParameterValueError', [e.parameter, action], { property: e.parameter, detail: `${e.message}.` });
      }
      ctx.state.logger.error({ err: (e as Error).message }, 'replacing the HTTPS certificate failed');
      throw new RedfishError(500, 'InternalError');
    }
    ctx.state.logger.info({ subject: cert.certificate.subject.replace(/\n/g, ', '), validTo: cert.certificate.validTo }, 'HTTPS certificate replaced');
    sendResource(ctx, certificateBody(cert));
  },
};
