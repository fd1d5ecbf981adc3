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

export class AgentMetrics implements ProtocolMeter {
  readonly registry = new Registry();
  readonly requests = new Counter({
    name: 'virtbmc_requests_total',
    help: 'Requests answered, by protocol (ipmi, redfish), operation (IPMI command name or Redfish operationId) and status (IPMI completion code or HTTP status).',
    labelNames: ['protocol', 'operation', 'status'] as const,
    registers: [this.registry],
  });
  readonly requestDuration = new Histogram({
    name: 'virtbmc_request_duration_seconds',
    help: 'Time to answer a request, by protocol and operation.',
    labelNames: ['protocol', 'operation'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly sessions = new Gauge({
    name: 'virtbmc_sessions_active',
    help: 'Open sessions by protocol.',
    labelNames: ['protocol'] as const,
    registers: [this.registry],
    collect: () => {
      for (const [proto, count] of this.sessionCounters) this.sessions.set({ protocol: proto }, count());
    },
  });
  readonly loginFailures = new Counter({
    name: 'virtbmc_login_failures_total',
    help: 'Failed logins by protocol.',
    labelNames: ['protocol'] as const,
    registers: [this.registry],
  });
  readonly backendDuration = new Histogram({
    name: 'virtbmc_backend_call_duration_seconds',
    help: 'Backend (KubeVirt or simulator) call latency by call.',
    labelNames: ['call'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly backendErrors = new Counter({
    name: 'virtbmc_backend_errors_total',
    help: 'Backend calls that failed, by call and error code (Unavailable, Busy, Conflict, ...).',
    labelNames: ['call', 'code'] as const,
    registers: [this.registry],
  });
  readonly events = new Counter({
    name: 'virtbmc_events_total',
    help: 'Events emitted by the agent, by registry prefix and severity.',
    labelNames: ['registry', 'severity'] as const,
    registers: [this.registry],
  });
  readonly deliveries = new Counter({
    name: 'virtbmc_event_deliveries_total',
    help: 'Event POSTs to subscribers by result (delivered, failed, dropped: queue overflow, suspended).',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly deliveryDuration = new Histogram({
    name: 'virtbmc_event_delivery_duration_seconds',
    help: 'Time of a successful event POST to a subscriber.',
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly sseClients = new Gauge({
    name: 'virtbmc_sse_clients',
    help: 'Open Redfish SSE streams.',
    registers: [this.registry],
    collect: () => {
      if (this.agentEvents) this.sseClients.set(this.agentEvents.sseClients);
    },
  });
  readonly subscriptions = new Gauge({
    name: 'virtbmc_event_subscriptions',
    help: 'Redfish event subscriptions by state (Enabled, Disabled = suspended).',
    labelNames: ['state'] as const,
    registers: [this.registry],
    collect: () => {
      if (!this.agentEvents) return;
      const list = this.agentEvents.subscriptions.list();
      this.subscriptions.set({ state: 'Enabled' }, list.filter((s) => s.state === 'Enabled').length);
      this.subscriptions.set({ state: 'Disabled' }, list.filter((s) => s.state === 'Disabled').length);
    },
  });
  private readonly sessionCounters = new Map<string, () => number>();
  private agentEvents: AgentEvents | undefined;

  constructor(opts: { processMetrics?: boolean } = {}) {
    if (opts.processMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'virtbmc_agent_' });
  }

  /** Hooks for the subscription manager (src/events/subscriptions.ts). */
  deliveryHooks(): DeliveryHooks {
    return {
      delivered: (_s, n, ms) => {
        this.deliveries.inc({ result: 'delivered' }, n);
        this.deliveryDuration.observe(ms / 1000);
      },
      failed: () => this.deliveries.inc({ result: 'failed' }),
      dropped: (_s, n) => this.deliveries.inc({ result: 'dropped' }, n),
      suspended: () => this.deliveries.inc({ result: 'suspended' }),
    };
  }

  /** Count events and failed logins, and read the SSE/subscription gauges from `ev`. */
  watchEvents(ev: AgentEvents): void {
    this.agentEvents = ev;
    const off = ev.hub.on((e) => {
      this.events.inc({ registry: e.registryPrefix, severity: e.severity });
      if (e.kind === 'loginFailed') this.loginFailures.inc({ protocol: e.source ?? 'unknown' });
    });
    ev.hub.addCloser(off);
  }

  setSessionCounter(protocol: string, count: () => number): void {
    this.sessionCounters.set(protocol, count);
  }

  observe(protocol: string, operation: string, status: string, seconds: number): void {
    this.requests.inc({ protocol, operation, status });
    this.requestDuration.observe({ protocol, operation }, seconds);
  }
}

/** The protocols' side of the metrics lives below them (src/common/metrics.ts); re-exported for the agent and tests. */
export { attachMetrics, countSessions, instrumentIpmiCommands, metricsOf, observeRequest } from '../common/metrics.js';

// the parts the agent needs without prom-client (the agent imports them statically; this file,
// and prom-client with it, only when metrics are asked for: docs/scale.md "Cold start")
export { instrumentMachine, startMetricsServer, type MetricsServer } from './metrics-server.js';
