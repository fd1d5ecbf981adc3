/**
 * A small JSON REST client over the Kubernetes API. Authentication, TLS and the server URL come from
 * a client-node KubeConfig (applyToFetchOptions), so in-cluster, kubeconfig files and test emulators
 * all work. Objects travel as plain JSON: what the informers cache and what we write look alike.
 */
import http from 'node:http';
import https from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';

/** One API resource, enough to build its URL. */
export interface ResourceRef {
  group: string; // '' for core
  version: string;
  plural: string;
  namespaced: boolean;
  kind: string;
}

export const Resources = {
  vmbmc: { group: 'bmc.kubevirt.io', version: 'v1beta1', plural: 'virtualmachinebmcs', namespaced: true, kind: 'VirtualMachineBMC' },
  vm: { group: 'kubevirt.io', version: 'v1', plural: 'virtualmachines', namespaced: true, kind: 'VirtualMachine' },
  secret: { group: '', version: 'v1', plural: 'secrets', namespaced: true, kind: 'Secret' },
  service: { group: '', version: 'v1', plural: 'services', namespaced: true, kind: 'Service' },
  serviceAccount: { group: '', version: 'v1', plural: 'serviceaccounts', namespaced: true, kind: 'ServiceAccount' },
  event: { group: '', version: 'v1', plural: 'events', namespaced: true, kind: 'Event' },
  deployment: { group: 'apps', version: 'v1', plural: 'deployments', namespaced: true, kind: 'Deployment' },
  roleBinding: { group: 'rbac.authorization.k8s.io', version: 'v1', plural: 'rolebindings', namespaced: true, kind: 'RoleBinding' },
  lease: { group: 'coordination.k8s.io', version: 'v1', plural: 'leases', namespaced: true, kind: 'Lease' },
} as const satisfies Record<string, ResourceRef>;

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: {
    name?: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    generation?: number;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    ownerReferences?: Array<{ apiVersion: string; kind: string; name: string; uid: string; controller?: boolean; blockOwnerDeletion?: boolean }>;
    deletionTimestamp?: string;
    creationTimestamp?: string;
    [k: string]: unknown;
  };
  [k: string]: unknown;
}

export interface KubeList<T> {
  metadata?: { resourceVersion?: string; continue?: string };
  items: T[];
}

/** An API error: HTTP status plus the Status object's reason/message when there is one. */
export class KubeApiError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly verb: string,
    readonly path: string,
  ) {
    super(`${verb} ${path}: ${code} ${reason}: ${message}`);
    this.name = 'KubeApiError';
  }
}

export const isNotFound = (e: unknown): boolean => e instanceof KubeApiError && e.code === 404;
export const isConflict = (e: unknown): boolean => e instanceof KubeApiError && e.code === 409;

export function resourcePath(r: ResourceRef, namespace?: string, name?: string, subresource?: string): string {
  let p = r.group === '' ? `/api/${r.version}` : `/apis/${r.group}/${r.version}`;
  if (r.namespaced && namespace) p += `/namespaces/${encodeURIComponent(namespace)}`;
  p += `/${r.plural}`;
  if (name !== undefined) p += `/${encodeURIComponent(name)}`;
  if (subresource) p += `/${subresource}`;
  return p;
}

export interface ListOptions {
  labelSelector?: string;
  fieldSelector?: string;
  limit?: number;
  continue?: string;
}

export class KubeClient {
  private readonly server: URL;
  /** Per-request timeout (ms); a hung apiserver must not stall a worker forever. */
  requestTimeoutMs = 30_000;
  /** Connections are reused (client-node makes a fresh TLS agent per call, i.e. a handshake per request). */
  private httpAgent = new http.Agent({ keepAlive: true, maxSockets: 32 });
  private httpsAgent?: https.Agent;

  constructor(readonly kc: KubeConfig) {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error('kubeconfig has no current cluster');
    this.server = new URL(cluster.server);
  }

