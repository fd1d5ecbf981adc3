/**
 * Instructions per Redfish GET, counted by valgrind (callgrind, no cache simulation), which the
 * machine's load does not bend the way it bends req/s and CPU time (a 2-core machine shared by
 * other builds moves those by 2× and more between rounds). Each server runs under valgrind; after
 * BENCH_WARM (1,200) sequential requests of every kind it will be measured with, on one keep-alive
 * connection (JIT tiers, caches), and BENCH_WARM / 4 more of the kind about to be measured, the
 * counters are zeroed (callgrind_control -z), BENCH_REQS (2,000) more are sent, and the counts
 * since then are dumped (callgrind_control -d): every thread of the process, divided by the
 * requests. Servers:
 *   current        this tree compiled, `virtbmc --simulate --no-ipmi`, GET Systems/1 with Basic,
 *                  then with a session (X-Auth-Token)
 *   base           the same for BENCH_BASE_REF (e.g. main), when set
 *   bare           node:http answering the agent's Systems/1 body and headers after a
 *                  constant-time compare of the Authorization / X-Auth-Token value (as redfish-vs-base.ts)
 *   shared         this tree (and base) `--simulate-fleet BENCH_FLEET` (100), the requests going
 *                  round every VM's Systems/<id> with its own Basic credentials
 * Prints instructions per request and the ratios. A measurement, not a test: it never fails on a number.
 * Env: BENCH_BASE_REF, BENCH_WARM, BENCH_REQS, BENCH_FLEET.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { basic, buildTree, freePort } from './agent-proc.lib.js';
import { BARE_SESSION_TOKEN, bareServerSource, login } from './redfish-bench.lib.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const BASE_REF = process.env.BENCH_BASE_REF ?? '';
const WARM = Number(process.env.BENCH_WARM ?? 1200);
const REQS = Number(process.env.BENCH_REQS ?? 2000);
const FLEET = Number(process.env.BENCH_FLEET ?? 100);
const PW = 'bench-pw';
const PATH = '/redfish/v1/Systems/1';

/** The agent of a git ref, compiled inside ROOT so node_modules resolves (as scale-p99.ts). */
function buildRef(ref: string): { js: string; dispose: () => void } {
  const src = mkdtempSync(join(ROOT, '.bench-base-'));
  const tar = join(src, 'src.tar');
  execFileSync('git', ['archive', '--output', tar, ref, 'src', 'generated', 'ui', 'tsconfig.json', 'tsconfig.build.json', 'package.json'], { cwd: ROOT, stdio: 'inherit' });
  execFileSync('tar', ['-xf', tar, '-C', src], { stdio: 'inherit' });
  execFileSync('npx', ['tsc', '-p', join(src, 'tsconfig.build.json'), '--outDir', join(src, 'out')], { cwd: src, stdio: 'inherit' });
  return { js: join(src, 'out/src/cmd/virtbmc.js'), dispose: () => rmSync(src, { recursive: true, force: true }) };
}

interface Grind {
  child: ChildProcess;
  dir: string;
}

/** node `args` under callgrind; resolves once it printed `ready`. */
async function grind(args: readonly string[], env: NodeJS.ProcessEnv): Promise<Grind> {
  const dir = mkdtempSync(join(tmpdir(), 'rf-instr-'));
  const child = spawn(
    'valgrind',
    ['--tool=callgrind', '--cache-sim=no', '--dump-instr=no', `--callgrind-out-file=${join(dir, 'cg.%p')}`, process.execPath, ...args],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } },
  );
  child.stderr!.resume();
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('ready')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`exited ${code}: ${out}`)));
  });
  return { child, dir };
}

/** Sum of instructions in the newest dump file(s) written since `before` (the `summary:`/`totals:` line). */
function dumpedInstructions(dir: string, before: ReadonlySet<string>): number {
  let total = 0;
  for (const f of readdirSync(dir)) {
    if (before.has(f)) continue;
    const m = /^(?:summary|totals):\s+(\d+)/m.exec(readFileSync(join(dir, f), 'utf8'));
    if (m) total += Number(m[1]);
  }
  return total;
}

const control = (g: Grind, flag: string): void => {
  execFileSync('callgrind_control', [flag, String(g.child.pid)], { stdio: 'ignore' });
};

/** `n` sequential GETs on one keep-alive connection; throws on any non-200. */
async function gets(port: number, n: number, reqs: ReadonlyArray<[string, Record<string, string>]>): Promise<void> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    for (let i = 0; i < n; i++) {
      const [path, headers] = reqs[i % reqs.length]!;
      await new Promise<void>((resolve, reject) => {
        http
          .get({ host: '127.0.0.1', port, path, headers, agent }, (res) => {
            res.resume();
            res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`${path}: ${res.statusCode}`))));
          })
          .on('error', reject);
      });
    }
  } finally {
    agent.destroy();
  }
}

type Reqs = ReadonlyArray<[string, Record<string, string>]>;

/**
 * Every kind of request a process will be measured with, WARM times each, before the first count:
 * otherwise the first kind measured also pays for the JIT compiling the code both kinds share.
 */
