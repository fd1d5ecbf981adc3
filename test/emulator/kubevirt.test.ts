import { CustomObjectsApi, Watch, type KubeConfig } from '@kubernetes/client-node';
import { expect } from 'chai';
import { startApiServer, type ApiServerEmulator, type KubeObject } from './index.js';
import { emulatorPerTest, vmiSubresource, vmSubresource, type RawReply } from './helpers.js';

const NS = 'default';
type Status = { printableStatus?: string; ready?: boolean; created?: boolean; runStrategy?: string; conditions?: { type: string; status: string }[]; stateChangeRequests?: unknown[] };

function vmSpec(name: string, spec: Record<string, unknown>): KubeObject {
  return {
    apiVersion: 'kubevirt.io/v1',
    kind: 'VirtualMachine',
    metadata: { name, namespace: NS },
    spec: {
      ...spec,
      template: {
        metadata: { labels: { 'kubevirt.io/domain': name } },
        spec: {
          domain: { devices: { interfaces: [{ name: 'default', masquerade: {}, macAddress: '52:54:00:12:34:56' }], disks: [{ name: 'root', disk: { bus: 'virtio' } }] } },
          networks: [{ name: 'default', pod: {} }],
          volumes: [{ name: 'root', containerDisk: { image: 'img' } }],
        },
      },
    },
  };
}

