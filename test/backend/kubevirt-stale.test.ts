/**
 * The cluster view going stale (issue 10 point 4): the agent in KubeVirt mode talks to the
 * emulator through a loopback TCP proxy that freezes — sockets stay open, nothing is forwarded —
 * as a hung apiserver or a dead proxy would. The silent watches are detected (short configured
 * bounds here; the default bounds are proven with fake timers in kubevirt-informer.test.ts),
 * Redfish shows Critical health, IPMI and Redfish reads do not report the frozen state as current,
 * writes fail fast (0xFF / 503) without reaching the cluster, and after the thaw the agent recovers
 * by itself and sees what changed meanwhile. Also: missing bookmarks on an open stream, a slow but
 * answering apiserver (no false alarm), and the emulator's own hang fault.
 */
import http from 'node:http';
import net from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { expect } from 'chai';
import type { Logger } from 'pino';
import { createKubeVirtMachine, type KubeVirtMachine } from '../../src/backend/kubevirt/index.js';
import { isBackendError } from '../../src/backend/types.js';
import { KubeClient, isKubeApiError } from '../../src/kube/client.js';
import { Resources } from '../../src/kube/resources.js';
import type { ApiServerEmulator } from '../emulator/index.js';
import { ADMIN, startTestAgent, type TestAgent } from '../helpers/agent.js';
import { run } from '../helpers/exec.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';
import { NS, VM_NAME, captureLogger, closeAll, startEmulator, until, vmFixture, vmOf, vmiPhase, waitPower } from './kubevirt-fixtures.js';

const SYS = '/redfish/v1/Systems/1';
const RESET = `${SYS}/Actions/ComputerSystem.Reset`;
/** the agent's request timeout in these tests; fail-fast answers come far sooner */
const REQUEST_TIMEOUT_MS = 3000;

interface Rig {
  emu: ApiServerEmulator;
  proxy?: TcpProxy;
  m: KubeVirtMachine;
  t?: TestAgent;
  logs: () => string[];
}

async function machineFor(emu: ApiServerEmulator, kc: KubeConfig, logger: Logger, o: { silenceMs?: number; maxSilenceMs?: number } = {}): Promise<KubeVirtMachine> {
  return (await createKubeVirtMachine({
    namespace: NS,
    name: VM_NAME,
    logger,
    kubeConfig: kc,
    requestTimeoutMs: REQUEST_TIMEOUT_MS,
    syncTimeoutMs: 2000,
    watchMinBackoffMs: 20,
    watchMaxBackoffMs: 200,
    watchSilenceProbeMs: o.silenceMs ?? 700,
    watchMaxSilenceMs: o.maxSilenceMs ?? 5000,
    apiProbeIntervalMs: 200,
  })) as KubeVirtMachine;
}

function kubeConfigVia(emu: ApiServerEmulator, url: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromString(emu.kubeconfigYaml.replace(emu.url, url));
  return kc;
}

