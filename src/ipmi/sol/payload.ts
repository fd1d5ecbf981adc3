/**
 * One active SOL payload instance (IPMI v2.0 §15): the packet state machine between one remote
 * console (an RMCP+ session) and the machine's serial console stream.
 *
 * BMC → console: output is collected until the character send threshold is reached or the
 * accumulate interval passes (§15.8, params 3), then sent in a packet with the next sequence
 * number (1…15, wrapping). One packet is outstanding at a time; it is resent unchanged every
 * retry interval until acknowledged, at most retry-count times, then dropped (§15.9, param 4). A
 * partial acknowledgement puts the characters the console did not accept back at the front; a
 * NACK holds further output until the console sends a packet that is not a NACK.
 *
 * Console → BMC: each packet with characters is acknowledged at once with the number of
 * characters taken (fewer when the console's input queue is full: the client resends the rest).
 * A resent packet (same sequence number and data as the last one) is acknowledged again without
 * delivering it twice. While the machine's console is offline (VM off), nothing is accepted and
 * the ACK carries "character transfer unavailable".
 *
 * The serial line of a virtual machine has no modem-control wires: "deassert CTS" holds our
 * output (buffered, bounded) until released, "drop DCD/DSR" and ring/WOR are recorded only, break
 * goes to the backend, and the flush bits drop the queued bytes of their direction.
 */
import type { ConsoleEvent, ConsoleStream } from '../../backend/types.js';
import type { Logger } from '../../common/logger.js';
import type { SolConfig } from './config.js';
import { BmcStatus, ConsoleOp, decodeSol, encodeSol, type SolPacket } from './packet.js';

export const DEFAULT_OUTPUT_LIMIT = 256 * 1024;
/** Output waiting beyond this asks the console to hold (back-pressure); below HOLD_LOW it resumes. */
export const HOLD_HIGH = 64 * 1024;
export const HOLD_LOW = 16 * 1024;

export interface SolPayloadOptions {
  console: ConsoleStream;
  config: SolConfig;
  /** Sends one SOL payload (unencrypted form) to the console; the session layer wraps it. */
  transmit: (payload: Buffer) => void;
  /** Characters per outbound packet at most (from the payload size we announced). */
  maxChars: number;
  /** Output bytes held for this console at most; older ones are dropped beyond it (overrun). */
  outputLimit?: number;
  log: Logger;
}

export interface SolCounters {
  packetsOut: number;
  retransmits: number;
  dropped: number;
  bytesOut: number;
  bytesIn: number;
  overrunBytes: number;
}

interface InFlight {
  seq: number;
  data: Buffer;
  /** Retransmissions done so far */
  tries: number;
  status: number;
}

export class SolPayload {
  readonly counters: SolCounters = { packetsOut: 0, retransmits: 0, dropped: 0, bytesOut: 0, bytesIn: 0, overrunBytes: 0 };
  /** Console-side modem/ring flags, as last reported (tests read them) */
  dcdDsrDropped = false;
  ringWor = false;
  ctsPaused = false;

  private readonly console: ConsoleStream;
  private readonly config: SolConfig;
  private readonly transmit: (payload: Buffer) => void;
  private readonly maxChars: number;
  private readonly outputLimit: number;
  private readonly log: Logger;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private overrun = false;
  private inflight: InFlight | undefined;
  private nextSeq = 1;
  private nacked = false;
  private accTimer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private lastIn: { seq: number; data: Buffer; accepted: number; status: number } | undefined;
  private unsubscribe: (() => void) | undefined;
  private active = true;
  /** We asked the console to hold its output */
  private holding = false;
  /** Set until the first packet may go (see the constructor) */
  private starting: NodeJS.Timeout | undefined;

