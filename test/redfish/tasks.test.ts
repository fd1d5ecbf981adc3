/**
 * TaskService, Tasks and task monitors (src/redfish/resources/tasks.ts, core/tasks.ts) with virtual
 * media insertion as the task: lifecycle (progress, Completed, Exception with the cause), monitor
 * semantics (DSP0266 "Asynchronous operations"), privileges and Payload masking, retention bounds
 * (injected clock), DMTF schema checks of every payload.
 */
import { expect } from 'chai';
import type { ProtocolServer } from '../../src/accounts/types.js';
import { SimulatedMachine } from '../../src/backend/simulator/simulator.js';
import { BackendError, type InsertMediaRequest, type MachineListener, type MediaSlot, type MediaSlotId } from '../../src/backend/types.js';
import { nullLogger } from '../../src/common/logger.js';
import { MAX_FINISHED_TASKS, TASK_RETENTION_MINUTES, TaskStore } from '../../src/redfish/core/tasks.js';
import { startRedfishServer } from '../../src/redfish/server.js';
import { ADMIN, OPERATOR, READONLY, redfishClient, type RedfishReply } from '../helpers/agent.js';
import { ManualTimers } from '../helpers/manual-timers.js';
import { LOOPBACK_MEDIA, startImageServer, unusedUrl, type ImageServer } from '../helpers/images.js';
import { expectConforms, schemaValidator } from '../helpers/redfish-schema.js';

const conforms = expectConforms;

const CD = '/redfish/v1/Managers/BMC/VirtualMedia/Cd';
const INSERT = `${CD}/Actions/VirtualMedia.InsertMedia`;

type Reply = RedfishReply;

/** A machine whose media the test drives: insert answers "inserting", then the test emits events. */
class ManualMedia extends SimulatedMachine {
  // no initializer: the base constructor already subscribes (its console)
  declare listeners: MachineListener[] | undefined;
  slots = new Map<MediaSlotId, MediaSlot>([
    ['Cd', { id: 'Cd', kind: 'cd', state: 'empty', writeProtected: true }],
    ['UsbStick', { id: 'UsbStick', kind: 'usb', state: 'empty', writeProtected: true }],
  ]);
  insertError: BackendError | undefined;
  ejects = 0;
  override on(l: MachineListener): () => void {
    (this.listeners ??= []).push(l);
    return () => {
      this.listeners = this.listeners?.filter((x) => x !== l);
    };
  }
  get subscribers(): number {
    return this.listeners?.length ?? 0;
  }
  override async listMedia(): Promise<MediaSlot[]> {
    return [...this.slots.values()].map((s) => ({ ...s }));
  }
  /** Runs inside insertMedia before it answers (events a backend emits meanwhile) */
  duringInsert: (() => void) | undefined;
  /** When set, insertMedia waits for this before it acts */
  gate: Promise<void> | undefined;
  override async insertMedia(slot: MediaSlotId, req: InsertMediaRequest): Promise<MediaSlot> {
    if (this.gate) await this.gate;
    if (this.insertError) throw this.insertError;
    const s = this.set({ ...this.slots.get(slot)!, state: 'inserting', progress: 0, image: req.image });
    this.duringInsert?.();
    return s;
  }
  override async ejectMedia(slot: MediaSlotId): Promise<MediaSlot> {
    this.ejects++;
    const s = this.slots.get(slot)!;
    return this.set({ id: s.id, kind: s.kind, state: 'empty', writeProtected: s.writeProtected });
  }
  set(slot: MediaSlot): MediaSlot {
    this.slots.set(slot.id, slot);
    for (const l of [...(this.listeners ?? [])]) l({ type: 'media', slot: { ...slot } });
    return { ...slot };
  }
}

async function startService(machine: SimulatedMachine, now: () => Date = () => new Date()): Promise<{ server: ProtocolServer; rf: (method: string, path: string, body?: unknown, user?: typeof ADMIN | null) => Promise<Reply> }> {
  const server = await startRedfishServer({ address: '127.0.0.1', port: 0, machine, users: [ADMIN, OPERATOR, READONLY], logger: nullLogger() }, { now });
  const rf = redfishClient(`http://127.0.0.1:${server.port}`);
  return { server, rf };
}

