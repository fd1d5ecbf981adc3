/**
 * Runs an agent with the simulator backend and IPMI only, for benchmarks and manual testing.
 * Usage: npx tsx bench/ipmi-agent.lib.ts [port] [logLevel]   (prints "IPMI_PORT <n>" once listening)
 * Users: admin/password (Administrator), operator/op-secret (Operator), viewer/viewer-pw (ReadOnly).
 */
import { startAgent } from '../src/agent/agent.js';
import { SimulatedMachine } from '../src/backend/simulator/simulator.js';
import { createLogger, nullLogger } from '../src/common/logger.js';

async function main(): Promise<void> {
  const port = Number(process.argv[2] ?? 0);
  const level = process.argv[3];
  const agent = await startAgent({
    machine: new SimulatedMachine({ powerOnDelayMs: 0, powerOffDelayMs: 0 }),
    users: [
      { username: 'admin', password: 'password', role: 'Administrator' },
      { username: 'operator', password: 'op-secret', role: 'Operator' },
      { username: 'viewer', password: 'viewer-pw', role: 'ReadOnly' },
    ],
    logger: level ? createLogger(level as 'debug') : nullLogger(),
    address: '127.0.0.1',
    ipmi: { port },
    redfish: false,
  });
  process.stdout.write(`IPMI_PORT ${agent.ipmi?.port} PID ${process.pid}\n`);
  const stop = () => void agent.close().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

void main();
