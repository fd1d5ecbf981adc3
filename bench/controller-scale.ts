/**
 * Controller scale run (a measurement, not a test): N VirtualMachines, Secrets and
 * VirtualMachineBMCs in the apiserver emulator, the real `virtbmc-controller` command in its own
 * process reconciling them all to Ready. Prints the time to converge, the controller's peak RSS
 * (VmHWM from /proc), its API requests (by verb, and how many of them watch Secrets), and the writes it makes while idle afterwards (should
 * be 0: reconciles are idempotent).
 *   npx tsx bench/controller-scale.ts [--count 1000] [--workers 8] [--mode PerVM|Shared] [--shards 2]
 * BENCH_CONTROLLER_NODE_ARGS adds node flags to the controller process (e.g. `--cpu-prof --cpu-prof-dir=/tmp/p`).
 * bench/controller-scale-modes.ts runs both modes in one command and prints the ratios.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { loadavg } from 'node:os';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startApiServer, type KubeObject } from '../test/emulator/index.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : def;
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${name} wants a positive integer`);
  return v;
}
const N = arg('count', 1000);
const modeIdx = process.argv.indexOf('--mode');
const MODE = modeIdx >= 0 ? process.argv[modeIdx + 1] : 'PerVM';
if (MODE !== 'PerVM' && MODE !== 'Shared') throw new Error('--mode wants PerVM or Shared');
const SHARDS = arg('shards', 2);
const WORKERS = arg('workers', 8);
const NS_COUNT = 10;
const b64 = (s: string) => Buffer.from(s).toString('base64');

/** user+system CPU seconds of a process, from /proc/<pid>/stat */
function cpuSeconds(pid: number): number | undefined {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
  } catch {
    return undefined;
  }
}

function procStatus(pid: number): { rssKb: number; hwmKb: number } | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? 0);
    return { rssKb: kb('VmRSS'), hwmKb: kb('VmHWM') };
  } catch {
    return undefined;
  }
}

const emu = await startApiServer({ workloadDelayMs: 20, watchHistory: 100_000 });
const namespaces = Array.from({ length: NS_COUNT }, (_, i) => `scale-${i}`);
for (const ns of namespaces) emu.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
for (let i = 0; i < N; i++) {
  const ns = namespaces[i % NS_COUNT]!;
  const name = `vm-${i}`;
  emu.create({ apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachine', metadata: { name, namespace: ns }, spec: { runStrategy: 'Halted', template: { spec: {} } } });
  emu.create({ apiVersion: 'v1', kind: 'Secret', metadata: { name: `${name}-bmc`, namespace: ns }, data: { username: b64('admin'), password: b64(`pw-${i}`) } });
  emu.create({
    apiVersion: 'bmc.kubevirt.io/v1beta1',
    kind: 'VirtualMachineBMC',
    metadata: { name, namespace: ns },
    spec: { virtualMachineRef: { name }, authSecretRef: { name: `${name}-bmc` } },
  });
}

// Ready tracking must not load the emulator it measures: a full emu.list() clones and sorts every
// VirtualMachineBMC (at 10,000, most of the emulator's CPU when polled every 250 ms). Instead each
// tick reads at most CHECK_PER_TICK of the BMCs not seen Ready yet (emu.get clones one object), in
// turn; a last full list confirms the end.
const CHECK_PER_TICK = 400;
const isReady = (o: KubeObject | undefined) =>
  ((o?.status as { conditions?: Array<{ type: string; status: string }> } | undefined)?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
const pending = new Set(Array.from({ length: N }, (_, i) => `${namespaces[i % NS_COUNT]!}/vm-${i}`));
let cursor: string[] = [];
const readyCount = () => {
  if (cursor.length === 0) cursor = [...pending];
  for (const key of cursor.splice(0, CHECK_PER_TICK)) {
    const [ns, name] = key.split('/') as [string, string];
    if (isReady(emu.get('bmc.kubevirt.io/v1beta1', 'VirtualMachineBMC', ns, name))) pending.delete(key);
  }
  if (pending.size > 0) return N - pending.size;
  const notReady = emu.list('bmc.kubevirt.io/v1beta1', 'VirtualMachineBMC').filter((o) => !isReady(o));
  for (const o of notReady) pending.add(`${o.metadata.namespace}/${o.metadata.name}`);
  return N - pending.size;
};

// Run the controller as compiled JavaScript (as in the image), not through tsx: its start-up time
// and memory are then the controller's own. Only the controller's sources are compiled.
const outDir = resolve(root, 'node_modules/.cache/virtbmc-bench');
process.stdout.write('compiling the controller (tsc)...\n');
try {
  execFileSync(
    process.execPath,
    [resolve(root, 'node_modules/typescript/bin/tsc'), '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', '--skipLibCheck',
      '--types', 'node', '--rootDir', root, '--outDir', outDir, resolve(root, 'src/cmd/virtbmc-controller.ts')],
    { stdio: 'inherit' },
  );
} catch {
  // type errors still emit JavaScript; a missing file below is the real failure
}
const entry = resolve(outDir, 'src/cmd/virtbmc-controller.js');

async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => res(p));
    });
  });
}
const healthPort = await freePort();

