/**
 * Exactly-once Redfish actions (and volume creates, isExactlyOnce) for clients that retry. A client that resends an action (POST
 * .../Actions/...) after a timeout would otherwise run it twice (two power cycles, two inserts). When
 * the request carries an id that makes the retry detectable, the first request's answer is given
 * again instead:
 *
 * - `Idempotency-Key` (IETF draft-ietf-httpapi-idempotency-key-header): the same key from the same
 *   user for the same method and path with the same body (compared as canonical JSON) is a retry. The
 *   same key with another body or path is refused with 422 and Base HeaderInvalid: a client bug that
 *   must not silently run or skip something.
 * - `X-Request-Id` (only when there is no Idempotency-Key): the same rule for a retry; since this
 *   header is also used for plain tracing, a reuse for a different request is not an error, it just
 *   runs (and is not remembered).
 *
 * A retry that arrives while the first request still runs waits for it and gets its answer. Answers
 * are remembered IDEMPOTENCY_WINDOW_MS after the first request ended (more than the 10 s backend
 * timeout plus any client's retry schedule), at most MAX_ENTRIES keys (oldest finished first out);
 * bodies over MAX_CACHED_BODY_BYTES are not remembered. Transient failures are not remembered, so a
 * retry runs again: 5xx, and 4xx answers that carry Retry-After (409 busy, 429). A replayed answer
 * carries `Idempotent-Replayed: true`.
 *
 * The remembered answers live in memory; a handler whose effect must survive a restart gets
 * `ctx.state.retryToken` (a digest of user, key and request) to store with what it makes, so that a
 * retry reaching a restarted agent can find it (volume creates: resources/volumes.ts).
 */
import { createHash } from 'node:crypto';
import { perObject } from '../../common/per-object.js';
import { RedfishError } from './errors.js';
import type { RedfishContext, RedfishHandler } from './types.js';

export const IDEMPOTENCY_WINDOW_MS = 10 * 60_000;
export const MAX_ENTRIES = 512;
export const MAX_CACHED_BODY_BYTES = 64 * 1024;
const MAX_KEY_LENGTH = 255;
/** Headers of the first answer that a replay repeats */
const REPLAYED_HEADERS = ['location', 'retry-after', 'etag', 'allow', 'www-authenticate'];

type Outcome =
  | { kind: 'answer'; status: number; headers: Record<string, string>; body: unknown }
  | { kind: 'error'; error: unknown };

interface Entry {
  fingerprint: string;
  /** Settles with the first request's outcome */
  outcome: Promise<Outcome>;
  /** When the first request ended (undefined while it runs) */
  endedAt?: number;
}

/** JSON with object keys sorted, so equal bodies hash equally whatever their key order. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (typeof v === 'object' && v !== null) {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

/** The key of a request, or undefined when it has none; 400 for a malformed Idempotency-Key. */
function requestKey(ctx: RedfishContext): { key: string; strict: boolean } | undefined {
  const raw = ctx.get('Idempotency-Key');
  if (raw) {
    // An sf-string ("...") per the draft; bare tokens are accepted too.
    const key = /^"(.*)"$/.exec(raw.trim())?.[1] ?? raw.trim();
    if (key.length === 0 || key.length > MAX_KEY_LENGTH || !/^[\x20-\x7e]+$/.test(key)) {
      throw new RedfishError(400, 'HeaderInvalid', ['Idempotency-Key'], {
        detail: `Idempotency-Key must be 1 to ${MAX_KEY_LENGTH} printable ASCII characters.`,
      });
    }
    return { key: `i:${key}`, strict: true };
  }
  const rid = ctx.get('X-Request-Id').trim();
  if (rid && rid.length <= MAX_KEY_LENGTH) return { key: `r:${rid}`, strict: false };
  return undefined;
}

/** Whether an outcome may be replayed later (transient failures are not). */
function remembered(o: Outcome): boolean {
  if (o.kind === 'error') {
    const e = o.error;
    if (!(e instanceof RedfishError)) return false;
    return e.status < 500 && e.opts.retryAfterSeconds === undefined && !e.opts.headers?.['Retry-After'];
  }
  if (o.status >= 500) return false;
  if (o.status >= 400 && o.headers['retry-after'] !== undefined) return false;
  const size = o.body === undefined ? 0 : Buffer.byteLength(JSON.stringify(o.body) ?? '');
  return size <= MAX_CACHED_BODY_BYTES;
}

