/**
 * Heartbeat events (issue 13): EventDestination.v1_11_0 SendHeartbeat / HeartbeatIntervalMinutes
 * (a subscriber that asks gets HeartbeatEvent RedfishServiceFunctional at its interval, through the
 * normal delivery path), the HeartbeatEvent registry under /redfish/v1/Registries, and the
 * RedfishServiceStarted entry the agent logs when its Redfish service starts (per-VM and shared),
 * and RedfishServiceShuttingDown when it stops (subscribers get a bounded time to take it).
 *
 * Only setInterval/clearInterval are faked (the heartbeat timer): sockets, the subscriber on
 * 127.0.0.1 and the tests' own waits for an arrival stay real. "Nothing arrived before the
 * interval" is shown with a marker event sent after the tick (one POST at a time per subscriber, in
 * order: a heartbeat queued before the marker would arrive before it), never by sleeping.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import sinon from 'sinon';
import { startAgent, type Agent } from '../../src/agent/agent.js';
import { SimulatedMachine } from '../../src/backend/simulator/simulator.js';
import { nullLogger } from '../../src/common/logger.js';
import { heartbeatEventRegistry } from '../../generated/redfish/registries.js';
import { odataTypes } from '../../generated/redfish/routes.js';
import { FilePersistence } from '../../src/events/persistence.js';
import type { StartEventsOptions } from '../../src/events/index.js';
import { selRecord } from '../../src/events/sel.js';
import { SubscriptionManager } from '../../src/events/subscriptions.js';
import type { BmcEvent } from '../../src/events/hub.js';
import type { FleetSystem } from '../../src/agent/shared.js';
import { ADMIN, READONLY, startTestFleet, redfishClient, type RedfishReply } from '../helpers/agent.js';
import { startEventReceiver, type EventReceiver, type Received } from '../helpers/event-receiver.js';
import { expectConforms } from '../helpers/redfish-schema.js';

const auth = (u: { username: string; password: string }): string => 'Basic ' + Buffer.from(`${u.username}:${u.password}`).toString('base64');
const SUBS = '/redfish/v1/EventService/Subscriptions';
const ENTRIES = '/redfish/v1/Managers/BMC/LogServices/EventLog/Entries';
const TEST_EVENT = '/redfish/v1/EventService/Actions/EventService.SubmitTestEvent';
const FUNCTIONAL = 'HeartbeatEvent.1.1.1.RedfishServiceFunctional';
const STARTED = 'HeartbeatEvent.1.1.1.RedfishServiceStarted';
const SHUTTING_DOWN = 'HeartbeatEvent.1.1.1.RedfishServiceShuttingDown';
const MINUTE = 60_000;

type Reply = RedfishReply;

interface Rig {
  agent: Agent;
  sim: SimulatedMachine;
  rf: (method: string, path: string, body?: unknown, user?: typeof ADMIN) => Promise<Reply>;
  close(): Promise<void>;
}

async function startRig(events: StartEventsOptions = {}): Promise<Rig> {
  const sim = new SimulatedMachine({ powerOnDelayMs: 0, powerOffDelayMs: 0 });
  const agent = await startAgent({
    machine: sim,
    users: [ADMIN, READONLY],
    logger: nullLogger(),
    address: '127.0.0.1',
    ipmi: false,
    redfish: { port: 0 },
    events: { bridge: { healthIntervalMs: 0 }, ...events },
  });
  const base = `http://127.0.0.1:${agent.redfish!.port}`;
  const rf = redfishClient(base);
  return { agent, sim, rf, close: () => agent.close() };
}

/** Deliveries never wait on the wall clock: retries follow at once. */
const immediate = { sleep: async (): Promise<void> => undefined };

type Delivered = Received['body']['Events'][number] & { Message?: string; LogEntry?: unknown };
const events = (rx: EventReceiver): Delivered[] => rx.received.flatMap((x) => x.body.Events as Delivered[]);
const beats = (rx: EventReceiver): Delivered[] => events(rx).filter((e) => e.MessageId === FUNCTIONAL);

