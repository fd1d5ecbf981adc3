/** HTTP front of the emulator: routing, auth, audit, faults, REST verbs and watch streams. */
import http from 'node:http';
import type { Socket } from 'node:net';
import { secretEquals } from '../../src/common/secrets.js';
import { applyConfig, managerFromUserAgent, trackUpdate, validatePatchOptions } from './managed-fields.js';
import { jsonPatch, mergePatch, strategicMergePatch } from './patch.js';
import { Authorizer, nameFromFieldSelector, type Identity } from './rbac.js';
import { apiVersionOf, type ResourceType } from './resources.js';
import { parseFieldSelector, parseLabelSelector } from './selectors.js';
import { parse as parseYaml } from 'yaml';
import { ApiError, badRequest, expired, reasonFor, type StatusBody } from './status.js';
import type { DeleteOptions, EventType, Store, Watcher } from './store.js';
import type { AuditEntry, AuditVerb, KubeObject } from './types.js';

const MAX_BODY = 3 * 1024 * 1024;
/** groups of built-in types: strategic merge patch works there, not on custom resources */
const BUILTIN_GROUPS = new Set(['', 'apps', 'rbac.authorization.k8s.io', 'coordination.k8s.io', 'events.k8s.io', 'apiextensions.k8s.io']);

export interface SubresourceRequest {
  method: string;
  namespace: string;
  name: string;
  body: unknown;
  query: URLSearchParams;
}

export type SubresourceHandler = (req: SubresourceRequest) => { code: number; body?: unknown };

/** A websocket subresource: upgrade `socket` (e.g. with ws's handleUpgrade) or reject the request. */
export type UpgradeHandler = (
  req: http.IncomingMessage,
  socket: Socket,
  head: Buffer,
  target: { namespace: string; name: string },
  reject: (code: number, message: string, reason?: string) => void,
) => void;

export interface FaultRule {
  remaining: number;
  status: number;
  match?: (req: { method: string; path: string; url: string }) => boolean;
}

interface Reply {
  code: number;
  body?: unknown;
}

interface Route {
  group: string;
  version: string;
  resource: string;
  namespace?: string;
  name?: string;
  subresource?: string;
}

function statusOf(code: number, message: string): StatusBody {
  return new ApiError(code, message, reasonFor(code)).toStatus();
}

const APPLY_PATCH = 'application/apply-patch+yaml';

function mediaType(contentType: string): string {
  return (contentType.split(';')[0] ?? '').trim().toLowerCase();
}

function managedFieldsOf(o: KubeObject): unknown[] {
  const mf = o.metadata?.managedFields as unknown;
  return Array.isArray(mf) ? mf : [];
}

const NOT_FOUND_ROUTE = (): ApiError => new ApiError(404, 'the server could not find the requested resource', 'NotFound');

export class EmulatorServer {
  readonly http: http.Server;
  port = 0;
  readonly audit: AuditEntry[] = [];
  readonly faults: FaultRule[] = [];
  delayMs = 0;
  /** fault: send no BOOKMARK events */
  bookmarksOff = false;
  private hung = false;
  private readonly hangWaiters = new Set<() => void>();
  private readonly hangListeners = new Set<() => void>();
  private readonly sockets = new Set<Socket>();
  private readonly streams = new Set<() => void>();
  private readonly subresources = new Map<string, SubresourceHandler>();
  /** websocket subresources (the KubeVirt serial console), see addUpgrade */
  private readonly upgrades = new Map<string, UpgradeHandler>();
  private readonly extraGroups = new Map<string, string[]>();
  private refusing = false;
  /** non-admin tokens: requests with these are authorized by RBAC */
  readonly identities = new Map<string, Identity>();
  private readonly authorizer: Authorizer;

  constructor(
    private readonly store: Store,
    private readonly token: string,
    private readonly bookmarkIntervalMs: number,
    private readonly allowAnonymous = false,
  ) {
    this.authorizer = new Authorizer(store);
    this.http = http.createServer((req, res) => {
      void this.handle(req, res).catch((err: unknown) => {
        // last resort: never let a request crash the process
        if (!res.headersSent) this.send(res, { code: 500, body: statusOf(500, String(err)) });
        else res.destroy();
      });
    });
    this.http.keepAliveTimeout = 1000;
    this.http.on('upgrade', (req: http.IncomingMessage, socket: Socket, head: Buffer) => this.onUpgrade(req, socket, head));
    this.http.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
  }

