/**
 * The object store: resourceVersions, watch history, API write semantics (optimistic concurrency,
 * status subresource, generation, finalizers, owner-reference garbage collection).
 */
import { randomUUID } from 'node:crypto';
import type { Clock } from './clock.js';
import { clone, deepEqual } from './patch.js';
import { apiVersionOf, type Registry, type ResourceType } from './resources.js';
import { alreadyExists, ApiError, badRequest, conflict, expired, invalid, notFound } from './status.js';
import type { KubeObject } from './types.js';

export type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface StoreEvent {
  type: EventType;
  rv: number;
  t: ResourceType;
  obj: KubeObject;
  /** the object before a MODIFIED / DELETED */
  prev?: KubeObject;
}

export interface Watcher {
  t: ResourceType;
  namespace?: string;
  accepts(obj: KubeObject): boolean;
  send(type: EventType, obj: KubeObject): void;
}

export type Validator = (obj: KubeObject, old: KubeObject | undefined) => void;
export type Defaulter = (obj: KubeObject, old: KubeObject | undefined) => void;

export interface WriteOptions {
  /** which part of the object the write may change: everything (test hooks / controllers), the
   *  main resource (status kept), or the status subresource (only status taken) */
  scope?: 'all' | 'main' | 'status';
  dryRun?: boolean;
  /** skip the metadata.resourceVersion precondition (direct store writes) */
  force?: boolean;
  /** the metadata.managedFields the write leaves (HTTP writes: managed-fields.ts); [] removes them */
  managedFields?: unknown[];
}

export interface DeleteOptions {
  propagationPolicy?: 'Orphan' | 'Background' | 'Foreground';
  gracePeriodSeconds?: number;
  preconditions?: { uid?: string; resourceVersion?: string };
  dryRun?: boolean;
}

function key(t: ResourceType, ns: string | undefined, name: string): string {
  return `${t.group}|${t.resource}|${t.namespaced ? (ns ?? '') : ''}|${name}`;
}

function prefix(t: ResourceType, ns?: string): string {
  return `${t.group}|${t.resource}|${t.namespaced && ns ? ns + '|' : ''}`;
}

function now(): string {
  return new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
}

const NAME_RE = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

/** The part of an object that drives metadata.generation. */
function specPart(t: ResourceType, o: KubeObject): Record<string, unknown> {
  const rest: Record<string, unknown> = { ...o };
  delete rest.metadata;
  delete rest.apiVersion;
  delete rest.kind;
  if (t.statusSubresource) delete rest.status;
  return rest;
}

export class Store {
  rv = 0;
  /** watches from a resourceVersion older than this get 410 */
  private compactedRV = 0;
  private readonly objects = new Map<string, KubeObject>();
  private history: StoreEvent[] = [];
  readonly watchers = new Set<Watcher>();
  private readonly listeners: ((ev: StoreEvent) => void)[] = [];
  private readonly validators = new Map<ResourceType, Validator[]>();
  private readonly defaulters = new Map<ResourceType, Defaulter[]>();

  constructor(
    readonly registry: Registry,
    private readonly clock: Clock,
    private readonly watchHistory: number,
    private readonly requireNamespaces: boolean,
  ) {}

  /** Controllers observe every committed change (synchronously, after watchers). */
  onEvent(fn: (ev: StoreEvent) => void): void {
    this.listeners.push(fn);
  }

  addValidator(t: ResourceType, fn: Validator): void {
    this.validators.set(t, [...(this.validators.get(t) ?? []), fn]);
  }

  addDefaulter(t: ResourceType, fn: Defaulter): void {
    this.defaulters.set(t, [...(this.defaulters.get(t) ?? []), fn]);
  }

  // ---------------------------------------------------------------- reads

  get(t: ResourceType, ns: string | undefined, name: string): KubeObject | undefined {
    const o = this.objects.get(key(t, ns, name));
    return o ? clone(o) : undefined;
  }

  /** like get, without copying (internal read-only use) */
  peek(t: ResourceType, ns: string | undefined, name: string): KubeObject | undefined {
    return this.objects.get(key(t, ns, name));
  }

  list(t: ResourceType, ns?: string): KubeObject[] {
    const p = prefix(t, ns);
    const out: KubeObject[] = [];
    for (const [k, v] of this.objects) if (k.startsWith(p)) out.push(clone(v));
    return out.sort((a, b) =>
      `${a.metadata.namespace ?? ''}/${a.metadata.name}`.localeCompare(`${b.metadata.namespace ?? ''}/${b.metadata.name}`),
    );
  }

