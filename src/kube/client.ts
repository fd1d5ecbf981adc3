/**
 * The one Kubernetes REST client of the project (agent backend and controller).
 *
 * Requests are plain node http(s) requests whose server URL, TLS settings and credentials come from
 * a client-node KubeConfig (`applyToHTTPSOptions`, prepared again for every request because
 * projected service-account tokens rotate). client-node's generated APIs are not used: they
 * URL-encode the `/` of KubeVirt subresource paths and make content types awkward, and global
 * fetch would ignore the prepared TLS agent. Bodies are JSON; objects travel as plain JSON, so what
 * watches deliver and what we write look alike. Watches use client-node's own Watch.
 *
 * Every failure is a KubeApiError: the HTTP status with the decoded Status body, or status 0 when
 * no HTTP answer came (refused, reset, timeout, unusable credentials). A 403 names the RBAC
 * permission the request needed. Mapping errors further (e.g. onto the backend seam's codes) is the
 * caller's business.
 *
 * With `failFast` (the agent), a request that got no HTTP answer (refused, reset, timed out) marks
 * the API server unreachable: from then on requests fail at once with status 0 (`notSent`) instead
 * of each waiting for the timeout, and a probe (GET /version on a fresh connection, once a second,
 * a few in flight at most so one hung probe does not delay recovery) runs until any HTTP answer
 * comes back, which closes the breaker again. Requests marked `probe` always go out. A request that
 * failed fast was never sent, so nothing is executed behind the caller's back.
 */
import http from 'node:http';
import https from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';
import { nullLogger, type Logger } from '../common/logger.js';
import { describeRbacNeed, rbacNeed, resourcePath, type RbacNeed, type ResourceRef } from './resources.js';
import type { KubeList, KubeObject, KubeObjectBase, KubeStatus } from './types.js';

export const CONTENT_JSON = 'application/json';
export const CONTENT_MERGE_PATCH = 'application/merge-patch+json';
export const CONTENT_JSON_PATCH = 'application/json-patch+json';
/** Server-Side Apply; the body may be JSON (JSON is YAML) */
export const CONTENT_APPLY_PATCH = 'application/apply-patch+yaml';

export type JsonPatchOp =
  | { op: 'add' | 'replace' | 'test'; path: string; value: unknown }
  | { op: 'remove'; path: string };