  /** Register e.g. subresources.kubevirt.io/v1 virtualmachines/start */
  addSubresource(group: string, version: string, resource: string, sub: string, fn: SubresourceHandler): void {
    this.subresources.set(`${group}/${version}/${resource}/${sub}`, fn);
    const list = this.extraGroups.get(`${group}/${version}`) ?? [];
    list.push(`${resource}/${sub}`);
    this.extraGroups.set(`${group}/${version}`, list);
  }

  /** Register a websocket subresource, e.g. subresources.kubevirt.io/v1 virtualmachineinstances/console */
  addUpgrade(group: string, version: string, resource: string, sub: string, fn: UpgradeHandler): void {
    this.upgrades.set(`${group}/${version}/${resource}/${sub}`, fn);
    const list = this.extraGroups.get(`${group}/${version}`) ?? [];
    list.push(`${resource}/${sub}`);
    this.extraGroups.set(`${group}/${version}`, list);
  }

  /**
   * A websocket upgrade (GET with Upgrade: websocket): audited and authorized as a `get` of the
   * subresource, as kube-apiserver does for connect requests to aggregated APIs such as virt-api.
   */
  private onUpgrade(req: http.IncomingMessage, socket: Socket, head: Buffer): void {
    // The http server leaves an upgraded socket without an 'error' listener. A client that drops the
    // connection when refused (src/backend/kubevirt/console.ts terminates on a 403) can reset it
    // while our answer is still going out: ECONNRESET, then an uncaught exception in the test process
    // (seen under taskset -c 0 with a CPU hog). A reset only ends this connection.
    socket.on('error', () => socket.destroy());
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const routed = this.parseRoute(url.pathname);
    const rejectWith = (entry: AuditEntry | undefined, code: number, message: string, reason?: string): void => {
      if (entry) entry.code = code;
      const body = JSON.stringify(new ApiError(code, message, reason ?? reasonFor(code)).toStatus());
      socket.end(
        `HTTP/1.1 ${code} ${http.STATUS_CODES[code] ?? 'Error'}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      );
    };
    if (!routed || routed === 'discovery' || !routed.subresource || routed.namespace === undefined || routed.name === undefined) {
      rejectWith(undefined, 404, 'the server could not find the requested resource');
      return;
    }
    const entry: AuditEntry = {
      verb: 'get',
      group: routed.group,
      version: routed.version,
      resource: routed.resource,
      subresource: routed.subresource,
      namespace: routed.namespace,
      name: routed.name,
      code: 0,
    };
    this.audit.push(entry);
    const fn = this.upgrades.get(`${routed.group}/${routed.version}/${routed.resource}/${routed.subresource}`);
    if (!fn) return rejectWith(entry, 404, 'the server could not find the requested resource');
    const who = this.authenticate(req);
    if (!who) return rejectWith(entry, 401, 'Unauthorized');
    if (who !== 'admin') {
      entry.user = who.user;
      if (!this.authorizer.allowed(who, entry)) return rejectWith(entry, 403, Authorizer.message(who, entry), 'Forbidden');
    }
    let answered = false;
    fn(req, socket, head, { namespace: routed.namespace, name: routed.name }, (code, message, reason) => {
      answered = true;
      rejectWith(entry, code, message, reason);
    });
    if (!answered) entry.code = 101;
  }

  async listen(port = 0): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const onErr = (e: Error): void => reject(e);
      this.http.once('error', onErr);
      this.http.listen(port, '127.0.0.1', () => {
        this.http.off('error', onErr);
        resolve();
      });
    });
    const addr = this.http.address();
    if (addr && typeof addr === 'object') this.port = addr.port;
  }

  dropWatches(): void {
    for (const end of [...this.streams]) end();
  }

  async refuse(on: boolean): Promise<void> {
    if (on === this.refusing) return;
    this.refusing = on;
    if (on) {
      const closed = new Promise<void>((resolve) => this.http.close(() => resolve()));
      this.dropWatches();
      for (const s of this.sockets) s.destroy();
      await closed;
    } else {
      await this.listen(this.port);
    }
  }

  /**
   * Fault: the server is there but does nothing, as when the apiserver process is stopped
   * (SIGSTOP) or a proxy in front keeps connections but forwards nothing. TCP connections are
   * still accepted and kept open; requests (new and already arriving) get no answer, open watch
   * streams send nothing, not even bookmarks. Ending the hang resumes: held requests are answered
   * (unless their client has gone meanwhile; then they are dropped unexecuted) and what the watch
   * streams would have sent is delivered in order, as a resumed process would.
   */
  hang(on: boolean): void {
    if (on === this.hung) return;
    this.hung = on;
    if (on) return;
    // after pending I/O (a client's close that already arrived) has been seen, so a request
    // whose client has gone is dropped rather than executed
    setImmediate(() => {
      if (this.hung) return;
      for (const w of [...this.hangWaiters]) w();
      this.hangWaiters.clear();
      for (const l of [...this.hangListeners]) l();
    });
  }

  private async hangGate(req: http.IncomingMessage): Promise<void> {
    if (!this.hung) return;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        this.hangWaiters.delete(done);
        req.socket.off('close', done);
        resolve();
      };
      this.hangWaiters.add(done);
      req.socket.once('close', done);
    });
  }

  async close(): Promise<void> {
    this.hang(false);
    this.dropWatches();
    if (this.http.listening) {
      const closed = new Promise<void>((resolve) => this.http.close(() => resolve()));
      for (const s of this.sockets) s.destroy();
      await closed;
    }
    for (const s of this.sockets) s.destroy();
  }

  // ------------------------------------------------------------------ plumbing

  private send(res: http.ServerResponse, r: Reply): void {
    const text = r.body === undefined ? '' : JSON.stringify(r.body);
    res.writeHead(r.code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
  }

  private async readBody(req: http.IncomingMessage): Promise<Buffer> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const c of req) {
      const b = c as Buffer;
      size += b.length;
      if (size > MAX_BODY) throw new ApiError(413, 'Request entity too large: limit is 3145728', 'RequestEntityTooLarge');
      chunks.push(b);
    }
    return Buffer.concat(chunks);
  }

  /** 'admin' (the emulator token, or anonymous when allowed), an RBAC identity, or undefined (401) */
  private authenticate(req: http.IncomingMessage): 'admin' | Identity | undefined {
    const h = req.headers.authorization ?? '';
    if (!h && this.allowAnonymous) return 'admin';
    const m = /^Bearer\s+(.+)$/i.exec(h);
    if (!m) return undefined;
    const token = (m[1] ?? '').trim();
    if (secretEquals(token, this.token)) return 'admin';
    for (const [t, id] of this.identities) if (secretEquals(token, t)) return id;
    return undefined;
  }

  private parseRoute(path: string): Route | 'discovery' | undefined {
    let seg: string[];
    try {
      seg = path.split('/').filter((s) => s !== '').map((s) => decodeURIComponent(s));
    } catch {
      return undefined; // malformed percent-encoding: no such resource
    }
    let group: string;
    let version: string;
    let rest: string[];
    const [s0, s1, s2] = seg;
    if (s0 === 'api' && s1 === 'v1') {
      group = '';
      version = 'v1';
      rest = seg.slice(2);
    } else if (s0 === 'apis' && s1 !== undefined && s2 !== undefined) {
      group = s1;
      version = s2;
      rest = seg.slice(3);
    } else return undefined;
    const [r0, r1, r2, r3, r4] = rest;
    if (r0 === undefined) return 'discovery';
    if (r0 === 'namespaces' && r1 !== undefined && r2 !== undefined && r2 !== 'status' && r2 !== 'finalize') {
      if (rest.length > 5) return undefined;
      return { group, version, namespace: r1, resource: r2, name: r3, subresource: r4 };
    }
    if (rest.length > 3) return undefined;
    return { group, version, resource: r0, name: r1, subresource: r2 };
  }

  private verbOf(method: string, route: Route, watch: boolean): AuditVerb {
    switch (method) {
      case 'GET':
        return route.name ? 'get' : watch ? 'watch' : 'list';
      case 'POST':
        return 'create';
      case 'PUT':
        return 'update';
      case 'PATCH':
        return 'patch';
      case 'DELETE':
        return route.name ? 'delete' : 'deletecollection';
      default:
        return 'get';
    }
  }

  // ------------------------------------------------------------------ request handling

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const method = (req.method ?? 'GET').toUpperCase();
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const query = url.searchParams;
    let bodyBuf: Buffer;
    try {
      bodyBuf = await this.readBody(req);
    } catch (e) {
      const err = e instanceof ApiError ? e : badRequest(String(e));
      this.send(res, { code: err.code, body: err.toStatus() });
      return;
    }
    if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
    await this.hangGate(req);
    if (res.destroyed || req.socket.destroyed) return;

    const routed = this.parseRoute(url.pathname);
    const watch = query.get('watch') === 'true' || query.get('watch') === '1';
    const entry: AuditEntry =
      routed && routed !== 'discovery'
        ? {
            verb: this.verbOf(method, routed, watch),
            group: routed.group,
            version: routed.version,
            resource: routed.resource,
            ...(routed.subresource ? { subresource: routed.subresource } : {}),
            ...(routed.namespace !== undefined ? { namespace: routed.namespace } : {}),
            ...(routed.name !== undefined ? { name: routed.name } : {}),
            code: 0,
          }
        : { verb: 'get', group: '', version: '', resource: '', nonResourceURL: url.pathname, code: 0 };
    if ((entry.verb === 'list' || entry.verb === 'watch') && entry.name === undefined) {
      // a list/watch for one name is authorized and audited with that name (rbac.ts nameFromFieldSelector)
      const n = nameFromFieldSelector(query.get('fieldSelector'));
      if (n !== undefined) entry.name = n;
    }
    this.audit.push(entry);

    const finish = (r: Reply): void => {
      entry.code = r.code;
      this.send(res, r);
    };

    const who = this.authenticate(req);
    if (!who) {
      finish({ code: 401, body: statusOf(401, 'Unauthorized') });
      return;
    }
    if (who !== 'admin') {
      entry.user = who.user;
      const attrs = entry.nonResourceURL !== undefined
        ? { verb: (method === 'GET' ? 'get' : method.toLowerCase()) as AuditVerb, group: '', resource: '', nonResourceURL: entry.nonResourceURL }
        : entry;
      if (!this.authorizer.allowed(who, attrs)) {
        const details = entry.nonResourceURL === undefined ? { ...(entry.name ? { name: entry.name } : {}), group: entry.group, kind: entry.resource } : undefined;
        finish({ code: 403, body: new ApiError(403, Authorizer.message(who, attrs), 'Forbidden', details).toStatus() });
        return;
      }
    }
    const fault = this.faults.find((f) => f.remaining > 0 && (!f.match || f.match({ method, path: url.pathname, url: url.pathname + url.search })));
    if (fault) {
      fault.remaining--;
      if (fault.remaining <= 0) this.faults.splice(this.faults.indexOf(fault), 1);
      finish({ code: fault.status, body: statusOf(fault.status, `injected fault: HTTP ${fault.status}`) });
      return;
    }

    try {
      if (!routed) {
        finish(this.nonResource(url.pathname));
        return;
      }
      if (routed === 'discovery') {
        finish(this.discovery(url.pathname));
        return;
      }
      let body: unknown = undefined;
      const contentType = req.headers['content-type'] ?? '';
      if (bodyBuf.length > 0) {
        try {
          body = JSON.parse(bodyBuf.toString('utf8'));
        } catch (e) {
          // an apply patch is YAML (JSON is YAML too: what most clients send)
          if (mediaType(contentType) === APPLY_PATCH) {
            try {
              body = parseYaml(bodyBuf.toString('utf8'));
            } catch (ye) {
              throw badRequest(`error decoding YAML: ${(ye as Error).message}`);
            }
          } else throw badRequest(`the body of the request was in an unknown format - accepted media types include: application/json: ${(e as Error).message}`);
        }
      }
      if (watch && method === 'GET' && !routed.subresource) {
        const t = this.typeOf(routed);
        if (routed.name) {
          // the old single-object form: a watch with a metadata.name field selector
          entry.verb = 'watch';
          const sel = query.get('fieldSelector');
          query.set('fieldSelector', `metadata.name=${routed.name}${sel ? ',' + sel : ''}`);
        }
        this.startWatch(t, routed.namespace, query, res, entry);
        return;
      }
      finish(this.dispatch(method, routed, query, body, contentType, who, req.headers['user-agent']));
    } catch (e) {
      const err = e instanceof ApiError ? e : new ApiError(500, (e as Error)?.message ?? String(e), 'InternalError');
      finish({ code: err.code, body: err.toStatus() });
    }
  }

  private nonResource(path: string): Reply {
    switch (path) {
      case '/version':
        return {
          code: 200,
          body: { major: '1', minor: '31', gitVersion: 'v1.31.0-emulator', platform: 'linux/amd64', goVersion: 'go1.22', compiler: 'gc' },
        };
      case '/healthz':
      case '/readyz':
      case '/livez':
        return { code: 200, body: 'ok' };
      case '/api':
        return { code: 200, body: { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [] } };
      case '/apis': {
        const groups = new Map<string, string[]>();
        for (const g of this.store.registry.groups()) groups.set(g.group, [...(groups.get(g.group) ?? []), g.version]);
        for (const gv of this.extraGroups.keys()) {
          const [g = '', v = ''] = gv.split('/'); // extraGroups keys are "group/version"
          groups.set(g, [...(groups.get(g) ?? []), v]);
        }
        return {
          code: 200,
          body: {
            kind: 'APIGroupList',
            apiVersion: 'v1',
            groups: [...groups].map(([name, versions]) => ({
              name,
              versions: versions.map((v) => ({ groupVersion: `${name}/${v}`, version: v })),
              preferredVersion: { groupVersion: `${name}/${versions[0]}`, version: versions[0] },
            })),
          },
        };
      }
      default:
        throw NOT_FOUND_ROUTE();
    }
  }

  private discovery(path: string): Reply {
    const seg = path.split('/').filter((s) => s);
    const group = seg[0] === 'api' ? '' : seg[1];
    const version = seg[0] === 'api' ? 'v1' : seg[2];
    const types = this.store.registry.types.filter((t) => t.group === group && t.version === version);
    const extra = this.extraGroups.get(`${group}/${version}`) ?? [];
    if (types.length === 0 && extra.length === 0) throw NOT_FOUND_ROUTE();
    const verbs = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];
    const resources: unknown[] = [];
    for (const t of types) {
      resources.push({ name: t.resource, singularName: t.kind.toLowerCase(), namespaced: t.namespaced, kind: t.kind, verbs, ...(t.shortNames ? { shortNames: t.shortNames } : {}) });
      if (t.statusSubresource) resources.push({ name: `${t.resource}/status`, singularName: '', namespaced: t.namespaced, kind: t.kind, verbs: ['get', 'patch', 'update'] });
    }
    for (const r of extra) resources.push({ name: r, singularName: '', namespaced: true, kind: 'Status', verbs: ['update'] });
    return { code: 200, body: { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: group ? `${group}/${version}` : 'v1', resources } };
  }

  private typeOf(route: Route): ResourceType {
    const t = this.store.registry.byResource(route.group, route.version, route.resource);
    if (!t) throw NOT_FOUND_ROUTE();
    if (route.namespace !== undefined && !t.namespaced) throw NOT_FOUND_ROUTE();
    return t;
  }

  private dispatch(method: string, route: Route, query: URLSearchParams, body: unknown, contentType: string, who: 'admin' | Identity = 'admin', userAgent?: string): Reply {
    const guard = (t: ResourceType, o: KubeObject, ns: string | undefined): void => {
      if (who !== 'admin') this.authorizer.checkEscalation(who, t, o, ns, route.name, route.name ? this.store.get(t, ns, route.name) : undefined);
    };
    // custom subresources (KubeVirt start/stop/...)
    if (route.subresource && route.subresource !== 'status') {
      const h = this.subresources.get(`${route.group}/${route.version}/${route.resource}/${route.subresource}`);
      if (!h || route.namespace === undefined || !route.name) throw NOT_FOUND_ROUTE();
      if (method !== 'PUT') {
        throw new ApiError(405, `the server does not allow this method on the requested resource`, 'MethodNotAllowed');
      }
      return h({ method, namespace: route.namespace, name: route.name, body, query });
    }
    const t = this.typeOf(route);
    if (route.subresource === 'status' && !t.statusSubresource) throw NOT_FOUND_ROUTE();
    const dryRun = query.getAll('dryRun').includes('All');
    const ns = t.namespaced ? route.namespace : undefined;
    // who a non-apply write is recorded for in managedFields (apiserver handlers/rest.go managerOrUserAgent)
    const updater = (): string => query.get('fieldManager') || managerFromUserAgent(userAgent);
    const bodyObj = (): KubeObject => {
      if (body === null || typeof body !== 'object' || Array.isArray(body)) throw badRequest('the request body must be a JSON object');
      const o = body as KubeObject;
      if (o.metadata !== undefined && (o.metadata === null || typeof o.metadata !== 'object')) throw badRequest('metadata must be an object');
      return o;
    };
    switch (method) {
      case 'GET': {
        if (route.name) {
          const o = this.store.get(t, ns, route.name);
          if (!o) throw this.notFoundFor(t, route.name);
          return { code: 200, body: o };
        }
        return { code: 200, body: this.listBody(t, ns, query) };
      }
      case 'POST': {
        if (route.name) throw new ApiError(405, 'the server does not allow this method on the requested resource', 'MethodNotAllowed');
        if (t.namespaced && ns === undefined) throw NOT_FOUND_ROUTE();
        validatePatchOptions(false, query);
        guard(t, bodyObj(), ns);
        const tracked = trackUpdate(t.kind, apiVersionOf(t), undefined, bodyObj(), updater(), 'main');
        const created = this.store.create(t, tracked, { dryRun, namespace: ns });
        return { code: 201, body: created };
      }
      case 'PUT': {
        if (!route.name) throw new ApiError(405, 'the server does not allow this method on the requested resource', 'MethodNotAllowed');
        validatePatchOptions(false, query);
        const o = bodyObj();
        const scope = route.subresource === 'status' ? 'status' : 'main';
        guard(t, o, ns);
        const cur = this.store.peek(t, ns, route.name);
        const managedFields = cur ? managedFieldsOf(trackUpdate(t.kind, apiVersionOf(t), cur, o, updater(), scope)) : undefined;
        return { code: 200, body: this.store.update(t, o, { scope, dryRun, namespace: ns, name: route.name, managedFields }) };
      }
      case 'PATCH': {
        if (!route.name) throw new ApiError(405, 'the server does not allow this method on the requested resource', 'MethodNotAllowed');
        const ct = mediaType(contentType);
        const scope = route.subresource === 'status' ? 'status' : 'main';
        validatePatchOptions(ct === APPLY_PATCH, query);
        if (ct === APPLY_PATCH) return this.apply(t, route, ns, query, body, who, guard);
        const cur = this.store.get(t, ns, route.name);
        if (!cur) throw this.notFoundFor(t, route.name);
        let patched: unknown;
        if (ct === 'application/json-patch+json') patched = jsonPatch(cur, body);
        else if (ct === 'application/merge-patch+json') {
          if (body === null || typeof body !== 'object' || Array.isArray(body)) throw badRequest('merge patch body must be a JSON object');
          patched = mergePatch(cur, body);
        } else if (ct === 'application/strategic-merge-patch+json') {
          if (!BUILTIN_GROUPS.has(t.group)) {
            throw new ApiError(415, `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml`, 'UnsupportedMediaType');
          }
          if (body === null || typeof body !== 'object' || Array.isArray(body)) throw badRequest('strategic merge patch body must be a JSON object');
          patched = strategicMergePatch(cur, body);
        } else {
          throw new ApiError(415, `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json`, 'UnsupportedMediaType');
        }
        if (patched === null || typeof patched !== 'object' || Array.isArray(patched)) throw badRequest('the patched document is not an object');
        const p = patched as KubeObject;
        guard(t, p, ns);
        const managedFields = managedFieldsOf(trackUpdate(t.kind, apiVersionOf(t), cur, p, updater(), scope));
        return { code: 200, body: this.store.update(t, p, { scope, dryRun, namespace: ns, name: route.name, managedFields }) };
      }
      case 'DELETE': {
        const opts = this.deleteOptions(query, body, dryRun);
        if (!route.name) {
          const victims = this.filtered(t, ns, query);
          const deleted: KubeObject[] = [];
          for (const v of victims) {
            try {
              deleted.push(this.store.delete(t, v.metadata.namespace, v.metadata.name ?? '', opts).obj);
            } catch {
              /* raced */
            }
          }
          return { code: 200, body: { kind: `${t.kind}List`, apiVersion: apiVersionOf(t), metadata: { resourceVersion: String(this.store.rv) }, items: deleted } };
        }
        const r = this.store.delete(t, ns, route.name, opts);
        return { code: r.gone ? 200 : 202, body: r.obj };
      }
      default:
        throw new ApiError(405, 'the server does not allow this method on the requested resource', 'MethodNotAllowed');
    }
  }

  /**
   * PATCH application/apply-patch+yaml (Server-Side Apply, managed-fields.ts): k8s.io/apiserver
   * pkg/endpoints/handlers/patch.go applyPatcher. The body is the applier's whole intent for the
   * object; an absent object is created (201), which also needs `create` (patch.go
   * createAuthorizerAttributes); `force=true` takes conflicting fields from other managers.
   */
  private apply(
    t: ResourceType,
    route: Route,
    ns: string | undefined,
    query: URLSearchParams,
    body: unknown,
    who: 'admin' | Identity,
    guard: (t: ResourceType, o: KubeObject, ns: string | undefined) => void,
  ): Reply {
    const name = route.name ?? '';
    if (body === null || typeof body !== 'object' || Array.isArray(body)) throw badRequest('the body of an apply patch must be an object');
    const config = body as KubeObject;
    if (config.metadata !== undefined && (config.metadata === null || typeof config.metadata !== 'object')) throw badRequest('metadata must be an object');
    const apiVersion = apiVersionOf(t);
    // managedfields internal/versioncheck.go: the applied object must be of the endpoint's type
    if (config.apiVersion !== apiVersion || config.kind !== t.kind) {
      throw badRequest(`invalid object type: ${config.apiVersion ?? ''}, Kind=${config.kind ?? ''}`);
    }
    if (config.metadata?.name !== undefined && config.metadata.name !== name) {
      throw badRequest(`the name of the object (${config.metadata.name}) does not match the name on the URL (${name})`);
    }
    const manager = query.get('fieldManager') ?? '';
    const force = query.get('force') === 'true';
    const dryRun = query.getAll('dryRun').includes('All');
    const scope = route.subresource === 'status' ? 'status' : 'main';
    const cur = this.store.get(t, ns, name);
    const cfg: KubeObject = { ...config, metadata: { ...(config.metadata ?? {}), name, ...(ns !== undefined ? { namespace: ns } : {}) } };
    if (!cur) {
      if (scope === 'status') throw this.notFoundFor(t, name);
      if (who !== 'admin') {
        const attrs: AuditEntry = { verb: 'create', group: t.group, version: t.version, resource: t.resource, ...(ns !== undefined ? { namespace: ns } : {}), name, code: 0 };
        if (!this.authorizer.allowed(who, attrs)) throw new ApiError(403, Authorizer.message(who, attrs), 'Forbidden', { name, group: t.group, kind: t.resource });
      }
      const obj = applyConfig(t.kind, apiVersion, undefined, cfg, manager, force, 'main');
      guard(t, obj, ns);
      return { code: 201, body: this.store.create(t, obj, { dryRun, namespace: ns }) };
    }
    const next = applyConfig(t.kind, apiVersion, cur, cfg, manager, force, scope);
    guard(t, next, ns);
    const managedFields = managedFieldsOf(next);
    // the apply decides the whole object: no resourceVersion precondition unless the config has one
    if (config.metadata?.resourceVersion === undefined) delete next.metadata.resourceVersion;
    return { code: 200, body: this.store.update(t, next, { scope: scope === 'status' ? 'status' : 'main', dryRun, namespace: ns, name, managedFields }) };
  }

  private notFoundFor(t: ResourceType, name: string): ApiError {
    return new ApiError(404, `${t.group ? `${t.resource}.${t.group}` : t.resource} "${name}" not found`, 'NotFound', {
      name,
      group: t.group,
      kind: t.resource,
    });
  }

  private deleteOptions(query: URLSearchParams, body: unknown, dryRun: boolean): DeleteOptions {
    const b = (body && typeof body === 'object' ? body : {}) as Record<string, unknown>;
    const policy = (query.get('propagationPolicy') ?? b.propagationPolicy) as string | undefined;
    if (policy !== undefined && !['Orphan', 'Background', 'Foreground'].includes(policy)) {
      throw new ApiError(422, `DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value: "${policy}": supported values: "Foreground", "Background", "Orphan", "nil"`, 'Invalid');
    }
    const g = query.get('gracePeriodSeconds') ?? b.gracePeriodSeconds;
    const pre = (b.preconditions && typeof b.preconditions === 'object' ? b.preconditions : undefined) as DeleteOptions['preconditions'];
    return {
      propagationPolicy: policy as DeleteOptions['propagationPolicy'],
      gracePeriodSeconds: g === undefined || g === null ? undefined : Number(g),
      preconditions: pre,
      dryRun: dryRun || (Array.isArray(b.dryRun) && (b.dryRun as unknown[]).includes('All')),
    };
  }

  private filtered(t: ResourceType, ns: string | undefined, query: URLSearchParams): KubeObject[] {
    const lm = parseLabelSelector(query.get('labelSelector') ?? undefined);
    const fm = parseFieldSelector(query.get('fieldSelector') ?? undefined);
    return this.store.list(t, ns).filter((o) => lm(o.metadata.labels) && fm(o));
  }

  private listBody(t: ResourceType, ns: string | undefined, query: URLSearchParams): unknown {
    const rv = query.get('resourceVersion');
    if (query.get('resourceVersionMatch') === 'Exact' && rv && rv !== String(this.store.rv)) {
      // only the current state is kept, so an exact older list is gone (410), as after compaction
      throw expired(`too old resource version: ${rv} (${this.store.rv})`);
    }
    let items = this.filtered(t, ns, query);
    const meta: Record<string, unknown> = { resourceVersion: String(this.store.rv) };
    const limit = Number(query.get('limit') ?? 0);
    const cont = query.get('continue');
    let offset = 0;
    if (cont) {
      const m = /^offset:(\d+)$/.exec(Buffer.from(cont, 'base64url').toString('utf8'));
      if (!m) throw badRequest('continue key is not valid: malformed continue token');
      offset = Number(m[1]);
    }
    if (offset) items = items.slice(offset);
    if (limit > 0 && items.length > limit) {
      meta.continue = Buffer.from(`offset:${offset + limit}`, 'utf8').toString('base64url');
      meta.remainingItemCount = items.length - limit;
      items = items.slice(0, limit);
    }
    return { kind: `${t.kind}List`, apiVersion: apiVersionOf(t), metadata: meta, items };
  }

  // ------------------------------------------------------------------ watch

  private startWatch(t: ResourceType, ns: string | undefined, query: URLSearchParams, res: http.ServerResponse, entry: AuditEntry): void {
    const lm = parseLabelSelector(query.get('labelSelector') ?? undefined);
    const fm = parseFieldSelector(query.get('fieldSelector') ?? undefined);
    const rvParam = query.get('resourceVersion') ?? '';
    if (rvParam !== '' && !/^\d+$/.test(rvParam)) throw badRequest(`invalid resource version: ${rvParam}`);
    entry.code = 200;
    res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked', 'Cache-Control': 'no-cache' });
    res.flushHeaders();
    // while hung, what the stream would send waits here (a stopped process sends it on resume)
    const held: string[] = [];
    const write = (type: string, object: unknown): void => {
      if (res.writableEnded || res.destroyed) return;
      const line = JSON.stringify({ type, object }) + '\n';
      // while hung, and until what was held has gone out, in order
      if (this.hung || held.length > 0) held.push(line);
      else res.write(line);
    };
    const flush = (): void => {
      if (!res.writableEnded && !res.destroyed) for (const line of held.splice(0)) res.write(line);
    };
    this.hangListeners.add(flush);
    let bookmark: NodeJS.Timeout | undefined;
    let timeout: NodeJS.Timeout | undefined;
    const watcher: Watcher = {
      t,
      namespace: ns,
      accepts: (o) => lm(o.metadata.labels) && fm(o),
      send: (type: EventType, obj: KubeObject) => write(type, obj),
    };
    const end = (): void => {
      this.store.watchers.delete(watcher);
      this.streams.delete(end);
      this.hangListeners.delete(flush);
      if (bookmark) clearTimeout(bookmark);
      if (timeout) clearTimeout(timeout);
      if (this.hung) {
        // a stopped server closes nothing: the stream just stays silent (and ends on resume)
        if (!res.writableEnded && !res.destroyed) this.hangListeners.add(() => !res.writableEnded && res.end());
        return;
      }
      if (!res.writableEnded) res.end();
    };
    res.on('close', end);
    this.streams.add(end);

    const fromRV = rvParam === '' || rvParam === '0' ? undefined : Number(rvParam);
    if (fromRV === undefined) {
      for (const o of this.store.list(t, ns)) if (watcher.accepts(o)) write('ADDED', o);
    } else {
      try {
        this.store.checkWatchable(fromRV);
      } catch (e) {
        write('ERROR', (e as ApiError).toStatus());
        end();
        return;
      }
      this.store.replay(watcher, fromRV);
    }
    this.store.watchers.add(watcher);
    const ts = Number(query.get('timeoutSeconds') ?? 0);
    const deadline = ts > 0 ? Date.now() + ts * 1000 : undefined;
    if (query.get('allowWatchBookmarks') === 'true') {
      // kube-apiserver's watch cache (k8s.io/apiserver pkg/storage/cacher/cache_watcher.go
      // nextBookmarkTime, cacher.go defaultBookmarkFrequency = 1 min): a BOOKMARK with the current
      // resourceVersion roughly every bookmarkFrequency, and one 2 s before the watch's deadline;
      // events do not postpone it. Not a contract: clients may not rely on bookmarks at all.
      // the pre-deadline bookmark goes out once: after it, cache_watcher.go nextBookmarkTime finds
      // the pre-timeout time already passed and schedules none. Here a timer can fire a millisecond
      // before Date.now() reaches its target, so recomputing deadline - 2 s could schedule it twice.
      let deadlineBookmarkDue = deadline !== undefined;
      const next = (): void => {
        const now = Date.now();
        let at = now + this.bookmarkIntervalMs;
        if (deadline !== undefined && deadline - 2000 < at) {
          if (!deadlineBookmarkDue) return;
          deadlineBookmarkDue = false;
          at = deadline - 2000;
        }
        if (at <= now) return;
        bookmark = setTimeout(() => {
          // a hung server sends nothing, and the bookmarksOff fault suppresses them
          if (!this.hung && !this.bookmarksOff) {
            write('BOOKMARK', { kind: t.kind, apiVersion: apiVersionOf(t), metadata: { resourceVersion: String(this.store.rv) } });
          }
          next();
        }, at - now);
      };
      next();
    }
    if (deadline !== undefined) timeout = setTimeout(end, ts * 1000);
  }
}
