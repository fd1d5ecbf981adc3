/**
 * The agent side of bench/sol-throughput.ts, run as its own process so that its CPU time can be
 * read from /proc: a simulator-backed agent on loopback whose console is driven from stdin.
 *   emit N   the guest prints N bytes (one burst; the SOL output limit is raised to hold it)
 *   count    prints "RECEIVED <bytes the guest has been sent>"
 * Prints "READY <ipmi port>" once listening.
 */
import { createInterface } from 'node:readline';
import { startTestAgent } from '../test/helpers/agent.js';

const t = await startTestAgent({ redfish: false, sim: { initialPower: 'On' }, ipmi: { port: 0, sol: { outputLimit: 64 * 1024 * 1024 } } });
const con = t.sim.serialConsole;
con.interactive = false;
let received = 0;
const rec = con.received;
const origPush = rec.push.bind(rec);
// count instead of keeping every chunk
rec.push = (...items: Buffer[]) => {
  for (const b of items) received += b.length;
  return origPush();
};
const pattern = Buffer.alloc(64 * 1024);
for (let i = 0; i < pattern.length; i++) pattern[i] = 0x20 + (i % 95);
createInterface({ input: process.stdin }).on('line', (line) => {
  const [cmd, arg] = line.trim().split(/\s+/);
  if (cmd === 'emit') {
    let n = Number(arg);
    while (n > 0) {
      const k = Math.min(n, pattern.length);
      con.print(pattern.subarray(0, k));
      n -= k;
    }
  } else if (cmd === 'count') {
    process.stdout.write(`RECEIVED ${received}\n`);
  }
});
process.stdout.write(`READY ${t.ipmiPort}\n`);