  constructor(opts: SolPayloadOptions) {
    this.console = opts.console;
    this.config = opts.config;
    this.transmit = opts.transmit;
    this.maxChars = Math.max(1, Math.min(255, opts.maxChars));
    this.outputLimit = opts.outputLimit ?? DEFAULT_OUTPUT_LIMIT;
    this.log = opts.log;
    this.unsubscribe = this.console.on((e) => this.onConsole(e));
    // What the console printed before we attached (bounded by the backend's ring) comes first,
    // but only after the Activate Payload response has gone out: a SOL packet that overtakes it
    // makes ipmitool read it as the response ("Invalid command"). One accumulate interval.
    if (this.console.backlog.length > 0) this.enqueue(this.console.backlog);
    this.starting = setTimeout(() => {
      this.starting = undefined;
      this.sendNext(); // what waited has waited one interval already
    }, this.config.accumulateMs);
  }

  get isActive(): boolean {
    return this.active;
  }

  /** Output bytes waiting to be sent (the outstanding packet not included). */
  get pendingOutput(): number {
    return this.pendingBytes;
  }

  /** A SOL payload from the console (already authenticated and decrypted). */
  receive(payload: Buffer): void {
    if (!this.active) return;
    const d = decodeSol(payload);
    if (!d.ok) {
      this.log.debug({ reason: d.message }, 'SOL packet dropped');
      return;
    }
    const p = d.value;
    const op = p.op;
    if (op & ConsoleOp.FLUSH_OUTBOUND) this.flushOutput();
    if (op & ConsoleOp.FLUSH_INBOUND) this.console.flushInput();
    if (op & ConsoleOp.GENERATE_BREAK) this.console.sendBreak();
    this.dcdDsrDropped = (op & ConsoleOp.DROP_DCD_DSR) !== 0;
    this.ringWor = (op & ConsoleOp.RING_WOR) !== 0;
    this.ctsPaused = (op & ConsoleOp.CTS_PAUSE) !== 0;
    const isNack = (op & ConsoleOp.NACK) !== 0;
    if (p.ackSeq !== 0) this.onAck(p.ackSeq, p.acceptedCount, isNack);
    else if (!isNack) this.nacked = false;
    if (p.seq !== 0) this.onData(p);
    this.schedule();
  }

  /** Ends the activation; with notify, the console gets a last packet saying so. */
  deactivate(notify: boolean): void {
    if (!this.active) return;
    this.active = false;
    this.clearTimers();
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    if (this.holding) this.console.hold(false);
    this.holding = false;
    this.console.close();
    this.pending = [];
    this.pendingBytes = 0;
    this.inflight = undefined;
    if (notify) this.transmit(encodeSol({ seq: 0, ackSeq: 0, acceptedCount: 0, op: BmcStatus.DEACTIVATING, data: Buffer.alloc(0) }));
  }

  // ---- console → BMC ---------------------------------------------------------------------------

  private onData(p: SolPacket): void {
    const last = this.lastIn;
    if (last && last.seq === p.seq && last.data.equals(p.data)) {
      // A retransmission: our ACK was lost. Same answer, nothing delivered twice.
      this.sendAck(p.seq, last.accepted, last.status);
      return;
    }
    let accepted = 0;
    let status = 0;
    if (this.console.state !== 'connected') status = BmcStatus.TRANSFER_UNAVAILABLE;
    else accepted = this.console.write(p.data);
    this.counters.bytesIn += accepted;
    this.lastIn = { seq: p.seq, data: Buffer.from(p.data), accepted, status };
    this.sendAck(p.seq, accepted, status);
  }

  private sendAck(seq: number, accepted: number, status: number): void {
    this.transmit(encodeSol({ seq: 0, ackSeq: seq, acceptedCount: accepted, op: status, data: Buffer.alloc(0) }));
  }

  // ---- BMC → console ---------------------------------------------------------------------------

  private onConsole(e: ConsoleEvent): void {
    if (!this.active) return;
    if (e.type === 'data') {
      this.enqueue(e.data);
      this.schedule();
    }
  }

  private enqueue(data: Buffer): void {
    this.pending.push(data);
    this.pendingBytes += data.length;
    if (this.pendingBytes > this.outputLimit) this.trimOutput(this.pendingBytes - this.outputLimit);
    if (!this.holding && this.pendingBytes > HOLD_HIGH) {
      this.holding = true;
      this.console.hold(true);
    }
  }

  private releaseIfDrained(): void {
    if (this.holding && this.pendingBytes < HOLD_LOW) {
      this.holding = false;
      this.console.hold(false);
    }
  }

