import { KubeConfig } from '@kubernetes/client-node';
import { expect } from 'chai';
import sinon from 'sinon';
import { DEFAULT_MAX_SILENCE_MS, DEFAULT_SILENCE_PROBE_MS, ObjectWatch } from '../../src/backend/kubevirt/informer.js';
import { nullLogger } from '../../src/common/logger.js';
import { KubeApiError, KubeClient } from '../../src/kube/client.js';
import { Resources } from '../../src/kube/resources.js';
import type { VirtualMachine } from '../../src/backend/kubevirt/types.js';

/** Polls fn; the deadline only stops a hung test (what it waits for takes milliseconds). */
async function until(fn: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 30_000;
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

  it("a direct GET's 404 that was under way while a newer object arrived (our create's answer) does not wipe the cache", async () => {
    let answerGet!: (e: unknown) => void;
    const client = {
      list: async () => ({ metadata: { resourceVersion: '1' }, items: [] }),
      watch: () => new Promise<() => void>(() => undefined),
      get: () => new Promise((_, reject) => (answerGet = reject)),
    } as unknown as KubeClient;
    const changes: (string | undefined)[] = [];
    const w = new ObjectWatch<VirtualMachine>({
      client,
      logger: nullLogger(),
      resource: Resources.dataVolume,
      namespace: 'ns',
      name: 'vm1-vmedia-cdrom',
      kind: 'DataVolume',
      onChange: (o) => changes.push(o?.metadata?.resourceVersion),
    });
    // a GET sent before the object existed...
    const pending = w.refresh();
    // ...our create's answer arrives meanwhile...
    w.offer({ metadata: { name: 'vm1-vmedia-cdrom', namespace: 'ns', uid: 'u1', resourceVersion: '5' } });
    // ...then the GET's 404
    answerGet(new KubeApiError(404, 'GET', '/apis/cdi.kubevirt.io/v1beta1/namespaces/ns/datavolumes/vm1-vmedia-cdrom', { kind: 'Status', reason: 'NotFound' } as never, 'not found'));
    expect(await pending, 'the GET itself answers what the server said').to.equal(undefined);
    expect(w.current?.metadata?.resourceVersion, 'the cache keeps the newer object').to.equal('5');
    expect(changes).to.deep.equal(['5']);
    // with nothing arriving meanwhile, a 404 does clear it
    const again = w.refresh();
    answerGet(new KubeApiError(404, 'GET', '/x', undefined, 'not found'));
    await again;
    expect(w.current).to.equal(undefined);
    await w.stop();
  });
});

/**
 * A fake client whose watch streams stay open and say nothing unless the test speaks through
 * them, and whose list answers (or, when `hang`, fails after the real client's default request
 * timeout, as a request to a server that never answers does).
 */
function fakeClient(state: { obj: VirtualMachine; hang: boolean }) {
  const calls = { list: 0, probes: 0, watch: 0, aborted: 0, unreachable: [] as string[] };
  let emit: ((type: string, obj: unknown) => void) | undefined;
  const timeoutMs = new KubeClient(new KubeConfig()).timeoutMs;
  const client = {
    list: (_r: unknown, _ns: unknown, opts: { probe?: boolean }) => {
      calls.list++;
      if (opts?.probe) calls.probes++;
      if (!state.hang) return Promise.resolve({ metadata: { resourceVersion: state.obj.metadata?.resourceVersion }, items: [state.obj] });
      return new Promise((_, reject) =>
        setTimeout(() => {
          const e = new KubeApiError(0, 'GET', '/apis/kubevirt.io/v1/namespaces/ns/virtualmachines', undefined, `no answer within ${timeoutMs} ms`);
          e.network = true;
          reject(e);
        }, timeoutMs),
      );
    },
    watch: (_r: unknown, _ns: unknown, _q: unknown, onEvent: (type: string, obj: unknown) => void) => {
      calls.watch++;
      emit = onEvent;
      return Promise.resolve(() => {
        calls.aborted++;
        emit = undefined;
      });
    },
    noteUnreachable: (reason: string) => calls.unreachable.push(reason),
  } as unknown as KubeClient;
  return { client, calls, emit: (type: string, obj: unknown) => emit?.(type, obj) };
}

