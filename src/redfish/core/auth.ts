/**
 * Authentication (X-Auth-Token session or HTTP Basic) and privilege checks. Role → privileges are
 * the Redfish standard roles; what each operation needs comes from the DMTF Privilege Registry via
 * the generated route table.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { AccountStore } from '../../accounts/store.js';
import type { Role, UserAccount } from '../../accounts/types.js';
import { secretEquals } from '../../common/secrets.js';
import { loginFailed } from '../../events/emit.js';
import type { Privilege, RouteDef } from '../../../generated/redfish/routes.js';
import { RedfishError } from './errors.js';
import type { RedfishContext, RedfishDeps } from './types.js';

export const REALM = 'KubeVirtBMC Redfish';

/** Redfish standard roles (DSP0266 / Role schema). */
export const ROLE_PRIVILEGES: Readonly<Record<Role, readonly Privilege[]>> = {
  Administrator: ['Login', 'ConfigureManager', 'ConfigureUsers', 'ConfigureSelf', 'ConfigureComponents'],
  Operator: ['Login', 'ConfigureSelf', 'ConfigureComponents'],
  ReadOnly: ['Login', 'ConfigureSelf'],
};

export const ROLES: readonly Role[] = ['Administrator', 'Operator', 'ReadOnly'];

export function hasPrivilege(role: Role, p: Privilege): boolean {
  return p === 'NoAuth' || ROLE_PRIVILEGES[role].includes(p);
}

export function unauthorized(messageId = 'NoValidSession'): RedfishError {
  return new RedfishError(401, messageId, [], { headers: { 'WWW-Authenticate': `Basic realm="${REALM}"` } });
}

/** Constant-time credential check; also spends the time of a compare when the user is unknown. */
export function checkCredentials(users: readonly UserAccount[], username: string, password: string): UserAccount | undefined {
  let found: UserAccount | undefined;
  for (const u of users) if (secretEquals(u.username, username) && !found) found = u;
  const ok = secretEquals(found?.password ?? '\u0000no-such-user', password);
  return found && ok ? found : undefined;
}

/** Client address the lockout keys on (with the account name). */
export const clientAddress = (ctx: RedfishContext): string => ctx.request.socket.remoteAddress ?? 'unknown';

/**
 * Refuse (429, Retry-After) while this account is locked out for this source, or the source as a
 * whole is (src/accounts/lockout.ts); otherwise nothing. The password is not even checked then.
 */
export function checkLockout(deps: RedfishDeps, address: string, username: string): void {
  const lock = deps.lockout.check(address, username);
  if (lock) {
    const wait = Math.max(1, Math.ceil(lock.retryAfterMs / 1000));
    throw new RedfishError(429, 'ServiceTemporarilyUnavailable', [String(wait)], {
      headers: { 'Retry-After': String(wait) },
      detail: 'Too many failed login attempts; retry later.',
    });
  }
}

/**
 * Checks a login attempt's credentials under the lockout: refuses a locked pair first, then
 * records the failure (account known or not) or the success. Undefined = wrong credentials.
 */
export function login(deps: RedfishDeps, address: string, username: string, password: string): UserAccount | undefined {
  checkLockout(deps, address, username);
  const user = checkCredentials(deps.users, username, password);
  if (user) deps.lockout.recordSuccess(address, user.username);
  else {
    const known = deps.users.some((u) => u.username === username) ? username : undefined;
    deps.lockout.recordFailure(address, known);
    loginFailed(deps.machine, 'redfish', known, address);
  }
  return user;
}

/** Most entries a store's verified-credentials cache holds (one per account in practice). */
export const VERIFIED_MAX = 64;

interface Verified {
  /** the store's account id, its live account object and its stamp when the credentials were checked */
  id: number;
  user: UserAccount;
  stamp: number;
}

/**
 * The lookup key of a user name and password (VerifiedCredentials here, the shared agent's
 * credential index in tenancy.ts): SHA-256 of a random 64-byte key of this instance, then
 * `name NUL password` (a secret-prefix hash: the key block is hashed once, each call copies that
 * state). Never the password or an unkeyed hash of it, so a table of these keys alone cannot be
 * searched for a guessed password. It is a lookup key, not a tag anyone sees (no length-extension
 * concern): a lookup by it can only tell about the key of what the client sent. Copying the keyed
 * state costs about a third of an HMAC (8.8 k against 25 k instructions per call on node 20,
 * callgrind; docs/scale.md "Shared mode CPU per request").
 */
