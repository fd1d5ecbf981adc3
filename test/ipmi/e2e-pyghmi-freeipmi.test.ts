/**
 * The same power and boot flows as the ipmitool suite, driven by pyghmi's client (IPMI 2.0) and by
 * freeipmi's ipmipower / ipmi-chassis / ipmi-config / bmc-info in their IPMI 1.5 default and with
 * -D LAN_2_0. freeipmi takes the port as host:port.
 */
import { expect } from 'chai';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface, type Interface } from 'node:readline';
import { ADMIN, startTestAgent, type TestAgent } from '../helpers/agent.js';
import { run as exec } from '../helpers/exec.js';

/**
 * A long-lived pyghmi client: one session, commands sent as JSON lines on stdin, one JSON result
 * line back per command. Keeps each step at a round trip instead of a Python start-up.
 */
const PYGHMI_DRIVER = `
import json, os, sys
from pyghmi.ipmi import command
c = command.Command(bmc='127.0.0.1', port=int(sys.argv[1]), userid=sys.argv[2], password=os.environ['IPMI_PASSWORD'], keepalive=False)
print(json.dumps({'ready': True}), flush=True)
for line in sys.stdin:
    req = json.loads(line)
    try:
        res = getattr(c, req['op'])(*req.get('args', []), **req.get('kwargs', {}))
        print(json.dumps({'ok': True, 'result': res}, default=str), flush=True)
    except Exception as e:
        print(json.dumps({'ok': False, 'error': str(e)}), flush=True)
os._exit(0)
`;

class Pyghmi {
  private readonly proc: ChildProcessWithoutNullStreams;
  private readonly lines: Interface;
  private readonly queue: Array<(line: string) => void> = [];
  private stderr = '';

  constructor(port: number, user: string, password: string) {
    this.proc = spawn('/usr/bin/python3', ['-c', PYGHMI_DRIVER, String(port), user], {
      env: { ...process.env, IPMI_PASSWORD: password },
    });
    this.proc.stderr.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.lines = createInterface({ input: this.proc.stdout });
    this.lines.on('line', (line) => this.queue.shift()?.(line));
  }

  private next(timeoutMs = 20_000): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`pyghmi gave no answer; stderr: ${this.stderr}`)), timeoutMs);
      this.queue.push((line) => {
        clearTimeout(timer);
        resolve(JSON.parse(line) as Record<string, unknown>);
      });
    });
  }

  async ready(): Promise<void> {
    const r = await this.next();
    if (r.ready !== true) throw new Error(`pyghmi did not log in: ${JSON.stringify(r)} ${this.stderr}`);
  }

  async call(op: string, args: unknown[] = [], kwargs: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    const p = this.next();
    this.proc.stdin.write(JSON.stringify({ op, args, kwargs }) + '\n');
    return p;
  }

  close(): void {
    this.proc.stdin.end();
    this.lines.close();
  }
}

