/**
 * Controller scale, both modes in one command (issue 16): PerVM with --pervm-count VMBMCs (default
 * 1,000) as the baseline, then Shared with --count (default 10,000), each a fresh emulator and
 * controller process (bench/controller-scale.ts). Prints both results and the ratios per VMBMC.
 *   npx tsx bench/controller-scale-modes.ts [--count 10000] [--pervm-count 1000] [--shards 2]
 */
import { spawnSync } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const arg = (name: string, def: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : def;
};
type Result = {
  convergeSeconds: number;
  startupSeconds: number;
  controllerPeakRssMiB: number;
  apiRequests: number;
  apiRequestsByVerb: Record<string, number>;
  secretWatches: number;
  vmbmcs: number;
  controllerCpuSeconds?: number;
  agentDeployments: number;
  idleWritesIn2s: number;
};

function run(mode: string, count: string): Result {
  const r = spawnSync(process.execPath, ['--import', 'tsx', resolve(root, 'bench/controller-scale.ts'), '--mode', mode, '--count', count, '--shards', arg('shards', '2')], {
    cwd: root,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 64 * 1024 * 1024,
  });
  process.stdout.write(r.stdout);
  if (r.status !== 0) throw new Error(`${mode} run failed (${r.status})`);
  const line = r.stdout.trim().split('\n').pop()!;
  return JSON.parse(line) as Result;
}

const perVm = run('PerVM', arg('pervm-count', '1000'));
const shared = run('Shared', arg('count', '10000'));
const per = (r: Result, v: number) => v / r.vmbmcs;
const ratio = (f: (r: Result) => number) => Number((per(shared, f(shared)) / per(perVm, f(perVm))).toFixed(3));
const verbs = [...new Set([...Object.keys(perVm.apiRequestsByVerb), ...Object.keys(shared.apiRequestsByVerb)])].sort();
const summary = (r: Result) => ({
  vmbmcs: r.vmbmcs,
  startupSeconds: r.startupSeconds,
  seconds: r.convergeSeconds,
  rssMiB: r.controllerPeakRssMiB,
  cpuSeconds: r.controllerCpuSeconds,
  apiRequests: r.apiRequests,
  apiRequestsByVerb: r.apiRequestsByVerb,
  secretWatches: r.secretWatches,
  agentDeployments: r.agentDeployments,
  idleWritesIn2s: r.idleWritesIn2s,
});
const out = {
  benchmark: 'controller-scale-modes',
  perVm: summary(perVm),
  shared: summary(shared),
  // per VirtualMachineBMC, Shared over PerVM (below 1: Shared costs less per BMC)
  sharedOverPerVmPerVmbmc: {
    seconds: ratio((r) => r.convergeSeconds),
    controllerCpu: ratio((r) => r.controllerCpuSeconds ?? NaN),
    apiRequests: ratio((r) => r.apiRequests),
    byVerb: Object.fromEntries(verbs.map((v) => [v, ratio((r) => r.apiRequestsByVerb[v] ?? 0)])),
    rss: ratio((r) => r.controllerPeakRssMiB),
  },
  // whole runs, Shared over PerVM (the Shared run has more VMBMCs)
  sharedOverPerVmTotal: {
    vmbmcs: Number((shared.vmbmcs / perVm.vmbmcs).toFixed(3)),
    peakRss: Number((shared.controllerPeakRssMiB / perVm.controllerPeakRssMiB).toFixed(3)),
    seconds: Number((shared.convergeSeconds / perVm.convergeSeconds).toFixed(3)),
  },
};
process.stdout.write(`${JSON.stringify(out)}\n`);
