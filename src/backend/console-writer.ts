/**
 * Who may type into a machine's serial console. Every viewer sees the output (src/backend/console.ts
 * fans it out); input comes from one writer at a time. The sharing rule:
 *   - IPMI SOL takes the input when it activates (an IPMI client cannot be shown a "busy" message
 *     other than refusing activation, and `ipmitool sol activate` on a BMC is expected to work): a
 *     browser writer is demoted to read-only and told so;
 *   - a browser console gets the input only when nobody holds it; otherwise it stays read-only with a
 *     message naming the holder, and takes the input by itself when it is released (first come, first
 *     served among waiting browsers);
 *   - the holder releasing (SOL deactivated, browser closed) frees it.
 * One lock per machine object, shared by the IPMI and Redfish servers of an agent.
 */
import { perObject } from '../common/per-object.js';

export interface ConsoleWriter {
  /** 'sol' (an IPMI SOL payload) or 'web' (a browser console) */
  readonly kind: 'sol' | 'web';
  /** Who, for the message other viewers get ("IPMI SOL session 0x1234", "admin (browser)") */
  readonly label: string;
  /** Called when a preempting writer takes the input away from this one. */
  revoked?(by: ConsoleWriter): void;
}

export class ConsoleWriterLock {
  private holder_: ConsoleWriter | undefined;
  /** Writers waiting for the input, oldest first (web only; SOL never waits). */
  private readonly waiting: { w: ConsoleWriter; granted: () => void }[] = [];
  private readonly listeners = new Set<(holder: ConsoleWriter | undefined) => void>();

  get holder(): ConsoleWriter | undefined {
    return this.holder_;
  }

  /**
   * Take the input. `preempt` (SOL) takes it from a browser writer (which is told through
   * revoked()); without it the call fails while someone else holds it. True when `w` holds it now.
   */
  acquire(w: ConsoleWriter, preempt = false): boolean {
    const h = this.holder_;
    if (h === w) return true;
    if (h && !(preempt && h.kind === 'web')) return false;
    this.holder_ = w;
    this.cancelWait(w);
    if (h) h.revoked?.(w);
    this.changed();
    return true;
  }

  /** Queue `w` for the input: `granted` runs when it becomes the holder. Replaces an earlier wait of `w`. */
  wait(w: ConsoleWriter, granted: () => void): void {
    this.cancelWait(w);
    this.waiting.push({ w, granted });
  }

  cancelWait(w: ConsoleWriter): void {
    const i = this.waiting.findIndex((x) => x.w === w);
    if (i >= 0) this.waiting.splice(i, 1);
  }

  /** Give the input back (no-op when `w` does not hold it); the oldest waiting writer gets it. */
  release(w: ConsoleWriter): void {
    this.cancelWait(w);
    if (this.holder_ !== w) return;
    this.holder_ = undefined;
    const next = this.waiting.shift();
    if (next) {
      this.holder_ = next.w;
      next.granted();
    }
    this.changed();
  }

  /** Subscribe to holder changes; returns an unsubscribe function. */
  on(listener: (holder: ConsoleWriter | undefined) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private changed(): void {
    for (const l of [...this.listeners]) l(this.holder_);
  }
}

const locks = perObject<object, ConsoleWriterLock>(() => new ConsoleWriterLock());

/** The writer lock of a machine (created on first use). */
export function consoleWriterLock(machine: object): ConsoleWriterLock {
  return locks.get(machine);
}
