/**
 * The same K VMs served two ways (issue 16, docs/scale.md "Shared agent against per-VM pods"):
 *   pods     K per-VM agents (this tree compiled, `virtbmc --simulate --no-ipmi`, one process per
 *            VM as the controller's PerVM mode deploys them), each driven by its own wrk with
 *            BENCH_PODS_CONNS (1) keep-alive connection(s) on GET /redfish/v1/Systems/1
 *   shared   one agent `--simulate-fleet K`, one wrk with K × BENCH_PODS_CONNS connections going
 *            round the K systems, each VM with its own credentials (as bench/scale-p99.ts)
 *   one VM   one per-VM agent with the same K × BENCH_PODS_CONNS connections on its one system
 *            (bench/scale-p99.ts's baseline: a hot agent whose working set is one VM)
 * with HTTP Basic on every request, taking turns round after round (BENCH_ROUNDS, default 3;
 * BENCH_SECONDS per run, default 3, after one unmeasured second). Prints req/s, p99 (the pods': the
 * worst of their wrk runs) and the servers' CPU per request (utime+stime from /proc of every agent
 * process of the target, over the requests of all its wrk runs), then medians and the ratios per
 * round (then their median). Before the rounds, the pods run BENCH_WARM_SECONDS (30) unmeasured (JIT:
 * each pod sees a K-th of the requests; with 8 s their CPU/request still fell 5× over 5 rounds), the
 * others 3 s, then each target's idle CPU (ms per second over 3 s:
 * timers, GC) is printed. K = BENCH_PODS (default 32). A measurement, not a test: it never fails
 * on a number.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { basic, buildTree, cpuSeconds, freePort, luaScript, median, runWrk, startAgent, type Proc } from './agent-proc.lib.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const K = Math.max(1, Number(process.env.BENCH_PODS ?? 32));
const PER = Math.max(1, Number(process.env.BENCH_PODS_CONNS ?? 1));
const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 3));
const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const PW = 'bench-pw';
const WARM = Math.max(1, Number(process.env.BENCH_WARM_SECONDS ?? 30));

interface Run {
  requests: number;
  rps: number;
  p99: number;
  non2xx: number;
  cpuUs: number;
}

/** Several wrk runs at once against the processes `pids`: requests summed, CPU of all of them. */
async function drive(pids: readonly number[], runs: ReadonlyArray<readonly string[]>): Promise<Run> {
  const c0 = pids.reduce((s, p) => s + cpuSeconds(p), 0);
  const rs = await Promise.all(runs.map((a) => runWrk(a)));
  const cpu = pids.reduce((s, p) => s + cpuSeconds(p), 0) - c0;
  const requests = rs.reduce((s, r) => s + r.requests, 0);
  return {
    requests,
    rps: rs.reduce((s, r) => s + r.rps, 0),
    p99: Math.max(...rs.map((r) => r.p99)),
    non2xx: rs.reduce((s, r) => s + r.non2xx, 0),
    cpuUs: requests ? (cpu / requests) * 1e6 : 0,
  };
}