const ids = (task: Record<string, unknown>): string[] => (task.Messages as { MessageId: string }[]).map((m) => m.MessageId);

describe('Redfish TaskService: media insertion as a task', function () {
  let machine: ManualMedia;
  let server: ProtocolServer;
  let rf: Awaited<ReturnType<typeof startService>>['rf'];
  let clock: number;

  beforeEach(async () => {
    clock = Date.parse('2026-03-01T10:00:00Z');
    machine = new ManualMedia();
    ({ server, rf } = await startService(machine, () => new Date(clock)));
  });
  afterEach(async () => {
    await server.close();
    await machine.close();
  });

  it('ServiceRoot links the TaskService, which describes itself', async () => {
    const root = await rf('GET', '/redfish/v1', undefined, null);
    expect(root.body.Tasks).to.deep.equal({ '@odata.id': '/redfish/v1/TaskService' });
    const ts = await rf('GET', '/redfish/v1/TaskService', undefined, READONLY);
    expect(ts.status).to.equal(200);
    expect(ts.body).to.include({
      '@odata.type': '#TaskService.v1_3_0.TaskService',
      ServiceEnabled: true,
      CompletedTaskOverWritePolicy: 'Oldest',
      LifeCycleEventOnTaskStateChange: true,
      TaskAutoDeleteTimeoutMinutes: TASK_RETENTION_MINUTES,
      DateTime: '2026-03-01T10:00:00.000Z',
    });
    expect(ts.body.Tasks).to.deep.equal({ '@odata.id': '/redfish/v1/TaskService/Tasks' });
    conforms('TaskService_TaskService', ts.body);
    const list = await rf('GET', '/redfish/v1/TaskService/Tasks');
    expect(list.body).to.include({ 'Members@odata.count': 0 });
    conforms('TaskCollection_TaskCollection', list.body);
    expect((await rf('GET', '/redfish/v1/TaskService', undefined, null)).status).to.equal(401);
  });

  it('follows the slot: Running with progress, then Completed; the monitor answers 202 then 204', async () => {
    const listening = machine.subscribers;
    const ins = await rf('POST', INSERT, { Image: 'http://img.example/a.iso' });
    expect(ins.status).to.equal(202);
    const monitor = ins.headers.get('location')!;
    const taskPath = ins.body['@odata.id'] as string;
    expect(monitor).to.equal('/redfish/v1/TaskService/TaskMonitors/1');
    expect(taskPath).to.equal('/redfish/v1/TaskService/Tasks/1');
    expect(ins.body).to.include({ Id: '1', TaskState: 'Running', TaskStatus: 'OK', PercentComplete: 0, TaskMonitor: monitor, StartTime: '2026-03-01T10:00:00.000Z' });
    expect(ins.body.Payload).to.deep.equal({ HttpOperation: 'POST', TargetUri: INSERT, HttpHeaders: [], JsonBody: JSON.stringify({ Image: 'http://img.example/a.iso', WriteProtected: true }) });
    conforms('Task_Task', ins.body);

    machine.set({ ...machine.slots.get('Cd')!, progress: 40 });
    const mid = await rf('GET', monitor);
    expect(mid.status).to.equal(202);
    expect(mid.headers.get('location')).to.equal(monitor);
    expect(mid.body).to.include({ TaskState: 'Running', PercentComplete: 40 });
    const progress = (mid.body.Messages as { MessageId: string; Message: string }[]).filter((m) => m.MessageId.endsWith('TaskProgressChanged'));
    expect(progress.map((m) => m.Message)).to.deep.equal(["The task with Id '1' has changed to progress 40 percent complete."]);
    // another slot's events do not count
    machine.set({ ...machine.slots.get('UsbStick')!, state: 'inserted' });
    expect((await rf('GET', taskPath)).body.TaskState).to.equal('Running');

    clock += 5000;
    machine.set({ ...machine.slots.get('Cd')!, state: 'inserted', progress: 100 });
    const done = await rf('GET', monitor);
    expect(done.status).to.equal(204);
    expect((await rf('HEAD', monitor)).status).to.equal(204);
    const task = await rf('GET', taskPath);
    expect(task.body).to.include({ TaskState: 'Completed', TaskStatus: 'OK', PercentComplete: 100, EndTime: '2026-03-01T10:00:05.000Z' });
    expect(ids(task.body)).to.deep.equal(['TaskEvent.1.0.5.TaskStarted', 'TaskEvent.1.0.5.TaskCompletedOK']);
    conforms('Task_Task', task.body);
    expect(machine.subscribers).to.equal(listening); // the task stopped listening
    expect((await rf('GET', '/redfish/v1/TaskService/Tasks')).body.Members).to.deep.equal([{ '@odata.id': taskPath }]);
  });

  it('ends in Exception with the cause when the slot goes to error', async () => {
    const ins = await rf('POST', INSERT, { Image: 'http://img.example/a.iso' });
    machine.set({ ...machine.slots.get('Cd')!, state: 'error', error: 'the import failed: exceeded quota' });
    const done = await rf('GET', ins.headers.get('location')!);
    expect(done.status).to.equal(400);
    expect((done.body.error as { message: string }).message).to.equal('Inserting into Cd failed: the import failed: exceeded quota');
    const task = await rf('GET', ins.body['@odata.id'] as string);
    expect(task.body).to.include({ TaskState: 'Exception', TaskStatus: 'Critical' });
    expect(ids(task.body)).to.deep.equal(['TaskEvent.1.0.5.TaskStarted', 'TaskEvent.1.0.5.TaskAborted', 'Base.1.22.1.GeneralError']);
    expect((task.body.Messages as { Message: string }[])[2]!.Message).to.equal('Inserting into Cd failed: the import failed: exceeded quota');
    conforms('Task_Task', task.body);
  });

  it('ends in Exception when insertMedia rejects (no drive: Unsupported; outage: 503)', async () => {
    machine.insertError = new BackendError('Unsupported', 'the VM has no CD-ROM drive named Cd');
    const a = await rf('POST', INSERT, { Image: 'http://img.example/a.iso' });
    expect(a.status).to.equal(202);
    const ra = await rf('GET', a.headers.get('location')!);
    expect(ra.status).to.equal(400);
    expect((ra.body.error as { code: string; message: string })).to.deep.include({ code: 'Base.1.22.1.ActionNotSupported', message: 'the VM has no CD-ROM drive named Cd' });
    machine.insertError = new BackendError('Unavailable', 'the Kubernetes API is unreachable', { retryAfterSeconds: 7 });
    const b = await rf('POST', INSERT, { Image: 'http://img.example/a.iso' });
    const rb = await rf('GET', b.headers.get('location')!);
    expect(rb.status).to.equal(503);
    expect(rb.headers.get('retry-after')).to.equal('7');
    expect((await rf('GET', b.body['@odata.id'] as string)).body.TaskState).to.equal('Exception');
  });

  it('parameter and state errors stay synchronous and start no task', async () => {
    expect((await rf('POST', INSERT, {})).status).to.equal(400);
    expect((await rf('POST', '/redfish/v1/Managers/BMC/VirtualMedia/Nope/Actions/VirtualMedia.InsertMedia', { Image: 'http://img.example/a.iso' })).status).to.equal(404);
    machine.set({ ...machine.slots.get('Cd')!, state: 'inserted', image: 'http://img.example/b.iso' });
    const busy = await rf('POST', INSERT, { Image: 'http://img.example/a.iso' });
    expect(busy.status).to.equal(409);
    expect((busy.body.error as { code: string }).code).to.equal('Base.1.22.1.ResourceInUse');
    expect((await rf('GET', '/redfish/v1/TaskService/Tasks')).body['Members@odata.count']).to.equal(0);
  });

  it('a missed event does not leave the task running: reading it re-reads the slot', async () => {
    const ins = await rf('POST', INSERT, { Image: 'http://img.example/a.iso' });
    machine.slots.set('Cd', { ...machine.slots.get('Cd')!, state: 'inserted', progress: 100 }); // no event
    expect((await rf('GET', ins.body['@odata.id'] as string)).body.TaskState).to.equal('Completed');
    expect((await rf('GET', ins.headers.get('location')!)).status).to.equal(204);
  });

  it('an error event before insertMedia answered counts only when a fresh read confirms it', async () => {
    // stale: the backend re-reports an old failure meanwhile, but the slot is inserting
    machine.duringInsert = () => {
      machine.set({ ...machine.slots.get('Cd')!, state: 'error', error: 'old failure' });
      machine.slots.set('Cd', { ...machine.slots.get('Cd')!, state: 'inserting', progress: 5 });
    };
    const a = await rf('POST', INSERT, { Image: 'http://img.example/a.iso' });
    expect((await rf('GET', a.body['@odata.id'] as string)).body).to.include({ TaskState: 'Running', PercentComplete: 5 });
    expect((await rf('DELETE', a.headers.get('location')!)).status).to.equal(204);
    // real: the import failed at once and the slot shows it
    machine.duringInsert = () => {
      machine.set({ ...machine.slots.get('Cd')!, state: 'error', error: 'import failed at once' });
    };
    const b = await rf('POST', INSERT, { Image: 'http://img.example/a.iso' });
    const done = await rf('GET', b.headers.get('location')!);
    expect(done.status).to.equal(400);
    expect((done.body.error as { message: string }).message).to.equal('Inserting into Cd failed: import failed at once');
  });

  it('an eject by someone else while inserting ends the task in Exception', async () => {
    const ins = await rf('POST', INSERT, { Image: 'http://img.example/a.iso' });
    expect((await rf('POST', `${CD}/Actions/VirtualMedia.EjectMedia`, {})).status).to.equal(204);
    const done = await rf('GET', ins.headers.get('location')!);
    expect(done.status).to.equal(409);
    expect((await rf('GET', ins.body['@odata.id'] as string)).body.TaskState).to.equal('Exception');
  });

  it('DELETE on the monitor cancels (ejects) a running task; a late "inserted" does not revive it', async () => {
    const ins = await rf('POST', INSERT, { Image: 'http://img.example/a.iso' });
    const monitor = ins.headers.get('location')!;
    for (const user of [READONLY, OPERATOR]) {
      const r = await rf('DELETE', monitor, undefined, user);
      expect(r.status).to.equal(403);
    }
    expect(machine.ejects).to.equal(0);
    expect((await rf('DELETE', monitor)).status).to.equal(204);
    expect(machine.ejects).to.equal(1);
    machine.set({ ...machine.slots.get('Cd')!, state: 'inserted' });
    const task = await rf('GET', ins.body['@odata.id'] as string);
    expect(task.body).to.include({ TaskState: 'Cancelled', TaskStatus: 'Warning' });
    expect(ids(task.body)).to.include('TaskEvent.1.0.5.TaskCancelled');
    expect(task.body).to.not.have.property('TaskMonitor');
    conforms('Task_Task', task.body);
    expect((await rf('GET', monitor)).status).to.equal(404);
    expect((await rf('DELETE', monitor)).status).to.equal(404);
  });

  it('a cancel before the backend took the insert ejects again once it has', async () => {
    let open!: () => void;
    machine.gate = new Promise<void>((r) => (open = r));
    const ins = await rf('POST', INSERT, { Image: 'http://img.example/a.iso' });
    expect((await rf('DELETE', ins.headers.get('location')!)).status).to.equal(204);
    expect(machine.ejects).to.equal(1);
    open();
    for (let i = 0; i < 500 && machine.ejects < 2; i++) await new Promise((r) => setTimeout(r, 5));
    expect(machine.ejects).to.equal(2);
    expect(machine.slots.get('Cd')!.state).to.equal('empty');
    expect((await rf('GET', ins.body['@odata.id'] as string)).body.TaskState).to.equal('Cancelled');
  });

  it('DELETE on the monitor of a finished task removes the monitor only', async () => {
    const ins = await rf('POST', INSERT, { Image: 'http://img.example/a.iso' });
    machine.set({ ...machine.slots.get('Cd')!, state: 'inserted' });
    const monitor = ins.headers.get('location')!;
    expect((await rf('DELETE', monitor)).status).to.equal(204);
    expect(machine.ejects).to.equal(0);
    expect((await rf('GET', monitor)).status).to.equal(404);
    expect((await rf('GET', ins.body['@odata.id'] as string)).body.TaskState).to.equal('Completed');
    expect((await rf('GET', '/redfish/v1/TaskService/TaskMonitors/99')).status).to.equal(404);
    expect((await rf('GET', '/redfish/v1/TaskService/Tasks/99')).status).to.equal(404);
  });

  it('every logged-in user sees tasks; only Administrators see URL query strings in the Payload', async () => {
    const image = 'https://img.example/a.iso?X-Amz-Signature=tok3n';
    const ins = await rf('POST', INSERT, { Image: image });
    const taskPath = ins.body['@odata.id'] as string;
    expect(JSON.parse((ins.body.Payload as { JsonBody: string }).JsonBody)).to.deep.equal({ Image: image, WriteProtected: true });
    for (const user of [READONLY, OPERATOR]) {
      for (const path of [taskPath, ins.headers.get('location')!]) {
        const r = await rf('GET', path, undefined, user);
        expect(r.status, path).to.be.oneOf([200, 202]);
        expect(JSON.parse((r.body.Payload as { JsonBody: string }).JsonBody)).to.deep.equal({ Image: 'https://img.example/a.iso', WriteProtected: true });
        expect(JSON.stringify(r.body)).to.not.include('tok3n');
      }
      expect((await rf('GET', '/redfish/v1/TaskService/Tasks', undefined, user)).body['Members@odata.count']).to.equal(1);
    }
    expect((await rf('GET', taskPath, undefined, null)).status).to.equal(401);
  });

  it('keeps finished tasks for the retention time, running ones however old', async () => {
    const a = await rf('POST', INSERT, { Image: 'http://img.example/a.iso' });
    machine.set({ ...machine.slots.get('Cd')!, state: 'inserted' });
    const b = await rf('POST', '/redfish/v1/Managers/BMC/VirtualMedia/UsbStick/Actions/VirtualMedia.InsertMedia', { Image: 'http://img.example/b.img' });
    clock += (TASK_RETENTION_MINUTES - 1) * 60_000;
    expect((await rf('GET', '/redfish/v1/TaskService/Tasks')).body['Members@odata.count']).to.equal(2);
    clock += 2 * 60_000;
    const list = await rf('GET', '/redfish/v1/TaskService/Tasks');
    expect(list.body.Members).to.deep.equal([{ '@odata.id': b.body['@odata.id'] }]);
    expect((await rf('GET', a.headers.get('location')!)).status).to.equal(404);
    expect((await rf('GET', b.headers.get('location')!)).status).to.equal(202);
  });
});

