/**
 * CertificateService.GenerateCSR and ReplaceCertificate with the certificate alone, the flow of a
 * real BMC: the agent makes a key pair and a PKCS#10 request (checked with `openssl req -verify`),
 * a test CA made by openssl in a temporary folder signs it, ReplaceCertificate installs the
 * certificate with the key the agent kept, and a new TLS connection (verifying against the test CA)
 * gets it. Also: a certificate for another key is refused (400) and changes nothing, a second
 * GenerateCSR replaces the first one's key, the key never reaches the log (debug level), Operator
 * and ReadOnly get 403, bad bodies get their Base messages, DMTF Redfish-Tacklebox's
 * `rf_certificates.py csrinfo/csr/install` request sequence (replayed: Tacklebox is not packaged),
 * and KubeVirt mode keeps the installed pair in the certificate Secret (apiserver emulator, the
 * agent's RBAC).
 */
import { execFileSync } from 'node:child_process';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { expect } from 'chai';
import sinon from 'sinon';
import { createLogger, nullLogger } from '../../src/common/logger.js';
import { generateCsr, type CsrOptions } from '../../src/common/x509.js';
import { agentRoleRules } from '../../src/controller/agent-rbac.js';
import { KubeClient } from '../../src/kube/client.js';
import { TlsSecretStore } from '../../src/kube/tls-secret.js';
import { TlsCertificate, pendingKeyFile } from '../../src/redfish/tls-certificate.js';
import { startEmulator } from '../backend/kubevirt-fixtures.js';
import type { ApiServerEmulator, KubeObject } from '../emulator/index.js';
import { grantServiceAccount } from '../emulator/helpers.js';
import { ADMIN, OPERATOR, READONLY, startTestAgent, type TestAgent } from '../helpers/agent.js';
import { expectConforms } from '../helpers/redfish-schema.js';
import { lineSink } from '../helpers/log.js';
import { createRedfishDeps } from '../../src/redfish/server.js';
import { SimulatedMachine } from '../../src/backend/simulator/simulator.js';

const SERVICE = '/redfish/v1/CertificateService';
const CSR = `${SERVICE}/Actions/CertificateService.GenerateCSR`;
const REPLACE = `${SERVICE}/Actions/CertificateService.ReplaceCertificate`;
const COLLECTION = '/redfish/v1/Managers/BMC/NetworkProtocol/HTTPS/Certificates';
const CERT = `${COLLECTION}/1`;
const NAME = 'bmc-csr.test.example';

const basic = (u: { username: string; password: string }) => `Basic ${Buffer.from(`${u.username}:${u.password}`).toString('base64')}`;

interface Answer {
  status: number;
  body: Record<string, unknown>;
  text: string;
  headers: Record<string, string | string[] | undefined>;
  /** the certificate the server presented on this (new) connection */
  peer: X509Certificate | undefined;
}

/** One request on a new TLS connection; `ca` set: verified against it for `servername`, else not verified. */
function request(port: number, path: string, o: { method?: string; body?: unknown; auth?: string; token?: string; ca?: string; servername?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const data = o.body === undefined ? undefined : JSON.stringify(o.body);
    const headers: Record<string, string> = {
      ...(o.token ? { 'x-auth-token': o.token } : { authorization: o.auth ?? basic(ADMIN) }),
      ...(data ? { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(data)) } : {}),
    };
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        path,
        method: o.method ?? (data ? 'POST' : 'GET'),
        agent: false,
        headers,
        ...(o.ca ? { ca: o.ca, servername: o.servername ?? NAME } : { rejectUnauthorized: false }),
      },
      (res) => {
        const peer = (res.socket as TLSSocket).getPeerX509Certificate?.();
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text ? (JSON.parse(text) as Record<string, unknown>) : {}, text, headers: res.headers, peer }));
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

const messageIds = (a: Answer): string[] =>
  ((a.body.error as { '@Message.ExtendedInfo'?: Array<{ MessageId: string }> } | undefined)?.['@Message.ExtendedInfo'] ?? []).map((m) => m.MessageId.replace(/^Base\.[\d.]+\./, ''));

