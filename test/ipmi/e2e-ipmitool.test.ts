/**
 * The command table driven by the real ipmitool over the three transports it offers (RMCP+ with
 * cipher suites 3 and 17, IPMI 1.5 with MD5; plus straight password for a subset). Each step
 * checks the simulator's state and the text ipmitool prints. ipmitool costs 0.2-0.4 s a run
 * (mostly its own start-up), so each transport gets its own agent and the three run side by side.
 */
import { expect } from 'chai';
import { ADMIN, OPERATOR, READONLY, startTestAgent, type TestAgent } from '../helpers/agent.js';
import type { UserAccount } from '../../src/accounts/types.js';
import { run as exec, type Run } from '../helpers/exec.js';
import { createLogger } from '../../src/common/logger.js';
import { RmcpPlusConsole } from './session-client.js';
import { lineSink } from '../helpers/log.js';

const TRANSPORTS: Array<{ name: string; args: string[] }> = [
  { name: 'lanplus -C 3', args: ['-I', 'lanplus', '-C', '3'] },
  { name: 'lanplus -C 17', args: ['-I', 'lanplus', '-C', '17'] },
  { name: 'lan (IPMI 1.5, MD5)', args: ['-I', 'lan'] },
];

/** "Key : value" lines of ipmitool output as a map (first occurrence wins). */
function fields(out: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of out.split('\n')) {
    const i = line.indexOf(':');
    if (i < 0) continue;
    const k = line.slice(0, i).trim();
    if (!m.has(k)) m.set(k, line.slice(i + 1).trim());
  }
  return m;
}

