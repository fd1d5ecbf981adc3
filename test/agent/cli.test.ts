import { expect } from 'chai';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { endpointPort, readyEndpoints, spawnVirtbmc, untilReady } from '../helpers/virtbmc-process.js';


function run(args: string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
  const cleanEnv = { ...process.env };
  delete cleanEnv['BMC_PASSWORD'];
  delete cleanEnv['BMC_USERNAME'];
  return spawnVirtbmc(args, { env: { ...cleanEnv, ...env } });
}

function collect(stream: NodeJS.ReadableStream | null): () => string {
  let buf = '';
  stream?.on('data', (d: Buffer) => (buf += d.toString()));
  return () => buf;
}

describe('virtbmc command line', function () {
  // tsx compiles the agent at each start: seconds on a loaded 2-core machine; these limits only stop a hung test
  this.timeout(60_000);

  it('prints usage with --help', async () => {
    const p = run(['--help']);
    const out = collect(p.stdout);
    const [code] = (await once(p, 'exit')) as [number];
    expect(code).to.equal(0);
    expect(out()).to.match(/--simulate/).and.match(/--ipmi-port/).and.match(/--redfish-port/).and.match(/--kubeconfig/);
  });

  it('refuses to start without a password', async () => {
    const p = run(['--simulate', '--ipmi-port', '0', '--redfish-port', '0']);
    const err = collect(p.stderr);
    const [code] = (await once(p, 'exit')) as [number];
    expect(code).to.equal(2);
    expect(err()).to.match(/no BMC password/);
  });

  it('serves both protocols, prints a ready line, never logs the password, and stops on SIGTERM', async () => {
    const p = run(['--simulate', '--ipmi-port', '0', '--redfish-port', '0', '--metrics-port', '0', '--log-level', 'debug'], {
      BMC_PASSWORD: 'sekr1t-pw',
    });
    const out = collect(p.stdout);
    const err = collect(p.stderr);
    try {
      await untilReady(p);
      const line = out().split('\n').find((l) => l.startsWith('virtbmc ready'));
      expect(line, err()).to.match(/ipmi=udp:\/\/127\.0\.0\.1:\d+/);
      const m = /redfish=(http:\/\/127\.0\.0\.1:\d+)\/redfish\/v1/.exec(line!);
      expect(m, line).to.not.equal(null);
      // A logged-in request, so the log has something to leak if it were careless.
      const res = await fetch(`${m![1]}/redfish/v1/Systems`, {
        headers: { authorization: 'Basic ' + Buffer.from('admin:sekr1t-pw').toString('base64') },
      });
      expect(res.status).to.equal(200);
      // the metrics endpoint, last on the line, names the port it bound
      expect(line).to.match(/ redfish=\S+ metrics=http:\/\/127\.0\.0\.1:\d+\/metrics$/);
      const metrics = await fetch(`http://127.0.0.1:${endpointPort(readyEndpoints(out()).metrics)}/metrics`);
      expect(metrics.status).to.equal(200);
      expect(await metrics.text()).to.match(/^virtbmc_requests_total\{[^}]*protocol="redfish"[^}]*\} 1$/m);
      p.kill('SIGTERM');
      const [code] = (await once(p, 'exit')) as [number];
      expect(code).to.equal(0);
      expect(err()).to.match(/"msg":"ready"/);
      expect(err()).to.not.include('sekr1t-pw');
      expect(out()).to.not.include('sekr1t-pw');
    } finally {
      if (p.exitCode === null) p.kill('SIGKILL');
    }
  });

  /** Starts virtbmc, waits for the ready line, returns stderr and the Redfish URL, then stops it. */
  async function startAndStop(args: string[], env: NodeJS.ProcessEnv = {}, during?: (url: string) => Promise<void>): Promise<{ err: string; out: string }> {
    const p = run(['--simulate', '--ipmi-port', '0', '--redfish-port', '0', ...args], env);
    const out = collect(p.stdout);
    const err = collect(p.stderr);
    try {
      await untilReady(p);
      const m = /redfish=(http:\/\/127\.0\.0\.1:\d+)\/redfish\/v1/.exec(out());
      expect(m, err()).to.not.equal(null);
      if (during) await during(m![1]!);
      p.kill('SIGTERM');
      await once(p, 'exit');
      return { err: err(), out: out() };
    } finally {
      if (p.exitCode === null) p.kill('SIGKILL');
    }
  }

  it('--password still works but warns that it is visible in ps and /proc; the env var does not warn', async () => {
    const flag = await startAndStop(['--password', 'cmdline-pw-1']);
    expect(flag.err).to.match(/"level":40[^\n]*--password puts the password where every local user can read it/);
    expect(flag.err).to.not.include('cmdline-pw-1');
    const env = await startAndStop([], { BMC_PASSWORD: 'env-pw-1' });
    expect(env.err).to.not.match(/--password puts/);
  });

  it('--password: once started, ps and /proc/<pid>/cmdline no longer show the password', async () => {
    // spawnVirtbmc runs node itself (not the tsx wrapper), so p.pid is the agent's own process
    const p = run(['--simulate', '--ipmi-port', '0', '--redfish-port', '0', '--password', 'visible-in-ps-7']);
    try {
      await untilReady(p);
      const cmdline = readFileSync(`/proc/${p.pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
      expect(cmdline).to.contain('--password ***');
      expect(cmdline).to.not.contain('visible-in-ps-7');
    } finally {
      p.kill('SIGTERM');
      if (p.exitCode === null) await once(p, 'exit');
    }
  });

  it('--password-file: the documented way; the password works and never shows up in the output', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'virtbmc-cli-'));
    const f = join(dir, 'password');
    writeFileSync(f, 'from-a-File-9\n', { mode: 0o600 });
    const r = await startAndStop(['--password-file', f], {}, async (url) => {
      const ok = await fetch(`${url}/redfish/v1/Systems`, { headers: { authorization: 'Basic ' + Buffer.from('admin:from-a-File-9').toString('base64') } });
      expect(ok.status).to.equal(200);
    });
    expect(r.err).to.not.match(/--password puts/);
    expect(r.err + r.out).to.not.include('from-a-File-9');
  });

  it('help documents --password-file, the lockout knobs and what --ipmi-allow-insecure opens', async () => {
    const p = run(['--help']);
    const out = collect(p.stdout);
    await once(p, 'exit');
    const help = out().replace(/\s+/g, ' ');
    expect(help).to.match(/--password-file/).and.match(/--account-lockout-threshold/).and.match(/--account-lockout-duration/).and.match(/--account-lockout-reset-after/);
    expect(help).to.match(/--ipmi-allow-insecure .*straight password/);
  });

  it('refuses a lockout setting out of range (exit 2, names the flag)', async () => {
    const p = run(['--simulate', '--ipmi-port', '0', '--redfish-port', '0', '--account-lockout-reset-after', '99', '--account-lockout-duration', '10'], { BMC_PASSWORD: 'x' });
    const err = collect(p.stderr);
    const [code] = (await once(p, 'exit')) as [number];
    expect(code).to.equal(2);
    expect(err()).to.match(/--account-lockout-reset-after must not exceed --account-lockout-duration/);
  });
});
