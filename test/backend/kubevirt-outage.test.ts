/**
 * KubeVirt backend under API trouble: refused connections, 500s, dropped watches, compacted
 * history and RBAC denials map to Unavailable (with a log line naming the missing permission),
 * and the backend recovers on its own when the API server is back.
 */
import { expect } from 'chai';
import type { KubeVirtMachine } from '../../src/backend/kubevirt/index.js';
import { isBackendError } from '../../src/backend/types.js';
import { KubeClient } from '../../src/kube/client.js';
import { Resources } from '../../src/kube/resources.js';
import { ObjectWatch } from '../../src/backend/kubevirt/informer.js';
import type { VirtualMachine } from '../../src/backend/kubevirt/types.js';
import { nullLogger } from '../../src/common/logger.js';
import type { ApiServerEmulator } from '../emulator/index.js';
import { NS, VM_NAME, captureLogger, emulatorPerTest, newMachine, until, vmFixture, vmOf, waitPower } from './kubevirt-fixtures.js';

describe('kubevirt backend: API outages and errors', function () {
  this.timeout(20000);
  let emu: ApiServerEmulator;
  let m: KubeVirtMachine | undefined;

  emulatorPerTest({}, {
    set: (e) => {
      emu = e;
    },
    get: () => emu,
  });

  it('refused connections → Unavailable for reads and actions, then recovery with fresh state', async () => {
    emu.create(vmFixture({ runStrategy: 'Halted' }));
    m = await newMachine(emu);
    expect(await m.getPowerState()).to.equal('Off');
    // the watch caches are current: the synchronous read (IPMI Get Chassis Status) answers from them
    expect(m.powerStateNow()).to.equal('Off');

    await emu.faults.refuseConnections(true);
    const read = await until(() => m!.getPowerState().then(() => undefined, (e: unknown) => e), 'reads to fail');
    expect(isBackendError(read, 'Unavailable'), String(read)).to.equal(true);
    // ... and never serves them stale: during the outage it has no answer, getPowerState fails
    expect(m.powerStateNow()).to.equal(undefined);
    const act = await m.power('on').catch((e: unknown) => e);
    expect(isBackendError(act, 'Unavailable'), String(act)).to.equal(true);
    expect((act as { retryAfterSeconds?: number }).retryAfterSeconds).to.be.a('number');
    // a status read shows the last state seen, marked Critical (Redfish Status.Health), not an error
    const snap = await m.snapshot();
    expect(snap.power).to.equal('Off');
    expect(snap.health?.status).to.equal('Critical');
    expect(snap.health?.message).to.match(/cannot be reached.*last one seen/);
    expect(snap.health?.since).to.be.instanceOf(Date);

    // meanwhile someone starts the VM directly in the cluster
    const vm = vmOf(emu);
    vm.spec = { ...(vm.spec as object), runStrategy: 'Always' };
    emu.update(vm);

    await emu.faults.refuseConnections(false);
    await waitPower(m, 'On');
    expect((await m.snapshot()).health).to.deep.equal({ status: 'OK' });
    // the watches re-establish on their own; from then on the synchronous read answers again
    expect(await until(() => m!.powerStateNow(), 'the watches to be current again')).to.equal('On');
    await m.power('gracefulOff');
    await waitPower(m, 'Off');
  });

  it('an API server that does not answer in time → Unavailable', async () => {
    emu.create(vmFixture({ runStrategy: 'Halted' }));
    m = await newMachine(emu, { requestTimeoutMs: 300 });
    emu.faults.delayResponses(1500);
    const err = await m.power('on').catch((e: unknown) => e);
    // the client's own 300 ms timeout answered, not the server's late (1500 ms) answer, which would
    // have been a success
    expect(isBackendError(err, 'Unavailable'), String(err)).to.equal(true);
    expect((err as Error).message).to.match(/300 ms/);
    // known unreachable now: the next write fails at once and is never sent
    const starts = () => emu.audit.filter((a) => a.subresource === 'start').length;
    const sent = starts();
    const err2 = await m.power('on').catch((e: unknown) => e);
    expect(isBackendError(err2, 'Unavailable'), String(err2)).to.equal(true);
    expect(String((err2 as Error & { cause?: unknown }).cause ?? (err2 as Error).message), 'failed fast: not sent, rather than another timeout').to.match(/not sent/);
    expect(starts(), 'the write was never sent').to.equal(sent);
    emu.faults.delayResponses(0);
    // the client's probe sees the server answer again, then writes go through (once)
    await until(() => m!.power('on').then(() => true), 'the write to go through after the API answers again');
    await waitPower(m, 'On');
    expect(starts() - sent, 'the start request reached the server exactly once after the outage').to.equal(1);
  });

  it('a 500 from the API server → Unavailable; the next call works', async () => {
    emu.create(vmFixture({ runStrategy: 'Halted' }));
    m = await newMachine(emu);
    emu.faults.failNext(1, 500, (r) => r.method === 'PUT' && r.path.endsWith('/start'));
    const err = await m.power('on').catch((e: unknown) => e);
    expect(isBackendError(err, 'Unavailable'), String(err)).to.equal(true);
    await m.power('on');
    await waitPower(m, 'On');
  });

  it('the watch survives dropped streams and a compacted history (410 → re-list)', async () => {
    emu.create(vmFixture({ runStrategy: 'Halted' }));
    m = await newMachine(emu);
    emu.faults.dropWatches();
    emu.faults.expireHistory();
    const vm = vmOf(emu);
    vm.spec = { ...(vm.spec as object), runStrategy: 'Always' };
    emu.update(vm);
    await waitPower(m, 'On');
    emu.faults.expireHistory();
    emu.faults.dropWatches();
    await m.power('forceOff');
    await waitPower(m, 'Off');
    const watches = emu.audit.filter((a) => a.verb === 'watch' && a.resource === 'virtualmachines');
    expect(watches.length).to.be.greaterThan(1);
  });

  it('the watch cache never steps back to an older resourceVersion, and a DELETED only removes the object it names', async () => {
    emu.create(vmFixture({ runStrategy: 'Halted' }));
    const seen: (string | undefined)[] = [];
    // every watch event the ObjectWatch has been handed (recorded after it handled it): the test
    // waits for the event itself instead of sleeping, then checks what the cache made of it
    const client = new KubeClient(emu.makeKubeConfig());
    const delivered: { type: string; rv: string | undefined }[] = [];
    const watch = client.watch.bind(client);
    client.watch = (r, ns, q, onEvent, onDone) =>
      watch(r, ns, q, (type, o) => {
        onEvent(type, o);
        delivered.push({ type, rv: (o as VirtualMachine).metadata?.resourceVersion });
      }, onDone);
    const w = new ObjectWatch<VirtualMachine>({
      client,
      logger: nullLogger(),
      resource: Resources.vm,
      namespace: NS,
      name: VM_NAME,
      kind: 'VirtualMachine',
      onChange: (o) => seen.push(o?.metadata?.resourceVersion),
      minBackoffMs: 20,
    });
    w.start();
    try {
      await w.waitSynced(2000);
      await until(() => w.healthy, 'watch open');
      // a direct read that is ahead of the stream (as after our own write)
      const ahead = { ...structuredClone(vmOf(emu)), metadata: { ...vmOf(emu).metadata, resourceVersion: '999999' } } as VirtualMachine;
      w.offer(ahead);
      const vm = vmOf(emu);
      vm.metadata.labels = { late: 'event' };
      const late = emu.update(vm); // its MODIFIED event carries a smaller resourceVersion
      await until(() => delivered.some((d) => d.type === 'MODIFIED' && d.rv === late.metadata.resourceVersion), 'the MODIFIED event delivered');
      expect(w.current?.metadata?.resourceVersion).to.equal('999999');
      // a DELETED event for another uid (an old incarnation) does not clear the cache
      emu.delete('kubevirt.io/v1', 'VirtualMachine', NS, VM_NAME);
      w.offer({ ...ahead, metadata: { ...ahead.metadata, uid: 'another-uid', resourceVersion: '1000000' } });
      await until(() => delivered.some((d) => d.type === 'DELETED'), 'the DELETED event delivered');
      expect(w.current?.metadata?.uid).to.equal('another-uid');
      expect(seen.filter(Boolean).map(Number)).to.satisfy((rvs: number[]) => rvs.every((v, i) => i === 0 || v >= rvs[i - 1]!));
    } finally {
      await w.stop();
    }
  });

  it('403 → Unavailable and a log line naming the missing RBAC verb and resource', async () => {
    emu.create(vmFixture({ runStrategy: 'Halted' }));
    const cap = captureLogger();
    m = await newMachine(emu, { logger: cap.logger });
    emu.faults.failNext(1, 403, (r) => r.method === 'PUT' && r.path.endsWith('/start'));
    const err = await m.power('on').catch((e: unknown) => e);
    expect(isBackendError(err, 'Unavailable'), String(err)).to.equal(true);
    expect((err as Error).message).to.match(/RBAC/);
    const line = cap.lines().find((l) => l.includes('RBAC'));
    expect(line, cap.lines().join('\n')).to.not.equal(undefined);
    expect(JSON.parse(line!)).to.deep.include({ verb: 'update', group: 'subresources.kubevirt.io', resource: 'virtualmachines/start' });
  });

  it('an unreachable API at start-up: creation still succeeds, calls say Unavailable until it is back', async () => {
    emu.create(vmFixture({ runStrategy: 'Always' }));
    await emu.faults.refuseConnections(true);
    m = await newMachine(emu);
    const err = await m.getPowerState().catch((e: unknown) => e);
    expect(isBackendError(err, 'Unavailable'), String(err)).to.equal(true);
    await emu.faults.refuseConnections(false);
    await waitPower(m, 'On');
  });
});
