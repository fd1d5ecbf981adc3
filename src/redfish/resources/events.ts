/**
 * /redfish/v1/EventService (EventService.v1_12_0), its Subscriptions (EventDestination.v1_16_0),
 * SubmitTestEvent; the Server-Sent Event stream at /redfish/v1/EventService/SSE is sse.ts (DSP0266
 * "Eventing" and "Server-sent events"). Events come from the agent's one event source
 * (src/events/hub.ts); delivery lives in src/events/subscriptions.ts.
 *
 * What a subscription POST validates: Destination is an absolute http:// or https:// URL without
 * user:password (credentials belong in HttpHeaders, which are write-only and never shown or
 * logged); Protocol Redfish; SubscriptionType RedfishEvent; EventFormatType Event;
 * RegistryPrefixes/ExcludeRegistryPrefixes name a registry we serve; MessageIds, ResourceTypes
 * are strings; OriginResources are {"@odata.id"} links; Context at most 256 characters;
 * SendHeartbeat a boolean and HeartbeatIntervalMinutes an integer 1..65535 (EventDestination.v1_11_0
 * Validation.Minimum/Maximum), the interval only with SendHeartbeat (the schema: it "shall not be
 * present if the SendHeartbeat property is not present"); at most MAX_SUBSCRIPTIONS subscriptions.
 * Unknown properties answer 400 PropertyUnknown. SendHeartbeat and HeartbeatIntervalMinutes are
 * read-only (OData.Permission/Read; the registry: heartbeats are requested "during the creation of
 * a subscription"), so a PATCH of either answers PropertyNotWritable.
 */
import { odataTypes } from '../../../generated/redfish/routes.js';
import { eventsOf } from '../../events/index.js';
import { REGISTRIES, type BmcEvent } from '../../events/hub.js';
import type { SseStreamRecord } from '../../events/sse-streams.js';
import {
  DEFAULT_HEARTBEAT_MINUTES,
  DELIVERY_RETRY_POLICIES,
  eventPayload,
  validHeartbeatMinutes,
  type DeliveryRetryPolicy,
  type SubscriptionRecord,
} from '../../events/subscriptions.js';
import { RedfishError, insufficientPrivilege, notFound, type MessageRef } from '../core/errors.js';
import { checkIfMatch, collection, sendResource } from '../core/odata.js';
import { validatePatch, withWriteableProperties, type WritableTree } from '../core/patch.js';
import type { OperationHandlers, RedfishContext } from '../core/types.js';

export const EVENT_SERVICE = '/redfish/v1/EventService';
export const SUBSCRIPTIONS = `${EVENT_SERVICE}/Subscriptions`;
export const SSE_URI = `${EVENT_SERVICE}/SSE`;
export const subscriptionUri = (id: string): string => `${SUBSCRIPTIONS}/${encodeURIComponent(id)}`;
/** Seconds between SSE heartbeat comments (proxies close idle streams) */
export const SSE_HEARTBEAT_SECONDS = 15;
const MAX_CONTEXT = 256;
const RESOURCE_TYPES = ['ComputerSystem', 'VirtualMedia', 'Task', 'Session', 'Manager', 'EventService'];
/** Headers a subscription may not set (they describe the message itself) */
const FORBIDDEN_HEADERS = new Set(['content-length', 'content-type', 'host', 'transfer-encoding', 'connection', 'expect', 'upgrade', 'te', 'trailer']);

const settingsOf = (ctx: RedfishContext) => eventsOf(ctx.state.deps.machine).subscriptions.settings;

/** What an EventService PATCH may change (and its `@Redfish.WriteableProperties`). */
const EVENT_SERVICE_WRITABLE: WritableTree = {
  ServiceEnabled: 'boolean',
  DeliveryRetryAttempts: { integer: { min: 0, max: 10 } },
  DeliveryRetryIntervalSeconds: { integer: { min: 1, max: 3600 } },
};

/** What a subscription PATCH may change (and its `@Redfish.WriteableProperties`, Status's inside Status). */
const SUBSCRIPTION_WRITABLE: WritableTree = {
  Context: 'string',
  DeliveryRetryPolicy: { enum: DELIVERY_RETRY_POLICIES },
  Status: { object: { State: { enum: ['Enabled', 'Disabled'] } } },
};

