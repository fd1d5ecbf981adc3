/**
 * Redfish push subscriptions (EventDestination, DSP0266 "Eventing"): the subscription list, its
 * persistence, and delivery to each subscriber.
 *
 * Delivery: each subscription has its own bounded queue (maxQueue events; the oldest is dropped
 * when full and counted). One POST at a time per subscriber, never on a request path: the hub's
 * listener only enqueues. A failed POST (no answer within the timeout, a non-2xx status, a refused
 * connection) is retried after DeliveryRetryIntervalSeconds, up to DeliveryRetryAttempts times;
 * then the subscription's DeliveryRetryPolicy decides (EventDestination.v1_16_0):
 * - SuspendRetries (our default): the subscription is suspended, Status.State "Disabled"; its
 *   queue stays bounded; PATCH Status/State "Enabled" (or ResumeSubscription) resumes it
 * - TerminateAfterRetries: the subscription is deleted
 * - RetryForever: the event stays at the head and is retried at the interval
 * - RetryForeverWithBackoff: the same with a doubling interval (capped at 32×)
 * A dead subscriber therefore costs at most maxQueue events of memory, whatever the event rate.
 *
 * Heartbeats (EventDestination.v1_11_0 SendHeartbeat, HeartbeatIntervalMinutes): a subscription
 * created with SendHeartbeat true gets the HeartbeatEvent registry's RedfishServiceFunctional every
 * HeartbeatIntervalMinutes. The schema: "the service shall periodically send the
 * RedfishServiceFunctional message ... to the subscriber"; the registry: it "shall only be sent if
 * specifically requested by an event destination during the creation of a subscription". So a
 * heartbeat is made for that one subscriber, not emitted on the hub: no other subscriber, no SSE
 * stream ("shall not apply to ... SSE"), no EventLog entry gets it, and the subscriber's own
 * filters (RegistryPrefixes, ResourceTypes, ...) do not apply, since it asked for it by name. It
 * goes through the subscriber's queue like any event (same payload format, same retries and
 * DeliveryRetryPolicy, so a dead destination is found by its heartbeats too). One timer per such
 * subscription, cleared when it is deleted or the manager closes; none while it is suspended
 * (a late "the service is functional" says nothing), at most one heartbeat waits in a queue.
 */
import { heartbeatEventRegistry } from '../../generated/redfish/registries.js';
import { odataTypes } from '../../generated/redfish/routes.js';
import { fullId, type BmcEvent } from './hub.js';

export type DeliveryRetryPolicy = 'TerminateAfterRetries' | 'SuspendRetries' | 'RetryForever' | 'RetryForeverWithBackoff';
export const DELIVERY_RETRY_POLICIES: readonly DeliveryRetryPolicy[] = ['TerminateAfterRetries', 'SuspendRetries', 'RetryForever', 'RetryForeverWithBackoff'];

/** What is stored (and persisted) about a subscription. */
export interface SubscriptionRecord {
  id: string;
  destination: string;
  context?: string;
  /** Who created it (a user may delete their own subscriptions) */
  owner: string;
  registryPrefixes?: string[];
  excludeRegistryPrefixes?: string[];
  messageIds?: string[];
  resourceTypes?: string[];
  originResources?: string[];
  subordinateResources?: boolean;
  /** Write-only: sent with every POST, never shown (they often hold credentials) */
  httpHeaders?: Record<string, string>;
  deliveryRetryPolicy: DeliveryRetryPolicy;
  /** EventDestination.SendHeartbeat (set on creation only: the property is read-only) */
  sendHeartbeat?: boolean;
  /** EventDestination.HeartbeatIntervalMinutes, 1..65535 (the schema's Validation.Minimum/Maximum) */
  heartbeatIntervalMinutes?: number;
  /** Enabled, or Disabled when suspended */
  state: 'Enabled' | 'Disabled';
  createdAt: string;
}

export interface SubscriptionPersistence {
  load(): Promise<SubscriptionRecord[]>;
  save(records: readonly SubscriptionRecord[]): Promise<void>;
  /** Where it keeps them, for docs/logs ("memory", "file /x", "ConfigMap ns/name") */
  readonly where: string;
}

export class MemoryPersistence implements SubscriptionPersistence {
  readonly where = 'memory';
  private records: SubscriptionRecord[] = [];
  async load(): Promise<SubscriptionRecord[]> {
    return this.records.map((r) => ({ ...r }));
  }
  async save(records: readonly SubscriptionRecord[]): Promise<void> {
    this.records = records.map((r) => ({ ...r }));
  }
}

