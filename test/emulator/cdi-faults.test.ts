import { ApiException, CoreV1Api, CustomObjectsApi, makeInformer, Watch, type KubeConfig, type V1ConfigMap } from '@kubernetes/client-node';
import { expect } from 'chai';
import { startApiServer, type ApiServerEmulator, type KubeObject } from './index.js';
import { emulatorPerTest } from './helpers.js';

const NS = 'default';

function dataVolume(name: string, url: string): KubeObject {
  return {
    apiVersion: 'cdi.kubevirt.io/v1beta1',
    kind: 'DataVolume',
    metadata: { name, namespace: NS },
    spec: { source: { http: { url } }, storage: { resources: { requests: { storage: '1Gi' } } } },
  };
}

describe('apiserver emulator: CDI DataVolumes', () => {
  let emu: ApiServerEmulator;
  let kc: KubeConfig;
  emulatorPerTest({ dataVolumeImportMs: 60 }, (e) => {
    emu = e;
    kc = e.makeKubeConfig();
  });

  it("admission like CDI's webhook: one storage definition with a size of at least 1 MiB, one source, blank not archive; the spec is immutable", () => {
    const dv = (spec: Record<string, unknown>, name = 'x'): KubeObject => ({ apiVersion: 'cdi.kubevirt.io/v1beta1', kind: 'DataVolume', metadata: { name, namespace: NS }, spec });
    const storage = (size?: string) => ({ resources: { requests: size === undefined ? {} : { storage: size } } });
    const denied = (m: string) => `admission webhook "datavolume-validate.cdi.kubevirt.io" denied the request: ${m}`;
    // (a name over 253 characters never gets that far: the apiserver's own name check refuses it first)
    expect(() => emu.create(dv({ source: { blank: {} } }))).to.throw(denied('Missing Data volume PVC'));
    expect(() => emu.create(dv({ source: { blank: {} }, pvc: storage('1Gi'), storage: storage('1Gi') }))).to.throw('Duplicate storage definition');
    expect(() => emu.create(dv({ source: { blank: {} }, storage: storage() }))).to.throw('Storage size is missing');
    expect(() => emu.create(dv({ source: { blank: {} }, storage: storage('0') }))).to.throw("Storage size can't be equal or less than zero");
    expect(() => emu.create(dv({ source: { blank: {} }, storage: storage('1023Ki') }))).to.throw('Storage size should be at least 1MiB');
    expect(() => emu.create(dv({ storage: storage('1Gi') }))).to.throw('Data volume should have either Source or SourceRef');
    expect(() => emu.create(dv({ source: {}, storage: storage('1Gi') }))).to.throw('Missing Data volume source');
    expect(() => emu.create(dv({ source: { blank: {}, http: { url: 'http://a/b' } }, storage: storage('1Gi') }))).to.throw('Multiple Data volume sources');
    expect(() => emu.create(dv({ source: { blank: {} }, contentType: 'archive', storage: storage('1Gi') }))).to.throw('SourceType cannot be blank and the contentType be archive');
    emu.create(dv({ source: { blank: {} }, storage: storage('1Mi') }, 'ok'));
    const made = emu.get('cdi.kubevirt.io/v1beta1', 'DataVolume', NS, 'ok')!;
    expect(() => emu.update({ ...made, spec: { ...(made.spec as Record<string, unknown>), storage: storage('2Gi') } })).to.throw('Cannot update DataVolume Spec');
  });

  it('imports with progress 0% → 100% and a PVC owned by the DataVolume', async () => {
    const phases: string[] = [];
    const progress: string[] = [];
    const ctl = await new Watch(kc).watch(`/apis/cdi.kubevirt.io/v1beta1/namespaces/${NS}/datavolumes`, {}, (_t, o: KubeObject) => {
      const s = (o.status ?? {}) as { phase?: string; progress?: string };
      if (s.phase && phases[phases.length - 1] !== s.phase) phases.push(s.phase);
      if (s.progress && s.progress !== 'N/A' && progress[progress.length - 1] !== s.progress) progress.push(s.progress);
    }, () => undefined);
    const co = kc.makeApiClient(CustomObjectsApi);
    await co.createNamespacedCustomObject({ group: 'cdi.kubevirt.io', version: 'v1beta1', namespace: NS, plural: 'datavolumes', body: dataVolume('iso', 'http://images.example/boot.iso') });
    await emu.waitFor(() => phases.includes('Succeeded'));
    ctl.abort();
    expect(phases).to.deep.equal(['Pending', 'ImportScheduled', 'ImportInProgress', 'Succeeded']);
    expect(progress[0]).to.equal('0.00%');
    expect(progress[progress.length - 1]).to.equal('100.0%');
    expect(progress.length).to.be.greaterThan(2);
    const dv = emu.get('cdi.kubevirt.io/v1beta1', 'DataVolume', NS, 'iso');
    expect((dv?.status as { conditions: { type: string; status: string }[] }).conditions.find((c) => c.type === 'Ready')?.status).to.equal('True');
    const pvc = emu.get('v1', 'PersistentVolumeClaim', NS, 'iso');
    expect(pvc?.metadata.ownerReferences?.[0]).to.deep.include({ kind: 'DataVolume', uid: dv?.metadata.uid });
    emu.delete('cdi.kubevirt.io/v1beta1', 'DataVolume', NS, 'iso');
    await emu.waitFor(() => !emu.get('v1', 'PersistentVolumeClaim', NS, 'iso'));
  });

  it('reports an unreachable source like CDI (Running=False, reason Error), never Succeeded', async () => {
    emu.create(dataVolume('bad', 'http://unreachable.invalid/disk.img'));
    const dv = await emu.waitFor(() => {
      const o = emu.get('cdi.kubevirt.io/v1beta1', 'DataVolume', NS, 'bad');
      const c = ((o?.status as { conditions?: { type: string; status: string; reason: string; message?: string }[] })?.conditions ?? []).find((x) => x.type === 'Running');
      return c?.reason === 'Error' && o;
    });
    const s = dv.status as { phase: string; restartCount: number; conditions: { type: string; status: string; message?: string }[] };
    expect(s.phase).to.equal('ImportInProgress');
    expect(s.restartCount).to.equal(1);
    const running = s.conditions.find((c) => c.type === 'Running');
    expect(running?.status).to.equal('False');
    expect(running?.message).to.contain('Unable to connect to http data source').and.contain('unreachable.invalid');
    // every import step CDI had scheduled has run: none moved the DataVolume on
    await emu.settled();
    expect((emu.get('cdi.kubevirt.io/v1beta1', 'DataVolume', NS, 'bad')?.status as { phase: string }).phase).to.equal('ImportInProgress');
  });

  it('stops driving a DataVolume whose status a test changed', async () => {
    const dv = emu.create(dataVolume('hooked', 'http://images.example/x.iso'));
    await emu.waitFor(() => (emu.get('cdi.kubevirt.io/v1beta1', 'DataVolume', NS, 'hooked')?.status as { phase?: string } | undefined)?.phase);
    const cur = emu.get('cdi.kubevirt.io/v1beta1', 'DataVolume', NS, 'hooked')!;
    cur.status = { phase: 'Failed', conditions: [{ type: 'Running', status: 'False', reason: 'Error', message: 'boom' }] };
    emu.update(cur);
    // the import step that was pending has run (and found the status not its own)
    await emu.settled();
    const after = emu.get('cdi.kubevirt.io/v1beta1', 'DataVolume', NS, 'hooked')!;
    expect(after.metadata.uid).to.equal(dv.metadata.uid);
    expect(after.status).to.deep.equal(cur.status);
  });
});