function eventServiceBody(ctx: RedfishContext): Record<string, unknown> {
  const s = settingsOf(ctx);
  return withWriteableProperties({
    '@odata.id': EVENT_SERVICE,
    '@odata.type': odataTypes.EventService,
    Id: 'EventService',
    Name: 'Event Service',
    Description: 'Events of this BMC and its machine: push subscriptions and Server-Sent Events',
    ServiceEnabled: s.serviceEnabled,
    DeliveryRetryAttempts: s.deliveryRetryAttempts,
    DeliveryRetryIntervalSeconds: s.deliveryRetryIntervalSeconds,
    EventFormatTypes: ['Event'],
    RegistryPrefixes: Object.keys(REGISTRIES),
    ResourceTypes: RESOURCE_TYPES,
    IncludeOriginOfConditionSupported: false,
    SubordinateResourcesSupported: true,
    // What a subscription can filter out: ExcludeRegistryPrefixes yes; ExcludeMessageIds is not a
    // subscription property here (POST with it answers PropertyUnknown)
    ExcludeRegistryPrefix: true,
    ExcludeMessageId: false,
    ServerSentEventUri: SSE_URI,
    SSEFilterPropertiesSupported: {
      EventFormatType: true,
      MessageId: true,
      OriginResource: true,
      RegistryPrefix: true,
      ResourceType: true,
      EventType: false,
      MetricReportDefinition: false,
      SubordinateResources: false,
    },
    Status: { State: s.serviceEnabled ? 'Enabled' : 'Disabled', Health: 'OK' },
    Subscriptions: { '@odata.id': SUBSCRIPTIONS },
    Actions: {
      '#EventService.SubmitTestEvent': {
        target: `${EVENT_SERVICE}/Actions/EventService.SubmitTestEvent`,
      },
    },
  }, EVENT_SERVICE_WRITABLE);
}

function subscriptionBody(r: SubscriptionRecord): Record<string, unknown> {
  return withWriteableProperties({
    '@odata.id': subscriptionUri(r.id),
    '@odata.type': odataTypes.EventDestination,
    Id: r.id,
    Name: `Event Subscription ${r.id}`,
    Destination: r.destination,
    Context: r.context ?? '',
    Protocol: 'Redfish',
    SubscriptionType: 'RedfishEvent',
    EventFormatType: 'Event',
    DeliveryRetryPolicy: r.deliveryRetryPolicy,
    RegistryPrefixes: r.registryPrefixes ?? [],
    ExcludeRegistryPrefixes: r.excludeRegistryPrefixes ?? [],
    MessageIds: r.messageIds ?? [],
    ResourceTypes: r.resourceTypes ?? [],
    OriginResources: (r.originResources ?? []).map((o) => ({ '@odata.id': o })),
    SubordinateResources: r.subordinateResources ?? false,
    // EventDestination.v1_11_0: the interval only when heartbeats are on or one was given
    SendHeartbeat: r.sendHeartbeat === true,
    ...(r.sendHeartbeat === true || r.heartbeatIntervalMinutes !== undefined
      ? { HeartbeatIntervalMinutes: r.heartbeatIntervalMinutes ?? DEFAULT_HEARTBEAT_MINUTES }
      : {}),
    // write-only (EventDestination.HttpHeaders): always null on reads
    HttpHeaders: [],
    Status: { State: r.state, Health: r.state === 'Enabled' ? 'OK' : 'Warning' },
  }, SUBSCRIPTION_WRITABLE);
}

/**
 * The EventDestination of an open SSE stream (sse.ts): nothing on it is writable (its filter is the
 * stream's `$filter`, fixed when it was opened); DELETE ends the stream.
 */
function sseSubscriptionBody(r: SseStreamRecord): Record<string, unknown> {
  return withWriteableProperties(
    {
      '@odata.id': subscriptionUri(r.id),
      '@odata.type': odataTypes.EventDestination,
      Id: r.id,
      Name: `Server-Sent Event stream ${r.id}`,
      Description: r.filter !== undefined ? `Open SSE stream with $filter=${r.filter}` : 'Open SSE stream',
      Destination: r.destination,
      Context: r.context,
      Protocol: 'Redfish',
      SubscriptionType: 'SSE',
      EventFormatType: 'Event',
      Status: { State: 'Enabled', Health: 'OK' },
    },
    {},
  );
}

const CREATE_FIELDS = new Set([
  'Destination',
  'Context',
  'Protocol',
  'SubscriptionType',
  'EventFormatType',
  'RegistryPrefixes',
  'ExcludeRegistryPrefixes',
  'MessageIds',
  'ResourceTypes',
  'OriginResources',
  'SubordinateResources',
  'HttpHeaders',
  'DeliveryRetryPolicy',
  'EventTypes',
  'SendHeartbeat',
  'HeartbeatIntervalMinutes',
]);

