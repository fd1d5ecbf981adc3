/** JSON merge patch (RFC 7386) and JSON patch (RFC 6902), on plain JSON values. */
import { ApiError, badRequest } from './status.js';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/**
 * A document's keys are data, never the JavaScript prototype's: kube-apiserver holds them in Go
 * maps (evanphx/json-patch patch.go, partialDoc; apimachinery's strategicpatch works on
 * map[string]interface{}), so `constructor` or `__proto__` are keys like any other. `in` and
 * plain assignment would reach Object.prototype (a `move` from `/spec/constructor` found by
 * fuzz/json-patch.fuzz.ts) or set an object's prototype (`"__proto__": {...}`).
 */
const has = (o: object, k: string): boolean => Object.hasOwn(o, k);
const own = (o: Record<string, unknown>, k: string): unknown => (Object.hasOwn(o, k) ? o[k] : undefined);
function put(o: Record<string, unknown>, k: string, v: unknown): void {
  Object.defineProperty(o, k, { value: v, writable: true, enumerable: true, configurable: true });
}

export function clone<T>(v: T): T {
  return v === undefined ? v : (JSON.parse(JSON.stringify(v)) as T);
}

export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== typeof b || a === null || b === null || typeof a !== 'object') return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    return a.length === bb.length && a.every((x, i) => deepEqual(x, bb[i]));
  }
  const ao = a as Record<string, unknown>;
  const bo = b as Record<string, unknown>;
  const ak = Object.keys(ao).filter((k) => ao[k] !== undefined);
  const bk = Object.keys(bo).filter((k) => bo[k] !== undefined);
  return ak.length === bk.length && ak.every((k) => deepEqual(ao[k], bo[k]));
}

/** RFC 7386: objects merge recursively, null removes, anything else replaces. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return clone(patch);
  const out: Record<string, unknown> = isObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else put(out, k, mergePatch(own(out, k), v));
  }
  return out;
}

export interface JsonPatchOp {
  op: string;
  path: string;
  from?: string;
  value?: unknown;
}

function parsePointer(p: string): string[] {
  if (p === '') return [];
  if (!p.startsWith('/')) throw badRequest(`invalid JSON pointer "${p}"`);
  return p
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

/** 422 like kube-apiserver answers when a JSON patch cannot be applied (incl. a failed test op). */
function applyFailed(detail: string): ApiError {
  return new ApiError(422, 'the server rejected our request due to an error in our request', 'Invalid', {
    causes: [{ reason: 'UnexpectedServerResponse', message: detail }],
  });
}

type Container = Record<string, unknown> | unknown[];

function resolveParent(doc: unknown, tokens: string[], path: string): { parent: Container; key: string } {
  let cur: unknown = doc;
  for (const t of tokens.slice(0, -1)) {
    if (Array.isArray(cur)) {
      const i = Number(t);
      if (!/^\d+$/.test(t) || i >= cur.length) throw applyFailed(`doc is missing path: "${path}": missing value`);
      cur = cur[i];
    } else if (isObject(cur)) {
      if (!has(cur, t)) throw applyFailed(`doc is missing path: "${path}": missing value`);
      cur = cur[t];
    } else throw applyFailed(`doc is missing path: "${path}": missing value`);
  }
  if (!Array.isArray(cur) && !isObject(cur)) throw applyFailed(`doc is missing path: "${path}": missing value`);
  const key = tokens.at(-1);
  // the callers handle the root pointer ("") themselves: a parent exists only below it
  if (key === undefined) throw new Error(`resolveParent: the root pointer has no parent (${path})`);
  return { parent: cur, key };
}

function getAt(doc: unknown, path: string): unknown {
  const tokens = parsePointer(path);
  if (tokens.length === 0) return doc;
  const { parent, key } = resolveParent(doc, tokens, path);
  if (Array.isArray(parent)) {
    const i = Number(key);
    if (!/^\d+$/.test(key) || i >= parent.length) throw applyFailed(`doc is missing path: "${path}": missing value`);
    return parent[i];
  }
  if (!has(parent, key)) throw applyFailed(`doc is missing path: "${path}": missing value`);
  return parent[key];
}

function removeAt(doc: unknown, path: string): unknown {
  const tokens = parsePointer(path);
  if (tokens.length === 0) throw applyFailed('cannot remove the whole document');
  const { parent, key } = resolveParent(doc, tokens, path);
  if (Array.isArray(parent)) {
    const i = Number(key);
    if (!/^\d+$/.test(key) || i >= parent.length) throw applyFailed(`unable to remove nonexistent key: ${key}: missing value`);
    return parent.splice(i, 1)[0];
  }
  if (!has(parent, key)) throw applyFailed(`unable to remove nonexistent key: ${key}: missing value`);
  const v = parent[key];
  delete parent[key];
  return v;
}

function addAt(doc: unknown, path: string, value: unknown, replace: boolean): unknown {
  const tokens = parsePointer(path);
  if (tokens.length === 0) return clone(value);
  const { parent, key } = resolveParent(doc, tokens, path);
  if (Array.isArray(parent)) {
    if (replace) {
      const i = Number(key);
      if (!/^\d+$/.test(key) || i >= parent.length) throw applyFailed(`replace operation does not apply: doc is missing key: ${path}: missing value`);
      parent[i] = clone(value);
    } else if (key === '-') parent.push(clone(value));
    else {
      const i = Number(key);
      if (!/^\d+$/.test(key) || i > parent.length) throw applyFailed(`add operation does not apply: index out of bounds: ${path}`);
      parent.splice(i, 0, clone(value));
    }
  } else {
    if (replace && !has(parent, key)) throw applyFailed(`replace operation does not apply: doc is missing key: ${path}: missing value`);
    put(parent, key, clone(value));
  }
  return doc;
}

