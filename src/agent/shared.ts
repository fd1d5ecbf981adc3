/**
 * Shared mode (issue 16, docs/scale.md): one agent process serves the VMs of a fleet document.
 * One Redfish listener and one koa app for all (src/redfish/core/tenancy.ts picks each request's
 * tenant), one IPMI UDP socket per VM on its fleet ipmiPort, each with its own machine, accounts,
 * sessions and events. Systems come and go at runtime with `apply(systems)`: only the difference
 * is started or stopped.
 */
import { readFileSync } from 'node:fs';
import { AccountStore, type PersistFn, type StoredAccount } from '../accounts/store.js';
import { DEFAULT_LOCKOUT_POLICY, LoginLockout, type LockoutPolicy } from '../accounts/lockout.js';
import type { Machine } from '../backend/types.js';
import type { Logger } from '../common/logger.js';
import { NetworkModel } from '../common/network.js';
import { startEvents, type AgentEvents, type StartEventsOptions } from '../events/index.js';
import { redfishServiceShuttingDown, redfishServiceStarted } from '../events/emit.js';
import { startIpmiServer, SweepGroup, type IpmiProtocolServer, type IpmiServerOptions } from '../ipmi/server.js';
import { createRedfishApp, redfishCallback } from '../redfish/app.js';
import { sharedConsoleSource } from '../redfish/console-ws.js';
import { MemorySessionStore, DEFAULT_SESSION_TIMEOUT_SECONDS } from '../redfish/core/sessions.js';
import { Tenancy, TenantSessionStore, tenantPaths } from '../redfish/core/tenancy.js';
import { REDFISH_IDS, type RedfishDeps } from '../redfish/core/types.js';
import { nameBasedUuid } from '../redfish/core/uuid.js';
import { modules } from '../redfish/resources/index.js';
import { createRedfishDeps, listenRedfish, type RedfishServerOptions } from '../redfish/server.js';
import { TlsCertificate } from '../redfish/tls-certificate.js';
import type { ProtocolServer, UserAccount } from './types.js';
import { attachMetrics, countSessions } from '../common/metrics.js';
import type { AgentMetrics } from './metrics.js';
import { instrumentMachine, startMetricsServer, type MetricsServer } from './metrics-server.js';

/** One entry of the fleet document (docs/scale.md, /work/brief/shared-contract.md). */
export interface FleetSystem {
  id: string;
  namespace: string;
  vm: string;
  vmbmc?: string;
  vmbmcUid?: string;
  secretName?: string;
  /** UDP port of this VM's IPMI socket; 0 = no IPMI */
  ipmiPort: number;
  media?: { storageClassName?: string; volumeMode?: 'Filesystem' | 'Block' };
}

const ID_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?\.[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

/** Parse and check a fleet document: ids `<namespace>.<vm>`, unique ids and non-zero ipmiPorts. */
export function parseFleet(text: string): FleetSystem[] {
  const doc = JSON.parse(text) as unknown;
  const systems = (doc as { systems?: unknown }).systems;
  if (!Array.isArray(systems)) throw new Error('fleet document: "systems" must be an array');
  const ids = new Set<string>();
  const ports = new Set<number>();
  return systems.map((raw: unknown, i) => {
    const s = raw as Partial<FleetSystem>;
    const where = `fleet document: systems[${i}]`;
    if (typeof s.namespace !== 'string' || typeof s.vm !== 'string') throw new Error(`${where}: namespace and vm are required strings`);
    const id = s.id ?? `${s.namespace}.${s.vm}`;
    if (id !== `${s.namespace}.${s.vm}` || !ID_RE.test(id)) throw new Error(`${where}: id must be "<namespace>.<vm>" (got ${JSON.stringify(id)})`);
    if (ids.has(id)) throw new Error(`${where}: duplicate id ${id}`);
    ids.add(id);
    const port = s.ipmiPort ?? 0;
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`${where}: ipmiPort must be 0..65535`);
    if (port !== 0 && ports.has(port)) throw new Error(`${where}: ipmiPort ${port} used twice`);
    if (port !== 0) ports.add(port);
    return { ...s, id, namespace: s.namespace, vm: s.vm, ipmiPort: port } as FleetSystem;
  });
}

export const readFleetFile = (path: string): FleetSystem[] => parseFleet(readFileSync(path, 'utf8'));

/** What a system needs from its backend: the machine and its accounts (KubeVirt: VM and Secret). */
export interface TenantBackend {
  machine: Machine;
  /** the accounts to start with (KubeVirt: the list saved in the Secret, or the Secret's account) */
  users: readonly (UserAccount | StoredAccount)[];
  /** where the system's account changes are written (KubeVirt: its Secret's virtbmc-accounts key); default memory only */
  persist?: PersistFn;
  /** eventing options of this system (KubeVirt: subscriptions kept in its events ConfigMap) */
  events?: StartEventsOptions;
  /**
   * Called once the system's account store and events exist (KubeVirt: follow the Secret into
   * the store, record Kubernetes Events from the hub). Returns what undoes it, if anything.
   */
  bind?(t: { accounts: AccountStore; events: AgentEvents; endSessions: (username: string) => number }): (() => void) | void;
  /** Called after the system stopped (its machine closed): release what the backend holds for it */
  release?(): Promise<void> | void;
}

