/**
 * KubeVirt mode (src/events/kube.ts): the agent's actions land as core/v1 Events on the
 * VirtualMachine in the apiserver emulator, shaped like client-go's EventRecorder writes them
 * (count/lastTimestamp aggregation by PATCH, combined similar events, spam bucket), never carrying
 * a secret; Redfish subscriptions persist in the `<vm>-virtbmc-events` ConfigMap.
 */
import { expect } from 'chai';
import type { ApiServerEmulator } from '../emulator/index.js';
import { KubeClient } from '../../src/kube/client.js';
import { nullLogger } from '../../src/common/logger.js';
import { EventHub } from '../../src/events/hub.js';
import { MachineEventBridge } from '../../src/events/machine.js';
import { ConfigMapPersistence, KubeEventRecorder, eventsConfigMapName } from '../../src/events/kube.js';
import { SubscriptionManager } from '../../src/events/subscriptions.js';
import type { KubeVirtMachine } from '../../src/backend/kubevirt/index.js';
import { emulatorPerTest, newMachine, until, vmFixture, waitPower } from '../backend/kubevirt-fixtures.js';

interface Ev {
  metadata: { name: string };
  involvedObject: { kind: string; name: string; uid?: string; apiVersion: string };
  reason: string;
  message: string;
  type: string;
  count: number;
  firstTimestamp: string;
  lastTimestamp: string;
  source: { component: string };
  reportingComponent: string;
}

describe('events in KubeVirt mode: Kubernetes Events and the subscriptions ConfigMap', function () {
  this.timeout(20000);
  let emu: ApiServerEmulator;
  let m: KubeVirtMachine | undefined;
  emulatorPerTest({}, { set: (e) => void (emu = e), get: () => emu });
  afterEach(async () => {
    await m?.close();
    m = undefined;
  });

  const events = (): Ev[] => emu.list('v1', 'Event', 'default') as unknown as Ev[];
  const ours = (): Ev[] => events().filter((e) => e.source?.component === 'virtbmc');

  it('a power on by the BMC is a Normal PoweredOn Event on the VM, reported by virtbmc', async () => {
    emu.create(vmFixture({ runStrategy: 'Halted' }));
    m = await newMachine(emu);
    const hub = new EventHub();
    const bridge = new MachineEventBridge(m, hub, { healthIntervalMs: 0 });
    await bridge.start();
    const client = new KubeClient(emu.makeKubeConfig(), { logger: nullLogger() });
    const rec = new KubeEventRecorder({ client, namespace: 'default', vmName: 'vm1', instance: 'vm1-virtbmc-abc', logger: nullLogger() });
    rec.attach(hub);
    await m.power('on');
    await waitPower(m, 'On');
    await until(() => ours().some((e) => e.reason === 'PoweredOn'), 'PoweredOn event');
    await rec.flushed();
    const ev = ours().find((e) => e.reason === 'PoweredOn')!;
    const vm = emu.get('kubevirt.io/v1', 'VirtualMachine', 'default', 'vm1')!;
    expect(ev.involvedObject).to.deep.include({ apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachine', name: 'vm1', uid: vm.metadata!.uid });
    expect(ev).to.include({ type: 'Normal', count: 1, reportingComponent: 'virtbmc' });
    expect(ev.metadata.name).to.match(/^vm1\.[0-9a-f]+$/);
    expect(ev.message).to.match(/Power is On/);
    bridge.close();
  });

  it('repeats of the same event patch count and lastTimestamp; many similar ones are combined; a failed login names no password', async () => {
    emu.create(vmFixture({ runStrategy: 'Halted' }));
    const client = new KubeClient(emu.makeKubeConfig(), { logger: nullLogger() });
    let clock = Date.parse('2026-03-01T10:00:00Z');
    const now = (): Date => new Date(clock);
    const rec = new KubeEventRecorder({ client, namespace: 'default', vmName: 'vm1', logger: nullLogger(), now });
    rec.record('Warning', 'LoginFailed', 'Failed IPMI login for admin from 10.0.0.1');
    clock += 5000;
    rec.record('Warning', 'LoginFailed', 'Failed IPMI login for admin from 10.0.0.1');
    await rec.flushed();
    let list = ours().filter((e) => e.reason === 'LoginFailed');
    expect(list).to.have.length(1);
    expect(list[0]).to.include({ count: 2, firstTimestamp: '2026-03-01T10:00:00Z', lastTimestamp: '2026-03-01T10:00:05Z' });
    for (let i = 0; i < 12; i++) rec.record('Warning', 'MediaInsertFailed', `Virtual media cdrom: HTTP 404 #${i}`);
    await rec.flushed();
    list = ours().filter((e) => e.reason === 'MediaInsertFailed');
    // 10 distinct ones, then one combined Event counting the rest
    expect(list.length).to.equal(11);
    const combined = list.find((e) => e.message.startsWith('(combined from similar events)'))!;
    expect(combined.count).to.equal(2);
    expect(rec.stats.dropped).to.equal(0);
    // the spam bucket: burst 25 per object, then drops until it refills
    for (let i = 0; i < 30; i++) rec.record('Normal', 'PoweredOn', `x${i}`);
    await rec.flushed();
    expect(rec.stats.dropped).to.be.greaterThan(0);
  });

  it('keeps subscriptions in the <vm>-virtbmc-events ConfigMap owned by the VMBMC and loads them back', async () => {
    const client = new KubeClient(emu.makeKubeConfig(), { logger: nullLogger() });
    const owner = { apiVersion: 'bmc.kubevirt.io/v1beta1', kind: 'VirtualMachineBMC', name: 'vm1', uid: '1234-5678' };
    const name = eventsConfigMapName('vm1');
    expect(name).to.equal('vm1-virtbmc-events');
    const a = new SubscriptionManager({ persistence: new ConfigMapPersistence({ client, namespace: 'default', name, owner }) });
    await a.load();
    await a.create({ destination: 'http://127.0.0.1:9/x', owner: 'admin', deliveryRetryPolicy: 'SuspendRetries', context: 'c1' });
    await a.create({ destination: 'https://127.0.0.1:9/y', owner: 'admin', deliveryRetryPolicy: 'RetryForever' });
    const cm = emu.get('v1', 'ConfigMap', 'default', name) as unknown as { metadata: { ownerReferences: { uid: string }[] }; data: Record<string, string> };
    expect(cm.metadata.ownerReferences[0]!.uid).to.equal('1234-5678');
    const b = new SubscriptionManager({ persistence: new ConfigMapPersistence({ client, namespace: 'default', name, owner }) });
    await b.load();
    expect(b.list().map((s) => [s.id, s.destination, s.context])).to.deep.equal([
      ['1', 'http://127.0.0.1:9/x', 'c1'],
      ['2', 'https://127.0.0.1:9/y', undefined],
    ]);
    await b.remove('1');
    const c = new SubscriptionManager({ persistence: new ConfigMapPersistence({ client, namespace: 'default', name, owner }) });
    await c.load();
    expect(c.list().map((s) => s.id)).to.deep.equal(['2']);
  });
});