/** Apply an RFC 6902 patch; returns the new document (the input is not modified). */
export function jsonPatch(docIn: unknown, ops: unknown): unknown {
  if (!Array.isArray(ops)) throw badRequest('json: cannot unmarshal object into Go value of type jsonpatch.Patch');
  let doc = clone(docIn);
  for (const raw of ops) {
    if (!isObject(raw) || typeof raw.op !== 'string' || typeof raw.path !== 'string') {
      throw badRequest('invalid JSON patch operation: each needs "op" and "path"');
    }
    const op = raw as unknown as JsonPatchOp;
    switch (op.op) {
      case 'add':
        if (!('value' in raw)) throw badRequest(`add operation requires a value: ${op.path}`);
        doc = addAt(doc, op.path, op.value, false);
        break;
      case 'replace':
        if (!('value' in raw)) throw badRequest(`replace operation requires a value: ${op.path}`);
        doc = addAt(doc, op.path, op.value, true);
        break;
      case 'remove':
        removeAt(doc, op.path);
        break;
      case 'test': {
        let cur: unknown;
        try {
          cur = getAt(doc, op.path);
        } catch {
          cur = undefined;
        }
        const want = op.value === undefined ? null : op.value;
        if (!deepEqual(cur === undefined ? null : cur, want)) {
          throw applyFailed(`testing value ${op.path} failed: test failed`);
        }
        break;
      }
      case 'move': {
        if (typeof op.from !== 'string') throw badRequest('move operation requires "from"');
        const v = removeAt(doc, op.from);
        doc = addAt(doc, op.path, v, false);
        break;
      }
      case 'copy': {
        if (typeof op.from !== 'string') throw badRequest('copy operation requires "from"');
        doc = addAt(doc, op.path, clone(getAt(doc, op.from)), false);
        break;
      }
      default:
        throw badRequest(`Unexpected kind: ${op.op}`);
    }
  }
  return doc;
}

export type { Json };

/** Merge keys of the built-in list fields that strategic merge patch merges instead of replacing. */
const MERGE_KEYS: Record<string, string[]> = {
  containers: ['name'],
  initContainers: ['name'],
  ephemeralContainers: ['name'],
  env: ['name'],
  volumes: ['name'],
  volumeMounts: ['mountPath'],
  volumeDevices: ['devicePath'],
  imagePullSecrets: ['name'],
  ports: ['containerPort', 'port'],
  conditions: ['type'],
  ownerReferences: ['uid'],
  hostAliases: ['ip'],
  topologySpreadConstraints: ['topologyKey'],
};
/** primitive lists with the "merge" strategy: the patch's values are added */
const MERGED_PRIMITIVE_LISTS = new Set(['finalizers']);

function mergeKeyFor(field: string, items: unknown[]): string | undefined {
  const keys = MERGE_KEYS[field];
  if (!keys) return undefined;
  return keys.find((k) => items.some((i) => isObject(i) && has(i, k))) ?? keys[0];
}

/**
 * Strategic merge patch for built-in types: maps merge like a merge patch, lists with a known merge
 * key merge item by item (`$patch: delete` removes one), `finalizers` are unioned, other lists are
 * replaced; `$patch: replace` replaces a map; `$setElementOrder/…` and `$retainKeys` are ignored.
 */
export function strategicMergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return clone(patch);
  if (patch.$patch === 'replace') {
    const rest = { ...patch };
    delete rest.$patch;
    return clone(rest);
  }
  if (patch.$patch === 'delete') return undefined;
  const out: Record<string, unknown> = isObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (k === '$patch' || k === '$retainKeys' || k.startsWith('$setElementOrder/')) continue;
    if (k.startsWith('$deleteFromPrimitiveList/')) {
      const field = k.slice('$deleteFromPrimitiveList/'.length);
      const list = own(out, field);
      if (Array.isArray(list) && Array.isArray(v)) put(out, field, list.filter((x) => !v.some((d) => deepEqual(d, x))));
      continue;
    }
    if (v === null) {
      delete out[k];
      continue;
    }
    const cur = own(out, k);
    if (Array.isArray(v) && MERGED_PRIMITIVE_LISTS.has(k)) {
      const base = Array.isArray(cur) ? [...cur] : [];
      for (const x of v) if (!base.some((b) => deepEqual(b, x))) base.push(clone(x));
      put(out, k, base);
    } else if (Array.isArray(v) && Array.isArray(cur) && mergeKeyFor(k, [...cur, ...v])) {
      const key = mergeKeyFor(k, [...cur, ...v])!;
      const merged = cur.map((x) => clone(x));
      for (const item of v) {
        if (!isObject(item)) continue;
        const idx = merged.findIndex((m) => isObject(m) && m[key] === item[key]);
        if (item.$patch === 'delete') {
          if (idx >= 0) merged.splice(idx, 1);
        } else if (idx >= 0) merged[idx] = strategicMergePatch(merged[idx], item);
        else merged.push(strategicMergePatch(undefined, item));
      }
      put(out, k, merged);
    } else {
      const next = strategicMergePatch(cur, v);
      if (next === undefined) delete out[k];
      else put(out, k, next);
    }
  }
  return out;
}
