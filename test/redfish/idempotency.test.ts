/**
 * Exactly-once Redfish actions (src/redfish/core/idempotency.ts): a retried action with the same
 * Idempotency-Key (or X-Request-Id) runs once, whether the retry comes while the first request is
 * still in flight or after it ended; a reused key with another body is refused; transient failures
 * are not remembered; the memory is bounded in time (injected clock) and count.
 */
import { expect } from 'chai';
import { SimulatedMachine } from '../../src/backend/simulator/simulator.js';
import { BackendError, type PowerAction } from '../../src/backend/types.js';
import { Writable } from 'node:stream';
import { createLogger, nullLogger } from '../../src/common/logger.js';
import { IDEMPOTENCY_WINDOW_MS, IdempotencyCache } from '../../src/redfish/core/idempotency.js';
import type { RedfishContext } from '../../src/redfish/core/types.js';
import { startRedfishServer } from '../../src/redfish/server.js';
import type { ProtocolServer } from '../../src/accounts/types.js';
import { ADMIN, OPERATOR, READONLY } from '../helpers/agent.js';
import { startImageServer, type ImageServer } from '../helpers/images.js';

const auth = (u: { username: string; password: string }): string => 'Basic ' + Buffer.from(`${u.username}:${u.password}`).toString('base64');
const RESET = '/redfish/v1/Systems/1/Actions/ComputerSystem.Reset';

/** A simulator whose power actions wait for the test to release them, and count. */
class GatedMachine extends SimulatedMachine {
  calls: PowerAction[] = [];
  private gates: (() => void)[] = [];
  failNext: Error | undefined;
  override async power(action: PowerAction): Promise<void> {
    this.calls.push(action);
    await new Promise<void>((r) => this.gates.push(r));
    if (this.failNext) {
      const e = this.failNext;
      this.failNext = undefined;
      throw e;
    }
    return super.power(action);
  }
  /** Let every waiting action go on. */
  release(): void {
    for (const g of this.gates.splice(0)) g();
  }
  async waitCalls(n: number): Promise<void> {
    for (let i = 0; i < 1000 && this.calls.length < n; i++) await new Promise((r) => setTimeout(r, 5));
    expect(this.calls.length).to.equal(n);
  }
}

