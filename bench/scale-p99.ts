/**
 * Redfish latency under concurrency, per-VM vs shared agent (issue 16): wrk (nice 10, 2 threads)
 * with BENCH_P99_CONNS (default 32) keep-alive connections doing GET /redfish/v1/Systems/<id>
 * with HTTP Basic (BENCH_AUTH=basic, the default), with a session's X-Auth-Token (BENCH_AUTH=session:
 * one login per VM before the rounds) or both in turn (BENCH_AUTH=both), against
 *   per-VM   this tree compiled (plain `node`), `virtbmc --simulate --no-ipmi`, Systems/1
 *   shared   the same build, `virtbmc --simulate-fleet BENCH_FLEET (1000)`, the requests going round
 *            all VMs with each VM's own credentials (a wrk Lua script holds the 1,000 requests)
 * both driven by the same kind of Lua script (per-VM: a table of one request), in the same run,
 * taking turns round after round (BENCH_ROUNDS, default 3; BENCH_SECONDS per run, default 3, after
 * one unmeasured second). Prints p50/p99 latency, req/s and the server's CPU per request
 * (utime+stime from /proc/<pid>/stat) per run, then medians and the shared/per-VM ratios (per round,
 * then their median). With BENCH_BASE_REF=<git ref> the per-VM and shared agents built from that
 * ref (git archive, compiled the same way) are two more targets in the same rounds, so a change is
 * compared with what it changes, in one run: each tree's shared / per-VM, and this tree / base for
 * each shape. A measurement, not a test: it never fails on a number.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { basic, buildTree, freePort, luaScript, median, startAgent, wrk, type Proc, type WrkResult } from './agent-proc.lib.js';
import { login } from './redfish-bench.lib.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const CONNS = Number(process.env.BENCH_P99_CONNS ?? 32);
const FLEET = Number(process.env.BENCH_FLEET ?? 1000);
const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 3));
const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const PW = 'bench-pw';
const BASE_REF = process.env.BENCH_BASE_REF ?? '';
const AUTH = process.env.BENCH_AUTH ?? 'basic';

/** The agent of another git ref, compiled like buildTree (inside ROOT, so node_modules resolves). */
function buildRef(ref: string): { js: string; dispose: () => void } {
  const src = mkdtempSync(join(ROOT, '.bench-base-'));
  const tar = join(src, 'src.tar');
  execFileSync('git', ['archive', '--output', tar, ref, 'src', 'generated', 'tsconfig.json', 'tsconfig.build.json', 'package.json'], { cwd: ROOT, stdio: 'inherit' });
  execFileSync('tar', ['-xf', tar, '-C', src], { stdio: 'inherit' });
  execFileSync('npx', ['tsc', '-p', join(src, 'tsconfig.build.json'), '--outDir', join(src, 'out')], { cwd: src, stdio: 'inherit' });
  return { js: join(src, 'out/src/cmd/virtbmc.js'), dispose: () => rmSync(src, { recursive: true, force: true }) };
}

type Auth = 'basic' | 'session';

