/** SessionService and its Sessions: login (POST), own-session reads, logout (DELETE). */
import { odataTypes } from '../../../generated/redfish/routes.js';
import { sessionClosed, sessionOpened } from '../../events/emit.js';
import { clientAddress, hasPrivilege, login, unauthorized } from '../core/auth.js';
import { RedfishError, fullMessageId, insufficientPrivilege, notFound, renderMessage } from '../core/errors.js';
import { checkIfMatch, collection, sendResource } from '../core/odata.js';
import { validatePatch, withWriteableProperties, type WritableTree } from '../core/patch.js';
import { SESSION_TIMEOUT_LIMITS } from '../core/sessions.js';
import type { OperationHandlers, RedfishContext, RedfishSession } from '../core/types.js';

export const SESSION_SERVICE = '/redfish/v1/SessionService';
export const SESSIONS = `${SESSION_SERVICE}/Sessions`;

/** What a SessionService PATCH may change (and its `@Redfish.WriteableProperties`). */
const SESSION_SERVICE_WRITABLE: WritableTree = {
  SessionTimeout: { integer: SESSION_TIMEOUT_LIMITS },
};

function sessionServiceBody(ctx: RedfishContext): Record<string, unknown> {
  return withWriteableProperties({
    '@odata.id': SESSION_SERVICE,
    '@odata.type': odataTypes.SessionService,
    Id: 'SessionService',
    Name: 'Session Service',
    Description: 'Redfish login sessions (X-Auth-Token)',
    ServiceEnabled: true,
    SessionTimeout: ctx.state.deps.sessions.timeoutSeconds,
    Status: { State: 'Enabled', Health: 'OK' },
    Sessions: { '@odata.id': SESSIONS },
  }, SESSION_SERVICE_WRITABLE);
}

function sessionBody(s: RedfishSession): Record<string, unknown> {
  return {
    '@odata.id': `${SESSIONS}/${s.id}`,
    '@odata.type': odataTypes.Session,
    Id: s.id,
    Name: 'User Session',
    Description: `Session of ${s.username}`,
    UserName: s.username,
    Password: null,
    SessionType: 'Redfish',
    CreatedTime: s.createdAt.toISOString().replace(/\.\d{3}Z$/, 'Z'),
    ...(s.clientAddress ? { ClientOriginIPAddress: s.clientAddress.replace(/^::ffff:/, '') } : {}),
    ...(s.context !== undefined ? { Context: s.context } : {}),
  };
}

/** Sessions the caller may see: all with ConfigureManager, otherwise only their own. */
function visible(ctx: RedfishContext, s: RedfishSession): boolean {
  const user = ctx.state.user;
  if (!user) return false;
  return hasPrivilege(user.role, 'ConfigureManager') || s.username === user.username;
}

function findSession(ctx: RedfishContext): RedfishSession {
  const id = ctx.params.SessionId ?? '';
  const s = ctx.state.deps.sessions.get(id);
  if (!s) throw notFound('Session', id);
  if (ctx.state.selfOnly && s.username !== ctx.state.user?.username) throw insufficientPrivilege();
  return s;
}

export const handlers: OperationHandlers = {
  getSessionService: async (ctx) => {
    sendResource(ctx, sessionServiceBody(ctx), { etag: true });
  },

  patchSessionService: async (ctx) => {
    checkIfMatch(ctx, sessionServiceBody(ctx));
    const body = validatePatch((ctx.request as { body?: unknown }).body, {
      writable: SESSION_SERVICE_WRITABLE,
      readOnly: ['ServiceEnabled', 'Id', 'Name', 'Description', 'Sessions', 'Status'],
    });
    if (typeof body.SessionTimeout === 'number') ctx.state.deps.sessions.timeoutSeconds = body.SessionTimeout;
    ctx.state.logger.info({ user: ctx.state.user?.username, timeout: body.SessionTimeout }, 'session timeout changed');
    sendResource(ctx, sessionServiceBody(ctx), { etag: true });
  },

  listSessions: async (ctx) => {
    const members = ctx.state.deps.sessions
      .list()
      .filter((s) => visible(ctx, s))
      .map((s) => `${SESSIONS}/${s.id}`);
    sendResource(ctx, collection(ctx, SESSIONS, 'SessionCollection', 'Session Collection', members));
  },

  createSession: async (ctx) => {
    const deps = ctx.state.deps;
    const raw = (ctx.request as { body?: unknown }).body;
    if (raw === undefined) throw new RedfishError(400, 'CreateFailedMissingReqProperties', ['UserName'], { property: '#/UserName' });
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new RedfishError(400, 'MalformedJSON');
    const body = raw as Record<string, unknown>;
    for (const key of Object.keys(body)) {
      if (!['UserName', 'Password', 'Context'].includes(key)) {
        throw new RedfishError(400, 'PropertyUnknown', [key], { property: `#/${key}` });
      }
    }
    if (body.Context !== undefined && typeof body.Context !== 'string') {
      throw new RedfishError(400, 'PropertyValueTypeError', [JSON.stringify(body.Context) ?? '', 'Context'], { property: '#/Context' });
    }
    for (const key of ['UserName', 'Password']) {
      if (body[key] === undefined) throw new RedfishError(400, 'CreateFailedMissingReqProperties', [key], { property: `#/${key}` });
      if (typeof body[key] !== 'string') {
        throw new RedfishError(400, 'PropertyValueTypeError', [JSON.stringify(body[key]) ?? '', key], { property: `#/${key}` });
      }
    }
    const address = clientAddress(ctx);
    const user = login(deps, address, body.UserName as string, body.Password as string);
    if (!user) {
      ctx.state.logger.warn({ client: address }, 'redfish login failed');
      throw unauthorized('AccessUnauthorized'); // same answer whichever field was wrong
    }
    const { session, token } = deps.sessions.create(user, address, body.Context as string | undefined);
    ctx.state.logger.info({ user: user.username, session: session.id }, 'redfish session created');
    sessionOpened(deps.machine, 'redfish', session.id, user.username, address);
    ctx.set('X-Auth-Token', token);
    ctx.set('Location', `${SESSIONS}/${session.id}`);
    const acct = deps.accounts.byName(user.username);
    // DSP0266: a session is granted, with the PasswordChangeRequired message naming the account to PATCH
    const body201 = acct?.passwordChangeRequired
      ? { ...sessionBody(session), '@Message.ExtendedInfo': [renderMessage({ messageId: fullMessageId('PasswordChangeRequired'), args: [`/redfish/v1/AccountService/Accounts/${acct.id}`] })] }
      : sessionBody(session);
    sendResource(ctx, body201, { status: 201 });
  },

  getSession: async (ctx) => {
    sendResource(ctx, sessionBody(findSession(ctx)));
  },

  deleteSession: async (ctx) => {
    const s = findSession(ctx);
    ctx.state.deps.sessions.delete(s.id);
    // an SSE stream of this session ends with it (resources/events.ts)
    sessionClosed(ctx.state.deps.machine, 'redfish', s.id, s.username);
    ctx.state.logger.info({ user: ctx.state.user?.username, session: s.id }, 'redfish session deleted');
    ctx.status = 204;
  },
};
