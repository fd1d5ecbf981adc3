/** Timers owned by one emulator, all cancelled by close(). */
export class Clock {
  private readonly timers = new Set<NodeJS.Timeout>();
  private closed = false;
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
    }, Math.max(0, ms));
    this.timers.add(t);
    return t;
  }

  cancel(t: NodeJS.Timeout | undefined): void {
    if (!t) return;
    clearTimeout(t);
    this.timers.delete(t);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  close(): void {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }
}
