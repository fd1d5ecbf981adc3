/**
 * Least privilege (issue 10 point 6): the RBAC in config/ as kubectl kustomize renders it, the
 * controller running under exactly that RBAC against the emulator (which enforces RBAC and its
 * escalation check), the per-VirtualMachineBMC agent Role (names its VM, VMI and media
 * DataVolumes only, and by name its auth and minted certificate Secrets), its drift repair, and the
 * controller's Secret watches (one per namespace, each Secret reduced to a digest; by name only the
 * agent certificate it mints).
 */
import { expect } from 'chai';
import { execFileSync, spawnSync } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { agentRoleRules, cdromDrives, delegatedRules, type PolicyRule } from '../../src/controller/agent-rbac.js';
import { bmcVolumeDataVolumeNames, mediaDataVolumeName } from '../../src/kube/names.js';
import type { ApiServerEmulator, KubeObject } from '../emulator/index.js';
import { rawRequest } from '../emulator/helpers.js';
import { getDeployment, NS, secretObj, startEnv, vmbmcObj, vmObj, waitReady, type Env } from './fixtures.js';
import { requireClient } from '../helpers/clients.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const hasKubectl = spawnSync('kubectl', ['version', '--client'], { stdio: 'ignore' }).status === 0;
const RBAC = 'rbac.authorization.k8s.io/v1';
/** The Secrets agent `a-virtbmc` (VMBMC `a`, auth Secret `creds`, tls mode Auto, no cert-manager) may rewrite. */
const AGENT_SECRETS = { accountsSecret: 'creds', tlsSecret: 'a-virtbmc-tls' };

type Obj = KubeObject & { rules?: PolicyRule[]; roleRef?: { kind: string; name: string }; subjects?: Array<{ kind: string; name: string; namespace?: string }> };

function render(dir: string): Obj[] {
  const out = execFileSync('kubectl', ['kustomize', resolve(root, dir)], { encoding: 'utf8' });
  return parseAllDocuments(out).map((d) => d.toJS() as Obj).filter(Boolean);
}

/** A VM with CD-ROM drives `drives` (and one ordinary disk). */
function vmWithDrives(name: string, drives: string[]): KubeObject {
  const vm = vmObj(name);
  const disks = [{ name: 'root', disk: { bus: 'virtio' } }, ...drives.map((d) => ({ name: d, cdrom: { bus: 'sata' } }))];
  (vm.spec as { template: { spec: Record<string, unknown> } }).template.spec = {
    domain: { devices: { disks } },
    volumes: [{ name: 'root', containerDisk: { image: 'registry.example/os:1' } }],
  };
  return vm;
}

/** Every (group, resource, verb) a set of rules grants for all names (no resourceNames). */
function unnamedGrants(rules: PolicyRule[]): string[] {
  const out: string[] = [];
  for (const r of rules) if (!r.resourceNames?.length) for (const g of r.apiGroups) for (const res of r.resources) for (const v of r.verbs) out.push(`${v} ${g}/${res}`);
  return out.sort();
}

function dataVolume(name: string): KubeObject {
  return {
    apiVersion: 'cdi.kubevirt.io/v1beta1',
    kind: 'DataVolume',
    metadata: { name, namespace: NS },
    spec: { source: { blank: {} }, storage: { resources: { requests: { storage: '1Gi' } } } },
  };
}

