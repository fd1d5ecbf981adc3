/**
 * Agent metrics (src/agent/metrics.ts): a scrape of the loopback listener parses as Prometheus
 * text format (a promtool-like check written here: HELP/TYPE before samples, label syntax,
 * histogram buckets cumulative with +Inf = _count) and shows what the agent did: Redfish requests
 * by operationId and status, IPMI commands by completion code, sessions, failed logins, backend
 * calls and errors, event deliveries, SSE clients.
 */
import http from 'node:http';
import { expect } from 'chai';
import { startAgent, type Agent } from '../../src/agent/agent.js';
import { AgentMetrics } from '../../src/agent/metrics.js';
import { SimulatedMachine } from '../../src/backend/simulator/simulator.js';
import { nullLogger } from '../../src/common/logger.js';
import { ADMIN, OPERATOR, READONLY } from '../helpers/agent.js';
import { startEventReceiver, type EventReceiver } from '../helpers/event-receiver.js';
import { haveCommand, requireClient } from '../helpers/clients.js';
import { run } from '../helpers/exec.js';
import { parseExposition, type Sample } from '../helpers/prom.js';

const basic = (u: { username: string; password: string }): string => 'Basic ' + Buffer.from(`${u.username}:${u.password}`).toString('base64');

describe('agent metrics', function () {
  let agent: Agent;
  let sim: SimulatedMachine;
  let rx: EventReceiver;
  beforeEach(async () => {
    rx = await startEventReceiver();
    sim = new SimulatedMachine({ powerOnDelayMs: 0, powerOffDelayMs: 0 });
    agent = await startAgent({
      machine: sim,
      users: [ADMIN, OPERATOR, READONLY],
      logger: nullLogger(),
      address: '127.0.0.1',
      ipmi: { port: 0 },
      redfish: { port: 0 },
      events: { bridge: { healthIntervalMs: 0 } },
      metrics: { registry: new AgentMetrics(), listen: { address: '127.0.0.1', port: 0 } },
    });
  });
  afterEach(async () => {
    await agent.close();
    await rx.close();
  });

  const scrape = async (): Promise<{ samples: Sample[]; types: Map<string, string>; text: string }> => {
    const res = await fetch(agent.metrics!.url);
    expect(res.status).to.equal(200);
    expect(res.headers.get('content-type')).to.match(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    return { ...parseExposition(text), text };
  };
  const value = (s: Sample[], name: string, labels: Record<string, string>): number =>
    s.filter((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v)).reduce((a, x) => a + x.value, 0);

  it('listens on loopback only and answers /metrics alone', async () => {
    expect(agent.metrics!.url).to.match(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    const other = await fetch(agent.metrics!.url.replace('/metrics', '/'));
    expect(other.status).to.equal(404);
  });

  it('counts Redfish requests by operationId and status, failed logins, sessions, backend calls, deliveries and SSE clients', async () => {
    const base = `http://127.0.0.1:${agent.redfish!.port}`;
    expect((await fetch(`${base}/redfish/v1/Systems/1`, { headers: { authorization: basic(ADMIN) } })).status).to.equal(200);
    expect((await fetch(`${base}/redfish/v1/Systems/1`, { headers: { authorization: basic({ username: 'admin', password: 'nope' }) } })).status).to.equal(401);
    const login = await fetch(`${base}/redfish/v1/SessionService/Sessions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ UserName: 'admin', Password: ADMIN.password }) });
    expect(login.status).to.equal(201);
    await fetch(`${base}/redfish/v1/EventService/Subscriptions`, { method: 'POST', headers: { authorization: basic(ADMIN), 'content-type': 'application/json' }, body: JSON.stringify({ Destination: rx.url }) });
    const sse = await new Promise<http.IncomingMessage>((resolve) => http.get({ host: '127.0.0.1', port: agent.redfish!.port, path: '/redfish/v1/EventService/SSE', headers: { authorization: basic(READONLY) } }, resolve));
    try {
      sim.setAvailable(false);
      expect((await fetch(`${base}/redfish/v1/Systems/1`, { headers: { authorization: basic(ADMIN) } })).status).to.equal(503);
      sim.setAvailable(true);
      await sim.power('on');
      await rx.waitFor((got) => got.some((x) => x.body.Events.some((e) => e.MessageId.endsWith('ResourcePoweredOn'))), 'a delivery');
      const { samples, types } = await scrape();
      expect(types.get('virtbmc_requests_total')).to.equal('counter');
      expect(types.get('virtbmc_request_duration_seconds')).to.equal('histogram');
      expect(value(samples, 'virtbmc_requests_total', { protocol: 'redfish', operation: 'getSystem', status: '200' })).to.equal(1);
      expect(value(samples, 'virtbmc_requests_total', { protocol: 'redfish', operation: 'getSystem', status: '401' })).to.equal(1);
      expect(value(samples, 'virtbmc_requests_total', { protocol: 'redfish', operation: 'getSystem', status: '503' })).to.equal(1);
      expect(value(samples, 'virtbmc_login_failures_total', { protocol: 'redfish' })).to.equal(1);
      expect(value(samples, 'virtbmc_sessions_active', { protocol: 'redfish' })).to.equal(1);
      expect(value(samples, 'virtbmc_backend_errors_total', { code: 'Unavailable' })).to.be.greaterThan(0);
      expect(value(samples, 'virtbmc_backend_call_duration_seconds_count', {})).to.be.greaterThan(0);
      expect(value(samples, 'virtbmc_event_deliveries_total', { result: 'delivered' })).to.be.greaterThan(0);
      expect(value(samples, 'virtbmc_sse_clients', {})).to.equal(1);
      // no path, query or user name in any label
      for (const s of samples) for (const v of Object.values(s.labels)) expect(v).not.to.match(/\/redfish|admin|\?/);
    } finally {
      sse.destroy();
    }
  });

  it('counts IPMI commands by name and completion code (ipmitool power on) and the IPMI failed login', async function () {
    requireClient(this, haveCommand('ipmitool'), 'ipmitool');
    const args = ['-I', 'lanplus', '-H', '127.0.0.1', '-p', String(agent.ipmi!.port), '-N', '3', '-R', '3'];
    expect((await run('ipmitool', [...args, '-U', ADMIN.username, '-P', ADMIN.password, 'power', 'on'])).code).to.equal(0);
    await run('ipmitool', [...args, '-U', 'nobody', '-P', 'x', '-R', '1', 'power', 'status']);
    const { samples } = await scrape();
    expect(value(samples, 'virtbmc_requests_total', { protocol: 'ipmi', operation: 'Chassis Control', status: '0x00' })).to.equal(1);
    expect(value(samples, 'virtbmc_login_failures_total', { protocol: 'ipmi' })).to.be.at.least(1);
    // Get Chassis Status reads the power state synchronously (powerStateNow): still timed as a getPowerState
    const reads = value(samples, 'virtbmc_backend_call_duration_seconds_count', { call: 'getPowerState' });
    expect((await run('ipmitool', [...args, '-U', ADMIN.username, '-P', ADMIN.password, 'power', 'status'])).code).to.equal(0);
    const after = (await scrape()).samples;
    expect(value(after, 'virtbmc_requests_total', { protocol: 'ipmi', operation: 'Get Chassis Status', status: '0x00' })).to.be.at.least(1);
    expect(value(after, 'virtbmc_backend_call_duration_seconds_count', { call: 'getPowerState' })).to.be.greaterThan(reads);
  });
});