const show = (v: unknown): string => (typeof v === 'string' ? v : (JSON.stringify(v) ?? String(v))).slice(0, 200);

/** Destination URL check (see the module comment). Returns the URL as given. */
export function checkDestination(v: unknown): string {
  if (typeof v !== 'string') throw new RedfishError(400, 'PropertyValueTypeError', [show(v), 'Destination'], { property: '#/Destination' });
  let url: URL;
  try {
    url = new URL(v);
  } catch {
    throw new RedfishError(400, 'PropertyValueFormatError', [show(v), 'Destination'], { property: '#/Destination' });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new RedfishError(400, 'PropertyValueFormatError', [show(v), 'Destination'], { property: '#/Destination', detail: 'Destination must be an http:// or https:// URL.' });
  }
  if (url.username || url.password) {
    throw new RedfishError(400, 'PropertyValueFormatError', ['<URL with credentials>', 'Destination'], {
      property: '#/Destination',
      detail: 'Destination must not carry credentials; send them in HttpHeaders.',
    });
  }
  return v;
}

function stringList(body: Record<string, unknown>, key: string, problems: MessageRef[], allowed?: readonly string[]): string[] | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) {
    problems.push({ messageId: 'PropertyValueTypeError', args: [show(v), key], property: `#/${key}` });
    return undefined;
  }
  if (allowed) for (const x of v as string[]) if (!allowed.includes(x)) problems.push({ messageId: 'PropertyValueNotInList', args: [x, key], property: `#/${key}` });
  return v as string[];
}