export interface EventServiceSettings {
  serviceEnabled: boolean;
  deliveryRetryAttempts: number;
  deliveryRetryIntervalSeconds: number;
}

export const DEFAULT_SETTINGS: EventServiceSettings = { serviceEnabled: true, deliveryRetryAttempts: 3, deliveryRetryIntervalSeconds: 5 };
export const MAX_SUBSCRIPTIONS = 32;
export const DEFAULT_MAX_QUEUE = 256;
export const DELIVERY_TIMEOUT_MS = 10_000;
/** EventDestination.HeartbeatIntervalMinutes bounds (Validation.Minimum 1, Validation.Maximum 65535) */
export const HEARTBEAT_MINUTES_MIN = 1;
export const HEARTBEAT_MINUTES_MAX = 65_535;
/** The interval when SendHeartbeat is true and HeartbeatIntervalMinutes is not given (the schema names no default) */
export const DEFAULT_HEARTBEAT_MINUTES = 10;
const MINUTE_MS = 60_000;
const HEARTBEAT_MESSAGE = 'RedfishServiceFunctional';
/** A subscription's URI: the OriginOfCondition of its heartbeats (it is what asked for them) */
const subscriptionOrigin = (id: string): string => `/redfish/v1/EventService/Subscriptions/${encodeURIComponent(id)}`;

/** Whether a heartbeat interval is one the schema allows. */
export const validHeartbeatMinutes = (n: unknown): n is number => Number.isInteger(n) && (n as number) >= HEARTBEAT_MINUTES_MIN && (n as number) <= HEARTBEAT_MINUTES_MAX;

export interface DeliveryHooks {
  delivered?(sub: SubscriptionRecord, events: number, ms: number): void;
  failed?(sub: SubscriptionRecord, reason: string): void;
  dropped?(sub: SubscriptionRecord, n: number): void;
  suspended?(sub: SubscriptionRecord): void;
}

export interface SubscriptionManagerOptions {
  persistence?: SubscriptionPersistence;
  /** Waits between retries; injectable so tests need no wall-clock waits */
  sleep?: (ms: number) => Promise<void>;
  /** POSTs one payload; default: fetch with a timeout. Resolves the HTTP status or rejects. */
  post?: (url: string, headers: Record<string, string>, body: string) => Promise<number>;
  maxQueue?: number;
  maxSubscriptions?: number;
  hooks?: DeliveryHooks;
  now?: () => Date;
  onError?: (msg: string, err: unknown) => void;
  /**
   * The service's paths for this machine's resources in a text (an origin, a payload's JSON):
   * a shared agent serves them under the system's ids (src/redfish/core/tenancy.ts tenantPaths),
   * so OriginResources filters and delivered payloads use those. Default: unchanged.
   */
  paths?: (text: string) => string;
  /**
   * How long the agent's stop waits for the last events (RedfishServiceShuttingDown) to reach the
   * subscribers that are taking events (settle); default SHUTDOWN_SETTLE_MS.
   */
  shutdownSettleMs?: number;
}

/** settle()'s default bound: well inside a pod's default 30 s termination grace period */
export const SHUTDOWN_SETTLE_MS = 2_000;

const defaultSleep = (ms: number): Promise<void> =>
  new Promise((resolve) => {
    setTimeout(resolve, ms).unref();
  });

async function defaultPost(url: string, headers: Record<string, string>, body: string): Promise<number> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { ...headers, 'Content-Type': 'application/json' },
    body,
    redirect: 'manual',
    signal: AbortSignal.timeout(DELIVERY_TIMEOUT_MS),
  });
  await res.arrayBuffer().catch(() => undefined);
  return res.status;
}

/** Does `event` pass the subscription's filters? (DSP0266 / EventDestination properties) */
export function matches(sub: SubscriptionRecord, event: BmcEvent): boolean {
  if (event.kind === 'test') return true; // SubmitTestEvent reaches every subscriber
  if (sub.registryPrefixes?.length && !sub.registryPrefixes.includes(event.registryPrefix)) return false;
  if (sub.excludeRegistryPrefixes?.includes(event.registryPrefix)) return false;
  if (sub.messageIds?.length) {
    const short = `${event.registryPrefix}.${event.messageId.split('.').pop() ?? ''}`;
    if (!sub.messageIds.some((m) => m === event.messageId || m === short)) return false;
  }
  if (sub.resourceTypes?.length && !sub.resourceTypes.includes(event.resourceType)) return false;
  if (sub.originResources?.length) {
    const ok = sub.originResources.some((o) => o === event.origin || (sub.subordinateResources === true && event.origin.startsWith(`${o}/`)));
    if (!ok) return false;
  }
  return true;
}