  private allObjects(): [ResourceType, KubeObject][] {
    const out: [ResourceType, KubeObject][] = [];
    for (const o of this.objects.values()) {
      const t = this.registry.byKind(o.apiVersion, o.kind);
      if (t) out.push([t, o]);
    }
    return out;
  }

  // ---------------------------------------------------------------- watch history

  /** Throws 410 when fromRV is older than the retained history. */
  checkWatchable(fromRV: number): void {
    const oldest = Math.max(this.compactedRV, this.rv - this.watchHistory);
    if (fromRV < oldest) {
      throw expired(`too old resource version: ${fromRV} (${oldest})`);
    }
  }

  /** Events after fromRV for a watcher (history must have been checked). */
  replay(w: Watcher, fromRV: number): void {
    for (const ev of this.history) if (ev.rv > fromRV) this.deliver(w, ev);
  }

  compact(): void {
    this.compactedRV = this.rv;
    this.history = [];
  }

  private deliver(w: Watcher, ev: StoreEvent): void {
    if (w.t !== ev.t) return;
    if (w.namespace && ev.obj.metadata.namespace !== w.namespace) return;
    const now = w.accepts(ev.obj);
    const before = ev.prev ? w.accepts(ev.prev) : false;
    if (ev.type === 'MODIFIED') {
      if (now && before) w.send('MODIFIED', ev.obj);
      else if (now) w.send('ADDED', ev.obj);
      else if (before) w.send('DELETED', ev.obj);
    } else if (now) w.send(ev.type, ev.obj);
  }

  private emit(type: EventType, t: ResourceType, obj: KubeObject, prev?: KubeObject): void {
    const ev: StoreEvent = { type, rv: this.rv, t, obj: clone(obj), prev: prev ? clone(prev) : undefined };
    this.history.push(ev);
    const floor = this.rv - this.watchHistory;
    if (this.history.length > 64 && (this.history[0]?.rv ?? floor) < floor) {
      this.history = this.history.filter((e) => e.rv >= floor);
    }
    for (const w of [...this.watchers]) this.deliver(w, ev);
    for (const l of this.listeners) l(ev);
  }

  // ---------------------------------------------------------------- writes

  private runAdmission(t: ResourceType, obj: KubeObject, old: KubeObject | undefined): void {
    for (const d of this.defaulters.get(t) ?? []) d(obj, old);
    for (const v of this.validators.get(t) ?? []) v(obj, old);
  }

  create(t: ResourceType, input: KubeObject, opts: { dryRun?: boolean; namespace?: string } = {}): KubeObject {
    const obj = clone(input);
    obj.apiVersion = apiVersionOf(t);
    obj.kind = t.kind;
    const meta = (obj.metadata = obj.metadata ?? {});
    if (t.namespaced) {
      const ns = opts.namespace ?? meta.namespace ?? 'default';
      if (meta.namespace && meta.namespace !== ns) {
        throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
      }
      meta.namespace = ns;
      if (this.requireNamespaces && !this.peek(this.registry.mustByKind('v1', 'Namespace'), undefined, ns)) {
        throw notFound('', 'namespaces', ns);
      }
      if (this.peek(this.registry.mustByKind('v1', 'Namespace'), undefined, ns)?.metadata.deletionTimestamp) {
        throw new ApiError(403, `${t.resource} "${meta.name ?? meta.generateName ?? ''}" is forbidden: unable to create new content in namespace ${ns} because it is being terminated`, 'Forbidden');
      }
    } else delete meta.namespace;
    if (!meta.name && meta.generateName) {
      do {
        meta.name = meta.generateName + Math.random().toString(36).slice(2, 7);
      } while (this.objects.has(key(t, meta.namespace, meta.name)));
    }
    if (!meta.name) {
      throw invalid(t.kind, t.group, '', [{ field: 'metadata.name', message: 'Required value: name or generateName is required', reason: 'FieldValueRequired' }]);
    }
    if (!NAME_RE.test(meta.name) || meta.name.length > 253) {
      throw invalid(t.kind, t.group, meta.name, [
        { field: 'metadata.name', message: `Invalid value: "${meta.name}": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character` },
      ]);
    }
    if (this.objects.has(key(t, meta.namespace, meta.name))) throw alreadyExists(t.group, t.resource, meta.name);
    meta.uid = randomUUID();
    meta.creationTimestamp = now();
    delete meta.deletionTimestamp;
    if (t.generation) meta.generation = 1;
    else delete meta.generation;
    this.runAdmission(t, obj, undefined);
    if (opts.dryRun) return obj;
    this.rv++;
    meta.resourceVersion = String(this.rv);
    this.objects.set(key(t, meta.namespace, meta.name), obj);
    this.emit('ADDED', t, obj);
    return clone(obj);
  }

