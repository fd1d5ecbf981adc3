/**
 * Metrics in shared mode (src/agent/shared.ts with AgentMetrics systemLabel): the same series as a
 * per-VM agent, each labelled with the system that served it (system="" for requests no system
 * answered), one label value per served system, and a system's series gone when it leaves.
 */
import { expect } from 'chai';
import { startSharedAgent, type FleetSystem, type SharedAgent } from '../../src/agent/shared.js';
import { AgentMetrics } from '../../src/agent/metrics.js';
import { SimulatedMachine } from '../../src/backend/simulator/simulator.js';
import { nullLogger } from '../../src/common/logger.js';
import { haveCommand } from '../helpers/clients.js';
import { run } from '../helpers/exec.js';
import { freeUdpPort } from '../helpers/ports.js';
import { parseExposition, type Sample } from '../helpers/prom.js';

const basic = (u: string, p: string): string => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;

describe('shared mode metrics: a system label per served system', function () {
  this.timeout(30_000);
  let agent: SharedAgent;
  let fleet: FleetSystem[];

  beforeEach(async () => {
    fleet = [
      { id: 'ns.vm-a', namespace: 'ns', vm: 'vm-a', ipmiPort: await freeUdpPort() },
      { id: 'ns.vm-b', namespace: 'ns', vm: 'vm-b', ipmiPort: 0 },
    ];
    agent = await startSharedAgent({
      logger: nullLogger(),
      address: '127.0.0.1',
      redfishPort: 0,
      ipmi: {},
      lockoutPolicy: { threshold: 0, durationSeconds: 30, counterResetAfterSeconds: 30 },
      metrics: { registry: new AgentMetrics({ systemLabel: true }), listen: { address: '127.0.0.1', port: 0 } },
      backend: async (s) => ({
        machine: new SimulatedMachine({ name: s.vm, powerOnDelayMs: 0, powerOffDelayMs: 0 }),
        users: [{ username: 'admin', password: `pw-${s.vm}`, role: 'Administrator' }],
      }),
    });
    await agent.apply(fleet);
  });
  afterEach(async () => {
    await agent.close();
  });

  const rf = async (method: string, path: string, auth?: string, body?: unknown): Promise<number> => {
    const res = await fetch(`http://127.0.0.1:${agent.redfish.port}${path}`, {
      method,
      headers: { ...(auth ? { authorization: auth } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    await res.arrayBuffer();
    return res.status;
  };
  const scrape = async (): Promise<Sample[]> => {
    const res = await fetch(agent.metrics!.url);
    expect(res.status).to.equal(200);
    return parseExposition(await res.text()).samples;
  };
  const value = (s: Sample[], name: string, labels: Record<string, string>): number =>
    s.filter((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v)).reduce((a, x) => a + x.value, 0);
  const systemsIn = (s: Sample[]): string[] => [...new Set(s.filter((x) => x.name.startsWith('virtbmc_')).map((x) => x.labels.system))].sort() as string[];

  it('counts each system\'s Redfish requests, sessions and backend calls under its own label; unauthenticated and refused requests under system=""', async () => {
    for (let i = 0; i < 3; i++) expect(await rf('GET', '/redfish/v1/Systems/ns.vm-a', basic('admin', 'pw-vm-a'))).to.equal(200);
    expect(await rf('GET', '/redfish/v1/Systems/ns.vm-b', basic('admin', 'pw-vm-b'))).to.equal(200);
    expect(await rf('POST', '/redfish/v1/Systems/ns.vm-b/Actions/ComputerSystem.Reset', basic('admin', 'pw-vm-b'), { ResetType: 'On' })).to.be.oneOf([200, 204]);
    expect(await rf('GET', '/redfish/v1/Systems/ns.vm-a', basic('admin', 'wrong'))).to.equal(401);
    expect(await rf('GET', '/redfish/v1')).to.equal(200);
    expect(await rf('POST', '/redfish/v1/SessionService/Sessions', undefined, { UserName: 'admin', Password: 'pw-vm-b' })).to.equal(201);

    const s = await scrape();
    const req = 'virtbmc_requests_total';
    // the operationId of the System GET: a's only Redfish operation
    const ops = [...new Set(s.filter((x) => x.name === req && x.labels.system === 'ns.vm-a').map((x) => x.labels.operation))];
    expect(ops, 'a has its own request series').to.have.length(1);
    const opA = ops[0]!;
    expect(value(s, req, { system: 'ns.vm-a', protocol: 'redfish', operation: opA, status: '200' })).to.equal(3);
    expect(value(s, req, { system: 'ns.vm-b', protocol: 'redfish', operation: opA, status: '200' })).to.equal(1);
    expect(value(s, req, { system: '', protocol: 'redfish', status: '401' }), 'a refused login is no system\'s').to.equal(1);
    expect(value(s, req, { system: 'ns.vm-a', status: '401' })).to.equal(0);
    expect(value(s, 'virtbmc_request_duration_seconds_count', { system: 'ns.vm-a', protocol: 'redfish', operation: opA })).to.equal(3);
    expect(value(s, 'virtbmc_sessions_active', { system: 'ns.vm-b', protocol: 'redfish' })).to.equal(1);
    expect(value(s, 'virtbmc_sessions_active', { system: 'ns.vm-a', protocol: 'redfish' })).to.equal(0);
    expect(value(s, 'virtbmc_backend_call_duration_seconds_count', { system: 'ns.vm-b', call: 'power' })).to.equal(1);
    expect(value(s, 'virtbmc_backend_call_duration_seconds_count', { system: 'ns.vm-a', call: 'power' })).to.equal(0);
    // every virtbmc_ series names a served system or none: bounded by the fleet
    expect(systemsIn(s)).to.deep.equal(['', 'ns.vm-a', 'ns.vm-b']);
  });

  it('IPMI commands count under the system of the port; a system that leaves takes every series of its label with it', async function () {
    if (haveCommand('ipmitool')) {
      const r = await run('ipmitool', ['-I', 'lanplus', '-C', '17', '-H', '127.0.0.1', '-p', String(agent.ipmiPort('ns.vm-a')), '-U', 'admin', '-P', 'pw-vm-a', '-N', '2', '-R', '2', 'chassis', 'power', 'status'], 20_000);
      expect(r.code, r.out).to.equal(0);
      const s = await scrape();
      expect(value(s, 'virtbmc_requests_total', { system: 'ns.vm-a', protocol: 'ipmi', status: '0x00' })).to.be.greaterThan(0);
      expect(value(s, 'virtbmc_requests_total', { system: 'ns.vm-b', protocol: 'ipmi' })).to.equal(0);
    }
    expect(await rf('GET', '/redfish/v1/Systems/ns.vm-b', basic('admin', 'pw-vm-b'))).to.equal(200);
    expect(await rf('POST', '/redfish/v1/Systems/ns.vm-b/Actions/ComputerSystem.Reset', basic('admin', 'pw-vm-b'), { ResetType: 'On' })).to.be.oneOf([200, 204]);
    expect(await rf('POST', '/redfish/v1/SessionService/Sessions', undefined, { UserName: 'admin', Password: 'pw-vm-b' })).to.equal(201);
    const before = await scrape();
    expect(before.filter((x) => x.labels.system === 'ns.vm-b').map((x) => x.name)).to.include.members([
      'virtbmc_requests_total',
      'virtbmc_sessions_active',
      'virtbmc_backend_call_duration_seconds_count',
      'virtbmc_events_total',
    ]);

    await agent.apply([fleet[0]!]);
    const after = await scrape();
    expect(after.filter((x) => x.labels.system === 'ns.vm-b'), 'no series of a system that left').to.deep.equal([]);
    expect(systemsIn(after)).to.deep.equal(['', 'ns.vm-a']);
    expect(value(after, 'virtbmc_requests_total', { system: 'ns.vm-a' }), 'the others keep theirs').to.be.greaterThan(0);
    // it comes back: counted from zero under the same label
    await agent.apply(fleet);
    expect(await rf('GET', '/redfish/v1/Systems/ns.vm-b', basic('admin', 'pw-vm-b'))).to.equal(200);
    const back = await scrape();
    expect(value(back, 'virtbmc_requests_total', { system: 'ns.vm-b', protocol: 'redfish', status: '200' })).to.equal(1);
  });
});
