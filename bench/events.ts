/**
 * Event delivery (issue 12; a measurement, not a test). The agent (simulator, Redfish only) runs in
 * a child process (bench/events-agent.lib.ts) so its CPU time and memory are its own; subscribers,
 * SSE clients and the load generator run here, all on 127.0.0.1.
 *
 * 1. Push: n subscriptions (n = 1 baseline, then 100) to one loopback receiver (a path each).
 *    Each round POSTs SubmitTestEvent carrying a round number in Message and waits until every
 *    subscriber has it; latency = receipt time − the moment the POST was sent, per delivery.
 *    Agent CPU per delivered event = (CPU of the rounds − CPU of as many rounds with no
 *    subscriber) / deliveries: the SubmitTestEvent request itself is taken out.
 * 2. SSE: the same with n SSE streams (1, then 100) on /redfish/v1/EventService/SSE.
 * 3. A dead subscriber (accepts the connection, never answers) and 10,000 events: agent RSS and
 *    heap after a full GC, before and after, beside the same 10,000 events with no subscriber.
 *   npx tsx bench/events.ts [--rounds 200] [--dead-events 10000]
 */
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return def;
  const v = Number(process.argv[i + 1]);
  if (!Number.isInteger(v) || v <= 0) throw new Error(`--${name} wants a positive whole number`);
  return v;
}
const ROUNDS = arg('rounds', 200);
const DEAD_EVENTS = arg('dead-events', 10_000);
const AUTH = 'Basic ' + Buffer.from('admin:password').toString('base64');
const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 4 });

interface Stats {
  cpuMicros: number;
  rss: number;
  heapUsed: number;
}

const child: ChildProcess = fork(fileURLToPath(new URL('./events-agent.lib.ts', import.meta.url)), [], {
  execArgv: ['--import', 'tsx', '--expose-gc'],
  stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
});
const [{ port }] = (await once(child, 'message')) as [{ port: number }];
const BASE = `http://127.0.0.1:${port}`;

async function stats(): Promise<Stats> {
  child.send({ cmd: 'stats' });
  const [s] = (await once(child, 'message')) as [Stats];
  return s;
}

function rf(method: string, path: string, body?: unknown): Promise<{ status: number; text: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request(
      `${BASE}${path}`,
      { method, agent: keepAlive, headers: { authorization: AUTH, ...(data ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } : {}) } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text, headers: res.headers }));
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

async function submit(round: number): Promise<number> {
  const sent = performance.now();
  const r = await rf('POST', '/redfish/v1/EventService/Actions/EventService.SubmitTestEvent', { MessageId: 'ResourceEvent.1.4.3.TestMessage', Message: `round ${round}` });
  if (r.status !== 204) throw new Error(`SubmitTestEvent: ${r.status} ${r.text}`);
  return sent;
}

/** Arrivals: round → receipt times (one per subscriber or stream) */
class Arrivals {
  private readonly got = new Map<number, number[]>();
  private waiter: { round: number; n: number; done: () => void } | undefined;
  record(round: number): void {
    const t = performance.now();
    const list = this.got.get(round) ?? [];
    list.push(t);
    this.got.set(round, list);
    const w = this.waiter;
    if (w && w.round === round && list.length >= w.n) {
      this.waiter = undefined;
      w.done();
    }
  }
  async all(round: number, n: number): Promise<number[]> {
    const have = this.got.get(round);
    if (!have || have.length < n) {
      await new Promise<void>((done, fail) => {
        const t = setTimeout(() => fail(new Error(`round ${round}: ${this.got.get(round)?.length ?? 0} of ${n} arrived within 10 s`)), 10_000);
        this.waiter = { round, n, done: () => (clearTimeout(t), done()) };
      });
    }
    return this.got.get(round)!;
  }
  clear(): void {
    this.got.clear();
  }
}

const arrivals = new Arrivals();
const roundOf = (msg: unknown): number | undefined => {
  const m = /^round (\d+)$/.exec(String(msg));
  return m ? Number(m[1]) : undefined;
};

// one receiver for every push subscriber (a path each)
const receiver = http.createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    try {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { Events?: { Message?: string }[] };
      for (const e of body.Events ?? []) {
        const r = roundOf(e.Message);
        if (r !== undefined) arrivals.record(r);
      }
    } catch {
      // not ours
    }
    res.writeHead(204).end();
  });
});
receiver.keepAliveTimeout = 60_000;
await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
const rxPort = (receiver.address() as AddressInfo).port;

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
const ms = (v: number): string => `${v.toFixed(2)} ms`;

async function rounds(n: number, from: number): Promise<{ lat: number[]; cpu: number }> {
  const before = await stats();
  const lat: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const round = from + i;
    const sent = await submit(round);
    if (n > 0) for (const t of await arrivals.all(round, n)) lat.push(t - sent);
  }
  const after = await stats();
  arrivals.clear();
  return { lat: lat.sort((a, b) => a - b), cpu: after.cpuMicros - before.cpuMicros };
}

async function subscribe(dest: string): Promise<string> {
  const r = await rf('POST', '/redfish/v1/EventService/Subscriptions', { Destination: dest, Protocol: 'Redfish', Context: 'bench' });
  if (r.status !== 201) throw new Error(`subscribe: ${r.status} ${r.text}`);
  return r.headers.location!;
}

async function unsubscribeAll(uris: string[]): Promise<void> {
  for (const u of uris) await rf('DELETE', u);
}

let next = 1;
const results: string[] = [];

