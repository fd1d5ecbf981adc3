/**
 * Manager LogServices: one LogService, EventLog (LogService.v1_9_0), whose Entries are the agent's
 * events (src/events/hub.ts) as LogEntry resources: the same history the IPMI SEL shows. ClearLog
 * empties it for both. Bounded: the newest MaxNumberOfRecords events are kept
 * (OverWritePolicy WrapsWhenFull).
 */
import { odataTypes } from '../../../generated/redfish/routes.js';
import { eventsOf } from '../../events/index.js';
import type { BmcEvent } from '../../events/hub.js';
import { MANAGER_URI, SYSTEM_URI } from '../../events/machine.js';
import { taskStoreOf } from '../core/tasks.js';
import { RedfishError, notFound } from '../core/errors.js';
import { collection, sendResource } from '../core/odata.js';
import type { OperationHandlers, RedfishContext } from '../core/types.js';

export const EVENT_LOG_ID = 'EventLog';
const logServicesUri = (manager: string): string => `/redfish/v1/Managers/${encodeURIComponent(manager)}/LogServices`;
const logUri = (manager: string): string => `${logServicesUri(manager)}/${EVENT_LOG_ID}`;
const entryUri = (manager: string, id: number | string): string => `${logUri(manager)}/Entries/${id}`;

function checkManager(ctx: RedfishContext): string {
  const id = ctx.params.ManagerId ?? '';
  if (id !== ctx.state.deps.ids.manager) throw notFound('Manager', id);
  return id;
}

function checkLog(ctx: RedfishContext): string {
  const manager = checkManager(ctx);
  const id = ctx.params.LogServiceId ?? '';
  if (id !== EVENT_LOG_ID) throw notFound('LogService', id);
  return manager;
}

const SESSION_URI = /^\/redfish\/v1\/SessionService\/Sessions\/([^/]+)$/;
const TASK_URI = /^\/redfish\/v1\/TaskService\/Tasks\/([^/]+)$/;
/** What a test event may name and still be linked (its OriginOfCondition is the client's text). */
const TEST_ORIGINS = new Set(['/redfish/v1', '/redfish/v1/EventService', SYSTEM_URI, MANAGER_URI]);

/**
 * Whether a log entry may link its origin: a log outlives sessions and tasks, and a link to one
 * that has ended would be a dangling @odata.id (the Service Validator follows it and gets 404). So
 * sessions and tasks are linked while they exist; a test event's client-given origin only when it
 * names one of the service's fixed resources; the rest (system, manager, media, services) always.
 */
export function originLinkable(ctx: RedfishContext, e: BmcEvent): boolean {
  const session = SESSION_URI.exec(e.origin);
  if (session) return ctx.state.deps.sessions.get(decodeURIComponent(session[1]!)) !== undefined;
  const task = TASK_URI.exec(e.origin);
  if (task) return taskStoreOf(ctx.state.deps).get(decodeURIComponent(task[1]!)) !== undefined;
  if (e.kind === 'test') return TEST_ORIGINS.has(e.origin);
  return e.origin.startsWith('/redfish/v1/');
}

/** LogEntry.v1_21_0 of one event; Links.OriginOfCondition only while it resolves (originLinkable). */
export function logEntryBody(manager: string, e: BmcEvent, linkOrigin = true): Record<string, unknown> {
  return {
    '@odata.id': entryUri(manager, e.id),
    '@odata.type': odataTypes.LogEntry,
    Id: String(e.id),
    Name: `Log Entry ${e.id}`,
    EntryType: 'Event',
    Created: e.time.toISOString(),
    Severity: e.severity,
    Message: e.message,
    MessageId: e.messageId,
    MessageArgs: [...e.args],
    EventId: String(e.id),
    EventTimestamp: e.time.toISOString(),
    Links: linkOrigin ? { OriginOfCondition: { '@odata.id': e.origin } } : {},
  };
}

export const handlers: OperationHandlers = {
  listManagerLogServices: async (ctx) => {
    const manager = checkManager(ctx);
    sendResource(ctx, collection(ctx, logServicesUri(manager), 'LogServiceCollection', 'Log Services', [logUri(manager)]));
  },

  getManagerLogService: async (ctx) => {
    const manager = checkLog(ctx);
    const { hub } = eventsOf(ctx.state.deps.machine);
    sendResource(
      ctx,
      {
        '@odata.id': logUri(manager),
        '@odata.type': odataTypes.LogService,
        Id: EVENT_LOG_ID,
        Name: 'Event Log',
        Description: 'What happened to this machine and its BMC (the same history as the IPMI SEL)',
        LogEntryType: 'Event',
        MaxNumberOfRecords: hub.historySize,
        OverWritePolicy: 'WrapsWhenFull',
        DateTime: ctx.state.deps.now().toISOString(),
        ServiceEnabled: true,
        Status: { State: 'Enabled', Health: 'OK' },
        Entries: { '@odata.id': `${logUri(manager)}/Entries` },
        Actions: {
          '#LogService.ClearLog': { target: `${logUri(manager)}/Actions/LogService.ClearLog` },
        },
      },
      { etag: true },
    );
  },

  listManagerLogEntries: async (ctx) => {
    const manager = checkLog(ctx);
    const log = eventsOf(ctx.state.deps.machine).hub.log();
    const body = collection(ctx, `${logUri(manager)}/Entries`, 'LogEntryCollection', 'Event Log Entries', []);
    // members expanded (as BMCs do for logs): one read shows the whole log
    body.Members = log.map((e) => logEntryBody(manager, e, originLinkable(ctx, e)));
    body['Members@odata.count'] = log.length;
    sendResource(ctx, body);
  },

  getManagerLogEntry: async (ctx) => {
    const manager = checkLog(ctx);
    const id = ctx.params.LogEntryId ?? '';
    const e = /^\d+$/.test(id) ? eventsOf(ctx.state.deps.machine).hub.log().find((x) => x.id === Number(id)) : undefined;
    if (!e) throw notFound('LogEntry', id);
    sendResource(ctx, logEntryBody(manager, e, originLinkable(ctx, e)), { etag: true });
  },

  clearManagerLog: async (ctx) => {
    checkLog(ctx);
    const raw = (ctx.request as { body?: unknown }).body;
    if (raw !== undefined && (typeof raw !== 'object' || raw === null || Array.isArray(raw))) throw new RedfishError(400, 'MalformedJSON');
    for (const k of Object.keys((raw as Record<string, unknown> | undefined) ?? {})) {
      if (k !== 'LogEntriesETag') throw new RedfishError(400, 'ActionParameterUnknown', ['ClearLog', k]);
    }
    eventsOf(ctx.state.deps.machine).hub.clearLog();
    ctx.state.logger.info({ user: ctx.state.user?.username }, 'event log cleared');
    ctx.status = 204;
  },
};
