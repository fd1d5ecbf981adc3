/**
 * Timers that fire only when the test says so (SimulatorOptions.timers): a test steps through a
 * simulated power transition or media insert one timer at a time, observing each stage, however
 * slowly the machine runs.
 */
import type { SimulatorTimers } from '../../src/backend/simulator/simulator.js';

export class ManualTimers implements SimulatorTimers {
  private next = 1;
  /** pending timers, oldest first: id → [callback, the delay it asked for] */
  readonly pending = new Map<number, [() => void, number]>();

  setTimeout(fn: () => void, ms: number): number {
    const id = this.next++;
    this.pending.set(id, [fn, ms]);
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.pending.delete(handle as number);
  }

  /** Fires the oldest pending timer; false when none is pending. */
  runNext(): boolean {
    const first = this.pending.entries().next();
    if (first.done) return false;
    const [id, [fn]] = first.value;
    this.pending.delete(id);
    fn();
    return true;
  }
}
