/**
 * Server-Side Apply for the objects the controller owns (pure parts; controller.ts does the I/O).
 *
 * Every owned object (agent ServiceAccount, Role, RoleBinding, Deployment, Service; shard
 * objects and fleet ConfigMaps) is applied whole as field manager `virtbmc-controller` with
 * force: the controller is the only owner of these objects' desired fields, so a field someone
 * else changed is taken back, and a field the controller stops applying (a label dropped from
 * spec.service, a Service selector key) is removed by the apiserver, which knows what the
 * controller owned (metadata.managedFields). Fields the apiserver defaults or allocates (a
 * Service's clusterIP and nodePorts, a container's terminationMessagePath) are owned by nobody
 * and left alone. Drift is what the apiserver reports: the object as it stands after the apply.
 *
 * An apply that would change nothing is not sent: the controller remembers, per object, the
 * configuration it last applied and the apiserver's record of the fields it owned afterwards (its
 * managedFields entry, as a digest). While the configuration is the same and the object's
 * resourceVersion is the one the apply left, or the entry is unchanged (another writer changed
 * only fields that are not ours, e.g. status), there is nothing to do; any write that takes or
 * removes one of our fields changes the entry, and the next reconcile applies again.
 */
import { createHash } from 'node:crypto';
import type { KubeObject } from '../kube/types.js';

export const FIELD_MANAGER = 'virtbmc-controller';

/** what an informer keeps of our managedFields entry: a digest (the entries are dropped on arrival) */
export const OWNED_FIELDS_KEY = 'ownedFieldsDigest';

function digest(s: string): string {
  return createHash('sha256').update(s).digest('hex').slice(0, 32);
}

/** The digest of the controller's Apply entry in an object's managedFields ('' when it has none). */
export function ownedFieldsDigest(obj: KubeObject): string {
  const kept = (obj as Record<string, unknown>)[OWNED_FIELDS_KEY];
  if (typeof kept === 'string') return kept;
  const entries = (obj.metadata as { managedFields?: unknown } | undefined)?.managedFields;
  if (!Array.isArray(entries)) return '';
  const mine = entries.find((e) => {
    const m = e as { manager?: unknown; operation?: unknown; subresource?: unknown };
    return m.manager === FIELD_MANAGER && m.operation === 'Apply' && !m.subresource;
  }) as { fieldsV1?: unknown } | undefined;
  return mine ? digest(JSON.stringify(mine.fieldsV1 ?? {})) : '';
}

/**
 * Informer transform for owned objects: managedFields reduced to the digest of our entry, so the
 * cache does not hold every manager's field sets.
 */
export function reduceManagedFields(obj: KubeObject): KubeObject {
  const meta = obj.metadata as ({ managedFields?: unknown } & KubeObject['metadata']) | undefined;
  if (!meta || meta.managedFields === undefined) return obj;
  return { ...obj, metadata: metadataWithoutManagedFields(obj), [OWNED_FIELDS_KEY]: ownedFieldsDigest(obj) } as KubeObject;
}

/** An object's metadata without managedFields (what the informer transforms keep: caches.ts too). */
export function metadataWithoutManagedFields(obj: KubeObject): NonNullable<KubeObject['metadata']> {
  const { managedFields: _dropped, ...metadata } = (obj.metadata ?? {}) as NonNullable<KubeObject['metadata']> & { managedFields?: unknown };
  return metadata;
}

/** The digest of a configuration (desired objects are built deterministically: same intent, same JSON). */
export function configDigest(desired: KubeObject): string {
  return digest(JSON.stringify(desired));
}

export interface AppliedRecord {
  config: string;
  resourceVersion?: string;
  owned: string;
}

/** Would applying `desired` onto `actual` (as the cache holds it) change nothing? */
export function applyNeeded(desired: KubeObject, actual: KubeObject | undefined, last: AppliedRecord | undefined): boolean {
  if (!actual || !last || last.config !== configDigest(desired)) return true;
  if (actual.metadata?.resourceVersion === last.resourceVersion) return false;
  const owned = ownedFieldsDigest(actual);
  return owned === '' || owned !== last.owned;
}

export function recordOf(desired: KubeObject, result: KubeObject): AppliedRecord {
  return { config: configDigest(desired), resourceVersion: result.metadata?.resourceVersion, owned: ownedFieldsDigest(result) };
}

/** Is `obj` controlled by the VirtualMachineBMC with this uid? */
export function isOwnedBy(obj: KubeObject, uid: string | undefined): boolean {
  return (obj.metadata?.ownerReferences ?? []).some((r) => r.controller && r.uid === uid);
}

/**
 * Does `actual` already hold everything in `desired`? Objects: every desired key must match (the
 * apiserver's defaults are extra keys); arrays: same length, element-wise. For the objects the
 * controller does not apply (an auto-created VirtualMachineBMC, a cert-manager Certificate).
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
    return Object.keys(desired).length === 0 && (actual === undefined || actual === null);
  }
  const a = actual as Record<string, unknown>;
  return Object.entries(desired as Record<string, unknown>).every(([k, v]) => v === undefined || isSubset(v, a[k]));
}
