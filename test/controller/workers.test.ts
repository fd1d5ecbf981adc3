import { expect } from 'chai';
import { KubeConfig } from '@kubernetes/client-node';
import { nullLogger } from '../../src/common/logger.js';
import { VirtualMachineBMCController } from '../../src/controller/controller.js';

/** Resolves after every pending promise callback has run (a macrotask after the microtask queue drains). */
const microtasksDrained = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('virtbmc-controller workers across leadership terms', () => {
  it('a new term does not reconcile a key while the last term still reconciles it', async () => {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'c', server: 'http://127.0.0.1:9' }],
      users: [{ name: 'u' }],
      contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
      currentContext: 'x',
    });
    const c = new VirtualMachineBMCController({ kc, agent: { image: 'example.test/virtbmc:1' }, logger: nullLogger(), autoCreate: false, resyncMs: 0 });
    const enqueue = (key: string) => (c as unknown as { enqueue(k: string): void }).enqueue(key);
    let active = 0;
    let maxActive = 0;
    let calls = 0;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    // each reconcile's start, as an event the test awaits (no polling, no deadline)
    const started: Array<() => void> = [];
    const start = (n: number): Promise<void> => new Promise((r) => (started[n] = r));
    const first = start(1);
    const second = start(2);
    c.reconcile = async () => {
      calls++;
      active++;
      maxActive = Math.max(maxActive, active);
      started[calls]?.();
      await gate;
      active--;
    };
    try {
      c.startWorkers();
      enqueue('ns/a');
      await first;
      // leadership lost, then regained before the in-flight reconcile ended
      const stopped = c.stopWorkers();
      c.startWorkers();
      enqueue('ns/a');
      // a worker that did not wait would have called reconcile within promise callbacks alone
      // (q.get() resolves at once with the queued key): once they have all run, it has not
      await microtasksDrained();
      expect(calls, 'the new term waits for the old reconcile').to.equal(1);
      release();
      await stopped;
      await second;
      expect(calls).to.equal(2);
      expect(maxActive).to.equal(1);
    } finally {
      release();
      await c.stop();
    }
  });
});
