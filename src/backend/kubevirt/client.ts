/**
 * Raw Kubernetes API access for the KubeVirt backend.
 *
 * client-node's generated APIs URL-encode the `/` of KubeVirt subresource paths (`vm/start`) and
 * make content types awkward, so every request here is a plain HTTP request whose TLS agent and
 * credentials come from the KubeConfig (`applyToHTTPSOptions`, the same preparation client-node's
 * `applyToFetchOptions` wraps; node's http module is used instead of global fetch because global
 * fetch ignores the prepared agent and so the cluster CA and client certificates). Watches use
 * client-node's own Watch.
 *
 * Errors come back as KubeApiError (HTTP status and the decoded Status) and are turned into
 * BackendError codes by toBackendError, which also names the missing RBAC permission on a 403.
 */
import http from 'node:http';
import https from 'node:https';
import { Watch, type KubeConfig } from '@kubernetes/client-node';
import type { Logger } from '../../common/logger.js';
import { BackendError } from '../types.js';
import type { KubeStatus } from './types.js';

export const KUBEVIRT_GROUP = 'kubevirt.io';
export const SUBRESOURCE_GROUP = 'subresources.kubevirt.io';
export const CDI_GROUP = 'cdi.kubevirt.io';

export const CONTENT_JSON = 'application/json';
export const CONTENT_MERGE_PATCH = 'application/merge-patch+json';
export const CONTENT_JSON_PATCH = 'application/json-patch+json';

export type JsonPatchOp =
  | { op: 'add' | 'replace' | 'test'; path: string; value: unknown }
  | { op: 'remove'; path: string };

/** A failed API request. status 0 means the request never got an HTTP answer (refused, timeout). */
export class KubeApiError extends Error {
  /** the connection was a pooled one reset by the server before answering */
  reusedSocket = false;

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

  get reason(): string | undefined {
    return this.body?.reason;
  }

  /** The server's own message (Status.message), else ours. */
  get kubeMessage(): string {
    return this.body?.message ?? this.message;
  }
}

export function isKubeApiError(e: unknown, status?: number): e is KubeApiError {
  return e instanceof KubeApiError && (status === undefined || e.status === status);
}

