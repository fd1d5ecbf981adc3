/**
 * The Redfish framework end to end over HTTP (in-process agent on the simulator): public documents,
 * the whole resource tree (every link resolves, required properties, @odata.type namespaces listed
 * in $metadata), error bodies from the Base registry, 404/405/413/415/400/412/501.
 */
import net from 'node:net';
import { expect } from 'chai';
import { baseRegistry } from '../../generated/redfish/registries.js';
import { BackendError } from '../../src/backend/types.js';
import { RedfishError, errorBody, fromBackendError } from '../../src/redfish/core/errors.js';
import { validatePatch } from '../../src/redfish/core/patch.js';
import { ADMIN, startTestAgent, type TestAgent } from '../helpers/agent.js';

const BASIC = `Basic ${Buffer.from(`${ADMIN.username}:${ADMIN.password}`).toString('base64')}`;

interface Reply {
  status: number;
  headers: Headers;
  text: string;
  json: Record<string, unknown>;
}

async function call(t: TestAgent, path: string, init: RequestInit & { auth?: boolean } = {}): Promise<Reply> {
  const headers = new Headers(init.headers);
  if (init.auth !== false && !headers.has('Authorization')) headers.set('Authorization', BASIC);
  const res = await fetch(`${t.redfishUrl}${path}`, { ...init, headers });
  const text = await res.text();
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    /* not JSON */
  }
  return { status: res.status, headers: res.headers, text, json };
}

/** The first @Message.ExtendedInfo entry of an error body, checked against the Base registry text. */
function expectBaseError(r: Reply, status: number, key: string): Record<string, unknown>[] {
  expect(r.status, r.text).to.equal(status);
  expect(r.headers.get('odata-version')).to.equal('4.0');
  const err = r.json.error as Record<string, unknown>;
  expect(err, r.text).to.be.an('object');
  const info = err['@Message.ExtendedInfo'] as Record<string, unknown>[];
  expect(info[0]?.MessageId).to.equal(`Base.1.22.1.${key}`);
  const def = baseRegistry.Messages[key];
  expect(def, key).to.not.equal(undefined);
  const args = (info[0]?.MessageArgs as string[]) ?? [];
  const expected = def!.Message.replace(/%(\d+)/g, (_m, n: string) => args[Number(n) - 1] as string);
  expect(info[0]?.Message).to.equal(expected);
  expect(info[0]?.MessageSeverity).to.equal(def!.MessageSeverity);
  expect(info[0]?.Resolution).to.equal(def!.Resolution);
  return info;
}