const vmAt = (rv: string): VirtualMachine => ({ apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachine', metadata: { name: 'vm1', namespace: 'ns', uid: 'u1', resourceVersion: rv } });

describe('kubevirt backend: silent watch streams (fake timers)', () => {
  let clock: sinon.SinonFakeTimers;
  let w: ObjectWatch<VirtualMachine> | undefined;
  beforeEach(() => {
    clock = sinon.useFakeTimers({ now: new Date('2026-01-01T00:00:00Z'), toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
  });
  afterEach(async () => {
    await w?.stop();
    w = undefined;
    clock.restore();
  });

  const start = (client: KubeClient): ObjectWatch<VirtualMachine> => {
    w = new ObjectWatch<VirtualMachine>({ client, logger: nullLogger(), resource: Resources.vm, namespace: 'ns', name: 'vm1', kind: 'VirtualMachine', onChange: () => undefined });
    w.start();
    return w;
  };

  it('with the default bounds, a stream gone silent on a server that stopped answering is detected within 45 s', async () => {
    const state = { obj: vmAt('10'), hang: false };
    const f = fakeClient(state);
    const watch = start(f.client);
    await clock.tickAsync(10);
    expect(watch.healthy, 'open').to.equal(true);
    // the connection dies silently: no event, no bookmark, and requests go unanswered
    state.hang = true;
    const died = Date.now();
    await clock.tickAsync(DEFAULT_SILENCE_PROBE_MS - 1_000);
    expect(watch.healthy, 'silence alone proves nothing before the check').to.equal(true);
    let detectedAfter: number | undefined;
    for (let t = 0; t < 60_000 && detectedAfter === undefined; t += 250) {
      await clock.tickAsync(250);
      if (!watch.healthy) detectedAfter = Date.now() - died;
    }
    expect(detectedAfter, 'detected').to.be.a('number');
    expect(detectedAfter!).to.be.at.most(45_000);
    expect(f.calls.aborted, 'the dead stream is aborted').to.be.greaterThan(0);
    expect(f.calls.unreachable, 'the client is told').to.have.length(1);
    expect(watch.lastError).to.match(/silent/);
  });

  it('a quiet but live stream with kube-apiserver\'s one-a-minute bookmarks stays healthy and is not re-opened', async () => {
    const state = { obj: vmAt('10'), hang: false };
    const f = fakeClient(state);
    const watch = start(f.client);
    await clock.tickAsync(10);
    let unhealthy = 0;
    for (let t = 0; t < 5 * 60_000; t += 1_000) {
      await clock.tickAsync(1_000);
      if (t % 60_000 === 59_000) f.emit('BOOKMARK', { kind: 'VirtualMachine', metadata: { resourceVersion: '10' } });
      if (!watch.healthy) unhealthy++;
    }
    expect(unhealthy).to.equal(0);
    expect(f.calls.watch, 'one stream throughout').to.equal(1);
    expect(f.calls.probes, 'checked directly between bookmarks').to.be.greaterThan(0);
  });

  it('an open stream that sends no bookmarks is re-opened after 90 s, and one that missed a change at the next check', async () => {
    const state = { obj: vmAt('10'), hang: false };
    const f = fakeClient(state);
    const seen: (string | undefined)[] = [];
    w = new ObjectWatch<VirtualMachine>({
      client: f.client,
      logger: nullLogger(),
      resource: Resources.vm,
      namespace: 'ns',
      name: 'vm1',
      kind: 'VirtualMachine',
      onChange: (o) => seen.push(o?.metadata?.resourceVersion),
    });
    w.start();
    await clock.tickAsync(10);
    await clock.tickAsync(DEFAULT_MAX_SILENCE_MS + DEFAULT_SILENCE_PROBE_MS);
    expect(f.calls.watch, 'no bookmarks for 90 s: re-opened').to.equal(2);
    expect(w.healthy).to.equal(true);
    // the stream misses a change: the next check (30 s of silence) finds it
    state.obj = vmAt('11');
    await clock.tickAsync(DEFAULT_SILENCE_PROBE_MS + 1_000);
    expect(seen).to.include('11');
    expect(w.current?.metadata?.resourceVersion).to.equal('11');
    expect(f.calls.watch, 're-watched after the missed change').to.equal(3);
  });

  it('stop() ends the open stream: its silence check never runs afterwards (no request after stop)', async () => {
    const f = fakeClient({ obj: vmAt('10'), hang: false });
    const watch = start(f.client);
    await clock.tickAsync(10);
    expect(watch.healthy).to.equal(true);
    const lists = f.calls.list;
    await watch.stop();
    await clock.tickAsync(DEFAULT_SILENCE_PROBE_MS * 3);
    expect(f.calls.probes, 'no silence check after stop').to.equal(0);
    expect(f.calls.list, 'no list after stop').to.equal(lists);
    expect(f.calls.watch).to.equal(1);
  });

  it('a watch the server closes at once without an event backs off and re-lists (client-go "very short watch"), it does not spin', async () => {
    // backoff 200 ms doubling (to the 10 s maximum), each delay jittered by 0.8..1.2: whatever the
    // jitter, attempts start at 0, 0.2, 0.6, 1.4, 3.0, 6.2 s (x 0.8..1.2) and the seventh after 10 s
    for (const r of [0, 0.5, 0.999999]) {
      const random = sinon.stub(Math, 'random').returns(r);
      try {
        let lists = 0;
        let watches = 0;
        const client = {
          list: () => {
            lists++;
            return Promise.resolve({ metadata: { resourceVersion: '10' }, items: [vmAt('10')] });
          },
          watch: (_r: unknown, _ns: unknown, _q: unknown, _onEvent: unknown, onDone: (err: unknown) => void) => {
            watches++;
            setTimeout(() => onDone(null), 1); // a 200 that ends right away
            return Promise.resolve(() => undefined);
          },
        } as unknown as KubeClient;
        const watch = start(client);
        await clock.tickAsync(10_000);
        expect(watches, `watch attempts in 10 s (jitter ${r})`).to.equal(6);
        expect(lists, 're-listed after each short watch').to.equal(watches);
        expect(watch.healthy).to.equal(false);
        expect(watch.lastError).to.match(/very short watch/);
        await watch.stop();
      } finally {
        random.restore();
      }
    }
  });

});
