/**
 * Start an agent in-process on loopback with free ports, backed by a simulator the test can
 * inspect (bootHistory, nmiCount, setAvailable). Use for tests that drive real clients.
 */
import { startAgent, type Agent, type AgentOptions } from '../../src/agent/agent.js';
import type { UserAccount } from '../../src/accounts/types.js';
import { SimulatedMachine, type SimulatorOptions } from '../../src/backend/simulator/simulator.js';
import type { Machine } from '../../src/backend/types.js';
import { LOOPBACK_MEDIA } from './images.js';
import { nullLogger } from '../../src/common/logger.js';
import { startSharedAgent, type FleetSystem, type SharedAgent, type SharedAgentOptions } from '../../src/agent/shared.js';

export const ADMIN: UserAccount = { username: 'admin', password: 'password', role: 'Administrator' };
export const OPERATOR: UserAccount = { username: 'operator', password: 'op-secret', role: 'Operator' };
export const READONLY: UserAccount = { username: 'viewer', password: 'viewer-pw', role: 'ReadOnly' };

export interface TestAgent {
  agent: Agent;
  /** The simulator, when the test did not pass its own machine */
  sim: SimulatedMachine;
  ipmiPort: number;
  redfishPort: number;
  redfishUrl: string;
  close(): Promise<void>;
}

export interface TestAgentOptions {
  sim?: SimulatorOptions;
  machine?: Machine;
  users?: UserAccount[];
  ipmi?: AgentOptions['ipmi'];
  redfish?: AgentOptions['redfish'];
  /** default: nothing logged */
  logger?: AgentOptions['logger'];
}

export async function startTestAgent(opts: TestAgentOptions = {}): Promise<TestAgent> {
  const sim = new SimulatedMachine({ powerOnDelayMs: 0, powerOffDelayMs: 0, mediaProbe: { egress: LOOPBACK_MEDIA }, ...opts.sim });
  const agent = await startAgent({
    machine: opts.machine ?? sim,
    users: opts.users ?? [ADMIN, OPERATOR, READONLY],
    logger: opts.logger ?? nullLogger(),
    address: '127.0.0.1',
    ipmi: opts.ipmi ?? { port: 0 },
    redfish: opts.redfish ?? { port: 0 },
  });
  return {
    agent,
    sim,
    ipmiPort: agent.ipmi?.port ?? -1,
    redfishPort: agent.redfish?.port ?? -1,
    redfishUrl: agent.redfish ? `http://127.0.0.1:${agent.redfish.port}` : '',
    close: () => agent.close(),
  };
}

export interface TestFleet {
  agent: SharedAgent;
  /** each system's simulator, by system id `<namespace>.<vm>` */
  machines: Map<string, SimulatedMachine>;
  /** the shared Redfish endpoint, http://127.0.0.1:<port> */
  base: string;
}

/**
 * A shared-mode agent (src/agent/shared.ts) on loopback serving one simulated VM per entry of
 * `accounts` (keys `<namespace>.<vm>`), each with its own accounts; `ipmiPorts` gives a system its
 * IPMI port (none: no IPMI socket for it). Machines start with zero power delays.
 */
export async function startTestFleet(o: {
  accounts: Record<string, UserAccount[]>;
  ipmi?: SharedAgentOptions['ipmi'];
  ipmiPorts?: Record<string, number>;
  sim?: SimulatorOptions;
}): Promise<TestFleet> {
  const machines = new Map<string, SimulatedMachine>();
  const agent = await startSharedAgent({
    logger: nullLogger(),
    address: '127.0.0.1',
    redfishPort: 0,
    ipmi: o.ipmi ?? false,
    backend: async (s) => {
      const m = new SimulatedMachine({ name: s.vm, powerOnDelayMs: 0, powerOffDelayMs: 0, ...o.sim });
      machines.set(s.id, m);
      return { machine: m, users: o.accounts[s.id] ?? [] };
    },
  });
  const fleet: FleetSystem[] = Object.keys(o.accounts).map((id) => {
    const dot = id.indexOf('.');
    return { id, namespace: id.slice(0, dot), vm: id.slice(dot + 1), ipmiPort: o.ipmiPorts?.[id] ?? 0 };
  });
  await agent.apply(fleet);
  return { agent, machines, base: `http://127.0.0.1:${agent.redfish.port}` };
}

/** A Redfish answer as the JSON-speaking suites read it. */
export interface RedfishReply {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
}

/**
 * A Redfish client of the service at `base` (http://127.0.0.1:<port>) with HTTP Basic of `user`
 * (default ADMIN; null: no credentials), a JSON body when given, the answer's JSON ({} when empty).
 */
export function redfishClient(base: string): (method: string, path: string, body?: unknown, user?: UserAccount | null) => Promise<RedfishReply> {
  return async (method, path, body, user = ADMIN) => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: {
        ...(user ? { authorization: 'Basic ' + Buffer.from(`${user.username}:${user.password}`).toString('base64') } : {}),
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    return { status: res.status, headers: res.headers, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
  };
}
