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

describe('controller leader election', function () {
  this.timeout(15000);
  let emu: ApiServerEmulator;
  const electors: LeaderElector[] = [];
  beforeEach(async () => {
    emu = await startApiServer();
  });
  afterEach(async () => {
    for (const e of electors.splice(0)) await e.stop(false);
    await emu.close();
  });

  function elector(identity: string, events: string[]): LeaderElector {
    const e = new LeaderElector({
      client: new KubeClient(emu.makeKubeConfig()),
      namespace: LEASE_NS,
      name: 'test-lease',
      identity,
      leaseDurationMs: 600,
      renewDeadlineMs: 300,
      retryPeriodMs: 50,
      logger: nullLogger(),
      onStartedLeading: () => events.push(`${identity}:start`),
      onStoppedLeading: () => events.push(`${identity}:stop`),
    });
    electors.push(e);
    return e;
  }

  /** Elector a started and leading, then elector b started as its standby. */
  async function leaderAndStandby(events: string[]): Promise<{ a: LeaderElector; b: LeaderElector }> {
    const a = elector('a', events);
    a.start();
    await emu.waitFor(() => a.isLeader);
    const b = elector('b', events);
    b.start();
    return { a, b };
  }

  it('one leader at a time; a standby takes over when the leader stops renewing', async () => {
    const events: string[] = [];
    const { a, b } = await leaderAndStandby(events);
    const first = lease(emu)!;
    expect(first.holderIdentity).to.equal('a');
    expect(first.renewTime).to.match(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    // a keeps renewing, b stays standby
    await emu.waitFor(() => lease(emu)!.renewTime !== first.renewTime);
    expect(b.isLeader).to.equal(false);

    const t0 = Date.now();
    await a.stop(false); // a "crashes": no release, the lease must expire
    await emu.waitFor(() => b.isLeader, 3000);
    const took = Date.now() - t0;
    expect(took).to.be.at.least(400); // waited for the lease to expire
    const after = lease(emu)!;
    expect(after.holderIdentity).to.equal('b');
    expect(after.leaseTransitions).to.equal(1);
    expect(events).to.deep.equal(['a:start', 'a:stop', 'b:start']);
  });

  it('a released lease is taken over at once', async () => {
    const events: string[] = [];
    const { a, b } = await leaderAndStandby(events);
    await new Promise((r) => setTimeout(r, 120));
    const t0 = Date.now();
    await a.stop(true);
    expect(lease(emu)!.holderIdentity).to.equal('');
    await emu.waitFor(() => b.isLeader, 3000);
    expect(Date.now() - t0).to.be.below(500); // well before the 600 ms expiry
  });

  it('a lease taken by the attempt in flight when stop() came is released too', async () => {
    const events: string[] = [];
    const a = elector('a', events);
    emu.faults.delayResponses(150);
    a.start();
    await emu.waitFor(() => emu.audit.some((e) => e.resource === 'leases'), 2000);
    await a.stop(true);
    emu.faults.delayResponses(0);
    expect(a.isLeader).to.equal(false);
    expect(events).to.deep.equal([]);
    expect(lease(emu)?.holderIdentity ?? '', 'a standby need not wait for the lease to expire').to.equal('');
  });

  it('the leader steps down when it cannot renew within the renew deadline', async () => {
    const events: string[] = [];
    const a = elector('a', events);
    a.start();
    await emu.waitFor(() => a.isLeader);
    emu.faults.failNext(12, 500, (r) => r.path.includes('/leases/'));
    await emu.waitFor(() => events.includes('a:stop'), 3000);
    expect(a.isLeader).to.equal(false);
    // once the apiserver answers again, it campaigns and wins again
    await emu.waitFor(() => a.isLeader, 3000);
  });
});

describe('controller managers with leader election', function () {
  this.timeout(15000);
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
      await emu.waitFor(() => two.isLeader(), 3000);
      emu.create(vmbmcObj('bmc-after', 'vm', 'creds'));
      await waitReady(emu, 'bmc-after');
      expect(await count(two)).to.be.at.least(1);
    } finally {
      await two.stop();
    }
  });
});