/** Waits (bounded) for something asynchronous to happen: a state change, not a time. */
async function until(pred: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A test event every subscriber gets (filters do not apply), then waits until `rx` has it. */
async function marker(rig: Rig, rx: EventReceiver, text: string): Promise<void> {
  expect((await rig.rf('POST', TEST_EVENT, { Message: text })).status).to.equal(204);
  await rx.waitFor((got) => got.some((x) => x.body.Events.some((e) => (e as Delivered).Message === text)), `marker ${text}`);
}

function firstMessageId(r: Reply): string {
  const info = (r.body.error as { '@Message.ExtendedInfo': { MessageId: string; MessageArgs?: string[]; RelatedProperties?: string[] }[] })['@Message.ExtendedInfo'];
  return (info[0] as { MessageId: string }).MessageId;
}

describe('Redfish EventService: heartbeats (EventDestination SendHeartbeat, HeartbeatIntervalMinutes)', function () {
  let rig: Rig;
  let rx: EventReceiver;
  let clock: sinon.SinonFakeTimers | undefined;
  beforeEach(async () => {
    rx = await startEventReceiver();
    rig = await startRig({ subscriptions: immediate });
  });
  afterEach(async () => {
    // the agent first (it clears its timers on the fake clock), then the clock
    await rig.close();
    expect(rig.agent.events.subscriptions.heartbeatTimers, 'no heartbeat timer outlives the agent').to.equal(0);
    clock?.restore();
    clock = undefined;
    await rx.close();
  });

  it('sends RedfishServiceFunctional every HeartbeatIntervalMinutes to a 127.0.0.1 subscriber that asked, whatever its filters; DELETE stops them (fake clock)', async () => {
    clock = sinon.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const mgr = rig.agent.events.subscriptions;
    const created = await rig.rf('POST', SUBS, { Destination: rx.url, Context: 'hb', SendHeartbeat: true, HeartbeatIntervalMinutes: 2, RegistryPrefixes: ['TaskEvent'] });
    expect(created.status).to.equal(201);
    expectConforms('EventDestination_EventDestination', created.body);
    expect(created.body).to.include({ SendHeartbeat: true, HeartbeatIntervalMinutes: 2 });
    const uri = created.headers.get('location')!;
    expect((await rig.rf('GET', uri, undefined, READONLY)).body).to.include({ SendHeartbeat: true, HeartbeatIntervalMinutes: 2 });
    expect(mgr.heartbeatTimers).to.equal(1);
    // a second subscriber, not asking, filtering on HeartbeatEvent itself: it never gets a heartbeat
    const other = await startEventReceiver();
    try {
      const plain = await rig.rf('POST', SUBS, { Destination: other.url, RegistryPrefixes: ['HeartbeatEvent'] });
      expect(plain.status).to.equal(201);
      expect(plain.body.SendHeartbeat).to.equal(false);
      expect(plain.body).not.to.have.property('HeartbeatIntervalMinutes');
      expect(mgr.heartbeatTimers).to.equal(1);

      clock.tick(2 * MINUTE - 1);
      await marker(rig, rx, 'before the interval');
      expect(beats(rx), 'no heartbeat before the interval').to.have.length(0);
      clock.tick(1);
      await rx.waitFor(() => beats(rx).length === 1, 'the first heartbeat');
      const hit = rx.received.find((x) => x.body.Events.some((e) => e.MessageId === FUNCTIONAL))!;
      // the payload of every event (Event.v1_13_0), with the subscription's Context
      expect(hit.body).to.include({ '@odata.type': odataTypes.Event, Context: 'hb' });
      const beat = beats(rx)[0]!;
      expect(beat).to.include({ MessageId: FUNCTIONAL, MessageSeverity: 'OK', Message: 'Redfish service is functional.', EventId: 'Heartbeat1' });
      expect(beat.MessageArgs).to.deep.equal([]);
      expect(beat.OriginOfCondition).to.deep.equal({ '@odata.id': uri });
      expect((await rig.rf('GET', beat.OriginOfCondition['@odata.id'])).status).to.equal(200);
      // in no log: no LogEntry link, nothing in the EventLog or in the hub's history (which SSE reads)
      expect(beat).not.to.have.property('LogEntry');
      const logged = (await rig.rf('GET', ENTRIES)).body.Members as { MessageId: string }[];
      expect(logged.map((m) => m.MessageId)).not.to.include(FUNCTIONAL);
      expect(rig.agent.events.hub.since(0).map((e) => e.kind)).not.to.include('heartbeat');

      // its answer back at the agent (a heartbeat still in the queue holds the next one back)
      await until(() => mgr.queueOf(String(created.body.Id))?.length === 0, 'the queue to drain');
      clock.tick(2 * MINUTE);
      await rx.waitFor(() => beats(rx).length === 2, 'the second heartbeat');
      expect(beats(rx)[1]!.EventId).to.equal('Heartbeat2');
      await marker(rig, other, 'the other subscriber is served too');
      expect(events(other).map((e) => e.MessageId)).not.to.include(FUNCTIONAL);

      const timersBefore = clock.countTimers();
      expect((await rig.rf('DELETE', uri)).status).to.equal(204);
      expect(mgr.heartbeatTimers).to.equal(0);
      expect(clock.countTimers(), 'DELETE clears the heartbeat timer').to.equal(timersBefore - 1);
      const attempts = rx.attempts;
      clock.tick(10 * 2 * MINUTE);
      expect(mgr.queueOf(String(created.body.Id))).to.equal(undefined);
      await marker(rig, other, 'after the delete');
      expect(rx.attempts, 'nothing more for the deleted subscription').to.equal(attempts);
    } finally {
      await other.close();
    }
  });

  it('validates SendHeartbeat and HeartbeatIntervalMinutes (400 with the DMTF Base message), shows them, and takes them on creation only', async () => {
    const bad = async (body: Record<string, unknown>): Promise<string> => {
      const r = await rig.rf('POST', SUBS, { Destination: rx.url, ...body });
      expect(r.status, JSON.stringify(body)).to.equal(400);
      return firstMessageId(r);
    };
    expect(await bad({ SendHeartbeat: 'yes' })).to.match(/\.PropertyValueTypeError$/);
    expect(await bad({ SendHeartbeat: 1 })).to.match(/\.PropertyValueTypeError$/);
    expect(await bad({ SendHeartbeat: true, HeartbeatIntervalMinutes: '5' })).to.match(/\.PropertyValueTypeError$/);
    expect(await bad({ SendHeartbeat: true, HeartbeatIntervalMinutes: 1.5 })).to.match(/\.PropertyValueTypeError$/);
    expect(await bad({ SendHeartbeat: true, HeartbeatIntervalMinutes: null })).to.match(/\.PropertyValueTypeError$/);
    expect(await bad({ SendHeartbeat: true, HeartbeatIntervalMinutes: 0 })).to.match(/\.PropertyValueOutOfRange$/);
    expect(await bad({ SendHeartbeat: true, HeartbeatIntervalMinutes: -1 })).to.match(/\.PropertyValueOutOfRange$/);
    expect(await bad({ SendHeartbeat: true, HeartbeatIntervalMinutes: 65_536 })).to.match(/\.PropertyValueOutOfRange$/);
    // an interval alone asks for nothing (the schema: no SendHeartbeat, no periodic event)
    expect(await bad({ HeartbeatIntervalMinutes: 5 })).to.match(/\.PropertyMissing$/);
    const range = await rig.rf('POST', SUBS, { Destination: rx.url, SendHeartbeat: true, HeartbeatIntervalMinutes: 0 });
    const info = (range.body.error as { '@Message.ExtendedInfo': { MessageArgs: string[]; RelatedProperties: string[] }[] })['@Message.ExtendedInfo'][0]!;
    expect(info.MessageArgs).to.deep.equal(['0', 'HeartbeatIntervalMinutes']);
    expect(info.RelatedProperties).to.deep.equal(['#/HeartbeatIntervalMinutes']);
    expect(rig.agent.events.subscriptions.list(), 'nothing was created by a bad body').to.deep.equal([]);
    expect(rig.agent.events.subscriptions.heartbeatTimers).to.equal(0);

    // the bounds themselves are accepted; SendHeartbeat alone takes the default interval
    const made: Record<string, unknown>[] = [];
    for (const body of [
      { SendHeartbeat: true, HeartbeatIntervalMinutes: 1 },
      { SendHeartbeat: true, HeartbeatIntervalMinutes: 65_535 },
      { SendHeartbeat: true },
      { SendHeartbeat: false, HeartbeatIntervalMinutes: 7 },
      { SendHeartbeat: false },
    ]) {
      const r = await rig.rf('POST', SUBS, { Destination: rx.url, ...body });
      expect(r.status, JSON.stringify(body)).to.equal(201);
      expectConforms('EventDestination_EventDestination', r.body);
      made.push(r.body);
    }
    expect(made.map((b) => [b.SendHeartbeat, b.HeartbeatIntervalMinutes])).to.deep.equal([
      [true, 1],
      [true, 65_535],
      [true, 10],
      [false, 7],
      [false, undefined],
    ]);
    // a timer for each subscription that sends heartbeats, none for the others
    expect(rig.agent.events.subscriptions.heartbeatTimers).to.equal(3);

    // read-only after creation (OData.Permission/Read): PATCH answers PropertyNotWritable, changes nothing
    const uri = String(made[0]!['@odata.id']);
    for (const body of [{ SendHeartbeat: false }, { HeartbeatIntervalMinutes: 30 }]) {
      const r = await rig.rf('PATCH', uri, body);
      expect(r.status, JSON.stringify(body)).to.equal(400);
      expect(firstMessageId(r)).to.match(/\.PropertyNotWritable$/);
    }
    expect((await rig.rf('GET', uri)).body).to.include({ SendHeartbeat: true, HeartbeatIntervalMinutes: 1 });
    expect(rig.agent.events.subscriptions.heartbeatTimers).to.equal(3);
  });

  it('a heartbeat follows the retry policy: a failing destination is retried, then suspended; none is queued while suspended, delivery resumes with Enabled (fake clock)', async () => {
    clock = sinon.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    expect((await rig.rf('PATCH', '/redfish/v1/EventService', { DeliveryRetryAttempts: 1 })).status).to.equal(200);
    rx.status = 500;
    const created = await rig.rf('POST', SUBS, { Destination: rx.url, SendHeartbeat: true, HeartbeatIntervalMinutes: 1, DeliveryRetryPolicy: 'SuspendRetries' });
    const id = String(created.body.Id);
    const mgr = rig.agent.events.subscriptions;
    clock.tick(MINUTE);
    await until(() => mgr.get(id)?.state === 'Disabled', 'the subscription to be suspended');
    expect(rx.attempts, 'one attempt and one retry').to.equal(2);
    expect(mgr.queueOf(id)).to.include({ length: 1, lastError: 'HTTP 500' });
    // suspended: the timer goes on, but a late "the service is functional" would say nothing
    clock.tick(5 * MINUTE);
    expect(mgr.queueOf(id)?.length).to.equal(1);
    expect(rx.attempts).to.equal(2);
    rx.status = 204;
    expect((await rig.rf('PATCH', `${SUBS}/${id}`, { Status: { State: 'Enabled' } })).status).to.equal(200);
    await until(() => beats(rx).length === 1, 'the queued heartbeat after resume');
    // its answer back at the agent (a heartbeat still in the queue holds the next one back)
    await until(() => mgr.queueOf(id)?.length === 0, 'the queue to drain');
    clock.tick(MINUTE);
    await until(() => beats(rx).length === 2, 'the next heartbeat');
    // numbered as they were queued: none was made while suspended
    expect(beats(rx).map((e) => e.EventId)).to.deep.equal(['Heartbeat1', 'Heartbeat2']);
  });
});

describe('SubscriptionManager heartbeats: at most one waits in a queue, none after close (fake clock)', function () {
  it('a destination that never answers holds one heartbeat, whatever the number of intervals', async () => {
    const clock = sinon.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const posts: string[] = [];
    const mgr = new SubscriptionManager({
      sleep: async () => undefined,
      post: (url) => {
        posts.push(url);
        return new Promise<number>(() => undefined); // never answers
      },
    });
    try {
      const rec = await mgr.create({ destination: 'http://127.0.0.1:9/hb', owner: 'admin', deliveryRetryPolicy: 'RetryForever', sendHeartbeat: true, heartbeatIntervalMinutes: 3 });
      expect(mgr.heartbeatTimers).to.equal(1);
      clock.tick(3 * MINUTE);
      expect(mgr.queueOf(rec.id)?.length).to.equal(1);
      clock.tick(30 * 3 * MINUTE);
      expect(mgr.queueOf(rec.id)?.length, 'one heartbeat in flight, none piled behind it').to.equal(1);
      expect(posts).to.deep.equal(['http://127.0.0.1:9/hb']);
      // other events still queue behind it
      mgr.publish({ id: 1, time: new Date(), kind: 'test', registryPrefix: 'ResourceEvent', messageId: 'ResourceEvent.1.4.3.TestMessage', args: [], message: 'x', severity: 'OK', origin: '/redfish/v1', resourceType: 'EventService', reason: 'TestEvent' } satisfies BmcEvent);
      expect(mgr.queueOf(rec.id)?.length).to.equal(2);
      const timers = clock.countTimers();
      mgr.close();
      expect(mgr.heartbeatTimers).to.equal(0);
      expect(clock.countTimers()).to.equal(timers - 1);
    } finally {
      mgr.close();
      clock.restore();
    }
  });

  it('TerminateAfterRetries: a heartbeat that keeps failing deletes the subscription, and its timer with it', async () => {
    const clock = sinon.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    let posts = 0;
    const mgr = new SubscriptionManager({
      sleep: async () => undefined,
      post: async () => {
        posts++;
        return 503;
      },
    });
    try {
      const rec = await mgr.create({ destination: 'http://127.0.0.1:9/hb', owner: 'admin', deliveryRetryPolicy: 'TerminateAfterRetries', sendHeartbeat: true, heartbeatIntervalMinutes: 1 });
      const timers = clock.countTimers();
      clock.tick(MINUTE);
      await until(() => mgr.get(rec.id) === undefined, 'the subscription to be deleted');
      expect(posts, 'the first attempt and DeliveryRetryAttempts (3) retries').to.equal(4);
      expect(mgr.heartbeatTimers).to.equal(0);
      expect(clock.countTimers()).to.equal(timers - 1);
    } finally {
      mgr.close();
      clock.restore();
    }
  });

  it('a 65535-minute interval (beyond a Node timer) sends at 65535 minutes, not before', async () => {
    const clock = sinon.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const bodies: string[] = [];
    const mgr = new SubscriptionManager({
      post: async (_url, _h, body) => {
        bodies.push(body);
        return 204;
      },
    });
    try {
      const rec = await mgr.create({ destination: 'http://127.0.0.1:9/hb', owner: 'admin', deliveryRetryPolicy: 'SuspendRetries', sendHeartbeat: true, heartbeatIntervalMinutes: 65_535 });
      clock.tick(65_534 * MINUTE);
      await Promise.resolve();
      expect(mgr.queueOf(rec.id)?.length).to.equal(0);
      expect(bodies).to.have.length(0);
      clock.tick(MINUTE);
      await until(() => bodies.length === 1, 'the heartbeat');
      expect((JSON.parse(bodies[0]!) as { Events: { MessageId: string }[] }).Events[0]!.MessageId).to.equal(FUNCTIONAL);
    } finally {
      mgr.close();
      clock.restore();
    }
  });
});

describe('Redfish EventService: heartbeat subscriptions survive an agent restart (simulator state file)', function () {
  it('keeps SendHeartbeat and the interval in the state file; the restarted agent sends heartbeats, and its "service started" reaches a matching subscriber', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'virtbmc-heartbeat-'));
    const file = join(dir, 'subscriptions.json');
    const rx = await startEventReceiver();
    let clock: sinon.SinonFakeTimers | undefined;
    try {
      let rig = await startRig({ subscriptions: { ...immediate, persistence: new FilePersistence(file) } });
      const created = await rig.rf('POST', SUBS, { Destination: rx.url, Context: 'kept', SendHeartbeat: true, HeartbeatIntervalMinutes: 3, RegistryPrefixes: ['HeartbeatEvent'] });
      expect(created.status).to.equal(201);
      const uri = created.headers.get('location')!;
      await rig.close();
      const saved = (JSON.parse(readFileSync(file, 'utf8')) as { subscriptions: Record<string, unknown>[] }).subscriptions;
      expect(saved).to.have.length(1);
      expect(saved[0]).to.include({ sendHeartbeat: true, heartbeatIntervalMinutes: 3 });
      // no heartbeat yet; its stop is an event of the HeartbeatEvent registry, taken before close resolved
      expect(events(rx).map((e) => e.MessageId), 'the first agent sent only its stop').to.deep.equal([SHUTTING_DOWN]);
      rx.received.length = 0;

      // the timer of a loaded subscription starts with the agent: the clock is faked before it
      clock = sinon.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
      rig = await startRig({ subscriptions: { ...immediate, persistence: new FilePersistence(file) } });
      try {
        const shown = await rig.rf('GET', uri);
        expect(shown.status).to.equal(200);
        expect(shown.body).to.include({ SendHeartbeat: true, HeartbeatIntervalMinutes: 3, Context: 'kept' });
        expect(rig.agent.events.subscriptions.heartbeatTimers).to.equal(1);
        // RedfishServiceStarted is an event: this subscriber (RegistryPrefixes HeartbeatEvent) gets it
        await rx.waitFor((got) => got.some((x) => x.body.Events.some((e) => e.MessageId === STARTED)), 'RedfishServiceStarted');
        const started = events(rx).find((e) => e.MessageId === STARTED)!;
        expect(started.OriginOfCondition).to.deep.equal({ '@odata.id': '/redfish/v1/Managers/BMC' });
        expect(started).to.have.property('LogEntry');
        expect(beats(rx)).to.have.length(0);
        clock.tick(3 * MINUTE);
        await rx.waitFor(() => beats(rx).length === 1, 'a heartbeat after the restart');
        expect(rx.received.find((x) => x.body.Events.some((e) => e.MessageId === FUNCTIONAL))!.body.Context).to.equal('kept');
      } finally {
        await rig.close();
      }
      expect(rig.agent.events.subscriptions.heartbeatTimers).to.equal(0);
    } finally {
      clock?.restore();
      await rx.close();
    }
  });
});

