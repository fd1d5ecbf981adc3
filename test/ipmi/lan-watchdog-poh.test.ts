/**
 * Get/Set LAN Configuration Parameters from the network model, the watchdog timer (fake clock)
 * and Get POH Counter, through the command table.
 */
import { expect } from 'chai';
import sinon from 'sinon';
import { NetworkModel, type NetworkSources } from '../../src/common/network.js';
import { SimulatedMachine } from '../../src/backend/simulator/simulator.js';
import type { Machine } from '../../src/backend/types.js';
import { nullLogger } from '../../src/common/logger.js';
import { buildCommandTable, commandKey } from '../../src/ipmi/commands/index.js';
import { LanCC, cipherSuitePrivileges, ipv6Bytes } from '../../src/ipmi/commands/lan.js';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pohFile, poweredOnMs, stopPowerOnHours, trackPowerOnHours, POH_SAVE_INTERVAL_MS, type PohPersistence } from '../../src/ipmi/commands/poh.js';
import { stopWatchdog, watchdogState } from '../../src/ipmi/commands/watchdog.js';
import { CC, Privilege, type CommandContext, type IpmiResponse, type SessionView } from '../../src/ipmi/types.js';

const SESSION: SessionView = {
  id: 0x1234,
  username: 'admin',
  privilege: Privilege.Administrator,
  maxPrivilege: Privilege.Administrator,
  authType: 'rmcp+',
  cipherSuite: 3,
  remote: '127.0.0.1:40000',
};

const MAC = '0a:58:0a:f4:01:11';
const sources: NetworkSources = {
  interfaces: () => ({
    eth0: [
      { address: '10.244.1.17', netmask: '255.255.255.0', family: 'IPv4', mac: MAC, internal: false, cidr: '10.244.1.17/24' },
      { address: 'fd00::11', netmask: 'ffff:ffff:ffff:ffff::', family: 'IPv6', mac: MAC, internal: false, cidr: 'fd00::11/64', scopeid: 0 },
    ],
  }),
  readFile: (p) =>
    ({
      '/proc/net/route': 'Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\nminus\neth0\t00000000\t0101F40A\t0003\t0\t0\t0\t00000000\t0\t0\t0',
    })[p],
  hostname: () => 'pod-1',
};
const ARP = 'IP address       HW type     Flags       HW address            Mask     Device\n10.244.1.1       0x1         0x2         ee:ee:ee:ee:ee:01     *        eth0\n';

const table = buildCommandTable({
  lan: {
    network: new NetworkModel({ listenAddress: '0.0.0.0', sources }),
    port: () => 623,
    lockoutPolicy: () => ({ threshold: 5, durationSeconds: 300, counterResetAfterSeconds: 60 }),
    readArp: () => ARP,
  },
});

function call(machine: Machine, netFn: number, cmd: number, data: number[] = [], session = SESSION): Promise<IpmiResponse> {
  const spec = table.get(commandKey(netFn, cmd));
  if (!spec) throw new Error(`no handler for ${netFn}/${cmd}`);
  const ctx: CommandContext = {
    req: { netFn, cmd, lun: 0, data: Buffer.from(data) },
    session,
    machine,
    users: [],
    logger: nullLogger(),
    channel: 1,
  };
  return Promise.resolve(spec.handler(ctx));
}
const hex = (r: IpmiResponse) => (r.data ?? Buffer.alloc(0)).toString('hex');
const getLan = (m: Machine, param: number, set = 0, ch = 1) => call(m, 0x0c, 0x02, [ch, param, set, 0]);