export interface SharedAgentOptions {
  logger: Logger;
  address: string;
  redfishPort: number;
  /** IPMI options common to every VM's socket; false = no IPMI at all */
  ipmi: false | Omit<IpmiServerOptions, 'machine' | 'users' | 'logger' | 'address' | 'port' | 'lockout' | 'network'>;
  lockoutPolicy?: LockoutPolicy;
  sessionTimeoutSeconds?: number;
  network?: NetworkModel;
  /** Makes a system's machine and accounts (simulator or KubeVirt) */
  backend(system: FleetSystem): Promise<TenantBackend>;
  now?: () => Date;
  /**
   * Serve Redfish over HTTPS (plain HTTP on the same port redirected or refused), exactly as a
   * per-VM agent (src/redfish/server.ts listenRedfish): one certificate for every system, re-read
   * from certFile/keyFile every reloadSeconds. Never replaceable over Redfish (`store` is ignored):
   * a tenant's Administrator may not swap the certificate the other tenants are served with.
   */
  tls?: Omit<NonNullable<RedfishServerOptions['tls']>, 'store'>;
  /**
   * Prometheus metrics (src/agent/metrics.ts, built with systemLabel): every series carries
   * `system=<id>` (system="" for requests no system answered), a system's series go when it
   * leaves; served on `listen` when given (the CLI's --metrics-port).
   */
  metrics?: { registry: AgentMetrics; listen?: { address: string; port: number } };
}

interface Running {
  system: FleetSystem;
  machine: Machine;
  events: AgentEvents;
  ipmi?: IpmiProtocolServer;
  backend: TenantBackend;
  unbind?: () => void;
}

export interface SharedAgent {
  readonly redfish: ProtocolServer;
  /** The metrics listener, when one was asked for */
  readonly metrics?: MetricsServer;
  /** Running systems by id */
  ids(): string[];
  /** The IPMI port a system's socket got (0 = none) */
  ipmiPort(id: string): number | undefined;
  machine(id: string): Machine | undefined;
  /** Serve exactly these systems: start the new ones, stop the gone ones, restart a changed entry (port, Secret, media) */
  apply(systems: readonly FleetSystem[]): Promise<void>;
  close(): Promise<void>;
}

/** Two fleet entries describe the same system the same way (key order does not matter). */
function sameEntry(a: FleetSystem, b: FleetSystem): boolean {
  const canon = (v: unknown): unknown =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)).map(([k, w]) => [k, canon(w)]))
      : v;
  return JSON.stringify(canon(a)) === JSON.stringify(canon(b));
}

/** Namespace of the shared service's ServiceRoot UUID and of each tenant's (fixed random UUID of this project). */
const SHARED_UUID_NAMESPACE = '0c6f3a52-8f0e-4d8b-b7c1-5a3e2d9f4e61';

