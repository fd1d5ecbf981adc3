/**
 * Server-Side Apply and metadata.managedFields, as kube-apiserver does them with
 * sigs.k8s.io/structured-merge-diff (SMD) behind k8s.io/apimachinery pkg/util/managedfields:
 *
 * - a field set is a set of paths; a path is a list of elements serialized as in
 *   SMD fieldpath/serialize-pe.go: `f:<field>`, `k:{"key":value,...}` (an item of an associative
 *   list, keys sorted), `v:<json>` (an item of a set list);
 * - what a value owns is SMD typed/tofieldset.go: scalars, null, empty maps, atomic lists and
 *   maps are leaves; an associative list's items are members themselves and their fields too;
 * - Apply and Update follow SMD merge/update.go (`Apply`, `Update`, `update`, `prune`): an applier
 *   owns exactly the fields of its configuration; fields it owned before and no longer applies are
 *   removed unless another manager owns them; a field another manager owns whose value the apply
 *   changes is a conflict unless forced, and forcing takes it from them; any other write (create,
 *   update, patch) takes the fields it changes from everybody and gives them to its manager.
 *
 * There is no OpenAPI document here, so the list types are the upstream markers of the lists the
 * emulator's users write (k8s.io/api core/v1, apps/v1, rbac/v1 types.go: `+listType=map`,
 * `+listMapKey`, else `patchMergeKey`, which kube-openapi's schemaconv also turns into an
 * associative list); every other list is atomic, as SMD treats a list without markers.
 */
import { ApiError, badRequest } from './status.js';
import { clone, deepEqual } from './patch.js';
import type { KubeObject } from './types.js';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);

/** How a list is merged and owned: by keys (with the keys' schema defaults), as a set, or whole. */
type ListType = { keys: string[]; defaults?: Obj } | 'set' | 'atomic';

const CONTAINER_LISTS = new Set(['containers', 'initContainers', 'ephemeralContainers']);
/** core/v1 types.go: ContainerPort and ServicePort `protocol` defaults to TCP (the key default SMD uses) */
const TCP = { protocol: 'TCP' };

/**
 * The list type at `names` (the field names from the root, list items skipped) of an object of `kind`.
 * Keys from k8s.io/api: PodSpec containers/initContainers/ephemeralContainers (name), volumes
 * (name), imagePullSecrets (name), hostAliases (ip), topologySpreadConstraints (topologyKey,
 * whenUnsatisfiable); Container ports (containerPort, protocol), env (name), volumeMounts
 * (mountPath), volumeDevices (devicePath); ServiceSpec ports (port, protocol); ObjectMeta
 * ownerReferences (uid) and finalizers (set); conditions (type). PolicyRule lists (Role rules)
 * and RoleBinding subjects are `+listType=atomic`.
 */
function listType(kind: string, names: string[]): ListType {
  const last = names[names.length - 1] ?? '';
  const parent = names[names.length - 2] ?? '';
  if (names.length === 2 && parent === 'metadata') {
    if (last === 'ownerReferences') return { keys: ['uid'] };
    if (last === 'finalizers') return 'set';
    return 'atomic';
  }
  if (CONTAINER_LISTS.has(last)) return { keys: ['name'] };
  if (CONTAINER_LISTS.has(parent)) {
    if (last === 'ports') return { keys: ['containerPort', 'protocol'], defaults: TCP };
    if (last === 'env') return { keys: ['name'] };
    if (last === 'volumeMounts') return { keys: ['mountPath'] };
    if (last === 'volumeDevices') return { keys: ['devicePath'] };
    return 'atomic';
  }
  if (kind === 'Service' && names.join('.') === 'spec.ports') return { keys: ['port', 'protocol'], defaults: TCP };
  switch (last) {
    case 'volumes':
    case 'imagePullSecrets':
      return { keys: ['name'] };
    case 'hostAliases':
      return { keys: ['ip'] };
    case 'topologySpreadConstraints':
      return { keys: ['topologyKey', 'whenUnsatisfiable'] };
    case 'conditions':
      return { keys: ['type'] };
    default:
      return 'atomic';
  }
}

/**
 * Maps and structs owned and replaced whole (`+mapType=atomic` / `+structType=atomic`): a
 * Deployment's LabelSelector, a Service's selector, RoleBinding roleRef, and the references an
 * env var's valueFrom holds (ObjectFieldSelector, SecretKeySelector, ConfigMapKeySelector,
 * ResourceFieldSelector). An item of ownerReferences (OwnerReference) is atomic too.
 */
