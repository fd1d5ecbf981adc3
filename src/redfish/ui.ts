/**
 * The BMC web page, served by the agent on the Redfish port: `/` and `/ui/` answer the page,
 * `/ui/<asset>` its files. No build step: the front end is plain ES modules in ui/ (shipped in the
 * npm package and the image) and xterm.js's own prebuilt ES module and CSS, read from the installed
 * @xterm/xterm and @xterm/addon-fit packages (runtime dependencies). Every file is listed here (no
 * path from the request ever reaches the file system), read once, gzip-compressed once, and served
 * with an ETag. Every answer carries the security headers below: a strict CSP (scripts and styles
 * from this origin only, no inline script, no framing), nosniff, no referrer.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import type Koa from 'koa';

/**
 * connect-src 'self' covers the console websocket (same host and port, ws:/wss:). xterm.js writes
 * its theme and cell metrics into <style> elements, which this CSP blocks; ui/console.js mirrors
 * them into constructed style sheets instead (not inline markup), so style-src needs no 'unsafe-inline'.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'Content-Security-Policy': CONTENT_SECURITY_POLICY,
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Resource-Policy': 'same-origin',
  'Permissions-Policy': 'camera=(), microphone=(), geolocation=()',
};

/** The page's files: URL under /ui/ → where it comes from. */
const ASSETS: Readonly<Record<string, { from: 'ui' | 'xterm' | 'fit'; file: string; type: string }>> = {
  'index.html': { from: 'ui', file: 'index.html', type: 'text/html; charset=utf-8' },
  'app.js': { from: 'ui', file: 'app.js', type: 'text/javascript; charset=utf-8' },
  'api.js': { from: 'ui', file: 'api.js', type: 'text/javascript; charset=utf-8' },
  'console.js': { from: 'ui', file: 'console.js', type: 'text/javascript; charset=utf-8' },
  'style.css': { from: 'ui', file: 'style.css', type: 'text/css; charset=utf-8' },
  'favicon.svg': { from: 'ui', file: 'favicon.svg', type: 'image/svg+xml' },
  'vendor/xterm.mjs': { from: 'xterm', file: 'lib/xterm.mjs', type: 'text/javascript; charset=utf-8' },
  'vendor/xterm.css': { from: 'xterm', file: 'css/xterm.css', type: 'text/css; charset=utf-8' },
  'vendor/addon-fit.mjs': { from: 'fit', file: 'lib/addon-fit.mjs', type: 'text/javascript; charset=utf-8' },
};

export const UI_ASSET_PATHS: readonly string[] = Object.keys(ASSETS);

/** ui/ of the package: beside src/ when run from source, beside dist/ when built. */
export function uiDirectory(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const up of ['../..', '../../..']) {
    const d = resolve(here, up, 'ui');
    if (existsSync(join(d, 'index.html'))) return d;
  }
  throw new Error(`web UI files not found (looked for ui/index.html above ${here})`);
}

interface Asset {
  body: Buffer;
  gzip: Buffer;
  type: string;
  etag: string;
}

function loadAssets(): Map<string, Asset> {
  const require = createRequire(import.meta.url);
  const roots = {
    ui: uiDirectory(),
    xterm: dirname(require.resolve('@xterm/xterm/package.json')),
    fit: dirname(require.resolve('@xterm/addon-fit/package.json')),
  };
  const out = new Map<string, Asset>();
  for (const [url, a] of Object.entries(ASSETS)) {
    let body = readFileSync(join(roots[a.from], a.file));
    // the vendored modules' source maps are not shipped: drop the comment that asks for them
    if (a.from !== 'ui') body = Buffer.from(body.toString('utf8').replace(/\n\/\/# sourceMappingURL=\S+\s*$/, '\n'));
    const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`;
    out.set(url, { body, gzip: gzipSync(body, { level: 9 }), type: a.type, etag });
  }
  return out;
}

let cache: Map<string, Asset> | undefined;
/** Every asset, loaded once per process (tests read sizes from it). */
export function uiAssets(): Map<string, Asset> {
  cache ??= loadAssets();
  return cache;
}

/** Which asset a request path names, or undefined when it is not the UI's. */
function assetFor(path: string): string | undefined {
  if (path === '/' || path === '/ui/' || path === '/ui/index.html') return 'index.html';
  if (!path.startsWith('/ui/')) return undefined;
  const name = path.slice('/ui/'.length);
  return Object.hasOwn(ASSETS, name) ? name : undefined;
}

/**
 * Koa middleware answering the page's paths (GET/HEAD); everything else goes on to the Redfish
 * service. Mounted first, so the page's answers carry no Redfish headers.
 */
export function serveUi(): Koa.Middleware {
  return async (ctx, next) => {
    const path = ctx.path;
    if (path === '/ui' && (ctx.method === 'GET' || ctx.method === 'HEAD')) {
      for (const [k, v] of Object.entries(SECURITY_HEADERS)) ctx.set(k, v);
      ctx.status = 308;
      ctx.set('Location', '/ui/');
      return;
    }
    const name = assetFor(path);
    if (name === undefined || (ctx.method !== 'GET' && ctx.method !== 'HEAD')) return next();
    const a = uiAssets().get(name) as Asset;
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) ctx.set(k, v);
    ctx.set('Cache-Control', 'no-cache');
    ctx.set('ETag', a.etag);
    ctx.set('Vary', 'Accept-Encoding');
    ctx.type = a.type;
    const inm = ctx.get('If-None-Match');
    if (inm && inm.split(',').some((t) => t.trim() === a.etag)) {
      ctx.status = 304;
      return;
    }
    ctx.status = 200;
    if (ctx.acceptsEncodings('gzip', 'identity') === 'gzip') {
      ctx.set('Content-Encoding', 'gzip');
      ctx.body = a.gzip;
    } else ctx.body = a.body;
  };
}
