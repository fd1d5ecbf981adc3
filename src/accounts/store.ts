/**
 * One account store for both protocols (issue 13): IPMI and Redfish read and change the same
 * accounts through this module, so `ipmitool user set password` and a Redfish PATCH of Password
 * change one account and the new password works over both at once.
 *
 * Passwords:
 * - IPMI RAKP (v2.0) and the v1.5 challenge/response key their HMAC / MD5 with the clear password
 *   (IPMI v2.0 §13.31, K_UID), so the store has to keep it in clear in memory; a hash would not
 *   let the agent compute RAKP Message 2/4. It is kept only in the in-memory record and in the
 *   persistence sink (the controller-managed Secret in KubeVirt mode); it is never logged, never
 *   emitted with a change event, and never returned by list()/get() (they return AccountView).
 * - Password checks (Redfish Basic/session login, IPMI Set User Password "test password") compare
 *   SHA-256 digests with crypto.timingSafeEqual, so neither the length nor a common prefix of the
 *   guess leaks through timing.
 *
 * Ids: every account has an IPMI user id 2..MAX_USER_ID that stays the same for its lifetime
 * (id 1 is the IPMI null user, never an account). The Redfish Account Id is the same number.
 *
 * Roles map to IPMI privilege levels: Administrator ↔ 4, Operator ↔ 3, ReadOnly ↔ 2 (USER).
 *
 * Invariant: at least one enabled Administrator exists, so the configured admin cannot be locked
 * out of existence: the last one cannot be deleted, disabled or demoted (AccountStoreError
 * 'last-admin').
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Role, UserAccount } from './types.js';

/** IPMI user ids the store hands out (Get User Access "maximum user IDs" is at most 63). */
export const FIRST_USER_ID = 2;
export const MAX_USER_ID = 63;
/**
 * Default highest user id: 16 ids (1 = the IPMI null user, 2..16 = 15 accounts), the size most BMCs
 * ship; `ipmitool user list` walks every id up to this, so a smaller table answers faster.
 */
export const DEFAULT_MAX_USER_ID = 16;
/** IPMI v2.0 Set User Password 20-byte form (RAKP keys) and the 16-byte v1.5 form. */
export const IPMI20_PASSWORD_MAX = 20;
export const IPMI15_PASSWORD_MAX = 16;
/** IPMI Set User Name: 16 bytes. */
export const IPMI_USERNAME_MAX = 16;

export const ROLE_TO_PRIVILEGE: Readonly<Record<Role, number>> = { Administrator: 4, Operator: 3, ReadOnly: 2 };

/** IPMI privilege level → Role (1 CALLBACK and 5 OEM have no Redfish role). */
export function roleForPrivilege(priv: number): Role | undefined {
  if (priv === 4) return 'Administrator';
  if (priv === 3) return 'Operator';
  if (priv === 2) return 'ReadOnly';
  return undefined;
}

export interface PasswordPolicy {
  /** Redfish AccountService MinPasswordLength */
  minLength: number;
  /** Redfish AccountService MaxPasswordLength: at most 20, since IPMI RAKP keys hold 20 bytes */
  maxLength: number;
}

export const DEFAULT_PASSWORD_POLICY: Readonly<PasswordPolicy> = Object.freeze({ minLength: 1, maxLength: IPMI20_PASSWORD_MAX });

/** What a stored account looks like from outside: never the password. */
export interface AccountView {
  id: number;
  username: string;
  role: Role;
  enabled: boolean;
  passwordChangeRequired: boolean;
}

/** The persisted form (a Secret or a state file holds this; it includes the password). */
export interface StoredAccount extends AccountView {
  password: string;
}

export type AccountChange =
  | { type: 'created'; account: AccountView }
  | {
      type: 'updated';
      account: AccountView;
      passwordChanged: boolean;
      before: AccountView;
      /** Who asked, when the caller said (e.g. `ipmi-session:<id>`: that session keeps going) */
      origin?: string;
    }
  | { type: 'deleted'; account: AccountView };

