/**
 * Shared watches for shared mode (issue 16, docs/scale.md): ONE list+watch per (resource,
 * namespace) for all the VMs a process serves, instead of one per VM. Each machine still sees a
 * single-object ObjectSource (the same interface as ObjectWatch), so src/backend/kubevirt/machine.ts
 * runs unchanged over either.
 *
 * The namespace watch runs the same loop as ObjectWatch (informer.ts ListWatch: re-list on 410,
 * backoff, silence checks, reachability), without a field selector. It keeps only the objects of
 * names someone subscribed to (the namespace may hold many VMs this process does not serve: their
 * events are decoded and dropped, nothing else is kept). A name subscribed after the first list is
 * filled by one direct GET; until then its view reads as not healthy, so the machine GETs itself.
 * The watch starts with its first subscriber and stops with its last.
 */
import type { KubeObjectBase } from '../../kube/types.js';
import { isKubeApiError } from '../../kube/client.js';
import { resourcePath } from '../../kube/resources.js';
import { applyNewer, ListWatch, missedChange, ObjectWatch, type ListWatchOptions, type ObjectSource, type ObjectSourceFactory, type ObjectWatchOptions } from './informer.js';

class NamedView<T extends KubeObjectBase> implements ObjectSource<T> {
  constructor(
    private readonly nw: NamespaceWatch<T>,
    readonly name: string,
    readonly kind: string,
    readonly onChange: (obj: T | undefined) => void,
  ) {}
  get current(): T | undefined {
    return this.nw.items.get(this.name);
  }
  get synced(): boolean {
    return this.nw.synced;
  }
  get healthy(): boolean {
    return this.nw.healthy && this.nw.primed.has(this.name);
  }
  get missing(): boolean {
    return this.nw.missing;
  }
  get unhealthySince(): Date | undefined {
    return this.nw.unhealthySince;
  }
  get lastError(): string | undefined {
    return this.nw.lastError;
  }
  get confirmedAt(): Date | undefined {
    return this.nw.confirmedAt;
  }
  start(): void {
    this.nw.subscribe(this);
  }
  async stop(): Promise<void> {
    await this.nw.release(this);
  }
  waitSynced(timeoutMs: number): Promise<void> {
    return this.nw.waitSynced(timeoutMs);
  }
  refresh(): Promise<T | undefined> {
    return this.nw.refresh(this.name);
  }
  offer(obj: T): void {
    this.nw.apply(this.name, obj);
  }
}

/** Every object of one resource in one namespace, kept for the subscribed names only. */
export class NamespaceWatch<T extends KubeObjectBase> extends ListWatch<T> {
  protected readonly selector = undefined;
  readonly items = new Map<string, T>();
  /** names whose cache entry follows the server (a list or GET since they were subscribed) */
  readonly primed = new Set<string>();
  private readonly subs = new Map<string, Set<NamedView<T>>>();
  /** per-name change counters (a GET's 404 is applied only if nothing came while it ran) */
  private readonly applied = new Map<string, number>();
  private started = false;

  constructor(
    o: ListWatchOptions,
    private readonly onIdle: () => void,
  ) {
    super(o);
  }

  get subscribers(): number {
    let n = 0;
    for (const s of this.subs.values()) n += s.size;
    return n;
  }

  subscribe(v: NamedView<T>): void {
    let set = this.subs.get(v.name);
    const fresh = !set;
    if (!set) this.subs.set(v.name, (set = new Set()));
    set.add(v);
    if (!this.started) {
      this.started = true;
      this.start();
    } else if (fresh && this.synced) {
      // joined after the list: one GET fills it (the view reads as unhealthy until then)
      void this.refresh(v.name).catch(() => undefined);
    }
  }

  async release(v: NamedView<T>): Promise<void> {
    const set = this.subs.get(v.name);
    if (!set?.delete(v)) return;
    if (set.size === 0) {
      this.subs.delete(v.name);
      this.items.delete(v.name);
      this.primed.delete(v.name);
      this.applied.delete(v.name);
    }
    if (this.subs.size === 0) {
      this.onIdle();
      await this.stop();
    }
  }

