/** AccountService: the configured users (read-only here) and the three standard roles. */
import { odataTypes } from '../../../generated/redfish/routes.js';
import type { Role, UserAccount } from '../../agent/types.js';
import { ROLES, ROLE_PRIVILEGES, hasPrivilege } from '../core/auth.js';
import { insufficientPrivilege, notFound } from '../core/errors.js';
import { collection, sendResource } from '../core/odata.js';
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

export const handlers: OperationHandlers = {
  getAccountService: async (ctx) => {
    sendResource(
      ctx,
      {
        '@odata.id': ACCOUNT_SERVICE,
        '@odata.type': odataTypes.AccountService,
        Id: 'AccountService',
        Name: 'Account Service',
        Description: 'BMC user accounts (configured at agent start; read-only over Redfish)',
        ServiceEnabled: true,
        Status: { State: 'Enabled', Health: 'OK' },
        LocalAccountAuth: 'Enabled',
        Accounts: { '@odata.id': ACCOUNTS },
        Roles: { '@odata.id': ROLES_PATH },
      },
      { etag: true },
    );
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
