/**
 * Wires the controller, leader election and the metrics/health endpoints together; used by the
 * `virtbmc-controller` command and by the tests.
 */
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from '../common/logger.js';
import { VirtualMachineBMCController, type ControllerOptions } from './controller.js';
import { LeaderElector } from './leader.js';
import { ControllerMetrics } from './metrics.js';
import { serveHealth, serveMetrics, type Endpoint } from './server.js';

export interface ManagerOptions extends Omit<ControllerOptions, 'metrics'> {
  kc: KubeConfig;
  logger: Logger;
  leaderElect?: boolean;
  leaderElectionNamespace?: string;
  leaseName?: string;
  identity?: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  /** "[host]:port"; "0" disables. Defaults ":8080" and ":8081". */
  metricsBindAddress?: string;
  healthProbeBindAddress?: string;
  processMetrics?: boolean;
}

export interface Manager {
  readonly controller: VirtualMachineBMCController;
  readonly elector?: LeaderElector;
  readonly metrics: ControllerMetrics;
  readonly metricsEndpoint?: Endpoint;
  readonly healthEndpoint?: Endpoint;
  readonly identity: string;
  isLeader(): boolean;
  /** Graceful stop: workers, lease release, informers, endpoints. `release: false` mimics a crash. */
  stop(opts?: { release?: boolean }): Promise<void>;
}

export const DEFAULT_LEASE_NAME = 'virtbmc-controller-leader';

export async function startManager(o: ManagerOptions): Promise<Manager> {
  const metrics = new ControllerMetrics({ processMetrics: o.processMetrics ?? false });
  const identity = o.identity ?? `${hostname()}_${randomBytes(4).toString('hex')}`;
  const controller = new VirtualMachineBMCController({ ...o, metrics, identity });
  const log = o.logger;

  const metricsEndpoint = await serveMetrics(o.metricsBindAddress ?? ':8080', metrics.registry);
  const healthEndpoint = await serveHealth(o.healthProbeBindAddress ?? ':8081', {
    healthy: () => true,
    ready: () => {
      const pending = controller.unsynced();
      return pending.length === 0 ? true : `informers not synced: ${pending.join(', ')}`;
    },
  });

  await controller.start();

  let elector: LeaderElector | undefined;
  let leading = false;
  const lead = () => {
    leading = true;
    metrics.isLeader.set(1);
    controller.startWorkers();
  };
  const unlead = () => {
    leading = false;
    metrics.isLeader.set(0);
    void controller.stopWorkers();
  };
  if (o.leaderElect) {
    elector = new LeaderElector({
      client: controller.client,
      namespace: o.leaderElectionNamespace ?? 'kubevirtbmc-system',
      name: o.leaseName ?? DEFAULT_LEASE_NAME,
      identity,
      logger: log.child({ component: 'leader-election' }),
      ...(o.leaseDurationMs ? { leaseDurationMs: o.leaseDurationMs } : {}),
      ...(o.renewDeadlineMs ? { renewDeadlineMs: o.renewDeadlineMs } : {}),
      ...(o.retryPeriodMs ? { retryPeriodMs: o.retryPeriodMs } : {}),
      onStartedLeading: lead,
      onStoppedLeading: unlead,
    });
    elector.start();
  } else {
    lead();
  }

  return {
    controller,
    elector,
    metrics,
    metricsEndpoint,
    healthEndpoint,
    identity,
    isLeader: () => leading,
    async stop(opts = {}) {
      if (elector) await elector.stop(opts.release ?? true);
      await controller.stop();
      await Promise.all([metricsEndpoint?.close(), healthEndpoint?.close()]);
    },
  };
}
