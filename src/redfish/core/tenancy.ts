/**
 * Shared mode (issue 16, docs/scale.md): one Redfish service, one koa app and one route table for
 * many VMs. Every VM is a tenant with the deps a per-VM agent would have (machine, accounts,
 * sessions, events, tasks); each request is served with the deps of one tenant:
 *
 * - the caller's credentials pick the tenants it may see (Basic: every tenant whose accounts match
 *   the user name and password; X-Auth-Token: the tenants the session was created for);
 * - a path under /Systems/<id>, /Managers/<id> or /Chassis/<id> is served by tenant <id> when the
 *   caller may see it, else 404 ResourceNotFound (a 403 would tell that <id> exists); inside the
 *   tenant the path is routed under the per-VM ids (Systems/1, Managers/BMC, Chassis/1), so every
 *   resource module is the per-VM one, and the answer is rewritten back to <id>;
 * - service-level resources (SessionService, AccountService, EventService, TaskService, ...) are
 *   the home tenant's (a token's: the tenant whose store issued it; Basic: the first visible one,
 *   ids sorted), so nothing of a tenant the caller cannot see is shown;
 * - the SSE stream merges the events of every visible tenant (FleetEvents below): the home's all,
 *   the others' about their system, manager and chassis, each under the tenant's own ids;
 * - the collections Systems, Managers and Chassis list every visible tenant.
 *
 * Unauthenticated routes (ServiceRoot, $metadata, odata) use the service's root deps (no machine,
 * no accounts); wrong credentials reach the root deps too, which refuse them as per-VM mode does.
 * One login lockout (per account name and source address) is shared by every tenant and the root.
 */
import type { UserAccount } from '../../accounts/types.js';
import { eventHubOf, type BmcEvent, type EventHub } from '../../events/hub.js';
import { eventPayload } from '../../events/subscriptions.js';
import type { RedfishTenancy } from '../app.js';
import { CredentialKeys, checkCredentials, checkLockout, clientAddress } from './auth.js';
import { RedfishError } from './errors.js';
import { KINDS, V1 } from './tenant-paths.js';
import { type RedfishContext, type RedfishDeps, type RedfishSession, type RedfishState, type SessionStore, type SharedEvent, type SharedEventSource } from './types.js';

export interface Tenant {
  /** System id `<namespace>.<vm>` (also its Manager and Chassis id) */
  readonly id: string;
  readonly deps: RedfishDeps;
}


/**
 * A tenant's session store: the tenant's own sessions (SessionService lists only those), tokens
 * prefixed with the tenant's number so the shared layer finds the store without probing others,
 * and for each session the tenant ids its credentials matched at login.
 */
export class TenantSessionStore implements SessionStore {
  private readonly scopes = new Map<string, ScopeEntry>();
  /** `<seq>.`, the start of this store's tokens */
  private readonly prefix: string;
  constructor(
    private readonly inner: SessionStore,
    readonly seq: number,
  ) {
    this.prefix = `${seq}.`;
  }
  get timeoutSeconds(): number {
    return this.inner.timeoutSeconds;
  }
  set timeoutSeconds(v: number) {
    this.inner.timeoutSeconds = v;
  }
  /** Login through the shared layer: remember which tenants the credentials matched. */
  createScoped(user: UserAccount, scope: readonly string[], clientAddress?: string, context?: string): { session: RedfishSession; token: string } {
    const made = this.create(user, clientAddress, context);
    if (this.scopes.size >= 256) for (const id of [...this.scopes.keys()]) if (!this.inner.get(id)) this.scopes.delete(id);
    this.scopes.set(made.session.id, { ids: scope });
    return made;
  }
  create(user: UserAccount, clientAddress?: string, context?: string): { session: RedfishSession; token: string } {
    const { session, token } = this.inner.create(user, clientAddress, context);
    return { session, token: `${this.seq}.${token}` };
  }
  authenticate(token: string): RedfishSession | undefined {
    if (!token.startsWith(this.prefix)) return undefined;
    return this.inner.authenticate(token.slice(this.prefix.length));
  }
  scopeOf(id: string): readonly string[] | undefined {
    return this.scopes.get(id)?.ids;
  }
  /** The scope of a session and what the shared layer last resolved for it (Tenancy.enter). */
  scopeEntry(id: string): ScopeEntry | undefined {
    return this.scopes.get(id);
  }
  /** Forget what was resolved to tenant `id` (it left: nothing may keep its deps alive). */
  dropResolved(id: string): void {
    for (const e of this.scopes.values()) if (e.resolved?.home.id === id) delete e.resolved;
  }
  get(id: string): RedfishSession | undefined {
    return this.inner.get(id);
  }
  list(): RedfishSession[] {
    return this.inner.list();
  }
  delete(id: string): boolean {
    this.scopes.delete(id);
    return this.inner.delete(id);
  }
}