export type AccountStoreErrorCode =
  | 'not-found'
  | 'exists'
  | 'invalid-name'
  | 'invalid-password'
  | 'invalid-role'
  | 'last-admin'
  | 'full';

export class AccountStoreError extends Error {
  constructor(
    readonly code: AccountStoreErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'AccountStoreError';
  }
}

export interface CreateAccount {
  username: string;
  password: string;
  role: Role;
  enabled?: boolean;
  passwordChangeRequired?: boolean;
  /** Ask for this IPMI user id (Set User Name on an empty slot); otherwise the lowest free one. */
  id?: number;
}

export interface UpdateAccount {
  username?: string;
  password?: string;
  role?: Role;
  enabled?: boolean;
  passwordChangeRequired?: boolean;
}

/** Where the store writes its accounts after each change (Secret patch, state file); awaited. */
export type PersistFn = (accounts: readonly StoredAccount[]) => Promise<void>;

const ROLES: readonly Role[] = ['Administrator', 'Operator', 'ReadOnly'];

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

/** Constant-time comparison of two strings (SHA-256 digests, so lengths do not leak). */
export function passwordEquals(a: string, b: string): boolean {
  return timingSafeEqual(digest(a), digest(b));
}

interface Rec extends StoredAccount {
  /** The live object handed to the protocol servers (users[]); mutated in place. */
  live: UserAccount;
  /** Bumped whenever the name, password, role or Enabled changes (see sessionStamp) */
  generation: number;
}

export class AccountStore {
  private readonly recs = new Map<number, Rec>();
  /** accounts whose PasswordChangeRequired is set (syncLive) */
  private changeRequired = 0;
  private readonly events = new EventEmitter();
  /**
   * The enabled accounts, in id order, as the UserAccount list the protocol servers already take.
   * The array and its objects are updated in place on every change, so a server holding it sees
   * new passwords, roles, and created/deleted/disabled accounts at once.
   */
  readonly users: UserAccount[] = [];
  private policy: PasswordPolicy;
  /** Serialises persistence so writes land in change order. */
  private persisting: Promise<void> = Promise.resolve();

  /** Highest IPMI user id (Get User Access "maximum number of user IDs"); FIRST_USER_ID..maxUserId are accounts. */
  readonly maxUserId: number;

  constructor(
    initial: readonly (UserAccount | StoredAccount)[],
    opts: {
      policy?: PasswordPolicy;
      persist?: PersistFn;
      /** default DEFAULT_MAX_USER_ID, at most MAX_USER_ID (raised to fit the initial ids) */
      maxUserId?: number;
      /**
       * default true: refuse a store without an enabled Administrator. Protocol servers started
       * from a bare users list (tests, embedders) pass false; the agent always keeps the rule.
       */
      requireAdmin?: boolean;
    } = {},
  ) {
    this.policy = { ...(opts.policy ?? DEFAULT_PASSWORD_POLICY) };
    this.persist = opts.persist;
    const highest = Math.max(0, ...initial.map((a) => (a as Partial<StoredAccount>).id ?? 0), initial.length + FIRST_USER_ID - 1);
    this.maxUserId = Math.min(MAX_USER_ID, Math.max(opts.maxUserId ?? DEFAULT_MAX_USER_ID, highest));
    for (const a of initial) {
      const s = a as Partial<StoredAccount> & UserAccount;
      this.insert({
        id: s.id ?? this.freeId(),
        username: s.username,
        password: s.password,
        role: s.role,
        enabled: s.enabled ?? true,
        passwordChangeRequired: s.passwordChangeRequired ?? false,
      });
    }
    if (opts.requireAdmin !== false && !this.hasOtherEnabledAdmin(-1)) throw new AccountStoreError('last-admin', 'the account store needs an enabled Administrator');
  }

  private readonly persist: PersistFn | undefined;

  get passwordPolicy(): Readonly<PasswordPolicy> {
    return this.policy;
  }

