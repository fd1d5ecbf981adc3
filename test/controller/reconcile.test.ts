import { createHash, createHmac } from 'node:crypto';
import { expect } from 'chai';
import type { VirtualMachineBMC } from '../../src/controller/api/types.js';
import { checkSecret, desiredObjects } from '../../src/controller/reconcile.js';
import { applyNeeded, FIELD_MANAGER, isSubset, recordOf, reduceManagedFields } from '../../src/controller/apply.js';
import { desiredStatus, statusPatch } from '../../src/controller/status.js';
import { agentObjectName } from '../../src/controller/names.js';
import type { KubeObject } from '../../src/kube/types.js';
import { dropManagedFields, reduceVm } from '../../src/controller/caches.js';
import { cdromDrives } from '../../src/controller/agent-rbac.js';

const b64 = (s: string) => Buffer.from(s).toString('base64');

function vmbmc(spec: Partial<VirtualMachineBMC['spec']> = {}, name = 'bmc1'): VirtualMachineBMC {
  return {
    apiVersion: 'bmc.kubevirt.io/v1beta1',
    kind: 'VirtualMachineBMC',
    metadata: { name, namespace: 'ns1', uid: 'uid-1', generation: 3 },
    spec: { virtualMachineRef: { name: 'vm1' }, authSecretRef: { name: 'creds' }, ...spec },
  };
}
const vm: KubeObject = { apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachine', metadata: { name: 'vm1', namespace: 'ns1' } };
const secret = (user = 'admin', pass = 'pw'): KubeObject => ({
  apiVersion: 'v1',
  kind: 'Secret',
  metadata: { name: 'creds', namespace: 'ns1' },
  data: { username: b64(user), password: b64(pass) },
});
const agent = { image: 'example.test/virtbmc:1' };

type Container = {
  args: string[];
  env: Array<{ name: string; value?: string; valueFrom?: { secretKeyRef: { name: string; key: string } } }>;
  image: string;
  ports: Array<{ containerPort: number; protocol: string }>;
  securityContext: Record<string, unknown>;
  readinessProbe: { httpGet: { path: string; scheme: string } };
};
function container(d: KubeObject): Container {
  return (d.spec as { template: { spec: { containers: Container[] } } }).template.spec.containers[0]!;
}
function depSpec(d: KubeObject) {
  return d.spec as { replicas: number; strategy: { type: string }; template: { metadata: { annotations?: Record<string, string> }; spec: { serviceAccountName: string; securityContext: Record<string, unknown> } } };
}
/** The Secrets an agent Role names (the auth Secret always; the minted certificate Secret when it is the controller's). */
function secretNames(role: KubeObject): string[] {
  return ((role.rules ?? []) as Array<{ resources: string[]; resourceNames?: string[] }>).filter((r) => r.resources.includes('secrets')).flatMap((r) => r.resourceNames ?? ['*']);
}
function svcSpec(d: KubeObject) {
  return d.spec as { type: string; ports: Array<{ name: string; port: number; targetPort: number; protocol: string }> };
}

describe('controller reconcile (pure)', () => {
  it('builds the agent Deployment from a VMBMC, VM and Secret', () => {
    const d = desiredObjects(vmbmc(), vm, secret(), agent);
    expect(d.name).to.equal('bmc1-virtbmc');
    const spec = depSpec(d.deployment);
    expect(spec.replicas).to.equal(1);
    expect(spec.strategy.type).to.equal('Recreate');
    expect(spec.template.spec.serviceAccountName).to.equal('bmc1-virtbmc');
    const c = container(d.deployment);
    expect(c.image).to.equal('example.test/virtbmc:1');
    // TLS by default (spec.redfish.tls unset = mode Auto): the minted Secret bmc1-virtbmc-tls, mounted
    expect(c.args).to.deep.equal([
      'ns1', 'vm1', '--address', '0.0.0.0', '--ipmi-port', '6230', '--redfish-port', '8443',
      '--tls-cert', '/etc/virtbmc/tls/tls.crt', '--tls-key', '/etc/virtbmc/tls/tls.key', '--https-redirect-port', '443',
      // the minted Secret: a Redfish ReplaceCertificate is written there (the agent Role may get/update it, by name)
      '--tls-secret', 'bmc1-virtbmc-tls',
    ]);
    // one Secret rule, by name: the auth Secret (accounts) and the minted certificate Secret
    expect((d.role.rules as Array<{ resources: string[] }>).filter((r) => r.resources.includes('secrets'))).to.deep.equal([
      { apiGroups: [''], resources: ['secrets'], resourceNames: ['creds', 'bmc1-virtbmc-tls'], verbs: ['get', 'update'] },
    ]);
    const podSpec = (d.deployment.spec as { template: { spec: { volumes: unknown[]; containers: Array<{ volumeMounts: unknown[] }> } } }).template.spec;
    expect(podSpec.volumes).to.deep.include({ name: 'redfish-tls', secret: { secretName: 'bmc1-virtbmc-tls' } });
    expect(podSpec.containers[0]!.volumeMounts).to.deep.include({ name: 'redfish-tls', mountPath: '/etc/virtbmc/tls', readOnly: true });
    expect(c.env.filter((e) => e.valueFrom?.secretKeyRef).map((e) => [e.name, e.valueFrom?.secretKeyRef.name, e.valueFrom?.secretKeyRef.key])).to.deep.equal([
      ['BMC_USERNAME', 'creds', 'username'],
      ['BMC_PASSWORD', 'creds', 'password'],
    ]);
    // The agent's network identity: its pod IP (downward API) and its Service's DNS name
    expect(c.env.filter((e) => !e.valueFrom?.secretKeyRef)).to.deep.equal([
      // where the agent keeps account changes (the auth Secret; its Role names it)
      { name: 'VIRTBMC_ACCOUNTS_SECRET', value: 'creds' },
      { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
      { name: 'VIRTBMC_FQDN', value: 'bmc1-virtbmc.ns1.svc.cluster.local' },
      // the owner of the agent's events ConfigMap (issue 12)
      { name: 'VIRTBMC_OWNER_NAME', value: 'bmc1' },
      { name: 'VIRTBMC_OWNER_UID', value: 'uid-1' },
      // V8 flags of a per-VM agent (docs/scale.md: the young generation capped)
      { name: 'NODE_OPTIONS', value: '--max-semi-space-size=2' },
    ]);
    expect(c.securityContext).to.deep.include({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, runAsNonRoot: true });
    expect(c.securityContext.capabilities).to.deep.equal({ drop: ['ALL'] });
    expect(spec.template.spec.securityContext).to.deep.equal({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
    expect(c.readinessProbe.httpGet).to.deep.include({ path: '/redfish/v1', scheme: 'HTTPS' });
    expect(spec.template.metadata.annotations?.['bmc.kubevirt.io/secret-hash']).to.match(/^[0-9a-f]{16}$/);
    // owned by the VMBMC as controller
    expect(d.deployment.metadata?.ownerReferences).to.deep.equal([
      { apiVersion: 'bmc.kubevirt.io/v1beta1', kind: 'VirtualMachineBMC', name: 'bmc1', uid: 'uid-1', controller: true, blockOwnerDeletion: true },
    ]);
    expect(d.roleBinding.roleRef).to.deep.equal({ apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'bmc1-virtbmc' });
    expect(d.role.metadata?.name).to.equal('bmc1-virtbmc');
    expect(d.role.metadata?.ownerReferences).to.deep.equal(d.deployment.metadata?.ownerReferences);
    expect(d.roleBinding.subjects).to.deep.equal([{ kind: 'ServiceAccount', name: 'bmc1-virtbmc', namespace: 'ns1' }]);
  });

  it('builds the Service: 623/UDP→6230, 80 and 443→8443 (TLS by default), type and user metadata from spec.service', () => {
    const d = desiredObjects(vmbmc({ service: { type: 'NodePort', labels: { team: 'a' }, annotations: { note: 'x' } } }), vm, secret(), agent);
    const s = svcSpec(d.service);
    expect(s.type).to.equal('NodePort');
    expect(s.ports).to.deep.equal([
      { name: 'ipmi', port: 623, targetPort: 6230, protocol: 'UDP' },
      // the one listener answers TLS on both; plain HTTP on 80 gets a 308 to https://<host>/ (443)
      { name: 'redfish', port: 80, targetPort: 8443, protocol: 'TCP' },
      { name: 'redfish-tls', port: 443, targetPort: 8443, protocol: 'TCP' },
    ]);
    // opted out: plain HTTP 80→8000, nothing mounted
    const plain = desiredObjects(vmbmc({ redfish: { tls: { mode: 'Disabled', secretRef: { name: 'ignored' } } } }), vm, secret(), agent);
    expect(svcSpec(plain.service).ports.map((p) => `${p.port}/${p.protocol}->${p.targetPort}`)).to.deep.equal(['623/UDP->6230', '80/TCP->8000']);
    expect(container(plain.deployment).args.join(' ')).to.not.contain('--tls');
    expect(secretNames(plain.role)).to.deep.equal(['creds']);
    expect(container(plain.deployment).readinessProbe.httpGet.scheme).to.equal('HTTP');
    expect(JSON.stringify(plain.deployment)).to.not.contain('redfish-tls');
    // the controller's choice (cert-manager's Secret) wins over the spec-only default
    const cm = desiredObjects(vmbmc(), vm, secret(), agent, 'bmc1-virtbmc-cm-tls');
    expect(JSON.stringify(cm.deployment)).to.contain('"secretName":"bmc1-virtbmc-cm-tls"');
    // cert-manager's Secret (or a user's) is not the agent's to write
    const notMinted = desiredObjects(vmbmc(), vm, secret(), agent, 'bmc1-virtbmc-cm-tls', false);
    expect(container(notMinted.deployment).args).to.not.include('--tls-secret');
    expect(secretNames(notMinted.role)).to.deep.equal(['creds']);
    const userSecret = desiredObjects(vmbmc({ redfish: { tls: { secretRef: { name: 'mine' } } } }), vm, secret(), agent);
    expect(container(userSecret.deployment).args).to.not.include('--tls-secret');
    expect(secretNames(userSecret.role)).to.deep.equal(['creds']);
    expect(d.service.metadata?.labels).to.include({ team: 'a', 'app.kubernetes.io/name': 'virtbmc' });
    expect(d.service.metadata?.annotations).to.include({ note: 'x' });
  });

  it('drops IPMI when disabled, adds storage flags, TLS port 443 and media TLS env', () => {
    const d = desiredObjects(
      vmbmc({
        ipmi: { enabled: false },
        redfish: {
          tls: { secretRef: { name: 'bmc-tls' } },
          virtualMedia: { storage: { storageClassName: 'fast', volumeMode: 'Block' }, tls: { insecureSkipVerify: true, caBundleConfigMapRef: { name: 'ca' } } },
        },
      }),
      vm,
      secret(),
      agent,
    );
    const c = container(d.deployment);
    expect(c.args).to.include('--no-ipmi');
    expect(c.args.join(' ')).to.contain('--storage-class fast --volume-mode Block');
    expect(c.args.join(' ')).to.contain('--redfish-port 8443');
    expect(c.args.join(' ')).to.contain('--tls-cert /etc/virtbmc/tls/tls.crt --tls-key /etc/virtbmc/tls/tls.key');
    expect(c.ports.map((p) => p.protocol)).to.deep.equal(['TCP']);
    expect(c.readinessProbe.httpGet.scheme).to.equal('HTTPS');
    expect(c.env.find((e) => e.name === 'VIRTBMC_MEDIA_INSECURE_SKIP_VERIFY')?.value).to.equal('true');
    expect(c.env.find((e) => e.name === 'VIRTBMC_MEDIA_CA_CONFIGMAP')?.value).to.equal('ca');
    expect(svcSpec(d.service).ports.map((p) => `${p.port}/${p.protocol}->${p.targetPort}`)).to.deep.equal(['80/TCP->8443', '443/TCP->8443']);
  });

  it('scales to 0 when the VM or the Secret is missing or invalid', () => {
    expect(desiredObjects(vmbmc(), undefined, secret(), agent).replicas).to.equal(0);
    expect(desiredObjects(vmbmc(), vm, undefined, agent).replicas).to.equal(0);
    expect(desiredObjects(vmbmc(), vm, secret('admin', ''), agent).replicas).to.equal(0);
    expect(checkSecret('creds', secret('', 'x'))).to.deep.include({ state: 'invalid' });
    expect(checkSecret('creds', undefined).state).to.equal('missing');
  });

  it('changes the pod template hash when the Secret data changes', () => {
    const a = checkSecret('creds', secret('admin', 'one')).hash;
    const b = checkSecret('creds', secret('admin', 'two')).hash;
    expect(a).to.be.a('string');
    expect(a).to.not.equal(b);
    expect(checkSecret('creds', secret('admin', 'one')).hash).to.equal(a);
  });

  it('keys the Secret hash with the Secret uid (no offline password guessing from the Deployment)', () => {
    const withUid = (uid: string): KubeObject => ({ ...secret('admin', 'one'), metadata: { name: 'creds', namespace: 'ns1', uid } });
    const plain = createHash('sha256').update(`password\0${b64('one')}\0username\0${b64('admin')}\0`).digest('hex').slice(0, 16);
    const a = checkSecret('creds', withUid('uid-a')).hash;
    expect(a).to.match(/^[0-9a-f]{16}$/);
    expect(a).to.not.equal(plain);
    expect(checkSecret('creds', withUid('uid-b')).hash).to.not.equal(a);
    expect(checkSecret('creds', withUid('uid-a')).hash).to.equal(a);
  });

  it('hashes only username and password: other keys of the Secret neither roll the agent nor change a two-key Secret\'s hash', () => {
    const base: KubeObject = { ...secret('admin', 'one'), metadata: { name: 'creds', namespace: 'ns1', uid: 'uid-a' } };
    const h = checkSecret('creds', base).hash;
    const extra = { ...base, data: { ...(base.data as object), 'tls.key': b64('PRIVATE') } };
    expect(checkSecret('creds', extra).hash).to.equal(h);
    // the same HMAC as before over all (sorted) keys, for a Secret with just these two: no roll on upgrade
    const before = createHmac('sha256', 'uid-a').update(`password\0${b64('one')}\0username\0${b64('admin')}\0`).digest('hex').slice(0, 16);
    expect(h).to.equal(before);
  });

  it('names objects after the VMBMC, within 63 characters and collision-free', () => {
    expect(agentObjectName('x')).to.equal('x-virtbmc');
    const long1 = agentObjectName('a'.repeat(80) + '1');
    const long2 = agentObjectName('a'.repeat(80) + '2');
    expect(long1.length).to.be.at.most(63);
    expect(long1).to.not.equal(long2);
    expect(long1).to.match(/^[a-z]([-a-z0-9]*[a-z0-9])?$/);
    const dotted = agentObjectName('my.bmc');
    expect(dotted).to.match(/^[a-z]([-a-z0-9]*[a-z0-9])?$/);
    expect(dotted).to.not.equal(agentObjectName('my-bmc'));
    expect(agentObjectName('1abc')).to.match(/^[a-z]/);
  });

  it('an apply is needed only for a new configuration, or when a write took or removed fields the controller owned', () => {
    const d = desiredObjects(vmbmc(), vm, secret(), agent).deployment;
    const entry = (fields: unknown) => ({ manager: FIELD_MANAGER, operation: 'Apply', apiVersion: 'apps/v1', fieldsType: 'FieldsV1', fieldsV1: fields });
    const applied = { ...d, metadata: { ...d.metadata, resourceVersion: '5', managedFields: [entry({ 'f:spec': { 'f:replicas': {} } })] } } as KubeObject;
    const rec = recordOf(d, applied);
    expect(applyNeeded(d, undefined, rec)).to.equal(true);
    expect(applyNeeded(d, applied, undefined)).to.equal(true);
    expect(applyNeeded(d, applied, rec)).to.equal(false);
    // another writer changed something that is not ours (status, a default): same entry, nothing to do
    const statusWrite = reduceManagedFields({ ...applied, metadata: { ...applied.metadata, resourceVersion: '6' }, status: { replicas: 1 } } as KubeObject);
    expect(statusWrite.metadata?.managedFields).to.equal(undefined);
    expect(applyNeeded(d, statusWrite, rec)).to.equal(false);
    // a write took a field: our entry shrank
    const taken = { ...applied, metadata: { ...applied.metadata, resourceVersion: '7', managedFields: [entry({})] } } as KubeObject;
    expect(applyNeeded(d, taken, rec)).to.equal(true);
    // the desired object changed
    const d2 = desiredObjects(vmbmc({ ipmi: { enabled: false } }), vm, secret(), agent).deployment;
    expect(applyNeeded(d2, applied, rec)).to.equal(true);
  });

  it('a Service carries exactly spec.service labels and annotations (no bookkeeping annotation: the apply drops what goes)', () => {
    const s = desiredObjects(vmbmc({ service: { type: 'NodePort', labels: { team: 'a' }, annotations: { lb: 'x' } } }), vm, secret(), agent).service;
    expect(s.metadata?.annotations).to.deep.equal({ lb: 'x' });
    expect(s.metadata?.labels).to.include({ team: 'a' });
    expect(desiredObjects(vmbmc(), vm, secret(), agent).service.metadata?.annotations).to.equal(undefined);
  });

  it('isSubset compares numbers with numeric strings and requires equal array lengths', () => {
    expect(isSubset({ a: 1 }, { a: 1, b: 2 })).to.equal(true);
    expect(isSubset([1, 2], [1])).to.equal(false);
    expect(isSubset({ a: {} }, {})).to.equal(true);
    expect(isSubset({ a: 'x' }, { a: 'y' })).to.equal(false);
  });

  it('reports conditions True and False with reasons, and keeps transition times', () => {
    const b = vmbmc();
    const t0 = '2026-01-01T00:00:00Z';
    const d0 = desiredObjects(b, undefined, undefined, agent);
    const s0 = desiredStatus(b, d0, {}, t0);
    const byType = (s: typeof s0) => Object.fromEntries((s.conditions ?? []).map((c) => [c.type, c]));
    expect(byType(s0).VirtualMachineAvailable).to.deep.include({ status: 'False', reason: 'VirtualMachineNotFound' });
    expect(byType(s0).SecretAvailable).to.deep.include({ status: 'False', reason: 'SecretNotFound' });
    expect(byType(s0).Ready).to.deep.include({ status: 'False', reason: 'VirtualMachineNotFound', observedGeneration: 3 });

    const d1 = desiredObjects(b, vm, secret(), agent);
    const dep = { ...d1.deployment, metadata: { ...d1.deployment.metadata, generation: 1 }, status: { observedGeneration: 1, availableReplicas: 1, conditions: [{ type: 'Available', status: 'True' }] } };
    const svc = { ...d1.service, spec: { ...(d1.service.spec as object), clusterIP: '10.96.0.10' } };
    const b1 = { ...b, status: s0 };
    const s1 = desiredStatus(b1, d1, { deployment: dep, service: svc }, '2026-01-01T00:01:00Z');
    expect(byType(s1).Ready).to.deep.include({ status: 'True', reason: 'AgentAvailable', lastTransitionTime: '2026-01-01T00:01:00Z' });
    expect(byType(s1).SecretAvailable).to.deep.include({ status: 'True', reason: 'SecretFound' });
    expect(s1.clusterIP).to.equal('10.96.0.10');
    // unchanged inputs → no status write; transition time kept
    const s2 = desiredStatus({ ...b, status: s1 }, d1, { deployment: dep, service: svc }, '2026-01-01T00:02:00Z');
    expect(byType(s2).Ready!.lastTransitionTime).to.equal('2026-01-01T00:01:00Z');
    expect(statusPatch(s1, s2)).to.equal(undefined);
    // the patch never names bootOverride, and clears loadBalancerIP with null
    const p = statusPatch({ ...s1, loadBalancerIP: '1.2.3.4', bootOverride: { mode: 'Oneshot' } }, s2);
    expect(p).to.deep.equal({ status: { loadBalancerIP: null } });

    const invalid = desiredStatus(b, desiredObjects(b, vm, secret('', ''), agent), {}, t0);
    expect(byType(invalid).SecretAvailable).to.deep.include({ status: 'False', reason: 'SecretInvalid' });
    const lb = desiredObjects(vmbmc({ service: { type: 'LoadBalancer' } }), vm, secret(), agent);
    const lbSvc = { ...lb.service, spec: { ...(lb.service.spec as object), clusterIP: '10.96.0.11' } };
    const pending = desiredStatus(b, lb, { deployment: dep, service: lbSvc }, t0);
    expect(byType(pending).Ready).to.deep.include({ status: 'False', reason: 'ServicePending' });
    const withIp = desiredStatus(b, lb, { deployment: dep, service: { ...lbSvc, status: { loadBalancer: { ingress: [{ ip: '192.0.2.5' }] } } } }, t0);
    expect(withIp.loadBalancerIP).to.equal('192.0.2.5');
    expect(byType(withIp).Ready!.status).to.equal('True');
  });

  it('the VM cache keeps what the controller reads (metadata without managedFields, CD-ROM drives) and drops the rest', () => {
    const vm: KubeObject = {
      apiVersion: 'kubevirt.io/v1',
      kind: 'VirtualMachine',
      metadata: {
        name: 'vm1',
        namespace: 'ns',
        uid: 'u-1',
        resourceVersion: '42',
        labels: { 'bmc.kubevirt.io/auto': 'true' },
        annotations: { 'bmc.kubevirt.io/auth-secret': 's1' },
        deletionTimestamp: '2026-12-06T00:00:00Z',
        managedFields: [{ manager: 'kubectl', operation: 'Apply', fieldsV1: { 'f:spec': {} } }],
      } as KubeObject['metadata'],
      spec: {
        runStrategy: 'Always',
        template: { spec: { domain: { devices: { disks: [{ name: 'root', disk: {} }, { name: 'cd2', cdrom: { bus: 'sata' } }, { name: 'cd1', cdrom: {} }] } }, volumes: [{ name: 'root' }] } },
      },
      status: { printableStatus: 'Running', conditions: [{ type: 'Ready', status: 'True' }] },
    };
    const kept = reduceVm(vm);
    const meta = { ...(vm.metadata as Record<string, unknown>) };
    delete meta.managedFields;
    expect(kept.metadata).to.deep.equal(meta);
    expect(kept.status).to.equal(undefined);
    expect(Object.keys(kept).sort()).to.deep.equal(['apiVersion', 'kind', 'metadata', 'spec']);
    expect(cdromDrives(kept)).to.deep.equal(cdromDrives(vm));
    expect(cdromDrives(kept)).to.deep.equal(['cd1', 'cd2']);
    expect(JSON.stringify(kept).length).to.be.lessThan(JSON.stringify(vm).length);
    // a VM without disks or metadata
    expect(cdromDrives(reduceVm({ metadata: { name: 'x' } }))).to.deep.equal([]);
  });

  it('the VirtualMachineBMC cache drops managedFields only (spec, status and the rest of metadata stay)', () => {
    const b = { apiVersion: 'bmc.kubevirt.io/v1beta1', kind: 'VirtualMachineBMC', metadata: { name: 'b', namespace: 'ns', resourceVersion: '7', finalizers: ['f'], managedFields: [{ manager: 'virtbmc-controller', operation: 'Update', subresource: 'status' }] }, spec: { virtualMachineRef: { name: 'vm1' } }, status: { ready: true } } as KubeObject;
    const kept = dropManagedFields(b);
    expect(kept).to.deep.equal({ ...b, metadata: { name: 'b', namespace: 'ns', resourceVersion: '7', finalizers: ['f'] } });
    expect(b.metadata?.managedFields).to.have.length(1); // the original is not changed
    const plain = { metadata: { name: 'c' } } as KubeObject;
    expect(dropManagedFields(plain)).to.equal(plain);
  });
});
