/**
 * What one per-packet HMAC costs with node:crypto (src/ipmi/codec/rmcpplus.ts): createHmac over a
 * 48-byte message (about one in-session Get Chassis Status) with a K1-sized key, HMAC-SHA1 (suite 3)
 * and HMAC-SHA256 (suite 17). Prints the median of 5 rounds in CPU µs (process.cpuUsage, less
 * disturbed by other load than wall time) and wall µs, and the load average beside them.
 * Usage: npx tsx bench/hmac.ts [iterations per round]   (docs/ipmi.md "Performance")
 */
import { createHmac, randomBytes } from 'node:crypto';
import { loadavg } from 'node:os';

const n = Number(process.argv[2] ?? 100_000);
const msg = randomBytes(48);

function round(alg: string, key: Buffer): { cpu: number; wall: number; sink: number } {
  let sink = 0;
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) sink ^= createHmac(alg, key).update(msg).digest()[0] ?? 0;
  const wall = Number(process.hrtime.bigint() - t0) / 1000 / n;
  const c = process.cpuUsage(c0);
  return { cpu: (c.user + c.system) / n, wall, sink };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

console.log(`node ${process.version}, ${n} HMACs per round, load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
for (const [alg, keyLength, suite] of [['sha1', 20, 3], ['sha256', 32, 17]] as const) {
  const key = randomBytes(keyLength);
  round(alg, key); // warm-up
  const rounds = Array.from({ length: 5 }, () => round(alg, key));
  console.log(
    `HMAC-${alg.toUpperCase()} (suite ${suite}), 48 bytes: ${median(rounds.map((r) => r.cpu)).toFixed(2)} µs CPU, ${median(rounds.map((r) => r.wall)).toFixed(2)} µs wall (median of 5)`,
  );
}
