import { expect } from 'chai';
import { ObjectWatch } from '../../src/backend/kubevirt/informer.js';
import { nullLogger } from '../../src/common/logger.js';
import type { KubeClient } from '../../src/kube/client.js';
import { Resources } from '../../src/kube/resources.js';
import type { VirtualMachine } from '../../src/backend/kubevirt/types.js';

async function until(fn: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 3000;
  while (!fn()) {
    if (Date.now() > deadline) expect.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('kubevirt backend: single-object watch', () => {
  it('a watch whose stream opens after stop() is closed, not left running', async () => {
    let openStream!: (abort: () => void) => void;
    let watchCalls = 0;
    const client = {
      list: async () => ({ metadata: { resourceVersion: '1' }, items: [] }),
      watch: () => {
        watchCalls++;
        return new Promise<() => void>((resolve) => (openStream = resolve));
      },
    } as unknown as KubeClient;
    const w = new ObjectWatch<VirtualMachine>({
      client,
      logger: nullLogger(),
      resource: Resources.vm,
      namespace: 'ns',
      name: 'vm1',
      kind: 'VirtualMachine',
      onChange: () => undefined,
    });
    w.start();
    await until(() => watchCalls === 1, 'the watch request');
    await w.stop();
    let aborted = 0;
    openStream(() => aborted++);
    await until(() => aborted > 0, 'the late stream to be aborted');
    expect(aborted).to.equal(1);
    expect(w.healthy).to.equal(false);
    expect(watchCalls, 'no new watch after stop').to.equal(1);
  });
});