/**
 * Tenant ids (sorted) per credential key: filled from each tenant's accounts when it is added and
 * from every successful scan. A tenant whose users are its account store's live list is re-indexed
 * on every change of that store (create, delete, password, name, Enabled: AccountStore.onChange),
 * so a hit needs no second check and a removed account or changed password stops matching at
 * once; any other tenant is verified against its users on every hit. Capped; a full index only
 * costs scans.
 */
const MATCH_INDEX_MAX = 65_536;

/** The tenants (ids, sorted) one credential key matched, and whether a hit needs no check (Tenancy.entry). */
interface IndexEntry {
  readonly ids: readonly string[];
  readonly trusted: boolean;
  /** what Tenancy.enter last resolved for these credentials (trusted entries only) */
  resolved?: Resolved;
}

/** A session's tenant ids (matched at login), and what Tenancy.enter last resolved for it. */
export interface ScopeEntry {
  readonly ids: readonly string[];
  resolved?: Resolved;
}

/**
 * What Tenancy.enter resolved for one caller (a session, or trusted Basic credentials) and one
 * system: the tenant that serves it, the caller's account there and the request's tenant state.
 * Kept on the caller's scope or index entry and used while the tenancy's epoch is unchanged: every
 * add, remove and account change of a followed tenant moves the epoch, and only followed tenants
 * (whose account changes the tenancy hears of) are kept. With 1,000 tenants a request would
 * otherwise walk several maps and lists of a tenant cold in the caches (docs/scale.md).
 */
interface Resolved {
  readonly epoch: number;
  readonly home: Tenant;
  readonly username: string;
  readonly user: UserAccount;
  readonly tenant: NonNullable<RedfishState['tenant']>;
}

type FleetEvent = SharedEvent;
type FleetListener = (e: FleetEvent) => void;

/** Events kept for Last-Event-ID across every tenant (each tenant's hub keeps its own 1,000 too). */
export const FLEET_EVENT_HISTORY = 2048;

/**
 * The events of every tenant in one sequence, for the shared SSE stream: each tenant's hub feeds
 * it (one listener per tenant, which only copies a reference and the rewritten origin), a bounded
 * history serves Last-Event-ID, and each stream listens to the tenants it may see only. A
 * tenant's own numbering stays in its payload (EventId, LogEntry) and its EventLog.
 */
export class FleetEvents implements SharedEventSource {
  private readonly history: FleetEvent[] = [];
  private readonly listeners = new Map<string, Set<FleetListener>>();
  private readonly feeds = new Map<string, () => void>();
  private nextSeq = 1;

  constructor(readonly historySize = FLEET_EVENT_HISTORY) {}

  attach(id: string, hub: EventHub): void {
    this.detach(id);
    this.feeds.set(id, hub.on((e) => this.push(id, e)));
  }

  detach(id: string): void {
    this.feeds.get(id)?.();
    this.feeds.delete(id);
  }

