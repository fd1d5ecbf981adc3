import { expect } from 'chai';
import { BackendError } from '../../src/backend/types.js';
import { encodeAsfPing } from '../../src/ipmi/codec/index.js';
import { SimulatedMachine } from '../../src/backend/simulator/simulator.js';
import { nullLogger } from '../../src/common/logger.js';
import type { ProtocolServer } from '../../src/accounts/types.js';
import { startIpmiServer, type IpmiServerOptions } from '../../src/ipmi/server.js';
import { SeqWindow, SessionTable, type CreateRefusal } from '../../src/ipmi/session/table.js';
import { CC, Privilege, type CommandSpec } from '../../src/ipmi/types.js';
import { RmcpPlusConsole, UdpPeer, V15Console, lanRequest, preSessionResponse, rmcpPreSession, v15PreSession } from './session-client.js';

const USERS = [
  { username: 'admin', password: 'password', role: 'Administrator' as const },
  { username: 'operator', password: 'op-secret', role: 'Operator' as const },
  { username: 'viewer', password: 'viewer-pw', role: 'ReadOnly' as const },
];

/** The 'slow' command: `started` is told when it runs; it answers once `gate` settles (default: after 300 ms). */
interface SlowHooks {
  started?: () => void;
  gate?: Promise<unknown>;
}

/** A manual clock for the server (`now` option): session and handshake expiry without waiting. */
function manualClock(): { now: () => number; advance: (ms: number) => void } {
  let t = Date.now();
  return { now: () => t, advance: (ms) => void (t += ms) };
}

/** A small command table of our own, independent of the real one. */
function testTable(calls: string[], hooks: SlowHooks = {}): Map<number, CommandSpec> {
  const specs: CommandSpec[] = [
    { netFn: 0x30, cmd: 0x01, name: 'echo', minPrivilege: Privilege.User, handler: (c) => ({ cc: 0, data: Buffer.concat([Buffer.from([c.session.privilege]), c.req.data]) }) },
    { netFn: 0x30, cmd: 0x02, name: 'operate', minPrivilege: Privilege.Operator, handler: () => (calls.push('operate'), { cc: 0 }) },
    { netFn: 0x30, cmd: 0x20, name: 'slow', minPrivilege: Privilege.User, handler: async () => {
      calls.push('slow');
      hooks.started?.();
      await (hooks.gate ?? new Promise((r) => setTimeout(r, 300)));
      return { cc: 0 };
    } },
    { netFn: 0x30, cmd: 0x10, name: 'busy', minPrivilege: Privilege.User, handler: () => Promise.reject(new BackendError('Busy', 'x')) },
    { netFn: 0x30, cmd: 0x11, name: 'conflict', minPrivilege: Privilege.User, handler: () => Promise.reject(new BackendError('Conflict', 'x')) },
    { netFn: 0x30, cmd: 0x12, name: 'down', minPrivilege: Privilege.User, handler: () => Promise.reject(new BackendError('Unavailable', 'x')) },
    { netFn: 0x30, cmd: 0x13, name: 'invalid', minPrivilege: Privilege.User, handler: () => Promise.reject(new BackendError('InvalidArgument', 'x')) },
    { netFn: 0x30, cmd: 0x14, name: 'boom', minPrivilege: Privilege.User, handler: () => { throw new Error('boom'); } },
  ];
  return new Map(specs.map((s) => [(s.netFn << 8) | s.cmd, s]));
}

async function start(extra: Partial<IpmiServerOptions> = {}, calls: string[] = [], hooks: SlowHooks = {}): Promise<ProtocolServer> {
  return startIpmiServer({
    address: '127.0.0.1',
    port: 0,
    machine: new SimulatedMachine({ powerOnDelayMs: 0, powerOffDelayMs: 0 }),
    users: USERS,
    logger: nullLogger(),
    commands: testTable(calls, hooks),
    ...extra,
  });
}

