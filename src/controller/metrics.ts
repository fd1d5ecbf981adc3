/** Prometheus metrics of the controller (own registry, so several controllers can share a process). */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class ControllerMetrics {
  readonly registry = new Registry();
  readonly reconcileTotal = new Counter({
    name: 'virtbmc_controller_reconcile_total',
    help: 'Reconciles by result (success, error).',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly reconcileDuration = new Histogram({
    name: 'virtbmc_controller_reconcile_duration_seconds',
    help: 'Time spent in one reconcile.',
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly errors = new Counter({
    name: 'virtbmc_controller_errors_total',
    help: 'Errors by kind (reconcile, api, informer).',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });
  readonly queueDepth = new Gauge({
    name: 'virtbmc_controller_workqueue_depth',
    help: 'Keys waiting in the work queue.',
    registers: [this.registry],
  });
  readonly isLeader = new Gauge({
    name: 'virtbmc_controller_is_leader',
    help: '1 while this replica holds the leader lease.',
    registers: [this.registry],
  });
  readonly managed = new Gauge({
    name: 'virtbmc_controller_virtualmachinebmcs',
    help: 'VirtualMachineBMC objects in the informer cache.',
    registers: [this.registry],
  });

  constructor(opts: { processMetrics?: boolean } = {}) {
    if (opts.processMetrics) collectDefaultMetrics({ register: this.registry });
  }
}
