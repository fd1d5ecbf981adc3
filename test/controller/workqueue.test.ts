import { expect } from 'chai';
import sinon from 'sinon';
import { WorkQueue } from '../../src/controller/workqueue.js';

describe('controller work queue', () => {
  it('de-duplicates keys and hands a key to one worker at a time', async () => {
    const q = new WorkQueue();
    q.add('a');
    q.add('a');
    q.add('b');
    expect(q.depth).to.equal(2);
    const k1 = await q.get();
    expect(k1).to.equal('a');
    q.add('a'); // while processing: parked, not handed out twice
    expect(await q.get()).to.equal('b');
    let got: string | undefined = 'none';
    const p = q.get().then((k) => (got = k));
    await new Promise((r) => setImmediate(r));
    expect(got).to.equal('none');
    q.done('a'); // re-queued now
    await p;
    expect(got).to.equal('a');
    q.shutdown();
    expect(await q.get()).to.equal(undefined);
  });

  it('backs off exponentially per key and forgets on success (fake clock)', async () => {
    const clock = sinon.useFakeTimers();
    try {
      const q = new WorkQueue({ baseDelayMs: 5, maxDelayMs: 40 });
      /** the key comes out of the queue exactly `ms` after it was re-added, not a tick earlier */
      const dueAfter = async (ms: number): Promise<void> => {
        let got: string | undefined;
        void q.get().then((k) => (got = k));
        await clock.tickAsync(ms - 1);
        expect(got, `not before its ${ms} ms`).to.equal(undefined);
        await clock.tickAsync(1);
        expect(got).to.equal('k');
        q.done('k');
      };
      expect(q.addRateLimited('k')).to.equal(5);
      await dueAfter(5);
      expect(q.addRateLimited('k')).to.equal(10);
      await dueAfter(10);
      expect(q.addRateLimited('k')).to.equal(20);
      expect(q.addRateLimited('x')).to.equal(5);
      for (let i = 0; i < 5; i++) q.addRateLimited('y');
      expect(q.addRateLimited('y')).to.equal(40);
      q.forget('k');
      expect(q.retries('k')).to.equal(0);
      q.shutdown();
    } finally {
      clock.restore();
    }
  });

  it('a sooner retry replaces a later one that is still pending (earliest wins)', async () => {
    const q = new WorkQueue({ baseDelayMs: 10, maxDelayMs: 60_000 });
    for (let i = 0; i < 12; i++) q.addRateLimited('k');
    expect(await q.get()).to.equal('k');
    q.done('k');
    expect(q.addRateLimited('k')).to.equal(40_960); // this retry is pending, 41 s away
    q.forget('k'); // a success in between resets the backoff
    expect(q.addRateLimited('k')).to.equal(10);
    q.shutdown();
  });

  it('the replacing retry comes due after its own delay, not the replaced one (fake clock)', async () => {
    const clock = sinon.useFakeTimers();
    try {
      const q = new WorkQueue({ baseDelayMs: 10, maxDelayMs: 60_000 });
      for (let i = 0; i < 12; i++) q.addRateLimited('k');
      const first = q.get();
      await clock.tickAsync(10); // the first of the adds comes due after the base delay
      expect(await first).to.equal('k');
      q.done('k');
      expect(q.addRateLimited('k')).to.equal(40_960);
      q.forget('k');
      expect(q.addRateLimited('k')).to.equal(10);
      let got: string | undefined;
      void q.get().then((k) => (got = k));
      await clock.tickAsync(9);
      expect(got, 'not before its 10 ms').to.equal(undefined);
      await clock.tickAsync(1);
      expect(got).to.equal('k');
      q.shutdown();
    } finally {
      clock.restore();
    }
  });
});
