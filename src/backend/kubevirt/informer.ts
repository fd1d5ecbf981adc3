/**
 * A list+watch of ONE named object (the VM, its VMI, the media DataVolume), so status reads are
 * served from memory. The loop lists with a metadata.name field selector, then watches from the
 * list's resourceVersion; a normal server-side close re-watches from the last seen version, a 410
 * (history compacted) re-lists, and any error re-lists after an exponential backoff.
 *
 * `healthy` is true only while a watch stream is open after a successful list AND the stream is
 * known to be alive: callers read the cache then, and fall back to a direct GET otherwise (so an
 * outage is reported, not hidden).
 *
 * A stream can die silently (a stopped API server, a proxy that keeps the socket open but forwards
 * nothing): no error, no close, just nothing. The watch asks for bookmarks, which kube-apiserver
 * sends roughly once a minute on a quiet stream (and 2 s before the watch's timeout), so silence
 * shorter than a minute proves nothing. After `silenceProbeMs` (default 30 s) without an event or
 * bookmark, the watch checks the server with a direct list (the client's request timeout, 10 s):
 *  - no answer: the stream is dead. It is aborted, the client is marked unreachable (requests fail
 *    fast) and the loop re-lists. Worst case from the last sign of life: 30 + 10 = 40 s < 45 s.
 *  - an answer showing a newer object than the cache: the stream missed a change; the answer is
 *    applied and the watch re-opened from the list's resourceVersion.
 *  - an answer matching the cache: the stream is merely quiet; it is kept and checked again
 *    30 s later. After `maxSilenceMs` (default 90 s, one and a half bookmark periods) without any
 *    bookmark it is re-opened anyway: a server that stopped sending bookmarks is not trusted.
 * While the client reports the API unreachable, the stream is closed and the loop retries at most
 * `staleRetryMs` (default 1 s) apart, and at once when the client sees the API answer again, so
 * recovery after an outage takes about a second, not the stacked 10 s maximum backoff.
 */
import type { Logger } from '../../common/logger.js';
import { errText, isKubeApiError, type KubeClient } from '../../kube/client.js';
import { resourcePath, type ResourceRef } from '../../kube/resources.js';
import type { KubeObjectBase } from '../../kube/types.js';
import { toBackendError } from './errors.js';

/** What the list+watch loop needs, whether it follows one object or a namespace's objects. */
export interface ListWatchOptions {
  client: KubeClient;
  logger: Logger;
  /** the watched resource and namespace */
  resource: ResourceRef;
  namespace: string;
  /** label for logs, e.g. "VirtualMachine" */
  kind: string;
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** check the server after this long without an event or bookmark (ms), default 30000 */
  silenceProbeMs?: number;
  /** re-open a stream that sent no event or bookmark for this long, even if checks pass (ms), default 90000 */
  maxSilenceMs?: number;
  /** the longest retry delay while the API server is unreachable (ms), default 1000 */
  staleRetryMs?: number;
}

export interface ObjectWatchOptions<T> extends ListWatchOptions {
  name: string;
  onChange: (obj: T | undefined) => void;
}

/**
 * One object as the machine reads it: a cache that follows the server while `healthy`, a direct
 * GET (`refresh`) otherwise, and our own writes' answers (`offer`). ObjectWatch is one (a watch
 * of its own); src/backend/kubevirt/shared-informer.ts hands out others (one watch per namespace
 * shared by many objects).
 */
export interface ObjectSource<T extends KubeObjectBase> {
  readonly current: T | undefined;
  readonly synced: boolean;
  readonly healthy: boolean;
  readonly missing: boolean;
  readonly unhealthySince: Date | undefined;
  readonly lastError: string | undefined;
  readonly confirmedAt: Date | undefined;
  readonly kind: string;
  start(): void;
  stop(): Promise<void>;
  waitSynced(timeoutMs: number): Promise<void>;
  refresh(): Promise<T | undefined>;
  offer(obj: T): void;
}

/** Makes the object sources of a machine (its VM, VMI, media DataVolumes). */
export type ObjectSourceFactory = <T extends KubeObjectBase>(o: ObjectWatchOptions<T>) => ObjectSource<T>;

/** The default: a watch of its own per object. */
export const ownWatch: ObjectSourceFactory = (o) => new ObjectWatch(o);