describe('Redfish idempotent actions', function () {
  let machine: GatedMachine;
  let server: ProtocolServer;
  let base: string;
  let clock: number;
  /** the server's log lines so far, and who waits for the next one */
  let logLines: string[];
  let logWaiters: (() => void)[];
  const untilLogged = async (text: string): Promise<void> => {
    while (!logLines.some((l) => l.includes(text))) await new Promise<void>((r) => logWaiters.push(r));
  };

  beforeEach(async () => {
    clock = Date.parse('2026-01-01T00:00:00Z');
    machine = new GatedMachine({ initialPower: 'On' });
    logLines = [];
    logWaiters = [];
    const sink = new Writable({
      write(chunk, _e, cb) {
        logLines.push(String(chunk));
        for (const w of logWaiters.splice(0)) w();
        cb();
      },
    });
    server = await startRedfishServer(
      { address: '127.0.0.1', port: 0, machine, users: [ADMIN, OPERATOR, READONLY], logger: createLogger('info', sink) },
      { now: () => new Date(clock) },
    );
    base = `http://127.0.0.1:${server.port}`;
  });
  afterEach(async () => {
    machine.release();
    await server.close();
    await machine.close();
  });

  const post = async (path: string, body: unknown, headers: Record<string, string> = {}, user = ADMIN) => {
    const res = await fetch(base + path, {
      method: 'POST',
      headers: { authorization: auth(user), 'content-type': 'application/json', ...headers },
      body: JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, headers: res.headers, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
  };

  it('a retry while the first request is in flight waits for it and runs nothing', async () => {
    const key = { 'Idempotency-Key': '"cycle-1"' };
    const first = post(RESET, { ResetType: 'PowerCycle' }, key);
    await machine.waitCalls(1);
    const retry = post(RESET, { ResetType: 'PowerCycle' }, key);
    // the retry has reached the key's entry and waits on the first answer (the server says so
    // before it waits): it runs nothing, still one call
    await untilLogged('redfish retry answered with the first answer');
    expect(logLines.find((l) => l.includes('redfish retry answered'))).to.include('"inFlight":true');
    expect(machine.calls).to.deep.equal(['powerCycle']);
    machine.release();
    const [a, b] = await Promise.all([first, retry]);
    expect(a.status).to.equal(204);
    expect(b.status).to.equal(204);
    expect(a.headers.get('idempotent-replayed')).to.equal(null);
    expect(b.headers.get('idempotent-replayed')).to.equal('true');
    expect(machine.calls).to.deep.equal(['powerCycle']);
  });

  it('a retry after the answer gets the same answer until the window ends, then runs again', async () => {
    const key = { 'Idempotency-Key': 'on-1' };
    const first = post(RESET, { ResetType: 'ForceOff' }, key);
    await machine.waitCalls(1);
    machine.release();
    expect((await first).status).to.equal(204);
    // the body's key order does not matter
    const again = await post(RESET, { ResetType: 'ForceOff' }, key);
    expect(again.status).to.equal(204);
    expect(again.headers.get('idempotent-replayed')).to.equal('true');
    expect(machine.calls).to.have.length(1);
    clock += IDEMPOTENCY_WINDOW_MS + 1;
    const late = post(RESET, { ResetType: 'ForceOff' }, key);
    await machine.waitCalls(2);
    machine.release();
    expect((await late).status).to.equal(204);
  });

  it('refuses a key reused for another request with 422 HeaderInvalid, running nothing', async () => {
    const key = { 'Idempotency-Key': 'k-2' };
    const first = post(RESET, { ResetType: 'ForceOff' }, key);
    await machine.waitCalls(1);
    machine.release();
    await first;
    const other = await post(RESET, { ResetType: 'On' }, key);
    expect(other.status).to.equal(422);
    const err = other.body.error as { '@Message.ExtendedInfo': { MessageId: string; MessageArgs: string[] }[] };
    expect(err['@Message.ExtendedInfo'][0]).to.include({ MessageId: 'Base.1.22.1.HeaderInvalid' });
    expect(err['@Message.ExtendedInfo'][0]!.MessageArgs).to.deep.equal(['Idempotency-Key']);
    const otherPath = await post('/redfish/v1/Managers/BMC/Actions/Manager.Reset', { ResetType: 'ForceOff' }, key);
    expect(otherPath.status).to.equal(422);
    expect(machine.calls).to.have.length(1);
    const bad = await post(RESET, { ResetType: 'On' }, { 'Idempotency-Key': '"' + 'x'.repeat(300) + '"' });
    expect(bad.status).to.equal(400);
    expect(machine.calls).to.have.length(1);
  });

  it('keys are per user: another user with the same key runs its own action', async () => {
    const key = { 'Idempotency-Key': 'shared' };
    const a = post(RESET, { ResetType: 'ForceOff' }, key, ADMIN);
    await machine.waitCalls(1);
    const b = post(RESET, { ResetType: 'ForceOff' }, key, OPERATOR);
    await machine.waitCalls(2);
    machine.release();
    expect((await a).status).to.equal(204);
    expect((await b).status).to.equal(204);
  });

  it('replays an error answer, but not a transient one (503), which a retry runs again', async () => {
    // 409: restart while off is refused by the backend and remembered
    const turnOff = machine.power('forceOff');
    await machine.waitCalls(1);
    machine.release();
    await turnOff;
    const off = post(RESET, { ResetType: 'ForceRestart' }, { 'Idempotency-Key': 'r1' });
    await machine.waitCalls(2);
    machine.release();
    expect((await off).status).to.equal(409);
    expect((await post(RESET, { ResetType: 'ForceRestart' }, { 'Idempotency-Key': 'r1' })).status).to.equal(409);
    expect(machine.calls).to.have.length(2);
    // 503 (outage) is not remembered
    machine.failNext = new BackendError('Unavailable', 'apiserver down', { retryAfterSeconds: 2 });
    const down = post(RESET, { ResetType: 'On' }, { 'Idempotency-Key': 'r2' });
    await machine.waitCalls(3);
    machine.release();
    expect((await down).status).to.equal(503);
    const retry = post(RESET, { ResetType: 'On' }, { 'Idempotency-Key': 'r2' });
    await machine.waitCalls(4);
    machine.release();
    expect((await retry).status).to.equal(204);
  });

  it('X-Request-Id makes a retry detectable; reused for another request it simply runs', async () => {
    const first = post(RESET, { ResetType: 'ForceOff' }, { 'X-Request-Id': 'req-7' });
    await machine.waitCalls(1);
    const retry = post(RESET, { ResetType: 'ForceOff' }, { 'X-Request-Id': 'req-7' });
    machine.release();
    expect((await first).status).to.equal(204);
    expect((await retry).status).to.equal(204);
    expect(machine.calls).to.have.length(1);
    const other = post(RESET, { ResetType: 'On' }, { 'X-Request-Id': 'req-7' });
    await machine.waitCalls(2);
    machine.release();
    expect((await other).status).to.equal(204);
  });

  it('requests without a key, and non-actions, are not affected', async () => {
    const a = post(RESET, { ResetType: 'ForceOff' });
    await machine.waitCalls(1);
    const b = post(RESET, { ResetType: 'ForceOff' });
    await machine.waitCalls(2);
    machine.release();
    expect((await a).status).to.equal(204);
    expect((await b).status).to.equal(204);
    // a login with a key is no action: two sessions (a token is never replayed)
    const login = (): Promise<Response> =>
      fetch(`${base}/redfish/v1/SessionService/Sessions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'Idempotency-Key': 'login' },
        body: JSON.stringify({ UserName: ADMIN.username, Password: ADMIN.password }),
      });
    const [s1, s2] = [await login(), await login()];
    expect(s1.headers.get('x-auth-token')).to.be.a('string').and.not.equal(s2.headers.get('x-auth-token'));
  });
});

describe('Redfish idempotent actions: InsertMedia', function () {
  let img: ImageServer;
  let server: ProtocolServer;
  let machine: SimulatedMachine;
  let inserts = 0;
  before(async () => {
    img = await startImageServer();
  });
  after(async () => img.close());
  beforeEach(async () => {
    inserts = 0;
    machine = new (class extends SimulatedMachine {
      override async insertMedia(...a: Parameters<SimulatedMachine['insertMedia']>) {
        inserts++;
        return super.insertMedia(...a);
      }
    })({ mediaInsertDelayMs: 60_000 });
    server = await startRedfishServer({ address: '127.0.0.1', port: 0, machine, users: [ADMIN], logger: nullLogger() });
  });
  afterEach(async () => {
    await server.close();
    await machine.close();
  });

  it('a retried InsertMedia gets the same 202 and task, and inserts once', async () => {
    const send = () =>
      fetch(`http://127.0.0.1:${server.port}/redfish/v1/Managers/BMC/VirtualMedia/Cd/Actions/VirtualMedia.InsertMedia`, {
        method: 'POST',
        headers: { authorization: auth(ADMIN), 'content-type': 'application/json', 'Idempotency-Key': 'insert-1' },
        body: JSON.stringify({ Image: img.url('/boot/installer.iso') }),
      });
    const a = await send();
    const b = await send();
    expect(a.status).to.equal(202);
    expect(b.status).to.equal(202);
    expect(b.headers.get('location')).to.equal(a.headers.get('location'));
    expect(((await b.json()) as { Id: string }).Id).to.equal(((await a.json()) as { Id: string }).Id);
    expect(inserts).to.equal(1);
  });
});

describe('IdempotencyCache bounds', () => {
  it('keeps at most maxEntries finished keys, oldest out first', async () => {
    let now = 0;
    const cache = new IdempotencyCache(() => now, 60_000, 3);
    let runs = 0;
    const ctxFor = (key: string): RedfishContext => {
      const headers: Record<string, string> = { 'idempotency-key': key };
      const response = new Map<string, string>();
      return {
        method: 'POST',
        path: '/redfish/v1/Systems/1/Actions/ComputerSystem.Reset',
        request: { body: { ResetType: 'On' } },
        get: (h: string) => headers[h.toLowerCase()] ?? '',
        set: (k: string, v: string) => response.set(k.toLowerCase(), v),
        response: { get: (k: string) => response.get(k.toLowerCase()) ?? '' },
        status: 404,
        state: { user: ADMIN, logger: nullLogger() },
      } as unknown as RedfishContext;
    };
    const handler = async (ctx: RedfishContext): Promise<void> => {
      runs++;
      ctx.status = 204;
    };
    for (const k of ['a', 'b', 'c', 'd']) {
      now += 1;
      await cache.run(ctxFor(k), handler);
    }
    expect(cache.size).to.equal(3);
    await cache.run(ctxFor('d'), handler); // remembered
    expect(runs).to.equal(4);
    await cache.run(ctxFor('a'), handler); // evicted: runs again
    expect(runs).to.equal(5);
  });
});