  private push(tenant: string, e: BmcEvent): void {
    const systemScoped = SYSTEM_ORIGIN.test(e.origin);
    const fe: FleetEvent = { seq: this.nextSeq++, tenant, systemScoped, event: { ...e, origin: tenantPaths(e.origin, tenant) } };
    this.history.push(fe);
    if (this.history.length > this.historySize) this.history.splice(0, this.history.length - this.historySize);
    for (const l of [...(this.listeners.get(tenant) ?? [])]) {
      try {
        l(fe);
      } catch {
        // a stream's bug must not break the emitter
      }
    }
  }

  /** The SSE frame: `id:` the service-wide sequence, the payload's paths under the tenant's ids. */
  frame(fe: FleetEvent): string {
    return `id: ${fe.seq}\ndata: ${tenantPaths(JSON.stringify(eventPayload([fe.event], undefined, String(fe.seq))), fe.tenant)}\n\n`;
  }

  /** Events after `seq` of these tenants, oldest first. */
  since(seq: number, tenants: readonly string[]): FleetEvent[] {
    const want = new Set(tenants);
    return this.history.filter((fe) => fe.seq > seq && want.has(fe.tenant));
  }

  /** Listen to the events of these tenants; returns what stops it. */
  on(tenants: readonly string[], listener: FleetListener): () => void {
    for (const t of tenants) {
      let set = this.listeners.get(t);
      if (!set) this.listeners.set(t, (set = new Set()));
      set.add(listener);
    }
    return () => {
      for (const t of tenants) {
        const set = this.listeners.get(t);
        set?.delete(listener);
        if (set?.size === 0) this.listeners.delete(t);
      }
    };
  }
}


export class Tenancy implements RedfishTenancy {
  private readonly byId = new Map<string, Tenant>();
  private readonly bySeq = new Map<number, Tenant>();
  private readonly seqOf = new Map<string, number>();
  private sorted: string[] | undefined;
  private nextSeq = 1;
  private readonly index = new Map<string, IndexEntry>();
  /** index keys of user name and password (keyed, never the password: auth.ts CredentialKeys) */
  private readonly keys = new CredentialKeys();
  /** The index keys naming each tenant (to re-index it alone) */
  private readonly keysOf = new Map<string, Set<string>>();
  /** Tenants whose index entries follow their account store's changes (no check on a hit) */
  private readonly followed = new Map<string, () => void>();
  /** Every tenant's events in one sequence (the shared SSE stream) */
  readonly events = new FleetEvents();
  /** Moves on every add, remove and account change: what enter resolved before is then stale (Resolved) */
  private epoch = 0;

  constructor(readonly root: RedfishDeps) {}

  /** Number for the next tenant's session tokens (pass to TenantSessionStore). */
  allocateSeq(): number {
    return this.nextSeq++;
  }

  add(t: Tenant): void {
    const store = t.deps.sessions;
    if (!(store instanceof TenantSessionStore)) throw new Error(`tenant ${t.id}: sessions must be a TenantSessionStore`);
    this.epoch++;
    this.byId.set(t.id, t);
    this.bySeq.set(store.seq, t);
    this.seqOf.set(t.id, store.seq);
    this.sorted = undefined;
    this.events.attach(t.id, eventHubOf(t.deps.machine));
    this.followed.get(t.id)?.();
    this.followed.delete(t.id);
    this.unindex(t.id);
    // the users are the store's live list: its change events keep the index right
    if (t.deps.accounts && t.deps.users === t.deps.accounts.users) this.followed.set(t.id, t.deps.accounts.onChange(() => this.reindex(t)));
    this.indexUsers(t);
  }

  remove(id: string): void {
    this.epoch++;
    // the epoch makes them stale; this lets the leaving tenant's deps go (a session's scope entry
    // lives until its session is pruned, and may name another tenant than its own)
    for (const t of this.byId.values()) (t.deps.sessions as TenantSessionStore).dropResolved(id);
    const seq = this.seqOf.get(id);
    this.byId.delete(id);
    if (seq !== undefined) this.bySeq.delete(seq);
    this.seqOf.delete(id);
    this.sorted = undefined;
    this.events.detach(id);
    this.followed.get(id)?.();
    this.followed.delete(id);
    this.unindex(id);
  }

