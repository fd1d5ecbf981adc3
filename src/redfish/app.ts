/**
 * The Redfish koa application: binds every generated route (generated/redfish/routes.ts) to its
 * handler by operationId in an @koa/router route table and wraps them in the common behaviour:
 * request ids, Redfish error bodies, authentication and privileges, JSON bodies through
 * koa-bodyparser (64 KiB cap, 32 levels), 404/405/501, OData headers, and the DSP0266 response
 * headers: Allow and Link rel=describedby on GET/HEAD, ETag on every JSON resource, Location on
 * every 201; POST to a collection's /Members creates like POST to it; `only` on collections.
 */
import Router from '@koa/router';
import type http from 'node:http';
import Koa from 'koa';
import { countSessions, observeRequest } from '../common/metrics.js';
import { newRequestId, type Logger } from '../common/logger.js';
import { routes, type RouteDef } from '../../generated/redfish/routes.js';
import { authenticate, authorize, hasPrivilege, passwordChangeGate } from './core/auth.js';
import { RedfishError, errorBody } from './core/errors.js';
import { idempotencyOf, isAction, isExactlyOnce } from './core/idempotency.js';
import { JSON_TYPE, ODATA_VERSION, finishResource, jsonOfBody } from './core/odata.js';
import type { OperationHandlers, OperationId, RedfishContext, RedfishDeps, RedfishHandler, RedfishState, Role } from './core/types.js';
import { FAST_OPERATIONS, fastGetHandler, type FastGetStats, type FastRoute } from './fast-get.js';
import { serveUi } from './ui.js';

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

interface BoundRoute {
  def: RouteDef;
  handler: RedfishHandler;
}

