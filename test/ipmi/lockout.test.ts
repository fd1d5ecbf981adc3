/**
 * IPMI side of the shared login lockout (src/accounts/lockout.ts) and of the handshake limits,
 * driven through the datagram engine with made-up source addresses and an injected clock (no
 * sockets carry the traffic, no wall-clock waits).
 */
import { expect } from 'chai';
import { LoginLockout, type LockoutPolicy } from '../../src/accounts/lockout.js';
import { SimulatedMachine } from '../../src/backend/simulator/simulator.js';
import { nullLogger } from '../../src/common/logger.js';
import {
  AuthType,
  PayloadType,
  RmcpClass,
  decodeOpenSessionResponse,
  decodeRakp2,
  decodeRmcpPlus,
  encodeOpenSessionRequest,
  encodeRakp1,
  encodeRmcpHeader,
  encodeRmcpPlus,
} from '../../src/ipmi/codec/index.js';
import { buildCommandTable } from '../../src/ipmi/commands/index.js';
import { IpmiEngine } from '../../src/ipmi/session/engine.js';
import { CC } from '../../src/ipmi/types.js';
import { RmcpPlusConsole, V15Console, lanRequest, preSessionResponse, v15PreSession } from './session-client.js';

const USERS = [
  { username: 'admin', password: 'Owner-pw-1', role: 'Administrator' as const },
  { username: 'viewer', password: 'viewer-pw', role: 'ReadOnly' as const },
];
const POLICY: LockoutPolicy = { threshold: 3, durationSeconds: 60, counterResetAfterSeconds: 60 };
const log = nullLogger();

interface Rig {
  engine: IpmiEngine;
  lockout: LoginLockout;
  clock: { t: number };
  rmcp(address: string, user: string, password: string): RmcpPlusConsole;
  v15(address: string, user: string, password: string, authType?: number): V15Console;
  send(address: string, datagram: Buffer): Promise<Buffer | undefined>;
  close(): void;
}

function rig(opts: { maxSessions?: number; allowInsecure?: boolean; policy?: LockoutPolicy } = {}): Rig {
  const clock = { t: 1_000_000 };
  const now = () => clock.t;
  const lockout = new LoginLockout(opts.policy ?? POLICY, now);
  const engine = new IpmiEngine({
    machine: new SimulatedMachine({ powerOnDelayMs: 0, powerOffDelayMs: 0 }),
    users: USERS,
    logger: log,
    commands: buildCommandTable(),
    allowInsecure: opts.allowInsecure ?? false,
    channel: 1,
    guid: Buffer.alloc(16, 7),
    now,
    maxSessions: opts.maxSessions ?? 8,
    idleTimeoutMs: 60_000,
    handshakeTimeoutMs: 5_000,
    lockout,
  });
  const consoles: { close(): void }[] = [];
  let port = 40000;
  const send = (address: string, b: Buffer) => engine.handle(b, { address, port: 623 }, log);
  const via = <T extends { peer: { exchange: unknown; ready: unknown }; close(): void }>(c: T, address: string): T => {
    const p = port++;
    c.peer.exchange = async (b: Buffer) => engine.handle(b, { address, port: p }, log);
    c.peer.ready = async () => undefined;
    consoles.push(c);
    return c;
  };
  return {
    engine,
    lockout,
    clock,
    rmcp: (address, user, password) => via(new RmcpPlusConsole(1, user, password, 3), address),
    v15: (address, user, password, authType = AuthType.MD5) => via(new V15Console(1, user, password, authType, 4), address),
    send,
    close: () => {
      for (const c of consoles.splice(0)) {
        try {
          c.close();
        } catch {
          // closed already by the test
        }
      }
    },
  };
}

const pre = (payloadType: number, payload: Buffer) =>
  Buffer.concat([encodeRmcpHeader(RmcpClass.IPMI), encodeRmcpPlus({ payloadType, encrypted: false, authenticated: false, sessionId: 0, sequence: 0, payload })]);
