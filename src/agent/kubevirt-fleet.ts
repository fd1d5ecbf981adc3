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
 *   single-object list+watch (the shard Role names exactly those Secrets), followed into the
 *   system's AccountStore: a changed password replaces the old one at once (IPMI and Redfish), a
 *   missing Secret or one without both keys leaves the system without accounts (logins fail, its
 *   resources stay hidden), never a crash. Account changes made over Redfish AccountService or
 *   IPMI Set User are written back to that Secret's `virtbmc-accounts` key exactly as a per-VM
 *   agent does (src/agent/accounts-secret.ts; get+update by name), so they survive a restart;
 * - events: subscriptions persist in each VM's events ConfigMap and actions are Kubernetes Events
 *   on the VM, as in per-VM mode (src/events/kube.ts).
 */
import { AccountStore, FIRST_USER_ID, type PersistFn, type StoredAccount } from '../accounts/store.js';
import { ACCOUNTS_KEY, parseAccountsDocument, SecretAccounts, seedDigest, startingAccounts, type AccountsDocument } from './accounts-secret.js';
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
  | 'volumeSweepDelayMs'
  | 'clock'
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
  /** the resourceVersion of the last event of a system's Secret its accounts followed (tests) */
  secretVersion(id: string): string | undefined;
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

/** What a Secret event means for a system's accounts. */
type AccountsPlan =
  | { kind: 'none'; reason: string }
  | { kind: 'unchanged' }
  | { kind: 'accounts'; accounts: StoredAccount[]; seed: string; seedId: number; write: boolean };

/** Ids and flags for accounts that have none yet (the configured seed: FIRST_USER_ID, enabled). */
function stored(list: readonly (StoredAccount | UserAccount)[]): StoredAccount[] {
  return list.map((a, i) => {
    const s = a as Partial<StoredAccount> & UserAccount;
    return { id: s.id ?? FIRST_USER_ID + i, username: s.username, password: s.password, role: s.role, enabled: s.enabled ?? true, passwordChangeRequired: s.passwordChangeRequired ?? false };
  });
}

/**
 * One system's accounts kept in its Secret, as a per-VM agent keeps them (src/agent/accounts-secret.ts:
 * key `virtbmc-accounts`, the same document, seed and 409 handling):
 *
 * - start, or the Secret (with both keys) coming back: the saved list when its seed matches the
 *   Secret's username/password, the saved list with the seed account renamed/re-passworded when they
 *   changed (written back at once), the Secret's account alone when nothing is saved (written at the
 *   first change, as per-VM);
 * - a Secret event whose username/password did not change — the agent's own write, or another key —
 *   changes nothing (the accounts in memory are the newest), so a password set over Redfish or IPMI
 *   is not reset by the echo of its own write and no system restarts;
 * - new username/password: the seed account takes them in place (the others stay, their sessions go
 *   on), written back, and the sessions of the replaced credentials end;
 * - a Secret gone, without both keys, with a malformed document or credentials the store refuses:
 *   the system has no account (Redfish 401, IPMI refused) and nothing is written until it is usable.
 * Every account change over Redfish or IPMI is written while the Secret is usable. One event at a time.
 */
class SecretAccountsBinding {
  private store: AccountStore | undefined;
  private endSessions: ((username: string) => number) | undefined;
  /** bound to a usable Secret: changes are written back */
  private active = false;
  private chain: Promise<void> = Promise.resolve();
  /** resourceVersion of the last Secret event followed (tests: the echo of a write was seen) */
  seenVersion: string | undefined;

  constructor(
    private readonly secret: SecretAccounts,
    private readonly log: Logger,
  ) {}

  /** The store's persistence sink: the Secret while it is usable, else nothing (memory). */
  readonly persist: PersistFn = async (accounts) => {
    if (this.active) await this.secret.persist(accounts);
  };

  private plan(s: Secret | undefined): AccountsPlan {
    const creds = secretCredentials(s);
    if (!s) return { kind: 'none', reason: 'the Secret is gone' };
    if (!creds) return { kind: 'none', reason: 'the Secret lacks username or password' };
    const seed = seedDigest(creds);
    const configured: UserAccount[] = [{ ...creds, role: 'Administrator' }];
    if (this.active && this.store) {
      if (seed === this.secret.seed) return { kind: 'unchanged' };
      const start = startingAccounts({ version: 1, seed: this.secret.seed, seedId: this.secret.seedId, accounts: this.store.snapshot() }, configured);
      return { kind: 'accounts', accounts: stored(start.accounts), seed, seedId: start.seedId, write: true };
    }
    let doc: AccountsDocument | undefined;
    try {
      doc = parseAccountsDocument(s.data, this.secret.where);
    } catch (e) {
      return { kind: 'none', reason: (e as Error).message };
    }
    const start = startingAccounts(doc, configured);
    return { kind: 'accounts', accounts: stored(start.accounts), seed, seedId: start.seedId, write: start.reseeded };
  }