const t0 = Date.now();
const child = spawn(
  process.execPath,
  [...(process.env.BENCH_CONTROLLER_NODE_ARGS?.split(' ').filter(Boolean) ?? []), entry, '--kubeconfig', emu.kubeconfigPath, '--agent-image', 'registry.example/virtbmc:bench',
    '--metrics-bind-address', '0', '--health-probe-bind-address', `127.0.0.1:${healthPort}`, '--log-level', process.env.BENCH_LOG_LEVEL ?? 'warn', '--workers', String(WORKERS),
    '--default-mode', MODE, '--shards', String(SHARDS)],
  { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] },
);
const pid = child.pid!;
// never leave the controller behind, whatever happens to this script
process.on('exit', () => child.exitCode === null && child.kill('SIGKILL'));
for (const sig of ['SIGINT', 'SIGTERM', 'SIGPIPE'] as const) process.on(sig, () => process.exit(1));
let peakKb = 0;
const sampler = setInterval(() => {
  const s = procStatus(pid);
  if (s) peakKb = Math.max(peakKb, s.hwmKb, s.rssKb);
}, 100);

// start-up: until /readyz answers 200 (informers listed)
let startupMs = 0;
for (;;) {
  if (child.exitCode !== null) throw new Error(`controller exited early with ${child.exitCode}`);
  try {
    if ((await fetch(`http://127.0.0.1:${healthPort}/readyz`)).status === 200) break;
  } catch {
    // not listening yet
  }
  if (Date.now() - t0 > 120_000) throw new Error('controller not ready after 2 minutes');
  await new Promise((r) => setTimeout(r, 50));
}
startupMs = Date.now() - t0;
const t1 = Date.now();
const deadline = Date.now() + 10 * 60_000;
let ready = 0;
let lastReport = Date.now();
while ((ready = readyCount()) < N) {
  if (child.exitCode !== null) throw new Error(`controller exited early with ${child.exitCode}`);
  if (Date.now() > deadline) throw new Error(`only ${ready}/${N} Ready after 10 minutes`);
  if (Date.now() - lastReport > 5000) {
    process.stdout.write(`  ${ready}/${N} Ready after ${((Date.now() - t1) / 1000).toFixed(1)} s\n`);
    lastReport = Date.now();
  }
  await new Promise((r) => setTimeout(r, 250));
}
const convergeMs = Date.now() - t1;
const requests = emu.audit.length;
// by verb (list/watch/get/create/patch/update/delete), and the Secret watches among them
const byVerb: Record<string, number> = {};
for (const e of emu.audit) byVerb[e.verb] = (byVerb[e.verb] ?? 0) + 1;
// and by verb and resource (where the requests per VMBMC go)
const verbAndResource = (e: (typeof emu.audit)[number]): string => `${e.verb} ${e.resource}${e.subresource ? `/${e.subresource}` : ''}`;
const byVerbResource: Record<string, number> = {};
for (const e of emu.audit) byVerbResource[verbAndResource(e)] = (byVerbResource[verbAndResource(e)] ?? 0) + 1;
const secretWatches = emu.audit.filter((e) => e.resource === 'secrets' && e.verb === 'watch').length;