function parseCreate(raw: unknown, owner: string): Omit<SubscriptionRecord, 'id' | 'createdAt' | 'state'> {
  if (raw === undefined) throw new RedfishError(400, 'CreateFailedMissingReqProperties', ['Destination'], { property: '#/Destination' });
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new RedfishError(400, 'MalformedJSON');
  const body = raw as Record<string, unknown>;
  const problems: MessageRef[] = [];
  for (const key of Object.keys(body)) {
    if (!CREATE_FIELDS.has(key) && !key.startsWith('@odata.')) problems.push({ messageId: 'PropertyUnknown', args: [key], property: `#/${key}` });
  }
  if (body.Destination === undefined) throw new RedfishError(400, 'CreateFailedMissingReqProperties', ['Destination'], { property: '#/Destination' });
  const destination = checkDestination(body.Destination);
  const fixed: [string, string][] = [
    ['Protocol', 'Redfish'],
    ['SubscriptionType', 'RedfishEvent'],
    ['EventFormatType', 'Event'],
  ];
  for (const [k, want] of fixed) {
    if (body[k] !== undefined && body[k] !== want) problems.push({ messageId: 'PropertyValueNotInList', args: [show(body[k]), k], property: `#/${k}` });
  }
  if (body.Context !== undefined && (typeof body.Context !== 'string' || body.Context.length > MAX_CONTEXT)) {
    problems.push({ messageId: typeof body.Context === 'string' ? 'PropertyValueFormatError' : 'PropertyValueTypeError', args: [show(body.Context), 'Context'], property: '#/Context' });
  }
  // EventTypes is deprecated; only the catch-all "Other" means what our events are
  if (body.EventTypes !== undefined) stringList(body, 'EventTypes', problems, ['Other', 'Alert', 'ResourceAdded', 'ResourceRemoved', 'ResourceUpdated', 'StatusChange']);
  const prefixes = Object.keys(REGISTRIES);
  const registryPrefixes = stringList(body, 'RegistryPrefixes', problems, prefixes);
  const excludeRegistryPrefixes = stringList(body, 'ExcludeRegistryPrefixes', problems, prefixes);
  const messageIds = stringList(body, 'MessageIds', problems);
  const resourceTypes = stringList(body, 'ResourceTypes', problems);
  let originResources: string[] | undefined;
  if (body.OriginResources !== undefined && body.OriginResources !== null) {
    const v = body.OriginResources;
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'object' || x === null || typeof (x as Record<string, unknown>)['@odata.id'] !== 'string')) {
      problems.push({ messageId: 'PropertyValueTypeError', args: [show(v), 'OriginResources'], property: '#/OriginResources' });
    } else originResources = (v as Record<string, string>[]).map((x) => x['@odata.id'] as string);
  }
  if (body.SubordinateResources !== undefined && typeof body.SubordinateResources !== 'boolean') {
    problems.push({ messageId: 'PropertyValueTypeError', args: [show(body.SubordinateResources), 'SubordinateResources'], property: '#/SubordinateResources' });
  }
  let deliveryRetryPolicy: DeliveryRetryPolicy = 'SuspendRetries';
  if (body.DeliveryRetryPolicy !== undefined) {
    if (typeof body.DeliveryRetryPolicy !== 'string' || !DELIVERY_RETRY_POLICIES.includes(body.DeliveryRetryPolicy as DeliveryRetryPolicy)) {
      problems.push({ messageId: 'PropertyValueNotInList', args: [show(body.DeliveryRetryPolicy), 'DeliveryRetryPolicy'], property: '#/DeliveryRetryPolicy' });
    } else deliveryRetryPolicy = body.DeliveryRetryPolicy as DeliveryRetryPolicy;
  }
  // Heartbeats (EventDestination.v1_11_0 SendHeartbeat / HeartbeatIntervalMinutes)
  const sendHeartbeat = body.SendHeartbeat;
  if (sendHeartbeat !== undefined && typeof sendHeartbeat !== 'boolean') {
    problems.push({ messageId: 'PropertyValueTypeError', args: [show(sendHeartbeat), 'SendHeartbeat'], property: '#/SendHeartbeat' });
  }
  const minutes = body.HeartbeatIntervalMinutes;
  if (minutes !== undefined) {
    if (!Number.isInteger(minutes)) {
      problems.push({ messageId: 'PropertyValueTypeError', args: [show(minutes), 'HeartbeatIntervalMinutes'], property: '#/HeartbeatIntervalMinutes' });
    } else if (!validHeartbeatMinutes(minutes)) {
      problems.push({ messageId: 'PropertyValueOutOfRange', args: [show(minutes), 'HeartbeatIntervalMinutes'], property: '#/HeartbeatIntervalMinutes' });
    } else if (sendHeartbeat === undefined) {
      // an interval alone requests nothing ("If this property [SendHeartbeat] is not present, no
      // periodic event shall be sent"): say so rather than accept a subscription that stays silent
      problems.push({ messageId: 'PropertyMissing', args: ['SendHeartbeat'], property: '#/SendHeartbeat' });
    }
  }
  let httpHeaders: Record<string, string> | undefined;
  if (body.HttpHeaders !== undefined && body.HttpHeaders !== null) {
    // EventDestination.HttpHeaders: an array of objects of string values (older clients send one object)
    const v = body.HttpHeaders;
    const list = Array.isArray(v) ? v : [v];
    httpHeaders = {};
    for (const item of list) {
      if (typeof item !== 'object' || item === null || Array.isArray(item)) {
        problems.push({ messageId: 'PropertyValueTypeError', args: ['<HttpHeaders>', 'HttpHeaders'], property: '#/HttpHeaders' });
        break;
      }
      for (const [k, val] of Object.entries(item as Record<string, unknown>)) {
        // never echo header values (credentials)
        if (typeof val !== 'string' || !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(k) || /[\r\n]/.test(val)) {
          problems.push({ messageId: 'PropertyValueFormatError', args: ['<HttpHeaders>', 'HttpHeaders'], property: '#/HttpHeaders' });
        } else if (FORBIDDEN_HEADERS.has(k.toLowerCase())) {
          problems.push({ messageId: 'PropertyValueNotInList', args: [k, 'HttpHeaders'], property: '#/HttpHeaders' });
        } else httpHeaders[k] = val;
      }
    }
  }
  if (problems.length > 0) {
    const [first, ...more] = problems as [MessageRef, ...MessageRef[]];
    throw new RedfishError(400, first.messageId, first.args ?? [], { ...(first.property ? { property: first.property } : {}), more });
  }
  return {
    destination,
    owner,
    deliveryRetryPolicy,
    ...(body.Context !== undefined ? { context: body.Context as string } : {}),
    ...(registryPrefixes ? { registryPrefixes } : {}),
    ...(excludeRegistryPrefixes ? { excludeRegistryPrefixes } : {}),
    ...(messageIds ? { messageIds } : {}),
    ...(resourceTypes ? { resourceTypes } : {}),
    ...(originResources ? { originResources } : {}),
    ...(body.SubordinateResources === true ? { subordinateResources: true } : {}),
    ...(sendHeartbeat === true ? { sendHeartbeat: true } : {}),
    // the interval in force is stored (and persisted), the default too
    ...(typeof minutes === 'number' ? { heartbeatIntervalMinutes: minutes } : sendHeartbeat === true ? { heartbeatIntervalMinutes: DEFAULT_HEARTBEAT_MINUTES } : {}),
    ...(httpHeaders && Object.keys(httpHeaders).length > 0 ? { httpHeaders } : {}),
  };
}