describe('Redfish HeartbeatEvent registry and the "service started" log entry', function () {
  let rig: Rig;
  before(async () => {
    rig = await startRig();
  });
  after(async () => {
    await rig.close();
  });

  it('serves the HeartbeatEvent registry: listed, its file resolvable through Location, the DMTF document verbatim; EventService names it', async () => {
    const list = await rig.rf('GET', '/redfish/v1/Registries', undefined, READONLY);
    expect((list.body.Members as { '@odata.id': string }[]).map((m) => m['@odata.id'])).to.include('/redfish/v1/Registries/HeartbeatEvent');
    const file = await rig.rf('GET', '/redfish/v1/Registries/HeartbeatEvent', undefined, READONLY);
    expect(file.status).to.equal(200);
    expectConforms('MessageRegistryFile_MessageRegistryFile', file.body);
    expect(file.body).to.include({ Id: 'HeartbeatEvent', Registry: 'HeartbeatEvent.1.1' });
    const loc = (file.body.Location as { Uri: string; PublicationUri: string }[])[0]!;
    expect(loc.PublicationUri).to.equal('https://redfish.dmtf.org/registries/HeartbeatEvent.1.1.1.json');
    const reg = await rig.rf('GET', loc.Uri, undefined, READONLY);
    expect(reg.status).to.equal(200);
    expect(reg.body).to.deep.equal(heartbeatEventRegistry);
    expect(Object.keys(reg.body.Messages as object)).to.include.members(['RedfishServiceFunctional', 'RedfishServiceStarted']);
    expect((await rig.rf('GET', '/redfish/v1/Registries/HeartbeatEvent/HeartbeatEvent.1.0.0')).status).to.equal(404);
    const es = await rig.rf('GET', '/redfish/v1/EventService');
    expect(es.body.RegistryPrefixes).to.include('HeartbeatEvent');
  });

  it('a fresh agent logs one RedfishServiceStarted (Severity OK, origin the Manager, which resolves); the SEL shows it as a System Event', async () => {
    const members = (await rig.rf('GET', ENTRIES, undefined, READONLY)).body.Members as Record<string, unknown>[];
    const started = members.filter((m) => m.MessageId === STARTED);
    expect(started).to.have.length(1);
    const entry = started[0]!;
    expect(entry).to.include({ EntryType: 'Event', Severity: 'OK', Message: 'Redfish service started.' });
    expect(entry.MessageArgs).to.deep.equal([]);
    const origin = (entry.Links as { OriginOfCondition?: { '@odata.id': string } }).OriginOfCondition?.['@odata.id'];
    expect(origin).to.equal('/redfish/v1/Managers/BMC');
    expect((await rig.rf('GET', origin!)).status).to.equal(200);
    const one = await rig.rf('GET', String(entry['@odata.id']));
    expect(one.status).to.equal(200);
    expectConforms('LogEntry_LogEntry', one.body);
    // IPMI SEL (same history): sensor type 12h System Event, offset 00h, generator the BMC
    const ev = rig.agent.events.hub.log().find((e) => e.messageId === STARTED)!;
    expect(ev.kind).to.equal('service');
    const sel = selRecord(ev);
    expect([sel[2], sel.readUInt16LE(7), sel[10], sel[13]]).to.deep.equal([0x02, 0x20, 0x12, 0x00]);
  });
});

