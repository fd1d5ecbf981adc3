/**
 * IPMI user commands (IPMI v2.0 §22.26-22.30) on the machine's account store
 * (src/accounts/store.ts), the same accounts Redfish's AccountService serves: Set/Get User Access,
 * Set/Get User Name, Set User Password (disable, enable, set and test, 16- and 20-byte forms).
 *
 * Ids are the store's stable ids (2..maxUserId; id 1 is the null user, which has no account).
 * Privilege limits map to roles: USER(2) ↔ ReadOnly, OPERATOR(3) ↔ Operator, ADMINISTRATOR(4) ↔
 * Administrator; NO ACCESS (0x0F) disables the account. CALLBACK and OEM have no role (CCh).
 * The last enabled Administrator cannot be disabled, demoted or unnamed (D5h, like Redfish's 400).
 */
import { AccountStoreError, FIRST_USER_ID, IPMI15_PASSWORD_MAX, IPMI20_PASSWORD_MAX, roleForPrivilege, type AccountStore, type AccountView } from '../../accounts/store.js';
import { CC, NetFn, Privilege, privilegeForRole, type CommandContext, type CommandSpec, type IpmiResponse } from '../types.js';
import { resolveChannel } from './app.js';
import { badLength, fail, ok, spec } from './util.js';

/** Set User Password test failures (§22.30): wrong password, and wrong size for the stored one. */
const CC_PASSWORD_MISMATCH = 0x80;
const CC_PASSWORD_WRONG_SIZE = 0x81;
const NO_ACCESS = 0x0f;

function store(ctx: CommandContext): AccountStore | undefined {
  return ctx.accounts;
}

/** The accounts as views; a bare context without a store (command-table tests) reads `users` in order from id 2. */
function viewsOf(ctx: CommandContext): AccountView[] {
  return store(ctx)?.list() ?? ctx.users.map((u, i) => ({ id: i + FIRST_USER_ID, username: u.username, role: u.role, enabled: true, passwordChangeRequired: false }));
}

function maxIds(ctx: CommandContext): number {
  return store(ctx)?.maxUserId ?? Math.min(63, ctx.users.length + FIRST_USER_ID - 1);
}

/** A store refusal as a completion code. */
function storeFailure(e: unknown, ctx: CommandContext): IpmiResponse {
  if (e instanceof AccountStoreError) {
    ctx.logger.info({ code: e.code }, `IPMI user command refused: ${e.message}`);
    return fail(e.code === 'last-admin' ? CC.NOT_SUPPORTED_IN_PRESENT_STATE : CC.INVALID_DATA_FIELD);
  }
  ctx.logger.warn({ err: (e as Error).message }, 'IPMI user command: the account store could not save');
  return fail(CC.UNSPECIFIED);
}

/** A NUL-padded fixed field as a string (trailing NULs stripped). */
function padded(b: Buffer): string {
  let end = b.length;
  while (end > 0 && b[end - 1] === 0) end--;
  return b.subarray(0, end).toString('utf8');
}

async function setUserAccess(ctx: CommandContext): Promise<IpmiResponse> {
  const d = ctx.req.data;
  const bad = badLength(d, 3, 4);
  if (bad) return bad;
  const uid = d[1]! & 0x3f;
  const priv = d[2]! & 0x0f;
  const accounts = store(ctx);
  if (resolveChannel(ctx, d[0]!) === undefined || uid < FIRST_USER_ID || uid > maxIds(ctx)) return fail(CC.INVALID_DATA_FIELD);
  const acct = accounts?.get(uid);
  if (!accounts || !acct) return fail(CC.INVALID_DATA_FIELD);
  try {
    if (priv === NO_ACCESS) {
      if (acct.enabled) await accounts.update(uid, { enabled: false });
      return ok();
    }
    const role = roleForPrivilege(priv);
    if (!role) return fail(CC.INVALID_DATA_FIELD);
    if (role !== acct.role) await accounts.update(uid, { role });
    return ok();
  } catch (e) {
    return storeFailure(e, ctx);
  }
}

function getUserAccess(ctx: CommandContext): IpmiResponse {
  const d = ctx.req.data;
  const bad = badLength(d, 2);
  if (bad) return bad;
  const uid = d[1]! & 0x3f;
  const max = maxIds(ctx);
  if (resolveChannel(ctx, d[0]!) === undefined || uid === 0 || uid > max) return fail(CC.INVALID_DATA_FIELD);
  const views = viewsOf(ctx);
  const acct = views.find((a) => a.id === uid);
  const enabledCount = views.filter((a) => a.enabled).length;
  // Byte 2: [7:6] 01 enabled, 10 disabled; [5:0] enabled ids. Byte 3: ids with fixed names (the
  // null user, id 1). Byte 4: [5] link auth, [4] IPMI messaging, [3:0] privilege limit (0x0F none).
  const status = acct?.enabled ? 0x40 : 0x80;
  const access = acct?.enabled ? 0x20 | 0x10 | privilegeForRole(acct.role) : NO_ACCESS;
  return ok([max, status | enabledCount, 1, access]);
}

