/**
 * CustomResourceDefinitions: creating one serves its resource (or attaches to a built-in type of the
 * same group/version/kind), and its structural openAPIV3Schema is enforced on writes the way
 * kube-apiserver does: unknown fields pruned, defaults applied, then validated (type, required,
 * enum, lengths, pattern, bounds, item counts) with 422 Invalid field errors.
 * CEL rules (x-kubernetes-validations) are not evaluated.
 */
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import type { Clock } from './clock.js';
import { clone } from './patch.js';
import type { ResourceType } from './resources.js';
import { ApiError } from './status.js';
import type { Store } from './store.js';
import type { KubeObject } from './types.js';

export interface Schema {
  type?: string;
  properties?: Record<string, Schema>;
  additionalProperties?: Schema | boolean;
  items?: Schema;
  required?: string[];
  enum?: unknown[];
  default?: unknown;
  nullable?: boolean;
  pattern?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: boolean;
  exclusiveMaximum?: boolean;
  minItems?: number;
  maxItems?: number;
  'x-kubernetes-preserve-unknown-fields'?: boolean;
  'x-kubernetes-int-or-string'?: boolean;
  'x-kubernetes-embedded-resource'?: boolean;
}

interface FieldError {
  field: string;
  message: string;
  reason: string;
}

function isObj(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

function show(v: unknown): string {
  return typeof v === 'string' ? `"${v}"` : JSON.stringify(v);
}

function typeOk(v: unknown, s: Schema): boolean {
  if (s['x-kubernetes-int-or-string']) return typeof v === 'string' || (typeof v === 'number' && Number.isInteger(v));
  switch (s.type) {
    case undefined:
      return true;
    case 'object':
      return isObj(v);
    case 'array':
      return Array.isArray(v);
    case 'string':
      return typeof v === 'string';
    case 'integer':
      return typeof v === 'number' && Number.isInteger(v);
    case 'number':
      return typeof v === 'number';
    case 'boolean':
      return typeof v === 'boolean';
    default:
      return true;
  }
}

/** Prunes, defaults and validates `v` in place; returns the (possibly replaced) value. */
function walk(v: unknown, s: Schema, path: string, errs: FieldError[]): unknown {
  if (!typeOk(v, s)) {
    const t = s['x-kubernetes-int-or-string'] ? 'integer or string' : s.type;
    errs.push({ field: path, reason: 'FieldValueTypeInvalid', message: `Invalid value: "${typeName(v)}": ${path} in body must be of type ${t}: "${typeName(v)}"` });
    return v;
  }
  if (s.enum && !s.enum.some((e) => JSON.stringify(e) === JSON.stringify(v))) {
    errs.push({ field: path, reason: 'FieldValueNotSupported', message: `Unsupported value: ${show(v)}: supported values: ${s.enum.map(show).join(', ')}` });
  }
  if (typeof v === 'string') {
    if (s.minLength !== undefined && [...v].length < s.minLength) errs.push({ field: path, reason: 'FieldValueInvalid', message: `Invalid value: ${show(v)}: ${path} in body should be at least ${s.minLength} chars long` });
    if (s.maxLength !== undefined && [...v].length > s.maxLength) errs.push({ field: path, reason: 'FieldValueTooLong', message: `Too long: may not be more than ${s.maxLength} bytes` });
    if (s.pattern !== undefined && !new RegExp(s.pattern, 'u').test(v)) errs.push({ field: path, reason: 'FieldValueInvalid', message: `Invalid value: ${show(v)}: ${path} in body should match '${s.pattern}'` });
  }
  if (typeof v === 'number') {
    if (s.minimum !== undefined && (s.exclusiveMinimum ? v <= s.minimum : v < s.minimum)) {
      errs.push({ field: path, reason: 'FieldValueInvalid', message: `Invalid value: ${v}: ${path} in body should be greater than ${s.exclusiveMinimum ? '' : 'or equal to '}${s.minimum}` });
    }
    if (s.maximum !== undefined && (s.exclusiveMaximum ? v >= s.maximum : v > s.maximum)) {
      errs.push({ field: path, reason: 'FieldValueInvalid', message: `Invalid value: ${v}: ${path} in body should be less than ${s.exclusiveMaximum ? '' : 'or equal to '}${s.maximum}` });
    }
  }
  if (Array.isArray(v)) {
    if (s.minItems !== undefined && v.length < s.minItems) errs.push({ field: path, reason: 'FieldValueInvalid', message: `Invalid value: ${v.length}: ${path} in body should have at least ${s.minItems} items` });
    if (s.maxItems !== undefined && v.length > s.maxItems) errs.push({ field: path, reason: 'FieldValueTooMany', message: `Too many: ${v.length}: must have at most ${s.maxItems} items` });
    if (s.items) for (let i = 0; i < v.length; i++) v[i] = walk(v[i], s.items, `${path}[${i}]`, errs);
  }
  if (isObj(v)) {
    const props = s.properties ?? {};
    const extra = s.additionalProperties;
    const keep = s['x-kubernetes-preserve-unknown-fields'] === true || s['x-kubernetes-embedded-resource'] === true;
    for (const k of Object.keys(v)) {
      const child = props[k] ?? (isObj(extra) ? extra : undefined);
      const sub = path ? `${path}.${k}` : k;
      if (v[k] === null && !(child?.nullable ?? false) && child) {
        delete v[k]; // nulls of non-nullable fields are dropped, as the apiserver does
        continue;
      }
      if (child) v[k] = walk(v[k], child, sub, errs);
      else if (!keep && extra !== true && !(path === '' && (k === 'apiVersion' || k === 'kind' || k === 'metadata'))) delete v[k];
    }
    for (const [k, child] of Object.entries(props)) {
      if (v[k] === undefined && child.default !== undefined) v[k] = walk(clone(child.default), child, path ? `${path}.${k}` : k, errs);
    }
    for (const r of s.required ?? []) {
      if (v[r] === undefined) errs.push({ field: path ? `${path}.${r}` : r, reason: 'FieldValueRequired', message: 'Required value' });
    }
  }
  return v;
}

/** Apply a structural schema to an object (prune, default, validate); throws 422 Invalid. */
export function enforceSchema(t: ResourceType, obj: KubeObject, schema: Schema): void {
  const errs: FieldError[] = [];
  const root = { ...schema, properties: { ...(schema.properties ?? {}) } };
  delete root.properties.metadata; // metadata is the apiserver's own business
  walk(obj, root, '', errs);
  if (errs.length === 0) return;
  const name = obj.metadata?.name ?? '';
  const texts = errs.map((e) => `${e.field}: ${e.message}`);
  const body = texts.length === 1 ? texts[0] : `[${texts.join(', ')}]`;
  throw new ApiError(422, `${t.kind}.${t.group} "${name}" is invalid: ${body}`, 'Invalid', {
    name,
    group: t.group,
    kind: t.kind,
    causes: errs.map((e) => ({ reason: e.reason, message: e.message, field: e.field })),
  });
}

interface CrdVersion {
  name: string;
  served?: boolean;
  storage?: boolean;
  subresources?: { status?: unknown };
  schema?: { openAPIV3Schema?: Schema };
}

interface CrdSpec {
  group: string;
  names: { kind: string; plural: string; shortNames?: string[] };
  scope: 'Namespaced' | 'Cluster';
  versions: CrdVersion[];
}

/** Read CRD objects from YAML files (multi-document). */
export function loadCrdFiles(paths: string[]): KubeObject[] {
  const out: KubeObject[] = [];
  for (const p of paths) {
    for (const doc of parseAllDocuments(readFileSync(p, 'utf8'))) {
      const o = doc.toJSON() as KubeObject | null;
      if (o && o.kind === 'CustomResourceDefinition') out.push(o);
    }
  }
  return out;
}

export function installCrds(store: Store, clock: Clock): void {
  const crdT = store.registry.mustByKind('apiextensions.k8s.io/v1', 'CustomResourceDefinition');
  const schemas = new Map<ResourceType, Schema>();
  const hooked = new Set<ResourceType>();
  const owned = new Map<string, ResourceType[]>(); // CRD name → types it added to the registry

  const hook = (t: ResourceType): void => {
    if (hooked.has(t)) return;
    hooked.add(t);
    store.addValidator(t, (obj) => {
      const s = schemas.get(t);
      if (s) enforceSchema(t, obj, s);
    });
  };

  const register = (crd: KubeObject): void => {
    const spec = crd.spec as CrdSpec | undefined;
    if (!spec?.group || !spec.names?.plural || !spec.names.kind || !Array.isArray(spec.versions)) return;
    const added: ResourceType[] = owned.get(crd.metadata.name ?? '') ?? [];
    for (const v of spec.versions) {
      if (v.served === false) continue;
      let t = store.registry.byResource(spec.group, v.name, spec.names.plural);
      if (!t) {
        t = {
          group: spec.group,
          version: v.name,
          resource: spec.names.plural,
          kind: spec.names.kind,
          namespaced: spec.scope !== 'Cluster',
          statusSubresource: !!v.subresources?.status,
          generation: true,
          ...(spec.names.shortNames ? { shortNames: spec.names.shortNames } : {}),
        };
        store.registry.types.push(t);
        added.push(t);
      }
      const schema = v.schema?.openAPIV3Schema;
      if (schema) {
        schemas.set(t, schema);
        hook(t);
      } else schemas.delete(t);
    }
    owned.set(crd.metadata.name ?? '', added);
  };

  const unregister = (crd: KubeObject): void => {
    const spec = crd.spec as CrdSpec | undefined;
    for (const v of spec?.versions ?? []) {
      const t = spec ? store.registry.byResource(spec.group, v.name, spec.names.plural) : undefined;
      if (t) schemas.delete(t);
    }
    for (const t of owned.get(crd.metadata.name ?? '') ?? []) {
      for (const o of store.list(t)) store.remove(t, o);
      const i = store.registry.types.indexOf(t);
      if (i >= 0) store.registry.types.splice(i, 1);
    }
    owned.delete(crd.metadata.name ?? '');
  };

  const establish = (name: string): void => {
    const crd = store.get(crdT, undefined, name);
    if (!crd) return;
    const spec = crd.spec as CrdSpec;
    const ts = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
    const status = {
      conditions: [
        { type: 'NamesAccepted', status: 'True', reason: 'NoConflicts', message: 'no conflicts found', lastTransitionTime: ts },
        { type: 'Established', status: 'True', reason: 'InitialNamesAccepted', message: 'the initial names have been accepted', lastTransitionTime: ts },
      ],
      acceptedNames: clone(spec.names),
      storedVersions: (spec.versions ?? []).filter((v) => v.storage).map((v) => v.name),
    };
    const cur = crd.status as { acceptedNames?: unknown } | undefined;
    if (cur?.acceptedNames && JSON.stringify(cur.acceptedNames) === JSON.stringify(status.acceptedNames)) return;
    crd.status = status;
    store.update(crdT, crd, { force: true });
  };

  store.onEvent((ev) => {
    if (ev.t !== crdT) return;
    if (ev.type === 'DELETED') unregister(ev.obj);
    else {
      register(ev.obj);
      const name = ev.obj.metadata.name ?? '';
      clock.after(0, () => establish(name));
    }
  });
}