export class CredentialKeys {
  private readonly keyed = createHash('sha256').update(randomBytes(64));
  of(username: string, password: string): string {
    return this.keyed.copy().update(`${username}\u0000${password}`).digest('base64');
  }
}

/**
 * HTTP Basic sends the same name and password on every request; checking them costs a constant-time
 * compare per account (SHA-256 of both sides each). This remembers credentials already found good
 * for one account store, so the next request with them costs one keyed hash and a map lookup:
 * - the key is CredentialKeys' keyed SHA-256 of the name and password under a random key of this
 *   cache, never the password or anything it can be recovered from; a lookup by that digest can
 *   only tell about the digest of what the client sent (as session tokens in sessions.ts), so no
 *   compare of secrets happens here;
 * - only credentials checkCredentials accepted are stored: a wrong password is never remembered;
 * - an entry counts only while its account still has the stamp it had when checked
 *   (AccountStore.sessionStamp: it changes with the name, password, role or Enabled, and is gone
 *   when the account is deleted or disabled) and is still in the list served; every change the
 *   store emits (Redfish, IPMI, a reload) also empties the cache;
 * - at most VERIFIED_MAX entries, the oldest dropped first.
 * Lockout is unchanged: the caller checks it before and records the success after, as for a miss.
 */
export class VerifiedCredentials {
  private readonly keys = new CredentialKeys();
  private readonly entries = new Map<string, Verified>();

  constructor(
    private readonly accounts: AccountStore,
    private readonly max = VERIFIED_MAX,
  ) {
    accounts.onChange(() => this.entries.clear());
  }

  get size(): number {
    return this.entries.size;
  }

  private digest(username: string, password: string): string {
    return this.keys.of(username, password);
  }

  /** The account these credentials were found good for, while nothing about it changed. */
  lookup(users: readonly UserAccount[], username: string, password: string): UserAccount | undefined {
    if (this.entries.size === 0) return undefined;
    const d = this.digest(username, password);
    const e = this.entries.get(d);
    if (!e) return undefined;
    if (this.accounts.sessionStamp(e.id) !== e.stamp || this.accounts.liveAccount(e.id) !== e.user || !users.includes(e.user)) {
      this.entries.delete(d);
      return undefined;
    }
    return e.user;
  }

  /** Remember credentials checkCredentials just accepted for `user`. */
  remember(user: UserAccount, username: string, password: string): void {
    const id = this.accounts.idOf(user);
    const stamp = id === undefined ? undefined : this.accounts.sessionStamp(id);
    if (id === undefined || stamp === undefined) return;
    const d = this.digest(username, password);
    this.entries.delete(d);
    if (this.entries.size >= this.max) this.entries.delete(this.entries.keys().next().value as string);
    this.entries.set(d, { id, user, stamp });
  }
}

const verifiedByStore = new WeakMap<AccountStore, VerifiedCredentials>();

/** The verified-credentials cache the Redfish service keeps for this store, once it has one (tests). */
export function verifiedCredentialsOf(accounts: AccountStore): VerifiedCredentials | undefined {
  return verifiedByStore.get(accounts);
}

/** The verified-credentials cache of the deps' account store, when `users` is that store's list. */
function verifiedOf(deps: RedfishDeps): VerifiedCredentials | undefined {
  const { accounts } = deps;
  if (!accounts || deps.users !== accounts.users) return undefined;
  let v = verifiedByStore.get(accounts);
  if (!v) {
    v = new VerifiedCredentials(accounts);
    verifiedByStore.set(accounts, v);
  }
  return v;
}

/**
 * HTTP Basic credentials under the lockout, as login() checks them, through the store's
 * verified-credentials cache: a hit skips only the compare (the lockout check and the success
 * record happen as for a miss).
 */
function basicLogin(deps: RedfishDeps, address: string, username: string, password: string): UserAccount | undefined {
  const verified = verifiedOf(deps);
  if (!verified) return login(deps, address, username, password);
  checkLockout(deps, address, username);
  const hit = verified.lookup(deps.users, username, password);
  if (hit) {
    deps.lockout.recordSuccess(address, hit.username);
    return hit;
  }
  const user = login(deps, address, username, password);
  if (user) verified.remember(user, username, password);
  return user;
}