  /** Drops the oldest n pending bytes (the console fell too far behind). */
  private trimOutput(n: number): void {
    this.counters.overrunBytes += n;
    this.overrun = true;
    while (n > 0 && this.pending.length > 0) {
      const head = this.pending[0]!;
      if (head.length <= n) {
        this.pending.shift();
        this.pendingBytes -= head.length;
        n -= head.length;
      } else {
        this.pending[0] = head.subarray(n);
        this.pendingBytes -= n;
        n = 0;
      }
    }
    this.log.warn({ limit: this.outputLimit }, 'SOL console too slow: oldest output dropped');
  }

  private flushOutput(): void {
    this.pending = [];
    this.pendingBytes = 0;
    this.releaseIfDrained();
    if (this.accTimer) clearTimeout(this.accTimer);
    this.accTimer = undefined;
  }

  private schedule(): void {
    if (!this.active || this.starting || this.inflight || this.nacked || this.ctsPaused || this.pendingBytes === 0) return;
    if (this.pendingBytes >= Math.min(this.config.sendThreshold, this.maxChars)) {
      this.sendNext();
      return;
    }
    this.accTimer ??= setTimeout(() => {
      this.accTimer = undefined;
      this.sendNext();
    }, this.config.accumulateMs);
  }

  private sendNext(): void {
    if (this.accTimer) clearTimeout(this.accTimer);
    this.accTimer = undefined;
    if (!this.active || this.inflight || this.nacked || this.ctsPaused || this.pendingBytes === 0) return;
    const data = this.take(this.maxChars);
    const seq = this.nextSeq;
    this.nextSeq = seq >= 15 ? 1 : seq + 1;
    const status = this.overrun ? BmcStatus.TRANSMIT_OVERRUN : 0;
    this.overrun = false;
    this.inflight = { seq, data, tries: 0, status };
    this.counters.packetsOut++;
    this.counters.bytesOut += data.length;
    this.sendInflight();
  }

  private take(max: number): Buffer {
    const parts: Buffer[] = [];
    let n = 0;
    while (n < max && this.pending.length > 0) {
      const head = this.pending[0]!;
      const want = max - n;
      if (head.length <= want) {
        parts.push(head);
        this.pending.shift();
        n += head.length;
      } else {
        parts.push(head.subarray(0, want));
        this.pending[0] = head.subarray(want);
        n += want;
      }
    }
    this.pendingBytes -= n;
    this.releaseIfDrained();
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts, n);
  }

  private sendInflight(): void {
    const f = this.inflight!;
    this.transmit(encodeSol({ seq: f.seq, ackSeq: 0, acceptedCount: 0, op: f.status, data: f.data }));
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.onRetryTimer(), this.config.retryMs);
  }

  private onRetryTimer(): void {
    this.retryTimer = undefined;
    const f = this.inflight;
    if (!this.active || !f) return;
    if (f.tries >= (this.config.retryCount & 0x07)) {
      // §15.9: after the last retry the packet is dropped.
      this.counters.dropped++;
      this.log.warn({ seq: f.seq, bytes: f.data.length }, 'SOL packet not acknowledged after all retries: dropped');
      this.inflight = undefined;
      this.schedule();
      return;
    }
    f.tries++;
    this.counters.retransmits++;
    this.sendInflight();
  }

  private onAck(ackSeq: number, accepted: number, nack: boolean): void {
    const f = this.inflight;
    if (!f || ackSeq !== f.seq) return; // stale or unknown: ignore
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.inflight = undefined;
    const taken = Math.min(accepted, f.data.length);
    if (taken < f.data.length) {
      const rest = f.data.subarray(taken);
      this.pending.unshift(rest);
      this.pendingBytes += rest.length;
      this.counters.bytesOut -= rest.length;
    }
    this.nacked = nack;
  }

  private clearTimers(): void {
    if (this.starting) clearTimeout(this.starting);
    this.starting = undefined;
    if (this.accTimer) clearTimeout(this.accTimer);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.accTimer = undefined;
    this.retryTimer = undefined;
  }
}
