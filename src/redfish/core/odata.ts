/** Response helpers: OData headers, ETags, collections, If-Match. */
import * as crypto from 'node:crypto';
import { RedfishError } from './errors.js';
import type { RedfishContext } from './types.js';

export const ODATA_VERSION = '4.0';
export const JSON_TYPE = 'application/json; charset=utf-8';

/** SHA-256 hex of a string: crypto.hash (one call, no Hash object) where node has it (20.12+). */
const sha256Hex: (s: string) => string =
  typeof (crypto as { hash?: unknown }).hash === 'function'
    ? (s) => crypto.hash('sha256', s, 'hex')
    : (s) => crypto.createHash('sha256').update(s).digest('hex');

/**
 * ETags of the last JSON texts hashed (most resources read the same between two changes, so the
 * same text comes back again and again; looking it up costs less than hashing it). Bounded: at
 * most 64 texts of at most 16 KiB each (larger ones, such as message registries, are hashed every
 * time). Equal text gives the equal ETag either way.
 */
const ETAG_MEMO_MAX = 64;
const ETAG_MEMO_TEXT_MAX = 16 * 1024;
const etagMemo = new Map<string, string>();

/** Weak ETag of a body's JSON text (without @odata.etag). */
function etagOfJson(json: string): string {
  if (json.length > ETAG_MEMO_TEXT_MAX) return `W/"${sha256Hex(json).slice(0, 16)}"`;
  let etag = etagMemo.get(json);
  if (etag === undefined) {
    etag = `W/"${sha256Hex(json).slice(0, 16)}"`;
    if (etagMemo.size >= ETAG_MEMO_MAX) etagMemo.delete(etagMemo.keys().next().value as string);
    etagMemo.set(json, etag);
  }
  return etag;
}

/**
 * The JSON text of a plain object (its own properties, Object.prototype, no @odata.etag), which is
 * what JSON.stringify of its copy without @odata.etag gives; undefined for anything else.
 */
function plainJson(body: unknown): string | undefined {
  if (typeof body !== 'object' || body === null || Object.getPrototypeOf(body) !== Object.prototype) return undefined;
  if (Object.hasOwn(body, '@odata.etag') || Object.hasOwn(body, 'toJSON')) return undefined;
  return JSON.stringify(body);
}

/**
 * Answer bodies whose JSON text is already made (for their ETag): the app sends this text instead
 * of serialising the object again (src/redfish/app.ts), so the ETag is the hash of what is sent.
 * Weak: an entry lives as long as its body object.
 */
const sentJson = new WeakMap<object, string>();

/** The JSON text recorded for this answer body, if any (see sentJson). */
export function jsonOfBody(body: object): string | undefined {
  return sentJson.get(body);
}

/** Weak ETag of a resource body (stable for equal content). */
export function etagOf(body: unknown): string {
  const json = plainJson(body);
  if (json !== undefined) return etagOfJson(json);
  const clone = { ...(body as Record<string, unknown>) };
  delete clone['@odata.etag'];
  return etagOfJson(JSON.stringify(clone));
}

/**
 * Weak ETag of an answer body about to be sent; records its JSON text so the app sends that text
 * (the body must not change after this).
 */
export function etagOfAnswer(body: Record<string, unknown>): string {
  const json = plainJson(body);
  if (json === undefined) return etagOf(body);
  sentJson.set(body, json);
  return etagOfJson(json);
}

/** The header access both the koa context and the fast path's context give (finishResource). */
export interface AnswerHeaders {
  status: number;
  body: unknown;
  get(name: string): string;
  set(name: string, value: string): void;
  response: { get(name: string): string };
}

/**
 * The last step of every JSON resource answered 200 (app.ts and fast-get.ts): the Link to its
 * schema (`linkOf` its @odata.type, '' = none), and its ETag unless the handler set one (PATCH
 * handlers do), with If-None-Match answered 304 and no body.
 */
export function finishResource(ctx: AnswerHeaders, body: Record<string, unknown>, linkOf: (type: unknown) => string): void {
  const link = linkOf(body['@odata.type']);
  if (link) ctx.set('Link', link);
  if (ctx.response.get('ETag')) return;
  const etag = etagOfAnswer(body);
  ctx.set('ETag', etag);
  if (ifNoneMatch(ctx.get('If-None-Match'), etag)) {
    ctx.status = 304;
    ctx.body = null;
  }
}

function ifNoneMatch(header: string, etag: string): boolean {
  return header !== '' && header.split(',').some((t) => t.trim() === etag || t.trim() === '*');
}

