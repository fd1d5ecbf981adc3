import { expect } from 'chai';
import { KubeConfig } from '@kubernetes/client-node';
import { nullLogger } from '../../src/common/logger.js';
import { VirtualMachineBMCController } from '../../src/controller/controller.js';

async function until(fn: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!fn()) {
    if (Date.now() > deadline) expect.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

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
    c.reconcile = async () => {
      calls++;
      active++;
      maxActive = Math.max(maxActive, active);
      await gate;
      active--;
    };
    try {
      c.startWorkers();
      enqueue('ns/a');
      await until(() => active === 1, 'the first reconcile');
      // leadership lost, then regained before the in-flight reconcile ended
      const stopped = c.stopWorkers();
      c.startWorkers();
      enqueue('ns/a');
      await new Promise((r) => setTimeout(r, 50));
      expect(calls, 'the new term waits for the old reconcile').to.equal(1);
      release();
      await stopped;
      await until(() => calls === 2, 'the new term reconciling the key');
      expect(maxActive).to.equal(1);
    } finally {
      release();
      await c.stop();
    }
  });
});
