/**
 * BootOnceKeeper (src/backend/kubevirt/machine-boot.ts) with fake timers and a scripted API: a
 * restore the API keeps refusing is retried on a 2 s → 30 s backoff, reset after a success, and
 * close() ends the retries.
 */
import { expect } from 'chai';
import sinon from 'sinon';
import { ONCE_ANNOTATION } from '../../src/backend/kubevirt/boot.js';
import { BootOnceKeeper } from '../../src/backend/kubevirt/machine-boot.js';
import type { ObjectWatch } from '../../src/backend/kubevirt/informer.js';
import type { VirtualMachine, VirtualMachineInstance } from '../../src/backend/kubevirt/types.js';
import { nullLogger } from '../../src/common/logger.js';
import { KubeApiError, type KubeClient } from '../../src/kube/client.js';

function consumedVm(): VirtualMachine {
  return {
    apiVersion: 'kubevirt.io/v1',
    kind: 'VirtualMachine',
    metadata: {
      name: 'vm1',
      namespace: 'ns',
      resourceVersion: '7',
      annotations: { [ONCE_ANNOTATION]: JSON.stringify({ orders: { 'interface/n': null }, bootloader: null, vmiUid: null, consumedBy: 'gone' }) },
    },
    spec: { runStrategy: 'Halted', template: { spec: { domain: { devices: { interfaces: [{ name: 'n', bootOrder: 1 }] } } } } },
  };
}

describe('kubevirt BootOnceKeeper retries (fake timers)', () => {
  let clock: sinon.SinonFakeTimers;
  beforeEach(() => {
    clock = sinon.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
  });
  afterEach(() => clock.restore());

  function setup(failures: number): { keeper: BootOnceKeeper; patchTimes: number[]; vm: () => VirtualMachine } {
    let vm = consumedVm();
    const patchTimes: number[] = [];
    const client = {
      jsonPatch: (): Promise<VirtualMachine> => {
        patchTimes.push(Date.now());
        if (patchTimes.length <= failures) return Promise.reject(new KubeApiError(500, 'PATCH', '/apis/kubevirt.io/v1/namespaces/ns/virtualmachines/vm1', { message: 'etcd' }, 'etcd'));
        vm = { ...vm, metadata: { ...vm.metadata, resourceVersion: '8', annotations: {} } };
        return Promise.resolve(vm);
      },
    } as unknown as KubeClient;
    const vmWatch = { refresh: () => Promise.resolve(vm), offer: (o: VirtualMachine) => (vm = o) } as unknown as ObjectWatch<VirtualMachine>;
    const vmiWatch = { refresh: () => Promise.resolve(undefined) } as unknown as ObjectWatch<VirtualMachineInstance>;
    const keeper = new BootOnceKeeper({ client, namespace: 'ns', name: 'vm1', logger: nullLogger(), vmWatch, vmiWatch });
    return { keeper, patchTimes, vm: () => vm };
  }

  it('backs off 2, 4, 8, 16, 30, 30 s while the API fails, then restores', async () => {
    const { keeper, patchTimes, vm } = setup(6);
    const t0 = Date.now();
    keeper.changed(vm(), undefined);
    await clock.tickAsync(0);
    for (const ms of [2_000, 4_000, 8_000, 16_000, 30_000, 30_000]) await clock.tickAsync(ms);
    expect(patchTimes.map((t) => t - t0)).to.deep.equal([0, 2_000, 6_000, 14_000, 30_000, 60_000, 90_000]);
    expect(vm().metadata?.annotations?.[ONCE_ANNOTATION]).to.equal(undefined);
    // nothing more to do: no further writes
    await clock.tickAsync(120_000);
    expect(patchTimes).to.have.length(7);
    keeper.close();
  });

  it('close() ends the retries', async () => {
    const { keeper, patchTimes, vm } = setup(100);
    keeper.changed(vm(), undefined);
    await clock.tickAsync(2_500);
    expect(patchTimes).to.have.length(2);
    keeper.close();
    await clock.tickAsync(120_000);
    expect(patchTimes).to.have.length(2);
  });
});
