/**
 * Answers are serialised once (src/redfish/core/odata.ts etagOfAnswer / sendResource): the ETag is
 * the hash of the JSON text that is sent, without @odata.etag, and the text is what JSON.stringify
 * of the answer object gives (@odata.etag last). Checked here from the bytes on the wire, with
 * non-ASCII text in the body, for GET and HEAD, and for etagOf on its own.
 */
import { expect } from 'chai';
import { createHash } from 'node:crypto';
import http from 'node:http';
import { etagOf, jsonOfBody, prepareResource } from '../../src/redfish/core/odata.js';
import { ADMIN, startTestAgent, type TestAgent } from '../helpers/agent.js';

const AUTH = `Basic ${Buffer.from(`${ADMIN.username}:${ADMIN.password}`).toString('base64')}`;
const weak = (text: string): string => `W/"${createHash('sha256').update(text).digest('hex').slice(0, 16)}"`;

function raw(port: number, path: string, method = 'GET', body?: unknown): Promise<{ status: number; headers: http.IncomingHttpHeaders; bytes: Buffer }> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, path, method, agent: false, headers: { Authorization: AUTH, ...(payload ? { 'Content-Type': 'application/json' } : {}) } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, bytes: Buffer.concat(chunks) }));
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

describe('Redfish answer text and ETag', () => {
  let t: TestAgent;
  before(async () => {
    t = await startTestAgent({ ipmi: false });
  });
  after(async () => t?.close());

  it('the ETag is the hash of the text sent (without @odata.etag), for @odata.etag resources and others', async () => {
    expect((await raw(t.redfishPort, '/redfish/v1/Systems/1', 'PATCH', { AssetTag: 'rack-é✓-7' })).status).to.equal(200);
    for (const path of ['/redfish/v1/Systems/1', '/redfish/v1', '/redfish/v1/Systems', '/redfish/v1/Chassis/1', '/redfish/v1/AccountService/Accounts']) {
      const r = await raw(t.redfishPort, path);
      expect(r.status, path).to.equal(200);
      expect(Number(r.headers['content-length']), path).to.equal(r.bytes.length);
      const text = r.bytes.toString('utf8');
      const obj = JSON.parse(text) as Record<string, unknown>;
      // the text is exactly JSON.stringify of what it parses to (one serialisation, nothing spliced wrong)
      expect(JSON.stringify(obj), path).to.equal(text);
      const tag = r.headers.etag;
      if ('@odata.etag' in obj) {
        expect(Object.keys(obj).at(-1), path).to.equal('@odata.etag');
        expect(obj['@odata.etag'], path).to.equal(tag);
        const { ['@odata.etag']: _e, ...rest } = obj;
        expect(tag, path).to.equal(weak(JSON.stringify(rest)));
      } else expect(tag, path).to.equal(weak(text));
      const head = await raw(t.redfishPort, path, 'HEAD');
      expect(head.headers['content-length'], path).to.equal(r.headers['content-length']);
      expect(head.headers.etag, path).to.equal(tag);
      expect(head.bytes.length).to.equal(0);
    }
    const sys = JSON.parse((await raw(t.redfishPort, '/redfish/v1/Systems/1')).bytes.toString('utf8')) as Record<string, unknown>;
    expect(sys.AssetTag).to.equal('rack-é✓-7');
  });

  it('a change shows in the next text and ETag (nothing stale is sent)', async () => {
    const a = await raw(t.redfishPort, '/redfish/v1/Systems/1');
    expect((await raw(t.redfishPort, '/redfish/v1/Systems/1', 'PATCH', { AssetTag: 'other' })).status).to.equal(200);
    const b = await raw(t.redfishPort, '/redfish/v1/Systems/1');
    expect(b.headers.etag).to.not.equal(a.headers.etag);
    expect((JSON.parse(b.bytes.toString('utf8')) as Record<string, unknown>).AssetTag).to.equal('other');
  });

  it('etagOf ignores @odata.etag and gives equal tags for equal content only', () => {
    const body = { Id: '1', Name: 'x', Nested: { a: [1, 2] } };
    expect(etagOf(body)).to.equal(weak(JSON.stringify(body)));
    expect(etagOf({ ...body, '@odata.etag': 'W/"old"' })).to.equal(etagOf(body));
    expect(etagOf({ ...body, Name: 'y' })).to.not.equal(etagOf(body));
    // not a plain object: hashed as the copy of its own properties, as before
    class Thing {
      Id = '1';
    }
    expect(etagOf(new Thing())).to.equal(weak('{"Id":"1"}'));
  });

  it('a prepared (kept) answer is the body with its @odata.etag, frozen, and its text is what JSON.stringify of it gives', () => {
    // more keys than Object.assign onto {} keeps in fast mode (the payload is parsed back from its text instead)
    const body: Record<string, unknown> = { '@odata.id': '/redfish/v1/Systems/1', Id: '1', Name: 'n-é✓', Nested: { a: [1, 2, null], b: { c: 'd' } }, Nothing: null };
    for (let i = 0; i < 30; i++) body[`Key${i}`] = i % 2 ? `v${i}` : i;
    const before = JSON.stringify(body);
    const p = prepareResource(body);
    expect(p.etag).to.equal(weak(before));
    expect(p.payload).to.deep.equal({ ...body, '@odata.etag': p.etag });
    expect(Object.keys(p.payload)).to.deep.equal([...Object.keys(body), '@odata.etag']);
    expect(Object.isFrozen(p.payload)).to.equal(true);
    expect(jsonOfBody(p.payload)).to.equal(JSON.stringify(p.payload));
    expect(JSON.stringify(body)).to.equal(before); // the body itself is not changed
    expect(prepareResource({}).payload).to.deep.equal({ '@odata.etag': weak('{}') });
    expect(jsonOfBody(prepareResource({}).payload)).to.equal(`{"@odata.etag":${JSON.stringify(weak('{}'))}}`);
  });
});
