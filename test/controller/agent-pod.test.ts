import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getDeployment, secretObj, startEnv, vmObj, vmbmcObj, waitReady, NS } from './fixtures.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

type Container = { args: string[]; env: Array<{ name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string }; fieldRef?: { fieldPath: string } } }> };

/**
 * The pod the controller describes really runs: the agent command line and environment from the
 * generated Deployment start `virtbmc` in KubeVirt mode against the same (emulated) apiserver, and
 * the credentials from the Secret open its Redfish API. Only the listen address and ports are
 * swapped for loopback and free ports.
 */
describe('the agent Deployment the controller generates', function () {
  this.timeout(40000);

  it('starts a working virtbmc with the Secret credentials', async () => {
    const env = await startEnv();
    const { emu } = env;
    let child: ReturnType<typeof spawn> | undefined;
    try {
      emu.create(vmObj('vm'));
      emu.create(secretObj('creds', 'pod-pw', 'bmcadmin'));
      emu.create(vmbmcObj('bmc', 'vm', 'creds'));
      await waitReady(emu, 'bmc');
      const c = (getDeployment(emu, 'bmc-virtbmc')!.spec as { template: { spec: { containers: Container[] } } }).template.spec.containers[0]!;
      const secret = emu.get('v1', 'Secret', NS, 'creds')!.data as Record<string, string>;
      const podEnv: Record<string, string> = {};
      for (const e of c.env) {
        // what the kubelet fills in: Secret keys, and the downward API (the pod's IP: loopback here)
        const ref = e.valueFrom?.secretKeyRef;
        const field = e.valueFrom?.fieldRef?.fieldPath;
        if (e.value !== undefined) podEnv[e.name] = e.value;
        else if (ref) podEnv[e.name] = Buffer.from(secret[ref.key]!, 'base64').toString('utf8');
        else if (field === 'status.podIP') podEnv[e.name] = '127.0.0.1';
        else throw new Error(`unexpected env source of ${e.name}`);
      }
      const loopback: Record<string, string> = { '--address': '127.0.0.1', '--ipmi-port': '0', '--redfish-port': '0' };
      const args = c.args.map((a, i) => loopback[c.args[i - 1] ?? ''] ?? a);
      expect(args.slice(0, 2)).to.deep.equal([NS, 'vm']);
      child = spawn(process.execPath, ['--import', 'tsx', resolve(root, 'src/cmd/virtbmc.ts'), ...args, '--kubeconfig', emu.kubeconfigPath, '--log-level', 'silent'], {
        cwd: root,
        env: { PATH: process.env.PATH ?? '', ...podEnv },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      let err = '';
      child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
      const redfish = await emu.waitFor(() => {
        if (child!.exitCode !== null) throw new Error(`virtbmc exited ${child!.exitCode}: ${err}`);
        return /redfish=(http:\/\/\S+)/.exec(out)?.[1];
      }, 30000);
      expect(out).to.contain(`VirtualMachine ${NS}/vm`);
      expect(out).to.match(/ipmi=udp:\/\/127\.0\.0\.1:\d+/);
      const base = redfish.replace(/\/redfish\/v1\/?$/, '');
      const auth = `Basic ${Buffer.from('bmcadmin:pod-pw').toString('base64')}`;
      const ok = await fetch(`${base}/redfish/v1/Systems`, { headers: { Authorization: auth } });
      expect(ok.status).to.equal(200);
      const bad = await fetch(`${base}/redfish/v1/Systems`, { headers: { Authorization: `Basic ${Buffer.from('bmcadmin:wrong').toString('base64')}` } });
      expect(bad.status).to.equal(401);
      // the readiness probe path answers without credentials
      expect((await fetch(`${base}/redfish/v1`)).status).to.equal(200);
    } finally {
      if (child && child.exitCode === null) {
        child.kill('SIGTERM');
        await new Promise((r) => child!.once('exit', r));
      }
      await env.close();
    }
  });
});
