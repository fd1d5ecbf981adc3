/**
 * Informers (client-node ListWatch: list, then watch from the list's resourceVersion, re-listing
 * on 410 Gone). client-node does not restart an informer whose list or watch failed; this wrapper
 * does, with capped exponential backoff, and tracks whether the initial list has arrived (synced).
 *
 * Secrets: NamespaceSecrets runs one informer per namespace that VirtualMachineBMCs reference
 * Secrets in (not one per Secret), reducing each Secret on arrival; RefIndex maps a Secret or VM to
 * the VirtualMachineBMCs that reference it.
 */
import { ListWatch, Watch, type Informer, type KubeConfig, type KubernetesObject, type ObjectCache } from '@kubernetes/client-node';
import type { Logger } from '../common/logger.js';
import type { KubeClient } from '../kube/client.js';
import { resourcePath, type ResourceRef } from '../kube/resources.js';
import type { KubeObject } from '../kube/types.js';

export interface WatchedResource<T extends KubeObject = KubeObject> {
  readonly resource: ResourceRef;
  readonly synced: boolean;
  get(namespace: string, name: string): T | undefined;
  list(namespace?: string): readonly T[];
  onChange(cb: (obj: T, kind: 'add' | 'update' | 'delete') => void): void;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface InformerOptions {
  kc: KubeConfig;
  client: KubeClient;
  resource: ResourceRef;
  /** Restrict to one namespace (undefined = all). */
  namespace?: string;
  labelSelector?: string;
  /** e.g. `metadata.name=<name>` for a single-object informer */
  fieldSelector?: string;
  /**
   * Applied to every object before the cache or a callback sees it (lists and watch events
   * alike), e.g. to drop what must not stay in memory.
   */
  transform?: (obj: KubeObject) => KubeObject;
  /** Called (on a later turn, once the cache holds the list) after every successful list. */
  onListed?: () => void;
  logger: Logger;
  /** Restart delay bounds (ms). */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** Counts restarts (metrics). */
  onRestart?: (resource: string) => void;
}

export class ResourceInformer<T extends KubeObject = KubeObject> implements WatchedResource<T> {
  readonly resource: ResourceRef;
  private readonly informer: Informer<KubernetesObject> & ObjectCache<KubernetesObject>;
  private listed = false;
  private stopped = true;
  private backoffMs: number;
  private restartTimer?: NodeJS.Timeout;
  private readonly callbacks: Array<(obj: T, kind: 'add' | 'update' | 'delete') => void> = [];

  constructor(private readonly opts: InformerOptions) {
    this.resource = opts.resource;
    this.backoffMs = opts.minBackoffMs ?? 100;
    const path = resourcePath(opts.resource, opts.namespace);
    const transform = opts.transform;
    const listFn = async () => {
      // paged, so a large cluster never sends one huge response
      const list = await opts.client.list<KubeObject>(opts.resource, opts.namespace, {
        limit: 500,
        ...(opts.labelSelector ? { labelSelector: opts.labelSelector } : {}),
        ...(opts.fieldSelector ? { fieldSelector: opts.fieldSelector } : {}),
      });
      if (transform) list.items = list.items.map(transform);
      this.listed = true;
      this.backoffMs = opts.minBackoffMs ?? 100;
      // ListWatch fills its cache right after this promise settles; tell the caller after that
      if (opts.onListed) setImmediate(opts.onListed);
      return list as unknown as { apiVersion: string; kind: string; metadata: { resourceVersion?: string }; items: KubernetesObject[] };
    };
    const watch = transform ? new TransformingWatch(opts.kc, transform) : new Watch(opts.kc);
    this.informer = new ListWatch<KubernetesObject>(path, watch, listFn, false, opts.labelSelector, opts.fieldSelector);
    const fire = (kind: 'add' | 'update' | 'delete') => (obj: KubernetesObject) => {
      for (const cb of this.callbacks) cb(obj as unknown as T, kind);
    };
    this.informer.on('add', fire('add'));
    this.informer.on('update', fire('update'));
    this.informer.on('delete', fire('delete'));
    this.informer.on('error', (err: unknown) => this.scheduleRestart(err));
  }

