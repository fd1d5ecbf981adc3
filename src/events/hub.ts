/**
 * The agent's one event source (issue 12): a bounded, typed stream of what happened to the machine
 * and its BMC. Power changes (also those made outside the BMC, seen through the backend), boot
 * override set/consumed, media inserted/ejected/failed, task state changes, logins and failed
 * logins, sessions opened/closed, backend outage and recovery, test events.
 *
 * Every event carries a Redfish MessageId of a DMTF registry we serve (ResourceEvent, TaskEvent,
 * Base, HeartbeatEvent), its severity, time and origin resource. Consumers:
 * - Redfish push subscriptions (src/events/subscriptions.ts) and SSE (src/redfish/resources/events.ts)
 * - the Manager EventLog (LogEntry collection) and the IPMI SEL (the same history)
 * - Kubernetes Events on the VirtualMachine (src/events/kube.ts) and agent metrics
 *
 * Bounds: the history keeps the last `historySize` events (Last-Event-ID resume, EventLog, SEL;
 * LogService OverWritePolicy "WrapsWhenFull"). Listeners are called synchronously and must only
 * enqueue: emitting never waits for a consumer, so no request path blocks on delivery.
 */
import { baseRegistry, heartbeatEventRegistry, resourceEventRegistry, taskEventRegistry, type MessageRegistryDocument } from '../../generated/redfish/registries.js';
import { perObject } from '../common/per-object.js';

export type EventSeverity = 'OK' | 'Warning' | 'Critical';

/** What the event is about, for consumers that map events onto other vocabularies (SEL, Kubernetes). */
export type EventKind =
  | 'power'
  | 'boot'
  | 'bootConsumed'
  | 'media'
  | 'mediaFailed'
  | 'task'
  | 'login'
  | 'loginFailed'
  | 'sessionClosed'
  | 'health'
  | 'test'
  | 'sel'
  /** the Redfish service started listening or is stopping (HeartbeatEvent RedfishServiceStarted, RedfishServiceShuttingDown) */
  | 'service'
  /**
   * a subscription's periodic RedfishServiceFunctional (EventDestination.SendHeartbeat): made by
   * src/events/subscriptions.ts for that one subscriber, never emitted on the hub (not logged)
   */
  | 'heartbeat';

export interface BmcEvent {
  /** Sequence number, 1, 2, ... (SSE `id:`, EventId, LogEntry Id) */
  readonly id: number;
  readonly time: Date;
  readonly kind: EventKind;
  /** "ResourceEvent" */
  readonly registryPrefix: string;
  /** "ResourceEvent.1.4.3.ResourcePoweredOn" */
  readonly messageId: string;
  readonly args: readonly string[];
  readonly message: string;
  readonly severity: EventSeverity;
  /** @odata.id of the resource the event is about */
  readonly origin: string;
  /** Redfish resource type of the origin ("ComputerSystem", "VirtualMedia", "Task", "Session", ...) */
  readonly resourceType: string;
  /** Where the action came from: "ipmi", "redfish", "backend" (changes seen on the platform), "agent" */
  readonly source?: string;
  /** Short CamelCase reason (Kubernetes Event reason), e.g. "PoweredOn" */
  readonly reason: string;
  /** Extra internal facts consumers may use (never secrets): session id, power state, SEL bytes */
  readonly detail?: Readonly<Record<string, string | number | boolean>>;
}

export type EventInput = Omit<BmcEvent, 'id' | 'time' | 'message' | 'severity' | 'registryPrefix' | 'messageId'> & {
  /** Registry key, e.g. "ResourcePoweredOn", in `registry` */
  key: string;
  registry?: RegistryPrefix;
  /** Overrides the registry's severity */
  severity?: EventSeverity;
  /** Overrides the registry's message text (e.g. a test event's message) */
  message?: string;
  /** A full MessageId from another registry entry (SubmitTestEvent may name one) */
  messageId?: string;
};

export type RegistryPrefix = 'ResourceEvent' | 'TaskEvent' | 'Base' | 'HeartbeatEvent';

/** The registries events come from (EventService.RegistryPrefixes, in this order), all served under /redfish/v1/Registries. */
export const REGISTRIES: Readonly<Record<RegistryPrefix, MessageRegistryDocument>> = {
  ResourceEvent: resourceEventRegistry,
  TaskEvent: taskEventRegistry,
  Base: baseRegistry,
  HeartbeatEvent: heartbeatEventRegistry,
};

export const fullId = (reg: MessageRegistryDocument, key: string): string => `${reg.RegistryPrefix}.${reg.RegistryVersion}.${key}`;

