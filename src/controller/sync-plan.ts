/**
 * Drift detection and repair plans for the objects the controller owns (pure, no I/O; controller.ts
 * applies them): "desired is a subset of actual" so fields the apiserver defaults are not fought
 * over, exact comparison where an extra key matters (a Service selector), and the merge patch that
 * puts an object back.
 */
import { AnnotationServiceMetaKeys } from './api/types.js';
import type { KubeObject } from '../kube/types.js';

type Data = Record<string, string>;

/**
 * Does `actual` already hold everything in `desired`? Objects: every desired key must match (the
 * apiserver's defaults are extra keys and are ignored); arrays: same length, element-wise.
 * This is how drift is detected without fighting defaulted fields.
 */
export function isSubset(desired: unknown, actual: unknown): boolean {
  if (desired === null || typeof desired !== 'object') {
    if (typeof desired === 'number' && typeof actual === 'string') return String(desired) === actual;
    return desired === actual;
  }
  if (Array.isArray(desired)) {
    return Array.isArray(actual) && actual.length === desired.length && desired.every((d, i) => isSubset(d, actual[i]));
  }
  if (actual === null || typeof actual !== 'object' || Array.isArray(actual)) {
    // An empty desired map matches an absent one ({} vs undefined after a round trip).
    return Object.keys(desired).length === 0 && (actual === undefined || actual === null);
  }
  const a = actual as Record<string, unknown>;
  return Object.entries(desired as Record<string, unknown>).every(([k, v]) => v === undefined || isSubset(v, a[k]));
}

function isOwnedBy(obj: KubeObject, uid: string | undefined): boolean {
  return (obj.metadata?.ownerReferences ?? []).some((r) => r.controller && r.uid === uid);
}

export type SyncPlan = { action: 'create'; body: KubeObject } | { action: 'patch'; patch: Record<string, unknown> } | { action: 'none' } | { action: 'conflict'; message: string };

function labelsPatch(desired: Data, actual: Data | undefined, previouslyManaged: string[] = []): Data | null {
  const out: Record<string, string | null> = { ...desired };
  for (const k of previouslyManaged) if (!(k in desired) && actual && k in actual) out[k] = null;
  return out as Data;
}

function serviceMetaKeys(obj: KubeObject): { labels: string[]; annotations: string[] } {
  try {
    const v = JSON.parse(obj.metadata?.annotations?.[AnnotationServiceMetaKeys] ?? '{}') as { labels?: unknown; annotations?: unknown };
    const arr = (x: unknown) => (Array.isArray(x) ? x.filter((s): s is string => typeof s === 'string') : []);
    return { labels: arr(v.labels), annotations: arr(v.annotations) };
  } catch {
    return { labels: [], annotations: [] };
  }
}

/**
 * How to bring an existing object (or none) to the desired one. Metadata: our labels/annotations and
 * owner reference; body: the fields named in `fields` (spec, or roleRef/subjects). A merge patch
 * replaces lists wholesale and leaves other map keys alone.
 */
