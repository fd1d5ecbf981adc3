/** The shared-mode command line: --fleet-file and --fleet-configmap serve their systems and follow changes; refusals exit 2. */
import { expect } from 'chai';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startApiServer } from '../emulator/index.js';
import { endpointPort, readyEndpoints, spawnVirtbmc } from '../helpers/virtbmc-process.js';


function run(args: string[]): { p: ChildProcess; out: () => string; ready: Promise<void> } {
  const env = { ...process.env, BMC_PASSWORD: 'pw' };
  const p = spawnVirtbmc(['--log-level', 'warn', ...args], { env });
  let buf = '';
  // settles on the ready line itself, or fails when the agent exits before printing it
  const ready = new Promise<void>((resolve, reject) => {
    p.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      if (buf.includes('virtbmc ready')) resolve();
    });
    p.once('exit', (code) => reject(new Error(`virtbmc exited (${code}) before its ready line: ${buf}`)));
  });
  ready.catch(() => undefined); // a refusal test never waits for it
  p.stderr.on('data', (d: Buffer) => (buf += d.toString()));
  return { p, out: () => buf, ready };
}

/** Calls `fn` until it holds. Only the hang guard (mocha's timeout) bounds it: no wall-clock limit of its own. */
async function until(p: ChildProcess, out: () => string, what: string, fn: () => Promise<boolean>, everyMs = 50): Promise<void> {
  while (!(await fn())) {
    if (p.exitCode !== null) throw new Error(`${what}: virtbmc exited (${p.exitCode}): ${out()}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

async function systems(port: number, vm: string): Promise<number | string[]> {
  const res = await fetch(`http://127.0.0.1:${port}/redfish/v1/Systems`, { headers: { Authorization: `Basic ${Buffer.from(`admin:pw-${vm}`).toString('base64')}` } });
  if (res.status !== 200) return res.status;
  return ((await res.json()) as { Members: { '@odata.id': string }[] }).Members.map((m) => m['@odata.id']);
}

describe('virtbmc shared mode command line', function () {
  // each start compiles the agent with tsx (seconds on a loaded core, ~10 s per start seen under
  // taskset -c 0 with a CPU hog); this only stops a hung test, nothing here is timed
  this.timeout(180_000);

  it('--fleet-file: serves its systems, then adds and removes them when the file changes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'virtbmc-fleet-'));
    const file = join(dir, 'fleet.json');
    writeFileSync(file, JSON.stringify({ systems: [{ id: 'ns.one', namespace: 'ns', vm: 'one', ipmiPort: 0 }] }));
    // port 0: the agent binds free ports and names them in its ready line
    const { p, out, ready } = run(['--fleet-file', file, '--redfish-port', '0', '--metrics-port', '0']);
    let port = 0;
    let metricsPort = 0;
    const scrape = async (): Promise<string> => (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    try {
      await ready;
      const endpoints = readyEndpoints(out());
      port = endpointPort(endpoints.redfish);
      metricsPort = endpointPort(endpoints.metrics);
      expect(out()).to.include('shared 1 systems');
      expect(await systems(port, 'one')).to.deep.equal(['/redfish/v1/Systems/ns.one']);
      // --metrics-port: the same metrics, labelled with the system that answered
      expect(await scrape()).to.match(/^virtbmc_requests_total\{system="ns\.one",protocol="redfish",[^}]*status="200"\} 1$/m);
      writeFileSync(file, JSON.stringify({ systems: [{ id: 'ns.two', namespace: 'ns', vm: 'two', ipmiPort: 0 }] }));
      // the file is polled every 2 s
      await until(p, out, 'system two served', async () => Array.isArray(await systems(port, 'two')), 200);
      expect(await systems(port, 'two')).to.deep.equal(['/redfish/v1/Systems/ns.two']);
      expect(await systems(port, 'one')).to.equal(401);
      const text = await scrape();
      expect(text).to.match(/system="ns\.two"/);
      expect(text, 'the series of a system that left are gone').to.not.match(/system="ns\.one"/);
    } finally {
      p.kill('SIGTERM');
      await once(p, 'exit');
    }
  });

  it('--fleet-configmap: serves the KubeVirt systems of the watched ConfigMap, follows its edits, keeps serving through a malformed one', async () => {
    const emu = await startApiServer({ vmiPhaseDelayMs: 5 });
    const b64 = (x: string) => Buffer.from(x).toString('base64');
    const sys = (vm: string, ipmiPort = 0) => ({ id: `default.${vm}`, namespace: 'default', vm, vmbmc: vm, vmbmcUid: `uid-${vm}`, secretName: `s-${vm}`, ipmiPort });
    for (const vm of ['one', 'two']) {
      emu.create({ apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachine', metadata: { name: vm, namespace: 'default' }, spec: { runStrategy: 'Halted', template: { spec: { domain: { devices: {} } } } } });
      emu.create({ apiVersion: 'v1', kind: 'Secret', metadata: { name: `s-${vm}`, namespace: 'default' }, data: { username: b64('admin'), password: b64(`pw-${vm}`) } });
    }
    const cm = (systems: unknown[] | string) => ({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'virtbmc-shard-0', namespace: 'default' },
      data: { 'fleet.json': typeof systems === 'string' ? systems : JSON.stringify({ systems }) },
    });
    emu.create(cm([sys('one')]));
    const { p, out, ready } = run(['--fleet-configmap', 'default/virtbmc-shard-0', '--kubeconfig', emu.kubeconfigPath, '--address', '127.0.0.1', '--redfish-port', '0', '--no-ipmi']);
    const poll = (what: string, fn: () => Promise<boolean>) => until(p, out, what, fn);
    try {
      await ready;
      const port = endpointPort(readyEndpoints(out()).redfish);
      expect(out()).to.include('shared 1 systems from ConfigMap default/virtbmc-shard-0');
      expect(await systems(port, 'one')).to.deep.equal(['/redfish/v1/Systems/default.one']);
      expect(await systems(port, 'two')).to.equal(401);
      const put = (o: ReturnType<typeof cm>) => emu.update({ ...emu.get('v1', 'ConfigMap', 'default', 'virtbmc-shard-0')!, data: o.data });
      put(cm([sys('one'), sys('two')]));
      await poll('system two added', async () => Array.isArray(await systems(port, 'two')));
      put(cm('{"systems": [ not json'));
      put(cm([sys('two')]));
      await poll('system one removed', async () => (await systems(port, 'one')) === 401);
      expect(await systems(port, 'two')).to.deep.equal(['/redfish/v1/Systems/default.two']);
      expect(out()).to.include('malformed');
    } finally {
      p.kill('SIGTERM');
      await once(p, 'exit');
      await emu.close();
    }
  });

  it('refuses a bad --fleet-configmap, VM arguments with it, and combined fleet flags with exit 2', async () => {
    for (const args of [
      ['--fleet-configmap', 'virtbmc-shard-0'],
      ['--fleet-configmap', 'ns/virtbmc-shard-0', 'ns', 'vm'],
      ['--simulate-fleet', '2', '--fleet-file', '/nonexistent'],
      // a shard's certificate is never replaceable over Redfish, so no Secret to write it to
      ['--fleet-configmap', 'ns/virtbmc-shard-0', '--tls-cert', '/c', '--tls-key', '/k', '--tls-secret', 's'],
    ]) {
      const { p, out } = run(args);
      const [code] = (await once(p, 'exit')) as [number];
      expect(code, out()).to.equal(2);
      if (args.includes('--tls-secret')) expect(out()).to.contain('--tls-secret is per-VM only');
    }
  });
});