  private indexUsers(t: Tenant): void {
    for (const u of t.deps.users) {
      const key = this.keys.of(u.username, u.password);
      const ids = this.index.get(key)?.ids ?? [];
      if (!ids.includes(t.id)) this.remember(key, [...ids, t.id].sort());
    }
  }

  /** Takes tenant `id` out of every index entry. */
  private unindex(id: string): void {
    const keys = this.keysOf.get(id);
    if (!keys) return;
    this.keysOf.delete(id);
    for (const key of keys) {
      const entry = this.index.get(key);
      if (!entry) continue;
      const rest = entry.ids.filter((x) => x !== id);
      if (rest.length > 0) this.index.set(key, this.entry(rest));
      else this.index.delete(key);
    }
  }

  /** A tenant's accounts changed: its entries are rebuilt from its current users. */
  private reindex(t: Tenant): void {
    this.epoch++;
    if (this.byId.get(t.id) !== t) return;
    this.unindex(t.id);
    this.indexUsers(t);
  }

  get(id: string): Tenant | undefined {
    return this.byId.get(id);
  }

  ids(): readonly string[] {
    this.sorted ??= [...this.byId.keys()].sort();
    return this.sorted;
  }

  private remember(key: string, ids: readonly string[]): void {
    if (!this.index.has(key) && this.index.size >= MATCH_INDEX_MAX) this.forget(this.index.keys().next().value as string);
    this.forget(key);
    this.index.set(key, this.entry(ids));
    for (const id of ids) {
      let keys = this.keysOf.get(id);
      if (!keys) this.keysOf.set(id, (keys = new Set()));
      keys.add(key);
    }
  }

  private forget(key: string): void {
    const entry = this.index.get(key);
    if (!entry) return;
    this.index.delete(key);
    for (const id of entry.ids) this.keysOf.get(id)?.delete(key);
  }

  /**
   * An index entry for these tenants, trusted when every one is served and followed: each change
   * of a tenant (add, remove, an account change) rebuilds the entries naming it (unindex, remember),
   * so the flag stays right and a trusted hit costs no lookup per tenant.
   */
  private entry(ids: readonly string[]): IndexEntry {
    return { ids, trusted: ids.length > 0 && ids.every((id) => this.byId.has(id) && this.followed.has(id)) };
  }

  /** Ids (sorted) of the tenants whose accounts hold this user name and password. */
  match(username: string, password: string): readonly string[] {
    const m = this.matchEntry(username, password);
    return 'trusted' in m ? m.ids : m;
  }

  /**
   * match(), answering with the credentials' index entry when a hit on it needs no check (so what
   * enter resolved for it may be kept on it), else with the ids.
   */
  private matchEntry(username: string, password: string): IndexEntry | readonly string[] {
    const key = this.keys.of(username, password);
    const entry = this.index.get(key);
    if (entry?.trusted) return entry;
    if (entry) {
      const hit = entry.ids;
      // accounts change at runtime: a followed tenant's entries are re-indexed on each change; any
      // other tenant counts only while it still matches
      let ok = hit.length > 0;
      for (const id of hit) {
        const t = this.byId.get(id);
        if (!t || (!this.followed.has(id) && checkCredentials(t.deps.users, username, password) === undefined)) {
          ok = false;
          break;
        }
      }
      if (ok) return hit;
    }
    const ids: string[] = [];
    for (const id of this.ids()) {
      const users = (this.byId.get(id) as Tenant).deps.users;
      // only tenants that have the user name pay for the constant-time password compare
      if (users.some((u) => u.username === username) && checkCredentials(users, username, password)) ids.push(id);
    }
    if (ids.length > 0) this.remember(key, ids);
    else this.forget(key);
    const made = this.index.get(key);
    return made?.trusted ? made : ids;
  }

