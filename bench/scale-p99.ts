/**
 * Redfish latency under concurrency, per-VM vs shared agent (issue 16): wrk (nice 10, 2 threads)
 * with BENCH_P99_CONNS (default 32) keep-alive connections doing GET /redfish/v1/Systems/<id> with
 * HTTP Basic, against
 *   per-VM   this tree compiled (plain `node`), `virtbmc --simulate --no-ipmi`, Systems/1
 *   shared   the same build, `virtbmc --simulate-fleet BENCH_FLEET (1000)`, the requests going round
 *            all VMs with each VM's own credentials (a wrk Lua script holds the 1,000 requests)
 * both driven by the same kind of Lua script (per-VM: a table of one request), in the same run,
 * taking turns round after round (BENCH_ROUNDS, default 3; BENCH_SECONDS per run, default 3, after
 * one unmeasured second). Prints p50/p99 latency, req/s and the server's CPU per request
 * (utime+stime from /proc/<pid>/stat) per run, then medians and the shared/per-VM ratios (per round,
 * then their median). With BENCH_BASE_REF=<git ref> a third target is the shared agent built from
 * that ref (git archive, compiled the same way), in the same rounds: a change to shared mode is
 * compared with what it changes, in one run. A measurement, not a test: it never fails on a number.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { basic, buildTree, freePort, median, startAgent, wrk, type Proc, type WrkResult } from './agent-proc.lib.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const CONNS = Number(process.env.BENCH_P99_CONNS ?? 32);
const FLEET = Number(process.env.BENCH_FLEET ?? 1000);
const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 3));
const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const PW = 'bench-pw';
const BASE_REF = process.env.BENCH_BASE_REF ?? '';

/** The agent of another git ref, compiled like buildTree (inside ROOT, so node_modules resolves). */
function buildRef(ref: string): { js: string; dispose: () => void } {
  const src = mkdtempSync(join(ROOT, '.bench-base-'));
  const tar = join(src, 'src.tar');
  execFileSync('git', ['archive', '--output', tar, ref, 'src', 'generated', 'tsconfig.json', 'tsconfig.build.json', 'package.json'], { cwd: ROOT, stdio: 'inherit' });
  execFileSync('tar', ['-xf', tar, '-C', src], { stdio: 'inherit' });
  execFileSync('npx', ['tsc', '-p', join(src, 'tsconfig.build.json'), '--outDir', join(src, 'out')], { cwd: src, stdio: 'inherit' });
  return { js: join(src, 'out/src/cmd/virtbmc.js'), dispose: () => rmSync(src, { recursive: true, force: true }) };
}

/** A wrk script cycling through `reqs` (path, Authorization), each thread from its own offset. */
function luaScript(file: string, reqs: ReadonlyArray<[string, string]>): void {
  const rows = reqs.map(([p, a]) => `  {${JSON.stringify(p)}, ${JSON.stringify(a)}},`).join('\n');
  writeFileSync(
    file,
    `local list = {\n${rows}\n}
local reqs = {}
local i = 0
init = function(args)
  for k, v in ipairs(list) do reqs[k] = wrk.format("GET", v[1], { ["Authorization"] = v[2] }) end
  i = math.random(#reqs) - 1
end
request = function()
  i = i % #reqs + 1
  return reqs[i]
end
`,
  );
}

interface Target {
  name: string;
  proc: Proc;
  port: number;
  script: string;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'scale-p99-'));
  const build = buildTree(ROOT);
  const base = BASE_REF ? buildRef(BASE_REF) : undefined;
  const targets: Target[] = [];
  try {
    const p1 = await freePort();
    const perVm = await startAgent(build.js, ['--simulate', '--no-ipmi', '--redfish-port', String(p1), '--sim-power', 'on'], [], { BMC_PASSWORD: PW });
    const s1 = join(dir, 'per-vm.lua');
    luaScript(s1, [['/redfish/v1/Systems/1', basic('admin', PW)]]);
    targets.push({ name: 'per-VM (1 VM)', proc: perVm, port: p1, script: s1 });
    const p2 = await freePort();
    const shared = await startAgent(build.js, ['--simulate-fleet', String(FLEET), '--redfish-port', String(p2)], [], { BMC_PASSWORD: PW });
    const s2 = join(dir, 'shared.lua');
    const ids = Array.from({ length: FLEET }, (_, i) => `vm-${String(i + 1).padStart(4, '0')}`);
    luaScript(s2, ids.map((vm) => [`/redfish/v1/Systems/sim.${vm}`, basic('admin', `${PW}-${vm}`)]));
    targets.push({ name: `shared (${FLEET} VMs)`, proc: shared, port: p2, script: s2 });
    if (base) {
      const p3 = await freePort();
      const old = await startAgent(base.js, ['--simulate-fleet', String(FLEET), '--redfish-port', String(p3)], [], { BMC_PASSWORD: PW });
      targets.push({ name: `shared at ${BASE_REF}`.slice(0, 18), proc: old, port: p3, script: s2 });
    }

    console.log(`GET Systems/<id> with Basic, ${CONNS} connections (wrk -t2), ${SECONDS}s per run, ${ROUNDS} rounds, targets alternating`);
    const results = new Map<string, WrkResult[]>();
    const args = (t: Target, secs: number) => ['-t2', `-c${CONNS}`, `-d${secs}s`, '-s', t.script, `http://127.0.0.1:${t.port}/`];
    for (let round = 1; round <= ROUNDS; round++) {
      for (const t of targets) {
        await wrk(t.proc.pid, args(t, 1)); // warm-up
        const r = await wrk(t.proc.pid, args(t, SECONDS));
        results.set(t.name, [...(results.get(t.name) ?? []), r]);
        console.log(
          `round ${round} ${t.name.padEnd(18)} p50 ${r.p50.toFixed(2).padStart(7)} ms  p99 ${r.p99.toFixed(2).padStart(7)} ms  ${r.rps.toFixed(0).padStart(6)} req/s  ${r.cpuUs.toFixed(1).padStart(6)} µs CPU/req${r.non2xx ? `  NON-2XX ${r.non2xx}` : ''}`,
        );
      }
    }
    console.log('medians:');
    for (const t of targets) {
      const rs = results.get(t.name)!;
      console.log(
        `  ${t.name.padEnd(18)} p50 ${median(rs.map((r) => r.p50)).toFixed(2)} ms  p99 ${median(rs.map((r) => r.p99)).toFixed(2)} ms  ${median(rs.map((r) => r.rps)).toFixed(0)} req/s  ${median(rs.map((r) => r.cpuUs)).toFixed(1)} µs CPU/req`,
      );
    }
    const ratios = (label: string, a: WrkResult[], b: WrkResult[]): void => {
      const r = (f: (x: WrkResult) => number) => median(a.map((x, i) => f(x) / f(b[i]!))).toFixed(2);
      console.log(`${label} (median of per-round ratios): p99 ${r((x) => x.p99)}, p50 ${r((x) => x.p50)}, rate ${r((x) => x.rps)}, CPU/req ${r((x) => x.cpuUs)}`);
    };
    const of = (k: number): WrkResult[] => results.get(targets[k]!.name)!;
    ratios('shared / per-VM', of(1), of(0));
    if (base) {
      ratios(`shared at ${BASE_REF} / per-VM`, of(2), of(0));
      ratios(`shared (this tree) / shared at ${BASE_REF}`, of(1), of(2));
    }
  } finally {
    for (const t of targets) await t.proc.stop();
    build.dispose();
    base?.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
