/**
 * Server-Side Apply in the emulator (test/emulator/managed-fields.ts), checked against what
 * kube-apiserver answers: field ownership per manager, pruning, conflicts and force, Update
 * entries for other writes, associative lists by key, atomic lists and maps, PatchOptions
 * validation, and client-node's own ServerSideApply strategy.
 */
import { KubernetesObjectApi, PatchStrategy, type KubeConfig } from '@kubernetes/client-node';
import { expect } from 'chai';
import type { ApiServerEmulator } from './index.js';
import { emulatorPerTest, rawRequest, type RawReply } from './helpers.js';
import { fromFieldsV1 } from './managed-fields.js';
import type { KubeObject } from './types.js';

const NS = 'default';
const CM = `/api/v1/namespaces/${NS}/configmaps`;
const DEPLOY = `/apis/apps/v1/namespaces/${NS}/deployments`;
const SVC = `/api/v1/namespaces/${NS}/services`;
const ROLE = `/apis/rbac.authorization.k8s.io/v1/namespaces/${NS}/roles`;
const APPLY = 'application/apply-patch+yaml';

type Entry = { manager: string; operation: string; apiVersion: string; time?: string; fieldsType: string; fieldsV1: Record<string, unknown>; subresource?: string };
type Status = { reason: string; message: string; code: number; details?: { causes?: { type?: string; field?: string; message?: string }[] } };

function cm(data: Record<string, string>, labels?: Record<string, string>): KubeObject {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c', ...(labels ? { labels } : {}) }, data };
}

function deployment(containers: unknown[], extra: Record<string, unknown> = {}): KubeObject {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'd' },
    spec: { selector: { matchLabels: { app: 'd' } }, template: { metadata: { labels: { app: 'd' } }, spec: { containers } }, ...extra },
  };
}

function entries(o: unknown): Entry[] {
  return ((o as KubeObject).metadata.managedFields as Entry[] | undefined) ?? [];
}

function fieldsOf(o: unknown, manager: string): string[] {
  const e = entries(o).find((x) => x.manager === manager);
  return e ? [...fromFieldsV1(e.fieldsV1)].map((s) => (JSON.parse(s) as string[]).join('/')).sort() : [];
}

