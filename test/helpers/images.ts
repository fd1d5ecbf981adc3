/**
 * A loopback HTTP server that serves virtual media images for tests: GET/HEAD on a known path
 * answers 200 with the image's Content-Length (GET also sends the bytes), `/redirect/...` answers
 * 302, `/slow/...` answers like the path after `/slow` once the test calls release(), anything else
 * 404. Records every request (method and URL, query included) so a test can check what the agent
 * asked for.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { EgressPolicy } from '../../src/backend/egress.js';

/**
 * The media egress policy tests use: the defaults plus loopback, where the image servers below
 * listen (the agent's default refuses loopback image URLs: src/backend/egress.ts)
 */
export const LOOPBACK_MEDIA = new EgressPolicy({ allow: ['127.0.0.0/8', '::1'] });

export interface ImageServer {
  /** http://127.0.0.1:PORT */
  base: string;
  /** URL of an image this server serves */
  url(path: string): string;
  /** Add (or replace) an image */
  add(path: string, size: number): void;
  requests: { method: string; url: string }[];
  /** Let every held `/slow/...` request be answered */
  release(): void;
  /** Number of `/slow/...` requests waiting */
  readonly held: number;
  close(): Promise<void>;
}

export async function startImageServer(images: Record<string, number> = { '/boot/installer.iso': 4096, '/disk.img': 2048 }): Promise<ImageServer> {
  const known = new Map(Object.entries(images));
  const requests: { method: string; url: string }[] = [];
  const waiting: (() => void)[] = [];
  const server = http.createServer((req, res) => {
    requests.push({ method: req.method ?? '', url: req.url ?? '' });
    let path = (req.url ?? '/').split('?')[0] as string;
    if (path.startsWith('/slow/')) {
      path = path.slice('/slow'.length);
      waiting.push(() => answer(req, res, path));
      return;
    }
    answer(req, res, path);
  });
  const answer = (req: http.IncomingMessage, res: http.ServerResponse, path: string): void => {
    if (path.startsWith('/redirect/')) {
      res.writeHead(302, { Location: path.slice('/redirect'.length) });
      res.end();
      return;
    }
    const size = known.get(path);
    if (size === undefined) {
      res.writeHead(404, { 'Content-Type': 'text/plain' });
      res.end(req.method === 'HEAD' ? undefined : 'not found');
      return;
    }
    res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': String(size) });
    res.end(req.method === 'HEAD' ? undefined : Buffer.alloc(size));
  };
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    base,
    url: (path) => base + path,
    add: (path, size) => {
      known.set(path, size);
    },
    requests,
    release: () => {
      for (const w of waiting.splice(0)) w();
    },
    get held() {
      return waiting.length;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A loopback URL on which nothing listens (the port was just freed). */
export async function unusedUrl(path = '/nothing.iso'): Promise<string> {
  const s = http.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return `http://127.0.0.1:${port}${path}`;
}
