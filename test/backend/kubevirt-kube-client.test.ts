/**
 * The shared Kubernetes REST client (src/kube/client.ts) against a scripted loopback HTTP server:
 * credentials and JSON bodies on the wire, Status errors, RBAC-naming 403s, paging, timeouts, and
 * the single retry of a read whose pooled keep-alive connection the server reset.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import { KubeConfig } from '@kubernetes/client-node';
import { KubeApiError, KubeClient, isConflict, isNotFound } from '../../src/kube/client.js';
import { Resources } from '../../src/kube/resources.js';

interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
  socketPort: number;
}

type Handler = (req: http.IncomingMessage, res: http.ServerResponse, body: string) => void;

describe('kube client (shared by the backend and the controller)', function () {
  this.timeout(10000);
  let server: http.Server;
  let seen: Seen[];
  let handler: Handler;
  let client: KubeClient;

  const json = (res: http.ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };

  beforeEach(async () => {
    seen = [];
    handler = (_req, res) => json(res, 200, {});
    server = http.createServer({ keepAlive: true }, (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body, socketPort: req.socket.remotePort ?? 0 });
        handler(req, res, body);
      });
    });
    server.keepAliveTimeout = 30_000;
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'c', server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, skipTLSVerify: true }],
      users: [{ name: 'u', token: 'tok-123' }],
      contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
      currentContext: 'x',
    });
    client = new KubeClient(kc, { timeoutMs: 300 });
  });

  afterEach(async () => {
    client.close();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  it('sends the bearer token, JSON bodies and the right content types; deletes with DeleteOptions', async () => {
    handler = (_req, res, body) => json(res, 200, body ? JSON.parse(body) : {});
    const created = await client.create(Resources.secret, 'ns1', { metadata: { name: 's' } });
    expect(created).to.deep.equal({ metadata: { name: 's' } });
    await client.mergePatch(Resources.vmbmc, 'ns1', 'b', { status: { x: 1 } }, 'status');
    await client.jsonPatch(Resources.vm, 'ns1', 'vm1', [{ op: 'remove', path: '/a' }]);
    await client.putSubresource(Resources.vmActions, 'ns1', 'vm1', 'start');
    await client.delete(Resources.dataVolume, 'ns1', 'dv');

    expect(seen.map((s) => `${s.method} ${s.url}`)).to.deep.equal([
      'POST /api/v1/namespaces/ns1/secrets',
      'PATCH /apis/bmc.kubevirt.io/v1beta1/namespaces/ns1/virtualmachinebmcs/b/status',
      'PATCH /apis/kubevirt.io/v1/namespaces/ns1/virtualmachines/vm1',
      'PUT /apis/subresources.kubevirt.io/v1/namespaces/ns1/virtualmachines/vm1/start',
      'DELETE /apis/cdi.kubevirt.io/v1beta1/namespaces/ns1/datavolumes/dv',
    ]);
    for (const s of seen) expect(s.headers.authorization).to.equal('Bearer tok-123');
    expect(seen[0]!.headers['content-type']).to.equal('application/json');
    expect(seen[1]!.headers['content-type']).to.equal('application/merge-patch+json');
    expect(seen[2]!.headers['content-type']).to.equal('application/json-patch+json');
    expect(JSON.parse(seen[4]!.body)).to.deep.equal({ kind: 'DeleteOptions', apiVersion: 'v1', propagationPolicy: 'Background' });
    // one pooled keep-alive connection served them all
    expect(new Set(seen.map((s) => s.socketPort)).size).to.equal(1);
  });

  it('turns a Status answer into a KubeApiError; a 403 names the RBAC permission', async () => {
    handler = (req, res) => {
      if (req.method === 'GET') json(res, 404, { kind: 'Status', reason: 'NotFound', message: 'secrets "s" not found', code: 404 });
      else if (req.method === 'POST') json(res, 409, { kind: 'Status', reason: 'AlreadyExists', message: 'exists', code: 409 });
      else json(res, 403, { kind: 'Status', reason: 'Forbidden', message: 'nope', code: 403 });
    };
    const nf = await client.get(Resources.secret, 'ns1', 's').catch((e: unknown) => e);
    expect(isNotFound(nf)).to.equal(true);
    expect((nf as KubeApiError).reason).to.equal('NotFound');
    expect((nf as KubeApiError).kubeMessage).to.equal('secrets "s" not found');
    expect(isConflict(await client.create(Resources.secret, 'ns1', {}).catch((e: unknown) => e))).to.equal(true);
    const fb = (await client.mergePatch(Resources.deployment, 'ns1', 'd', {}).catch((e: unknown) => e)) as KubeApiError;
    expect(fb).to.be.instanceOf(KubeApiError);
    expect(fb.status).to.equal(403);
    expect(fb.message).to.contain('needs patch on deployments.apps');
    expect(fb.rbac).to.deep.equal({ verb: 'patch', group: 'apps', resource: 'deployments' });
  });

  it('lists every page and keeps the first page resourceVersion', async () => {
    handler = (req, res) => {
      const u = new URL(req.url ?? '', 'http://x');
      const cont = u.searchParams.get('continue');
      expect(u.searchParams.get('labelSelector')).to.equal('a=b');
      expect(u.searchParams.get('limit')).to.equal('2');
      if (!cont) json(res, 200, { metadata: { resourceVersion: '10', continue: 'p2' }, items: [{ n: 1 }, { n: 2 }] });
      else json(res, 200, { metadata: { resourceVersion: '11' }, items: [{ n: 3 }] });
    };
    const list = await client.list(Resources.secret, 'ns1', { labelSelector: 'a=b', limit: 2 });
    expect(list.items.map((i) => i.n)).to.deep.equal([1, 2, 3]);
    expect(list.metadata?.resourceVersion).to.equal('10');
    expect(seen).to.have.length(2);
  });

  it('gives up after the timeout with status 0', async () => {
    handler = () => undefined; // never answers
    const e = (await client.get(Resources.secret, 'ns1', 's').catch((err: unknown) => err)) as KubeApiError;
    expect(e).to.be.instanceOf(KubeApiError);
    expect(e.status).to.equal(0);
    expect(e.message).to.match(/no answer within 300 ms/);
  });

  it('retries a read once when the server resets the pooled connection, but not a create', async () => {
    let n = 0;
    handler = (req, res) => {
      n++;
      // the second request arrives on the reused connection: drop it without an answer
      if (n === 2 || n === 4) req.socket.destroy();
      else json(res, 200, { kind: 'Secret', metadata: { name: 's' } });
    };
    await client.get(Resources.secret, 'ns1', 's');
    const got = await client.get(Resources.secret, 'ns1', 's');
    expect(got.metadata?.name).to.equal('s');
    expect(seen.filter((s) => s.method === 'GET')).to.have.length(3);

    const e = (await client.create(Resources.secret, 'ns1', { metadata: { name: 's' } }).catch((err: unknown) => err)) as KubeApiError;
    expect(e).to.be.instanceOf(KubeApiError);
    expect(e.status).to.equal(0);
    expect(e.reusedSocket).to.equal(true);
    expect(seen.filter((s) => s.method === 'POST')).to.have.length(1);
  });
});
