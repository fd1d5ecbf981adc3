/**
 * The GET/HEAD fast path (issue 16, docs/redfish.md "Performance"): a node:http request handler in
 * front of the koa app that answers the hottest resources (the system, manager and chassis, their
 * collections and the service root) without koa's context, middleware chain and response
 * machinery, and hands every other request to koa untouched.
 *
 * It runs the same resource handler (through a small context with the few members GET handlers
 * use) and the same steps as the app's middleware, in the same order, so the answer is the koa
 * path's byte for byte (status, every header in the same order, body; test/redfish/fast-get.test.ts
 * compares both). It only takes requests it can answer completely:
 * - GET or HEAD of one of those paths exactly (no query string, no trailing slash), no request
 *   body, an OData-Version header absent or 4.0, debug logging off (the koa path logs each request);
 * - in shared mode, an authenticated route whose tenant the tenancy layer picked (its `enter`
 *   and `leave` run as in the app: the same tenant, deps and rewritten answer);
 * - authenticated by a live session token or by Basic credentials the verified-credentials cache
 *   holds, not locked out (core/auth.ts authenticateKnown), with the route's privileges and no
 *   pending PasswordChangeRequired.
 * Anything else — wrong or new credentials, lockout, 403, a handler that throws (backend outage),
 * a handler that sets something this context does not model — goes to koa, which does it all from
 * the start; nothing the fast path did before handing over changes an answer (the session's
 * last-used time and the lockout's success record are set again by koa, to the same values).
 * Metrics: the same observeRequest call per answer as the app's, once per request.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { observeRequest } from '../common/metrics.js';
import type { Logger } from '../common/logger.js';
import type { RouteDef } from '../../generated/redfish/routes.js';
import { authenticateKnown, authorize, passwordChangeGate } from './core/auth.js';
import { JSON_TYPE, ODATA_VERSION, finishResource, jsonOfBody } from './core/odata.js';
import { internalResourcePath } from './core/tenant-paths.js';
import { type RedfishContext, type RedfishDeps, type RedfishHandler, type RedfishState, type Role } from './core/types.js';

/** operationIds the fast path serves (GET handlers that only read through the context members below) */
export const FAST_OPERATIONS: ReadonlySet<string> = new Set([
  'getServiceRoot',
  'listSystems',
  'getSystem',
  'listManagers',
  'getManager',
  'listChassis',
  'getChassis',
]);

/** One path the fast path answers: its route, handler and decoded path parameters. */
export interface FastRoute {
  def: RouteDef;
  handler: RedfishHandler;
  params: Readonly<Record<string, string>>;
}

export interface FastGetSource {
  deps: RedfishDeps;
  /** shared mode: the tenancy layer, which picks each request's tenant and rewrites its answer (as in the app) */
  tenancy?: { enter(ctx: RedfishContext): void; leave(ctx: RedfishContext): void };
  /** exact request path → route (only FAST_OPERATIONS, GET) */
  routes: ReadonlyMap<string, FastRoute>;
  /** the app's Allow value for a GET/HEAD answer of this route path and role */
  allowFor(koaPath: string, role: Role | undefined): string;
  /** the app's Link header value of an @odata.type ('' = none) */
  linkOf(type: unknown): string;
}

/** Why a context member the fast path does not model was used: the request goes to koa instead. */
class Unmodelled extends Error {}

/**
 * Lower-case header names, kept: the names are the code's own literals (ETag, Allow, Link, ...),
 * whose hash V8 keeps, where a fresh toLowerCase() string is hashed again by every Map access.
 * Bounded, in case a caller ever passes names it builds.
 */
const LOWER = new Map<string, string>();
function lower(name: string): string {
  let v = LOWER.get(name);
  if (v === undefined) {
    v = name.toLowerCase();
    if (LOWER.size < 128) LOWER.set(name, v);
  }
  return v;
}

/**
 * The context a fast-path handler sees: ctx.get/set/remove/response.get on an ordered header list
 * (insertion order kept, like node's setHeader), status, type (JSON only), body, params, state.
 */
class FastContext {
  readonly method: string;
  readonly path: string;
  params: Record<string, string>;
  state: RedfishState;
  status = 404;
  body: unknown = undefined;
  /** lower-case name → [name as set, value], in the order koa would have set them */
  readonly headers = new Map<string, [string, string]>();
  readonly request: { body?: unknown; socket: IncomingMessage['socket'] };
  readonly response: { get: (name: string) => string };

  constructor(
    readonly req: IncomingMessage,
    deps: RedfishDeps,
    params: Readonly<Record<string, string>>,
  ) {
    this.method = req.method as string;
    this.path = req.url as string;
    this.params = { ...params };
    this.state = new FastState(deps);
    this.request = { socket: req.socket };
    this.response = { get: (name) => this.headers.get(lower(name))?.[1] ?? '' };
  }

