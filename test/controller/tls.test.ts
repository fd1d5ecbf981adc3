import { expect } from 'chai';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import sinon from 'sinon';
import { WorkQueue } from '../../src/controller/workqueue.js';
import {
  AnnotationRenewAt,
  MAX_RENEW_REQUEUE_MS,
  parseIssuerRef,
  renewalTime,
  serviceDnsNames,
} from '../../src/controller/tls.js';
import { defaultTlsSecretName, tlsMode } from '../../src/controller/tls-names.js';
import { mintSelfSigned } from '../../src/controller/tls-mint.js';
import type { VirtualMachineBMC } from '../../src/controller/api/types.js';
import type { KubeObject } from '../emulator/index.js';
import { condition, getDeployment, getService, getVmbmc, secretObj, startEnv, vmObj, vmbmcObj, waitReady, NS, type Env } from './fixtures.js';

const HOUR = 3600_000;
const unb64 = (s: string) => Buffer.from(s, 'base64').toString('utf8');

type Pod = { volumes: Array<{ name: string; secret?: { secretName: string } }>; containers: Array<{ args: string[]; readinessProbe: { httpGet: { scheme: string } } }> };
const pod = (dep: KubeObject | undefined) => (dep!.spec as { template: { spec: Pod } }).template.spec;
const ports = (svc: KubeObject | undefined) => ((svc!.spec as { ports: Array<{ port: number; protocol: string; targetPort: number }> }).ports ?? []).map((p) => `${p.port}/${p.protocol}->${p.targetPort}`);

/**
 * A reconcile run by the test beside the controller's own workers (which the queue keeps to one per
 * key, but not apart from this call): when a worker re-mints the same Secret at the same moment,
 * one of the two PUTs loses with 409 and the other's certificate stands; the assertions that follow
 * check the Secret, whoever wrote it. Any other error fails the test.
 */
async function reconcileBesideWorkers(env: Env, key: string): Promise<void> {
  try {
    await env.mgr.controller.reconcile(key);
  } catch (e) {
    if (!/: 409 /.test((e as Error).message)) throw e;
  }
}

function certOf(secret: KubeObject | undefined): X509Certificate {
  return new X509Certificate(unb64((secret!.data as Record<string, string>)['tls.crt']!));
}

const bmc = (spec: Partial<VirtualMachineBMC['spec']> = {}): VirtualMachineBMC =>
  ({ apiVersion: 'bmc.kubevirt.io/v1beta1', kind: 'VirtualMachineBMC', metadata: { name: 'b', namespace: 'ns' }, spec: { virtualMachineRef: { name: 'vm' }, authSecretRef: { name: 'c' }, ...spec } }) as VirtualMachineBMC;

