/**
 * Footprint and Redfish cost of the two agent shapes (issue 16, docs/scale.md), in one run:
 *  - per-VM agent (simulator): cold start, idle RSS, RSS after BENCH_GETS Redfish GETs, server CPU per GET;
 *  - shared agent with BENCH_FLEET simulated VMs (each with its own IPMI socket and credentials):
 *    cold start, idle RSS, RSS after the same GETs spread over every VM, server CPU per GET.
 * Both run the same compiled JavaScript (tsc to a temporary .bench-build-* directory in the tree, so node_modules resolves; plain `node`, no tsx).
 * Client: keep-alive node:http with BENCH_CONNS connections; server CPU from /proc/<pid>/stat.
 * Each shape runs twice in the same run: with node's defaults, and with AGENT_NODE_OPTIONS (the
 * V8 flags the controller gives per-VM agent pods, src/controller/agent-pod.ts) in NODE_OPTIONS, as
 * the pod passes them; the ratios compare the two in one run.
 * Env: BENCH_GETS (default 200000), BENCH_FLEET (1000), BENCH_CONNS (8), NODE_FLAGS (extra node flags
 * for every row), BENCH_POD_FLAGS (other flags for the `-flags` rows), BENCH_SHAPES (default `pervm,pervm-flags,shared,shared-flags`).
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { join } from 'node:path';
import { AGENT_NODE_OPTIONS } from '../src/controller/agent-pod.js';

const GETS = Number(process.env.BENCH_GETS ?? 200_000);
const FLEET = Number(process.env.BENCH_FLEET ?? 1000);
const CONNS = Number(process.env.BENCH_CONNS ?? 8);
const NODE_FLAGS = (process.env.NODE_FLAGS ?? '').split(' ').filter(Boolean);
/** the flags of the `-flags` rows: the pods' (default) or others to compare (BENCH_POD_FLAGS) */
const POD_FLAGS = process.env.BENCH_POD_FLAGS ?? AGENT_NODE_OPTIONS;
const SHAPES = new Set((process.env.BENCH_SHAPES ?? 'pervm,pervm-flags,shared,shared-flags').split(','));
const HZ = 100;

const freePort = (): Promise<number> =>
  new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });

const rssMb = (pid: number): number => {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0) / 1024;
};
const cpuSeconds = (pid: number): number => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) / HZ;
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function startAgent(js: string, args: string[], nodeOptions: string): Promise<{ child: ChildProcess; startupMs: number }> {
  const t0 = process.hrtime.bigint();
  const env = { ...process.env, NODE_OPTIONS: nodeOptions };
  const child = spawn(process.execPath, [...NODE_FLAGS, js, ...args, '--log-level', 'warn'], { stdio: ['ignore', 'pipe', 'inherit'], env });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('virtbmc ready')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`agent exited ${code}`)));
  });
  return { child, startupMs: Number(process.hrtime.bigint() - t0) / 1e6 };
}

async function load(port: number, paths: readonly string[], auths: readonly string[], n: number): Promise<{ seconds: number; errors: number }> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONNS });
  let next = 0;
  let errors = 0;
  const t0 = process.hrtime.bigint();
  const worker = async (): Promise<void> => {
    while (next < n) {
      const i = next++;
      await new Promise<void>((resolve) => {
        const req = http.get(
          { host: '127.0.0.1', port, path: paths[i % paths.length], agent, headers: { Authorization: auths[i % auths.length] } },
          (res) => {
            if (res.statusCode !== 200) errors++;
            res.resume();
            res.on('end', resolve);
          },
        );
        req.on('error', () => {
          errors++;
          resolve();
        });
      });
    }
  };
  await Promise.all(Array.from({ length: CONNS }, worker));
  agent.destroy();
  return { seconds: Number(process.hrtime.bigint() - t0) / 1e9, errors };
}

interface Figures {
  startupMs: number;
  idleMb: number;
  afterMb: number;
  rate: number;
  cpuUsPerReq: number;
  errors: number;
}