  setPasswordPolicy(p: PasswordPolicy): void {
    if (!Number.isInteger(p.minLength) || !Number.isInteger(p.maxLength) || p.minLength < 1 || p.maxLength > IPMI20_PASSWORD_MAX || p.minLength > p.maxLength) {
      throw new AccountStoreError('invalid-password', `password lengths must satisfy 1 <= MinPasswordLength <= MaxPasswordLength <= ${IPMI20_PASSWORD_MAX}`);
    }
    this.policy = { ...p };
  }

  onChange(fn: (c: AccountChange) => void): () => void {
    this.events.on('change', fn);
    return () => this.events.off('change', fn);
  }

  list(): AccountView[] {
    return [...this.recs.values()].sort((a, b) => a.id - b.id).map(view);
  }

  get(id: number): AccountView | undefined {
    const r = this.recs.get(id);
    return r ? view(r) : undefined;
  }

  byName(username: string): AccountView | undefined {
    const r = this.findName(username);
    return r ? view(r) : undefined;
  }

  /**
   * The account of this name while its PasswordChangeRequired is set (DSP0266 "Password change
   * required"), else undefined: what the Redfish gate asks on every request, answered without a
   * lookup while no account has the flag (the count is kept by syncLive, which every change runs).
   */
  passwordChangePending(username: string): AccountView | undefined {
    if (this.changeRequired === 0) return undefined;
    const r = this.findName(username);
    return r?.passwordChangeRequired ? view(r) : undefined;
  }

  /** The live UserAccount for an id (what sessions hold), enabled or not. */
  liveAccount(id: number): UserAccount | undefined {
    return this.recs.get(id)?.live;
  }

  /** The id of an enabled or disabled account by name (IPMI session user ids), 0 when unknown. */
  idForName(username: string): number {
    return this.findName(username)?.id ?? 0;
  }

  /**
   * What a protocol session remembers of its account at login: it stays valid while this returns
   * the same value. Undefined when the id has no account or the account is disabled; it changes
   * when the name, password, role or Enabled changes, so the session of a deleted, disabled,
   * renamed, re-roled or re-passworded account ends at its next request.
   */
  sessionStamp(id: number): number | undefined {
    const r = this.recs.get(id);
    return r && r.enabled ? r.generation : undefined;
  }

  idOf(u: UserAccount): number | undefined {
    for (const r of this.recs.values()) if (r.live === u) return r.id;
    return undefined;
  }

  /**
   * Checks a login in constant time; returns the account only when the password matches and the
   * account is enabled. An unknown name costs the same digest comparison.
   */
  verify(username: string, password: string): AccountView | undefined {
    const r = this.findName(username);
    const ok = passwordEquals(r?.password ?? '\u0000no-such-user', password);
    return ok && r && r.enabled ? view(r) : undefined;
  }

  /** IPMI Set User Password "test password" on one id (constant time). */
  testPassword(id: number, password: string): boolean {
    const r = this.recs.get(id);
    return passwordEquals(r?.password ?? '\u0000no-such-user', password) && r !== undefined;
  }

  /** Byte length of an account's password (IPMI 16-byte test answers 81h when it cannot hold it); 0 when unknown. */
  storedPasswordLength(id: number): number {
    const r = this.recs.get(id);
    return r ? Buffer.byteLength(r.password, 'utf8') : 0;
  }

  /** Validates a password against the policy; `ipmiMax` narrows it (16 for the v1.5 form). */
  checkPassword(password: string, ipmiMax: number = IPMI20_PASSWORD_MAX): void {
    const len = Buffer.byteLength(password, 'utf8');
    const max = Math.min(this.policy.maxLength, ipmiMax);
    if (len < this.policy.minLength || len > max) {
      throw new AccountStoreError('invalid-password', `the password must be ${this.policy.minLength} to ${max} bytes long`);
    }
    if (password.includes('\u0000')) throw new AccountStoreError('invalid-password', 'the password must not contain NUL');
  }

