/**
 * Real clients the suite drives (ipmitool, freeipmi, pyghmi, sushy, redfishtool, kubectl, ...).
 * `make test` installs them (hack/install-test-deps.sh). A developer running one file without them
 * gets a skip; in CI (CI=true) a missing client fails the run instead, so a green CI always means
 * the clients really ran.
 */
import { spawnSync } from 'node:child_process';

export const IN_CI = process.env.CI === 'true';

/** Skip the test (or suite, from a hook) when `ok` is false; fail instead in CI. */
export function requireClient(ctx: Mocha.Context, ok: boolean, what: string): void {
  if (ok) return;
  if (IN_CI) throw new Error(`${what} is required in CI and missing (hack/install-test-deps.sh installs it)`);
  ctx.skip();
}

/** Whether a command is on PATH. */
export function haveCommand(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v '${cmd.replace(/'/g, '')}'`], { stdio: 'ignore' }).status === 0;
}

/** Whether Debian's /usr/bin/python3 can import a module (pyghmi, sushy, ...). */
export function havePythonModule(module: string): boolean {
  return spawnSync('/usr/bin/python3', ['-c', `import ${module}`], { stdio: 'ignore' }).status === 0;
}
