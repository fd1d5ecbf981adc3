import { expect } from 'chai';
import { spawn, spawnSync } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startApiServer } from '../emulator/index.js';
import { NS, secretObj, vmObj, vmbmcObj, waitReady } from './fixtures.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const cli = resolve(root, 'src/cmd/virtbmc-controller.ts');

describe('virtbmc-controller command', function () {
  // only stops a hung test (kubectl and agent starts: seconds each, more on a loaded core); nothing is timed
  this.timeout(180_000);

  it('rejects a blank agent image with a clear message and exit code 2', () => {
    const env = { ...process.env };
    delete env.VIRTBMC_AGENT_IMAGE;
    const r3 = spawnSync(process.execPath, ['--import', 'tsx', cli, '--agent-image', ' '], { cwd: root, encoding: 'utf8', env, timeout: 120_000 });
    expect(r3.status).to.equal(2);
    expect(r3.stderr).to.contain('must name the agent image');
  });

  it('rejects a malformed --cert-manager-issuer and an out-of-range --agent-cert-validity-hours (exit code 2)', () => {
    for (const [flag, value, msg] of [
      ['--cert-manager-issuer', 'Secret/x', 'Issuer/<name> or ClusterIssuer/<name>'],
      ['--agent-cert-validity-hours', '0', 'positive integer'],
      ['--agent-cert-validity-hours', '100000', 'at most 87600'],
    ] as const) {
      const r = spawnSync(process.execPath, ['--import', 'tsx', cli, '--agent-image', 'x', flag, value], { cwd: root, encoding: 'utf8', timeout: 120_000 });
      expect(r.status, `${flag} ${value}`).to.equal(2);
      expect(r.stderr).to.contain(msg);
    }
  });

  it('reconciles with leader election and releases the lease on SIGTERM', async () => {
    const emu = await startApiServer({ workloadDelayMs: 10 });
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', cli, '--kubeconfig', emu.kubeconfigPath, '--agent-image', 'registry.example/virtbmc:cli', '--leader-elect',
        '--leader-election-namespace', NS, '--metrics-bind-address', '127.0.0.1:0', '--health-probe-bind-address', '127.0.0.1:0', '--log-level', 'info'],
      { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    try {
      emu.create(vmObj('vm'));
      emu.create(secretObj('creds', 'sup3r-secret'));
      emu.create(vmbmcObj('bmc', 'vm', 'creds'));
      // the child compiles the controller with tsx first (seconds on a loaded core): a hang guard only
      await waitReady(emu, 'bmc', 'True', undefined, 150_000);
      const lease = () => emu.get('coordination.k8s.io/v1', 'Lease', NS, 'virtbmc-controller-leader')?.spec as { holderIdentity?: string } | undefined;
      expect(lease()?.holderIdentity).to.be.a('string').and.not.equal('');
      child.kill('SIGTERM');
      const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
      expect(code).to.equal(0);
      expect(lease()?.holderIdentity).to.equal('');
      // JSON logs with a reconcile id; the password never appears
      const lines = stderr.trim().split('\n').map((l) => JSON.parse(l) as { msg: string; reconcileId?: string });
      expect(lines.some((l) => l.msg === 'created' && typeof l.reconcileId === 'string')).to.equal(true);
      expect(stderr).to.not.contain('sup3r-secret');
      // the minted agent certificate: logged as an event, its key never
      expect(lines.some((l) => l.msg === 'agent certificate minted')).to.equal(true);
      const tlsKey = (emu.get('v1', 'Secret', NS, 'bmc-virtbmc-tls')!.data as Record<string, string>)['tls.key']!;
      expect(stderr).to.not.contain('PRIVATE KEY');
      expect(stderr).to.not.contain(tlsKey.slice(0, 40));
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      await emu.close();
    }
  });
});
