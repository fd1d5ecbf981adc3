/**
 * Benchmark: IPMI v2.0 Get Chassis Status ("power status") over ONE RMCP+ session, our agent vs
 * pyghmi's reference BMC (pyghmi.ipmi.bmc.Bmc), both on loopback, driven by the same clients in
 * the same run:
 *   - pyghmi's own client (pyghmi.ipmi.command.Command, raw_command 0x00/0x01), suite 3
 *   - a Node client built on our codec (suite 3, since pyghmi's BMC only speaks suite 3), first one
 *     request at a time, then with IPMI_BENCH_PIPELINE (default 8) requests in flight on the
 *     same session, which shows the servers' own throughput rather than the client's latency
 * Prints requests/s for each pair, the ratio, and each server's CPU time per request (from
 * /proc/PID/stat). A measurement, not a test: it never fails on a number.
 *
 * Reading the pyghmi-client line: that client stalls when an answer arrives before it has started
 * waiting for it, so a faster server can make it slower (observed: relaying our answers with 1 ms of
 * added delay tripled its rate against our agent). Its rate measures the client; the Node client
 * lines and the CPU time per request measure the servers.
 * The Node client runs are repeated IPMI_BENCH_ROUNDS times, alternating between the servers, and
 * the summary reports medians: on a shared box single runs move a lot with the other load.
 * Both servers first get one unmeasured second of load (our agent's JIT warms up there).
 * Env: IPMI_BENCH_SECONDS (default 5), IPMI_BENCH_PIPELINE (default 8), IPMI_BENCH_ROUNDS (default 3).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PayloadType, RmcpClass, encodeRmcpHeader, encodeRmcpPlus } from '../src/ipmi/codec/index.js';
import { AesCbcSession, freshIv } from '../src/ipmi/session/crypto.js';
import { RmcpPlusConsole, lanRequest } from '../test/ipmi/session-client.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const SECONDS = Number(process.env.IPMI_BENCH_SECONDS ?? 5);
const PY = '/usr/bin/python3';
const TICK_MS = 10; // USER_HZ is 100 on Linux
const PIPELINE = Number(process.env.IPMI_BENCH_PIPELINE ?? 8);
const ROUNDS = Math.max(1, Number(process.env.IPMI_BENCH_ROUNDS ?? 3));
/** Requests prepared per second of run: more than a bare Node UDP echo manages on loopback here. */
const MAX_RATE_SINGLE = 25_000;
const MAX_RATE_PIPELINED = 60_000;

function cpuMs(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(rest[11]) + Number(rest[12])) * TICK_MS; // utime + stime
}

function waitForLine(p: ChildProcess, re: RegExp, ms = 20000): Promise<RegExpMatchArray> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const t = setTimeout(() => reject(new Error(`timeout waiting for ${re}: ${buf}`)), ms);
    p.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const m = buf.match(re);
      if (m) {
        clearTimeout(t);
        resolve(m);
      }
    });
    p.once('exit', (code) => reject(new Error(`exited (${code}) before ${re}: ${buf}`)));
  });
}

async function freeUdpPort(): Promise<number> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

interface Result {
  requests: number;
  seconds: number;
  errors: number;
  /** the run stopped early because the prepared requests ran out */
  exhausted?: boolean;
}

function pyghmiClient(port: number): Promise<Result> {
  return new Promise((resolve, reject) => {
    const p = spawn(PY, [join(ROOT, 'bench/ipmi-pyghmi.py'), 'client', String(port), String(SECONDS)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d));
    p.stderr.on('data', (d: Buffer) => (err += d));
    p.on('exit', (code) => {
      const line = out.trim().split('\n').pop() ?? '';
      try {
        resolve(JSON.parse(line) as Result);
      } catch {
        reject(new Error(`pyghmi client failed (${code}): ${err.slice(-500)}`));
      }
    });
  });
}

