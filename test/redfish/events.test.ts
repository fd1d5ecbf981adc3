/**
 * Redfish EventService (issue 12): subscriptions with push delivery to a subscriber on 127.0.0.1,
 * filters, write-only HttpHeaders, retries and suspension with a failing subscriber, SubmitTestEvent,
 * the Manager EventLog and ClearLog, persistence across an agent restart, DMTF schema checks.
 */
import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { startAgent, type Agent } from '../../src/agent/agent.js';
import { SimulatedMachine } from '../../src/backend/simulator/simulator.js';
import { nullLogger } from '../../src/common/logger.js';
import { odataTypes } from '../../generated/redfish/routes.js';
import { FilePersistence } from '../../src/events/persistence.js';
import type { StartEventsOptions } from '../../src/events/index.js';
import { ADMIN, OPERATOR, READONLY, redfishClient, type RedfishReply } from '../helpers/agent.js';
import { haveCommand, requireClient } from '../helpers/clients.js';
import { startEventReceiver, type EventReceiver } from '../helpers/event-receiver.js';
import { run } from '../helpers/exec.js';
import { expectConforms } from '../helpers/redfish-schema.js';

const SUBS = '/redfish/v1/EventService/Subscriptions';
const POWER_ON = 'ResourceEvent.1.4.3.ResourcePoweredOn';

type Reply = RedfishReply;

interface Rig {
  agent: Agent;
  sim: SimulatedMachine;
  rf: (method: string, path: string, body?: unknown, user?: typeof ADMIN) => Promise<Reply>;
  ipmiPort: number;
  close(): Promise<void>;
}

async function startRig(events: StartEventsOptions = {}, sim = new SimulatedMachine({ powerOnDelayMs: 0, powerOffDelayMs: 0 })): Promise<Rig> {
  const agent = await startAgent({
    machine: sim,
    users: [ADMIN, OPERATOR, READONLY],
    logger: nullLogger(),
    address: '127.0.0.1',
    ipmi: { port: 0 },
    redfish: { port: 0 },
    events: { bridge: { healthIntervalMs: 0 }, ...events },
  });
  const base = `http://127.0.0.1:${agent.redfish!.port}`;
  const rf = redfishClient(base);
  return { agent, sim, rf, ipmiPort: agent.ipmi!.port, close: () => agent.close() };
}

/** Deliveries never wait on the wall clock in these tests: retries follow at once. */
const immediate = { sleep: async (): Promise<void> => undefined };