  async refresh(name: string): Promise<T | undefined> {
    const seen = this.applied.get(name) ?? 0;
    try {
      const obj = await this.lw.client.get<T>(this.lw.resource, this.lw.namespace, name);
      this.apply(name, obj);
      if (this.subs.has(name)) this.primed.add(name);
      this.confirmedAt = new Date();
      return obj;
    } catch (e) {
      if (isKubeApiError(e, 404)) {
        if ((this.applied.get(name) ?? 0) === seen) this.apply(name, undefined);
        if (this.subs.has(name)) this.primed.add(name);
        this.confirmedAt = new Date();
        return undefined;
      }
      throw e;
    }
  }

  apply(name: string, obj: T | undefined): void {
    const subs = this.subs.get(name);
    if (!subs) return; // nobody here serves it: not kept
    const r = applyNewer(this.items.get(name), obj);
    if (!r.moved) return;
    if (obj) this.items.set(name, obj);
    else this.items.delete(name);
    this.applied.set(name, (this.applied.get(name) ?? 0) + 1);
    if (!r.notify) return;
    for (const v of [...subs]) {
      try {
        v.onChange(obj);
      } catch (e) {
        this.lw.logger.warn({ kind: this.lw.kind, name, err: e instanceof Error ? e.message : String(e) }, 'watch subscriber threw');
      }
    }
  }

  protected applyList(items: T[]): void {
    const byName = new Map<string, T>();
    for (const i of items) if (i.metadata?.name !== undefined) byName.set(i.metadata.name, i);
    for (const name of [...this.subs.keys()]) {
      this.apply(name, byName.get(name));
      this.primed.add(name);
    }
  }

  protected applyEvent(type: 'ADDED' | 'MODIFIED' | 'DELETED', o: T): void {
    const name = o.metadata?.name;
    if (name === undefined || !this.subs.has(name)) return;
    if (type === 'DELETED') {
      const cur = this.items.get(name);
      if (!cur || cur.metadata?.uid === o.metadata?.uid) this.apply(name, undefined);
    } else this.apply(name, o);
  }

  protected missedIn(items: T[]): boolean {
    const byName = new Map<string, T>();
    for (const i of items) if (i.metadata?.name !== undefined) byName.set(i.metadata.name, i);
    for (const name of this.subs.keys()) if (missedChange(byName.get(name), this.items.get(name))) return true;
    return false;
  }

  view(name: string, kind: string, onChange: (obj: T | undefined) => void): ObjectSource<T> {
    return new NamedView(this, name, kind, onChange);
  }
}

/**
 * The object sources of all machines of one process: the resources in `shared` (the VM and VMI)
 * through one NamespaceWatch per namespace, anything else (media DataVolumes) by a watch of its
 * own. `watchOptions` (backoff, silence bounds) apply to the shared watches; the per-machine
 * options of the first subscriber do not.
 */
export class SharedWatches {
  private readonly watches = new Map<string, NamespaceWatch<KubeObjectBase>>();
  /** how many namespace watches were ever created (tests, metrics) */
  created = 0;

  constructor(
    private readonly shared: readonly { group: string; plural: string }[],
    private readonly watchOptions: Omit<ListWatchOptions, 'resource' | 'namespace' | 'kind'>,
  ) {}

  /** The ObjectSourceFactory machines take (KubeVirtMachineConfig.watchSource). */
  readonly factory: ObjectSourceFactory = <T extends KubeObjectBase>(o: ObjectWatchOptions<T>): ObjectSource<T> => {
    if (!this.shared.some((r) => r.group === o.resource.group && r.plural === o.resource.plural)) return new ObjectWatch(o);
    const key = resourcePath(o.resource, o.namespace);
    let nw = this.watches.get(key) as NamespaceWatch<T> | undefined;
    if (!nw) {
      const created: NamespaceWatch<T> = new NamespaceWatch<T>(
        { ...this.watchOptions, resource: o.resource, namespace: o.namespace, kind: `${o.resource.kind} (namespace ${o.namespace})` },
        () => {
          if (this.watches.get(key) === (created as unknown)) this.watches.delete(key);
        },
      );
      nw = created;
      this.watches.set(key, nw as unknown as NamespaceWatch<KubeObjectBase>);
      this.created++;
    }
    return nw.view(o.name, o.kind, o.onChange);
  };

  /** Namespace watches running now. */
  get size(): number {
    return this.watches.size;
  }

  async close(): Promise<void> {
    const all = [...this.watches.values()];
    this.watches.clear();
    await Promise.all(all.map((w) => w.stop()));
  }
}
