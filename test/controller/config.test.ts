import { expect } from 'chai';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { renderCrdYaml, CRD_PATH } from '../../src/controller/api/render.js';
import type { AuditEntry } from '../emulator/index.js';
import { secretObj, startEnv, vmObj, vmbmcObj, waitReady, getVmbmc, getService, NS } from './fixtures.js';
import { requireClient } from '../helpers/clients.js';
import { desiredObjects } from '../../src/controller/reconcile.js';
import { desiredShardObjects, SHARD_IPMI_PORT_BASE, SHARD_IPMI_PORT_MAX } from '../../src/controller/shard.js';
import type { VirtualMachineBMC } from '../../src/controller/api/types.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const hasKubectl = spawnSync('kubectl', ['version', '--client'], { stdio: 'ignore' }).status === 0;

type Rule = { apiGroups?: string[]; resources?: string[]; verbs: string[]; resourceNames?: string[] };
type Obj = { kind: string; metadata: { name: string; namespace?: string }; rules?: Rule[]; spec?: unknown; [k: string]: unknown };

function render(dir: string, env: NodeJS.ProcessEnv = {}): Obj[] {
  const out = execFileSync('kubectl', ['kustomize', resolve(root, dir)], { encoding: 'utf8', env: { ...process.env, ...env } });
  return parseAllDocuments(out).map((d) => d.toJS() as Obj).filter(Boolean);
}

type PodSpec = { securityContext?: Record<string, unknown>; containers: Array<{ name: string; securityContext?: Record<string, unknown>; resources?: { requests?: Record<string, string>; limits?: Record<string, string> } }> };

/** Pod-security settings every Deployment we ship or generate must carry (restricted profile + resources). */
function checkPodSecurity(what: string, pod: PodSpec): void {
  const psc = pod.securityContext ?? {};
  expect(pod.containers.length, what).to.be.greaterThan(0);
  for (const c of pod.containers) {
    const sc = c.securityContext ?? {};
    const at = `${what} container ${c.name}`;
    expect(sc.runAsNonRoot ?? psc.runAsNonRoot, `${at} runAsNonRoot`).to.equal(true);
    expect(sc.readOnlyRootFilesystem, `${at} readOnlyRootFilesystem`).to.equal(true);
    expect(sc.allowPrivilegeEscalation, `${at} allowPrivilegeEscalation`).to.equal(false);
    expect((sc.capabilities as { drop?: string[] } | undefined)?.drop, `${at} capabilities.drop`).to.deep.equal(['ALL']);
    expect(((sc.seccompProfile ?? psc.seccompProfile) as { type?: string } | undefined)?.type, `${at} seccomp`).to.equal('RuntimeDefault');
    for (const k of ['cpu', 'memory']) {
      expect(c.resources?.requests?.[k], `${at} requests.${k}`).to.be.a('string');
      expect(c.resources?.limits?.[k], `${at} limits.${k}`).to.be.a('string');
    }
  }
}

function allows(rules: Rule[], e: { verb: string; group: string; resource: string; subresource?: string; name?: string }): boolean {
  const res = e.subresource ? `${e.resource}/${e.subresource}` : e.resource;
  return rules.some(
    (r) =>
      (r.apiGroups ?? []).some((g) => g === e.group || g === '*') &&
      (r.resources ?? []).some((x) => x === res || x === '*') &&
      r.verbs.some((v) => v === e.verb || v === '*') &&
      (!r.resourceNames || r.resourceNames.length === 0 || (e.name !== undefined && r.resourceNames.includes(e.name))),
  );
}

