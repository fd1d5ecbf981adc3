/**
 * AccountService: the configured users (read-only here), the three standard roles, and the login
 * lockout knobs (AccountLockoutThreshold/Duration/CounterResetAfter), which Administrators
 * (ConfigureUsers) may PATCH; the lockout is shared with IPMI (src/accounts/lockout.ts).
 */
import { odataTypes } from '../../../generated/redfish/routes.js';
import { IPMI20_PASSWORD_MAX } from '../../accounts/store.js';
import { LOCKOUT_LIMITS, lockoutPolicyProblems, type LockoutPolicy } from '../../accounts/lockout.js';
import { AccountStoreError, type AccountView } from '../../accounts/store.js';
import type { Role } from '../../accounts/types.js';
import { ROLES, ROLE_PRIVILEGES, hasPrivilege } from '../core/auth.js';
import { RedfishError, insufficientPrivilege, notFound } from '../core/errors.js';
import { checkIfMatch, collection, sendResource } from '../core/odata.js';
import { validatePatch, withWriteableProperties, type WritableTree } from '../core/patch.js';
import type { OperationHandlers, RedfishContext } from '../core/types.js';

export const ACCOUNT_SERVICE = '/redfish/v1/AccountService';
export const ACCOUNTS = `${ACCOUNT_SERVICE}/Accounts`;
export const ROLES_PATH = `${ACCOUNT_SERVICE}/Roles`;

/** Users the caller may see: all with ConfigureUsers or ConfigureManager, otherwise only themselves. */
function visibleAccounts(ctx: RedfishContext): AccountView[] {
  const me = ctx.state.user;
  if (!me) return [];
  const all = hasPrivilege(me.role, 'ConfigureUsers') || hasPrivilege(me.role, 'ConfigureManager');
  return ctx.state.deps.accounts.list().filter((a) => all || a.username === me.username);
}

/**
 * What the caller may PATCH on an account: everything in ACCOUNT_WRITABLE with ConfigureUsers,
 * only the password of their own account otherwise (ConfigureSelf, see patchAccount).
 */
function accountWritable(ctx: RedfishContext, a: AccountView): WritableTree {
  const me = ctx.state.user;
  if (me && hasPrivilege(me.role, 'ConfigureUsers')) return ACCOUNT_WRITABLE;
  return me?.username === a.username && hasPrivilege(me.role, 'ConfigureSelf') ? { Password: ACCOUNT_WRITABLE.Password } : {};
}

function accountBody(ctx: RedfishContext, a: AccountView): Record<string, unknown> {
  const id = String(a.id);
  return withWriteableProperties({
    '@odata.id': `${ACCOUNTS}/${id}`,
    '@odata.type': odataTypes.ManagerAccount,
    Id: id,
    Name: 'User Account',
    Description: `BMC user ${a.username}`,
    UserName: a.username,
    // write-only (the schema says Password is null on read)
    Password: null,
    RoleId: a.role,
    Enabled: a.enabled,
    Locked: ctx.state.deps.lockout.isLocked(a.username),
    'Locked@Redfish.AllowableValues': ['false'],
    PasswordChangeRequired: a.passwordChangeRequired,
    // one account for both protocols; IPMI user id = Id
    AccountTypes: ['Redfish', 'IPMI'],
    Links: { Role: { '@odata.id': `${ROLES_PATH}/${a.role}` } },
  }, accountWritable(ctx, a));
}

function findAccount(ctx: RedfishContext): AccountView {
  const id = ctx.params.ManagerAccountId ?? '';
  const a = /^[1-9]\d*$/.test(id) ? ctx.state.deps.accounts.get(Number(id)) : undefined;
  if (!a) throw notFound('ManagerAccount', id);
  if (ctx.state.selfOnly && a.username !== ctx.state.user?.username) throw insufficientPrivilege();
  return a;
}

/** A store refusal as a Redfish 400 naming the property. */
function storeError(e: unknown, body: Record<string, unknown>): never {
  if (!(e instanceof AccountStoreError)) throw e;
  const show = (k: string): string => (k === 'Password' ? '' : String(body[k] ?? ''));
  switch (e.code) {
    case 'invalid-name':
      throw new RedfishError(400, 'PropertyValueFormatError', [show('UserName'), 'UserName'], { property: '#/UserName', detail: e.message });
    case 'invalid-password':
      // the value is never echoed
      throw new RedfishError(400, 'PropertyValueIncorrect', ['Password', '(hidden)'], { property: '#/Password', detail: e.message });
    case 'invalid-role':
      throw new RedfishError(400, 'PropertyValueNotInList', [show('RoleId'), 'RoleId'], { property: '#/RoleId' });
    case 'exists':
      throw new RedfishError(409, 'ResourceAlreadyExists', ['ManagerAccount', 'UserName', show('UserName')], { property: '#/UserName' });
    case 'full':
      throw new RedfishError(400, 'CreateLimitReachedForResource', [], { detail: e.message });
    case 'last-admin':
      throw new RedfishError(400, 'PropertyValueIncorrect', ['RoleId', show('RoleId')], {
        detail: 'The last enabled Administrator cannot be deleted, disabled or demoted.',
      });
    case 'not-found':
      throw new RedfishError(404, 'ResourceMissingAtURI', [ACCOUNTS]);
  }
}

