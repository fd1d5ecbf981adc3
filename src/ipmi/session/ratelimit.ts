/** Failed-login throttle per source address: after `limit` failures within `windowMs`, ignore the address for `blockMs`. */
export interface LoginLimiterOptions {
  limit: number;
  windowMs: number;
  blockMs: number;
}

/** Addresses tracked at most, in each of the two maps: bounds memory under a spoofed-source flood. */
export const MAX_TRACKED_ADDRESSES = 4096;

export class LoginLimiter {
  private readonly failures = new Map<string, number[]>();
  private readonly blockedUntil = new Map<string, number>();

  constructor(readonly opts: LoginLimiterOptions) {}

  isBlocked(address: string, now: number): boolean {
    const until = this.blockedUntil.get(address);
    if (until === undefined) return false;
    if (now < until) return true;
    this.blockedUntil.delete(address);
    return false;
  }

  /** Records a failure; returns true if the address is now blocked. */
  fail(address: string, now: number): boolean {
    const recent = (this.failures.get(address) ?? []).filter((t) => now - t < this.opts.windowMs);
    recent.push(now);
    if (recent.length >= this.opts.limit) {
      this.failures.delete(address);
      if (this.blockedUntil.size >= MAX_TRACKED_ADDRESSES) {
        for (const [a, until] of this.blockedUntil) if (now >= until) this.blockedUntil.delete(a);
        if (this.blockedUntil.size >= MAX_TRACKED_ADDRESSES) dropOldest(this.blockedUntil);
      }
      this.blockedUntil.set(address, now + this.opts.blockMs);
      return true;
    }
    this.failures.set(address, recent);
    if (this.failures.size > MAX_TRACKED_ADDRESSES) dropOldest(this.failures);
    return false;
  }

  /** How many addresses are tracked (failures, blocks); for tests. */
  get tracked(): { failing: number; blocked: number } {
    return { failing: this.failures.size, blocked: this.blockedUntil.size };
  }
}

function dropOldest(m: Map<string, unknown>): void {
  const first = m.keys().next();
  if (!first.done) m.delete(first.value);
}
