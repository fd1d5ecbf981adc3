/**
 * Cold start of the per-VM agent (issue 16: < 500 ms; docs/scale.md): time from spawn to the
 * `virtbmc ready` line, and the CPU the process used until then, for
 *  - a bare node:http server that prints the same line (what node itself costs here: the floor);
 *  - the agent of this tree (simulator, IPMI and Redfish on);
 *  - optionally the agent of another git ref (BENCH_BASE_REF=main), built the same way, so a
 *    change is compared with what it changes in the same run.
 * Runs are interleaved (floor, base, tree, floor, ...) so a machine that gets busier hurts all
 * alike; medians are reported with ratios. Compiled JavaScript, plain `node` (no tsx), like the
 * image. Env: BENCH_COLD_RUNS (default 15), BENCH_BASE_REF, NODE_FLAGS.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';

const RUNS = Number(process.env.BENCH_COLD_RUNS ?? 15);
const BASE_REF = process.env.BENCH_BASE_REF ?? '';
const NODE_FLAGS = (process.env.NODE_FLAGS ?? '').split(' ').filter(Boolean);
const HZ = 100;

const freePort = (udp = false): Promise<number> =>
  new Promise((resolve) => {
    if (udp) {
      // a TCP port that was free is very likely free for UDP too; the agent fails loudly if not
      void freePort().then(resolve);
      return;
    }
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });

const cpuMs = (pid: number): number => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return ((Number(f[11]) + Number(f[12])) / HZ) * 1000;
};

interface Sample {
  ms: number;
  cpuMs: number;
}

async function once(args: string[]): Promise<Sample> {
  const t0 = process.hrtime.bigint();
  const child = spawn(process.execPath, [...NODE_FLAGS, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  try {
    return await new Promise<Sample>((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('virtbmc ready')) resolve({ ms: Number(process.hrtime.bigint() - t0) / 1e6, cpuMs: cpuMs(child.pid!) });
      });
      child.once('exit', (code) => reject(new Error(`exited ${code} before ready: ${err.slice(0, 500)}`)));
    });
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => (child.exitCode !== null ? r(undefined) : child.once('exit', r)));
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const min = (xs: number[]) => Math.min(...xs);

function build(dir: string, tsconfig: string): void {
  execFileSync('npx', ['tsc', '-p', tsconfig, '--outDir', dir], { stdio: 'inherit' });
}

async function main(): Promise<void> {
  const root = process.cwd();
  const dirs: string[] = [];
  try {
    const cur = mkdtempSync(join(root, '.bench-build-'));
    dirs.push(cur);
    build(cur, 'tsconfig.build.json');
    const floor = join(cur, 'floor.cjs');
    writeFileSync(
      floor,
      "require('node:http').createServer((q, r) => r.end('{}')).listen(Number(process.argv[2]), '127.0.0.1', () => console.log('virtbmc ready'));\n",
    );
    const variants: { name: string; args: (ipmi: number, redfish: number) => string[] }[] = [
      { name: 'bare node:http (floor)', args: (_i, r) => [floor, String(r)] },
    ];
    const agentArgs = (js: string) => (ipmi: number, redfish: number) => [
      js, '--simulate', '--password', 'bench-pw', '--address', '127.0.0.1', '--ipmi-port', String(ipmi), '--redfish-port', String(redfish), '--log-level', 'warn',
    ];
    if (BASE_REF) {
      // the other ref's sources, compiled next to this tree's so node_modules resolves the same
      const base = mkdtempSync(join(root, '.bench-build-'));
      dirs.push(base);
      const src = join(base, 'tree');
      execFileSync('bash', ['-c', `mkdir -p '${src}' && git archive '${BASE_REF}' src generated tsconfig.json tsconfig.build.json package.json | tar -x -C '${src}'`], { stdio: 'inherit' });
      build(join(base, 'out'), join(src, 'tsconfig.build.json'));
      variants.push({ name: `agent at ${BASE_REF}`, args: agentArgs(join(base, 'out/src/cmd/virtbmc.js')) });
    }
    variants.push({ name: 'agent (this tree)', args: agentArgs(join(cur, 'src/cmd/virtbmc.js')) });

    const samples = variants.map(() => [] as Sample[]);
    // one unmeasured run each, so the file cache is warm for all alike
    for (const v of variants) await once(v.args(await freePort(true), await freePort()));
    for (let i = 0; i < RUNS; i++) {
      for (const [k, v] of variants.entries()) samples[k]!.push(await once(v.args(await freePort(true), await freePort())));
    }
    console.log(`cold start to "virtbmc ready", ${RUNS} interleaved runs each, node ${process.version} ${NODE_FLAGS.join(' ')}`);
    const med = samples.map((s) => median(s.map((x) => x.ms)));
    for (const [k, v] of variants.entries()) {
      const s = samples[k]!;
      console.log(
        `${v.name.padEnd(26)} median ${med[k]!.toFixed(0).padStart(5)} ms  min ${min(s.map((x) => x.ms)).toFixed(0).padStart(5)} ms  ` +
          `CPU to ready ${median(s.map((x) => x.cpuMs)).toFixed(0).padStart(5)} ms  (${(med[k]! / med[0]!).toFixed(2)} x floor)`,
      );
    }
    if (BASE_REF) console.log(`this tree / ${BASE_REF}: ${(med[2]! / med[1]!).toFixed(2)} (median wall time), ${(median(samples[2]!.map((x) => x.cpuMs)) / median(samples[1]!.map((x) => x.cpuMs))).toFixed(2)} (median CPU)`);
  } finally {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
}

await main();