describe('ipmi session layer', () => {
  describe('building blocks', () => {
    it('sequence window: accepts -16..+15 around the highest, never a replay or 0', () => {
      const w = new SeqWindow(0, 16, 15);
      expect(w.check(0)).to.equal(false);
      expect(w.check(4)).to.equal(true);
      w.commit(4);
      expect(w.check(4)).to.equal(false);
      expect(w.check(19)).to.equal(true);
      expect(w.check(20)).to.equal(false);
      w.commit(19);
      expect(w.check(4)).to.equal(false); // still remembered after the window moved
      expect(w.check(3)).to.equal(true);
      w.commit(3);
      expect(w.check(3)).to.equal(false);
      expect(w.check(2)).to.equal(false);
      const wrap = new SeqWindow(0xfffffffe, 8, 8);
      expect(wrap.check(3)).to.equal(true); // across the 32-bit wrap
    });

    it('session table: separate caps for active sessions and half-open handshakes, per source too, and never evicts', () => {
      const t = new SessionTable({ maxSessions: 2, idleTimeoutMs: 1000, handshakeTimeoutMs: 100, maxHalfOpenPerSource: 1 });
      const a = t.create({ remoteAddress: 'x', remotePort: 1, protocol: 'rmcp+', now: 0 })!;
      a.state = 'active';
      const b = t.create({ remoteAddress: 'x', remotePort: 1, protocol: 'rmcp+', now: 1 })!;
      const why: { reason?: CreateRefusal } = {};
      expect(t.create({ remoteAddress: 'x', remotePort: 2, protocol: 'rmcp+', now: 2 }, why)).to.equal(undefined);
      expect(why.reason).to.equal('source-busy'); // one half-open per source here
      expect(t.get(b.id)).to.equal(b); // nothing evicted
      const c = t.create({ remoteAddress: 'y', remotePort: 1, protocol: 'rmcp+', now: 2 })!;
      expect(t.create({ remoteAddress: 'z', remotePort: 1, protocol: 'rmcp+', now: 3 }, why)).to.equal(undefined);
      expect(why.reason).to.equal('full'); // two half-open at most, whoever asks
      expect([t.get(a.id), t.get(b.id), t.get(c.id)]).to.deep.equal([a, b, c]);
      c.state = 'active';
      expect(t.hasRoomForActive(3)).to.equal(false); // a and c fill the active slots
      expect(t.create({ remoteAddress: 'w', remotePort: 1, protocol: 'v15', now: 3 }, why)).to.equal(undefined);
      expect(why.reason).to.equal('full');
      expect(t.sweep(200)).to.equal(1); // the stale handshake b
      expect(t.sweep(2000)).to.equal(2); // idle timeout
      expect(t.size).to.equal(0);
    });
  });

  describe('over UDP with a test command table', () => {
    let server: ProtocolServer;
    const calls: string[] = [];
    before(async () => {
      server = await start({ lockoutPolicy: { threshold: 0 } }, calls);
    });
    after(() => server.close());

    it('reports its real port and url', () => {
      expect(server.port).to.be.greaterThan(0);
      expect(server.url).to.equal(`udp://127.0.0.1:${server.port}`);
      expect(server.name).to.equal('ipmi');
    });

    it('answers Get Channel Auth Caps in a 1.5 envelope, with and without the v2.0 bit', async () => {
      const p = new UdpPeer(server.port);
      await p.ready();
      const v2 = preSessionResponse((await p.exchange(v15PreSession(lanRequest(6, 0x38, [0x8e, 0x04]))))!);
      expect(v2?.cc).to.equal(0);
      expect(v2!.data.toString('hex')).to.equal('0184040300000000'); // MD5 only: no straight password, no NONE
      const v1 = preSessionResponse((await p.exchange(v15PreSession(lanRequest(6, 0x38, [0x0e, 0x04]))))!);
      expect(v1!.data.toString('hex')).to.equal('0104040000000000');
      p.close();
    });

    it('answers Get Channel Cipher Suites outside a session (RMCP+ envelope), listing 17, 3, 16, 2 and never 0', async () => {
      const p = new UdpPeer(server.port);
      await p.ready();
      const r = preSessionResponse((await p.exchange(rmcpPreSession(lanRequest(6, 0x54, [0x0e, 0x00, 0x80]))))!);
      expect(r?.cc).to.equal(0);
      // 16 record bytes per reply: the fourth record continues at list index 1
      expect(r!.data.toString('hex')).to.equal('01' + 'c011034481' + 'c003014181' + 'c010034480' + 'c0');
      const r2 = preSessionResponse((await p.exchange(rmcpPreSession(lanRequest(6, 0x54, [0x0e, 0x00, 0x81]))))!);
      expect(r2!.data.toString('hex')).to.equal('01' + '02014180');
      p.close();
    });

    it('answers an ASF presence ping with a pong', async () => {
      const p = new UdpPeer(server.port);
      await p.ready();
      const pong = await p.exchange(encodeAsfPing(0x42));
      expect(pong?.toString('hex')).to.equal('0600ff06000011be40420010000011be000000008100000000000000');
      p.close();
    });

    it('drops datagrams over 1 KiB, even ones that would otherwise be answered', async () => {
      const p = new UdpPeer(server.port);
      await p.ready();
      const rq = v15PreSession(lanRequest(6, 0x38, [0x8e, 0x04]));
      expect(await p.exchange(Buffer.concat([rq, Buffer.alloc(1100)]), 300)).to.equal(undefined);
      expect(await p.exchange(Buffer.concat([rq, Buffer.alloc(8)]))).to.not.equal(undefined); // legacy pad is fine
      p.close();
    });

    it('refuses other commands before a session (0xD4)', async () => {
      const p = new UdpPeer(server.port);
      await p.ready();
      const r = preSessionResponse((await p.exchange(rmcpPreSession(lanRequest(0x30, 0x02))))!);
      expect(r?.cc).to.equal(CC.INSUFFICIENT_PRIVILEGE);
      expect(calls).to.deep.equal([]);
      p.close();
    });

    for (const suite of [3, 17, 2, 16]) {
      it(`establishes a suite ${suite} session and round-trips a request`, async () => {
        const c = new RmcpPlusConsole(server.port, 'admin', 'password', suite);
        const h = await c.handshake();
        // asked for max privilege 0 ("highest matching"): answered with 4, never 0
        expect(h).to.deep.include({ openStatus: 0, openMaxPrivilege: 4, rakp2Status: 0, rakp4Status: 0, established: true });
        const r = await c.request(0x30, 0x01, [0xab]);
        expect(r?.cc).to.equal(0);
        expect(r!.data.toString('hex')).to.equal('02ab'); // starts at USER
        c.close();
      });
    }

    it('raises privilege only up to the session maximum and the user role', async () => {
      const c = new RmcpPlusConsole(server.port, 'operator', 'op-secret', 3, 0x13);
      expect((await c.handshake()).established).to.equal(true);
      expect((await c.request(0x30, 0x02))?.cc).to.equal(CC.INSUFFICIENT_PRIVILEGE);
      expect((await c.request(6, 0x3b, [0x04]))?.cc).to.equal(0x80); // above the operator role
      const ok = await c.request(6, 0x3b, [0x03]);
      expect(ok?.cc).to.equal(0);
      expect(ok!.data[0]).to.equal(3);
      expect((await c.request(0x30, 0x02))?.cc).to.equal(0);
      expect(calls).to.deep.equal(['operate']);
      c.close();
      const u = new RmcpPlusConsole(server.port, 'admin', 'password', 3, 0x12); // -L USER
      expect((await u.handshake()).established).to.equal(true);
      expect((await u.request(6, 0x3b, [0x04]))?.cc).to.equal(0x81); // above this session's limit
      u.close();
    });

    it('refuses at RAKP1: a role above the user\'s (0x0A), role 0 (0x09), an unknown user (0x0D); and answers RAKP3 with a wrong password with 0x0F', async () => {
      const once = (user: string, pw: string, suite: number, role = 0x14) => async (algs?: { auth: number; integrity: number; conf: number }) => {
        const c = new RmcpPlusConsole(server.port, user, pw, suite, role);
        try {
          return await c.handshake(algs);
        } finally {
          c.close();
        }
      };
      expect((await once('operator', 'op-secret', 3, 0x14)()).rakp2Status).to.equal(0x0a);
      expect((await once('viewer', 'viewer-pw', 17, 0x13)()).rakp2Status).to.equal(0x0a);
      expect((await once('admin', 'password', 3, 0x10)()).rakp2Status).to.equal(0x09);
      expect((await once('nobody', 'password', 3)()).rakp2Status).to.equal(0x0d);
      expect((await once('admin', 'passw0rd', 17)()).rakp4Status).to.equal(0x0f);
      expect((await once('admin', 'password', 3)({ auth: 1, integrity: 4, conf: 1 })).openStatus).to.equal(0x11);
      expect((await once('admin', 'password', 3)({ auth: 2, integrity: 2, conf: 1 })).openStatus).to.equal(0x04);
      expect((await once('admin', 'password', 3)({ auth: 1, integrity: 2, conf: 1 })).openStatus).to.equal(0x05);
      expect((await once('admin', 'password', 3)({ auth: 1, integrity: 1, conf: 2 })).openStatus).to.equal(0x10);
    });

    it('maps handler failures onto completion codes and keeps serving', async () => {
      const c = new RmcpPlusConsole(server.port, 'admin', 'password', 17);
      await c.handshake();
      expect((await c.request(0x30, 0x10))?.cc).to.equal(0xc0);
      expect((await c.request(0x30, 0x11))?.cc).to.equal(0xd5);
      expect((await c.request(0x30, 0x12))?.cc).to.equal(0xff);
      expect((await c.request(0x30, 0x13))?.cc).to.equal(0xcc);
      expect((await c.request(0x30, 0x14))?.cc).to.equal(0xff);
      expect((await c.request(0x30, 0x7f))?.cc).to.equal(0xc1);
      expect((await c.request(0x30, 0x01))?.cc).to.equal(0);
      c.close();
    });

    it('drops replays and out-of-window sequence numbers, accepts in-window reordering', async () => {
      const c = new RmcpPlusConsole(server.port, 'admin', 'password', 3);
      await c.handshake();
      const pkt = c.wrap(lanRequest(0x30, 0x01, [1]), 10);
      expect(c.unwrap((await c.peer.exchange(pkt))!)?.cc).to.equal(0);
      expect(await c.peer.exchange(pkt, 300)).to.equal(undefined); // replay
      expect(await c.peer.exchange(c.wrap(lanRequest(0x30, 0x01), 40), 300)).to.equal(undefined); // too far ahead
      expect(c.unwrap((await c.peer.exchange(c.wrap(lanRequest(0x30, 0x01), 3)))!)?.cc).to.equal(0); // behind, unseen
      c.close();
    });

    it('answers a retransmitted request (same rqSeq, new session seq) from cache without running it twice', async () => {
      const c = new RmcpPlusConsole(server.port, 'operator', 'op-secret', 3, 0x13);
      await c.handshake();
      expect((await c.request(6, 0x3b, [3]))?.cc).to.equal(0);
      const before = calls.length;
      const msg = lanRequest(0x30, 0x02);
      expect(c.unwrap((await c.peer.exchange(c.wrap(msg)))!)?.cc).to.equal(0);
      expect(c.unwrap((await c.peer.exchange(c.wrap(msg)))!)?.cc).to.equal(0); // what ipmitool does after a lost answer
      expect(calls.length - before).to.equal(1);
      expect((await c.request(0x30, 0x02))?.cc).to.equal(0); // a new rqSeq is a new request
      expect(calls.length - before).to.equal(2);
      c.close();
    });

    it('a retransmission arriving while the original still runs waits for it instead of running again', async () => {
      const c = new RmcpPlusConsole(server.port, 'admin', 'password', 3);
      await c.handshake();
      const msg = lanRequest(0x30, 0x20);
      c.peer.send(c.wrap(msg));
      c.peer.send(c.wrap(msg));
      const a = await c.peer.receive(2000);
      const b = await c.peer.receive(2000);
      expect(c.unwrap(a!)?.cc).to.equal(0);
      expect(c.unwrap(b!)?.cc).to.equal(0);
      expect(calls.filter((x) => x === 'slow')).to.have.length(1);
      c.close();
    });

    it('reports the session with Get Session Info and forgets it after Close Session', async () => {
      const c = new RmcpPlusConsole(server.port, 'viewer', 'viewer-pw', 3, 0x12);
      await c.handshake();
      const info = await c.request(6, 0x3d, [0x00]);
      expect(info?.cc).to.equal(0);
      expect(info!.data.length).to.equal(18);
      expect(info!.data[3]).to.equal(4); // viewer is the third configured user: id 4
      expect(info!.data[4]).to.equal(Privilege.User);
      expect(info!.data[5]).to.equal(0x11); // RMCP+, channel 1
      expect([...info!.data.subarray(6, 10)]).to.deep.equal([127, 0, 0, 1]);
      const id = Buffer.alloc(4);
      id.writeUInt32LE(c.bmcId);
      expect((await c.request(6, 0x3c, [...id]))?.cc).to.equal(0);
      expect(await c.request(0x30, 0x01, [], 300)).to.equal(undefined);
      c.close();
    });
  });

  describe('limits and timeouts', () => {
    it('refuses Open Session with status 0x01 when every slot holds an active session', async () => {
      const server = await start({ maxSessions: 2 });
      const a = new RmcpPlusConsole(server.port, 'admin', 'password');
      const b = new RmcpPlusConsole(server.port, 'admin', 'password');
      const c = new RmcpPlusConsole(server.port, 'admin', 'password');
      try {
        expect((await a.handshake()).established).to.equal(true);
        expect((await b.handshake()).established).to.equal(true);
        expect((await c.handshake()).openStatus).to.equal(0x01);
        expect((await a.request(0x30, 0x01))?.cc).to.equal(0);
      } finally {
        [a, b, c].forEach((x) => x.close());
        await server.close();
      }
    });

    it('expires half-open handshakes quickly', async () => {
      const clock = manualClock();
      const server = await start({ handshakeTimeoutSeconds: 0.5, now: clock.now });
      const slow = new RmcpPlusConsole(server.port, 'admin', 'password');
      const fast = new RmcpPlusConsole(server.port, 'admin', 'password');
      try {
        // 0.8 s pass on the server's clock between Open Session and RAKP1
        expect((await slow.handshake(undefined, () => clock.advance(800))).rakp2Status).to.equal(0x02); // invalid session id: gone
        expect((await fast.handshake()).established).to.equal(true);
      } finally {
        slow.close();
        fast.close();
        await server.close();
      }
    });

    it('close() while a handler still runs: its late reply is dropped, nothing rejects unhandled', async () => {
      const calls: string[] = [];
      let started!: () => void;
      const running = new Promise<void>((r) => (started = r));
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      let finished!: () => void;
      const done = new Promise<void>((r) => (finished = r));
      const server = await start({}, calls, { started, gate: gate.then(() => void setImmediate(finished)) });
      const a = new RmcpPlusConsole(server.port, 'admin', 'password');
      const unhandled: unknown[] = [];
      const onUnhandled = (e: unknown) => unhandled.push(e);
      process.on('unhandledRejection', onUnhandled);
      try {
        expect((await a.handshake()).established).to.equal(true);
        a.peer.send(a.wrap(lanRequest(0x30, 0x20))); // 'slow': answers when the gate opens
        await running;
        expect(calls).to.include('slow');
        await server.close();
        release(); // the handler finishes after the close
        await done;
        await new Promise((r) => setImmediate(r)); // let its late reply (and any rejection) surface
        expect(unhandled).to.deep.equal([]);
      } finally {
        process.off('unhandledRejection', onUnhandled);
        a.close();
        await server.close();
      }
    });

    it('expires idle sessions', async () => {
      const clock = manualClock();
      const server = await start({ sessionTimeoutSeconds: 0.8, now: clock.now });
      const a = new RmcpPlusConsole(server.port, 'admin', 'password');
      try {
        await a.handshake();
        expect((await a.request(0x30, 0x01))?.cc).to.equal(0);
        // Activity keeps it alive: 4 x 0.3 s on the server's clock, longer than the timeout in all...
        for (let i = 0; i < 4; i++) {
          clock.advance(300);
          expect((await a.request(0x30, 0x01))?.cc, `request ${i} after 0.3 s`).to.equal(0);
        }
        // ...silence longer than the timeout ends it: no answer for the expired session.
        clock.advance(801);
        expect(await a.request(0x30, 0x01, [], 300)).to.equal(undefined);
      } finally {
        a.close();
        await server.close();
      }
    });
  });
});

