/**
 * The console hub both backends build their serial console on: a bounded ring of recent output
 * (shown to a viewer when it attaches), fan-out of new output to every attached viewer, and one
 * bounded input queue drained into the backend's sink with back-pressure. The backend only says
 * what the guest printed (output), whether the console is reachable (setState) and how to deliver
 * input (the sink).
 */
import type { ConsoleEvent, ConsoleState, ConsoleStream } from './types.js';

/** Where input for the guest goes. */
export interface ConsoleSink {
  /** Delivers bytes; false means "buffer full": stop until the backend calls hub.drained(). */
  write(data: Buffer): boolean;
  /** A serial break, when the backend can send one. */
  sendBreak?(): void;
}

export interface ConsoleHubOptions {
  /** Bytes of recent output kept for viewers that attach later (default 64 KiB). */
  ringBytes?: number;
  /** Input bytes queued for the guest at most (default 64 KiB). */
  inputLimit?: number;
  sink: ConsoleSink;
  /** Where output comes from, when it can be paused (back-pressure from slow viewers). */
  source?: ConsoleSource;
  initialState?: ConsoleState;
}

/** An output producer that can stop and resume. */
export interface ConsoleSource {
  pause(): void;
  resume(): void;
}

export const DEFAULT_RING_BYTES = 64 * 1024;
export const DEFAULT_INPUT_LIMIT = 64 * 1024;

/** A fixed-size byte ring that keeps the newest bytes. */
export class ByteRing {
  private readonly buf: Buffer;
  private start = 0;
  private len = 0;

  constructor(readonly capacity: number) {
    this.buf = Buffer.alloc(capacity);
  }

  get length(): number {
    return this.len;
  }

  push(data: Buffer): void {
    const cap = this.capacity;
    if (cap === 0) return;
    if (data.length >= cap) {
      data.copy(this.buf, 0, data.length - cap);
      this.start = 0;
      this.len = cap;
      return;
    }
    let end = (this.start + this.len) % cap;
    let off = 0;
    while (off < data.length) {
      const n = Math.min(data.length - off, cap - end);
      data.copy(this.buf, end, off, off + n);
      off += n;
      end = (end + n) % cap;
    }
    const total = this.len + data.length;
    if (total > cap) {
      this.start = (this.start + (total - cap)) % cap;
      this.len = cap;
    } else {
      this.len = total;
    }
  }

  /** A copy of the contents, oldest first. */
  contents(): Buffer {
    const cap = this.capacity;
    if (this.start + this.len <= cap) return Buffer.from(this.buf.subarray(this.start, this.start + this.len));
    return Buffer.concat([this.buf.subarray(this.start), this.buf.subarray(0, (this.start + this.len) % cap)]);
  }

  clear(): void {
    this.start = 0;
    this.len = 0;
  }
}

export class ConsoleHub {
  private readonly ring: ByteRing;
  private readonly inputLimit: number;
  private readonly sink: ConsoleSink;
  private state_: ConsoleState;
  private readonly viewers = new Set<(e: ConsoleEvent) => void>();
  /** Viewers holding output back (ConsoleStream.hold) */
  private readonly holders = new Set<object>();
  private readonly source: ConsoleSource | undefined;
  private queue: Buffer[] = [];
  private queued = 0;
  /** The sink said "full": wait for drained() */
  private blocked = false;
  /** Some write() took fewer bytes than offered: viewers get 'drain' when room comes back */
  private wantDrain = false;

  constructor(opts: ConsoleHubOptions) {
    this.ring = new ByteRing(opts.ringBytes ?? DEFAULT_RING_BYTES);
    this.inputLimit = opts.inputLimit ?? DEFAULT_INPUT_LIMIT;
    this.sink = opts.sink;
    this.source = opts.source;
    this.state_ = opts.initialState ?? 'offline';
  }

  get state(): ConsoleState {
    return this.state_;
  }

  get viewerCount(): number {
    return this.viewers.size;
  }

  /** Whether some viewer holds output back (a new source connection should start paused). */
  get held(): boolean {
    return this.holders.size > 0;
  }

  /** Input bytes waiting for the sink. */
  get pendingInput(): number {
    return this.queued;
  }

  /** Recent output, oldest first. */
  recent(): Buffer {
    return this.ring.contents();
  }

  // ---- backend side ----------------------------------------------------------------------------

  /** The guest printed these bytes. */
  output(data: Buffer): void {
    if (data.length === 0) return;
    this.ring.push(data);
    this.broadcast({ type: 'data', data });
  }

  /** Offline drops queued input (nothing can take it) and unblocks the sink. */
  setState(state: ConsoleState): void {
    if (state === this.state_) return;
    this.state_ = state;
    if (state === 'offline') {
      this.queue = [];
      this.queued = 0;
      this.blocked = false;
    }
    this.broadcast({ type: 'state', state });
    if (state === 'connected') this.pump();
  }

  /** The sink has room again after returning false. */
  drained(): void {
    this.blocked = false;
    this.pump();
  }

  /** Attach a viewer. */
  open(): ConsoleStream {
    const listeners = new Set<(e: ConsoleEvent) => void>();
    let closed = false;
    const fan = (e: ConsoleEvent) => {
      for (const l of [...listeners]) l(e);
    };
    this.viewers.add(fan);
    const stream: ConsoleStream = {
      backlog: this.recent(),
      state: this.state_,
      write: (data) => (closed ? 0 : this.write(data)),
      sendBreak: () => {
        if (!closed && this.state_ === 'connected') this.sink.sendBreak?.();
      },
      flushInput: () => this.flushInput(),
      hold: (on) => {
        if (!closed) this.setHold(fan, on);
      },
      on(listener) {
        listeners.add(listener);
        return () => listeners.delete(listener);
      },
      close: () => {
        closed = true;
        listeners.clear();
        this.viewers.delete(fan);
        this.setHold(fan, false);
      },
    };
    Object.defineProperty(stream, 'state', { get: () => this.state_, enumerable: true });
    return stream;
  }

  // ---- internals -------------------------------------------------------------------------------

  private setHold(viewer: object, on: boolean): void {
    const before = this.holders.size > 0;
    if (on) this.holders.add(viewer);
    else this.holders.delete(viewer);
    const after = this.holders.size > 0;
    if (before !== after) {
      if (after) this.source?.pause();
      else this.source?.resume();
    }
  }

  private write(data: Buffer): number {
    if (this.state_ !== 'connected' || data.length === 0) return 0;
    const room = this.inputLimit - this.queued;
    const n = Math.min(room, data.length);
    if (n < data.length) this.wantDrain = true;
    if (n <= 0) return 0;
    this.queue.push(Buffer.from(data.subarray(0, n)));
    this.queued += n;
    this.pump();
    return n;
  }

  private flushInput(): void {
    this.queue = [];
    this.queued = 0;
    this.signalDrain();
  }

  private pump(): void {
    while (!this.blocked && this.state_ === 'connected' && this.queue.length > 0) {
      const chunk = this.queue.shift()!;
      this.queued -= chunk.length;
      // A sink may call drained() or setState() from inside write: the loop re-reads the flags.
      if (!this.sink.write(chunk)) this.blocked = true;
    }
    this.signalDrain();
  }

  private signalDrain(): void {
    if (this.wantDrain && this.queued < this.inputLimit) {
      this.wantDrain = false;
      this.broadcast({ type: 'drain' });
    }
  }

  private broadcast(e: ConsoleEvent): void {
    for (const v of [...this.viewers]) v(e);
  }
}
