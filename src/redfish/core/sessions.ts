/**
 * In-memory Redfish session store. Tokens are 32 random bytes (hex); only their SHA-256 is kept and
 * sessions are looked up by that hash (a lookup's timing can only tell about the hash of what the
 * client sent, never about a stored token, so no further compare is needed). Sessions expire
 * after `timeoutSeconds` without use; each authenticated request refreshes lastUsedAt.
 */
import * as crypto from 'node:crypto';
import type { UserAccount } from '../../accounts/types.js';
import { RedfishError } from './errors.js';
import type { RedfishSession, SessionStore } from './types.js';

export const DEFAULT_SESSION_TIMEOUT_SECONDS = 1800;
/**
 * SessionTimeout's range, whole seconds: the one definition SessionService PATCH
 * (src/redfish/resources/sessions.ts) and --redfish-session-timeout (src/agent/config.ts) enforce.
 */
export const SESSION_TIMEOUT_LIMITS = { min: 30, max: 86_400 } as const;
export const MIN_SESSION_TIMEOUT_SECONDS = SESSION_TIMEOUT_LIMITS.min;
export const MAX_SESSION_TIMEOUT_SECONDS = SESSION_TIMEOUT_LIMITS.max;
export const MAX_SESSIONS = 64;
/** Per user: logging in again beyond this drops that user's least recently used session. */
export const MAX_SESSIONS_PER_USER = 16;

interface Entry {
  session: RedfishSession;
  tokenHash: string;
}

/** SHA-256 hex of a token: crypto.hash (one call, no Hash object, node 20.12+) where node has it. */
const hashToken: (token: string) => string =
  typeof (crypto as { hash?: unknown }).hash === 'function'
    ? (token) => crypto.hash('sha256', token, 'hex')
    : (token) => crypto.createHash('sha256').update(token).digest('hex');

export class MemorySessionStore implements SessionStore {
  timeoutSeconds: number;
  private readonly byId = new Map<string, Entry>();
  private readonly byHash = new Map<string, string>();

  constructor(
    timeoutSeconds = DEFAULT_SESSION_TIMEOUT_SECONDS,
    private readonly now: () => Date = () => new Date(),
    private readonly maxSessions = MAX_SESSIONS,
    private readonly maxPerUser = MAX_SESSIONS_PER_USER,
  ) {
    this.timeoutSeconds = timeoutSeconds;
  }

  create(user: UserAccount, clientAddress?: string, context?: string): { session: RedfishSession; token: string } {
    this.prune();
    // A client that logs in for every call and never logs out only displaces its own old sessions.
    const mine = [...this.byId.values()].filter((e) => e.session.username === user.username);
    if (mine.length >= this.maxPerUser) {
      mine.sort((a, b) => a.session.lastUsedAt.getTime() - b.session.lastUsedAt.getTime());
      for (const e of mine.slice(0, mine.length - this.maxPerUser + 1)) this.delete(e.session.id);
    }
    if (this.byId.size >= this.maxSessions) throw new RedfishError(503, 'SessionLimitExceeded');
    const token = crypto.randomBytes(32).toString('hex');
    let id: string;
    do id = crypto.randomBytes(8).toString('hex');
    while (this.byId.has(id));
    const at = this.now();
    const session: RedfishSession = {
      id,
      username: user.username,
      createdAt: at,
      // its own Date, moved in place on each use (authenticate)
      lastUsedAt: new Date(at.getTime()),
      ...(clientAddress ? { clientAddress } : {}),
      ...(context !== undefined ? { context } : {}),
    };
    const tokenHash = hashToken(token);
    this.byId.set(id, { session, tokenHash });
    this.byHash.set(tokenHash, id);
    return { session, token };
  }

  authenticate(token: string): RedfishSession | undefined {
    const id = this.byHash.get(hashToken(token));
    const entry = id !== undefined ? this.live(id) : undefined;
    if (!entry) return undefined;
    // set in place, not a new Date per request: with many sessions (a shared agent's, one per VM)
    // each new Date lived until that session's next request, long enough to survive young-generation
    // GCs into the old space; the session's one Date is old already
    entry.session.lastUsedAt.setTime(this.now().getTime());
    return entry.session;
  }

  get(id: string): RedfishSession | undefined {
    return this.live(id)?.session;
  }

  list(): RedfishSession[] {
    this.prune();
    return [...this.byId.values()].map((e) => e.session).sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime());
  }

  delete(id: string): boolean {
    const entry = this.byId.get(id);
    if (!entry) return false;
    this.byId.delete(id);
    this.byHash.delete(entry.tokenHash);
    return true;
  }

  private expired(s: RedfishSession): boolean {
    return this.now().getTime() - s.lastUsedAt.getTime() >= this.timeoutSeconds * 1000;
  }

  private live(id: string): Entry | undefined {
    const entry = this.byId.get(id);
    if (!entry) return undefined;
    if (this.expired(entry.session)) {
      this.delete(id);
      return undefined;
    }
    return entry;
  }

  private prune(): void {
    for (const e of [...this.byId.values()]) if (this.expired(e.session)) this.delete(e.session.id);
  }
}