/** Escape one JSON pointer segment (RFC 6901). */
export function pointerSegment(s: string): string {
  return s.replace(/~/g, '~0').replace(/\//g, '~1');
}

export function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export type Query = Record<string, string | number | boolean | undefined>;

/** A failed API request. status 0 means the request never got an HTTP answer. */
export class KubeApiError extends Error {
  /** the connection was a pooled one reset by the server before answering */
  reusedSocket = false;
  /** refused, reset or timed out on the network (not a local credentials/config problem) */
  network = false;
  /** never sent: the API server is known unreachable (fail fast) */
  notSent = false;

  /** the HTTP status under the name client-node's watch errors use */
  get statusCode(): number {
    return this.status;
  }

  constructor(
    readonly status: number,
    readonly method: string,
    readonly path: string,
    readonly body: KubeStatus | undefined,
    message: string,
    opts?: { cause?: unknown },
  ) {
    super(message, opts);
    this.name = 'KubeApiError';
  }

  /** Status.reason (NotFound, AlreadyExists, Conflict, Forbidden, ...) */
  get reason(): string | undefined {
    return this.body?.reason;
  }

  /** The server's own message (Status.message), else ours. */
  get kubeMessage(): string {
    return this.body?.message ?? this.message;
  }

  /** The RBAC verb and resource this request needed (meaningful on a 403). */
  get rbac(): RbacNeed {
    return rbacNeed(this.method, this.path);
  }
}

export function isKubeApiError(e: unknown, status?: number): e is KubeApiError {
  return e instanceof KubeApiError && (status === undefined || e.status === status);
}

export const isNotFound = (e: unknown): boolean => isKubeApiError(e, 404);
export const isConflict = (e: unknown): boolean => isKubeApiError(e, 409);

export interface RequestOptions {
  body?: unknown;
  contentType?: string;
  query?: Query;
  /** send even while the API server is known unreachable, on a fresh connection (reachability checks) */
  probe?: boolean;
}

export interface ListOptions {
  labelSelector?: string;
  fieldSelector?: string;
  /** page size; all pages are fetched */
  limit?: number;
  /** see RequestOptions.probe */
  probe?: boolean;
}

/** Whether the API server answers; `since`/`reason` describe the current outage. */
export interface Reachability {
  reachable: boolean;
  since?: Date;
  reason?: string;
}

export type PropagationPolicy = 'Background' | 'Foreground' | 'Orphan';

export interface KubeClientOptions {
  /** gets one trace line per request; default: silent */
  logger?: Logger;
  /** per-request timeout (ms), default 10000: a hung API server must not stall a caller forever */
  timeoutMs?: number;
  /** pooled connections per API server, default 8 */
  maxSockets?: number;
  /** fail requests at once while the API server is known unreachable (see above); default false */
  failFast?: boolean;
  /** while unreachable, start a reachability probe this often (ms), default 1000 */
  probeIntervalMs?: number;
}

const MAX_PROBES_IN_FLIGHT = 5;

type RequestAgent = https.RequestOptions['agent'];

export class KubeClient {
  readonly timeoutMs: number;
  readonly failFast: boolean;
  private readonly maxSockets: number;
  private readonly logger: Logger;
  private readonly probeIntervalMs: number;
  private agent: http.Agent | undefined;
  private down: { since: Date; reason: string } | undefined;
  private probeTimer: NodeJS.Timeout | undefined;
  /** close() was called: a request still under way that fails afterwards starts no probing */
  private closed = false;
  private probesInFlight = 0;
  private readonly reachabilityListeners = new Set<(r: Reachability) => void>();

  constructor(
    readonly kc: KubeConfig,
    opts: KubeClientOptions = {},
  ) {
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.maxSockets = opts.maxSockets ?? 8;
    this.logger = opts.logger ?? nullLogger();
    this.failFast = opts.failFast ?? false;
    this.probeIntervalMs = opts.probeIntervalMs ?? 1_000;
  }

  // ---- reachability (fail fast) ---------------------------------------------------------------

  get reachability(): Reachability {
    return this.down ? { reachable: false, since: this.down.since, reason: this.down.reason } : { reachable: true };
  }

  /** Called on every change of reachability; returns an unsubscribe function. */
  onReachability(fn: (r: Reachability) => void): () => void {
    this.reachabilityListeners.add(fn);
    return () => this.reachabilityListeners.delete(fn);
  }

  /** Evidence that the API server answers (an HTTP response, a watch event). */
  noteAlive(): void {
    if (!this.down) return;
    const since = this.down.since;
    this.down = undefined;
    if (this.probeTimer) clearTimeout(this.probeTimer);
    this.probeTimer = undefined;
    this.logger.info({ downMs: Date.now() - since.getTime() }, 'Kubernetes API reachable again');
    this.notifyReachability();
  }

  /** Evidence that the API server does not answer (no HTTP answer; a silent watch whose probe timed out). */
  noteUnreachable(reason: string): void {
    if (!this.failFast || this.down) return;
    this.down = { since: new Date(), reason };
    this.dropIdleSockets();
    this.logger.warn({ reason }, 'Kubernetes API unreachable; requests fail fast until it answers again');
    this.scheduleProbe();
    this.notifyReachability();
  }

  /**
   * Close the pooled connections that sit idle: after an outage they may be dead without knowing it
   * (a peer or proxy that vanished answers nothing, not even a reset), and the first requests after
   * recovery would each wait out the timeout on one and re-open the breaker. Requests in flight keep
   * their sockets (they end by their own answer or timeout).
   */
  private dropIdleSockets(): void {
    for (const list of Object.values(this.agent?.freeSockets ?? {})) for (const s of list ?? []) s.destroy();
  }

  private notifyReachability(): void {
    const r = this.reachability;
    for (const fn of [...this.reachabilityListeners]) {
      try {
        fn(r);
      } catch {
        /* a listener's problem */
      }
    }
  }

  private scheduleProbe(): void {
    if (!this.down || this.probeTimer || this.closed) return;
    this.probeTimer = setTimeout(() => {
      this.probeTimer = undefined;
      if (!this.down) return;
      // several probes may be in flight: one hung on a dead connection must not delay recovery
      if (this.probesInFlight < MAX_PROBES_IN_FLIGHT) {
        this.probesInFlight++;
        this.request('GET', '/version', { probe: true })
          .catch(() => undefined)
          .finally(() => this.probesInFlight--);
      }
      this.scheduleProbe();
    }, this.probeIntervalMs);
    this.probeTimer.unref();
  }

  private observe(e: unknown): void {
    if (!(e instanceof KubeApiError) || e.notSent) return;
    if (e.status > 0) this.noteAlive();
    else if (e.network) this.noteUnreachable(e.message);
  }

  async request<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    if (this.down && !opts.probe) {
      const err = new KubeApiError(
        0,
        method,
        path,
        undefined,
        `${method} ${path}: not sent, the Kubernetes API has been unreachable since ${this.down.since.toISOString()} (${this.down.reason})`,
      );
      err.notSent = true;
      throw err;
    }
    try {
      const out = await this.requestWithRetry<T>(method, path, opts);
      this.noteAlive();
      return out;
    } catch (e) {
      this.observe(e);
      throw e;
    }
  }

  private async requestWithRetry<T>(method: string, path: string, opts: RequestOptions): Promise<T> {
    try {
      return await this.requestOnce<T>(method, path, opts);
    } catch (e) {
      // a pooled connection the server closed as we reused it: the request never arrived. Retry
      // once where a repeat is harmless (reads; JSON patches, which callers guard with a test op).
      // An apply repeats harmlessly too: it states the whole intent, the same twice.
      const retriable = method === 'GET' || (method === 'PATCH' && (opts.contentType === CONTENT_JSON_PATCH || opts.contentType === CONTENT_APPLY_PATCH));
      if (retriable && e instanceof KubeApiError && e.status === 0 && e.reusedSocket) return this.requestOnce<T>(method, path, opts);
      throw e;
    }
  }

  private async requestOnce<T>(method: string, path: string, opts: RequestOptions): Promise<T> {
    const cluster = this.kc.getCurrentCluster();
    if (!cluster) throw new KubeApiError(0, method, path, undefined, 'kubeconfig has no current cluster');
    const url = new URL(cluster.server.replace(/\/+$/, '') + path);
    for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));

    const reqOpts: https.RequestOptions = { headers: {} };
    try {
      await this.kc.applyToHTTPSOptions(reqOpts);
    } catch (e) {
      throw new KubeApiError(0, method, path, undefined, `cannot prepare credentials: ${errText(e)}`, { cause: e });
    }
    // a probe tests a fresh connection (and must not wait behind pooled sockets a dead server holds)
    if (!opts.probe) reqOpts.agent = this.keepAlive(reqOpts.agent);
    const payload = opts.body === undefined ? undefined : Buffer.from(JSON.stringify(opts.body));
    const headers: http.OutgoingHttpHeaders = { ...(reqOpts.headers as http.OutgoingHttpHeaders), accept: CONTENT_JSON };
    if (payload) {
      headers['content-type'] = opts.contentType ?? CONTENT_JSON;
      headers['content-length'] = payload.length;
    }
    const mod = url.protocol === 'https:' ? https : http;
    const started = Date.now();

    return new Promise<T>((resolve, reject) => {
      const req = mod.request(url, { ...reqOpts, method, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (e) => reject(new KubeApiError(0, method, path, undefined, `${method} ${path}: response error: ${e.message}`, { cause: e })));
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown;
          try {
            parsed = text ? JSON.parse(text) : undefined;
          } catch {
            parsed = undefined;
          }
          this.logger.trace({ method, path, status, ms: Date.now() - started }, 'kube request');
          if (status >= 200 && status < 300) {
            resolve(parsed as T);
            return;
          }
          const body = isStatus(parsed) ? parsed : undefined;
          let msg = `${method} ${path}: ${status} ${body?.message ?? (text.slice(0, 200) || `HTTP ${status}`)}`;
          if (status === 403) msg += ` (RBAC: needs ${describeRbacNeed(rbacNeed(method, path))})`;
          reject(new KubeApiError(status, method, path, body, msg));
        });
      });
      req.setTimeout(this.timeoutMs, () => {
        req.destroy(new Error(`no answer within ${this.timeoutMs} ms`));
      });
      req.on('error', (e) => {
        const err = new KubeApiError(0, method, path, undefined, `${method} ${path}: ${e.message}`, { cause: e });
        err.reusedSocket = req.reusedSocket && (e as NodeJS.ErrnoException).code === 'ECONNRESET';
        err.network = true;
        reject(err);
      });
      if (payload) req.write(payload);
      req.end();
    });
  }

  /**
   * client-node makes a fresh agent per call (a new TCP/TLS connection per request). For plain
   * http/https agents, keep one keep-alive agent built from the same TLS settings instead (they
   * come from the kubeconfig and do not change); proxy agents are used as they come.
   */
  private keepAlive(agent: RequestAgent): RequestAgent {
    if (!agent || typeof agent !== 'object') return agent;
    const ctor = agent.constructor;
    if (ctor !== https.Agent && ctor !== http.Agent) return agent;
    if (!this.agent) {
      const opts = { ...(agent as http.Agent & { options: https.AgentOptions }).options, keepAlive: true, maxSockets: this.maxSockets };
      this.agent = ctor === https.Agent ? new https.Agent(opts) : new http.Agent(opts);
    }
    agent.destroy();
    return this.agent;
  }

  /** Release pooled connections and stop probing (the client stays usable; the next request opens new ones). */
  close(): void {
    this.closed = true;
    this.agent?.destroy();
    this.agent = undefined;
    if (this.probeTimer) clearTimeout(this.probeTimer);
    this.probeTimer = undefined;
  }

  // ---- verbs on a resource ------------------------------------------------------------------

  get<T extends KubeObjectBase = KubeObject>(r: ResourceRef, namespace: string | undefined, name: string): Promise<T> {
    return this.request<T>('GET', resourcePath(r, namespace, name));
  }

  /** Lists every page; the result carries the first page's resourceVersion (a watch can start there). */
  async list<T extends KubeObjectBase = KubeObject>(r: ResourceRef, namespace?: string, opts: ListOptions = {}): Promise<KubeList<T>> {
    const items: T[] = [];
    let cont: string | undefined;
    let rv: string | undefined;
    do {
      const page = await this.request<KubeList<T>>('GET', resourcePath(r, namespace), {
        query: { labelSelector: opts.labelSelector || undefined, fieldSelector: opts.fieldSelector || undefined, limit: opts.limit || undefined, continue: cont },
        ...(opts.probe ? { probe: true } : {}),
      });
      items.push(...(page?.items ?? []));
      // all pages belong to the first page's snapshot; watching from it never misses a change
      rv ??= page?.metadata?.resourceVersion;
      cont = page?.metadata?.continue || undefined;
    } while (cont);
    return { metadata: { resourceVersion: rv }, items };
  }

  create<T extends KubeObjectBase = KubeObject>(r: ResourceRef, namespace: string | undefined, obj: T): Promise<T> {
    return this.request<T>('POST', resourcePath(r, namespace), { body: obj });
  }

  replace<T extends KubeObjectBase = KubeObject>(r: ResourceRef, namespace: string | undefined, name: string, obj: T): Promise<T> {
    return this.request<T>('PUT', resourcePath(r, namespace, name), { body: obj });
  }

  /** JSON merge patch (RFC 7386); `subresource` 'status' writes only the status. */
  mergePatch<T extends KubeObjectBase = KubeObject>(r: ResourceRef, namespace: string | undefined, name: string, patch: unknown, subresource?: string): Promise<T> {
    return this.request<T>('PATCH', resourcePath(r, namespace, name, subresource), { body: patch, contentType: CONTENT_MERGE_PATCH });
  }

  /** JSON patch (RFC 6902); start it with a `test` of metadata.resourceVersion to make it conditional. */
  jsonPatch<T extends KubeObjectBase = KubeObject>(r: ResourceRef, namespace: string | undefined, name: string, ops: JsonPatchOp[]): Promise<T> {
    return this.request<T>('PATCH', resourcePath(r, namespace, name), { body: ops, contentType: CONTENT_JSON_PATCH });
  }

  /**
   * Server-Side Apply of `obj` (the manager's whole intent for the object) as `fieldManager`:
   * creates the object when absent; `force` takes the fields other managers own.
   */
  apply<T extends KubeObjectBase = KubeObject>(r: ResourceRef, namespace: string | undefined, name: string, obj: T, opts: { fieldManager: string; force?: boolean }): Promise<T> {
    return this.request<T>('PATCH', resourcePath(r, namespace, name), {
      body: obj,
      contentType: CONTENT_APPLY_PATCH,
      query: { fieldManager: opts.fieldManager, force: opts.force ? 'true' : undefined },
    });
  }

  /** DELETE an object; `preconditions` (uid, resourceVersion) make it a 409 Conflict when the object is no longer that one. */
  async delete(
    r: ResourceRef,
    namespace: string | undefined,
    name: string,
    propagationPolicy: PropagationPolicy = 'Background',
    preconditions?: { uid?: string; resourceVersion?: string },
  ): Promise<void> {
    await this.request('DELETE', resourcePath(r, namespace, name), { body: { kind: 'DeleteOptions', apiVersion: 'v1', propagationPolicy, ...(preconditions ? { preconditions } : {}) } });
  }

  /** PUT to a subresource, e.g. KubeVirt's start/stop/restart (Resources.vmActions). */
  putSubresource(r: ResourceRef, namespace: string | undefined, name: string, subresource: string, body: unknown = {}): Promise<unknown> {
    return this.request('PUT', resourcePath(r, namespace, name, subresource), { body });
  }

  /**
   * Start a watch on a collection; onEvent gets (type, object). onDone fires once when the stream
   * ends (err null on a normal server-side close; a KubeApiError when it could not be opened, e.g.
   * no response headers within timeoutMs, or a non-200 answer). Returns a function that aborts the
   * watch (onDone is not called after an abort). The stream runs on its own connection (not the
   * request pool). Once open, a silent stream is the caller's to detect (ObjectWatch does).
   */
  async watch(
    r: ResourceRef,
    namespace: string | undefined,
    query: Query,
    onEvent: (type: string, obj: unknown) => void,
    onDone: (err: unknown) => void,
  ): Promise<() => void> {
    const path = resourcePath(r, namespace);
    let done = false;
    let aborted = false;
    const finish = (err: unknown): void => {
      if (done || aborted) return;
      done = true;
      this.observe(err);
      onDone(err);
    };
    if (this.down) {
      const err = new KubeApiError(0, 'GET', path, undefined, `watch ${path}: not sent, the Kubernetes API is unreachable (${this.down.reason})`);
      err.notSent = true;
      finish(err);
      return () => undefined;
    }
    const cluster = this.kc.getCurrentCluster();
    if (!cluster) {
      finish(new KubeApiError(0, 'GET', path, undefined, 'kubeconfig has no current cluster'));
      return () => undefined;
    }
    const url = new URL(cluster.server.replace(/\/+$/, '') + path);
    url.searchParams.set('watch', 'true');
    for (const [k, v] of Object.entries(query)) if (v !== undefined) url.searchParams.set(k, String(v));
    const reqOpts: https.RequestOptions = { headers: {} };
    try {
      await this.kc.applyToHTTPSOptions(reqOpts);
    } catch (e) {
      finish(new KubeApiError(0, 'GET', path, undefined, `cannot prepare credentials: ${errText(e)}`, { cause: e }));
      return () => undefined;
    }
    const headers: http.OutgoingHttpHeaders = { ...(reqOpts.headers as http.OutgoingHttpHeaders), accept: CONTENT_JSON };
    const mod = url.protocol === 'https:' ? https : http;
    return new Promise<() => void>((resolve) => {
      let opened = false;
      const req = mod.request(url, { ...reqOpts, method: 'GET', headers }, (res) => {
        const status = res.statusCode ?? 0;
        if (status !== 200) {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', () => undefined);
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: unknown;
            try {
              parsed = text ? JSON.parse(text) : undefined;
            } catch {
              parsed = undefined;
            }
            const body = isStatus(parsed) ? parsed : undefined;
            let msg = `watch ${path}: ${status} ${body?.message ?? (text.slice(0, 200) || `HTTP ${status}`)}`;
            if (status === 403) msg += ` (RBAC: needs ${describeRbacNeed(rbacNeed('GET', path, { watch: true }))})`;
            finish(new KubeApiError(status, 'GET', path, body, msg));
            resolve(abort);
          });
          return;
        }
        opened = true;
        // open: from here on silence is not an error of ours
        req.setTimeout(0);
        this.noteAlive();
        let buf = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          buf += chunk;
          let nl: number;
          while ((nl = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, nl).trim();
            buf = buf.slice(nl + 1);
            if (!line) continue;
            let ev: { type?: unknown; object?: unknown };
            try {
              ev = JSON.parse(line) as { type?: unknown; object?: unknown };
            } catch {
              continue; // not an event line
            }
            if (aborted || done) return;
            if (typeof ev.type === 'string') onEvent(ev.type, ev.object);
          }
        });
        res.on('error', (e) => finish(new KubeApiError(0, 'GET', path, undefined, `watch ${path}: ${e.message}`, { cause: e })));
        res.on('end', () => finish(null));
        res.on('close', () => finish(null));
        resolve(abort);
      });
      const abort = (): void => {
        aborted = true;
        req.destroy();
      };
      req.setTimeout(this.timeoutMs, () => {
        req.destroy(new Error(`watch not opened within ${this.timeoutMs} ms`));
      });
      req.on('error', (e) => {
        if (aborted) return;
        const err = new KubeApiError(0, 'GET', path, undefined, `watch ${path}: ${e.message}`, { cause: e });
        err.network = true;
        finish(err);
        if (!opened) resolve(abort);
      });
      req.end();
    });
  }
}

function isStatus(v: unknown): v is KubeStatus {
  return typeof v === 'object' && v !== null && (v as { kind?: unknown }).kind === 'Status';
}