function atomicMap(kind: string, names: string[]): boolean {
  const p = names.join('.');
  if (p === 'spec.selector' && (kind === 'Service' || kind === 'Deployment' || kind === 'ReplicaSet' || kind === 'StatefulSet' || kind === 'DaemonSet')) return true;
  if (p === 'roleRef' || p === 'metadata.ownerReferences') return true;
  const last = names[names.length - 1] ?? '';
  return names[names.length - 2] === 'valueFrom' && ['fieldRef', 'secretKeyRef', 'configMapKeyRef', 'resourceFieldRef'].includes(last);
}

/** A path: serialized path elements. */
export type Path = string[];
/** A set of paths, each as JSON.stringify(path) */
export type FieldSet = Set<string>;

function keyElement(item: Obj, t: { keys: string[]; defaults?: Obj }): string | undefined {
  const fields: Obj = {};
  for (const k of [...t.keys].sort()) {
    const v = Object.hasOwn(item, k) ? item[k] : t.defaults?.[k];
    if (v === undefined) return undefined;
    fields[k] = v;
  }
  return `k:${JSON.stringify(fields)}`;
}

/** stripmeta.go (managedfields internal): fields nobody owns */
const STRIPPED = new Set(['apiVersion', 'kind']);
const STRIPPED_META = new Set(['name', 'namespace', 'creationTimestamp', 'selfLink', 'uid', 'generation', 'managedFields', 'resourceVersion', 'deletionTimestamp', 'deletionGracePeriodSeconds']);

/**
 * The paths a value owns, each with its value for comparison (SMD typed/tofieldset.go; list items
 * that are members carry a marker). `scope`: the main resource resets status, the status
 * subresource everything but status (the strategies' GetResetFields), so those are not tracked.
 */
export function leaves(kind: string, obj: unknown, scope: 'main' | 'status' | 'all' = 'all', strict = false): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (v: unknown, path: Path, names: string[]): void => {
    if (Array.isArray(v)) {
      const t = listType(kind, names);
      if (t === 'atomic') {
        out.set(JSON.stringify(path), JSON.stringify(v));
        return;
      }
      for (const item of v) {
        if (t === 'set') {
          out.set(JSON.stringify([...path, `v:${JSON.stringify(item)}`]), JSON.stringify(item));
          continue;
        }
        const pe = isObj(item) ? keyElement(item, t) : undefined;
        if (pe === undefined) throw invalidKeys(path, t.keys);
        const p = [...path, pe];
        // SMD typed/validate.go: an applied configuration may not name one item twice
        if (strict && out.has(JSON.stringify(p))) throw new ApiError(422, `${pathString(path)}: duplicate entries for key ${pathString([pe])}`, 'Invalid');
        out.set(JSON.stringify(p), '{}');
        if (atomicMap(kind, names)) out.set(JSON.stringify(p), JSON.stringify(item));
        else walk(item, p, names);
      }
      return;
    }
    if (isObj(v) && path.length > 0 && !atomicMap(kind, names)) {
      const entries = Object.entries(v);
      if (entries.length === 0) out.set(JSON.stringify(path), '{}');
      for (const [k, child] of entries) walk(child, [...path, `f:${k}`], [...names, k]);
      return;
    }
    if (isObj(v) && path.length === 0) {
      for (const [k, child] of Object.entries(v)) {
        if (STRIPPED.has(k)) continue;
        if (k === 'status' && scope === 'main') continue;
        if (k !== 'status' && scope === 'status') continue;
        if (k === 'metadata' && isObj(child)) {
          for (const [mk, mv] of Object.entries(child)) if (!STRIPPED_META.has(mk)) walk(mv, ['f:metadata', `f:${mk}`], ['metadata', mk]);
          continue;
        }
        walk(child, [`f:${k}`], [k]);
      }
      return;
    }
    out.set(JSON.stringify(path), JSON.stringify(v));
  };
  walk(obj, [], []);
  return out;
}

function invalidKeys(path: Path, keys: string[]): ApiError {
  return new ApiError(422, `${pathString(path)}: associative list with keys has an element that omits key field(s) ${keys.map((k) => `"${k}"`).join(', ')}`, 'Invalid');
}