const ACCOUNT_WRITABLE: WritableTree & { Password: 'string' } = {
  UserName: 'string',
  Password: 'string',
  RoleId: { enum: ROLES },
  Enabled: 'boolean',
  Locked: 'boolean',
  PasswordChangeRequired: 'boolean',
};
const ACCOUNT_READONLY = ['Id', 'Name', 'Description', 'AccountTypes', 'Links', '@odata.id', '@odata.type', '@odata.etag', '@odata.context'];

function roleBody(role: Role): Record<string, unknown> {
  return {
    '@odata.id': `${ROLES_PATH}/${role}`,
    '@odata.type': odataTypes.Role,
    Id: role,
    Name: `${role} Role`,
    Description: `Redfish standard role ${role}`,
    RoleId: role,
    IsPredefined: true,
    AssignedPrivileges: [...ROLE_PRIVILEGES[role]],
    OemPrivileges: [],
  };
}

function accountServiceBody(ctx: RedfishContext): Record<string, unknown> {
  const p = ctx.state.deps.lockout.policy;
  return withWriteableProperties({
    '@odata.id': ACCOUNT_SERVICE,
    '@odata.type': odataTypes.AccountService,
    Id: 'AccountService',
    Name: 'Account Service',
    Description: 'BMC user accounts, shared by Redfish and IPMI',
    ServiceEnabled: true,
    Status: { State: 'Enabled', Health: 'OK' },
    LocalAccountAuth: 'Enabled',
    MinPasswordLength: ctx.state.deps.accounts.passwordPolicy.minLength,
    MaxPasswordLength: ctx.state.deps.accounts.passwordPolicy.maxLength,
    SupportedAccountTypes: ['Redfish', 'IPMI'],
    // One lockout for Redfish and IPMI, per account and source address (docs/security.md).
    AccountLockoutThreshold: p.threshold,
    AccountLockoutDuration: p.durationSeconds,
    AccountLockoutCounterResetAfter: p.counterResetAfterSeconds,
    Accounts: { '@odata.id': ACCOUNTS },
    Roles: { '@odata.id': ROLES_PATH },
  }, LOCKOUT_WRITABLE);
}

const LOCKOUT_WRITABLE: WritableTree = {
  AccountLockoutThreshold: { integer: LOCKOUT_LIMITS.threshold },
  AccountLockoutDuration: { integer: LOCKOUT_LIMITS.durationSeconds },
  AccountLockoutCounterResetAfter: { integer: LOCKOUT_LIMITS.counterResetAfterSeconds },
  MinPasswordLength: { integer: { min: 1, max: IPMI20_PASSWORD_MAX } },
  MaxPasswordLength: { integer: { min: 1, max: IPMI20_PASSWORD_MAX } },
} as const;

