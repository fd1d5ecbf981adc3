/**
 * Serial-over-LAN with the real clients, each in a pseudo-terminal (util-linux `script`), against
 * the simulator's console (boot log on power on, an echoing login prompt): ipmitool lanplus with
 * cipher suites 17 and 3, freeipmi ipmiconsole and pyghmi's Console.
 *
 * ipmiconsole has no port option (it always talks to UDP 623), so it runs against a virtbmc
 * process in a network namespace of its own (unshare -n, root only), where 623 on loopback is
 * free whatever else runs on the machine. In CI (CI=true) a missing client or namespace fails the
 * run; elsewhere it skips.
 */
import { expect } from 'chai';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ADMIN, startTestAgent, type TestAgent } from '../helpers/agent.js';
import { run } from '../helpers/exec.js';
import { requireClient } from '../helpers/clients.js';
import { untilReady } from '../helpers/virtbmc-process.js';

const REPO = fileURLToPath(new URL('../..', import.meta.url));

function have(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}


function shq(a: string): string {
  return `'${a.replace(/'/g, `'\\''`)}'`;
}

/** A command in a pseudo-terminal: what it prints, what we type, its exit code. */
class Pty {
  out = '';
  readonly proc: ChildProcess;
  readonly exited: Promise<number>;
  private waiters: Array<() => void> = [];

  constructor(argv: string[]) {
    this.proc = spawn('script', ['-qfec', argv.map(shq).join(' '), '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
    const take = (b: Buffer) => {
      this.out += b.toString('latin1');
      for (const w of this.waiters.splice(0)) w();
    };
    this.proc.stdout!.on('data', take);
    this.proc.stderr!.on('data', take);
    this.exited = new Promise((resolve) => this.proc.on('exit', (code) => resolve(code ?? -1)));
  }

  /** Waits until the output contains `text` (after `from`); fails with the output so far. */
  async expect(text: string | RegExp, timeoutMs = 10_000, from = 0): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const hit = () => (typeof text === 'string' ? this.out.indexOf(text, from) >= 0 : text.test(this.out.slice(from)));
    while (!hit()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${String(text)}; output so far:\n${this.out}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.min(left, 200));
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  type(s: string): void {
    this.proc.stdin!.write(s);
  }

  async exit(timeoutMs = 10_000): Promise<number> {
    const t = setTimeout(() => this.proc.kill('SIGKILL'), timeoutMs);
    const code = await this.exited;
    clearTimeout(t);
    return code;
  }

  kill(): void {
    if (this.proc.exitCode === null) this.proc.kill('SIGKILL');
  }
}

describe('SOL with real clients in a pty @e2e', function () {
  this.timeout(90_000);
  let t: TestAgent;
  const ptys: Pty[] = [];
  const pty = (argv: string[]) => {
    const p = new Pty(argv);
    ptys.push(p);
    return p;
  };
  const ipmitoolArgs = (suite: number) => ['-I', 'lanplus', '-C', String(suite), '-H', '127.0.0.1', '-p', String(t.ipmiPort), '-U', ADMIN.username, '-P', ADMIN.password];
  const ipmitool = (suite: number, ...cmd: string[]) => run('ipmitool', [...ipmitoolArgs(suite), ...cmd]);

  beforeEach(async function () {
    requireClient(this, have('script'), 'util-linux script');
    t = await startTestAgent({ redfish: false, sim: { initialPower: 'Off' } });
  });
  afterEach(async () => {
    for (const p of ptys.splice(0)) p.kill();
    await t?.close();
  });

  for (const suite of [17, 3]) {
    it(`ipmitool -C ${suite} sol activate: boot output after power on, a typed line echoed, ~. leaves with rc 0`, async function () {
      requireClient(this, have('ipmitool'), 'ipmitool');
      const p = pty(['ipmitool', ...ipmitoolArgs(suite), 'sol', 'activate']);
      await p.expect('[SOL Session operational');
      expect((await ipmitool(suite, 'power', 'on')).code).to.equal(0);
      await p.expect('sim-vm login: ');
      expect(p.out).to.include('Booting from Hard Disk');
      p.type('root\r');
      await p.expect('you typed: root');
      p.type('~.');
      expect(await p.exit()).to.equal(0);
      // ipmitool deactivated the payload on its way out
      const st = await ipmitool(suite, 'raw', '0x06', '0x4a', '0x01');
      expect(st.out.trim()).to.equal('01 00 00');
    });
  }

  it('ipmitool: a second activation is refused cleanly; sol deactivate from a second session ends the first', async function () {
    requireClient(this, have('ipmitool'), 'ipmitool');
    await t.sim.power('on');
    const p = pty(['ipmitool', ...ipmitoolArgs(17), 'sol', 'activate']);
    await p.expect('sim-vm login: ');
    const second = await ipmitool(17, 'sol', 'activate');
    expect(second.code).to.equal(1);
    expect(second.out).to.include('SOL payload already active on another session');
    expect((await ipmitool(17, 'raw', '0x06', '0x4a', '0x01')).out.trim()).to.equal('01 01 00');
    const d = await ipmitool(17, 'sol', 'deactivate');
    expect(d.code).to.equal(0);
    expect((await ipmitool(17, 'raw', '0x06', '0x4a', '0x01')).out.trim()).to.equal('01 00 00');
    // ipmitool notices at its next keystroke: the BMC no longer takes its characters.
    p.type('x');
    await p.expect('SOL session closed by BMC', 30_000);
    expect(await p.exit()).to.equal(1);
    // and the payload can be activated again at once
    const again = pty(['ipmitool', ...ipmitoolArgs(17), 'sol', 'activate']);
    await again.expect('[SOL Session operational');
    again.type('~.');
    expect(await again.exit()).to.equal(0);
  });

  it('ipmitool sol looptest: activate/deactivate over and over in one session', async function () {
    requireClient(this, have('ipmitool'), 'ipmitool');
    await t.sim.power('on');
    const p = pty(['ipmitool', ...ipmitoolArgs(17), 'sol', 'looptest', '4', '50']);
    expect(await p.exit(30_000)).to.equal(0);
    expect(p.out).to.include('remain loop test counter: 1');
    expect(p.out).to.not.match(/failed|Unexpected/);
  });

  it('ipmitool sol info / sol set round-trip', async function () {
    requireClient(this, have('ipmitool'), 'ipmitool');
    const info = (await ipmitool(17, 'sol', 'info')).out;
    expect(info).to.match(/Enabled\s+: true/);
    expect(info).to.match(/Force Encryption\s+: true/);
    expect(info).to.match(/Payload Port\s+: (\d+)/);
    expect(info).to.include(`Payload Port                    : ${t.ipmiPort}`);
    for (const [param, value] of [
      ['character-accumulate-level', '12'],
      ['character-send-threshold', '80'],
      ['retry-count', '5'],
      ['retry-interval', '30'],
      ['volatile-bit-rate', '57.6'],
      ['non-volatile-bit-rate', '19.2'],
    ] as const) {
      const r = await ipmitool(17, 'sol', 'set', param, value);
      expect(r.code, `${param}: ${r.out}`).to.equal(0);
    }
    const after = (await ipmitool(17, 'sol', 'info')).out;
    expect(after).to.match(/Character Accumulate Level \(ms\) : 60/);
    expect(after).to.match(/Character Send Threshold\s+: 80/);
    expect(after).to.match(/Retry Count\s+: 5/);
    expect(after).to.match(/Retry Interval \(ms\)\s+: 300/);
    expect(after).to.match(/Volatile Bit Rate \(kbps\)\s+: 57.6/);
    expect(after).to.match(/Non-Volatile Bit Rate \(kbps\)\s+: 19.2/);
    expect(after).to.match(/Set in progress\s+: set-complete/);
    // a read-only parameter is refused
    const port = await ipmitool(17, 'sol', 'set', 'payload-port', '700');
    expect(port.code).to.not.equal(0);
  });

  it('pyghmi Console: output, a typed line echoed', async function () {
    requireClient(this, spawnSync('/usr/bin/python3', ['-c', 'import pyghmi.ipmi.console']).status === 0, 'python3-pyghmi');
    await t.sim.power('on');
    const script = [
      'import sys, time',
      'from pyghmi.ipmi import console',
      'import pyghmi.ipmi.private.session as sess',
      'out = []',
      'def h(d):',
      '    out.append(d if isinstance(d, str) else (d.decode("latin1") if isinstance(d, bytes) else ""))',
      'c = console.Console(bmc="127.0.0.1", userid=sys.argv[2], password=sys.argv[3], iohandler=h, port=int(sys.argv[1]))',
      'def until(s, limit):',
      '    t0 = time.time()',
      '    while s not in "".join(out) and time.time() - t0 < limit:',
      '        sess.Session.wait_for_rsp(timeout=0.2)',
      'until("login: ", 10)',
      'c.send_data("pyghmi\\r")',
      'until("you typed: pyghmi", 10)',
      'c.close()',
      'sys.stdout.write("".join(out))',
    ].join('\n');
    const r = await run('/usr/bin/python3', ['-c', script, String(t.ipmiPort), ADMIN.username, ADMIN.password], 40_000);
    expect(r.code, r.out).to.equal(0);
    expect(r.out).to.include('Booting from Hard Disk');
    expect(r.out).to.include('you typed: pyghmi');
  });

  describe('freeipmi ipmiconsole (UDP 623 in a network namespace)', () => {
    let agent: ChildProcess | undefined;
    afterEach(() => {
      if (agent && agent.exitCode === null) agent.kill('SIGTERM');
      agent = undefined;
    });

    it('ipmiconsole: boot output after power on, a typed line echoed, &. leaves with rc 0', async function () {
      requireClient(this, have('ipmiconsole'), 'freeipmi ipmiconsole');
      const isRoot = process.getuid?.() === 0;
      requireClient(this, isRoot && have('unshare') && have('nsenter') && spawnSync('unshare', ['-n', 'true']).status === 0, 'a network namespace (root, unshare)');
      agent = spawn(
        'unshare',
        [
          '-n',
          'sh',
          '-c',
          'ip link set lo up && exec "$0" "$@"',
          process.execPath,
          '--import',
          'tsx',
          'src/cmd/virtbmc.ts',
          '--simulate',
          '--no-redfish',
          '--address',
          '127.0.0.1',
          '--ipmi-port',
          '623',
          '--password',
          ADMIN.password,
          '--sim-power-on-delay',
          '0',
          '--log-level',
          'warn',
        ],
        { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      const netns = `--net=/proc/${agent.pid}/ns/net`;
      const inNs = (cmd: string, ...args: string[]) => run('nsenter', [netns, cmd, ...args]);
      const creds = ['-h', '127.0.0.1', '-u', ADMIN.username, '-p', ADMIN.password];
      // ready once it printed its ready line (it listens by then); the suite's timeout stops a hang
      await untilReady(agent);
      const p = pty(['nsenter', netns, 'ipmiconsole', ...creds, '-I', '17']);
      await p.expect('[SOL established]');
      expect((await inNs('ipmipower', ...creds, '-D', 'LAN_2_0', '--on')).out).to.include('ok');
      await p.expect('sim-vm login: ');
      expect(p.out).to.include('Booting from Hard Disk');
      p.type('freeipmi\r');
      await p.expect('you typed: freeipmi');
      p.type('&.');
      expect(await p.exit()).to.equal(0);
      expect(p.out).to.include('[closing the connection]');
    });
  });
});