  async request<T>(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<T> {
    const opts = await this.kc.applyToFetchOptions({});
    const headers: Record<string, string> = { Accept: 'application/json' };
    const h = opts.headers as unknown;
    if (h && typeof (h as Headers).forEach === 'function') {
      (h as Headers).forEach((v, k) => {
        headers[k] = v;
      });
    }
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    if (payload) {
      headers['Content-Type'] = contentType;
      headers['Content-Length'] = String(payload.length);
    }
    const url = new URL(this.server.href.replace(/\/$/, '') + path);
    const isHttps = url.protocol === 'https:';
    let agent: http.Agent = this.httpAgent;
    if (isHttps) {
      if (!this.httpsAgent) {
        // same TLS settings (CA, client certificate, verification) as client-node's, plus keep-alive
        const tlsOpts = ((opts.agent as { options?: https.AgentOptions } | undefined)?.options ?? {}) as https.AgentOptions;
        this.httpsAgent = new https.Agent({ ...tlsOpts, keepAlive: true, maxSockets: 32 });
      }
      agent = this.httpsAgent;
    }
    return new Promise<T>((resolvePromise, reject) => {
      const req = (isHttps ? https : http).request(
        url,
        { method, headers, agent, timeout: this.requestTimeoutMs },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: unknown;
            try {
              parsed = text ? JSON.parse(text) : undefined;
            } catch {
              parsed = undefined;
            }
            const code = res.statusCode ?? 0;
            if (code >= 200 && code < 300) {
              resolvePromise(parsed as T);
              return;
            }
            const st = (parsed ?? {}) as { reason?: string; message?: string };
            reject(new KubeApiError(code, st.reason ?? 'Unknown', st.message ?? text.slice(0, 200), method, path));
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`${method} ${path}: timed out after ${this.requestTimeoutMs} ms`)));
      req.on('error', reject);
      if (payload) req.write(payload);
      req.end();
    });
  }

  get<T extends KubeObject>(r: ResourceRef, namespace: string | undefined, name: string): Promise<T> {
    return this.request<T>('GET', resourcePath(r, namespace, name));
  }

  /** Lists every page. */
  async list<T extends KubeObject>(r: ResourceRef, namespace?: string, opts: ListOptions = {}): Promise<KubeList<T>> {
    const items: T[] = [];
    let cont: string | undefined;
    let rv: string | undefined;
    do {
      const q = new URLSearchParams();
      if (opts.labelSelector) q.set('labelSelector', opts.labelSelector);
      if (opts.fieldSelector) q.set('fieldSelector', opts.fieldSelector);
      if (opts.limit) q.set('limit', String(opts.limit));
      if (cont) q.set('continue', cont);
      const qs = q.toString();
      const page = await this.request<KubeList<T>>('GET', resourcePath(r, namespace) + (qs ? `?${qs}` : ''));
      items.push(...(page.items ?? []));
      // all pages belong to the first page's snapshot; watching from it never misses a change
      rv ??= page.metadata?.resourceVersion;
      cont = page.metadata?.continue || undefined;
    } while (cont);
    return { metadata: { resourceVersion: rv }, items };
  }

  create<T extends KubeObject>(r: ResourceRef, namespace: string | undefined, obj: T): Promise<T> {
    return this.request<T>('POST', resourcePath(r, namespace), obj);
  }

  replace<T extends KubeObject>(r: ResourceRef, namespace: string | undefined, name: string, obj: T): Promise<T> {
    return this.request<T>('PUT', resourcePath(r, namespace, name), obj);
  }

  /** JSON merge patch (RFC 7386); `subresource` 'status' writes only the status. */
  mergePatch<T extends KubeObject>(r: ResourceRef, namespace: string | undefined, name: string, patch: unknown, subresource?: string): Promise<T> {
    return this.request<T>('PATCH', resourcePath(r, namespace, name, subresource), patch, 'application/merge-patch+json');
  }

  /** Closes pooled connections. */
  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent?.destroy();
  }

  async delete(r: ResourceRef, namespace: string | undefined, name: string, propagationPolicy: 'Background' | 'Foreground' | 'Orphan' = 'Background'): Promise<void> {
    await this.request('DELETE', resourcePath(r, namespace, name), { kind: 'DeleteOptions', apiVersion: 'v1', propagationPolicy });
  }
}
