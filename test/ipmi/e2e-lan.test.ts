/**
 * The network and "rest of a real BMC" commands driven by the real clients: ipmitool `lan print`,
 * `session info all`, `mc watchdog get/set/reset`, `chassis poh`; pyghmi get_net_configuration;
 * freeipmi `ipmi-config --checkout --section Lan_Conf`. The agent's network model is fed a pod's
 * interface (eth0 10.244.1.17/24 via 10.244.1.1) so every field has a value worth checking.
 */
import { expect } from 'chai';
import { NetworkModel } from '../../src/common/network.js';
import { startAgent, type Agent } from '../../src/agent/agent.js';
import { SimulatedMachine } from '../../src/backend/simulator/simulator.js';
import { nullLogger } from '../../src/common/logger.js';
import { stopWatchdog } from '../../src/ipmi/commands/watchdog.js';
import { ADMIN } from '../helpers/agent.js';
import { haveCommand, havePythonModule, requireClient } from '../helpers/clients.js';
import { run } from '../helpers/exec.js';
import { POD_MAC as MAC, POD_SOURCES } from '../helpers/pod-network.js';

/** "Key : value" lines as a map (first occurrence wins). */
function fields(out: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of out.split('\n')) {
    const i = line.indexOf(':');
    if (i < 0) continue;
    const k = line.slice(0, i).trim();
    if (k && !m.has(k)) m.set(k, line.slice(i + 1).trim());
  }
  return m;
}