describe('Redfish TaskService: the simulator checks image URLs', function () {
  let img: ImageServer;
  let machine: SimulatedMachine;
  let server: ProtocolServer;
  let rf: Awaited<ReturnType<typeof startService>>['rf'];
  before(async () => {
    img = await startImageServer();
  });
  after(async () => img.close());
  beforeEach(async () => {
    machine = new SimulatedMachine({ mediaInsertDelayMs: 80, mediaProbe: { egress: LOOPBACK_MEDIA } });
    ({ server, rf } = await startService(machine));
  });
  afterEach(async () => {
    await server.close();
    await machine.close();
  });

  async function final(accepted: Reply): Promise<Reply> {
    expect(accepted.status).to.equal(202);
    for (let i = 0; i < 1000; i++) {
      const r = await rf('GET', accepted.headers.get('location')!);
      if (r.status !== 202) return r;
      await new Promise((res) => setTimeout(res, 5));
    }
    throw new Error('task did not finish');
  }

  it('an image that exists: progress, then Completed', async () => {
    // the insert's steps fire when the test says so: each stage is read from the monitor between
    // two steps, whatever the machine's speed (a real 80 ms insert could finish between two GETs)
    const timers = new ManualTimers();
    await server.close();
    await machine.close();
    machine = new SimulatedMachine({ mediaInsertDelayMs: 80, mediaProbe: { egress: LOOPBACK_MEDIA }, timers });
    ({ server, rf } = await startService(machine));
    const ins = await rf('POST', INSERT, { Image: img.url('/boot/installer.iso') });
    const seen: number[] = [];
    let r: Reply;
    for (;;) {
      r = await rf('GET', ins.headers.get('location')!);
      if (r.status !== 202) break;
      if (typeof r.body.PercentComplete === 'number' && seen.at(-1) !== r.body.PercentComplete) seen.push(r.body.PercentComplete);
      // nothing pending yet: the image URL is still being checked (a HEAD to the image server)
      if (!timers.runNext()) await new Promise((res) => setTimeout(res, 5));
    }
    expect(r.status).to.equal(204);
    expect(seen.filter((p) => p > 0 && p < 100), `progress seen: ${seen.join(',')}`).to.deep.equal([25, 50, 75]);
    expect((await machine.listMedia())[0]).to.include({ state: 'inserted', image: img.url('/boot/installer.iso') });
  });

  it('a 404 image: Exception naming the URL without its query', async () => {
    const ins = await rf('POST', INSERT, { Image: img.url('/missing.iso?token=tok3n') });
    const r = await final(ins);
    expect(r.status).to.equal(400);
    expect(r.body.error).to.deep.include({ code: 'Base.1.22.1.ActionParameterValueError', message: `image URL ${img.base}/missing.iso answered HTTP 404 (not found)` });
    const task = await rf('GET', ins.body['@odata.id'] as string);
    expect(task.body.TaskState).to.equal('Exception');
    expect(JSON.stringify(task.body)).to.not.include('tok3n'.repeat(2));
    expect((await machine.listMedia())[0]!.state).to.equal('empty');
  });

  it('an unreachable image server: Exception "not reachable"', async () => {
    const r = await final(await rf('POST', INSERT, { Image: await unusedUrl('/x.iso') }));
    expect(r.status).to.equal(400);
    expect((r.body.error as { message: string }).message).to.match(/^image URL http:\/\/127\.0\.0\.1:\d+\/x\.iso is not reachable: connection refused$/);
  });
});