export function planSync(
  desired: KubeObject,
  actual: KubeObject | undefined,
  ownerUid: string | undefined,
  fields: string[],
  /** instead of the owner reference (shard objects have many VMBMCs and no owner: src/controller/shard.ts) */
  owns?: (actual: KubeObject) => boolean,
): SyncPlan {
  if (!actual) return { action: 'create', body: desired };
  if (owns ? !owns(actual) : !isOwnedBy(actual, ownerUid)) {
    return { action: 'conflict', message: `${desired.kind} ${desired.metadata?.name} exists and is not ${owns ? 'ours' : 'owned by this VirtualMachineBMC'}` };
  }
  const dm = desired.metadata ?? {};
  const am = actual.metadata ?? {};
  const isService = desired.kind === 'Service';
  const prev = isService ? serviceMetaKeys(actual) : { labels: [], annotations: [] };
  const metaOk =
    isSubset(dm.labels ?? {}, am.labels ?? {}) &&
    isSubset(dm.annotations ?? {}, am.annotations ?? {}) &&
    prev.labels.every((k) => k in (dm.labels ?? {}) || !(k in (am.labels ?? {}))) &&
    prev.annotations.every((k) => k in (dm.annotations ?? {}) || !(k in (am.annotations ?? {})));
  const exact = EXACT_MAPS[desired.kind ?? ''] ?? [];
  const bodyOk = fields.every((f) => isSubset(desired[f], actual[f])) && exact.every((p) => extraKeys(at(desired, p), at(actual, p)).length === 0);
  if (metaOk && bodyOk) return { action: 'none' };
  const patch: Record<string, unknown> = {
    metadata: {
      labels: labelsPatch(dm.labels ?? {}, am.labels, prev.labels),
      annotations: labelsPatch(dm.annotations ?? {}, am.annotations, prev.annotations),
    },
  };
  for (const f of fields) patch[f] = desired[f];
  if (desired.kind === 'Deployment') {
    // Switching an edited strategy back to Recreate must drop rollingUpdate.
    const spec = patch.spec as Record<string, unknown>;
    patch.spec = { ...spec, strategy: { type: 'Recreate', rollingUpdate: null } };
  }
  if (isService) patch.spec = keepNodePorts(desired, actual);
  // a merge patch merges maps: the keys of an exact map that should not be there are removed by name
  for (const p of exact) {
    const extra = extraKeys(at(desired, p), at(actual, p));
    if (extra.length === 0) continue;
    // copy along the path: the patch shares its maps with `desired`
    let parent: Record<string, unknown> = patch;
    for (const k of p.slice(0, -1)) parent = parent[k] = { ...(parent[k] as Record<string, unknown>) };
    const leaf = p[p.length - 1]!;
    parent[leaf] = { ...(parent[leaf] as Record<string, unknown>), ...Object.fromEntries(extra.map((k) => [k, null])) };
  }
  return { action: 'patch', patch };
}

/**
 * Maps compared and written whole (per kind, as paths in the object): an extra key there is drift,
 * not an apiserver default. A Service's selector is one: a key no agent pod carries makes it select
 * nothing (the apiserver defaults no selector key: kubernetes pkg/apis/core/v1/defaults.go).
 */
export const EXACT_MAPS: Record<string, string[][]> = {
  Service: [['spec', 'selector']],
};

function at(obj: unknown, path: readonly string[]): unknown {
  let cur = obj;
  for (const k of path) cur = cur !== null && typeof cur === 'object' ? (cur as Record<string, unknown>)[k] : undefined;
  return cur;
}

/** Keys of `actual` (a map) that `desired` (a map) lacks. */
function extraKeys(desired: unknown, actual: unknown): string[] {
  if (actual === null || typeof actual !== 'object' || Array.isArray(actual)) return [];
  const d = desired !== null && typeof desired === 'object' ? (desired as Record<string, unknown>) : {};
  return Object.keys(actual).filter((k) => !(k in d));
}

/** Keep the nodePorts the apiserver allocated, so a repair does not move them. */
function keepNodePorts(desired: KubeObject, actual: KubeObject): unknown {
  const ds = desired.spec as { type?: string; ports?: Array<Record<string, unknown>> };
  if (ds.type === 'ClusterIP') return ds;
  const actualPorts = ((actual.spec as { ports?: Array<Record<string, unknown>> } | undefined)?.ports ?? []);
  const ports = (ds.ports ?? []).map((p) => {
    const match = actualPorts.find((a) => a.name === p.name && a.protocol === p.protocol && typeof a.nodePort === 'number');
    return match ? { ...p, nodePort: match.nodePort } : p;
  });
  return { ...ds, ports };
}

/** Fields compared and written per kind. */
export const SYNC_FIELDS: Record<string, string[]> = {
  ServiceAccount: [],
  Role: ['rules'],
  RoleBinding: ['roleRef', 'subjects'],
  Deployment: ['spec'],
  Service: ['spec'],
  ConfigMap: ['data'],
};