  enter(ctx: RedfishContext): void {
    ctx.state.deps = this.root;
    const path = normalize(ctx.path);
    const named = systemPath(path);
    let visible: readonly string[] = [];
    let username: string | undefined;
    let viaSession: { tenant: Tenant; session: RedfishSession } | undefined;
    /** where what this request resolves is kept for the caller's next one (Resolved) */
    let keep: { resolved?: Resolved } | undefined;
    const token = ctx.get('X-Auth-Token');
    if (token) {
      const dot = token.indexOf('.');
      const t = dot > 0 ? this.bySeq.get(Number(token.slice(0, dot))) : undefined;
      const session = t?.deps.sessions.authenticate(token);
      if (t && session) {
        username = session.username;
        const entry = (t.deps.sessions as TenantSessionStore).scopeEntry(session.id);
        keep = entry;
        if (named !== undefined && this.kept(ctx, entry, username, named)) return;
        viaSession = { tenant: t, session };
        const scope = entry?.ids ?? [t.id];
        // the scope itself while all of its tenants are served (no copy per request)
        visible = scope.every((id) => this.byId.has(id)) ? scope : scope.filter((id) => this.byId.has(id));
      }
    } else {
      const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(ctx.get('Authorization'));
      const decoded = m ? Buffer.from(m[1] as string, 'base64').toString('utf8') : '';
      const colon = decoded.indexOf(':');
      if (colon > 0) {
        const address = clientAddress(ctx);
        const name = decoded.slice(0, colon);
        checkLockout(this.root, address, name);
        const matched = this.matchEntry(name, decoded.slice(colon + 1));
        if ('trusted' in matched) {
          keep = matched;
          visible = matched.ids;
        } else visible = matched;
        if (visible.length > 0) {
          username = name;
          this.root.lockout.recordSuccess(address, name);
          if (named !== undefined && this.kept(ctx, keep, username, named)) return;
        }
      }
    }
    // wrong or no credentials: the root deps answer (401 on every authenticated route, as per-VM)
    if (username === undefined || visible.length === 0) {
      if (named) ctx.state.internalPath = named.internal;
      return;
    }
    let home: Tenant;
    if (named) {
      const id = decodeSegment(named.id);
      if (!visible.includes(id)) throw new RedfishError(404, 'ResourceNotFound', [named.kind.type, id]);
      home = this.byId.get(id) as Tenant;
      ctx.state.internalPath = named.internal;
    } else {
      // a task (and its monitor) of any visible system is served by that system: its id is `<seq>-<n>`
      const task = TASK_PATH.exec(path);
      const owner = task ? this.bySeq.get(Number(task[1])) : undefined;
      if (owner && visible.includes(owner.id)) home = owner;
      else home = viaSession && visible.includes(viaSession.tenant.id) ? viaSession.tenant : (this.byId.get(visible[0] as string) as Tenant);
    }
    let user: UserAccount | undefined;
    for (const u of home.deps.users) {
      if (u.username !== username) continue;
      user = u;
      break;
    }
    if (!user) return;
    const tenant = Object.freeze({ id: home.id, visible, events: this.events });
    ctx.state.deps = home.deps;
    ctx.state.user = user;
    ctx.state.tenant = tenant;
    // a system's own paths are what a caller asks again and again; kept only for a followed tenant,
    // whose account changes move the epoch
    if (named !== undefined && keep !== undefined && this.followed.has(home.id)) keep.resolved = { epoch: this.epoch, home, username, user, tenant };
  }

  /**
   * The request to a system's path served by what was resolved for this caller before, when that
   * is still right (same epoch, same user name, same system): true, the state set as enter would.
   */
  private kept(ctx: RedfishContext, keep: { resolved?: Resolved } | undefined, username: string, named: { id: string; internal: string }): boolean {
    const r = keep?.resolved;
    if (r === undefined || r.epoch !== this.epoch || r.username !== username || r.home.id !== decodeSegment(named.id)) return false;
    ctx.state.internalPath = named.internal;
    ctx.state.deps = r.home.deps;
    ctx.state.user = r.user;
    ctx.state.tenant = r.tenant;
    return true;
  }