/** SMD fieldpath/element.go PathElement.String: `.spec.ports[port=80,protocol="TCP"].name` */
export function pathString(path: Path): string {
  return path
    .map((pe) => {
      if (pe.startsWith('f:')) return `.${pe.slice(2)}`;
      if (pe.startsWith('k:')) {
        const o = JSON.parse(pe.slice(2)) as Obj;
        return `[${Object.entries(o).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(',')}]`;
      }
      if (pe.startsWith('v:')) return `[=${pe.slice(2)}]`;
      return `[${pe.slice(2)}]`;
    })
    .join('');
}

// ---------------------------------------------------------------- FieldsV1 encoding

/** A set as FieldsV1: nested objects, `{}` a leaf member, `".": {}` a member that has children. */
export function toFieldsV1(set: FieldSet): Obj {
  const root: Obj = {};
  const paths = [...set].map((s) => JSON.parse(s) as Path);
  for (const p of paths) {
    let node = root;
    for (const pe of p) node = (node[pe] ??= {}) as Obj;
  }
  for (const p of paths) {
    let node = root;
    for (const pe of p) node = node[pe] as Obj;
    if (Object.keys(node).length > 0) node['.'] = {};
  }
  return sortKeys(root);
}

function sortKeys(o: Obj): Obj {
  const out: Obj = {};
  for (const k of Object.keys(o).sort((a, b) => (a === '.' ? -1 : b === '.' ? 1 : a < b ? -1 : a > b ? 1 : 0))) out[k] = sortKeys(o[k] as Obj);
  return out;
}

export function fromFieldsV1(f: unknown): FieldSet {
  const out: FieldSet = new Set();
  const walk = (node: unknown, path: Path): void => {
    if (!isObj(node)) throw badRequest('metadata.managedFields: fieldsV1 must be an object');
    const keys = Object.keys(node);
    if (keys.length === 0 && path.length > 0) out.add(JSON.stringify(path));
    for (const k of keys) {
      if (k === '.') {
        out.add(JSON.stringify(path));
        continue;
      }
      if (!/^[fkvi]:/.test(k)) throw badRequest(`metadata.managedFields: unknown path element "${k}"`);
      walk(node[k], [...path, k]);
    }
  };
  walk(f ?? {}, []);
  return out;
}

// ---------------------------------------------------------------- managers

export interface Manager {
  manager: string;
  operation: 'Apply' | 'Update';
  apiVersion: string;
  subresource?: string;
  time?: string;
  set: FieldSet;
}

/** managedfields internal/managedfields.go BuildManagerIdentifier: Update entries differ by version too */
function idOf(m: Pick<Manager, 'manager' | 'operation' | 'apiVersion' | 'subresource'>): string {
  return JSON.stringify([m.manager, m.operation, m.operation === 'Update' ? m.apiVersion : '', m.subresource ?? '']);
}

export type Managers = Map<string, Manager>;

export function decodeManagers(obj: KubeObject | undefined): Managers {
  const out: Managers = new Map();
  const mf = obj?.metadata?.managedFields as unknown;
  if (mf === undefined || mf === null) return out;
  if (!Array.isArray(mf)) throw badRequest('metadata.managedFields must be a list');
  for (const e of mf) {
    if (!isObj(e)) throw badRequest('metadata.managedFields: each entry must be an object');
    const m: Manager = {
      manager: String(e.manager ?? ''),
      operation: e.operation === 'Apply' ? 'Apply' : 'Update',
      apiVersion: String(e.apiVersion ?? ''),
      ...(typeof e.subresource === 'string' && e.subresource ? { subresource: e.subresource } : {}),
      ...(typeof e.time === 'string' ? { time: e.time } : {}),
      set: fromFieldsV1(e.fieldsV1),
    };
    out.set(idOf(m), m);
  }
  return out;
}

/** managedfields internal/managedfields.go sortEncodedManagedFields: operation, time, manager, version, subresource */
export function encodeManagers(managers: Managers): unknown[] {
  const list = [...managers.values()].filter((m) => m.set.size > 0);
  const secs = (t?: string) => (t ? Math.floor(Date.parse(t) / 1000) : 0);
  const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  list.sort((p, q) => cmp(p.operation, q.operation) || secs(p.time) - secs(q.time) || cmp(p.manager, q.manager) || cmp(p.apiVersion, q.apiVersion) || cmp(p.subresource ?? '', q.subresource ?? ''));
  return list.map((m) => ({
    manager: m.manager,
    operation: m.operation,
    apiVersion: m.apiVersion,
    ...(m.time ? { time: m.time } : {}),
    fieldsType: 'FieldsV1',
    fieldsV1: toFieldsV1(m.set),
    ...(m.subresource ? { subresource: m.subresource } : {}),
  }));
}

