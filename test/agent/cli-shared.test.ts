/** The shared-mode command line: --fleet-file serves its systems and follows changes; refusals exit 2. */
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const TSX = `${ROOT}/node_modules/.bin/tsx`;

function run(args: string[]): { p: ChildProcess; out: () => string } {
  const env = { ...process.env, BMC_PASSWORD: 'pw' };
  const p = spawn(TSX, ['src/cmd/virtbmc.ts', '--log-level', 'warn', ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let buf = '';
  p.stdout?.on('data', (d: Buffer) => (buf += d.toString()));
  p.stderr?.on('data', (d: Buffer) => (buf += d.toString()));
  return { p, out: () => buf };
}

const freePort = (): Promise<number> =>
  new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });

async function systems(port: number, vm: string): Promise<number | string[]> {
  const res = await fetch(`http://127.0.0.1:${port}/redfish/v1/Systems`, { headers: { Authorization: `Basic ${Buffer.from(`admin:pw-${vm}`).toString('base64')}` } });
  if (res.status !== 200) return res.status;
  return ((await res.json()) as { Members: { '@odata.id': string }[] }).Members.map((m) => m['@odata.id']);
}

describe('virtbmc shared mode command line', function () {
  this.timeout(30_000);

  it('--fleet-file: serves its systems, then adds and removes them when the file changes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'virtbmc-fleet-'));
    const file = join(dir, 'fleet.json');
    writeFileSync(file, JSON.stringify({ systems: [{ id: 'ns.one', namespace: 'ns', vm: 'one', ipmiPort: 0 }] }));
    const port = await freePort();
    const { p, out } = run(['--fleet-file', file, '--redfish-port', String(port)]);
    try {
      const end = Date.now() + 20_000;
      while (!out().includes('virtbmc ready')) {
        if (Date.now() > end) throw new Error(`no ready line: ${out()}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(out()).to.include('shared 1 systems');
      expect(await systems(port, 'one')).to.deep.equal(['/redfish/v1/Systems/ns.one']);
      writeFileSync(file, JSON.stringify({ systems: [{ id: 'ns.two', namespace: 'ns', vm: 'two', ipmiPort: 0 }] }));
      // the file is polled every 2 s
      let two: number | string[] = 401;
      while (Date.now() < end + 10_000 && typeof two === 'number') {
        await new Promise((r) => setTimeout(r, 200));
        two = await systems(port, 'two');
      }
      expect(two).to.deep.equal(['/redfish/v1/Systems/ns.two']);
      expect(await systems(port, 'one')).to.equal(401);
    } finally {
      p.kill('SIGTERM');
      await once(p, 'exit');
    }
  });

  it('refuses --fleet-configmap (not implemented) and combined fleet flags with exit 2', async () => {
    for (const args of [['--fleet-configmap', 'ns/virtbmc-shard-0'], ['--simulate-fleet', '2', '--fleet-file', '/nonexistent']]) {
      const { p, out } = run(args);
      const [code] = (await once(p, 'exit')) as [number];
      expect(code, out()).to.equal(2);
    }
  });
});