async function prewarm(port: number, kinds: readonly Reqs[]): Promise<void> {
  for (const reqs of kinds) await gets(port, WARM, reqs);
}

/** Instructions per request of `reqs` (cycled) against the server on `port`, after WARM / 4 more of them. */
async function measure(g: Grind, port: number, reqs: Reqs): Promise<number> {
  await gets(port, Math.ceil(WARM / 4), reqs);
  control(g, '-z');
  await gets(port, REQS, reqs);
  const before = new Set(readdirSync(g.dir));
  control(g, '-d');
  return dumpedInstructions(g.dir, before) / REQS;
}

async function stop(g: Grind): Promise<void> {
  if (g.child.exitCode === null) {
    await new Promise<void>((resolve) => {
      g.child.once('exit', () => resolve());
      g.child.kill('SIGTERM');
    });
  }
  rmSync(g.dir, { recursive: true, force: true });
}

const fmt = (n: number): string => `${(n / 1e6).toFixed(3)} M`;

async function main(): Promise<void> {
  const builds = [{ name: 'current', ...buildTree(ROOT) }];
  if (BASE_REF) builds.push({ name: `base ${BASE_REF}`, ...buildRef(BASE_REF) });
  const results = new Map<string, number>();
  let sample: { body: string; headers: Record<string, string> } | undefined;
  try {
    for (const b of builds) {
      const port = await freePort();
      const g = await grind([b.js, '--simulate', '--no-ipmi', '--redfish-port', String(port), '--sim-power', 'on', '--log-level', 'warn'], { BMC_PASSWORD: PW });
      try {
        if (!sample) {
          const r = await fetch(`http://127.0.0.1:${port}${PATH}`, { headers: { authorization: basic('admin', PW) } });
          const headers: Record<string, string> = {};
          r.headers.forEach((v, k) => {
            if (!['date', 'connection', 'keep-alive', 'content-length', 'transfer-encoding'].includes(k)) headers[k] = v;
          });
          sample = { body: await r.text(), headers };
        }
        const kinds: Reqs[] = [[[PATH, { authorization: basic('admin', PW) }]], [[PATH, { 'x-auth-token': await login(port, PW) }]]];
        await prewarm(port, kinds);
        results.set(`${b.name}|basic`, await measure(g, port, kinds[0]!));
        results.set(`${b.name}|session`, await measure(g, port, kinds[1]!));
      } finally {
        await stop(g);
      }
      const sport = await freePort();
      const s = await grind([b.js, '--simulate-fleet', String(FLEET), '--redfish-port', String(sport), '--log-level', 'warn'], { BMC_PASSWORD: PW });
      try {
        const ids = Array.from({ length: FLEET }, (_, i) => `vm-${String(i + 1).padStart(4, '0')}`);
        const fleet: Reqs = ids.map((vm) => [`/redfish/v1/Systems/sim.${vm}`, { authorization: basic('admin', `${PW}-${vm}`) }]);
        await prewarm(sport, [fleet]);
        results.set(`${b.name}|shared`, await measure(s, sport, fleet));
      } finally {
        await stop(s);
      }
    }
    const bport = await freePort();
    const token = BARE_SESSION_TOKEN;
    const src = bareServerSource(PATH, 'ready');
    const bare = await grind(['-e', src], {
      B_BODY: sample!.body,
      B_HEADERS: JSON.stringify(sample!.headers),
      B_BASIC: basic('admin', PW),
      B_TOKEN: token,
      B_PORT: String(bport),
    });
    try {
      const kinds: Reqs[] = [[[PATH, { authorization: basic('admin', PW) }]], [[PATH, { 'x-auth-token': token }]]];
      await prewarm(bport, kinds);
      results.set('bare|basic', await measure(bare, bport, kinds[0]!));
      results.set('bare|session', await measure(bare, bport, kinds[1]!));
    } finally {
      await stop(bare);
    }
  } finally {
    for (const b of builds) b.dispose();
  }
  console.log(`instructions per GET (callgrind, ${REQS} requests after ${WARM}, one keep-alive connection; shared: ${FLEET} VMs in turn)`);
  for (const [k, v] of results) console.log(`  ${k.padEnd(24)} ${fmt(v)}`);
  const r = (a: string, b: string): string => (results.get(a)! / results.get(b)!).toFixed(2);
  for (const b of builds) {
    console.log(
      `${b.name}: basic / bare ${r(`${b.name}|basic`, 'bare|basic')} (bare / it ${r('bare|basic', `${b.name}|basic`)}), session / bare ${r(`${b.name}|session`, 'bare|session')}, shared / per-VM (basic) ${r(`${b.name}|shared`, `${b.name}|basic`)}`,
    );
  }
  if (BASE_REF) {
    const base = `base ${BASE_REF}`;
    console.log(`current / ${base}: basic ${r('current|basic', `${base}|basic`)}, session ${r('current|session', `${base}|session`)}, shared ${r('current|shared', `${base}|shared`)}`);
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