/** Escape one JSON pointer segment (RFC 6901). */
export function pointerSegment(s: string): string {
  return s.replace(/~/g, '~0').replace(/\//g, '~1');
}

export interface RequestOptions {
  body?: unknown;
  contentType?: string;
  query?: Record<string, string | number | boolean | undefined>;
}

/** What an RBAC rule must grant for a request: derived from its method and path. */
export interface RbacNeed {
  verb: string;
  group: string;
  resource: string;
}

/** Work out the RBAC verb and resource of a request, for 403 log lines. */
export function rbacNeed(method: string, path: string, query?: RequestOptions['query']): RbacNeed {
  const p = path.split('?')[0]!.split('/').filter(Boolean);
  let group = '';
  let rest: string[];
  if (p[0] === 'api') {
    rest = p.slice(2);
  } else {
    group = p[1] ?? '';
    rest = p.slice(3);
  }
  if (rest[0] === 'namespaces' && rest.length >= 3) rest = rest.slice(2);
  const [resource = '', name, sub] = rest;
  let verb: string;
  switch (method) {
    case 'GET':
      verb = query?.watch ? 'watch' : name === undefined ? 'list' : 'get';
      break;
    case 'POST':
      verb = 'create';
      break;
    case 'PUT':
      verb = 'update';
      break;
    case 'PATCH':
      verb = 'patch';
      break;
    case 'DELETE':
      verb = name === undefined ? 'deletecollection' : 'delete';
      break;
    default:
      verb = method.toLowerCase();
  }
  return { verb, group, resource: sub ? `${resource}/${sub}` : resource };
}

export interface KubeClientOptions {
  /** Per-request timeout (ms); default 10000 */
  timeoutMs?: number;
}

export class KubeClient {
  private readonly timeoutMs: number;
  private readonly watcher: Watch;
  private agent: http.Agent | undefined;

  constructor(
    readonly kc: KubeConfig,
    private readonly logger: Logger,
    opts: KubeClientOptions = {},
  ) {
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.watcher = new Watch(kc);
  }

  async request<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    try {
      return await this.requestOnce<T>(method, path, opts);
    } catch (e) {
      // a pooled connection the server closed as we reused it: the request never arrived. Retry
      // once where a repeat is harmless (reads; guarded JSON patches).
      const retriable = method === 'GET' || (method === 'PATCH' && opts.contentType === CONTENT_JSON_PATCH);
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
      // every request: credentials may rotate (projected service account tokens)
      await this.kc.applyToHTTPSOptions(reqOpts);
    } catch (e) {
      throw new KubeApiError(0, method, path, undefined, `cannot prepare credentials: ${errText(e)}`, { cause: e });
    }
    reqOpts.agent = this.keepAlive(reqOpts.agent);
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
        res.on('error', (e) => reject(new KubeApiError(0, method, path, undefined, `response error: ${e.message}`, { cause: e })));
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
          const msg = body?.message ?? (text.slice(0, 200) || `HTTP ${status}`);
          reject(new KubeApiError(status, method, path, body, `${method} ${path}: ${status} ${msg}`));
        });
      });
      req.setTimeout(this.timeoutMs, () => {
        req.destroy(new Error(`no answer within ${this.timeoutMs} ms`));
      });
      req.on('error', (e) => {
        const err = new KubeApiError(0, method, path, undefined, `${method} ${path}: ${e.message}`, { cause: e });
        err.reusedSocket = req.reusedSocket && (e as NodeJS.ErrnoException).code === 'ECONNRESET';
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
  private keepAlive(agent: RequestOptionsAgent): RequestOptionsAgent {
    if (!agent || typeof agent !== 'object') return agent;
    const ctor = agent.constructor;
    if (ctor !== https.Agent && ctor !== http.Agent) return agent;
    if (!this.agent) {
      const opts = { ...(agent as http.Agent & { options: https.AgentOptions }).options, keepAlive: true, maxSockets: 8 };
      this.agent = ctor === https.Agent ? new https.Agent(opts) : new http.Agent(opts);
    }
    agent.destroy();
    return this.agent;
  }

  /** Release pooled connections. */
  close(): void {
    this.agent?.destroy();
    this.agent = undefined;
  }

  get<T>(path: string, query?: RequestOptions['query']): Promise<T> {
    return this.request<T>('GET', path, query ? { query } : {});
  }

  create<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('POST', path, { body });
  }

  jsonPatch<T>(path: string, ops: JsonPatchOp[]): Promise<T> {
    return this.request<T>('PATCH', path, { body: ops, contentType: CONTENT_JSON_PATCH });
  }

  mergePatch<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('PATCH', path, { body, contentType: CONTENT_MERGE_PATCH });
  }

  delete(path: string, body?: unknown): Promise<unknown> {
    return this.request('DELETE', path, body === undefined ? {} : { body });
  }

  /** PUT a KubeVirt subresource (start, stop, restart, pause, addvolume, ...). */
  putSubresource(path: string, body: unknown = {}): Promise<unknown> {
    return this.request('PUT', path, { body });
  }

  /**
   * Start a watch; onEvent gets (type, object). onDone fires once when the stream ends (err null
   * on a normal server-side close). Returns a function that aborts the watch.
   */
  async watch(
    path: string,
    query: Record<string, string | number | boolean | undefined>,
    onEvent: (type: string, obj: unknown) => void,
    onDone: (err: unknown) => void,
  ): Promise<() => void> {
    const ctl = await this.watcher.watch(path, query, onEvent, onDone);
    return () => ctl.abort();
  }
}

type RequestOptionsAgent = https.RequestOptions['agent'];