function render(template: string, args: readonly string[]): string {
  return template.replace(/%(\d+)/g, (m, n: string) => args[Number(n) - 1] ?? m);
}

/** Registry prefix of a full MessageId ("ResourceEvent.1.4.3.X" → "ResourceEvent"). */
export const prefixOf = (messageId: string): string => messageId.split('.')[0] ?? '';

export type EventListener = (event: BmcEvent) => void;

export interface EventHubOptions {
  now?: () => Date;
  /** Events kept for Last-Event-ID, the EventLog and the SEL (default 1000) */
  historySize?: number;
}

export const DEFAULT_HISTORY_SIZE = 1000;

export class EventHub {
  private readonly history: BmcEvent[] = [];
  private readonly listeners = new Set<EventListener>();
  private nextId = 1;
  /** Events with id ≤ logFloor are cleared from the EventLog and the SEL (ClearLog / Clear SEL) */
  private logFloor = 0;
  private lastClear: Date | undefined;
  private lastAdd: Date | undefined;
  readonly now: () => Date;
  readonly historySize: number;
  private closers: (() => void)[] = [];

  constructor(opts: EventHubOptions = {}) {
    this.now = opts.now ?? (() => new Date());
    this.historySize = opts.historySize ?? DEFAULT_HISTORY_SIZE;
  }

  /** Record an event and hand it to every listener; returns it. Never throws because of a listener. */
  emit(input: EventInput): BmcEvent {
    const reg = REGISTRIES[input.registry ?? 'ResourceEvent'];
    const def = reg.Messages[input.key];
    const messageId = input.messageId ?? fullId(reg, input.key);
    const args = input.args.map(String);
    const { key: _key, registry: _registry, ...rest } = input;
    const event: BmcEvent = {
      ...rest,
      id: this.nextId++,
      time: this.now(),
      registryPrefix: prefixOf(messageId),
      messageId,
      args,
      message: input.message ?? (def ? render(def.Message, args) : messageId),
      severity: input.severity ?? ((def?.MessageSeverity as EventSeverity | undefined) ?? 'OK'),
    };
    this.history.push(event);
    if (this.history.length > this.historySize) this.history.splice(0, this.history.length - this.historySize);
    this.lastAdd = event.time;
    for (const l of [...this.listeners]) {
      try {
        l(event);
      } catch {
        // a consumer's bug must not break the emitter (or other consumers)
      }
    }
    return event;
  }

  on(listener: EventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Events after `id` still in the history, oldest first (all kept ones for id 0). */
  since(id: number): BmcEvent[] {
    return this.history.filter((e) => e.id > id);
  }

  /** The oldest id the history still holds (resume from an older one misses events). */
  oldestId(): number | undefined {
    return this.history[0]?.id;
  }

  lastId(): number {
    return this.nextId - 1;
  }

  /** EventLog / SEL view: the history since the last clear, oldest first. */
  log(): BmcEvent[] {
    return this.history.filter((e) => e.id > this.logFloor);
  }

  /** Whether older log entries were overwritten since the last clear (SEL overflow flag). */
  logWrapped(): boolean {
    const oldest = this.history[0];
    return oldest !== undefined && oldest.id > this.logFloor + 1;
  }

  /** ClearLog / Clear SEL: empties the log view (SSE resume and subscriptions are unaffected). */
  clearLog(): void {
    this.logFloor = this.lastId();
    this.lastClear = this.now();
  }

  get lastClearTime(): Date | undefined {
    return this.lastClear;
  }

  get lastLogAddTime(): Date | undefined {
    const log = this.log();
    return log.length > 0 ? this.lastAdd : undefined;
  }

  /** Something to stop when the hub closes (machine bridge, health poll, Kubernetes recorder). */
  addCloser(fn: () => void): void {
    this.closers.push(fn);
  }

  close(): void {
    for (const c of this.closers.splice(0)) c();
    this.listeners.clear();
  }
}

const hubs = perObject<object, EventHub>(() => new EventHub());

/**
 * The event hub of a machine: the agent attaches one (attachEventHub) before its servers start; a
 * server started alone (tests) gets a fresh one on first use. Keyed by the machine so that IPMI and
 * Redfish share it without threading it through every layer.
 */
export function eventHubOf(machine: object): EventHub {
  return hubs.get(machine);
}

export function attachEventHub(machine: object, hub: EventHub): void {
  hubs.set(machine, hub);
}

/** The hub of a machine if one exists already (emitters that must not create one). */
export function existingEventHub(machine: object): EventHub | undefined {
  return hubs.peek(machine);
}