/** Bind handlers to routes; throws naming every operationId without (or with two) handlers. */
export function bindHandlers(modules: readonly OperationHandlers[]): BoundRoute[] {
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
  return routes.map((r) => ({ def: r, handler: merged.get(r.operationId) as RedfishHandler }));
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

/** Whether the request carries a body (a non-zero Content-Length, or chunked). */
function hasBody(ctx: RedfishContext): boolean {
  const len = ctx.get('Content-Length');
  return ctx.get('Transfer-Encoding') !== '' || (len !== '' && len !== '0');
}

/**
 * koa-bodyparser: JSON only (any declared type is parsed as JSON once `jsonish` accepted it),
 * 64 KiB after decoding, non-strict (a bare value reaches the handler, which names what it wanted).
 * co-body parses with bourne, which refuses __proto__ keys (400 like any malformed JSON).
 */
let parseJson: Promise<Koa.Middleware> | undefined;

/**
 * The parser, loaded on the first request with a body rather than at start: koa-bodyparser and
 * what it pulls in (co-body, raw-body, iconv-lite, qs) are a fifth of the agent's start-up CPU
 * (docs/scale.md "Cold start"); GETs never need it. `warmBodyParser` loads it once the agent is
 * ready, so the first POST rarely waits for it either.
 */
function jsonParser(): Promise<Koa.Middleware> {
  parseJson ??= import('koa-bodyparser').then(({ default: bodyParser }) =>
    bodyParser({
      enableTypes: ['json'],
      jsonLimit: String(MAX_BODY_BYTES),
      strict: false,
      detectJSON: () => true,
    }),
  );
  return parseJson;
}

/** Load the body parser now (after the agent is ready); failures surface on the first body instead. */
export function warmBodyParser(): Promise<void> {
  return jsonParser().then(
    () => undefined,
    () => undefined,
  );
}

/**
 * The request body as JSON, or undefined when there is none. Our 400/413/415 Base messages for
 * koa-bodyparser's (co-body/raw-body) errors, plus the nesting limit.
 */
async function readBody(ctx: RedfishContext): Promise<unknown> {
  if (!hasBody(ctx)) return undefined;
  if (!jsonish(ctx.get('Content-Type'))) {
    throw new RedfishError(415, 'UnrecognizedRequestBody', [], { detail: 'Request bodies must be application/json.' });
  }
  const request = ctx.request as { body?: unknown };
  const parse = await jsonParser();
  try {
    await parse(ctx as unknown as Koa.ParameterizedContext, async () => undefined);
  } catch (e) {
    const status = (e as { status?: unknown }).status;
    if (status === 413) throw tooLarge(ctx);
    if (status === 415) {
      throw new RedfishError(415, 'UnrecognizedRequestBody', [], { detail: 'Unsupported body encoding or charset.' });
    }
    throw new RedfishError(400, 'MalformedJSON');
  }
  const body = request.body;
  if (body === '' || body === undefined) return undefined;
  if (nestedDeeper(body, MAX_BODY_DEPTH)) {
    throw new RedfishError(400, 'MalformedJSON', [], { detail: `JSON nested deeper than ${MAX_BODY_DEPTH} levels.` });
  }
  return body;
}

function normalizePath(path: string): string {
  return path.length > 1 && path.endsWith('/') ? path.replace(/\/+$/, '') : path;
}

/** Methods the router serves; any other method that node's parser lets through answers 501. */
const SERVED_METHODS = ['HEAD', 'GET', 'POST', 'PATCH', 'PUT', 'DELETE'];
/** Allow header order */
const METHOD_ORDER = ['GET', 'HEAD', 'POST', 'PATCH', 'PUT', 'DELETE'];

/**
 * `Link: <uri>; rel=describedby` of a resource body (DSP0266 "Link header"): the DMTF-published JSON
 * schema of its @odata.type, versioned when the type is ("#ComputerSystem.v1_27_0.ComputerSystem" →
 * ComputerSystem.v1_27_0.json), else the unversioned file (collections). The schemas are not served
 * here, so the link names their canonical home.
 */
export function describedBy(odataType: unknown): string | undefined {
  if (typeof odataType !== 'string') return undefined;
  const parts = odataType.replace(/^#/, '').split('.');
  let file: string;
  if (parts.length === 3 && /^v\d+_\d+_\d+$/.test(parts[1] as string)) file = `${parts[0]}.${parts[1]}`;
  else if (parts.length === 2 && parts[0] === parts[1]) file = parts[0] as string;
  else return undefined;
  if (!/^[A-Za-z0-9_.]+$/.test(file)) return undefined;
  return `<${SCHEMA_BASE}${file}.json>; rel=describedby`;
}
export const SCHEMA_BASE = 'https://redfish.dmtf.org/schemas/v1/';

/** What the `only` query parameter needs of the routes (DSP0266 "only query parameter"). */
function onlyRequested(ctx: RedfishContext): boolean {
  if (!('only' in ctx.query)) return false;
  const v = ctx.query.only;
  if (v !== '') throw new RedfishError(400, 'QueryParameterValueFormatError', [String(v), 'only']);
  if (Object.keys(ctx.query).length > 1) throw new RedfishError(400, 'QueryCombinationInvalid');
  return true;
}

/**
 * Shared mode (src/redfish/core/tenancy.ts): chooses each request's tenant (its deps, user and the
 * path to route), picks the tenant of a login from its body, and rewrites answers to the tenant's ids.
 */
export interface RedfishTenancy {
  enter(ctx: RedfishContext): void;
  login(ctx: RedfishContext, body: unknown): void;
  leave(ctx: RedfishContext): void;
}

export { normalizePath };

/** The fast path's routes and helpers per app (per-VM apps only), for redfishCallback. */
const fastSources = new WeakMap<object, Parameters<typeof fastGetHandler>[0]>();

/**
 * The node:http request listener of a Redfish app: the GET/HEAD fast path (./fast-get.ts) in
 * front of koa, or koa alone when `fast` is false.
 * `stats` counts what the fast path served and passed on (tests).
 */
export function redfishCallback(app: Koa<RedfishState>, opts: { fast?: boolean; stats?: FastGetStats } = {}): http.RequestListener {
  const koa = app.callback();
  const src = fastSources.get(app);
  if (!src || opts.fast === false) return koa;
  return fastGetHandler(src, koa, opts.stats);
}

export function createRedfishApp(deps: RedfishDeps, modules: readonly OperationHandlers[], tenancy?: RedfishTenancy): Koa<RedfishState> {
  const bound = bindHandlers(modules);
  countSessions(deps.machine, 'redfish', () => deps.sessions.list().length);
  const app = new Koa<RedfishState>();
  app.silent = true;
  // the web page at / and /ui/ (ui.ts); every other path is the Redfish service
  app.use(serveUi());

  // Routes by path template: which methods each takes (Allow) and under which privileges.
  const byPath = new Map<string, BoundRoute[]>();
  for (const b of bound) byPath.set(b.def.koaPath, [...(byPath.get(b.def.koaPath) ?? []), b]);
  // POST to a collection's Members property creates like POST to the collection (DSP0266 "POST (create)").
  for (const b of bound) {
    if (b.def.method !== 'POST' || isAction('POST', b.def.path) || b.def.path.includes('/Actions/')) continue;
    const alias = `${b.def.koaPath}/Members`;
    if (byPath.has(alias)) continue;
    byPath.set(alias, [{ def: { ...b.def, path: `${b.def.path}/Members`, koaPath: alias }, handler: b.handler }]);
  }
  const allowCache = new Map<string, Map<string, string>>();
  const order = (ms: Iterable<string>): string[] => {
    const set = new Set(ms);
    if (set.has('GET')) set.add('HEAD');
    return METHOD_ORDER.filter((m) => set.has(m));
  };
  /** Allow for a GET/HEAD answer: the methods of this resource this user may use (ConfigureSelf counts). */
  const allowFor = (path: string, role: Role | undefined): string => {
    // per role, then per path: both keys are strings V8 has hashed already (no key built per request)
    let byRole = allowCache.get(role ?? '');
    if (!byRole) allowCache.set(role ?? '', (byRole = new Map()));
    let v = byRole.get(path);
    if (v === undefined) {
      const list = byPath.get(path) ?? [];
      const ok = (b: BoundRoute): boolean =>
        b.def.privileges.some((alt) => alt.every((p) => p === 'NoAuth' || (role !== undefined && hasPrivilege(role, p))));
      v = order(list.filter(ok).map((b) => b.def.method)).join(', ');
      byRole.set(path, v);
    }
    return v;
  };

  const router = new Router<RedfishState>({ methods: SERVED_METHODS });
  /** Link header per @odata.type ('' = none); the types are the service's own, so few */
  const linkCache = new Map<string, string>();
  /** The Link header value of an @odata.type ('' = none) */
  const linkOf = (type: unknown): string => {
    if (typeof type !== 'string') return '';
    let link = linkCache.get(type);
    if (link === undefined) {
      link = describedBy(type) ?? '';
      if (linkCache.size < 256) linkCache.set(type, link);
    }
    return link;
  };

  /** Serve one bound route: auth, checks, body, handler, then the protocol headers. */
  const serve = async (rctx: RedfishContext, b: BoundRoute, only: boolean): Promise<void> => {
    const ctx = rctx;
    rctx.state.route = b.def;
    const isPublic = b.def.privileges.some((alt) => alt.includes('NoAuth'));
    if (!isPublic) {
      // shared mode: the tenancy layer already authenticated the caller against the tenant's accounts
      if (!rctx.state.user) authenticate(rctx);
      authorize(rctx, b.def);
    }
    const odataVersion = ctx.get('OData-Version');
    if (odataVersion && odataVersion.trim() !== ODATA_VERSION) {
      throw new RedfishError(412, 'HeaderInvalid', [`OData-Version: ${odataVersion.slice(0, 20)}`]);
    }
    // The SSE stream takes $filter (DSP0266 "Server-sent events"; src/redfish/resources/events.ts parses it).
    const ownFilter = b.def.operationId === 'getEventServiceSse' ? ['$filter'] : [];
    const dollar = Object.keys(ctx.query).filter((k) => k.startsWith('$') && !ownFilter.includes(k));
    if (dollar.length > 0) throw new RedfishError(501, 'QueryParameterUnsupported', [dollar[0] as string]);
    if (ctx.method === 'POST' || ctx.method === 'PATCH' || ctx.method === 'PUT') {
      (ctx.request as { body?: unknown }).body = await readBody(rctx);
      if (tenancy && b.def.operationId === 'createSession') tenancy.login(rctx, (ctx.request as { body?: unknown }).body);
    }
    if (!isPublic) passwordChangeGate(rctx, b.def);
    // Actions (and volume creates) retried with an Idempotency-Key / X-Request-Id run once (core/idempotency.ts).
    if (isExactlyOnce(ctx.method, b.def.path, b.def.operationId)) await idempotencyOf(deps).run(rctx, b.handler);
    else await b.handler(rctx);

    const body = ctx.body as Record<string, unknown> | undefined | null;
    // a JSON resource (not a stream, buffer or text such as $metadata or the SSE stream)
    const isObject = typeof body === 'object' && body !== null && Object.getPrototypeOf(body) === Object.prototype;
    if (ctx.method === 'GET' || ctx.method === 'HEAD') {
      if (only && ctx.status === 200 && isObject && Array.isArray(body.Members) && body.Members.length === 1) {
        const member = (body.Members[0] as Record<string, unknown> | undefined)?.['@odata.id'];
        const target = typeof member === 'string' ? resolve(member) : undefined;
        if (target) {
          ctx.remove('ETag');
          ctx.body = null;
          ctx.status = 404;
          rctx.params = target.params;
          return serve(rctx, target.route, false);
        }
      }
      ctx.set('Allow', allowFor(b.def.koaPath, rctx.state.user?.role));
      // Link and ETag on every JSON resource, collections included (handlers that PATCH set their own)
      if (isObject && ctx.status === 200) finishResource(ctx, body, linkOf);
    } else if (ctx.method === 'POST' && ctx.status === 201 && isObject && !ctx.response.get('Location')) {
      // every create answers 201 with the new resource's Location
      const id = body['@odata.id'];
      if (typeof id === 'string') ctx.set('Location', id);
    }
  };

  /** The GET route and parameters of a member URI (for `only`). */
  const resolve = (uri: string): { route: BoundRoute; params: Record<string, string> } | undefined => {
    const path = normalizePath(uri.split('?')[0] as string);
    const m = router.match(path, 'GET');
    for (const layer of m.pathAndMethod) {
      const route = (byPath.get(layer.path as string) ?? []).find((b) => b.def.method === 'GET');
      if (route) return { route, params: layer.params(path, layer.captures(path), {}) };
    }
    return undefined;
  };

  // The route table lives in the router (path-to-regexp matching, parameter decoding); each layer
  // maps back to its bound route. Dispatch is ours (below), see docs/redfish.md "Routing".
  const layerRoute = new Map<unknown, BoundRoute>();
  const noop = async (): Promise<void> => undefined;
  for (const [path, list] of byPath) {
    for (const b of list) layerRoute.set(router.register(path, [b.def.method], noop), b);
  }
  /**
   * router.match() and the first layer's decoded parameters per method and path, remembered: the
   * table never changes after this point and clients ask for the same few paths over and over.
   * Bounded (paths carry client-chosen ids); the whole memo is dropped when full.
   */
  type Match = ReturnType<typeof router.match> & { params: Readonly<Record<string, string>> };
  const matches = new Map<string, Match>();
  const match = (path: string, method: string): Match => {
    const key = `${method} ${path}`;
    let m = matches.get(key);
    if (m === undefined) {
      const r = router.match(path, method);
      const layer = r.pathAndMethod[0];
      m = Object.assign(r, { params: layer ? layer.params(path, layer.captures(path), {}) : {} });
      if (matches.size >= MATCH_MEMO_MAX) matches.clear();
      matches.set(key, m);
    }
    return m;
  };

  // The GET/HEAD fast path (./fast-get.ts): the exact paths of its operations
  // without parameters to decode beyond the fixed ids, routed by this table as koa would route them.
  {
    const fast = new Map<string, FastRoute>();
    for (const [path, list] of byPath) {
      const b = list.find((x) => x.def.method === 'GET' && FAST_OPERATIONS.has(x.def.operationId));
      if (!b) continue;
      // the concrete path: each parameter the one id this service has
      const concrete = path.replace(/:(\w+)/g, (_m, name: string) =>
        name === 'ComputerSystemId' ? deps.ids.system : name === 'ManagerId' ? deps.ids.manager : name === 'ChassisId' ? deps.ids.chassis : `:${name}`,
      );
      if (concrete.includes(':')) continue;
      const m = match(concrete, 'GET');
      if (layerRoute.get(m.pathAndMethod[0]) !== b) continue;
      fast.set(concrete, { def: b.def, handler: b.handler, params: m.params });
    }
    fastSources.set(app, { deps, routes: fast, allowFor, linkOf, ...(tenancy ? { tenancy } : {}) });
  }

  // Request id, child logger, Redfish error bodies, OData-Version on every answer.
  app.use(async (ctx, next) => {
    const rctx = ctx as unknown as RedfishContext;
    // the request id and its child logger are made when first used: most GETs log nothing
    ctx.state = new RequestState(deps);
    const started = Date.now();
    try {
      tenancy?.enter(rctx);
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
    tenancy?.leave(rctx);
    ctx.set('OData-Version', ODATA_VERSION);
    ctx.set('Cache-Control', 'no-store');
    // a body whose JSON text was made for its ETag is sent as that text (core/odata.ts etagOfAnswer):
    // koa would serialise the object again; Content-Length comes last either way
    const out = ctx.body;
    if (typeof out === 'object' && out !== null) {
      const json = jsonOfBody(out);
      if (json !== undefined) ctx.body = json;
    }
    if (deps.logger.isLevelEnabled('debug')) {
      rctx.state.logger.debug(
        { method: ctx.method, path: ctx.path, status: ctx.status, ms: Date.now() - started, user: rctx.state.user?.username },
        'redfish request',
      );
    }
    // agent metrics (src/agent/metrics.ts): route by operationId, never the path
    // (in shared mode the deps of the system that answered, so each system's requests count under its label)
    observeRequest(rctx.state.deps.machine, 'redfish', rctx.state.route?.operationId ?? 'unrouted', ctx.status, (Date.now() - started) / 1000);
  });

  // Dispatch through router.match(): 501 for a method no route serves, 405 with Allow (every method
  // the resource takes) when the path matched but not the method, 404 when nothing matched. This is
  // what router.routes() + router.allowedMethods() do, without their per-request middleware chain,
  // which cost ~29 % of single-connection GET throughput (bench/redfish-router.ts).
  app.use(async (ctx) => {
    const rctx = ctx as unknown as RedfishContext;
    const path = rctx.state.internalPath ?? normalizePath(ctx.path);
    const m = match(path, ctx.method);
    if (!SERVED_METHODS.includes(ctx.method)) {
      throw new RedfishError(501, 'OperationNotAllowed', [], { detail: `The HTTP method ${ctx.method} is not implemented by this service.` });
    }
    const layer = m.pathAndMethod[0];
    if (!layer) {
      if (m.path.length === 0) throw new RedfishError(404, 'ResourceMissingAtURI', [ctx.path]);
      const allow = order(m.path.flatMap((l) => (byPath.get(l.path as string) ?? []).map((x) => x.def.method))).join(', ');
      throw new RedfishError(405, 'OperationNotAllowed', [], { headers: { Allow: allow } });
    }
    const b = layerRoute.get(layer) as BoundRoute;
    rctx.params = { ...m.params };
    const only = ctx.querystring !== '' && (ctx.method === 'GET' || ctx.method === 'HEAD') && onlyRequested(rctx);
    await serve(rctx, b, only);
  });
  return app;
}

/** Entries of the per-app route match memo (createRedfishApp). */
const MATCH_MEMO_MAX = 1024;

/**
 * A request's state: the deps, and a request id and child logger made on first use (a GET that
 * logs nothing never pays for the random id or the pino child).
 */
class RequestState implements RedfishState {
  deps: RedfishDeps;
  user?: RedfishState['user'];
  route?: RedfishState['route'];
  selfOnly?: boolean;
  internalPath?: string;
  tenant?: RedfishState['tenant'];
  private rid: string | undefined;
  private log: Logger | undefined;
  /** the deps the request started with: its logger is a child of their logger even when a tenant takes over */
  private readonly base: RedfishDeps;

  constructor(deps: RedfishDeps) {
    this.deps = deps;
    this.base = deps;
  }

  get requestId(): string {
    return (this.rid ??= newRequestId());
  }

  set requestId(v: string) {
    this.rid = v;
  }

  get logger(): Logger {
    return (this.log ??= this.base.logger.child({ requestId: this.requestId }));
  }

  set logger(v: Logger) {
    this.log = v;
  }
}

export type { OperationId };
