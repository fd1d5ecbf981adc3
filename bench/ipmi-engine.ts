/**
 * Micro-benchmark of the IPMI engine alone (no socket): one suite-3 (or IPMI_BENCH_SUITE) session,
 * then Get Chassis Status datagrams fed straight into IpmiEngine.handle. Prints µs per request.
 * Usage: npx tsx bench/ipmi-engine.ts [requests]   (IPMI_BENCH_SUITE=17 for suite 17)
 */
import { SimulatedMachine } from '../src/backend/simulator/simulator.js';
import { nullLogger } from '../src/common/logger.js';
import { buildCommandTable } from '../src/ipmi/commands/index.js';
import { IpmiEngine } from '../src/ipmi/session/engine.js';
import { RmcpPlusConsole, lanRequest } from '../test/ipmi/session-client.js';

async function main(): Promise<void> {
  const n = Number(process.argv[2] ?? 100000);
  const log = nullLogger();
  const engine = new IpmiEngine({
    machine: new SimulatedMachine({ powerOnDelayMs: 0, powerOffDelayMs: 0 }),
    users: [{ username: 'admin', password: 'password', role: 'Administrator' }],
    logger: log,
    commands: buildCommandTable(),
    allowInsecure: false,
    channel: 1,
    guid: Buffer.alloc(16, 7),
    now: () => Date.now(),
    maxSessions: 32,
    idleTimeoutMs: 60000,
    handshakeTimeoutMs: 5000,
  });
  const remote = { address: '127.0.0.1', port: 40000 };
  const c = new RmcpPlusConsole(1, 'admin', 'password', Number(process.env.IPMI_BENCH_SUITE ?? 3));
  // Route the console's datagrams straight into the engine.
  c.peer.exchange = async (b: Buffer) => engine.handle(b, remote, log);
  c.peer.ready = async () => undefined;
  const h = await c.handshake();
  if (!h.established) throw new Error('handshake failed');
  const reqs: Buffer[] = [];
  for (let i = 0; i < n; i++) reqs.push(c.wrap(lanRequest(0x00, 0x01)));
  c.close();
  const check = c.unwrap((await engine.handle(reqs[0]!, remote, log))!);
  if (check?.cc !== 0) throw new Error('bad answer');
  const t0 = process.hrtime.bigint();
  let answered = 0;
  for (let i = 1; i < n; i++) if (await engine.handle(reqs[i]!, remote, log)) answered++;
  const us = Number(process.hrtime.bigint() - t0) / 1000 / (n - 1);
  console.log(`SUMMARY ipmi-engine: ${us.toFixed(2)} µs per Get Chassis Status, no socket (${answered}/${n - 1} answered)`);
}

void main();
