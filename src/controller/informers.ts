/**
 * Informers (client-node makeInformer: list, then watch from the list's resourceVersion, re-listing
 * on 410 Gone). client-node does not restart an informer whose list or watch failed; this wrapper
 * does, with capped exponential backoff, and tracks whether the initial list has arrived (synced).
 */
import { makeInformer, type Informer, type KubeConfig, type KubernetesObject, type ObjectCache } from '@kubernetes/client-node';
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
    const listFn = async () => {
      // paged, so a large cluster never sends one huge response
      const list = await opts.client.list<KubeObject>(opts.resource, opts.namespace, { limit: 500, ...(opts.labelSelector ? { labelSelector: opts.labelSelector } : {}) });
      this.listed = true;
      this.backoffMs = opts.minBackoffMs ?? 100;
      return list as unknown as { apiVersion: string; kind: string; metadata: { resourceVersion?: string }; items: KubernetesObject[] };
    };
    this.informer = makeInformer<KubernetesObject>(opts.kc, path, listFn, opts.labelSelector);
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
