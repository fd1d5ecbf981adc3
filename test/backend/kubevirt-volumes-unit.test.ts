/**
 * MachineVolumes (src/backend/kubevirt/volumes.ts) on a scripted client, for what the emulator
 * cannot order: the list's concurrent DataVolume reads answered out of order (each volume must still
 * get its own DataVolume), the bound on reads in flight, the attach deadline, and the sweep timer
 * (sinon fake timers); plus mapBounded (src/common/bounded.ts).
 */
import { expect } from 'chai';
import sinon from 'sinon';
import { mapBounded } from '../../src/common/bounded.js';
import { nullLogger } from '../../src/common/logger.js';
import { ATTACH_DEADLINE_MS, MachineVolumes, ORPHAN_GRACE_MS, READ_CONCURRENCY, VOLUME_NAME_ANNOTATION, VOLUME_REQUEST_ANNOTATION } from '../../src/backend/kubevirt/volumes.js';
import type { DataVolume, VirtualMachine } from '../../src/backend/kubevirt/types.js';
import { BackendError, isBackendError } from '../../src/backend/types.js';
import { KubeApiError, type KubeClient } from '../../src/kube/client.js';
import { MAX_BMC_VOLUMES } from '../../src/kube/names.js';

const MiB = 2 ** 20;
const VM = 'vm1';
const notFound = (path: string): KubeApiError => new KubeApiError(404, 'GET', path, { kind: 'Status', reason: 'NotFound' } as never, 'not found');

/** A VM whose spec holds our disk + volume for each of `slots`. */
function vmWith(slots: number[]): VirtualMachine {
  return {
    metadata: { name: VM, namespace: 'default', uid: 'vm-uid', resourceVersion: '7' },
    spec: {
      template: {
        spec: {
          domain: { devices: { disks: [{ name: 'root', disk: { bus: 'virtio' } }, ...slots.map((n) => ({ name: `bmc-volume-${n}`, disk: { bus: 'virtio' } }))] } },
          volumes: [{ name: 'root', dataVolume: { name: 'root-dv' } }, ...slots.map((n) => ({ name: `bmc-volume-${n}`, dataVolume: { name: `${VM}-bmc-volume-${n}` } }))],
        },
      },
    },
  } as VirtualMachine;
}