/** A push subscription or an open SSE stream by id (ConfigureSelf: only the caller's own). */
function findDestination(ctx: RedfishContext): { push: SubscriptionRecord; sse?: undefined } | { push?: undefined; sse: SseStreamRecord } {
  const id = ctx.params.EventDestinationId ?? '';
  const events = eventsOf(ctx.state.deps.machine);
  const push = events.subscriptions.get(id);
  const sse = push ? undefined : events.sseStreams.get(id);
  const owner = push?.owner ?? sse?.owner;
  if (owner === undefined) throw notFound('EventDestination', id);
  if (ctx.state.selfOnly && owner !== ctx.state.user?.username) throw insufficientPrivilege();
  return push ? { push } : { sse: sse! };
}

function destinationBody(d: ReturnType<typeof findDestination>): Record<string, unknown> {
  return d.push ? subscriptionBody(d.push) : sseSubscriptionBody(d.sse);
}

/** One SSE frame of an event: `id:` is the event id (Last-Event-ID resumes after it). */
export function sseFrame(e: BmcEvent): string {
  return `id: ${e.id}\ndata: ${JSON.stringify(eventPayload([e], undefined, String(e.id)))}\n\n`;
}

export const handlers: OperationHandlers = {
  getEventService: async (ctx) => {
    sendResource(ctx, eventServiceBody(ctx), { etag: true });
  },

  patchEventService: async (ctx) => {
    checkIfMatch(ctx, eventServiceBody(ctx));
    const body = validatePatch((ctx.request as { body?: unknown }).body, {
      writable: EVENT_SERVICE_WRITABLE,
      readOnly: Object.keys(eventServiceBody(ctx)),
    });
    const s = settingsOf(ctx);
    if (typeof body.ServiceEnabled === 'boolean') s.serviceEnabled = body.ServiceEnabled;
    if (typeof body.DeliveryRetryAttempts === 'number') s.deliveryRetryAttempts = body.DeliveryRetryAttempts;
    if (typeof body.DeliveryRetryIntervalSeconds === 'number') s.deliveryRetryIntervalSeconds = body.DeliveryRetryIntervalSeconds;
    ctx.state.logger.info({ user: ctx.state.user?.username, ...s }, 'event service changed');
    sendResource(ctx, eventServiceBody(ctx), { etag: true });
  },

  listEventSubscriptions: async (ctx) => {
    const events = eventsOf(ctx.state.deps.machine);
    const members = [...events.subscriptions.list(), ...events.sseStreams.list()].map((r) => subscriptionUri(r.id));
    sendResource(ctx, collection(ctx, SUBSCRIPTIONS, 'EventDestinationCollection', 'Event Subscriptions', members));
  },

  createEventSubscription: async (ctx) => {
    const mgr = eventsOf(ctx.state.deps.machine).subscriptions;
    const input = parseCreate((ctx.request as { body?: unknown }).body, ctx.state.user?.username ?? '');
    if (!mgr.hasRoom()) {
      throw new RedfishError(400, 'EventSubscriptionLimitExceeded', [], { detail: `At most ${mgr.maxSubscriptions} subscriptions.` });
    }
    const rec = await mgr.create(input);
    // the destination's host is logged, never its path or query (tokens live there)
    ctx.state.logger.info(
      { user: ctx.state.user?.username, subscription: rec.id, host: new URL(rec.destination).host, ...(rec.sendHeartbeat ? { heartbeatMinutes: rec.heartbeatIntervalMinutes } : {}) },
      'event subscription created',
    );
    ctx.set('Location', subscriptionUri(rec.id));
    sendResource(ctx, subscriptionBody(rec), { status: 201 });
  },

  getEventSubscription: async (ctx) => {
    sendResource(ctx, destinationBody(findDestination(ctx)), { etag: true });
  },

  patchEventSubscription: async (ctx) => {
    const found = findDestination(ctx);
    checkIfMatch(ctx, destinationBody(found));
    if (found.sse) {
      // every property is read-only: answers PropertyNotWritable (or the body's own problem)
      validatePatch((ctx.request as { body?: unknown }).body, { writable: {}, readOnly: Object.keys(sseSubscriptionBody(found.sse)) });
      throw new RedfishError(400, 'NoOperation');
    }
    const rec = found.push;
    const body = validatePatch((ctx.request as { body?: unknown }).body, {
      writable: SUBSCRIPTION_WRITABLE,
      readOnly: Object.keys(subscriptionBody(rec)),
    });
    if (typeof body.Context === 'string' && body.Context.length > MAX_CONTEXT) {
      throw new RedfishError(400, 'PropertyValueFormatError', [show(body.Context), 'Context'], { property: '#/Context' });
    }
    const state = (body.Status as { State?: 'Enabled' | 'Disabled' } | undefined)?.State;
    const updated = await eventsOf(ctx.state.deps.machine).subscriptions.update(rec.id, {
      ...(typeof body.Context === 'string' ? { context: body.Context } : {}),
      ...(body.DeliveryRetryPolicy !== undefined ? { deliveryRetryPolicy: body.DeliveryRetryPolicy as DeliveryRetryPolicy } : {}),
      ...(state ? { state } : {}),
    });
    if (!updated) throw notFound('EventDestination', rec.id);
    sendResource(ctx, subscriptionBody(updated), { etag: true });
  },

  deleteEventSubscription: async (ctx) => {
    const found = findDestination(ctx);
    if (found.sse) {
      found.sse.close(); // the stream ends; its record goes with it
      ctx.state.logger.info({ user: ctx.state.user?.username, subscription: found.sse.id }, 'SSE stream ended by deleting its event destination');
    } else {
      await eventsOf(ctx.state.deps.machine).subscriptions.remove(found.push.id);
      ctx.state.logger.info({ user: ctx.state.user?.username, subscription: found.push.id }, 'event subscription deleted');
    }
    ctx.status = 204;
  },

  submitTestEvent: async (ctx) => {
    const raw = (ctx.request as { body?: unknown }).body ?? {};
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new RedfishError(400, 'MalformedJSON');
    const body = raw as Record<string, unknown>;
    const allowed = ['MessageId', 'Message', 'MessageArgs', 'Severity', 'MessageSeverity', 'OriginOfCondition', 'EventId', 'EventTimestamp', 'EventType', 'EventGroupId'];
    for (const k of Object.keys(body)) if (!allowed.includes(k)) throw new RedfishError(400, 'ActionParameterUnknown', ['SubmitTestEvent', k]);
    for (const k of ['MessageId', 'Message', 'Severity', 'MessageSeverity', 'OriginOfCondition', 'EventType']) {
      if (body[k] !== undefined && typeof body[k] !== 'string') throw new RedfishError(400, 'ActionParameterValueTypeError', [show(body[k]), k, 'SubmitTestEvent']);
    }
    const severity = (body.MessageSeverity ?? body.Severity) as string | undefined;
    if (severity !== undefined && !['OK', 'Warning', 'Critical'].includes(severity)) {
      throw new RedfishError(400, 'ActionParameterValueNotInList', [severity, 'MessageSeverity', 'SubmitTestEvent']);
    }
    const args = body.MessageArgs;
    if (args !== undefined && (!Array.isArray(args) || args.some((a) => typeof a !== 'string'))) {
      throw new RedfishError(400, 'ActionParameterValueTypeError', [show(args), 'MessageArgs', 'SubmitTestEvent']);
    }
    const event = eventsOf(ctx.state.deps.machine).hub.emit({
      kind: 'test',
      key: 'TestMessage',
      reason: 'TestEvent',
      source: 'redfish',
      args: (args as string[] | undefined) ?? [],
      origin: typeof body.OriginOfCondition === 'string' ? body.OriginOfCondition.slice(0, 512) : EVENT_SERVICE,
      resourceType: 'EventService',
      ...(typeof body.MessageId === 'string' ? { messageId: body.MessageId.slice(0, 256) } : {}),
      ...(typeof body.Message === 'string' ? { message: body.Message.slice(0, 1024) } : {}),
      ...(severity ? { severity: severity as 'OK' | 'Warning' | 'Critical' } : {}),
    });
    ctx.state.logger.info({ user: ctx.state.user?.username, event: event.id }, 'test event submitted');
    ctx.status = 204;
  },
};

