import { expect } from 'chai';
import { SimulatedMachine } from '../../src/backend/simulator/simulator.js';
import { Writable } from 'node:stream';
import { createLogger, nullLogger } from '../../src/common/logger.js';
import { encodeAsfPing } from '../../src/ipmi/codec/index.js';
import { startIpmiServer } from '../../src/ipmi/server.js';
import { ADMIN, startTestAgent, type TestAgent } from '../helpers/agent.js';
import { UdpPeer, ipmitool, run } from './session-client.js';

describe('ipmi server with real clients @e2e', function () {
  this.timeout(30000);
  let t: TestAgent;
  beforeEach(async () => {
    t = await startTestAgent({ ipmi: { port: 0, lockoutPolicy: { threshold: 0 } } });
  });
  afterEach(() => t.close());

  for (const suite of ['3', '17']) {
    it(`ipmitool lanplus -C ${suite}: session info and power on change the simulator`, async () => {
      const info = await ipmitool(t.ipmiPort, ['-I', 'lanplus', '-C', suite, 'session', 'info', 'active']);
      expect(info.code, info.out).to.equal(0);
      expect(info.out).to.match(/session type\s+: IPMIv2\/RMCP\+/);
      expect(info.out).to.match(/privilege level\s+: ADMINISTRATOR/);
      expect(info.out).to.match(/console ip\s+: 127\.0\.0\.1/);
      expect(await t.sim.getPowerState()).to.equal('Off');
      const on = await ipmitool(t.ipmiPort, ['-I', 'lanplus', '-C', suite, 'power', 'on']);
      expect(on.code, on.out).to.equal(0);
      expect(await t.sim.getPowerState()).to.equal('On');
      const st = await ipmitool(t.ipmiPort, ['-I', 'lanplus', '-C', suite, 'power', 'status']);
      expect(st.out).to.contain('Chassis Power is on');
    });
  }

  it('ipmitool lanplus without -C queries 0x54 sessionless and picks suite 17 fast', async () => {
    // one attempt per message (-R 1): every step, the sessionless 0x54 query included, was answered the first time
    const r = await ipmitool(t.ipmiPort, ['-R', '1', '-N', '10', '-I', 'lanplus', '-v', 'power', 'status']);
    expect(r.code, r.out).to.equal(0);
    expect(r.out).to.contain('Using best available cipher suite 17');
    expect(r.out).to.contain('Chassis Power is off');
  });

  it('ipmitool -I lan (IPMI 1.5, MD5) completes a session; -A PASSWORD only with allowInsecure', async () => {
    const md5 = await ipmitool(t.ipmiPort, ['-I', 'lan', 'power', 'on']);
    expect(md5.code, md5.out).to.equal(0);
    expect(await t.sim.getPowerState()).to.equal('On');
    const info = await ipmitool(t.ipmiPort, ['-I', 'lan', 'session', 'info', 'active']);
    expect(info.out).to.match(/session type\s+: IPMIv1\.5/);
    // Straight password (the password in clear in every packet) is off unless allowInsecure.
    const refused = await ipmitool(t.ipmiPort, ['-I', 'lan', '-A', 'PASSWORD', 'power', 'status']);
    expect(refused.code, refused.out).to.not.equal(0);
    const insecure = await startTestAgent({ redfish: false, ipmi: { port: 0, allowInsecure: true, lockoutPolicy: { threshold: 0 } } });
    try {
      const pw = await ipmitool(insecure.ipmiPort, ['-I', 'lan', '-A', 'PASSWORD', 'power', 'status']);
      expect(pw.code, pw.out).to.equal(0);
      expect(pw.out).to.contain('Chassis Power is off');
    } finally {
      await insecure.close();
    }
  });

  it('freeipmi ipmipower: IPMI 1.5 by default and -D LAN_2_0 (suites 3 and 17)', async () => {
    const host = `127.0.0.1:${t.ipmiPort}`;
    const v15 = await run('ipmipower', ['-h', host, '-u', 'admin', '-p', 'password', '--stat']);
    expect(v15.out.trim()).to.equal('127.0.0.1: off');
    const on = await run('ipmipower', ['-h', host, '-u', 'admin', '-p', 'password', '-D', 'LAN_2_0', '--on']);
    expect(on.out.trim()).to.equal('127.0.0.1: ok');
    expect(await t.sim.getPowerState()).to.equal('On');
    const v2 = await run('ipmipower', ['-h', host, '-u', 'admin', '-p', 'password', '-D', 'LAN_2_0', '-I', '17', '--stat']);
    expect(v2.out.trim()).to.equal('127.0.0.1: on');
  });

  it('pyghmi client (proposes suite 17 first) gets a session and powers on', async () => {
    const script = [
      'import sys',
      'from pyghmi.ipmi.command import Command',
      "c = Command(bmc='127.0.0.1', userid='admin', password='password', port=int(sys.argv[1]), keepalive=False)",
      "print(c.get_power()['powerstate'])",
      "c.set_power('on', wait=False)",
      "print(c.get_power()['powerstate'])",
    ].join('\n');
    const r = await run('/usr/bin/python3', ['-c', script, String(t.ipmiPort)]);
    expect(r.code, r.out).to.equal(0);
    expect(r.out.trim().split('\n')).to.deep.equal(['off', 'on']);
    expect(await t.sim.getPowerState()).to.equal('On');
  });

  it('an operator may power on with -L OPERATOR', async () => {
    const r = await ipmitool(t.ipmiPort, ['-I', 'lanplus', '-L', 'OPERATOR', 'power', 'on'], ['-U', 'operator', '-P', 'op-secret']);
    expect(r.code, r.out).to.equal(0);
    expect(await t.sim.getPowerState()).to.equal('On');
  });
});

