/** Plain HTTP endpoints: /metrics (Prometheus) and /healthz, /readyz (kubelet probes). */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

export interface Endpoint {
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

/** ":8080" → all interfaces, "127.0.0.1:0" → loopback with a free port. "0" disables. */
export function parseBindAddress(s: string): { host?: string; port: number } | undefined {
  if (s === '0') return undefined;
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(s);
  if (!m) throw new Error(`invalid bind address "${s}" (want [host]:port)`);
  const port = Number(m[3]);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`invalid port in "${s}"`);
  const host = m[1] ?? m[2];
  return { ...(host ? { host } : {}), port };
}

async function listen(bind: string, handler: http.RequestListener): Promise<Endpoint | undefined> {
  const addr = parseBindAddress(bind);
  if (!addr) return undefined;
  const server = http.createServer(handler);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(addr.port, addr.host, () => resolve());
  });
  const a = server.address() as AddressInfo;
  const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
  return {
    url: `http://${host}:${a.port}`,
    port: a.port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function reply(res: http.ServerResponse, code: number, body: string, type = 'text/plain; charset=utf-8'): void {
  res.writeHead(code, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

export function serveMetrics(bind: string, registry: Registry): Promise<Endpoint | undefined> {
  return listen(bind, (req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') return reply(res, 404, 'not found\n');
    registry.metrics().then(
      (text) => reply(res, 200, text, registry.contentType),
      (e: unknown) => reply(res, 500, `${String(e)}\n`),
    );
  });
}

export interface HealthChecks {
  /** Liveness: false → 500 (kubelet restarts the pod). */
  healthy(): boolean;
  /** Readiness; a string explains why not. */
  ready(): true | string;
}

export function serveHealth(bind: string, checks: HealthChecks): Promise<Endpoint | undefined> {
  return listen(bind, (req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (req.method !== 'GET') return reply(res, 405, 'method not allowed\n');
    if (path === '/healthz' || path === '/livez') return checks.healthy() ? reply(res, 200, 'ok\n') : reply(res, 500, 'unhealthy\n');
    if (path === '/readyz') {
      const r = checks.ready();
      return r === true ? reply(res, 200, 'ok\n') : reply(res, 503, `not ready: ${r}\n`);
    }
    reply(res, 404, 'not found\n');
  });
}