/**
 * apiserver handlers/rest.go managerOrUserAgent / prefixFromUserAgent: a write that names no
 * fieldManager is recorded under its User-Agent up to the first "/", printable characters only,
 * at most 128 (validation.FieldManagerMaxLength).
 */
export function managerFromUserAgent(ua: string | undefined): string {
  const head = (ua ?? '').split('/')[0] ?? '';
  return [...head].filter((c) => /\P{C}/u.test(c)).join('').slice(0, 128);
}

/** apimachinery meta/v1/validation ValidatePatchOptions / ValidateFieldManager, as the 422 the apiserver sends */
export function validatePatchOptions(apply: boolean, query: URLSearchParams): void {
  const causes: { reason: string; message: string; field: string }[] = [];
  const fm = query.get('fieldManager') ?? '';
  if (!apply && query.has('force')) causes.push({ reason: 'FieldValueForbidden', message: 'Forbidden: may not be specified for non-apply patch', field: 'force' });
  if (apply && fm === '') causes.push({ reason: 'FieldValueRequired', message: 'Required value: is required for apply patch', field: 'fieldManager' });
  if (fm.length > 128) causes.push({ reason: 'FieldValueTooLong', message: 'Too long: may not be more than 128 bytes', field: 'fieldManager' });
  else if ([...fm].some((c) => !/\P{C}/u.test(c))) causes.push({ reason: 'FieldValueInvalid', message: `Invalid value: "${fm}": must only contain printable characters`, field: 'fieldManager' });
  if (causes.length === 0) return;
  throw new ApiError(422, `PatchOptions.meta.k8s.io "" is invalid: ${causes.map((c) => `${c.field}: ${c.message}`).join(', ')}`, 'Invalid', {
    group: 'meta.k8s.io',
    kind: 'PatchOptions',
    causes,
  });
}

// ---------------------------------------------------------------- merge, compare, prune

/** SMD typed/merge.go: maps merge, associative lists merge by key, sets are unioned, the rest is replaced. */
function merge(kind: string, live: unknown, config: unknown, names: string[]): unknown {
  if (Array.isArray(config)) {
    const t = listType(kind, names);
    if (t === 'atomic' || !Array.isArray(live)) return clone(config);
    if (t === 'set') {
      const out = clone(live) as unknown[];
      for (const x of config) if (!out.some((y) => deepEqual(x, y))) out.push(clone(x));
      return out;
    }
    const out = (live as unknown[]).map((x) => clone(x));
    const keyOf = (x: unknown) => (isObj(x) ? keyElement(x, t) : undefined);
    for (const item of config) {
      const k = keyOf(item);
      const i = out.findIndex((x) => keyOf(x) === k);
      if (i >= 0) out[i] = atomicMap(kind, names) ? clone(item) : merge(kind, out[i], item, names);
      else out.push(clone(item));
    }
    return out;
  }
  if (isObj(config) && isObj(live) && !atomicMap(kind, names)) {
    const out: Obj = { ...live };
    for (const [k, v] of Object.entries(config)) out[k] = merge(kind, Object.hasOwn(live, k) ? live[k] : undefined, v, [...names, k]);
    return out;
  }
  return clone(config);
}

/** Remove the value at `path` (serialized elements) from `obj`, in place. */
function removeAt(kind: string, obj: unknown, path: Path): void {
  let cur: unknown = obj;
  const names: string[] = [];
  for (let i = 0; i < path.length; i++) {
    const pe = path[i]!;
    const lastStep = i === path.length - 1;
    if (pe.startsWith('f:')) {
      if (!isObj(cur)) return;
      const k = pe.slice(2);
      names.push(k);
      if (lastStep) delete cur[k];
      else cur = cur[k];
      continue;
    }
    if (!Array.isArray(cur)) return;
    const t = listType(kind, names);
    const idx = cur.findIndex((x) => {
      if (pe.startsWith('v:')) return JSON.stringify(x) === pe.slice(2);
      return t !== 'atomic' && t !== 'set' && isObj(x) && keyElement(x, t) === pe;
    });
    if (idx < 0) return;
    if (lastStep) cur.splice(idx, 1);
    else cur = cur[idx];
  }
}

const prefixes = (p: Path): Path[] => p.map((_, i) => p.slice(0, i + 1));