  login(ctx: RedfishContext, body: unknown): void {
    if (typeof body !== 'object' || body === null) return;
    const { UserName, Password } = body as Record<string, unknown>;
    if (typeof UserName !== 'string' || typeof Password !== 'string') return;
    checkLockout(this.root, clientAddress(ctx), UserName);
    const visible = this.match(UserName, Password);
    const home = visible.length > 0 ? this.byId.get(visible[0] as string) : undefined;
    if (!home) return; // the root deps refuse the login (lockout counted there, as per-VM)
    ctx.state.deps = home.deps;
    ctx.state.tenant = { id: home.id, visible };
    const store = home.deps.sessions as TenantSessionStore;
    // the session remembers every tenant these credentials matched
    const scoped: SessionStore = {
      get timeoutSeconds() {
        return store.timeoutSeconds;
      },
      set timeoutSeconds(v: number) {
        store.timeoutSeconds = v;
      },
      create: (user, address, context) => store.createScoped(user, visible, address, context),
      authenticate: (t) => store.authenticate(t),
      get: (id) => store.get(id),
      list: () => store.list(),
      delete: (id) => store.delete(id),
    };
    // Object.assign, not `{ ...home.deps, sessions }` (a spread-then-key literal promotes garbage on Node 20, docs/scale.md)
    ctx.state.deps = Object.assign({}, home.deps, { sessions: scoped });
  }

  leave(ctx: RedfishContext): void {
    const t = ctx.state.tenant;
    if (!t) return;
    const body = ctx.body;
    if (typeof body === 'object' && body !== null && Object.getPrototypeOf(body) === Object.prototype) {
      const type = ctx.response.get('Content-Type');
      ctx.body = rewrite(body as Record<string, unknown>, t.id, t.visible);
      if (type) ctx.set('Content-Type', type);
    }
    const loc = ctx.response.get('Location');
    if (loc) ctx.set('Location', tenantPaths(loc, t.id));
  }
}

function normalize(path: string): string {
  return path.length > 1 && path.endsWith('/') ? path.replace(/\/+$/, '') : path;
}