interface Target {
  name: string;
  pids: number[];
  runs: (secs: number) => string[][];
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'scale-pods-'));
  const build = buildTree(ROOT);
  const procs: Proc[] = [];
  try {
    const auth = basic('admin', PW);
    const pods: Array<{ proc: Proc; port: number }> = [];
    for (let i = 0; i < K; i++) {
      const port = await freePort();
      const proc = await startAgent(build.js, ['--simulate', '--no-ipmi', '--redfish-port', String(port), '--sim-power', 'on'], [], { BMC_PASSWORD: PW });
      procs.push(proc);
      pods.push({ proc, port });
    }
    const sharedPort = await freePort();
    const shared = await startAgent(build.js, ['--simulate-fleet', String(K), '--redfish-port', String(sharedPort)], [], { BMC_PASSWORD: PW });
    procs.push(shared);
    const onePort = await freePort();
    const one = await startAgent(build.js, ['--simulate', '--no-ipmi', '--redfish-port', String(onePort), '--sim-power', 'on'], [], { BMC_PASSWORD: PW });
    procs.push(one);
    const script = join(dir, 'shared.lua');
    const ids = Array.from({ length: K }, (_, i) => `vm-${String(i + 1).padStart(4, '0')}`);
    luaScript(script, ids.map((vm) => [`/redfish/v1/Systems/sim.${vm}`, 'Authorization', basic('admin', `${PW}-${vm}`)] as const));
    const conns = K * PER;
    const threads = String(Math.min(2, conns));
    const targets: Target[] = [
      {
        name: `pods (${K} agents)`,
        pids: pods.map((p) => p.proc.pid),
        runs: (s) => pods.map((p) => ['-t1', `-c${PER}`, `-d${s}s`, '-H', `Authorization: ${auth}`, `http://127.0.0.1:${p.port}/redfish/v1/Systems/1`]),
      },
      { name: `shared (${K} VMs)`, pids: [shared.pid], runs: (s) => [['-t', threads, `-c${conns}`, `-d${s}s`, '-s', script, `http://127.0.0.1:${sharedPort}/`]] },
      { name: 'one VM (1 agent)', pids: [one.pid], runs: (s) => [['-t', threads, `-c${conns}`, `-d${s}s`, '-H', `Authorization: ${auth}`, `http://127.0.0.1:${onePort}/redfish/v1/Systems/1`]] },
    ];
    // what the agents cost doing nothing (timers, GC), so a reader can tell it from the per-request cost
    const idleMs = async (pids: readonly number[]): Promise<number> => {
      const c0 = pids.reduce((s, p) => s + cpuSeconds(p), 0);
      await new Promise((r) => setTimeout(r, 3000));
      return ((pids.reduce((s, p) => s + cpuSeconds(p), 0) - c0) / 3) * 1000;
    };
    // every agent warmed up first (JIT tiers): K agents at a K-th of the rate each take K times as long
    for (const [i, t] of targets.entries()) await drive(t.pids, t.runs(i === 0 ? WARM : Math.min(WARM, 3)));
    for (const t of targets) console.log(`idle after warm-up: ${t.name} ${(await idleMs(t.pids)).toFixed(1)} ms CPU per second`);
    console.log(`GET Systems/<id>, Basic, ${conns} connections in all, ${SECONDS}s per run, ${ROUNDS} rounds, targets alternating`);
    const results = new Map<string, Run[]>();
    const width = Math.max(...targets.map((t) => t.name.length));
    for (let round = 1; round <= ROUNDS; round++) {
      for (const t of targets) {
        await drive(t.pids, t.runs(1)); // warm-up
        const r = await drive(t.pids, t.runs(SECONDS));
        results.set(t.name, [...(results.get(t.name) ?? []), r]);
        console.log(`round ${round} ${t.name.padEnd(width)} p99 ${r.p99.toFixed(2).padStart(7)} ms  ${r.rps.toFixed(0).padStart(6)} req/s  ${r.cpuUs.toFixed(1).padStart(6)} µs CPU/req${r.non2xx ? `  NON-2XX ${r.non2xx}` : ''}`);
      }
    }
    console.log('medians:');
    for (const t of targets) {
      const rs = results.get(t.name)!;
      console.log(`  ${t.name.padEnd(width)} p99 ${median(rs.map((r) => r.p99)).toFixed(2)} ms  ${median(rs.map((r) => r.rps)).toFixed(0)} req/s  ${median(rs.map((r) => r.cpuUs)).toFixed(1)} µs CPU/req`);
    }
    const [podsT, sharedT, oneT] = targets.map((t) => results.get(t.name)!) as [Run[], Run[], Run[]];
    const ratio = (label: string, a: Run[], b: Run[]): void => {
      const r = (f: (x: Run) => number) => median(a.map((x, i) => f(x) / f(b[i]!))).toFixed(2);
      console.log(`${label} (median of per-round ratios): CPU/req ${r((x) => x.cpuUs)}, rate ${r((x) => x.rps)}, p99 ${r((x) => x.p99)}`);
    };
    ratio(`shared (${K} VMs) / pods (${K} agents)`, sharedT, podsT);
    ratio(`shared (${K} VMs) / one VM`, sharedT, oneT);
    ratio(`pods (${K} agents) / one VM`, podsT, oneT);
  } finally {
    for (const p of procs) await p.stop();
    build.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