describe('agent TLS: the pure parts', () => {
  it('mode: Auto by default, Secret when only secretRef is given (the API before tls.mode), explicit modes win', () => {
    expect(tlsMode(bmc())).to.equal('Auto');
    expect(tlsMode(bmc({ redfish: { tls: {} } }))).to.equal('Auto');
    expect(tlsMode(bmc({ redfish: { tls: { secretRef: { name: 's' } } } }))).to.equal('Secret');
    expect(tlsMode(bmc({ redfish: { tls: { mode: 'Disabled', secretRef: { name: 's' } } } }))).to.equal('Disabled');
    expect(defaultTlsSecretName(bmc(), 'b-virtbmc')).to.equal('b-virtbmc-tls');
    expect(defaultTlsSecretName(bmc({ redfish: { tls: { secretRef: { name: 's' } } } }), 'b-virtbmc')).to.equal('s');
    expect(defaultTlsSecretName(bmc({ redfish: { tls: { mode: 'Disabled' } } }), 'b-virtbmc')).to.equal(undefined);
  });

  it('SANs are the Service DNS names; renewal at 2/3 of the lifetime; --cert-manager-issuer parsing', () => {
    expect(serviceDnsNames('b-virtbmc', 'ns')).to.deep.equal(['b-virtbmc', 'b-virtbmc.ns', 'b-virtbmc.ns.svc', 'b-virtbmc.ns.svc.cluster.local']);
    expect(serviceDnsNames('b-virtbmc', 'ns', 'corp.local')[3]).to.equal('b-virtbmc.ns.svc.corp.local');
    expect(renewalTime(0, 90 * 24 * HOUR)).to.equal(60 * 24 * HOUR);
    expect(renewalTime(1000, 4000)).to.equal(3000);
    expect(parseIssuerRef('ClusterIssuer/corp-ca')).to.deep.equal({ kind: 'ClusterIssuer', name: 'corp-ca' });
    expect(parseIssuerRef('Issuer/x')).to.deep.equal({ kind: 'Issuer', name: 'x' });
    expect(parseIssuerRef('local')).to.deep.equal({ kind: 'Issuer', name: 'local' });
    expect(() => parseIssuerRef('Foo/x')).to.throw(/Issuer\/<name>/);
    expect(() => parseIssuerRef('ClusterIssuer/')).to.throw(/ClusterIssuer/);
  });

  it('a minted certificate: ECDSA P-256, self-signed, server auth, not a CA, exactly the given names and times', async () => {
    const notBefore = new Date('2030-01-01T00:00:00Z');
    const notAfter = new Date('2030-04-01T00:00:00Z');
    const m = await mintSelfSigned({ dnsNames: ['a', 'a.ns'], notBefore, notAfter });
    const x = new X509Certificate(m.certPem);
    expect(x.subjectAltName).to.equal('DNS:a, DNS:a.ns');
    expect(x.subject).to.equal('CN=a');
    expect(x.issuer).to.equal(x.subject);
    expect(x.verify(x.publicKey)).to.equal(true);
    expect(x.ca).to.equal(false);
    expect(x.keyUsage).to.deep.equal(['1.3.6.1.5.5.7.3.1']);
    expect(Date.parse(x.validFrom)).to.equal(notBefore.getTime());
    expect(Date.parse(x.validTo)).to.equal(notAfter.getTime());
    expect(x.publicKey.asymmetricKeyDetails).to.deep.include({ namedCurve: 'prime256v1' });
    expect(x.checkPrivateKey(createPrivateKey(m.keyPem))).to.equal(true);
    const again = await mintSelfSigned({ dnsNames: ['a'], notBefore, notAfter });
    expect(new X509Certificate(again.certPem).serialNumber).to.not.equal(x.serialNumber);
    await mintSelfSigned({ dnsNames: [], notBefore, notAfter }).then(
      () => expect.fail('no names accepted'),
      (e: Error) => expect(e.message).to.match(/DNS name/),
    );
  });
});

