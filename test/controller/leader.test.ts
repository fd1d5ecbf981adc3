import { expect } from 'chai';
import { startApiServer, type ApiServerEmulator } from '../emulator/index.js';
import { nullLogger } from '../../src/common/logger.js';
import { KubeClient } from '../../src/kube/client.js';
import { LeaderElector } from '../../src/controller/leader.js';
import { startManager } from '../../src/controller/manager.js';
import { secretObj, startEnv, vmObj, vmbmcObj, waitReady, type Env } from './fixtures.js';

const LEASE_NS = 'default';
type LeaseSpec = { holderIdentity?: string; renewTime?: string; acquireTime?: string; leaseTransitions?: number };
const lease = (emu: ApiServerEmulator, name = 'test-lease') => emu.get('coordination.k8s.io/v1', 'Lease', LEASE_NS, name)?.spec as LeaseSpec | undefined;

/**
 * The electors run on an injected clock that only the test moves: whether a lease has expired or a
 * renew deadline has passed depends on that clock, never on how fast this machine runs. Real time
 * only paces the retry loop (50 ms), and every wait is a bounded poll for a condition.
 */
describe('controller leader election', function () {
  this.timeout(20000);
  let emu: ApiServerEmulator;
  const electors: LeaderElector[] = [];
  let clock: { t: number };
  beforeEach(async () => {
    emu = await startApiServer();
    clock = { t: Date.parse('2026-01-01T00:00:00Z') };
  });
  afterEach(async () => {
    for (const e of electors.splice(0)) await e.stop(false);
    await emu.close();
  });

  /** An elector on the test clock; `attempts` counts its acquire/renew attempts. */
  function elector(identity: string, events: string[]): LeaderElector & { attempts: number } {
    const e = new LeaderElector({
      client: new KubeClient(emu.makeKubeConfig()),
      namespace: LEASE_NS,
      name: 'test-lease',
      identity,
      leaseDurationMs: 600,
      renewDeadlineMs: 300,
      retryPeriodMs: 50,
      logger: nullLogger(),
      now: () => clock.t,
      onStartedLeading: () => events.push(`${identity}:start`),
      onStoppedLeading: () => events.push(`${identity}:stop`),
    }) as LeaderElector & { attempts: number };
    e.attempts = 0;
    const attempt = e.tryAcquireOrRenew.bind(e);
    e.tryAcquireOrRenew = () => {
      e.attempts++;
      return attempt();
    };
    electors.push(e);
    return e;
  }

  /** Waits until `e` has made `n` more attempts (each one a full read of the lease). */
  async function attemptsBy(e: { attempts: number }, n: number): Promise<void> {
    const target = e.attempts + n;
    await emu.waitFor(() => e.attempts >= target, 10000);
  }

  /** Elector a started and leading, then elector b started as its standby. */
  async function leaderAndStandby(events: string[]) {
    const a = elector('a', events);
    a.start();
    await emu.waitFor(() => a.isLeader, 10000);
    const b = elector('b', events);
    b.start();
    await attemptsBy(b, 1);
    return { a, b };
  }

  it('one leader at a time; a standby takes over only once the lease has expired on its clock', async () => {
    const events: string[] = [];
    const { a, b } = await leaderAndStandby(events);
    const first = lease(emu)!;
    expect(first.holderIdentity).to.equal('a');
    expect(first.renewTime).to.match(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    // a keeps renewing (its renewTime follows the clock), b stays standby
    clock.t += 100;
    await emu.waitFor(() => lease(emu)!.renewTime !== first.renewTime, 10000);
    expect(Date.parse(lease(emu)!.renewTime!)).to.equal(clock.t);
    expect(b.isLeader).to.equal(false);

    await a.stop(false); // a "crashes": no release, the lease must expire
    // However long b keeps trying, the lease is not expired while its clock stands still...
    await attemptsBy(b, 3);
    clock.t += 900; // ...nor 900 ms later (leaseDurationSeconds is 1: 600 ms rounded up)...
    await attemptsBy(b, 3);
    expect(b.isLeader).to.equal(false);
    expect(lease(emu)!.holderIdentity).to.equal('a');
    clock.t += 200; // ...but it is after more than a second without a change
    await emu.waitFor(() => b.isLeader, 10000);
    const after = lease(emu)!;
    expect(after.holderIdentity).to.equal('b');
    expect(after.leaseTransitions).to.equal(1);
    expect(events).to.deep.equal(['a:start', 'a:stop', 'b:start']);
  });

  it('a released lease is taken over at once, without waiting for it to expire', async () => {
    const events: string[] = [];
    const { a, b } = await leaderAndStandby(events);
    await a.stop(true);
    expect(lease(emu)!.holderIdentity).to.equal('');
    // the clock does not move: b cannot be relying on expiry
    await emu.waitFor(() => b.isLeader, 10000);
    expect(lease(emu)!.holderIdentity).to.equal('b');
  });

  it('a lease taken by the attempt in flight when stop() came is released too', async () => {
    const events: string[] = [];
    const a = elector('a', events);
    emu.faults.delayResponses(150);
    a.start();
    await emu.waitFor(() => emu.audit.some((e) => e.resource === 'leases'), 10000);
    await a.stop(true);
    emu.faults.delayResponses(0);
    expect(a.isLeader).to.equal(false);
    expect(events).to.deep.equal([]);
    expect(lease(emu)?.holderIdentity ?? '', 'a standby need not wait for the lease to expire').to.equal('');
  });

  it('the leader steps down when it cannot renew within the renew deadline, and not before', async () => {
    const events: string[] = [];
    const a = elector('a', events);
    a.start();
    await emu.waitFor(() => a.isLeader, 10000);
    let failing = true;
    emu.faults.failNext(1_000_000, 500, (r) => failing && r.path.includes('/leases/'));
    // failed renewals within the deadline (the clock stands still) keep it leading
    await attemptsBy(a, 3);
    expect(a.isLeader).to.equal(true);
    clock.t += 301; // past the 300 ms renew deadline since the last good renewal
    await emu.waitFor(() => events.includes('a:stop'), 10000);
    expect(a.isLeader).to.equal(false);
    // once the apiserver answers again, it campaigns and wins again
    failing = false;
    await emu.waitFor(() => a.isLeader, 10000);
  });
});

describe('controller managers with leader election', function () {
  this.timeout(30000);
  let env: Env;
  afterEach(async () => {
    await env?.close();
  });

  it('only the leader reconciles; the standby takes over', async () => {
    const opts = { leaderElect: true, leaderElectionNamespace: 'default', leaseDurationMs: 600, renewDeadlineMs: 300, retryPeriodMs: 50 };
    env = await startEnv({ ...opts, identity: 'one' });
    const { emu } = env;
    await emu.waitFor(() => env.mgr.isLeader());
    const two = await startManager({
      kc: emu.makeKubeConfig(),
      logger: nullLogger(),
      agent: { image: 'x' },
      metricsBindAddress: '0',
      healthProbeBindAddress: '0',
      identity: 'two',
      ...opts,
    });
    try {
      emu.create(vmObj('vm'));
      emu.create(secretObj('creds'));
      emu.create(vmbmcObj('bmc', 'vm', 'creds'));
      await waitReady(emu, 'bmc');
      const count = async (m: typeof two) => (await m.metrics.reconcileTotal.get()).values.reduce((s, v) => s + v.value, 0);
      expect(await count(env.mgr)).to.be.at.least(1);
      expect(await count(two)).to.equal(0);
      expect(two.isLeader()).to.equal(false);

      await env.mgr.stop({ release: false });
      await emu.waitFor(() => two.isLeader(), 10000);
      emu.create(vmbmcObj('bmc-after', 'vm', 'creds'));
      await waitReady(emu, 'bmc-after');
      expect(await count(two)).to.be.at.least(1);
    } finally {
      await two.stop();
    }
  });
});
