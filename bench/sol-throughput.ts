/**
 * Benchmark: Serial-over-LAN throughput, both directions, over one RMCP+ session on loopback:
 *   - VM → client: the guest prints SOL_BENCH_OUT bytes (default 1 MiB) at once; the time until the
 *     client has all of them
 *   - client → VM: the client sends SOL_BENCH_IN bytes (default 256 KiB), each packet waiting for
 *     its ACK as ipmitool does; the time until the guest has all of them
 * for our agent (simulator console; cipher suites 17 and 3) and, when installed, OpenIPMI's ipmi_sim
 * (suite 3, its best) with its SOL on a TCP "serial port" this benchmark serves, measured in the
 * same run with the same client (test/ipmi/sol-client.ts). Prints bytes/s and each server's CPU
 * time per KiB moved (from /proc/PID/stat). A measurement, not a test: it never fails on a number.
 * Env: SOL_BENCH_OUT, SOL_BENCH_IN (bytes).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SolClient } from '../test/ipmi/sol-client.js';
import { spawnIpmiSim } from './ipmi-sim.lib.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const OUT = Number(process.env.SOL_BENCH_OUT ?? 1024 * 1024);
const IN = Number(process.env.SOL_BENCH_IN ?? 256 * 1024);
const TICK_MS = 10; // USER_HZ is 100 on Linux

function cpuMs(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(rest[11]) + Number(rest[12])) * TICK_MS;
}

function lines(p: ChildProcess): (re: RegExp, ms?: number) => Promise<RegExpMatchArray> {
  let buf = '';
  const waiters: Array<() => void> = [];
  p.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    for (const w of waiters.splice(0)) w();
  });
  return async (re, ms = 20_000) => {
    const deadline = Date.now() + ms;
    for (;;) {
      const m = buf.match(re);
      if (m) {
        buf = buf.slice((m.index ?? 0) + m[0].length);
        return m;
      }
      if (Date.now() > deadline) throw new Error(`timeout waiting for ${re}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, 100);
        waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  };
}

interface Target {
  name: string;
  pid: number;
  port: number;
  suite: number;
  /** the guest prints n bytes */
  emit(n: number): Promise<void>;
  /** bytes the guest has received */
  received(): Promise<number>;
}

interface Result {
  name: string;
  outBps: number;
  outCpuPerKiB: number;
  outComplete: boolean;
  inBps: number;
  inCpuPerKiB: number;
}

async function measure(t: Target): Promise<Result> {
  const c = new SolClient({ port: t.port, suite: t.suite, retryMs: 500 });
  await c.open();
  const act = await c.activate();
  if (act.cc !== 0) throw new Error(`${t.name}: Activate Payload cc ${act.cc.toString(16)}`);
  await new Promise((r) => setTimeout(r, 300));
  // VM → client
  let base = c.receivedBytes;
  let cpu0 = cpuMs(t.pid);
  let t0 = process.hrtime.bigint();
  await t.emit(OUT);
  let complete = true;
  try {
    await c.waitFor(() => c.receivedBytes - base >= OUT, 120_000);
  } catch {
    complete = false;
  }
  let secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const got = c.receivedBytes - base;
  const outBps = got / secs;
  const outCpuPerKiB = (cpuMs(t.pid) - cpu0) / (got / 1024);
  // client → VM
  base = await t.received();
  cpu0 = cpuMs(t.pid);
  t0 = process.hrtime.bigint();
  const data = Buffer.alloc(IN, 0x41);
  await c.send(data);
  const deadline = Date.now() + 60_000;
  while ((await t.received()) - base < IN && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const inBps = ((await t.received()) - base) / secs;
  const inCpuPerKiB = (cpuMs(t.pid) - cpu0) / (IN / 1024);
  await c.deactivate().catch(() => undefined);
  c.close();
  return { name: t.name, outBps, outCpuPerKiB, outComplete: complete, inBps, inCpuPerKiB };
}

async function ourAgent(): Promise<{ proc: ChildProcess; targets: Target[] }> {
  const proc = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'bench/sol-agent.lib.ts')], { cwd: ROOT, stdio: ['pipe', 'pipe', 'inherit'] });
  const next = lines(proc);
  const port = Number((await next(/READY (\d+)/))[1]);
  const emit = async (n: number) => {
    proc.stdin!.write(`emit ${n}\n`);
  };
  const received = async () => {
    proc.stdin!.write('count\n');
    return Number((await next(/RECEIVED (\d+)/))[1]);
  };
  return {
    proc,
    targets: [17, 3].map((suite) => ({ name: `kubevirtbmc (suite ${suite})`, pid: proc.pid!, port, suite, emit, received })),
  };
}

