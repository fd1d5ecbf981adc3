/**
 * Exactly-once execution of retransmitted requests inside a session.
 *
 * A console that gets no answer in time sends the same message again: same rqSeq, command and
 * data, under a new session sequence number (ipmitool lanplus and lan, freeipmi, pyghmi all do).
 * IPMI v2.0 §6.12.8 asks the BMC to spot such duplicates by their sequence number. A retransmission
 * is never executed again: while the first copy is still running (a slow backend) it joins it and
 * gets the same answer when that is ready; afterwards it gets the cached answer for WINDOW_MS.
 *
 * The window counts from the moment the answer was ready, not from the first copy's arrival, so a
 * backend that takes longer than a client's retry interval cannot make a power cycle run twice.
 * Its length covers every client's retry span after the last copy it sent (ipmitool: -R retries of
 * -N seconds each, defaults 4 × 2 s with growing timeouts; freeipmi: at most its 20 s session
 * timeout; pyghmi: a few seconds), with margin.
 *
 * The cache keeps the last CAPACITY distinct requests of the session. rqSeq is 6 bits, so an
 * identical request reusing a sequence number after a wrap-around comes at least 64 requests later,
 * by which time its predecessor has left the cache: a genuinely new request is never mistaken for
 * a retransmission, even from a client that sends the same command in a loop.
 */
import type { LanRequest } from '../codec/index.js';

export const DUPLICATE_WINDOW_MS = 60_000;
export const DUPLICATE_CACHE_CAPACITY = 16;

function sameKey(a: LanRequest, b: LanRequest): boolean {
  return a.rqSeq === b.rqSeq && a.cmd === b.cmd && a.netFn === b.netFn && a.rqSA === b.rqSA && a.rqLUN === b.rqLUN && a.rsLUN === b.rsLUN;
}

interface Entry<R> {
  req: LanRequest;
  result: R | Promise<R>;
  /** when the answer was ready; undefined while the first copy still runs */
  settledAt: number | undefined;
}

export class DuplicateCache<R> {
  private readonly entries: Entry<R>[] = [];
  /**
   * How many entries hold each rqSeq (6 bits). A client numbers its requests in turn, so a new
   * request's rqSeq is usually held by none, and it is known to be new without reading any entry:
   * this runs for every in-session request.
   */
  private readonly perSeq = new Uint8Array(64);

  /** Index of the entry with req's key, or -1. */
  private indexOf(req: LanRequest): number {
    if (this.perSeq[req.rqSeq & 0x3f] === 0) return -1;
    const es = this.entries;
    for (let i = 0; i < es.length; i++) if (sameKey(es[i]!.req, req)) return i;
    return -1;
  }

  /**
   * The answer of an earlier copy of `req` (a promise while that copy still runs), or undefined when
   * `req` is new. `joined` tells whether the earlier copy is still in flight.
   */
  lookup(req: LanRequest, now: number): { result: R | Promise<R>; joined: boolean } | undefined {
    const i = this.indexOf(req);
    const e = i >= 0 ? this.entries[i] : undefined;
    if (!e || !e.req.data.equals(req.data)) return undefined;
    if (e.settledAt !== undefined && now - e.settledAt >= DUPLICATE_WINDOW_MS) return undefined;
    return { result: e.result, joined: e.settledAt === undefined };
  }

  /** Remember the answer (or the promise of it) of a request that is being executed; `clock` dates its settling. */
  remember(req: LanRequest, result: R | Promise<R>, clock: () => number): void {
    const i = this.indexOf(req);
    if (i >= 0) this.drop(i); // the same sequence number reused for another request
    const e: Entry<R> = { req, result, settledAt: undefined };
    if (result instanceof Promise) {
      const done = () => {
        e.settledAt = clock();
      };
      result.then(done, done);
    } else {
      e.settledAt = clock();
    }
    this.entries.push(e);
    this.perSeq[req.rqSeq & 0x3f]!++;
    if (this.entries.length > DUPLICATE_CACHE_CAPACITY) this.drop(0);
  }

  private drop(i: number): void {
    const [e] = this.entries.splice(i, 1);
    this.perSeq[e!.req.rqSeq & 0x3f]!--;
  }
}