export const DEFAULT_SILENCE_PROBE_MS = 30_000;
export const DEFAULT_MAX_SILENCE_MS = 90_000;
export const DEFAULT_STALE_RETRY_MS = 1_000;
/** a watch that ends normally sooner than this without any event counts as a failure (client-go: 1 s) */
export const VERY_SHORT_WATCH_MS = 1_000;

function rvNewer(a: string | undefined, b: string | undefined): boolean {
  // resourceVersions are opaque; etcd-backed servers use integers, so compare those and accept otherwise
  if (a === undefined || b === undefined) return true;
  if (/^\d+$/.test(a) && /^\d+$/.test(b)) return BigInt(a) >= BigInt(b);
  return true;
}

/**
 * The list+watch loop (re-list on 410, backoff, silence checks, reachability), for one object
 * (ObjectWatch) or for every object of a namespace (shared-informer.ts NamespaceWatch). Subclasses
 * say what to select and how to apply a list and an event.
 */
export abstract class ListWatch<T extends KubeObjectBase> {
  /** the first list has completed */
  synced = false;
  /** a watch stream is open and the cache follows the server */
  healthy = false;
  /** the API group answered 404 (e.g. CDI not installed) */
  missing = false;

  protected stopped = false;
  private abort: (() => void) | undefined;
  private sleepTimer: NodeJS.Timeout | undefined;
  private wake: (() => void) | undefined;
  private rv: string | undefined;
  private readonly syncWaiters: (() => void)[] = [];
  private readonly minBackoff: number;
  private readonly maxBackoff: number;
  private failures = 0;
  private openedAt: number | undefined;
  private readonly silenceProbeMs: number;
  private readonly maxSilenceMs: number;
  private readonly staleRetryMs: number;
  /** ends the open stream from outside (silence, unreachable API) */
  private endStream: ((why: 'closed' | Error) => void) | undefined;
  private unsubscribe: (() => void) | undefined;
  /** when the last event or bookmark arrived (or the stream opened) */
  private lastActivity = 0;
  /** when the watch last stopped following the server (undefined while healthy) */
  unhealthySince: Date | undefined = new Date();
  /** why, when known */
  lastError: string | undefined;
  /** when the server last confirmed the cached object (a list, a GET, an event or bookmark) */
  confirmedAt: Date | undefined;

  get kind(): string {
    return this.lw.kind;
  }

  private listOpts(): { fieldSelector?: string } {
    return this.selector !== undefined ? { fieldSelector: this.selector } : {};
  }

  /** the list/watch field selector (undefined: the whole namespace) */
  protected abstract readonly selector: string | undefined;
  /** apply a full list (the items the selector matched) */
  protected abstract applyList(items: T[]): void;
  /** apply one watch event */
  protected abstract applyEvent(type: 'ADDED' | 'MODIFIED' | 'DELETED', obj: T): void;
  /** a silence check's list against the cache: did the stream miss a change? */
  protected abstract missedIn(items: T[]): boolean;

  constructor(protected readonly lw: ListWatchOptions) {
    const o = lw;
    this.minBackoff = o.minBackoffMs ?? 200;
    this.maxBackoff = o.maxBackoffMs ?? 10_000;
    this.silenceProbeMs = o.silenceProbeMs ?? DEFAULT_SILENCE_PROBE_MS;
    this.maxSilenceMs = Math.max(o.maxSilenceMs ?? DEFAULT_MAX_SILENCE_MS, this.silenceProbeMs);
    this.staleRetryMs = o.staleRetryMs ?? DEFAULT_STALE_RETRY_MS;
  }

  start(): void {
    // a client that tells reachability (the agent's): follow it
    const c = this.lw.client as Partial<Pick<KubeClient, 'onReachability'>>;
    this.unsubscribe = c.onReachability?.call(this.lw.client, (r) => {
      if (!r.reachable) this.endStream?.(new Error(`Kubernetes API unreachable: ${r.reason ?? 'no answer'}`));
      else this.wake?.();
    });
    void this.loop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.setHealthy(false);
    this.unsubscribe?.();
    // end the open stream the way the loop sees it (its silence check timer goes with it: no
    // request after stop), then abort the connection
    this.endStream?.('closed');
    this.abort?.();
    if (this.sleepTimer) clearTimeout(this.sleepTimer);
    this.wake?.();
    for (const w of this.syncWaiters.splice(0)) w();
  }

