/**
 * One login lockout for both protocols (IPMI and Redfish share one instance per agent), keyed by
 * account AND source address, tuned by the Redfish AccountService knobs:
 *
 * - AccountLockoutThreshold: failed logins of one account from one source that lock that pair
 *   (0 = never lock).
 * - AccountLockoutCounterResetAfter: seconds after the last failure at which the pair's failure
 *   counter goes back to zero.
 * - AccountLockoutDuration: seconds a lock lasts.
 *
 * Rules (docs/security.md):
 * - A lock covers one (account, source) pair: a source's failures never block the same account
 *   from another source, so the owner logs in from a clean address during a brute force.
 * - Each source also has an aggregate counter over every account name it tried, unknown names
 *   included (SOURCE_FACTOR × threshold): that bounds spraying across names and locks only that
 *   source. Behind SNAT (attacker and owner share an address) the owner is therefore slowed for at
 *   most AccountLockoutDuration after the attacker's last lock.
 * - Attempts during a lock are refused unchecked and neither count nor extend the lock.
 * - A successful login clears its own pair counter only (not the source aggregate: holding one
 *   account must not reset the count of guesses at another).
 * - Memory is bounded (MAX_TRACKED entries per map) under a spoofed-source flood.
 */

export interface LockoutPolicy {
  /** AccountLockoutThreshold: failures before a lock; 0 disables the lockout */
  threshold: number;
  /** AccountLockoutDuration, seconds */
  durationSeconds: number;
  /** AccountLockoutCounterResetAfter, seconds; at most durationSeconds (Redfish AccountService schema) */
  counterResetAfterSeconds: number;
}

export const DEFAULT_LOCKOUT_POLICY: Readonly<LockoutPolicy> = Object.freeze({
  threshold: 5,
  durationSeconds: 30,
  counterResetAfterSeconds: 30,
});

/** Accepted ranges (inclusive). */
export const LOCKOUT_LIMITS = {
  threshold: { min: 0, max: 1000 },
  durationSeconds: { min: 1, max: 86_400 },
  counterResetAfterSeconds: { min: 1, max: 86_400 },
} as const;

/** Redfish property name of each knob. */
export const LOCKOUT_PROPERTIES: Readonly<Record<keyof LockoutPolicy, string>> = {
  threshold: 'AccountLockoutThreshold',
  durationSeconds: 'AccountLockoutDuration',
  counterResetAfterSeconds: 'AccountLockoutCounterResetAfter',
};

/** The source aggregate locks after this many times the threshold, summed over account names. */
export const SOURCE_FACTOR = 4;

/** Entries kept at most in each map. */
export const MAX_TRACKED = 4096;

/** Problems with a policy, one message per bad knob (empty when valid). */
export function lockoutPolicyProblems(p: LockoutPolicy): { key: keyof LockoutPolicy; message: string }[] {
  const out: { key: keyof LockoutPolicy; message: string }[] = [];
  for (const key of Object.keys(LOCKOUT_LIMITS) as (keyof LockoutPolicy)[]) {
    const v = p[key];
    const { min, max } = LOCKOUT_LIMITS[key];
    if (!Number.isInteger(v) || v < min || v > max) out.push({ key, message: `${LOCKOUT_PROPERTIES[key]} must be a whole number in ${min}..${max}` });
  }
  if (out.length === 0 && p.counterResetAfterSeconds > p.durationSeconds) {
    out.push({ key: 'counterResetAfterSeconds', message: 'AccountLockoutCounterResetAfter must not exceed AccountLockoutDuration' });
  }
  return out;
}

interface Counter {
  count: number;
  last: number;
  lockedUntil: number;
}

/** Why an attempt is refused. */
export interface LockState {
  scope: 'account' | 'source';
  /** Milliseconds until the lock ends (> 0) */
  retryAfterMs: number;
}

