/**
 * Shared bits of the fuzz targets (see docs/security.md "Fuzzing"). A target module exports
 * `fuzz(data)`; it throws (a crash) only when an invariant breaks. Jazzer.js runs it under
 * libFuzzer (fuzz/run.sh), and test/fuzz/regressions.test.ts runs it on the seed corpus and on
 * every input in fuzz/regressions/<target>/ as a plain mocha test.
 */

/** Thrown when an invariant of the code under test breaks. */
export class InvariantError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvariantError';
  }
}

export function invariant(cond: unknown, message: string): asserts cond {
  if (!cond) throw new InvariantError(message);
}

/** Reads the input as a series of length-prefixed chunks (u16 LE length, then bytes), at most `max`. */
export function chunks(data: Buffer, max: number): Buffer[] {
  const out: Buffer[] = [];
  let i = 0;
  while (i + 2 <= data.length && out.length < max) {
    const n = data.readUInt16LE(i);
    i += 2;
    out.push(data.subarray(i, Math.min(data.length, i + n)));
    i += n;
  }
  return out;
}

/** The inverse of chunks() (for building seeds). */
export function frame(parts: readonly Buffer[]): Buffer {
  return Buffer.concat(
    parts.flatMap((p) => {
      const len = Buffer.alloc(2);
      len.writeUInt16LE(p.length);
      return [len, p];
    }),
  );
}

/** Reads bytes one at a time (0 once exhausted), for targets that build structured values. */
export class ByteReader {
  private i = 0;
  constructor(private readonly data: Buffer) {}

  next(): number {
    return this.i < this.data.length ? this.data[this.i++]! : 0;
  }

  text(n: number): string {
    let s = '';
    for (let k = 0; k < n; k++) s += String.fromCharCode(32 + (this.next() % 95));
    return s;
  }
}