  /** The accounts to start the system with, from the Secret as first listed; writes a re-seeded list. */
  async begin(s: Secret | undefined): Promise<StoredAccount[]> {
    this.seenVersion = s?.metadata?.resourceVersion;
    const p = this.plan(s);
    if (p.kind !== 'accounts') {
      if (s) this.log.warn({ secret: this.secret.where, reason: p.kind === 'none' ? p.reason : '' }, 'no usable accounts in the Secret (yet): the system has no account until it changes');
      return [];
    }
    try {
      // the store would refuse them (a name over IPMI's 16 bytes...): no account, as for a bad Secret
      new AccountStore(p.accounts, { requireAdmin: false });
    } catch (e) {
      this.log.warn({ secret: this.secret.where, err: (e as Error).message }, "the Secret's accounts cannot be used: the system has no account");
      return [];
    }
    this.adopt(s, p);
    if (p.write) {
      this.log.info({ secret: this.secret.where, seedId: p.seedId }, "the Secret's username/password changed: the seed account takes them; saving");
      await this.secret.persist(p.accounts).catch(() => undefined);
    } else if (s?.data?.[ACCOUNTS_KEY]) this.log.info({ secret: this.secret.where, accounts: p.accounts.length }, 'accounts loaded from the Secret');
    return p.accounts;
  }

  private adopt(s: Secret | undefined, p: { seed: string; seedId: number }): void {
    this.secret.seed = p.seed;
    this.secret.seedId = p.seedId;
    this.secret.use(s);
    this.active = true;
  }

  bind(store: AccountStore, endSessions: (username: string) => number): void {
    this.store = store;
    this.endSessions = endSessions;
  }

  unbind(): void {
    this.store = undefined;
    this.endSessions = undefined;
    this.active = false;
  }

  follow(s: Secret | undefined): Promise<void> {
    const run = async (): Promise<void> => {
      const store = this.store;
      if (!store) return;
      this.seenVersion = s?.metadata?.resourceVersion;
      const p = this.plan(s);
      if (p.kind === 'unchanged') {
        // the newest object is the base of the next write (fewer 409s after a change of another key)
        this.secret.use(s);
        return;
      }
      const drop = (reason: string): void => {
        const had = store.list().length > 0;
        this.active = false;
        const { removed } = store.replaceAll([]);
        for (const a of removed) this.endSessions?.(a.username);
        if (had) this.log.warn({ secret: this.secret.where, reason }, 'the system has no account now');
      };
      if (p.kind === 'none') return drop(p.reason);
      let done: ReturnType<AccountStore['replaceAll']>;
      try {
        done = store.replaceAll(p.accounts);
      } catch (e) {
        return drop(`the Secret's accounts cannot be used: ${(e as Error).message}`);
      }
      // sessions opened with replaced credentials end with them (a per-VM agent restarts on a Secret change)
      let ended = 0;
      for (const a of [...done.removed, ...done.changed]) ended += this.endSessions?.(a.username) ?? 0;
      const wasActive = this.active;
      this.adopt(s, p);
      this.log.info({ secret: this.secret.where, accounts: p.accounts.length, sessionsEnded: ended }, wasActive ? 'the seed account follows the Secret' : 'accounts from the Secret');
      if (p.write) await store.flush().catch(() => undefined);
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

  const bindings = new Map<string, SecretAccountsBinding>();
  const backend = async (system: FleetSystem): Promise<TenantBackend> => {
    const slog = log.child({ system: system.id });
    const binding = system.secretName
      ? new SecretAccountsBinding(new SecretAccounts({ client, namespace: system.namespace, name: system.secretName, logger: slog.child({ component: 'accounts' }) }), slog)
      : undefined;
    if (binding) bindings.set(system.id, binding);
    let bound = false;
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
            if (bound) void binding?.follow(s);
          },
        })
      : undefined;
    if (!system.secretName) slog.warn('the fleet entry names no Secret: the system has no account');
    secretWatch?.start();
    await secretWatch?.waitSynced(syncTimeoutMs);
    latest = secretWatch?.current;
    const used = latest;
    const users = binding ? await binding.begin(used) : [];
    if (secretWatch && !used) slog.warn({ secret: system.secretName }, 'no Secret (yet): the system has no account until it appears');

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
      if (bindings.get(system.id) === binding) bindings.delete(system.id);
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
      ...(binding ? { persist: binding.persist } : {}),
      events,
      bind: ({ accounts, events: ev, endSessions }) => {
        binding?.bind(accounts, endSessions);
        bound = true;
        // a change that arrived while the system was starting
        if (secretWatch && latest !== used) void binding?.follow(latest);
        const detach = kubeEvents
          ? new KubeEventRecorder({ client, namespace: system.namespace, vmName: system.vm, logger: slog.child({ component: 'k8s-events' }) }).attach(ev.hub)
          : undefined;
        return () => {
          bound = false;
          binding?.unbind();
          detach?.();
        };
      },
      release: async () => {
        if (bindings.get(system.id) === binding) bindings.delete(system.id);
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
    secretVersion: (id) => bindings.get(id)?.seenVersion,
    async close() {
      await cmWatch.stop();
      while (applying) await applying;
      await agent.close();
      await watches.close();
      client.close();
    },
  };
}