describe('agent TLS against the apiserver emulator', function () {
  this.timeout(20000);
  let env: Env | undefined;
  afterEach(async () => {
    sinon.restore();
    await env?.close();
    env = undefined;
  });

  it('no cert-manager: a default VMBMC gets a minted kubernetes.io/tls Secret it owns, mounted; renewed at 2/3 of its lifetime (fake clock), not before; no restart', async () => {
    let now = Date.parse('2031-05-01T12:00:00Z');
    const addAfter = sinon.spy(WorkQueue.prototype, 'addAfter');
    env = await startEnv({ tls: { now: () => now, validityMs: 3 * HOUR } });
    const { emu, mgr } = env;
    emu.create(vmObj('vm'));
    emu.create(secretObj('creds'));
    emu.create(vmbmcObj('bmc', 'vm', 'creds'));
    await waitReady(emu, 'bmc');
    const s1 = emu.get('v1', 'Secret', NS, 'bmc-virtbmc-tls')!;
    expect(s1.type).to.equal('kubernetes.io/tls');
    expect(Object.keys(s1.data as object).sort()).to.deep.equal(['ca.crt', 'tls.crt', 'tls.key']);
    expect(s1.metadata?.ownerReferences?.[0]).to.include({ kind: 'VirtualMachineBMC', name: 'bmc', controller: true, uid: getVmbmc(emu, 'bmc')!.metadata?.uid });
    const x1 = certOf(s1);
    expect(x1.subjectAltName).to.equal(`DNS:bmc-virtbmc, DNS:bmc-virtbmc.${NS}, DNS:bmc-virtbmc.${NS}.svc, DNS:bmc-virtbmc.${NS}.svc.cluster.local`);
    expect(Date.parse(x1.validFrom)).to.equal(now);
    expect(Date.parse(x1.validTo)).to.equal(now + 3 * HOUR);
    expect(x1.checkPrivateKey(createPrivateKey(unb64((s1.data as Record<string, string>)['tls.key']!)))).to.equal(true);
    const renewAt = now + 2 * HOUR;
    expect(s1.metadata?.annotations?.[AnnotationRenewAt]).to.equal(new Date(renewAt).toISOString());
    // the Deployment mounts it and serves HTTPS; the Service's 80 and 443 both reach that port
    const p = pod(getDeployment(emu, 'bmc-virtbmc'));
    expect(p.volumes).to.deep.include({ name: 'redfish-tls', secret: { secretName: 'bmc-virtbmc-tls' } });
    expect(p.containers[0]!.readinessProbe.httpGet.scheme).to.equal('HTTPS');
    expect(ports(getService(emu, 'bmc-virtbmc'))).to.deep.equal(['623/UDP->6230', '80/TCP->8443', '443/TCP->8443']);
    // the reconcile asked to come back at the renewal time
    expect(addAfter.calledWith(`${NS}/bmc`, renewAt - now), JSON.stringify(addAfter.args)).to.equal(true);

    const template = JSON.stringify(getDeployment(emu, 'bmc-virtbmc')!.spec);
    const rv1 = s1.metadata?.resourceVersion;
    // just before the due time: nothing changes
    now = renewAt - 1000;
    await mgr.controller.reconcile(`${NS}/bmc`);
    expect(emu.get('v1', 'Secret', NS, 'bmc-virtbmc-tls')!.metadata?.resourceVersion).to.equal(rv1);
    expect(addAfter.calledWith(`${NS}/bmc`, 1000)).to.equal(true);
    // at the due time (what the queued timer runs): a new certificate and key, same names
    now = renewAt;
    await reconcileBesideWorkers(env, `${NS}/bmc`);
    const s2 = emu.get('v1', 'Secret', NS, 'bmc-virtbmc-tls')!;
    expect(s2.metadata?.resourceVersion).to.not.equal(rv1);
    const x2 = certOf(s2);
    expect(x2.serialNumber).to.not.equal(x1.serialNumber);
    expect(x2.subjectAltName).to.equal(x1.subjectAltName);
    expect(Date.parse(x2.validFrom)).to.equal(renewAt);
    expect(unb64((s2.data as Record<string, string>)['tls.key']!)).to.not.equal(unb64((s1.data as Record<string, string>)['tls.key']!));
    expect(s2.metadata?.uid).to.equal(s1.metadata?.uid);
    expect(addAfter.calledWith(`${NS}/bmc`, 2 * HOUR)).to.equal(true);
    // the pod is not rolled: the agent re-reads the mounted files (--tls-reload-seconds)
    expect(JSON.stringify(getDeployment(emu, 'bmc-virtbmc')!.spec)).to.equal(template);
  });

  it('a long lifetime is re-checked at most every 12 h; a damaged or foreign Secret is replaced or reported', async () => {
    const now = Date.parse('2031-05-01T12:00:00Z');
    const addAfter = sinon.spy(WorkQueue.prototype, 'addAfter');
    env = await startEnv({ tls: { now: () => now } });
    const { emu } = env;
    emu.create(vmObj('vm'));
    emu.create(secretObj('creds'));
    emu.create(vmbmcObj('bmc', 'vm', 'creds'));
    await waitReady(emu, 'bmc');
    expect(addAfter.calledWith(`${NS}/bmc`, MAX_RENEW_REQUEUE_MS)).to.equal(true);
    expect(Date.parse(certOf(emu.get('v1', 'Secret', NS, 'bmc-virtbmc-tls')).validTo) - now).to.equal(90 * 24 * HOUR);
    // someone overwrites the key: the pair no longer matches, a new pair is minted
    const s = emu.get('v1', 'Secret', NS, 'bmc-virtbmc-tls')!;
    const other = await mintSelfSigned({ dnsNames: ['x'], notBefore: new Date(now), notAfter: new Date(now + HOUR) });
    emu.update({ ...s, data: { ...(s.data as object), 'tls.key': Buffer.from(other.keyPem).toString('base64') } });
    await reconcileBesideWorkers(env, `${NS}/bmc`);
    const fixed = emu.get('v1', 'Secret', NS, 'bmc-virtbmc-tls')!;
    const x = certOf(fixed);
    expect(x.checkPrivateKey(createPrivateKey(unb64((fixed.data as Record<string, string>)['tls.key']!)))).to.equal(true);
    // a Secret of that name that is not ours is never overwritten: the BMC reports the conflict
    emu.create(secretObj('creds2'));
    emu.create({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'other-virtbmc-tls', namespace: NS }, type: 'Opaque', data: { note: Buffer.from('mine').toString('base64') } });
    emu.create(vmbmcObj('other', 'vm', 'creds2'));
    const r = await waitReady(emu, 'other', 'False', 'NameConflict');
    expect(condition(r, 'Ready')?.message).to.contain('Secret other-virtbmc-tls');
    expect(emu.get('v1', 'Secret', NS, 'other-virtbmc-tls')!.data).to.deep.equal({ note: Buffer.from('mine').toString('base64') });
  });

  it('opt-out (mode Disabled): plain HTTP, the minted Secret goes; mode Secret uses the named Secret; Secret without secretRef is InvalidSpec', async () => {
    env = await startEnv();
    const { emu } = env;
    emu.create(vmObj('vm'));
    emu.create(secretObj('creds'));
    emu.create(vmbmcObj('bmc', 'vm', 'creds'));
    await waitReady(emu, 'bmc');
    expect(emu.get('v1', 'Secret', NS, 'bmc-virtbmc-tls')).to.not.equal(undefined);
    const b = getVmbmc(emu, 'bmc')!;
    emu.update({ ...b, spec: { ...(b.spec as object), redfish: { tls: { mode: 'Disabled' } } } });
    await emu.waitFor(() => !emu.get('v1', 'Secret', NS, 'bmc-virtbmc-tls'));
    await emu.waitFor(() => ports(getService(emu, 'bmc-virtbmc')).join() === '623/UDP->6230,80/TCP->8000');
    const p = pod(getDeployment(emu, 'bmc-virtbmc'));
    expect(p.containers[0]!.args.join(' ')).to.not.contain('--tls');
    expect(p.volumes.map((v) => v.name)).to.not.include('redfish-tls');
    expect(p.containers[0]!.readinessProbe.httpGet.scheme).to.equal('HTTP');
    // mode Secret: the user's certificate
    const b2 = getVmbmc(emu, 'bmc')!;
    emu.update({ ...b2, spec: { ...(b2.spec as object), redfish: { tls: { mode: 'Secret', secretRef: { name: 'my-cert' } } } } });
    await emu.waitFor(() => pod(getDeployment(emu, 'bmc-virtbmc')).volumes.some((v) => v.secret?.secretName === 'my-cert'));
    expect(emu.get('v1', 'Secret', NS, 'bmc-virtbmc-tls')).to.equal(undefined);
    // mode Secret without secretRef (a real apiserver refuses it by the CRD's CEL rule; the emulator does not evaluate CEL)
    const b3 = getVmbmc(emu, 'bmc')!;
    emu.update({ ...b3, spec: { ...(b3.spec as object), redfish: { tls: { mode: 'Secret' } } } });
    const bad = await waitReady(emu, 'bmc', 'False', 'InvalidSpec');
    expect(condition(bad, 'Ready')?.message).to.contain('secretRef');
    // the agent keeps what it had meanwhile
    expect(pod(getDeployment(emu, 'bmc-virtbmc')).volumes.some((v) => v.secret?.secretName === 'my-cert')).to.equal(true);
  });

  it('cert-manager installed: a Certificate per agent (selfSigned Issuer created in the namespace) whose Secret the Deployment mounts; nothing minted', async () => {
    env = await startEnv({}, { certManager: true });
    const { emu } = env;
    emu.create(vmObj('vm'));
    emu.create(secretObj('creds'));
    emu.create(vmbmcObj('bmc', 'vm', 'creds'));
    const cert = await emu.waitFor(() => emu.get('cert-manager.io/v1', 'Certificate', NS, 'bmc-virtbmc'));
    expect(cert.spec).to.deep.equal({
      secretName: 'bmc-virtbmc-cm-tls',
      commonName: 'bmc-virtbmc',
      dnsNames: serviceDnsNames('bmc-virtbmc', NS),
      duration: '2160h',
      renewBefore: '720h',
      usages: ['server auth', 'digital signature'],
      privateKey: { algorithm: 'ECDSA', size: 256, rotationPolicy: 'Always' },
      issuerRef: { group: 'cert-manager.io', kind: 'Issuer', name: 'virtbmc-selfsigned' },
    });
    expect(cert.metadata?.ownerReferences?.[0]).to.include({ kind: 'VirtualMachineBMC', name: 'bmc', controller: true });
    expect(emu.get('cert-manager.io/v1', 'Issuer', NS, 'virtbmc-selfsigned')?.spec).to.deep.equal({ selfSigned: {} });
    // a second BMC in the namespace uses the same Issuer: it is created once, not attempted per reconcile
    emu.create(vmbmcObj('bmc2', 'vm', 'creds'));
    await emu.waitFor(() => emu.get('cert-manager.io/v1', 'Certificate', NS, 'bmc2-virtbmc'));
    expect(emu.audit.filter((e) => e.resource === 'issuers' && e.verb === 'create')).to.have.length(1);
    await emu.waitFor(() => getDeployment(emu, 'bmc-virtbmc') && pod(getDeployment(emu, 'bmc-virtbmc')).volumes.some((v) => v.secret?.secretName === 'bmc-virtbmc-cm-tls'));
    expect(emu.get('v1', 'Secret', NS, 'bmc-virtbmc-tls')).to.equal(undefined);
    // the test plays cert-manager: it issues the Secret; the agent becomes ready (the emulator's kubelet does not wait for volumes)
    const m = await mintSelfSigned({ dnsNames: serviceDnsNames('bmc-virtbmc', NS), notBefore: new Date(), notAfter: new Date(Date.now() + 24 * HOUR) });
    emu.create({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'bmc-virtbmc-cm-tls', namespace: NS }, type: 'kubernetes.io/tls', data: { 'tls.crt': Buffer.from(m.certPem).toString('base64'), 'tls.key': Buffer.from(m.keyPem).toString('base64') } });
    await waitReady(emu, 'bmc');
    // drift in the Certificate is repaired; the controller never writes cert-manager's Secret
    const c = emu.get('cert-manager.io/v1', 'Certificate', NS, 'bmc-virtbmc')!;
    emu.update({ ...c, spec: { ...(c.spec as object), dnsNames: ['evil.example'] } });
    // Certificates are not watched: the repair comes with the BMC's next reconcile (any event of it
    // or its objects, or the periodic resync). The test makes that event itself; waiting for an
    // incidental one raced (CI saw none come after the edit once, under load).
    const b = getVmbmc(emu, 'bmc')!;
    emu.update({ ...b, metadata: { ...b.metadata, annotations: { ...(b.metadata?.annotations ?? {}), 'test/touch': '1' } } });
    await emu.waitFor(() => ((emu.get('cert-manager.io/v1', 'Certificate', NS, 'bmc-virtbmc')!.spec as { dnsNames: string[] }).dnsNames.length === 4));
    // (emu.create above is the test, not an API request: every audited request is the controller's)
    const writes = emu.audit.filter((e) => e.resource === 'secrets' && ['create', 'update', 'patch', 'delete'].includes(e.verb));
    expect(writes).to.deep.equal([]);
  });

  it('cert-manager with --cert-manager-issuer ClusterIssuer/corp-ca: the Certificate names it and no Issuer is created', async () => {
    env = await startEnv({ tls: { certManagerIssuer: { kind: 'ClusterIssuer', name: 'corp-ca' }, validityMs: 24 * HOUR } }, { certManager: true });
    const { emu } = env;
    emu.create(vmObj('vm'));
    emu.create(secretObj('creds'));
    emu.create(vmbmcObj('bmc', 'vm', 'creds'));
    const cert = await emu.waitFor(() => emu.get('cert-manager.io/v1', 'Certificate', NS, 'bmc-virtbmc'));
    expect((cert.spec as { issuerRef: unknown }).issuerRef).to.deep.equal({ group: 'cert-manager.io', kind: 'ClusterIssuer', name: 'corp-ca' });
    expect(cert.spec).to.deep.include({ duration: '24h', renewBefore: '8h' });
    expect(emu.list('cert-manager.io/v1', 'Issuer', NS)).to.deep.equal([]);
  });
});
