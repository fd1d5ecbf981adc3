/**
 * KubeVirt mode: the agent's events as Kubernetes Events on the VirtualMachine (what `kubectl
 * describe vm` shows), and the Redfish subscriptions kept in a ConfigMap.
 *
 * Events follow client-go's EventRecorder (k8s.io/client-go/tools/record/event.go and
 * events_cache.go):
 * - core/v1 Event named `<vm>.<hex nanoseconds>`, involvedObject the VM (with its uid when it can
 *   be read), source.component and reportingComponent `virtbmc`, reportingInstance the pod name;
 * - the same (object, type, reason, message) again within the cache's life is not a new object:
 *   the existing Event gets count+1 and a new lastTimestamp by PATCH (EventLogger.eventObserve);
 * - more than 10 events with the same (object, type, reason) but different messages within 10
 *   minutes are combined into one "(combined from similar events): <message>" (EventAggregator);
 * - a token bucket per object (burst 25, one more every 5 minutes: spamFilter defaults) drops the
 *   rest, so a flapping VM cannot flood the API server;
 * - writes go one at a time from a bounded queue and never block the emitter; failures are logged
 *   at debug level and dropped. Messages come from the registry texts and our own arguments: never
 *   a password, token or URL query string.
 * Which events: power changes (On/Off/Paused, not the transitions), boot override set/consumed,
 * media inserted/ejected/failed, task ends, backend outage/recovery, failed logins.
 */
import type { Logger } from '../common/logger.js';
import type { KubeClient } from '../kube/client.js';
import { isKubeApiError } from '../kube/client.js';
import { Resources } from '../kube/resources.js';
import type { KubeObject } from '../kube/types.js';
import type { BmcEvent, EventHub } from './hub.js';
import type { SubscriptionPersistence, SubscriptionRecord } from './subscriptions.js';

export const COMPONENT = 'virtbmc';
const AGGREGATE_MAX = 10;
const AGGREGATE_WINDOW_MS = 10 * 60_000;
const SPAM_BURST = 25;
const SPAM_REFILL_MS = 5 * 60_000;
const CACHE_SIZE = 4096;
const MAX_QUEUE = 256;

/** The ConfigMap holding a VM's Redfish subscriptions (src/kube/names.ts: the controller's Role names it too). */
export { eventsConfigMapName } from '../kube/names.js';

type Client = Pick<KubeClient, 'create' | 'mergePatch' | 'get'>;

export interface KubeEventRecorderOptions {
  client: Client;
  namespace: string;
  vmName: string;
  /** Pod name (reportingInstance); default $HOSTNAME */
  instance?: string;
  logger: Logger;
  now?: () => Date;
}

interface Cached {
  name: string;
  count: number;
  first: string;
}

/** What goes to Kubernetes: type, reason, message of an event, or undefined to skip it. */
export function kubeEventOf(e: BmcEvent): { type: 'Normal' | 'Warning'; reason: string; message: string } | undefined {
  const type = e.severity === 'OK' ? 'Normal' : 'Warning';
  switch (e.kind) {
    case 'power':
      if (!['On', 'Off', 'Paused'].includes(String(e.detail?.to))) return undefined;
      return { type, reason: e.reason, message: `Power is ${String(e.detail?.to)} (${e.message})` };
    case 'boot':
      return { type, reason: e.reason, message: `Boot override set: ${e.args[1] ?? ''} (${String(e.detail?.enabled ?? '')}, ${String(e.detail?.mode ?? '')})` };
    case 'bootConsumed':
    case 'media':
    case 'health':
      return { type, reason: e.reason, message: e.message };
    case 'mediaFailed':
      return { type: 'Warning', reason: e.reason, message: `Virtual media ${String(e.detail?.slot ?? '')}: ${e.args[1] ?? 'insert failed'}` };
    case 'task':
      if (e.detail?.state === 'Running' || e.detail?.state === 'New') return undefined;
      return { type: e.messageId.endsWith('TaskAborted') ? 'Warning' : 'Normal', reason: e.reason, message: e.message };
    case 'loginFailed':
      return { type: 'Warning', reason: e.reason, message: `Failed ${e.source === 'ipmi' ? 'IPMI' : 'Redfish'} login${e.detail?.user ? ` for ${String(e.detail.user)}` : ''}${e.detail?.address ? ` from ${String(e.detail.address)}` : ''}` };
    default:
      return undefined;
  }
}

