/**
 * Shared mode on KubeVirt (`--fleet-configmap <ns>/<name>`, issue 16, docs/scale.md): the shard
 * agent the controller runs (src/controller/shard.ts). It follows the fleet ConfigMap the
 * controller writes (key fleet.json) and serves its systems with src/agent/shared.ts:
 *
 * - the ConfigMap: a single-object list+watch (fieldSelector metadata.name, informer.ts
 *   ObjectWatch: re-list on 410, backoff, silence checks); each new document is applied as a
 *   difference (only systems added, removed or moved to another port are touched); a malformed
 *   one is logged and the current systems are kept; a deleted ConfigMap serves no system;
 * - the machines: src/backend/kubevirt/machine.ts per system, all on ONE Kubernetes client, their
 *   VM and VMI views from one namespace-wide watch per namespace (shared-informer.ts); media
 *   DataVolumes keep a single-object watch per CD-ROM drive (named RBAC, few of them);
 * - the accounts: each system's Secret (keys `username`, `password`, as in per-VM mode) by a
 *   single-object list+watch — the shard Role grants list/watch of exactly those Secrets, never
 *   `get` — followed into the system's AccountStore: a changed password replaces the old one at
 *   once (IPMI and Redfish), a missing Secret or one without both keys leaves the system without
 *   accounts (logins fail, its resources stay hidden), never a crash;
 * - events: subscriptions persist in each VM's events ConfigMap and actions are Kubernetes Events
 *   on the VM, as in per-VM mode (src/events/kube.ts).
 *
 * Account changes made through Redfish AccountService / IPMI Set User live in memory only here
 * (no write-back to the Secret in shared mode); the next Secret change overrides the Secret's account.
 */
import type { AccountStore } from '../accounts/store.js';
import type { StartEventsOptions } from '../events/index.js';
import type { Logger } from '../common/logger.js';
import { KubeClient } from '../kube/client.js';
import { Resources, type ResourceRef } from '../kube/resources.js';
import type { KubeObject } from '../kube/types.js';
import { eventsConfigMapName } from '../kube/names.js';
import { ObjectWatch } from '../backend/kubevirt/informer.js';
import { SharedWatches } from '../backend/kubevirt/shared-informer.js';
import { KubeVirtMachine, type KubeVirtMachineConfig } from '../backend/kubevirt/machine.js';
import { ConfigMapPersistence, KubeEventRecorder } from '../events/kube.js';
import { parseFleet, startSharedAgent, type FleetSystem, type SharedAgent, type SharedAgentOptions, type TenantBackend } from './shared.js';
import type { UserAccount } from './types.js';

export const FLEET_KEY = 'fleet.json';
const CONFIGMAP: ResourceRef = { group: '', version: 'v1', plural: 'configmaps', namespaced: true, kind: 'ConfigMap' };

type ConfigMap = KubeObject & { data?: Record<string, string> };
type Secret = KubeObject & { data?: Record<string, string> };

/** Watch timings and KubeVirt machine options shared by every system. */
export type FleetMachineOptions = Pick<
  KubeVirtMachineConfig,
  | 'watchMinBackoffMs'
  | 'watchMaxBackoffMs'
  | 'watchSilenceProbeMs'
  | 'watchMaxSilenceMs'
  | 'watchStaleRetryMs'
  | 'mediaProbeTimeoutMs'
  | 'mediaTls'
  | 'mediaEgress'
  | 'hotplugSyncTimeoutMs'
>;

export interface KubeVirtFleetOptions {
  /** the client-node KubeConfig (src/kube/config.ts loadKubeConfig) */
  kubeConfig: KubeClient['kc'];
  /** the fleet ConfigMap */
  configMap: { namespace: string; name: string };
  logger: Logger;
  /** the shared agent's listeners and protocol options */
  shared: Omit<SharedAgentOptions, 'backend' | 'logger'>;
  machine?: FleetMachineOptions;
  /** per-request timeout against the API server (ms), default 10000 */
  requestTimeoutMs?: number;
  /** while the API is unreachable: probe it this often (ms), default 1000 */
  apiProbeIntervalMs?: number;
  /** how long start-up and each new system wait for their first lists (ms), default 5000; they start anyway */
  syncTimeoutMs?: number;
  /** persist subscriptions and record Kubernetes Events per VM (default true) */
  kubeEvents?: boolean;
}

export interface KubeVirtFleet {
  readonly agent: SharedAgent;
  readonly client: KubeClient;
  readonly watches: SharedWatches;
  /** the fleet document applied last (after the current change, if one is under way) */
  settled(): Promise<void>;
  close(): Promise<void>;
}

/** The Secret's credentials (base64 `username` and `password`, both non-empty), else undefined. */
export function secretCredentials(secret: Secret | undefined): { username: string; password: string } | undefined {
  const d = secret?.data ?? {};
  const dec = (v: unknown): string => (typeof v === 'string' ? Buffer.from(v, 'base64').toString('utf8') : '');
  const username = dec(d['username']);
  const password = dec(d['password']);
  return username !== '' && password !== '' ? { username, password } : undefined;
}

