/**
 * The Redfish koa application: binds every generated route (generated/redfish/routes.ts) to its
 * handler by operationId and wraps them in the common behaviour: request ids, Redfish error bodies,
 * authentication and privileges, JSON body parsing (64 KiB cap), 404/405, OData headers.
 */
import Koa from 'koa';
import { newRequestId } from '../common/logger.js';
import { routes, type RouteDef } from '../../generated/redfish/routes.js';
import { authenticate, authorize } from './core/auth.js';
import { RedfishError, errorBody } from './core/errors.js';
import { idempotencyOf, isAction } from './core/idempotency.js';
import { JSON_TYPE, ODATA_VERSION } from './core/odata.js';
import type { OperationHandlers, OperationId, RedfishContext, RedfishDeps, RedfishHandler, RedfishState } from './core/types.js';

export const MAX_BODY_BYTES = 64 * 1024;
/**
 * Deepest JSON nesting accepted in a body. Redfish bodies are a few levels deep; far deeper ones
 * (cheap within 64 KiB) would overflow the stack wherever a value is echoed back with JSON.stringify.
 */
export const MAX_BODY_DEPTH = 32;

/** Whether `v` nests objects/arrays deeper than `limit` levels (stops at the limit, so never deep itself). */
function nestedDeeper(v: unknown, limit: number): boolean {
  if (typeof v !== 'object' || v === null) return false;
  if (limit === 0) return true;
  for (const x of Object.values(v)) if (nestedDeeper(x, limit - 1)) return true;
  return false;
}

interface CompiledRoute {
  def: RouteDef;
  regex: RegExp;
  params: string[];
  handler: RedfishHandler;
}

const escapeRe = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function compile(def: RouteDef, handler: RedfishHandler): CompiledRoute {
  const params: string[] = [];
  const pattern = def.path
    .split(/(\{[A-Za-z0-9_]+\})/)
    .map((part) => {
      const m = /^\{([A-Za-z0-9_]+)\}$/.exec(part);
      if (!m) return escapeRe(part);
      params.push(m[1] as string);
      return '([^/]+)';
    })
    .join('');
  return { def, regex: new RegExp(`^${pattern}$`), params, handler };
}

/** Bind handlers to routes; throws naming every operationId without (or with two) handlers. */
export function bindHandlers(modules: readonly OperationHandlers[]): CompiledRoute[] {
  const merged = new Map<string, RedfishHandler>();
  const duplicate: string[] = [];
  const known = new Set<string>(routes.map((r) => r.operationId));
  const unknown: string[] = [];
  for (const mod of modules) {
    for (const [id, h] of Object.entries(mod) as [string, RedfishHandler | undefined][]) {
      if (!h) continue;
      if (!known.has(id)) unknown.push(id);
      if (merged.has(id)) duplicate.push(id);
      merged.set(id, h);
    }
  }
  const missing = routes.filter((r) => !merged.has(r.operationId)).map((r) => r.operationId);
  const problems: string[] = [];
  if (missing.length) problems.push(`no handler for operationId(s): ${missing.join(', ')}`);
  if (duplicate.length) problems.push(`several handlers for: ${duplicate.join(', ')}`);
  if (unknown.length) problems.push(`handlers for unknown operationId(s): ${unknown.join(', ')}`);
  if (problems.length) throw new Error(`Redfish app: ${problems.join('; ')}`);
  return routes.map((r) => compile(r, merged.get(r.operationId) as RedfishHandler));
}

/** Accepted request body media types; curl's default form type is tolerated (body is JSON anyway). */
function jsonish(type: string): boolean {
  const t = type.split(';')[0]?.trim().toLowerCase() ?? '';
  return t === '' || t === 'application/json' || t.endsWith('+json') || t === 'application/x-www-form-urlencoded';
}

/** Grace for a client to finish sending an over-long body after its 413 before the connection is cut. */
const DRAIN_GRACE_MS = 2000;

/**
 * 413. After answering, node would go on reading and discarding the rest of the body for as long as
 * the client sends it; the connection is cut when the request is still unfinished after a short grace
 * (not at once: a client still sending would then get a reset instead of the 413).
 */
function tooLarge(ctx: RedfishContext): RedfishError {
  const { req } = ctx;
  const { socket } = req;
  setTimeout(() => {
    if (!req.complete) socket.destroy();
  }, DRAIN_GRACE_MS).unref();
  return new RedfishError(413, 'PayloadTooLarge');
}