/**
 * SMD merge/update.go prune: what the applier owned before (its named ancestors included,
 * fieldpath EnsureNamedFieldsAreMembers) and nobody owns now (no manager's set holds the path or
 * a path below it) is removed. apiVersion, kind and the stripped metadata stay.
 */
function prune(kind: string, obj: Obj, last: FieldSet | undefined, managers: Managers): void {
  if (!last || last.size === 0) return;
  const owned = new Set<string>();
  for (const m of managers.values()) for (const s of m.set) for (const p of prefixes(JSON.parse(s) as Path)) owned.add(JSON.stringify(p));
  const candidates = new Set<string>();
  for (const s of last) for (const p of prefixes(JSON.parse(s) as Path)) candidates.add(JSON.stringify(p));
  const sorted = [...candidates].map((s) => JSON.parse(s) as Path).sort((a, b) => a.length - b.length);
  const removed: Path[] = [];
  for (const p of sorted) {
    if (owned.has(JSON.stringify(p))) continue;
    if (p.length === 1 && p[0] === 'f:metadata') continue;
    if (removed.some((r) => r.every((pe, i) => p[i] === pe))) continue;
    removeAt(kind, obj, p);
    removed.push(p);
  }
}

interface Comparison {
  added: FieldSet;
  modified: FieldSet;
  removed: FieldSet;
}

/** SMD typed/compare.go: leaves added, removed, or with another value */
function compare(before: Map<string, string>, after: Map<string, string>): Comparison {
  const c: Comparison = { added: new Set(), modified: new Set(), removed: new Set() };
  for (const [p, v] of after) {
    const b = before.get(p);
    if (b === undefined) c.added.add(p);
    else if (b !== v) c.modified.add(p);
  }
  for (const p of before.keys()) if (!after.has(p)) c.removed.add(p);
  return c;
}

const minus = (a: FieldSet, b: FieldSet): FieldSet => new Set([...a].filter((x) => !b.has(x)));

/**
 * managedfields internal/conflict.go NewConflictError: 409 Conflict, one FieldManagerConflict
 * cause per field, the manager printed as printManager does (an Update entry with its version
 * and time).
 */
function conflictError(conflicts: { m: Manager; path: Path }[]): ApiError {
  const who = (m: Manager): string => {
    let s = JSON.stringify(m.manager);
    if (m.subresource) s += ` with subresource ${JSON.stringify(m.subresource)}`;
    if (m.operation === 'Update') s += m.time ? ` using ${m.apiVersion} at ${m.time}` : ` using ${m.apiVersion}`;
    return s;
  };
  let message: string;
  if (conflicts.length === 1) message = `Apply failed with 1 conflict: conflict with ${who(conflicts[0]!.m)}: ${pathString(conflicts[0]!.path)}`;
  else {
    const by = new Map<string, string[]>();
    for (const c of conflicts) by.set(who(c.m), [...(by.get(who(c.m)) ?? []), pathString(c.path)]);
    const lines: string[] = [];
    for (const k of [...by.keys()].sort()) lines.push(`conflicts with ${k}:`, ...by.get(k)!.map((p) => `- ${p}`));
    message = `Apply failed with ${conflicts.length} conflicts: ${lines.join('\n')}`;
  }
  return new ApiError(409, message, 'Conflict', {
    causes: conflicts.map((c) => ({ type: 'FieldManagerConflict', message: `conflict with ${who(c.m)}`, field: pathString(c.path) })),
  } as never);
}

/**
 * SMD merge/update.go `update`: for every other manager, the fields it owns that this write adds
 * or changes are conflicts (an error unless forced; forced, they leave its set), and the fields
 * the write removes leave its set. Managers left with nothing go.
 */
function takeOver(managers: Managers, self: string, cmp: Comparison, force: boolean): void {
  const changed = new Set([...cmp.modified, ...cmp.added]);
  const conflicts: { m: Manager; path: Path }[] = [];
  for (const [id, m] of managers) {
    if (id === self) continue;
    for (const p of m.set) if (changed.has(p)) conflicts.push({ m, path: JSON.parse(p) as Path });
  }
  if (!force && conflicts.length > 0) throw conflictError(conflicts);
  for (const [id, m] of managers) {
    if (id === self) continue;
    m.set = minus(minus(m.set, changed), cmp.removed);
    if (m.set.size === 0) managers.delete(id);
  }
}