/**
 * EventId of an event: its sequence number, which is also its LogEntry Id; a heartbeat, in no log
 * and numbered apart, is `Heartbeat<n>` so that the two never collide.
 */
export const eventIdOf = (e: BmcEvent): string => (e.kind === 'heartbeat' ? `Heartbeat${e.id}` : String(e.id));

/** Event.v1_13_0 payload with the given events (one per POST today). */
export function eventPayload(events: readonly BmcEvent[], context: string | undefined, id: string): Record<string, unknown> {
  return {
    '@odata.type': odataTypes.Event,
    Id: id,
    Name: 'Event Array',
    ...(context !== undefined ? { Context: context } : {}),
    Events: events.map((e) => ({
      EventId: eventIdOf(e),
      EventTimestamp: e.time.toISOString(),
      EventType: 'Other',
      MemberId: String(e.id),
      MessageId: e.messageId,
      Message: e.message,
      MessageArgs: [...e.args],
      MessageSeverity: e.severity,
      Severity: e.severity,
      OriginOfCondition: { '@odata.id': e.origin },
      // a heartbeat is in no log: no LogEntry link that would not resolve
      ...(e.kind === 'heartbeat' ? {} : { LogEntry: { '@odata.id': `/redfish/v1/Managers/BMC/LogServices/EventLog/Entries/${e.id}` } }),
    })),
  };
}

interface Deliverer {
  queue: BmcEvent[];
  running: boolean;
  dropped: number;
  /** consecutive failures of the head event */
  failures: number;
  lastError?: string;
}

export class SubscriptionManager {
  private readonly subs = new Map<string, SubscriptionRecord>();
  private readonly deliverers = new Map<string, Deliverer>();
  /** The heartbeat timer of each subscription that sends heartbeats */
  private readonly heartbeats = new Map<string, NodeJS.Timeout>();
  private heartbeatSeq = 0;
  private readonly settleMs: number;
  /** settle() callers waiting for the queues to drain */
  private readonly idleWaiters = new Set<() => void>();
  private nextId = 1;
  settings: EventServiceSettings = { ...DEFAULT_SETTINGS };
  readonly persistence: SubscriptionPersistence;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly post: (url: string, headers: Record<string, string>, body: string) => Promise<number>;
  readonly maxQueue: number;
  readonly maxSubscriptions: number;
  private readonly hooks: DeliveryHooks;
  private readonly now: () => Date;
  private readonly onError: (msg: string, err: unknown) => void;
  private readonly paths: ((text: string) => string) | undefined;
  private saving: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(opts: SubscriptionManagerOptions = {}) {
    this.persistence = opts.persistence ?? new MemoryPersistence();
    this.sleep = opts.sleep ?? defaultSleep;
    this.post = opts.post ?? defaultPost;
    this.maxQueue = opts.maxQueue ?? DEFAULT_MAX_QUEUE;
    this.maxSubscriptions = opts.maxSubscriptions ?? MAX_SUBSCRIPTIONS;
    this.hooks = opts.hooks ?? {};
    this.now = opts.now ?? (() => new Date());
    this.onError = opts.onError ?? (() => undefined);
    this.paths = opts.paths;
    this.settleMs = opts.shutdownSettleMs ?? SHUTDOWN_SETTLE_MS;
  }

  /** Load persisted subscriptions (agent start). */
  async load(): Promise<void> {
    const records = await this.persistence.load();
    for (const r of records) {
      this.subs.set(r.id, r);
      const n = Number(r.id);
      if (Number.isInteger(n) && n >= this.nextId) this.nextId = n + 1;
      this.armHeartbeat(r);
    }
  }

  list(): SubscriptionRecord[] {
    return [...this.subs.values()];
  }

  get(id: string): SubscriptionRecord | undefined {
    return this.subs.get(id);
  }

  hasRoom(): boolean {
    return this.subs.size < this.maxSubscriptions;
  }

  async create(input: Omit<SubscriptionRecord, 'id' | 'createdAt' | 'state'>): Promise<SubscriptionRecord> {
    const rec: SubscriptionRecord = { ...input, id: String(this.nextId++), state: 'Enabled', createdAt: this.now().toISOString() };
    this.subs.set(rec.id, rec);
    this.armHeartbeat(rec);
    await this.persist();
    return rec;
  }