/** Drives the controller through everything it does, and returns the API calls it made. */
async function controllerWorkload(): Promise<AuditEntry[]> {
  const env = await startEnv({ leaderElect: true, leaderElectionNamespace: 'kubevirtbmc-system', leaseDurationMs: 600, renewDeadlineMs: 300, retryPeriodMs: 50 });
  const { emu } = env;
  try {
    emu.create(vmObj('vm'));
    emu.create(secretObj('creds'));
    emu.create(vmbmcObj('bmc', 'vm', 'creds'));
    await waitReady(emu, 'bmc');
    const b = getVmbmc(emu, 'bmc')!;
    emu.update({ ...b, spec: { ...(b.spec as object), service: { type: 'LoadBalancer' }, redfish: { tls: { secretRef: { name: 'tls' } } } } });
    await emu.waitFor(() => (getService(emu, 'bmc-virtbmc')?.spec as { type: string }).type === 'LoadBalancer');
    emu.update(secretObj('creds', 'rotated'));
    const rb = emu.get('rbac.authorization.k8s.io/v1', 'RoleBinding', NS, 'bmc-virtbmc')!;
    emu.update({ ...rb, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'edit' } });
    await emu.waitFor(() => (emu.get('rbac.authorization.k8s.io/v1', 'RoleBinding', NS, 'bmc-virtbmc')?.roleRef as { name: string } | undefined)?.name === 'bmc-virtbmc');
    const role = emu.get('rbac.authorization.k8s.io/v1', 'Role', NS, 'bmc-virtbmc')!;
    emu.update({ ...role, rules: [] });
    await emu.waitFor(() => ((emu.get('rbac.authorization.k8s.io/v1', 'Role', NS, 'bmc-virtbmc')?.rules as unknown[] | undefined) ?? []).length > 0);
    emu.create(vmObj('auto', { labels: { 'bmc.kubevirt.io/enabled': 'true' }, annotations: { 'bmc.kubevirt.io/auth-secret': 'creds', 'bmc.kubevirt.io/service-type': 'NodePort' } }));
    await waitReady(emu, 'auto');
    const vm = emu.get('kubevirt.io/v1', 'VirtualMachine', NS, 'auto')!;
    emu.update({ ...vm, metadata: { ...vm.metadata, annotations: { 'bmc.kubevirt.io/auth-secret': 'creds' } } });
    await emu.waitFor(() => (getVmbmc(emu, 'auto')?.spec as { service?: unknown }).service === undefined);
    emu.update({ ...vm, metadata: { ...vm.metadata, labels: {} } });
    await emu.waitFor(() => !getVmbmc(emu, 'auto'));
    emu.faults.failNext(1, 409, (r) => r.method === 'POST');
    emu.create(vmbmcObj('bmc2', 'vm', 'creds'));
    await waitReady(emu, 'bmc2');
    // Shared mode: shard objects, fleet ConfigMap, then back to PerVM (the shard's objects are deleted)
    const b2 = getVmbmc(emu, 'bmc2')!;
    emu.update({ ...b2, spec: { ...(b2.spec as object), mode: 'Shared' } });
    await emu.waitFor(() => (getVmbmc(emu, 'bmc2')?.status as { mode?: string } | undefined)?.mode === 'Shared' && emu.get('v1', 'ConfigMap', NS, `virtbmc-shard-0`) !== undefined || emu.get('v1', 'ConfigMap', NS, `virtbmc-shard-1`) !== undefined);
    await waitReady(emu, 'bmc2');
    const b3 = getVmbmc(emu, 'bmc2')!;
    emu.update({ ...b3, spec: { ...(b3.spec as object), mode: 'PerVM' } });
    await emu.waitFor(() => !emu.get('v1', 'ConfigMap', NS, 'virtbmc-shard-0') && !emu.get('v1', 'ConfigMap', NS, 'virtbmc-shard-1'));
  } finally {
    await env.close();
  }
  return emu.audit.filter((e) => !e.nonResourceURL);
}