  get synced(): boolean {
    return this.listed;
  }

  private scheduleRestart(err: unknown): void {
    if (this.stopped || this.restartTimer) return;
    const delay = this.backoffMs;
    this.backoffMs = Math.min(this.opts.maxBackoffMs ?? 10_000, this.backoffMs * 2);
    this.opts.logger.warn({ resource: this.resource.plural, err: err instanceof Error ? err.message : String(err), retryInMs: delay }, 'informer failed; restarting');
    this.opts.onRestart?.(this.resource.plural);
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      if (this.stopped) return;
      this.informer.start().catch((e: unknown) => this.scheduleRestart(e));
    }, delay);
    this.restartTimer.unref();
  }

  get(namespace: string, name: string): T | undefined {
    return this.informer.get(name, namespace) as unknown as T | undefined;
  }

  list(namespace?: string): readonly T[] {
    return this.informer.list(namespace) as unknown as readonly T[];
  }

  onChange(cb: (obj: T, kind: 'add' | 'update' | 'delete') => void): void {
    this.callbacks.push(cb);
  }

  async start(): Promise<void> {
    this.stopped = false;
    try {
      await this.informer.start();
    } catch (e) {
      this.scheduleRestart(e);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
    await this.informer.stop();
  }
}

/** A watch whose events carry transformed objects (ERROR/BOOKMARK events pass unchanged). */
class TransformingWatch extends Watch {
  constructor(
    kc: KubeConfig,
    private readonly transform: (obj: KubeObject) => KubeObject,
  ) {
    super(kc);
  }

  override watch(
    path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, apiObj: unknown, watchObj?: unknown) => void,
    done: (err: unknown) => void,
  ): Promise<AbortController> {
    return super.watch(
      path,
      queryParams,
      (phase, obj) => callback(phase, phase === 'ADDED' || phase === 'MODIFIED' || phase === 'DELETED' ? this.transform(obj as KubeObject) : obj),
      done,
    );
  }
}

export interface NamespaceSecretsOptions extends Omit<InformerOptions, 'resource' | 'namespace' | 'fieldSelector' | 'transform' | 'onListed'> {
  /** applied to every Secret on arrival (lists and watch events): what the cache may keep of it */
  reduce: (obj: KubeObject) => KubeObject;
}

/**
 * The Secrets of the namespaces that VirtualMachineBMCs reference Secrets in: one informer (list +
 * watch of the namespace's Secrets, optionally label-filtered) per such namespace, started when
 * the first reference in it appears and stopped when the last goes (`track`). N VirtualMachineBMCs
 * in M namespaces cost M watches, not N. Every Secret is reduced on arrival (`reduce`), so the
 * cache holds what the controller needs of it and nothing of its data.
 */
export class NamespaceSecrets {
  readonly resource: ResourceRef;
  private readonly informers = new Map<string, ResourceInformer>();
  private readonly callbacks: Array<(obj: KubeObject, kind: 'add' | 'update' | 'delete') => void> = [];
  private readonly listedCallbacks: Array<(namespace: string) => void> = [];
  private started = false;

  constructor(
    resource: ResourceRef,
    private readonly opts: NamespaceSecretsOptions,
  ) {
    this.resource = resource;
  }

  /** Every tracked namespace has been listed at least once. */
  get synced(): boolean {
    return [...this.informers.values()].every((i) => i.synced);
  }

  /** Has the informer of this Secret's namespace listed yet (so `get` answering undefined means "not there")? */
  hasSynced(namespace: string, _name?: string): boolean {
    return this.informers.get(namespace)?.synced === true;
  }

  /** The namespaces being watched, for tests and diagnostics. */
  watched(): string[] {
    return [...this.informers.keys()].sort();
  }