describe('Redfish EventService', function () {
  let rig: Rig;
  let rx: EventReceiver;
  beforeEach(async () => {
    rx = await startEventReceiver();
    rig = await startRig({ subscriptions: immediate });
  });
  afterEach(async () => {
    await rig.close();
    await rx.close();
  });

  it('is linked from the ServiceRoot, conforms to EventService.v1_12_0 and names only registries it serves', async () => {
    const root = await rig.rf('GET', '/redfish/v1');
    expect(root.body.EventService).to.deep.equal({ '@odata.id': '/redfish/v1/EventService' });
    const es = await rig.rf('GET', '/redfish/v1/EventService', undefined, READONLY);
    expect(es.status).to.equal(200);
    expectConforms('EventService_EventService', es.body);
    expect(es.body).to.include({ ServiceEnabled: true, ServerSentEventUri: '/redfish/v1/EventService/SSE', DeliveryRetryAttempts: 3 });
    expect(es.body.EventFormatTypes).to.deep.equal(['Event']);
    const regs = await rig.rf('GET', '/redfish/v1/Registries');
    const served = (regs.body.Members as { '@odata.id': string }[]).map((m) => m['@odata.id'].split('/').pop());
    for (const p of es.body.RegistryPrefixes as string[]) expect(served, p).to.include(p);
    const reg = await rig.rf('GET', '/redfish/v1/Registries/ResourceEvent/ResourceEvent.1.4.3');
    expect(reg.status).to.equal(200);
    expect((reg.body.Messages as Record<string, unknown>).ResourcePoweredOn).to.be.an('object');
  });

  it('a subscriber on 127.0.0.1 receives the power-on event of `ipmitool power on` with its MessageId, OriginOfCondition and Context', async function () {
    requireClient(this, haveCommand('ipmitool'), 'ipmitool');
    const created = await rig.rf('POST', SUBS, { Destination: rx.url, Context: 'ctx-1', Protocol: 'Redfish', RegistryPrefixes: ['ResourceEvent'] });
    expect(created.status).to.equal(201);
    expect(created.headers.get('location')).to.equal(`${SUBS}/${String(created.body.Id)}`);
    expectConforms('EventDestination_EventDestination', created.body);
    const r = await run('ipmitool', ['-I', 'lanplus', '-H', '127.0.0.1', '-p', String(rig.ipmiPort), '-U', ADMIN.username, '-P', ADMIN.password, '-N', '3', '-R', '3', 'power', 'on']);
    expect(r.code, r.out).to.equal(0);
    await rx.waitFor((got) => got.some((x) => x.body.Events.some((e) => e.MessageId === POWER_ON)), 'ResourcePoweredOn');
    const hit = rx.received.find((x) => x.body.Events.some((e) => e.MessageId === POWER_ON))!;
    expect(hit.body).to.have.property('@odata.type', odataTypes.Event);
    expect(hit.body.Context).to.equal('ctx-1');
    const ev = hit.body.Events.find((e) => e.MessageId === POWER_ON)!;
    expect(ev.OriginOfCondition).to.deep.equal({ '@odata.id': '/redfish/v1/Systems/1' });
    expect(ev.MessageArgs).to.deep.equal(['/redfish/v1/Systems/1']);
    // RegistryPrefixes filter: the IPMI login (Base/ResourceEvent session events) — no Base message reached it
    expect(rx.received.flatMap((x) => x.body.Events).every((e) => e.MessageId.startsWith('ResourceEvent.'))).to.equal(true);
  });

  it('validates subscriptions: http(s) only, no credentials in the URL, known properties and registries, and the privilege', async () => {
    const bad = async (body: unknown, status = 400): Promise<string> => {
      const r = await rig.rf('POST', SUBS, body);
      expect(r.status, JSON.stringify(body)).to.equal(status);
      return ((r.body.error as { '@Message.ExtendedInfo': { MessageId: string }[] })['@Message.ExtendedInfo'][0] as { MessageId: string }).MessageId;
    };
    expect(await bad({ Destination: 'ftp://127.0.0.1/x' })).to.match(/PropertyValueFormatError$/);
    expect(await bad({ Destination: 'not a url' })).to.match(/PropertyValueFormatError$/);
    expect(await bad({ Destination: 'http://user:secret@127.0.0.1/x' })).to.match(/PropertyValueFormatError$/);
    expect(await bad({ Context: 'x' })).to.match(/CreateFailedMissingReqProperties$/);
    expect(await bad({ Destination: rx.url, Protocol: 'SMTP' })).to.match(/PropertyValueNotInList$/);
    expect(await bad({ Destination: rx.url, RegistryPrefixes: ['NoSuch'] })).to.match(/PropertyValueNotInList$/);
    expect(await bad({ Destination: rx.url, Bogus: 1 })).to.match(/PropertyUnknown$/);
    expect(await bad({ Destination: rx.url, HttpHeaders: [{ 'Content-Length': '1' }] })).to.match(/PropertyValueNotInList$/);
    const ro = await rig.rf('POST', SUBS, { Destination: rx.url }, READONLY);
    expect(ro.status).to.equal(403);
    const list = await rig.rf('GET', SUBS);
    expect(list.body['Members@odata.count']).to.equal(0);
  });

  it('HttpHeaders are sent with each event and never shown; PATCH changes Context; DELETE ends deliveries', async () => {
    const created = await rig.rf('POST', SUBS, { Destination: rx.url, HttpHeaders: [{ Authorization: 'Bearer s3cret-token' }] });
    const uri = created.headers.get('location')!;
    expect(JSON.stringify(created.body)).not.to.contain('s3cret');
    expect(JSON.stringify((await rig.rf('GET', uri)).body)).not.to.contain('s3cret');
    const patched = await rig.rf('PATCH', uri, { Context: 'new-context' });
    expect(patched.status).to.equal(200);
    expect(patched.body.Context).to.equal('new-context');
    expect((await rig.rf('PATCH', uri, { Destination: 'http://127.0.0.1:1/' })).status).to.equal(400);
    expect((await rig.rf('POST', '/redfish/v1/EventService/Actions/EventService.SubmitTestEvent', { MessageId: 'ResourceEvent.1.4.3.TestMessage' })).status).to.equal(204);
    await rx.waitFor((got) => got.length >= 1, 'the test event');
    const first = rx.received[0]!;
    expect(first.headers.authorization).to.equal('Bearer s3cret-token');
    expect(first.body.Context).to.equal('new-context');
    expect(first.body.Events[0]!.MessageId).to.equal('ResourceEvent.1.4.3.TestMessage');
    expect((await rig.rf('DELETE', uri)).status).to.equal(204);
    expect((await rig.rf('GET', uri)).status).to.equal(404);
    const before = rx.attempts;
    await rig.sim.power('on');
    // a later subscriber sees later events; the deleted one got nothing more
    const other = await startEventReceiver();
    try {
      await rig.rf('POST', SUBS, { Destination: other.url });
      await rig.sim.power('forceOff');
      await other.waitFor((got) => got.some((x) => x.body.Events.some((e) => e.MessageId.endsWith('ResourcePoweredOff'))), 'power off at the new subscriber');
      expect(rx.attempts).to.equal(before);
    } finally {
      await other.close();
    }
  });

  it('retries a failing subscriber DeliveryRetryAttempts times, then suspends it (Status.State Disabled); re-enabling delivers what was queued', async () => {
    expect((await rig.rf('PATCH', '/redfish/v1/EventService', { DeliveryRetryAttempts: 2 })).status).to.equal(200);
    rx.status = 500;
    const created = await rig.rf('POST', SUBS, { Destination: rx.url, DeliveryRetryPolicy: 'SuspendRetries' });
    const uri = created.headers.get('location')!;
    await rig.sim.power('on');
    const mgr = rig.agent.events.subscriptions;
    const id = String(created.body.Id);
    const deadline = Date.now() + 10_000;
    while (mgr.get(id)?.state !== 'Disabled') {
      if (Date.now() > deadline) throw new Error('not suspended');
      await new Promise((r) => setTimeout(r, 20));
    }
    // one first attempt + 2 retries, then no more
    expect(rx.attempts).to.equal(3);
    const shown = await rig.rf('GET', uri);
    expect(shown.body.Status).to.deep.equal({ State: 'Disabled', Health: 'Warning', '@Redfish.WriteableProperties': ['State'] });
    await rig.sim.power('forceOff'); // queued while suspended, not sent
    expect(rx.attempts).to.equal(3);
    expect(mgr.queueOf(id)?.length).to.be.greaterThan(1);
    rx.status = 204;
    expect((await rig.rf('PATCH', uri, { Status: { State: 'Enabled' } })).status).to.equal(200);
    await rx.waitFor((got) => got.some((x) => x.body.Events.some((e) => e.MessageId.endsWith('ResourcePoweredOff'))), 'queued events after resume');
    const ids = rx.received.map((x) => x.body.Events[0]!.MessageId);
    expect(ids.indexOf(POWER_ON)).to.be.lessThan(ids.indexOf('ResourceEvent.1.4.3.ResourcePoweredOff'));
  });

  it('TerminateAfterRetries deletes the subscription after the retries', async () => {
    expect((await rig.rf('PATCH', '/redfish/v1/EventService', { DeliveryRetryAttempts: 1 })).status).to.equal(200);
    rx.status = 503;
    const created = await rig.rf('POST', SUBS, { Destination: rx.url, DeliveryRetryPolicy: 'TerminateAfterRetries' });
    await rig.sim.power('on');
    const deadline = Date.now() + 10_000;
    while (rig.agent.events.subscriptions.get(String(created.body.Id))) {
      if (Date.now() > deadline) throw new Error('not terminated');
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(rx.attempts).to.equal(2);
    expect((await rig.rf('GET', created.headers.get('location')!)).status).to.equal(404);
  });

  it('the Manager EventLog lists the same events as LogEntry resources; ClearLog empties it', async () => {
    const mgr = await rig.rf('GET', '/redfish/v1/Managers/BMC');
    expect(mgr.body.LogServices).to.deep.equal({ '@odata.id': '/redfish/v1/Managers/BMC/LogServices' });
    const services = await rig.rf('GET', '/redfish/v1/Managers/BMC/LogServices');
    expectConforms('LogServiceCollection_LogServiceCollection', services.body);
    const log = await rig.rf('GET', '/redfish/v1/Managers/BMC/LogServices/EventLog');
    expectConforms('LogService_LogService', log.body);
    expect(log.body).to.include({ OverWritePolicy: 'WrapsWhenFull', MaxNumberOfRecords: 1000 });
    await rig.sim.power('on');
    const entries = await rig.rf('GET', '/redfish/v1/Managers/BMC/LogServices/EventLog/Entries', undefined, READONLY);
    expectConforms('LogEntryCollection_LogEntryCollection', entries.body);
    const members = entries.body.Members as Record<string, unknown>[];
    const on = members.find((m) => m.MessageId === POWER_ON)!;
    expect(on).to.include({ EntryType: 'Event', Severity: 'OK', Message: "The resource '/redfish/v1/Systems/1' has powered on." });
    const one = await rig.rf('GET', on['@odata.id'] as string);
    expectConforms('LogEntry_LogEntry', one.body);
    expect((await rig.rf('POST', '/redfish/v1/Managers/BMC/LogServices/EventLog/Actions/LogService.ClearLog', {}, OPERATOR)).status).to.equal(403);
    expect((await rig.rf('POST', '/redfish/v1/Managers/BMC/LogServices/EventLog/Actions/LogService.ClearLog', {})).status).to.equal(204);
    const after = await rig.rf('GET', '/redfish/v1/Managers/BMC/LogServices/EventLog/Entries');
    expect(after.body['Members@odata.count']).to.equal(0);
    expect((await rig.rf('GET', on['@odata.id'] as string)).status).to.equal(404);
  });

  it('a log entry links its origin only while it resolves: the session of a login until it ends, a test event only to a fixed resource', async () => {
    const ENTRIES = '/redfish/v1/Managers/BMC/LogServices/EventLog/Entries';
    const good = await rig.rf('POST', '/redfish/v1/SessionService/Sessions', { UserName: 'admin', Password: ADMIN.password });
    expect(good.status).to.equal(201);
    const sessionUri = good.headers.get('location')!;
    const originOf = (m: Record<string, unknown>): unknown => (m.Links as { OriginOfCondition?: { '@odata.id': string } }).OriginOfCondition?.['@odata.id'];
    const loginEntry = async (): Promise<Record<string, unknown>> => {
      const all = (await rig.rf('GET', ENTRIES)).body.Members as Record<string, unknown>[];
      return all.find((m) => m.MessageId === 'ResourceEvent.1.4.3.ResourceCreated')!;
    };
    const open = await loginEntry();
    expect(originOf(open)).to.equal(sessionUri);
    expect((await rig.rf('GET', originOf(open) as string)).status).to.equal(200);
    expect((await rig.rf('DELETE', sessionUri)).status).to.equal(204);
    const closed = await loginEntry();
    expect(closed.Links).to.deep.equal({});
    const single = await rig.rf('GET', closed['@odata.id'] as string);
    expectConforms('LogEntry_LogEntry', single.body);
    expect(single.body.Links).to.deep.equal({});
    // every link left in the log resolves
    for (const origin of ['/redfish/v1/Systems/1', '/redfish/v1/NoSuchThing']) {
      expect((await rig.rf('POST', '/redfish/v1/EventService/Actions/EventService.SubmitTestEvent', { OriginOfCondition: origin })).status).to.equal(204);
    }
    const all = (await rig.rf('GET', ENTRIES)).body.Members as Record<string, unknown>[];
    const tests = all.filter((m) => m.MessageId === 'TestEvent' || String(m.MessageId).endsWith('TestMessage'));
    expect(tests.map(originOf)).to.deep.equal(['/redfish/v1/Systems/1', undefined]);
    for (const m of all) {
      const o = originOf(m);
      if (typeof o === 'string') expect((await rig.rf('GET', o)).status, o).to.equal(200);
    }
  });

  it('task state changes, logins and failed logins are events too', async () => {
    const bad = await fetch(`http://127.0.0.1:${rig.agent.redfish!.port}/redfish/v1/SessionService/Sessions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ UserName: 'admin', Password: 'wrong-password' }),
    });
    expect(bad.status).to.equal(401);
    const good = await rig.rf('POST', '/redfish/v1/SessionService/Sessions', { UserName: 'admin', Password: ADMIN.password });
    expect(good.status).to.equal(201);
    expect((await rig.rf('DELETE', good.headers.get('location')!)).status).to.equal(204);
    const kinds = rig.agent.events.hub.log().map((e) => [e.kind, e.messageId]);
    expect(kinds).to.deep.include(['loginFailed', 'Base.1.22.1.AccessDenied']);
    expect(kinds).to.deep.include(['login', 'ResourceEvent.1.4.3.ResourceCreated']);
    expect(kinds).to.deep.include(['sessionClosed', 'ResourceEvent.1.4.3.ResourceRemoved']);
    // no password anywhere in the log
    expect(JSON.stringify(rig.agent.events.hub.log())).not.to.contain('wrong-password');
  });
});

describe('Redfish EventService: subscriptions survive an agent restart (simulator state file)', function () {
  it('keeps subscriptions (with their write-only headers) in a 0600 file and delivers after the restart', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'virtbmc-events-'));
    const file = join(dir, 'subscriptions.json');
    const rx = await startEventReceiver();
    try {
      let rig = await startRig({ subscriptions: { ...immediate, persistence: new FilePersistence(file) } });
      const created = await rig.rf('POST', SUBS, { Destination: rx.url, Context: 'kept', HttpHeaders: [{ 'X-Token': 'abc' }] });
      expect(created.status).to.equal(201);
      await rig.close();
      expect(statSync(file).mode & 0o777).to.equal(0o600);
      rig = await startRig({ subscriptions: { ...immediate, persistence: new FilePersistence(file) } });
      try {
        const list = await rig.rf('GET', SUBS);
        expect(list.body.Members).to.deep.equal([{ '@odata.id': created.headers.get('location') }]);
        await rig.sim.power('on');
        await rx.waitFor((got) => got.some((x) => x.body.Events.some((e) => e.MessageId === POWER_ON)), 'power on after restart');
        const hit = rx.received.find((x) => x.body.Context === 'kept')!;
        expect(hit.headers['x-token']).to.equal('abc');
      } finally {
        await rig.close();
      }
    } finally {
      await rx.close();
    }
  });
});