function now(): string {
  return new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** A live object created without managedFields: upstream gives its fields to "before-first-apply" (an Update). */
function initialManagers(kind: string, live: KubeObject | undefined, scope: 'main' | 'status' | 'all'): Managers {
  const managers = decodeManagers(live);
  if (live && managers.size === 0) {
    const set = new Set(leaves(kind, live, scope).keys());
    if (set.size > 0) {
      const m: Manager = { manager: 'before-first-apply', operation: 'Update', apiVersion: live.apiVersion ?? '', set };
      managers.set(idOf(m), m);
    }
  }
  return managers;
}

function finish(managers: Managers, id: string, changed: boolean, obj: KubeObject): void {
  const m = managers.get(id);
  if (m && (changed || !m.time)) m.time = now();
  const entries = encodeManagers(managers);
  if (entries.length > 0) obj.metadata.managedFields = entries as never;
  else delete obj.metadata.managedFields;
}

/**
 * Server-Side Apply of `config` by `manager` onto `live` (undefined: the object is created).
 * Returns the object to store, managedFields set. `scope` 'status' for the status subresource.
 */
export function applyConfig(
  kind: string,
  apiVersion: string,
  live: KubeObject | undefined,
  config: KubeObject,
  manager: string,
  force: boolean,
  scope: 'main' | 'status',
): KubeObject {
  if (config.metadata?.managedFields !== undefined) throw badRequest('metadata.managedFields must be nil');
  const base: KubeObject = live ? clone(live) : { apiVersion, kind, metadata: { name: config.metadata?.name, ...(config.metadata?.namespace ? { namespace: config.metadata.namespace } : {}) } };
  const managers = initialManagers(kind, live, scope);
  const self: Manager = { manager, operation: 'Apply', apiVersion, ...(scope === 'status' ? { subresource: 'status' } : {}), set: new Set() };
  const id = idOf(self);
  const lastSet = managers.get(id)?.set;
  const prevTime = managers.get(id)?.time;
  const merged = merge(kind, base, scope === 'status' ? { status: config.status } : config, []) as KubeObject;
  self.set = new Set(leaves(kind, config, scope, true).keys());
  if (prevTime) self.time = prevTime;
  managers.set(id, self);
  prune(kind, merged as unknown as Obj, lastSet, managers);
  const cmp = compare(leaves(kind, live ?? {}, scope), leaves(kind, merged, scope));
  takeOver(managers, id, cmp, force);
  if (self.set.size === 0) managers.delete(id);
  const changed = cmp.added.size + cmp.modified.size + cmp.removed.size > 0;
  finish(managers, id, changed, merged);
  return merged;
}

/**
 * Track a non-apply write (create, update, patch) by `manager` (SMD merge/update.go `Update`):
 * the fields it added or changed become its own and leave everybody else's, removed fields leave
 * every set. A body that carries managedFields replaces the live ones (`[{}]` empties them);
 * none, or an empty list, keeps them (managedfields internal/fieldmanager.go).
 */
export function trackUpdate(kind: string, apiVersion: string, live: KubeObject | undefined, next: KubeObject, manager: string, scope: 'main' | 'status' | 'all'): KubeObject {
  const given = next.metadata?.managedFields as unknown;
  let managers: Managers;
  if (given === undefined || given === null || (Array.isArray(given) && given.length === 0) || deepEqual(given, live?.metadata?.managedFields)) {
    managers = live ? initialManagers(kind, live, scope) : new Map();
  } else if (Array.isArray(given) && given.length === 1 && isObj(given[0]) && Object.keys(given[0]).length === 0) {
    managers = new Map();
  } else {
    managers = decodeManagers(next);
  }
  const self: Manager = { manager, operation: 'Update', apiVersion, ...(scope === 'status' ? { subresource: 'status' } : {}), set: new Set() };
  const id = idOf(self);
  const cmp = compare(leaves(kind, live ?? {}, scope), leaves(kind, next, scope));
  takeOver(managers, id, cmp, true);
  const mine = managers.get(id);
  const prev = mine?.set ?? new Set<string>();
  self.set = new Set([...minus(prev, cmp.removed), ...cmp.modified, ...cmp.added]);
  if (mine?.time) self.time = mine.time;
  if (self.set.size > 0) managers.set(id, self);
  else managers.delete(id);
  const out = clone(next);
  out.metadata = out.metadata ?? {};
  finish(managers, id, cmp.added.size + cmp.modified.size + cmp.removed.size > 0, out);
  return out;
}
