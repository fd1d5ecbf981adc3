/**
 * Informers (client-node ListWatch: list, then watch from the list's resourceVersion, re-listing
 * on 410 Gone). client-node does not restart an informer whose list or watch failed; this wrapper
 * does, with capped exponential backoff, and tracks whether the initial list has arrived (synced).
 *
 * Secrets are not watched as a collection: NamedSecrets runs one single-object informer
 * (fieldSelector metadata.name=<name>) per Secret a VirtualMachineBMC references, and keeps only
 * the keys the controller reads.
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

/** A Secret reduced to what the controller uses: identity, resourceVersion and the named data keys. */
export function keepSecretKeys(keys: readonly string[]): (obj: KubeObject) => KubeObject {
  return (obj) => {
    const m = obj.metadata ?? {};
    const data = (obj.data ?? {}) as Record<string, string>;
    const kept: Record<string, string> = {};
    for (const k of keys) if (typeof data[k] === 'string') kept[k] = data[k];
    return {
      apiVersion: obj.apiVersion ?? 'v1',
      kind: obj.kind ?? 'Secret',
      metadata: {
        name: m.name,
        namespace: m.namespace,
        ...(m.uid ? { uid: m.uid } : {}),
        ...(m.resourceVersion ? { resourceVersion: m.resourceVersion } : {}),
      },
      data: kept,
    } as KubeObject;
  };
}

export interface NamedSecretsOptions extends Omit<InformerOptions, 'resource' | 'namespace' | 'labelSelector' | 'fieldSelector' | 'transform' | 'onListed'> {
  /** data keys kept in memory; every other key of the Secret is dropped on arrival */
  keys: readonly string[];
}

/**
 * The Secrets VirtualMachineBMCs reference, each watched on its own (list + watch with
 * `fieldSelector=metadata.name=<name>` in its namespace), started and stopped as references come
 * and go (`track`). Nothing else of the cluster's Secrets is listed, watched or held, and the
 * API server's audit log names the Secret of every list/watch.
 */
export class NamedSecrets {
  readonly resource: ResourceRef;
  private readonly informers = new Map<string, ResourceInformer>();
  private readonly callbacks: Array<(obj: KubeObject, kind: 'add' | 'update' | 'delete') => void> = [];
  private readonly listedCallbacks: Array<(namespace: string, name: string) => void> = [];
  private started = false;

  constructor(
    resource: ResourceRef,
    private readonly opts: NamedSecretsOptions,
  ) {
    this.resource = resource;
  }

  private static key(namespace: string, name: string): string {
    return `${namespace}/${name}`;
  }

  /** Every referenced Secret has been listed at least once. */
  get synced(): boolean {
    return [...this.informers.values()].every((i) => i.synced);
  }

  /** Has this Secret's informer listed yet (so `get` answering undefined means "not there")? */
  hasSynced(namespace: string, name: string): boolean {
    return this.informers.get(NamedSecrets.key(namespace, name))?.synced === true;
  }

  /** Names of the Secrets being watched (`ns/name`), for tests and diagnostics. */
  watched(): string[] {
    return [...this.informers.keys()].sort();
  }

  get(namespace: string, name: string): KubeObject | undefined {
    return this.informers.get(NamedSecrets.key(namespace, name))?.get(namespace, name);
  }

  onChange(cb: (obj: KubeObject, kind: 'add' | 'update' | 'delete') => void): void {
    this.callbacks.push(cb);
  }

  /** After each list of a Secret (found or not). */
  onListed(cb: (namespace: string, name: string) => void): void {
    this.listedCallbacks.push(cb);
  }

  /** Watch exactly these Secrets (`ns/name` pairs): starts the missing informers, stops the others. */
  track(refs: Iterable<readonly [string, string]>): void {
    const want = new Map<string, readonly [string, string]>();
    for (const [ns, name] of refs) if (ns && name) want.set(NamedSecrets.key(ns, name), [ns, name]);
    for (const [k, inf] of this.informers) {
      if (want.has(k)) continue;
      this.informers.delete(k);
      void inf.stop().catch(() => undefined);
    }
    for (const [k, [ns, name]] of want) {
      if (this.informers.has(k)) continue;
      const inf = new ResourceInformer({
        ...this.opts,
        resource: this.resource,
        namespace: ns,
        fieldSelector: `metadata.name=${name}`,
        transform: keepSecretKeys(this.opts.keys),
        onListed: () => {
          if (this.informers.get(k) !== inf) return;
          for (const cb of this.listedCallbacks) cb(ns, name);
        },
      });
      inf.onChange((obj, kind) => {
        if (this.informers.get(k) !== inf) return; // stopped meanwhile
        for (const cb of this.callbacks) cb(obj, kind);
      });
      this.informers.set(k, inf);
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
