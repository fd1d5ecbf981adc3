/**
 * Helpers shared by the benchmarks that run the agent as its own process (compiled JavaScript,
 * plain `node`, no tsx): build a tree, start `virtbmc`, read a process's CPU time and RSS from
 * /proc, drive wrk and parse its summary. Imported only; `make bench` skips *.lib.ts files.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';

/** USER_HZ: utime/stime in /proc/<pid>/stat count in these ticks (100 on Linux). */
const HZ = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

export const freePort = (): Promise<number> =>
  new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });

/** utime + stime of a process, in seconds. */
export function cpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(rest[11]) + Number(rest[12])) / HZ;
}

export function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0) / 1024;
}

/**
 * Compiles the tree at `root` (its tsconfig.build.json) into a temporary directory inside it, so
 * its node_modules resolves. Returns the path of virtbmc.js and a function removing the build.
 */
export function buildTree(root: string): { js: string; dispose: () => void } {
  const out = mkdtempSync(join(root, '.bench-build-'));
  execFileSync('npx', ['tsc', '-p', join(root, 'tsconfig.build.json'), '--outDir', out], { cwd: root, stdio: 'inherit' });
  return { js: join(out, 'src/cmd/virtbmc.js'), dispose: () => rmSync(out, { recursive: true, force: true }) };
}

export interface Proc {
  child: ChildProcess;
  pid: number;
  startupMs: number;
  stop: () => Promise<void>;
}

/** Starts `node <js> <args>` and resolves once it printed `virtbmc ready`. */
export async function startAgent(js: string, args: readonly string[], nodeFlags: readonly string[] = [], env: NodeJS.ProcessEnv = {}): Promise<Proc> {
  const t0 = process.hrtime.bigint();
  const child = spawn(process.execPath, [...nodeFlags, js, ...args, '--log-level', 'warn'], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env } });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('virtbmc ready')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`agent exited ${code}: ${out}`)));
  });
  return { child, pid: child.pid!, startupMs: Number(process.hrtime.bigint() - t0) / 1e6, stop: () => stopChild(child) };
}

export function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

export interface WrkResult {
  requests: number;
  rps: number;
  /** latency percentiles in ms (from --latency) */
  p50: number;
  p99: number;
  non2xx: number;
  /** server CPU seconds during the run */
  cpu: number;
  /** server CPU µs per request */
  cpuUs: number;
}

const toMs = (v: string | undefined): number => {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(v ?? '');
  if (!m) return NaN;
  const n = Number(m[1]);
  return m[2] === 'us' ? n / 1000 : m[2] === 'ms' ? n : m[2] === 's' ? n * 1000 : n * 60_000;
};

/** One wrk run at nice 10 (so the server under test wins the shared cores), its summary parsed. */
export async function runWrk(args: readonly string[]): Promise<Omit<WrkResult, 'cpu' | 'cpuUs'>> {
  const out = await new Promise<string>((resolve, reject) => {
    execFile('nice', ['-n', '10', 'wrk', '--latency', ...args], { maxBuffer: 1 << 20 }, (err, stdout) => (err ? reject(err) : resolve(stdout)));
  });
  const pct = (p: string) => toMs(new RegExp(`^\\s*${p}%\\s+(\\S+)`, 'm').exec(out)?.[1]);
  return {
    requests: Number(/(\d+) requests in/.exec(out)?.[1] ?? 0),
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? 0),
    p50: pct('50'),
    p99: pct('99'),
    non2xx: Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0),
  };
}

/** One wrk run (runWrk), with the server's CPU time read from /proc/<serverPid>/stat before and after. */
export async function wrk(serverPid: number, args: readonly string[]): Promise<WrkResult> {
  const c0 = cpuSeconds(serverPid);
  const r = await runWrk(args);
  const cpu = cpuSeconds(serverPid) - c0;
  return { ...r, cpu, cpuUs: r.requests ? (cpu / r.requests) * 1e6 : 0 };
}

export const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n === 0 ? NaN : n % 2 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
};

export const basic = (u: string, p: string): string => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;

/** A wrk script cycling through `reqs` (path, header name, header value), each thread from its own offset. */
export function luaScript(file: string, reqs: ReadonlyArray<readonly [string, string, string]>): void {
  const rows = reqs.map(([p, h, v]) => `  {${JSON.stringify(p)}, ${JSON.stringify(h)}, ${JSON.stringify(v)}},`).join('\n');
  writeFileSync(
    file,
    `local list = {\n${rows}\n}
local reqs = {}
local i = 0
init = function(args)
  for k, v in ipairs(list) do reqs[k] = wrk.format("GET", v[1], { [v[2]] = v[3] }) end
  i = math.random(#reqs) - 1
end
request = function()
  i = i % #reqs + 1
  return reqs[i]
end
`,
  );
}
