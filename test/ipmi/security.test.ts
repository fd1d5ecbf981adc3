import { expect } from 'chai';
import { createLogger } from '../../src/common/logger.js';
import { LoginLockout } from '../../src/accounts/lockout.js';
import { startIpmiServer } from '../../src/ipmi/server.js';
import { SimulatedMachine } from '../../src/backend/simulator/simulator.js';
import { startTestAgent, type TestAgent } from '../helpers/agent.js';
import { RmcpPlusConsole, UdpPeer, ipmitool, lanRequest, preSessionResponse, run, v15PreSession } from './session-client.js';
import { lineSink } from '../helpers/log.js';

describe('ipmi security with real clients @e2e', function () {
  this.timeout(30000);
  let t: TestAgent;
  beforeEach(async () => {
    t = await startTestAgent({ ipmi: { port: 0, lockoutPolicy: { threshold: 0 } } });
  });
  afterEach(() => t.close());

  /**
   * `once`: ipmitool makes a single attempt (-R 1) with a long timeout, so the expected error text
   * proves the agent answered the first try instead of dropping it (no wall-clock bound needed).
   */
  const refused = async (args: string[], creds: string[], expectText?: RegExp, once = false) => {
    const r = await ipmitool(t.ipmiPort, once ? ['-R', '1', '-N', '10', ...args] : args, creds);
    expect(r.code, r.out).to.not.equal(0);
    if (expectText) expect(r.out).to.match(expectText);
    expect(await t.sim.getPowerState()).to.equal('Off');
    return r;
  };

  it('wrong password (RMCP+): refused at once, no power change', async () => {
    await refused(['-I', 'lanplus', '-C', '3', 'power', 'on'], ['-U', 'admin', '-P', 'nope'], /Unable to establish IPMI v2/);
    const vv = await ipmitool(t.ipmiPort, ['-R', '1', '-N', '10', '-I', 'lanplus', '-C', '17', '-vv', 'power', 'on'], ['-U', 'admin', '-P', 'nope']);
    expect(vv.out).to.contain('RAKP 2 HMAC is invalid'); // ipmitool checks our RAKP2 against its password
  });

  it('unknown user (RMCP+): RAKP2 unauthorized name at once', async () => {
    await refused(['-I', 'lanplus', '-C', '3', '-vv', 'power', 'on'], ['-U', 'mallory', '-P', 'password'], /unauthorized name/i, true);
  });

  it('cipher suite 0 is refused without allowInsecure', async () => {
    await refused(['-I', 'lanplus', '-C', '0', 'power', 'on'], ['-U', 'admin', '-P', 'password'], /invalid authentication algorithm/);
  });

  it('-L USER session cannot send Chassis Control (raw 00 02 01)', async () => {
    await refused(['-I', 'lanplus', '-L', 'USER', 'raw', '0x00', '0x02', '0x01'], ['-U', 'admin', '-P', 'password'], /Insufficient privilege/i);
  });

  it('a ReadOnly user can neither ask for ADMINISTRATOR nor power on as USER', async () => {
    await refused(['-I', 'lanplus', 'power', 'on'], ['-U', 'viewer', '-P', 'viewer-pw'], /Unable to establish IPMI v2/);
    await refused(['-I', 'lanplus', '-L', 'USER', 'power', 'on'], ['-U', 'viewer', '-P', 'viewer-pw']);
    const st = await ipmitool(t.ipmiPort, ['-I', 'lanplus', '-L', 'USER', 'power', 'status'], ['-U', 'viewer', '-P', 'viewer-pw']);
    expect(st.out).to.contain('Chassis Power is off');
  });

  it('IPMI 1.5: wrong password and unknown user fail fast, no power change', async () => {
    await refused(['-I', 'lan', 'power', 'on'], ['-U', 'admin', '-P', 'nope'], /Activate Session error/, true);
    await refused(['-I', 'lan', 'power', 'on'], ['-U', 'mallory', '-P', 'password'], /Get Session Challenge command failed|Invalid user name/i);
  });

  it('freeipmi LAN_2_0 wrong password: "password invalid" at once', async () => {
    // Retransmission timeout = session timeout: one attempt only, so "password invalid" (not
    // "connection timeout") proves the first try was answered.
    const r = await run(
      'ipmipower',
      ['-h', `127.0.0.1:${t.ipmiPort}`, '-u', 'admin', '-p', 'nope', '-D', 'LAN_2_0', '--session-timeout=20000', '--retransmission-timeout=20000', '--on'],
      25000,
    );
    expect(r.out).to.contain('password invalid');
    expect(await t.sim.getPowerState()).to.equal('Off');
  });
});