describe('emulator: Server-Side Apply and managedFields', () => {
  let emu: ApiServerEmulator;
  let kc: KubeConfig;
  emulatorPerTest({}, (e) => {
    emu = e;
    kc = e.makeKubeConfig();
  });

  const apply = (path: string, obj: unknown, manager: string | undefined, extra = ''): Promise<RawReply> =>
    rawRequest(kc, 'PATCH', `${path}?${manager !== undefined ? `fieldManager=${manager}` : ''}${extra}`, obj, APPLY);

  it('creates on apply (201), records an Apply entry with FieldsV1, and a second identical apply writes nothing', async () => {
    const r = await apply(`${CM}/c`, cm({ a: '1' }, { app: 'x' }), 'mgr');
    expect(r.status).to.equal(201);
    const [e] = entries(r.body);
    expect(e).to.include({ manager: 'mgr', operation: 'Apply', apiVersion: 'v1', fieldsType: 'FieldsV1' });
    expect(e!.time).to.match(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(e!.fieldsV1).to.deep.equal({ 'f:data': { 'f:a': {} }, 'f:metadata': { 'f:labels': { 'f:app': {} } } });
    const rv = (r.body as KubeObject).metadata.resourceVersion;
    const again = await apply(`${CM}/c`, cm({ a: '1' }, { app: 'x' }), 'mgr');
    expect(again.status).to.equal(200);
    expect((again.body as KubeObject).metadata.resourceVersion).to.equal(rv);
    expect(emu.get('v1', 'ConfigMap', NS, 'c')?.metadata.resourceVersion).to.equal(rv);
  });

  it('accepts a YAML body', async () => {
    const opts = await kc.applyToFetchOptions({});
    const headers: Record<string, string> = { 'Content-Type': APPLY };
    (opts.headers as unknown as { forEach: (cb: (v: string, k: string) => void) => void }).forEach((v, k) => (headers[k] = v));
    const yaml = 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  a: "1"\n';
    const res = await fetch(`${kc.getCurrentCluster()?.server}${CM}/c?fieldManager=y`, { method: 'PATCH', headers, body: yaml });
    expect(res.status).to.equal(201);
    expect(emu.get('v1', 'ConfigMap', NS, 'c')?.data).to.deep.equal({ a: '1' });
  });

  it('refuses an apply without fieldManager, force on other patches, managedFields in the config, and another type (upstream PatchOptions validation)', async () => {
    const r = await apply(`${CM}/c`, cm({ a: '1' }), undefined);
    expect(r.status).to.equal(422);
    expect(r.body).to.deep.include({ reason: 'Invalid', message: 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch' });
    emu.create(cm({ a: '1' }));
    const f = await rawRequest(kc, 'PATCH', `${CM}/c?force=true`, { data: { a: '2' } }, 'application/merge-patch+json');
    expect(f.status).to.equal(422);
    expect((f.body as Status).message).to.contain('force: Forbidden: may not be specified for non-apply patch');
    const mf = await apply(`${CM}/c`, { ...cm({ a: '1' }), metadata: { name: 'c', managedFields: [] } }, 'mgr');
    expect(mf.status).to.equal(400);
    expect((mf.body as Status).message).to.equal('metadata.managedFields must be nil');
    const other = await apply(`${CM}/c`, { ...cm({ a: '1' }), kind: 'Secret' }, 'mgr');
    expect(other.status).to.equal(400);
    expect(emu.get('v1', 'ConfigMap', NS, 'c')?.data).to.deep.equal({ a: '1' });
  });

  it('removes what the applier no longer applies, keeps what another manager owns', async () => {
    await apply(`${CM}/c`, cm({ a: '1', b: '2', c: '3' }), 'one');
    await apply(`${CM}/c`, cm({ c: '3' }), 'two');
    const r = await apply(`${CM}/c`, cm({ a: '1' }), 'one');
    expect(r.status).to.equal(200);
    // b was only "one"'s: gone; c is still "two"'s: kept
    expect(emu.get('v1', 'ConfigMap', NS, 'c')?.data).to.deep.equal({ a: '1', c: '3' });
    expect(fieldsOf(r.body, 'one')).to.deep.equal(['f:data/f:a']);
    expect(fieldsOf(r.body, 'two')).to.deep.equal(['f:data/f:c']);
  });

  it('a field another manager owns with another value is a 409 FieldManagerConflict; force takes it over', async () => {
    await apply(`${CM}/c`, cm({ a: '1' }), 'one');
    // the same value is shared ownership, no conflict
    const same = await apply(`${CM}/c`, cm({ a: '1' }), 'two');
    expect(same.status).to.equal(200);
    expect(fieldsOf(same.body, 'one')).to.deep.equal(['f:data/f:a']);
    expect(fieldsOf(same.body, 'two')).to.deep.equal(['f:data/f:a']);
    await apply(`${CM}/c`, cm({ b: '1' }), 'two');
    const r = await apply(`${CM}/c`, cm({ a: '2' }), 'three');
    expect(r.status).to.equal(409);
    const s = r.body as Status;
    expect(s.reason).to.equal('Conflict');
    expect(s.message).to.equal('Apply failed with 1 conflict: conflict with "one": .data.a');
    expect(s.details?.causes).to.deep.equal([{ type: 'FieldManagerConflict', message: 'conflict with "one"', field: '.data.a' }]);
    expect(emu.get('v1', 'ConfigMap', NS, 'c')?.data).to.deep.equal({ a: '1', b: '1' });
    const forced = await apply(`${CM}/c`, cm({ a: '2' }), 'three', '&force=true');
    expect(forced.status).to.equal(200);
    expect(emu.get('v1', 'ConfigMap', NS, 'c')?.data).to.deep.equal({ a: '2', b: '1' });
    expect(fieldsOf(forced.body, 'three')).to.deep.equal(['f:data/f:a']);
    expect(entries(forced.body).map((e) => e.manager)).to.not.include('one');
  });

  it('other writes record Update entries (fieldManager, else the User-Agent prefix) that take the changed fields; conflicts then name them with version and time', async () => {
    await apply(`${CM}/c`, cm({ a: '1', b: '1' }), 'ctl');
    const m = await rawRequest(kc, 'PATCH', `${CM}/c?fieldManager=editor`, { data: { a: 'edited' } }, 'application/merge-patch+json');
    expect(m.status).to.equal(200);
    const ed = entries(m.body).find((e) => e.manager === 'editor');
    expect(ed).to.include({ operation: 'Update', apiVersion: 'v1' });
    expect(fieldsOf(m.body, 'editor')).to.deep.equal(['f:data/f:a']);
    expect(fieldsOf(m.body, 'ctl')).to.deep.equal(['f:data/f:b']);
    const c = await apply(`${CM}/c`, cm({ a: '1', b: '1' }), 'ctl');
    expect(c.status).to.equal(409);
    expect((c.body as Status).message).to.equal(`Apply failed with 1 conflict: conflict with "editor" using v1 at ${ed!.time}: .data.a`);
    // a PUT by a client naming no manager: recorded under its User-Agent up to the first "/"
    const opts = await kc.applyToFetchOptions({});
    const headers: Record<string, string> = { 'Content-Type': 'application/json', 'User-Agent': 'kubectl/v1.31.0 (linux/amd64)' };
    (opts.headers as unknown as { forEach: (cb: (v: string, k: string) => void) => void }).forEach((v, k) => (headers[k] = v));
    const cur = emu.get('v1', 'ConfigMap', NS, 'c')!;
    const res = await fetch(`${kc.getCurrentCluster()?.server}${CM}/c`, { method: 'PUT', headers, body: JSON.stringify({ ...cur, data: { ...cur.data as object, z: '1' } }) });
    expect(res.status).to.equal(200);
    expect(fieldsOf(await res.json(), 'kubectl')).to.deep.equal(['f:data/f:z']);
  });

  it('a create records an Update entry for its manager owning every field it set', async () => {
    const r = await rawRequest(kc, 'POST', `${CM}?fieldManager=maker`, cm({ a: '1' }, { l: 'v' }));
    expect(r.status).to.equal(201);
    expect(entries(r.body)).to.have.length(1);
    expect(entries(r.body)[0]).to.include({ manager: 'maker', operation: 'Update' });
    expect(fieldsOf(r.body, 'maker')).to.deep.equal(['f:data/f:a', 'f:metadata/f:labels/f:l']);
  });

  it('direct writes (emu.create/update) are recorded as manager "emulator"; an object without managedFields: its fields belong to "before-first-apply", as upstream', async () => {
    emu.create(cm({ a: '1' }));
    expect(entries(emu.get('v1', 'ConfigMap', NS, 'c'))[0]).to.include({ manager: 'emulator', operation: 'Update' });
    const taken = await apply(`${CM}/c`, cm({ a: '2' }), 'mgr');
    expect(taken.status).to.equal(409);
    expect((taken.body as Status).message).to.match(/^Apply failed with 1 conflict: conflict with "emulator" using v1 at /);
    // a client may empty managedFields with [{}] (managedfields internal/fieldmanager.go)
    const cur = emu.get('v1', 'ConfigMap', NS, 'c')!;
    const reset = await rawRequest(kc, 'PUT', `${CM}/c`, { ...cur, metadata: { ...cur.metadata, managedFields: [{}] } });
    expect(reset.status).to.equal(200);
    expect(entries(reset.body).map((e) => e.manager)).to.deep.equal([]);
    const r = await apply(`${CM}/c`, cm({ a: '2' }), 'mgr');
    expect(r.status).to.equal(409);
    expect((r.body as Status).message).to.equal('Apply failed with 1 conflict: conflict with "before-first-apply" using v1: .data.a');
  });

  it('associative lists merge by key (containers by name, ports by containerPort+protocol with protocol defaulted, env by name); items are members', async () => {
    const c1 = { name: 'app', image: 'i:1', ports: [{ containerPort: 80 }], env: [{ name: 'A', value: '1' }] };
    const r = await apply(`${DEPLOY}/d`, deployment([c1]), 'ctl');
    expect(r.status).to.equal(201);
    const spec = (r.body as KubeObject).metadata.managedFields as Entry[];
    const containers = ((((spec[0]!.fieldsV1['f:spec'] as Record<string, unknown>)['f:template'] as Record<string, unknown>)['f:spec'] as Record<string, unknown>)['f:containers'] as Record<string, Record<string, unknown>>);
    const item = containers['k:{"name":"app"}']!;
    expect(item['.']).to.deep.equal({});
    expect(item['f:ports']).to.have.key('k:{"containerPort":80,"protocol":"TCP"}');
    expect(item['f:env']).to.have.key('k:{"name":"A"}');
    // the selector is atomic (LabelSelector +structType=atomic): one leaf
    expect(fieldsOf(r.body, 'ctl')).to.include('f:spec/f:selector');
    expect(fieldsOf(r.body, 'ctl').some((p) => p.startsWith('f:spec/f:selector/'))).to.equal(false);
    // a second manager adds a sidecar and an env var to "app": merged by key, not replaced
    const side = await apply(`${DEPLOY}/d`, { ...deployment([{ name: 'app', env: [{ name: 'B', value: '2' }] }, { name: 'side', image: 's:1' }]), spec: { template: { spec: { containers: [{ name: 'app', env: [{ name: 'B', value: '2' }] }, { name: 'side', image: 's:1' }] } } } }, 'other');
    expect(side.status).to.equal(200);
    const live = emu.get('apps/v1', 'Deployment', NS, 'd')!;
    const cs = ((live.spec as { template: { spec: { containers: { name: string; env?: { name: string }[]; image?: string }[] } } }).template.spec.containers);
    expect(cs.map((c) => c.name)).to.deep.equal(['app', 'side']);
    expect(cs[0]!.env!.map((e) => e.name)).to.deep.equal(['A', 'B']);
    expect(cs[0]!.image).to.equal('i:1');
    // "ctl" drops its env var A: removed; B stays ("other"'s)
    const dropped = await apply(`${DEPLOY}/d`, deployment([{ ...c1, env: [] }]), 'ctl');
    expect(dropped.status).to.equal(200);
    const after = emu.get('apps/v1', 'Deployment', NS, 'd')!;
    const app = (after.spec as { template: { spec: { containers: { name: string; env?: { name: string }[] }[] } } }).template.spec.containers[0]!;
    expect(app.env!.map((e) => e.name)).to.deep.equal(['B']);
  });

  it('an applied configuration naming one list item twice is 422 (SMD validate.go)', async () => {
    const r = await apply(`${DEPLOY}/d`, deployment([{ name: 'app', image: 'a' }, { name: 'app', image: 'b' }]), 'ctl');
    expect(r.status).to.equal(422);
    expect((r.body as Status).message).to.equal('.spec.template.spec.containers: duplicate entries for key [name="app"]');
    expect(emu.get('apps/v1', 'Deployment', NS, 'd')).to.equal(undefined);
  });

  it('atomic lists and maps are replaced whole and owned as one field (Role rules, a Service selector)', async () => {
    const role = (rules: unknown[]) => ({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name: 'r' }, rules });
    await apply(`${ROLE}/r`, role([{ apiGroups: [''], resources: ['pods'], verbs: ['get'] }, { apiGroups: [''], resources: ['secrets'], verbs: ['get'] }]), 'ctl');
    const r = await apply(`${ROLE}/r`, role([{ apiGroups: [''], resources: ['pods'], verbs: ['get'] }]), 'ctl');
    expect(fieldsOf(r.body, 'ctl')).to.deep.equal(['f:rules']);
    expect(emu.get('rbac.authorization.k8s.io/v1', 'Role', NS, 'r')?.rules).to.have.length(1);

    const svc = (selector: Record<string, string>) => ({ apiVersion: 'v1', kind: 'Service', metadata: { name: 's' }, spec: { selector, ports: [{ name: 'http', port: 80 }] } });
    await apply(`${SVC}/s`, svc({ app: 's' }), 'ctl');
    // someone adds a selector key: the selector is one field, theirs now
    const m = await rawRequest(kc, 'PATCH', `${SVC}/s?fieldManager=editor`, { spec: { selector: { app: 's', extra: 'x' } } }, 'application/merge-patch+json');
    expect(fieldsOf(m.body, 'editor')).to.deep.equal(['f:spec/f:selector']);
    expect(fieldsOf(m.body, 'ctl')).to.include('f:spec/f:ports/k:{"port":80,"protocol":"TCP"}');
    // the forced apply puts the selector back exactly (no stray key survives)
    const back = await apply(`${SVC}/s`, svc({ app: 's' }), 'ctl', '&force=true');
    expect(back.status).to.equal(200);
    expect((emu.get('v1', 'Service', NS, 's')?.spec as { selector: unknown }).selector).to.deep.equal({ app: 's' });
  });

  it('a label the applier stops applying goes; a label only someone else set stays', async () => {
    await apply(`${CM}/c`, cm({ a: '1' }, { mine: '1', old: '1' }), 'ctl');
    await rawRequest(kc, 'PATCH', `${CM}/c?fieldManager=user`, { metadata: { labels: { theirs: '1' } } }, 'application/merge-patch+json');
    await apply(`${CM}/c`, cm({ a: '1' }, { mine: '1' }), 'ctl');
    expect(emu.get('v1', 'ConfigMap', NS, 'c')?.metadata.labels).to.deep.equal({ mine: '1', theirs: '1' });
  });

  it('dryRun=All applies nothing; status is not owned through the main resource', async () => {
    const r = await apply(`${CM}/c`, cm({ a: '1' }), 'ctl', '&dryRun=All');
    expect(r.status).to.equal(201);
    expect(emu.get('v1', 'ConfigMap', NS, 'c')).to.equal(undefined);
    const d = await apply(`${DEPLOY}/d`, { ...deployment([{ name: 'app', image: 'i' }]), status: { replicas: 7 } }, 'ctl');
    expect(fieldsOf(d.body, 'ctl').some((p) => p.startsWith('f:status'))).to.equal(false);
  });

  it('client-node KubernetesObjectApi.patch with PatchStrategy.ServerSideApply works against it', async () => {
    const api = KubernetesObjectApi.makeApiClient(kc);
    const created = await api.patch(cm({ a: '1' }) as never, undefined, undefined, 'client-node', true, PatchStrategy.ServerSideApply);
    expect((created as KubeObject).data).to.deep.equal({ a: '1' });
    expect(entries(created)[0]).to.include({ manager: 'client-node', operation: 'Apply' });
    expect(emu.audit.filter((a) => a.resource === 'configmaps' && a.verb === 'patch').map((a) => a.code)).to.deep.equal([201]);
  });

  it('an RBAC identity needs create too when the apply creates the object', async () => {
    emu.create({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name: 'p', namespace: NS }, rules: [{ apiGroups: [''], resources: ['configmaps'], verbs: ['patch', 'get'] }] });
    emu.create({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name: 'p', namespace: NS }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'p' }, subjects: [{ kind: 'User', name: 'u' }] });
    const ukc = emu.asUser('u').makeKubeConfig();
    const r = await rawRequest(ukc, 'PATCH', `${CM}/c?fieldManager=u`, cm({ a: '1' }), APPLY);
    expect(r.status).to.equal(403);
    expect((r.body as Status).message).to.contain('cannot create resource "configmaps"');
    emu.create(cm({ a: '1' }));
    const ok = await rawRequest(ukc, 'PATCH', `${CM}/c?fieldManager=u&force=true`, cm({ a: '2' }), APPLY);
    expect(ok.status).to.equal(200);
  });
});