describe('IPMI commands with ipmitool @e2e', function () {
  this.timeout(60_000);

  interface Rig {
    name: string;
    t: TestAgent;
    ipmitool(cmd: string, user?: UserAccount, extra?: string[]): Promise<Run>;
  }
  const rigs: Rig[] = [];

  before(async () => {
    for (const tr of TRANSPORTS) {
      const t = await startTestAgent({ redfish: false });
      rigs.push({
        name: tr.name,
        t,
        ipmitool: (cmd, user = ADMIN, extra = []) =>
          exec('ipmitool', [
            ...tr.args,
            ...extra,
            // -N: seconds before a retransmission. Generous, so that a loaded machine does not
            // see a retried (and so repeated) power command; and with -I lan also how long
            // ipmitool waits for the pong to its opening presence ping: a later pong is taken for
            // the answer to Get Channel Authentication Capabilities ("Authentication type NONE
            // not supported", docs/ipmi.md "Clients"), seen once on a core loaded 6x
            ...['-H', '127.0.0.1', '-p', String(t.ipmiPort), '-U', user.username, '-P', user.password, '-N', '10', '-R', '3'],
            ...cmd.split(' '),
          ]),
      });
    }
  });
  after(async () => {
    await Promise.all(rigs.map((r) => r.t.close()));
  });

  /** Run a scenario on every transport at once, each against a fresh machine state. */
  async function onEachTransport(scenario: (rig: Rig) => Promise<void>): Promise<void> {
    const results = await Promise.allSettled(
      rigs.map(async (rig) => {
        const sim = rig.t.sim;
        sim.setAvailable(true);
        await sim.power('forceOff');
        await sim.setBootOverride({ target: 'none', enabled: 'disabled', mode: 'UEFI' });
        sim.bootHistory.length = 0;
        sim.nmiCount = 0;
        await scenario(rig);
      }),
    );
    const failures = results.flatMap((r, i) => (r.status === 'rejected' ? [`[${rigs[i]!.name}] ${String(r.reason)}`] : []));
    if (failures.length) throw new Error(failures.join('\n'));
  }

  it('power status|on|diag|reset|cycle|soft|off change the machine', () =>
    onEachTransport(async ({ t, ipmitool }) => {
      let r = await ipmitool('power status');
      expect(r.out).to.contain('Chassis Power is off');
      expect(r.code).to.equal(0);

      r = await ipmitool('power on');
      expect(r.code, r.out).to.equal(0);
      expect(r.out).to.contain('Chassis Power Control: Up/On');
      expect(await t.sim.getPowerState()).to.equal('On');
      expect(t.sim.bootHistory).to.have.length(1);
      expect((await ipmitool('power status')).out).to.contain('Chassis Power is on');

      r = await ipmitool('power diag');
      expect(r.out).to.contain('Chassis Power Control: Diag');
      expect(t.sim.nmiCount).to.equal(1);

      r = await ipmitool('power reset');
      expect(r.out).to.contain('Chassis Power Control: Reset');
      expect(t.sim.bootHistory).to.have.length(2);

      r = await ipmitool('power cycle');
      expect(r.out).to.contain('Chassis Power Control: Cycle');
      expect(t.sim.bootHistory).to.have.length(3);
      expect(await t.sim.getPowerState()).to.equal('On');

      r = await ipmitool('power soft');
      expect(r.out).to.contain('Chassis Power Control: Soft');
      expect(await t.sim.getPowerState()).to.equal('Off');

      await t.sim.power('on');
      r = await ipmitool('power off');
      expect(r.out).to.contain('Chassis Power Control: Down/Off');
      expect(await t.sim.getPowerState()).to.equal('Off');
    }));

  it('reset, diag and soft while off are refused with "not supported in present state"', () =>
    onEachTransport(async ({ t, ipmitool }) => {
      for (const action of ['reset', 'diag', 'soft']) {
        const r = await ipmitool(`power ${action}`);
        expect(r.code, action).to.not.equal(0);
        expect(r.out, action).to.contain('Command not supported in present state');
      }
      expect(await t.sim.getPowerState()).to.equal('Off');
      expect(t.sim.bootHistory).to.have.length(0);
      expect(t.sim.nmiCount).to.equal(0);
    }));

  it('chassis status reports power and the IPMI power-on event', () =>
    onEachTransport(async ({ ipmitool }) => {
      let f = fields((await ipmitool('chassis status')).out);
      expect(f.get('System Power')).to.equal('off');
      expect(f.get('Power Restore Policy')).to.equal('unknown');
      await ipmitool('power on');
      f = fields((await ipmitool('chassis status')).out);
      expect(f.get('System Power')).to.equal('on');
      expect(f.get('Last Power Event')).to.equal('command');
      expect(f.get('Power Overload')).to.equal('false');
      expect((await ipmitool('chassis restart_cause')).out).to.contain('System restart cause: chassis power control command');
    }));

  it('chassis bootdev pxe|disk|cdrom|bios (with options) set the override; bootparam get 5 reads it back', () =>
    onEachTransport(async ({ t, ipmitool }) => {
      const cases: Array<[string, { target: string; enabled: string; mode: string }, string]> = [
        ['pxe options=persistent,efiboot', { target: 'pxe', enabled: 'continuous', mode: 'UEFI' }, 'e004000000'],
        ['disk options=persistent', { target: 'hdd', enabled: 'continuous', mode: 'Legacy' }, 'c008000000'],
        ['cdrom options=efiboot', { target: 'cd', enabled: 'once', mode: 'UEFI' }, 'a014000000'],
        ['bios', { target: 'biosSetup', enabled: 'once', mode: 'Legacy' }, '8018000000'],
      ];
      for (const [args, expected, hex] of cases) {
        const r = await ipmitool(`chassis bootdev ${args}`);
        expect(r.out, args).to.contain(`Set Boot Device to ${args.split(' ')[0]}`);
        expect(await t.sim.getBootOverride(), args).to.deep.equal(expected);
        const g = await ipmitool('chassis bootparam get 5');
        expect(g.code).to.equal(0);
        expect(g.out, args).to.contain(`Boot parameter data: ${hex}`);
        expect(g.out).to.contain('Boot Flag Valid');
        expect(g.out).to.contain(expected.enabled === 'continuous' ? 'Options apply to all future boots' : 'Options apply to only next boot');
      }
      // A device the machine lacks is refused and changes nothing.
      const r = await ipmitool('chassis bootdev floppy');
      expect(r.out).to.contain('Invalid data field in request');
      expect(r.out).to.not.contain('Set Boot Device to floppy');
      expect(await t.sim.getBootOverride()).to.deep.equal({ target: 'biosSetup', enabled: 'once', mode: 'Legacy' });
    }));

  it('a once override is consumed by the next power on and then reads back invalid', () =>
    onEachTransport(async ({ t, ipmitool }) => {
      await ipmitool('chassis bootdev cdrom');
      expect((await ipmitool('chassis bootparam get 5')).out).to.contain('Force Boot from CD/DVD');
      await ipmitool('power on');
      expect(t.sim.bootHistory.map((b) => b.target)).to.deep.equal(['cd']);
      const g = await ipmitool('chassis bootparam get 5');
      expect(g.out).to.contain('Boot Flag Invalid');
      expect(g.out).to.contain('Boot Device Selector : No override');
      await ipmitool('power reset');
      expect(t.sim.bootHistory.map((b) => b.target)).to.deep.equal(['cd', 'hdd']);
    }));

  it('mc info, mc guid, fru print identify the VM', () =>
    onEachTransport(async ({ t, ipmitool }) => {
      const info = await t.sim.getSystemInfo();
      const mc = fields((await ipmitool('mc info')).out);
      expect(mc.get('IPMI Version')).to.equal('2.0');
      expect(mc.get('Manufacturer ID')).to.equal('57683');
      expect(mc.get('Firmware Revision')).to.equal('0.01');
      expect(mc.get('Product ID')).to.equal('1 (0x0001)');

      const guid = await ipmitool('mc guid');
      expect(fields(guid.out).get('System GUID')).to.equal(info.uuid);
      expect(guid.out).to.not.contain('violation');

      const fru = await ipmitool('fru print');
      expect(fru.code, fru.out).to.equal(0);
      const f = fields(fru.out);
      expect(f.get('Product Manufacturer')).to.equal(info.manufacturer);
      expect(f.get('Product Name')).to.equal(info.model);
      expect(f.get('Product Serial')).to.equal(info.serialNumber);
      expect(f.get('Board Serial')).to.equal(info.serialNumber);
      expect(f.get('Chassis Serial')).to.equal(info.serialNumber);
      expect(f.get('Product Asset Tag')).to.equal(`${info.namespace}/${info.name}`);
      expect(f.get('Product Extra')).to.equal(info.uuid);
    }));

  it('sdr list, sel info, user list 1, channel info, session info active', () =>
    onEachTransport(async ({ ipmitool }) => {
      const sdr = await ipmitool('sdr list');
      expect(sdr.code, sdr.out).to.equal(0);
      expect(sdr.out).to.not.contain('SDRR');
      const all = await ipmitool('sdr list all');
      expect(all.code).to.equal(0);
      expect(all.out).to.contain('KubeVirtBMC');

      // the SEL holds the event history (this rig's logins and power changes among them)
      expect(Number(fields((await ipmitool('sel info')).out).get('Entries'))).to.be.greaterThan(0);

      const users = await ipmitool('user list 1');
      expect(users.code).to.equal(0);
      const rows = users.out.split('\n').filter((l) => /^\d/.test(l)).map((l) => l.trim().split(/\s+/).join(' '));
      expect(rows).to.deep.equal([
        '1 true false false NO ACCESS',
        '2 admin true true true ADMINISTRATOR',
        '3 operator true true true OPERATOR',
        '4 viewer true true true USER',
        // empty ids up to the store's 16 (src/accounts/store.ts DEFAULT_MAX_USER_ID)
        ...Array.from({ length: 12 }, (_, i) => `${i + 5} true false false NO ACCESS`),
      ]);

      const ch = fields((await ipmitool('channel info')).out);
      expect(ch.get('Channel Medium Type')).to.equal('802.3 LAN');
      expect(ch.get('Channel Protocol Type')).to.equal('IPMB-1.0');
      expect(ch.get('Session Support')).to.equal('multi-session');
      expect(ch.get('Access Mode')).to.equal('always available');

      const s = await ipmitool('session info active');
      expect(s.code, s.out).to.equal(0);
      expect(fields(s.out).get('privilege level')).to.equal('ADMINISTRATOR');
    }));

  it('privileges: an OPERATOR may power on, a USER may only read', () =>
    onEachTransport(async ({ t, ipmitool }) => {
      const op = await ipmitool('power on', OPERATOR, ['-L', 'OPERATOR']);
      expect(op.code, op.out).to.equal(0);
      expect(await t.sim.getPowerState()).to.equal('On');
      expect((await ipmitool('power status', READONLY, ['-L', 'USER'])).out).to.contain('Chassis Power is on');
      const denied = await ipmitool('power off', READONLY, ['-L', 'USER']);
      expect(denied.code).to.not.equal(0);
      expect(denied.out).to.match(/Insufficient privilege level/i);
      expect(await t.sim.getPowerState()).to.equal('On');
    }));

  it('a backend outage gives a clear error, and recovery needs no restart', () =>
    onEachTransport(async ({ t, ipmitool }) => {
      t.sim.setAvailable(false);
      const r = await ipmitool('power status');
      expect(r.code).to.not.equal(0);
      expect(r.out).to.match(/Get Chassis Power Status failed: (Unspecified error|Node busy)/);
      t.sim.setAvailable(true);
      const ok = await ipmitool('power status');
      expect(ok.code).to.equal(0);
      expect(ok.out).to.contain('Chassis Power is off');
    }));

  it('boot parameters 0, 3 and 4, unsupported parameters and power restore policy (lanplus)', async () => {
    const { ipmitool } = rigs[0]!;
    await ipmitool('chassis bootdev pxe');
    let r = await ipmitool('chassis bootparam get 0');
    expect(r.out).to.contain('Set In Progress : set complete');
    r = await ipmitool('chassis bootparam get 4');
    expect(r.out).to.contain('BIOS/POST has handled boot info');
    expect((await ipmitool('raw 0x00 0x08 0x03 0x08')).code).to.equal(0);
    r = await ipmitool('chassis bootparam get 3');
    expect(r.out).to.contain("Don't automatically clear boot flag valid bit on timeout");
    r = await ipmitool('chassis bootparam get 1');
    expect(r.code).to.not.equal(0);
    expect(r.out).to.contain('Get Chassis Boot Parameter 1 failed: Unsupported parameter');
    r = await ipmitool('chassis policy list');
    expect(r.out.trim()).to.equal('Supported chassis power policy:');
    r = await ipmitool('chassis policy always-on');
    expect(r.out).to.contain('Power Restore Policy command failed: Invalid data field in request');
  });

  it('lan with -A PASSWORD (straight password, needs allowInsecure): power on/status and bootdev', async () => {
    const rig = rigs.find((r) => r.name.startsWith('lan ('))!;
    expect((await rig.ipmitool('power status', ADMIN, ['-A', 'PASSWORD'])).code).to.not.equal(0); // off by default
    const t = await startTestAgent({ redfish: false, ipmi: { port: 0, allowInsecure: true } });
    try {
      const ipmitool = (cmd: string) =>
        exec('ipmitool', ['-I', 'lan', '-A', 'PASSWORD', '-H', '127.0.0.1', '-p', String(t.ipmiPort), '-U', ADMIN.username, '-P', ADMIN.password, '-N', '10', '-R', '3', ...cmd.split(' ')]);
      const sim = t.sim;
      await sim.power('forceOff');
      expect((await ipmitool('power status')).out).to.contain('Chassis Power is off');
      expect((await ipmitool('power on')).code).to.equal(0);
      expect(await sim.getPowerState()).to.equal('On');
      expect((await ipmitool('chassis bootdev pxe options=persistent')).out).to.contain('Set Boot Device to pxe');
      expect(await sim.getBootOverride()).to.deep.equal({ target: 'pxe', enabled: 'continuous', mode: 'Legacy' });
      expect((await ipmitool('chassis bootparam get 5')).out).to.contain('Boot parameter data: c004000000');
    } finally {
      await t.close();
    }
  });

  it('a source holding its half-open handshakes: ipmitool is not turned away, its retransmitted Open Session gets a handshake once they expire', async () => {
    // one half-open handshake allowed per source, expiring after 4 s; a console from 127.0.0.1
    // stops after RAKP2 and holds it (what a burst of consoles started at once, or a flood, leaves)
    const lines: string[] = [];
    const sink = lineSink(lines);
    const t = await startTestAgent({ redfish: false, logger: createLogger('warn', sink), ipmi: { port: 0, maxHalfOpenPerSource: 1, handshakeTimeoutSeconds: 4 } });
    const held = new RmcpPlusConsole(t.ipmiPort, ADMIN.username, ADMIN.password, 17);
    try {
      expect(await held.handshake(undefined, undefined, true)).to.include({ openStatus: 0, rakp2Status: 0, established: false });
      // ipmitool from the same address: its first Open Session gets no answer (an "insufficient
      // resources" answer made it give up at once), its retransmission 5 s later a handshake (ipmitool
      // starts in well under the 4 s the held handshake lives, even on a loaded core, so its first
      // Open Session meets it: the log check below)
      const r = await exec('ipmitool', ['-I', 'lanplus', '-C', '17', '-H', '127.0.0.1', '-p', String(t.ipmiPort), '-U', ADMIN.username, '-P', ADMIN.password, '-N', '5', '-R', '2', 'chassis', 'power', 'status']);
      expect(r.code, r.out).to.equal(0);
      expect(r.out).to.match(/Chassis Power is (on|off)/);
      // and it did meet the held handshake: its first Open Session went unanswered
      expect(lines.some((l) => l.includes('open session dropped'))).to.equal(true);
    } finally {
      held.peer.close();
      await t.close();
    }
  });
});