// idle: nothing changes, so the controller should write nothing
const writesBefore = emu.audit.filter((e) => e.verb !== 'get' && e.verb !== 'list' && e.verb !== 'watch').length;
await new Promise((r) => setTimeout(r, 2000));
const idleWriteList = emu.audit.filter((e) => e.verb !== 'get' && e.verb !== 'list' && e.verb !== 'watch').slice(writesBefore);
const idleWrites = idleWriteList.length;
// which writes (e.g. Events of the last BMCs to turn Ready, still in flight, vs a reconcile that never settles)
const idleWritesByResource: Record<string, number> = {};
for (const e of idleWriteList) idleWritesByResource[verbAndResource(e)] = (idleWritesByResource[verbAndResource(e)] ?? 0) + 1;

const controllerCpu = cpuSeconds(pid);
const deploymentsAtEnd = emu.list('apps/v1', 'Deployment').length;
const benchCpu = process.cpuUsage();
const s = procStatus(pid);
if (s) peakKb = Math.max(peakKb, s.hwmKb);
clearInterval(sampler);
child.kill('SIGTERM');
await new Promise((r) => child.once('exit', r));
await emu.close();

const result = {
  benchmark: 'controller-scale',
  mode: MODE,
  shards: MODE === 'Shared' ? SHARDS : undefined,
  agentDeployments: deploymentsAtEnd,
  vmbmcs: N,
  namespaces: NS_COUNT,
  workers: WORKERS,
  startupSeconds: Number((startupMs / 1000).toFixed(2)),
  convergeSeconds: Number((convergeMs / 1000).toFixed(2)),
  perVmbmcMs: Number((convergeMs / N).toFixed(2)),
  controllerPeakRssMiB: Number((peakKb / 1024).toFixed(1)),
  controllerSettledRssMiB: s ? Number((s.rssKb / 1024).toFixed(1)) : undefined,
  apiRequests: requests,
  apiRequestsByVerb: byVerb,
  apiRequestsByVerbAndResource: byVerbResource,
  secretWatches,
  controllerCpuSeconds: controllerCpu,
  emulatorAndBenchCpuSeconds: Number(((benchCpu.user + benchCpu.system) / 1e6).toFixed(2)),
  loadAverage1m: Number(loadavg()[0]!.toFixed(2)),
  idleWritesIn2s: idleWrites,
  idleWritesByResource,
};
process.stdout.write(
  `controller scale (${MODE}${MODE === 'Shared' ? `, K=${SHARDS} per namespace` : ''}, ${deploymentsAtEnd} agent Deployments): ${N} VirtualMachineBMCs Ready ${result.convergeSeconds} s after the controller was ready (start-up ${result.startupSeconds} s; ` +
    `${result.perVmbmcMs} ms each, ${WORKERS} workers); ` +
    `controller RSS peak ${result.controllerPeakRssMiB} MiB / settled ${result.controllerSettledRssMiB} MiB, CPU ${controllerCpu} s (emulator+bench ${result.emulatorAndBenchCpuSeconds} s); ` +
    `${requests} API requests (${Object.entries(byVerb).sort().map(([v, n]) => `${v} ${n}`).join(', ')}; ${secretWatches} Secret watches); ${idleWrites} writes while idle; load average ${result.loadAverage1m}\n`,
);
process.stdout.write(`${JSON.stringify(result)}\n`);