const stamp = (d: Date): string => d.toISOString().replace(/\.\d+Z$/, 'Z');

export class KubeEventRecorder {
  private readonly cache = new Map<string, Cached>();
  private readonly similar = new Map<string, { times: number[]; cached?: Cached }>();
  private tokens = SPAM_BURST;
  private refilledAt: number;
  private readonly queue: (() => Promise<void>)[] = [];
  private running = false;
  private uid: string | undefined;
  private uidTried = false;
  private readonly now: () => Date;
  private readonly instance: string;
  /** Written, patched, dropped (bucket or queue), failed: for tests and metrics */
  readonly stats = { created: 0, patched: 0, dropped: 0, failed: 0 };
  private idle: (() => void)[] = [];

  constructor(private readonly opts: KubeEventRecorderOptions) {
    this.now = opts.now ?? (() => new Date());
    this.instance = opts.instance ?? process.env.HOSTNAME ?? COMPONENT;
    this.refilledAt = this.now().getTime();
  }

  /** Record every fitting event of `hub`; returns the unsubscribe function. */
  attach(hub: EventHub): () => void {
    const off = hub.on((e) => {
      const k = kubeEventOf(e);
      if (k) this.record(k.type, k.reason, k.message);
    });
    hub.addCloser(off);
    return off;
  }

  private takeToken(): boolean {
    const now = this.now().getTime();
    const gained = Math.floor((now - this.refilledAt) / SPAM_REFILL_MS);
    if (gained > 0) {
      this.tokens = Math.min(SPAM_BURST, this.tokens + gained);
      this.refilledAt += gained * SPAM_REFILL_MS;
    }
    if (this.tokens <= 0) return false;
    this.tokens--;
    return true;
  }

  record(type: 'Normal' | 'Warning', reason: string, message: string): void {
    const msg = message.slice(0, 1024);
    if (!this.takeToken() || this.queue.length >= MAX_QUEUE) {
      this.stats.dropped++;
      return;
    }
    const nowMs = this.now().getTime();
    // EventAggregator: many similar events (same reason, other messages) become one
    const simKey = `${type}/${reason}`;
    const sim = this.similar.get(simKey) ?? { times: [] };
    sim.times = sim.times.filter((t) => nowMs - t < AGGREGATE_WINDOW_MS);
    sim.times.push(nowMs);
    this.similar.set(simKey, sim);
    let key = `${type}/${reason}/${msg}`;
    let text = msg;
    if (sim.times.length > AGGREGATE_MAX) {
      key = `${simKey}/(combined)`;
      text = `(combined from similar events): ${msg}`;
    }
    this.queue.push(() => this.write(key, type, reason, text));
    void this.pump();
  }