/**
 * Node client on our codec. window=1: one request at a time (latency-bound, like pyghmi's
 * client). window>1: that many requests in flight on the same session (a new one is sent for
 * each answer), which measures how many requests the server itself can handle.
 *
 * On a 2-core box the client shares the CPU with the server, so it does as little as it can while
 * the clock runs: every request datagram (sequence number, AES, HMAC) is built before the timed
 * run, answers are counted straight from the socket, and one answer in 32 is fully checked (HMAC,
 * AES, completion code) with the codec. The run ends after SECONDS or when the prepared requests
 * are used up, whichever comes first; the rate uses the time actually spent.
 */
async function nodeClient(port: number, window: number, maxRate: number, seconds = SECONDS): Promise<Result> {
  const c = new RmcpPlusConsole(port, 'admin', 'password', 3);
  try {
    const h = await c.handshake();
    if (!h.established) throw new Error(`handshake failed: ${JSON.stringify(h)}`);
    const warm = await c.request(0x00, 0x01, [], 2000);
    if (warm?.cc !== 0 || warm.data.length !== 3) throw new Error(`Get Chassis Status failed: ${JSON.stringify(warm)}`);
    const reqs = prepare(c, Math.ceil(seconds * maxRate));
    const socket = c.peer.socket;
    socket.removeAllListeners('message');
    return await new Promise<Result>((resolve) => {
      let sent = 0;
      let n = 0;
      let errors = 0;
      const t0 = performance.now();
      const end = t0 + seconds * 1000;
      const send = () => socket.send(reqs[sent++]!, port, '127.0.0.1');
      let done = false;
      const finish = () => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        socket.removeAllListeners('message');
        resolve({ requests: n, errors, seconds: (performance.now() - t0) / 1000, ...(sent === reqs.length ? { exhausted: true } : {}) });
      };
      const timer = setTimeout(finish, seconds * 1000 + 2000); // lost answers end the run too
      socket.on('message', (m: Buffer) => {
        if (n % 32 === 0 && c.unwrap(m)?.cc !== 0) errors++;
        n++;
        if (sent < reqs.length && performance.now() < end) send();
        else if (n === sent) finish();
      });
      for (let i = 0; i < window; i++) send();
    });
  } finally {
    c.close();
  }
}

/**
 * `count` Get Chassis Status datagrams with consecutive session sequence numbers, built the same
 * way RmcpPlusConsole.wrap does (that helper's encoding is checked against the protocol vectors),
 * but with one AES context for the whole batch.
 */
function prepare(c: RmcpPlusConsole, count: number): Buffer[] {
  const aes = new AesCbcSession(c.aesKey!);
  const integrity = { alg: c.suite.integrity, k1: c.k1! };
  const lead = encodeRmcpHeader(RmcpClass.IPMI);
  const out: Buffer[] = new Array<Buffer>(count);
  for (let i = 0; i < count; i++) {
    const payload = aes.encrypt(freshIv(), lanRequest(0x00, 0x01));
    out[i] = encodeRmcpPlus({ payloadType: PayloadType.IPMI, encrypted: true, authenticated: true, sessionId: c.bmcId, sequence: ++c.seq, payload }, integrity, lead);
  }
  return out;
}

async function measure(label: string, pid: number, run: () => Promise<Result>) {
  const c0 = cpuMs(pid);
  const r = await run();
  const cpu = cpuMs(pid) - c0;
  const rate = r.requests / r.seconds;
  const usPerReq = (cpu * 1000) / Math.max(1, r.requests);
  const note = r.exhausted ? ` (prepared requests used up after ${r.seconds.toFixed(1)} s)` : '';
  console.log(`${label.padEnd(28)} ${rate.toFixed(0).padStart(7)} req/s  ${String(r.requests).padStart(7)} req  ${r.errors} errors  server CPU ${usPerReq.toFixed(0)} µs/req${note}`);
  return { rate, usPerReq };
}

