import { expect } from 'chai';
import {
  AGENT_IMAGE,
  NS,
  condition,
  getDeployment,
  getService,
  getVmbmc,
  replicas,
  secretObj,
  startEnv,
  vmObj,
  vmbmcObj,
  waitReady,
  type Env,
} from './fixtures.js';
import type { KubeObject } from '../emulator/index.js';
import { rawRequest } from '../emulator/helpers.js';

type Tmpl = { metadata: { annotations?: Record<string, string> }; spec: { containers: Array<{ image: string; args: string[] }> } };
const template = (d: KubeObject | undefined) => (d?.spec as { template: Tmpl }).template;
const svcSpec = (s: KubeObject | undefined) => s?.spec as { type: string; clusterIP?: string; ports: Array<{ port: number; protocol: string; targetPort: number }> };

describe('virtbmc-controller against the apiserver emulator', function () {
  this.timeout(15000);
  let env: Env;
  beforeEach(async () => {
    env = await startEnv();
  });
  afterEach(async () => {
    await env.close();
  });

  it('creates the agent objects, reports Ready with the cluster IP, follows spec updates and is garbage-collected', async () => {
    const { emu } = env;
    emu.create(vmObj('vm1'));
    emu.create(secretObj('creds'));
    emu.create(vmbmcObj('bmc1', 'vm1', 'creds'));
    const ready = await waitReady(emu, 'bmc1');
    const sa = emu.get('v1', 'ServiceAccount', NS, 'bmc1-virtbmc');
    const rb = emu.get('rbac.authorization.k8s.io/v1', 'RoleBinding', NS, 'bmc1-virtbmc');
    const dep = getDeployment(emu, 'bmc1-virtbmc');
    const svc = getService(emu, 'bmc1-virtbmc');
    expect(sa, 'ServiceAccount').to.not.equal(undefined);
    const role = emu.get('rbac.authorization.k8s.io/v1', 'Role', NS, 'bmc1-virtbmc');
    expect(rb?.roleRef).to.deep.equal({ apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'bmc1-virtbmc' });
    expect((role?.rules as Array<{ resourceNames?: string[] }>)[0]?.resourceNames).to.deep.equal(['vm1']);
    expect(replicas(dep)).to.equal(1);
    expect(template(dep).spec.containers[0]!.image).to.equal(AGENT_IMAGE);
    expect(template(dep).spec.containers[0]!.args.slice(0, 2)).to.deep.equal([NS, 'vm1']);
    expect(svcSpec(svc).type).to.equal('ClusterIP');
    // TLS by default: 80 (redirected to https) and 443 reach the agent's HTTPS port
    expect(svcSpec(svc).ports.map((p) => `${p.port}/${p.protocol}`)).to.deep.equal(['623/UDP', '80/TCP', '443/TCP']);
    expect((ready.status as { clusterIP: string }).clusterIP).to.equal(svcSpec(svc).clusterIP).and.to.be.a('string');
    expect(condition(ready, 'VirtualMachineAvailable')?.status).to.equal('True');
    expect(condition(ready, 'SecretAvailable')?.status).to.equal('True');
    for (const o of [sa, role, rb, dep, svc]) expect(o?.metadata.ownerReferences?.[0]).to.include({ kind: 'VirtualMachineBMC', name: 'bmc1', controller: true });
    // kubectl describe shows what happened
    const events = await emu.waitFor(() => {
      const evs = emu.list('v1', 'Event', NS).filter((e) => (e.involvedObject as { name: string }).name === 'bmc1');
      return evs.some((e) => e.reason === 'Ready') ? evs : undefined;
    });
    expect(events.filter((e) => e.reason === 'Created').map((e) => e.message)).to.include.members(['Created Deployment bmc1-virtbmc', 'Created Service bmc1-virtbmc']);
    expect(events.find((e) => e.reason === 'Ready')).to.include({ type: 'Normal' });

    // update: IPMI off, storage class → Service loses 623, Deployment args change
    const cur = getVmbmc(emu, 'bmc1')!;
    emu.update({ ...cur, spec: { ...(cur.spec as object), ipmi: { enabled: false }, redfish: { virtualMedia: { storage: { storageClassName: 'fast' } } } } });
    await emu.waitFor(() => svcSpec(getService(emu, 'bmc1-virtbmc')).ports.length === 2);
    expect(svcSpec(getService(emu, 'bmc1-virtbmc')).ports.map((p) => `${p.port}/${p.protocol}`)).to.deep.equal(['80/TCP', '443/TCP']);
    await emu.waitFor(() => template(getDeployment(emu, 'bmc1-virtbmc')).spec.containers[0]!.args.includes('--no-ipmi'));
    expect(template(getDeployment(emu, 'bmc1-virtbmc')).spec.containers[0]!.args.join(' ')).to.contain('--storage-class fast');

    // delete: owned objects go (ownerReference garbage collection)
    emu.delete('bmc.kubevirt.io/v1beta1', 'VirtualMachineBMC', NS, 'bmc1');
    await emu.waitFor(() => !getDeployment(emu, 'bmc1-virtbmc') && !getService(emu, 'bmc1-virtbmc') && !emu.get('v1', 'Secret', NS, 'bmc1-virtbmc-tls'));
    expect(emu.get('v1', 'ServiceAccount', NS, 'bmc1-virtbmc')).to.equal(undefined);
  });

  it('VM missing: conditions False and agent at 0 replicas; VM created: True and 1 replica', async () => {
    const { emu } = env;
    emu.create(secretObj('creds'));
    emu.create(vmbmcObj('bmc2', 'vm2', 'creds'));
    const notReady = await waitReady(emu, 'bmc2', 'False', 'VirtualMachineNotFound');
    expect(condition(notReady, 'VirtualMachineAvailable')).to.include({ status: 'False', reason: 'VirtualMachineNotFound' });
    expect(replicas(getDeployment(emu, 'bmc2-virtbmc'))).to.equal(0);
    emu.create(vmObj('vm2'));
    const ok = await waitReady(emu, 'bmc2');
    expect(condition(ok, 'VirtualMachineAvailable')).to.include({ status: 'True', reason: 'VirtualMachineFound' });
    expect(replicas(getDeployment(emu, 'bmc2-virtbmc'))).to.equal(1);
    // and back: VM deleted → scaled down again
    emu.delete('kubevirt.io/v1', 'VirtualMachine', NS, 'vm2');
    await waitReady(emu, 'bmc2', 'False', 'VirtualMachineNotFound');
    await emu.waitFor(() => replicas(getDeployment(emu, 'bmc2-virtbmc')) === 0);
  });

  it('Secret missing/invalid → SecretAvailable False; rotation changes the pod template hash', async () => {
    const { emu } = env;
    emu.create(vmObj('vm3'));
    emu.create(vmbmcObj('bmc3', 'vm3', 'creds3'));
    const missing = await waitReady(emu, 'bmc3', 'False', 'SecretNotFound');
    expect(condition(missing, 'SecretAvailable')).to.include({ status: 'False', reason: 'SecretNotFound' });
    emu.create({ ...secretObj('creds3'), data: { username: Buffer.from('admin').toString('base64') } });
    const invalid = await waitReady(emu, 'bmc3', 'False', 'SecretInvalid');
    expect(condition(invalid, 'SecretAvailable')?.message).to.contain('password');
    emu.update(secretObj('creds3', 'first'));
    await waitReady(emu, 'bmc3');
    const h1 = template(getDeployment(emu, 'bmc3-virtbmc')).metadata.annotations?.['bmc.kubevirt.io/secret-hash'];
    expect(h1).to.be.a('string');
    emu.update(secretObj('creds3', 'second'));
    const h2 = await emu.waitFor(() => {
      const h = template(getDeployment(emu, 'bmc3-virtbmc')).metadata.annotations?.['bmc.kubevirt.io/secret-hash'];
      return h !== h1 ? h : undefined;
    });
    expect(h2).to.match(/^[0-9a-f]{16}$/);
  });

  it('Service type change: ClusterIP → LoadBalancer (loadBalancerIP reported) → NodePort', async () => {
    const { emu } = env;
    emu.create(vmObj('vm4'));
    emu.create(secretObj('creds'));
    emu.create(vmbmcObj('bmc4', 'vm4', 'creds', { service: { type: 'ClusterIP', labels: { team: 'x' } } }));
    await waitReady(emu, 'bmc4');
    expect(getService(emu, 'bmc4-virtbmc')?.metadata.labels?.team).to.equal('x');
    const cur = getVmbmc(emu, 'bmc4')!;
    emu.update({ ...cur, spec: { ...(cur.spec as object), service: { type: 'LoadBalancer', annotations: { lb: 'yes' } } } });
    const lb = await emu.waitFor(() => {
      const o = getVmbmc(emu, 'bmc4');
      return (o?.status as { loadBalancerIP?: string } | undefined)?.loadBalancerIP ? o : undefined;
    });
    expect(condition(lb, 'Ready')?.status).to.equal('True');
    const svc = getService(emu, 'bmc4-virtbmc');
    expect(svcSpec(svc).type).to.equal('LoadBalancer');
    expect(svc?.metadata.annotations?.lb).to.equal('yes');
    expect(svc?.metadata.labels?.team, 'label dropped from spec.service is removed').to.equal(undefined);
    const cur2 = getVmbmc(emu, 'bmc4')!;
    emu.update({ ...cur2, spec: { ...(cur2.spec as object), service: { type: 'NodePort' } } });
    await emu.waitFor(() => svcSpec(getService(emu, 'bmc4-virtbmc')).type === 'NodePort');
    await emu.waitFor(() => (getVmbmc(emu, 'bmc4')?.status as { loadBalancerIP?: string }).loadBalancerIP === undefined);
  });

  it('two VirtualMachineBMCs for one VM get separate objects', async () => {
    const { emu } = env;
    emu.create(vmObj('shared'));
    emu.create(secretObj('creds'));
    emu.create(vmbmcObj('a', 'shared', 'creds'));
    emu.create(vmbmcObj('b', 'shared', 'creds', { service: { type: 'NodePort' } }));
    await waitReady(emu, 'a');
    await waitReady(emu, 'b');
    expect(svcSpec(getService(emu, 'a-virtbmc')).type).to.equal('ClusterIP');
    expect(svcSpec(getService(emu, 'b-virtbmc')).type).to.equal('NodePort');
    expect(getService(emu, 'a-virtbmc')?.metadata.ownerReferences?.[0]?.name).to.equal('a');
    expect(getService(emu, 'b-virtbmc')?.metadata.ownerReferences?.[0]?.name).to.equal('b');
    const ipA = (getVmbmc(emu, 'a')?.status as { clusterIP: string }).clusterIP;
    const ipB = (getVmbmc(emu, 'b')?.status as { clusterIP: string }).clusterIP;
    expect(ipA).to.not.equal(ipB);
  });

  it('repairs drift (edited Deployment, deleted Service) without touching status.bootOverride', async () => {
    const { emu } = env;
    emu.create(vmObj('vm5'));
    emu.create(secretObj('creds'));
    emu.create(vmbmcObj('bmc5', 'vm5', 'creds'));
    await waitReady(emu, 'bmc5');
    // the agent writes its bookkeeping into status.bootOverride
    const b = getVmbmc(emu, 'bmc5')!;
    emu.update({ ...b, status: { ...(b.status as object), bootOverride: { mode: 'Oneshot', vmiUID: 'u1' } } });
    const dep = getDeployment(emu, 'bmc5-virtbmc')!;
    const t = template(dep);
    emu.update({ ...dep, spec: { ...(dep.spec as object), replicas: 3, template: { ...t, spec: { ...t.spec, containers: [{ ...t.spec.containers[0]!, image: 'evil:1' }] } } } });
    await emu.waitFor(() => {
      const d = getDeployment(emu, 'bmc5-virtbmc');
      return replicas(d) === 1 && template(d).spec.containers[0]!.image === AGENT_IMAGE;
    });
    emu.delete('v1', 'Service', NS, 'bmc5-virtbmc');
    await emu.waitFor(() => getService(emu, 'bmc5-virtbmc'));
    await waitReady(emu, 'bmc5');
    // status write after the Service came back (new cluster IP) kept the agent's field
    const after = await emu.waitFor(() => {
      const o = getVmbmc(emu, 'bmc5');
      return (o?.status as { clusterIP?: string }).clusterIP === svcSpec(getService(emu, 'bmc5-virtbmc')).clusterIP ? o : undefined;
    });
    expect((after.status as { bootOverride?: unknown }).bootOverride).to.deep.equal({ mode: 'Oneshot', vmiUID: 'u1' });
  });

  it('Server-Side Apply: a selector key someone adds is taken back exactly, their own label stays, nodePorts stay, and a reconcile with nothing to do writes nothing', async () => {
    const { emu, mgr } = env;
    emu.create(vmObj('vm9'));
    emu.create(secretObj('creds'));
    emu.create(vmbmcObj('bmc9', 'vm9', 'creds', { service: { type: 'NodePort' } }));
    await waitReady(emu, 'bmc9');
    const before = getService(emu, 'bmc9-virtbmc')!;
    const selector = (before.spec as { selector: Record<string, string> }).selector;
    const nodePorts = (before.spec as { ports: Array<{ nodePort?: number }> }).ports.map((p) => p.nodePort);
    expect(nodePorts.every((n) => typeof n === 'number')).to.equal(true);
    const kc = emu.makeKubeConfig();
    // someone else (kubectl edit) adds a selector key and a label: a merge patch of their own
    const edit = await rawRequest(kc, 'PATCH', `/api/v1/namespaces/${NS}/services/bmc9-virtbmc?fieldManager=kubectl-edit`, {
      metadata: { labels: { 'their-label': 'x' } },
      spec: { selector: { ...selector, stray: 'key' } },
    }, 'application/merge-patch+json');
    expect(edit.status).to.equal(200);
    const repaired = await emu.waitFor(() => {
      const s = getService(emu, 'bmc9-virtbmc');
      return s && !('stray' in (s.spec as { selector: object }).selector) ? s : undefined;
    });
    // the selector is exactly ours again (atomic: ServiceSpec.selector +mapType=atomic), the label that is theirs stays
    expect((repaired.spec as { selector: unknown }).selector).to.deep.equal(selector);
    expect(repaired.metadata.labels?.['their-label']).to.equal('x');
    expect((repaired.spec as { ports: Array<{ nodePort?: number }> }).ports.map((p) => p.nodePort)).to.deep.equal(nodePorts);
    const managers = (repaired.metadata.managedFields as Array<{ manager: string; operation: string }>).map((m) => `${m.manager}/${m.operation}`);
    expect(managers).to.include('virtbmc-controller/Apply');
    await waitReady(emu, 'bmc9');
    await emu.settled();
    // a change of the Service only: one apply, to the Service; the other objects are not sent
    const total = async () => (await mgr.metrics.reconcileTotal.get()).values.reduce((n, v) => n + v.value, 0);
    const kinds = ['deployments', 'services', 'serviceaccounts', 'roles', 'rolebindings'];
    const applies = () => Object.fromEntries(kinds.map((r) => [r, emu.audit.filter((e) => e.resource === r && e.verb === 'patch').length]));
    const a0 = applies();
    const n0 = await total();
    const b = getVmbmc(emu, 'bmc9')!;
    emu.update({ ...b, spec: { ...(b.spec as object), service: { type: 'NodePort', labels: { team: 't' } } } });
    await emu.waitFor(() => getService(emu, 'bmc9-virtbmc')?.metadata.labels?.team === 't');
    // poll (as emu.waitFor does) until that reconcile has finished; the bound only stops a hung test
    for (let i = 0; i < 2000 && (await total()) === n0; i++) await new Promise((r) => setTimeout(r, 5));
    await waitReady(emu, 'bmc9');
    await emu.settled();
    const a1 = applies();
    expect(Object.fromEntries(kinds.map((r) => [r, a1[r]! - a0[r]!]))).to.deep.equal({ deployments: 0, services: 1, serviceaccounts: 0, roles: 0, rolebindings: 0 });
  });

  it('a Deployment switched to RollingUpdate by someone else goes back to Recreate without their rollingUpdate', async () => {
    const { emu } = env;
    emu.create(vmObj('vm10'));
    emu.create(secretObj('creds'));
    emu.create(vmbmcObj('bmc10', 'vm10', 'creds'));
    await waitReady(emu, 'bmc10');
    const kc = emu.makeKubeConfig();
    const edit = await rawRequest(kc, 'PATCH', `/apis/apps/v1/namespaces/${NS}/deployments/bmc10-virtbmc?fieldManager=kubectl-edit`, {
      spec: { strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } } },
    }, 'application/merge-patch+json');
    expect(edit.status).to.equal(200);
    const back = await emu.waitFor(() => {
      const d = getDeployment(emu, 'bmc10-virtbmc');
      return (d?.spec as { strategy: { type: string } }).strategy.type === 'Recreate' ? d : undefined;
    });
    expect((back.spec as { strategy: unknown }).strategy).to.deep.equal({ type: 'Recreate' });
    await waitReady(emu, 'bmc10');
  });

  it('recovers from a 409 conflict and from dropped watches', async () => {
    const { emu, mgr } = env;
    emu.create(vmObj('vm6'));
    emu.create(secretObj('creds'));
    // every write of the first reconcile round fails once with 409
    emu.faults.failNext(2, 409, (r) => r.method !== 'GET');
    emu.create(vmbmcObj('bmc6', 'vm6', 'creds'));
    await waitReady(emu, 'bmc6');
    const errors = await mgr.metrics.reconcileTotal.get();
    expect(errors.values.find((v) => v.labels.result === 'error')?.value ?? 0).to.be.at.least(1);

    emu.faults.dropWatches();
    emu.create(vmbmcObj('bmc7', 'vm6', 'creds'));
    await waitReady(emu, 'bmc7');

    // history compacted while the watch is down → informers re-list (410) and still see new objects
    emu.faults.expireHistory();
    emu.faults.dropWatches();
    emu.create(vmbmcObj('bmc8', 'vm6', 'creds'));
    await waitReady(emu, 'bmc8');
  });

  it('survives an apiserver outage', async () => {
    const { emu } = env;
    emu.create(vmObj('vm9'));
    emu.create(secretObj('creds'));
    await emu.waitFor(() => env.mgr.controller.synced);
    const informerErrors = async () =>
      (await env.mgr.metrics.errors.get()).values.find((v) => v.labels.kind === 'informer')?.value ?? 0;
    const before = await informerErrors();
    await emu.faults.refuseConnections(true);
    emu.create(vmbmcObj('bmc9', 'vm9', 'creds'));
    // the outage must really reach the controller: its watches drop and the informers restart
    // (polled: the count is a metric; the test's timeout is the only bound, a hang guard)
    while ((await informerErrors()) <= before) await new Promise((r) => setTimeout(r, 20));
    expect(getDeployment(emu, 'bmc9-virtbmc'), 'nothing can be created while the API is down').to.equal(undefined);
    await emu.faults.refuseConnections(false);
    await waitReady(emu, 'bmc9');
  });

  it('auto-creates a VirtualMachineBMC for a labelled VM and removes it when the label goes', async () => {
    const { emu } = env;
    emu.create(secretObj('auto-creds'));
    emu.create(vmObj('auto-vm', { labels: { 'bmc.kubevirt.io/enabled': 'true' }, annotations: { 'bmc.kubevirt.io/auth-secret': 'auto-creds' } }));
    const created = await waitReady(emu, 'auto-vm');
    expect(created.metadata.labels?.['bmc.kubevirt.io/auto-created']).to.equal('true');
    expect(created.metadata.ownerReferences?.[0]).to.include({ kind: 'VirtualMachine', name: 'auto-vm' });
    expect((created.spec as { authSecretRef: { name: string } }).authSecretRef.name).to.equal('auto-creds');
    // a hand-made VMBMC is never touched
    emu.create(vmObj('manual-vm', { labels: { 'bmc.kubevirt.io/enabled': 'true' }, annotations: { 'bmc.kubevirt.io/auth-secret': 'other' } }));
    emu.create(vmbmcObj('manual-vm', 'manual-vm', 'auto-creds'));
    await waitReady(emu, 'manual-vm');
    expect((getVmbmc(emu, 'manual-vm')?.spec as { authSecretRef: { name: string } }).authSecretRef.name).to.equal('auto-creds');

    const vm = emu.get('kubevirt.io/v1', 'VirtualMachine', NS, 'auto-vm')!;
    emu.update({ ...vm, metadata: { ...vm.metadata, labels: {} } });
    await emu.waitFor(() => !getVmbmc(emu, 'auto-vm'));
    await emu.waitFor(() => !getDeployment(emu, 'auto-vm-virtbmc'));
  });

  it('auto-created VirtualMachineBMC deleted by hand while its VM still opts in: made again (its own delete event is the check)', async () => {
    const { emu } = env;
    emu.create(secretObj('auto-creds'));
    emu.create(vmObj('again-vm', { labels: { 'bmc.kubevirt.io/enabled': 'true' }, annotations: { 'bmc.kubevirt.io/auth-secret': 'auto-creds' } }));
    const first = await emu.waitFor(() => getVmbmc(emu, 'again-vm'));
    // the emulator's virt-controller has written the VM's status (a VM event of its own)
    const vmRv = () => emu.get('kubevirt.io/v1', 'VirtualMachine', NS, 'again-vm')!.metadata.resourceVersion;
    await emu.waitFor(() => (emu.get('kubevirt.io/v1', 'VirtualMachine', NS, 'again-vm')?.status as { printableStatus?: string } | undefined)?.printableStatus);
    const remake = async (before: string | undefined) => {
      emu.delete('bmc.kubevirt.io/v1beta1', 'VirtualMachineBMC', NS, 'again-vm');
      return emu.waitFor(() => {
        const b = getVmbmc(emu, 'again-vm');
        return b && b.metadata.uid !== before ? b : undefined;
      });
    };
    // the first time, the controller may still be handling the VM's status write (a VM event);
    // the second time nothing about the VM is pending: only the VMBMC's delete event brings the check back
    const second = await remake(first.metadata.uid);
    const rv = vmRv();
    const again = await remake(second.metadata.uid);
    expect(vmRv(), 'the VM did not change meanwhile').to.equal(rv);
    expect(again.metadata.labels?.['bmc.kubevirt.io/auto-created']).to.equal('true');
    expect(again.metadata.ownerReferences?.[0]).to.include({ kind: 'VirtualMachine', name: 'again-vm' });
  });

  it('auto-created VirtualMachineBMC: an invalid service-type annotation falls back to the default type', async () => {
    const { emu } = env;
    emu.create(secretObj('auto-creds'));
    const annotations = { 'bmc.kubevirt.io/auth-secret': 'auto-creds', 'bmc.kubevirt.io/service-type': 'NodePort' };
    emu.create(vmObj('svc-vm', { labels: { 'bmc.kubevirt.io/enabled': 'true' }, annotations }));
    const serviceType = () => (getVmbmc(emu, 'svc-vm')?.spec as { service?: { type?: string } } | undefined)?.service?.type;
    await emu.waitFor(() => serviceType() === 'NodePort');
    const vm = emu.get('kubevirt.io/v1', 'VirtualMachine', NS, 'svc-vm')!;
    emu.update({ ...vm, metadata: { ...vm.metadata, annotations: { ...annotations, 'bmc.kubevirt.io/service-type': 'Bogus' } } });
    await emu.waitFor(() => getVmbmc(emu, 'svc-vm') && serviceType() === undefined);
  });

  it('serves /metrics, /healthz and /readyz', async () => {
    const { emu, mgr } = env;
    emu.create(vmObj('vm10'));
    emu.create(secretObj('creds'));
    emu.create(vmbmcObj('bmc10', 'vm10', 'creds'));
    await waitReady(emu, 'bmc10');
    const m = await (await fetch(`${mgr.metricsEndpoint!.url}/metrics`)).text();
    expect(m).to.match(/virtbmc_controller_reconcile_total\{result="success"\} [1-9]/);
    expect(m).to.contain('virtbmc_controller_reconcile_duration_seconds_bucket');
    expect(m).to.contain('virtbmc_controller_workqueue_depth');
    expect(m).to.match(/virtbmc_controller_is_leader 1/);
    expect((await fetch(`${mgr.healthEndpoint!.url}/healthz`)).status).to.equal(200);
    const r = await fetch(`${mgr.healthEndpoint!.url}/readyz`);
    expect(r.status).to.equal(200);
  });

  it('reports NameConflict when an object with the agent name exists and is not its own', async () => {
    const { emu } = env;
    emu.create(vmObj('vm11'));
    emu.create(secretObj('creds'));
    emu.create({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'bmc11-virtbmc', namespace: NS, labels: { app: 'someone-else' } }, spec: { ports: [{ port: 1 }] } });
    emu.create(vmbmcObj('bmc11', 'vm11', 'creds'));
    const st = await waitReady(emu, 'bmc11', 'False', 'NameConflict');
    const warning = await emu.waitFor(() => emu.list('v1', 'Event', NS).find((e) => e.reason === 'NameConflict'));
    expect(warning).to.include({ type: 'Warning' });
    expect(condition(st, 'Ready')?.message).to.contain('Service bmc11-virtbmc');
    expect((getService(emu, 'bmc11-virtbmc')?.spec as { ports: Array<{ port: number }> }).ports[0]!.port, 'foreign Service untouched').to.equal(1);
  });
});