  private async pump(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      while (this.queue.length > 0) await (this.queue.shift() as () => Promise<void>)();
    } finally {
      this.running = false;
      for (const f of this.idle.splice(0)) f();
    }
  }

  /** Resolves once every queued write has been attempted (tests). */
  flushed(): Promise<void> {
    if (!this.running && this.queue.length === 0) return Promise.resolve();
    return new Promise((r) => this.idle.push(r));
  }

  private async vmUid(): Promise<string | undefined> {
    if (this.uidTried) return this.uid;
    this.uidTried = true;
    try {
      const vm = await this.opts.client.get<KubeObject>(Resources.vm, this.opts.namespace, this.opts.vmName);
      this.uid = vm.metadata?.uid;
    } catch {
      // events still name the VM
    }
    return this.uid;
  }

  private async write(key: string, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
    const { client, namespace, vmName, logger } = this.opts;
    const now = this.now();
    const ts = stamp(now);
    const cached = this.cache.get(key);
    try {
      if (cached) {
        cached.count++;
        try {
          await client.mergePatch(Resources.event, namespace, cached.name, { count: cached.count, lastTimestamp: ts, message });
          this.stats.patched++;
          this.touch(key, cached);
          return;
        } catch (e) {
          if (!isKubeApiError(e, 404)) throw e;
          this.cache.delete(key); // expired on the server (TTL): start again
        }
      }
      const uid = await this.vmUid();
      const name = `${vmName}.${(BigInt(now.getTime()) * 1_000_000n + BigInt(this.stats.created % 1_000_000)).toString(16)}`;
      const body = {
        apiVersion: 'v1',
        kind: 'Event',
        metadata: { name, namespace },
        involvedObject: { apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachine', name: vmName, namespace, ...(uid ? { uid } : {}) },
        type,
        reason,
        message,
        count: 1,
        firstTimestamp: ts,
        lastTimestamp: ts,
        source: { component: COMPONENT },
        reportingComponent: COMPONENT,
        reportingInstance: this.instance,
      };
      await client.create(Resources.event, namespace, body as unknown as KubeObject);
      this.stats.created++;
      this.touch(key, { name, count: 1, first: ts });
    } catch (e) {
      this.stats.failed++;
      logger.debug({ err: e instanceof Error ? e.message : String(e), reason }, 'could not record a Kubernetes event');
    }
  }

  private touch(key: string, c: Cached): void {
    this.cache.delete(key);
    this.cache.set(key, c);
    if (this.cache.size > CACHE_SIZE) this.cache.delete(this.cache.keys().next().value as string);
  }
}

export interface ConfigMapPersistenceOptions {
  client: Pick<KubeClient, 'get' | 'create' | 'replace'>;
  namespace: string;
  name: string;
  /** The VirtualMachineBMC owning the ConfigMap (garbage-collected with it) */
  owner?: { apiVersion: string; kind: string; name: string; uid: string };
}

const DATA_KEY = 'subscriptions.json';

/**
 * Subscriptions in a ConfigMap `<vm>-virtbmc-events` (get/update by name; created on the first
 * save, owned by the VMBMC when the controller told the agent its uid). HttpHeaders are kept too
 * (they may hold a destination's credentials): docs/events.md says so; whoever may read ConfigMaps
 * in the namespace may read them.
 */
export class ConfigMapPersistence implements SubscriptionPersistence {
  readonly where: string;
  private resourceVersion: string | undefined;
  private exists = false;
  constructor(private readonly opts: ConfigMapPersistenceOptions) {
    this.where = `ConfigMap ${opts.namespace}/${opts.name}`;
  }

  async load(): Promise<SubscriptionRecord[]> {
    try {
      const cm = await this.opts.client.get<KubeObject & { data?: Record<string, string> }>({ group: '', version: 'v1', plural: 'configmaps', namespaced: true, kind: 'ConfigMap' }, this.opts.namespace, this.opts.name);
      this.exists = true;
      this.resourceVersion = cm.metadata?.resourceVersion;
      const text = cm.data?.[DATA_KEY];
      if (!text) return [];
      const doc = JSON.parse(text) as { subscriptions?: SubscriptionRecord[] };
      return Array.isArray(doc.subscriptions) ? doc.subscriptions : [];
    } catch (e) {
      if (isKubeApiError(e, 404)) return [];
      throw e;
    }
  }

  async save(records: readonly SubscriptionRecord[]): Promise<void> {
    const ref = { group: '', version: 'v1', plural: 'configmaps', namespaced: true, kind: 'ConfigMap' } as const;
    const body = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: {
        name: this.opts.name,
        namespace: this.opts.namespace,
        labels: { 'app.kubernetes.io/managed-by': 'virtbmc', 'app.kubernetes.io/component': 'events' },
        ...(this.opts.owner ? { ownerReferences: [{ ...this.opts.owner, controller: false, blockOwnerDeletion: false }] } : {}),
        ...(this.resourceVersion ? { resourceVersion: this.resourceVersion } : {}),
      },
      data: { [DATA_KEY]: JSON.stringify({ subscriptions: records }) },
    };
    const res = this.exists
      ? await this.opts.client.replace<KubeObject>(ref, this.opts.namespace, this.opts.name, body as unknown as KubeObject)
      : await this.opts.client.create<KubeObject>(ref, this.opts.namespace, body as unknown as KubeObject);
    this.exists = true;
    this.resourceVersion = res.metadata?.resourceVersion;
  }
}
