/**
 * PATCH body checking against a small description of what is writable. Every problem is collected
 * and reported in one 400 (one @Message.ExtendedInfo entry each).
 */
import { RedfishError, type MessageRef } from './errors.js';

export type FieldSpec =
  | 'string'
  | 'boolean'
  | 'integer'
  | 'number'
  | { enum: readonly string[] }
  | { integer: { min?: number; max?: number } }
  | { object: WritableTree };

export interface WritableTree {
  [property: string]: FieldSpec;
}

export interface PatchSpec {
  writable: WritableTree;
  /** Properties that exist but cannot be written ("Boot/BootSourceOverrideTarget@Redfish.AllowableValues" for nested) */
  readOnly?: readonly string[];
}

function typeOk(spec: FieldSpec, v: unknown): boolean {
  if (spec === 'string') return typeof v === 'string';
  if (spec === 'boolean') return typeof v === 'boolean';
  if (spec === 'integer') return Number.isInteger(v);
  if (spec === 'number') return typeof v === 'number' && Number.isFinite(v);
  if ('enum' in spec) return typeof v === 'string';
  if ('integer' in spec) return Number.isInteger(v);
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const show = (v: unknown): string => (typeof v === 'string' ? v : (JSON.stringify(v) ?? String(v)));

function walk(body: Record<string, unknown>, tree: WritableTree, readOnly: ReadonlySet<string>, prefix: string, out: MessageRef[]): void {
  for (const [key, value] of Object.entries(body)) {
    const name = prefix + key;
    const property = `#/${name}`;
    if (key === '@odata.etag' && prefix === '') continue; // clients may echo it back; If-Match is the real check
    const spec = Object.hasOwn(tree, key) ? tree[key] : undefined;
    if (spec === undefined) {
      const known = readOnly.has(name) || key.startsWith('@odata.') || key.includes('@');
      out.push({ messageId: known ? 'PropertyNotWritable' : 'PropertyUnknown', args: [name], property });
      continue;
    }
    if (!typeOk(spec, value)) {
      out.push({ messageId: 'PropertyValueTypeError', args: [show(value), name], property });
      continue;
    }
    if (typeof spec === 'object' && 'enum' in spec && !spec.enum.includes(value as string)) {
      out.push({ messageId: 'PropertyValueNotInList', args: [show(value), name], property });
    } else if (typeof spec === 'object' && 'integer' in spec) {
      const n = value as number;
      if ((spec.integer.min !== undefined && n < spec.integer.min) || (spec.integer.max !== undefined && n > spec.integer.max)) {
        out.push({ messageId: 'PropertyValueOutOfRange', args: [show(value), name], property });
      }
    } else if (typeof spec === 'object' && 'object' in spec) {
      walk(value as Record<string, unknown>, spec.object, readOnly, `${name}/`, out);
    }
  }
}

/**
 * Check a PATCH body; returns it (typed loosely) when every property is writable and well-typed,
 * otherwise throws one RedfishError 400 listing every problem.
 */
export function validatePatch(body: unknown, spec: PatchSpec): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new RedfishError(400, 'MalformedJSON');
  const obj = body as Record<string, unknown>;
  if (Object.keys(obj).length === 0) throw new RedfishError(400, 'EmptyJSON');
  // DSP0266 PATCH (update): a body of OData annotations only is 400 with NoOperation.
  if (Object.keys(obj).every((k) => k.startsWith('@odata.'))) throw new RedfishError(400, 'NoOperation');
  const problems: MessageRef[] = [];
  walk(obj, spec.writable, new Set(spec.readOnly ?? []), '', problems);
  const [first, ...more] = problems;
  if (first) {
    throw new RedfishError(400, first.messageId, first.args, {
      ...(first.property !== undefined ? { property: first.property } : {}),
      more,
    });
  }
  return obj;
}

/**
 * Annotate a resource body with `@Redfish.WriteableProperties` (RedfishExtensions_v1.xml: the
 * properties read-write "given the implementation, current configuration, and state of the
 * resource"; at the root or within an object) from the same tree validatePatch checks a PATCH
 * against, so the two cannot disagree. Each level lists its own leaf properties: the root names the
 * top-level ones (an empty list when a PATCH can change none of them), a nested object such as
 * Boot carries the list of its own. Returns the body (changed in place).
 */
export function withWriteableProperties<T extends Record<string, unknown>>(body: T, tree: WritableTree): T {
  annotate(body, tree, true);
  return body;
}

function annotate(body: Record<string, unknown>, tree: WritableTree, root: boolean): void {
  const leaves: string[] = [];
  for (const [key, spec] of Object.entries(tree)) {
    if (typeof spec === 'object' && 'object' in spec) {
      const sub = body[key];
      if (typeof sub === 'object' && sub !== null && !Array.isArray(sub)) annotate(sub as Record<string, unknown>, spec.object, false);
    } else {
      leaves.push(key);
    }
  }
  if (root || leaves.length > 0) body['@Redfish.WriteableProperties'] = leaves;
}