/** Parse `<namespace>/<name>` (DNS-1123 labels / subdomain names). */
export function parseConfigMapRef(ref: string): { namespace: string; name: string } {
  const m = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?)\/([a-z0-9]([-a-z0-9.]*[a-z0-9])?)$/.exec(ref);
  if (!m) throw new Error(`--fleet-configmap must be <namespace>/<name>, got ${JSON.stringify(ref)}`);
  return { namespace: m[1] as string, name: m[3] as string };
}

/**
 * Keeps the account a Secret defines in one system's store: created, renamed or re-passworded as
 * the Secret changes, evicted when the Secret goes. One change at a time, in order.
 */
class SecretAccount {
  private id: number | undefined;
  private chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly accounts: AccountStore,
    private readonly log: Logger,
    initial: UserAccount | undefined,
    /** ends the Redfish sessions of a user whose credentials the Secret replaced or took away */
    private readonly endSessions: (username: string) => number,
  ) {
    this.id = initial ? accounts.byName(initial.username)?.id : undefined;
  }

  follow(secret: Secret | undefined): Promise<void> {
    const run = async (): Promise<void> => {
      const creds = secretCredentials(secret);
      const cur = this.id !== undefined ? this.accounts.get(this.id) : undefined;
      if (!creds) {
        if (cur) {
          await this.accounts.evict(cur.id);
          this.endSessions(cur.username);
          this.log.warn({ secret: secret?.metadata?.name }, secret ? 'the Secret lacks username or password: the system has no account now' : 'the Secret is gone: the system has no account now');
        }
        this.id = undefined;
        return;
      }
      try {
        if (cur) {
          const same = cur.username === creds.username && this.accounts.verify(creds.username, creds.password)?.id === cur.id && cur.enabled;
          if (same) return;
          await this.accounts.update(cur.id, { username: creds.username, password: creds.password, enabled: true });
          // sessions opened with the old credentials end with them (a per-VM agent restarts on a Secret change)
          const ended = this.endSessions(cur.username);
          this.log.info({ user: creds.username, sessionsEnded: ended }, 'account updated from the Secret');
        } else {
          this.id = (await this.accounts.create({ username: creds.username, password: creds.password, role: 'Administrator' })).id;
          this.log.info({ user: creds.username }, 'account created from the Secret');
        }
      } catch (e) {
        // a name or password the store refuses (too long for IPMI, taken by another account): no stale account stays
        if (cur) {
          await this.accounts.evict(cur.id);
          this.endSessions(cur.username);
        }
        this.id = undefined;
        this.log.warn({ err: (e as Error).message }, 'the Secret\'s credentials cannot be used: the system has no account');
      }
    };
    const p = this.chain.then(run);
    this.chain = p.catch(() => undefined);
    return p;
  }
}

