/**
 * Exactly-once execution of retransmitted IPMI requests (src/ipmi/session/dedup.ts): the cache
 * rules with a hand-driven clock, and real ipmitool retrying against a backend that takes 8 s.
 */
import { Writable } from 'node:stream';
import { expect } from 'chai';
import { SimulatedMachine } from '../../src/backend/simulator/simulator.js';
import type { PowerAction } from '../../src/backend/types.js';
import { createLogger } from '../../src/common/logger.js';
import type { LanRequest } from '../../src/ipmi/codec/index.js';
import { DUPLICATE_CACHE_CAPACITY, DUPLICATE_WINDOW_MS, DuplicateCache } from '../../src/ipmi/session/dedup.js';
import { startIpmiServer } from '../../src/ipmi/server.js';
import { run } from '../helpers/exec.js';

function lan(rqSeq: number, cmd = 0x02, data: number[] = [0x02]): LanRequest {
  return { rsSA: 0x20, netFn: 0x00, rsLUN: 0, rqSA: 0x81, rqSeq, rqLUN: 0, cmd, data: Buffer.from(data) } as LanRequest;
}

describe('IPMI duplicate requests: the cache', () => {
  let t = 0;
  const clock = () => t;
  beforeEach(() => {
    t = 1_000;
  });

  it('a retransmission joins the copy in flight however long it runs, then is served for the window after it settled', async () => {
    const c = new DuplicateCache<{ cc: number }>();
    let finish!: (v: { cc: number }) => void;
    const running = new Promise<{ cc: number }>((r) => (finish = r));
    c.remember(lan(5), running, clock);
    t += 10 * DUPLICATE_WINDOW_MS; // far longer than any window: still in flight
    const joined = c.lookup(lan(5), t);
    expect(joined?.joined).to.equal(true);
    expect(joined?.result).to.equal(running);
    finish({ cc: 0 });
    await running;
    await Promise.resolve();
    const settledAt = t;
    t = settledAt + DUPLICATE_WINDOW_MS - 1;
    expect(c.lookup(lan(5), t)?.joined).to.equal(false);
    t = settledAt + DUPLICATE_WINDOW_MS;
    expect(c.lookup(lan(5), t)).to.equal(undefined);
  });

  it('the same sequence number with other data or another command is a new request', () => {
    const c = new DuplicateCache<{ cc: number }>();
    c.remember(lan(7, 0x02, [0x02]), { cc: 0 }, clock);
    expect(c.lookup(lan(7, 0x02, [0x00]), t)).to.equal(undefined);
    expect(c.lookup(lan(7, 0x01, [0x02]), t)).to.equal(undefined);
    expect(c.lookup(lan(8, 0x02, [0x02]), t)).to.equal(undefined);
    expect(c.lookup(lan(7, 0x02, [0x02]), t)).to.not.equal(undefined);
  });

  it('two requests sharing one rqSeq (other commands) are both remembered, and each leaves with its own age', () => {
    const c = new DuplicateCache<{ cc: number }>();
    c.remember(lan(7, 0x01), { cc: 0 }, clock);
    c.remember(lan(7, 0x02, [0x02]), { cc: 1 }, clock);
    expect(c.lookup(lan(7, 0x01), t)?.result).to.deep.equal({ cc: 0 });
    expect(c.lookup(lan(7, 0x02, [0x02]), t)?.result).to.deep.equal({ cc: 1 });
    // 15 other requests: the first rqSeq-7 entry is the oldest of 16 + 1 and leaves, the second stays
    for (let i = 0; i < DUPLICATE_CACHE_CAPACITY - 1; i++) c.remember(lan(20 + i), { cc: 0 }, clock);
    expect(c.lookup(lan(7, 0x01), t)).to.equal(undefined);
    expect(c.lookup(lan(7, 0x02, [0x02]), t)?.result).to.deep.equal({ cc: 1 });
    c.remember(lan(40), { cc: 0 }, clock);
    expect(c.lookup(lan(7, 0x02, [0x02]), t)).to.equal(undefined);
    // rqSeq 7 is free again: a new request with it is remembered and found
    c.remember(lan(7, 0x01), { cc: 2 }, clock);
    expect(c.lookup(lan(7, 0x01), t)?.result).to.deep.equal({ cc: 2 });
  });

  it('an identical request after the 6-bit rqSeq wrapped around is new, not a retransmission', () => {
    const c = new DuplicateCache<{ cc: number }>();
    for (let i = 0; i < 64; i++) c.remember(lan(i % 64), { cc: 0 }, clock);
    // rqSeq 0 again, same command and data, within the window: its predecessor left the cache
    expect(DUPLICATE_CACHE_CAPACITY).to.be.below(64);
    expect(c.lookup(lan(0), t)).to.equal(undefined);
    expect(c.lookup(lan(63), t)).to.not.equal(undefined);
  });
});

describe('IPMI power cycle against a slow backend runs once @e2e', function () {
  this.timeout(90_000);

  /** A simulator whose power actions take `delayMs`, counting every call. */
  class SlowMachine extends SimulatedMachine {
    readonly calls: PowerAction[] = [];
    constructor(private readonly delayMs: number) {
      super({ initialPower: 'On', powerOnDelayMs: 0, powerOffDelayMs: 0 });
    }
    override async power(action: PowerAction): Promise<void> {
      this.calls.push(action);
      await new Promise((r) => setTimeout(r, this.delayMs));
      return super.power(action);
    }
  }

  for (const transport of [
    { name: 'lanplus -C 17', args: ['-I', 'lanplus', '-C', '17'] },
    { name: 'lan (IPMI 1.5, MD5)', args: ['-I', 'lan'] },
  ]) {
    // -N 3 (not 2): retransmissions still come while the 8 s cycle runs, and -I lan's opening ping gets
    // 3 s for its pong (a later pong is misread by ipmitool: docs/ipmi.md "Clients")
    it(`ipmitool ${transport.name} -R 8 -N 3: one restart, retransmissions joined, rc 0`, async () => {
      const machine = new SlowMachine(8_000);
      const lines: { msg?: string; inFlight?: boolean; cmd?: number }[] = [];
      const sink = new Writable({
        write(chunk: Buffer, _enc, cb) {
          for (const l of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l) as (typeof lines)[number]);
          cb();
        },
      });
      const server = await startIpmiServer({
        address: '127.0.0.1',
        port: 0,
        machine,
        users: [{ username: 'admin', password: 'password', role: 'Administrator' }],
        logger: createLogger('info', sink),
      });
      try {
        const r = await run(
          'ipmitool',
          [...transport.args, '-H', '127.0.0.1', '-p', String(server.port), '-U', 'admin', '-P', 'password', '-R', '8', '-N', '3', 'chassis', 'power', 'cycle'],
          60_000,
        );
        expect(r.code, r.out).to.equal(0);
        expect(r.out).to.contain('Chassis Power Control: Cycle');
        expect(machine.calls).to.deep.equal(['powerCycle']);
        // the client really did retransmit while the first copy ran (else this test proves nothing)
        const joined = lines.filter((l) => l.msg === 'retransmitted request joined the copy still running' && l.cmd === 0x02);
        expect(joined.length, JSON.stringify(lines.map((l) => l.msg))).to.be.greaterThan(0);
      } finally {
        await server.close();
        await machine.close();
      }
    });
  }
});
