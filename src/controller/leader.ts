/**
 * Leader election on a coordination.k8s.io/v1 Lease (client-node has no helper). Same rules as
 * client-go's: a candidate takes the lease when it is free or its holder has not renewed it for
 * leaseDuration (measured on our own clock from when we last saw the record change, so clock skew
 * between nodes does not matter); the leader renews every retryPeriod and steps down when it could
 * not renew for renewDeadline. Writes carry the resourceVersion, so two candidates never both win.
 */
import { V1MicroTime } from '@kubernetes/client-node';
import type { Logger } from '../common/logger.js';
import { isConflict, isNotFound, type KubeClient } from '../kube/client.js';
import { Resources } from '../kube/resources.js';
import type { KubeObject } from '../kube/types.js';

export interface LeaderElectorOptions {
  client: KubeClient;
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  logger: Logger;
  onStartedLeading: () => void;
  onStoppedLeading: () => void;
  /** Injectable clock for tests. */
  now?: () => number;
}

interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}

type Lease = KubeObject & { spec?: LeaseSpec };

export function microTime(ms: number): string {
  return new V1MicroTime(ms).toISOString();
}

export class LeaderElector {
  private leading = false;
  private stopped = false;
  private timer?: NodeJS.Timeout;
  private inflight: Promise<void> = Promise.resolve();
  private lastRenewOk = 0;
  /** the attempt in flight when stop() came took the lease: release it although we never led */
  private acquiredWhileStopping = false;
  private observedKey = '';
  private observedAt = 0;
  private readonly leaseDurationMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryPeriodMs: number;
  private readonly now: () => number;

  constructor(private readonly o: LeaderElectorOptions) {
    this.leaseDurationMs = o.leaseDurationMs ?? 15_000;
    this.renewDeadlineMs = o.renewDeadlineMs ?? 10_000;
    this.retryPeriodMs = o.retryPeriodMs ?? 2_000;
    this.now = o.now ?? Date.now;
    if (!(this.leaseDurationMs > this.renewDeadlineMs && this.renewDeadlineMs > this.retryPeriodMs)) {
      throw new Error('leader election needs leaseDuration > renewDeadline > retryPeriod');
    }
  }

  get isLeader(): boolean {
    return this.leading;
  }

  start(): void {
    this.stopped = false;
    this.schedule(0);
  }

  /**
   * Stops campaigning. With release, a leader clears holderIdentity so a standby takes over at once
   * (graceful shutdown); without, the lease simply expires (like a crash).
   */
  async stop(release = true): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.inflight; // never race our own in-flight renewal
    const wasLeading = this.leading;
    if (wasLeading) {
      this.leading = false;
      this.o.onStoppedLeading();
    }
    if (release && (wasLeading || this.acquiredWhileStopping)) {
      await this.release().catch((e: unknown) => this.o.logger.warn({ err: String(e) }, 'could not release the lease'));
    }
    this.acquiredWhileStopping = false;
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.inflight = this.tick();
    }, ms);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    let ok = false;
    try {
      ok = await this.tryAcquireOrRenew();
    } catch (e) {
      this.o.logger.debug({ err: e instanceof Error ? e.message : String(e) }, 'lease update failed');
    }
    if (this.stopped) {
      if (ok && !this.leading) this.acquiredWhileStopping = true;
      return;
    }
    const t = this.now();
    if (ok) {
      this.lastRenewOk = t;
      if (!this.leading) {
        this.leading = true;
        this.o.logger.info({ lease: `${this.o.namespace}/${this.o.name}`, identity: this.o.identity }, 'became leader');
        this.o.onStartedLeading();
      }
    } else if (this.leading && t - this.lastRenewOk > this.renewDeadlineMs) {
      this.leading = false;
      this.o.logger.warn({ lease: `${this.o.namespace}/${this.o.name}` }, 'lost leadership: could not renew the lease in time');
      this.o.onStoppedLeading();
    }
    this.schedule(this.retryPeriodMs);
  }

  private spec(t: number, prev: LeaseSpec | undefined, takingOver: boolean): LeaseSpec {
    return {
      holderIdentity: this.o.identity,
      leaseDurationSeconds: Math.max(1, Math.ceil(this.leaseDurationMs / 1000)),
      acquireTime: takingOver || !prev?.acquireTime ? microTime(t) : prev.acquireTime,
      renewTime: microTime(t),
      leaseTransitions: (prev?.leaseTransitions ?? 0) + (takingOver && prev?.holderIdentity ? 1 : 0),
    };
  }

  /** One attempt; true when we hold the lease afterwards. */
  async tryAcquireOrRenew(): Promise<boolean> {
    const { client, namespace, name } = this.o;
    const t = this.now();
    let lease: Lease;
    try {
      lease = await client.get<Lease>(Resources.lease, namespace, name);
    } catch (e) {
      if (!isNotFound(e)) throw e;
      try {
        await client.create<Lease>(Resources.lease, namespace, {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name, namespace },
          spec: this.spec(t, undefined, true),
        });
        return true;
      } catch (ce) {
        if (isConflict(ce)) return false;
        throw ce;
      }
    }
    const spec = lease.spec ?? {};
    const key = `${spec.holderIdentity ?? ''}|${spec.renewTime ?? ''}`;
    if (key !== this.observedKey) {
      this.observedKey = key;
      this.observedAt = t;
    }
    const mine = spec.holderIdentity === this.o.identity;
    const free = !spec.holderIdentity;
    const durationMs = (spec.leaseDurationSeconds ?? this.leaseDurationMs / 1000) * 1000;
    const expired = t > this.observedAt + durationMs;
    if (!mine && !free && !expired) return false;
    const updated: Lease = { ...lease, spec: { ...spec, ...this.spec(t, spec, !mine) } };
    try {
      await client.replace<Lease>(Resources.lease, namespace, name, updated);
    } catch (e) {
      if (isConflict(e)) return false;
      throw e;
    }
    return true;
  }

  private async release(): Promise<void> {
    const lease = await this.o.client.get<Lease>(Resources.lease, this.o.namespace, this.o.name);
    if (lease.spec?.holderIdentity !== this.o.identity) return;
    const t = this.now();
    await this.o.client.replace<Lease>(Resources.lease, this.o.namespace, this.o.name, {
      ...lease,
      spec: { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: microTime(t) },
    });
  }
}