export class IdempotencyCache {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly now: () => number,
    readonly windowMs = IDEMPOTENCY_WINDOW_MS,
    readonly maxEntries = MAX_ENTRIES,
  ) {}

  /** Keys remembered or in flight (for tests and metrics). */
  get size(): number {
    this.prune();
    return this.entries.size;
  }

  /** Run `handler` for `ctx` at most once per idempotency key (see the module comment). */
  async run(ctx: RedfishContext, handler: RedfishHandler): Promise<void> {
    const rk = requestKey(ctx);
    if (!rk) return handler(ctx);
    const user = ctx.state.user?.username ?? '';
    const id = `${user}\u0000${rk.key}`;
    const body: unknown = (ctx.request as { body?: unknown }).body;
    const fingerprint = createHash('sha256').update(`${ctx.method} ${ctx.path}\u0000${canonical(body ?? null)}`).digest('hex');
    ctx.state.retryToken = createHash('sha256').update(`${id}\u0000${fingerprint}`).digest('hex').slice(0, 40);
    this.prune();
    const existing = this.entries.get(id);
    if (existing) {
      if (existing.fingerprint !== fingerprint) {
        if (!rk.strict) return handler(ctx); // an X-Request-Id reused for another request: not a retry
        throw new RedfishError(422, 'HeaderInvalid', ['Idempotency-Key'], {
          detail: 'This Idempotency-Key was already used for a different request; use a new key for a new request.',
        });
      }
      ctx.state.logger.info({ method: ctx.method, path: ctx.path, inFlight: existing.endedAt === undefined }, 'redfish retry answered with the first answer');
      const outcome = await existing.outcome;
      ctx.set('Idempotent-Replayed', 'true');
      return replay(ctx, outcome);
    }
    let settle!: (o: Outcome) => void;
    const entry: Entry = { fingerprint, outcome: new Promise<Outcome>((r) => (settle = r)) };
    this.entries.set(id, entry);
    let outcome: Outcome;
    try {
      await handler(ctx);
      const headers: Record<string, string> = {};
      for (const h of REPLAYED_HEADERS) {
        const v = ctx.response.get(h);
        if (v) headers[h] = String(v);
      }
      outcome = { kind: 'answer', status: ctx.status, headers, body: ctx.body };
    } catch (e) {
      outcome = { kind: 'error', error: e };
    }
    entry.endedAt = this.now();
    settle(outcome);
    if (!remembered(outcome)) this.entries.delete(id);
    this.prune();
    if (outcome.kind === 'error') throw outcome.error;
  }

  private prune(): void {
    const cutoff = this.now() - this.windowMs;
    for (const [id, e] of this.entries) if (e.endedAt !== undefined && e.endedAt <= cutoff) this.entries.delete(id);
    if (this.entries.size <= this.maxEntries) return;
    // Oldest finished first; keys in flight stay (their number is bounded by the open requests).
    const finished = [...this.entries].filter(([, e]) => e.endedAt !== undefined).sort(([, a], [, b]) => (a.endedAt as number) - (b.endedAt as number));
    for (const [id] of finished) {
      if (this.entries.size <= this.maxEntries) break;
      this.entries.delete(id);
    }
  }
}

function replay(ctx: RedfishContext, o: Outcome): void {
  if (o.kind === 'error') throw o.error;
  for (const [k, v] of Object.entries(o.headers)) ctx.set(k, v);
  ctx.status = o.status;
  if (o.body !== undefined && o.body !== null) ctx.body = o.body;
}

const caches = perObject<{ now: () => Date }, IdempotencyCache>((deps) => new IdempotencyCache(() => deps.now().getTime()));

/** The cache of one Redfish service (one per deps object, on its clock). */
export function idempotencyOf(deps: { now: () => Date }): IdempotencyCache {
  return caches.get(deps);
}

/** Whether a request is an action (POST .../Actions/...), the requests made exactly-once. */
export function isAction(method: string, path: string): boolean {
  return method === 'POST' && /\/Actions\/[^/]+$/.test(path);
}

/**
 * Whether a request runs exactly once per idempotency key: actions, and the creates that make
 * something a retry must not make twice (a volume: a disk and its storage).
 */
export function isExactlyOnce(method: string, path: string, operationId: string): boolean {
  return isAction(method, path) || (method === 'POST' && operationId === 'createSystemStorageVolume');
}