describe('apiserver emulator: fault hooks', () => {
  let emu: ApiServerEmulator;
  let kc: KubeConfig;
  let core: CoreV1Api;
  emulatorPerTest({}, (e) => {
    emu = e;
    kc = e.makeKubeConfig();
    core = kc.makeApiClient(CoreV1Api);
  });

  it('failNext: the next N (matching) requests fail with the given status, then all is well', async () => {
    emu.faults.failNext(2, 503, (r) => r.method === 'GET' && r.path.endsWith('/configmaps'));
    await core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'x' } } }); // does not match
    for (let i = 0; i < 2; i++) {
      try {
        await core.listNamespacedConfigMap({ namespace: NS });
        expect.fail('expected a 503');
      } catch (e) {
        expect(e).to.be.instanceOf(ApiException);
        expect((e as ApiException<string>).code).to.equal(503);
        expect(JSON.parse((e as ApiException<string>).body)).to.deep.include({ kind: 'Status', reason: 'ServiceUnavailable', code: 503 });
      }
    }
    expect((await core.listNamespacedConfigMap({ namespace: NS })).items).to.have.length(1);
    emu.faults.failNext(1);
    try {
      await core.readNamespacedConfigMap({ namespace: NS, name: 'x' });
      expect.fail('expected a 500');
    } catch (e) {
      expect((e as ApiException<string>).code).to.equal(500);
    }
    expect(emu.audit.slice(-4).map((a) => a.code)).to.deep.equal([503, 503, 200, 500]);
  });

  it('refuseConnections: ECONNREFUSED while on, same URL works again after', async () => {
    await emu.faults.refuseConnections(true);
    try {
      await core.listNamespacedConfigMap({ namespace: NS });
      expect.fail('expected a connection error');
    } catch (e) {
      expect(String((e as Error).message) + String((e as { code?: string }).code)).to.contain('ECONNREFUSED');
    }
    await emu.faults.refuseConnections(false);
    const list = await core.listNamespacedConfigMap({ namespace: NS });
    expect(list.items).to.deep.equal([]);
    expect(emu.url).to.equal(kc.getCurrentCluster()?.server);
  });

  it('refuseConnections ends open watches; an informer recovers once the server is back', async () => {
    const informer = makeInformer(kc, `/api/v1/namespaces/${NS}/configmaps`, () => core.listNamespacedConfigMap({ namespace: NS }));
    const errors: unknown[] = [];
    informer.on('error', (e) => {
      errors.push(e);
      // like a controller would: retry after a moment
      setTimeout(() => void informer.start().catch(() => undefined), 20);
    });
    const names = new Set<string>();
    informer.on('add', (o: V1ConfigMap) => names.add(o.metadata?.name ?? ''));
    await informer.start();
    await emu.faults.refuseConnections(true);
    emu.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'while-down', namespace: NS } });
    await emu.waitFor(() => errors.length > 0);
    await emu.faults.refuseConnections(false);
    await emu.waitFor(() => names.has('while-down'));
    await informer.stop();
  });

  it('delayResponses delays every response', async () => {
    emu.faults.delayResponses(120);
    const t0 = Date.now();
    await core.listNamespacedConfigMap({ namespace: NS });
    expect(Date.now() - t0).to.be.greaterThanOrEqual(115);
    emu.faults.delayResponses(0);
  });

  it('failNext can target watches through the query string', async () => {
    emu.faults.failNext(1, 500, (r) => r.url.includes('watch=true'));
    let err: unknown;
    await new Watch(kc).watch(`/api/v1/namespaces/${NS}/configmaps`, {}, () => undefined, (e) => {
      err = e ?? 'closed';
    });
    await emu.waitFor(() => err);
    expect((err as { statusCode?: number }).statusCode).to.equal(500);
    expect((await core.listNamespacedConfigMap({ namespace: NS })).items).to.deep.equal([]);
  });

  it('watches a single object by its item path (legacy form)', async () => {
    const events: string[] = [];
    const ctl = await new Watch(kc).watch(`/api/v1/namespaces/${NS}/configmaps/one`, {}, (t, o: V1ConfigMap) => events.push(`${t} ${o.metadata?.name}`), () => undefined);
    await core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'two' } } });
    await core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'one' } } });
    await emu.waitFor(() => events.length > 0);
    ctl.abort();
    expect(events).to.deep.equal(['ADDED one']);
    expect(emu.audit.find((a) => a.verb === 'watch')).to.deep.include({ resource: 'configmaps', name: 'one', code: 200 });
  });

  it('dropWatches closes streams (done callback fires)', async () => {
    let done = false;
    await new Watch(kc).watch(`/api/v1/namespaces/${NS}/configmaps`, {}, () => undefined, () => {
      done = true;
    });
    emu.faults.dropWatches();
    await emu.waitFor(() => done);
  });
});

