/**
 * Footprint and Redfish cost of the two agent shapes (issue 16, docs/scale.md), in one run:
 *  - per-VM agent (simulator): cold start, idle RSS, RSS after BENCH_GETS Redfish GETs, server CPU per GET;
 *  - shared agent with BENCH_FLEET simulated VMs (each with its own IPMI socket and credentials):
 *    cold start, idle RSS, RSS after the same GETs spread over every VM, server CPU per GET.
 * Both run the same compiled JavaScript (tsc to a temporary .bench-build-* directory in the tree, so node_modules resolves; plain `node`, no tsx).
 * Client: keep-alive node:http with BENCH_CONNS connections; server CPU from /proc/<pid>/stat.
 * Env: BENCH_GETS (default 200000), BENCH_FLEET (1000), BENCH_CONNS (8), NODE_FLAGS (extra node flags).
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { join } from 'node:path';

const GETS = Number(process.env.BENCH_GETS ?? 200_000);
const FLEET = Number(process.env.BENCH_FLEET ?? 1000);
const CONNS = Number(process.env.BENCH_CONNS ?? 8);
const NODE_FLAGS = (process.env.NODE_FLAGS ?? '').split(' ').filter(Boolean);
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

async function startAgent(js: string, args: string[]): Promise<{ child: ChildProcess; startupMs: number }> {
  const t0 = process.hrtime.bigint();
  const child = spawn(process.execPath, [...NODE_FLAGS, js, ...args, '--log-level', 'warn'], { stdio: ['ignore', 'pipe', 'inherit'] });
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

async function measure(js: string, args: string[], port: number, paths: string[], auths: string[]): Promise<Figures> {
  const { child, startupMs } = await startAgent(js, args);
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

    const p1 = await freePort();
    const perVm = await measure(js, ['--simulate', '--password', pw, '--redfish-port', String(p1), '--no-ipmi'], p1, ['/redfish/v1/Systems/1'], [basic('admin', pw)]);

    const p2 = await freePort();
    const ipmiBase = 40000;
    const ids = Array.from({ length: FLEET }, (_, i) => `vm-${String(i + 1).padStart(4, '0')}`);
    const shared = await measure(
      js,
      ['--simulate-fleet', String(FLEET), '--fleet-ipmi-base', String(ipmiBase), '--password', pw, '--redfish-port', String(p2)],
      p2,
      ids.map((vm) => `/redfish/v1/Systems/sim.${vm}`),
      ids.map((vm) => basic('admin', `${pw}-${vm}`)),
    );

    const row = (name: string, f: Figures) =>
      `${name.padEnd(22)} start ${f.startupMs.toFixed(0).padStart(5)} ms  idle ${f.idleMb.toFixed(1).padStart(6)} MB  after ${GETS} GETs ${f.afterMb.toFixed(1).padStart(6)} MB (+${(f.afterMb - f.idleMb).toFixed(1)})  ${f.rate.toFixed(0).padStart(6)} req/s  ${f.cpuUsPerReq.toFixed(1)} µs CPU/req  errors ${f.errors}`;
    console.log(`connections ${CONNS}, node flags: ${NODE_FLAGS.join(' ') || '(none)'}`);
    console.log(row('per-VM agent (1 VM)', perVm));
    console.log(row(`shared agent (${FLEET} VMs)`, shared));
    console.log(
      `shared RSS per VM ${(shared.afterMb / FLEET).toFixed(2)} MB vs per-VM ${perVm.afterMb.toFixed(1)} MB: ` +
        `${FLEET} VMs in ${shared.afterMb.toFixed(0)} MB instead of ${(perVm.afterMb * FLEET).toFixed(0)} MB (${((shared.afterMb / (perVm.afterMb * FLEET)) * 100).toFixed(2)} %); ` +
        `CPU/request shared/per-VM ${(shared.cpuUsPerReq / perVm.cpuUsPerReq).toFixed(2)}; rate shared/per-VM ${(shared.rate / perVm.rate).toFixed(2)}`,
    );
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
