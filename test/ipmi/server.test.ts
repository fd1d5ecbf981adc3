import { expect } from 'chai';
import { startTestAgent, type TestAgent } from '../helpers/agent.js';
import { ipmitool, run } from './session-client.js';

describe('ipmi server with real clients @e2e', function () {
  this.timeout(30000);
  let t: TestAgent;
  beforeEach(async () => {
    t = await startTestAgent({ ipmi: { port: 0, loginFailureLimit: 1000 } });
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
    const r = await ipmitool(t.ipmiPort, ['-I', 'lanplus', '-v', 'power', 'status']);
    expect(r.code, r.out).to.equal(0);
    expect(r.out).to.contain('Using best available cipher suite 17');
    expect(r.out).to.contain('Chassis Power is off');
    expect(r.ms).to.be.lessThan(3000);
  });

  it('ipmitool -I lan (IPMI 1.5, MD5) and -A PASSWORD complete a session', async () => {
    const md5 = await ipmitool(t.ipmiPort, ['-I', 'lan', 'power', 'on']);
    expect(md5.code, md5.out).to.equal(0);
    expect(await t.sim.getPowerState()).to.equal('On');
    const info = await ipmitool(t.ipmiPort, ['-I', 'lan', 'session', 'info', 'active']);
    expect(info.out).to.match(/session type\s+: IPMIv1\.5/);
    const pw = await ipmitool(t.ipmiPort, ['-I', 'lan', '-A', 'PASSWORD', 'power', 'status']);
    expect(pw.code, pw.out).to.equal(0);
    expect(pw.out).to.contain('Chassis Power is on');
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

  it('an operator may power on with -L OPERATOR', async () => {
    const r = await ipmitool(t.ipmiPort, ['-I', 'lanplus', '-L', 'OPERATOR', 'power', 'on'], ['-U', 'operator', '-P', 'op-secret']);
    expect(r.code, r.out).to.equal(0);
    expect(await t.sim.getPowerState()).to.equal('On');
  });
});
