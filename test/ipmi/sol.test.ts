/**
 * Serial-over-LAN: the packet codec, the payload state machine (with fake timers), the console
 * hub, the payload and SOL configuration commands over a real UDP session, and byte-exact
 * transfers through a proxy that drops datagrams.
 */
import { expect } from 'chai';
import { createHash } from 'node:crypto';
import sinon from 'sinon';
import { ByteRing, ConsoleHub } from '../../src/backend/console.js';
import type { ConsoleEvent, ConsoleState, ConsoleStream } from '../../src/backend/types.js';
import { nullLogger } from '../../src/common/logger.js';
import { SolConfig } from '../../src/ipmi/sol/config.js';
import { BmcStatus, ConsoleOp, decodeSol, encodeSol, type SolPacket } from '../../src/ipmi/sol/packet.js';
import { SolPayload } from '../../src/ipmi/sol/payload.js';
import { MANAGER } from '../../src/redfish/core/resource.js';
import { ADMIN, startTestAgent, type TestAgent } from '../helpers/agent.js';
import { V15Console } from './session-client.js';
import { LossyProxy, SolClient } from './sol-client.js';

/** A console stream the test controls. */
class FakeConsole implements ConsoleStream {
  backlog = Buffer.alloc(0);
  state: ConsoleState = 'connected';
  written: Buffer[] = [];
  room = Infinity;
  breaks = 0;
  flushes = 0;
  closed = false;
  holds: boolean[] = [];
  private listeners = new Set<(e: ConsoleEvent) => void>();
  write(data: Buffer): number {
    if (this.state !== 'connected') return 0;
    const n = Math.min(this.room, data.length);
    this.written.push(Buffer.from(data.subarray(0, n)));
    return n;
  }
  sendBreak(): void {
    this.breaks++;
  }
  flushInput(): void {
    this.flushes++;
  }
  hold(on: boolean): void {
    this.holds.push(on);
  }
  on(l: (e: ConsoleEvent) => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
  close(): void {
    this.closed = true;
  }
  print(s: string): void {
    for (const l of this.listeners) l({ type: 'data', data: Buffer.from(s, 'latin1') });
  }
}

function rig(opts: { backlog?: string; maxChars?: number } = {}) {
  const console = new FakeConsole();
  if (opts.backlog) console.backlog = Buffer.from(opts.backlog);
  const config = new SolConfig(1, () => 623);
  const sent: SolPacket[] = [];
  const payload = new SolPayload({
    console,
    config,
    maxChars: opts.maxChars ?? 251,
    log: nullLogger(),
    transmit: (b) => {
      const d = decodeSol(b);
      if (!d.ok) throw new Error(d.message);
      sent.push({ ...d.value, data: Buffer.from(d.value.data) });
    },
  });
  const fromConsole = (p: Partial<SolPacket>) => payload.receive(encodeSol({ seq: 0, ackSeq: 0, acceptedCount: 0, op: 0, data: Buffer.alloc(0), ...p }));
  // The first packet waits one accumulate interval (after the Activate Payload response).
  expect(sent).to.have.length(0);
  clock.tick(config.accumulateMs - 1);
  expect(sent).to.have.length(0);
  clock.tick(1);
  return { console, config, sent, payload, fromConsole };
}

describe('SOL packets', () => {
  it('encode and decode the 4-byte header and the characters', () => {
    const b = encodeSol({ seq: 3, ackSeq: 2, acceptedCount: 5, op: BmcStatus.BREAK_DETECTED, data: Buffer.from('hi') });
    expect([...b]).to.deep.equal([3, 2, 5, 0x04, 0x68, 0x69]);
    const d = decodeSol(b);
    expect(d.ok && d.value.data.toString()).to.equal('hi');
  });

  it('refuse a truncated header and more than 255 characters', () => {
    expect(decodeSol(Buffer.from([1, 0, 0])).ok).to.equal(false);
    expect(decodeSol(Buffer.alloc(4 + 256)).ok).to.equal(false);
    expect(decodeSol(Buffer.alloc(4 + 255)).ok).to.equal(true);
  });
});

let clock: sinon.SinonFakeTimers;

describe('SOL payload state machine', () => {
  beforeEach(() => {
    clock = sinon.useFakeTimers();
  });
  afterEach(() => clock.restore());

  it('holds output below the send threshold until the accumulate interval passes', () => {
    const r = rig();
    r.config.accumulateInterval = 10; // 50 ms
    r.console.print('abc');
    expect(r.sent).to.have.length(0);
    clock.tick(49);
    expect(r.sent).to.have.length(0);
    clock.tick(1);
    expect(r.sent).to.have.length(1);
    expect(r.sent[0]!.seq).to.equal(1);
    expect(r.sent[0]!.data.toString()).to.equal('abc');
  });

  it('sends at once when the threshold is reached, in packets of at most maxChars', () => {
    const r = rig({ maxChars: 10 });
    r.config.sendThreshold = 4;
    r.console.print('0123456789abcdef');
    expect(r.sent.map((p) => p.data.toString())).to.deep.equal(['0123456789']);
    r.fromConsole({ ackSeq: 1, acceptedCount: 10 });
    expect(r.sent.map((p) => p.data.toString())).to.deep.equal(['0123456789', 'abcdef']);
    expect(r.sent[1]!.seq).to.equal(2);
  });

  it('shows the console backlog first on activation (one accumulate interval after it)', () => {
    const r = rig({ backlog: 'login: ' });
    expect(r.sent[0]!.data.toString()).to.equal('login: ');
  });

  it('resends an unacknowledged packet unchanged every retry interval, then drops it after retry count', () => {
    const r = rig();
    r.config.retryCount = 2;
    r.config.retryInterval = 5; // 50 ms
    r.console.print('x');
    clock.tick(r.config.accumulateMs);
    expect(r.sent).to.have.length(1);
    clock.tick(50);
    clock.tick(50);
    expect(r.sent).to.have.length(3);
    expect(r.sent.every((p) => p.seq === 1 && p.data.toString() === 'x')).to.equal(true);
    clock.tick(50);
    expect(r.sent).to.have.length(3);
    expect(r.payload.counters.dropped).to.equal(1);
    // the next output gets the next sequence number
    r.console.print('y');
    clock.tick(r.config.accumulateMs);
    expect(r.sent[3]!.seq).to.equal(2);
  });

  it('puts characters a partial ACK did not accept back in front', () => {
    const r = rig();
    r.console.print('hello');
    clock.tick(r.config.accumulateMs);
    r.fromConsole({ ackSeq: 1, acceptedCount: 2 });
    r.console.print('!');
    clock.tick(r.config.accumulateMs);
    expect(r.sent[1]!.data.toString()).to.equal('llo!');
  });

  it('holds output after a NACK until the console sends a packet that is not one', () => {
    const r = rig();
    r.console.print('abc');
    clock.tick(r.config.accumulateMs);
    r.fromConsole({ ackSeq: 1, acceptedCount: 1, op: ConsoleOp.NACK });
    clock.tick(1000);
    expect(r.sent).to.have.length(1);
    r.fromConsole({});
    clock.tick(r.config.accumulateMs);
    expect(r.sent[1]!.data.toString()).to.equal('bc');
  });

  it('ignores an ACK for another sequence number (keeps resending)', () => {
    const r = rig();
    r.console.print('a');
    clock.tick(r.config.accumulateMs);
    r.fromConsole({ ackSeq: 7, acceptedCount: 1 });
    clock.tick(r.config.retryMs);
    expect(r.sent).to.have.length(2);
    expect(r.sent[1]!.seq).to.equal(1);
  });

  it('wraps the sequence number from 15 to 1', () => {
    const r = rig();
    const seqs: number[] = [];
    for (let i = 0; i < 16; i++) {
      r.console.print('z');
      clock.tick(r.config.accumulateMs);
      const p = r.sent.at(-1)!;
      seqs.push(p.seq);
      r.fromConsole({ ackSeq: p.seq, acceptedCount: 1 });
    }
    expect(seqs.slice(13)).to.deep.equal([14, 15, 1]);
  });

  it('acknowledges console characters once and delivers them once when the console resends', () => {
    const r = rig();
    r.fromConsole({ seq: 4, data: Buffer.from('ls\r') });
    r.fromConsole({ seq: 4, data: Buffer.from('ls\r') }); // our ACK was lost
    expect(Buffer.concat(r.console.written).toString()).to.equal('ls\r');
    expect(r.sent).to.have.length(2);
    expect(r.sent.map((p) => [p.seq, p.ackSeq, p.acceptedCount])).to.deep.equal([
      [0, 4, 3],
      [0, 4, 3],
    ]);
  });

  it('accepts only what the input queue takes (the client resends the rest)', () => {
    const r = rig();
    r.console.room = 2;
    r.fromConsole({ seq: 1, data: Buffer.from('abcd') });
    expect(r.sent[0]!.acceptedCount).to.equal(2);
    expect(r.sent[0]!.op & BmcStatus.NACK).to.equal(0);
  });

  it('answers "transfer unavailable" and takes nothing while the console is offline', () => {
    const r = rig();
    r.console.state = 'offline';
    r.fromConsole({ seq: 1, data: Buffer.from('abc') });
    expect(r.sent[0]!.acceptedCount).to.equal(0);
    expect(r.sent[0]!.op & BmcStatus.TRANSFER_UNAVAILABLE).to.equal(BmcStatus.TRANSFER_UNAVAILABLE);
    expect(r.console.written).to.have.length(0);
  });

  it('passes break on, flushes each direction, and holds output while CTS is paused', () => {
    const r = rig();
    r.fromConsole({ op: ConsoleOp.GENERATE_BREAK | ConsoleOp.FLUSH_INBOUND });
    expect(r.console.breaks).to.equal(1);
    expect(r.console.flushes).to.equal(1);
    r.console.print('dropped');
    r.fromConsole({ op: ConsoleOp.FLUSH_OUTBOUND | ConsoleOp.CTS_PAUSE });
    r.console.print('held');
    clock.tick(1000);
    expect(r.sent).to.have.length(0);
    r.fromConsole({ op: ConsoleOp.DROP_DCD_DSR });
    expect(r.payload.dcdDsrDropped).to.equal(true);
    clock.tick(r.config.accumulateMs);
    expect(r.sent.map((p) => p.data.toString())).to.deep.equal(['held']);
  });

  it('drops the oldest output beyond its limit and says so (transmit overrun)', () => {
    const console = new FakeConsole();
    const sent: Buffer[] = [];
    const p = new SolPayload({ console, config: new SolConfig(1, () => 623), maxChars: 251, outputLimit: 4, log: nullLogger(), transmit: (b) => sent.push(b) });
    clock.tick(100);
    console.print('abcdef');
    clock.tick(100);
    const d = decodeSol(sent[0]!);
    expect(d.ok && d.value.data.toString()).to.equal('cdef');
    expect(d.ok && d.value.op & BmcStatus.TRANSMIT_OVERRUN).to.equal(BmcStatus.TRANSMIT_OVERRUN);
    expect(p.counters.overrunBytes).to.equal(2);
  });

  it('holds the console while more than 64 KiB wait and releases it below 16 KiB (back-pressure)', () => {
    const r = rig();
    for (let i = 0; i < 70; i++) r.console.print('x'.repeat(1024));
    expect(r.console.holds).to.deep.equal([true]);
    // the console ACKs everything it gets: the queue drains
    for (let i = 0; i < 400 && r.console.holds.length < 2; i++) {
      const p = r.sent.at(-1)!;
      r.fromConsole({ ackSeq: p.seq, acceptedCount: p.data.length });
    }
    expect(r.console.holds).to.deep.equal([true, false]);
    expect(r.payload.pendingOutput).to.be.lessThan(16 * 1024);
    expect(r.payload.counters.overrunBytes).to.equal(0);
  });

  it('says "deactivating" in its last packet and then stays silent', () => {
    const r = rig();
    r.console.print('late');
    r.payload.deactivate(true);
    clock.tick(1000);
    expect(r.sent).to.have.length(1);
    expect(r.sent[0]!.op).to.equal(BmcStatus.DEACTIVATING);
    expect(r.console.closed).to.equal(true);
    r.fromConsole({ seq: 1, data: Buffer.from('x') });
    expect(r.sent).to.have.length(1);
  });
});

describe('console hub', () => {
  it('keeps only the newest ring bytes and shows them to a viewer that attaches later', () => {
    const ring = new ByteRing(8);
    ring.push(Buffer.from('0123456'));
    ring.push(Buffer.from('789'));
    expect(ring.contents().toString()).to.equal('23456789');
    ring.push(Buffer.from('abcdefghijk'));
    expect(ring.contents().toString()).to.equal('defghijk');
    const hub = new ConsoleHub({ ringBytes: 4, sink: { write: () => true }, initialState: 'connected' });
    hub.output(Buffer.from('boot log'));
    expect(hub.open().backlog.toString()).to.equal(' log');
  });

  it('queues input with back-pressure: partial writes, drain when the sink has room again', () => {
    const delivered: string[] = [];
    let full = true;
    const hub = new ConsoleHub({ inputLimit: 4, initialState: 'connected', sink: { write: (d) => (delivered.push(d.toString()), !full) } });
    const s = hub.open();
    const events: string[] = [];
    s.on((e) => events.push(e.type));
    expect(s.write(Buffer.from('ab'))).to.equal(2); // delivered, sink now says full
    expect(s.write(Buffer.from('cdefg'))).to.equal(4);
    expect(s.write(Buffer.from('h'))).to.equal(0);
    expect(delivered).to.deep.equal(['ab']);
    full = false;
    hub.drained();
    expect(delivered).to.deep.equal(['ab', 'cdef']);
    expect(events).to.include('drain');
  });

  it('pauses its source while any viewer holds, resumes when the last one releases or leaves', () => {
    const calls: string[] = [];
    const hub = new ConsoleHub({ sink: { write: () => true }, source: { pause: () => calls.push('pause'), resume: () => calls.push('resume') } });
    const a = hub.open();
    const b = hub.open();
    a.hold(true);
    b.hold(true);
    a.hold(false);
    expect(calls).to.deep.equal(['pause']);
    b.close();
    expect(calls).to.deep.equal(['pause', 'resume']);
    expect(hub.held).to.equal(false);
  });

  it('takes no input while offline and drops what was queued when it goes offline', () => {
    const delivered: string[] = [];
    const hub = new ConsoleHub({ sink: { write: (d) => (delivered.push(d.toString()), false) }, initialState: 'connected' });
    const s = hub.open();
    s.write(Buffer.from('a'));
    s.write(Buffer.from('b'));
    hub.setState('offline');
    expect(hub.pendingInput).to.equal(0);
    expect(s.write(Buffer.from('c'))).to.equal(0);
    hub.setState('connected');
    expect(delivered).to.deep.equal(['a']);
  });
});

describe('SOL over a real session', function () {
  this.timeout(60_000);
  let t: TestAgent;
  const clients: SolClient[] = [];
  const client = async (port = t.ipmiPort, user?: { user: string; password: string }) => {
    const c = new SolClient({ port, ...(user ? { ...user, role: 0x12 } : {}) });
    clients.push(c);
    await c.open(user ? 2 : 4);
    return c;
  };

  beforeEach(async () => {
    t = await startTestAgent({ redfish: false, sim: { initialPower: 'Off' } });
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await t.close();
  });

  it('reports SOL in Get Channel Payload Support / Version', async () => {
    const c = await client();
    const sup = await c.request(0x06, 0x4e, [0x0e]);
    expect(sup.cc).to.equal(0);
    expect([...sup.data]).to.deep.equal([0x03, 0, 0x3f, 0, 0, 0, 0, 0]);
    expect((await c.request(0x06, 0x4f, [0x0e, 0x01])).data[0]).to.equal(0x10);
    expect((await c.request(0x06, 0x4f, [0x0e, 0x02])).cc).to.equal(0x80);
  });

  it('activates once: the boot log arrives after power on, a second activation is refused with 0x80', async () => {
    const a = await client();
    const r = await a.activate();
    expect(r.cc).to.equal(0);
    expect(r.data.length).to.equal(12);
    expect(r.data.readUInt16LE(8)).to.equal(t.ipmiPort);
    const b = await client();
    expect((await b.activate()).cc).to.equal(0x80);
    const st = await b.request(0x06, 0x4a, [0x01]);
    expect([...st.data]).to.deep.equal([1, 1, 0]);
    const info = await b.request(0x06, 0x4b, [0x01, 0x01]);
    expect(info.data.readUInt32LE(0)).to.equal(a.con.bmcId);
    await t.sim.power('on');
    await a.waitFor(() => a.text().includes('sim-vm login: '));
    expect(a.text()).to.include('Booting from Hard Disk');
    const acks = await a.send(Buffer.from('root\r'));
    expect(acks[0]!.acceptedCount).to.equal(5);
    await a.waitFor(() => a.text().includes('you typed: root'));
  });

  it('ends the activation when another session deactivates it: the owner gets the "deactivating" packet', async () => {
    const a = await client();
    expect((await a.activate()).cc).to.equal(0);
    const b = await client();
    expect((await b.deactivate()).cc).to.equal(0);
    await a.waitFor(() => a.packets.some((p) => p.op & BmcStatus.DEACTIVATING));
    expect((await b.deactivate()).cc).to.equal(0x80);
    expect((await b.activate()).cc).to.equal(0);
  });

  it('the owner deactivating its own payload gets only the answer, no "deactivating" packet after it', async () => {
    const a = await client();
    expect((await a.activate()).cc).to.equal(0);
    expect((await a.deactivate()).cc).to.equal(0);
    // a request after it: its answer comes next, with no SOL packet in between
    expect((await a.activate()).cc).to.equal(0);
    expect(a.packets.some((p) => p.op & BmcStatus.DEACTIVATING)).to.equal(false);
  });

  it('closing the owning session deactivates the payload', async () => {
    const a = await client();
    expect((await a.activate()).cc).to.equal(0);
    const sid = Buffer.alloc(4);
    sid.writeUInt32LE(a.con.bmcId);
    expect((await a.request(0x06, 0x3c, [...sid])).cc).to.equal(0);
    const b = await client();
    expect([...(await b.request(0x06, 0x4a, [0x01])).data]).to.deep.equal([1, 0, 0]);
    expect((await b.activate()).cc).to.equal(0);
  });

  it('refuses activation without encryption (forced) and over IPMI 1.5', async () => {
    const a = await client();
    expect((await a.activate(0x40)).cc).to.equal(0x84);
    const v = new V15Console(t.ipmiPort, 'admin', 'password');
    try {
      expect(await v.activate()).to.equal(0);
      const r = await v.request(0x06, 0x48, [1, 1, 0xc6, 0, 0, 0]);
      expect(r?.cc).to.equal(0xd5);
      // the configuration is readable from any session
      expect((await v.request(0x0c, 0x22, [0x0e, 0x01, 0, 0]))?.data[1]).to.equal(1);
    } finally {
      v.peer.close();
    }
  });

  it('an integrity-only suite (2) gets SOL only once encryption is no longer forced, its packets authenticated and in clear', async () => {
    const admin = await client();
    const c = new SolClient({ port: t.ipmiPort, suite: 2 });
    clients.push(c);
    await c.open();
    expect((await c.activate(0xc6)).cc).to.equal(0x83); // asks for encryption the suite lacks
    expect((await c.activate(0x46)).cc).to.equal(0x84); // param 2 forces encryption
    expect((await admin.request(0x0c, 0x21, [0x0e, 0x02, 0x42])).cc).to.equal(0); // force authentication only, USER
    expect((await c.activate(0x06)).cc).to.equal(0xcc); // without authentication, which is forced
    expect((await c.activate(0x46)).cc).to.equal(0);
    await t.sim.power('on');
    await c.waitFor(() => c.text().includes('login: '));
  });

  it('Get/Set SOL Configuration Parameters round-trip, with the spec completion codes', async () => {
    const a = await client();
    expect((await a.request(0x0c, 0x21, [0x0e, 0x00, 0x01])).cc).to.equal(0);
    expect((await a.request(0x0c, 0x21, [0x0e, 0x00, 0x01])).cc).to.equal(0x81); // already in progress
    expect((await a.request(0x0c, 0x21, [0x0e, 0x03, 0x0c, 0x40])).cc).to.equal(0);
    expect((await a.request(0x0c, 0x21, [0x0e, 0x04, 0x03, 0x14])).cc).to.equal(0);
    expect((await a.request(0x0c, 0x21, [0x0e, 0x06, 0x09])).cc).to.equal(0);
    expect((await a.request(0x0c, 0x21, [0x0e, 0x00, 0x00])).cc).to.equal(0);
    expect([...(await a.request(0x0c, 0x22, [0x0e, 0x03, 0, 0])).data]).to.deep.equal([0x11, 0x0c, 0x40]);
    expect([...(await a.request(0x0c, 0x22, [0x0e, 0x04, 0, 0])).data]).to.deep.equal([0x11, 0x03, 0x14]);
    expect([...(await a.request(0x0c, 0x22, [0x0e, 0x06, 0, 0])).data]).to.deep.equal([0x11, 0x09]);
    expect([...(await a.request(0x0c, 0x22, [0x8e, 0x06, 0, 0])).data]).to.deep.equal([0x11]); // revision only
    const port = (await a.request(0x0c, 0x22, [0x0e, 0x08, 0, 0])).data;
    expect(port.readUInt16LE(1)).to.equal(t.ipmiPort);
    expect((await a.request(0x0c, 0x21, [0x0e, 0x08, 0x01, 0x02])).cc).to.equal(0x82); // read-only
    expect((await a.request(0x0c, 0x21, [0x0e, 0x03, 0x00, 0x40])).cc).to.equal(0xcc); // 0 is reserved
    expect((await a.request(0x0c, 0x21, [0x0e, 0x06, 0x05])).cc).to.equal(0xcc);
    expect((await a.request(0x0c, 0x22, [0x0e, 0x09, 0, 0])).cc).to.equal(0x80);
    // the value survived the refused writes
    expect([...(await a.request(0x0c, 0x22, [0x0e, 0x03, 0, 0])).data]).to.deep.equal([0x11, 0x0c, 0x40]);
    // Set needs ADMINISTRATOR; a read-only user can read
    const v = await client(t.ipmiPort, { user: 'viewer', password: 'viewer-pw' });
    expect((await v.request(0x0c, 0x21, [0x0e, 0x01, 0x00])).cc).to.equal(0xd4);
    expect((await v.request(0x0c, 0x22, [0x0e, 0x01, 0, 0])).cc).to.equal(0);
  });

  it('disabled SOL (param 1 = 0) refuses activation with 0x81', async () => {
    const a = await client();
    expect((await a.request(0x0c, 0x21, [0x0e, 0x01, 0x00])).cc).to.equal(0);
    expect((await a.activate()).cc).to.equal(0x81);
  });

  it('1 MiB of console output arrives complete and in order through a proxy that drops datagrams', async () => {
    const proxy = new LossyProxy(t.ipmiPort);
    await proxy.start();
    try {
      const a = await client(proxy.port);
      // short retries so the lost packets cost little time
      expect((await a.request(0x0c, 0x21, [0x0e, 0x04, 0x07, 0x02])).cc).to.equal(0);
      expect((await a.request(0x0c, 0x21, [0x0e, 0x03, 0x01, 0xff])).cc).to.equal(0);
      await t.sim.power('on');
      expect((await a.activate()).cc).to.equal(0);
      await a.waitFor(() => a.text().includes('login: '));
      const base = a.receivedBytes;
      // Drop every 23rd datagram towards the client and every 19th towards the agent, from now on.
      const from = { up: 0, down: 0 };
      proxy.drop = (dir, n) => {
        if (!from[dir]) from[dir] = n;
        return (n - from[dir] + 1) % (dir === 'down' ? 23 : 19) === 0;
      };
      const total = 1024 * 1024;
      const data = Buffer.alloc(total);
      let h = createHash('sha256').update('sol').digest();
      for (let off = 0; off < total; off += 32) {
        h.copy(data, off);
        h = createHash('sha256').update(h).digest();
      }
      // The guest writes as a UART would: no further than 128 KiB ahead of what was read.
      let written = 0;
      while (written < total) {
        await a.waitFor(() => a.receivedBytes - base > written - 128 * 1024, 30_000);
        const n = Math.min(16 * 1024, total - written);
        t.sim.serialConsole.print(data.subarray(written, written + n));
        written += n;
      }
      await a.waitFor(() => a.receivedBytes - base >= total, 60_000);
      const got = Buffer.concat(a.received).subarray(base);
      expect(got.length).to.equal(total);
      expect(createHash('sha256').update(got).digest('hex')).to.equal(createHash('sha256').update(data).digest('hex'));
      expect(proxy.dropped.down).to.be.greaterThan(100);
      expect(proxy.dropped.up).to.be.greaterThan(100);
      expect(a.duplicatesSeen).to.be.greaterThan(0); // lost ACKs made the agent resend
    } finally {
      proxy.close();
    }
  });

  it('console input through the lossy proxy reaches the guest exactly once', async () => {
    const proxy = new LossyProxy(t.ipmiPort);
    await proxy.start();
    try {
      const a = new SolClient({ port: proxy.port, retryMs: 40 });
      clients.push(a);
      await a.open();
      await t.sim.power('on');
      t.sim.serialConsole.interactive = false;
      expect((await a.activate()).cc).to.equal(0);
      const start = t.sim.serialConsole.received.length;
      proxy.drop = (_dir, n) => n % 7 === 0;
      const data = Buffer.alloc(64 * 1024);
      for (let i = 0; i < data.length; i++) data[i] = (i * 131 + (i >> 8)) & 0xff;
      await a.send(data);
      const got = Buffer.concat(t.sim.serialConsole.received.slice(start));
      expect(got.equals(data)).to.equal(true);
      expect(proxy.dropped.up + proxy.dropped.down).to.be.greaterThan(20);
    } finally {
      proxy.close();
    }
  });
});

describe('Redfish Manager SerialConsole', () => {
  const manager = async (t: TestAgent) => {
    const r = await fetch(`${t.redfishUrl}${MANAGER}`, {
      headers: { Authorization: `Basic ${Buffer.from(`${ADMIN.username}:${ADMIN.password}`).toString('base64')}` },
    });
    expect(r.status).to.equal(200);
    return (await r.json()) as Record<string, unknown>;
  };

  it('reports IPMI SOL as it runs: enabled, one session, IPMI only; off with the SOL Enable parameter; no command shell or graphical console', async () => {
    const t = await startTestAgent();
    const c = new SolClient({ port: t.ipmiPort });
    try {
      expect((await manager(t)).SerialConsole).to.deep.equal({ ServiceEnabled: true, MaxConcurrentSessions: 1, ConnectTypesSupported: ['IPMI'] });
      const body = await manager(t);
      expect(body).to.not.have.property('CommandShell');
      expect(body).to.not.have.property('GraphicalConsole');
      await c.open();
      expect((await c.request(0x0c, 0x21, [0x0e, 0x01, 0x00])).cc).to.equal(0);
      expect(((await manager(t)).SerialConsole as { ServiceEnabled: boolean }).ServiceEnabled).to.equal(false);
    } finally {
      c.close();
      await t.close();
    }
  });

  it('is disabled without an IPMI server', async () => {
    const t = await startTestAgent({ ipmi: false });
    try {
      expect(((await manager(t)).SerialConsole as { ServiceEnabled: boolean }).ServiceEnabled).to.equal(false);
    } finally {
      await t.close();
    }
  });
});