describe('virtbmc-controller --namespace-scope', function () {
  this.timeout(15000);
  it('manages only its namespace', async () => {
    const env = await startEnv({ namespace: 'team-a' });
    const { emu } = env;
    try {
      emu.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'team-a' } });
      for (const ns of ['team-a', NS]) {
        emu.create({ ...vmObj('vm'), metadata: { name: 'vm', namespace: ns } });
        emu.create({ ...secretObj('creds'), metadata: { name: 'creds', namespace: ns } });
        emu.create({ ...vmbmcObj('bmc', 'vm', 'creds'), metadata: { name: 'bmc', namespace: ns } });
      }
      await emu.waitFor(() => condition(emu.get('bmc.kubevirt.io/v1beta1', 'VirtualMachineBMC', 'team-a', 'bmc'), 'Ready')?.status === 'True');
      expect(emu.get('apps/v1', 'Deployment', 'team-a', 'bmc-virtbmc')).to.not.equal(undefined);
      expect(getDeployment(emu, 'bmc-virtbmc')).to.equal(undefined);
      expect(getVmbmc(emu, 'bmc')?.status).to.equal(undefined);
      expect(emu.audit.every((e) => e.nonResourceURL || e.namespace === 'team-a')).to.equal(true);
    } finally {
      await env.close();
    }
  });
});

describe('virtbmc-controller without KubeVirt installed', function () {
  this.timeout(15000);
  it('stays not-ready and says which informer cannot list', async () => {
    const env = await startEnv({}, { kubevirt: false });
    try {
      const r = await fetch(`${env.mgr.healthEndpoint!.url}/readyz`);
      expect(r.status).to.equal(503);
      expect(await r.text()).to.contain('virtualmachines');
      expect((await fetch(`${env.mgr.healthEndpoint!.url}/healthz`)).status).to.equal(200);
      // it keeps retrying the list (with backoff) rather than giving up
      const lists = () => env.emu.audit.filter((e) => e.resource === 'virtualmachines' && e.verb === 'list').length;
      const before = lists();
      await env.emu.waitFor(() => lists() > before);
    } finally {
      await env.close();
    }
  });
});