async function setUserName(ctx: CommandContext): Promise<IpmiResponse> {
  const d = ctx.req.data;
  const bad = badLength(d, 17);
  if (bad) return bad;
  const uid = d[0]! & 0x3f;
  const accounts = store(ctx);
  if (!accounts || uid < FIRST_USER_ID || uid > maxIds(ctx)) return fail(CC.INVALID_DATA_FIELD);
  const name = padded(d.subarray(1, 17));
  try {
    const acct = accounts.get(uid);
    // An all-NUL name clears the id (the account goes), unless it is the last Administrator.
    if (name === '') {
      if (acct) await accounts.delete(uid);
      return ok();
    }
    if (!acct) await accounts.createNamed(uid, name);
    else if (acct.username !== name) await accounts.update(uid, { username: name }, { origin: sessionOrigin(ctx) });
    return ok();
  } catch (e) {
    return storeFailure(e, ctx);
  }
}

/**
 * The change's origin as the session layer recognises it: a session that renames its own account
 * or sets its own password goes on (its keys are already agreed), every other session of that
 * account ends (src/ipmi/session/engine.ts endStaleSessions).
 */
export function sessionOrigin(ctx: CommandContext): string {
  return `ipmi-session:${ctx.session.id}`;
}

function getUserName(ctx: CommandContext): IpmiResponse {
  const d = ctx.req.data;
  const bad = badLength(d, 1);
  if (bad) return bad;
  const uid = d[0]! & 0x3f;
  if (uid === 0 || uid > maxIds(ctx)) return fail(CC.INVALID_DATA_FIELD);
  const name = Buffer.alloc(16);
  const acct = viewsOf(ctx).find((a) => a.id === uid);
  if (acct) Buffer.from(acct.username, 'utf8').copy(name, 0, 0, 16);
  return ok(name);
}

async function setUserPassword(ctx: CommandContext): Promise<IpmiResponse> {
  const d = ctx.req.data;
  if (d.length < 2) return fail(CC.REQUEST_DATA_LENGTH_INVALID);
  const uid = d[0]! & 0x3f;
  const wide = (d[0]! & 0x80) !== 0;
  const op = d[1]! & 0x03;
  const size = wide ? IPMI20_PASSWORD_MAX : IPMI15_PASSWORD_MAX;
  // set/test carry exactly 16 or 20 bytes as bit 7 says; disable/enable need none (ipmitool sends
  // a padded password field anyway, which the spec says is ignored for them)
  if (op <= 1 ? d.length !== 2 && d.length !== 2 + size : d.length !== 2 + size) return fail(CC.REQUEST_DATA_LENGTH_INVALID);
  const accounts = store(ctx);
  if (!accounts || uid < FIRST_USER_ID || uid > maxIds(ctx)) return fail(CC.INVALID_DATA_FIELD);
  const acct = accounts.get(uid);
  if (!acct) return fail(CC.INVALID_DATA_FIELD);
  try {
    if (op === 0 || op === 1) {
      const enabled = op === 1;
      if (acct.enabled !== enabled) await accounts.update(uid, { enabled });
      return ok();
    }
    const password = padded(d.subarray(2));
    if (op === 3) {
      // A stored password longer than 16 bytes cannot be tested with the 16-byte form.
      if (!accounts.testPassword(uid, password)) {
        return fail(!wide && accounts.storedPasswordLength(uid) > IPMI15_PASSWORD_MAX ? CC_PASSWORD_WRONG_SIZE : CC_PASSWORD_MISMATCH);
      }
      return ok();
    }
    accounts.checkPassword(password, size);
    await accounts.update(uid, { password }, { origin: sessionOrigin(ctx) });
    ctx.logger.info({ userId: uid }, 'IPMI password changed');
    return ok();
  } catch (e) {
    return storeFailure(e, ctx);
  }
}

export function userCommands(): CommandSpec[] {
  return [
    spec(NetFn.APP, 0x43, 'Set User Access', Privilege.Administrator, setUserAccess),
    spec(NetFn.APP, 0x44, 'Get User Access', Privilege.Operator, getUserAccess),
    spec(NetFn.APP, 0x45, 'Set User Name', Privilege.Administrator, setUserName),
    spec(NetFn.APP, 0x46, 'Get User Name', Privilege.Operator, getUserName),
    spec(NetFn.APP, 0x47, 'Set User Password', Privilege.Administrator, setUserPassword),
  ];
}
