/**
 * The web page's server side without a browser: the asset budget (under 300 KB gzip-compressed,
 * everything the page can load), security headers on every asset, no inline script in the page,
 * ETag revalidation, and the console writer rule (src/backend/console-writer.ts).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { ConsoleWriterLock, type ConsoleWriter } from '../../src/backend/console-writer.js';
import { UI_ASSET_PATHS, uiAssets, uiDirectory } from '../../src/redfish/ui.js';
import { startTestAgent, type TestAgent } from '../helpers/agent.js';

const BUDGET_BYTES = 300 * 1024;

describe('web UI assets', () => {
  let t: TestAgent;
  before(async () => {
    t = await startTestAgent();
  });
  after(() => t.close());

  it('fit the budget: every asset together is under 300 KB gzip-compressed', () => {
    const assets = uiAssets();
    let total = 0;
    for (const a of assets.values()) total += a.gzip.length;
    expect(assets.size).to.equal(UI_ASSET_PATHS.length);
    expect(total).to.be.greaterThan(10_000); // xterm.js is in it: the figure measures something
    expect(total).to.be.lessThan(BUDGET_BYTES);
  });

  it('serves each asset gzip-compressed with the security headers, and 304 on its ETag', async () => {
    for (const name of ['', ...UI_ASSET_PATHS.map((p) => `ui/${p}`)]) {
      const res = await fetch(`${t.redfishUrl}/${name}`, { headers: { 'Accept-Encoding': 'gzip' } });
      expect(res.status, name).to.equal(200);
      expect(res.headers.get('content-security-policy'), name).to.include("default-src 'none'").and.include("frame-ancestors 'none'");
      expect(res.headers.get('x-content-type-options')).to.equal('nosniff');
      expect(res.headers.get('content-encoding')).to.equal('gzip');
      expect(res.headers.get('set-cookie')).to.equal(null);
      await res.arrayBuffer();
      const again = await fetch(`${t.redfishUrl}/${name}`, { headers: { 'If-None-Match': res.headers.get('etag') ?? '' } });
      expect(again.status, name).to.equal(304);
    }
  });

  it('sends only listed files: other /ui/ paths and traversal attempts are Redfish 404s; /ui redirects to /ui/', async () => {
    for (const p of ['/ui/../package.json', '/ui/%2e%2e/package.json', '/ui/vendor/xterm.js.map', '/ui/nope.js']) {
      const res = await fetch(`${t.redfishUrl}${p}`);
      expect(res.status, p).to.equal(404);
      expect(((await res.json()) as { error: { code: string } }).error.code).to.match(/ResourceMissingAtURI/);
    }
    const r = await fetch(`${t.redfishUrl}/ui`, { redirect: 'manual' });
    expect(r.status).to.equal(308);
    expect(r.headers.get('location')).to.equal('/ui/');
    // the Redfish service is untouched
    expect((await fetch(`${t.redfishUrl}/redfish/v1`)).status).to.equal(200);
  });

  it('has no inline script or style and no event-handler attributes in the page', () => {
    const html = readFileSync(join(uiDirectory(), 'index.html'), 'utf8');
    expect(html).not.to.match(/<script(?![^>]*\bsrc=)[^>]*>/i);
    expect(html).not.to.match(/\son[a-z]+=/i);
    expect(html).not.to.match(/<style|\sstyle=/i);
    expect(html).not.to.match(/https?:\/\//); // no CDN, nothing from elsewhere
  });
});

describe('console writer rule', () => {
  const web = (label: string, revoked: ConsoleWriter[] = []): ConsoleWriter => ({ kind: 'web', label, revoked: (by) => revoked.push(by) });

  it('gives the input to one browser; another waits and gets it when the first leaves', () => {
    const lock = new ConsoleWriterLock();
    const a = web('a');
    const b = web('b');
    expect(lock.acquire(a)).to.equal(true);
    expect(lock.acquire(b)).to.equal(false);
    let granted = false;
    lock.wait(b, () => (granted = true));
    lock.release(a);
    expect(granted).to.equal(true);
    expect(lock.holder).to.equal(b);
  });

  it('lets SOL take the input from a browser (told), and never from another SOL', () => {
    const lock = new ConsoleWriterLock();
    const revoked: ConsoleWriter[] = [];
    const a = web('a', revoked);
    const sol: ConsoleWriter = { kind: 'sol', label: 'IPMI SOL session 0x00000001' };
    const sol2: ConsoleWriter = { kind: 'sol', label: 'IPMI SOL session 0x00000002' };
    lock.acquire(a);
    expect(lock.acquire(sol, true)).to.equal(true);
    expect(revoked).to.deep.equal([sol]);
    expect(lock.acquire(sol2, true)).to.equal(false);
    expect(lock.acquire(a)).to.equal(false);
    lock.release(sol);
    expect(lock.holder).to.equal(undefined);
  });
});
