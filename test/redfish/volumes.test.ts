/**
 * Storage/1/Volumes on the simulator (src/redfish/resources/volumes.ts): POST creates a blank disk
 * (201, Location, the Volume), GET shows it, DELETE removes only what was created here; the
 * DMTF Base errors for bad bodies, 403 without ConfigureComponents; the apply-time annotation;
 * a retried POST (Idempotency-Key, X-Request-Id, or the same Name) makes one disk.
 */
import { expect } from 'chai';
import { MAX_BMC_VOLUMES } from '../../src/kube/names.js';
import { ADMIN, OPERATOR, READONLY, startTestAgent, type TestAgent } from '../helpers/agent.js';

const VOLUMES = '/redfish/v1/Systems/1/Storage/1/Volumes';
const auth = (u: { username: string; password: string }): string => 'Basic ' + Buffer.from(`${u.username}:${u.password}`).toString('base64');
type Reply = { status: number; headers: Headers; body: Record<string, unknown> };

async function call(t: TestAgent, method: string, path: string, body?: unknown, opts: { user?: typeof ADMIN; headers?: Record<string, string> } = {}): Promise<Reply> {
  const res = await fetch(t.redfishUrl + path, {
    method,
    headers: { authorization: auth(opts.user ?? ADMIN), ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...opts.headers },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

const messageId = (r: Reply): string => String(((r.body.error as { '@Message.ExtendedInfo'?: { MessageId?: string }[] } | undefined)?.['@Message.ExtendedInfo']?.[0])?.MessageId ?? '');
const members = (r: Reply): string[] => (r.body.Members as { '@odata.id': string }[]).map((m) => m['@odata.id']);

describe('Redfish volumes (simulator)', () => {
  let t: TestAgent;
  beforeEach(async () => {
    t = await startTestAgent({ ipmi: false });
  });
  afterEach(() => t.close());

  it('the collection says how creates apply (OnReset) and is empty at first', async () => {
    const r = await call(t, 'GET', VOLUMES);
    expect(r.status).to.equal(200);
    expect(r.body['@Redfish.OperationApplyTimeSupport']).to.deep.include({ SupportedValues: ['OnReset'] });
    expect(r.body.Members).to.deep.equal([]);
    expect(r.headers.get('allow')).to.equal('GET, HEAD, POST');
    expect((await call(t, 'GET', VOLUMES, undefined, { user: READONLY })).headers.get('allow')).to.equal('GET, HEAD');
  });

  it('POST creates: 201, Location, the Volume rounded to a whole MiB; GET, the Drive links back; DELETE removes it (204)', async () => {
    const r = await call(t, 'POST', VOLUMES, { CapacityBytes: 5 * 2 ** 30 + 1, Name: 'scratch', RAIDType: 'None', '@Redfish.OperationApplyTime': 'OnReset' });
    expect(r.status).to.equal(201);
    expect(r.headers.get('location')).to.equal(`${VOLUMES}/bmc-volume-1`);
    expect(r.body).to.deep.include({ '@odata.type': '#Volume.v1_10_2.Volume', Id: 'bmc-volume-1', Name: 'scratch', CapacityBytes: 5 * 2 ** 30 + 2 ** 20, RAIDType: 'None' });
    // the machine is off: nothing to reset, the disk is there at the next start
    expect(r.body['@Message.ExtendedInfo']).to.equal(undefined);
    expect(r.body.Status).to.deep.equal({ State: 'StandbyOffline', Health: 'OK' });
    expect(r.body.Links).to.deep.equal({ Drives: [{ '@odata.id': '/redfish/v1/Systems/1/Storage/1/Drives/bmc-volume-1' }], 'Drives@odata.count': 1 });
    const got = await call(t, 'GET', `${VOLUMES}/bmc-volume-1`);
    expect(got.status).to.equal(200);
    expect(got.body.CapacityBytes).to.equal(5 * 2 ** 30 + 2 ** 20);
    expect(members(await call(t, 'GET', VOLUMES))).to.deep.equal([`${VOLUMES}/bmc-volume-1`]);
    const drive = await call(t, 'GET', '/redfish/v1/Systems/1/Storage/1/Drives/bmc-volume-1');
    expect(drive.body.Links).to.deep.equal({ Volumes: [{ '@odata.id': `${VOLUMES}/bmc-volume-1` }], 'Volumes@odata.count': 1 });
    const root = await call(t, 'GET', '/redfish/v1/Systems/1/Storage/1/Drives/root');
    expect(root.body.Links).to.deep.equal({ Volumes: [], 'Volumes@odata.count': 0 });
    // the machine's own disk is no volume: 404, and it stays
    expect((await call(t, 'DELETE', `${VOLUMES}/root`)).status).to.equal(404);
    const del = await call(t, 'DELETE', `${VOLUMES}/bmc-volume-1`);
    expect(del.status).to.equal(204);
    expect((await call(t, 'GET', `${VOLUMES}/bmc-volume-1`)).status).to.equal(404);
    expect((await t.sim.getSystemInfo()).disks?.map((d) => d.id)).to.deep.equal(['root', 'cdrom']);
  });

  it('a running machine: ResetRequired in the answer, StandbyOffline until the next boot, then Enabled; DELETE of an attached one answers 200 with ResetRequired', async () => {
    await t.sim.power('on');
    const r = await call(t, 'POST', VOLUMES, { CapacityBytes: 2 ** 30 });
    expect(r.status).to.equal(201);
    expect((r.body['@Message.ExtendedInfo'] as { MessageId: string }[])[0]?.MessageId).to.match(/\.ResetRequired$/);
    expect((await call(t, 'GET', `${VOLUMES}/bmc-volume-1`)).body.Status).to.deep.include({ State: 'StandbyOffline' });
    await t.sim.power('forceRestart');
    expect((await call(t, 'GET', `${VOLUMES}/bmc-volume-1`)).body.Status).to.deep.include({ State: 'Enabled' });
    const del = await call(t, 'DELETE', `${VOLUMES}/bmc-volume-1`);
    expect(del.status).to.equal(200);
    expect((del.body['@Message.ExtendedInfo'] as { MessageId: string }[]).map((m) => m.MessageId.split('.').pop())).to.deep.equal(['Success', 'ResetRequired']);
  });

  it('bad bodies answer 400 with the Base message and create nothing', async () => {
    const cases: [unknown, string][] = [
      [{}, 'PropertyMissing'],
      [{ CapacityBytes: '1073741824' }, 'PropertyValueTypeError'],
      [{ CapacityBytes: 1.5 }, 'PropertyValueTypeError'],
      [{ CapacityBytes: 0 }, 'PropertyValueOutOfRange'],
      [{ CapacityBytes: -5 }, 'PropertyValueOutOfRange'],
      [{ CapacityBytes: 2 ** 50 }, 'PropertyValueOutOfRange'],
      [{ CapacityBytes: 2 ** 30, RAIDType: 'RAID1' }, 'PropertyValueNotInList'],
      [{ CapacityBytes: 2 ** 30, RAIDType: 5 }, 'PropertyValueTypeError'],
      [{ CapacityBytes: 2 ** 30, '@Redfish.OperationApplyTime': 'Immediate' }, 'PropertyValueNotInList'],
      [{ CapacityBytes: 2 ** 30, Name: 7 }, 'PropertyValueTypeError'],
      [{ CapacityBytes: 2 ** 30, Name: 'x'.repeat(64) }, 'PropertyValueFormatError'],
      [{ CapacityBytes: 2 ** 30, Links: { Drives: [{ '@odata.id': '/redfish/v1/Systems/1/Storage/1/Drives/root' }] } }, 'PropertyNotWritable'],
      [{ CapacityBytes: 2 ** 30, Encrypted: true }, 'PropertyNotWritable'],
      [{ CapacityBytes: 2 ** 30, Bogus: 1 }, 'PropertyUnknown'],
      [[1], 'MalformedJSON'],
    ];
    for (const [body, id] of cases) {
      const r = await call(t, 'POST', VOLUMES, body);
      expect([r.status, messageId(r).split('.').pop()], JSON.stringify(body)).to.deep.equal([400, id]);
    }
    expect(members(await call(t, 'GET', VOLUMES))).to.deep.equal([]);
  });

  it('privilege: ConfigureComponents (Operator) may create and delete; ReadOnly gets 403 for both', async () => {
    const denied = await call(t, 'POST', VOLUMES, { CapacityBytes: 2 ** 30 }, { user: READONLY });
    expect(denied.status).to.equal(403);
    expect(messageId(denied)).to.match(/InsufficientPrivilege$/);
    const made = await call(t, 'POST', VOLUMES, { CapacityBytes: 2 ** 30 }, { user: OPERATOR });
    expect(made.status).to.equal(201);
    expect((await call(t, 'DELETE', `${VOLUMES}/bmc-volume-1`, undefined, { user: READONLY })).status).to.equal(403);
    expect((await call(t, 'DELETE', `${VOLUMES}/bmc-volume-1`, undefined, { user: OPERATOR })).status).to.equal(204);
  });

  it('exactly once: a retry with the same Idempotency-Key or X-Request-Id, or of the same Name, makes one disk', async () => {
    const body = { CapacityBytes: 2 ** 30 };
    const first = await call(t, 'POST', VOLUMES, body, { headers: { 'Idempotency-Key': 'k-1' } });
    const retry = await call(t, 'POST', VOLUMES, body, { headers: { 'Idempotency-Key': 'k-1' } });
    expect([first.status, retry.status]).to.deep.equal([201, 201]);
    expect(retry.headers.get('idempotent-replayed')).to.equal('true');
    expect(retry.headers.get('location')).to.equal(first.headers.get('location'));
    const a = await call(t, 'POST', VOLUMES, body, { headers: { 'X-Request-Id': 'r-1' } });
    const b = await call(t, 'POST', VOLUMES, body, { headers: { 'X-Request-Id': 'r-1' } });
    expect(b.headers.get('location')).to.equal(a.headers.get('location'));
    const named = await call(t, 'POST', `${VOLUMES}/Members`, { CapacityBytes: 2 ** 30, Name: 'data' });
    expect(named.status).to.equal(201);
    const again = await call(t, 'POST', VOLUMES, { CapacityBytes: 2 ** 30, Name: 'data' });
    expect([again.status, messageId(again).split('.').pop()]).to.deep.equal([409, 'ResourceAlreadyExists']);
    expect(members(await call(t, 'GET', VOLUMES))).to.deep.equal([`${VOLUMES}/bmc-volume-1`, `${VOLUMES}/bmc-volume-2`, `${VOLUMES}/bmc-volume-3`]);
  });

  it('a retry the answer cache does not have (another agent process on the same machine, as after a restart): the first volume again, 201 Idempotent-Replayed, not 409 and not a second disk', async () => {
    const body = { CapacityBytes: 2 ** 30, Name: 'data' };
    const first = await call(t, 'POST', VOLUMES, body, { headers: { 'Idempotency-Key': 'k-9' } });
    expect(first.status).to.equal(201);
    const other = await startTestAgent({ ipmi: false, machine: t.sim });
    try {
      const retry = await call(other, 'POST', VOLUMES, body, { headers: { 'Idempotency-Key': 'k-9' } });
      expect(retry.status, JSON.stringify(retry.body)).to.equal(201);
      expect(retry.headers.get('idempotent-replayed')).to.equal('true');
      expect(retry.headers.get('location')).to.equal(first.headers.get('location'));
      expect(retry.body).to.deep.include({ Id: 'bmc-volume-1', Name: 'data' });
      // the token names the user (and the request): another user's same key is no retry of it
      const byOperator = await call(other, 'POST', VOLUMES, body, { user: OPERATOR, headers: { 'Idempotency-Key': 'k-9' } });
      expect([byOperator.status, messageId(byOperator).split('.').pop()]).to.deep.equal([409, 'ResourceAlreadyExists']);
      expect(members(await call(t, 'GET', VOLUMES))).to.deep.equal([`${VOLUMES}/bmc-volume-1`]);
    } finally {
      await other.close();
    }
  });

  it(`at most ${MAX_BMC_VOLUMES} volumes: then 400 CreateLimitReachedForResource`, async () => {
    for (let i = 0; i < MAX_BMC_VOLUMES; i++) expect((await call(t, 'POST', VOLUMES, { CapacityBytes: 2 ** 20 })).status).to.equal(201);
    const r = await call(t, 'POST', VOLUMES, { CapacityBytes: 2 ** 20 });
    expect([r.status, messageId(r).split('.').pop()]).to.deep.equal([400, 'CreateLimitReachedForResource']);
  });
});