// warm-up and the request-only baseline (no subscriber, no stream)
await rounds(0, next);
next += ROUNDS;
const idle = await rounds(0, next);
next += ROUNDS;
const reqCpu = idle.cpu / ROUNDS;
results.push(`SubmitTestEvent with no listener: ${reqCpu.toFixed(0)} µs agent CPU per request (subtracted below)`);

// 1. push subscribers
const pushLat: Record<number, number[]> = {};
for (const n of [1, 100]) {
  const uris: string[] = [];
  for (let i = 0; i < n; i++) uris.push(await subscribe(`http://127.0.0.1:${rxPort}/s/${i}`));
  await rounds(n, next); // warm-up: connections open
  next += ROUNDS;
  const r = await rounds(n, next);
  next += ROUNDS;
  pushLat[n] = r.lat;
  const perDelivery = (r.cpu - idle.cpu) / (ROUNDS * n);
  results.push(
    `push, ${String(n).padStart(3)} subscriber(s): latency p50 ${ms(pct(r.lat, 50))}, p99 ${ms(pct(r.lat, 99))} over ${r.lat.length} deliveries; agent CPU ${perDelivery.toFixed(1)} µs per delivered event`,
  );
  await unsubscribeAll(uris);
}

// 2. SSE streams
async function openSse(): Promise<() => void> {
  const ac = new AbortController();
  const res = await fetch(`${BASE}/redfish/v1/EventService/SSE`, { headers: { authorization: AUTH }, signal: ac.signal });
  if (res.status !== 200 || !res.body) throw new Error(`SSE: ${res.status}`);
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let buf = '';
  void (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buf += dec.decode(value, { stream: true });
        let i: number;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const frame = buf.slice(0, i);
          buf = buf.slice(i + 2);
          for (const line of frame.split('\n')) {
            if (!line.startsWith('data:')) continue;
            try {
              const ev = JSON.parse(line.slice(5)) as { Events?: { Message?: string }[] };
              for (const e of ev.Events ?? []) {
                const r = roundOf(e.Message);
                if (r !== undefined) arrivals.record(r);
              }
            } catch {
              // a frame that is not JSON: not ours
            }
          }
        }
      }
    } catch {
      // aborted
    }
  })();
  return () => ac.abort();
}

const sseLat: Record<number, number[]> = {};
for (const n of [1, 100]) {
  const closers: (() => void)[] = [];
  for (let i = 0; i < n; i++) closers.push(await openSse());
  await rounds(n, next);
  next += ROUNDS;
  const r = await rounds(n, next);
  next += ROUNDS;
  sseLat[n] = r.lat;
  const perDelivery = (r.cpu - idle.cpu) / (ROUNDS * n);
  results.push(
    `SSE,  ${String(n).padStart(3)} stream(s):       latency p50 ${ms(pct(r.lat, 50))}, p99 ${ms(pct(r.lat, 99))} over ${r.lat.length} deliveries; agent CPU ${perDelivery.toFixed(1)} µs per delivered event`,
  );
  for (const c of closers) c();
}

// 3. a dead subscriber: accepts TCP, never answers
const held: net.Socket[] = [];
const dead = net.createServer((s) => held.push(s));
await new Promise<void>((r) => dead.listen(0, '127.0.0.1', r));
const deadPort = (dead.address() as AddressInfo).port;
async function flood(count: number): Promise<void> {
  for (let i = 0; i < count; i++) await submit(0);
}
await flood(1000); // the event history fills to its bound first, so both runs start full
const s0 = await stats();
await flood(DEAD_EVENTS);
const s1 = await stats();
const deadUri = await subscribe(`http://127.0.0.1:${deadPort}/dead`);
const s2 = await stats();
await flood(DEAD_EVENTS);
const s3 = await stats();
const sub = JSON.parse((await rf('GET', deadUri)).text) as { Status?: { State?: string } };
const mb = (b: number): string => `${(b / 1048576).toFixed(1)} MB`;
const delta = (a: Stats, b: Stats): string => `RSS ${mb(a.rss)} → ${mb(b.rss)} (${b.rss >= a.rss ? '+' : ''}${mb(b.rss - a.rss)}), heap ${mb(a.heapUsed)} → ${mb(b.heapUsed)} (${b.heapUsed >= a.heapUsed ? '+' : ''}${mb(b.heapUsed - a.heapUsed)})`;
results.push(`${DEAD_EVENTS} events, no subscriber:   ${delta(s0, s1)}`);
results.push(`${DEAD_EVENTS} events, dead subscriber: ${delta(s2, s3)}; subscription ${sub.Status?.State ?? '?'}, ${held.length} connection(s) held open by the dead end`);

const ratio = (a: number[], b: number[], p: number): string => (pct(b, p) / pct(a, p)).toFixed(2);
results.push(`ratios 100 vs 1: push p50 ${ratio(pushLat[1]!, pushLat[100]!, 50)}×, p99 ${ratio(pushLat[1]!, pushLat[100]!, 99)}×; SSE p50 ${ratio(sseLat[1]!, sseLat[100]!, 50)}×, p99 ${ratio(sseLat[1]!, sseLat[100]!, 99)}×`);

console.log(`event delivery (${ROUNDS} rounds per figure, agent in its own process, loopback)`);
for (const l of results) console.log(`  ${l}`);

for (const s of held) s.destroy();
dead.close();
receiver.close();
keepAlive.destroy();
child.send({ cmd: 'exit' });
await once(child, 'exit');