describe('apiserver emulator: KubeVirt', () => {
  let emu: ApiServerEmulator;
  let kc: KubeConfig;

  const vm = (name: string): KubeObject | undefined => emu.get('kubevirt.io/v1', 'VirtualMachine', NS, name);
  const vmi = (name: string): KubeObject | undefined => emu.get('kubevirt.io/v1', 'VirtualMachineInstance', NS, name);
  const st = (name: string): Status => (vm(name)?.status ?? {}) as Status;
  const phase = (name: string): string | undefined => (vmi(name)?.status as { phase?: string } | undefined)?.phase;
  const running = (name: string): Promise<KubeObject> =>
    emu.waitFor(() => phase(name) === 'Running' && st(name).printableStatus === 'Running' && vmi(name));
  const stopped = (name: string): Promise<true> => emu.waitFor(() => !vmi(name) && st(name).printableStatus === 'Stopped');
  const call = (name: string, action: string, body: unknown = {}): Promise<RawReply> => vmSubresource(kc, NS, name, action, body);
  const expectConflict = (r: RawReply, name: string, why: string, resource = 'virtualmachine'): void => {
    expect(r.status, JSON.stringify(r.body)).to.equal(409);
    expect(r.body).to.deep.include({ kind: 'Status', reason: 'Conflict', code: 409, message: `Operation cannot be fulfilled on ${resource}.kubevirt.io "${name}": ${why}` });
  };

  emulatorPerTest({ vmiPhaseDelayMs: 5, vmiStopDelayMs: 40 }, (e) => {
    emu = e;
    kc = e.makeKubeConfig();
  });

  it('Halted: start → runStrategy Always, VMI phases in order, interfaces and VM status', async () => {
    const co = kc.makeApiClient(CustomObjectsApi);
    await co.createNamespacedCustomObject({ group: 'kubevirt.io', version: 'v1', namespace: NS, plural: 'virtualmachines', body: vmSpec('vm', { runStrategy: 'Halted' }) });
    await emu.waitFor(() => st('vm').printableStatus === 'Stopped');
    expect(vmi('vm')).to.equal(undefined);
    const phases: string[] = [];
    const ctl = await new Watch(kc).watch(`/apis/kubevirt.io/v1/namespaces/${NS}/virtualmachineinstances`, { resourceVersion: emu.resourceVersion() }, (_t, o: KubeObject) => {
      const p = (o.status as { phase?: string } | undefined)?.phase;
      if (p && phases[phases.length - 1] !== p) phases.push(p);
    }, () => undefined);
    const r = await call('vm', 'start');
    expect(r.status).to.equal(202);
    expect((vm('vm')?.spec as { runStrategy: string }).runStrategy).to.equal('Always');
    const inst = await running('vm');
    await emu.waitFor(() => phases.includes('Running')); // the watch event may trail the store
    ctl.abort();
    expect(phases).to.deep.equal(['Pending', 'Scheduling', 'Scheduled', 'Running']);
    expect(inst.metadata.ownerReferences?.[0]).to.deep.include({ kind: 'VirtualMachine', name: 'vm', uid: vm('vm')?.metadata.uid, controller: true });
    expect((inst.status as { interfaces: { mac: string; name: string }[] }).interfaces[0]).to.deep.include({ name: 'default', mac: '52:54:00:12:34:56' });
    expect((inst.status as { nodeName: string }).nodeName).to.equal('emulator-node');
    expect(st('vm')).to.deep.include({ ready: true, created: true, runStrategy: 'Always' });
    expect(st('vm').conditions?.find((c) => c.type === 'Ready')?.status).to.equal('True');
    expect(emu.audit.find((a) => a.subresource === 'start')).to.deep.equal({
      verb: 'update', group: 'subresources.kubevirt.io', version: 'v1', resource: 'virtualmachines', subresource: 'start', namespace: NS, name: 'vm', code: 202,
    });
  });

  it('Always: start → 409 already running; stop → Stopping then Stopped; stop again → 409 not running', async () => {
    emu.create(vmSpec('vm', { runStrategy: 'Always' }));
    await running('vm');
    expectConflict(await call('vm', 'start'), 'vm', 'VM is already running');
    const seen: string[] = [];
    let vmiMarked = false;
    const w = new Watch(kc);
    const c1 = await w.watch(`/apis/kubevirt.io/v1/namespaces/${NS}/virtualmachines`, { resourceVersion: emu.resourceVersion() }, (_t, o: KubeObject) => {
      const p = (o.status as Status | undefined)?.printableStatus ?? '';
      if (seen[seen.length - 1] !== p) seen.push(p);
    }, () => undefined);
    const c2 = await w.watch(`/apis/kubevirt.io/v1/namespaces/${NS}/virtualmachineinstances`, { resourceVersion: emu.resourceVersion() }, (t, o: KubeObject) => {
      if (t === 'MODIFIED' && o.metadata.deletionTimestamp) vmiMarked = true;
    }, () => undefined);
    expect((await call('vm', 'stop')).status).to.equal(202);
    expect((vm('vm')?.spec as { runStrategy: string }).runStrategy).to.equal('Halted');
    await stopped('vm');
    await emu.waitFor(() => seen.includes('Stopped') && vmiMarked);
    c1.abort();
    c2.abort();
    expect(seen).to.deep.equal(['Running', 'Stopping', 'Stopped']);
    expect(vmiMarked).to.equal(true);
    expectConflict(await call('vm', 'stop'), 'vm', 'VM is not running');
    expect(st('vm')).to.deep.include({ ready: false, created: false });
  });

  it('stop with gracePeriod 0 removes the VMI at once', async () => {
    emu.create(vmSpec('vm', { runStrategy: 'Always' }));
    await running('vm');
    expect((await call('vm', 'stop', { gracePeriod: 0 })).status).to.equal(202);
    expect(vmi('vm')).to.equal(undefined);
    await stopped('vm');
  });

  it('Halted while stopping: stop needs a shorter grace period, gracePeriod 0 forces it', async () => {
    const slow = await startApiServer({ vmiPhaseDelayMs: 5, vmiStopDelayMs: 5000 });
    try {
      const skc = slow.makeKubeConfig();
      slow.create(vmSpec('vm', { runStrategy: 'Always' }));
      await slow.waitFor(() => ((slow.get('kubevirt.io/v1', 'VirtualMachine', NS, 'vm')?.status ?? {}) as Status).printableStatus === 'Running');
      expect((await vmSubresource(skc, NS, 'vm', 'stop')).status).to.equal(202);
      await slow.waitFor(() => ((slow.get('kubevirt.io/v1', 'VirtualMachine', NS, 'vm')?.status ?? {}) as Status).printableStatus === 'Stopping');
      const again = await vmSubresource(skc, NS, 'vm', 'stop');
      expect(again.status).to.equal(409);
      expect((again.body as { message: string }).message).to.contain('Halted only supports manual stop requests with a shorter graceperiod');
      expect((await vmSubresource(skc, NS, 'vm', 'stop', { gracePeriod: 0 })).status).to.equal(202);
      await slow.waitFor(() => !slow.get('kubevirt.io/v1', 'VirtualMachineInstance', NS, 'vm'));
      await slow.waitFor(() => ((slow.get('kubevirt.io/v1', 'VirtualMachine', NS, 'vm')?.status ?? {}) as Status).printableStatus === 'Stopped');
      expect(slow.controllerErrors).to.deep.equal([]);
    } finally {
      await slow.close();
    }
  });

  it('deprecated spec.running: start/stop flip it; running together with runStrategy → 422', async () => {
    emu.create(vmSpec('vm', { running: false }));
    expect((await call('vm', 'start')).status).to.equal(202);
    expect((vm('vm')?.spec as { running: boolean; runStrategy?: string })).to.deep.include({ running: true });
    expect((vm('vm')?.spec as { runStrategy?: string }).runStrategy).to.equal(undefined);
    await running('vm');
    await call('vm', 'stop');
    expect((vm('vm')?.spec as { running: boolean }).running).to.equal(false);
    await stopped('vm');
    const co = kc.makeApiClient(CustomObjectsApi);
    try {
      await co.createNamespacedCustomObject({ group: 'kubevirt.io', version: 'v1', namespace: NS, plural: 'virtualmachines', body: vmSpec('both', { running: true, runStrategy: 'Always' }) });
      expect.fail('created a VM with both running and runStrategy');
    } catch (e) {
      expect((e as { code: number }).code).to.equal(422);
      expect(JSON.parse((e as { body: string }).body).message).to.contain('mutually exclusive');
    }
  });

  it('Manual: start/stop go through stateChangeRequests and keep runStrategy Manual', async () => {
    emu.create(vmSpec('vm', { runStrategy: 'Manual' }));
    await emu.waitFor(() => st('vm').printableStatus === 'Stopped');
    expectConflict(await call('vm', 'stop'), 'vm', 'VM is not running');
    expect((await call('vm', 'start')).status).to.equal(202);
    await running('vm');
    expect((vm('vm')?.spec as { runStrategy: string }).runStrategy).to.equal('Manual');
    expect(st('vm').stateChangeRequests).to.equal(undefined);
    expect((await call('vm', 'stop')).status).to.equal(202);
    await stopped('vm');
    expect((vm('vm')?.spec as { runStrategy: string }).runStrategy).to.equal('Manual');
  });

  it('RerunOnFailure: stop is a stop request, runStrategy stays and the VM stays stopped', async () => {
    emu.create(vmSpec('vm', { runStrategy: 'RerunOnFailure' }));
    await running('vm');
    expect((await call('vm', 'stop')).status).to.equal(202);
    await stopped('vm');
    await emu.settled();
    expect(vmi('vm')).to.equal(undefined);
    expect((vm('vm')?.spec as { runStrategy: string }).runStrategy).to.equal('RerunOnFailure');
    expectConflict(await call('vm', 'stop'), 'vm', 'VM is not running');
    expect((await call('vm', 'start')).status).to.equal(202);
    await running('vm');
  });

  it('restart gives a new VMI uid; Halted → 409; a grace period > 0 → 400', async () => {
    emu.create(vmSpec('vm', { runStrategy: 'Always' }));
    const first = await running('vm');
    const bad = await call('vm', 'restart', { gracePeriodSeconds: 5 });
    expect(bad.status).to.equal(400);
    expect((bad.body as { message: string }).message).to.equal('For force restart, only gracePeriod=0 is supported for now');
    expect((await call('vm', 'restart')).status).to.equal(202);
    const second = await emu.waitFor(() => {
      const v = vmi('vm');
      return v && v.metadata.uid !== first.metadata.uid && phase('vm') === 'Running' && v;
    });
    expect(second.metadata.uid).to.not.equal(first.metadata.uid);
    expect((vm('vm')?.spec as { runStrategy: string }).runStrategy).to.equal('Always');
    // forced restart
    expect((await call('vm', 'restart', { gracePeriodSeconds: 0 })).status).to.equal(202);
    await emu.waitFor(() => vmi('vm') && vmi('vm')?.metadata.uid !== second.metadata.uid && phase('vm') === 'Running');

    emu.create(vmSpec('halted', { runStrategy: 'Halted' }));
    expectConflict(await call('halted', 'restart'), 'halted', 'RunStategy Halted does not support manual restart requests');
    emu.create(vmSpec('manual', { runStrategy: 'Manual' }));
    expectConflict(await call('manual', 'restart'), 'manual', 'VM is not running: Halted');
  });

  it('guest shutdown: Always restarts (new uid), RerunOnFailure removes the VMI and stays Stopped until start, failure reruns', async () => {
    emu.create(vmSpec('always', { runStrategy: 'Always' }));
    emu.create(vmSpec('rerun', { runStrategy: 'RerunOnFailure' }));
    const a1 = await running('always');
    const r1 = await running('rerun');
    emu.kubevirt.guestShutdown(NS, 'always');
    emu.kubevirt.guestShutdown(NS, 'rerun');
    await emu.waitFor(() => vmi('always') && vmi('always')?.metadata.uid !== a1.metadata.uid && phase('always') === 'Running');
    // KubeVirt removes the finished VMI and, the guest having shut down cleanly, does not rerun it
    await stopped('rerun');
    await emu.settled();
    expect(vmi('rerun')).to.equal(undefined);
    expect(st('rerun').printableStatus).to.equal('Stopped');
    expect((await call('rerun', 'start')).status).to.equal(202);
    const r2 = await emu.waitFor(() => vmi('rerun') && vmi('rerun')?.metadata.uid !== r1.metadata.uid && phase('rerun') === 'Running' && vmi('rerun'));
    emu.kubevirt.failVmi(NS, 'rerun');
    await emu.waitFor(() => vmi('rerun') && vmi('rerun')?.metadata.uid !== r2.metadata.uid && phase('rerun') === 'Running');
  });

  it('RerunOnFailure: start from a Failed VMI is refused; Once: manual start refused', async () => {
    emu.create(vmSpec('once', { runStrategy: 'Once' }));
    await running('once');
    expectConflict(await call('once', 'start'), 'once', 'VM is already running');
    emu.kubevirt.guestShutdown(NS, 'once');
    await emu.waitFor(() => phase('once') === 'Succeeded');
    expectConflict(await call('once', 'start'), 'once', 'Once does not support manual start requests');
    emu.create(vmSpec('manual', { runStrategy: 'Manual' }));
    await call('manual', 'start');
    await running('manual');
    emu.kubevirt.failVmi(NS, 'manual');
    await emu.waitFor(() => phase('manual') === 'Failed' && st('manual').printableStatus === 'Stopped');
    expect((await call('manual', 'start')).status).to.equal(202);
    await emu.waitFor(() => phase('manual') === 'Running');
  });

  it('pause/unpause set the Paused condition and printableStatus, with the 409s', async () => {
    emu.create(vmSpec('vm', { runStrategy: 'Always' }));
    const notYet = await vmiSubresource(kc, NS, 'ghost', 'pause');
    expect(notYet.status).to.equal(404);
    await running('vm');
    expect((await vmiSubresource(kc, NS, 'vm', 'pause')).status).to.equal(200);
    await emu.waitFor(() => st('vm').printableStatus === 'Paused');
    expect((vmi('vm')?.status as Status).conditions?.find((c) => c.type === 'Paused')?.status).to.equal('True');
    expect(st('vm').conditions?.find((c) => c.type === 'Paused')?.status).to.equal('True');
    expectConflict(await vmiSubresource(kc, NS, 'vm', 'pause'), 'vm', 'VMI is already paused', 'virtualmachineinstance');
    expectConflict(await vmiSubresource(kc, NS, 'vm', 'softreboot'), 'vm', 'VMI is paused', 'virtualmachineinstance');
    expect((await vmiSubresource(kc, NS, 'vm', 'unpause')).status).to.equal(200);
    await emu.waitFor(() => st('vm').printableStatus === 'Running');
    expectConflict(await vmiSubresource(kc, NS, 'vm', 'unpause'), 'vm', 'VMI is not paused', 'virtualmachineinstance');
    expect((await vmiSubresource(kc, NS, 'vm', 'softreboot')).status).to.equal(200);
    expect((await vmiSubresource(kc, NS, 'vm', 'reset')).status).to.equal(200);
    expect(emu.kubevirt.actions.map((a) => `${a.action}:${a.code}`)).to.deep.equal([
      'pause:404', 'pause:200', 'pause:409', 'softreboot:409', 'unpause:200', 'unpause:409', 'softreboot:200', 'reset:200',
    ]);
  });

  it('start paused', async () => {
    emu.create(vmSpec('vm', { runStrategy: 'Halted' }));
    expect((await call('vm', 'start', { paused: true })).status).to.equal(202);
    await emu.waitFor(() => st('vm').printableStatus === 'Paused');
  });

  it('addvolume/removevolume hot-plug a new disk into the template and the running VMI', async () => {
    emu.create(vmSpec('vm', { runStrategy: 'Always' }));
    await running('vm');
    const bad = await call('vm', 'addvolume', { name: 'cd' });
    expect(bad.status).to.equal(400);
    expect((bad.body as { message: string }).message).to.equal('AddVolumeOptions requires disk to not be nil');
    // a new hot-plugged device must be a scsi/virtio disk (storagehotplug.go ValidateHotplugDiskConfiguration)
    const add = { name: 'cd', disk: { disk: { bus: 'scsi' } }, volumeSource: { dataVolume: { name: 'iso-dv' } } };
    expect((await call('vm', 'addvolume', add)).status).to.equal(202);
    // the DataVolume does not exist yet: the hot-plugged volume waits for it
    const waiting = await emu.waitFor(() => {
      const vs = (vmi('vm')?.status as { volumeStatus?: { name: string; phase: string }[] }).volumeStatus ?? [];
      return vs.find((s) => s.name === 'cd');
    });
    expect(waiting).to.deep.include({ phase: 'Pending', reason: 'FailedPvcNotFound', message: 'PVC iso-dv not found' });
    emu.create({ apiVersion: 'cdi.kubevirt.io/v1beta1', kind: 'DataVolume', metadata: { name: 'iso-dv', namespace: NS }, spec: { source: { http: { url: 'http://images.example/x.iso' } }, storage: { resources: { requests: { storage: '1Gi' } } } } });
    const plugged = await emu.waitFor(() => {
      const v = vmi('vm');
      const vs = (v?.status as { volumeStatus?: { name: string; phase: string; hotplugVolume?: unknown }[] }).volumeStatus ?? [];
      return vs.find((s) => s.name === 'cd' && s.phase === 'Ready');
    });
    expect(plugged.hotplugVolume).to.be.an('object');
    const tpl = (vm('vm')?.spec as { template: { spec: { volumes: { name: string }[]; domain: { devices: { disks: { name: string }[] } } } } }).template.spec;
    expect(tpl.volumes.find((v) => v.name === 'cd')).to.deep.equal({ name: 'cd', dataVolume: { name: 'iso-dv', hotpluggable: true } });
    expect(tpl.domain.devices.disks.find((d) => d.name === 'cd')).to.deep.equal({ name: 'cd', disk: { bus: 'scsi' } });
    expect(st('vm')).to.not.have.property('volumeRequests');
    expectConflict(await call('vm', 'addvolume', add), 'vm', 'Unable to add volume [cd] because volume with that name already exists');
    expectConflict(await call('vm', 'addvolume', { ...add, name: 'cd2' }), 'vm', 'Unable to add volume source [iso-dv] because it already exists');
    expectConflict(await call('vm', 'removevolume', { name: 'root' }), 'vm', 'Unable to remove volume [root] because it is not hotpluggable');
    expectConflict(await call('vm', 'removevolume', { name: 'nope' }), 'vm', 'Unable to remove volume [nope] because it does not exist');
    expect((await call('vm', 'removevolume', { name: 'cd' })).status).to.equal(202);
    await emu.waitFor(() => {
      const vs = (vmi('vm')?.status as { volumeStatus?: { name: string }[] }).volumeStatus ?? [];
      return !vs.some((s) => s.name === 'cd') && !((vmi('vm')?.spec as { volumes: { name: string }[] }).volumes.some((v) => v.name === 'cd'));
    });
    const tpl2 = (vm('vm')?.spec as { template: { spec: { volumes: { name: string }[] } } }).template.spec;
    expect(tpl2.volumes.map((v) => v.name)).to.deep.equal(['root']);
  });

  it('a template edit on a running VM raises RestartRequired until the next VMI; hot-plug does not', async () => {
    emu.create(vmSpec('vm', { runStrategy: 'Always' }));
    const first = await running('vm');
    expect(first.metadata.annotations?.['kubevirt.io/vm-generation']).to.equal('1');
    const restartRequired = (): boolean => !!st('vm').conditions?.some((c) => c.type === 'RestartRequired' && c.status === 'True');
    emu.create({ apiVersion: 'cdi.kubevirt.io/v1beta1', kind: 'DataVolume', metadata: { name: 'dv', namespace: NS }, spec: { source: { blank: {} }, storage: { resources: { requests: { storage: '1Gi' } } } } });
    expect((await call('vm', 'addvolume', { name: 'hp', disk: { disk: { bus: 'scsi' } }, volumeSource: { dataVolume: { name: 'dv' } } })).status).to.equal(202);
    await emu.waitFor(() => (vmi('vm')?.spec as { volumes: { name: string }[] }).volumes.some((v) => v.name === 'hp'));
    await emu.settled();
    expect(restartRequired()).to.equal(false);
    const v = vm('vm')!;
    (v.spec as { template: { spec: { domain: Record<string, unknown> } } }).template.spec.domain.cpu = { cores: 4 };
    emu.update(v);
    await emu.waitFor(restartRequired);
    expect((await call('vm', 'restart')).status).to.equal(202);
    await emu.waitFor(() => vmi('vm')?.metadata.uid !== first.metadata.uid && phase('vm') === 'Running' && !restartRequired());
    expect((vmi('vm')?.spec as { domain: { cpu: unknown } }).domain.cpu).to.deep.equal({ cores: 4 });
  });

  it('guest agent hook, VM deletion garbage-collects the VMI, 404 for a missing VM', async () => {
    emu.create(vmSpec('vm', { runStrategy: 'Always' }));
    emu.kubevirt.setGuestAgent(NS, 'vm', { guestOSInfo: { id: 'fedora', name: 'Fedora Linux' } });
    const inst = await running('vm');
    expect((inst.status as { guestOSInfo: unknown }).guestOSInfo).to.deep.equal({ id: 'fedora', name: 'Fedora Linux' });
    expect((inst.status as Status).conditions?.some((c) => c.type === 'AgentConnected' && c.status === 'True')).to.equal(true);
    const missing = await call('ghost', 'start');
    expect(missing.status).to.equal(404);
    expect((missing.body as { message: string }).message).to.equal('virtualmachine.kubevirt.io "ghost" not found');
    emu.delete('kubevirt.io/v1', 'VirtualMachine', NS, 'vm');
    await emu.waitFor(() => !vmi('vm'));
  });
});
