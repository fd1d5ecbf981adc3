/** Starting the virtbmc command (src/cmd/virtbmc.ts) as a child process from tests. */
import { spawn, type ChildProcessByStdio, type SpawnOptionsWithStdioTuple, type StdioNull, type StdioPipe } from 'node:child_process';
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