  async create(c: CreateAccount): Promise<AccountView> {
    this.checkName(c.username, undefined);
    this.checkPassword(c.password);
    this.checkRole(c.role);
    let id = c.id;
    if (id !== undefined) {
      if (!Number.isInteger(id) || id < FIRST_USER_ID || id > this.maxUserId) throw new AccountStoreError('not-found', `user id ${id} is outside ${FIRST_USER_ID}..${this.maxUserId}`);
      if (this.recs.has(id)) throw new AccountStoreError('exists', `user id ${id} is in use`);
    } else {
      id = this.freeId();
    }
    const r = this.insert({
      id,
      username: c.username,
      password: c.password,
      role: c.role,
      enabled: c.enabled ?? true,
      passwordChangeRequired: c.passwordChangeRequired ?? false,
    });
    await this.saveOr(() => {
      this.recs.delete(r.id);
      this.syncLive();
    });
    this.emit({ type: 'created', account: view(r) });
    return view(r);
  }

  /**
   * IPMI Set User Name on an empty id: a named, disabled ReadOnly account without a password
   * (ipmitool then sets its password, privilege and enables it). It cannot log in until it has a
   * password and is enabled; Redfish shows it with Enabled false.
   */
  async createNamed(id: number, username: string): Promise<AccountView> {
    this.checkName(username, undefined);
    if (!Number.isInteger(id) || id < FIRST_USER_ID || id > this.maxUserId) throw new AccountStoreError('not-found', `user id ${id} is outside ${FIRST_USER_ID}..${this.maxUserId}`);
    if (this.recs.has(id)) throw new AccountStoreError('exists', `user id ${id} is in use`);
    const r = this.insert({ id, username, password: '', role: 'ReadOnly', enabled: false, passwordChangeRequired: false });
    await this.saveOr(() => {
      this.recs.delete(r.id);
      this.syncLive();
    });
    this.emit({ type: 'created', account: view(r) });
    return view(r);
  }

  async update(id: number, u: UpdateAccount, opts: { origin?: string } = {}): Promise<AccountView> {
    const r = this.recs.get(id);
    if (!r) throw new AccountStoreError('not-found', `no account with id ${id}`);
    if (u.username !== undefined) this.checkName(u.username, id);
    if (u.password !== undefined) this.checkPassword(u.password);
    if (u.role !== undefined) this.checkRole(u.role);
    if (u.enabled === true && (u.password ?? r.password) === '') {
      throw new AccountStoreError('invalid-password', 'an account without a password cannot be enabled');
    }
    const losesAdmin =
      r.role === 'Administrator' && r.enabled && ((u.role !== undefined && u.role !== 'Administrator') || u.enabled === false);
    if (losesAdmin && !this.hasOtherEnabledAdmin(id)) {
      throw new AccountStoreError('last-admin', 'the last enabled Administrator cannot be disabled or demoted');
    }
    const before = view(r);
    const old: StoredAccount = { ...before, password: r.password };
    const passwordChanged = u.password !== undefined && u.password !== r.password;
    const credentialsChanged =
      passwordChanged || (u.username !== undefined && u.username !== r.username) || (u.role !== undefined && u.role !== r.role) || (u.enabled !== undefined && u.enabled !== r.enabled);
    // Also on an undo below: sessions that saw the change end rather than outlive it
    if (credentialsChanged) r.generation++;
    if (u.username !== undefined) r.username = u.username;
    if (u.password !== undefined) r.password = u.password;
    if (u.role !== undefined) r.role = u.role;
    if (u.enabled !== undefined) r.enabled = u.enabled;
    if (u.passwordChangeRequired !== undefined) r.passwordChangeRequired = u.passwordChangeRequired;
    // A password change by the user clears PasswordChangeRequired unless the same request sets it.
    else if (passwordChanged) r.passwordChangeRequired = false;
    r.live.username = r.username;
    r.live.password = r.password;
    r.live.role = r.role;
    this.syncLive();
    await this.saveOr(() => {
      Object.assign(r, old);
      if (credentialsChanged) r.generation++;
      r.live.username = old.username;
      r.live.password = old.password;
      r.live.role = old.role;
      this.syncLive();
    });
    this.emit({ type: 'updated', account: view(r), passwordChanged, before, ...(opts.origin !== undefined ? { origin: opts.origin } : {}) });
    return view(r);
  }

