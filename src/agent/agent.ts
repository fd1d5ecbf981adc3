/**
 * The agent: one machine behind two protocol servers. Thin on purpose; protocol logic lives in
 * src/ipmi and src/redfish, machine logic in src/backend.
 */
import { AccountStore } from '../accounts/store.js';
import { DEFAULT_LOCKOUT_POLICY, LoginLockout, type LockoutPolicy } from '../accounts/lockout.js';
import type { Machine } from '../backend/types.js';
import type { Logger } from '../common/logger.js';
import { startEvents, type AgentEvents, type StartEventsOptions } from '../events/index.js';
import { redfishServiceShuttingDown, redfishServiceStarted } from '../events/emit.js';
import { attachMetrics } from '../common/metrics.js';
import type { AgentMetrics } from './metrics.js';
import { instrumentMachine, startMetricsServer, type MetricsServer } from './metrics-server.js';
import { NetworkModel } from '../common/network.js';
import { startIpmiServer, type IpmiProtocolServer, type IpmiServerOptions } from '../ipmi/server.js';
import { startRedfishServer, type RedfishServerOptions } from '../redfish/server.js';
import type { ProtocolServer, UserAccount } from './types.js';

export interface AgentOptions {
  machine: Machine;
  /** The configured accounts; ignored when `accounts` is given */
  users: readonly UserAccount[];
  /**
   * This machine's account store, shared by IPMI and Redfish (src/accounts/store.ts); default: a
   * store over `users` in memory. One per machine: a shared-mode process passes one per VM.
   */
  accounts?: AccountStore;
  logger: Logger;
  address: string;
  /** undefined/false disables IPMI */
  ipmi: false | Omit<IpmiServerOptions, 'machine' | 'users' | 'accounts' | 'logger' | 'address'>;
  /** undefined/false disables Redfish */
  redfish: false | Omit<RedfishServerOptions, 'machine' | 'users' | 'accounts' | 'logger' | 'address'>;
  /**
   * Initial login lockout policy (Redfish AccountService AccountLockout*), one lockout shared by
   * IPMI and Redfish. A server given its own lockout/lockoutPolicy keeps that instead.
   */
  lockoutPolicy?: LockoutPolicy;
  /** Eventing (src/events): history size, subscription persistence, delivery, health poll */
  events?: StartEventsOptions;
  /**
   * Prometheus metrics (src/agent/metrics.ts): counted when given; served on `listen` when that is
   * given too (the CLI's --metrics-port, loopback by default)
   */
  metrics?: { registry: AgentMetrics; listen?: { address: string; port: number } };
  /**
   * The agent's own network identity, reported by IPMI LAN configuration and Redfish Manager
   * EthernetInterfaces alike; default: read from the interface holding `address`.
   */
  network?: NetworkModel;
}

export interface Agent {
  readonly machine: Machine;
  readonly servers: readonly ProtocolServer[];
  readonly ipmi?: ProtocolServer;
  readonly redfish?: ProtocolServer;
  /** The event source and subscriptions shared by IPMI (SEL) and Redfish (EventService, EventLog) */
  readonly events: AgentEvents;
  /** The accounts both protocols serve */
  readonly accounts: AccountStore;
  /** The metrics listener, when one was asked for */
  readonly metrics?: MetricsServer;
  close(): Promise<void>;
}

export async function startAgent(opts: AgentOptions): Promise<Agent> {
  const m = opts.metrics?.registry;
  // with metrics, every backend call is timed; servers and events all use this one object
  // (metrics.ts with prom-client is loaded by whoever built `m`, not by the agent: docs/scale.md)
  const machine = m ? instrumentMachine(opts.machine, m) : opts.machine;
  if (m) attachMetrics(machine, m);
  const accounts = opts.accounts ?? new AccountStore(opts.users);
  const common = { machine, users: accounts.users, accounts, address: opts.address };
  const lockout = new LoginLockout(opts.lockoutPolicy ?? DEFAULT_LOCKOUT_POLICY);
  const network = opts.network ?? new NetworkModel({ listenAddress: opts.address });
  const own = (o: { lockout?: unknown; lockoutPolicy?: unknown }) => o.lockout !== undefined || o.lockoutPolicy !== undefined;
  const servers: ProtocolServer[] = [];
  // before the servers: their first logins and actions are events already
  const eventOpts: StartEventsOptions = m
    ? { ...opts.events, subscriptions: { ...opts.events?.subscriptions, hooks: { ...m.deliveryHooks(), ...opts.events?.subscriptions?.hooks } } }
    : (opts.events ?? {});
  const events = await startEvents(machine, eventOpts);
  m?.watchEvents(events);
  let metricsServer: MetricsServer | undefined;
  let ipmi: IpmiProtocolServer | undefined;
  let redfish: ProtocolServer | undefined;
  try {
    if (opts.ipmi) {
      ipmi = await startIpmiServer({
        ...(own(opts.ipmi) ? {} : { lockout }),
        network,
        ...opts.ipmi,
        ...common,
        logger: opts.logger.child({ proto: 'ipmi' }),
      });
      servers.push(ipmi);
    }
    if (opts.redfish) {
      redfish = await startRedfishServer({
        // Redfish's ManagerNetworkProtocol reports the IPMI port actually served (unless told otherwise).
        ...(ipmi ? { ipmiPort: ipmi.port } : {}),
        // Manager SerialConsole: SOL as the IPMI server runs it (backend console, SOL Enable parameter)
        ...(ipmi ? { serialConsole: () => ipmi!.solEnabled() } : {}),
        ...(own(opts.redfish) ? {} : { lockout }),
        network,
        ...opts.redfish,
        ...common,
        logger: opts.logger.child({ proto: 'redfish' }),
      });
      servers.push(redfish);
      // listening: HeartbeatEvent RedfishServiceStarted in the EventLog (and to matching subscribers)
      redfishServiceStarted(machine);
    }
    const listen = opts.metrics?.listen;
    if (m && listen) {
      metricsServer = await startMetricsServer(m, listen.address, listen.port);
      opts.logger.info({ url: metricsServer.url }, 'metrics listening');
    }
  } catch (e) {
    await Promise.allSettled(servers.map((s) => s.close()));
    events.close();
    throw e;
  }
  let closed = false;
  return {
    machine,
    servers,
    events,
    accounts,
    ...(metricsServer ? { metrics: metricsServer } : {}),
    ...(ipmi ? { ipmi } : {}),
    ...(redfish ? { redfish } : {}),
    async close() {
      if (closed) return;
      closed = true;
      if (redfish) {
        // still serving: the log, SSE streams and subscribers hear that it stops; subscribers get a
        // bounded time to take it (StartEventsOptions.subscriptions.shutdownSettleMs)
        redfishServiceShuttingDown(machine);
        await events.subscriptions.settle();
      }
      await Promise.allSettled([...servers.map((s) => s.close()), metricsServer?.close()]);
      events.close();
      await opts.machine.close();
    },
  };
}