describe('least privilege: RBAC in config/ and the per-VirtualMachineBMC agent Role', function () {
  // only stops a hung test (kubectl and agent starts: seconds each, more on a loaded core); nothing is timed
  this.timeout(60_000);

  describe('config/ as rendered by kubectl kustomize', () => {
    let objs: Obj[];
    before(function () {
      requireClient(this, hasKubectl, 'kubectl (kustomize)');
      objs = render('config/default');
    });
    const clusterRole = (name: string) => objs.find((o) => o.kind === 'ClusterRole' && o.metadata.name === name);

    it('the controller: Secrets read (list/watch/get) and written only for the agent certificates it mints, no writes on VMs, VMIs or DataVolumes of its own, no bind/escalate/impersonate', () => {
      const manager = clusterRole('kubevirtbmc-manager-role')!;
      expect(manager, 'manager ClusterRole').to.not.equal(undefined);
      const secretVerbs = manager.rules!.filter((r) => r.apiGroups.includes('') && r.resources.includes('secrets')).flatMap((r) => r.verbs);
      // create/update/delete: the minted agent certificates (tls mode Auto without cert-manager); no patch, no deletecollection
      expect(secretVerbs.sort()).to.deep.equal(['create', 'delete', 'get', 'list', 'update', 'watch']);
      for (const r of manager.rules!) {
        expect(r.verbs).to.not.include.members(['*', 'escalate', 'bind', 'impersonate']);
        expect(r.resources).to.not.include('*');
        if (r.apiGroups.includes('kubevirt.io') || r.apiGroups.includes('cdi.kubevirt.io') || r.apiGroups.includes('subresources.kubevirt.io')) {
          expect(r.verbs, JSON.stringify(r)).to.deep.equal(['list', 'watch']);
          expect(r.resources).to.deep.equal(['virtualmachines']);
        }
      }
      // what the controller writes cluster-wide (it manages VirtualMachineBMCs in every namespace):
      // the agent's Deployment, Service, ServiceAccount, Role and RoleBinding;
      // delete only for RoleBindings (an immutable roleRef that drifted is replaced); `update` only of
      // the VirtualMachineBMC finalizers that OwnerReferencesPermissionEnforcement asks for; Shared
      // mode adds the shards' fleet ConfigMaps and deletes (a BMC switched to Shared loses its own
      // agent, an empty shard all its objects)
      const writes = unnamedGrants(manager.rules!).filter((g) => /^(create|patch|update|delete|deletecollection) /.test(g));
      expect(writes).to.deep.equal(
        [
          'create /configmaps',
          'delete /configmaps',
          'create /secrets',
          'update /secrets',
          'delete /secrets',
          'create cert-manager.io/certificates',
          'patch cert-manager.io/certificates',
          'create cert-manager.io/issuers',
          'patch /configmaps',
          'delete /serviceaccounts',
          'delete /services',
          'delete apps/deployments',
          'delete rbac.authorization.k8s.io/roles',
          'create /events',
          'create /serviceaccounts',
          'create /services',
          'create apps/deployments',
          'create bmc.kubevirt.io/virtualmachinebmcs',
          'create rbac.authorization.k8s.io/rolebindings',
          'create rbac.authorization.k8s.io/roles',
          'delete bmc.kubevirt.io/virtualmachinebmcs',
          'delete rbac.authorization.k8s.io/rolebindings',
          'patch /serviceaccounts',
          'patch /services',
          'patch apps/deployments',
          'patch bmc.kubevirt.io/virtualmachinebmcs',
          'patch bmc.kubevirt.io/virtualmachinebmcs/status',
          'patch rbac.authorization.k8s.io/rolebindings',
          'patch rbac.authorization.k8s.io/roles',
          'update bmc.kubevirt.io/virtualmachinebmcs/finalizers',
        ].sort(),
      );
    });

    it('the controller holds exactly what it grants agents (agent_grants_role.yaml = the agent Role without names), and nothing grants agents cluster-wide', () => {
      const grants = clusterRole('kubevirtbmc-agent-grants')!;
      expect(grants, 'agent-grants ClusterRole').to.not.equal(undefined);
      expect(grants.rules).to.deep.equal(delegatedRules());
      const crb = objs.find((o) => o.kind === 'ClusterRoleBinding' && o.roleRef?.name === 'kubevirtbmc-agent-grants')!;
      expect(crb.subjects).to.deep.equal([{ kind: 'ServiceAccount', name: 'kubevirtbmc-controller-manager', namespace: 'kubevirtbmc-system' }]);
      // no shared agent ClusterRole any more
      expect(objs.filter((o) => o.kind === 'ClusterRole').map((o) => o.metadata.name).sort()).to.deep.equal(['kubevirtbmc-agent-grants', 'kubevirtbmc-manager-role']);
      const dep = objs.find((o) => o.kind === 'Deployment') as unknown as { spec: { template: { spec: { containers: Array<{ env: Array<{ name: string }> }> } } } };
      expect(dep.spec.template.spec.containers[0]!.env.map((e) => e.name)).to.not.include('VIRTBMC_AGENT_CLUSTER_ROLE');
    });
  });

  describe('the agent Role (pure)', () => {
    it('names the VM, the VMI and one media DataVolume per CD-ROM drive; only `create datavolumes` and the events grants are unnamed', () => {
      const vm = vmWithDrives('vm-a', ['cd1', 'cd0']);
      expect(cdromDrives(vm)).to.deep.equal(['cd0', 'cd1']);
      const rules = agentRoleRules('vm-a', cdromDrives(vm));
      // plus the agent's events: its subscriptions ConfigMap is created on first use, Kubernetes Events have generated names
      expect(unnamedGrants(rules)).to.deep.equal(['create /configmaps', 'create /events', 'patch /events', 'create cdi.kubevirt.io/datavolumes'].sort());
      const named = (res: string) => rules.filter((r) => r.resources.includes(res)).flatMap((r) => r.resourceNames ?? []);
      expect(named('virtualmachines')).to.deep.equal(['vm-a']);
      expect(named('virtualmachineinstances')).to.deep.equal(['vm-a']);
      expect(named('virtualmachines/start')).to.deep.equal(['vm-a']);
      expect(named('virtualmachineinstances/console')).to.deep.equal(['vm-a']);
      // no certificate Secret unless the controller minted one for it; then only that one, get/update
      expect(named('secrets')).to.deep.equal([]);
      const withTls = agentRoleRules('vm-a', cdromDrives(vm), { tlsSecret: 'a-virtbmc-tls' }).filter((r) => r.resources.includes('secrets'));
      expect(withTls).to.deep.equal([{ apiGroups: [''], resources: ['secrets'], resourceNames: ['a-virtbmc-tls'], verbs: ['get', 'update'] }]);
      // the media DataVolumes, then the fixed names of the volumes created over Redfish (get/delete only)
      expect(named('datavolumes')).to.deep.equal([mediaDataVolumeName('vm-a', 'cd0'), mediaDataVolumeName('vm-a', 'cd1'), ...bmcVolumeDataVolumeNames('vm-a')]);
      expect(rules.find((r) => r.resourceNames?.includes('vm-a-bmc-volume-1'))?.verbs).to.deep.equal(['get', 'delete']);
      // hot-plug subresources are gone (media are JSON patches of the VM template now)
      expect(rules.flatMap((r) => r.resources)).to.not.include.members(['virtualmachines/addvolume', 'virtualmachines/removevolume']);
      for (const r of rules) expect(r.verbs).to.not.include('*');
    });

    it('a VM without CD-ROM drives (or not found) gets no media DataVolume rule (an empty resourceNames would mean every name), only the volume names and create', () => {
      for (const rules of [agentRoleRules('vm-a', cdromDrives(vmWithDrives('vm-a', []))), agentRoleRules('vm-a', cdromDrives(undefined))]) {
        const cdi = rules.filter((r) => r.apiGroups.includes('cdi.kubevirt.io'));
        expect(cdi).to.deep.equal([
          { apiGroups: ['cdi.kubevirt.io'], resources: ['datavolumes'], resourceNames: bmcVolumeDataVolumeNames('vm-a'), verbs: ['get', 'delete'] },
          { apiGroups: ['cdi.kubevirt.io'], resources: ['datavolumes'], verbs: ['create'] },
        ]);
        expect(bmcVolumeDataVolumeNames('vm-a')).to.have.length(8);
        expect(unnamedGrants(rules)).to.deep.equal(['create /configmaps', 'create /events', 'patch /events', 'create cdi.kubevirt.io/datavolumes'].sort());
      }
    });

    it('the accounts Secret (the auth Secret) is reachable by name only, get and update, nothing else', () => {
      const secretRules = agentRoleRules('vm-a', [], { accountsSecret: 'creds' }).filter((r) => r.resources.includes('secrets'));
      expect(secretRules).to.deep.equal([{ apiGroups: [''], resources: ['secrets'], resourceNames: ['creds'], verbs: ['get', 'update'] }]);
      expect(agentRoleRules('vm-a', []).some((r) => r.resources.includes('secrets'))).to.equal(false);
    });

    it('auth and minted certificate Secret together: one rule naming both (no duplicate name), get and update only', () => {
      const both = agentRoleRules('vm-a', [], { accountsSecret: 'creds', tlsSecret: 'a-virtbmc-tls' }).filter((r) => r.resources.includes('secrets'));
      expect(both).to.deep.equal([{ apiGroups: [''], resources: ['secrets'], resourceNames: ['creds', 'a-virtbmc-tls'], verbs: ['get', 'update'] }]);
      const same = agentRoleRules('vm-a', [], { accountsSecret: 'x', tlsSecret: 'x' }).filter((r) => r.resources.includes('secrets'));
      expect(same).to.deep.equal([{ apiGroups: [''], resources: ['secrets'], resourceNames: ['x'], verbs: ['get', 'update'] }]);
    });
  });

  describe('against the emulator', () => {
    let env: Env;
    let emu: ApiServerEmulator;
    afterEach(async () => {
      await env?.close();
    });

    /** Loads the rendered RBAC into the emulator and runs the controller as its ServiceAccount. */
    async function startAsControllerSA(opts: { withoutAgentGrants?: boolean; certManager?: boolean } = {}): Promise<void> {
      const objs = render('config/default').filter((o) => ['ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding'].includes(o.kind ?? ''));
      const probe = await startEnv({}, { requireNamespaces: false, ...(opts.certManager ? { certManager: true } : {}) });
      // (the first env only provides the emulator; the manager on it runs as admin and is replaced)
      await probe.mgr.stop();
      emu = probe.emu;
      for (const o of objs) {
        if (opts.withoutAgentGrants && o.metadata.name?.startsWith('kubevirtbmc-agent-grants')) continue;
        emu.create(o);
      }
      const kc = emu.asServiceAccount('kubevirtbmc-system', 'kubevirtbmc-controller-manager').makeKubeConfig();
      const { startManager } = await import('../../src/controller/manager.js');
      const { nullLogger } = await import('../../src/common/logger.js');
      const mgr = await startManager({
        kc,
        logger: nullLogger(),
        agent: { image: 'registry.example/virtbmc:test' },
        metricsBindAddress: '0',
        healthProbeBindAddress: '0',
        queue: { baseDelayMs: 10, maxDelayMs: 200 },
        informerBackoffMs: { min: 20, max: 200 },
      });
      env = {
        emu,
        mgr,
        async close() {
          await mgr.stop();
          await emu.close();
        },
      };
    }

    it('the controller under the rendered RBAC creates each agent Role and binding: the escalation check passes because it holds agent-grants', async function () {
      requireClient(this, hasKubectl, 'kubectl (kustomize)');
      await startAsControllerSA();
      emu.create(vmWithDrives('vm-a', ['cd0']));
      emu.create(secretObj('creds'));
      emu.create(vmbmcObj('a', 'vm-a', 'creds'));
      await waitReady(emu, 'a');
      const role = emu.get(RBAC, 'Role', NS, 'a-virtbmc') as Obj;
      expect(role.rules).to.deep.equal(agentRoleRules('vm-a', ['cd0'], AGENT_SECRETS));
      expect((emu.get(RBAC, 'RoleBinding', NS, 'a-virtbmc') as Obj).roleRef).to.deep.include({ kind: 'Role', name: 'a-virtbmc' });
      const ctl = emu.audit.filter((e) => e.user === 'system:serviceaccount:kubevirtbmc-system:kubevirtbmc-controller-manager' && !e.nonResourceURL);
      expect(ctl.filter((e) => e.code === 403).map((e) => `${e.verb} ${e.resource}`)).to.deep.equal([]);
      // Secrets: listed and watched in the VirtualMachineBMCs' namespace only, never cluster-wide; the
      // only Secret read or written by name is the agent certificate the controller mints (tls mode
      // Auto, no cert-manager here)
      const secretCalls = ctl.filter((e) => e.resource === 'secrets');
      expect(secretCalls.length).to.be.greaterThan(0);
      const shown = (e: { verb: string; namespace?: string; name?: string }) => `${e.verb} ${e.namespace ?? '*'}/${e.name ?? (e.verb === 'create' ? '(create)' : '*')}`;
      expect([...new Set(secretCalls.map(shown))].sort()).to.deep.equal([
        'create default/(create)',
        'get default/a-virtbmc-tls',
        'list default/*',
        'watch default/*',
      ]);
      expect(emu.get('v1', 'Secret', NS, 'a-virtbmc-tls')?.type).to.equal('kubernetes.io/tls');
    });

    it('agent certificates under the rendered RBAC: minting, opting out (the minted Secret deleted) and, with cert-manager, Certificate and Issuer: never a 403', async function () {
      requireClient(this, hasKubectl, 'kubectl (kustomize)');
      const SA = 'system:serviceaccount:kubevirtbmc-system:kubevirtbmc-controller-manager';
      await startAsControllerSA();
      emu.create(vmWithDrives('vm-a', []));
      emu.create(secretObj('creds'));
      emu.create(vmbmcObj('a', 'vm-a', 'creds'));
      await waitReady(emu, 'a');
      expect(emu.get('v1', 'Secret', NS, 'a-virtbmc-tls')?.type).to.equal('kubernetes.io/tls');
      const a = emu.get('bmc.kubevirt.io/v1beta1', 'VirtualMachineBMC', NS, 'a')!;
      emu.update({ ...a, spec: { ...(a.spec as object), redfish: { tls: { mode: 'Disabled' } } } });
      await emu.waitFor(() => !emu.get('v1', 'Secret', NS, 'a-virtbmc-tls'));
      const denied = (u: string) => emu.audit.filter((e) => e.user === u && e.code === 403).map((e) => `${e.verb} ${e.group}/${e.resource}`);
      expect(denied(SA)).to.deep.equal([]);
      expect(emu.audit.some((e) => e.user === SA && e.verb === 'delete' && e.resource === 'secrets' && e.name === 'a-virtbmc-tls' && e.code === 200)).to.equal(true);
      await env.close();

      await startAsControllerSA({ certManager: true });
      emu.create(vmWithDrives('vm-b', []));
      emu.create(secretObj('creds'));
      emu.create(vmbmcObj('b', 'vm-b', 'creds'));
      await emu.waitFor(() => emu.get('cert-manager.io/v1', 'Certificate', NS, 'b-virtbmc'));
      expect(emu.get('cert-manager.io/v1', 'Issuer', NS, 'virtbmc-selfsigned')).to.not.equal(undefined);
      const c = emu.get('cert-manager.io/v1', 'Certificate', NS, 'b-virtbmc')!;
      emu.update({ ...c, spec: { ...(c.spec as object), dnsNames: ['drift.example'] } });
      await emu.waitFor(() => emu.audit.some((e) => e.user === SA && e.verb === 'patch' && e.resource === 'certificates' && e.code === 200));
      expect(denied(SA)).to.deep.equal([]);
    });

    it('without agent-grants the same controller is refused (403 on the apply that creates the Role): the emulator enforces the escalation check', async function () {
      requireClient(this, hasKubectl, 'kubectl (kustomize)');
      await startAsControllerSA({ withoutAgentGrants: true });
      emu.create(vmWithDrives('vm-a', ['cd0']));
      emu.create(secretObj('creds'));
      emu.create(vmbmcObj('a', 'vm-a', 'creds'));
      const denied = await emu.waitFor(() => emu.audit.find((e) => e.verb === 'patch' && e.resource === 'roles' && e.code === 403));
      expect(denied.user).to.equal('system:serviceaccount:kubevirtbmc-system:kubevirtbmc-controller-manager');
      expect(emu.get(RBAC, 'Role', NS, 'a-virtbmc')).to.equal(undefined);
      expect(emu.get(RBAC, 'RoleBinding', NS, 'a-virtbmc')).to.equal(undefined);
    });

    it('agent of VM A: its own VM/VMI/DataVolume yes; VM B, its subresources, another DataVolume, lists of all: 403', async () => {
      env = await startEnv();
      emu = env.emu;
      emu.create(vmWithDrives('vm-a', ['cd0']));
      emu.create(vmWithDrives('vm-b', ['cd0']));
      emu.create(secretObj('creds'));
      emu.create(vmbmcObj('a', 'vm-a', 'creds'));
      emu.create(vmbmcObj('b', 'vm-b', 'creds'));
      await waitReady(emu, 'a');
      await waitReady(emu, 'b');
      emu.create(dataVolume(mediaDataVolumeName('vm-a', 'cd0')));
      emu.create(dataVolume(mediaDataVolumeName('vm-b', 'cd0')));
      emu.create(dataVolume('someone-elses-disk'));
      const kc = emu.asServiceAccount(NS, 'a-virtbmc').makeKubeConfig();
      const vms = `/apis/kubevirt.io/v1/namespaces/${NS}/virtualmachines`;
      const vmis = `/apis/kubevirt.io/v1/namespaces/${NS}/virtualmachineinstances`;
      const sub = `/apis/subresources.kubevirt.io/v1/namespaces/${NS}`;
      const dvs = `/apis/cdi.kubevirt.io/v1beta1/namespaces/${NS}/datavolumes`;
      const fs = (n: string) => `?fieldSelector=${encodeURIComponent(`metadata.name=${n}`)}`;
      const mergePatch = 'application/merge-patch+json';
      const status = async (method: string, path: string, body?: unknown, ct?: string) => (await rawRequest(kc, method, path, body, ct)).status;

      // its own objects
      expect(await status('GET', `${vms}/vm-a`)).to.equal(200);
      expect(await status('GET', `${vms}${fs('vm-a')}`)).to.equal(200);
      expect(await status('PATCH', `${vms}/vm-a`, { metadata: { annotations: { x: 'y' } } }, mergePatch)).to.equal(200);
      expect(await status('GET', `${vmis}${fs('vm-a')}`)).to.equal(200);
      expect(await status('PUT', `${sub}/virtualmachines/vm-a/start`, {})).to.be.oneOf([200, 202]);
      expect(await status('GET', `${dvs}${fs(mediaDataVolumeName('vm-a', 'cd0'))}`)).to.equal(200);
      expect(await status('DELETE', `${dvs}/${mediaDataVolumeName('vm-a', 'cd0')}`)).to.be.oneOf([200, 202]);

      // VM B and everything else
      expect(await status('GET', `${vms}/vm-b`)).to.equal(403);
      expect(await status('PATCH', `${vms}/vm-b`, { metadata: { annotations: { x: 'y' } } }, mergePatch)).to.equal(403);
      expect(await status('GET', `${vms}${fs('vm-b')}`)).to.equal(403);
      expect(await status('GET', vms)).to.equal(403);
      expect(await status('GET', vmis)).to.equal(403);
      for (const s of ['start', 'stop', 'restart']) expect(await status('PUT', `${sub}/virtualmachines/vm-b/${s}`, {}), s).to.equal(403);
      for (const s of ['softreboot', 'pause', 'unpause']) expect(await status('PUT', `${sub}/virtualmachineinstances/vm-b/${s}`, {}), s).to.equal(403);
      expect(await status('PUT', `${sub}/virtualmachines/vm-a/addvolume`, { name: 'x' })).to.equal(403);
      expect(await status('DELETE', `${dvs}/${mediaDataVolumeName('vm-b', 'cd0')}`)).to.equal(403);
      expect(await status('DELETE', `${dvs}/someone-elses-disk`)).to.equal(403);
      expect(await status('GET', `${dvs}/someone-elses-disk`)).to.equal(403);
      expect(await status('GET', dvs)).to.equal(403);
      expect(await status('DELETE', vms)).to.equal(403);
      // its auth Secret (where it keeps the account list) by name, get/update only; no other Secret, no list
      emu.create(secretObj('someone-elses'));
      expect(await status('GET', `/api/v1/namespaces/${NS}/secrets/creds`)).to.equal(200);
      expect(await status('DELETE', `/api/v1/namespaces/${NS}/secrets/creds`)).to.equal(403);
      expect(await status('PATCH', `/api/v1/namespaces/${NS}/secrets/creds`, { data: {} }, mergePatch)).to.equal(403);
      expect(await status('GET', `/api/v1/namespaces/${NS}/secrets/someone-elses`)).to.equal(403);
      expect(await status('GET', `/api/v1/namespaces/${NS}/secrets`)).to.equal(403);
    });

    it('repairs a widened agent Role, and the Role follows a CD-ROM drive added to the VM', async () => {
      env = await startEnv();
      emu = env.emu;
      emu.create(vmWithDrives('vm-a', ['cd0']));
      emu.create(secretObj('creds'));
      emu.create(vmbmcObj('a', 'vm-a', 'creds'));
      await waitReady(emu, 'a');
      const rulesNow = () => (emu.get(RBAC, 'Role', NS, 'a-virtbmc') as Obj | undefined)?.rules;
      expect(rulesNow()).to.deep.equal(agentRoleRules('vm-a', ['cd0'], AGENT_SECRETS));

      // someone drops the resourceNames (the agent could then patch every VM): put back
      const role = emu.get(RBAC, 'Role', NS, 'a-virtbmc') as Obj;
      emu.update({ ...role, rules: role.rules!.map(({ resourceNames: _n, ...r }) => r) });
      await emu.waitFor(() => JSON.stringify(rulesNow()) === JSON.stringify(agentRoleRules('vm-a', ['cd0'], AGENT_SECRETS)));
      // a rule added on the side goes too
      const again = emu.get(RBAC, 'Role', NS, 'a-virtbmc') as Obj;
      emu.update({ ...again, rules: [...again.rules!, { apiGroups: [''], resources: ['secrets'], verbs: ['get'] }] });
      await emu.waitFor(() => rulesNow()?.length === agentRoleRules('vm-a', ['cd0'], AGENT_SECRETS).length);
      // deleted: re-created
      emu.delete(RBAC, 'Role', NS, 'a-virtbmc');
      await emu.waitFor(() => rulesNow() !== undefined);

      // a second CD-ROM drive: its DataVolume is named in the Role
      const vm = emu.get('kubevirt.io/v1', 'VirtualMachine', NS, 'vm-a')!;
      const next = vmWithDrives('vm-a', ['cd0', 'cd1']);
      emu.update({ ...vm, spec: next.spec });
      await emu.waitFor(() => JSON.stringify(rulesNow()) === JSON.stringify(agentRoleRules('vm-a', ['cd0', 'cd1'], AGENT_SECRETS)));
      const dvRule = rulesNow()!.find((r) => r.resources.includes('datavolumes') && r.resourceNames);
      expect(dvRule!.resourceNames).to.deep.equal([mediaDataVolumeName('vm-a', 'cd0'), mediaDataVolumeName('vm-a', 'cd1')]);
      // the drive removed again: the name goes; other VM edits do not touch the Role
      const rvBefore = (emu.get(RBAC, 'Role', NS, 'a-virtbmc') as Obj).metadata.resourceVersion;
      const vm2 = emu.get('kubevirt.io/v1', 'VirtualMachine', NS, 'vm-a')!;
      emu.update({ ...vm2, metadata: { ...vm2.metadata, labels: { touched: 'yes' } } });
      emu.update({ ...emu.get('kubevirt.io/v1', 'VirtualMachine', NS, 'vm-a')!, spec: vmWithDrives('vm-a', ['cd1']).spec });
      await emu.waitFor(() => JSON.stringify(rulesNow()) === JSON.stringify(agentRoleRules('vm-a', ['cd1'], AGENT_SECRETS)));
      expect((emu.get(RBAC, 'Role', NS, 'a-virtbmc') as Obj).metadata.resourceVersion).to.not.equal(rvBefore);
    });

    it('a foreign Role with the agent\'s name is never bound: NameConflict, and an existing binding of ours is removed', async () => {
      env = await startEnv();
      emu = env.emu;
      emu.create(vmWithDrives('vm-a', []));
      emu.create(secretObj('creds'));
      emu.create(vmbmcObj('a', 'vm-a', 'creds'));
      await waitReady(emu, 'a');
      expect(emu.get(RBAC, 'RoleBinding', NS, 'a-virtbmc')).to.not.equal(undefined);
      // someone replaces the agent Role by one of their own with wide rules
      emu.delete(RBAC, 'Role', NS, 'a-virtbmc');
      emu.create({ apiVersion: RBAC, kind: 'Role', metadata: { name: 'a-virtbmc', namespace: NS }, rules: [{ apiGroups: ['kubevirt.io'], resources: ['virtualmachines'], verbs: ['patch'] }] });
      await waitReady(emu, 'a', 'False', 'NameConflict');
      await emu.waitFor(() => !emu.get(RBAC, 'RoleBinding', NS, 'a-virtbmc'));
      expect((emu.get(RBAC, 'Role', NS, 'a-virtbmc') as Obj).rules).to.have.length(1); // theirs, untouched
    });

    it('an agent RoleBinding still pointing at the old shared ClusterRole is replaced by one to its own Role', async () => {
      env = await startEnv();
      emu = env.emu;
      emu.create(vmWithDrives('vm-a', []));
      emu.create(secretObj('creds'));
      emu.create(vmbmcObj('a', 'vm-a', 'creds'));
      await waitReady(emu, 'a');
      const rb = emu.get(RBAC, 'RoleBinding', NS, 'a-virtbmc')!;
      emu.update({ ...rb, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'virtbmc' } });
      await emu.waitFor(() => (emu.get(RBAC, 'RoleBinding', NS, 'a-virtbmc') as Obj | undefined)?.roleRef?.kind === 'Role');
    });
  });

  describe("the controller's Secret watches", () => {
    let env: Env;
    afterEach(async () => {
      await env?.close();
    });

    it('a namespace whose first Secret list fails is waited for, not reported missing; VirtualMachineBMCs of one namespace share one watch', async () => {
      env = await startEnv();
      const { emu, mgr } = env;
      emu.create(secretObj('shared'));
      emu.create(vmObj('vm1'));
      emu.create(vmObj('vm2'));
      // the Secret's list fails twice (the informer retries with backoff): meanwhile no reconcile may
      // take the Secret for missing (that would scale the agent to 0 and report SecretNotFound)
      emu.faults.failNext(2, 500, (r) => r.path.endsWith('/secrets') && !r.url.includes('watch=true'));
      emu.create(vmbmcObj('b1', 'vm1', 'shared'));
      emu.create(vmbmcObj('b2', 'vm2', 'shared'));
      await waitReady(emu, 'b1');
      await waitReady(emu, 'b2');
      expect(mgr.controller.secrets.watched()).to.deep.equal([NS]);
      const lists = emu.audit.filter((e) => e.resource === 'secrets' && e.verb === 'list');
      expect(lists.map((e) => e.code)).to.include.members([500, 200]);
      const events = emu.list('v1', 'Event', NS).filter((e) => ['b1', 'b2'].includes((e.involvedObject as { name: string }).name));
      expect(events.map((e) => e.reason)).to.not.include('SecretNotFound');
    });

    it('watches the Secrets of the namespaces VirtualMachineBMCs name them in, keeps no data of any, and stops when the last reference goes', async () => {
      env = await startEnv();
      const { emu, mgr } = env;
      const ctl = mgr.controller;
      const b64 = (v: string) => Buffer.from(v).toString('base64');
      // kubectl apply leaves the whole Secret, data included, in an annotation: that must go too
      const applied = JSON.stringify({ data: { 'ca.key': b64('PRIVATE') } });
      const creds = secretObj('creds', 'the-password');
      emu.create({
        ...creds,
        metadata: { ...creds.metadata, annotations: { 'kubectl.kubernetes.io/last-applied-configuration': applied } },
        data: { ...(creds.data as object), 'ca.key': b64('PRIVATE') },
      });
      emu.create(secretObj('unrelated', 'other-password'));
      emu.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'elsewhere' } });
      emu.create({ ...secretObj('far', 'far-password'), metadata: { name: 'far', namespace: 'elsewhere' } });
      emu.create(vmObj('vm1'));
      emu.create(vmbmcObj('bmc1', 'vm1', 'creds'));
      const ready = await waitReady(emu, 'bmc1');
      expect(ready).to.not.equal(undefined);
      expect(ctl.secrets.watched()).to.deep.equal([NS]);
      const cached = ctl.secrets.get(NS, 'creds')!;
      expect(cached.data).to.equal(undefined);
      expect(cached.metadata?.annotations).to.equal(undefined);
      for (const secretText of [b64('PRIVATE'), b64('the-password'), b64('admin'), 'the-password']) expect(JSON.stringify(cached)).to.not.contain(secretText);
      // the namespace's other Secrets are there, reduced the same way (no data)
      expect(JSON.stringify(ctl.secrets.get(NS, 'unrelated'))).to.not.contain(b64('other-password'));
      // ... the agent certificate the controller minted too: its private key is not kept
      await emu.waitFor(() => ctl.secrets.get(NS, 'bmc1-virtbmc-tls') !== undefined);
      expect(ctl.secrets.get(NS, 'bmc1-virtbmc-tls')!.data).to.equal(undefined);
      const mintedKey = (emu.get('v1', 'Secret', NS, 'bmc1-virtbmc-tls')!.data as Record<string, string>)['tls.key']!;
      expect(JSON.stringify(ctl.secrets.get(NS, 'bmc1-virtbmc-tls'))).to.not.contain(mintedKey.slice(0, 40));
      // a namespace without VirtualMachineBMCs is never listed or watched
      expect(ctl.secrets.get('elsewhere', 'far')).to.equal(undefined);
      // every Secret request of the controller is a list/watch of this namespace, or is about the
      // agent certificate it mints (bmc1-virtbmc-tls: read by name, created once)
      const secretCalls = emu.audit.filter((e) => e.resource === 'secrets');
      expect(secretCalls.length).to.be.greaterThan(0);
      const own = (e: { verb: string; name?: string }) => (e.verb === 'get' && e.name === 'bmc1-virtbmc-tls') || (e.verb === 'create' && e.name === undefined);
      const listWatch = (e: { verb: string; name?: string }) => (e.verb === 'list' || e.verb === 'watch') && e.name === undefined;
      expect(secretCalls.every((e) => e.namespace === NS && (listWatch(e) || own(e))), JSON.stringify(secretCalls)).to.equal(true);
      expect(secretCalls.filter((e) => e.verb === 'create')).to.have.length(1);

      // a change of another key does not roll the agent; a password change does
      const hash = () => (getDeployment(emu, 'bmc1-virtbmc')?.spec as { template: { metadata: { annotations?: Record<string, string> } } }).template.metadata.annotations?.['bmc.kubevirt.io/secret-hash'];
      const h0 = hash();
      expect(h0).to.match(/^[0-9a-f]{16}$/);
      const cur = emu.get('v1', 'Secret', NS, 'creds')!;
      emu.update({ ...cur, data: { ...(cur.data as object), 'ca.key': b64('ROTATED') } });
      await emu.waitFor(() => ctl.secrets.get(NS, 'creds')?.metadata?.resourceVersion === emu.get('v1', 'Secret', NS, 'creds')!.metadata.resourceVersion);
      expect(hash()).to.equal(h0);
      emu.update({ ...emu.get('v1', 'Secret', NS, 'creds')!, data: { ...(emu.get('v1', 'Secret', NS, 'creds')!.data as object), password: b64('new') } });
      await emu.waitFor(() => hash() !== h0);

      // the reference moves to a Secret created later: the namespace's watch brings it
      const b = emu.get('bmc.kubevirt.io/v1beta1', 'VirtualMachineBMC', NS, 'bmc1')!;
      emu.update({ ...b, spec: { ...(b.spec as object), authSecretRef: { name: 'later' } } });
      await waitReady(emu, 'bmc1', 'False', 'SecretNotFound');
      emu.create(secretObj('later'));
      await waitReady(emu, 'bmc1');

      emu.delete('bmc.kubevirt.io/v1beta1', 'VirtualMachineBMC', NS, 'bmc1');
      await emu.waitFor(() => ctl.secrets.watched().length === 0);
    });
  });
});