describe('ipmi security (pure node)', () => {
  const machine = () => new SimulatedMachine({ powerOnDelayMs: 0, powerOffDelayMs: 0 });
  const users = [{ username: 'admin', password: 'S3cret-pw!', role: 'Administrator' as const }];

  // Lockout (per account and source, shared with Redfish) and handshake limits: lockout.test.ts.
  it('ipmitool: lanplus wrong passwords are abandoned handshakes (not counted); v1.5 wrong passwords lock that account for this source, for RMCP+ too, not other accounts, until the duration ends @e2e', async function () {
    this.timeout(60000);
    const clock = { t: Date.now() };
    const lockout = new LoginLockout({ threshold: 3, durationSeconds: 60, counterResetAfterSeconds: 60 }, () => clock.t);
    const server = await startIpmiServer({
      address: '127.0.0.1', port: 0, machine: machine(), users: [...users, { username: 'viewer', password: 'viewer-pw', role: 'ReadOnly' }],
      logger: createLogger('silent'), lockout, now: () => clock.t,
    });
    // -N 10: every answer here comes at once (refusals included); a short -N only bites when the
    // core is slow, and with -I lan a pong later than -N is misread (docs/ipmi.md "Clients")
    const tool = (iface: string, user: string, pw: string, extra: string[] = []) =>
      ipmitool(server.port, ['-I', iface, '-N', '10', '-R', '1', ...extra, 'power', 'status'], ['-U', user, '-P', pw]);
    try {
      // ipmitool checks our RAKP2 itself and gives up without a RAKP3: nothing is counted.
      for (let i = 0; i < 3; i++) expect((await tool('lanplus', 'admin', `guess-${i}`)).code).to.not.equal(0);
      expect(lockout.tracked).to.deep.equal({ pairs: 0, sources: 0 });
      clock.t += 6_000; // the abandoned handshakes expire
      // IPMI 1.5: a wrong Activate Session auth code is a real failure.
      for (let i = 0; i < 3; i++) expect((await tool('lan', 'admin', `guess-${i}`)).out).to.match(/Activate Session error/);
      const locked = await tool('lanplus', 'admin', 'S3cret-pw!', ['-vv']);
      expect(locked.code, locked.out).to.not.equal(0);
      expect(locked.out).to.match(/insufficient resources/i);
      expect((await tool('lan', 'admin', 'S3cret-pw!')).code).to.not.equal(0); // Get Session Challenge: Node Busy
      expect((await tool('lanplus', 'viewer', 'viewer-pw', ['-L', 'USER'])).out).to.contain('Chassis Power is off');
      clock.t += 60_000;
      expect((await tool('lanplus', 'admin', 'S3cret-pw!')).out).to.contain('Chassis Power is off');
    } finally {
      await server.close();
    }
  });

  it('does not advertise or accept auth type NONE unless allowInsecure', async () => {
    for (const allowInsecure of [false, true]) {
      const server = await startIpmiServer({ address: '127.0.0.1', port: 0, machine: machine(), users, logger: createLogger('silent'), allowInsecure });
      const p = new UdpPeer(server.port);
      await p.ready();
      const caps = preSessionResponse((await p.exchange(v15PreSession(lanRequest(6, 0x38, [0x8e, 0x04]))))!);
      expect(caps!.data[1]! & 0x01).to.equal(allowInsecure ? 1 : 0);
      const name = Buffer.alloc(16);
      name.write('admin');
      const ch = preSessionResponse((await p.exchange(v15PreSession(lanRequest(6, 0x39, [0x00, ...name]))))!);
      expect(ch!.cc).to.equal(allowInsecure ? 0 : 0xcc);
      const suite0 = new RmcpPlusConsole(server.port, 'admin', 'S3cret-pw!');
      const h = await suite0.handshake({ auth: 0, integrity: 0, conf: 0 });
      expect(h.openStatus).to.equal(allowInsecure ? 0 : 0x04);
      suite0.close();
      p.close();
      await server.close();
    }
  });

  it('never writes passwords or keys to the log, even at debug level', async () => {
    const lines: string[] = [];
    const sink = lineSink(lines);
    const server = await startIpmiServer({ address: '127.0.0.1', port: 0, machine: machine(), users, logger: createLogger('debug', sink) });
    try {
      const good = new RmcpPlusConsole(server.port, 'admin', 'S3cret-pw!');
      await good.handshake();
      await good.request(6, 0x01);
      const bad = new RmcpPlusConsole(server.port, 'admin', 'Guess-pw-42');
      await bad.handshake();
      const log = lines.join('');
      expect(log).to.contain('RMCP+ session established');
      expect(log).to.contain('bad RAKP3');
      for (const secret of ['S3cret-pw!', 'Guess-pw-42', good.k1!.toString('hex'), good.aesKey!.toString('hex')]) {
        expect(log).to.not.contain(secret);
      }
      good.close();
      bad.close();
    } finally {
      await server.close();
    }
  });
});