  update(t: ResourceType, input: KubeObject, opts: WriteOptions & { namespace?: string; name?: string } = {}): KubeObject {
    const scope = opts.scope ?? 'all';
    const meta = input.metadata ?? {};
    const name = opts.name ?? meta.name;
    const ns = t.namespaced ? (opts.namespace ?? meta.namespace) : undefined;
    if (!name) throw badRequest('name is required for an update');
    if (meta.name && opts.name && meta.name !== opts.name) {
      throw badRequest(`the name of the object (${meta.name}) does not match the name on the URL (${opts.name})`);
    }
    if (t.namespaced && meta.namespace && opts.namespace && meta.namespace !== opts.namespace) {
      throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
    }
    const k = key(t, ns, name);
    const old = this.objects.get(k);
    if (!old) throw notFound(t.group, t.resource, name);
    if (!opts.force && meta.resourceVersion && meta.resourceVersion !== old.metadata.resourceVersion) {
      throw conflict(t.group, t.resource, name, 'the object has been modified; please apply your changes to the latest version and try again');
    }
    if (meta.uid && meta.uid !== old.metadata.uid) {
      throw conflict(t.group, t.resource, name, `Precondition failed: UID in precondition: ${meta.uid}, UID in object meta: ${old.metadata.uid}`);
    }
    let next: KubeObject;
    if (scope === 'status') {
      next = clone(old);
      if (input.status === undefined) delete next.status;
      else next.status = clone(input.status);
    } else {
      next = clone(input);
      next.apiVersion = apiVersionOf(t);
      next.kind = t.kind;
      next.metadata = clone(meta);
      if (scope === 'main' && t.statusSubresource) {
        if (old.status === undefined) delete next.status;
        else next.status = clone(old.status);
      }
      const m = next.metadata;
      m.name = name;
      if (t.namespaced) m.namespace = ns;
      else delete m.namespace;
      m.uid = old.metadata.uid;
      m.creationTimestamp = old.metadata.creationTimestamp;
      if (old.metadata.deletionTimestamp) m.deletionTimestamp = old.metadata.deletionTimestamp;
      else if (scope !== 'all') delete m.deletionTimestamp;
      if (t.generation) m.generation = old.metadata.generation;
      else delete m.generation;
    }
    if (opts.managedFields !== undefined) {
      if (opts.managedFields.length > 0) next.metadata.managedFields = clone(opts.managedFields) as never;
      else delete next.metadata.managedFields;
    }
    next.metadata.resourceVersion = old.metadata.resourceVersion;
    if (t.generation && !deepEqual(specPart(t, next), specPart(t, old))) {
      next.metadata.generation = (old.metadata.generation ?? 1) + 1;
    }
    this.runAdmission(t, next, old);
    if (deepEqual(next, old)) return clone(old);
    if (opts.dryRun) return next;
    // the last finalizer removed from an object being deleted: it goes now
    if (next.metadata.deletionTimestamp && !(next.metadata.finalizers?.length ?? 0)) {
      this.objects.set(k, next);
      this.remove(t, next);
      return clone(next);
    }
    this.rv++;
    next.metadata.resourceVersion = String(this.rv);
    this.objects.set(k, next);
    this.emit('MODIFIED', t, next, old);
    return clone(next);
  }