export async function startKubeVirtFleet(opts: KubeVirtFleetOptions): Promise<KubeVirtFleet> {
  const log = opts.logger;
  const syncTimeoutMs = opts.syncTimeoutMs ?? 5_000;
  const m = opts.machine ?? {};
  const client = new KubeClient(opts.kubeConfig, {
    logger: log.child({ component: 'kube' }),
    failFast: true,
    ...(opts.requestTimeoutMs !== undefined ? { timeoutMs: opts.requestTimeoutMs } : {}),
    ...(opts.apiProbeIntervalMs !== undefined ? { probeIntervalMs: opts.apiProbeIntervalMs } : {}),
  });
  const timings = {
    ...(m.watchMinBackoffMs !== undefined ? { minBackoffMs: m.watchMinBackoffMs } : {}),
    ...(m.watchMaxBackoffMs !== undefined ? { maxBackoffMs: m.watchMaxBackoffMs } : {}),
    ...(m.watchSilenceProbeMs !== undefined ? { silenceProbeMs: m.watchSilenceProbeMs } : {}),
    ...(m.watchMaxSilenceMs !== undefined ? { maxSilenceMs: m.watchMaxSilenceMs } : {}),
    ...(m.watchStaleRetryMs !== undefined ? { staleRetryMs: m.watchStaleRetryMs } : {}),
  };
  const watches = new SharedWatches([Resources.vm, Resources.vmi], { client, logger: log.child({ component: 'watch' }), ...timings });
  const kubeEvents = opts.kubeEvents !== false;

  const backend = async (system: FleetSystem): Promise<TenantBackend> => {
    const slog = log.child({ system: system.id });
    let follower: SecretAccount | undefined;
    let latest: Secret | undefined;
    const secretWatch = system.secretName
      ? new ObjectWatch<Secret>({
          client,
          logger: slog,
          resource: Resources.secret,
          namespace: system.namespace,
          name: system.secretName,
          kind: 'Secret',
          ...timings,
          onChange: (s) => {
            latest = s;
            void follower?.follow(s);
          },
        })
      : undefined;
    if (!system.secretName) slog.warn('the fleet entry names no Secret: the system has no account');
    secretWatch?.start();
    await secretWatch?.waitSynced(syncTimeoutMs);
    latest = secretWatch?.current;
    const used = latest;
    const creds = secretCredentials(used);
    const users: UserAccount[] = creds ? [{ ...creds, role: 'Administrator' }] : [];
    if (secretWatch && !creds) slog.warn({ secret: system.secretName }, 'no usable Secret (yet): the system has no account until it appears');

    const machine = new KubeVirtMachine({
      client,
      sharedClient: true,
      watchSource: watches.factory,
      namespace: system.namespace,
      name: system.vm,
      logger: slog.child({ backend: 'kubevirt' }),
      ...m,
      ...(system.media?.storageClassName ? { storageClassName: system.media.storageClassName } : {}),
      ...(system.media?.volumeMode ? { volumeMode: system.media.volumeMode } : {}),
    });
    try {
      await machine.start(syncTimeoutMs);
    } catch (e) {
      await machine.close();
      await secretWatch?.stop();
      throw e;
    }
    const events: StartEventsOptions = kubeEvents
      ? {
          subscriptions: {
            persistence: new ConfigMapPersistence({
              client,
              namespace: system.namespace,
              name: eventsConfigMapName(system.vm),
              ...(system.vmbmc && system.vmbmcUid
                ? { owner: { apiVersion: 'bmc.kubevirt.io/v1beta1', kind: 'VirtualMachineBMC', name: system.vmbmc, uid: system.vmbmcUid } }
                : {}),
            }),
            onError: (msg, err) => slog.warn({ err: err instanceof Error ? err.message : String(err) }, msg),
          },
        }
      : {};
    return {
      machine,
      users,
      events,
      bind: ({ accounts, events: ev, endSessions }) => {
        follower = new SecretAccount(accounts, slog, users[0], endSessions);
        // a change that arrived while the system was starting
        if (secretWatch && latest !== used) void follower.follow(latest);
        const detach = kubeEvents
          ? new KubeEventRecorder({ client, namespace: system.namespace, vmName: system.vm, logger: slog.child({ component: 'k8s-events' }) }).attach(ev.hub)
          : undefined;
        return () => {
          follower = undefined;
          detach?.();
        };
      },
      release: async () => {
        await secretWatch?.stop();
      },
    };
  };

  const agent = await startSharedAgent({ ...opts.shared, logger: log, backend });

  // the fleet document: newest wins, one apply at a time
  let wanted: FleetSystem[] | undefined;
  let applying: Promise<void> | undefined;
  const pump = (): Promise<void> => {
    if (applying) return applying;
    applying = (async () => {
      while (wanted) {
        const next = wanted;
        wanted = undefined;
        try {
          await agent.apply(next);
        } catch (e) {
          log.error({ err: (e as Error).message }, 'fleet change: some systems failed to start (retried with the next change of the ConfigMap)');
        }
      }
      applying = undefined;
    })();
    return applying;
  };
  let lastText: string | undefined;
  const onFleet = (cm: ConfigMap | undefined): void => {
    if (!cm) {
      log.warn({ configMap: `${opts.configMap.namespace}/${opts.configMap.name}` }, 'the fleet ConfigMap is gone: serving no system');
      lastText = undefined;
      wanted = [];
      void pump();
      return;
    }
    const text = cm.data?.[FLEET_KEY];
    if (text === lastText) return;
    let systems: FleetSystem[];
    try {
      if (text === undefined) throw new Error(`no key ${FLEET_KEY}`);
      systems = parseFleet(text);
    } catch (e) {
      log.warn({ err: (e as Error).message }, 'the fleet ConfigMap is malformed; keeping the current systems');
      return;
    }
    lastText = text;
    // a shard serves the systems of its own namespace (shard.ts): another namespace's entry is refused
    const foreign = systems.filter((s) => s.namespace !== opts.configMap.namespace);
    if (foreign.length) log.warn({ systems: foreign.map((s) => s.id) }, 'fleet entries of another namespace are ignored (a shard serves its own namespace)');
    wanted = systems.filter((s) => s.namespace === opts.configMap.namespace);
    void pump();
  };
  const cmWatch = new ObjectWatch<ConfigMap>({
    client,
    logger: log.child({ component: 'fleet' }),
    resource: CONFIGMAP,
    namespace: opts.configMap.namespace,
    name: opts.configMap.name,
    kind: 'ConfigMap',
    ...timings,
    onChange: onFleet,
  });
  cmWatch.start();
  await cmWatch.waitSynced(syncTimeoutMs);
  if (!cmWatch.synced) log.warn({ err: cmWatch.lastError }, 'the fleet ConfigMap could not be listed yet; systems start when it can');
  else if (!cmWatch.current) log.warn({ configMap: `${opts.configMap.namespace}/${opts.configMap.name}` }, 'the fleet ConfigMap does not exist (yet): serving no system');
  await (applying ?? Promise.resolve());

  return {
    agent,
    client,
    watches,
    settled: async () => {
      while (applying) await applying;
    },
    async close() {
      await cmWatch.stop();
      while (applying) await applying;
      await agent.close();
      await watches.close();
      client.close();
    },
  };
}
