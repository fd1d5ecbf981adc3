/** Response helpers: OData headers, ETags, collections, If-Match. */
import { createHash } from 'node:crypto';
import { RedfishError } from './errors.js';
import type { RedfishContext } from './types.js';

export const ODATA_VERSION = '4.0';
export const JSON_TYPE = 'application/json; charset=utf-8';

/** Weak ETag of a resource body (stable for equal content). */
export function etagOf(body: unknown): string {
  const clone = { ...(body as Record<string, unknown>) };
  delete clone['@odata.etag'];
  return `W/"${createHash('sha256').update(JSON.stringify(clone)).digest('hex').slice(0, 16)}"`;
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
  let payload = body;
  if (opts.etag) {
    const etag = etagOf(body);
    payload = { ...body, '@odata.etag': etag };
    ctx.set('ETag', etag);
    const inm = ctx.get('If-None-Match');
    if ((ctx.method === 'GET' || ctx.method === 'HEAD') && inm && inm.split(',').some((t) => t.trim() === etag || t.trim() === '*')) {
      ctx.status = 304;
      return;
    }
  }
  ctx.status = opts.status ?? 200;
  ctx.type = JSON_TYPE;
  ctx.body = payload;
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