describe('IPMI commands with pyghmi and freeipmi @e2e', function () {
  this.timeout(60_000);
  let t: TestAgent;

  before(async () => {
    t = await startTestAgent({ redfish: false });
  });
  after(async () => {
    await t?.close();
  });
  beforeEach(async () => {
    t.sim.setAvailable(true);
    await t.sim.power('forceOff');
    await t.sim.setBootOverride({ target: 'none', enabled: 'disabled', mode: 'UEFI' });
    t.sim.bootHistory.length = 0;
    t.sim.nmiCount = 0;
  });

  describe('pyghmi client', () => {
    let py: Pyghmi;
    before(async () => {
      py = new Pyghmi(t.ipmiPort, ADMIN.username, ADMIN.password);
      await py.ready();
    });
    after(() => py?.close());

    it('get_power / set_power drive the machine', async () => {
      expect(await py.call('get_power')).to.deep.equal({ ok: true, result: { powerstate: 'off' } });
      expect((await py.call('set_power', ['on'])).ok).to.equal(true);
      expect(await t.sim.getPowerState()).to.equal('On');
      expect(t.sim.bootHistory).to.have.length(1);
      expect(await py.call('get_power')).to.deep.equal({ ok: true, result: { powerstate: 'on' } });
      expect((await py.call('set_power', ['reset'])).ok).to.equal(true);
      expect(t.sim.bootHistory).to.have.length(2);
      expect((await py.call('set_power', ['diag'])).ok).to.equal(true);
      expect(t.sim.nmiCount).to.equal(1);
      expect((await py.call('set_power', ['shutdown'])).ok).to.equal(true);
      expect(await t.sim.getPowerState()).to.equal('Off');
      // Reset while off: pyghmi reports the BMC's refusal.
      const r = await py.call('set_power', ['reset']);
      expect(r.ok).to.equal(false);
      expect(String(r.error)).to.match(/not supported in present state|0xd5|213/i);
      expect(t.sim.bootHistory).to.have.length(2);
      await t.sim.power('on');
      expect((await py.call('set_power', ['off'])).ok).to.equal(true);
      expect(await t.sim.getPowerState()).to.equal('Off');
    });

    it('set_bootdev / get_bootdev map onto the override and read back', async () => {
      expect((await py.call('set_bootdev', ['network'], { persist: true })).ok).to.equal(true);
      expect(await t.sim.getBootOverride()).to.deep.equal({ target: 'pxe', enabled: 'continuous', mode: 'Legacy' });
      expect(await py.call('get_bootdev')).to.deep.equal({
        ok: true,
        result: { bootdev: 'network', persistent: true, uefimode: false },
      });

      expect((await py.call('set_bootdev', ['optical'], { uefiboot: true })).ok).to.equal(true);
      expect(await t.sim.getBootOverride()).to.deep.equal({ target: 'cd', enabled: 'once', mode: 'UEFI' });
      expect(await py.call('get_bootdev')).to.deep.equal({ ok: true, result: { bootdev: 'optical', persistent: false, uefimode: true } });

      // The once override is used by the next boot, after which there is none.
      await py.call('set_power', ['on']);
      expect(t.sim.bootHistory.map((b) => b.target)).to.deep.equal(['cd']);
      expect(await py.call('get_bootdev')).to.deep.equal({ ok: true, result: { bootdev: 'default', persistent: true } });

      expect((await py.call('set_bootdev', ['hd'])).ok).to.equal(true);
      expect((await py.call('set_bootdev', ['default'])).ok).to.equal(true);
      expect((await t.sim.getBootOverride()).enabled).to.equal('disabled');
    });

    it('a backend outage is an error for get_power, and the same session recovers', async () => {
      t.sim.setAvailable(false);
      const r = await py.call('get_power');
      expect(r.ok).to.equal(false);
      expect(String(r.error)).to.match(/unspecified/i);
      t.sim.setAvailable(true);
      expect(await py.call('get_power')).to.deep.equal({ ok: true, result: { powerstate: 'off' } });
    });
  });

  for (const mode of [
    { name: 'freeipmi IPMI 1.5', args: [] as string[] },
    { name: 'freeipmi -D LAN_2_0', args: ['-D', 'LAN_2_0'] },
  ]) {
    describe(mode.name, () => {
      const tool = (bin: string, ...args: string[]) =>
        exec(bin, ['-h', `127.0.0.1:${t.ipmiPort}`, '-u', ADMIN.username, '-p', ADMIN.password, ...mode.args, ...args]);

      it('ipmipower --stat/--on/--pulse/--reset/--cycle/--soft/--off', async () => {
        expect((await tool('ipmipower', '--stat')).out.trim()).to.equal('127.0.0.1: off');
        // Reset while off is refused (1.5 prints "operation invalid"; LAN_2_0 prints nothing).
        const refused = await tool('ipmipower', '--reset');
        expect(refused.out).to.not.contain(': ok');
        expect(t.sim.bootHistory).to.have.length(0);

        expect((await tool('ipmipower', '--on')).out.trim()).to.equal('127.0.0.1: ok');
        expect(await t.sim.getPowerState()).to.equal('On');
        expect((await tool('ipmipower', '--stat')).out.trim()).to.equal('127.0.0.1: on');
        expect((await tool('ipmipower', '--pulse')).out.trim()).to.equal('127.0.0.1: ok');
        expect(t.sim.nmiCount).to.equal(1);
        expect((await tool('ipmipower', '--reset')).out.trim()).to.equal('127.0.0.1: ok');
        expect((await tool('ipmipower', '--cycle')).out.trim()).to.equal('127.0.0.1: ok');
        expect(t.sim.bootHistory).to.have.length(3);
        expect((await tool('ipmipower', '--soft')).out.trim()).to.equal('127.0.0.1: ok');
        expect(await t.sim.getPowerState()).to.equal('Off');
        await t.sim.power('on');
        expect((await tool('ipmipower', '--off')).out.trim()).to.equal('127.0.0.1: ok');
        expect(await t.sim.getPowerState()).to.equal('Off');
      });

      it('ipmi-chassis status, restart cause and identify; bmc-info and ipmi-fru identity', async () => {
        await tool('ipmipower', '--on');
        const st = await tool('ipmi-chassis', '--get-chassis-status');
        expect(st.code, st.out).to.equal(0);
        expect(st.out).to.match(/System Power\s+: on/);
        expect(st.out).to.match(/Last Power Event\s+: power on via ipmi command/);
        const cause = await tool('ipmi-chassis', '--get-system-restart-cause');
        expect(cause.out).to.match(/Restart cause\s+: Chassis control command/);
        const info = await tool('bmc-info');
        expect(info.code, info.out).to.equal(0);
        expect(info.out).to.match(/Manufacturer ID\s+: 57683/);
        expect(info.out).to.match(/IPMI Version\s+: 2\.0/);
        const sys = await t.sim.getSystemInfo();
        expect(info.out).to.match(new RegExp(`System GUID\\s+: ${sys.uuid}`));
        expect((await tool('ipmi-chassis', '--chassis-identify=FORCE')).code).to.equal(0);
        expect((await tool('ipmi-chassis', '--get-chassis-status')).out).to.match(/Chassis Identify state\s+: Indefinite on/);
        const fru = await tool('ipmi-fru', '--ignore-sdr-cache');
        expect(fru.code, fru.out).to.equal(0);
        expect(fru.out).to.contain(`FRU Product Serial Number: ${sys.serialNumber}`);
        expect(fru.out).to.contain(`FRU Product Asset Tag: ${sys.namespace}/${sys.name}`);
        expect(fru.out).to.contain(`FRU Product Custom Info: ${sys.uuid}`);
      });

      it('ipmi-config sets and reads the boot flags', async () => {
        const kp = (k: string) => ['--key-pair', `Chassis_Boot_Flags:${k}`];
        const commit = await tool(
          'ipmi-config',
          '--category=chassis',
          '--commit',
          ...kp('Boot_Device=PXE'),
          ...kp('Boot_Flags_Persistent=Yes'),
          ...kp('BIOS_Boot_Type=EFI'),
        );
        expect(commit.code, commit.out).to.equal(0);
        expect(await t.sim.getBootOverride()).to.deep.equal({ target: 'pxe', enabled: 'continuous', mode: 'UEFI' });
        await t.sim.setBootOverride({ target: 'cd', enabled: 'once' }); // e.g. through Redfish
        const out = (await tool('ipmi-config', '--category=chassis', '--checkout', '--section=Chassis_Boot_Flags')).out;
        expect(out).to.match(/Boot_Device\s+CD-DVD/);
        expect(out).to.match(/Boot_Flags_Persistent\s+No/);
        expect(out).to.match(/BIOS_Boot_Type\s+EFI/);
      });

      it('a backend outage is reported as an error and recovery needs no restart', async () => {
        t.sim.setAvailable(false);
        const st = await tool('ipmi-chassis', '--get-chassis-status');
        expect(st.code).to.not.equal(0);
        expect(st.out).to.contain('bad completion code');
        const power = await tool('ipmipower', '--stat');
        // IPMI 1.5 names the failure; LAN_2_0 ipmipower prints nothing for a failed command.
        expect(power.out.trim()).to.equal(mode.args.length ? '' : '127.0.0.1: BMC error');
        t.sim.setAvailable(true);
        expect((await tool('ipmipower', '--stat')).out.trim()).to.equal('127.0.0.1: off');
      });
    });
  }

});