  /** DELETE semantics. Returns the object as deleted (or as marked for deletion) and whether it is gone. */
  delete(t: ResourceType, ns: string | undefined, name: string, opts: DeleteOptions = {}): { obj: KubeObject; gone: boolean } {
    const k = key(t, ns, name);
    const old = this.objects.get(k);
    if (!old) throw notFound(t.group, t.resource, name);
    const pre = opts.preconditions;
    if (pre?.uid && pre.uid !== old.metadata.uid) {
      throw conflict(t.group, t.resource, name, `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${old.metadata.uid}`);
    }
    if (pre?.resourceVersion && pre.resourceVersion !== old.metadata.resourceVersion) {
      throw conflict(t.group, t.resource, name, `Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${old.metadata.resourceVersion}`);
    }
    if (opts.dryRun) return { obj: clone(old), gone: true };
    const policy = opts.propagationPolicy ?? 'Background';
    if (policy === 'Orphan') this.orphanDependents(old);
    if (policy === 'Foreground') this.deleteDependentsNow(old);
    const isNamespace = t.group === '' && t.resource === 'namespaces';
    if ((old.metadata.finalizers?.length ?? 0) > 0 || isNamespace) {
      if (!old.metadata.deletionTimestamp) {
        const next = clone(old);
        next.metadata.deletionTimestamp = now();
        next.metadata.deletionGracePeriodSeconds = opts.gracePeriodSeconds ?? 30;
        if (isNamespace) next.status = { ...((next.status as object) ?? {}), phase: 'Terminating' };
        this.rv++;
        next.metadata.resourceVersion = String(this.rv);
        this.objects.set(k, next);
        this.emit('MODIFIED', t, next, old);
        if (isNamespace) this.clock.after(0, () => this.finishNamespace(t, name));
        return { obj: clone(next), gone: false };
      }
      return { obj: clone(old), gone: false };
    }
    this.remove(t, old);
    return { obj: clone(old), gone: true };
  }

  /** Remove unconditionally (after finalizers / grace). */
  remove(t: ResourceType, obj: KubeObject): void {
    const k = key(t, obj.metadata.namespace, obj.metadata.name ?? '');
    const cur = this.objects.get(k);
    if (!cur) return;
    this.objects.delete(k);
    this.rv++;
    const gone = clone(cur);
    gone.metadata.resourceVersion = String(this.rv);
    this.emit('DELETED', t, gone, cur);
    // background garbage collection of dependents
    const uid = cur.metadata.uid;
    if (uid) this.clock.after(0, () => this.collectOrphansOf(uid));
  }

  private finishNamespace(t: ResourceType, name: string): void {
    for (const [dt, o] of this.allObjects()) {
      if (dt.namespaced && o.metadata.namespace === name) {
        try {
          this.delete(dt, name, o.metadata.name ?? '');
        } catch {
          /* already gone */
        }
      }
    }
    const ns = this.peek(t, undefined, name);
    if (!ns) return;
    const remaining = this.allObjects().some(([dt, o]) => dt.namespaced && o.metadata.namespace === name);
    if (remaining) this.clock.after(5, () => this.finishNamespace(t, name));
    else if (!(ns.metadata.finalizers?.length ?? 0)) this.remove(t, ns);
  }

  private dependentsOf(uid: string): [ResourceType, KubeObject][] {
    return this.allObjects().filter(([, o]) => o.metadata.ownerReferences?.some((r) => r.uid === uid));
  }

  private uidExists(uid: string): boolean {
    for (const o of this.objects.values()) if (o.metadata.uid === uid) return true;
    return false;
  }

  private collectOrphansOf(uid: string): void {
    for (const [t, o] of this.dependentsOf(uid)) {
      const owners = o.metadata.ownerReferences ?? [];
      if (owners.every((r) => !this.uidExists(r.uid))) {
        try {
          this.delete(t, o.metadata.namespace, o.metadata.name ?? '');
        } catch {
          /* raced with another delete */
        }
      }
    }
  }

  private orphanDependents(owner: KubeObject): void {
    const uid = owner.metadata.uid ?? '';
    for (const [t, o] of this.dependentsOf(uid)) {
      const next = clone(o);
      next.metadata.ownerReferences = (o.metadata.ownerReferences ?? []).filter((r) => r.uid !== uid);
      if (next.metadata.ownerReferences.length === 0) delete next.metadata.ownerReferences;
      this.update(t, next, { force: true });
    }
  }

  private deleteDependentsNow(owner: KubeObject): void {
    for (const [t, o] of this.dependentsOf(owner.metadata.uid ?? '')) {
      try {
        this.delete(t, o.metadata.namespace, o.metadata.name ?? '', { propagationPolicy: 'Foreground' });
      } catch {
        /* gone already */
      }
    }
  }
}
