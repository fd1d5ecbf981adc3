/**
 * The prom-client-free half of the agent's metrics (src/agent/metrics.ts has the registry): the
 * machine wrapper that times backend calls and the /metrics listener. Both only call methods of
 * the AgentMetrics they are given, so the agent imports this file statically while metrics.ts
 * (prom-client and its dependencies) is loaded only when --metrics-port asks for it.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Machine } from '../backend/types.js';
import { isBackendError } from '../backend/types.js';

/** What instrumentMachine uses of AgentMetrics (structural, so this file needs no prom-client types). */
export interface BackendMeter {
  backendErrors: { inc(labels: { call: string; code: string }): void };
  backendDuration: { observe(labels: { call: string }, seconds: number): void };
}

/** What startMetricsServer uses of AgentMetrics. */
export interface ScrapeSource {
  registry: { metrics(): Promise<string>; readonly contentType: string };
}

const MACHINE_CALLS = new Set(['snapshot', 'getPowerState', 'power', 'getBootOverride', 'setBootOverride', 'getSystemInfo', 'listMedia', 'insertMedia', 'ejectMedia']);

/**
 * The machine with every backend call timed (latency histogram, errors by BackendError code). A
 * Proxy: everything else (on, close, openConsole, backend-specific members) passes through,
 * bound to the real machine.
 */
export function instrumentMachine(machine: Machine, m: BackendMeter): Machine {
  return new Proxy(machine, {
    get(target, prop, _receiver) {
      const v = Reflect.get(target, prop, target) as unknown;
      if (typeof v !== 'function') return v;
      const fn = v as (...a: unknown[]) => unknown;
      if (prop === 'powerStateNow') {
        // synchronous: timed as a getPowerState when it answers (undefined sends the caller to
        // getPowerState, which is timed itself); a throw counts as that call's error
        return () => {
          const started = process.hrtime.bigint();
          let p: unknown;
          try {
            p = fn.apply(target, []);
          } catch (e) {
            m.backendErrors.inc({ call: 'getPowerState', code: isBackendError(e) ? e.code : 'Internal' });
            m.backendDuration.observe({ call: 'getPowerState' }, Number(process.hrtime.bigint() - started) / 1e9);
            throw e;
          }
          if (p !== undefined) m.backendDuration.observe({ call: 'getPowerState' }, Number(process.hrtime.bigint() - started) / 1e9);
          return p;
        };
      }
      if (typeof prop !== 'string' || !MACHINE_CALLS.has(prop)) return fn.bind(target);
      return async (...args: unknown[]) => {
        const started = process.hrtime.bigint();
        try {
          return await fn.apply(target, args);
        } catch (e) {
          m.backendErrors.inc({ call: prop, code: isBackendError(e) ? e.code : 'Internal' });
          throw e;
        } finally {
          m.backendDuration.observe({ call: prop }, Number(process.hrtime.bigint() - started) / 1e9);
        }
      };
    },
  });
}

export interface MetricsServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

/** Serve GET /metrics (Prometheus text format) on `address:port`. */
export async function startMetricsServer(metrics: ScrapeSource, address: string, port: number): Promise<MetricsServer> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' || path !== '/metrics') {
      res.writeHead(path === '/metrics' ? 405 : 404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    metrics.registry
      .metrics()
      .then((text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text))
      .catch(() => res.writeHead(500).end());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, address, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const a = server.address() as AddressInfo;
  const host = a.address.includes(':') ? `[${a.address}]` : a.address;
  return {
    url: `http://${host}:${a.port}/metrics`,
    port: a.port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
