/**
 * What `virtbmc` keeps across restarts, through the real command line: the simulator's power-on
 * hours in `--poh-file`, and in KubeVirt mode the accounts in the auth Secret the controller names
 * in VIRTBMC_ACCOUNTS_SECRET (against the apiserver emulator), both driven with ipmitool.
 */
import { expect } from 'chai';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ACCOUNTS_KEY, parseAccountsDocument } from '../../src/agent/accounts-secret.js';
import type { ApiServerEmulator, KubeObject } from '../emulator/index.js';
import { startEmulator, vmFixture } from '../backend/kubevirt-fixtures.js';
import { haveCommand, requireClient } from '../helpers/clients.js';
import { run } from '../helpers/exec.js';
import { spawnVirtbmc, untilReady } from '../helpers/virtbmc-process.js';


interface Started {
  p: ChildProcess;
  ipmiPort: number;
  err: () => string;
  stop(): Promise<number>;
}

async function startVirtbmc(args: string[], env: NodeJS.ProcessEnv): Promise<Started> {
  const clean = { ...process.env };
  for (const k of ['BMC_PASSWORD', 'BMC_USERNAME', 'VIRTBMC_ACCOUNTS_SECRET']) delete clean[k];
  const p = spawnVirtbmc(['--log-level', 'info', ...args], { env: { ...clean, ...env } });
  let out = '';
  let err = '';
  p.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  p.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  await untilReady(p); // not timed: the test's timeout stops a hang
  const ipmiPort = Number(/ipmi=udp:\/\/127\.0\.0\.1:(\d+)/.exec(out)![1]);
  return {
    p,
    ipmiPort,
    err: () => err,
    async stop() {
      if (p.exitCode !== null) return p.exitCode;
      p.kill('SIGTERM');
      const [code] = (await once(p, 'exit')) as [number];
      return code;
    },
  };
}

const ipmitool = (port: number, user: string, pw: string, ...cmd: string[]) =>
  run('ipmitool', ['-I', 'lanplus', '-C', '17', '-H', '127.0.0.1', '-p', String(port), '-U', user, '-P', pw, '-N', '1', '-R', '2', ...cmd], 20_000);

describe('virtbmc keeps state across restarts @e2e', function () {
  // only stops a hung test (each agent start compiles it with tsx: seconds, more on a loaded core); nothing is timed
  this.timeout(240_000);
  let dir: string;
  let agent: Started | undefined;
  before(function () {
    requireClient(this, haveCommand('ipmitool'), 'ipmitool');
  });
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'virtbmc-state-'));
  });
  afterEach(async () => {
    if (agent && agent.p.exitCode === null) agent.p.kill('SIGKILL');
    agent = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  it('--poh-file: chassis poh continues the saved hours and the total is saved at stop; a malformed file exits 2', async () => {
    const file = join(dir, 'poh.json');
    writeFileSync(file, JSON.stringify({ version: 1, poweredOnMs: 5 * 3600_000 + 1 }));
    agent = await startVirtbmc(['--simulate', '--sim-power', 'on', '--ipmi-port', '0', '--no-redfish', '--poh-file', file], { BMC_PASSWORD: 'Poh-pw-1' });
    const poh = await ipmitool(agent.ipmiPort, 'admin', 'Poh-pw-1', 'chassis', 'poh');
    expect(poh.code, poh.out).to.equal(0);
    expect(poh.out).to.match(/POH Counter\s*:\s*0 days, 5 hours/);
    expect(await agent.stop()).to.equal(0);
    const saved = JSON.parse(readFileSync(file, 'utf8')) as { version: number; poweredOnMs: number };
    expect(saved.version).to.equal(1);
    expect(saved.poweredOnMs).to.be.greaterThan(5 * 3600_000);

    writeFileSync(file, '{"not": "poh"}');
    const bad = spawnVirtbmc(['--simulate', '--ipmi-port', '0', '--no-redfish', '--poh-file', file], { env: { ...process.env, BMC_PASSWORD: 'Poh-pw-1' } });
    let err = '';
    bad.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const [code] = (await once(bad, 'exit')) as [number];
    expect(code, err).to.equal(2);
    expect(err).to.contain('--poh-file');
  });

  describe('KubeVirt mode', () => {
    let emu: ApiServerEmulator;
    beforeEach(async () => {
      emu = await startEmulator();
      emu.create(vmFixture({ runStrategy: 'Halted' }));
      emu.create({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'vm1-auth', namespace: 'default' }, type: 'Opaque', data: { username: Buffer.from('admin').toString('base64'), password: Buffer.from('Seed-pw-1').toString('base64') } } as KubeObject);
    });
    afterEach(async () => {
      if (agent && agent.p.exitCode === null) await agent.stop();
      await emu?.close();
    });

    const start = () =>
      startVirtbmc(['default', 'vm1', '--kubeconfig', emu.kubeconfigPath, '--address', '127.0.0.1', '--ipmi-port', '0', '--no-redfish'], {
        BMC_USERNAME: 'admin',
        BMC_PASSWORD: 'Seed-pw-1',
        VIRTBMC_ACCOUNTS_SECRET: 'vm1-auth',
      });

    it('VIRTBMC_ACCOUNTS_SECRET: a password changed with ipmitool holds after a restart; the Secret\'s password key stays', async () => {
      agent = await start();
      const set = await ipmitool(agent.ipmiPort, 'admin', 'Seed-pw-1', 'user', 'set', 'password', '2', 'Changed-pw-2');
      expect(set.code, set.out).to.equal(0);
      expect(await agent.stop()).to.equal(0);
      expect(agent.err()).to.not.contain('Changed-pw-2');
      const secret = emu.get('v1', 'Secret', 'default', 'vm1-auth') as KubeObject & { data: Record<string, string> };
      expect(Buffer.from(secret.data.password!, 'base64').toString()).to.equal('Seed-pw-1');
      expect(parseAccountsDocument(secret.data, 'test')!.accounts.map((a) => a.username)).to.deep.equal(['admin']);
      expect(secret.data[ACCOUNTS_KEY]).to.be.a('string');

      agent = await start();
      expect(agent.err()).to.contain('accounts loaded from the Secret');
      expect((await ipmitool(agent.ipmiPort, 'admin', 'Changed-pw-2', 'chassis', 'power', 'status')).code).to.equal(0);
      expect((await ipmitool(agent.ipmiPort, 'admin', 'Seed-pw-1', 'chassis', 'power', 'status')).code).to.not.equal(0);
    });
  });
});
