/**
 * A list+watch of ONE named object (the VM, its VMI, the media DataVolume), so status reads are
 * served from memory. The loop lists with a metadata.name field selector, then watches from the
 * list's resourceVersion; a normal server-side close re-watches from the last seen version, a 410
 * (history compacted) re-lists, and any error re-lists after an exponential backoff.
 *
 * `healthy` is true only while a watch stream is open after a successful list: callers read the
 * cache then, and fall back to a direct GET otherwise (so an outage is reported, not hidden).
 */
import type { Logger } from '../../common/logger.js';
import { errText, isKubeApiError, type KubeClient } from '../../kube/client.js';
import { resourcePath, type ResourceRef } from '../../kube/resources.js';
import type { KubeObjectBase } from '../../kube/types.js';
import { toBackendError } from './errors.js';

export interface ObjectWatchOptions<T> {
  client: KubeClient;
  logger: Logger;
  /** the watched object's resource and namespace */
  resource: ResourceRef;
  namespace: string;
  name: string;
  /** label for logs, e.g. "VirtualMachine" */
  kind: string;
  onChange: (obj: T | undefined) => void;
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

function rvNewer(a: string | undefined, b: string | undefined): boolean {
  // resourceVersions are opaque; etcd-backed servers use integers, so compare those and accept otherwise
  if (a === undefined || b === undefined) return true;
  if (/^\d+$/.test(a) && /^\d+$/.test(b)) return BigInt(a) >= BigInt(b);
  return true;
}

export class ObjectWatch<T extends KubeObjectBase> {
  current: T | undefined;
  /** the first list has completed */
  synced = false;
  /** a watch stream is open and the cache follows the server */
  healthy = false;
  /** the API group answered 404 (e.g. CDI not installed) */
  missing = false;

  private stopped = false;
  private abort: (() => void) | undefined;
  private sleepTimer: NodeJS.Timeout | undefined;
  private wake: (() => void) | undefined;
  private rv: string | undefined;
  private readonly syncWaiters: (() => void)[] = [];
  private readonly minBackoff: number;
  private readonly maxBackoff: number;
  private failures = 0;
  private openedAt: number | undefined;

  constructor(private readonly o: ObjectWatchOptions<T>) {
    this.minBackoff = o.minBackoffMs ?? 200;
    this.maxBackoff = o.maxBackoffMs ?? 10_000;
  }