async function measure(js: string, args: string[], port: number, paths: string[], auths: string[], nodeOptions = ''): Promise<Figures> {
  const { child, startupMs } = await startAgent(js, args, nodeOptions);
  const pid = child.pid!;
  try {
    await sleep(2000);
    const idleMb = rssMb(pid);
    await load(port, paths, auths, Math.min(2000, GETS)); // warm-up
    const c0 = cpuSeconds(pid);
    const { seconds, errors } = await load(port, paths, auths, GETS);
    const cpu = cpuSeconds(pid) - c0;
    await sleep(2000);
    return { startupMs, idleMb, afterMb: rssMb(pid), rate: GETS / seconds, cpuUsPerReq: (cpu / GETS) * 1e6, errors };
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
}

const basic = (u: string, p: string) => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;

async function main(): Promise<void> {
  const out = mkdtempSync(join(process.cwd(), '.bench-build-'));
  try {
    execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json', '--outDir', out], { stdio: 'inherit' });
    const js = join(out, 'src/cmd/virtbmc.js');
    const pw = 'bench-pw';

    const rows: Array<[string, Figures]> = [];
    const perVmRow = async (name: string, nodeOptions: string) => {
      const p = await freePort();
      rows.push([name, await measure(js, ['--simulate', '--password', pw, '--redfish-port', String(p), '--no-ipmi'], p, ['/redfish/v1/Systems/1'], [basic('admin', pw)], nodeOptions)]);
    };
    const ids = Array.from({ length: FLEET }, (_, i) => `vm-${String(i + 1).padStart(4, '0')}`);
    const sharedRow = async (name: string, nodeOptions: string) => {
      const p = await freePort();
      const args = ['--simulate-fleet', String(FLEET), '--fleet-ipmi-base', '40000', '--password', pw, '--redfish-port', String(p)];
      rows.push([name, await measure(js, args, p, ids.map((vm) => `/redfish/v1/Systems/sim.${vm}`), ids.map((vm) => basic('admin', `${pw}-${vm}`)), nodeOptions)]);
    };
    if (SHAPES.has('pervm')) await perVmRow('per-VM agent (1 VM)', '');
    if (SHAPES.has('pervm-flags')) await perVmRow('per-VM, pod flags', POD_FLAGS);
    if (SHAPES.has('shared')) await sharedRow(`shared (${FLEET} VMs)`, '');
    if (SHAPES.has('shared-flags')) await sharedRow(`shared, pod flags`, POD_FLAGS);

    const row = (name: string, f: Figures) =>
      `${name.padEnd(22)} start ${f.startupMs.toFixed(0).padStart(5)} ms  idle ${f.idleMb.toFixed(1).padStart(6)} MB  after ${GETS} GETs ${f.afterMb.toFixed(1).padStart(6)} MB (+${(f.afterMb - f.idleMb).toFixed(1)})  ${f.rate.toFixed(0).padStart(6)} req/s  ${f.cpuUsPerReq.toFixed(1)} µs CPU/req  errors ${f.errors}`;
    console.log(`connections ${CONNS}, node flags: ${NODE_FLAGS.join(' ') || '(none)'}, pod flags (NODE_OPTIONS): ${POD_FLAGS}`);
    for (const [name, f] of rows) console.log(row(name, f));
    const get = (prefix: string) => rows.find(([n]) => n.startsWith(prefix))?.[1];
    const ratio = (label: string, a: Figures | undefined, b: Figures | undefined) => {
      if (a && b) console.log(`${label}: CPU/request ${(a.cpuUsPerReq / b.cpuUsPerReq).toFixed(2)}, rate ${(a.rate / b.rate).toFixed(2)}, growth ${(a.afterMb - a.idleMb).toFixed(1)} vs ${(b.afterMb - b.idleMb).toFixed(1)} MB`);
    };
    ratio('per-VM with pod flags / per-VM defaults', get('per-VM, pod'), get('per-VM agent'));
    ratio('shared with pod flags / shared defaults', get('shared, pod'), get('shared ('));
    ratio('shared / per-VM (defaults)', get('shared ('), get('per-VM agent'));
    ratio('shared / per-VM (pod flags)', get('shared, pod'), get('per-VM, pod'));
    const shared = get('shared (') ?? get('shared, pod');
    const perVm = get('per-VM agent') ?? get('per-VM, pod');
    if (shared && perVm) {
      console.log(
        `shared RSS per VM ${(shared.afterMb / FLEET).toFixed(2)} MB vs per-VM ${perVm.afterMb.toFixed(1)} MB: ` +
          `${FLEET} VMs in ${shared.afterMb.toFixed(0)} MB instead of ${(perVm.afterMb * FLEET).toFixed(0)} MB (${((shared.afterMb / (perVm.afterMb * FLEET)) * 100).toFixed(2)} %)`,
      );
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
