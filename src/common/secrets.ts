/** Constant-time comparison of secrets (passwords, tokens), whatever their lengths. */
import { createHash, timingSafeEqual } from 'node:crypto';

export function secretEquals(a: string | Buffer, b: string | Buffer): boolean {
  // Hash both sides first so the comparison takes the same time whatever the lengths are.
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb);
}