async function redfish(t: TestAgent, method: string, path: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown>; ms: number }> {
  const t0 = Date.now();
  const r = await fetch(t.redfishUrl + path, {
    method,
    headers: {
      authorization: 'Basic ' + Buffer.from(`${ADMIN.username}:${ADMIN.password}`).toString('base64'),
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await r.text();
  return { status: r.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {}, ms: Date.now() - t0 };
}

function ipmitool(t: TestAgent, cmd: string) {
  return run('ipmitool', ['-I', 'lanplus', '-C', '3', '-H', '127.0.0.1', '-p', String(t.ipmiPort), '-U', ADMIN.username, '-P', ADMIN.password, '-N', '2', '-R', '2', ...cmd.split(' ')]);
}

const vmActions = (emu: ApiServerEmulator, sub: string) => emu.audit.filter((a) => a.resource === 'virtualmachines' && a.subresource === sub).length;

describe('kubevirt backend: a stale cluster view is detected, reported and recovered from', function () {
  this.timeout(60_000);
  let rig: Rig | undefined;

  afterEach(async () => {
    if (!rig) return;
    const r = rig;
    rig = undefined;
    r.proxy?.thaw();
    r.emu.faults.hang(false);
    await r.t?.close();
    await r.m.close();
    await r.proxy?.close();
    await closeAll(r.emu);
  });

  async function running(emu: ApiServerEmulator): Promise<void> {
    emu.create(vmFixture({ runStrategy: 'Always' }));
    await emu.waitFor(() => vmiPhase(emu) === 'Running');
  }

  it('frozen connection: detected, Critical in Redfish, reads not served from the frozen cache, writes fail fast; recovery by itself after the thaw', async () => {
    const emu = await startEmulator({ bookmarkIntervalMs: 200 });
    await running(emu);
    const proxy = await startTcpProxy(Number(new URL(emu.url).port));
    const cap = captureLogger();
    const m = await machineFor(emu, kubeConfigVia(emu, proxy.url), cap.logger);
    const t = await startTestAgent({ machine: m });
    rig = { emu, proxy, m, t, logs: cap.lines };

    await waitPower(m, 'On');
    let sys = await redfish(t, 'GET', SYS);
    expect(sys.body.PowerState).to.equal('On');
    expect(sys.body.Status).to.deep.equal({ State: 'Enabled', Health: 'OK' });
    expect((await ipmitool(t, 'power status')).out).to.contain('Chassis Power is on');

    // the connection freezes; meanwhile the VM is stopped behind the agent's back
    proxy.freeze();
    const frozenAt = Date.now();
    const vm = vmOf(emu);
    vm.spec = { ...(vm.spec as object), runStrategy: 'Halted' };
    emu.update(vm);
    await emu.waitFor(() => vmiPhase(emu) === undefined);

    // detected within the configured bounds (silence 0.7 s + a check of at most 3 s); generous wait
    const snap = await until(async () => {
      const s = await m.snapshot();
      return s.health?.status === 'Critical' ? s : undefined;
    }, 'the stale view to be detected', 20_000);
    const detectedMs = Date.now() - frozenAt;
    expect(snap.health?.message).to.match(/cannot be reached.*last one seen/);
    expect(m.currentGeneration(), 'no generation while the API cannot be reached').to.equal(undefined);
    expect(cap.lines().some((l) => l.includes('Kubernetes API unreachable'))).to.equal(true);

    // Redfish: the last state seen, marked Critical with a condition saying why and since when
    sys = await redfish(t, 'GET', SYS);
    expect(sys.status).to.equal(200);
    const status = sys.body.Status as { Health: string; Conditions: { Message: string; Severity: string; Timestamp: string }[] };
    expect(status.Health).to.equal('Critical');
    expect(status.Conditions[0]!.Severity).to.equal('Critical');
    expect(status.Conditions[0]!.Message).to.match(/Kubernetes API cannot be reached/);
    expect(Number.isNaN(Date.parse(status.Conditions[0]!.Timestamp)), 'a Timestamp').to.equal(false);
    expect(((await redfish(t, 'GET', '/redfish/v1/Chassis/1')).body.Status as { Health: string }).Health).to.equal('Critical');

    // single-value reads never report the frozen state: Unavailable, IPMI 0xFF
    const read = await m.getPowerState().catch((e: unknown) => e);
    expect(isBackendError(read, 'Unavailable'), String(read)).to.equal(true);
    const status1 = await ipmitool(t, 'power status');
    expect(status1.code).to.not.equal(0);
    expect(status1.out).to.not.contain('Chassis Power is on');
    expect(status1.out).to.match(/Unspecified error/);

    // writes fail fast, and nothing reaches the cluster
    const startsBefore = vmActions(emu, 'start');
    const post = await redfish(t, 'POST', RESET, { ResetType: 'On' });
    expect(post.status).to.equal(503);
    expect((post.body.error as { message: string }).message, 'failed fast (not sent), not by waiting for a request timeout').to.match(/: not sent, /);
    const on = await ipmitool(t, 'power on');
    expect(on.code).to.not.equal(0);
    expect(vmActions(emu, 'start')).to.equal(startsBefore);

    // thaw: recovery by itself, and the stop that happened meanwhile is seen
    proxy.thaw();
    const thawedAt = Date.now();
    await until(async () => {
      const s = await m.snapshot();
      return s.health?.status === 'OK' && s.power === 'Off';
    }, 'recovery with the fresh state', 20_000);
    const recoveredMs = Date.now() - thawedAt;
    expect((await ipmitool(t, 'power status')).out).to.contain('Chassis Power is off');
    sys = await redfish(t, 'GET', SYS);
    expect(sys.body.PowerState).to.equal('Off');
    expect(sys.body.Status).to.deep.equal({ State: 'Enabled', Health: 'OK' });

    // a write now runs exactly once
    expect((await redfish(t, 'POST', RESET, { ResetType: 'On' })).status).to.be.oneOf([200, 202, 204]);
    await waitPower(m, 'On', 10_000);
    expect(vmActions(emu, 'start') - startsBefore).to.equal(1);
    // for the record (no bound asserted beyond the waits above)
    console.log(`      stale view detected ${detectedMs} ms after the freeze; recovered ${recoveredMs} ms after the thaw`);
  });

  it('an open stream that stops carrying bookmarks is checked and re-opened, and the view stays healthy', async () => {
    const emu = await startEmulator({ bookmarkIntervalMs: 100 });
    emu.create(vmFixture({ runStrategy: 'Halted' }));
    const cap = captureLogger();
    const m = await machineFor(emu, emu.makeKubeConfig(), cap.logger, { silenceMs: 300, maxSilenceMs: 900 });
    rig = { emu, m, logs: cap.lines };
    await waitPower(m, 'Off');
    const vmWatches = () => emu.audit.filter((a) => a.verb === 'watch' && a.resource === 'virtualmachines').length;
    const vmLists = () => emu.audit.filter((a) => a.verb === 'list' && a.resource === 'virtualmachines').length;
    const w0 = vmWatches();
    const l0 = vmLists();
    emu.faults.stopBookmarks(true);
    await until(() => vmWatches() >= w0 + 2, 'the bookmark-less stream to be re-opened (twice)', 15_000);
    expect(vmLists() - l0, 'checked by direct lists in between').to.be.greaterThan(0);
    expect(cap.lines().some((l) => l.includes('no watch event or bookmark for too long'))).to.equal(true);
    expect((await m.snapshot()).health).to.deep.equal({ status: 'OK' });
    expect(cap.lines().some((l) => l.includes('Kubernetes API unreachable'))).to.equal(false);
    // the view still follows the cluster
    const vm = vmOf(emu);
    vm.spec = { ...(vm.spec as object), runStrategy: 'Always' };
    emu.update(vm);
    await waitPower(m, 'On', 10_000);
  });

  it('a slow but answering API server does not trip it: no Critical, no fail-fast, writes go through once', async () => {
    const emu = await startEmulator({ bookmarkIntervalMs: 100 });
    emu.create(vmFixture({ runStrategy: 'Halted' }));
    const cap = captureLogger();
    const m = await machineFor(emu, emu.makeKubeConfig(), cap.logger, { silenceMs: 300, maxSilenceMs: 900 });
    rig = { emu, m, logs: cap.lines };
    await waitPower(m, 'Off');
    // every answer takes 1.2 s (well under the 3 s timeout); no bookmarks, so silence checks run (slowly)
    emu.faults.delayResponses(1200);
    emu.faults.stopBookmarks(true);
    const lists0 = emu.audit.filter((a) => a.verb === 'list' && a.resource === 'virtualmachines').length;
    const healths: string[] = [];
    await until(async () => {
      healths.push((await m.snapshot()).health?.status ?? 'OK');
      return emu.audit.filter((a) => a.verb === 'list' && a.resource === 'virtualmachines' && a.code === 200).length >= lists0 + 3;
    }, 'several slow silence checks to complete', 20_000);
    expect(healths.filter((h) => h !== 'OK')).to.deep.equal([]);
    const starts = vmActions(emu, 'start');
    await m.power('on');
    expect(vmActions(emu, 'start') - starts).to.equal(1);
    emu.faults.delayResponses(0);
    await waitPower(m, 'On', 10_000);
    expect(cap.lines().filter((l) => l.includes('Kubernetes API unreachable'))).to.deep.equal([]);
  });

  it('the emulator\'s hang fault (a stopped apiserver): detected, writes fail fast, recovery on resume', async () => {
    const emu = await startEmulator({ bookmarkIntervalMs: 200 });
    await running(emu);
    const cap = captureLogger();
    const m = await machineFor(emu, emu.makeKubeConfig(), cap.logger);
    rig = { emu, m, logs: cap.lines };
    await waitPower(m, 'On');
    emu.faults.hang(true);
    await until(async () => (await m.snapshot()).health?.status === 'Critical', 'the hang to be detected', 20_000);
    const err = await m.power('forceOff').catch((e: unknown) => e);
    expect(isBackendError(err, 'Unavailable'), String(err)).to.equal(true);
    expect((err as Error).message).to.match(/not sent/);
    const stops = vmActions(emu, 'stop');
    emu.faults.hang(false);
    await until(async () => (await m.snapshot()).health?.status === 'OK', 'recovery after resume', 20_000);
    expect(vmActions(emu, 'stop'), 'the failed-fast write was never sent').to.equal(stops);
    expect(await m.getPowerState()).to.equal('On');
  });
});

describe('KubeClient: fail fast while the API server is known unreachable', function () {
  this.timeout(30_000);
  let emu: ApiServerEmulator;
  let client: KubeClient | undefined;
  beforeEach(async () => {
    emu = await startEmulator();
    emu.create(vmFixture({ runStrategy: 'Halted' }));
  });
  afterEach(async () => {
    emu.faults.hang(false);
    client?.close();
    client = undefined;
    await closeAll(emu);
  });
  const vmGets = () => emu.audit.filter((a) => a.verb === 'get' && a.resource === 'virtualmachines').length;

  it('off by default (the controller): every request is sent and waits for its own answer', async () => {
    client = new KubeClient(emu.makeKubeConfig(), { timeoutMs: 300 });
    emu.faults.hang(true);
    const e1 = await client.get(Resources.vm, NS, VM_NAME).catch((e: unknown) => e);
    expect(isKubeApiError(e1, 0) && e1.network, String(e1)).to.equal(true);
    expect(client.reachability.reachable).to.equal(true);
    emu.faults.hang(false);
    expect((await client.get(Resources.vm, NS, VM_NAME)).metadata?.name).to.equal(VM_NAME);
  });

  it('on: a timeout opens it, requests then fail at once unsent, a probe closes it when the server answers', async () => {
    client = new KubeClient(emu.makeKubeConfig(), { timeoutMs: 300, failFast: true, probeIntervalMs: 100 });
    const changes: boolean[] = [];
    client.onReachability((r) => changes.push(r.reachable));
    emu.faults.hang(true);
    const e1 = await client.get(Resources.vm, NS, VM_NAME).catch((e: unknown) => e);
    expect(isKubeApiError(e1, 0), String(e1)).to.equal(true);
    expect(client.reachability).to.include({ reachable: false });
    expect(client.reachability.since).to.be.instanceOf(Date);
    const e2 = await client.putSubresource(Resources.vmActions, NS, VM_NAME, 'start').catch((e: unknown) => e);
    expect(isKubeApiError(e2, 0) && e2.notSent, String(e2)).to.equal(true);
    expect((e2 as Error).message).to.match(/not sent.*unreachable since/);
    emu.faults.hang(false);
    await until(() => client!.reachability.reachable, 'the probe to close the breaker', 10_000);
    expect(changes).to.deep.equal([false, true]);
    const gets = vmGets();
    await client.get(Resources.vm, NS, VM_NAME);
    expect(vmGets() - gets).to.equal(1);
    expect(emu.audit.some((a) => a.subresource === 'start'), 'the failed-fast write never reached the server').to.equal(false);
    expect(emu.audit.some((a) => a.nonResourceURL === '/version')).to.equal(true);
  });

  it('a closed client starts no probing when a request still under way fails afterwards (no timer left behind)', async () => {
    client = new KubeClient(emu.makeKubeConfig(), { timeoutMs: 300, failFast: true, probeIntervalMs: 20 });
    emu.faults.hang(true);
    const late = client.get(Resources.vm, NS, VM_NAME).catch((e: unknown) => e);
    client.close();
    // the request fails after close(): the client learns the API is down, but probes nothing
    const e = await late;
    expect(isKubeApiError(e, 0), String(e)).to.equal(true);
    expect(client.reachability.reachable, 'the failure is still noted').to.equal(false);
    emu.faults.hang(false);
    // a probe would be a GET /version: wait until a request of ours could have passed, then check
    const marker = new KubeClient(emu.makeKubeConfig());
    for (let i = 0; i < 5; i++) await marker.get(Resources.vm, NS, VM_NAME);
    marker.close();
    expect((client as unknown as { probeTimer?: unknown }).probeTimer, 'no probe timer armed').to.equal(undefined);
    expect(emu.audit.some((a) => a.nonResourceURL === '/version'), 'no probe sent').to.equal(false);
  });

  it('after an outage the idle pooled connections are dropped: a peer that vanished left them dead, recovery opens fresh ones', async () => {
    // an upstream that answers everything, behind a loopback proxy whose existing connections can be
    // made dead (nothing forwarded, nothing closed: a vanished peer behind a NAT) while new ones work
    const upstream = http.createServer((q, r) => {
      q.resume();
      q.on('end', () => r.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': 2 }).end('{}'));
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    const pairs: { client: net.Socket; upstream: net.Socket; dead: boolean }[] = [];
    const proxy = net.createServer((c) => {
      const u = net.connect({ port: (upstream.address() as net.AddressInfo).port, host: '127.0.0.1' });
      const p = { client: c, upstream: u, dead: false };
      pairs.push(p);
      c.on('data', (d: Buffer) => {
        if (!p.dead) u.write(d);
      });
      u.on('data', (d: Buffer) => {
        if (!p.dead) c.write(d);
      });
      const end = (): void => {
        c.destroy();
        u.destroy();
      };
      c.on('close', end).on('error', end);
      u.on('close', end).on('error', end);
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    try {
      const kc = new KubeConfig();
      kc.loadFromOptions({
        clusters: [{ name: 'c', server: `http://127.0.0.1:${(proxy.address() as net.AddressInfo).port}`, skipTLSVerify: true }],
        users: [{ name: 'u', token: 't' }],
        contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
        currentContext: 'x',
      });
      client = new KubeClient(kc, { timeoutMs: 300, failFast: true, probeIntervalMs: 50 });
      // several requests at once: several keep-alive connections, idle in the pool once answered
      await Promise.all([1, 2, 3, 4].map(() => client!.request('GET', '/x')));
      const idle = (): number => Object.values((client as unknown as { agent?: { freeSockets: Record<string, unknown[]> } }).agent?.freeSockets ?? {}).reduce((n, l) => n + l.length, 0);
      await until(() => idle() > 1, 'idle pooled connections');
      const pooled = idle();
      for (const p of pairs) p.dead = true;
      const e1 = await client.request('GET', '/x').catch((e: unknown) => e);
      expect(isKubeApiError(e1, 0), String(e1)).to.equal(true);
      expect(client.reachability.reachable).to.equal(false);
      await until(() => client!.reachability.reachable, 'the probe (a fresh connection) to close the breaker', 10_000);
      // the next requests must not land on the other dead pooled connections
      for (let i = 0; i < pooled; i++) {
        const r = await client.request('GET', '/x').catch((e: unknown) => e);
        expect(isKubeApiError(r), `request ${i + 1} after recovery: ${String(r)}`).to.equal(false);
      }
      expect(client.reachability.reachable).to.equal(true);
    } finally {
      for (const p of pairs) {
        p.client.destroy();
        p.upstream.destroy();
      }
      await new Promise<void>((r) => proxy.close(() => r()));
      upstream.closeAllConnections();
      await new Promise<void>((r) => upstream.close(() => r()));
    }
  });

  it('a watch that cannot be opened (hung server) ends with an error after the request timeout instead of waiting for ever', async () => {
    client = new KubeClient(emu.makeKubeConfig(), { timeoutMs: 300 });
    emu.faults.hang(true);
    const done = new Promise<unknown>((resolve) => {
      void client!.watch(Resources.vm, NS, { fieldSelector: `metadata.name=${VM_NAME}` }, () => undefined, resolve);
    });
    const err = await done;
    expect(isKubeApiError(err, 0), String(err)).to.equal(true);
    expect((err as Error).message).to.match(/not opened within 300 ms/);
  });

  it('a watch answered with an HTTP error reports its status (410 → KubeApiError 410, as the re-list logic expects)', async () => {
    client = new KubeClient(emu.makeKubeConfig(), { timeoutMs: 2000 });
    emu.faults.failNext(1, 410, (r) => r.url.includes('watch=true'));
    const err = await new Promise<unknown>((resolve) => {
      void client!.watch(Resources.vm, NS, {}, () => undefined, resolve);
    });
    expect(isKubeApiError(err, 410), String(err)).to.equal(true);
    expect((err as { statusCode?: number }).statusCode).to.equal(410);
  });
});

describe('health on the other paths', function () {
  this.timeout(30_000);

  it('KubeVirt: watches failing while direct reads work → Warning (state read directly), OK again once they recover', async () => {
    const emu = await startEmulator();
    emu.create(vmFixture({ runStrategy: 'Halted' }));
    const m = await machineFor(emu, emu.makeKubeConfig(), captureLogger().logger);
    try {
      await waitPower(m, 'Off');
      expect((await m.snapshot()).health).to.deep.equal({ status: 'OK' });
      // healthy and read from the watches: the generation a snapshot carries, without one
      expect(m.currentGeneration()).to.equal((await m.snapshot()).generation);
      let failing = true;
      emu.faults.failNext(1_000_000, 500, (r) => failing && r.url.includes('watch=true') && r.path.includes('/virtualmachines'));
      emu.faults.dropWatches();
      const snap = await until(async () => {
        const s = await m.snapshot();
        return s.health?.status === 'Warning' ? s : undefined;
      }, 'Warning after the grace period', 20_000);
      expect(snap.health?.message).to.match(/Live updates of the VirtualMachine.*interrupted.*read directly/);
      expect(snap.power).to.equal('Off');
      expect(m.currentGeneration(), 'no generation while a snapshot would not be healthy').to.equal(undefined);
      // the state is current: a change shows at once although no watch works
      const vm = vmOf(emu);
      vm.spec = { ...(vm.spec as object), runStrategy: 'Always' };
      emu.update(vm);
      await waitPower(m, 'On', 10_000);
      failing = false;
      await until(async () => (await m.snapshot()).health?.status === 'OK', 'OK once the watches work again', 10_000);
      await until(async () => m.currentGeneration() === (await m.snapshot()).generation, 'the generation again once healthy', 10_000);
      await m.close();
      expect(m.currentGeneration(), 'closed').to.equal(undefined);
    } finally {
      await m.close();
      await closeAll(emu);
    }
  });

  it('simulator setStale(): Redfish System/Chassis Critical with the message, actions 503, IPMI 0xFF; OK again after', async () => {
    const t = await startTestAgent();
    try {
      await t.sim.power('on');
      t.sim.setStale('platform view lost');
      const sys = await redfish(t, 'GET', SYS);
      expect(sys.status).to.equal(200);
      const st = sys.body.Status as { Health: string; Conditions: { Message: string; MessageId: string }[] };
      expect(st.Health).to.equal('Critical');
      expect(st.Conditions[0]!.MessageId).to.match(/^Base\.[\d.]+\.CouldNotEstablishConnection$/);
      expect(st.Conditions[0]!.Message).to.contain('platform view lost');
      expect((await redfish(t, 'POST', RESET, { ResetType: 'ForceOff' })).status).to.equal(503);
      const r = await ipmitool(t, 'power status');
      expect(r.code).to.not.equal(0);
      expect(r.out).to.not.contain('Chassis Power is on');
      t.sim.setStale(undefined);
      expect((await redfish(t, 'GET', SYS)).body.Status).to.deep.equal({ State: 'Enabled', Health: 'OK' });
      expect(await t.sim.getPowerState()).to.equal('On');
    } finally {
      await t.close();
    }
  });
});