  private setHealthy(on: boolean): void {
    if (on === this.healthy) return;
    this.healthy = on;
    this.unhealthySince = on ? undefined : new Date();
    if (on) this.lastError = undefined;
  }

  private unreachable(): boolean {
    const c = this.lw.client as Partial<Pick<KubeClient, 'reachability'>>;
    return c.reachability?.reachable === false;
  }

  /** Resolves after the first list attempt (successful or not), or after timeoutMs. */
  waitSynced(timeoutMs: number): Promise<void> {
    if (this.synced || this.stopped || this.failures > 0) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(resolve, timeoutMs);
      this.syncWaiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  private markSynced(): void {
    if (this.synced) return;
    this.synced = true;
    for (const w of this.syncWaiters.splice(0)) w();
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      try {
        const list = await this.lw.client.list<T>(this.lw.resource, this.lw.namespace, this.listOpts());
        if (this.stopped) return;
        this.missing = false;
        this.rv = list.metadata?.resourceVersion;
        this.applyList(list.items ?? []);
        this.confirmedAt = new Date();
        this.markSynced();
        // watch until an error or an expired history asks for a re-list
        for (;;) {
          const end = await this.watchOnce();
          if (this.stopped) return;
          if (end === 'expired') break;
          if (end instanceof Error || end !== 'closed') throw end;
        }
      } catch (e) {
        this.setHealthy(false);
        this.lastError = e instanceof Error ? e.message : String(e);
        if (this.stopped) return;
        // a stream that stayed up a while ended the previous incident: back off from the start
        if (this.openedAt !== undefined && Date.now() - this.openedAt > 5_000) this.failures = 0;
        this.openedAt = undefined;
        this.failures++;
        // start-up does not wait for a failing API server: reads report it themselves
        for (const w of this.syncWaiters.splice(0)) w();
        if (isKubeApiError(e, 404)) {
          if (!this.missing) this.lw.logger.warn({ kind: this.lw.kind, path: resourcePath(this.lw.resource, this.lw.namespace) }, `${this.lw.kind} API not found (404); will retry`);
          this.missing = true;
          this.markSynced();
        } else if (this.failures <= 3 || this.failures % 20 === 0) {
          const be = toBackendError(e, `watch ${this.lw.kind}`, this.lw.logger);
          this.lw.logger.warn({ kind: this.lw.kind, err: be.message, failures: this.failures }, 'watch failed; retrying');
        }
        let delay = Math.min(this.maxBackoff, this.minBackoff * 2 ** Math.min(this.failures - 1, 16));
        // while the API is known down, the client's probe watches it: retry often, and at once when it is back
        if (this.unreachable()) delay = Math.min(delay, this.staleRetryMs);
        await this.sleep(delay * (0.8 + Math.random() * 0.4));
      }
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        if (this.sleepTimer) clearTimeout(this.sleepTimer);
        this.sleepTimer = undefined;
        this.wake = undefined;
        resolve();
      };
      this.wake = done;
      this.sleepTimer = setTimeout(done, ms);
    });
  }

  /**
   * The open stream has been silent for silenceProbeMs: ask the server directly. Resolves with
   * what to do with the stream.
   */
  private async checkSilentStream(): Promise<'keep' | 'rewatch' | Error> {
    let list;
    try {
      list = await this.lw.client.list<T>(this.lw.resource, this.lw.namespace, { ...this.listOpts(), probe: true });
    } catch (e) {
      if (isKubeApiError(e) && e.status > 0) return 'keep'; // the server answers; the stream may be fine
      const why = e instanceof Error ? e.message : String(e);
      // the check went unanswered: the client knows it now (fail fast), whatever it had seen before
      const c = this.lw.client as Partial<Pick<KubeClient, 'noteUnreachable'>>;
      c.noteUnreachable?.call(this.lw.client, `no watch event or bookmark for ${this.lw.kind} in ${Math.round((Date.now() - this.lastActivity) / 1000)} s, and a check got no answer: ${why}`);
      return new Error(`watch stream silent and the API server does not answer: ${why}`);
    }
    const items = list.items ?? [];
    this.confirmedAt = new Date();
    if (this.missedIn(items)) {
      this.lw.logger.warn({ kind: this.lw.kind }, 'the watch stream missed a change (it went silent); re-watching');
      this.applyList(items);
      this.rv = list.metadata?.resourceVersion ?? this.rv;
      return 'rewatch';
    }
    if (Date.now() - this.lastActivity >= this.maxSilenceMs) {
      this.lw.logger.warn(
        { kind: this.lw.kind, silentMs: Date.now() - this.lastActivity },
        'no watch event or bookmark for too long although the API server answers; re-opening the watch',
      );
      this.rv = list.metadata?.resourceVersion ?? this.rv;
      return 'rewatch';
    }
    return 'keep';
  }

  /** One watch stream; resolves with why it ended. */
  private watchOnce(): Promise<'closed' | 'expired' | Error> {
    return new Promise((resolve) => {
      let ended = false;
      let silenceTimer: NodeJS.Timeout | undefined;
      let checking = false;
      let events = 0;
      const finish = (why: 'closed' | 'expired' | Error) => {
        if (ended) return;
        ended = true;
        this.setHealthy(false);
        if (why instanceof Error) this.lastError = why.message;
        if (silenceTimer) clearTimeout(silenceTimer);
        this.endStream = undefined;
        this.abort?.();
        this.abort = undefined;
        resolve(why);
      };
      this.endStream = finish;
      const armSilence = (ms: number): void => {
        if (silenceTimer) clearTimeout(silenceTimer);
        silenceTimer = setTimeout(onSilence, ms);
        silenceTimer.unref?.();
      };
      const onSilence = (): void => {
        silenceTimer = undefined;
        if (ended || checking) return;
        const quiet = Date.now() - this.lastActivity;
        if (quiet < this.silenceProbeMs) {
          armSilence(this.silenceProbeMs - quiet);
          return;
        }
        checking = true;
        void this.checkSilentStream().then((verdict) => {
          checking = false;
          if (ended) return;
          if (verdict === 'keep') armSilence(this.silenceProbeMs);
          else if (verdict === 'rewatch') finish('closed');
          else finish(verdict);
        });
      };
      const onEvent = (type: string, obj: unknown) => {
        if (ended) return;
        events++;
        this.lastActivity = Date.now();
        this.confirmedAt = new Date(this.lastActivity);
        const o = obj as T & { code?: number; message?: string };
        if (type === 'ERROR') {
          if (o.code === 410) finish('expired');
          else finish(new Error(`watch error event: ${o.message ?? JSON.stringify(obj)}`));
          return;
        }
        const rv = o.metadata?.resourceVersion;
        if (rv) this.rv = rv;
        if (type === 'BOOKMARK') return;
        if (type === 'ADDED' || type === 'MODIFIED' || type === 'DELETED') this.applyEvent(type, o);
      };
      const onDone = (err: unknown) => {
        if (err && isKubeApiErrorLike(err, 410)) finish('expired');
        else if (err) finish(err instanceof Error ? err : new Error(errText(err)));
        else if (Date.now() - requested < VERY_SHORT_WATCH_MS && events === 0) {
          // closed at once with nothing said (a proxy or server that ends every watch): re-watching
          // straight away would spin; back off and re-list as client-go's reflector does
          // (k8s.io/client-go tools/cache/reflector.go handleAnyWatch, VeryShortWatchError)
          finish(new Error(`very short watch: the ${this.lw.kind} watch closed within ${VERY_SHORT_WATCH_MS} ms without an event`));
        } else finish('closed');
      };
      const requested = Date.now();
      this.lw.client
        .watch(
          this.lw.resource,
          this.lw.namespace,
          {
            ...this.listOpts(),
            resourceVersion: this.rv,
            allowWatchBookmarks: true,
            timeoutSeconds: 240 + Math.floor(Math.random() * 120),
          },
          onEvent,
          onDone,
        )
        .then(
          (abort) => {
            // ended or stopped before the stream opened: close it now, nothing else will
            if (ended || this.stopped) {
              abort();
              finish('closed');
              return;
            }
            this.abort = abort;
            this.setHealthy(true);
            this.openedAt = Date.now();
            this.lastActivity = Date.now();
            armSilence(this.silenceProbeMs);
          },
          (e: unknown) => finish(e instanceof Error ? e : new Error(errText(e))),
        );
    });
  }
}

