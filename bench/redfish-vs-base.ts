/**
 * Redfish GET /redfish/v1/Systems/1 on ONE keep-alive connection with authentication (issue 13's
 * "no more than 10 % slower" bar and issue 16's "≥ 60 % of a bare node:http server" goal), three
 * servers in the same run, each its own process:
 *   current  this tree, compiled (plain `node`), `virtbmc --simulate --no-ipmi`
 *   base     the tree in BENCH_BASE_DIR (e.g. `git worktree add /tmp/base-9def 9def403` with
 *            node_modules linked), compiled the same way; skipped when BENCH_BASE_DIR is unset
 *   bare     node:http answering the agent's own Systems/1 body and headers after the same
 *            header check (constant-time compare of the Authorization / X-Auth-Token value), 401 else
 * for two kinds of authentication: HTTP Basic on every request, and a session (X-Auth-Token).
 * wrk (nice 10) drives one connection for BENCH_SECONDS per run; the servers take turns, round
 * after round (BENCH_ROUNDS), so a change of the machine's other load hits all of them alike. Each
 * run is preceded by one unmeasured second (JIT, socket). Prints every run, then the medians of
 * req/s and server CPU per request (utime+stime of the server from /proc/<pid>/stat) and the ratios
 * (computed per round, then their median: a load change between rounds cancels out).
 * A measurement, not a test: it never fails on a number.
 * Env: BENCH_BASE_DIR, BENCH_ROUNDS (default 5), BENCH_SECONDS (default 2).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { basic, buildTree, freePort, median, startAgent, stopChild, wrk, type Proc, type WrkResult } from './agent-proc.lib.js';
import { BARE_SESSION_TOKEN, bareServerSource, login } from './redfish-bench.lib.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const BASE_DIR = process.env.BENCH_BASE_DIR;
const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 5));
const SECONDS = Number(process.env.BENCH_SECONDS ?? 2);
const PW = 'bench-pw';
const PATH = '/redfish/v1/Systems/1';

interface Server {
  name: string;
  proc: Proc;
  port: number;
  /** header per auth kind */
  auth: Record<Auth, string>;
}
type Auth = 'basic' | 'session';
const AUTHS: readonly Auth[] = ['basic', 'session'];

async function agent(name: string, js: string): Promise<Server> {
  const port = await freePort();
  const proc = await startAgent(js, ['--simulate', '--no-ipmi', '--redfish-port', String(port), '--sim-power', 'on'], [], { BMC_PASSWORD: PW });
  return { name, proc, port, auth: { basic: `Authorization: ${basic('admin', PW)}`, session: `X-Auth-Token: ${await login(port, PW)}` } };
}

/** The bare server: same body and headers as the agent's answer, same kind of header check. */
async function bare(from: Server): Promise<Server> {
  const r = await fetch(`http://127.0.0.1:${from.port}${PATH}`, { headers: { authorization: basic('admin', PW) } });
  const body = await r.text();
  const headers: Record<string, string> = {};
  r.headers.forEach((v, k) => {
    if (!['date', 'connection', 'keep-alive', 'content-length', 'transfer-encoding'].includes(k)) headers[k] = v;
  });
  const port = await freePort();
  const token = BARE_SESSION_TOKEN;
  const src = bareServerSource(PATH, 'virtbmc ready (bare)');
  const child = spawn(process.execPath, ['-e', src], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, B_BODY: body, B_HEADERS: JSON.stringify(headers), B_BASIC: basic('admin', PW), B_TOKEN: token, B_PORT: String(port) },
  });
  const t0 = process.hrtime.bigint();
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('exit', (c) => reject(new Error(`bare server exited ${c}`)));
  });
  const proc: Proc = { child, pid: child.pid!, startupMs: Number(process.hrtime.bigint() - t0) / 1e6, stop: () => stopChild(child) };
  return { name: 'bare node:http', proc, port, auth: { basic: `Authorization: ${basic('admin', PW)}`, session: `X-Auth-Token: ${token}` } };
}

const run = (s: Server, auth: Auth, seconds: number): Promise<WrkResult> =>
  wrk(s.proc.pid, ['-t1', '-c1', `-d${seconds}s`, '-H', s.auth[auth], `http://127.0.0.1:${s.port}${PATH}`]);

async function main(): Promise<void> {
  const builds = [{ name: 'current', ...buildTree(ROOT) }];
  if (BASE_DIR) {
    if (!existsSync(join(BASE_DIR, 'node_modules'))) throw new Error(`${BASE_DIR} has no node_modules (link it)`);
    builds.push({ name: 'base', ...buildTree(BASE_DIR) });
  } else console.log('BENCH_BASE_DIR unset: no base tree measured');
  const servers: Server[] = [];
  try {
    for (const b of builds) servers.push(await agent(b.name, b.js));
    servers.push(await bare(servers[0]!));
    const results = new Map<string, WrkResult[]>();
    console.log(`GET ${PATH}, 1 keep-alive connection, ${SECONDS}s per run, ${ROUNDS} rounds, servers alternating`);
    for (let round = 1; round <= ROUNDS; round++) {
      for (const auth of AUTHS) {
        for (const s of servers) {
          await run(s, auth, 1); // warm-up
          const r = await run(s, auth, SECONDS);
          const key = `${s.name}|${auth}`;
          results.set(key, [...(results.get(key) ?? []), r]);
          console.log(
            `round ${round} ${auth.padEnd(7)} ${s.name.padEnd(15)} ${r.rps.toFixed(0).padStart(6)} req/s  ${r.cpuUs.toFixed(1).padStart(6)} µs CPU/req  p99 ${r.p99.toFixed(2)} ms${r.non2xx ? `  NON-2XX ${r.non2xx}` : ''}`,
          );
        }
      }
    }
    console.log('medians (ratios: per round, the runs seconds apart, then the median over the rounds):');
    const med = (name: string, auth: Auth) => {
      const rs = results.get(`${name}|${auth}`) ?? [];
      return { rps: median(rs.map((r) => r.rps)), cpu: median(rs.map((r) => r.cpuUs)) };
    };
    const ratio = (num: string, den: string, auth: Auth): string => {
      const a = results.get(`${num}|${auth}`) ?? [];
      const b = results.get(`${den}|${auth}`) ?? [];
      return `rate ${median(a.map((r, i) => r.rps / b[i]!.rps)).toFixed(2)}, CPU/req ${median(a.map((r, i) => r.cpuUs / b[i]!.cpuUs)).toFixed(2)}`;
    };
    for (const auth of AUTHS) {
      const cur = med('current', auth);
      const b = med('bare node:http', auth);
      let line = `${auth.padEnd(7)} current ${cur.rps.toFixed(0)} req/s ${cur.cpu.toFixed(1)} µs/req; bare ${b.rps.toFixed(0)} req/s ${b.cpu.toFixed(1)} µs/req`;
      if (BASE_DIR) {
        const base = med('base', auth);
        line += `; base ${base.rps.toFixed(0)} req/s ${base.cpu.toFixed(1)} µs/req\n        current/bare ${ratio('current', 'bare node:http', auth)}; current/base ${ratio('current', 'base', auth)}`;
      } else line += `\n        current/bare ${ratio('current', 'bare node:http', auth)}`;
      console.log(line);
    }
  } finally {
    for (const s of servers) await s.proc.stop();
    for (const b of builds) b.dispose();
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
