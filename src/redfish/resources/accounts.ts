/**
 * AccountService: the configured users (read-only here), the three standard roles, and the login
 * lockout knobs (AccountLockoutThreshold/Duration/CounterResetAfter), which Administrators
 * (ConfigureUsers) may PATCH; the lockout is shared with IPMI (src/accounts/lockout.ts).
 */
import { odataTypes } from '../../../generated/redfish/routes.js';
import { LOCKOUT_LIMITS, lockoutPolicyProblems, type LockoutPolicy } from '../../accounts/lockout.js';
import type { Role, UserAccount } from '../../accounts/types.js';
import { ROLES, ROLE_PRIVILEGES, hasPrivilege } from '../core/auth.js';
import { RedfishError, insufficientPrivilege, notFound } from '../core/errors.js';
import { checkIfMatch, collection, sendResource } from '../core/odata.js';
import { validatePatch } from '../core/patch.js';
import type { OperationHandlers, RedfishContext } from '../core/types.js';

export const ACCOUNT_SERVICE = '/redfish/v1/AccountService';
export const ACCOUNTS = `${ACCOUNT_SERVICE}/Accounts`;
export const ROLES_PATH = `${ACCOUNT_SERVICE}/Roles`;

/** Account Ids are 1-based positions in the configured user list (names may hold any character). */
const accountId = (ctx: RedfishContext, u: UserAccount): string => String(ctx.state.deps.users.indexOf(u) + 1);

/** Users the caller may see: all with ConfigureUsers or ConfigureManager, otherwise only themselves. */
function visibleUsers(ctx: RedfishContext): UserAccount[] {
  const me = ctx.state.user;
  if (!me) return [];
  const all = hasPrivilege(me.role, 'ConfigureUsers') || hasPrivilege(me.role, 'ConfigureManager');
  return ctx.state.deps.users.filter((u) => all || u.username === me.username);
}

function accountBody(ctx: RedfishContext, u: UserAccount): Record<string, unknown> {
  const id = accountId(ctx, u);
  return {
    '@odata.id': `${ACCOUNTS}/${id}`,
    '@odata.type': odataTypes.ManagerAccount,
    Id: id,
    Name: 'User Account',
    Description: `BMC user ${u.username}`,
    UserName: u.username,
    Password: null,
    RoleId: u.role,
    Enabled: true,
    Locked: false,
    AccountTypes: ['Redfish', 'IPMI'],
    Links: { Role: { '@odata.id': `${ROLES_PATH}/${u.role}` } },
  };
}

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
  return {
    '@odata.id': ACCOUNT_SERVICE,
    '@odata.type': odataTypes.AccountService,
    Id: 'AccountService',
    Name: 'Account Service',
    Description: 'BMC user accounts (configured at agent start; read-only over Redfish)',
    ServiceEnabled: true,
    Status: { State: 'Enabled', Health: 'OK' },
    LocalAccountAuth: 'Enabled',
    // One lockout for Redfish and IPMI, per account and source address (docs/security.md).
    AccountLockoutThreshold: p.threshold,
    AccountLockoutDuration: p.durationSeconds,
    AccountLockoutCounterResetAfter: p.counterResetAfterSeconds,
    Accounts: { '@odata.id': ACCOUNTS },
    Roles: { '@odata.id': ROLES_PATH },
  };
}

const LOCKOUT_WRITABLE = {
  AccountLockoutThreshold: { integer: LOCKOUT_LIMITS.threshold },
  AccountLockoutDuration: { integer: LOCKOUT_LIMITS.durationSeconds },
  AccountLockoutCounterResetAfter: { integer: LOCKOUT_LIMITS.counterResetAfterSeconds },
} as const;

export const handlers: OperationHandlers = {
  getAccountService: async (ctx) => {
    sendResource(ctx, accountServiceBody(ctx), { etag: true });
  },

  patchAccountService: async (ctx) => {
    checkIfMatch(ctx, accountServiceBody(ctx));
    const body = validatePatch((ctx.request as { body?: unknown }).body, {
      writable: LOCKOUT_WRITABLE,
      readOnly: ['Id', 'Name', 'Description', 'ServiceEnabled', 'Status', 'LocalAccountAuth', 'Accounts', 'Roles'],
    });
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
    ctx.state.logger.info({ user: ctx.state.user?.username, lockout: next }, 'account lockout policy changed');
    sendResource(ctx, accountServiceBody(ctx), { etag: true });
  },

  listAccounts: async (ctx) => {
    const members = visibleUsers(ctx).map((u) => `${ACCOUNTS}/${accountId(ctx, u)}`);
    sendResource(ctx, collection(ctx, ACCOUNTS, 'ManagerAccountCollection', 'Accounts Collection', members));
  },

  getAccount: async (ctx) => {
    const id = ctx.params.ManagerAccountId ?? '';
    const users = ctx.state.deps.users;
    const u = /^[1-9]\d*$/.test(id) ? users[Number(id) - 1] : undefined;
    if (!u) throw notFound('ManagerAccount', id);
    if (ctx.state.selfOnly && u.username !== ctx.state.user?.username) throw insufficientPrivilege();
    sendResource(ctx, accountBody(ctx, u), { etag: true });
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