describe('shared mode: each system\'s manager log says its Redfish service started', function () {
  it('one RedfishServiceStarted per system, under its own manager; a system (re)joining the running listener gets its own', async () => {
    const accounts = {
      'ns.vm-a': [{ username: 'alice', password: 'alice-pw', role: 'Administrator' as const }],
      'ns.vm-b': [{ username: 'bob', password: 'bob-pw-2', role: 'Administrator' as const }],
      'ns.vm-c': [{ username: 'carol', password: 'carol-pw-3', role: 'Administrator' as const }],
    };
    const systems = (ids: string[]): FleetSystem[] => ids.map((id) => ({ id, namespace: 'ns', vm: id.slice(3), ipmiPort: 0 }));
    const fleet = await startTestFleet({ accounts });
    try {
      const entriesOf = async (id: string, user: { username: string; password: string }): Promise<Record<string, unknown>[]> => {
        const res = await fetch(`${fleet.base}/redfish/v1/Managers/${id}/LogServices/EventLog/Entries`, { headers: { authorization: auth(user) } });
        expect(res.status, id).to.equal(200);
        return ((await res.json()) as { Members: Record<string, unknown>[] }).Members;
      };
      for (const [id, [user]] of Object.entries(accounts)) {
        const started = (await entriesOf(id, user!)).filter((m) => m.MessageId === STARTED);
        expect(started, id).to.have.length(1);
        expect(started[0]).to.include({ Severity: 'OK' });
        const origin = (started[0]!.Links as { OriginOfCondition: { '@odata.id': string } }).OriginOfCondition['@odata.id'];
        expect(origin).to.equal(`/redfish/v1/Managers/${id}`);
        const res = await fetch(`${fleet.base}${origin}`, { headers: { authorization: auth(user!) } });
        expect(res.status, origin).to.equal(200);
      }
      // vm-c leaves and joins again (a new event hub): one entry of its own; the others still one each
      await fleet.agent.apply(systems(['ns.vm-a', 'ns.vm-b']));
      await fleet.agent.apply(systems(['ns.vm-a', 'ns.vm-b', 'ns.vm-c']));
      for (const [id, [user]] of Object.entries(accounts)) {
        expect((await entriesOf(id, user!)).filter((m) => m.MessageId === STARTED), id).to.have.length(1);
      }
    } finally {
      await fleet.agent.close();
    }
  });
});