interface Target {
  name: string;
  /** which tree and shape, for the ratios */
  tree: string;
  shape: 'per-VM' | 'shared';
  auth: Auth;
  proc: Proc;
  port: number;
  script: string;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'scale-p99-'));
  const auths: Auth[] = AUTH === 'both' ? ['basic', 'session'] : [AUTH === 'session' ? 'session' : 'basic'];
  const build = buildTree(ROOT);
  const base = BASE_REF ? buildRef(BASE_REF) : undefined;
  const trees: Array<[string, string]> = [['this tree', build.js], ...(base ? [[`at ${BASE_REF}`, base.js] as [string, string]] : [])];
  const procs: Proc[] = [];
  const targets: Target[] = [];
  try {
    const ids = Array.from({ length: FLEET }, (_, i) => `vm-${String(i + 1).padStart(4, '0')}`);
    for (const [tree, js] of trees) {
      const p1 = await freePort();
      const perVm = await startAgent(js, ['--simulate', '--no-ipmi', '--redfish-port', String(p1), '--sim-power', 'on'], [], { BMC_PASSWORD: PW });
      procs.push(perVm);
      const p2 = await freePort();
      const shared = await startAgent(js, ['--simulate-fleet', String(FLEET), '--redfish-port', String(p2)], [], { BMC_PASSWORD: PW });
      procs.push(shared);
      for (const auth of auths) {
        const tag = `${tree === 'this tree' ? '' : `${tree} `}${auth}`;
        const s1 = join(dir, `per-vm-${targets.length}.lua`);
        luaScript(s1, [['/redfish/v1/Systems/1', ...(auth === 'basic' ? (['Authorization', basic('admin', PW)] as const) : (['X-Auth-Token', await login(p1, PW)] as const))]]);
        targets.push({ name: `per-VM ${tag}`, tree, shape: 'per-VM', auth, proc: perVm, port: p1, script: s1 });
        const s2 = join(dir, `shared-${targets.length}.lua`);
        const rows: Array<readonly [string, string, string]> = [];
        for (const vm of ids) {
          rows.push([`/redfish/v1/Systems/sim.${vm}`, ...(auth === 'basic' ? (['Authorization', basic('admin', `${PW}-${vm}`)] as const) : (['X-Auth-Token', await login(p2, `${PW}-${vm}`)] as const))]);
        }
        luaScript(s2, rows);
        targets.push({ name: `shared ${tag}`, tree, shape: 'shared', auth, proc: shared, port: p2, script: s2 });
      }
    }

    console.log(`GET Systems/<id> (${auths.join(', ')}), ${CONNS} connections (wrk -t2), ${SECONDS}s per run, ${ROUNDS} rounds, targets alternating; shared: ${FLEET} VMs`);
    const results = new Map<string, WrkResult[]>();
    const width = Math.max(...targets.map((t) => t.name.length));
    const args = (t: Target, secs: number) => ['-t2', `-c${CONNS}`, `-d${secs}s`, '-s', t.script, `http://127.0.0.1:${t.port}/`];
    for (let round = 1; round <= ROUNDS; round++) {
      for (const t of targets) {
        await wrk(t.proc.pid, args(t, 1)); // warm-up
        const r = await wrk(t.proc.pid, args(t, SECONDS));
        results.set(t.name, [...(results.get(t.name) ?? []), r]);
        console.log(
          `round ${round} ${t.name.padEnd(width)} p50 ${r.p50.toFixed(2).padStart(7)} ms  p99 ${r.p99.toFixed(2).padStart(7)} ms  ${r.rps.toFixed(0).padStart(6)} req/s  ${r.cpuUs.toFixed(1).padStart(6)} µs CPU/req${r.non2xx ? `  NON-2XX ${r.non2xx}` : ''}`,
        );
      }
    }
    console.log('medians:');
    for (const t of targets) {
      const rs = results.get(t.name)!;
      console.log(
        `  ${t.name.padEnd(width)} p50 ${median(rs.map((r) => r.p50)).toFixed(2)} ms  p99 ${median(rs.map((r) => r.p99)).toFixed(2)} ms  ${median(rs.map((r) => r.rps)).toFixed(0)} req/s  ${median(rs.map((r) => r.cpuUs)).toFixed(1)} µs CPU/req`,
      );
    }
    const ratios = (label: string, a: WrkResult[], b: WrkResult[]): void => {
      const r = (f: (x: WrkResult) => number) => median(a.map((x, i) => f(x) / f(b[i]!))).toFixed(2);
      console.log(`${label} (median of per-round ratios): p99 ${r((x) => x.p99)}, p50 ${r((x) => x.p50)}, rate ${r((x) => x.rps)}, CPU/req ${r((x) => x.cpuUs)}`);
    };
    const of = (tree: string, shape: Target['shape'], auth: Auth): WrkResult[] => results.get(targets.find((t) => t.tree === tree && t.shape === shape && t.auth === auth)!.name)!;
    for (const auth of auths) {
      for (const [tree] of trees) ratios(`${auth}: shared / per-VM, ${tree}`, of(tree, 'shared', auth), of(tree, 'per-VM', auth));
      if (base) {
        const old = trees[1]![0];
        ratios(`${auth}: shared, this tree / ${old}`, of('this tree', 'shared', auth), of(old, 'shared', auth));
        ratios(`${auth}: per-VM, this tree / ${old}`, of('this tree', 'per-VM', auth), of(old, 'per-VM', auth));
      }
    }
  } finally {
    for (const p of procs) await p.stop();
    build.dispose();
    base?.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