/** Our DataVolume of slot n: n MiB, Name "disk-n", created `ageMs` before `now`. */
function dvOf(n: number, now = Date.now(), ageMs = 0): DataVolume {
  return {
    metadata: {
      name: `${VM}-bmc-volume-${n}`,
      uid: `dv-uid-${n}`,
      creationTimestamp: new Date(now - ageMs).toISOString(),
      labels: { 'app.kubernetes.io/managed-by': 'virtbmc' },
      annotations: { [VOLUME_NAME_ANNOTATION]: `disk-${n}`, [VOLUME_REQUEST_ANNOTATION]: `req-${n}` },
      ownerReferences: [{ apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachine', name: VM, uid: 'vm-uid' }],
    },
    spec: { source: { blank: {} }, storage: { resources: { requests: { storage: `${n}Mi` } } } },
    status: { phase: n % 2 === 0 ? 'Succeeded' : 'WaitForFirstConsumer' },
  } as DataVolume;
}

interface Scripted {
  client: KubeClient;
  calls: string[];
  maxInFlight: () => number;
}

/**
 * A client whose GETs of DataVolumes answer from `dvs` once `release` lets them go (by default each
 * GET waits for the later ones: the last one asked is answered first); other calls from `handlers`.
 */
function scripted(dvs: Map<string, DataVolume>, handlers: Partial<Record<'create' | 'jsonPatch' | 'delete', (...a: unknown[]) => Promise<unknown>>> = {}, reverse = true): Scripted {
  const calls: string[] = [];
  let inFlight = 0;
  let max = 0;
  const pending: (() => void)[] = [];
  const flush = (): void => {
    // answer the newest first, once no more GETs are coming this tick
    setImmediate(() => {
      while (pending.length > 0) (reverse ? pending.pop() : pending.shift())!();
    });
  };
  const client = {
    get: (_r: unknown, _ns: string, name: string): Promise<DataVolume> => {
      calls.push(`get ${name}`);
      inFlight++;
      max = Math.max(max, inFlight);
      return new Promise((resolve, reject) => {
        pending.push(() => {
          inFlight--;
          const dv = dvs.get(name);
          if (dv) resolve(structuredClone(dv));
          else reject(notFound(name));
        });
        if (pending.length === 1) flush();
      });
    },
    create: async (...a: unknown[]) => {
      calls.push(`create ${String((a[2] as DataVolume).metadata?.name)}`);
      return handlers.create ? handlers.create(...a) : a[2];
    },
    jsonPatch: async (...a: unknown[]) => {
      calls.push(`patch ${String(a[2])}`);
      if (!handlers.jsonPatch) throw new Error('no patch expected');
      return handlers.jsonPatch(...a);
    },
    delete: async (...a: unknown[]) => {
      calls.push(`delete ${String(a[2])}`);
      return handlers.delete ? handlers.delete(...a) : undefined;
    },
  } as unknown as KubeClient;
  return { client, calls, maxInFlight: () => max };
}

function volumes(client: KubeClient, vm: () => VirtualMachine, now: () => number = Date.now): MachineVolumes {
  return new MachineVolumes({
    client,
    namespace: 'default',
    logger: nullLogger(),
    now,
    view: async () => ({ vm: vm(), vmi: undefined }),
    offerVm: () => undefined,
    vmMoved: async () => true,
    mapError: (e, what) => (e instanceof BackendError ? e : new BackendError('Unavailable', `${what}: ${String(e)}`)),
  });
}

describe('kubevirt volumes: concurrent reads, deadline, sweep timer', () => {
  afterEach(() => sinon.restore());

  it('list reads the DataVolumes concurrently (at most READ_CONCURRENCY at once) and pairs each volume with its own, whatever order the answers come in', async () => {
    const slots = Array.from({ length: MAX_BMC_VOLUMES }, (_, i) => i + 1);
    const dvs = new Map(slots.map((n) => [`${VM}-bmc-volume-${n}`, dvOf(n)]));
    for (const reverse of [true, false]) {
      const s = scripted(dvs, {}, reverse);
      const list = await volumes(s.client, () => vmWith(slots)).list();
      expect(list.map((v) => [v.id, v.name, v.capacityBytes, v.state, v.backing, v.requestId])).to.deep.equal(
        slots.map((n) => [`bmc-volume-${n}`, `disk-${n}`, n * MiB, n % 2 === 0 ? 'ready' : 'waiting', `DataVolume ${VM}-bmc-volume-${n}`, `req-${n}`]),
      );
      expect(s.maxInFlight(), 'concurrent').to.equal(READ_CONCURRENCY);
      expect(s.calls.filter((c) => c.startsWith('get '))).to.have.length(MAX_BMC_VOLUMES);
    }
  });

  it('list: a missing DataVolume is an error volume of its own slot, a foreign one no volume; the others keep theirs', async () => {
    const dvs = new Map([1, 3].map((n) => [`${VM}-bmc-volume-${n}`, dvOf(n)]));
    const foreign = dvOf(4);
    delete foreign.metadata!.labels;
    dvs.set(`${VM}-bmc-volume-4`, foreign);
    const list = await volumes(scripted(dvs).client, () => vmWith([1, 2, 3, 4])).list();
    expect(list.map((v) => [v.id, v.name, v.state, v.capacityBytes])).to.deep.equal([
      ['bmc-volume-1', 'disk-1', 'waiting', MiB],
      ['bmc-volume-2', 'bmc-volume-2', 'error', 0],
      ['bmc-volume-3', 'disk-3', 'waiting', 3 * MiB],
    ]);
    expect(list[1]!.error).to.equal(`DataVolume ${VM}-bmc-volume-2 is missing`);
  });

  it(`a create whose VM kept moving stops patching ${ATTACH_DEADLINE_MS / 1000} s after making its DataVolume (a sweep may judge it then) and deletes it`, async () => {
    let now = Date.now();
    const made: DataVolume[] = [];
    const deleted: unknown[] = [];
    const s = scripted(new Map(), {
      create: async (...a) => {
        const dv = structuredClone(a[2] as DataVolume);
        dv.metadata!.uid = 'new-uid';
        dv.metadata!.creationTimestamp = new Date(now).toISOString();
        made.push(dv);
        return dv;
      },
      jsonPatch: async () => {
        now += ATTACH_DEADLINE_MS / 2 + 1; // each attempt takes half the deadline, and the VM moved meanwhile
        throw new KubeApiError(409, 'PATCH', '/vm', undefined, 'conflict');
      },
      delete: async (...a) => void deleted.push(a),
    });
    const err = await volumes(s.client, () => vmWith([]), () => now)
      .create({ capacityBytes: MiB })
      .catch((e: unknown) => e);
    expect(isBackendError(err, 'Busy'), String(err)).to.equal(true);
    expect(String(err)).to.include('took too long');
    expect(s.calls.filter((c) => c.startsWith('patch '))).to.have.length(2);
    expect(made).to.have.length(1);
    // rolled back: that very DataVolume (uid precondition)
    expect(deleted.map((a) => (a as unknown[]).slice(1))).to.deep.equal([['default', `${VM}-bmc-volume-1`, 'Background', { uid: 'new-uid' }]]);
  });

  it('the sweep timer: an orphan seen young is swept when it comes of age, by a timer set for then; close() cancels it', async () => {
    const clock = sinon.useFakeTimers({ now: Date.parse('2026-12-04T12:00:00Z'), toFake: ['setTimeout', 'clearTimeout', 'setImmediate', 'Date'] });
    const dvs = new Map([[`${VM}-bmc-volume-2`, dvOf(2, Date.now(), 60_000)]]);
    const deleted: string[] = [];
    const s = scripted(dvs, { delete: async (...a) => void deleted.push(String(a[2])) });
    const v = volumes(s.client, () => vmWith([]));
    v.scheduleSweep(0);
    await clock.tickAsync(1);
    expect(deleted, 'one minute old: kept').to.deep.equal([]);
    await clock.tickAsync(ORPHAN_GRACE_MS - 60_000 - 1_000);
    expect(deleted, 'not yet').to.deep.equal([]);
    await clock.tickAsync(5_000);
    expect(deleted).to.deep.equal([`${VM}-bmc-volume-2`]);
    // another young one, then close: nothing runs any more
    dvs.set(`${VM}-bmc-volume-3`, dvOf(3, Date.now(), 0));
    dvs.delete(`${VM}-bmc-volume-2`);
    v.scheduleSweep(0);
    await clock.tickAsync(1);
    v.close();
    await clock.tickAsync(2 * ORPHAN_GRACE_MS);
    expect(deleted).to.deep.equal([`${VM}-bmc-volume-2`]);
    expect(clock.countTimers()).to.equal(0);
  });
});

describe('mapBounded', () => {
  it('keeps the order of the items, runs at most `limit` at once, and rejects with the first failure', async () => {
    let running = 0;
    let max = 0;
    const out = await mapBounded([5, 1, 4, 2, 3], 2, async (n, i) => {
      running++;
      max = Math.max(max, running);
      for (let k = 0; k < n; k++) await Promise.resolve();
      running--;
      return `${i}:${n}`;
    });
    expect(out).to.deep.equal(['0:5', '1:1', '2:4', '3:2', '4:3']);
    expect(max).to.equal(2);
    const started: number[] = [];
    const err = await mapBounded([1, 2, 3, 4], 1, async (n) => {
      started.push(n);
      if (n === 2) throw new Error('two');
      return n;
    }).catch((e: unknown) => e);
    expect(String(err)).to.include('two');
    expect(started, 'nothing new starts after a failure').to.deep.equal([1, 2]);
    expect(await mapBounded([], 4, async () => 1)).to.deep.equal([]);
  });
});