describe('the service stops: RedfishServiceShuttingDown (HeartbeatEvent)', function () {
  this.timeout(20_000);

  it('per-VM: a live subscriber has it when close() resolves; a hanging or refusing one does not hold the stop beyond the bound', async () => {
    const live = await startEventReceiver();
    // accepts and never answers (delivery would wait its 10 s timeout)
    const held: net.Socket[] = [];
    const hanging = net.createServer((sock) => void held.push(sock));
    await new Promise<void>((r) => hanging.listen(0, '127.0.0.1', r));
    // a port nobody listens on: the POST is refused at once
    const refusing = net.createServer();
    await new Promise<void>((r) => refusing.listen(0, '127.0.0.1', r));
    const refusedPort = (refusing.address() as net.AddressInfo).port;
    await new Promise<void>((r) => refusing.close(() => r()));
    const rig = await startRig({ subscriptions: { ...immediate, shutdownSettleMs: 500 } });
    try {
      for (const dest of [live.url, `http://127.0.0.1:${(hanging.address() as net.AddressInfo).port}/events`, `http://127.0.0.1:${refusedPort}/events`]) {
        expect((await rig.rf('POST', SUBS, { Destination: dest, Protocol: 'Redfish', RegistryPrefixes: ['HeartbeatEvent'] })).status, dest).to.equal(201);
      }
      expect(events(live).map((e) => e.MessageId), 'nothing of this registry before the stop').to.deep.equal([]);
      const t0 = Date.now();
      await rig.close();
      const took = Date.now() - t0;
      const got = events(live);
      expect(got.map((e) => e.MessageId)).to.deep.equal([SHUTTING_DOWN]);
      expect(got[0]).to.include({ MessageSeverity: 'OK' });
      expect(got[0]!.OriginOfCondition).to.deep.equal({ '@odata.id': '/redfish/v1/Managers/BMC' });
      // the hanging destination held it for the bound (0.5 s), not its 10 s delivery timeout
      expect(took, `close took ${took} ms`).to.be.below(5_000);
      expect(rig.agent.events.hub.log().map((e) => e.messageId)).to.include(SHUTTING_DOWN);
    } finally {
      await rig.close();
      await live.close();
      for (const sock of held) sock.destroy();
      await new Promise<void>((r) => hanging.close(() => r()));
    }
  });

  it('per-VM: without subscribers the stop waits for nothing (settle resolves at once)', async () => {
    const rig = await startRig();
    try {
      const done = rig.agent.events.subscriptions.settle(60_000);
      let settled = false;
      void done.then(() => (settled = true));
      await Promise.resolve();
      expect(settled).to.equal(true);
    } finally {
      await rig.close();
    }
  });

  it('shared mode: a system leaving the agent tells its own subscriber, under its own manager id; the others hear nothing', async () => {
    const accounts = {
      'ns.vm-a': [{ username: 'alice', password: 'alice-pw', role: 'Administrator' as const }],
      'ns.vm-b': [{ username: 'bob', password: 'bob-pw-2', role: 'Administrator' as const }],
    };
    const rxA = await startEventReceiver();
    const rxB = await startEventReceiver();
    const fleet = await startTestFleet({ accounts });
    try {
      for (const [rx, user] of [[rxA, accounts['ns.vm-a'][0]!], [rxB, accounts['ns.vm-b'][0]!]] as const) {
        const res = await fetch(`${fleet.base}${SUBS}`, {
          method: 'POST',
          headers: { authorization: auth(user), 'content-type': 'application/json' },
          body: JSON.stringify({ Destination: rx.url, Protocol: 'Redfish', RegistryPrefixes: ['HeartbeatEvent'] }),
        });
        expect(res.status).to.equal(201);
      }
      await fleet.agent.apply([{ id: 'ns.vm-a', namespace: 'ns', vm: 'vm-a', ipmiPort: 0 }]);
      // apply resolved: vm-b's stop was announced and taken before vm-b was stopped
      expect(events(rxB).map((e) => e.MessageId)).to.deep.equal([SHUTTING_DOWN]);
      expect(events(rxB)[0]!.OriginOfCondition).to.deep.equal({ '@odata.id': '/redfish/v1/Managers/ns.vm-b' });
      expect(events(rxA), 'vm-a still served').to.deep.equal([]);
      await fleet.agent.close();
      expect(events(rxA).map((e) => e.MessageId)).to.deep.equal([SHUTTING_DOWN]);
      expect(events(rxA)[0]!.OriginOfCondition).to.deep.equal({ '@odata.id': '/redfish/v1/Managers/ns.vm-a' });
    } finally {
      await fleet.agent.close();
      await rxA.close();
      await rxB.close();
    }
  });
});