  async delete(id: number): Promise<AccountView> {
    const r = this.recs.get(id);
    if (!r) throw new AccountStoreError('not-found', `no account with id ${id}`);
    if (r.role === 'Administrator' && r.enabled && !this.hasOtherEnabledAdmin(id)) {
      throw new AccountStoreError('last-admin', 'the last enabled Administrator cannot be deleted');
    }
    return this.remove(id, r);
  }

  /**
   * Removes an account whose source is gone (shared mode: its VMBMC's Secret was deleted or lost
   * its keys), even the last Administrator: a system without credentials has no accounts, it is
   * not kept reachable with stale ones. Not for protocol requests (they go through delete()).
   */
  async evict(id: number): Promise<AccountView | undefined> {
    const r = this.recs.get(id);
    if (!r) return undefined;
    return this.remove(id, r);
  }

  /** Takes the account out, saves (putting it back if the save fails) and tells the listeners. */
  private async remove(id: number, r: Rec): Promise<AccountView> {
    this.recs.delete(id);
    this.syncLive();
    await this.saveOr(() => {
      this.recs.set(id, r);
      this.syncLive();
    });
    const v = view(r);
    this.emit({ type: 'deleted', account: v });
    return v;
  }

  /**
   * Makes the store hold exactly `target` when its source changed outside the protocols (shared
   * mode: the system's Secret got new credentials, went away or came back). Accounts equal to
   * their target stay untouched (their sessions go on); a changed one is updated in place, a
   * missing one removed, a new one added, each told to the listeners. Not persisted (the caller
   * writes with flush() if the source needs it); may leave no Administrator. Throws, changing
   * nothing, on a name, role or id the store would refuse, or a name given twice.
   */
  replaceAll(target: readonly StoredAccount[]): { removed: AccountView[]; changed: AccountView[] } {
    const names = new Set<string>();
    const ids = new Set<number>();
    for (const t of target) {
      if (!Number.isInteger(t.id) || t.id < FIRST_USER_ID || t.id > MAX_USER_ID) throw new AccountStoreError('not-found', `user id ${t.id} is outside ${FIRST_USER_ID}..${MAX_USER_ID}`);
      if (ids.has(t.id)) throw new AccountStoreError('exists', `user id ${t.id} is given twice`);
      if (names.has(t.username)) throw new AccountStoreError('exists', `an account named ${JSON.stringify(t.username)} is given twice`);
      ids.add(t.id);
      names.add(t.username);
      this.checkNameSyntax(t.username);
      this.checkRole(t.role);
    }
    const removed: AccountView[] = [];
    const changed: AccountView[] = [];
    const changes: AccountChange[] = [];
    for (const [id, r] of [...this.recs]) {
      if (ids.has(id)) continue;
      this.recs.delete(id);
      removed.push(view(r));
      changes.push({ type: 'deleted', account: view(r) });
    }
    for (const t of target) {
      const r = this.recs.get(t.id);
      if (!r) {
        this.insertUnchecked(t);
        changes.push({ type: 'created', account: view(this.recs.get(t.id)!) });
        continue;
      }
      const same = r.username === t.username && r.password === t.password && r.role === t.role && r.enabled === t.enabled && r.passwordChangeRequired === t.passwordChangeRequired;
      if (same) continue;
      const before = view(r);
      const passwordChanged = r.password !== t.password;
      Object.assign(r, { username: t.username, password: t.password, role: t.role, enabled: t.enabled, passwordChangeRequired: t.passwordChangeRequired });
      r.generation++;
      r.live.username = r.username;
      r.live.password = r.password;
      r.live.role = r.role;
      changed.push(before);
      changes.push({ type: 'updated', account: view(r), passwordChanged, before });
    }
    this.syncLive();
    for (const c of changes) this.emit(c);
    return { removed, changed };
  }

  /** Writes the current accounts to the persistence sink, in order with the changes' writes. */
  flush(): Promise<void> {
    return this.save();
  }

  /** The persisted form (with passwords) for a sink; never log it. */
  snapshot(): StoredAccount[] {
    return [...this.recs.values()]
      .sort((a, b) => a.id - b.id)
      .map((r) => ({ ...view(r), password: r.password }));
  }