const payloadOf = (d: Buffer) => {
  const p = decodeRmcpPlus(d.subarray(4));
  if (!p.ok) throw new Error(p.message);
  return p.value.payload;
};
const openSession = (consoleId: number) =>
  pre(PayloadType.OPEN_SESSION_REQUEST, encodeOpenSessionRequest({ tag: 1, maxPrivilege: 0, consoleSessionId: consoleId, auth: 1, integrity: 1, conf: 1 }));
const openStatus = (d: Buffer | undefined) => {
  const o = decodeOpenSessionResponse(payloadOf(d!));
  if (!o.ok) throw new Error(o.message);
  return o.value;
};

describe('ipmi login lockout (shared module) and handshake limits', () => {
  let r: Rig;
  afterEach(() => r.close());

  it('locks the account/source pair after threshold bad RAKP3s; the owner from another source still logs in', async () => {
    r = rig();
    for (let i = 0; i < POLICY.threshold; i++) {
      expect((await r.rmcp('10.0.0.66', 'admin', `guess-${i}`).handshake()).rakp4Status).to.equal(0x0f);
    }
    // The attacker's source now gets no RAKP2 (no password hash) even with the right password.
    const locked = await r.rmcp('10.0.0.66', 'admin', 'Owner-pw-1').handshake();
    expect(locked.rakp2Status).to.equal(0x01);
    // Same account, clean source: fine.
    expect((await r.rmcp('10.0.0.7', 'admin', 'Owner-pw-1').handshake()).established).to.equal(true);
    // Same source, other account: not blocked by the admin pair's lock.
    expect((await r.rmcp('10.0.0.66', 'viewer', 'viewer-pw').handshake()).rakp2Status).to.equal(0x0a); // role too high for viewer…
    const v = r.rmcp('10.0.0.66', 'viewer', 'viewer-pw');
    Object.assign(v, { role: 0x12 }); // …so ask for USER: the handshake completes
    expect((await v.handshake()).established).to.equal(true);
  });

  it('SNAT: owner and attacker share one address; the owner waits at most AccountLockoutDuration', async () => {
    r = rig();
    for (let i = 0; i < POLICY.threshold; i++) await r.rmcp('192.0.2.1', 'admin', `guess-${i}`).handshake();
    expect((await r.rmcp('192.0.2.1', 'admin', 'Owner-pw-1').handshake()).rakp2Status).to.equal(0x01);
    r.clock.t += POLICY.durationSeconds * 1000 - 1;
    expect((await r.rmcp('192.0.2.1', 'admin', 'Owner-pw-1').handshake()).rakp2Status).to.equal(0x01);
    r.clock.t += 1;
    expect((await r.rmcp('192.0.2.1', 'admin', 'Owner-pw-1').handshake()).established).to.equal(true);
  });

  it('attempts during a lock neither count nor extend it', async () => {
    r = rig();
    for (let i = 0; i < POLICY.threshold; i++) await r.rmcp('192.0.2.9', 'admin', `guess-${i}`).handshake();
    for (let i = 0; i < 20; i++) {
      r.clock.t += 1000;
      await r.rmcp('192.0.2.9', 'admin', 'more-guesses').handshake();
    }
    r.clock.t += POLICY.durationSeconds * 1000 - 20_000;
    expect((await r.rmcp('192.0.2.9', 'admin', 'Owner-pw-1').handshake()).established).to.equal(true);
  });

  it('abandoned handshakes (stopped after RAKP2) are not failures', async () => {
    r = rig();
    for (let i = 0; i < 10; i++) {
      expect((await r.rmcp('10.1.1.1', 'admin', 'Owner-pw-1').handshake(undefined, undefined, true)).rakp2Status).to.equal(0);
      r.clock.t += 6_000; // past the handshake timeout
      r.engine.sweep();
    }
    expect(r.lockout.tracked).to.deep.equal({ pairs: 0, sources: 0 });
    expect((await r.rmcp('10.1.1.1', 'admin', 'Owner-pw-1').handshake()).established).to.equal(true);
  });

  it('an unknown user counts for the source only; spraying names locks that source, not others', async () => {
    r = rig();
    for (let i = 0; i < POLICY.threshold * 4; i++) {
      expect((await r.rmcp('10.2.2.2', `nobody${i}`, 'x').handshake()).rakp2Status).to.equal(0x0d);
    }
    expect(openStatus(await r.send('10.2.2.2', openSession(77))).status).to.equal(0x01); // source locked
    expect((await r.rmcp('10.2.2.3', 'admin', 'Owner-pw-1').handshake()).established).to.equal(true);
  });

  it('IPMI 1.5: a bad Activate Session auth code counts; the locked pair gets Node Busy at Get Session Challenge', async () => {
    r = rig();
    for (let i = 0; i < POLICY.threshold; i++) expect(await r.v15('10.3.3.3', 'admin', `guess-${i}`).activate()).to.equal(0xff);
    expect(await r.v15('10.3.3.3', 'admin', 'Owner-pw-1').activate()).to.equal(CC.NODE_BUSY);
    expect(await r.v15('10.3.3.4', 'admin', 'Owner-pw-1').activate()).to.equal(0);
  });

  it('one lockout for both protocols: RMCP+ failures lock IPMI 1.5 for the same pair', async () => {
    r = rig();
    for (let i = 0; i < POLICY.threshold; i++) await r.rmcp('10.4.4.4', 'admin', `guess-${i}`).handshake();
    expect(await r.v15('10.4.4.4', 'admin', 'Owner-pw-1').activate()).to.equal(CC.NODE_BUSY);
    expect(r.lockout.check('10.4.4.4', 'admin')?.scope).to.equal('account');
  });

  it('Open Session flood: answered "insufficient resources" (0x01), nothing evicted, the established session keeps working', async () => {
    r = rig({ maxSessions: 4 });
    const owner = r.rmcp('10.9.9.9', 'admin', 'Owner-pw-1');
    expect((await owner.handshake()).established).to.equal(true);
    // A second client half-way through its handshake when the flood starts.
    const slowOpen = openStatus(await r.send('10.9.9.8', openSession(5)));
    expect(slowOpen.status).to.equal(0);
    // The half-open budget (maxSessions 4, one taken above) fills: 0x01 ("insufficient resources").
    const single = [];
    for (let i = 0; i < 10; i++) single.push(openStatus(await r.send('203.0.113.5', openSession(100 + i))).status);
    expect(single.filter((s) => s === 0).length).to.be.at.most(4);
    expect(single.slice(-5)).to.deep.equal([1, 1, 1, 1, 1]);
    // Spoofed sources: the half-open budget (maxSessions) fills, then 0x01 for everyone new.
    const statuses = [];
    for (let i = 0; i < 200; i++) statuses.push(openStatus(await r.send(`198.51.${i >> 8}.${i & 0xff}`, openSession(1000 + i))).status);
    expect(statuses.slice(-100).every((s) => s === 1)).to.equal(true);
    // The established session still answers, and the half-open handshake from before the flood finishes.
    expect((await owner.request(0x00, 0x01))?.cc).to.equal(0);
    const rakp2 = decodeRakp2(
      payloadOf(
        (await r.send('10.9.9.8', pre(PayloadType.RAKP1, encodeRakp1({ tag: 2, bmcSessionId: slowOpen.bmcSessionId, rm: Buffer.alloc(16, 1), role: 0x14, username: Buffer.from('admin') }))))!,
      ),
    );
    expect(rakp2.ok && rakp2.value.status).to.equal(0);
    // Once the flood's handshakes time out, newcomers get in again.
    r.clock.t += 6_000;
    expect((await r.rmcp('10.9.9.7', 'admin', 'Owner-pw-1').handshake()).established).to.equal(true);
  });

  it('one source holds at most 4 half-open handshakes: its next Open Sessions get no answer and take no slot, so its console retries into a free one', async () => {
    r = rig();
    const got: Array<number | 'none'> = [];
    for (let i = 0; i < 10; i++) {
      const answer = await r.send('203.0.113.5', openSession(100 + i));
      got.push(answer === undefined ? 'none' : openStatus(answer).status);
    }
    expect(got).to.deep.equal([0, 0, 0, 0, 'none', 'none', 'none', 'none', 'none', 'none']);
    expect(r.engine.ctx.table.size).to.equal(4);
    // another source is not held up by it
    expect(openStatus(await r.send('203.0.113.6', openSession(7))).status).to.equal(0);
    // once the source's handshakes expire, the console's retransmission gets a handshake
    r.clock.t += 6_000;
    expect(openStatus(await r.send('203.0.113.5', openSession(109))).status).to.equal(0);
    expect((await r.rmcp('203.0.113.5', 'admin', 'Owner-pw-1').handshake()).established).to.equal(true);
  });

  it('a retransmitted RAKP1 gets the very same RAKP2 (same Rc, same auth code); a different Rm starts over', async () => {
    r = rig();
    const open = openStatus(await r.send('10.5.5.5', openSession(42)));
    const rakp1 = (rm: Buffer) =>
      pre(PayloadType.RAKP1, encodeRakp1({ tag: 2, bmcSessionId: open.bmcSessionId, rm, role: 0x14, username: Buffer.from('admin') }));
    const rm = Buffer.alloc(16, 0xab);
    const first = (await r.send('10.5.5.5', rakp1(rm)))!;
    const again = (await r.send('10.5.5.5', rakp1(rm)))!;
    expect(again.toString('hex')).to.equal(first.toString('hex'));
    const d = decodeRakp2(payloadOf(first));
    expect(d.ok && d.value.status).to.equal(0);
    expect(d.ok && d.value.authCode.length).to.equal(20);
    const other = decodeRakp2(payloadOf((await r.send('10.5.5.5', rakp1(Buffer.alloc(16, 0xcd))))!));
    expect(other.ok && d.ok && other.value.rc.equals(d.value.rc)).to.equal(false);
    // From another source the handshake is not found at all.
    const foreign = decodeRakp2(payloadOf((await r.send('10.5.5.6', rakp1(rm)))!));
    expect(foreign.ok && foreign.value.status).to.equal(0x02);
  });

  it('a retransmitted Open Session (same source, port and console id) gets the same handshake, not another slot', async () => {
    r = rig();
    const first = openStatus(await r.send('10.7.7.7', openSession(99)));
    for (let i = 0; i < 10; i++) {
      const again = openStatus(await r.send('10.7.7.7', openSession(99)));
      expect([again.status, again.bmcSessionId]).to.deep.equal([0, first.bmcSessionId]);
    }
    expect(r.engine.ctx.table.size).to.equal(1);
    // Another console id from the same source is another handshake (up to the per-source bound).
    expect(openStatus(await r.send('10.7.7.7', openSession(100))).bmcSessionId).to.not.equal(first.bmcSessionId);
  });

  it('straight-password auth (v1.5 type 4) is refused and not advertised by default, accepted with allowInsecure', async () => {
    for (const allowInsecure of [false, true]) {
      r = rig({ allowInsecure });
      const caps = preSessionResponse((await r.send('10.6.6.6', v15PreSession(lanRequest(6, 0x38, [0x0e, 0x04]))))!);
      expect(caps!.data[1]! & 0x10).to.equal(allowInsecure ? 0x10 : 0);
      expect(caps!.data[1]! & 0x04).to.equal(0x04); // MD5 stays on
      const v = r.v15('10.6.6.6', 'admin', 'Owner-pw-1', AuthType.PASSWORD);
      expect(await v.activate()).to.equal(allowInsecure ? 0 : CC.INVALID_DATA_FIELD);
      if (allowInsecure) expect((await v.request(0x00, 0x01))?.cc).to.equal(0);
      expect(await r.v15('10.6.6.6', 'admin', 'Owner-pw-1', AuthType.MD5).activate()).to.equal(0);
      r.close();
    }
  });
});