async function readBody(ctx: RedfishContext): Promise<unknown> {
  const declared = Number(ctx.get('Content-Length') || '0');
  if (declared > MAX_BODY_BYTES) throw tooLarge(ctx);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of ctx.req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw tooLarge(ctx);
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') return undefined;
  if (!jsonish(ctx.get('Content-Type'))) {
    throw new RedfishError(415, 'UnrecognizedRequestBody', [], { detail: 'Request bodies must be application/json.' });
  }
  let body: unknown;
  try {
    body = JSON.parse(text) as unknown;
  } catch {
    throw new RedfishError(400, 'MalformedJSON');
  }
  if (nestedDeeper(body, MAX_BODY_DEPTH)) {
    throw new RedfishError(400, 'MalformedJSON', [], { detail: `JSON nested deeper than ${MAX_BODY_DEPTH} levels.` });
  }
  return body;
}

function normalizePath(path: string): string {
  return path.length > 1 && path.endsWith('/') ? path.replace(/\/+$/, '') : path;
}

export function createRedfishApp(deps: RedfishDeps, modules: readonly OperationHandlers[]): Koa<RedfishState> {
  const compiled = bindHandlers(modules);
  const app = new Koa<RedfishState>();
  app.silent = true;

  // Request id, child logger, Redfish error bodies, OData-Version on every answer.
  app.use(async (ctx, next) => {
    const rctx = ctx as unknown as RedfishContext;
    const requestId = newRequestId();
    rctx.state.deps = deps;
    rctx.state.requestId = requestId;
    rctx.state.logger = deps.logger.child({ requestId });
    const started = Date.now();
    try {
      await next();
    } catch (e) {
      let err: RedfishError;
      if (e instanceof RedfishError) err = e;
      else {
        rctx.state.logger.error({ err: e, method: ctx.method, path: ctx.path }, 'redfish handler failed');
        err = new RedfishError(500, 'InternalError');
      }
      ctx.status = err.status;
      for (const [k, v] of Object.entries(err.opts.headers ?? {})) ctx.set(k, v);
      if (err.opts.retryAfterSeconds !== undefined && !ctx.response.get('Retry-After')) {
        ctx.set('Retry-After', String(Math.max(1, Math.ceil(err.opts.retryAfterSeconds))));
      }
      ctx.type = JSON_TYPE;
      ctx.body = errorBody(err.messages(), err.opts.detail);
    }
    ctx.set('OData-Version', ODATA_VERSION);
    ctx.set('Cache-Control', 'no-store');
    rctx.state.logger.debug(
      { method: ctx.method, path: ctx.path, status: ctx.status, ms: Date.now() - started, user: rctx.state.user?.username },
      'redfish request',
    );
  });

  app.use(async (ctx) => {
    const rctx = ctx as unknown as RedfishContext;
    const path = normalizePath(ctx.path);
    const method = ctx.method === 'HEAD' ? 'GET' : ctx.method;
    const matches: { route: CompiledRoute; values: string[] }[] = [];
    for (const route of compiled) {
      const m = route.regex.exec(path);
      if (m) matches.push({ route, values: m.slice(1) });
    }
    if (matches.length === 0) throw new RedfishError(404, 'ResourceMissingAtURI', [ctx.path]);
    const hit = matches.find((x) => x.route.def.method === method);
    if (!hit) {
      const allow: string[] = [...new Set(matches.map((x) => x.route.def.method))];
      if (allow.includes('GET')) allow.splice(allow.indexOf('GET') + 1, 0, 'HEAD');
      throw new RedfishError(405, 'OperationNotAllowed', [], { headers: { Allow: allow.join(', ') } });
    }
    const params: Record<string, string> = {};
    for (const [i, name] of hit.route.params.entries()) {
      try {
        params[name] = decodeURIComponent(hit.values[i] as string);
      } catch {
        throw new RedfishError(404, 'ResourceMissingAtURI', [ctx.path]);
      }
    }
    rctx.params = params;
    rctx.state.route = hit.route.def;

    const isPublic = hit.route.def.privileges.some((alt) => alt.includes('NoAuth'));
    if (!isPublic) {
      authenticate(rctx);
      authorize(rctx, hit.route.def);
    }
    const odataVersion = ctx.get('OData-Version');
    if (odataVersion && odataVersion.trim() !== ODATA_VERSION) {
      throw new RedfishError(412, 'HeaderInvalid', [`OData-Version: ${odataVersion.slice(0, 20)}`]);
    }
    const dollar = Object.keys(ctx.query).filter((k) => k.startsWith('$'));
    if (dollar.length > 0) throw new RedfishError(501, 'QueryParameterUnsupported', [dollar[0] as string]);
    if (['POST', 'PATCH', 'PUT'].includes(ctx.method)) {
      (ctx.request as { body?: unknown }).body = await readBody(rctx);
    }
    // Actions retried with an Idempotency-Key / X-Request-Id run once (core/idempotency.ts).
    if (isAction(ctx.method, path)) await idempotencyOf(deps).run(rctx, hit.route.handler);
    else await hit.route.handler(rctx);
  });
  return app;
}

export type { OperationId };
