/**
 * One identify indicator behind both protocols (src/backend/indicator.ts): `ipmitool chassis
 * identify` (set; ipmitool's `chassis status` does not print the state, freeipmi's ipmi-chassis
 * --get-chassis-status does, so it reads) and Redfish IndicatorLED / LocationIndicatorActive (sushy's set_indicator_led, what
 * Ironic's indicator API calls) set and show the same state.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { Indicator } from '../../src/backend/indicator.js';
import { ADMIN, READONLY, startTestAgent, type TestAgent } from '../helpers/agent.js';
import { haveCommand, havePythonModule, requireClient } from '../helpers/clients.js';
import { run } from '../helpers/exec.js';

const py = promisify(execFile);
type Body = Record<string, unknown>;

describe('identify indicator: the model', () => {
  it('IPMI identify blinks for its interval (timed), force-on blinks until turned off, Lit is steady; all read Off when over', () => {
    const i = new Indicator();
    const t0 = 1_000_000;
    expect([i.led(t0), i.active(t0), i.ipmiState(t0)]).to.deep.equal(['Off', false, 0]);
    i.identify(15, t0);
    expect([i.led(t0 + 14_999), i.ipmiState(t0 + 14_999)]).to.deep.equal(['Blinking', 1]);
    expect([i.led(t0 + 15_000), i.active(t0 + 15_000), i.ipmiState(t0 + 15_000)]).to.deep.equal(['Off', false, 0]);
    i.identify(Infinity, t0);
    expect([i.led(t0 + 1e9), i.ipmiState(t0 + 1e9)]).to.deep.equal(['Blinking', 2]);
    i.setLed('Lit');
    expect([i.led(t0), i.active(t0), i.ipmiState(t0)]).to.deep.equal(['Lit', true, 2]);
    i.identify(0, t0);
    expect(i.led(t0)).to.equal('Off');
    i.setLed('Blinking');
    i.setLed('Off');
    expect([i.led(t0), i.ipmiState(t0)]).to.deep.equal(['Off', 0]);
  });
});

describe('identify indicator: ipmitool and Redfish/sushy on one agent @e2e', function () {
  this.timeout(60_000);
  let t: TestAgent;
  before(function () {
    requireClient(this, haveCommand('ipmitool'), 'ipmitool');
    requireClient(this, haveCommand('ipmi-chassis'), 'freeipmi (ipmi-chassis)');
    requireClient(this, havePythonModule('sushy'), 'python3-sushy (Debian, /usr/bin/python3)');
  });
  beforeEach(async () => {
    t = await startTestAgent();
  });
  afterEach(async () => t.close());

  const ipmitool = async (...args: string[]): Promise<string> => {
    const r = await run('ipmitool', ['-I', 'lanplus', '-H', '127.0.0.1', '-p', String(t.ipmiPort), '-U', ADMIN.username, '-P', ADMIN.password, '-N', '3', '-R', '3', ...args]);
    expect(r.code, r.out).to.equal(0);
    return r.out;
  };
  const identifyLine = async (): Promise<string> => {
    const r = await run('ipmi-chassis', ['-h', `127.0.0.1:${t.ipmiPort}`, '-D', 'LAN_2_0', '-u', ADMIN.username, '-p', ADMIN.password, '-l', 'ADMIN', '--get-chassis-status']);
    expect(r.code, r.out).to.equal(0);
    return /Chassis Identify state\s*:\s*(.*)/i.exec(r.out)?.[1]?.trim() ?? '(no line)';
  };
  const rf = async (method: string, path: string, body?: unknown, user = ADMIN): Promise<{ status: number; body: Body }> => {
    const res = await fetch(`${t.redfishUrl}${path}`, {
      method,
      headers: { authorization: `Basic ${Buffer.from(`${user.username}:${user.password}`).toString('base64')}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    return { status: res.status, body: text ? (JSON.parse(text) as Body) : {} };
  };
  const shown = async (): Promise<[unknown, unknown, unknown]> => {
    const sys = (await rf('GET', '/redfish/v1/Systems/1')).body;
    const chassis = (await rf('GET', '/redfish/v1/Chassis/1')).body;
    return [sys.IndicatorLED, sys.LocationIndicatorActive, chassis.LocationIndicatorActive];
  };
  const sushy = async (step: string): Promise<string> => {
    const script = `
import sys, sushy
from sushy import auth as sauth
s = sushy.Sushy(sys.argv[1], auth=sauth.BasicAuth(username='admin', password='password'))
system = s.get_system('/redfish/v1/Systems/1')
if sys.argv[2] != 'read':
    system.set_indicator_led(sys.argv[2])
    system.refresh()
print(system.indicator_led)
`;
    const { stdout } = await py('/usr/bin/python3', ['-c', script, `${t.redfishUrl}/redfish/v1`, step], { timeout: 30_000 });
    return stdout.trim();
  };

  it('ipmitool chassis identify force → Redfish Blinking and LocationIndicatorActive; identify 0 → Off everywhere', async () => {
    expect(await identifyLine()).to.match(/^off$/i);
    expect(await shown()).to.deep.equal(['Off', false, false]);
    await ipmitool('chassis', 'identify', 'force');
    expect(await identifyLine()).to.match(/^indefinite on$/i);
    expect(await shown()).to.deep.equal(['Blinking', true, true]);
    expect(await sushy('read')).to.match(/blinking/i);
    await ipmitool('chassis', 'identify', '0');
    expect(await shown()).to.deep.equal(['Off', false, false]);
    // a timed identify shows as temporary on IPMI and Blinking on Redfish while it runs
    await ipmitool('chassis', 'identify', '255');
    expect(await identifyLine()).to.match(/^timed on$/i);
    expect((await shown())[0]).to.equal('Blinking');
  });

  it('sushy set_indicator_led Lit / Off and PATCH LocationIndicatorActive change what ipmitool reports; ReadOnly cannot, bad values are 400', async () => {
    expect(await sushy('Lit')).to.match(/lit/i);
    expect(await identifyLine()).to.match(/^indefinite on$/i);
    expect(await shown()).to.deep.equal(['Lit', true, true]);
    expect(await sushy('Off')).to.match(/off/i);
    expect(await identifyLine()).to.match(/^off$/i);
    const on = await rf('PATCH', '/redfish/v1/Systems/1', { LocationIndicatorActive: true });
    expect([on.status, on.body.IndicatorLED, on.body.LocationIndicatorActive]).to.deep.equal([200, 'Blinking', true]);
    expect(await identifyLine()).to.match(/^indefinite on$/i);
    const denied = await rf('PATCH', '/redfish/v1/Systems/1', { IndicatorLED: 'Off' }, READONLY);
    expect(denied.status).to.equal(403);
    const bad = await rf('PATCH', '/redfish/v1/Systems/1', { IndicatorLED: 'Green' });
    expect(bad.status).to.equal(400);
    expect(JSON.stringify(bad.body)).to.contain('PropertyValueNotInList');
    const badType = await rf('PATCH', '/redfish/v1/Systems/1', { LocationIndicatorActive: 'yes' });
    expect(badType.status).to.equal(400);
    expect(JSON.stringify(badType.body)).to.contain('PropertyValueTypeError');
    // nothing of the refused PATCHes took effect
    expect(await shown()).to.deep.equal(['Blinking', true, true]);
  });
});