function isStatus(v: unknown): v is KubeStatus {
  return typeof v === 'object' && v !== null && (v as { kind?: unknown }).kind === 'Status';
}

export function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * Map a failed request onto the seam's error codes. `what` names the operation for the message.
 * 409s are mapped to Conflict here; callers that can tell "already in the requested state" from a
 * real conflict handle them before calling this.
 */
export function toBackendError(e: unknown, what: string, logger: Logger): BackendError {
  if (e instanceof BackendError) return e;
  if (!(e instanceof KubeApiError)) {
    return new BackendError('Unavailable', `${what}: ${errText(e)}`, { cause: e, retryAfterSeconds: 5 });
  }
  const msg = e.kubeMessage;
  switch (true) {
    case e.status === 0:
      return new BackendError('Unavailable', `${what}: Kubernetes API unreachable (${e.message})`, {
        cause: e,
        retryAfterSeconds: 5,
      });
    case e.status === 401:
      logger.error({ method: e.method, path: e.path }, 'Kubernetes API rejected the agent credentials (401)');
      return new BackendError('Unavailable', `${what}: the agent's Kubernetes credentials were rejected`, { cause: e });
    case e.status === 403: {
      const need = rbacNeed(e.method, e.path);
      logger.error(
        { verb: need.verb, group: need.group, resource: need.resource, path: e.path },
        `RBAC: the agent's service account may not ${need.verb} ${need.resource}${need.group ? '.' + need.group : ''}; grant it in the virtbmc ClusterRole`,
      );
      return new BackendError(
        'Unavailable',
        `${what}: forbidden by RBAC (needs ${need.verb} on ${need.resource}${need.group ? '.' + need.group : ''})`,
        { cause: e },
      );
    }
    case e.status === 404:
      return new BackendError('NotFound', `${what}: ${msg}`, { cause: e });
    case e.status === 409:
      return new BackendError('Conflict', `${what}: ${msg}`, { cause: e });
    case e.status === 400 || e.status === 422:
      return new BackendError('InvalidArgument', `${what}: ${msg}`, { cause: e });
    case e.status === 429:
      return new BackendError('Busy', `${what}: API server throttling`, { cause: e, retryAfterSeconds: 2 });
    default:
      return new BackendError('Unavailable', `${what}: ${msg}`, { cause: e, retryAfterSeconds: 5 });
  }
}

// ---- paths ----------------------------------------------------------------------------------

export function vmPath(ns: string, name?: string): string {
  const base = `/apis/${KUBEVIRT_GROUP}/v1/namespaces/${encodeURIComponent(ns)}/virtualmachines`;
  return name === undefined ? base : `${base}/${encodeURIComponent(name)}`;
}

export function vmiPath(ns: string, name?: string): string {
  const base = `/apis/${KUBEVIRT_GROUP}/v1/namespaces/${encodeURIComponent(ns)}/virtualmachineinstances`;
  return name === undefined ? base : `${base}/${encodeURIComponent(name)}`;
}

export function dvPath(ns: string, name?: string): string {
  const base = `/apis/${CDI_GROUP}/v1beta1/namespaces/${encodeURIComponent(ns)}/datavolumes`;
  return name === undefined ? base : `${base}/${encodeURIComponent(name)}`;
}

export type VmSubresource = 'start' | 'stop' | 'restart' | 'addvolume' | 'removevolume';
export type VmiSubresource = 'softreboot' | 'pause' | 'unpause';

export function vmSubresourcePath(ns: string, name: string, sub: VmSubresource): string {
  return `/apis/${SUBRESOURCE_GROUP}/v1/namespaces/${encodeURIComponent(ns)}/virtualmachines/${encodeURIComponent(name)}/${sub}`;
}

export function vmiSubresourcePath(ns: string, name: string, sub: VmiSubresource): string {
  return `/apis/${SUBRESOURCE_GROUP}/v1/namespaces/${encodeURIComponent(ns)}/virtualmachineinstances/${encodeURIComponent(name)}/${sub}`;
}
