/** Starting the virtbmc command (src/cmd/virtbmc.ts) as a child process from tests. */
import { spawn, type ChildProcess, type ChildProcessByStdio, type SpawnOptionsWithStdioTuple, type StdioNull, type StdioPipe } from 'node:child_process';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';

/** The repository root: the working directory the agent is started in. */
export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/**
 * Runs `node --import tsx src/cmd/virtbmc.ts ARGS` in ROOT, so that the child is the agent itself
 * and a signal sent to it reaches the agent's own handler (src/common/process.ts).
 *
 * Not through the tsx command (node_modules/.bin/tsx): it runs the script in a second process and
 * relays SIGTERM/SIGINT to it, but SIGKILLs that process (and exits 143) when it has not
 * acknowledged the signal over tsx's IPC channel within 30 ms (relaySignals in tsx's dist/cli.mjs).
 * On a loaded core that acknowledgement comes late, the agent never shuts down cleanly, and a test
 * expecting exit code 0 or state written at shutdown fails.
 */
export function spawnVirtbmc(
  args: readonly string[],
  options: Omit<SpawnOptionsWithStdioTuple<StdioNull, StdioPipe, StdioPipe>, 'stdio' | 'cwd'> = {},
): ChildProcessByStdio<null, Readable, Readable> {
  return spawn(process.execPath, ['--import', 'tsx', 'src/cmd/virtbmc.ts', ...args], { ...options, cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
}

/**
 * The endpoints of a `virtbmc ready: ...` line (src/cmd/virtbmc.ts), by name: `ipmi`, `redfish`,
 * `metrics` (each present when served), e.g. { redfish: 'http://127.0.0.1:41234/redfish/v1' }.
 * Tests start the agent on port 0 and read the ports it bound here, rather than picking a port
 * that was free a moment ago and passing it on (another process may take it meanwhile).
 */
export function readyEndpoints(out: string): Record<string, string> {
  // (out may hold the child's stderr too: the line is found wherever it starts)
  const line = /virtbmc ready:[^\n]*/.exec(out)?.[0];
  if (line === undefined) throw new Error(`no ready line in: ${out}`);
  const found: Record<string, string> = {};
  for (const m of line.matchAll(/(?:^|\s)(ipmi|redfish|metrics)=(\S+)/g)) found[m[1]!] = m[2]!;
  return found;
}

/** The port of an endpoint URL of the ready line (udp://127.0.0.1:6230, http://[::1]:8000/redfish/v1). */
export function endpointPort(url: string | undefined): number {
  if (url === undefined) throw new Error('endpoint missing from the ready line');
  const port = Number(new URL(url).port);
  if (!Number.isInteger(port) || port <= 0) throw new Error(`no port in ${url}`);
  return port;
}

/**
 * Resolves with the child's stdout so far once it holds the ready line; rejects when the child
 * exits first (with what it printed). No time limit of its own: the test's timeout stops a hang.
 */
export function untilReady(p: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const onOut = (d: Buffer): void => {
      out += d.toString();
      if (/virtbmc ready:[^\n]*\n/.test(out)) {
        p.stdout?.off('data', onOut);
        resolve(out);
      }
    };
    p.stdout?.on('data', onOut);
    p.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    const exited = (code: number | null): void => reject(new Error(`virtbmc exited (${code}) before its ready line: ${out}${err}`));
    if (p.exitCode !== null) exited(p.exitCode);
    else p.once('exit', exited);
  });
}
