import { ApiException, CoreV1Api } from '@kubernetes/client-node';
import { expect } from 'chai';
import type { ApiServerEmulator, KubeObject } from './index.js';
import { emulatorPerTest, rawRequest, vmSubresource } from './helpers.js';
import { nameFromFieldSelector, uncovered } from './rbac.js';

const NS = 'default';

function role(kind: 'Role' | 'ClusterRole', name: string, rules: unknown[], ns?: string): KubeObject {
  return { apiVersion: 'rbac.authorization.k8s.io/v1', kind, metadata: { name, ...(ns ? { namespace: ns } : {}) }, rules };
}

function binding(kind: 'RoleBinding' | 'ClusterRoleBinding', name: string, roleKind: string, roleName: string, subjects: unknown[], ns?: string): KubeObject {
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind,
    metadata: { name, ...(ns ? { namespace: ns } : {}) },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: roleKind, name: roleName },
    subjects,
  };
}

async function forbidden(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    expect((e as ApiException<string>).code, String(e)).to.equal(403);
    const s = JSON.parse((e as ApiException<string>).body) as { reason: string; message: string };
    expect(s.reason).to.equal('Forbidden');
    return s.message;
  }
  throw new Error('expected 403');
}

describe('apiserver emulator: RBAC for non-admin credentials', () => {
  let emu: ApiServerEmulator;
  emulatorPerTest({ vmiPhaseDelayMs: 5 }, (e) => {
    emu = e;
  });

  it('a service account gets exactly what its Role/ClusterRole bindings grant', async () => {
    const sa = emu.asServiceAccount(NS, 'agent');
    const core = sa.makeKubeConfig().makeApiClient(CoreV1Api);
    const msg = await forbidden(core.listNamespacedConfigMap({ namespace: NS }));
    expect(msg).to.equal('configmaps is forbidden: User "system:serviceaccount:default:agent" cannot list resource "configmaps" in API group "" in the namespace "default"');

    emu.create(role('Role', 'cm-reader', [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'watch'] }], NS));
    emu.create(binding('RoleBinding', 'cm-reader', 'Role', 'cm-reader', [{ kind: 'ServiceAccount', name: 'agent', namespace: NS }], NS));
    expect((await core.listNamespacedConfigMap({ namespace: NS })).items).to.deep.equal([]);
    const create = await forbidden(core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'x' } } }));
    expect(create).to.contain('cannot create resource "configmaps"');
    await forbidden(core.listNamespacedConfigMap({ namespace: 'kube-system' }));
    const cluster = await forbidden(core.listNamespace());
    expect(cluster).to.contain('at the cluster scope');

    // resourceNames narrow a rule to named objects
    emu.create({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'mine', namespace: NS } });
    emu.create({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'other', namespace: NS } });
    emu.create(role('Role', 'one-secret', [{ apiGroups: [''], resources: ['secrets'], resourceNames: ['mine'], verbs: ['get'] }], NS));
    emu.create(binding('RoleBinding', 'one-secret', 'Role', 'one-secret', [{ kind: 'ServiceAccount', name: 'agent', namespace: NS }], NS));
    expect((await core.readNamespacedSecret({ namespace: NS, name: 'mine' })).metadata?.name).to.equal('mine');
    expect(await forbidden(core.readNamespacedSecret({ namespace: NS, name: 'other' }))).to.match(/^secrets "other" is forbidden/);

    const mine = emu.audit.filter((a) => a.user === sa.user);
    expect(mine.map((a) => `${a.verb} ${a.resource} ${a.code}`)).to.include.members(['list configmaps 403', 'list configmaps 200', 'get secrets 200', 'get secrets 403']);
  });

  it('KubeVirt subresources need update on virtualmachines/start in subresources.kubevirt.io; groups bind too', async () => {
    emu.create({ apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachine', metadata: { name: 'vm', namespace: NS }, spec: { runStrategy: 'Halted', template: { spec: {} } } });
    const user = emu.asUser('jane', ['bmc-operators']);
    const kc = user.makeKubeConfig();
    const denied = await vmSubresource(kc, NS, 'vm', 'start');
    expect(denied.status).to.equal(403);
    expect((denied.body as { message: string }).message).to.equal(
      'virtualmachines.subresources.kubevirt.io "vm" is forbidden: User "jane" cannot update resource "virtualmachines/start" in API group "subresources.kubevirt.io" in the namespace "default"',
    );
    emu.create(role('ClusterRole', 'vm-power', [{ apiGroups: ['subresources.kubevirt.io'], resources: ['virtualmachines/start', 'virtualmachines/stop'], verbs: ['update'] }]));
    emu.create(binding('ClusterRoleBinding', 'vm-power', 'ClusterRole', 'vm-power', [{ kind: 'Group', name: 'bmc-operators', apiGroup: 'rbac.authorization.k8s.io' }]));
    expect((await vmSubresource(kc, NS, 'vm', 'start')).status).to.equal(202);
    expect((await vmSubresource(kc, NS, 'vm', 'restart')).status).to.equal(403);
    // discovery is open to every authenticated identity, the admin token skips RBAC
    expect((await rawRequest(kc, 'GET', '/apis')).status).to.equal(200);
    expect((await rawRequest(emu.makeKubeConfig(), 'GET', '/api/v1/namespaces')).status).to.equal(200);
  });

  it('prevents privilege escalation: binding or writing a role needs its permissions (or bind/escalate)', async () => {
    emu.create(role('ClusterRole', 'vm-admin', [{ apiGroups: ['kubevirt.io'], resources: ['virtualmachines'], verbs: ['get', 'delete'] }]));
    emu.create(role('Role', 'binder', [{ apiGroups: ['rbac.authorization.k8s.io'], resources: ['rolebindings', 'roles'], verbs: ['create'] }], NS));
    emu.create(binding('RoleBinding', 'binder', 'Role', 'binder', [{ kind: 'ServiceAccount', name: 'ctl', namespace: NS }], NS));
    const kc = emu.asServiceAccount(NS, 'ctl').makeKubeConfig();
    const rb = binding('RoleBinding', 'grant', 'ClusterRole', 'vm-admin', [{ kind: 'ServiceAccount', name: 'agent', namespace: NS }], NS);
    const denied = await rawRequest(kc, 'POST', `/apis/rbac.authorization.k8s.io/v1/namespaces/${NS}/rolebindings`, rb);
    expect(denied.status).to.equal(403);
    const msg = (denied.body as { message: string }).message;
    expect(msg).to.contain('rolebindings.rbac.authorization.k8s.io "grant" is forbidden: user "system:serviceaccount:default:ctl"');
    expect(msg).to.contain('is attempting to grant RBAC permissions not currently held');
    expect(msg).to.contain('{APIGroups:["kubevirt.io"], Resources:["virtualmachines"], Verbs:["get"]}');
    const roleDenied = await rawRequest(kc, 'POST', `/apis/rbac.authorization.k8s.io/v1/namespaces/${NS}/roles`, role('Role', 'sneaky', [{ apiGroups: [''], resources: ['secrets'], verbs: ['get'] }], NS));
    expect(roleDenied.status).to.equal(403);

    // holding the permissions is enough ...
    emu.create(role('Role', 'vm-admin-local', [{ apiGroups: ['kubevirt.io'], resources: ['virtualmachines'], verbs: ['get', 'delete'] }], NS));
    emu.create(binding('RoleBinding', 'ctl-vms', 'Role', 'vm-admin-local', [{ kind: 'ServiceAccount', name: 'ctl', namespace: NS }], NS));
    expect((await rawRequest(kc, 'POST', `/apis/rbac.authorization.k8s.io/v1/namespaces/${NS}/rolebindings`, rb)).status).to.equal(201);
    // ... and so is the bind verb on that role
    emu.create(role('ClusterRole', 'other', [{ apiGroups: ['cdi.kubevirt.io'], resources: ['datavolumes'], verbs: ['*'] }]));
    emu.create(role('Role', 'may-bind', [{ apiGroups: ['rbac.authorization.k8s.io'], resources: ['clusterroles'], verbs: ['bind'], resourceNames: ['other'] }], NS));
    emu.create(binding('RoleBinding', 'ctl-bind', 'Role', 'may-bind', [{ kind: 'ServiceAccount', name: 'ctl', namespace: NS }], NS));
    const rb2 = binding('RoleBinding', 'grant2', 'ClusterRole', 'other', [{ kind: 'ServiceAccount', name: 'agent', namespace: NS }], NS);
    expect((await rawRequest(kc, 'POST', `/apis/rbac.authorization.k8s.io/v1/namespaces/${NS}/rolebindings`, rb2)).status).to.equal(201);
  });

  it('resourceNames allow list/watch only with a metadata.name field selector for that name (requestinfo.go)', async () => {
    emu.create({ apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachine', metadata: { name: 'a', namespace: NS }, spec: { runStrategy: 'Halted', template: { spec: {} } } });
    emu.create({ apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachine', metadata: { name: 'b', namespace: NS }, spec: { runStrategy: 'Halted', template: { spec: {} } } });
    emu.create(role('Role', 'vm-a', [{ apiGroups: ['kubevirt.io'], resources: ['virtualmachines'], resourceNames: ['a'], verbs: ['get', 'list', 'watch'] }], NS));
    emu.create(binding('RoleBinding', 'vm-a', 'Role', 'vm-a', [{ kind: 'ServiceAccount', name: 'agent', namespace: NS }], NS));
    const kc = emu.asServiceAccount(NS, 'agent').makeKubeConfig();
    const base = `/apis/kubevirt.io/v1/namespaces/${NS}/virtualmachines`;
    const one = await rawRequest(kc, 'GET', `${base}?fieldSelector=${encodeURIComponent('metadata.name=a')}`);
    expect(one.status).to.equal(200);
    expect((one.body as { items: Array<{ metadata: { name: string } }> }).items.map((i) => i.metadata.name)).to.deep.equal(['a']);
    expect((await rawRequest(kc, 'GET', `${base}?fieldSelector=${encodeURIComponent('metadata.name==a,metadata.namespace=default')}`)).status).to.equal(200);
    // a list without the selector, for another name, or with != is a list of everything: denied
    expect((await rawRequest(kc, 'GET', base)).status).to.equal(403);
    const other = await rawRequest(kc, 'GET', `${base}?fieldSelector=${encodeURIComponent('metadata.name=b')}`);
    expect(other.status).to.equal(403);
    expect((other.body as { message: string }).message).to.equal(
      'virtualmachines.kubevirt.io "b" is forbidden: User "system:serviceaccount:default:agent" cannot list resource "virtualmachines" in API group "kubevirt.io" in the namespace "default"',
    );
    expect((await rawRequest(kc, 'GET', `${base}?fieldSelector=${encodeURIComponent('metadata.name!=b')}`)).status).to.equal(403);
    expect((await rawRequest(kc, 'GET', `${base}?labelSelector=x%3Dy`)).status).to.equal(403);
    expect((await rawRequest(kc, 'GET', `${base}/a`)).status).to.equal(200);
    expect((await rawRequest(kc, 'GET', `${base}/b`)).status).to.equal(403);
    // the audit log names the object of a single-object list, like kube-apiserver's objectRef
    const lists = emu.audit.filter((a) => a.user === 'system:serviceaccount:default:agent' && a.verb === 'list');
    expect(lists.map((a) => `${a.name ?? '-'} ${a.code}`)).to.deep.equal(['a 200', 'a 200', '- 403', 'b 403', '- 403', '- 403']);
  });

  it('reads the name from a field selector the way fields.ParseSelector + RequiresExactMatch do', () => {
    expect(nameFromFieldSelector('metadata.name=vm1')).to.equal('vm1');
    expect(nameFromFieldSelector('metadata.name==vm1')).to.equal('vm1');
    expect(nameFromFieldSelector('status.phase=Running,metadata.name=vm1')).to.equal('vm1');
    expect(nameFromFieldSelector('metadata.name!=vm1')).to.equal(undefined);
    expect(nameFromFieldSelector('metadata.namespace=default')).to.equal(undefined);
    expect(nameFromFieldSelector('metadata.name=a\\,b')).to.equal('a,b');
    expect(nameFromFieldSelector('metadata.name=..')).to.equal(undefined);
    expect(nameFromFieldSelector('metadata.name=a/b')).to.equal(undefined);
    expect(nameFromFieldSelector('garbage')).to.equal(undefined);
    expect(nameFromFieldSelector(null)).to.equal(undefined);
  });

  it('escalation: rules are compared by coverage (policy_comparator.go), names and subresource wildcards included', () => {
    const owner = [
      { apiGroups: ['kubevirt.io'], resources: ['virtualmachines'], verbs: ['get', 'patch'] },
      { apiGroups: ['subresources.kubevirt.io'], resources: ['*/start'], verbs: ['update'] },
      { apiGroups: ['cdi.kubevirt.io'], resources: ['datavolumes'], resourceNames: ['dv1'], verbs: ['delete'] },
    ];
    // an owner rule for all names covers the same rule for some names
    expect(uncovered(owner, [{ apiGroups: ['kubevirt.io'], resources: ['virtualmachines'], resourceNames: ['a', 'b'], verbs: ['get', 'patch'] }])).to.deep.equal([]);
    expect(uncovered(owner, [{ apiGroups: ['subresources.kubevirt.io'], resources: ['virtualmachines/start'], resourceNames: ['a'], verbs: ['update'] }])).to.deep.equal([]);
    expect(uncovered(owner, [{ apiGroups: ['subresources.kubevirt.io'], resources: ['virtualmachines/stop'], verbs: ['update'] }])).to.have.length(1);
    // a named owner rule covers only those names, never "all names"
    expect(uncovered(owner, [{ apiGroups: ['cdi.kubevirt.io'], resources: ['datavolumes'], resourceNames: ['dv1'], verbs: ['delete'] }])).to.deep.equal([]);
    expect(uncovered(owner, [{ apiGroups: ['cdi.kubevirt.io'], resources: ['datavolumes'], resourceNames: ['dv2'], verbs: ['delete'] }])).to.deep.equal([
      { apiGroups: ['cdi.kubevirt.io'], resources: ['datavolumes'], verbs: ['delete'], resourceNames: ['dv2'] },
    ]);
    expect(uncovered(owner, [{ apiGroups: ['cdi.kubevirt.io'], resources: ['datavolumes'], verbs: ['delete'] }])).to.have.length(1);
    // wildcards in the granted rule need wildcards in the author's
    expect(uncovered(owner, [{ apiGroups: ['kubevirt.io'], resources: ['virtualmachines'], verbs: ['*'] }])).to.have.length(1);
  });

  it('escalation: a Role with named rules can be created by a holder of the unnamed rules; escalate with resourceNames never authorizes a create', async () => {
    emu.create(role('ClusterRole', 'ctl', [
      { apiGroups: ['rbac.authorization.k8s.io'], resources: ['roles', 'rolebindings'], verbs: ['create', 'patch', 'update'] },
      { apiGroups: ['kubevirt.io'], resources: ['virtualmachines'], verbs: ['get'] },
    ]));
    emu.create(binding('ClusterRoleBinding', 'ctl', 'ClusterRole', 'ctl', [{ kind: 'ServiceAccount', name: 'ctl', namespace: NS }]));
    const kc = emu.asServiceAccount(NS, 'ctl').makeKubeConfig();
    const rolesPath = `/apis/rbac.authorization.k8s.io/v1/namespaces/${NS}/roles`;
    const named = role('Role', 'agent-a', [{ apiGroups: ['kubevirt.io'], resources: ['virtualmachines'], resourceNames: ['a'], verbs: ['get'] }], NS);
    expect((await rawRequest(kc, 'POST', rolesPath, named)).status).to.equal(201);
    // a binding to a Role that does not exist yet: NotFound (without `bind`)
    const early = await rawRequest(kc, 'POST', `/apis/rbac.authorization.k8s.io/v1/namespaces/${NS}/rolebindings`, binding('RoleBinding', 'early', 'Role', 'not-yet', [{ kind: 'ServiceAccount', name: 'agent-a', namespace: NS }], NS));
    expect(early.status).to.equal(404);
    expect((early.body as { message: string }).message).to.equal('roles.rbac.authorization.k8s.io "not-yet" not found');
    // its binding: the author holds every rule of the Role, so no `bind` is needed
    const rb = binding('RoleBinding', 'agent-a', 'Role', 'agent-a', [{ kind: 'ServiceAccount', name: 'agent-a', namespace: NS }], NS);
    expect((await rawRequest(kc, 'POST', `/apis/rbac.authorization.k8s.io/v1/namespaces/${NS}/rolebindings`, rb)).status).to.equal(201);
    // widening it by a patch is checked like a create
    const widen = await rawRequest(kc, 'PATCH', `${rolesPath}/agent-a`, { rules: [{ apiGroups: ['kubevirt.io'], resources: ['virtualmachines'], resourceNames: ['a'], verbs: ['get', 'delete'] }] }, 'application/merge-patch+json');
    expect(widen.status).to.equal(403);
    expect((widen.body as { message: string }).message).to.contain('{APIGroups:["kubevirt.io"], Resources:["virtualmachines"], ResourceNames:["a"], Verbs:["delete"]}');
    // ownerReferences-only changes pass (IsOnlyMutatingGCFields) even for a role the author could not write
    emu.create(role('Role', 'big', [{ apiGroups: [''], resources: ['secrets'], verbs: ['get'] }], NS));
    const gc = await rawRequest(kc, 'PATCH', `${rolesPath}/big`, { metadata: { ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'x', uid: 'u1' }] } }, 'application/merge-patch+json');
    expect(gc.status).to.equal(200);
    // `escalate` restricted by name is checked against the request's name: a POST has none
    emu.create(role('Role', 'esc', [{ apiGroups: ['rbac.authorization.k8s.io'], resources: ['roles'], resourceNames: ['sneaky'], verbs: ['escalate'] }], NS));
    emu.create(binding('RoleBinding', 'esc', 'Role', 'esc', [{ kind: 'ServiceAccount', name: 'ctl', namespace: NS }], NS));
    const sneaky = role('Role', 'sneaky', [{ apiGroups: [''], resources: ['secrets'], verbs: ['get'] }], NS);
    expect((await rawRequest(kc, 'POST', rolesPath, sneaky)).status).to.equal(403);
    emu.create(role('Role', 'sneaky', [], NS));
    expect((await rawRequest(kc, 'PATCH', `${rolesPath}/sneaky`, { rules: sneaky.rules }, 'application/merge-patch+json')).status).to.equal(200);
  });

  it('applyYaml loads manifests (create, then replace) for RBAC set-ups', async () => {
    const yaml = `apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: r, namespace: default}
rules: [{apiGroups: [""], resources: [configmaps], verbs: [list]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: r, namespace: default}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: r}
subjects: [{kind: ServiceAccount, name: sa, namespace: default}]
`;
    expect(emu.applyYaml(yaml).map((o) => `${o.kind}/${o.metadata.name}`)).to.deep.equal(['Role/r', 'RoleBinding/r']);
    const core = emu.asServiceAccount(NS, 'sa').makeKubeConfig().makeApiClient(CoreV1Api);
    expect((await core.listNamespacedConfigMap({ namespace: NS })).items).to.deep.equal([]);
    emu.applyYaml(yaml.replace('verbs: [list]', 'verbs: [get]'));
    await forbidden(core.listNamespacedConfigMap({ namespace: NS }));
    expect(() => emu.applyYaml('kind: Widget\nmetadata: {name: x}')).to.throw(/apiVersion, kind and metadata.name/);
  });
});
