import {
  ApiException,
  AppsV1Api,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  makeInformer,
  PatchStrategy,
  RbacAuthorizationV1Api,
  setHeaderOptions,
  V1MicroTime,
  VersionApi,
  Watch,
  type KubeConfig,
  type V1ConfigMap,
} from '@kubernetes/client-node';
import { expect } from 'chai';
import { startApiServer, type ApiServerEmulator, type KubeObject } from './index.js';
import { emulatorPerTest, rawRequest } from './helpers.js';

function statusBody(e: unknown): { code: number; reason: string; message: string; details?: { causes?: { message: string }[] } } {
  expect(e).to.be.instanceOf(ApiException);
  const body = (e as ApiException<unknown>).body;
  return (typeof body === 'string' ? JSON.parse(body) : body) as ReturnType<typeof statusBody>;
}

async function expectApiError(p: Promise<unknown>, code: number): Promise<ReturnType<typeof statusBody>> {
  try {
    await p;
  } catch (e) {
    expect((e as ApiException<unknown>).code, String(e)).to.equal(code);
    const s = statusBody(e);
    expect(s.code).to.equal(code);
    return s;
  }
  throw new Error(`expected HTTP ${code}, the call succeeded`);
}

describe('apiserver emulator: core REST semantics', () => {
  let emu: ApiServerEmulator;
  let kc: KubeConfig;
  let core: CoreV1Api;

  emulatorPerTest({}, (e) => {
    emu = e;
    kc = e.makeKubeConfig();
    core = kc.makeApiClient(CoreV1Api);
  });

  it('creates, reads, updates and deletes through CoreV1Api, filling metadata', async () => {
    const created = await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'cfg' }, data: { a: '1' } } });
    expect(created.metadata?.uid).to.match(/^[0-9a-f-]{36}$/);
    expect(Number(created.metadata?.resourceVersion)).to.be.greaterThan(0);
    expect(created.metadata?.creationTimestamp).to.be.instanceOf(Date);
    const read = await core.readNamespacedConfigMap({ namespace: 'default', name: 'cfg' });
    expect(read.data).to.deep.equal({ a: '1' });
    read.data = { a: '2' };
    const updated = await core.replaceNamespacedConfigMap({ namespace: 'default', name: 'cfg', body: read });
    expect(Number(updated.metadata?.resourceVersion)).to.be.greaterThan(Number(created.metadata?.resourceVersion));
    expect(emu.get('v1', 'ConfigMap', 'default', 'cfg')?.data).to.deep.equal({ a: '2' });
    await core.deleteNamespacedConfigMap({ namespace: 'default', name: 'cfg' });
    expect(emu.get('v1', 'ConfigMap', 'default', 'cfg')).to.equal(undefined);
    const s = await expectApiError(core.readNamespacedConfigMap({ namespace: 'default', name: 'cfg' }), 404);
    expect(s.reason).to.equal('NotFound');
    expect(s.message).to.equal('configmaps "cfg" not found');
  });

  it('answers 409 AlreadyExists, honours generateName, and 409 Conflict on a stale update', async () => {
    await core.createNamespacedSecret({ namespace: 'default', body: { metadata: { name: 's1' }, stringData: { p: 'x' } } });
    const dup = await expectApiError(core.createNamespacedSecret({ namespace: 'default', body: { metadata: { name: 's1' } } }), 409);
    expect(dup.reason).to.equal('AlreadyExists');
    const gen = await core.createNamespacedSecret({ namespace: 'default', body: { metadata: { generateName: 'tok-' } } });
    expect(gen.metadata?.name).to.match(/^tok-[a-z0-9]{5}$/);

    const v1 = await core.readNamespacedSecret({ namespace: 'default', name: 's1' });
    const v2 = await core.readNamespacedSecret({ namespace: 'default', name: 's1' });
    v1.metadata!.labels = { first: 'yes' };
    await core.replaceNamespacedSecret({ namespace: 'default', name: 's1', body: v1 });
    v2.metadata!.labels = { second: 'yes' };
    const s = await expectApiError(core.replaceNamespacedSecret({ namespace: 'default', name: 's1', body: v2 }), 409);
    expect(s.reason).to.equal('Conflict');
    expect(s.message).to.contain('the object has been modified');
    expect(emu.get('v1', 'Secret', 'default', 's1')?.metadata.labels).to.deep.equal({ first: 'yes' });
  });

  it('rejects a missing name (422) and a namespace mismatch (400)', async () => {
    const s = await expectApiError(core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: {} } }), 422);
    expect(s.reason).to.equal('Invalid');
    await expectApiError(core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'x', namespace: 'other' } } }), 400);
  });

  it('lists with label selectors (=, !=, in, notin, exists, !) and field selectors', async () => {
    const mk = (name: string, labels: Record<string, string>, ns = 'default'): Promise<V1ConfigMap> =>
      core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name, labels } } });
    await mk('a', { app: 'bmc', tier: 'x' });
    await mk('b', { app: 'bmc', tier: 'y' });
    await mk('c', { app: 'other' });
    await mk('d', {});
    await mk('e', { app: 'bmc' }, 'kube-system');
    const names = async (labelSelector?: string, fieldSelector?: string): Promise<string[]> =>
      (await core.listNamespacedConfigMap({ namespace: 'default', labelSelector, fieldSelector })).items.map((i) => i.metadata?.name ?? '');
    expect(await names('app=bmc')).to.deep.equal(['a', 'b']);
    expect(await names('app==bmc,tier!=x')).to.deep.equal(['b']);
    expect(await names('app!=bmc')).to.deep.equal(['c', 'd']);
    expect(await names('tier in (x, y)')).to.deep.equal(['a', 'b']);
    expect(await names('app notin (bmc)')).to.deep.equal(['c', 'd']);
    expect(await names('tier')).to.deep.equal(['a', 'b']);
    expect(await names('!app')).to.deep.equal(['d']);
    expect(await names(undefined, 'metadata.name=c')).to.deep.equal(['c']);
    expect(await names(undefined, 'metadata.name!=c')).to.deep.equal(['a', 'b', 'd']);
    const all = await core.listConfigMapForAllNamespaces({ labelSelector: 'app=bmc' });
    expect(all.items.map((i) => `${i.metadata?.namespace}/${i.metadata?.name}`)).to.deep.equal(['default/a', 'default/b', 'kube-system/e']);
    expect(all.metadata?.resourceVersion).to.equal(emu.resourceVersion());
    await expectApiError(core.listNamespacedConfigMap({ namespace: 'default', labelSelector: 'a b c' }), 400);
  });

  it('paginates with limit/continue', async () => {
    for (const n of ['p1', 'p2', 'p3']) await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: n } } });
    const page1 = await core.listNamespacedConfigMap({ namespace: 'default', limit: 2 });
    expect(page1.items.map((i) => i.metadata?.name)).to.deep.equal(['p1', 'p2']);
    const page2 = await core.listNamespacedConfigMap({ namespace: 'default', limit: 2, _continue: page1.metadata?._continue });
    expect(page2.items.map((i) => i.metadata?.name)).to.deep.equal(['p3']);
    expect(page2.metadata?._continue).to.equal(undefined);
  });

  it('watches from a resourceVersion: only later events, in order', async () => {
    await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'before' } } });
    const rv = emu.resourceVersion();
    const events: string[] = [];
    const watch = new Watch(kc);
    const ctl = await watch.watch(
      '/api/v1/namespaces/default/configmaps',
      { resourceVersion: rv },
      (type, obj: V1ConfigMap) => events.push(`${type} ${obj.metadata?.name}`),
      () => undefined,
    );
    await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'after' } } });
    await core.patchNamespacedConfigMap(
      { namespace: 'default', name: 'after', body: { data: { k: 'v' } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    await core.deleteNamespacedConfigMap({ namespace: 'default', name: 'after' });
    await emu.waitFor(() => events.length >= 3);
    ctl.abort();
    expect(events).to.deep.equal(['ADDED after', 'MODIFIED after', 'DELETED after']);
  });

  it('watch filtered by label selector turns label changes into ADDED/DELETED', async () => {
    await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'w', labels: { pick: 'no' } } } });
    const events: string[] = [];
    const ctl = await new Watch(kc).watch(
      '/api/v1/namespaces/default/configmaps',
      { resourceVersion: emu.resourceVersion(), labelSelector: 'pick=yes' },
      (type, obj: V1ConfigMap) => events.push(`${type} ${obj.metadata?.name}`),
      () => undefined,
    );
    const patch = (v: string): Promise<unknown> =>
      core.patchNamespacedConfigMap({ namespace: 'default', name: 'w', body: { metadata: { labels: { pick: v } } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
    await patch('yes');
    await patch('no');
    await emu.waitFor(() => events.length >= 2);
    ctl.abort();
    expect(events).to.deep.equal(['ADDED w', 'DELETED w']);
  });

  it('sends a 410 Expired ERROR event for a compacted resourceVersion, and the informer relists', async () => {
    await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'old' } } });
    const oldRv = emu.resourceVersion();
    await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'newer' } } });
    emu.faults.expireHistory();
    const seen: { type: string; obj: { code?: number; reason?: string } }[] = [];
    let doneErr: unknown = 'not called';
    await new Watch(kc).watch('/api/v1/namespaces/default/configmaps', { resourceVersion: oldRv }, (type, obj) => seen.push({ type, obj }), (err) => {
      doneErr = err;
    });
    await emu.waitFor(() => doneErr !== 'not called');
    expect(seen).to.have.length(1);
    expect(seen[0]?.type).to.equal('ERROR');
    expect(seen[0]?.obj.code).to.equal(410);
    expect(seen[0]?.obj.reason).to.equal('Expired');

    // watching from the current RV still works after compaction
    const later: string[] = [];
    const ctl = await new Watch(kc).watch('/api/v1/namespaces/default/configmaps', { resourceVersion: emu.resourceVersion() }, (t, o: V1ConfigMap) => later.push(`${t} ${o.metadata?.name}`), () => undefined);
    await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'fresh' } } });
    await emu.waitFor(() => later.length >= 1);
    ctl.abort();
    expect(later).to.deep.equal(['ADDED fresh']);
  });

  it('a client-node informer whose resourceVersion was compacted away gets 410 and relists', async () => {
    const informer = makeInformer(kc, '/api/v1/namespaces/default/configmaps', () => core.listNamespacedConfigMap({ namespace: 'default' }));
    const added: string[] = [];
    const errors: unknown[] = [];
    informer.on('add', (o) => added.push(o.metadata?.name ?? ''));
    informer.on('error', (e) => errors.push(e));
    await informer.start();
    try {
      const listsBefore = emu.audit.filter((a) => a.verb === 'list').length;
      // hold the re-watch back while the history moves on and gets compacted
      emu.faults.delayResponses(150);
      emu.faults.dropWatches();
      emu.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'missed', namespace: 'default' } });
      emu.faults.expireHistory();
      await new Promise((r) => setTimeout(r, 50));
      emu.faults.delayResponses(0);
      await emu.waitFor(() => added.includes('missed'));
      expect(errors).to.deep.equal([]);
      expect(emu.audit.filter((a) => a.verb === 'list').length).to.be.greaterThan(listsBefore);
    } finally {
      await informer.stop();
    }
  });

  it('enforces the watchHistory window', async () => {
    const small = await startApiServer({ watchHistory: 2 });
    try {
      const skc = small.makeKubeConfig();
      const score = skc.makeApiClient(CoreV1Api);
      const rv = small.resourceVersion();
      for (const n of ['h1', 'h2', 'h3']) await score.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: n } } });
      const seen: string[] = [];
      let done = false;
      await new Watch(skc).watch('/api/v1/namespaces/default/configmaps', { resourceVersion: rv }, (t, o: { code?: number }) => seen.push(`${t} ${o.code}`), () => {
        done = true;
      });
      await small.waitFor(() => done);
      expect(seen).to.deep.equal(['ERROR 410']);
    } finally {
      await small.close();
    }
  });

  it('feeds a client-node informer (list + watch) and survives dropped watches', async () => {
    await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'i1' } } });
    const informer = makeInformer(kc, '/api/v1/namespaces/default/configmaps', () => core.listNamespacedConfigMap({ namespace: 'default' }));
    const added: string[] = [];
    const deleted: string[] = [];
    informer.on('add', (o) => added.push(o.metadata?.name ?? ''));
    informer.on('delete', (o) => deleted.push(o.metadata?.name ?? ''));
    await informer.start();
    try {
      await emu.waitFor(() => added.includes('i1'));
      await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'i2' } } });
      await emu.waitFor(() => added.includes('i2'));
      emu.faults.dropWatches();
      await core.deleteNamespacedConfigMap({ namespace: 'default', name: 'i1' });
      await emu.waitFor(() => deleted.includes('i1'));
      expect(informer.list().map((o) => o.metadata?.name)).to.deep.equal(['i2']);
      const watches = emu.audit.filter((a) => a.verb === 'watch' && a.resource === 'configmaps');
      expect(watches.length).to.be.greaterThanOrEqual(2);
    } finally {
      await informer.stop();
    }
  });

  it('applies merge patches and JSON patches; a failing test op answers 422 and changes nothing', async () => {
    await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'p', labels: { a: '1', b: '2' } }, data: { x: '1', y: '2' } } });
    const merged = await core.patchNamespacedConfigMap(
      { namespace: 'default', name: 'p', body: { metadata: { labels: { b: null, c: '3' } }, data: { y: '20' } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    expect(merged.metadata?.labels).to.deep.equal({ a: '1', c: '3' });
    expect(merged.data).to.deep.equal({ x: '1', y: '20' });

    const jp = await core.patchNamespacedConfigMap(
      {
        namespace: 'default',
        name: 'p',
        body: [
          { op: 'test', path: '/data/x', value: '1' },
          { op: 'replace', path: '/data/x', value: '10' },
          { op: 'add', path: '/data/z', value: '3' },
          { op: 'remove', path: '/data/y' },
          { op: 'copy', from: '/data/z', path: '/data/z2' },
          { op: 'move', from: '/data/z2', path: '/data/moved' },
        ],
      },
      setHeaderOptions('Content-Type', PatchStrategy.JsonPatch),
    );
    expect(jp.data).to.deep.equal({ x: '10', z: '3', moved: '3' });
    const rvBefore = jp.metadata?.resourceVersion;

    const s = await expectApiError(
      core.patchNamespacedConfigMap(
        { namespace: 'default', name: 'p', body: [{ op: 'test', path: '/data/x', value: 'nope' }, { op: 'replace', path: '/data/x', value: 'bad' }] },
        setHeaderOptions('Content-Type', PatchStrategy.JsonPatch),
      ),
      422,
    );
    expect(s.reason).to.equal('Invalid');
    expect(s.details?.causes?.[0]?.message).to.contain('testing value /data/x failed');
    const after = emu.get('v1', 'ConfigMap', 'default', 'p');
    expect(after?.data).to.deep.equal({ x: '10', z: '3', moved: '3' });
    expect(after?.metadata.resourceVersion).to.equal(rvBefore);
    // strategic merge patch is accepted for built-in types
    const smp = await core.patchNamespacedConfigMap({ namespace: 'default', name: 'p', body: { data: { s: 'm' } } }, setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch));
    expect(smp.data?.s).to.equal('m');
  });

  it('strategic merge patch merges keyed lists on built-in types and is refused (415) for custom resources', async () => {
    const apps = kc.makeApiClient(AppsV1Api);
    await apps.createNamespacedDeployment({
      namespace: 'default',
      body: {
        metadata: { name: 'smp', finalizers: ['a/one'] },
        spec: {
          selector: { matchLabels: { app: 's' } },
          template: {
            metadata: { labels: { app: 's' } },
            spec: {
              containers: [
                { name: 'main', image: 'img:1', env: [{ name: 'A', value: '1' }, { name: 'B', value: '2' }] },
                { name: 'side', image: 'side:1' },
              ],
            },
          },
        },
      },
    });
    const smp = setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch);
    const d = await apps.patchNamespacedDeployment(
      {
        namespace: 'default',
        name: 'smp',
        body: {
          metadata: { finalizers: ['b/two'] },
          spec: { template: { spec: { containers: [{ name: 'main', image: 'img:2', env: [{ name: 'B', $patch: 'delete' }, { name: 'C', value: '3' }] }, { name: 'side', $patch: 'delete' }] } } },
        },
      },
      smp,
    );
    expect(d.metadata?.finalizers).to.deep.equal(['a/one', 'b/two']);
    const containers = d.spec?.template.spec?.containers ?? [];
    expect(containers.map((c) => `${c.name}:${c.image}`)).to.deep.equal(['main:img:2']);
    expect(containers[0]?.env).to.deep.equal([{ name: 'A', value: '1' }, { name: 'C', value: '3' }]);
    const co = kc.makeApiClient(CustomObjectsApi);
    emu.create({ apiVersion: 'bmc.kubevirt.io/v1beta1', kind: 'VirtualMachineBMC', metadata: { name: 'b', namespace: 'default' }, spec: {} });
    await expectApiError(co.patchNamespacedCustomObject({ group: 'bmc.kubevirt.io', version: 'v1beta1', namespace: 'default', plural: 'virtualmachinebmcs', name: 'b', body: { spec: { x: 1 } } }, smp), 415);
  });

  it('keeps the status subresource apart from the main resource and bumps generation on spec changes only', async () => {
    const co = kc.makeApiClient(CustomObjectsApi);
    const g = { group: 'bmc.kubevirt.io', version: 'v1beta1', namespace: 'default', plural: 'virtualmachinebmcs' };
    const created = (await co.createNamespacedCustomObject({
      ...g,
      body: { apiVersion: 'bmc.kubevirt.io/v1beta1', kind: 'VirtualMachineBMC', metadata: { name: 'b' }, spec: { vmName: 'vm' }, status: { ready: true } },
    })) as KubeObject;
    expect(created.metadata.generation).to.equal(1);
    const st = (await co.replaceNamespacedCustomObjectStatus({ ...g, name: 'b', body: { ...created, spec: { vmName: 'ignored' }, status: { ready: false, clusterIP: '10.96.0.9' } } })) as KubeObject;
    expect(st.spec).to.deep.equal({ vmName: 'vm' });
    expect(st.status).to.deep.equal({ ready: false, clusterIP: '10.96.0.9' });
    expect(st.metadata.generation).to.equal(1);
    const main = (await co.patchNamespacedCustomObject(
      { ...g, name: 'b', body: { spec: { vmName: 'vm2' }, status: { ready: true } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    )) as KubeObject;
    expect(main.spec).to.deep.equal({ vmName: 'vm2' });
    expect(main.status).to.deep.equal({ ready: false, clusterIP: '10.96.0.9' });
    expect(main.metadata.generation).to.equal(2);
    const labelsOnly = (await co.patchNamespacedCustomObject(
      { ...g, name: 'b', body: { metadata: { labels: { l: '1' } } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    )) as KubeObject;
    expect(labelsOnly.metadata.generation).to.equal(2);
    const sp = (await co.patchNamespacedCustomObjectStatus(
      { ...g, name: 'b', body: [{ op: 'replace', path: '/status/ready', value: true }] },
      setHeaderOptions('Content-Type', PatchStrategy.JsonPatch),
    )) as KubeObject;
    expect((sp.status as { ready: boolean }).ready).to.equal(true);
  });

  it('garbage-collects dependents through ownerReferences (background), orphans on request', async () => {
    const owner = await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'owner' } } });
    const ref = { apiVersion: 'v1', kind: 'ConfigMap', name: 'owner', uid: owner.metadata!.uid! };
    await core.createNamespacedSecret({ namespace: 'default', body: { metadata: { name: 'dep', ownerReferences: [ref] } } });
    await core.createNamespacedService({ namespace: 'default', body: { metadata: { name: 'dep-svc', ownerReferences: [ref] }, spec: { ports: [{ port: 623 }] } } });
    await core.deleteNamespacedConfigMap({ namespace: 'default', name: 'owner' });
    await emu.waitFor(() => !emu.get('v1', 'Secret', 'default', 'dep') && !emu.get('v1', 'Service', 'default', 'dep-svc'));

    const owner2 = await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'owner2' } } });
    await core.createNamespacedSecret({
      namespace: 'default',
      body: { metadata: { name: 'dep2', ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'owner2', uid: owner2.metadata!.uid! }] } },
    });
    await core.deleteNamespacedConfigMap({ namespace: 'default', name: 'owner2', propagationPolicy: 'Orphan' });
    await emu.settled();
    const dep2 = emu.get('v1', 'Secret', 'default', 'dep2');
    expect(dep2).to.not.equal(undefined);
    expect(dep2?.metadata.ownerReferences).to.equal(undefined);
  });

  it('keeps an object with finalizers until the last finalizer is removed', async () => {
    await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'f', finalizers: ['example.com/hold'] } } });
    await core.deleteNamespacedConfigMap({ namespace: 'default', name: 'f' });
    const held = await core.readNamespacedConfigMap({ namespace: 'default', name: 'f' });
    expect(held.metadata?.deletionTimestamp).to.be.instanceOf(Date);
    await core.patchNamespacedConfigMap({ namespace: 'default', name: 'f', body: { metadata: { finalizers: null } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
    expect(emu.get('v1', 'ConfigMap', 'default', 'f')).to.equal(undefined);
  });

  it('runs the deployment and service controllers', async () => {
    const apps = kc.makeApiClient(AppsV1Api);
    const tpl = { metadata: { labels: { app: 'x' } }, spec: { containers: [{ name: 'c', image: 'img' }] } };
    await apps.createNamespacedDeployment({ namespace: 'default', body: { metadata: { name: 'd' }, spec: { replicas: 2, selector: { matchLabels: { app: 'x' } }, template: tpl } } });
    const d = await emu.waitFor(() => {
      const o = emu.get('apps/v1', 'Deployment', 'default', 'd');
      return (o?.status as { availableReplicas?: number } | undefined)?.availableReplicas === 2 && o;
    });
    expect(d.status).to.deep.include({ observedGeneration: 1, replicas: 2, readyReplicas: 2 });
    await apps.patchNamespacedDeployment({ namespace: 'default', name: 'd', body: { spec: { replicas: 0 } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
    await emu.waitFor(() => (emu.get('apps/v1', 'Deployment', 'default', 'd')?.status as { observedGeneration?: number }).observedGeneration === 2);
    expect(emu.get('apps/v1', 'Deployment', 'default', 'd')?.status).to.deep.include({ availableReplicas: 0, replicas: 0 });

    const svc = await core.createNamespacedService({ namespace: 'default', body: { metadata: { name: 'lb' }, spec: { type: 'LoadBalancer', ports: [{ port: 623, protocol: 'UDP' }] } } });
    expect(svc.spec?.clusterIP).to.match(/^10\.96\.\d+\.\d+$/);
    const lb = await emu.waitFor(() => {
      const s = emu.get('v1', 'Service', 'default', 'lb');
      return (s?.status as { loadBalancer?: { ingress?: { ip: string }[] } }).loadBalancer?.ingress?.[0]?.ip;
    });
    expect(lb).to.match(/^\d+\.\d+\.\d+\.\d+$/);
  });

  it('serves cluster-scoped RBAC, leases with MicroTime, discovery and /version', async () => {
    const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
    await rbac.createClusterRole({ body: { metadata: { name: 'cr' }, rules: [{ apiGroups: [''], resources: ['pods'], verbs: ['get'] }] } });
    expect((await rbac.readClusterRole({ name: 'cr' })).rules?.[0]?.verbs).to.deep.equal(['get']);
    const coord = kc.makeApiClient(CoordinationV1Api);
    const t = new V1MicroTime();
    const lease = await coord.createNamespacedLease({ namespace: 'default', body: { metadata: { name: 'lock' }, spec: { holderIdentity: 'me', acquireTime: t, renewTime: t, leaseDurationSeconds: 15 } } });
    expect(lease.spec?.holderIdentity).to.equal('me');
    const ver = await kc.makeApiClient(VersionApi).getCode();
    expect(ver.major).to.equal('1');
    const apis = await rawRequest(kc, 'GET', '/apis');
    const groups = (apis.body as { groups: { name: string }[] }).groups.map((x) => x.name);
    expect(groups).to.include.members(['apps', 'kubevirt.io', 'cdi.kubevirt.io', 'subresources.kubevirt.io', 'bmc.kubevirt.io']);
  });

  it('requires the bearer token and records an audit trail', async () => {
    const bad = await fetch(`${emu.url}/api/v1/namespaces/default/configmaps`, { headers: { Authorization: 'Bearer wrong' } });
    expect(bad.status).to.equal(401);
    await core.listNamespacedPod({ namespace: 'default' });
    await expectApiError(core.readNamespacedSecret({ namespace: 'default', name: 'missing' }), 404);
    const tail = emu.audit.slice(-3);
    expect(tail).to.deep.equal([
      { verb: 'list', group: '', version: 'v1', resource: 'configmaps', namespace: 'default', code: 401 },
      { verb: 'list', group: '', version: 'v1', resource: 'pods', namespace: 'default', code: 200 },
      { verb: 'get', group: '', version: 'v1', resource: 'secrets', namespace: 'default', name: 'missing', code: 404 },
    ]);
  });

  it('edge cases: Exact list of an old RV → 410, dryRun, Foreground, namespace cascade, bad patches, unknown routes', async () => {
    const old = emu.resourceVersion();
    await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'e1' } } });
    const gone = await expectApiError(core.listNamespacedConfigMap({ namespace: 'default', resourceVersion: old, resourceVersionMatch: 'Exact' }), 410);
    expect(gone.reason).to.equal('Expired');
    expect((await core.listNamespacedConfigMap({ namespace: 'default', resourceVersion: emu.resourceVersion(), resourceVersionMatch: 'Exact' })).items).to.have.length(1);

    await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'dry' } }, dryRun: 'All' });
    expect(emu.get('v1', 'ConfigMap', 'default', 'dry')).to.equal(undefined);

    const owner = emu.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'fg', namespace: 'default' } });
    emu.create({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'fg-dep', namespace: 'default', ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'fg', uid: owner.metadata.uid! }] } });
    await core.deleteNamespacedConfigMap({ namespace: 'default', name: 'fg', propagationPolicy: 'Foreground' });
    expect(emu.get('v1', 'Secret', 'default', 'fg-dep')).to.equal(undefined);

    await core.createNamespace({ body: { metadata: { name: 'tmp' } } });
    expect((await core.readNamespace({ name: 'tmp' })).status?.phase).to.equal('Active');
    await core.createNamespacedSecret({ namespace: 'tmp', body: { metadata: { name: 'inside' } } });
    await core.deleteNamespace({ name: 'tmp' });
    await emu.waitFor(() => !emu.get('v1', 'Namespace', undefined, 'tmp'));
    expect(emu.get('v1', 'Secret', 'tmp', 'inside')).to.equal(undefined);

    const missing = await expectApiError(
      core.patchNamespacedConfigMap({ namespace: 'default', name: 'e1', body: [{ op: 'replace', path: '/data/none', value: 'x' }] }, setHeaderOptions('Content-Type', PatchStrategy.JsonPatch)),
      422,
    );
    expect(missing.reason).to.equal('Invalid');
    // an apply patch is served now (apply.test.ts); a patch type the apiserver does not know is 415
    const r415 = await rawRequest(kc, 'PATCH', '/api/v1/namespaces/default/configmaps/e1', { data: {} }, 'application/x-unknown-patch+json');
    expect(r415.status).to.equal(415);
    const unknown = await rawRequest(kc, 'GET', '/apis/example.com/v1/widgets');
    expect(unknown.status).to.equal(404);
    expect(unknown.body).to.deep.include({ kind: 'Status', reason: 'NotFound', message: 'the server could not find the requested resource' });
    expect((await rawRequest(kc, 'PUT', '/api/v1/namespaces/default/configmaps/e1/status', { metadata: { name: 'e1' } })).status).to.equal(404);
    const garbage = await fetch(`${emu.url}/api/v1/namespaces/default/configmaps`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${kc.getCurrentUser()?.token}`, 'Content-Type': 'application/json' },
      body: '{not json',
    });
    expect(garbage.status).to.equal(400);
    expect(((await garbage.json()) as { kind: string }).kind).to.equal('Status');
  });

  it('answers 404 for KubeVirt / CDI groups when they are not installed', async () => {
    const bare = await startApiServer({ kubevirt: false, cdi: false });
    try {
      const co = bare.makeKubeConfig().makeApiClient(CustomObjectsApi);
      const s = await expectApiError(co.listNamespacedCustomObject({ group: 'cdi.kubevirt.io', version: 'v1beta1', namespace: 'default', plural: 'datavolumes' }), 404);
      expect(s.reason).to.equal('NotFound');
      await expectApiError(co.listNamespacedCustomObject({ group: 'kubevirt.io', version: 'v1', namespace: 'default', plural: 'virtualmachines' }), 404);
    } finally {
      await bare.close();
    }
  });
});