describe('Redfish CertificateService.GenerateCSR and ReplaceCertificate with the certificate alone', function () {
  this.timeout(60_000);
  let dir: string;
  let n = 0;
  const file = (name: string): string => join(dir, name);
  const openssl = (...args: string[]): string => execFileSync('openssl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

  /** A self-signed certificate and key in files, for the agent to start with. */
  function initial(): { cert: string; key: string; certFile: string; keyFile: string } {
    const id = `start-${++n}`;
    openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', '/CN=first.test.example',
      '-keyout', file(`${id}.key`), '-out', file(`${id}.crt`));
    return { cert: readFileSync(file(`${id}.crt`), 'utf8'), key: readFileSync(file(`${id}.key`), 'utf8'), certFile: file(`${id}.crt`), keyFile: file(`${id}.key`) };
  }
  /** The test CA signs a PEM request, keeping the extensions it asks for. */
  function sign(csrPem: string): string {
    const id = `leaf-${++n}`;
    writeFileSync(file(`${id}.csr`), csrPem);
    openssl('x509', '-req', '-in', file(`${id}.csr`), '-CA', file('ca.crt'), '-CAkey', file('ca.key'), '-CAcreateserial', '-days', '1', '-copy_extensions', 'copy', '-out', file(`${id}.crt`));
    return readFileSync(file(`${id}.crt`), 'utf8');
  }
  /** `openssl req -verify -noout -text` of a request: throws unless its signature verifies. */
  function verifiedText(csrPem: string): string {
    const id = `check-${++n}`;
    writeFileSync(file(`${id}.csr`), csrPem);
    return openssl('req', '-verify', '-noout', '-text', '-in', file(`${id}.csr`));
  }
  let ca: string;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'rf-csr-'));
    openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', '/CN=KubeVirtBMC test CA',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign', '-keyout', file('ca.key'), '-out', file('ca.crt'));
    ca = readFileSync(file('ca.crt'), 'utf8');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  describe('with certificate files', () => {
    let t: TestAgent;
    let start: ReturnType<typeof initial>;
    beforeEach(async () => {
      start = initial();
      t = await startTestAgent({ ipmi: false, users: [ADMIN, OPERATOR, READONLY], redfish: { port: 0, tls: { cert: start.cert, key: start.key, certFile: start.certFile, keyFile: start.keyFile } } });
    });
    afterEach(async () => t.close());

    const ask = (body: Record<string, unknown>) => request(t.redfishPort, CSR, { body: { CertificateCollection: { '@odata.id': COLLECTION }, ...body } });
    const install = (certificate: string) =>
      request(t.redfishPort, REPLACE, { body: { CertificateString: certificate, CertificateType: 'PEM', CertificateUri: { '@odata.id': CERT } } });

    it('advertises GenerateCSR with an ActionInfo that conforms and lists what is supported', async () => {
      const svc = await request(t.redfishPort, SERVICE);
      expectConforms('CertificateService_CertificateService', svc.body);
      const action = (svc.body.Actions as Record<string, Record<string, string>>)['#CertificateService.GenerateCSR'];
      expect(action).to.deep.equal({ target: CSR, '@Redfish.ActionInfo': `${SERVICE}/GenerateCSRActionInfo` });
      const info = await request(t.redfishPort, action!['@Redfish.ActionInfo']!, { auth: basic(READONLY) });
      expect(info.status).to.equal(200);
      expectConforms('ActionInfo_ActionInfo', info.body);
      const params = new Map((info.body.Parameters as Array<Record<string, unknown>>).map((p) => [p.Name, p]));
      expect([...params.keys()].filter((k) => params.get(k)!.Required)).to.deep.equal(['CertificateCollection', 'CommonName']);
      expect(params.get('KeyPairAlgorithm')!.AllowableValues).to.deep.equal(['TPM_ALG_RSA', 'TPM_ALG_ECDSA']);
      expect(params.get('KeyBitLength')!.AllowableNumbers).to.deep.equal(['2048', '3072', '4096']);
      expect(params.get('KeyCurveId')!.AllowableValues).to.deep.equal(['TPM_ECC_NIST_P256', 'TPM_ECC_NIST_P384']);
      expect(params.has('ChallengePassword')).to.equal(false);
    });

    it('GenerateCSR → CA signs → ReplaceCertificate with the certificate only → new connections get it', async () => {
      const r = await ask({ CommonName: NAME, AlternativeNames: [NAME, '127.0.0.1'], Organization: 'KubeVirtBMC', OrganizationalUnit: 'Test', City: 'Lisbon', State: 'Lisboa', Country: 'PT', Email: 'bmc-admin@test.example' });
      expect(r.status, r.text).to.equal(200);
      expect(Object.keys(r.body).sort()).to.deep.equal(['CSRString', 'CertificateCollection']);
      expectConforms('CertificateService_v1_2_1_GenerateCSRResponse', r.body);
      expect(r.body.CertificateCollection).to.deep.equal({ '@odata.id': COLLECTION });
      const csr = r.body.CSRString as string;
      expect(csr).to.match(/^-----BEGIN CERTIFICATE REQUEST-----\n[\s\S]+\n-----END CERTIFICATE REQUEST-----\n$/);
      expect(r.text).to.not.contain('PRIVATE KEY');
      const text = verifiedText(csr);
      expect(text).to.contain(`C = PT, ST = Lisboa, L = Lisbon, O = KubeVirtBMC, OU = Test, CN = ${NAME}, emailAddress = bmc-admin@test.example`);
      expect(text).to.match(/id-ecPublicKey[\s\S]*NIST CURVE: P-256/);
      expect(text).to.match(/X509v3 Subject Alternative Name: *\n *DNS:bmc-csr\.test\.example, IP Address:127\.0\.0\.1/);
      expect(text).to.match(/X509v3 Key Usage: critical\n *Digital Signature\n/);
      expect(text).to.contain('TLS Web Server Authentication');
      expect(text).to.contain('ecdsa-with-SHA256');

      const leaf = sign(csr);
      const ok = await install(leaf);
      expect(ok.status, ok.text).to.equal(200);
      expect(ok.text).to.not.contain('PRIVATE KEY');
      expect((ok.body.Subject as Record<string, string>).CommonName).to.equal(NAME);
      expect((ok.body.Issuer as Record<string, string>).CommonName).to.equal('KubeVirtBMC test CA');

      // a new connection, verified against the test CA for the requested name, gets the new certificate
      const fresh = await request(t.redfishPort, CERT, { ca });
      expect(fresh.status).to.equal(200);
      expect(fresh.peer?.fingerprint256).to.equal(new X509Certificate(leaf).fingerprint256);
      expect(fresh.body.Fingerprint).to.equal(new X509Certificate(leaf).fingerprint256);
      // persisted like any replacement: the files hold the certificate and the key the agent kept
      expect(readFileSync(start.certFile, 'utf8')).to.equal(leaf);
      expect(new X509Certificate(leaf).checkPrivateKey(createPrivateKey(readFileSync(start.keyFile, 'utf8')))).to.equal(true);
      // the pending key was used up: the same certificate alone again has no key to go with
      const again = await install(leaf);
      expect(again.status).to.equal(400);
      expect(again.text).to.contain('no GenerateCSR key is pending');
    });

    it('RSA 3072 with the usages asked for, IPv6 alternative names', async () => {
      const r = await ask({ CommonName: NAME, AlternativeNames: ['::1', '2001:db8::5', '::ffff:10.1.2.3'], KeyPairAlgorithm: 'TPM_ALG_RSA', KeyBitLength: 3072, KeyUsage: ['DigitalSignature', 'KeyEncipherment', 'ServerAuthentication', 'ClientAuthentication'] });
      expect(r.status, r.text).to.equal(200);
      const text = verifiedText(r.body.CSRString as string);
      expect(text).to.match(/rsaEncryption[\s\S]*Public-Key: \(3072 bit\)/);
      expect(text).to.match(/X509v3 Key Usage: critical\n *Digital Signature, Key Encipherment\n/);
      expect(text).to.contain('TLS Web Server Authentication, TLS Web Client Authentication');
      expect(text).to.contain('sha256WithRSAEncryption');
      expect(text).to.contain('IP Address:0:0:0:0:0:0:0:1, IP Address:2001:DB8:0:0:0:0:0:5, IP Address:0:0:0:0:0:FFFF:A01:203\n');
      expect((await install(sign(r.body.CSRString as string))).status).to.equal(200);
      expect(new X509Certificate(readFileSync(start.certFile, 'utf8')).publicKey.asymmetricKeyDetails?.modulusLength).to.equal(3072);
    });

    it('a certificate for another key is refused (400) and changes nothing', async () => {
      expect((await ask({ CommonName: NAME })).status).to.equal(200);
      // a request made with a key the agent never saw
      openssl('req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', `/CN=${NAME}`, '-keyout', file('other.key'), '-out', file('other.csr'));
      const foreign = sign(readFileSync(file('other.csr'), 'utf8'));
      const r = await install(foreign);
      expect(r.status).to.equal(400);
      expect(messageIds(r)).to.deep.equal(['ActionParameterValueError']);
      expect(r.text).to.contain('is not the key of the last GenerateCSR request');
      expect(readFileSync(start.certFile, 'utf8')).to.equal(start.cert);
      expect((await request(t.redfishPort, CERT)).peer?.fingerprint256).to.equal(new X509Certificate(start.cert).fingerprint256);
      // the certificate with its own key still installs the old way
      expect((await install(foreign + readFileSync(file('other.key'), 'utf8'))).status).to.equal(200);
      expect(readFileSync(start.certFile, 'utf8')).to.equal(foreign);
    });

    it('a second GenerateCSR replaces the first one\'s key', async () => {
      const first = await ask({ CommonName: NAME });
      const second = await ask({ CommonName: NAME });
      expect(first.status).to.equal(200);
      expect(second.status).to.equal(200);
      expect(second.body.CSRString).to.not.equal(first.body.CSRString);
      const stale = await install(sign(first.body.CSRString as string));
      expect(stale.status).to.equal(400);
      expect(stale.text).to.contain('a newer request replaces');
      expect(readFileSync(start.certFile, 'utf8')).to.equal(start.cert);
      const current = sign(second.body.CSRString as string);
      expect((await install(current)).status).to.equal(200);
      expect((await request(t.redfishPort, CERT, { ca })).peer?.fingerprint256).to.equal(new X509Certificate(current).fingerprint256);
    });

    it('a restart between GenerateCSR and the signed certificate loses nothing: the pending key is kept beside the key file (0600) and read back', async () => {
      const made = await ask({ CommonName: NAME, AlternativeNames: [NAME] });
      expect(made.status, made.text).to.equal(200);
      const kept = pendingKeyFile(start.keyFile);
      expect(statSync(kept).mode & 0o777).to.equal(0o600);
      expect(readFileSync(start.keyFile, 'utf8')).to.equal(start.key);
      // the agent restarts on the same files before the CA answers
      await t.close();
      t = await startTestAgent({ ipmi: false, users: [ADMIN, OPERATOR, READONLY], redfish: { port: 0, tls: { cert: start.cert, key: start.key, certFile: start.certFile, keyFile: start.keyFile } } });
      const leaf = sign(made.body.CSRString as string);
      const ok = await install(leaf);
      expect(ok.status, ok.text).to.equal(200);
      expect(new X509Certificate(leaf).checkPrivateKey(createPrivateKey(readFileSync(start.keyFile, 'utf8')))).to.equal(true);
      expect((await request(t.redfishPort, CERT, { ca })).peer?.fingerprint256).to.equal(new X509Certificate(leaf).fingerprint256);
      // used up: no copy is left behind, and the next start has nothing pending
      expect(existsSync(kept)).to.equal(false);
      expect((await install(leaf)).text).to.contain('no GenerateCSR key is pending');
    });

    it('Operator and ReadOnly get 403 for both actions; nothing is made or installed', async () => {
      for (const user of [OPERATOR, READONLY]) {
        const r = await request(t.redfishPort, CSR, { auth: basic(user), body: { CertificateCollection: { '@odata.id': COLLECTION }, CommonName: NAME } });
        expect(r.status, user.username).to.equal(403);
        expect(r.text).to.not.contain('CERTIFICATE REQUEST');
      }
      const mine = await ask({ CommonName: NAME });
      const leaf = sign(mine.body.CSRString as string);
      for (const user of [OPERATOR, READONLY]) {
        const r = await request(t.redfishPort, REPLACE, { auth: basic(user), body: { CertificateString: leaf, CertificateType: 'PEM', CertificateUri: { '@odata.id': CERT } } });
        expect(r.status, user.username).to.equal(403);
      }
      expect(readFileSync(start.certFile, 'utf8')).to.equal(start.cert);
      // the Administrator's pending key is still there
      expect((await install(leaf)).status).to.equal(200);
    });

    it('bad bodies get 400 with the Base message naming the problem', async () => {
      const cases: Array<[Record<string, unknown>, string, string]> = [
        [{ CertificateCollection: undefined, CommonName: NAME }, 'ActionParameterMissing', 'CertificateCollection'],
        [{}, 'ActionParameterMissing', 'CommonName'],
        [{ CommonName: 7 }, 'ActionParameterValueTypeError', 'CommonName'],
        [{ CommonName: 'x'.repeat(65) }, 'ActionParameterValueFormatError', 'CommonName'],
        [{ CommonName: NAME, CertificateCollection: { '@odata.id': '/redfish/v1/AccountService/LDAP/Certificates' } }, 'ActionParameterValueNotInList', 'CertificateCollection'],
        [{ CommonName: NAME, CertificateCollection: '/redfish/v1/Managers/BMC/NetworkProtocol/HTTPS/Certificates' }, 'ActionParameterValueTypeError', 'CertificateCollection'],
        [{ CommonName: NAME, Country: 'Portugal' }, 'ActionParameterValueFormatError', 'Country'],
        [{ CommonName: NAME, Email: 'not an address' }, 'ActionParameterValueFormatError', 'Email'],
        [{ CommonName: NAME, AlternativeNames: 'bmc.example' }, 'ActionParameterValueTypeError', 'AlternativeNames'],
        [{ CommonName: NAME, AlternativeNames: ['bad name!'] }, 'ActionParameterValueFormatError', 'AlternativeNames'],
        [{ CommonName: NAME, KeyPairAlgorithm: 'TPM_ALG_ECDH' }, 'ActionParameterValueNotInList', 'KeyPairAlgorithm'],
        [{ CommonName: NAME, KeyPairAlgorithm: 'TPM_ALG_RSA', KeyBitLength: 1024 }, 'ActionParameterValueNotInList', 'KeyBitLength'],
        [{ CommonName: NAME, KeyPairAlgorithm: 'TPM_ALG_RSA', KeyBitLength: '2048' }, 'ActionParameterValueTypeError', 'KeyBitLength'],
        [{ CommonName: NAME, KeyPairAlgorithm: 'TPM_ALG_RSA', KeyCurveId: 'TPM_ECC_NIST_P256' }, 'ActionParameterValueConflict', 'KeyCurveId'],
        [{ CommonName: NAME, KeyCurveId: 'TPM_ECC_NIST_P521' }, 'ActionParameterValueNotInList', 'KeyCurveId'],
        [{ CommonName: NAME, KeyCurveId: 'TPM_ECC_NIST_P384', KeyBitLength: 256 }, 'ActionParameterValueConflict', 'KeyBitLength'],
        [{ CommonName: NAME, KeyUsage: ['KeyCertSign'] }, 'ActionParameterValueNotInList', 'KeyUsage'],
        [{ CommonName: NAME, KeyUsage: ['KeyEncipherment'] }, 'ActionParameterValueConflict', 'KeyUsage'],
        [{ CommonName: NAME, ChallengePassword: 'secret' }, 'ActionParameterNotSupported', 'ChallengePassword'],
        [{ CommonName: NAME, Surname: 'Doe' }, 'ActionParameterNotSupported', 'Surname'],
        [{ CommonName: NAME, Colour: 'blue' }, 'ActionParameterUnknown', 'Colour'],
      ];
      for (const [body, id, property] of cases) {
        const payload: Record<string, unknown> = { CertificateCollection: { '@odata.id': COLLECTION }, ...body };
        for (const k of Object.keys(payload)) if (payload[k] === undefined) delete payload[k];
        const r = await request(t.redfishPort, CSR, { body: payload });
        expect(r.status, JSON.stringify(body)).to.equal(400);
        expect(messageIds(r), JSON.stringify(body)).to.deep.equal([id]);
        const info = (r.body.error as { '@Message.ExtendedInfo': Array<{ RelatedProperties?: string[]; MessageArgs: string[] }> })['@Message.ExtendedInfo'][0]!;
        expect(JSON.stringify(info), JSON.stringify(body)).to.contain(property);
      }
      // none of them left a key behind
      const later = await install(sign((await ask({ CommonName: NAME })).body.CSRString as string));
      expect(later.status).to.equal(200);
    });

    it('DMTF Redfish-Tacklebox rf_certificates.py csrinfo, csr and install (its request sequence, session login)', async () => {
      // python-redfish-library login (auth="session")
      const login = await request(t.redfishPort, '/redfish/v1/SessionService/Sessions', { body: { UserName: ADMIN.username, Password: ADMIN.password }, auth: '' });
      expect(login.status).to.equal(201);
      const token = String(login.headers['x-auth-token']);
      const as = (path: string, body?: unknown) => request(t.redfishPort, path, { token, ...(body === undefined ? {} : { body }) });
      // get_generate_csr_info: service root → CertificateService → the action → its ActionInfo's Parameters
      const root = await as('/redfish/v1/');
      const svc = await as((root.body.CertificateService as { '@odata.id': string })['@odata.id']);
      const action = (svc.body.Actions as Record<string, Record<string, string>>)['#CertificateService.GenerateCSR']!;
      const params = (await as(action['@Redfish.ActionInfo']!)).body.Parameters as Array<{ Name: string; Required?: boolean; AllowableValues?: string[] }>;
      // csrinfo prints each Name with "(required)" and AllowableValues joined: all must be printable
      for (const p of params) expect(p.Name).to.be.a('string');
      // generate_csr: these seven always, Email/KeyPairAlgorithm/KeyBitLength/KeyCurveId when given
      const csr = await as(action.target!, {
        CertificateCollection: { '@odata.id': COLLECTION }, CommonName: NAME, Organization: 'KubeVirtBMC', OrganizationalUnit: 'Test',
        City: 'Lisbon', State: 'Lisboa', Country: 'PT', KeyPairAlgorithm: 'TPM_ALG_ECDSA', KeyCurveId: 'TPM_ECC_NIST_P384',
      });
      expect(csr.status, csr.text).to.equal(200); // poll_task_monitor passes a 200 through
      const text = verifiedText(csr.body.CSRString as string);
      expect(text).to.contain('NIST CURVE: P-384');
      // install_certificate without --key: GET the destination; a Certificate (not a collection) → ReplaceCertificate
      const leaf = sign(csr.body.CSRString as string);
      const dest = await as(CERT);
      expect(dest.body['@odata.type']).to.match(/^#Certificate\./);
      const replace = (svc.body.Actions as Record<string, Record<string, string>>)['#CertificateService.ReplaceCertificate']!.target!;
      const done = await as(replace, { CertificateUri: { '@odata.id': CERT }, CertificateString: leaf, CertificateType: 'PEM' });
      expect(done.status, done.text).to.equal(200);
      // get_all_certificates / print_certificates: CertificateLocations → the certificate, issued by the CA now
      const locs = await as((svc.body.CertificateLocations as { '@odata.id': string })['@odata.id']);
      const listed = await as((locs.body.Links as { Certificates: Array<{ '@odata.id': string }> }).Certificates[0]!['@odata.id']);
      expect((listed.body.Issuer as Record<string, string>).CommonName).to.equal('KubeVirtBMC test CA');
      expect((await request(t.redfishPort, '/redfish/v1/', { ca, token })).peer?.fingerprint256).to.equal(new X509Certificate(leaf).fingerprint256);
    });
  });

  it('GenerateCSR requests at once: each waits for the one before, and the last one asked for holds the pending key', async () => {
    const c = initial();
    const saved: string[] = [];
    const cert = new TlsCertificate(c.cert, c.key, undefined, { save: async (crt) => void saved.push(crt) });
    const opts: CsrOptions = { subject: { commonName: NAME }, altNames: [], keyUsage: ['digitalSignature'], extKeyUsage: [], key: { type: 'ec', curve: 'P-256' } };
    const [a, b] = [await generateCsr(opts), await generateCsr(opts)];
    let releaseA!: () => void;
    const aDone = new Promise<void>((r) => (releaseA = r));
    let bStarted = false;
    const first = cert.withNewPendingKey(async () => {
      await aDone;
      return { privateKey: a.privateKey, request: 'a' };
    });
    const second = cert.withNewPendingKey(async () => {
      bStarted = true;
      return { privateKey: b.privateKey, request: 'b' };
    });
    // the second has not started while the first is still making its key
    await new Promise((r) => setImmediate(r));
    expect(bStarted).to.equal(false);
    expect(cert.hasPendingKey).to.equal(false);
    releaseA();
    expect(await Promise.all([first, second])).to.deep.equal(['a', 'b']);
    expect(bStarted).to.equal(true);
    const leafA = sign(a.csrPem);
    const leafB = sign(b.csrPem);
    const refused = await cert.replace(leafA).then(() => 'installed', (e: Error) => e.message);
    expect(refused).to.contain('is not the key of the last GenerateCSR request');
    await cert.replace(leafB);
    expect(saved).to.deep.equal([leafB]);
    expect(cert.hasPendingKey).to.equal(false);
    expect(cert.certificate.fingerprint256).to.equal(new X509Certificate(leafB).fingerprint256);
  });

  it('the pending key is never logged, even at debug level (nor the installed one)', async () => {
    const c = initial();
    const lines: string[] = [];
    const sink = lineSink(lines);
    const t = await startTestAgent({ ipmi: false, logger: createLogger('debug', sink), redfish: { port: 0, tls: { cert: c.cert, key: c.key, certFile: c.certFile, keyFile: c.keyFile } } });
    try {
      const made = await request(t.redfishPort, CSR, { body: { CertificateCollection: { '@odata.id': COLLECTION }, CommonName: NAME } });
      expect(made.status).to.equal(200);
      const leaf = sign(made.body.CSRString as string);
      expect((await request(t.redfishPort, REPLACE, { body: { CertificateString: leaf, CertificateType: 'PEM', CertificateUri: { '@odata.id': CERT } } })).status).to.equal(200);
      const log = lines.join('');
      expect(log).to.contain('GenerateCSR: new key pair pending').and.contain('HTTPS certificate replaced');
      const key = createPrivateKey(readFileSync(c.keyFile, 'utf8'));
      expect(new X509Certificate(leaf).checkPrivateKey(key)).to.equal(true);
      const der = key.export({ type: 'pkcs8', format: 'der' });
      for (const secret of ['PRIVATE KEY', der.toString('base64').slice(0, 40), der.toString('hex').slice(0, 40), (key.export({ format: 'jwk' }).d as string).slice(0, 20)]) {
        expect(log).to.not.contain(secret);
      }
    } finally {
      await t.close();
    }
  });

  it('a certificate Secret that does not answer holds the start up 2 s at most (the kept key is read in the background)', async () => {
    const c = initial();
    let asked = 0;
    const hanging = { save: async () => undefined, loadPendingKey: () => (asked++, new Promise<string | undefined>(() => undefined)) };
    const clock = sinon.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      let started = false;
      const deps = createRedfishDeps({ machine: new SimulatedMachine(), users: [ADMIN], logger: nullLogger(), address: '127.0.0.1', port: 0, tls: { cert: c.cert, key: c.key, store: hanging } }).then((d) => {
        started = true;
        return d;
      });
      await clock.tickAsync(1_999);
      expect([asked, started]).to.deep.equal([1, false]);
      await clock.tickAsync(1);
      expect(started).to.equal(true);
      expect((await deps).certificate?.hasPendingKey).to.equal(false);
    } finally {
      clock.restore();
    }
  });

  it('is not offered where the certificate cannot be replaced (given in memory)', async () => {
    const c = initial();
    const t = await startTestAgent({ ipmi: false, redfish: { port: 0, tls: { cert: c.cert, key: c.key } } });
    try {
      const svc = await request(t.redfishPort, SERVICE);
      expect(svc.body).to.not.have.property('Actions');
      const r = await request(t.redfishPort, CSR, { body: { CertificateCollection: { '@odata.id': COLLECTION }, CommonName: NAME } });
      expect(r.status).to.equal(400);
      expect(messageIds(r)).to.deep.equal(['ActionNotSupported']);
      expect(r.text).to.contain('cannot be replaced').and.not.contain('CERTIFICATE REQUEST');
    } finally {
      await t.close();
    }
  });

  describe('KubeVirt mode: the certificate Secret @e2e', () => {
    const NS = 'default';
    const SECRET = 'bmc-virtbmc-tls';
    const SA = 'bmc-virtbmc';
    let emu: ApiServerEmulator;
    let client: KubeClient;
    let t: TestAgent | undefined;
    beforeEach(async () => {
      emu = await startEmulator();
      client = new KubeClient(emu.asServiceAccount(NS, SA).makeKubeConfig(), { logger: nullLogger() });
    });
    afterEach(async () => {
      await t?.close();
      client?.close();
      await emu?.close();
    });

    it('the certificate installed for the pending key goes into the Secret with that key (agent RBAC)', async () => {
      const c = initial();
      const b64 = (s: string) => Buffer.from(s).toString('base64');
      emu.create({ apiVersion: 'v1', kind: 'Secret', type: 'kubernetes.io/tls', metadata: { name: SECRET, namespace: NS }, data: { 'tls.crt': b64(c.cert), 'tls.key': b64(c.key), 'ca.crt': b64(c.cert) } } as KubeObject);
      grantServiceAccount(emu, NS, SA, agentRoleRules('vm1', [], { tlsSecret: SECRET }));
      // the mounted files are read-only in a pod: given in memory here, the Secret is where a replacement goes
      t = await startTestAgent({ ipmi: false, redfish: { port: 0, tls: { cert: c.cert, key: c.key, store: new TlsSecretStore(client, NS, SECRET) } } });
      const made = await request(t.redfishPort, CSR, { body: { CertificateCollection: { '@odata.id': COLLECTION }, CommonName: NAME, AlternativeNames: [NAME] } });
      expect(made.status, made.text).to.equal(200);
      // the pending key waits in the Secret beside the pair in use, which is untouched until a certificate comes
      const before = emu.get('v1', 'Secret', NS, SECRET) as KubeObject & { data: Record<string, string> };
      expect(Buffer.from(before.data['tls.key']!, 'base64').toString()).to.equal(c.key);
      const pendingPem = Buffer.from(before.data[TlsSecretStore.PENDING_KEY]!, 'base64').toString();
      expect(pendingPem).to.match(/^-----BEGIN PRIVATE KEY-----\n/);
      // the agent restarts before the CA answers: the pending key is read back from the Secret
      await t.close();
      t = await startTestAgent({ ipmi: false, redfish: { port: 0, tls: { cert: c.cert, key: c.key, store: new TlsSecretStore(client, NS, SECRET) } } });
      const leaf = sign(made.body.CSRString as string);
      expect(new X509Certificate(leaf).checkPrivateKey(createPrivateKey(pendingPem))).to.equal(true);
      const r = await request(t.redfishPort, REPLACE, { body: { CertificateString: leaf, CertificateType: 'PEM', CertificateUri: { '@odata.id': CERT } } });
      expect(r.status, r.text).to.equal(200);
      const after = emu.get('v1', 'Secret', NS, SECRET) as KubeObject & { data: Record<string, string> };
      expect(Buffer.from(after.data['tls.crt']!, 'base64').toString()).to.equal(leaf);
      const key = Buffer.from(after.data['tls.key']!, 'base64').toString();
      expect(key).to.match(/^-----BEGIN PRIVATE KEY-----\n/);
      expect(new X509Certificate(leaf).checkPrivateKey(createPrivateKey(key))).to.equal(true);
      expect(after.data['ca.crt']).to.equal(undefined);
      expect(after.data[TlsSecretStore.PENDING_KEY]).to.equal(undefined);
      expect(after.metadata?.annotations?.['bmc.kubevirt.io/tls-source']).to.equal('redfish');
      expect((await request(t.redfishPort, '/redfish/v1/', { ca })).peer?.fingerprint256).to.equal(new X509Certificate(leaf).fingerprint256);
    });
  });
});