  get(name: string): string {
    const v = this.req.headers[lower(name)];
    return typeof v === 'string' ? v : '';
  }

  set(name: string, value: string): void {
    if (typeof value !== 'string') throw new Unmodelled('header value');
    this.headers.set(lower(name), [name, value]);
  }

  remove(name: string): void {
    this.headers.delete(lower(name));
  }

  get type(): string {
    return this.response.get('Content-Type');
  }

  set type(v: string) {
    // koa would look the type up; the handlers here only ever set the Redfish JSON type
    if (v !== JSON_TYPE) throw new Unmodelled(`type ${v}`);
    this.set('Content-Type', v);
  }
}

/** A fast request's state; a handler that wants a request id or a logger is not one for this path (koa then). */
class FastState implements RedfishState {
  user?: RedfishState['user'];
  route?: RedfishState['route'];
  selfOnly?: boolean;
  internalPath?: string;
  tenant?: RedfishState['tenant'];

  constructor(public deps: RedfishDeps) {}

  get requestId(): string {
    throw new Unmodelled('requestId');
  }

  set requestId(_v: string) {
    throw new Unmodelled('requestId');
  }

  get logger(): Logger {
    throw new Unmodelled('logger');
  }

  set logger(_v: Logger) {
    throw new Unmodelled('logger');
  }
}

/** Whether a request carries a body (non-zero Content-Length, or chunked): those go to koa. */
function hasBody(req: IncomingMessage): boolean {
  const len = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (len !== undefined && len !== '' && len !== '0');
}

/**
 * A finished answer of a kept body (a frozen prepared payload: the Systems/1 answer between two
 * changes): the status line's header list and the text `finish` gave for it, for one route, role
 * and tenant, so the next GET of the same body skips `finish` (Allow, Link, the tenant rewrite,
 * Content-Length) and sends the same bytes. What the handler set must match too (its header count
 * and ETag), so a handler that sets something else this time goes through `finish`.
 */
interface Finished {
  readonly route: FastRoute;
  readonly role: Role | undefined;
  readonly tenant: string | undefined;
  /** the caller's visible systems (the same list object while they are unchanged): a collection's text follows them */
  readonly visible: readonly string[] | undefined;
  readonly handlerHeaders: number;
  readonly etag: string | undefined;
  readonly head: readonly string[];
  readonly text: string;
}

/** Counts of the fast path's decisions (tests check that a request took the path they meant). */
export interface FastGetStats {
  served: number;
  passed: number;
  /** of the served: sent again from a finished answer (Finished) */
  again: number;
}

/**
 * The request handler: answers what it can (see the file comment) and calls `koa(req, res)` for
 * everything else.
 */
