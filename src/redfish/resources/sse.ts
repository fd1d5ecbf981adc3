/**
 * The Server-Sent Event stream at /redfish/v1/EventService/SSE (DSP0266 "Server-sent events"):
 * the agent's events as `id:`/`data:` frames (Last-Event-ID resumes), `$filter` over the
 * SSEFilterPropertiesSupported properties, a heartbeat comment every SSE_HEARTBEAT_SECONDS, the
 * stream ends with the session it was opened with. While open, it is an EventDestination in the
 * Subscriptions collection (SubscriptionType SSE, a service-generated Context, Destination
 * `redfish-sse://ip:port`; src/events/sse-streams.ts): DELETE of that resource ends the stream.
 */
import type { Readable } from 'node:stream';
import { PassThrough } from 'node:stream';
import { eventsOf } from '../../events/index.js';
import type { BmcEvent } from '../../events/hub.js';
import { parseSseFilter, type SseFilter } from '../../events/filter.js';
import { sseDestination } from '../../events/sse-streams.js';
import { RedfishError } from '../core/errors.js';
import type { OperationHandlers, SharedEvent } from '../core/types.js';
import { EVENT_SERVICE, SSE_HEARTBEAT_SECONDS, sseFrame } from './events.js';

export const handlers: OperationHandlers = {
  getEventServiceSse: async (ctx) => {
    const deps = ctx.state.deps;
    const events = eventsOf(deps.machine);
    if (!events.subscriptions.settings.serviceEnabled) throw new RedfishError(503, 'ServiceDisabled', [EVENT_SERVICE]);
    let filter: SseFilter | undefined;
    const raw = ctx.querystring ? new URLSearchParams(ctx.querystring).get('$filter') : null;
    if (raw !== null) {
      try {
        filter = parseSseFilter(raw);
      } catch (e) {
        throw new RedfishError(400, 'QueryParameterValueFormatError', [raw.slice(0, 200), '$filter'], { detail: e instanceof Error ? e.message : undefined });
      }
    }
    // the session the stream belongs to: the stream ends when it is deleted or expires
    const token = ctx.get('X-Auth-Token');
    const session = token ? deps.sessions.authenticate(token) : undefined;
    const lastHeader = ctx.get('Last-Event-ID');
    const last = /^\d+$/.test(lastHeader.trim()) ? Number(lastHeader.trim()) : undefined;

    const stream = new PassThrough();
    const pass = (e: BmcEvent): boolean => !filter || filter(e);
    let closed = false;
    const off: (() => void)[] = [];
    // the EventDestination that represents this connection while it is open
    const rec = events.sseStreams.add({
      owner: ctx.state.user?.username ?? '',
      destination: sseDestination(ctx.req.socket.remoteAddress, ctx.req.socket.remotePort),
      ...(raw !== null ? { filter: raw.slice(0, 1024) } : {}),
      createdAt: deps.now().toISOString(),
      close: () => end(),
    });
    const end = (): void => {
      if (closed) return;
      closed = true;
      for (const f of off.splice(0)) f();
      events.sseStreams.remove(rec.id);
      stream.end();
    };
    const write = (s: string): void => {
      if (closed) return;
      // a reader that does not keep up costs bounded memory: it is dropped
      if (stream.writableLength > 1024 * 1024) return end();
      stream.write(s);
    };
    write(`retry: 5000\n\n`);
    const closesStream = (e: BmcEvent): boolean => e.kind === 'sessionClosed' && session !== undefined && e.detail?.session === `redfish:${session.id}`;
    const tenant = ctx.state.tenant;
    if (tenant?.events) {
      // shared mode (core/tenancy.ts): every system the caller may see, under its own ids; of the
      // systems other than the home one only events about the system, its manager, chassis and tasks
      // (their sessions live in a SessionService this caller reaches only at home)
      const shared = tenant.events;
      const mine = (fe: SharedEvent): boolean => (fe.tenant === tenant.id || fe.systemScoped) && pass(fe.event);
      if (last !== undefined) for (const fe of shared.since(last, tenant.visible)) if (mine(fe)) write(shared.frame(fe));
      off.push(
        shared.on(tenant.visible, (fe) => {
          if (fe.tenant === tenant.id && closesStream(fe.event)) return end();
          if (mine(fe)) write(shared.frame(fe));
        }),
      );
    } else {
      if (last !== undefined) for (const e of events.hub.since(last)) if (pass(e)) write(sseFrame(e));
      off.push(
        events.hub.on((e) => {
          if (closesStream(e)) return end();
          if (pass(e)) write(sseFrame(e));
        }),
      );
    }
    const beat = setInterval(() => {
      if (session && !deps.sessions.get(session.id)) return end(); // expired
      write(': heartbeat\n\n');
    }, SSE_HEARTBEAT_SECONDS * 1000);
    beat.unref();
    off.push(() => clearInterval(beat));
    ctx.req.socket.once('close', end);
    stream.once('close', end);
    ctx.req.socket.setTimeout(0);
    ctx.status = 200;
    ctx.type = 'text/event-stream';
    ctx.set('Cache-Control', 'no-cache');
    ctx.set('X-Accel-Buffering', 'no');
    ctx.body = stream as Readable;
    ctx.state.logger.info({ user: ctx.state.user?.username, filtered: raw !== null, resume: last, subscription: rec.id }, 'SSE stream opened');
  },
};
