/**
 * The router decision (docs/redfish.md "Routing"): two koa apps with the same @koa/router route table
 * (every route of generated/redfish/routes.ts, one trivial JSON handler), dispatched
 *   middleware  router.allowedMethods() + router.routes() (the package's own middleware chain)
 *   match       one middleware calling router.match() and the layer's params (what src/redfish/app.ts does)
 * driven in turn by wrk on one connection against GET /redfish/v1/Systems/1; prints req/s and
 * this process's CPU per request for each run, then the best of each and their ratio.
 * Measures; never fails on a number. Usage: node --import tsx bench/redfish-router.ts [runs] [seconds]
 */
import { execFile, execFileSync } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import Router from '@koa/router';
import Koa from 'koa';
import { routes } from '../generated/redfish/routes.js';

const RUNS = Number(process.argv[2] ?? 4);
const SECONDS = Number(process.argv[3] ?? 3);
const METHODS = ['HEAD', 'GET', 'POST', 'PATCH', 'PUT', 'DELETE'];
const BODY = { '@odata.id': '/redfish/v1/Systems/1', '@odata.type': '#ComputerSystem.v1_27_0.ComputerSystem', Id: '1', Name: 'x' };

function table(): { router: Router; byLayer: Map<unknown, string> } {
  const router = new Router({ methods: METHODS });
  const byLayer = new Map<unknown, string>();
  for (const r of routes) {
    byLayer.set(
      router.register(r.koaPath, [r.method], (ctx) => {
        ctx.params = { ...ctx.params };
        ctx.body = BODY;
      }),
      r.operationId,
    );
  }
  return { router, byLayer };
}

function middlewareApp(): Koa {
  const app = new Koa();
  const { router } = table();
  app.use(router.allowedMethods());
  app.use(router.routes());
  return app;
}

function matchApp(): Koa {
  const app = new Koa();
  const { router, byLayer } = table();
  app.use(async (ctx) => {
    const m = router.match(ctx.path, ctx.method);
    const layer = m.pathAndMethod[0];
    if (!layer) {
      ctx.status = m.path.length ? 405 : 404;
      return;
    }
    if (!byLayer.has(layer)) throw new Error('unbound layer');
    ctx.params = layer.params(ctx.path, layer.captures(ctx.path), {});
    ctx.body = BODY;
  });
  return app;
}

async function listen(app: Koa): Promise<{ url: string; close: () => void }> {
  const server = http.createServer(app.callback());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/redfish/v1/Systems/1`, close: () => server.close() };
}

/** One wrk run (its own process; async so this event loop serves it); CPU of this process per request. */
async function run(url: string): Promise<{ rps: number; cpuUs: number }> {
  const c0 = process.cpuUsage();
  const out = await new Promise<string>((resolve, reject) => {
    execFile('wrk', ['-t1', '-c1', `-d${SECONDS}s`, url], (err, stdout) => (err ? reject(err) : resolve(stdout)));
  });
  const c = process.cpuUsage(c0);
  const reqs = Number(/(\d+) requests in/.exec(out)?.[1] ?? 0);
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? 0);
  return { rps, cpuUs: reqs ? (c.user + c.system) / reqs : 0 };
}

try {
  execFileSync('wrk', ['--version'], { stdio: 'ignore' });
} catch (e) {
  if ((e as { code?: string }).code === 'ENOENT') {
    console.error('wrk not installed (apt-get install wrk)');
    process.exit(1);
  }
}
const variants = { middleware: await listen(middlewareApp()), match: await listen(matchApp()) };
const best: Record<string, { rps: number; cpuUs: number }> = {};
for (const v of Object.values(variants)) await run(v.url); // warm-up
for (let i = 1; i <= RUNS; i++) {
  for (const [name, v] of Object.entries(variants)) {
    const r = await run(v.url);
    console.log(`${name.padEnd(10)} run ${i}  ${r.rps.toFixed(0).padStart(7)} req/s  cpu/req ${r.cpuUs.toFixed(1)} us`);
    const b = (best[name] ??= { rps: 0, cpuUs: Infinity });
    b.rps = Math.max(b.rps, r.rps);
    b.cpuUs = Math.min(b.cpuUs, r.cpuUs);
  }
}
const mw = best.middleware!;
const mt = best.match!;
console.log(`best       middleware ${mw.rps.toFixed(0)} req/s ${mw.cpuUs.toFixed(1)} us; match ${mt.rps.toFixed(0)} req/s ${mt.cpuUs.toFixed(1)} us`);
console.log(`ratio      middleware/match ${(mw.rps / mt.rps).toFixed(2)}x req/s, ${(mw.cpuUs / mt.cpuUs).toFixed(2)}x cpu/req`);
for (const v of Object.values(variants)) v.close();