describe('IPMI LAN configuration, watchdog and POH', () => {
  let sim: SimulatedMachine;
  beforeEach(() => {
    sim = new SimulatedMachine({ name: 'vm1', powerOnDelayMs: 0, powerOffDelayMs: 0 });
  });
  afterEach(() => {
    stopWatchdog(sim);
    return sim.close();
  });

  describe('Get LAN Configuration Parameters', () => {
    it('answers revision 0x11 and the model: address, source, MAC, mask, gateway and its MAC', async () => {
      expect(hex(await getLan(sim, 3))).to.equal('110af40111');
      expect(hex(await getLan(sim, 4))).to.equal('1104'); // "other": the pod network assigned it
      expect(hex(await getLan(sim, 5))).to.equal('110a580af40111');
      expect(hex(await getLan(sim, 6))).to.equal('11ffffff00');
      expect(hex(await getLan(sim, 12))).to.equal('110af40101');
      expect(hex(await getLan(sim, 13))).to.equal('11eeeeeeeeee01');
      expect(hex(await getLan(sim, 14))).to.equal('1100000000');
      expect(hex(await getLan(sim, 8))).to.equal('116f02'); // 623 little-endian
    });

    it('channel 0x0E means this channel; another channel is an invalid field; bit 7 asks the revision only', async () => {
      expect(hex(await getLan(sim, 3, 0, 0x0e))).to.equal('110af40111');
      expect((await getLan(sim, 3, 0, 2)).cc).to.equal(CC.INVALID_DATA_FIELD);
      expect(hex(await getLan(sim, 3, 0, 0x81))).to.equal('11');
    });

    it('auth types (MD5 only unless insecure), VLAN disabled, cipher suites with ADMIN privilege, lockout knobs', async () => {
      expect(hex(await getLan(sim, 1))).to.equal('1104');
      expect(hex(await getLan(sim, 2))).to.equal('110404040400');
      expect(hex(await getLan(sim, 20))).to.equal('110000');
      // every implemented suite is listed (17, 3, 16, 2 offered; 15, 1, 0 turned off) ...
      expect(hex(await getLan(sim, 22))).to.equal('1107');
      expect(hex(await getLan(sim, 23))).to.equal('11' + '00' + '11031002' + '0f0100');
      // ... and parameter 24 has one nibble per suite id: 2 and 3 ADMINISTRATOR, 0, 1 and 15 unused
      expect(hex(await getLan(sim, 24))).to.equal('11' + '00' + '00' + '44' + '000000000000');
      // threshold 5, reset after 60 s = 6 × 10 s, lockout 300 s = 30 × 10 s
      expect(hex(await getLan(sim, 26))).to.equal('110005' + '0600' + '1e00');
    });

    it('parameter 24 is indexed by suite id (as ipmitool, freeipmi and OpenBMC read it), not by entry', () => {
      // with --ipmi-allow-insecure, 0, 1 and 15 are offered too: ids (0,1) (2,3) ADMINISTRATOR, 15 the high nibble of the last byte
      expect(cipherSuitePrivileges(true).toString('hex')).to.equal('00' + '44' + '44' + '0000000000' + '40');
      expect(cipherSuitePrivileges(false).toString('hex')).to.equal('00' + '00' + '44' + '000000000000');
    });

    it('IPv6: dual stack, one static entry with the pod address, out of range past it', async () => {
      expect(hex(await getLan(sim, 51))).to.equal('1102');
      expect(hex(await getLan(sim, 55))).to.equal('11010000');
      expect(hex(await getLan(sim, 56, 0))).to.equal('110080' + ipv6Bytes('fd00::11').toString('hex') + '4000');
      expect((await getLan(sim, 56, 1)).cc).to.equal(CC.PARAMETER_OUT_OF_RANGE);
    });

    it('unknown parameters answer 0x80 "parameter not supported"', async () => {
      expect((await getLan(sim, 9)).cc).to.equal(LanCC.PARAM_NOT_SUPPORTED);
      expect((await getLan(sim, 0xc0)).cc).to.equal(LanCC.PARAM_NOT_SUPPORTED);
    });
  });

  describe('Set LAN Configuration Parameters', () => {
    it('the address and friends are read-only (0x82), unknown ones 0x80, and nothing changes', async () => {
      expect((await call(sim, 0x0c, 0x01, [1, 3, 192, 168, 0, 9])).cc).to.equal(LanCC.READ_ONLY);
      expect((await call(sim, 0x0c, 0x01, [1, 4, 1])).cc).to.equal(LanCC.READ_ONLY);
      expect((await call(sim, 0x0c, 0x01, [1, 20, 5, 0x80])).cc).to.equal(LanCC.READ_ONLY);
      expect((await call(sim, 0x0c, 0x01, [1, 0xc0, 1])).cc).to.equal(LanCC.PARAM_NOT_SUPPORTED);
      expect(hex(await getLan(sim, 3))).to.equal('110af40111');
    });

    it('the set-in-progress handshake works: lock, second lock refused 0x81, commit, complete', async () => {
      expect((await call(sim, 0x0c, 0x01, [1, 0, 1])).cc).to.equal(0);
      expect(hex(await getLan(sim, 0))).to.equal('1101');
      expect((await call(sim, 0x0c, 0x01, [1, 0, 1])).cc).to.equal(LanCC.SET_IN_PROGRESS);
      expect((await call(sim, 0x0c, 0x01, [1, 0, 2])).cc).to.equal(0);
      expect((await call(sim, 0x0c, 0x01, [1, 0, 0])).cc).to.equal(0);
      expect(hex(await getLan(sim, 0))).to.equal('1100');
    });

    it('needs ADMINISTRATOR; Get needs OPERATOR', () => {
      expect(table.get(commandKey(0x0c, 0x01))!.minPrivilege).to.equal(Privilege.Administrator);
      expect(table.get(commandKey(0x0c, 0x02))!.minPrivilege).to.equal(Privilege.Operator);
    });
  });

  describe('watchdog timer', () => {
    let clock: sinon.SinonFakeTimers;
    beforeEach(() => {
      clock = sinon.useFakeTimers({ now: 1_000_000, toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    });
    afterEach(() => clock.restore());

    it('reset before any set answers 0x80 (un-initialized)', async () => {
      expect((await call(sim, 0x06, 0x22)).cc).to.equal(0x80);
    });

    it('set stops it, reset starts the countdown, get reports it, expiry hard-resets the VM once', async () => {
      await sim.power('on');
      const boots = sim.bootHistory.length;
      // SMS/OS use, hard reset, no pre-timeout, clear SMS/OS flag, 10.0 s
      expect((await call(sim, 0x06, 0x24, [0x04, 0x01, 0x00, 0x10, 100, 0])).cc).to.equal(0);
      expect(hex(await call(sim, 0x06, 0x25))).to.equal('0401000064006400');
      expect((await call(sim, 0x06, 0x22)).cc).to.equal(0);
      await clock.tickAsync(4000);
      // running (bit 6), 6.0 s left
      expect(hex(await call(sim, 0x06, 0x25))).to.equal('440100006400' + '3c00');
      // a reset restarts from the initial value
      expect((await call(sim, 0x06, 0x22)).cc).to.equal(0);
      await clock.tickAsync(9900);
      expect(sim.bootHistory.length).to.equal(boots);
      await clock.tickAsync(200);
      expect(sim.bootHistory.length).to.equal(boots + 1);
      // stopped, SMS/OS expiration flag (bit 4), present count 0
      expect(hex(await call(sim, 0x06, 0x25))).to.equal('040100106400' + '0000');
      await clock.tickAsync(60_000);
      expect(sim.bootHistory.length).to.equal(boots + 1);
      expect(watchdogState(sim).expiries).to.equal(1);
    });

    it('power down action turns the VM off; a pre-timeout NMI comes first', async () => {
      await sim.power('on');
      // OS load use, NMI pre-timeout (2 << 4) | power down, 2 s pre-timeout, 5 s countdown
      expect((await call(sim, 0x06, 0x24, [0x03, 0x22, 2, 0, 50, 0])).cc).to.equal(0);
      expect((await call(sim, 0x06, 0x22)).cc).to.equal(0);
      await clock.tickAsync(3100);
      expect(sim.nmiCount).to.equal(1);
      expect(await sim.getPowerState()).to.equal('On');
      await clock.tickAsync(2000);
      expect(await sim.getPowerState()).to.equal('Off');
    });

    it('set without "don\'t stop" stops a running timer; set stops nothing that it should keep', async () => {
      await call(sim, 0x06, 0x24, [0x04, 0x01, 0, 0, 100, 0]);
      await call(sim, 0x06, 0x22);
      await clock.tickAsync(1000);
      await call(sim, 0x06, 0x24, [0x04, 0x01, 0, 0, 100, 0]);
      await clock.tickAsync(20_000);
      expect(watchdogState(sim).expiries).to.equal(0);
      // "don't stop" (bit 6) on a running timer continues from the new value
      await call(sim, 0x06, 0x22);
      await call(sim, 0x06, 0x24, [0x44, 0x00, 0, 0, 20, 0]);
      expect(watchdogState(sim).running).to.equal(true);
      await clock.tickAsync(2100);
      expect(watchdogState(sim).expiries).to.equal(1);
    });

    it('refuses reserved uses, SMI pre-timeout and a pre-timeout longer than the countdown', async () => {
      expect((await call(sim, 0x06, 0x24, [0x00, 0x01, 0, 0, 100, 0])).cc).to.equal(CC.INVALID_DATA_FIELD);
      expect((await call(sim, 0x06, 0x24, [0x04, 0x11, 1, 0, 100, 0])).cc).to.equal(CC.INVALID_DATA_FIELD);
      expect((await call(sim, 0x06, 0x24, [0x04, 0x21, 20, 0, 100, 0])).cc).to.equal(CC.INVALID_DATA_FIELD);
      expect((await call(sim, 0x06, 0x24, [0x04, 0x01, 0, 0, 100])).cc).to.equal(CC.REQUEST_DATA_LENGTH_INVALID);
    });
  });

  describe('global enables, system info, user payload access', () => {
    it('Get BMC Global Enables: system event logging only; Set accepts no change only', async () => {
      expect(hex(await call(sim, 0x06, 0x2f))).to.equal('08');
      expect((await call(sim, 0x06, 0x2e, [0x08])).cc).to.equal(0);
      expect((await call(sim, 0x06, 0x2e, [0x0f])).cc).to.equal(CC.INVALID_DATA_FIELD);
      expect(hex(await call(sim, 0x06, 0x2f))).to.equal('08');
    });

    it('Get System Info: system name and firmware version from the VM in 14/16-byte blocks; Set is read-only', async () => {
      const info = await sim.getSystemInfo();
      const name = Buffer.from(info.name, 'latin1');
      const r = await call(sim, 0x06, 0x59, [0, 2, 0, 0]);
      expect(r.cc).to.equal(0);
      expect(r.data![0]).to.equal(0x11);
      expect(r.data![1]).to.equal(0); // set selector
      expect(r.data![2]).to.equal(0); // ASCII
      expect(r.data![3]).to.equal(name.length);
      expect(r.data!.subarray(4, 4 + name.length).toString('latin1')).to.equal(info.name);
      expect(r.data!.length).to.equal(18);
      expect((await call(sim, 0x06, 0x59, [0, 2, 1, 0])).cc).to.equal(CC.PARAMETER_OUT_OF_RANGE);
      expect((await call(sim, 0x06, 0x59, [0, 0x20, 0, 0])).cc).to.equal(0x80);
      expect((await call(sim, 0x06, 0x58, [2, 0, 0, 3, 0x61, 0x62, 0x63])).cc).to.equal(0x82);
    });

    it('Get User Payload Access: SOL for configured users, nothing for empty ids', async () => {
      const withUsers = async (uid: number) => {
        const spec = table.get(commandKey(0x06, 0x4d))!;
        return spec.handler({
          req: { netFn: 0x06, cmd: 0x4d, lun: 0, data: Buffer.from([1, uid]) },
          session: SESSION,
          machine: sim,
          users: [{ username: 'admin', password: 'password', role: 'Administrator' }],
          logger: nullLogger(),
          channel: 1,
        });
      };
      expect(hex(await withUsers(2))).to.equal('02000000');
      expect(hex(await withUsers(3))).to.equal('00000000');
      expect((await withUsers(0)).cc).to.equal(CC.INVALID_DATA_FIELD);
    });
  });

  describe('Get POH Counter', () => {
    let clock: sinon.SinonFakeTimers;
    beforeEach(() => {
      clock = sinon.useFakeTimers({ now: 5_000_000, toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    });
    afterEach(() => clock.restore());

    it('counts hours while the machine is on, not while it is off', async () => {
      trackPowerOnHours(sim, await sim.getPowerState());
      expect(hex(await call(sim, 0x00, 0x0f))).to.equal('3c00000000');
      await sim.power('on');
      // tick, not tickAsync (as in the next test): counting is synchronous, and tickAsync yields to the
      // real event loop for every timer it fires over 13 h of fake time, which timed out at 20 s on a
      // core shared with a CPU hog (pinned run 5 of 8abf483)
      clock.tick(2.5 * 3600_000);
      expect(hex(await call(sim, 0x00, 0x0f))).to.equal('3c02000000');
      await sim.power('forceOff');
      clock.tick(10 * 3600_000);
      expect(hex(await call(sim, 0x00, 0x0f))).to.equal('3c02000000');
      await sim.power('on');
      clock.tick(0.5 * 3600_000);
      expect(hex(await call(sim, 0x00, 0x0f))).to.equal('3c03000000');
    });

    it('continues a saved total, saves it on power-off, every interval while on and when stopped', async () => {
      clock.restore();
      clock = sinon.useFakeTimers({ now: 5_000_000, toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
      const saves: number[] = [];
      const p: PohPersistence = { load: () => 3 * 3600_000, save: (ms) => void saves.push(ms) };
      trackPowerOnHours(sim, await sim.getPowerState(), Date.now, p);
      expect(hex(await call(sim, 0x00, 0x0f))).to.equal('3c03000000');
      await sim.power('on');
      // tick, not tickAsync: the save is synchronous, and tickAsync yields to the real event loop for every
      // timer it fires over 1.5 h of fake time (20 s of real time on a core shared with a CPU hog)
      clock.tick(POH_SAVE_INTERVAL_MS);
      expect(saves.at(-1)).to.equal(3 * 3600_000 + POH_SAVE_INTERVAL_MS);
      clock.tick(1.5 * 3600_000 - POH_SAVE_INTERVAL_MS);
      expect(hex(await call(sim, 0x00, 0x0f))).to.equal('3c04000000');
      await sim.power('forceOff');
      expect(saves.at(-1)).to.equal(4.5 * 3600_000);
      const n = saves.length;
      clock.tick(10 * POH_SAVE_INTERVAL_MS);
      expect(saves.length, 'nothing to save while off').to.equal(n);
      stopPowerOnHours(sim);
      expect(saves.at(-1)).to.equal(4.5 * 3600_000);
      expect(poweredOnMs(sim)).to.equal(0);
      // the next agent continues from what was saved
      trackPowerOnHours(sim, await sim.getPowerState(), Date.now, { load: () => saves.at(-1)!, save: () => undefined });
      expect(poweredOnMs(sim)).to.equal(4.5 * 3600_000);
      stopPowerOnHours(sim);
    });

    it('pohFile: missing = 0, round trip, a malformed file is refused', () => {
      const dir = mkdtempSync(join(tmpdir(), 'poh-'));
      try {
        const f = pohFile(join(dir, 'poh.json'));
        expect(f.load()).to.equal(0);
        f.save(7_200_000.7);
        expect(f.load()).to.equal(7_200_000);
        expect(JSON.parse(readFileSync(join(dir, 'poh.json'), 'utf8'))).to.deep.equal({ version: 1, poweredOnMs: 7_200_000 });
        writeFileSync(join(dir, 'bad.json'), '{"accounts": []}');
        expect(() => pohFile(join(dir, 'bad.json')).load()).to.throw(/not a POH state file/);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it('a backend that records its power-on time (KubeVirt: the VMI) is asked instead of counting', async () => {
      let since: Date | undefined = new Date(Date.now() - 5.2 * 3600_000);
      const vm = Object.assign(Object.create(sim) as Machine, { poweredOnSince: async () => since });
      expect(hex(await call(vm, 0x00, 0x0f))).to.equal('3c05000000');
      since = undefined;
      expect(hex(await call(vm, 0x00, 0x0f))).to.equal('3c00000000');
    });
  });
});