/** Normalises a source address (IPv4-mapped IPv6 and plain IPv4 are one source). */
export function sourceKey(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

export class LoginLockout {
  private current: LockoutPolicy;
  private readonly pairs = new Map<string, Counter>();
  private readonly sources = new Map<string, Counter>();

  constructor(
    policy: LockoutPolicy = DEFAULT_LOCKOUT_POLICY,
    private readonly now: () => number = Date.now,
  ) {
    this.current = LoginLockout.checked(policy);
  }

  private static checked(p: LockoutPolicy): LockoutPolicy {
    const problems = lockoutPolicyProblems(p);
    if (problems.length > 0) throw new RangeError(problems.map((x) => x.message).join('; '));
    return { threshold: p.threshold, durationSeconds: p.durationSeconds, counterResetAfterSeconds: p.counterResetAfterSeconds };
  }

  get policy(): Readonly<LockoutPolicy> {
    return { ...this.current };
  }

  /** Replaces the policy (throws RangeError when invalid). Running counters and locks stay. */
  setPolicy(p: LockoutPolicy): void {
    this.current = LoginLockout.checked(p);
  }

  /** The lock that refuses this attempt, or undefined when it may go ahead. `account` undefined: source only. */
  check(source: string, account?: string): LockState | undefined {
    if (this.current.threshold === 0) return undefined;
    const t = this.now();
    const src = sourceKey(source);
    const s = this.sources.get(src);
    if (s && s.lockedUntil > t) return { scope: 'source', retryAfterMs: s.lockedUntil - t };
    if (account !== undefined) {
      const p = this.pairs.get(pairKey(account, src));
      if (p && p.lockedUntil > t) return { scope: 'account', retryAfterMs: p.lockedUntil - t };
    }
    return undefined;
  }

  /**
   * Records a real authentication failure (wrong password, or an unknown account name when
   * `account` is undefined). Returns the lock it caused, if any.
   */
  recordFailure(source: string, account?: string): LockState | undefined {
    const { threshold } = this.current;
    if (threshold === 0) return undefined;
    const src = sourceKey(source);
    let locked: LockState | undefined;
    if (account !== undefined && this.bump(this.pairs, pairKey(account, src), threshold)) locked = { scope: 'account', retryAfterMs: this.durationMs };
    if (this.bump(this.sources, src, threshold * SOURCE_FACTOR)) locked = { scope: 'source', retryAfterMs: this.durationMs };
    return locked;
  }

  /** A successful login: that pair's counter starts again from zero. */
  recordSuccess(source: string, account: string): void {
    const key = pairKey(account, sourceKey(source));
    const p = this.pairs.get(key);
    if (p && p.lockedUntil <= this.now()) this.pairs.delete(key);
  }

  /** Whether this account is locked from some source right now (Redfish ManagerAccount Locked). */
  isLocked(account: string): boolean {
    const t = this.now();
    const suffix = `\u0000${account}`;
    for (const [k, c] of this.pairs) if (k.endsWith(suffix) && c.lockedUntil > t) return true;
    return false;
  }

  /** Clears every lock and counter of this account (Redfish PATCH Locked: false by an administrator). */
  unlock(account: string): void {
    const suffix = `\u0000${account}`;
    for (const k of [...this.pairs.keys()]) if (k.endsWith(suffix)) this.pairs.delete(k);
  }

  /** Entries held (for tests and metrics). */
  get tracked(): { pairs: number; sources: number } {
    return { pairs: this.pairs.size, sources: this.sources.size };
  }

  private get durationMs(): number {
    return this.current.durationSeconds * 1000;
  }

  /** Counts one failure; true when it reached the limit and locked the key. */
  private bump(map: Map<string, Counter>, key: string, limit: number): boolean {
    const t = this.now();
    let c = map.get(key);
    if (c && c.lockedUntil > t) return false; // already locked: not counted, not extended
    if (!c || t - c.last > this.current.counterResetAfterSeconds * 1000) c = { count: 0, last: t, lockedUntil: 0 };
    c.count++;
    c.last = t;
    let locked = false;
    if (c.count >= limit) {
      c.count = 0;
      c.lockedUntil = t + this.durationMs;
      locked = true;
    }
    map.delete(key); // re-insert: the map's order is then least recently failed first
    if (map.size >= MAX_TRACKED) this.prune(map, t);
    map.set(key, c);
    return locked;
  }

  private prune(map: Map<string, Counter>, t: number): void {
    const resetMs = this.current.counterResetAfterSeconds * 1000;
    for (const [k, c] of map) if (c.lockedUntil <= t && t - c.last > resetMs) map.delete(k);
    while (map.size >= MAX_TRACKED) {
      const first = map.keys().next();
      if (first.done) break;
      map.delete(first.value);
    }
  }
}

const pairKey = (account: string, source: string): string => `${source}\u0000${account}`;
