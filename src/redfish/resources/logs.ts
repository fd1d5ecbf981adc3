/**
 * Manager LogServices: one LogService, EventLog (LogService.v1_9_0), whose Entries are the agent's
 * events (src/events/hub.ts) as LogEntry resources: the same history the IPMI SEL shows. ClearLog
 * empties it for both. Bounded: the newest MaxNumberOfRecords events are kept
 * (OverWritePolicy WrapsWhenFull).
 */
import { odataTypes } from '../../../generated/redfish/routes.js';
import { eventsOf } from '../../events/index.js';
import type { BmcEvent } from '../../events/hub.js';
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

/** LogEntry.v1_21_0 of one event. */
export function logEntryBody(manager: string, e: BmcEvent): Record<string, unknown> {
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
    Links: { OriginOfCondition: { '@odata.id': e.origin } },
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
    body.Members = log.map((e) => logEntryBody(manager, e));
    body['Members@odata.count'] = log.length;
    sendResource(ctx, body);
  },

  getManagerLogEntry: async (ctx) => {
    const manager = checkLog(ctx);
    const id = ctx.params.LogEntryId ?? '';
    const e = /^\d+$/.test(id) ? eventsOf(ctx.state.deps.machine).hub.log().find((x) => x.id === Number(id)) : undefined;
    if (!e) throw notFound('LogEntry', id);
    sendResource(ctx, logEntryBody(manager, e), { etag: true });
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