  async update(id: string, change: { context?: string; state?: 'Enabled' | 'Disabled'; deliveryRetryPolicy?: DeliveryRetryPolicy }): Promise<SubscriptionRecord | undefined> {
    const rec = this.subs.get(id);
    if (!rec) return undefined;
    if (change.context !== undefined) rec.context = change.context;
    if (change.deliveryRetryPolicy !== undefined) rec.deliveryRetryPolicy = change.deliveryRetryPolicy;
    if (change.state !== undefined && change.state !== rec.state) {
      rec.state = change.state;
      this.checkIdle();
      const d = this.deliverers.get(id);
      if (d) d.failures = 0;
      if (rec.state === 'Enabled') this.pump(rec);
    }
    await this.persist();
    return rec;
  }

  async remove(id: string): Promise<boolean> {
    const had = this.subs.delete(id);
    this.deliverers.delete(id);
    this.disarmHeartbeat(id);
    this.checkIdle();
    if (had) await this.persist();
    return had;
  }

  /** Queue state of a subscription (tests, metrics). */
  queueOf(id: string): { length: number; dropped: number; failures: number; lastError?: string } | undefined {
    const d = this.deliverers.get(id);
    if (!this.subs.has(id)) return undefined;
    return d ? { length: d.queue.length, dropped: d.dropped, failures: d.failures, ...(d.lastError ? { lastError: d.lastError } : {}) } : { length: 0, dropped: 0, failures: 0 };
  }

  /** Hand an event to every matching subscriber (enqueue only; returns at once). */
  publish(event: BmcEvent): void {
    if (this.closed || !this.settings.serviceEnabled) return;
    const seen = this.paths ? { ...event, origin: this.paths(event.origin) } : event;
    for (const sub of this.subs.values()) {
      if (!matches(sub, seen)) continue;
      this.enqueue(sub, event);
    }
  }

  /** How many heartbeat timers run (tests: none leaks). */
  get heartbeatTimers(): number {
    return this.heartbeats.size;
  }

  /**
   * Start the heartbeat timer of a subscription that asked for heartbeats. It ticks every minute
   * and sends on every HeartbeatIntervalMinutes-th tick: one timer whatever the interval, and no
   * interval beyond a Node timer's 2^31-1 ms (24.8 days; the schema allows 65535 minutes, 45.5 days).
   */
  private armHeartbeat(sub: SubscriptionRecord): void {
    this.disarmHeartbeat(sub.id);
    if (this.closed || sub.sendHeartbeat !== true) return;
    const minutes = sub.heartbeatIntervalMinutes ?? DEFAULT_HEARTBEAT_MINUTES;
    if (!validHeartbeatMinutes(minutes)) {
      // only a hand-edited state file gets here (POST checks the range)
      this.onError(`subscription ${sub.id}: HeartbeatIntervalMinutes ${String(minutes)} is not 1..65535; no heartbeats`, undefined);
      return;
    }
    let ticks = 0;
    const timer = setInterval(() => {
      if (++ticks < minutes) return;
      ticks = 0;
      this.heartbeat(sub);
    }, MINUTE_MS);
    timer.unref();
    this.heartbeats.set(sub.id, timer);
  }

  private disarmHeartbeat(id: string): void {
    const timer = this.heartbeats.get(id);
    if (timer === undefined) return;
    clearInterval(timer);
    this.heartbeats.delete(id);
  }

  /** Queue one RedfishServiceFunctional for this subscriber (see the module comment for when not). */
  private heartbeat(sub: SubscriptionRecord): void {
    if (this.closed || !this.settings.serviceEnabled || this.subs.get(sub.id) !== sub || sub.state !== 'Enabled') return;
    if (this.deliverers.get(sub.id)?.queue.some((e) => e.kind === 'heartbeat')) return;
    const def = heartbeatEventRegistry.Messages[HEARTBEAT_MESSAGE];
    const event: BmcEvent = {
      id: ++this.heartbeatSeq,
      time: this.now(),
      kind: 'heartbeat',
      registryPrefix: heartbeatEventRegistry.RegistryPrefix,
      messageId: fullId(heartbeatEventRegistry, HEARTBEAT_MESSAGE),
      args: [],
      message: def?.Message ?? 'Redfish service is functional.',
      severity: 'OK',
      origin: subscriptionOrigin(sub.id),
      resourceType: 'EventDestination',
      source: 'agent',
      reason: 'Heartbeat',
    };
    this.enqueue(sub, event);
  }

