/**
 * IPMI throughput with the real client (issue 16): IPMI_BENCH_SESSIONS (default 8) parallel
 * `ipmitool -I lanplus -C <suite> ... exec <file>` sessions, each running IPMI_BENCH_N (default 5000)
 * `chassis power status` commands (Get Chassis Status) on its own RMCP+ session, against
 *   agent     this tree compiled (plain `node`), `virtbmc --simulate --no-redfish` (suites 17 and 3)
 *   ipmi_sim  OpenIPMI's lanserv simulator (C), suite 3: it offers no HMAC-SHA256 suite, so it
 *             refuses -C 17 ("invalid authentication algorithm")
 *   shared    this tree, `virtbmc --simulate-fleet IPMI_BENCH_FLEET (1000) --fleet-ipmi-base P`,
 *             driven on the first VM's port with that VM's credentials (suites 17 and 3)
 *   base      with BENCH_BASE_DIR (another checkout, e.g. `git archive main | tar -x -C DIR` with
 *             node_modules linked): that tree's agent and shared agent too, compiled the same way,
 *             and the ratios this tree / base (CPU per request)
 * all in the same run, taking turns round after round (IPMI_BENCH_ROUNDS, default 3). Prints per run
 * the request rate (answered commands of all sessions / wall time, session setup included), the server's CPU
 * time per request (utime+stime from /proc/<pid>/stat) and failed commands, then medians and the
 * ratios agent/ipmi_sim and shared/per-VM (per round, then their median). ipmitool runs at nice 10.
 * A measurement, not a test: it never fails on a number.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildTree, cpuSeconds, freePort, median, startAgent, stopChild, type Proc } from './agent-proc.lib.js';
import { spawnIpmiSim } from './ipmi-sim.lib.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const SESSIONS = Number(process.env.IPMI_BENCH_SESSIONS ?? 8);
const N = Number(process.env.IPMI_BENCH_N ?? 5000);
const ROUNDS = Math.max(1, Number(process.env.IPMI_BENCH_ROUNDS ?? 3));
const FLEET = Number(process.env.IPMI_BENCH_FLEET ?? 1000);
const PW = 'password';
const BASE_DIR = process.env.BENCH_BASE_DIR;

/** A free UDP port (bound then released). */
const freeUdp = (): Promise<number> =>
  new Promise((resolve) => {
    const s = createSocket('udp4');
    s.bind(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

/** The first of `n` consecutive UDP ports that are all free now. */
async function freeUdpRange(n: number): Promise<number> {
  for (let base = 42000; base + n < 65000; base += n) {
    const socks = await Promise.all(
      Array.from({ length: n }, (_, i) => new Promise<ReturnType<typeof createSocket> | undefined>((resolve) => {
        const s = createSocket('udp4');
        s.once('error', () => resolve(undefined));
        s.bind(base + i, '127.0.0.1', () => resolve(s));
      })),
    );
    const ok = socks.every(Boolean);
    await Promise.all(socks.map((s) => (s ? new Promise<void>((r) => s.close(() => r())) : undefined)));
    if (ok) return base;
  }
  throw new Error(`no ${n} consecutive free UDP ports`);
}

interface Target {
  name: string;
  pid: () => number;
  port: number;
  user: string;
  password: string;
  suites: number[];
}

async function ipmiSim(dir: string): Promise<{ child: ChildProcess; port: number } | undefined> {
  if (spawnSync('sh', ['-c', 'command -v ipmi_sim']).status !== 0) return undefined;
  const port = await freeUdp();
  const child = spawnIpmiSim({ dir, name: 'ipmiexec', port, password: PW });
  // ready when it answers one command
  for (let i = 0; i < 50; i++) {
    const r = spawnSync('ipmitool', ['-I', 'lanplus', '-C', '3', '-H', '127.0.0.1', '-p', String(port), '-U', 'admin', '-P', PW, '-R', '1', '-N', '1', 'chassis', 'power', 'status']);
    if (r.status === 0) return { child, port };
    execFileSync('sleep', ['0.1']);
  }
  await stopChild(child);
  return undefined;
}

interface Run {
  rps: number;
  cpuUs: number;
  failed: number;
}

/** SESSIONS parallel ipmitool exec sessions; counts the commands that printed a power state. */
async function drive(t: Target, suite: number, file: string, n: number): Promise<Run> {
  const pid = t.pid();
  const c0 = cpuSeconds(pid);
  const t0 = process.hrtime.bigint();
  const oks = await Promise.all(
    Array.from({ length: SESSIONS }, () => new Promise<number>((resolve) => {
      const p = spawn('nice', ['-n', '10', 'ipmitool', '-I', 'lanplus', '-C', String(suite), '-H', '127.0.0.1', '-p', String(t.port), '-U', t.user, '-P', t.password, 'exec', file], {
        stdio: ['ignore', 'pipe', 'ignore'],
      });
      let out = '';
      p.stdout.on('data', (d: Buffer) => (out += d.toString()));
      p.on('close', () => resolve(out.split('\n').filter((l) => l.startsWith('Chassis Power is')).length));
    })),
  );
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = cpuSeconds(pid) - c0;
  // only answered commands count: a session refused at open (e.g. the agent's bound of 4 half-open
  // handshakes per source address, src/ipmi/session/table.ts) shows as failed, not as speed
  const done = oks.reduce((a, b) => a + b, 0);
  return { rps: done / secs, cpuUs: done ? (cpu / done) * 1e6 : 0, failed: SESSIONS * n - done };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'ipmi-exec-'));
  const file = join(dir, 'cmds.txt');
  writeFileSync(file, 'chassis power status\n'.repeat(N));
  const warm = join(dir, 'warm.txt');
  writeFileSync(warm, 'chassis power status\n'.repeat(Math.min(N, 1000)));
  const builds = [{ tree: '', ...buildTree(ROOT) }];
  if (BASE_DIR) builds.push({ tree: 'base ', ...buildTree(BASE_DIR) });
  else console.log('BENCH_BASE_DIR unset: no base tree measured');
  const procs: Array<{ stop: () => Promise<void> }> = [];
  try {
    const targets: Target[] = [];
    for (const build of builds) {
      const agentPort = await freeUdp();
      const agent: Proc = await startAgent(build.js, ['--simulate', '--no-redfish', '--ipmi-port', String(agentPort), '--sim-power', 'on'], [], { BMC_PASSWORD: PW });
      procs.push(agent);
      targets.push({ name: `${build.tree}agent (per-VM)`, pid: () => agent.pid, port: agentPort, user: 'admin', password: PW, suites: [17, 3] });
    }
    const sim = await ipmiSim(dir);
    if (sim) {
      procs.push({ stop: () => stopChild(sim.child) });
      targets.push({ name: 'ipmi_sim', pid: () => sim.child.pid!, port: sim.port, user: 'admin', password: PW, suites: [3] });
    } else console.log('ipmi_sim not measured (not installed or did not answer)');
    for (const build of builds) {
      // each shared agent holds its range while the next one is looked for
      const first = await freeUdpRange(FLEET);
      const shared = await startAgent(
        build.js,
        ['--simulate-fleet', String(FLEET), '--fleet-ipmi-base', String(first), '--redfish-port', String(await freePort())],
        [],
        { BMC_PASSWORD: PW },
      );
      procs.push(shared);
      targets.push({ name: `${build.tree}shared (${FLEET} VMs)`, pid: () => shared.pid, port: first, user: 'admin', password: `${PW}-vm-0001`, suites: [17, 3] });
    }

    console.log(`${SESSIONS} parallel 'ipmitool -I lanplus exec' sessions × ${N} 'chassis power status', ${ROUNDS} rounds, targets alternating`);
    const results = new Map<string, Run[]>();
    for (let round = 1; round <= ROUNDS; round++) {
      for (const t of targets) {
        for (const suite of t.suites) {
          if (round === 1) await drive(t, suite, warm, Math.min(N, 1000)); // warm-up, unmeasured
          const r = await drive(t, suite, file, N);
          const key = `${t.name}|${suite}`;
          results.set(key, [...(results.get(key) ?? []), r]);
          console.log(`round ${round} ${t.name.padEnd(23)} -C ${String(suite).padEnd(2)} ${r.rps.toFixed(0).padStart(6)} req/s  ${r.cpuUs.toFixed(1).padStart(6)} µs CPU/req  failed ${r.failed}`);
        }
      }
    }
    const med = (name: string, suite: number) => {
      const rs = results.get(`${name}|${suite}`);
      return rs ? { rps: median(rs.map((r) => r.rps)), cpu: median(rs.map((r) => r.cpuUs)) } : undefined;
    };
    console.log('medians:');
    for (const t of targets) for (const s of t.suites) {
      const m = med(t.name, s)!;
      console.log(`  ${t.name.padEnd(23)} -C ${String(s).padEnd(2)} ${m.rps.toFixed(0).padStart(6)} req/s  ${m.cpu.toFixed(1).padStart(6)} µs CPU/req`);
    }
    // ratios: per round (the two runs were seconds apart), then the median over the rounds
    const ratio = (num: string, ns: number, den: string, ds: number): string => {
      const a = results.get(`${num}|${ns}`);
      const b = results.get(`${den}|${ds}`);
      if (!a || !b) return 'n/a';
      const rate = median(a.map((r, i) => r.rps / b[i]!.rps));
      const cpu = median(a.map((r, i) => r.cpuUs / b[i]!.cpuUs));
      return `rate ${rate.toFixed(2)}, CPU/req ${cpu.toFixed(2)}`;
    };
    const sh = `shared (${FLEET} VMs)`;
    console.log('ratios (median of the per-round ratios):');
    console.log(`  agent -C 3  / ipmi_sim -C 3: ${ratio('agent (per-VM)', 3, 'ipmi_sim', 3)}`);
    console.log(`  agent -C 17 / ipmi_sim -C 3: ${ratio('agent (per-VM)', 17, 'ipmi_sim', 3)}`);
    console.log(`  shared / per-VM -C 17: ${ratio(sh, 17, 'agent (per-VM)', 17)}`);
    console.log(`  shared / per-VM -C 3:  ${ratio(sh, 3, 'agent (per-VM)', 3)}`);
    if (BASE_DIR) {
      const bsh = `base shared (${FLEET} VMs)`;
      console.log(`  base agent -C 3  / ipmi_sim -C 3: ${ratio('base agent (per-VM)', 3, 'ipmi_sim', 3)}`);
      console.log(`  base agent -C 17 / ipmi_sim -C 3: ${ratio('base agent (per-VM)', 17, 'ipmi_sim', 3)}`);
      console.log(`  base shared / base per-VM -C 17: ${ratio(bsh, 17, 'base agent (per-VM)', 17)}`);
      console.log(`  base shared / base per-VM -C 3:  ${ratio(bsh, 3, 'base agent (per-VM)', 3)}`);
      console.log(`  this tree / base, per-VM -C 17: ${ratio('agent (per-VM)', 17, 'base agent (per-VM)', 17)}`);
      console.log(`  this tree / base, per-VM -C 3:  ${ratio('agent (per-VM)', 3, 'base agent (per-VM)', 3)}`);
      console.log(`  this tree / base, shared -C 17: ${ratio(sh, 17, bsh, 17)}`);
      console.log(`  this tree / base, shared -C 3:  ${ratio(sh, 3, bsh, 3)}`);
    }
  } finally {
    for (const p of procs) await p.stop();
    for (const b of builds) b.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
