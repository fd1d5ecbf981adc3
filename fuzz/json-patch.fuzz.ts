/**
 * Fuzz target: the JSON patch code of the apiserver emulator (test/emulator/patch.ts): RFC 6902
 * JSON Patch, RFC 7386 merge patch and Kubernetes strategic merge patch.
 *
 * Input: JSON text `[document, patch]` when it parses as such; otherwise the bytes drive a small
 * generator of JSON values (fuzz/common.ts ByteReader) that favours the names the code looks at
 * (merge keys such as containers/name, $patch directives, JSON Patch ops and pointers), so every
 * input reaches the patch code. Invariants: a bad patch is
 * refused with the emulator's status error (never a TypeError or RangeError); inputs are never
 * modified; results are JSON; merge patch is idempotent (RFC 7386: applying the same patch twice
 * gives what applying it once gave); a JSON Patch of one `test` op against the document's own
 * value leaves it unchanged.
 */
import { deepEqual, jsonPatch, mergePatch, strategicMergePatch } from '../test/emulator/patch.js';
import { ApiError } from '../test/emulator/status.js';
import { ByteReader, invariant } from './common.js';

const KEYS = ['a', 'b', 'name', 'spec', 'containers', 'env', 'ports', 'port', 'containerPort', 'finalizers', 'volumes', 'conditions', 'type', '$patch', '$retainKeys', '$setElementOrder/containers', '$deleteFromPrimitiveList/finalizers', 'op', 'path', 'from', 'value', ''];
const STRINGS = ['replace', 'delete', 'merge', 'add', 'remove', 'test', 'move', 'copy', 'x', '/a', '/a/0', '/a/-', '/b/~0/~1', '', '/', '/containers/0/name', 'c1', 'c2'];
const OPS = ['add', 'remove', 'replace', 'move', 'copy', 'test', 'bogus'];

function pointer(r: ByteReader): string {
  const n = r.next() % 4;
  let p = '';
  for (let i = 0; i < n; i++) {
    const k = r.next();
    p += '/' + (k % 3 === 0 ? String(k % 4) : k % 7 === 0 ? '-' : KEYS[k % KEYS.length]!.replace(/~/g, '~0').replace(/\//g, '~1'));
  }
  return p;
}

function value(r: ByteReader, depth: number): unknown {
  const kind = r.next() % (depth >= 5 ? 5 : 9);
  switch (kind) {
    case 0:
      return null;
    case 1:
      return (r.next() & 1) === 1;
    case 2:
      return r.next() - 128;
    case 3:
      return STRINGS[r.next() % STRINGS.length];
    case 4:
      return r.text(r.next() % 6);
    case 5:
    case 6: {
      const n = r.next() % 4;
      return Array.from({ length: n }, () => value(r, depth + 1));
    }
    case 7: {
      const o: Record<string, unknown> = {};
      const n = r.next() % 5;
      for (let i = 0; i < n; i++) o[KEYS[r.next() % KEYS.length]!] = value(r, depth + 1);
      return o;
    }
    default: {
      // A JSON Patch operation list.
      const n = 1 + (r.next() % 4);
      return Array.from({ length: n }, () => {
        const op: Record<string, unknown> = { op: OPS[r.next() % OPS.length], path: pointer(r) };
        if (r.next() & 1) op.from = pointer(r);
        if (r.next() & 1) op.value = value(r, depth + 1);
        return op;
      });
    }
  }
}

/** The emulator's refusals are ApiErrors with an HTTP code (400 Bad Request / 422 Invalid, like apimachinery). */
const expected = (e: unknown): boolean => e instanceof ApiError && e.code >= 400 && e.code < 500;

function attempt<T>(what: string, f: () => T): T | undefined {
  try {
    return f();
  } catch (e) {
    invariant(expected(e), `${what} threw ${(e as Error)?.name}: ${(e as Error)?.message}`);
    return undefined;
  }
}

function depth(v: unknown, limit: number): boolean {
  if (typeof v !== 'object' || v === null) return true;
  if (limit === 0) return false;
  return Object.values(v).every((x) => depth(x, limit - 1));
}

export function fuzz(data: Buffer): void {
  let input: unknown;
  try {
    input = JSON.parse(data.toString('utf8'));
  } catch {
    input = undefined;
  }
  if (!Array.isArray(input) || input.length !== 2) {
    const r = new ByteReader(data);
    input = [value(r, 0), value(r, 0)];
  }
  if (!depth(input, 64)) return;
  const [doc, patch] = input as [unknown, unknown];
  const before = JSON.stringify(input);

  const merged = attempt('mergePatch', () => mergePatch(doc, patch));
  if (merged !== undefined) {
    invariant(JSON.stringify(merged) !== undefined || doc === undefined, 'merge patch result is not JSON');
    const twice = attempt('mergePatch (again)', () => mergePatch(merged, patch));
    invariant(deepEqual(twice, merged), `merge patch not idempotent: ${JSON.stringify(merged)} vs ${JSON.stringify(twice)}`);
  }
  attempt('jsonPatch', () => jsonPatch(doc, patch));
  attempt('strategicMergePatch', () => strategicMergePatch(doc, patch));
  const same = attempt('jsonPatch test', () => jsonPatch(doc, [{ op: 'test', path: '', value: doc }]));
  if (same !== undefined) invariant(deepEqual(same, doc), 'a passing test op changed the document');
  invariant(JSON.stringify(input) === before, 'an input was modified');
}
