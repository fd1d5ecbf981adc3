/** Running the real clients (ipmitool, freeipmi, python) from tests. */
import { execFile } from 'node:child_process';

export interface Run {
  /** Exit code; -1 when killed (timeout) or not started */
  code: number;
  /** stdout followed by stderr */
  out: string;
  /** Wall time in ms */
  ms: number;
}

/** Runs a client binary, never rejecting: exit code, merged output and wall time. */
export function run(cmd: string, args: string[], timeoutMs = 15000): Promise<Run> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
      resolve({ code, out: `${stdout}${stderr}`, ms: Date.now() - t0 });
    });
  });
}
