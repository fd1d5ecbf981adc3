/** Process lifecycle shared by the entry points. */
import type { Logger } from './logger.js';

/**
 * On SIGTERM/SIGINT: log, run `close` once, exit 0 when it resolves (1 when it fails), and exit 1
 * anyway after `forceMs` so a stuck shutdown never outlives the pod's grace period.
 */
export function stopOnSignals(logger: Logger, close: () => Promise<void>, forceMs: number): void {
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    setTimeout(() => process.exit(1), forceMs).unref();
    close().then(
      () => process.exit(0),
      (e: unknown) => {
        logger.error({ err: e instanceof Error ? e.message : String(e) }, 'error during shutdown');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}