/** A list+watch of ONE named object (fieldSelector metadata.name): the default object source. */
export class ObjectWatch<T extends KubeObjectBase> extends ListWatch<T> implements ObjectSource<T> {
  current: T | undefined;
  /** counts the changes of `current` (a GET's 404 is applied only if none came while it ran) */
  private applied = 0;
  protected readonly selector: string;

  constructor(private readonly o: ObjectWatchOptions<T>) {
    super(o);
    this.selector = `metadata.name=${o.name}`;
  }

  /** Direct GET of the object; updates the cache. Throws KubeApiError on failure (404 → undefined). */
  async refresh(): Promise<T | undefined> {
    const seen = this.applied;
    try {
      const obj = await this.o.client.get<T>(this.o.resource, this.o.namespace, this.o.name);
      this.applyObj(obj);
      this.confirmedAt = new Date();
      return obj;
    } catch (e) {
      if (isKubeApiError(e, 404)) {
        // A 404 carries no resourceVersion, so it cannot be ordered against what arrived while it
        // was under way (a watch event, our own create's answer): then it may be the older news,
        // and the cache keeps what it has (the stream delivers a deletion itself).
        if (this.applied === seen) this.applyObj(undefined);
        this.confirmedAt = new Date();
        return undefined;
      }
      throw e;
    }
  }

