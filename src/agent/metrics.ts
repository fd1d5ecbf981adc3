/**
 * Prometheus metrics of the agent (issue 12), in their own registry: requests by protocol,
 * operation and status with latency histograms, active IPMI/Redfish sessions, failed logins,
 * backend call latency and errors, event deliveries and failures, SSE clients, events by registry.
 *
 * The protocol layers reach the metrics through the machine (metricsOf), like the event hub, so
 * each needs one call: the Redfish app (observeRequest per response, the session count), the IPMI
 * engine (instrumentIpmiCommands over its command table). Served on a listener of its own
 * (startMetricsServer): off unless --metrics-port is given, 127.0.0.1 unless --metrics-address
 * says otherwise. Labels never carry user input beyond the route's operationId or the command's
 * name (no paths, no query strings, no user names).
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { AgentEvents } from '../events/index.js';
import type { DeliveryHooks } from '../events/subscriptions.js';
import type { ProtocolMeter } from '../common/metrics.js';

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

type Labels = Record<string, string>;
/** What a scope needs of a prom-client metric: remove one series (every metric type has it). */
interface Removable {
  remove(labels: Labels): void;
}

/**
 * The meter of one system: every series it writes carries its `system` label (shared mode) or no
 * extra label (the per-VM agent's own scope). A removable scope remembers the label sets it wrote,
 * so dispose() removes exactly its series (a bounded number: operations × statuses) and nothing of
 * another system's.
 */
export class MetricsScope implements ProtocolMeter {
  private readonly written = new Map<Removable, Map<string, Labels>>();
  private readonly sessionCounters = new Map<string, () => number>();
  private agentEvents: AgentEvents | undefined;
  private offEvents: (() => void) | undefined;
  private disposed = false;
  /** instrumentMachine's meter (src/agent/metrics-server.ts BackendMeter) */
  readonly backendErrors: { inc(labels: { call: string; code: string }): void };
  readonly backendDuration: { observe(labels: { call: string }, seconds: number): void };

  constructor(
    private readonly m: AgentMetrics,
    private readonly base: Labels,
    private readonly removable: boolean,
  ) {
    this.backendErrors = { inc: (l) => this.m.backendErrors.inc(this.labels(this.m.backendErrors, l)) };
    this.backendDuration = { observe: (l, sec) => this.m.backendDuration.observe(this.labels(this.m.backendDuration, l), sec) };
  }

  /** The labels with this scope's, remembered for dispose() (after dispose: a throwaway series is not written) */
  private labels<L extends Labels>(metric: Removable, l: L): L {
    const all = (Object.keys(this.base).length === 0 ? l : { ...this.base, ...l }) as L;
    if (this.removable) {
      let seen = this.written.get(metric);
      if (!seen) this.written.set(metric, (seen = new Map()));
      const key = JSON.stringify(all);
      if (!seen.has(key)) seen.set(key, all);
    }
    return all;
  }

  observe(protocol: string, operation: string, status: string, seconds: number): void {
    if (this.disposed) return;
    this.m.requests.inc(this.labels(this.m.requests, { protocol, operation, status }));
    this.m.requestDuration.observe(this.labels(this.m.requestDuration, { protocol, operation }), seconds);
  }

  setSessionCounter(protocol: string, count: () => number): void {
    if (!this.disposed) this.sessionCounters.set(protocol, count);
  }

  /** Hooks for the subscription manager (src/events/subscriptions.ts). */
  deliveryHooks(): DeliveryHooks {
    const d = this.m.deliveries;
    const inc = (result: string, n = 1): void => {
      if (!this.disposed) d.inc(this.labels(d, { result }), n);
    };
    return {
      delivered: (_s, n, ms) => {
        inc('delivered', n);
        if (!this.disposed) this.m.deliveryDuration.observe(this.labels(this.m.deliveryDuration, {}), ms / 1000);
      },
      failed: () => inc('failed'),
      dropped: (_s, n) => inc('dropped', n),
      suspended: () => inc('suspended'),
    };
  }

  /** Count events and failed logins, and read the SSE/subscription gauges from `ev`. */
  watchEvents(ev: AgentEvents): void {
    this.agentEvents = ev;
    const off = ev.hub.on((e) => {
      if (this.disposed) return;
      this.m.events.inc(this.labels(this.m.events, { registry: e.registryPrefix, severity: e.severity }));
      if (e.kind === 'loginFailed') this.m.loginFailures.inc(this.labels(this.m.loginFailures, { protocol: e.source ?? 'unknown' }));
    });
    this.offEvents = off;
    ev.hub.addCloser(off);
  }

  /** Called by the gauges at scrape time. */
  collect(): void {
    const b = this.base;
    for (const [protocol, count] of this.sessionCounters) this.m.sessions.set({ ...b, protocol }, count());
    if (!this.agentEvents) return;
    this.m.sseClients.set(b, this.agentEvents.sseClients);
    const list = this.agentEvents.subscriptions.list();
    this.m.subscriptions.set({ ...b, state: 'Enabled' }, list.filter((x) => x.state === 'Enabled').length);
    this.m.subscriptions.set({ ...b, state: 'Disabled' }, list.filter((x) => x.state === 'Disabled').length);
  }

  /** Removes every series of this scope; later observations are dropped. */
  dispose(): void {
    this.disposed = true;
    this.offEvents?.();
    for (const [metric, sets] of this.written) for (const l of sets.values()) metric.remove(l);
    this.written.clear();
    for (const protocol of this.sessionCounters.keys()) this.m.sessions.remove({ ...this.base, protocol });
    this.sessionCounters.clear();
    if (this.agentEvents) {
      this.m.sseClients.remove(this.base);
      for (const state of ['Enabled', 'Disabled']) this.m.subscriptions.remove({ ...this.base, state });
    }
    this.agentEvents = undefined;
  }
}