describe('IPMI network, session, watchdog and POH with real clients @e2e', function () {
  this.timeout(60_000);
  let agent: Agent;
  let sim: SimulatedMachine;
  let port: number;

  before(async () => {
    sim = new SimulatedMachine({ powerOnDelayMs: 0, powerOffDelayMs: 0 });
    agent = await startAgent({
      machine: sim,
      users: [ADMIN],
      logger: nullLogger(),
      address: '127.0.0.1',
      // listening on all addresses in a pod; the test still talks to loopback
      network: new NetworkModel({ listenAddress: '0.0.0.0', sources: POD_SOURCES }),
      ipmi: { port: 0 },
      redfish: false,
    });
    port = agent.ipmi!.port;
  });
  after(async () => {
    stopWatchdog(sim);
    await agent.close();
  });

  const ipmitool = (cmd: string) =>
    run('ipmitool', ['-I', 'lanplus', '-C', '17', '-H', '127.0.0.1', '-p', String(port), '-U', ADMIN.username, '-P', ADMIN.password, '-N', '3', '-R', '3', ...cmd.split(' ')]);

  describe('ipmitool', () => {
    before(function () {
      requireClient(this, haveCommand('ipmitool'), 'ipmitool');
    });

    it('lan print 1 shows the pod address, MAC, mask, gateway, VLAN and cipher suites', async () => {
      const r = await ipmitool('lan print 1');
      expect(r.code, r.out).to.equal(0);
      const f = fields(r.out);
      expect(f.get('Set in Progress')).to.equal('Set Complete');
      expect(f.get('Auth Type Support')).to.equal('MD5');
      expect(f.get('IP Address Source')).to.equal('Other');
      expect(f.get('IP Address')).to.equal('10.244.1.17');
      expect(f.get('Subnet Mask')).to.equal('255.255.255.0');
      expect(f.get('MAC Address')).to.equal(MAC);
      expect(f.get('Default Gateway IP')).to.equal('10.244.1.1');
      expect(f.get('Backup Gateway IP')).to.equal('0.0.0.0');
      expect(f.get('802.1q VLAN ID')).to.equal('Disabled');
      // every implemented suite; those without integrity are turned off and shown unused (X):
      // ipmitool prints one letter per suite id 0-14, so 2 and 3 are the ADMINISTRATOR ones
      expect(f.get('RMCP+ Cipher Suites')).to.equal('17,3,16,2,15,1,0');
      expect(f.get('Cipher Suite Priv Max')).to.equal('XXaaXXXXXXXXXXX');
      expect(f.get('Bad Password Threshold')).to.equal('5');
    });

    it('lan set is refused: the address belongs to the pod network', async () => {
      const r = await ipmitool('lan set 1 ipaddr 192.168.0.9');
      // ipmitool prints the refusal (0x82) only with -v, and exits 1
      expect(r.code).to.equal(1);
      const again = fields((await ipmitool('lan print 1')).out);
      expect(again.get('IP Address')).to.equal('10.244.1.17');
    });

    it('session info all walks every slot and exits 0 (empty slots: handle 0, no CBh)', async () => {
      const r = await ipmitool('session info all');
      expect(r.code, r.out).to.equal(0);
      const handles = [...r.out.matchAll(/^session handle\s*:\s*(\d+)/gm)].map((m) => Number(m[1]));
      expect(handles.length).to.equal(32);
      expect(handles.filter((h) => h !== 0)).to.have.length(1);
      expect(r.out).to.match(/privilege level\s*:\s*ADMINISTRATOR/);
      expect(r.out).to.match(/console ip\s*:\s*127\.0\.0\.1/);
    });

    it('mc watchdog get/reset/off against a timer set over raw Set Watchdog Timer', async () => {
      let r = await ipmitool('mc watchdog get');
      expect(r.code, r.out).to.equal(0);
      expect(r.out).to.match(/Watchdog Timer Is:\s*Stopped/);
      // Set: SMS/OS, no action, 600.0 s
      r = await ipmitool('raw 0x06 0x24 0x04 0x00 0x00 0x00 0x70 0x17');
      expect(r.code, r.out).to.equal(0);
      r = await ipmitool('mc watchdog reset');
      expect(r.code, r.out).to.equal(0);
      r = await ipmitool('mc watchdog get');
      expect(r.out).to.match(/Watchdog Timer Use:\s*SMS\/OS/);
      expect(r.out).to.match(/Watchdog Timer Is:\s*Started\/Running/);
      expect(r.out).to.match(/Initial Countdown:\s*600(\.0)? sec/);
      r = await ipmitool('mc watchdog off');
      expect(r.code, r.out).to.equal(0);
      expect((await ipmitool('mc watchdog get')).out).to.match(/Watchdog Timer Is:\s*Stopped/);
    });

    it('mc getenables, mc getsysinfo system_name and sol payload status answer instead of C1', async () => {
      let r = await ipmitool('mc getenables');
      expect(r.code, r.out).to.equal(0);
      expect(r.out).to.match(/System Event Logging\s*:\s*enabled/);
      r = await ipmitool('mc getsysinfo system_name');
      expect(r.code, r.out).to.equal(0);
      expect(r.out.trim()).to.equal((await sim.getSystemInfo()).name);
      r = await ipmitool('sol payload status 1 2');
      expect(r.code, r.out).to.equal(0);
      expect(r.out).to.match(/User 2 on channel 1 is enabled/);
    });

    it('chassis poh answers (hours from the VM being on)', async () => {
      const r = await ipmitool('chassis poh');
      expect(r.code, r.out).to.equal(0);
      expect(r.out).to.match(/POH Counter\s*:\s*0 days, 0 hours/);
    });
  });

  describe('pyghmi', () => {
    before(function () {
      requireClient(this, havePythonModule('pyghmi'), 'python3-pyghmi');
    });

    it('get_net_configuration returns the pod address, MAC and gateway', async () => {
      const script = [
        'import json, sys',
        'from pyghmi.ipmi import command',
        `c = command.Command(bmc='127.0.0.1', port=${port}, userid=sys.argv[1], password=sys.argv[2])`,
        'print(json.dumps(c.get_net_configuration()))',
      ].join('\n');
      const r = await run('/usr/bin/python3', ['-c', script, ADMIN.username, ADMIN.password], 30_000);
      expect(r.code, r.out).to.equal(0);
      const line = r.out.split('\n').find((l) => l.startsWith('{')) ?? '';
      expect(JSON.parse(line)).to.deep.equal({
        ipv4_address: '10.244.1.17/24',
        ipv4_configuration: 'Other',
        mac_address: MAC,
        ipv4_gateway: '10.244.1.1',
        ipv4_backup_gateway: null,
        ipv4_gateway_mac: null,
        ipv4_backup_gateway_mac: null,
      });
    });
  });

  describe('freeipmi', () => {
    before(function () {
      requireClient(this, haveCommand('ipmi-config'), 'freeipmi-tools (ipmi-config)');
    });

    for (const driver of [[], ['-D', 'LAN_2_0']]) {
      it(`ipmi-config --checkout --section Lan_Conf ${driver.length ? '(LAN_2_0)' : '(IPMI 1.5)'}`, async () => {
        const r = await run(
          'ipmi-config',
          ['-h', `127.0.0.1:${port}`, '-u', ADMIN.username, '-p', ADMIN.password, ...driver, '--checkout', '--section', 'Lan_Conf'],
          30_000,
        );
        expect(r.code, r.out).to.equal(0);
        const kv = new Map(
          r.out
            .split('\n')
            .filter((l) => /^\s+[A-Z]/.test(l))
            .map((l) => l.trim().split(/\s+/) as [string, string]),
        );
        expect(kv.get('IP_Address_Source')).to.equal('Use_Others');
        expect(kv.get('IP_Address')).to.equal('10.244.1.17');
        expect(kv.get('MAC_Address')?.toLowerCase()).to.equal(MAC);
        expect(kv.get('Subnet_Mask')).to.equal('255.255.255.0');
        expect(kv.get('Default_Gateway_IP_Address')).to.equal('10.244.1.1');
      });
    }
  });
});
