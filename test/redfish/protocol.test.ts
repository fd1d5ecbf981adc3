/**
 * DSP0266 protocol rules the DMTF Redfish-Protocol-Validator checks, in our own tests (in-process
 * agent on the simulator): Allow and Link rel=describedby on GET/HEAD, 501 for methods the service
 * (or node's HTTP parser) does not know, POST to a collection's Members creates, Location + 201 on
 * every create, ETags on collections, the `only` query parameter, the router's 404/405/501.
 */
import net from 'node:net';
import { expect } from 'chai';
import { routes } from '../../generated/redfish/routes.js';
import { describedBy } from '../../src/redfish/app.js';
import { ADMIN, READONLY, startTestAgent, type TestAgent } from '../helpers/agent.js';

const basic = (u: { username: string; password: string }): string => `Basic ${Buffer.from(`${u.username}:${u.password}`).toString('base64')}`;

interface Reply {
  status: number;
  headers: Headers;
  json: Record<string, unknown>;
}

async function call(t: TestAgent, path: string, init: RequestInit & { user?: typeof ADMIN | null } = {}): Promise<Reply> {
  const headers = new Headers(init.headers);
  if (init.user !== null) headers.set('Authorization', basic(init.user ?? ADMIN));
  const res = await fetch(`${t.redfishUrl}${path}`, { ...init, headers });
  const text = await res.text();
  return { status: res.status, headers: res.headers, json: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

const firstMessageId = (r: Reply): string | undefined =>
  ((r.json.error as Record<string, unknown> | undefined)?.['@Message.ExtendedInfo'] as { MessageId: string }[] | undefined)?.[0]?.MessageId;

/** Send raw bytes, read until the server closes; the status line, headers and body. */
async function raw(t: TestAgent, request: string): Promise<{ statusLine: string; head: string; body: string }> {
  const port = Number(new URL(t.redfishUrl).port);
  const got = await new Promise<string>((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(request));
    let data = '';
    s.on('data', (d: Buffer) => (data += d.toString()));
    s.on('end', () => resolve(data));
    s.on('error', reject);
  });
  const [head = '', body = ''] = got.split('\r\n\r\n');
  return { statusLine: head.split('\r\n')[0] ?? '', head, body };
}

describe('Redfish protocol (DSP0266)', () => {
  let t: TestAgent;
  before(async () => {
    t = await startTestAgent({ ipmi: false });
  });
  after(async () => t?.close());

  describe('Allow on GET and HEAD', () => {
    it('names the methods of the resource, from the route table', async () => {
      for (const method of ['GET', 'HEAD']) {
        expect((await call(t, '/redfish/v1/', { method, user: null })).headers.get('allow'), method).to.equal('GET, HEAD');
        expect((await call(t, '/redfish/v1/SessionService/Sessions', { method })).headers.get('allow')).to.equal('GET, HEAD, POST');
        expect((await call(t, '/redfish/v1/SessionService', { method })).headers.get('allow')).to.equal('GET, HEAD, PATCH');
      }
      // every GET route's methods, as the table lists them (Systems/1: GET + PATCH)
      const methods = routes.filter((r) => r.path === '/redfish/v1/Systems/{ComputerSystemId}').map((r) => r.method);
      expect(methods).to.include.members(['GET', 'PATCH']);
      expect((await call(t, '/redfish/v1/Systems/1')).headers.get('allow')).to.equal('GET, HEAD, PATCH');
    });

    it('leaves out what this user may not do', async () => {
      const ro = await call(t, '/redfish/v1/SessionService', { user: READONLY });
      expect(ro.status).to.equal(200);
      expect(ro.headers.get('allow')).to.equal('GET, HEAD');
      expect((await call(t, '/redfish/v1/Systems/1', { user: READONLY })).headers.get('allow')).to.equal('GET, HEAD');
      // the 405 always lists every method of the resource
      const put = await call(t, '/redfish/v1/SessionService', { method: 'PUT', user: READONLY });
      expect(put.status).to.equal(405);
      expect(put.headers.get('allow')).to.equal('GET, HEAD, PATCH');
    });
  });

  describe('Link rel=describedby', () => {
    it('points at the DMTF schema of the @odata.type, versioned when the type is', async () => {
      const uris = ['/redfish/v1/', '/redfish/v1/SessionService/Sessions', '/redfish/v1/Managers/BMC/NetworkProtocol', '/redfish/v1/Systems',
        '/redfish/v1/AccountService/Accounts', '/redfish/v1/AccountService', '/redfish/v1/Systems/1'];
      for (const uri of uris) {
        const r = await call(t, uri);
        expect(r.status, uri).to.equal(200);
        const type = String(r.json['@odata.type']).replace(/^#/, '').split('.');
        const file = type.length === 3 ? `${type[0]}.${type[1]}` : type[0];
        expect(r.headers.get('link'), uri).to.equal(`<https://redfish.dmtf.org/schemas/v1/${file}.json>; rel=describedby`);
        const head = await call(t, uri, { method: 'HEAD' });
        expect(head.headers.get('link'), `HEAD ${uri}`).to.equal(r.headers.get('link'));
      }
      expect(describedBy('#ComputerSystem.v1_27_0.ComputerSystem')).to.equal(
        '<https://redfish.dmtf.org/schemas/v1/ComputerSystem.v1_27_0.json>; rel=describedby',
      );
      expect(describedBy('#SessionCollection.SessionCollection')).to.equal('<https://redfish.dmtf.org/schemas/v1/SessionCollection.json>; rel=describedby');
      expect(describedBy('#Odd>"type.v1_0_0.X')).to.equal(undefined);
      expect(describedBy(undefined)).to.equal(undefined);
    });
  });

  describe('methods the service does not implement', () => {
    it('answers an extension method node cannot parse with 501 and a Redfish body, then closes', async () => {
      const r = await raw(t, 'FAKEMETHODFORTEST /redfish/v1/ HTTP/1.1\r\nHost: x\r\n\r\n');
      expect(r.statusLine).to.equal('HTTP/1.1 501 Not Implemented');
      expect(r.head.toLowerCase()).to.include('odata-version: 4.0');
      expect(r.head.toLowerCase()).to.include('connection: close');
      const body = JSON.parse(r.body) as { error: { '@Message.ExtendedInfo': { MessageId: string }[] } };
      expect(body.error['@Message.ExtendedInfo'][0]?.MessageId).to.match(/^Base\.1\.\d+\.\d+\.OperationNotAllowed$/);
    });

    it('answers other unparseable requests with a Redfish 400, and keeps serving', async () => {
      const r = await raw(t, 'GET /redfish/v1/ HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n');
      expect(r.statusLine).to.equal('HTTP/1.1 400 Bad Request');
      expect(JSON.parse(r.body)).to.have.nested.property('error.code');
      expect((await call(t, '/redfish/v1/', { user: null })).status).to.equal(200);
    });

    it('answers methods node knows but no route serves (PROPFIND, OPTIONS) with 501, known ones with 405', async () => {
      for (const method of ['PROPFIND', 'OPTIONS']) {
        const r = await call(t, '/redfish/v1/Systems', { method });
        expect(r.status, method).to.equal(501);
        expect(firstMessageId(r)).to.match(/OperationNotAllowed$/);
      }
      const del = await call(t, '/redfish/v1/', { method: 'DELETE' });
      expect(del.status).to.equal(405);
      expect(del.headers.get('allow')).to.equal('GET, HEAD');
      const nf = await call(t, '/redfish/v1/Nope/Nothing');
      expect(nf.status).to.equal(404);
      expect(firstMessageId(nf)).to.match(/ResourceMissingAtURI$/);
    });
  });

  describe('creates', () => {
    it('POST to Sessions/Members creates a session like POST to Sessions: 201, Location, token', async () => {
      for (const uri of ['/redfish/v1/SessionService/Sessions', '/redfish/v1/SessionService/Sessions/Members']) {
        const r = await call(t, uri, {
          method: 'POST',
          user: null,
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ UserName: ADMIN.username, Password: ADMIN.password }),
        });
        expect(r.status, uri).to.equal(201);
        const location = r.headers.get('location') as string;
        expect(location, uri).to.match(/^\/redfish\/v1\/SessionService\/Sessions\/[^/]+$/);
        expect(r.json['@odata.id']).to.equal(location);
        const token = r.headers.get('x-auth-token') as string;
        const me = await fetch(`${t.redfishUrl}${location}`, { headers: { 'X-Auth-Token': token } });
        expect(me.status).to.equal(200);
        expect((await fetch(`${t.redfishUrl}${location}`, { method: 'DELETE', headers: { 'X-Auth-Token': token } })).status).to.equal(204);
      }
      // Members is not a resource of its own
      expect((await call(t, '/redfish/v1/SessionService/Sessions/Members', { method: 'DELETE' })).status).to.equal(404);
    });

    it('every create route in the table also takes POST on its Members', async () => {
      const creates = routes.filter((r) => r.method === 'POST' && !r.path.includes('/Actions/') && !r.path.includes('{'));
      expect(creates.map((r) => r.operationId)).to.include('createSession');
      for (const r of creates) {
        // an empty create reaches the handler (its own 400), never the router's 404/405
        const res = await call(t, `${r.path}/Members`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' });
        expect(res.status, r.path).to.not.be.oneOf([404, 405, 501]);
      }
    });
  });

  describe('request bodies (koa-bodyparser)', () => {
    it('refuses __proto__ keys (400) and unknown content codings (415), changing nothing', async () => {
      const patch = (body: string, headers: Record<string, string> = {}): Promise<Reply> =>
        call(t, '/redfish/v1/SessionService', { method: 'PATCH', headers: { 'Content-Type': 'application/json', ...headers }, body });
      const proto = await patch('{"SessionTimeout": 600, "__proto__": {"admin": true}}');
      expect(proto.status).to.equal(400);
      expect(firstMessageId(proto)).to.match(/MalformedJSON$/);
      const coded = await patch('{"SessionTimeout": 600}', { 'Content-Encoding': 'x-unknown' });
      expect(coded.status).to.equal(415);
      expect(firstMessageId(coded)).to.match(/UnrecognizedRequestBody$/);
      expect((await call(t, '/redfish/v1/SessionService')).json.SessionTimeout).to.equal(1800);
    });

    it('answers oversized request headers with a Redfish 431', async () => {
      const r = await raw(t, `GET /redfish/v1/ HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20000)}\r\n\r\n`);
      expect(r.statusLine).to.equal('HTTP/1.1 431 Request Header Fields Too Large');
      expect(JSON.parse(r.body)).to.have.nested.property('error.code');
    });
  });

  describe('ETags', () => {
    it('collections carry an ETag that changes with the members and answers If-None-Match with 304', async () => {
      const first = await call(t, '/redfish/v1/SessionService/Sessions');
      const etag = first.headers.get('etag') as string;
      expect(etag).to.match(/^W\/"[0-9a-f]+"$/);
      expect((await call(t, '/redfish/v1/SessionService/Sessions', { headers: { 'If-None-Match': etag } })).status).to.equal(304);
      expect((await call(t, '/redfish/v1/Systems')).headers.get('etag')).to.match(/^W\//);
      const login = await call(t, '/redfish/v1/SessionService/Sessions', {
        method: 'POST',
        user: null,
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ UserName: ADMIN.username, Password: ADMIN.password }),
      });
      const after = await call(t, '/redfish/v1/SessionService/Sessions', { headers: { 'If-None-Match': etag } });
      expect(after.status).to.equal(200);
      expect(after.headers.get('etag')).to.not.equal(etag);
      await call(t, login.headers.get('location') as string, { method: 'DELETE' });
    });
  });

  describe('only', () => {
    it('is advertised, answers a one-member collection with its member and leaves others alone', async () => {
      const root = await call(t, '/redfish/v1/', { user: null });
      expect(root.json.ProtocolFeaturesSupported).to.deep.include({ OnlyMemberQuery: true, ExcerptQuery: false });
      const sys = await call(t, '/redfish/v1/Systems?only');
      expect(sys.status).to.equal(200);
      expect(sys.json['@odata.id']).to.equal('/redfish/v1/Systems/1');
      expect(sys.json['@odata.type']).to.match(/^#ComputerSystem\.v1_/);
      expect(sys.headers.get('allow')).to.equal('GET, HEAD, PATCH');
      expect(sys.headers.get('link')).to.match(/ComputerSystem\.v1_\d+_\d+\.json/);
      expect(sys.headers.get('etag')).to.equal((await call(t, '/redfish/v1/Systems/1')).headers.get('etag'));
      // not a collection: ignored
      expect((await call(t, '/redfish/v1/Systems/1?only')).json['@odata.id']).to.equal('/redfish/v1/Systems/1');
      // several members: the collection itself
      const login = (): Promise<Reply> =>
        call(t, '/redfish/v1/SessionService/Sessions', {
          method: 'POST',
          user: null,
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ UserName: ADMIN.username, Password: ADMIN.password }),
        });
      const a = await login();
      const b = await login();
      const many = await call(t, '/redfish/v1/SessionService/Sessions?only');
      expect(many.json['Members@odata.count']).to.be.greaterThan(1);
      for (const s of [a, b]) await call(t, s.headers.get('location') as string, { method: 'DELETE' });
    });

    it('rejects a value or a combination with 400', async () => {
      const v = await call(t, '/redfish/v1/SessionService/Sessions?only=foo');
      expect(v.status).to.equal(400);
      expect(firstMessageId(v)).to.match(/QueryParameterValueFormatError$/);
      const c = await call(t, '/redfish/v1/Systems?only&excerpt');
      expect(c.status).to.equal(400);
      expect(firstMessageId(c)).to.match(/QueryCombinationInvalid$/);
    });

    it('still checks the privileges of the member', async () => {
      // a ReadOnly user sees the Accounts collection but only their own account
      const r = await call(t, '/redfish/v1/AccountService/Accounts?only', { user: READONLY });
      expect(r.status).to.equal(200);
      expect(r.json['@odata.id']).to.match(/\/Accounts\/[^/]+$/);
      expect(r.json.UserName).to.equal(READONLY.username);
    });
  });
});
