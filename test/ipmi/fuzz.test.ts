/**
 * Robustness: thousands of random and mutated datagrams (truncated, bit-flipped, replayed,
 * oversized, bad HMAC) built from real handshake and session traffic, then a normal session must
 * still work and nothing may have thrown inside the server.
 */
import { expect } from 'chai';
import { SimulatedMachine } from '../../src/backend/simulator/simulator.js';
import { createLogger } from '../../src/common/logger.js';
import { encodeAsfPing } from '../../src/ipmi/codec/index.js';
import { startIpmiServer } from '../../src/ipmi/server.js';
import { RmcpPlusConsole, UdpPeer, V15Console, lanRequest, rmcpPreSession, v15PreSession } from './session-client.js';
import { lineSink } from '../helpers/log.js';

/** Small deterministic PRNG (mulberry32) so a failure can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('ipmi fuzz', function () {
  this.timeout(60000);

  it('survives 5000 hostile datagrams and still serves a normal session', async () => {
    const errors: string[] = [];
    const sink = lineSink(errors);
    const sim = new SimulatedMachine({ powerOnDelayMs: 0, powerOffDelayMs: 0 });
    const clock = { t: Date.now() };
    const server = await startIpmiServer({
      address: '127.0.0.1',
      port: 0,
      machine: sim,
      users: [{ username: 'admin', password: 'password', role: 'Administrator' }],
      logger: createLogger('error', sink),
      lockoutPolicy: { threshold: 0 },
      allowInsecure: true, // so the corpus has straight-password (v1.5 type 4) traffic too
      now: () => clock.t,
    });
    const rnd = prng(Number(process.env.IPMI_FUZZ_SEED ?? 0x1badb002));
    const int = (n: number) => Math.floor(rnd() * n);
    try {
      // Real traffic to mutate: two complete handshakes (suites 3 and 17) with session requests,
      // plus pre-session 1.5 / RMCP+ messages and an ASF ping.
      const corpus: Buffer[] = [];
      const live: RmcpPlusConsole[] = [];
      for (const suite of [3, 17]) {
        const c = new RmcpPlusConsole(server.port, 'admin', 'password', suite);
        expect((await c.handshake()).established).to.equal(true);
        for (const [nf, cmd, data] of [[0, 1, []], [6, 1, []], [6, 0x3b, [4]], [6, 0x3d, [0]]] as const) {
          // Delivered once for real, so every copy the fuzzer sends is a replay.
          const pkt = c.wrap(lanRequest(nf, cmd, [...data]));
          expect(c.unwrap((await c.peer.exchange(pkt))!)?.cc).to.equal(0);
          corpus.push(pkt);
        }
        corpus.push(...c.peer.sent);
        live.push(c);
      }
      for (const authType of [2, 4]) {
        const v = new V15Console(server.port, 'admin', 'password', authType);
        expect(await v.activate()).to.equal(0);
        const pkt = v.wrap(lanRequest(0, 1));
        expect((await v.peer.exchange(pkt)) !== undefined).to.equal(true);
        corpus.push(...v.peer.sent);
        v.close();
      }
      const name = Buffer.alloc(16);
      name.write('admin');
      corpus.push(
        v15PreSession(lanRequest(6, 0x38, [0x8e, 0x04])),
        v15PreSession(lanRequest(6, 0x39, [0x02, ...name])),
        rmcpPreSession(lanRequest(6, 0x54, [0x0e, 0x00, 0x80])),
        encodeAsfPing(7),
      );

      const fuzz = new UdpPeer(server.port);
      await fuzz.ready();
      // A barrier instead of sleeps: an ASF ping sent after a batch is answered once the server has
      // read every datagram before it (one socket, in order). Its pong echoes the RMCP sequence and
      // the tag, a pair the corpus's pings (sequence 0xff, tag 7) do not carry unmutated.
      let barriers = 0;
      const barrier = async (): Promise<void> => {
        const seq = barriers % 0xff; // 0..0xfe: 0xff is the corpus's "no ACK" value
        const tag = 0x80 | (barriers++ % 0x80);
        const ping = encodeAsfPing(tag);
        ping[2] = seq;
        fuzz.drain(); // replies to the fuzz so far
        fuzz.sendRaw(ping);
        for (;;) {
          // a reply may be lost only to a full socket buffer (a batch is far smaller): a long
          // receive limit, then the ping again, rather than a bound on how fast the server reads
          const r = await fuzz.receive(30_000);
          if (r === undefined) {
            fuzz.sendRaw(ping);
            continue;
          }
          if (r.length >= 10 && r[3] === 0x06 && r[2] === seq && r[8] === 0x40 && r[9] === tag) return;
        }
      };
      const kinds: Record<string, number> = {};
      for (let i = 0; i < 5000; i++) {
        const base = corpus[int(corpus.length)]!;
        let d: Buffer;
        const k = int(7);
        switch (k) {
          case 0: // truncation
            d = base.subarray(0, int(base.length));
            break;
          case 1: {
            // flipped bits
            d = Buffer.from(base);
            for (let j = 0, n = 1 + int(4); j < n; j++) d[int(d.length)]! ^= 1 << int(8);
            break;
          }
          case 2: {
            // bad HMAC / trailer
            d = Buffer.from(base);
            d[d.length - 1 - int(Math.min(16, d.length))]! ^= 0xff;
            break;
          }
          case 3: // replay as is
            d = base;
            break;
          case 4: // oversized
            d = Buffer.concat([base, Buffer.alloc(1025 + int(800), int(256))]);
            break;
          case 5: {
            // random bytes behind a valid RMCP IPMI header
            const body = Buffer.alloc(int(200));
            for (let j = 0; j < body.length; j++) body[j] = int(256);
            d = Buffer.concat([Buffer.from([6, 0, 0xff, 7]), body]);
            break;
          }
          default: {
            // pure noise
            d = Buffer.alloc(int(300));
            for (let j = 0; j < d.length; j++) d[j] = int(256);
          }
        }
        kinds[k] = (kinds[k] ?? 0) + 1;
        fuzz.sendRaw(d);
        if (i % 100 === 99) await barrier();
      }
      await barrier(); // all 5000 read before the clock moves on
      fuzz.close();
      expect(Object.keys(kinds)).to.have.length(7);

      // Replayed Open Session requests left half-open handshakes from our (single) source; they
      // are not evicted for a newcomer but expire after the handshake timeout (5 s).
      clock.t += 6000;
      // Still serving: a fresh handshake and a real command from the command table.
      const after = new RmcpPlusConsole(server.port, 'admin', 'password', 17);
      expect((await after.handshake()).established).to.equal(true);
      const status = await after.request(0x00, 0x01);
      expect(status?.cc).to.equal(0);
      expect(status!.data[0]! & 1).to.equal(0); // simulator is off
      const info = await after.request(0x06, 0x3d, [0]);
      expect(info!.data[2]).to.be.at.most(32); // sessions stayed under the cap
      after.close();
      for (const c of live) c.close();
      expect(errors.filter((l) => l.includes('unexpected error'))).to.deep.equal([]);
    } finally {
      await server.close();
    }
  });
});