export class AgentMetrics implements ProtocolMeter {
  readonly registry = new Registry();
  /** `system` is the first label of every series (shared mode), or absent (per-VM agent) */
  readonly systemLabel: boolean;
  readonly requests: Counter<string>;
  readonly requestDuration: Histogram<string>;
  readonly sessions: Gauge<string>;
  readonly loginFailures: Counter<string>;
  readonly backendDuration: Histogram<string>;
  readonly backendErrors: Counter<string>;
  readonly events: Counter<string>;
  readonly deliveries: Counter<string>;
  readonly deliveryDuration: Histogram<string>;
  readonly sseClients: Gauge<string>;
  readonly subscriptions: Gauge<string>;
  /** the agent's own scope: per-VM, or the shared agent's requests no system answered (system="") */
  private readonly root: MetricsScope;
  private readonly systems = new Map<string, MetricsScope>();

  constructor(opts: { processMetrics?: boolean; systemLabel?: boolean } = {}) {
    this.systemLabel = opts.systemLabel === true;
    const labelNames = (...names: string[]): string[] => (this.systemLabel ? ['system', ...names] : names);
    const registers = [this.registry];
    const collectAll = (): void => {
      this.root.collect();
      for (const s of this.systems.values()) s.collect();
    };
    this.requests = new Counter({
      name: 'virtbmc_requests_total',
      help: 'Requests answered, by protocol (ipmi, redfish), operation (IPMI command name or Redfish operationId) and status (IPMI completion code or HTTP status).',
      labelNames: labelNames('protocol', 'operation', 'status'),
      registers,
    });
    this.requestDuration = new Histogram({
      name: 'virtbmc_request_duration_seconds',
      help: 'Time to answer a request, by protocol and operation.',
      labelNames: labelNames('protocol', 'operation'),
      buckets: LATENCY_BUCKETS,
      registers,
    });
    // one collect for the three gauges read at scrape time (sessions, SSE clients, subscriptions)
    this.sessions = new Gauge({ name: 'virtbmc_sessions_active', help: 'Open sessions by protocol.', labelNames: labelNames('protocol'), registers, collect: collectAll });
    this.loginFailures = new Counter({ name: 'virtbmc_login_failures_total', help: 'Failed logins by protocol.', labelNames: labelNames('protocol'), registers });
    this.backendDuration = new Histogram({
      name: 'virtbmc_backend_call_duration_seconds',
      help: 'Backend (KubeVirt or simulator) call latency by call.',
      labelNames: labelNames('call'),
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.backendErrors = new Counter({
      name: 'virtbmc_backend_errors_total',
      help: 'Backend calls that failed, by call and error code (Unavailable, Busy, Conflict, ...).',
      labelNames: labelNames('call', 'code'),
      registers,
    });
    this.events = new Counter({ name: 'virtbmc_events_total', help: 'Events emitted by the agent, by registry prefix and severity.', labelNames: labelNames('registry', 'severity'), registers });
    this.deliveries = new Counter({
      name: 'virtbmc_event_deliveries_total',
      help: 'Event POSTs to subscribers by result (delivered, failed, dropped: queue overflow, suspended).',
      labelNames: labelNames('result'),
      registers,
    });
    this.deliveryDuration = new Histogram({ name: 'virtbmc_event_delivery_duration_seconds', help: 'Time of a successful event POST to a subscriber.', labelNames: labelNames(), buckets: LATENCY_BUCKETS, registers });
    this.sseClients = new Gauge({ name: 'virtbmc_sse_clients', help: 'Open Redfish SSE streams.', labelNames: labelNames(), registers });
    this.subscriptions = new Gauge({ name: 'virtbmc_event_subscriptions', help: 'Redfish event subscriptions by state (Enabled, Disabled = suspended).', labelNames: labelNames('state'), registers });
    this.root = new MetricsScope(this, this.systemLabel ? { system: '' } : {}, false);
    if (opts.processMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'virtbmc_agent_' });
  }

  /**
   * Shared mode: the meter of one served system (label system=<id>), the same one while it is
   * served. removeSystem(id) takes its series away.
   */
  system(id: string): MetricsScope {
    if (!this.systemLabel) throw new Error('AgentMetrics: system() needs systemLabel');
    if (id === '') throw new Error('AgentMetrics: a system id is not empty');
    let s = this.systems.get(id);
    if (!s) this.systems.set(id, (s = new MetricsScope(this, { system: id }, true)));
    return s;
  }

  /** A system left: every series labelled with it is removed (bounded cardinality). */
  removeSystem(id: string): void {
    this.systems.get(id)?.dispose();
    this.systems.delete(id);
  }

  /** Hooks for the subscription manager (src/events/subscriptions.ts). */
  deliveryHooks(): DeliveryHooks {
    return this.root.deliveryHooks();
  }

  /** Count events and failed logins, and read the SSE/subscription gauges from `ev`. */
  watchEvents(ev: AgentEvents): void {
    this.root.watchEvents(ev);
  }

  setSessionCounter(protocol: string, count: () => number): void {
    this.root.setSessionCounter(protocol, count);
  }

  observe(protocol: string, operation: string, status: string, seconds: number): void {
    this.root.observe(protocol, operation, status, seconds);
  }
}

/** The protocols' side of the metrics lives below them (src/common/metrics.ts); re-exported for the agent and tests. */
export { attachMetrics, countSessions, instrumentIpmiCommands, metricsOf, observeRequest } from '../common/metrics.js';

// the parts the agent needs without prom-client (the agent imports them statically; this file,
// and prom-client with it, only when metrics are asked for: docs/scale.md "Cold start")
export { instrumentMachine, startMetricsServer, type MetricsServer } from './metrics-server.js';