  private enqueue(sub: SubscriptionRecord, event: BmcEvent): void {
    let d = this.deliverers.get(sub.id);
    if (!d) {
      d = { queue: [], running: false, dropped: 0, failures: 0 };
      this.deliverers.set(sub.id, d);
    }
    d.queue.push(event);
    if (d.queue.length > this.maxQueue) {
      const n = d.queue.length - this.maxQueue;
      d.queue.splice(0, n);
      d.dropped += n;
      // a retry in progress was for the dropped head: start the count again for the new head
      d.failures = 0;
      this.hooks.dropped?.(sub, n);
    }
    this.pump(sub);
  }

  private pump(sub: SubscriptionRecord): void {
    const d = this.deliverers.get(sub.id);
    if (!d || d.running || sub.state !== 'Enabled') return;
    d.running = true;
    void this.run(sub, d).finally(() => {
      d.running = false;
      // events may have arrived while the loop was ending
      if (this.subs.get(sub.id) === sub && sub.state === 'Enabled' && d.queue.length > 0 && !this.closed) this.pump(sub);
    });
  }

  private async run(sub: SubscriptionRecord, d: Deliverer): Promise<void> {
    while (!this.closed && this.subs.get(sub.id) === sub && sub.state === 'Enabled' && d.queue.length > 0) {
      const event = d.queue[0] as BmcEvent;
      const json = JSON.stringify(eventPayload([event], sub.context, eventIdOf(event)));
      const body = this.paths ? this.paths(json) : json;
      const started = Date.now();
      let failure: string | undefined;
      try {
        const status = await this.post(sub.destination, sub.httpHeaders ?? {}, body);
        if (status < 200 || status > 299) failure = `HTTP ${status}`;
      } catch (e) {
        failure = e instanceof Error ? (e.name === 'TimeoutError' ? 'timeout' : e.message) : String(e);
      }
      if (failure === undefined) {
        if (d.queue[0] === event) d.queue.shift();
        d.failures = 0;
        delete d.lastError;
        this.hooks.delivered?.(sub, 1, Date.now() - started);
        this.checkIdle();
        continue;
      }
      d.failures++;
      d.lastError = failure;
      this.hooks.failed?.(sub, failure);
      this.checkIdle();
      const { deliveryRetryAttempts: attempts, deliveryRetryIntervalSeconds: interval } = this.settings;
      if (d.failures > attempts) {
        if (sub.deliveryRetryPolicy === 'SuspendRetries') {
          sub.state = 'Disabled';
          this.checkIdle();
          this.hooks.suspended?.(sub);
          await this.persist();
          return;
        }
        if (sub.deliveryRetryPolicy === 'TerminateAfterRetries') {
          await this.remove(sub.id);
          return;
        }
      }
      const factor = sub.deliveryRetryPolicy === 'RetryForeverWithBackoff' ? Math.min(32, 2 ** Math.max(0, d.failures - 1)) : 1;
      await this.sleep(interval * 1000 * factor);
    }
  }

  private persist(): Promise<void> {
    const snapshot = this.list().map((r) => ({ ...r }));
    this.saving = this.saving
      .then(() => this.persistence.save(snapshot))
      .catch((e: unknown) => this.onError(`could not save subscriptions (${this.persistence.where})`, e));
    return this.saving;
  }

  close(): void {
    this.closed = true;
    for (const id of [...this.heartbeats.keys()]) this.disarmHeartbeat(id);
    this.checkIdle();
  }

  /**
   * Resolves once no subscriber that is taking events has one waiting, or after `ms` (the agent's
   * stop: RedfishServiceShuttingDown is emitted, then this, then the servers close). Not waited
   * for: a suspended subscription, and one whose head event has failed (its retries would outlast
   * any grace period; it is the destination that is gone). At once when nothing is waiting, so a
   * stop without subscribers costs no timer.
   */
  settle(ms = this.settleMs): Promise<void> {
    if (this.closed || !this.busy()) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.idleWaiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.idleWaiters.add(done);
    });
  }

  private busy(): boolean {
    for (const sub of this.subs.values()) {
      if (sub.state !== 'Enabled') continue;
      const d = this.deliverers.get(sub.id);
      if (d !== undefined && d.queue.length > 0 && d.failures === 0) return true;
    }
    return false;
  }

  private checkIdle(): void {
    if (this.idleWaiters.size === 0 || (!this.closed && this.busy())) return;
    for (const done of [...this.idleWaiters]) done();
  }
}