describe('ipmi 1.5 sessions (pure node)', () => {
  it('MD5 and (with allowInsecure) straight-password sessions: window, replay, privilege, close', async () => {
    const server = await start({ lockoutPolicy: { threshold: 0 }, allowInsecure: true });
    try {
      for (const authType of [2, 4]) {
        const v = new V15Console(server.port, 'operator', 'op-secret', authType, 3);
        expect(await v.activate()).to.equal(0);
        const pkt = v.wrap(lanRequest(0x30, 0x01, [5]));
        const first = preSessionResponse((await v.peer.exchange(pkt))!);
        expect(first?.cc).to.equal(0);
        expect(first!.data.toString('hex')).to.equal('0205');
        expect(await v.peer.exchange(pkt, 300)).to.equal(undefined); // replay
        expect((await v.request(6, 0x3b, [3]))?.cc).to.equal(0);
        expect((await v.request(0x30, 0x02))?.cc).to.equal(0);
        expect(await v.peer.exchange(v.wrap(lanRequest(0x30, 0x01), v.seq + 20), 300)).to.equal(undefined); // beyond +8
        const info = await v.request(6, 0x3d, [0]);
        expect(info!.data[5]).to.equal(0x01); // IPMI 1.5, channel 1
        const id = Buffer.alloc(4);
        id.writeUInt32LE(v.sessionId);
        expect((await v.request(6, 0x3c, [...id]))?.cc).to.equal(0);
        expect(await v.request(0x30, 0x01, [], 300)).to.equal(undefined);
        v.close();
      }
    } finally {
      await server.close();
    }
  });

  it('refuses a privilege above the user role (0x86), an unknown user (0x81) and a wrong password', async () => {
    const server = await start({ lockoutPolicy: { threshold: 0 } });
    try {
      const high = new V15Console(server.port, 'viewer', 'viewer-pw', 2, 4);
      expect(await high.activate()).to.equal(0x86);
      const who = new V15Console(server.port, 'nobody', 'x', 2, 2);
      expect(await who.activate()).to.equal(0x81);
      const bad = new V15Console(server.port, 'admin', 'wrong', 2, 4);
      expect(await bad.activate()).to.equal(0xff);
      [high, who, bad].forEach((c) => c.close());
    } finally {
      await server.close();
    }
  });
});