  start(): void {
    void this.loop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.healthy = false;
    this.abort?.();
    if (this.sleepTimer) clearTimeout(this.sleepTimer);
    this.wake?.();
    for (const w of this.syncWaiters.splice(0)) w();
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

  /** Direct GET of the object; updates the cache. Throws KubeApiError on failure (404 → undefined). */
  async refresh(): Promise<T | undefined> {
    try {
      const obj = await this.o.client.get<T>(this.o.resource, this.o.namespace, this.o.name);
      this.applyObj(obj);
      return obj;
    } catch (e) {
      if (isKubeApiError(e, 404)) {
        this.applyObj(undefined);
        return undefined;
      }
      throw e;
    }
  }

  /** Use this object (from our own write's response) as the newest version. */
  offer(obj: T): void {
    this.applyObj(obj);
  }

  private applyObj(obj: T | undefined): void {
    // never step back: a direct GET may be ahead of the stream, whose older events then arrive
    if (obj && this.current && !rvNewer(obj.metadata?.resourceVersion, this.current.metadata?.resourceVersion)) return;
    const before = this.current;
    this.current = obj;
    if (before === obj) return;
    if (before && obj && before.metadata?.resourceVersion === obj.metadata?.resourceVersion && before.metadata?.uid === obj.metadata?.uid) {
      return;
    }
    this.o.onChange(obj);
  }

  private markSynced(): void {
    if (this.synced) return;
    this.synced = true;
    for (const w of this.syncWaiters.splice(0)) w();
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      try {
        const list = await this.o.client.list<T>(this.o.resource, this.o.namespace, { fieldSelector: `metadata.name=${this.o.name}` });
        if (this.stopped) return;
        this.missing = false;
        this.rv = list.metadata?.resourceVersion;
        const item = (list.items ?? []).find((i) => i.metadata?.name === this.o.name);
        this.applyObj(item);
        this.markSynced();
        // watch until an error or an expired history asks for a re-list
        for (;;) {
          const end = await this.watchOnce();
          if (this.stopped) return;
          if (end === 'expired') break;
          if (end instanceof Error || end !== 'closed') throw end;
        }
      } catch (e) {
        this.healthy = false;
        if (this.stopped) return;
        // a stream that stayed up a while ended the previous incident: back off from the start
        if (this.openedAt !== undefined && Date.now() - this.openedAt > 5_000) this.failures = 0;
        this.openedAt = undefined;
        this.failures++;
        // start-up does not wait for a failing API server: reads report it themselves
        for (const w of this.syncWaiters.splice(0)) w();
        if (isKubeApiError(e, 404)) {
          if (!this.missing) this.o.logger.warn({ kind: this.o.kind, path: resourcePath(this.o.resource, this.o.namespace) }, `${this.o.kind} API not found (404); will retry`);
          this.missing = true;
          this.markSynced();
        } else if (this.failures <= 3 || this.failures % 20 === 0) {
          const be = toBackendError(e, `watch ${this.o.kind}`, this.o.logger);
          this.o.logger.warn({ kind: this.o.kind, err: be.message, failures: this.failures }, 'watch failed; retrying');
        }
        const delay = Math.min(this.maxBackoff, this.minBackoff * 2 ** Math.min(this.failures - 1, 16));
        await this.sleep(delay * (0.8 + Math.random() * 0.4));
      }
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.wake = resolve;
      this.sleepTimer = setTimeout(resolve, ms);
    });
  }

  /** One watch stream; resolves with why it ended. */
  private watchOnce(): Promise<'closed' | 'expired' | Error> {
    return new Promise((resolve) => {
      let ended = false;
      const finish = (why: 'closed' | 'expired' | Error) => {
        if (ended) return;
        ended = true;
        this.healthy = false;
        this.abort?.();
        this.abort = undefined;
        resolve(why);
      };
      const onEvent = (type: string, obj: unknown) => {
        if (ended) return;
        const o = obj as T & { code?: number; message?: string };
        if (type === 'ERROR') {
          if (o.code === 410) finish('expired');
          else finish(new Error(`watch error event: ${o.message ?? JSON.stringify(obj)}`));
          return;
        }
        const rv = o.metadata?.resourceVersion;
        if (rv) this.rv = rv;
        if (type === 'BOOKMARK') return;
        if (o.metadata?.name !== this.o.name) return;
        // a deletion only removes the object it names (a direct GET may already hold its successor)
        if (type === 'DELETED') {
          if (!this.current || this.current.metadata?.uid === o.metadata?.uid) this.applyObj(undefined);
        }
        else if (type === 'ADDED' || type === 'MODIFIED') this.applyObj(o);
      };
      const onDone = (err: unknown) => {
        if (err && isKubeApiErrorLike(err, 410)) finish('expired');
        else if (err) finish(err instanceof Error ? err : new Error(errText(err)));
        else finish('closed');
      };
      this.o.client
        .watch(
          this.o.resource,
          this.o.namespace,
          {
            fieldSelector: `metadata.name=${this.o.name}`,
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
            this.healthy = true;
            this.openedAt = Date.now();
          },
          (e: unknown) => finish(e instanceof Error ? e : new Error(errText(e))),
        );
    });
  }
}

function isKubeApiErrorLike(e: unknown, status: number): boolean {
  return typeof e === 'object' && e !== null && (e as { statusCode?: number }).statusCode === status;
}
