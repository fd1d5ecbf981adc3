/**
 * Structured JSON logging (pino). Secrets never reach a log line: the redaction list covers every
 * field name we use for credentials, wherever it is nested.
 */
import { randomFillSync } from 'node:crypto';
import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

export const REDACT_PATHS = [
  'password',
  '*.password',
  '*.*.password',
  'Password',
  '*.Password',
  'credentials',
  '*.credentials',
  'token',
  '*.token',
  'headers.authorization',
  'headers["x-auth-token"]',
  'req.headers.authorization',
  'req.headers["x-auth-token"]',
];

export function createLogger(level: LevelWithSilent = 'info', destination?: pino.DestinationStream): Logger {
  const opts = {
    level,
    base: { pid: process.pid },
    redact: { paths: REDACT_PATHS, censor: '[REDACTED]' },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  return destination ? pino(opts, destination) : pino(opts);
}

/** A silent logger for tests. */
export function nullLogger(): Logger {
  return pino({ level: 'silent' });
}

const ID_BYTES = 6;
/** Random bytes for request ids, drawn 4 KiB at a time (one randomFillSync per ~680 ids, not one per id). */
const idPool = Buffer.alloc(ID_BYTES * 682);
let idOffset = idPool.length;

/** Short random request ids: unique enough per process, cheap to make, easy to grep. */
export function newRequestId(): string {
  if (idOffset + ID_BYTES > idPool.length) {
    randomFillSync(idPool);
    idOffset = 0;
  }
  const id = idPool.toString('hex', idOffset, idOffset + ID_BYTES);
  idOffset += ID_BYTES;
  return id;
}
