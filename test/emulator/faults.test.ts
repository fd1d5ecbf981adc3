/**
 * Emulator watch bookmarks and the hang fault: bookmarks come on kube-apiserver's cadence (once
 * per interval, and 2 s before the watch's deadline) and can be stopped; a hung server keeps
 * connections open but answers nothing and sends nothing until it resumes.
 */
import http from 'node:http';
import { expect } from 'chai';
import { startApiServer, type ApiServerEmulator } from './index.js';

const NS = 'default';

interface Stream {
  events: { type: string; object: { metadata?: { resourceVersion?: string; name?: string } } }[];
  ended: boolean;
  close(): void;
}

function openWatch(emu: ApiServerEmulator, query: string): Promise<Stream> {
  const token = /token: (\S+)/.exec(emu.kubeconfigYaml)![1];
  return new Promise((resolve, reject) => {
    const req = http.get(`${emu.url}/api/v1/namespaces/${NS}/configmaps?watch=true&${query}`, { headers: { authorization: `Bearer ${token}` } }, (res) => {
      const s: Stream = { events: [], ended: false, close: () => req.destroy() };
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        buf += c;
        let i: number;
        while ((i = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          if (line.trim()) s.events.push(JSON.parse(line) as Stream['events'][number]);
        }
      });
      res.on('end', () => (s.ended = true));
      res.on('error', () => (s.ended = true));
      resolve(s);
    });
    req.on('error', reject);
  });
}

function getStatus(emu: ApiServerEmulator, path: string, timeoutMs: number): Promise<number | 'timeout'> {
  const token = /token: (\S+)/.exec(emu.kubeconfigYaml)![1];
  return new Promise((resolve, reject) => {
    const req = http.get(`${emu.url}${path}`, { headers: { authorization: `Bearer ${token}` }, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.setTimeout(timeoutMs, () => {
      req.destroy();
      resolve('timeout');
    });
    req.on('error', (e) => (req.destroyed ? undefined : reject(e)));
  });
}

const bookmarks = (s: Stream) => s.events.filter((e) => e.type === 'BOOKMARK');
const cm = (name: string) => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: NS }, data: { a: '1' } });

describe('emulator: bookmarks and the hang fault', function () {
  this.timeout(20_000);
  let emu: ApiServerEmulator;
  afterEach(async () => {
    emu.faults.hang(false);
    await emu.close();
  });

  it('bookmarks only where allowed, once per interval, carrying the current resourceVersion; stopBookmarks stops them', async () => {
    emu = await startApiServer({ bookmarkIntervalMs: 100 });
    const plain = await openWatch(emu, '');
    const s = await openWatch(emu, 'allowWatchBookmarks=true');
    await emu.waitFor(() => bookmarks(s).length >= 3);
    expect(bookmarks(plain)).to.have.length(0);
    emu.create(cm('one'));
    await emu.waitFor(() => bookmarks(s).some((b) => b.object.metadata?.resourceVersion === emu.resourceVersion()));
    emu.faults.stopBookmarks(true);
    const n = bookmarks(s).length;
    emu.create(cm('two'));
    await emu.waitFor(() => s.events.some((e) => e.type === 'ADDED' && e.object.metadata?.name === 'two'));
    // several intervals later: events still flow, no bookmark came. Time is the subject here (at
    // least 3.5 bookmark intervals pass, however slowly the machine runs); each event is awaited
    // as it arrives on the stream, none is timed
    const intervalsLater = Date.now() + 350;
    for (let i = 0; Date.now() < intervalsLater || s.events.filter((e) => e.type === 'ADDED').length < 6; i++) {
      emu.create(cm(`x${i}`));
      await emu.waitFor(() => s.events.some((e) => e.type === 'ADDED' && e.object.metadata?.name === `x${i}`));
    }
    expect(bookmarks(s).length).to.be.at.most(n + 1); // one may have been on its way
    emu.faults.stopBookmarks(false);
    await emu.waitFor(() => bookmarks(s).length >= n + 2);
    plain.close();
    s.close();
  });

  it('the default interval is kube-apiserver\'s minute; a bookmark comes 2 s before the watch deadline', async () => {
    emu = await startApiServer();
    const s = await openWatch(emu, 'allowWatchBookmarks=true&timeoutSeconds=3');
    // the deadline is 3 s away and the default interval a minute: the one bookmark this stream
    // carries before the server ends it can only be the pre-deadline one. No bound on when it
    // arrives (a loaded CI machine delays timers); the generous limit only stops a hung test.
    await emu.waitFor(() => s.ended, 20_000);
    expect(bookmarks(s)).to.have.length(1);
    expect(s.events.at(-1)?.type, 'the bookmark precedes the end of the stream').to.equal('BOOKMARK');
  });

  it('hang: connections stay open, nothing is answered or streamed; resume answers held requests and delivers held events', async () => {
    emu = await startApiServer({ bookmarkIntervalMs: 100 });
    const s = await openWatch(emu, 'allowWatchBookmarks=true');
    await emu.waitFor(() => bookmarks(s).length >= 1);
    emu.faults.hang(true);
    const before = s.events.length;
    emu.create(cm('during-hang'));
    expect(await getStatus(emu, '/version', 500)).to.equal('timeout');
    const held = getStatus(emu, `/api/v1/namespaces/${NS}/configmaps/during-hang`, 10_000);
    // the stream neither closes nor sends (no event, no bookmark) for many bookmark intervals
    const quietUntil = Date.now() + 600;
    await emu.waitFor(() => Date.now() > quietUntil, 2000);
    expect(s.events.length).to.equal(before);
    expect(s.ended).to.equal(false);
    emu.faults.hang(false);
    expect(await held).to.equal(200);
    await emu.waitFor(() => s.events.some((e) => e.type === 'ADDED' && e.object.metadata?.name === 'during-hang'));
    expect(await getStatus(emu, '/version', 2000)).to.equal(200);
    s.close();
  });

  it('hang: a request whose client gave up meanwhile is dropped, never executed', async () => {
    emu = await startApiServer();
    emu.faults.hang(true);
    const token = /token: (\S+)/.exec(emu.kubeconfigYaml)![1];
    const gaveUp = await new Promise<string>((resolve) => {
      const req = http.request(
        `${emu.url}/api/v1/namespaces/${NS}/configmaps`,
        { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, agent: false },
        () => resolve('answered'),
      );
      req.setTimeout(300, () => {
        req.destroy();
        resolve('timeout');
      });
      req.on('error', () => undefined);
      req.end(JSON.stringify(cm('never')));
    });
    expect(gaveUp).to.equal('timeout');
    emu.faults.hang(false);
    expect(await getStatus(emu, '/version', 2000)).to.equal(200);
    expect(emu.list('v1', 'ConfigMap', NS).map((o) => o.metadata.name)).to.not.include('never');
    expect(emu.audit.filter((a) => a.verb === 'create' && a.resource === 'configmaps')).to.have.length(0);
  });
});
