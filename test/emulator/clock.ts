/** Timers owned by one emulator, all cancelled by close(). */
export class Clock {
  private readonly timers = new Set<NodeJS.Timeout>();
  private closed = false;
  private readonly idleWaiters: (() => void)[] = [];
  /** exceptions thrown by controller callbacks (kept instead of crashing the test process) */
  readonly errors: Error[] = [];

  after(ms: number, fn: () => void): NodeJS.Timeout | undefined {
    if (this.closed) return undefined;
    const t = setTimeout(() => {
      this.timers.delete(t);
      if (this.closed) return;
      try {
        fn();
      } catch (e) {
        this.errors.push(e instanceof Error ? e : new Error(String(e)));
      }
      // a callback that scheduled its follow-up added it before returning: idle means none is left
      this.wakeIfIdle();
    }, Math.max(0, ms));
    this.timers.add(t);
    return t;
  }

  cancel(t: NodeJS.Timeout | undefined): void {
    if (!t) return;
    clearTimeout(t);
    this.timers.delete(t);
    this.wakeIfIdle();
  }

  /**
   * Resolves once no timer is pending: every controller step scheduled so far (and every step those
   * scheduled) has run. Tests await it before asserting that something did NOT happen.
   */
  idle(): Promise<void> {
    if (this.closed || this.timers.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private wakeIfIdle(): void {
    if (this.timers.size > 0 && !this.closed) return;
    for (const w of this.idleWaiters.splice(0)) w();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  close(): void {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.wakeIfIdle();
  }
}