describe('controller manifests', function () {
  this.timeout(20000);

  it('the committed CRD YAML is what hack/gen-crd.ts generates', () => {
    const committed = readFileSync(resolve(root, CRD_PATH), 'utf8');
    expect(committed, 'run `make manifests` and commit the result').to.equal(renderCrdYaml());
    const crd = parseAllDocuments(committed)[0]!.toJS() as { spec: { names: { shortNames: string[] }; versions: Array<{ name: string; subresources: unknown; additionalPrinterColumns: Array<{ name: string }>; schema: { openAPIV3Schema: { properties: { spec: { required: string[] } } } } }> } };
    const v = crd.spec.versions[0]!;
    expect(v.name).to.equal('v1beta1');
    expect(crd.spec.names.shortNames).to.deep.equal(['vmbmc', 'vmbmcs']);
    expect(v.subresources).to.deep.equal({ status: {} });
    expect(v.additionalPrinterColumns.map((c) => c.name)).to.deep.equal(['VM', 'SECRET', 'CLUSTER-IP', 'MODE', 'SHARD', 'ENDPOINT', 'READY', 'AGE']);
    expect(v.schema.openAPIV3Schema.properties.spec.required).to.deep.equal(['virtualMachineRef', 'authSecretRef']);
  });

  it('config/default renders offline with images and RBAC covering every controller API call (agent limits: rbac.test.ts)', async function () {
    requireClient(this, hasKubectl, 'kubectl (kustomize)');
    const objs = render('config/default');
    const kinds = new Set(objs.map((o) => o.kind));
    for (const k of ['Namespace', 'CustomResourceDefinition', 'ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding', 'Deployment']) {
      expect(kinds.has(k), k).to.equal(true);
    }
    const byKindName = (kind: string, name: string) => objs.find((o) => o.kind === kind && o.metadata.name === name);
    expect(objs.find((o) => o.kind === 'Namespace')?.metadata.name).to.equal('kubevirtbmc-system');
    const dep = byKindName('Deployment', 'kubevirtbmc-controller-manager') as { metadata: { namespace: string }; spec: { template: { spec: { serviceAccountName: string; containers: Array<{ image: string; args: string[]; env: Array<{ name: string; value?: string }> }> } } } } | undefined;
    expect(dep, 'controller Deployment').to.not.equal(undefined);
    expect(dep!.metadata.namespace).to.equal('kubevirtbmc-system');
    const c = dep!.spec.template.spec.containers[0]!;
    expect(c.image).to.equal('ghcr.io/kubevirtbmc/virtbmc-controller:latest');
    expect(c.args).to.include('--leader-elect');
    const envOf = (n: string) => c.env.find((e) => e.name === n)?.value;
    expect(envOf('VIRTBMC_AGENT_IMAGE')).to.be.a('string');

    const managerRole = byKindName('ClusterRole', 'kubevirtbmc-manager-role')!;
    const leaderRole = byKindName('Role', 'kubevirtbmc-leader-election-role')!;
    expect(managerRole).to.not.equal(undefined);
    expect(leaderRole).to.not.equal(undefined);
    expect(leaderRole.metadata.namespace).to.equal('kubevirtbmc-system');
    for (const r of [...managerRole.rules!, ...leaderRole.rules!]) {
      expect(r.verbs, 'no wildcards').to.not.include('*');
      expect(r.resources, 'no wildcards').to.not.include('*');
    }
    // the agent Roles are written by holding their rules (agent_grants_role.yaml), never by bind/escalate
    for (const resource of ['roles', 'clusterroles']) {
      for (const verb of ['bind', 'escalate']) expect(allows(managerRole.rules!, { verb, group: 'rbac.authorization.k8s.io', resource, name: 'cluster-admin' }), `${verb} ${resource}`).to.equal(false);
    }
    // the ServiceAccount is bound to both roles
    const crb = byKindName('ClusterRoleBinding', 'kubevirtbmc-manager-rolebinding') as unknown as { roleRef: { name: string }; subjects: Array<{ name: string; namespace: string }> };
    expect(crb.roleRef.name).to.equal('kubevirtbmc-manager-role');
    expect(crb.subjects[0]).to.include({ name: dep!.spec.template.spec.serviceAccountName, namespace: 'kubevirtbmc-system' });

    const audit = await controllerWorkload();
    expect(audit.length).to.be.greaterThan(20);
    const denied = audit.filter((e) => {
      const inLeaderNs = e.namespace === 'kubevirtbmc-system';
      return !(allows(managerRole.rules!, e) || (inLeaderNs && allows(leaderRole.rules!, e)));
    });
    expect(denied.map((e) => `${e.verb} ${e.group}/${e.resource}${e.subresource ? '/' + e.subresource : ''} ${e.namespace ?? ''}`)).to.deep.equal([]);
    // and the workload really exercised the interesting calls
    const did = new Set(audit.map((e) => `${e.verb} ${e.resource}${e.subresource ? '/' + e.subresource : ''}`));
    // owned objects are created by Server-Side Apply (audited as patch; the apiserver also requires
    // create for an apply that creates: the emulator checks it, rbac.test.ts runs with these roles)
    for (const k of ['watch virtualmachinebmcs', 'patch virtualmachinebmcs/status', 'patch deployments', 'patch roles', 'patch rolebindings', 'delete rolebindings', 'patch configmaps', 'create virtualmachinebmcs', 'delete virtualmachinebmcs', 'update leases', 'create events', 'delete configmaps', 'delete deployments', 'create secrets', 'get secrets', 'delete secrets']) {
      expect(did.has(k), k).to.equal(true);
    }
  });

  it('pod security: the rendered controller Deployment (kubectl kustomize config/default) and the generated agent Deployment run restricted with resources', function () {
    requireClient(this, hasKubectl, 'kubectl (kustomize)');
    const deps = render('config/default').filter((o) => o.kind === 'Deployment');
    expect(deps).to.have.length.greaterThan(0);
    for (const d of deps) checkPodSecurity(`Deployment ${d.metadata.name}`, (d.spec as { template: { spec: PodSpec } }).template.spec);
    const vmbmc = { apiVersion: 'bmc.kubevirt.io/v1beta1', kind: 'VirtualMachineBMC', metadata: { name: 'b', namespace: NS, uid: 'u1' }, spec: { virtualMachineRef: { name: 'vm' }, authSecretRef: { name: 'creds' } } } as unknown as VirtualMachineBMC;
    const secret = { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'creds', namespace: NS, uid: 's1' }, data: { username: Buffer.from('admin').toString('base64'), password: Buffer.from('pw').toString('base64') } };
    // TLS by default (minted Secret), a user's Secret, and opted out
    for (const v of [vmbmc, { ...vmbmc, spec: { ...vmbmc.spec, redfish: { tls: { secretRef: { name: 't' } } } } }, { ...vmbmc, spec: { ...vmbmc.spec, redfish: { tls: { mode: 'Disabled' } } } }] as VirtualMachineBMC[]) {
      const agent = desiredObjects(v, { apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachine', metadata: { name: 'vm', namespace: NS } }, secret, { image: 'virtbmc:test' });
      checkPodSecurity('agent Deployment', (agent.deployment.spec as { template: { spec: PodSpec } }).template.spec);
    }
    // the shard agents, plain and HTTPS (the certificate mount is read-only like the rest)
    const system = { id: `${NS}.vm`, namespace: NS, vm: 'vm', vmbmc: 'b', vmbmcUid: 'u1', secretName: 'creds', ipmiPort: 10001 };
    for (const tlsSecret of [undefined, 'virtbmc-shard-0-tls']) {
      const shard = desiredShardObjects(NS, 0, [system], [], { image: 'virtbmc:test', ...(tlsSecret ? { tlsSecret } : {}) });
      checkPodSecurity(`shard Deployment (${tlsSecret ? 'HTTPS' : 'HTTP'})`, (shard.deployment.spec as { template: { spec: PodSpec } }).template.spec);
    }
  });

  it('the NetworkPolicy sample selects every agent pod the controller makes and admits their IPMI and Redfish ports', () => {
    const policy = parseAllDocuments(readFileSync(resolve(root, 'config/samples/networkpolicy.yaml'), 'utf8'))[0]!.toJS() as {
      kind: string;
      spec: { podSelector: { matchLabels: Record<string, string> }; ingress: { ports: { protocol: string; port: number; endPort?: number }[] }[] };
    };
    expect(policy.kind).to.equal('NetworkPolicy');
    const admits = (protocol: string, port: number): boolean =>
      policy.spec.ingress.some((r) => r.ports.some((p) => p.protocol === protocol && port >= p.port && port <= (p.endPort ?? p.port)));
    const selects = (labels: Record<string, string>): boolean => Object.entries(policy.spec.podSelector.matchLabels).every(([k, v]) => labels[k] === v);
    const vmbmc = { apiVersion: 'bmc.kubevirt.io/v1beta1', kind: 'VirtualMachineBMC', metadata: { name: 'b', namespace: NS, uid: 'u1' }, spec: { virtualMachineRef: { name: 'vm' }, authSecretRef: { name: 'creds' } } } as unknown as VirtualMachineBMC;
    const secret = { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'creds', namespace: NS, uid: 's1' }, data: { username: Buffer.from('admin').toString('base64'), password: Buffer.from('pw').toString('base64') } };
    const vm = { apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachine', metadata: { name: 'vm', namespace: NS } };
    type Tmpl = { spec: { template: { metadata: { labels: Record<string, string> }; spec: { containers: { ports?: { name: string; containerPort: number; protocol: string }[] }[] } } } };
    const pods: { what: string; d: Tmpl }[] = [];
    for (const v of [vmbmc, { ...vmbmc, spec: { ...vmbmc.spec, redfish: { tls: { secretRef: { name: 't' } } } } }, { ...vmbmc, spec: { ...vmbmc.spec, redfish: { tls: { mode: 'Disabled' } } } }] as VirtualMachineBMC[]) {
      pods.push({ what: 'per-VM agent', d: desiredObjects(v, vm, secret, { image: 'virtbmc:test' }).deployment as unknown as Tmpl });
    }
    const system = { id: `${NS}.vm`, namespace: NS, vm: 'vm', vmbmc: 'b', vmbmcUid: 'u1', secretName: 'creds', ipmiPort: SHARD_IPMI_PORT_BASE };
    pods.push({ what: 'shard', d: desiredShardObjects(NS, 0, [system], [], { image: 'virtbmc:test' }).deployment as unknown as Tmpl });
    pods.push({ what: 'shard (HTTPS)', d: desiredShardObjects(NS, 0, [system], [], { image: 'virtbmc:test', tlsSecret: 'virtbmc-shard-0-tls' }).deployment as unknown as Tmpl });
    for (const { what, d } of pods) {
      expect(selects(d.spec.template.metadata.labels), `${what} pod labels`).to.equal(true);
      for (const c of d.spec.template.spec.containers) {
        for (const p of c.ports ?? []) if (p.name !== 'metrics') expect(admits(p.protocol, p.containerPort), `${what} ${p.name} ${p.containerPort}/${p.protocol}`).to.equal(true);
      }
    }
    // the shard pods' per-VM IPMI ports, whatever the allocation reaches
    expect(admits('UDP', SHARD_IPMI_PORT_BASE) && admits('UDP', SHARD_IPMI_PORT_MAX), 'every shard IPMI port').to.equal(true);
    expect(admits('TCP', 22), 'nothing else').to.equal(false);
  });

  it('hack/deploy.sh sets the controller and agent images', function () {
    requireClient(this, hasKubectl, 'kubectl (kustomize)');
    const out = execFileSync('bash', [resolve(root, 'hack/deploy.sh'), 'apply', 'reg.example/ctl:v9', 'reg.example/agent:v9'], {
      encoding: 'utf8',
      env: { ...process.env, PRINT_ONLY: '1' },
    });
    const dep = parseAllDocuments(out).map((d) => d.toJS() as Obj).find((o) => o?.kind === 'Deployment') as { spec: { template: { spec: { containers: Array<{ image: string; env: Array<{ name: string; value?: string }> }> } } } };
    const c = dep.spec.template.spec.containers[0]!;
    expect(c.image).to.equal('reg.example/ctl:v9');
    expect(c.env.find((e) => e.name === 'VIRTBMC_AGENT_IMAGE')?.value).to.equal('reg.example/agent:v9');
    expect(readFileSync(resolve(root, 'config/manager/kustomization.yaml'), 'utf8')).to.not.contain('reg.example');
  });

  it('samples render', function () {
    requireClient(this, hasKubectl, 'kubectl (kustomize)');
    expect(render('config/samples').map((o) => o.kind).sort()).to.deep.equal(['Secret', 'VirtualMachine', 'VirtualMachineBMC']);
  });
});