  /** Use this object (from our own write's response) as the newest version. */
  offer(obj: T): void {
    this.applyObj(obj);
  }

  protected applyList(items: T[]): void {
    this.applyObj(items.find((i) => i.metadata?.name === this.o.name));
  }

  protected applyEvent(type: 'ADDED' | 'MODIFIED' | 'DELETED', o: T): void {
    if (o.metadata?.name !== this.o.name) return;
    // a deletion only removes the object it names (a direct GET may already hold its successor)
    if (type === 'DELETED') {
      if (!this.current || this.current.metadata?.uid === o.metadata?.uid) this.applyObj(undefined);
    } else this.applyObj(o);
  }

  protected missedIn(items: T[]): boolean {
    return missedChange(items.find((i) => i.metadata?.name === this.o.name), this.current);
  }

  private applyObj(obj: T | undefined): void {
    const r = applyNewer(this.current, obj);
    if (!r.moved) return;
    this.current = obj;
    this.applied++;
    if (r.notify) this.o.onChange(obj);
  }
}

/**
 * Whether a server copy (`item`) shows a change the cache (`cur`) missed: present/absent, another
 * uid or resourceVersion, unless the cache is ahead (our own write's answer).
 */
export function missedChange<T extends KubeObjectBase>(item: T | undefined, cur: T | undefined): boolean {
  const differs =
    (item === undefined) !== (cur === undefined) ||
    (item !== undefined && cur !== undefined && (item.metadata?.uid !== cur.metadata?.uid || item.metadata?.resourceVersion !== cur.metadata?.resourceVersion));
  if (differs && item && cur && item.metadata?.uid === cur.metadata?.uid && !rvNewer(item.metadata?.resourceVersion, cur.metadata?.resourceVersion)) return false;
  return differs;
}

/**
 * Replacing `before` with `obj` in a cache: never step back (a direct GET may be ahead of the
 * stream, whose older events then arrive). `moved`: the cache takes obj; `notify`: it is news
 * (not the same uid and resourceVersion again).
 */
export function applyNewer<T extends KubeObjectBase>(before: T | undefined, obj: T | undefined): { moved: boolean; notify: boolean } {
  if (obj && before && !rvNewer(obj.metadata?.resourceVersion, before.metadata?.resourceVersion)) return { moved: false, notify: false };
  if (before === obj) return { moved: false, notify: false };
  const same = before !== undefined && obj !== undefined && before.metadata?.resourceVersion === obj.metadata?.resourceVersion && before.metadata?.uid === obj.metadata?.uid;
  return { moved: true, notify: !same };
}

function isKubeApiErrorLike(e: unknown, status: number): boolean {
  if (isKubeApiError(e, status)) return true;
  return typeof e === 'object' && e !== null && (e as { statusCode?: number }).statusCode === status;
}