async function main(): Promise<void> {
  const children: ChildProcess[] = [];
  try {
    const ours = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'bench/ipmi-agent.lib.ts'), '0'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(ours);
    const m = await waitForLine(ours, /IPMI_PORT (\d+) PID (\d+)/);
    const ourPort = Number(m[1]);
    const ourPid = Number(m[2]);

    const pyPort = await freeUdpPort();
    const py = spawn(PY, [join(ROOT, 'bench/ipmi-pyghmi.py'), 'bmc', String(pyPort)], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(py);
    await waitForLine(py, /PYGHMI_READY/);
    const pyPid = py.pid!;
    await new Promise((r) => setTimeout(r, 300)); // let it reach its receive loop

    console.log(`IPMI v2.0 Get Chassis Status over one session, ${SECONDS}s per run, suite 3, ${ROUNDS} rounds of the node client runs`);
    await nodeClient(ourPort, PIPELINE, MAX_RATE_PIPELINED, 1); // warm-up, not measured
    await nodeClient(pyPort, PIPELINE, MAX_RATE_PIPELINED, 1);
    const a = await measure('pyghmi client -> ours', ourPid, () => pyghmiClient(ourPort));
    const b = await measure('pyghmi client -> pyghmi BMC', pyPid, () => pyghmiClient(pyPort));
    type M = Awaited<ReturnType<typeof measure>>;
    const runs: Record<'c' | 'd' | 'e' | 'f', M[]> = { c: [], d: [], e: [], f: [] };
    for (let i = 0; i < ROUNDS; i++) {
      runs.c.push(await measure('node client   -> ours', ourPid, () => nodeClient(ourPort, 1, MAX_RATE_SINGLE)));
      runs.d.push(await measure('node client   -> pyghmi BMC', pyPid, () => nodeClient(pyPort, 1, MAX_RATE_SINGLE)));
      runs.e.push(await measure(`node x${PIPELINE} pipelined -> ours`, ourPid, () => nodeClient(ourPort, PIPELINE, MAX_RATE_PIPELINED)));
      runs.f.push(await measure(`node x${PIPELINE} pipelined -> pyghmi`, pyPid, () => nodeClient(pyPort, PIPELINE, MAX_RATE_PIPELINED)));
    }
    const median = (xs: number[]) => {
      const v = [...xs].sort((x, y) => x - y);
      return v.length % 2 ? v[(v.length - 1) / 2]! : (v[v.length / 2 - 1]! + v[v.length / 2]!) / 2;
    };
    const med = (ms: M[]): M => ({ rate: median(ms.map((m) => m.rate)), usPerReq: median(ms.map((m) => m.usPerReq)) });
    const [c, d, e, f] = [med(runs.c), med(runs.d), med(runs.e), med(runs.f)];
    const ratio = (x: number, y: number) => (y > 0 ? (x / y).toFixed(1) : 'n/a');
    console.log('(pyghmi client rates are bounded by that client, see the header of this file)');
    console.log(
      `medians: node client ours ${c.usPerReq.toFixed(0)} µs/req vs pyghmi ${d.usPerReq.toFixed(0)} µs/req server CPU (x${ratio(d.usPerReq, c.usPerReq)} less)`,
    );
    console.log(
      `SUMMARY ipmi-vs-pyghmi: pyghmi client ${a.rate.toFixed(0)} vs ${b.rate.toFixed(0)} req/s (x${ratio(a.rate, b.rate)}); ` +
        `node client ${c.rate.toFixed(0)} vs ${d.rate.toFixed(0)} req/s (x${ratio(c.rate, d.rate)}); ` +
        `pipelined ${e.rate.toFixed(0)} vs ${f.rate.toFixed(0)} req/s (x${ratio(e.rate, f.rate)}); ` +
        `server CPU/request (pipelined) ours ${e.usPerReq.toFixed(0)} µs vs pyghmi ${f.usPerReq.toFixed(0)} µs (x${ratio(f.usPerReq, e.usPerReq)} less)`,
    );
  } finally {
    for (const ch of children) if (ch.exitCode === null) ch.kill('SIGTERM');
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