/** ipmi_sim with its SOL "serial port" on a TCP server of ours. */
async function ipmiSim(): Promise<{ proc: ChildProcess; target: Target; dir: string } | undefined> {
  if (spawnSync('sh', ['-c', 'command -v ipmi_sim']).status !== 0) return undefined;
  let serial: Socket | undefined;
  let received = 0;
  const server = createServer((s) => {
    serial = s;
    s.on('data', (d: Buffer) => (received += d.length));
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const serialPort = (server.address() as { port: number }).port;
  const probe = createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', () => r()));
  const lanPort = (probe.address() as { port: number }).port; // a free number (UDP and TCP spaces differ; good enough here)
  probe.close();
  const dir = mkdtempSync(join(tmpdir(), 'sol-bench-'));
  const proc = spawnIpmiSim({ dir, name: 'solbench', port: lanPort, password: 'password', solSerialPort: serialPort });
  const deadline = Date.now() + 10_000;
  while (!serial && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  if (!serial) {
    proc.kill();
    server.close();
    return undefined;
  }
  const pattern = Buffer.alloc(64 * 1024);
  for (let i = 0; i < pattern.length; i++) pattern[i] = 0x20 + (i % 95);
  const target: Target = {
    name: 'ipmi_sim (suite 3)',
    pid: proc.pid!,
    port: lanPort,
    suite: 3,
    async emit(n) {
      // as fast as ipmi_sim reads its serial port (TCP flow control paces the writes)
      void (async () => {
        while (n > 0) {
          const k = Math.min(n, pattern.length);
          if (!serial!.write(pattern.subarray(0, k))) await new Promise((r) => serial!.once('drain', r));
          n -= k;
        }
      })();
    },
    async received() {
      return received;
    },
  };
  proc.on('exit', () => server.close());
  return { proc, target, dir };
}

const fmt = (bps: number) => `${(bps / 1024).toFixed(1)} KiB/s`;

async function main(): Promise<void> {
  const ours = await ourAgent();
  const sim = await ipmiSim().catch((e: unknown) => {
    console.log(`ipmi_sim not measured: ${e instanceof Error ? e.message : String(e)}`);
    return undefined;
  });
  if (!sim) console.log('ipmi_sim not measured (not installed or its SOL port did not connect)');
  const results: Result[] = [];
  try {
    for (const t of [...ours.targets, ...(sim ? [sim.target] : [])]) {
      try {
        results.push(await measure(t));
      } catch (e) {
        console.log(`${t.name}: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
  } finally {
    ours.proc.kill();
    sim?.proc.kill();
    if (sim) rmSync(sim.dir, { recursive: true, force: true });
  }
  console.log(`SOL throughput on loopback, one session, ${OUT} bytes VM→client and ${IN} bytes client→VM`);
  for (const r of results) {
    console.log(
      `${r.name.padEnd(26)} VM→client ${fmt(r.outBps).padStart(14)}${r.outComplete ? '' : ' (incomplete: data lost)'}  ${r.outCpuPerKiB.toFixed(3)} ms CPU/KiB   ` +
        `client→VM ${fmt(r.inBps).padStart(14)}  ${r.inCpuPerKiB.toFixed(3)} ms CPU/KiB`,
    );
  }
}

await main();
process.exit(0);