export const handlers: OperationHandlers = {
  getAccountService: async (ctx) => {
    sendResource(ctx, accountServiceBody(ctx), { etag: true });
  },

  patchAccountService: async (ctx) => {
    checkIfMatch(ctx, accountServiceBody(ctx));
    const body = validatePatch((ctx.request as { body?: unknown }).body, {
      writable: LOCKOUT_WRITABLE,
      readOnly: ['Id', 'Name', 'Description', 'ServiceEnabled', 'Status', 'LocalAccountAuth', 'Accounts', 'Roles', 'SupportedAccountTypes'],
    });
    const accounts = ctx.state.deps.accounts;
    const pol = accounts.passwordPolicy;
    const minLength = (body.MinPasswordLength as number | undefined) ?? pol.minLength;
    const maxLength = (body.MaxPasswordLength as number | undefined) ?? pol.maxLength;
    if (minLength > maxLength) {
      const written = body.MinPasswordLength !== undefined ? 'MinPasswordLength' : 'MaxPasswordLength';
      throw new RedfishError(400, 'PropertyValueConflict', [written, written === 'MinPasswordLength' ? 'MaxPasswordLength' : 'MinPasswordLength'], { property: `#/${written}` });
    }
    const lockout = ctx.state.deps.lockout;
    const cur = lockout.policy;
    const next: LockoutPolicy = {
      threshold: (body.AccountLockoutThreshold as number | undefined) ?? cur.threshold,
      durationSeconds: (body.AccountLockoutDuration as number | undefined) ?? cur.durationSeconds,
      counterResetAfterSeconds: (body.AccountLockoutCounterResetAfter as number | undefined) ?? cur.counterResetAfterSeconds,
    };
    if (lockoutPolicyProblems(next).length > 0) {
      // Only the cross-field rule is left after validatePatch: CounterResetAfter ≤ Duration.
      const written = body.AccountLockoutCounterResetAfter !== undefined ? 'AccountLockoutCounterResetAfter' : 'AccountLockoutDuration';
      const other = written === 'AccountLockoutDuration' ? 'AccountLockoutCounterResetAfter' : 'AccountLockoutDuration';
      throw new RedfishError(400, 'PropertyValueConflict', [written, other], { property: `#/${written}` });
    }
    lockout.setPolicy(next);
    accounts.setPasswordPolicy({ minLength, maxLength });
    ctx.state.logger.info({ user: ctx.state.user?.username, lockout: next }, 'account lockout policy changed');
    sendResource(ctx, accountServiceBody(ctx), { etag: true });
  },

  listAccounts: async (ctx) => {
    const members = visibleAccounts(ctx).map((a) => `${ACCOUNTS}/${a.id}`);
    sendResource(ctx, collection(ctx, ACCOUNTS, 'ManagerAccountCollection', 'Accounts Collection', members), { etag: true });
  },

  createAccount: async (ctx) => {
    const raw = (ctx.request as { body?: unknown }).body;
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new RedfishError(400, 'MalformedJSON');
    const body = validatePatch(raw, { writable: ACCOUNT_WRITABLE, readOnly: ACCOUNT_READONLY });
    for (const k of ['UserName', 'Password', 'RoleId']) {
      if (body[k] === undefined) throw new RedfishError(400, 'CreateFailedMissingReqProperties', [k], { property: `#/${k}` });
    }
    if (body.Locked === true) throw new RedfishError(400, 'PropertyValueIncorrect', ['Locked', 'true'], { property: '#/Locked' });
    let created: AccountView;
    try {
      created = await ctx.state.deps.accounts.create({
        username: body.UserName as string,
        password: body.Password as string,
        role: body.RoleId as Role,
        ...(body.Enabled !== undefined ? { enabled: body.Enabled as boolean } : {}),
        ...(body.PasswordChangeRequired !== undefined ? { passwordChangeRequired: body.PasswordChangeRequired as boolean } : {}),
      });
    } catch (e) {
      storeError(e, body);
    }
    ctx.state.logger.info({ user: ctx.state.user?.username, account: created.username, id: created.id }, 'account created');
    ctx.set('Location', `${ACCOUNTS}/${created.id}`);
    sendResource(ctx, accountBody(ctx, created), { etag: true, status: 201 });
  },

  getAccount: async (ctx) => {
    sendResource(ctx, accountBody(ctx, findAccount(ctx)), { etag: true });
  },

  patchAccount: async (ctx) => {
    const a = findAccount(ctx);
    checkIfMatch(ctx, accountBody(ctx, a));
    const body = validatePatch((ctx.request as { body?: unknown }).body, { writable: ACCOUNT_WRITABLE, readOnly: ACCOUNT_READONLY });
    // ConfigureSelf (the Privilege Registry's Password override): only the caller's own password
    if (ctx.state.selfOnly) {
      const other = Object.keys(body).find((k) => k !== 'Password' && !k.startsWith('@'));
      if (other) throw new RedfishError(403, 'InsufficientPrivilege', [], { property: `#/${other}` });
    }
    if (body.Locked === true) throw new RedfishError(400, 'PropertyValueIncorrect', ['Locked', 'true'], { property: '#/Locked' });
    let updated: AccountView;
    try {
      updated = await ctx.state.deps.accounts.update(a.id, {
        ...(body.UserName !== undefined ? { username: body.UserName as string } : {}),
        ...(body.Password !== undefined ? { password: body.Password as string } : {}),
        ...(body.RoleId !== undefined ? { role: body.RoleId as Role } : {}),
        ...(body.Enabled !== undefined ? { enabled: body.Enabled as boolean } : {}),
        ...(body.PasswordChangeRequired !== undefined ? { passwordChangeRequired: body.PasswordChangeRequired as boolean } : {}),
      });
    } catch (e) {
      storeError(e, body);
    }
    if (body.Locked === false) ctx.state.deps.lockout.unlock(updated.username);
    const changed = Object.keys(body).filter((k) => !k.startsWith('@'));
    ctx.state.logger.info({ user: ctx.state.user?.username, account: updated.username, id: updated.id, changed }, 'account changed');
    sendResource(ctx, accountBody(ctx, updated), { etag: true });
  },

  deleteAccount: async (ctx) => {
    const a = findAccount(ctx);
    try {
      await ctx.state.deps.accounts.delete(a.id);
    } catch (e) {
      storeError(e, {});
    }
    ctx.state.logger.info({ user: ctx.state.user?.username, account: a.username, id: a.id }, 'account deleted');
    ctx.status = 204;
  },

  listRoles: async (ctx) => {
    sendResource(ctx, collection(ctx, ROLES_PATH, 'RoleCollection', 'Roles Collection', ROLES.map((r) => `${ROLES_PATH}/${r}`)));
  },

  getRole: async (ctx) => {
    const role = ROLES.find((r) => r === ctx.params.RoleId);
    if (!role) throw notFound('Role', ctx.params.RoleId ?? '');
    sendResource(ctx, roleBody(role));
  },
};