describe('apiserver emulator: bad input', () => {
  it('answers malformed requests with Status errors and keeps serving', async () => {
    const emu = await startApiServer();
    try {
      const kc = emu.makeKubeConfig();
      const token = kc.getCurrentUser()?.token ?? '';
      const send = async (method: string, path: string, body?: string, ct = 'application/json'): Promise<{ status: number; kind?: string }> => {
        const r = await fetch(emu.url + path, { method, headers: { Authorization: `Bearer ${token}`, 'Content-Type': ct }, body });
        const text = await r.text();
        let kind: string | undefined;
        try {
          kind = (JSON.parse(text) as { kind?: string }).kind;
        } catch {
          kind = undefined;
        }
        return { status: r.status, kind };
      };
      const cases: [string, string, string | undefined, string | undefined, number][] = [
        ['GET', '/api/v1/namespaces/default/configmaps/%zz', undefined, undefined, 404],
        ['POST', '/api/v1/namespaces/default/configmaps', '[1,2]', undefined, 400],
        ['POST', '/api/v1/namespaces/default/configmaps', '"str"', undefined, 400],
        ['POST', '/api/v1/namespaces/default/configmaps', '{"metadata": 5}', undefined, 400],
        ['PUT', '/api/v1/namespaces/default/configmaps', '{}', undefined, 405],
        ['PATCH', '/api/v1/namespaces/default/configmaps/nope', '{}', 'application/merge-patch+json', 404],
        ['GET', '/api/v1/namespaces/default/configmaps?labelSelector=%28%28', undefined, undefined, 400],
        ['GET', '/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=abc', undefined, undefined, 400],
        ['GET', '/api/v1/namespaces/default/configmaps?continue=%21%21', undefined, undefined, 400],
        ['DELETE', '/api/v1/namespaces/default/configmaps/x?propagationPolicy=Sometimes', undefined, undefined, 422],
        ['OPTIONS', '/api/v1/namespaces/default/configmaps', undefined, undefined, 405],
        ['GET', '/apis/kubevirt.io/v1/namespaces/default/virtualmachines/a/b/c/d', undefined, undefined, 404],
        ['PUT', '/apis/subresources.kubevirt.io/v1/namespaces/default/virtualmachines/vm/start', '[', undefined, 400],
        ['GET', '/apis/subresources.kubevirt.io/v1/namespaces/default/virtualmachines/vm/start', undefined, undefined, 405],
      ];
      for (const [method, path, body, ct, code] of cases) {
        const r = await send(method, path, body, ct);
        expect(r, `${method} ${path}`).to.deep.equal({ status: code, kind: 'Status' });
      }
      const big = await send('POST', '/api/v1/namespaces/default/configmaps', JSON.stringify({ metadata: { name: 'big' }, data: { x: 'a'.repeat(4 * 1024 * 1024) } }));
      expect(big.status).to.equal(413);
      expect((await send('GET', '/api/v1/namespaces/default/configmaps')).status).to.equal(200);
      expect(emu.controllerErrors).to.deep.equal([]);
    } finally {
      await emu.close();
    }
  });
});