export async function startSharedAgent(opts: SharedAgentOptions): Promise<SharedAgent> {
  const now = opts.now ?? (() => new Date());
  // the root's lockout counts Redfish logins that match no VM (wrong name or password anywhere)
  const rootLockout = new LoginLockout(opts.lockoutPolicy ?? DEFAULT_LOCKOUT_POLICY, () => now().getTime());
  const network = opts.network ?? new NetworkModel({ listenAddress: opts.address });
  const timeout = opts.sessionTimeoutSeconds ?? DEFAULT_SESSION_TIMEOUT_SECONDS;
  // The root deps serve unauthenticated routes and refuse wrong credentials. Its machine is only the
  // key under which metrics and login-failure events are looked up; no handler that reads a
  // machine runs with it (every such route needs a login, which the root has no accounts for).
  const rootKey = {} as Machine;
  const meter = opts.metrics?.registry;
  if (meter && !meter.systemLabel) throw new Error('shared agent: the metrics registry needs systemLabel');
  // requests no system answers (ServiceRoot, refused logins) count under system=""
  if (meter) attachMetrics(rootKey, meter);
  const root: RedfishDeps = {
    machine: rootKey,
    users: [],
    accounts: new AccountStore([], { requireAdmin: false }),
    sessions: new MemorySessionStore(timeout, now),
    lockout: rootLockout,
    logger: opts.logger.child({ proto: 'redfish' }),
    startedAt: now(),
    serviceUuid: nameBasedUuid(SHARED_UUID_NAMESPACE, `${opts.address}:${opts.redfishPort}`),
    ids: REDFISH_IDS,
    now,
    tls: opts.tls !== undefined,
    network,
  };
  // one certificate for the shard, shown to every tenant (CertificateService), replaced by nobody over Redfish
  const certificate = opts.tls
    ? new TlsCertificate(
        opts.tls.cert,
        opts.tls.key,
        opts.tls.certFile && opts.tls.keyFile ? { certFile: opts.tls.certFile, keyFile: opts.tls.keyFile } : undefined,
        undefined,
        'this certificate serves every system of a shared agent; the controller issues and rotates it (docs/security.md "TLS by default")',
      )
    : undefined;
  if (certificate) root.certificate = certificate;
  const tls = opts.tls ? { ...opts.tls, cert: certificate!.pem, key: certificate!.key } : undefined;
  const tenancy = new Tenancy(root);
  // one timer expires the IPMI sessions of every VM's socket (src/ipmi/server.ts SweepGroup)
  const ipmiSweeper = new SweepGroup();
  const app = createRedfishApp(root, modules, tenancy);
  // the browser console of every tenant, on the shared port (src/redfish/console-ws.ts sharedConsoleSource)
  const consoles = sharedConsoleSource(tenancy, { tls: tls !== undefined, logger: root.logger });
  const redfish = await listenRedfish(redfishCallback(app), { address: opts.address, port: opts.redfishPort, logger: root.logger, ...(tls ? { tls } : {}) }, certificate, consoles);
  const running = new Map<string, Running>();
  let metricsServer: MetricsServer | undefined;
  if (meter && opts.metrics?.listen) {
    try {
      metricsServer = await startMetricsServer(meter, opts.metrics.listen.address, opts.metrics.listen.port);
    } catch (e) {
      await redfish.close();
      throw e;
    }
    opts.logger.info({ url: metricsServer.url }, 'metrics listening');
  }

  /**
   * End the Redfish sessions of `username` that reach system `id` (its credentials changed at the
   * source, e.g. the Secret): in any tenant's store, since a login matching several systems lives
   * in the first one's. Returns how many ended.
   */
  const endSessions = (id: string, username: string): number => {
    let n = 0;
    for (const tid of tenancy.ids()) {
      const store = tenancy.get(tid)?.deps.sessions;
      if (!(store instanceof TenantSessionStore)) continue;
      for (const s of store.list()) {
        if (s.username === username && (store.scopeOf(s.id) ?? [tid]).includes(id) && store.delete(s.id)) n++;
      }
    }
    return n;
  };

  const start = async (system: FleetSystem): Promise<void> => {
    const log = opts.logger.child({ system: system.id });
    const backend = await opts.backend(system);
    const { users: initial } = backend;
    // with metrics: this system's meter (label system=<id>) times its backend calls and counts its requests
    const scope = meter?.system(system.id);
    const machine = scope ? instrumentMachine(backend.machine, scope) : backend.machine;
    if (scope) attachMetrics(machine, scope);
    // one account store per VM behind both of its protocols (src/accounts/store.ts), as in a per-VM agent
    const accounts = new AccountStore(initial, { requireAdmin: false, ...(backend.persist ? { persist: backend.persist } : {}) });
    const users = accounts.users;
    // each VM keeps its own lockout (IPMI and Redfish, its AccountService knobs), as a per-VM agent
    const lockout = new LoginLockout(opts.lockoutPolicy ?? DEFAULT_LOCKOUT_POLICY, () => now().getTime());
    let events: AgentEvents;
    try {
      // push subscriptions speak the system's ids (payloads, OriginResources filters), as the service does
      const base = backend.events ?? {};
      const hooks = scope ? { hooks: { ...scope.deliveryHooks(), ...base.subscriptions?.hooks } } : {};
      events = await startEvents(machine, { ...base, subscriptions: { ...base.subscriptions, ...hooks, paths: (text) => tenantPaths(text, system.id) } });
      scope?.watchEvents(events);
    } catch (e) {
      meter?.removeSystem(system.id);
      await machine.close();
      await backend.release?.();
      throw e;
    }
    let ipmi: IpmiProtocolServer | undefined;
    let unbind: (() => void) | undefined;
    try {
      if (opts.ipmi && system.ipmiPort !== 0) {
        ipmi = await startIpmiServer({ ...opts.ipmi, machine, users, accounts, lockout, network, address: opts.address, port: system.ipmiPort, logger: log.child({ proto: 'ipmi' }), sweeper: ipmiSweeper });
      }
      const deps = await createRedfishDeps(
        {
          machine,
          users,
          accounts,
          logger: log.child({ proto: 'redfish' }),
          address: opts.address,
          port: redfish.port,
          lockout,
          network,
          sessionTimeoutSeconds: timeout,
          ...(ipmi ? { ipmiPort: ipmi.port, serialConsole: () => ipmi!.solEnabled() } : {}),
        },
        { now },
      );
      const seq = tenancy.allocateSeq();
      deps.sessions = new TenantSessionStore(deps.sessions, seq);
      // task ids `<seq>-<n>`: the task URI (and its monitor) name the system that runs it
      deps.taskIdPrefix = `${seq}-`;
      // the shared listener's scheme and certificate (ManagerNetworkProtocol HTTPS, CertificateService)
      deps.tls = root.tls;
      if (certificate) deps.certificate = certificate;
      countSessions(machine, 'redfish', () => deps.sessions.list().length);
      unbind = backend.bind?.({ accounts, events, endSessions: (username) => endSessions(system.id, username) }) ?? undefined;
      tenancy.add({ id: system.id, deps });
      // the shared listener serves this system from now on: its log says its Redfish service
      // started (one entry per system, when it joins; the listener itself started before)
      redfishServiceStarted(machine);
    } catch (e) {
      unbind?.();
      await ipmi?.close();
      events.close();
      await machine.close();
      await backend.release?.();
      meter?.removeSystem(system.id);
      throw e;
    }
    running.set(system.id, { system, machine, events, backend, ...(ipmi ? { ipmi } : {}), ...(unbind ? { unbind } : {}) });
    log.info({ ipmiPort: ipmi?.port ?? 0 }, 'system added');
  };

  /**
   * Systems leaving this agent (removed from the fleet, or the agent stopping): each one's log,
   * SSE streams and subscribers hear RedfishServiceShuttingDown while it is still served, and
   * the subscribers of all of them get one bounded time together to take it.
   */
  const announceStop = async (rs: readonly Running[]): Promise<void> => {
    for (const r of rs) redfishServiceShuttingDown(r.machine);
    await Promise.all(rs.map((r) => r.events.subscriptions.settle()));
  };

  /** Stops one system (its callers announce it first: announceStop). */
  const stop = async (id: string): Promise<void> => {
    const r = running.get(id);
    if (!r) return;
    running.delete(id);
    tenancy.remove(id);
    r.unbind?.();
    await r.ipmi?.close();
    r.events.close();
    await r.machine.close();
    await r.backend.release?.();
    meter?.removeSystem(id);
    opts.logger.info({ system: id }, 'system removed');
  };

  // one change at a time, in order
  let chain: Promise<void> = Promise.resolve();
  const apply = (systems: readonly FleetSystem[]): Promise<void> => {
    const run = async (): Promise<void> => {
      const want = new Map(systems.map((s) => [s.id, s]));
      // any change of the entry (port, Secret, VMBMC uid, media) restarts that system alone
      const leaving = [...running.values()].filter((cur) => {
        const next = want.get(cur.system.id);
        return !next || !sameEntry(next, cur.system);
      });
      await announceStop(leaving);
      for (const r of leaving) await stop(r.system.id);
      const failures: string[] = [];
      for (const s of systems) {
        if (running.has(s.id)) continue;
        try {
          await start(s);
        } catch (e) {
          failures.push(`${s.id}: ${(e as Error).message}`);
          opts.logger.error({ system: s.id, err: (e as Error).message }, 'system failed to start');
        }
      }
      if (failures.length) throw new Error(`shared agent: ${failures.length} system(s) failed to start: ${failures.slice(0, 5).join('; ')}`);
    };
    const p = chain.then(run);
    chain = p.catch(() => undefined);
    return p;
  };

  return {
    redfish,
    ...(metricsServer ? { metrics: metricsServer } : {}),
    ids: () => [...running.keys()].sort(),
    ipmiPort: (id) => {
      const r = running.get(id);
      return r ? (r.ipmi?.port ?? 0) : undefined;
    },
    machine: (id) => running.get(id)?.machine,
    apply,
    async close() {
      await chain;
      await announceStop([...running.values()]);
      await redfish.close();
      for (const id of [...running.keys()]) await stop(id);
      await metricsServer?.close();
    },
  };
}

/** The simulator fleet (`--simulate-fleet N`): ids sim.vm-0001..., IPMI ports from `firstIpmiPort` (0 = none). */
export function simulatedFleet(n: number, firstIpmiPort: number): FleetSystem[] {
  return Array.from({ length: n }, (_, i) => {
    const vm = `vm-${String(i + 1).padStart(4, '0')}`;
    return { id: `sim.${vm}`, namespace: 'sim', vm, ipmiPort: firstIpmiPort === 0 ? 0 : firstIpmiPort + i };
  });
}

/** Simulator accounts of a fleet system: one Administrator `admin` with password `<base>-<vm>`. */
export function simulatedAccounts(system: FleetSystem, basePassword: string): UserAccount[] {
  return [{ username: 'admin', password: `${basePassword}-${system.vm}`, role: 'Administrator' }];
}