describe('TaskStore bounds', () => {
  it(`keeps at most maxFinished finished tasks (default ${MAX_FINISHED_TASKS}), oldest out first; running ones are never pruned`, () => {
    let now = 0;
    const store = new TaskStore({ now: () => new Date(now), maxFinished: 3, maxRunning: 2 });
    const running = store.create('long', 'admin', { httpOperation: 'POST', targetUri: '/x' });
    store.running(running, 10);
    for (let i = 0; i < 5; i++) {
      now += 1000;
      const t = store.create(`t${i}`, 'admin', { httpOperation: 'POST', targetUri: '/x' });
      store.finish(t, 'Completed', { status: 204 });
    }
    expect(store.list().map((t) => t.name)).to.deep.equal(['long', 't2', 't3', 't4']);
    expect(store.hasRoom()).to.equal(true);
    store.create('second', 'admin', { httpOperation: 'POST', targetUri: '/x' });
    expect(store.hasRoom()).to.equal(false);
    now += 10 * 3600_000;
    expect(store.list().map((t) => t.name)).to.deep.equal(['long', 'second']);
    // first outcome wins
    store.finish(running, 'Exception', { status: 400 });
    store.finish(running, 'Completed', { status: 204 });
    expect(running.state).to.equal('Exception');
  });

  it('the schema check rejects a wrong Task', () => {
    const good = { '@odata.id': '/redfish/v1/TaskService/Tasks/1', '@odata.type': '#Task.v1_7_4.Task', Id: '1', Name: 'x' };
    conforms('Task_Task', good);
    const validate = schemaValidator('Task_Task')!;
    expect(validate({ ...good, TaskState: 'Sleeping' })).to.equal(false);
    expect(validate({ ...good, PercentComplete: 'half' })).to.equal(false);
  });
});
