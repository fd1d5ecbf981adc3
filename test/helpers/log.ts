/**
 * A log sink for tests: every write (a pino JSON line, or several) is kept as a string in `lines`,
 * so a test can read what the agent logged (`createLogger(level, lineSink(lines))`).
 */
import { Writable } from 'node:stream';

export function lineSink(lines: string[]): Writable {
  return new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(String(chunk));
      done();
    },
  });
}
