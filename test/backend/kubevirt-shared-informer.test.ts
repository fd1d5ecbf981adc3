/**
 * Shared watches (src/backend/kubevirt/shared-informer.ts) on the apiserver emulator: one
 * namespace watch per resource for many single-object views, only subscribed names kept, late
 * subscribers primed by a GET, re-list after a 410, the watch ends with its last view; and
 * KubeVirt machines running over it on one client.
 */
import { expect } from 'chai';
import { ObjectWatch, type ObjectSource } from '../../src/backend/kubevirt/informer.js';
import { NamespaceWatch, SharedWatches } from '../../src/backend/kubevirt/shared-informer.js';
import { KubeVirtMachine } from '../../src/backend/kubevirt/machine.js';
import type { VirtualMachine } from '../../src/backend/kubevirt/types.js';
import { nullLogger } from '../../src/common/logger.js';
import { KubeClient } from '../../src/kube/client.js';
import { Resources } from '../../src/kube/resources.js';
import type { ApiServerEmulator } from '../emulator/index.js';
import { NS, startEmulator, until, vmFixture, vmiPhase } from './kubevirt-fixtures.js';

describe('kubevirt backend: shared namespace watches', function () {
  this.timeout(20_000);
  let emu: ApiServerEmulator;
  let client: KubeClient;
  let shared: SharedWatches;

  beforeEach(async () => {
    emu = await startEmulator();
    for (const name of ['vm1', 'vm2', 'vm3']) emu.create(vmFixture({ name, cdrom: false }));
    client = new KubeClient(emu.makeKubeConfig(), { logger: nullLogger() });
    shared = new SharedWatches([Resources.vm, Resources.vmi], { client, logger: nullLogger(), minBackoffMs: 20, maxBackoffMs: 200 });
  });
  afterEach(async () => {
    await shared.close();
    client.close();
    await emu.close();
  });

  const view = (name: string, changes: string[] = []): ObjectSource<VirtualMachine> =>
    shared.factory<VirtualMachine>({
      client,
      logger: nullLogger(),
      resource: Resources.vm,
      namespace: NS,
      name,
      kind: 'VirtualMachine',
      onChange: (o) => changes.push(`${name}:${o?.metadata?.resourceVersion ?? 'gone'}`),
    });
  const vmWatches = () => emu.audit.filter((a) => a.verb === 'watch' && a.resource === 'virtualmachines');

  it('one watch serves every view; each view gets only its own object; unsubscribed names are not kept', async () => {
    const c1: string[] = [];
    const c2: string[] = [];
    const v1 = view('vm1', c1);
    const v2 = view('vm2', c2);
    v1.start();
    v2.start();
    await Promise.all([v1.waitSynced(3000), v2.waitSynced(3000)]);
    await until(() => v1.healthy && v2.healthy, 'healthy views');
    expect(v1.current?.metadata?.name).to.equal('vm1');
    expect(v2.current?.metadata?.name).to.equal('vm2');
    expect(vmWatches().map((a) => a.name)).to.deep.equal([undefined]);
    expect(shared.size).to.equal(1);
    const nw = (v1 as unknown as { nw: NamespaceWatch<VirtualMachine> }).nw;
    expect([...nw.items.keys()].sort(), 'vm3 is in the namespace but nobody serves it').to.deep.equal(['vm1', 'vm2']);

    const vm2 = emu.get('kubevirt.io/v1', 'VirtualMachine', NS, 'vm2')!;
    emu.update({ ...vm2, metadata: { ...vm2.metadata, annotations: { touched: 'yes' } } });
    const vm3 = emu.get('kubevirt.io/v1', 'VirtualMachine', NS, 'vm3')!;
    emu.update({ ...vm3, metadata: { ...vm3.metadata, annotations: { touched: 'yes' } } });
    await until(() => v2.current?.metadata?.annotations?.['touched'] === 'yes', 'vm2 change seen');
    // each view's own changes may land more than once (the emulator's virt-controller writes the
    // status after the create, sometimes after the first list): every notification is a new
    // version of the view's own VM, the last one its current version; a notification caused by
    // another VM would repeat a version
    const ownVersions = (name: string, changes: readonly string[], current: string | undefined): void => {
      const versions = changes.map((c) => {
        expect(c.startsWith(`${name}:`), `${name} saw nothing of the other VMs: ${changes.join(' ')}`).to.equal(true);
        return Number(c.slice(name.length + 1));
      });
      expect(versions.every((v, i) => i === 0 || v > (versions[i - 1] as number)), `${name}: one notification per version: ${changes.join(' ')}`).to.equal(true);
      expect(changes.at(-1)).to.equal(`${name}:${current}`);
    };
    ownVersions('vm1', c1, v1.current?.metadata?.resourceVersion);
    ownVersions('vm2', c2, v2.current?.metadata?.resourceVersion);
    expect(c2.length, 'vm2: its first version and the touched one').to.be.at.least(2);
    expect(nw.items.has('vm3')).to.equal(false);

    // a view that joins later is primed by one GET; until then it reads as not healthy (the machine GETs itself)
    const v3 = view('vm3');
    v3.start();
    expect(v3.healthy).to.equal(false);
    await until(() => v3.healthy && v3.current?.metadata?.annotations?.['touched'] === 'yes', 'vm3 primed');
    expect(emu.audit.filter((a) => a.verb === 'get' && a.resource === 'virtualmachines' && a.name === 'vm3').length).to.equal(1);
    expect(vmWatches().length, 'no new watch for vm3').to.equal(1);

    // a deletion reaches its view only
    emu.delete('kubevirt.io/v1', 'VirtualMachine', NS, 'vm1');
    await until(() => v1.current === undefined, 'vm1 gone');
    expect(c1[c1.length - 1]).to.equal('vm1:gone');
    expect(v2.current).to.not.equal(undefined);

    // the watch ends with its last view; a new view starts a new one
    await Promise.all([v1.stop(), v2.stop(), v3.stop()]);
    expect(shared.size).to.equal(0);
    const again = view('vm2');
    again.start();
    await until(() => again.healthy, 'new watch');
    expect(shared.created).to.equal(2);
    await again.stop();
  });

  it('a dropped stream and a compacted history (410): the namespace watch re-lists and its views follow again', async () => {
    const v = view('vm2');
    v.start();
    await until(() => v.healthy, 'healthy');
    const lists = () => emu.audit.filter((a) => a.verb === 'list' && a.resource === 'virtualmachines').length;
    const before = lists();
    // the stream drops and cannot come back until the history it would resume from is gone: a
    // change lands meanwhile and is compacted away. (Expiring first let a quick re-watch resume
    // from the then-current version, which compaction keeps valid: no 410, no re-list; seen once
    // under a pinned CPU hog.)
    let blocked = true;
    emu.faults.failNext(1_000_000, 500, (r) => blocked && r.url.includes('watch=true') && r.path.includes('/virtualmachines'));
    emu.faults.dropWatches();
    const vm2 = emu.get('kubevirt.io/v1', 'VirtualMachine', NS, 'vm2')!;
    emu.update({ ...vm2, metadata: { ...vm2.metadata, annotations: { after: 'drop' } } });
    emu.faults.expireHistory();
    blocked = false;
    await until(() => v.healthy && v.current?.metadata?.annotations?.['after'] === 'drop', 'change after the drop');
    expect(lists()).to.be.greaterThan(before);
    await v.stop();
  });

  it('other resources (media DataVolumes) keep a watch of their own', () => {
    const dv = shared.factory({ client, logger: nullLogger(), resource: Resources.dataVolume, namespace: NS, name: 'vm1-vmedia-cdrom', kind: 'DataVolume', onChange: () => undefined });
    expect(dv).to.be.instanceOf(ObjectWatch);
    expect(shared.size).to.equal(0);
  });

  it('KubeVirt machines over the shared watches: independent power control, close() leaves the shared client open', async () => {
    const machine = (name: string) =>
      new KubeVirtMachine({ client, namespace: NS, name, logger: nullLogger(), watchSource: shared.factory, sharedClient: true, watchMinBackoffMs: 20, watchMaxBackoffMs: 200 });
    const m1 = machine('vm1');
    const m2 = machine('vm2');
    await Promise.all([m1.start(3000), m2.start(3000)]);
    expect(await m1.getPowerState()).to.equal('Off');
    await m2.power('on');
    await until(() => vmiPhase(emu, 'vm2') === 'Running', 'vm2 VMI running');
    await until(async () => (await m2.getPowerState()) === 'On', 'm2 On');
    expect(await m1.getPowerState()).to.equal('Off');
    expect(vmiPhase(emu, 'vm1')).to.equal(undefined);
    expect(shared.size, 'one VM and one VMI watch for both machines').to.equal(2);
    expect(emu.audit.filter((a) => a.verb === 'watch' && a.resource === 'virtualmachineinstances').length).to.equal(1);
    await m1.close();
    // m2 still reads through the same client and watches
    expect(await m2.getPowerState()).to.equal('On');
    await m2.close();
    expect(shared.size).to.equal(0);
  });
});