/**
 * A resource answer made once to be sent many times (sendPrepared): the body with its
 * @odata.etag, the ETag, and the JSON text the app sends, recorded for the payload (jsonOfBody).
 * The payload is frozen: it is shared by every answer that sends it.
 */
export interface PreparedResource {
  readonly payload: Readonly<Record<string, unknown>>;
  readonly etag: string;
}

/**
 * What sendResource(ctx, body, { etag: true }) sends for `body`, made once to be kept and sent many
 * times (PreparedResource; the Systems/1 answer between two changes). The payload is parsed back
 * from its JSON text: Object.assign of a body of more than ~16 keys onto `{}` (what an answer made
 * per request still uses, preparedOnce) gives a dictionary-mode object, and a frozen dictionary
 * object has a hidden class of its own, so with one kept answer per tenant (shared mode, 1,000
 * tenants) every property read of one (finishResource, the tenancy rewrite) was a megamorphic
 * inline-cache miss; JSON.parse makes fast objects sharing one hidden class per key order.
 */
export function prepareResource(body: Record<string, unknown>): PreparedResource {
  return preparedOnce(body, true);
}

function preparedOnce(body: Record<string, unknown>, kept: boolean): PreparedResource {
  const json = plainJson(body);
  const etag = json !== undefined ? etagOfJson(json) : etagOf(body);
  // the text of payload: @odata.etag is a new key (body had none), so JSON.stringify puts it last
  const text = json === undefined ? undefined : `${json === '{}' ? '{' : `${json.slice(0, -1)},`}"@odata.etag":${JSON.stringify(etag)}}`;
  // Object.assign, not `{ ...body, '@odata.etag': etag }`: on Node 20 a literal that starts with a
  // spread and then adds a key (or a key set on a spread copy) leaves ~860 B per Systems/1 GET
  // surviving young-generation GCs, which grew the agent's RSS by ~40 MB over 1,000,000 GETs
  // (bench/scale-spread.ts, docs/scale.md "Memory after load"). The bodies are built by our
  // resource code (schema property names as keys), so no own `__proto__` key reaches the setter.
  const payload = kept && text !== undefined ? (JSON.parse(text) as Record<string, unknown>) : Object.assign({}, body, { '@odata.etag': etag });
  if (text !== undefined) sentJson.set(payload, text);
  return { payload: Object.freeze(payload), etag };
}

/**
 * Send a prepared resource: ETag header, 304 for a GET/HEAD whose If-None-Match names it (or *),
 * else the payload (sendResource with `etag`, without making the body again).
 */
export function sendPrepared(ctx: RedfishContext, prepared: PreparedResource, status = 200): void {
  const { etag } = prepared;
  ctx.set('ETag', etag);
  const inm = ctx.get('If-None-Match');
  if ((ctx.method === 'GET' || ctx.method === 'HEAD') && inm && inm.split(',').some((t) => t.trim() === etag || t.trim() === '*')) {
    ctx.status = 304;
    return;
  }
  ctx.status = status;
  ctx.type = JSON_TYPE;
  ctx.body = prepared.payload;
}

/**
 * Send a resource: JSON, OData-Version, and with `etag` an ETag header plus @odata.etag.
 * A GET (or HEAD) with a matching If-None-Match answers 304. OData-Version is set by the app for every answer.
 */
export function sendResource(
  ctx: RedfishContext,
  body: Record<string, unknown>,
  opts: { etag?: boolean; status?: number } = {},
): void {
  if (opts.etag) return sendPrepared(ctx, preparedOnce(body, false), opts.status);
  ctx.status = opts.status ?? 200;
  ctx.type = JSON_TYPE;
  ctx.body = body;
}

/** A resource collection body. */
export function collection(
  _ctx: RedfishContext,
  odataId: string,
  type: string,
  name: string,
  members: readonly string[],
): Record<string, unknown> {
  return {
    '@odata.id': odataId,
    '@odata.type': `#${type}.${type}`,
    Name: name,
    Members: members.map((m) => ({ '@odata.id': m })),
    'Members@odata.count': members.length,
  };
}

/**
 * Enforce If-Match on a write: the header (when present) must name the current ETag (or *).
 * `current` is the resource body as a GET would return it, or its ETag.
 */
export function checkIfMatch(ctx: RedfishContext, current: string | Record<string, unknown>): void {
  const header = ctx.get('If-Match');
  if (!header) return;
  const etag = typeof current === 'string' ? current : etagOf(current);
  const strip = (t: string): string => t.trim().replace(/^W\//, '');
  const ok = header.split(',').some((t) => t.trim() === '*' || strip(t) === strip(etag));
  if (!ok) throw new RedfishError(412, 'PreconditionFailed');
}
