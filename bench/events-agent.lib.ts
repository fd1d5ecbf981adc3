/**
 * The agent side of bench/events.ts, run in a child process of its own so its CPU time and memory
 * are the agent's alone: a simulator agent (Redfish on a loopback port, no IPMI) whose eventing
 * takes up to 128 subscriptions. Talks to the parent over IPC: sends { port } once listening;
 * answers { cmd: 'stats' } with its CPU time (µs), RSS and heap after a full GC (--expose-gc).
 */
import { startAgent } from '../src/agent/agent.js';
import { SimulatedMachine } from '../src/backend/simulator/simulator.js';
import { nullLogger } from '../src/common/logger.js';

const agent = await startAgent({
  machine: new SimulatedMachine({ powerOnDelayMs: 0, powerOffDelayMs: 0 }),
  users: [{ username: 'admin', password: 'password', role: 'Administrator' }],
  logger: nullLogger(),
  address: '127.0.0.1',
  ipmi: false,
  redfish: { port: 0 },
  events: { subscriptions: { maxSubscriptions: 128 } },
});
const gc = (globalThis as { gc?: () => void }).gc;
process.on('message', (m: { cmd?: string }) => {
  if (m.cmd === 'stats') {
    gc?.();
    const cpu = process.cpuUsage();
    const mem = process.memoryUsage();
    process.send!({ cpuMicros: cpu.user + cpu.system, rss: mem.rss, heapUsed: mem.heapUsed });
  } else if (m.cmd === 'exit') {
    void agent.close().then(() => process.exit(0));
  }
});
process.send!({ port: agent.redfish!.port });
