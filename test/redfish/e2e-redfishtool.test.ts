/**
 * DMTF redfishtool (Debian package) against the agent on the simulator: every command's effect is
 * checked on the simulator itself.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { startTestAgent, type TestAgent } from '../helpers/agent.js';
import { requireClient } from '../helpers/clients.js';

const run = promisify(execFile);
const REDFISHTOOL = '/usr/bin/redfishtool';

describe('Redfish e2e: redfishtool @e2e', function () {
  this.timeout(60_000);
  let t: TestAgent;

  before(function () {
    requireClient(this, existsSync(REDFISHTOOL), 'redfishtool');
  });
  beforeEach(async () => {
    t = await startTestAgent({ ipmi: false });
  });
  afterEach(async () => t?.close());

  async function rft(auth: 'Basic' | 'Session', ...args: string[]): Promise<string> {
    const { stdout } = await run(REDFISHTOOL, ['-r', `127.0.0.1:${t.redfishPort}`, '-u', 'admin', '-p', 'password', '-S', 'Never', '-A', auth, ...args], {
      timeout: 20_000,
    });
    return stdout;
  }

  it('reads the service and drives power and boot (Basic auth)', async () => {
    const auth = 'Basic';
    const root = JSON.parse(await rft(auth, 'raw', 'GET', '/redfish/v1')) as Record<string, unknown>;
    expect(root.Systems).to.deep.equal({ '@odata.id': '/redfish/v1/Systems' });

    const coll = JSON.parse(await rft(auth, 'Systems')) as { Members: { '@odata.id': string }[] };
    expect(coll.Members).to.deep.equal([{ '@odata.id': '/redfish/v1/Systems/1' }]);

    const sys = JSON.parse(await rft(auth, 'Systems', '-1')) as Record<string, unknown>;
    expect(sys.UUID).to.equal((await t.sim.getSystemInfo()).uuid);
    expect(sys.PowerState).to.equal('Off');

    await rft(auth, 'Systems', '-1', 'reset', 'On');
    expect(await t.sim.getPowerState()).to.equal('On');
    expect(t.sim.bootHistory).to.have.length(1);

    await rft(auth, 'Systems', '-1', 'setBootOverride', 'Once', 'Pxe');
    expect(await t.sim.getBootOverride()).to.include({ target: 'pxe', enabled: 'once' });

    await rft(auth, 'Systems', '-1', 'reset', 'ForceRestart');
    expect(t.sim.bootHistory.at(-1)!.target).to.equal('pxe');
    expect((await t.sim.getBootOverride()).enabled).to.equal('disabled');

    await rft(auth, 'Systems', '-1', 'reset', 'ForceOff');
    expect(await t.sim.getPowerState()).to.equal('Off');

    const raw = JSON.parse(await rft(auth, 'raw', 'GET', '/redfish/v1/Systems/1')) as Record<string, unknown>;
    expect(raw.PowerState).to.equal('Off');
    expect(raw.Boot).to.include({ BootSourceOverrideEnabled: 'Disabled' });
  });

  it('drives power and boot with a Redfish session (Session auth)', async () => {
    await rft('Session', 'Systems', '-1', 'reset', 'On');
    expect(await t.sim.getPowerState()).to.equal('On');
    await rft('Session', 'Systems', '-1', 'setBootOverride', 'Continuous', 'Cd');
    expect(await t.sim.getBootOverride()).to.include({ target: 'cd', enabled: 'continuous' });
    const raw = JSON.parse(await rft('Session', 'raw', 'GET', '/redfish/v1/Systems/1')) as Record<string, unknown>;
    expect(raw.PowerState).to.equal('On');
    expect(raw.Boot).to.include({ BootSourceOverrideTarget: 'Cd', BootSourceOverrideEnabled: 'Continuous' });
    // redfishtool deletes its session when done: none may be left behind
    expect((await fetch(`${t.redfishUrl}/redfish/v1/SessionService/Sessions`, { headers: { authorization: 'Basic ' + Buffer.from('admin:password').toString('base64') } }).then((r) => r.json()) as { Members: unknown[] }).Members).to.have.length(0);
  });

  it('gets a 400 from the service for an unknown reset type, and the machine is untouched', async () => {
    let failed = false;
    try {
      await rft('Basic', '-s', 'raw', 'POST', '/redfish/v1/Systems/1/Actions/ComputerSystem.Reset', '-d', '{"ResetType":"Bogus"}');
    } catch (e) {
      failed = true;
      const err = e as { code?: number; stdout?: string; stderr?: string };
      expect(err.code).to.not.equal(0);
      expect(`${err.stdout ?? ''}${err.stderr ?? ''}`).to.match(/status_code: 400/);
    }
    expect(failed).to.equal(true);
    expect(await t.sim.getPowerState()).to.equal('Off');
    expect(t.sim.bootHistory).to.have.length(0);
  });

  it('reads managers and chassis', async () => {
    const mgr = JSON.parse(await rft('Basic', 'Managers', '-1')) as Record<string, unknown>;
    expect(mgr).to.include({ Id: 'BMC', ManagerType: 'BMC' });
    const ch = JSON.parse(await rft('Basic', 'Chassis', '-1')) as Record<string, unknown>;
    expect(ch).to.include({ Id: '1', PowerState: 'Off' });
  });
});