export function fastGetHandler(
  src: FastGetSource,
  koa: (req: IncomingMessage, res: ServerResponse) => unknown,
  stats: FastGetStats = { served: 0, passed: 0, again: 0 },
): (req: IncomingMessage, res: ServerResponse) => void {
  const { deps, routes } = src;
  const pass = (req: IncomingMessage, res: ServerResponse): void => {
    stats.passed++;
    void koa(req, res);
  };
  const { tenancy } = src;
  /** per handler (its app's Allow and Link): kept bodies → their finished answer (Finished) */
  const finished = new WeakMap<object, Finished>();
  return (req, res) => {
    const method = req.method;
    const url = req.url ?? '';
    const route = method === 'GET' || method === 'HEAD' ? (routes.get(url) ?? (tenancy ? routes.get(internalResourcePath(url)) : undefined)) : undefined;
    if (!route || hasBody(req) || deps.logger.isLevelEnabled('debug')) return pass(req, res);
    const odataVersion = req.headers['odata-version'];
    if (odataVersion !== undefined && (typeof odataVersion !== 'string' || (odataVersion !== '' && odataVersion.trim() !== ODATA_VERSION))) return pass(req, res);
    const started = Date.now();
    const ctx = new FastContext(req, deps, route.params);
    const rctx = ctx as unknown as RedfishContext;
    const isPublic = route.def.privileges.some((alt) => alt.includes('NoAuth'));
    if (tenancy) {
      // shared mode: the tenancy layer authenticates against the tenants' accounts and picks the
      // tenant; a public route, a refused or unknown caller, a 404 of an invisible system: koa
      if (isPublic) return pass(req, res);
      try {
        tenancy.enter(rctx);
      } catch {
        return pass(req, res);
      }
      if (!ctx.state.user || routes.get(ctx.state.internalPath ?? url) !== route) return pass(req, res);
    }
    ctx.state.route = route.def;
    if (!isPublic) {
      if (!ctx.state.user) {
        const token = req.headers['x-auth-token'];
        const user = authenticateKnown(deps, typeof token === 'string' ? token : undefined, req.headers.authorization, req.socket.remoteAddress ?? 'unknown');
        if (!user) return pass(req, res);
        ctx.state.user = user;
      }
      try {
        authorize(rctx, route.def);
        passwordChangeGate(rctx, route.def);
      } catch {
        return pass(req, res);
      }
    }
    route.handler(rctx).then(
      () => {
        const body = ctx.body;
        const role = ctx.state.user?.role;
        const tenant = ctx.state.tenant?.id;
        const visible = ctx.state.tenant?.visible;
        // a kept body answered before for this route, role and tenant: the same bytes again
        const known = ctx.status === 200 && typeof body === 'object' && body !== null ? finished.get(body) : undefined;
        if (known !== undefined && known.route === route && known.role === role && known.tenant === tenant && known.visible === visible && known.handlerHeaders === ctx.headers.size && known.etag === ctx.headers.get('etag')?.[1]) {
          stats.served++;
          stats.again++;
          try {
            write(res, 200, known.head, ctx.method, known.text);
          } catch {
            res.destroy();
            return;
          }
          observeRequest(ctx.state.deps.machine, 'redfish', route.def.operationId, 200, (Date.now() - started) / 1000);
          return;
        }
        const handlerHeaders = ctx.headers.size;
        const etag = ctx.headers.get('etag')?.[1];
        let done: boolean;
        try {
          done = finish(ctx, route, src);
        } catch {
          done = false;
        }
        if (!done) return pass(req, res);
        stats.served++;
        let head: string[];
        try {
          head = send(ctx, res);
        } catch {
          // nothing we set can make node refuse the head; should it, the answer cannot be trusted
          res.destroy();
          return;
        }
        if (ctx.status === 200 && typeof body === 'object' && body !== null && Object.isFrozen(body) && typeof ctx.body === 'string') {
          finished.set(body, { route, role, tenant, visible, handlerHeaders, etag, head, text: ctx.body });
        }
        // the deps of the system that answered (shared mode: the tenant's), as the app counts
        observeRequest(ctx.state.deps.machine, 'redfish', route.def.operationId, ctx.status, (Date.now() - started) / 1000);
      },
      () => pass(req, res),
    );
  };
}

/**
 * The app's steps after the handler (app.ts `serve` for GET/HEAD, then the outer middleware), on
 * the fast context; false when the answer is not a JSON resource with its text recorded (koa then).
 */
function finish(ctx: FastContext, route: FastRoute, src: FastGetSource): boolean {
  const body = ctx.body;
  const isObject = typeof body === 'object' && body !== null && Object.getPrototypeOf(body) === Object.prototype;
  if (ctx.status === 304) {
    if (body !== undefined) return false;
  } else if (ctx.status !== 200 || !isObject) return false;
  ctx.set('Allow', src.allowFor(route.def.koaPath, ctx.state.user?.role));
  if (isObject) finishResource(ctx, body as Record<string, unknown>, src.linkOf);
  if (ctx.status === 304) {
    // koa's null body on an empty status drops these
    ctx.remove('Content-Type');
    ctx.remove('Content-Length');
    ctx.remove('Transfer-Encoding');
  }
  if (src.tenancy) {
    // the answer under the tenant's ids, as its text (koa's string body setter: Content-Length then)
    src.tenancy.leave(ctx as unknown as RedfishContext);
    if (ctx.status === 200) {
      if (typeof ctx.body !== 'string') return false;
      ctx.set('Content-Length', String(Buffer.byteLength(ctx.body)));
    }
  }
  ctx.set('OData-Version', ODATA_VERSION);
  ctx.set('Cache-Control', 'no-store');
  if (ctx.status === 200 && !src.tenancy) {
    const json = jsonOfBody(body as object);
    if (json === undefined) return false;
    ctx.body = json;
    ctx.set('Content-Length', String(Buffer.byteLength(json)));
  }
  return true;
}

/** Writes the answer; returns its header list (name, value, ...) as given to writeHead. */
function send(ctx: FastContext, res: ServerResponse): string[] {
  const flat: string[] = [];
  for (const [name, value] of ctx.headers.values()) flat.push(name, value);
  write(res, ctx.status, flat, ctx.method, ctx.body as string);
  return flat;
}

/** The status line and headers, then the body for a GET answered 200 (HEAD and 304 have none). */
function write(res: ServerResponse, status: number, head: readonly string[], method: string, text: string): void {
  res.writeHead(status, head as string[]);
  if (status === 200 && method === 'GET') res.end(text);
  else res.end();
}