describe('Redfish core', () => {
  let t: TestAgent;
  before(async () => {
    t = await startTestAgent({ ipmi: false });
  });
  after(async () => t?.close());

  it('serves /redfish, the service root (with and without slash), $metadata and odata without credentials', async () => {
    const version = await call(t, '/redfish', { auth: false });
    expect(version.status).to.equal(200);
    expect(version.json).to.deep.equal({ v1: '/redfish/v1/' });
    for (const p of ['/redfish/v1', '/redfish/v1/']) {
      const root = await call(t, p, { auth: false });
      expect(root.status).to.equal(200);
      expect(root.headers.get('odata-version')).to.equal('4.0');
      expect(root.headers.get('content-type')).to.match(/^application\/json/);
      expect(root.json['@odata.type']).to.match(/^#ServiceRoot\.v1_\d+_\d+\.ServiceRoot$/);
      expect(root.json.UUID).to.match(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      expect(root.json.Links).to.deep.equal({ Sessions: { '@odata.id': '/redfish/v1/SessionService/Sessions' } });
      const features = root.json.ProtocolFeaturesSupported as Record<string, unknown>;
      expect(features.SelectQuery).to.equal(false);
      expect(features.FilterQuery).to.equal(false);
    }
    const meta = await call(t, '/redfish/v1/$metadata', { auth: false });
    expect(meta.status).to.equal(200);
    expect(meta.headers.get('content-type')).to.match(/^application\/xml/);
    expect(meta.text).to.contain('<edmx:Edmx').and.contain('Namespace="ServiceRoot.v1_20_0"');
    const odata = await call(t, '/redfish/v1/odata', { auth: false });
    expect(odata.status).to.equal(200);
    const value = odata.json.value as { name: string; url: string }[];
    expect(value.map((v) => v.name)).to.include.members(['Service', 'Systems', 'Managers', 'Chassis', 'SessionService']);
    for (const v of value) expect((await call(t, v.url)).status, v.url).to.equal(200);
  });

  it('derives a stable ServiceRoot UUID from the machine UUID', async () => {
    const a = await startTestAgent({ ipmi: false, sim: { uuid: '11111111-2222-3333-4444-555555555555' } });
    const b = await startTestAgent({ ipmi: false, sim: { uuid: '11111111-2222-3333-4444-555555555555' } });
    const c = await startTestAgent({ ipmi: false, sim: { uuid: '99999999-2222-3333-4444-555555555555' } });
    try {
      const ids = await Promise.all([a, b, c].map(async (x) => (await call(x, '/redfish/v1')).json.UUID));
      expect(ids[0]).to.equal(ids[1]);
      expect(ids[0]).to.not.equal(ids[2]);
      expect(ids[0]).to.not.equal('11111111-2222-3333-4444-555555555555');
    } finally {
      await Promise.all([a.close(), b.close(), c.close()]);
    }
  });

  it('every link in the tree resolves, with the properties the DMTF validator requires', async () => {
    const meta = (await call(t, '/redfish/v1/$metadata')).text;
    const included = new Set([...meta.matchAll(/Namespace="([^"]+)"/g)].map((m) => m[1]));
    const seen = new Set<string>();
    const queue = ['/redfish/v1'];
    const collect = (node: unknown): void => {
      if (Array.isArray(node)) node.forEach(collect);
      else if (node && typeof node === 'object') {
        for (const [k, v] of Object.entries(node)) {
          if (k === '@odata.id' && typeof v === 'string') queue.push(v.replace(/\/$/, '').replace(/#.*$/, ''));
          else collect(v);
        }
      }
    };
    while (queue.length > 0) {
      const uri = queue.shift() as string;
      if (seen.has(uri)) continue;
      seen.add(uri);
      const r = await call(t, uri);
      expect(r.status, `${uri}: ${r.text}`).to.equal(200);
      const body = r.json;
      if (/^\/redfish\/v1\/Registries\/(Base\/Base|TaskEvent\/TaskEvent|ResourceEvent\/ResourceEvent|HeartbeatEvent\/HeartbeatEvent)\.\d+\.\d+\.\d+$/.test(uri)) continue; // DMTF files, served verbatim
      expect(String(body['@odata.id']).replace(/\/$/, ''), uri).to.equal(uri);
      const type = String(body['@odata.type']);
      expect(type, uri).to.match(/^#[A-Za-z]+(\.v\d+_\d+_\d+)?\.[A-Za-z]+$/);
      const ns = type.slice(1, type.lastIndexOf('.'));
      expect(included.has(ns), `$metadata includes ${ns} (${uri})`).to.equal(true);
      expect(body.Name, uri).to.be.a('string');
      if (type.includes('Collection.')) {
        expect(body['Members@odata.count'], uri).to.equal((body.Members as unknown[]).length);
      } else {
        expect(body.Id, uri).to.be.a('string');
      }
      collect(body);
      // Location URIs of registry files are links too.
      for (const loc of (body.Location as { Uri?: string }[] | undefined) ?? []) if (loc.Uri) queue.push(loc.Uri);
    }
    expect(seen.size).to.be.greaterThan(20);
    for (const must of ['/redfish/v1/SessionService/Sessions', '/redfish/v1/AccountService/Roles/ReadOnly', '/redfish/v1/Registries/Base', '/redfish/v1/Registries/TaskEvent', '/redfish/v1/Registries/HeartbeatEvent', '/redfish/v1/TaskService/Tasks']) {
      expect(seen.has(must), must).to.equal(true);
    }
  });

  it('serves the Base registry it takes its messages from', async () => {
    const file = await call(t, '/redfish/v1/Registries/Base');
    expect(file.json.Registry).to.equal('Base.1.22');
    const uri = (file.json.Location as { Uri: string }[])[0]?.Uri as string;
    const reg = await call(t, uri);
    expect(reg.status).to.equal(200);
    expect(reg.json.Id).to.equal('Base.1.22.1');
    expect((reg.json.Messages as Record<string, unknown>).PropertyUnknown).to.deep.equal(baseRegistry.Messages.PropertyUnknown);
    expectBaseError(await call(t, '/redfish/v1/Registries/Task'), 404, 'ResourceNotFound');
    const task = await call(t, '/redfish/v1/Registries/TaskEvent');
    expect(task.json.Registry).to.equal('TaskEvent.1.0');
    const taskReg = await call(t, (task.json.Location as { Uri: string }[])[0]!.Uri);
    expect(taskReg.json.Id).to.equal('TaskEvent.1.0.5');
    expect(Object.keys(taskReg.json.Messages as object)).to.include.members(['TaskStarted', 'TaskCompletedOK', 'TaskAborted', 'TaskCancelled', 'TaskProgressChanged']);
    expectBaseError(await call(t, '/redfish/v1/Registries/Base/Base.1.0.0'), 404, 'ResourceNotFound');
  });

  it('answers 404 for unknown URIs and 405 with Allow for known ones with a wrong method', async () => {
    const nf = expectBaseError(await call(t, '/redfish/v1/NoSuchThing'), 404, 'ResourceMissingAtURI');
    expect(nf[0]?.MessageArgs).to.deep.equal(['/redfish/v1/NoSuchThing']);
    expectBaseError(await call(t, '/redfish/v1/NoSuchThing', { auth: false }), 404, 'ResourceMissingAtURI');
    expectBaseError(await call(t, '/redfish/v1/AccountService/Roles/Superuser'), 404, 'ResourceNotFound');

    const del = await call(t, '/redfish/v1/Systems', { method: 'DELETE' });
    expectBaseError(del, 405, 'OperationNotAllowed');
    expect(del.headers.get('allow')).to.equal('GET, HEAD');
    const put = await call(t, '/redfish/v1/SessionService/Sessions', { method: 'PUT' });
    expectBaseError(put, 405, 'OperationNotAllowed');
    expect(put.headers.get('allow')).to.equal('GET, HEAD, POST');
    const head = await fetch(`${t.redfishUrl}/redfish/v1`, { method: 'HEAD' });
    expect(head.status).to.equal(200);
  });

  it('rejects bodies over 64 KiB (413), bad JSON (400 MalformedJSON) and non-JSON media types (415)', async () => {
    const json = { 'Content-Type': 'application/json' };
    const big = JSON.stringify({ SessionTimeout: 60, Pad: 'x'.repeat(70 * 1024) });
    expectBaseError(await call(t, '/redfish/v1/SessionService', { method: 'PATCH', headers: json, body: big }), 413, 'PayloadTooLarge');
    expectBaseError(
      await call(t, '/redfish/v1/SessionService', { method: 'PATCH', headers: json, body: '{"SessionTimeout": ' }),
      400,
      'MalformedJSON',
    );
    expectBaseError(
      await call(t, '/redfish/v1/SessionService', { method: 'PATCH', headers: { 'Content-Type': 'text/plain' }, body: 'SessionTimeout=60' }),
      415,
      'UnrecognizedRequestBody',
    );
    expectBaseError(await call(t, '/redfish/v1/SessionService', { method: 'PATCH', headers: json, body: '{}' }), 400, 'EmptyJSON');
    // deeply nested JSON (which echoing a value back would overflow the stack on) is refused as such,
    // on the unauthenticated login too
    const deep = (n: number): string => '['.repeat(n) + ']'.repeat(n);
    expectBaseError(
      await call(t, '/redfish/v1/SessionService/Sessions', { method: 'POST', headers: json, body: `{"UserName": ${deep(20000)}, "Password": "x"}` }),
      400,
      'MalformedJSON',
    );
    expectBaseError(
      await call(t, '/redfish/v1/SessionService', { method: 'PATCH', headers: json, body: `{"SessionTimeout": ${deep(20000)}}` }),
      400,
      'MalformedJSON',
    );
    // nesting as deep as any Redfish body needs is fine
    expectBaseError(
      await call(t, '/redfish/v1/SessionService', { method: 'PATCH', headers: json, body: `{"SessionTimeout": ${deep(8)}}` }),
      400,
      'PropertyValueTypeError',
    );
    // nothing changed
    expect((await call(t, '/redfish/v1/SessionService')).json.SessionTimeout).to.equal(1800);
  });

  it('answers 413 to an endless body and then cuts the connection instead of reading on', async () => {
    const port = Number(new URL(t.redfishUrl).port);
    const s = net.connect(port, '127.0.0.1');
    let got = '';
    let closed = false;
    s.on('data', (d: Buffer) => (got += d.toString()));
    s.on('close', () => (closed = true));
    s.on('error', () => undefined);
    s.write('POST /redfish/v1/SessionService/Sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n');
    const chunk = Buffer.alloc(4096, 0x20);
    const frame = Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')]);
    const ended = new Promise<void>((r) => s.once('close', () => r()));
    try {
      // an endless body, paced by the socket (its drain event) and not by a clock; no deadline of
      // its own: if the server read on forever, the test's timeout would stop it
      while (!closed) {
        if (s.write(frame)) await new Promise((r) => setImmediate(r));
        else await Promise.race([new Promise((r) => s.once('drain', r)), ended]);
      }
      expect(got.split('\r\n')[0]).to.equal('HTTP/1.1 413 Payload Too Large');
      expect(closed, 'connection closed by the server').to.equal(true);
    } finally {
      s.destroy();
    }
  });

  it('reports every PATCH problem in one 400 and leaves the resource unchanged', async () => {
    const r = await call(t, '/redfish/v1/SessionService', {
      method: 'PATCH',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ SessionTimeout: 10, Bogus: 1, ServiceEnabled: false }),
    });
    expect(r.status).to.equal(400);
    const info = (r.json.error as Record<string, unknown>)['@Message.ExtendedInfo'] as Record<string, unknown>[];
    expect(info.map((i) => i.MessageId)).to.have.members([
      'Base.1.22.1.PropertyValueOutOfRange',
      'Base.1.22.1.PropertyUnknown',
      'Base.1.22.1.PropertyNotWritable',
    ]);
    expect(info.map((i) => i.RelatedProperties)).to.deep.include(['#/Bogus']);
    expect((await call(t, '/redfish/v1/SessionService')).json.SessionTimeout).to.equal(1800);
  });

  it('honours ETags: If-None-Match → 304, stale If-Match → 412 PreconditionFailed', async () => {
    const first = await call(t, '/redfish/v1/SessionService');
    const etag = first.headers.get('etag') as string;
    expect(etag).to.match(/^W\/"[0-9a-f]+"$/);
    expect(first.json['@odata.etag']).to.equal(etag);
    expect((await call(t, '/redfish/v1/SessionService', { headers: { 'If-None-Match': etag } })).status).to.equal(304);
    // HEAD is a GET without the body, conditions included
    expect((await call(t, '/redfish/v1/SessionService', { method: 'HEAD', headers: { 'If-None-Match': etag } })).status).to.equal(304);
    expect((await call(t, '/redfish/v1/SessionService', { method: 'HEAD', headers: { 'If-None-Match': 'W/"0000"' } })).status).to.equal(200);
    const stale = await call(t, '/redfish/v1/SessionService', {
      method: 'PATCH',
      headers: { 'Content-Type': 'application/json', 'If-Match': 'W/"0000"' },
      body: JSON.stringify({ SessionTimeout: 600 }),
    });
    expectBaseError(stale, 412, 'PreconditionFailed');
    const fresh = await call(t, '/redfish/v1/SessionService', {
      method: 'PATCH',
      headers: { 'Content-Type': 'application/json', 'If-Match': etag },
      body: JSON.stringify({ SessionTimeout: 1800 }),
    });
    expect(fresh.status).to.equal(200);
  });

  it('refuses query parameters it does not implement with 501', async () => {
    expectBaseError(await call(t, '/redfish/v1/Systems?$expand=*'), 501, 'QueryParameterUnsupported');
  });

  it('accepts OData-Version 4.0 and refuses other versions with 412', async () => {
    expect((await call(t, '/redfish/v1/Systems', { headers: { 'OData-Version': '4.0' } })).status).to.equal(200);
    expectBaseError(await call(t, '/redfish/v1/Systems', { headers: { 'OData-Version': '5.0' } }), 412, 'HeaderInvalid');
  });
});

describe('Redfish error mapping', () => {
  it('maps backend errors to status, Base message and Retry-After', () => {
    const cases: [BackendError, number, string, string | undefined][] = [
      [new BackendError('Busy', 'powering on', { retryAfterSeconds: 3 }), 409, 'ResourceInUse', '3'],
      [new BackendError('Unavailable', 'apiserver down', { retryAfterSeconds: 7 }), 503, 'ServiceTemporarilyUnavailable', '7'],
      [new BackendError('Conflict', 'slot holds an image'), 409, 'ResourceInUse', undefined],
      [new BackendError('NotFound', 'vm gone'), 404, 'GeneralError', undefined],
      [new BackendError('InvalidArgument', 'bad url'), 400, 'GeneralError', undefined],
      [new BackendError('Unsupported', 'no nmi'), 501, 'GeneralError', undefined],
    ];
    for (const [be, status, key, retry] of cases) {
      const e = fromBackendError(be);
      expect(e.status, be.code).to.equal(status);
      expect(e.messageId).to.equal(`Base.1.22.1.${key}`);
      expect(e.opts.headers?.['Retry-After']).to.equal(retry);
      expect(e.opts.detail).to.equal(be.message);
    }
    expect(fromBackendError(new BackendError('Unsupported', 'x'), { action: 'ComputerSystem.Reset' }).messageId).to.equal(
      'Base.1.22.1.ActionNotSupported',
    );
    // a conflict because the machine is off names the chassis that must be on, never "HTTP method not allowed"
    const off = fromBackendError(new BackendError('Conflict', 'cannot restart a machine that is off'), { poweredOffChassis: '1' });
    expect([off.status, off.messageId, off.args]).to.deep.equal([409, 'Base.1.22.1.ChassisPowerStateOnRequired', ['1']]);
    expect(JSON.stringify(errorBody(off.messages(), off.opts.detail))).to.not.include('HTTP method');
    const body = errorBody(fromBackendError(new BackendError('Unavailable', 'down', { retryAfterSeconds: 7 })).messages()) as {
      error: { '@Message.ExtendedInfo': { Message: string }[] };
    };
    expect(body.error['@Message.ExtendedInfo'][0]?.Message).to.equal('The service is temporarily unavailable.  Retry in 7 seconds.');
  });

  it('answers 503 + Retry-After over HTTP while the backend is unavailable, then recovers', async () => {
    const t = await startTestAgent({ ipmi: false });
    try {
      t.sim.setAvailable(false);
      const down = await call(t, '/redfish/v1/Systems/1');
      expectBaseError(down, 503, 'ServiceTemporarilyUnavailable');
      expect(Number(down.headers.get('retry-after'))).to.be.greaterThan(0);
      t.sim.setAvailable(true);
      expect((await call(t, '/redfish/v1/Systems/1')).status).to.equal(200);
    } finally {
      await t.close();
    }
  });

  it('accepts short or full MessageIds and fills RelatedProperties', () => {
    const e = new RedfishError(400, 'PropertyUnknown', ['Foo'], { property: 'Foo' });
    expect(e.messageId).to.equal('Base.1.22.1.PropertyUnknown');
    expect(new RedfishError(400, 'Base.1.22.1.PropertyUnknown').messageId).to.equal('Base.1.22.1.PropertyUnknown');
    const info = (errorBody(e.messages()) as { error: { '@Message.ExtendedInfo': Record<string, unknown>[] } }).error['@Message.ExtendedInfo'];
    expect(info[0]?.RelatedProperties).to.deep.equal(['#/Foo']);
    expect(info[0]?.Message).to.equal('The property Foo is not in the list of valid properties for the resource.');
  });

  it('validatePatch collects every problem, nested ones included', () => {
    const spec = {
      writable: { Boot: { object: { Target: { enum: ['Pxe', 'Hdd'] }, Count: { integer: { min: 1, max: 3 } } } }, Name: 'string' as const },
      readOnly: ['Id', 'Boot/Allowed'],
    };
    expect(validatePatch({ Boot: { Target: 'Pxe' } }, spec)).to.deep.equal({ Boot: { Target: 'Pxe' } });
    let caught: unknown;
    try {
      validatePatch({ Id: 'x', Name: 5, Boot: { Target: 'Usb', Count: 9, Allowed: [], Nope: 1 }, '@odata.etag': 'W/"1"' }, spec);
    } catch (e) {
      caught = e;
    }
    const err = caught as RedfishError;
    expect(err.status).to.equal(400);
    expect(err.messages().map((m) => `${m.messageId.replace('Base.1.22.1.', '')} ${m.property ?? ''}`)).to.have.members([
      'PropertyNotWritable #/Id',
      'PropertyValueTypeError #/Name',
      'PropertyValueNotInList #/Boot/Target',
      'PropertyValueOutOfRange #/Boot/Count',
      'PropertyNotWritable #/Boot/Allowed',
      'PropertyUnknown #/Boot/Nope',
    ]);
    expect(() => validatePatch({}, spec)).to.throw(RedfishError, /EmptyJSON/);
    expect(() => validatePatch([1], spec)).to.throw(RedfishError, /MalformedJSON/);
  });
});