function decodeSegment(s: string): string {
  // without a '%' there is nothing to decode (decodeURIComponent would return s)
  if (!s.includes('%')) return s;
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/**
 * A path naming a system, manager or chassis (`/redfish/v1/<kind>/<id>[/...]`, `path` normalised):
 * its kind, its id segment (still encoded) and the same path with the per-VM id in place of that
 * segment; undefined for any other path. indexOf and slices, not split and join: this runs on every
 * request of a shared agent.
 */
function systemPath(path: string): { kind: { internal: string; type: string }; id: string; internal: string } | undefined {
  if (!path.startsWith(V1)) return undefined;
  const kindEnd = path.indexOf('/', V1.length);
  if (kindEnd < 0) return undefined;
  const kindName = path.slice(V1.length, kindEnd);
  const kind = Object.hasOwn(KINDS, kindName) ? KINDS[kindName] : undefined;
  if (!kind) return undefined;
  const idEnd = path.indexOf('/', kindEnd + 1);
  const id = idEnd < 0 ? path.slice(kindEnd + 1) : path.slice(kindEnd + 1, idEnd);
  // the resource itself (the hot GET): the kind's constant path, a string whose hash V8 keeps for the route lookup
  return { kind, id, internal: idEnd < 0 ? kind.path : `${kind.path}${path.slice(idEnd)}` };
}

// followed by a quote (JSON string, or a registry message's '%1'), a path, fragment or query separator, a full stop or space
const INTERNAL_PATH = /\/redfish\/v1\/(Systems\/1|Managers\/BMC|Chassis\/1)(?=["'/#?.\s]|$)/g;

/** An origin inside the per-VM system, manager or chassis, or a task (whose id names its tenant, TASK_PATH) */
const SYSTEM_ORIGIN = /^\/redfish\/v1\/(?:(?:Systems\/1|Managers\/BMC|Chassis\/1)(?=[/#?]|$)|TaskService\/Tasks\/\d+-)/;
/** A task or task monitor URI of a tenant: `<seq>-<n>` */
const TASK_PATH = /^\/redfish\/v1\/TaskService\/(?:Tasks|TaskMonitors)\/(\d+)-\d+(?:\/|$)/;

/** A text with the per-VM system, manager and chassis paths under tenant `id`'s ids. */
export function tenantPaths(text: string, id: string): string {
  return text.replace(INTERNAL_PATH, (_m, p: string) => `${V1}${p.slice(0, p.indexOf('/'))}/${id}`);
}

/** The per-VM ids INTERNAL_PATH names, after `/redfish/v1/`, with what replaces each but the id */
const INTERNAL_IDS: ReadonlyArray<readonly [string, string]> = [
  ['Systems/1', 'Systems/'],
  ['Managers/BMC', 'Managers/'],
  ['Chassis/1', 'Chassis/'],
];
/** What may follow an internal path (INTERNAL_PATH's lookahead: a quote, / # ? . or white space) */
const PATH_END = /["'/#?.\s]/;

/**
 * tenantPaths for a JSON answer, by one indexOf walk over `/redfish/v1/` instead of a regular
 * expression with a replacer call per path (half the time on a System body): the same result.
 */
function tenantPathsScan(text: string, id: string): string {
  const parts: string[] = [];
  let from = 0;
  for (let i = text.indexOf(V1); i >= 0; i = text.indexOf(V1, i + V1.length)) {
    const at = i + V1.length;
    for (const [internal, kind] of INTERNAL_IDS) {
      if (!text.startsWith(internal, at)) continue;
      const end = at + internal.length;
      if (end === text.length || PATH_END.test(text[end] as string)) {
        parts.push(text.slice(from, at), kind, id);
        from = end;
      }
      break;
    }
  }
  if (from === 0) return text;
  parts.push(text.slice(from));
  // join gives one flat string; `+=` gave a rope of slices that every socket write of a kept
  // answer walked again (String::WriteToFlat in perf, shared mode only)
  return parts.join('');
}

/**
 * An answer with the tenant's ids, as the JSON text to send: its resource's Id, the visible
 * collections' Members, and every path of its system, manager and chassis (in links, annotations
 * and message texts alike) with the tenant's id in place of the per-VM one. One indexOf walk over
 * the serialised text (tenantPathsScan): a walk copying the object cost ~55 µs per System GET.
 */
export function rewrite(v: Record<string, unknown>, id: string, visible: readonly string[]): string {
  const memo = Object.isFrozen(v) ? rewritten.get(v) : undefined;
  if (memo !== undefined && memo.id === id) return memo.text;
  let top = v;
  let byVisible = false;
  const oid = v['@odata.id'];
  if (typeof oid === 'string' && oid.startsWith(V1)) {
    const [kindName, rid, more] = oid.slice(V1.length).split('/');
    const kind = KINDS[kindName as string];
    if (kind && rid === undefined && Array.isArray(v.Members)) {
      top = Object.assign({}, v, { Members: visible.map((s) => ({ '@odata.id': `${V1}${kindName}/${s}` })) });
      if ('Members@odata.count' in v) top['Members@odata.count'] = visible.length;
      byVisible = true;
    } else if (kind && rid === kind.internal && more === undefined && v.Id === kind.internal) {
      top = Object.assign({}, v, { Id: id });
    }
  }
  const text = tenantPathsScan(JSON.stringify(top), id);
  if (!byVisible && Object.isFrozen(v)) rewritten.set(v, { id, text });
  return text;
}

/**
 * The rewritten text of a frozen answer body (a prepared resource shared by every GET between two
 * changes, core/odata.ts prepareResource: the Systems/1 answer of a tenant) for the tenant it was
 * rewritten for; collections, whose text depends on the caller's visible systems, are not kept.
 * Weak: an entry lives as long as its body.
 */
const rewritten = new WeakMap<object, { id: string; text: string }>();
