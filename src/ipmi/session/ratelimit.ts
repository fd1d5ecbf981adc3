/** Failed-login throttle per source address: after `limit` failures within `windowMs`, ignore the address for `blockMs`. */
export interface LoginLimiterOptions {
  limit: number;
  windowMs: number;
  blockMs: number;
}

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
      this.blockedUntil.set(address, now + this.opts.blockMs);
      return true;
    }
    this.failures.set(address, recent);
    // Bound memory under a spoofed-source flood.
    if (this.failures.size > 4096) {
      const first = this.failures.keys().next();
      if (!first.done) this.failures.delete(first.value);
    }
    return false;
  }
}