/** Establish ctx.state.user from X-Auth-Token or Basic credentials, or throw 401. */
export function authenticate(ctx: RedfishContext): void {
  const deps = ctx.state.deps;
  const token = ctx.get('X-Auth-Token');
  if (token) {
    const session = deps.sessions.authenticate(token);
    const user = session ? deps.users.find((u) => u.username === session.username) : undefined;
    if (!session || !user) throw unauthorized('NoValidSession');
    ctx.state.user = user;
    return;
  }
  const header = ctx.get('Authorization');
  const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (!m) throw unauthorized('NoValidSession');
  const decoded = Buffer.from(m[1] as string, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) throw unauthorized('AccessUnauthorized');
  const user = basicLogin(deps, clientAddress(ctx), decoded.slice(0, colon), decoded.slice(colon + 1));
  if (!user) throw unauthorized('AccessUnauthorized');
  ctx.state.user = user;
}

/**
 * The GET fast path's authentication (src/redfish/fast-get.ts): the user when the request's
 * credentials are a live session's token or Basic credentials the verified-credentials cache
 * already holds and the pair is not locked out, recording the success exactly as authenticate()
 * does; undefined otherwise, with nothing recorded, so the koa path authenticates it from scratch
 * (401, 429, the compare and the lockout bookkeeping of a miss all happen there, once).
 */
export function authenticateKnown(
  deps: RedfishDeps,
  token: string | undefined,
  authorization: string | undefined,
  address: string,
): UserAccount | undefined {
  if (token) {
    const session = deps.sessions.authenticate(token);
    return session ? deps.users.find((u) => u.username === session.username) : undefined;
  }
  if (!authorization) return undefined;
  const verified = verifiedOf(deps);
  if (!verified) return undefined;
  const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(authorization);
  if (!m) return undefined;
  const decoded = Buffer.from(m[1] as string, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  const username = decoded.slice(0, colon);
  if (deps.lockout.check(address, username)) return undefined;
  const hit = verified.lookup(deps.users, username, decoded.slice(colon + 1));
  if (hit) deps.lockout.recordSuccess(address, hit.username);
  return hit;
}

/** Operations a user whose PasswordChangeRequired is set may still use (own account, own sessions). */
const PASSWORD_CHANGE_ALLOWED = new Set(['getAccount', 'patchAccount', 'getSession', 'deleteSession', 'getServiceRoot']);

/**
 * PasswordChangeRequired (DSP0266 "Password change required"): until the user changes their
 * password, the service allows session login, GET of their own account and PATCH of its Password;
 * everything else answers 403 with the Base PasswordChangeRequired message naming the account URI.
 */
export function passwordChangeGate(ctx: RedfishContext, route: RouteDef): void {
  const user = ctx.state.user;
  if (!user) return;
  const acct = ctx.state.deps.accounts.passwordChangePending(user.username);
  if (!acct) return;
  const uri = `/redfish/v1/AccountService/Accounts/${acct.id}`;
  const own = ctx.params?.ManagerAccountId === String(acct.id);
  const body = (ctx.request as { body?: unknown }).body;
  const onlyPassword =
    typeof body === 'object' && body !== null && Object.keys(body).every((k) => k === 'Password' || k.startsWith('@'));
  const allowed =
    PASSWORD_CHANGE_ALLOWED.has(route.operationId) &&
    (route.operationId === 'getAccount' ? own : route.operationId === 'patchAccount' ? own && onlyPassword : true);
  if (!allowed) throw new RedfishError(403, 'PasswordChangeRequired', [uri]);
}

/**
 * Check the route's privileges (any one inner list fully held). When only a ConfigureSelf
 * alternative is satisfied, mark the request selfOnly for the handler to enforce ownership.
 */
export function authorize(ctx: RedfishContext, route: RouteDef): void {
  const user = ctx.state.user;
  if (!user) throw unauthorized();
  let selfOnly = false;
  for (const alt of route.privileges) {
    if (!alt.every((p) => hasPrivilege(user.role, p))) continue;
    if (alt.includes('ConfigureSelf')) {
      selfOnly = true;
      continue;
    }
    ctx.state.selfOnly = false;
    return;
  }
  if (selfOnly) {
    ctx.state.selfOnly = true;
    return;
  }
  throw new RedfishError(403, 'InsufficientPrivilege');
}
