/**
 * DMTF Redfish-Tacklebox `rf_virtual_media.py insert` / `eject` (and its task follower
 * redfish_utilities.poll_task_monitor), replayed request by request: Tacklebox is not packaged in
 * Debian and GitHub is unreachable from CI, so this test encodes what it does, taken from
 * scripts/rf_virtual_media.py, redfish_utilities/systems.py (insert_virtual_media,
 * eject_virtual_media, get_virtual_media_collection), redfish_utilities/tasks.py (poll_task_monitor)
 * and python-redfish-library (redfish_client login, RestResponse.monitor/is_processing/retry_after).
 * docs/redfish.md shows the real run against the agent on the simulator and the sequence it logged.
 */
import { expect } from 'chai';
import { startTestAgent, type TestAgent } from '../helpers/agent.js';
import { startImageServer, type ImageServer } from '../helpers/images.js';

interface Resp {
  status: number;
  headers: Headers;
  dict: Record<string, unknown>;
}

/** python-redfish-library's redfish_client, as far as Tacklebox uses it (session login). */
class TackleboxClient {
  readonly log: string[] = [];
  private token = '';
  private session = '';
  constructor(private readonly base: string) {}

  async request(method: string, path: string, body?: unknown): Promise<Resp> {
    this.log.push(`${method} ${path}`);
    const res = await fetch(this.base + path, {
      method,
      headers: {
        ...(this.token ? { 'X-Auth-Token': this.token } : {}),
        ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}),
        'OData-Version': '4.0',
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    return { status: res.status, headers: res.headers, dict: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
  }

  /** redfish_client(...) reads the root; login(auth="session") posts to its Sessions link. */
  async login(user: string, password: string): Promise<void> {
    const root = await this.request('GET', '/redfish/v1/');
    const sessions = (root.dict.Links as { Sessions: { '@odata.id': string } }).Sessions['@odata.id'];
    const r = await this.request('POST', sessions, { UserName: user, Password: password });
    expect(r.status).to.equal(201);
    this.token = r.headers.get('x-auth-token') ?? '';
    this.session = r.headers.get('location') ?? '';
  }

  async logout(): Promise<void> {
    expect((await this.request('DELETE', this.session)).status).to.equal(204);
  }
}

/** redfish_utilities.verify_response */
function verifyResponse(r: Resp): void {
  if (r.status >= 400) throw new Error(`Operation failed: HTTP ${r.status}`);
}

/** redfish_utilities.get_system (system_id None: the only member) + get_virtual_media_collection */
async function virtualMediaCollection(c: TackleboxClient): Promise<Resp> {
  const root = await c.request('GET', '/redfish/v1/');
  const systems = await c.request('GET', (root.dict.Systems as { '@odata.id': string })['@odata.id']);
  const members = systems.dict.Members as { '@odata.id': string }[];
  expect(members).to.have.length(1);
  const system = await c.request('GET', members[0]!['@odata.id']);
  expect(system.dict.VirtualMedia, 'Tacklebox looks for System.VirtualMedia first').to.have.property('@odata.id');
  return c.request('GET', (system.dict.VirtualMedia as { '@odata.id': string })['@odata.id']);
}

/** redfish_utilities.insert_virtual_media(context, image) with media_id, inserted, write_protected None */
async function insertVirtualMedia(c: TackleboxClient, image: string, mediaId?: string): Promise<Resp> {
  const mediaTypes = image.toLowerCase().endsWith('.iso') ? ['CD', 'DVD'] : image.toLowerCase().endsWith('.img') ? ['USBStick'] : undefined;
  const coll = await virtualMediaCollection(c);
  for (const m of coll.dict.Members as { '@odata.id': string }[]) {
    const media = await c.request('GET', m['@odata.id']);
    if (media.dict.Image !== null) continue; // in use
    const match = mediaId !== undefined ? media.dict.Id === mediaId : !mediaTypes || mediaTypes.some((t) => (media.dict.MediaTypes as string[]).includes(t));
    if (!match) continue;
    const target = (media.dict.Actions as Record<string, { target: string }>)['#VirtualMedia.InsertMedia']!.target;
    const r = await c.request('POST', target, { Image: image });
    verifyResponse(r);
    return r;
  }
  throw new Error('No acceptable virtual media');
}

/** redfish_utilities.eject_virtual_media(context, media_id) */
async function ejectVirtualMedia(c: TackleboxClient, mediaId: string): Promise<Resp> {
  const coll = await virtualMediaCollection(c);
  for (const m of coll.dict.Members as { '@odata.id': string }[]) {
    const media = await c.request('GET', m['@odata.id']);
    if (media.dict.Id !== mediaId) continue;
    const r = await c.request('POST', (media.dict.Actions as Record<string, { target: string }>)['#VirtualMedia.EjectMedia']!.target, {});
    verifyResponse(r);
    return r;
  }
  throw new Error(`'${mediaId}' not found`);
}

/**
 * redfish_utilities.poll_task_monitor: while the response is 202, sleep Retry-After (1 s when absent;
 * skipped here) and GET the first response's Location again; the last response is the result.
 */
async function pollTaskMonitor(c: TackleboxClient, first: Resp): Promise<Resp & { progress: string[] }> {
  const progress: string[] = [];
  let r = first;
  for (let i = 0; r.status === 202 && i < 1000; i++) {
    progress.push(`${String(r.dict.TaskState ?? 'Running')}:${String(r.dict.PercentComplete ?? '')}`);
    expect(first.headers.get('retry-after')).to.equal(null);
    await new Promise((res) => setTimeout(res, 5));
    const location = first.headers.get('location');
    expect(location, '202 without a Location').to.be.a('string');
    r = await c.request('GET', location!);
  }
  return { ...r, progress };
}

describe('Redfish: DMTF Tacklebox rf_virtual_media.py request sequence', function () {
  let t: TestAgent;
  let img: ImageServer;
  before(async () => {
    img = await startImageServer({ '/boot.iso': 1 << 20 });
  });
  after(async () => img.close());
  beforeEach(async () => {
    t = await startTestAgent({ ipmi: false, sim: { mediaInsertDelayMs: 200 } });
  });
  afterEach(async () => t.close());

  it('insert: finds the free CD slot, posts InsertMedia, accepts the 202; the task completes', async () => {
    const c = new TackleboxClient(t.redfishUrl);
    await c.login('admin', 'password');
    const r = await insertVirtualMedia(c, img.url('/boot.iso'));
    await c.logout();
    expect(c.log.at(-1)).to.match(/^DELETE \/redfish\/v1\/SessionService\/Sessions\/\w+$/);
    expect(c.log.slice(0, -1)).to.deep.equal([
      'GET /redfish/v1/',
      'POST /redfish/v1/SessionService/Sessions',
      'GET /redfish/v1/',
      'GET /redfish/v1/Systems',
      'GET /redfish/v1/Systems/1',
      'GET /redfish/v1/Systems/1/VirtualMedia',
      'GET /redfish/v1/Systems/1/VirtualMedia/Cd',
      'POST /redfish/v1/Systems/1/VirtualMedia/Cd/Actions/VirtualMedia.InsertMedia',
    ]);
    expect(r.status).to.equal(202);
    // rf_virtual_media.py stops here (exit 0); the insert goes on server-side
    for (let i = 0; i < 500 && (await t.sim.listMedia())[0]!.state !== 'inserted'; i++) await new Promise((res) => setTimeout(res, 10));
    expect((await t.sim.listMedia())[0]).to.include({ state: 'inserted', image: img.url('/boot.iso') });
  });

  it('insert then poll_task_monitor: 202s with TaskState/PercentComplete, then 204; a 404 image ends in a 400 verify_response rejects', async () => {
    const c = new TackleboxClient(t.redfishUrl);
    await c.login('admin', 'password');
    const ok = await pollTaskMonitor(c, await insertVirtualMedia(c, img.url('/boot.iso')));
    expect(ok.status).to.equal(204);
    expect(ok.progress[0]).to.match(/^Running:\d+$/);
    expect(() => verifyResponse(ok)).to.not.throw();
    const bad = await pollTaskMonitor(c, await insertVirtualMedia(c, img.url('/nothing.img'), 'UsbStick'));
    expect(bad.status).to.equal(400);
    expect(() => verifyResponse(bad)).to.throw(/HTTP 400/);
    expect((bad.dict.error as { message: string }).message).to.match(/nothing\.img answered HTTP 404/);
    await c.logout();
  });

  it('eject: finds the slot by Id and posts EjectMedia with an empty body (204)', async () => {
    const c = new TackleboxClient(t.redfishUrl);
    await c.login('admin', 'password');
    await pollTaskMonitor(c, await insertVirtualMedia(c, img.url('/boot.iso')));
    c.log.length = 0;
    const r = await ejectVirtualMedia(c, 'Cd');
    expect(r.status).to.equal(204);
    expect(c.log).to.deep.equal([
      'GET /redfish/v1/',
      'GET /redfish/v1/Systems',
      'GET /redfish/v1/Systems/1',
      'GET /redfish/v1/Systems/1/VirtualMedia',
      'GET /redfish/v1/Systems/1/VirtualMedia/Cd',
      'POST /redfish/v1/Systems/1/VirtualMedia/Cd/Actions/VirtualMedia.EjectMedia',
    ]);
    expect((await t.sim.listMedia())[0]!.state).to.equal('empty');
    await c.logout();
  });
});