  private emit(c: AccountChange): void {
    this.events.emit('change', c);
  }

  /** Persists; on failure undoes the in-memory change and rethrows (a failed write changes nothing). */
  private async saveOr(undo: () => void): Promise<void> {
    try {
      await this.save();
    } catch (e) {
      undo();
      throw e;
    }
  }

  private async save(): Promise<void> {
    if (!this.persist) return;
    const snap = this.snapshot();
    const p = this.persisting.then(() => this.persist!(snap));
    this.persisting = p.catch(() => undefined);
    await p;
  }

  private insert(s: StoredAccount): Rec {
    this.checkName(s.username, undefined);
    this.checkRole(s.role);
    if (this.recs.has(s.id)) throw new AccountStoreError('exists', `user id ${s.id} is in use`);
    return this.insertUnchecked(s);
  }

  private insertUnchecked(s: StoredAccount): Rec {
    // every field named, in one order: a spread copy (`{ ...s, live, generation }`) gave the records
    // of different stores different hidden classes once its clone site had seen several shapes, so a
    // shared agent's 1,000 stores made every property read of a record (findName, view) a
    // megamorphic inline-cache miss (docs/scale.md "Shared mode CPU per request")
    const r: Rec = {
      id: s.id,
      username: s.username,
      password: s.password,
      role: s.role,
      enabled: s.enabled,
      passwordChangeRequired: s.passwordChangeRequired,
      live: { username: s.username, password: s.password, role: s.role },
      generation: nextGeneration++,
    };
    this.recs.set(s.id, r);
    this.syncLive();
    return r;
  }

  /** Rebuilds users[] in place: enabled accounts in id order. */
  private syncLive(): void {
    const next = [...this.recs.values()].filter((r) => r.enabled).sort((a, b) => a.id - b.id).map((r) => r.live);
    this.users.splice(0, this.users.length, ...next);
    let pending = 0;
    for (const r of this.recs.values()) if (r.passwordChangeRequired) pending++;
    this.changeRequired = pending;
  }

  private freeId(): number {
    const max = this.maxUserId;
    for (let id = FIRST_USER_ID; id <= max; id++) if (!this.recs.has(id)) return id;
    throw new AccountStoreError('full', `all user ids ${FIRST_USER_ID}..${max} are in use`);
  }

  private findName(username: string): Rec | undefined {
    for (const r of this.recs.values()) if (r.username === username) return r;
    return undefined;
  }

  private checkName(name: unknown, selfId: number | undefined): void {
    this.checkNameSyntax(name);
    const other = this.findName(name);
    if (other && other.id !== selfId) throw new AccountStoreError('exists', `an account named ${JSON.stringify(name)} exists`);
  }

  private checkNameSyntax(name: unknown): asserts name is string {
    if (typeof name !== 'string' || name.length === 0) throw new AccountStoreError('invalid-name', 'the user name must be a non-empty string');
    if (Buffer.byteLength(name, 'utf8') > IPMI_USERNAME_MAX) {
      throw new AccountStoreError('invalid-name', `the user name must be at most ${IPMI_USERNAME_MAX} bytes (IPMI Set User Name)`);
    }
    // eslint-disable-next-line no-control-regex
    if (/[\u0000-\u001f\u007f:]/.test(name)) throw new AccountStoreError('invalid-name', 'the user name must not contain control characters or ":"');
  }

  private checkRole(role: unknown): void {
    if (!ROLES.includes(role as Role)) throw new AccountStoreError('invalid-role', `the role must be one of ${ROLES.join(', ')}`);
  }

  private hasOtherEnabledAdmin(id: number): boolean {
    for (const r of this.recs.values()) if (r.id !== id && r.enabled && r.role === 'Administrator') return true;
    return false;
  }
}

/**
 * Generations start from a process-wide counter, so an id deleted and created again never gets a
 * stamp a session of the old account still holds.
 */
let nextGeneration = 1;

function view(r: StoredAccount): AccountView {
  return { id: r.id, username: r.username, role: r.role, enabled: r.enabled, passwordChangeRequired: r.passwordChangeRequired };
}