  get(namespace: string, name: string): KubeObject | undefined {
    return this.informers.get(namespace)?.get(namespace, name);
  }

  onChange(cb: (obj: KubeObject, kind: 'add' | 'update' | 'delete') => void): void {
    this.callbacks.push(cb);
  }

  /** After each list of a namespace's Secrets (the first one, and every re-list). */
  onListed(cb: (namespace: string) => void): void {
    this.listedCallbacks.push(cb);
  }

  /** Watch exactly these namespaces: starts the missing informers, stops the others. */
  track(namespaces: Iterable<string>): void {
    const want = new Set<string>();
    for (const ns of namespaces) if (ns) want.add(ns);
    for (const [ns, inf] of this.informers) {
      if (want.has(ns)) continue;
      this.informers.delete(ns);
      void inf.stop().catch(() => undefined);
    }
    for (const ns of want) {
      if (this.informers.has(ns)) continue;
      const inf: ResourceInformer = new ResourceInformer({
        ...this.opts,
        resource: this.resource,
        namespace: ns,
        transform: this.opts.reduce,
        onListed: () => {
          if (this.informers.get(ns) !== inf) return;
          for (const cb of this.listedCallbacks) cb(ns);
        },
      });
      inf.onChange((obj, kind) => {
        if (this.informers.get(ns) !== inf) return; // stopped meanwhile
        for (const cb of this.callbacks) cb(obj, kind);
      });
      this.informers.set(ns, inf);
      if (this.started) void inf.start();
    }
  }

  async start(): Promise<void> {
    this.started = true;
    await Promise.all([...this.informers.values()].map((i) => i.start()));
  }

  async stop(): Promise<void> {
    this.started = false;
    await Promise.all([...this.informers.values()].map((i) => i.stop()));
  }
}

/**
 * Which VirtualMachineBMCs reference which object (a Secret, a VM) of their namespace, kept from
 * the VirtualMachineBMC events, so that an event on the object touches only its referrers instead
 * of a walk over every VirtualMachineBMC.
 */
export class RefIndex {
  /** `ns/target` → names of the VirtualMachineBMCs referencing it */
  private readonly byTarget = new Map<string, Set<string>>();
  /** `ns/vmbmc` → its target's name */
  private readonly byBmc = new Map<string, string>();
  /** namespace → how many VirtualMachineBMCs there reference something */
  private readonly perNamespace = new Map<string, number>();

  /** Sets (or, with target undefined, clears) the reference of `ns/bmc`; true when the set of namespaces changed. */
  set(ns: string, bmc: string, target: string | undefined): boolean {
    const bk = `${ns}/${bmc}`;
    const before = this.byBmc.get(bk);
    if (before === target) return false;
    const hadNs = this.perNamespace.has(ns);
    if (before !== undefined) {
      const tk = `${ns}/${before}`;
      const set = this.byTarget.get(tk);
      set?.delete(bmc);
      if (set?.size === 0) this.byTarget.delete(tk);
      this.byBmc.delete(bk);
      const n = (this.perNamespace.get(ns) ?? 1) - 1;
      if (n === 0) this.perNamespace.delete(ns);
      else this.perNamespace.set(ns, n);
    }
    if (target !== undefined) {
      const tk = `${ns}/${target}`;
      let set = this.byTarget.get(tk);
      if (!set) this.byTarget.set(tk, (set = new Set()));
      set.add(bmc);
      this.byBmc.set(bk, target);
      this.perNamespace.set(ns, (this.perNamespace.get(ns) ?? 0) + 1);
    }
    return hadNs !== this.perNamespace.has(ns);
  }

  /** The VirtualMachineBMCs (names, in namespace `ns`) referencing `ns/target`. */
  referrers(ns: string, target: string): readonly string[] {
    const set = this.byTarget.get(`${ns}/${target}`);
    return set ? [...set] : [];
  }

  /** The namespaces with at least one reference. */
  namespaces(): string[] {
    return [...this.perNamespace.keys()];
  }
}