describe('ipmi server options with real clients @e2e', function () {
  this.timeout(30000);

  it('listens on ::1 (udp6) and serves ipmitool there', async () => {
    const sim = new SimulatedMachine({ powerOnDelayMs: 0 });
    const s = await startIpmiServer({ address: '::1', port: 0, machine: sim, users: [ADMIN], logger: nullLogger() });
    try {
      expect(s.url).to.equal(`udp://[::1]:${s.port}`);
      const r = await run('ipmitool', ['-I', 'lanplus', '-H', '::1', '-p', String(s.port), '-U', 'admin', '-P', 'password', 'power', 'on']);
      expect(r.code, r.out).to.equal(0);
      expect(await sim.getPowerState()).to.equal('On');
    } finally {
      await s.close();
    }
  });

  it("logs a datagram's lines with its request id and sender, and builds no logger for a datagram that logs nothing", async () => {
    const lines: Array<Record<string, unknown>> = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
        cb();
      },
    });
    const log = createLogger('debug', sink);
    const children: unknown[] = [];
    const child = log.child.bind(log);
    log.child = ((b: Record<string, unknown>) => (children.push(b), child(b))) as typeof log.child;
    const sim = new SimulatedMachine({ powerOnDelayMs: 0 });
    const s = await startIpmiServer({ address: '127.0.0.1', port: 0, machine: sim, users: [ADMIN], logger: log });
    const p = new UdpPeer(s.port);
    try {
      await p.ready();
      const before = children.length;
      // datagrams are handled in order: once the ping's pong is back, the ones before it were handled
      const pong = async () => expect(await p.exchange(encodeAsfPing(7), 10_000)).to.not.equal(undefined);
      // two malformed datagrams: each is dropped with a debug line of its own; the ping logs nothing
      p.send(Buffer.from([0x06, 0x00, 0xff, 0x07, 0x06]));
      p.send(Buffer.from([0x05, 0x00, 0xff, 0x07]));
      await pong();
      const dropped = lines.filter((l) => l.msg === 'datagram dropped');
      expect(dropped).to.have.length(2);
      for (const l of dropped) {
        expect(l.rid).to.be.a('string');
        expect(l.remote).to.equal(`127.0.0.1:${p.socket.address().port}`);
      }
      expect(dropped[0]!.rid).not.to.equal(dropped[1]!.rid);
      expect(children.length - before).to.equal(2);
      // at info level a dropped datagram logs nothing and makes no child logger
      log.level = 'info';
      p.send(Buffer.from([0x05, 0x00, 0xff, 0x07]));
      await pong();
      expect(lines.filter((l) => l.msg === 'datagram dropped')).to.have.length(2);
      expect(children.length - before).to.equal(2);
    } finally {
      p.close();
      await s.close();
    }
  });

  it('allowInsecure accepts cipher suite 0 and IPMI 1.5 auth type NONE', async () => {
    const t = await startTestAgent({ ipmi: { port: 0, allowInsecure: true } });
    try {
      const c0 = await ipmitool(t.ipmiPort, ['-I', 'lanplus', '-C', '0', 'power', 'status']);
      expect(c0.code, c0.out).to.equal(0);
      expect(c0.out).to.contain('Chassis Power is off');
      const none = await ipmitool(t.ipmiPort, ['-I', 'lan', '-A', 'NONE', 'power', 'status']);
      expect(none.code, none.out).to.equal(0);
    } finally {
      await t.close();
    }
  });
});
