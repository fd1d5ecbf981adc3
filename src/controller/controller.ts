/**
 * The VirtualMachineBMC controller: informers feed a work queue; workers (only while this replica
 * leads) reconcile one key at a time: ServiceAccount, Role, RoleBinding, Deployment and Service per
 * VirtualMachineBMC, then the status (merge patch on /status, controller-owned fields only).
 * Secrets are watched per namespace (one informer for each namespace VirtualMachineBMCs reference
 * Secrets in, each Secret reduced to a digest on arrival: NamespaceSecrets); RefIndex maps a Secret
 * or a VM to the VirtualMachineBMCs that name it, so an event there wakes only those.
 * Keys are `ns/name` for VirtualMachineBMCs, `vm|ns/name` for VM auto-creation checks and
 * `shard|ns/k` for shards. The pieces: caches.ts (what is watched), owned-objects.ts (Server-Side
 * Apply of one owned object), shard-reconcile.ts (Shared mode), autocreate.ts, tls.ts.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import { newRequestId, type Logger } from '../common/logger.js';
import { KIND, LabelAutoCreated, Reason, type BMCMode, type VirtualMachineBMC } from './api/types.js';
import { DEFAULT_SHARDS, isShardObject, shardIndex, shardOfTlsSecret } from './shard.js';
import { ShardReconciler, SHARD_PREFIX_KEY, shardQueueKey } from './shard-reconcile.js';
import { EventRecorder } from './events.js';
import { NamespaceSecrets, RefIndex, ResourceInformer } from './informers.js';
import { cdromDrives } from './agent-rbac.js';
import { isNotFound, KubeApiError, KubeClient } from '../kube/client.js';
import { Resources } from '../kube/resources.js';
import type { KubeObject } from '../kube/types.js';
import { ControllerMetrics } from './metrics.js';
import { desiredObjects, type AgentSettings, type DesiredObjects } from './reconcile.js';
import { OwnedObjects, type OwnedInformers } from './owned-objects.js';
import { controllerCaches } from './caches.js';
import { desiredStatus, statusPatch, type ObservedState } from './status.js';
import { WorkQueue, type WorkQueueOptions } from './workqueue.js';
import { reconcileAutoCreate } from './autocreate.js';
import { AgentTls, type IssuerRef } from './tls.js';
import { mintedSecretName, tlsMode } from './tls-names.js';
import { agentObjectName, keyOf, splitKey } from './names.js';

export interface ControllerOptions {
  kc: KubeConfig;
  agent: AgentSettings;
  logger: Logger;
  /** Watch and manage only this namespace (default: all). */
  namespace?: string;
  workers?: number;
  metrics?: ControllerMetrics;
  /** Re-reconcile everything this often (ms, 0 = never); default 10 min. */
  resyncMs?: number;
  queue?: WorkQueueOptions;
  /** Create VirtualMachineBMCs for VMs labelled bmc.kubevirt.io/enabled=true (default true). */
  autoCreate?: boolean;
  /** Informer restart backoff bounds (ms). */
  informerBackoffMs?: { min: number; max: number };
  /** reportingInstance of the Events this controller records. */
  identity?: string;
  /** Mode of VirtualMachineBMCs without spec.mode (default PerVM). */
  defaultMode?: BMCMode;
  /** Shared mode: shards per namespace, K (default 2). Changing it moves only the BMCs rendezvous hashing says. */
  shards?: number;
  /** Agent certificates (spec.redfish.tls.mode Auto: src/controller/tls.ts): cert-manager issuer, lifetime, clock */
  tls?: { certManagerIssuer?: IssuerRef; validityMs?: number; now?: () => number; discoveryTtlMs?: number };
}

const VM_PREFIX = 'vm|';

export class VirtualMachineBMCController {
  readonly client: KubeClient;
  readonly metrics: ControllerMetrics;
  readonly vmbmcs: ResourceInformer<VirtualMachineBMC & KubeObject>;
  readonly vms: ResourceInformer;
  readonly secrets: NamespaceSecrets;
  /** auth Secret → VirtualMachineBMCs naming it */
  private readonly secretRefs = new RefIndex();
  /** minted certificate Secret `<agent>-tls` → the VirtualMachineBMC (PerVM, Auto) it serves: its change or loss wakes that BMC */
  private readonly tlsRefs = new RefIndex();
  /** VM → VirtualMachineBMCs naming it */
  private readonly vmRefs = new RefIndex();
  /** what a shard reads of each VirtualMachineBMC, as last seen (`ns/name` → JSON) */
  private readonly shardPrint = new Map<string, string>();
  /** `ns/name` of every VirtualMachineBMC (the managed gauge) */
  private readonly known = new Set<string>();
  /** the owned objects' informers (caches.ts) */
  readonly owned: OwnedInformers;
  readonly shards: number;
  readonly defaultMode: BMCMode;
  private readonly all: Array<Pick<ResourceInformer, 'start' | 'stop' | 'synced' | 'resource'>>;
  private queue?: WorkQueue;
  private workers: Promise<void>[] = [];
  /** settles when the workers of the previous leadership term have finished */
  private previousWorkers: Promise<unknown> = Promise.resolve();
  private resyncTimer?: NodeJS.Timeout;
  private readonly log: Logger;
  private readonly events: EventRecorder;
  /** the owned objects' writer: Server-Side Apply, conflicts, deletes (owned-objects.ts) */
  private readonly writer: OwnedObjects;
  /** the Shared-mode half: shard membership, fleet documents, shard reconciles (shard-reconcile.ts) */
  readonly sharding: ShardReconciler;
  /** CD-ROM drives per VM (`ns/name` → names), to re-reconcile when they change (the agent Role names their DataVolumes) */
  private readonly vmDrives = new Map<string, string>();
  /** agent certificates: minted Secrets, cert-manager Certificates */
  readonly tls: AgentTls;

  constructor(private readonly o: ControllerOptions) {
    if (!o.kc.getCurrentCluster()) throw new Error('kubeconfig has no current cluster');
    // a slow API server gets more patience here than in the agent: reconciles are not interactive
    this.client = new KubeClient(o.kc, { logger: o.logger, timeoutMs: 30_000, maxSockets: 32 });
    this.events = new EventRecorder(this.client, o.identity ?? 'virtbmc-controller', o.logger);
    this.metrics = o.metrics ?? new ControllerMetrics();
    this.log = o.logger;
    const { kc, logger, namespace, informerBackoffMs } = o;
    const onRestart = () => this.metrics.errors.inc({ kind: 'informer' });
    const caches = controllerCaches({ kc, client: this.client, logger, ...(namespace ? { namespace } : {}), ...(informerBackoffMs ? { informerBackoffMs } : {}), onRestart });
    this.vmbmcs = caches.vmbmcs;
    this.vms = caches.vms;
    this.secrets = caches.secrets;
    this.owned = caches.owned;
    this.shards = o.shards ?? DEFAULT_SHARDS;
    if (!Number.isInteger(this.shards) || this.shards < 1) throw new Error(`shards must be a positive integer, got ${o.shards}`);
    this.defaultMode = o.defaultMode ?? 'PerVM';
    this.tls = new AgentTls({
      client: this.client,
      logger: o.logger,
      ...(o.tls?.now ? { now: o.tls.now } : {}),
      ...(o.tls?.certManagerIssuer ? { issuer: o.tls.certManagerIssuer } : {}),
      ...(o.tls?.validityMs !== undefined ? { validityMs: o.tls.validityMs } : {}),
      ...(o.tls?.discoveryTtlMs !== undefined ? { discoveryTtlMs: o.tls.discoveryTtlMs } : {}),
      ...(o.agent.clusterDomain ? { clusterDomain: o.agent.clusterDomain } : {}),
    });
    this.writer = new OwnedObjects(this.client, this.events);
    this.sharding = new ShardReconciler({
      agent: o.agent,
      shards: this.shards,
      vmbmcs: this.vmbmcs,
      vms: this.vms,
      secrets: this.secrets,
      owned: this.owned,
      writer: this.writer,
      tls: this.tls,
      modeOf: (b) => this.modeOf(b),
      enqueue: (key) => this.enqueue(key),
      enqueueAfter: (key, ms) => this.queue?.addAfter(key, ms),
      writeStatus: (vmbmc, d, observed, log) => this.writeStatus(vmbmc, d, observed, log),
    });
    this.all = [this.vmbmcs, this.vms, this.secrets, ...Object.values(this.owned)];
    this.wireEvents();
  }

  private enqueue(key: string): void {
    this.queue?.add(key);
  }

  private wireEvents(): void {
    this.vmbmcs.onChange((obj, kind) => {
      const ns = obj.metadata.namespace ?? '';
      const name = obj.metadata.name;
      const gone = kind === 'delete';
      if (gone) this.known.delete(`${ns}/${name}`);
      else this.known.add(`${ns}/${name}`);
      this.metrics.managed.set(this.known.size);
      this.vmRefs.set(ns, name, gone ? undefined : obj.spec?.virtualMachineRef?.name || undefined);
      // a VMBMC being deleted needs its Secret no more (its objects go by garbage collection)
      const secret = gone || obj.metadata.deletionTimestamp ? undefined : obj.spec?.authSecretRef?.name || undefined;
      const minted = gone || obj.metadata.deletionTimestamp || this.modeOf(obj) !== 'PerVM' || tlsMode(obj) !== 'Auto' ? undefined : mintedSecretName(agentObjectName(name));
      const moved = this.secretRefs.set(ns, name, secret);
      if (this.tlsRefs.set(ns, name, minted) || moved) this.secrets.track(new Set([...this.secretRefs.namespaces(), ...this.tlsRefs.namespaces()]));
      if (gone) this.shardPrint.delete(`${ns}/${name}`);
      this.enqueueBmc(obj, kind !== 'update');
      // an auto-created one is also its VM's auto-creation check: a VM change handled before this
      // VMBMC reached the cache (the create then answered 409) is re-judged now, and one deleted by
      // hand while its VM still opts in is made again (autocreate.ts)
      if (this.o.autoCreate !== false && obj.metadata.labels?.[LabelAutoCreated] === 'true') this.enqueue(`${VM_PREFIX}${ns}/${name}`);
    });
    const byOwner = (wakesBmcs: boolean) => (obj: KubeObject) => {
      if (isShardObject(obj)) {
        // a shard object changed: the shard repairs it; its BMCs follow its Deployment's availability
        this.enqueue(shardQueueKey(obj.metadata?.namespace, shardIndex(obj.metadata?.name)));
        if (wakesBmcs) this.sharding.enqueueListed(obj.metadata?.namespace ?? '', obj.metadata?.name ?? '');
        return;
      }
      for (const r of obj.metadata?.ownerReferences ?? []) {
        if (r.controller && r.kind === KIND && r.apiVersion.startsWith('bmc.kubevirt.io/')) this.enqueue(`${obj.metadata?.namespace}/${r.name}`);
      }
    };
    // an owned object gone: its apply record goes too (a later one is applied afresh)
    for (const inf of Object.values(this.owned)) {
      inf.onChange((o, kind) => {
        if (kind === 'delete') this.writer.forget(inf.resource, o.metadata?.namespace ?? '', o.metadata?.name ?? '');
      });
    }
    const { deployments, services, serviceAccounts, roles, roleBindings, configMaps } = this.owned;
    deployments.onChange(byOwner(true));
    for (const inf of [services, serviceAccounts, roles, roleBindings]) inf.onChange(byOwner(false));
    configMaps.onChange((cm) => this.sharding.fleetChanged(cm));
    this.vms.onChange((vm, kind) => {
      const ns = vm.metadata?.namespace ?? '';
      const name = vm.metadata?.name ?? '';
      if (this.o.autoCreate !== false) this.enqueue(`${VM_PREFIX}${ns}/${name}`);
      // a VirtualMachineBMC cares about the VM's existence and its CD-ROM drives (the agent Role)
      const k = `${ns}/${name}`;
      const drives = cdromDrives(vm).join('/');
      const before = this.vmDrives.get(k);
      if (kind === 'delete') this.vmDrives.delete(k);
      else this.vmDrives.set(k, drives);
      if (kind === 'update' && before === drives) return;
      this.enqueueReferrers(this.vmRefs, ns, name);
    });
    this.secrets.onChange((s) => {
      const ns = s.metadata?.namespace ?? '';
      const name = s.metadata?.name ?? '';
      this.enqueueReferrers(this.secretRefs, ns, name);
      // a minted certificate changed or went (a user's edit or delete): its BMC re-checks (and re-mints) it
      this.enqueueReferrers(this.tlsRefs, ns, name);
      const k = shardOfTlsSecret(name);
      if (k !== undefined) this.enqueue(shardQueueKey(ns, k));
    });
    // a Secret that does not exist sends no event: the namespace's (re-)list wakes its VMBMCs
    this.secrets.onListed((ns) => {
      for (const b of this.vmbmcs.list(ns)) if (b.spec?.authSecretRef?.name) this.enqueueBmc(b);
    });
  }

  modeOf(b: VirtualMachineBMC): BMCMode {
    return b.spec?.mode ?? this.defaultMode;
  }

  /**
   * Queue a VirtualMachineBMC, and the shards it is (or was, or will be) on — those only when what
   * a shard reads of it changed (`force`: always): a status write of ours is no news to its shard.
   */
  private enqueueBmc(b: VirtualMachineBMC & KubeObject, force = true): void {
    const key = keyOf(b);
    this.enqueue(key);
    const print = JSON.stringify([b.metadata.uid, b.metadata.deletionTimestamp, b.spec, b.status?.ipmiPort]);
    if (!force && this.shardPrint.get(key) === print) return;
    this.shardPrint.set(key, print);
    this.sharding.enqueueShardsOf(b);
  }

  /** Queue the VirtualMachineBMCs of `ns` that `index` says reference `target`. */
  private enqueueReferrers(index: RefIndex, ns: string, target: string): void {
    for (const name of index.referrers(ns, target)) {
      const b = this.vmbmcs.get(ns, name);
      if (b) this.enqueueBmc(b);
    }
  }

  /** Starts the informers; resolves when each has attempted its first list. */
  async start(): Promise<void> {
    await Promise.all(this.all.map((i) => i.start()));
  }

  get synced(): boolean {
    return this.all.every((i) => i.synced);
  }

  /** Which informers have not listed yet (for /readyz). */
  unsynced(): string[] {
    return this.all.filter((i) => !i.synced).map((i) => i.resource.plural);
  }

  get running(): boolean {
    return this.queue !== undefined;
  }

  /** Starts the workers (on becoming leader) and queues every known object. */
  startWorkers(): void {
    if (this.queue) return;
    const q = new WorkQueue({ ...this.o.queue, onDepth: (d) => this.metrics.queueDepth.set(d) });
    this.queue = q;
    this.enqueueAll();
    const n = Math.max(1, this.o.workers ?? 4);
    // leadership lost and regained quickly: reconciles of the last term may still run; start only
    // after them, so one key is never reconciled twice at once
    const prev = this.previousWorkers;
    this.workers = Array.from({ length: n }, () => prev.then(() => this.worker(q)));
    const resync = this.o.resyncMs ?? 600_000;
    if (resync > 0) {
      this.resyncTimer = setInterval(() => this.enqueueAll(), resync);
      this.resyncTimer.unref();
    }
  }

  /** Stops the workers (on losing leadership / shutdown); waits for in-flight reconciles. */
  async stopWorkers(): Promise<void> {
    const q = this.queue;
    if (!q) return;
    this.queue = undefined;
    if (this.resyncTimer) clearInterval(this.resyncTimer);
    this.resyncTimer = undefined;
    q.shutdown();
    const running = Promise.all(this.workers);
    this.workers = [];
    this.previousWorkers = running;
    await running;
  }

  async stop(): Promise<void> {
    await this.stopWorkers();
    await Promise.all(this.all.map((i) => i.stop()));
    this.client.close();
  }

  private enqueueAll(): void {
    for (const b of this.vmbmcs.list()) this.enqueueBmc(b);
    this.sharding.enqueueExisting();
    if (this.o.autoCreate !== false) for (const vm of this.vms.list()) this.enqueue(`${VM_PREFIX}${keyOf(vm)}`);
  }

  private async worker(q: WorkQueue): Promise<void> {
    for (;;) {
      const key = await q.get();
      if (key === undefined) return;
      const reconcileId = newRequestId();
      const log = this.log.child({ reconcileId, key });
      const end = this.metrics.reconcileDuration.startTimer();
      try {
        if (key.startsWith(VM_PREFIX)) await this.reconcileAutoCreate(key.slice(VM_PREFIX.length), log);
        else if (key.startsWith(SHARD_PREFIX_KEY)) await this.reconcileShard(key.slice(SHARD_PREFIX_KEY.length), log);
        else await this.reconcile(key, log);
        q.forget(key);
        this.metrics.reconcileTotal.inc({ result: 'success' });
      } catch (e) {
        const delay = q.addRateLimited(key);
        this.metrics.reconcileTotal.inc({ result: 'error' });
        this.metrics.errors.inc({ kind: e instanceof KubeApiError ? 'api' : 'reconcile' });
        log.warn({ err: e instanceof Error ? e.message : String(e), retryInMs: delay }, 'reconcile failed; will retry');
      } finally {
        end();
        q.done(key);
      }
    }
  }

  /** Reconciles one VirtualMachineBMC (ns/name). Idempotent. */
  async reconcile(key: string, log: Logger = this.log): Promise<void> {
    const [ns, name] = splitKey(key);
    const vmbmc = this.vmbmcs.get(ns, name);
    if (!vmbmc || vmbmc.metadata.deletionTimestamp) return; // owned objects go with it (garbage collection)
    if (!vmbmc.spec?.virtualMachineRef?.name || !vmbmc.spec?.authSecretRef?.name) {
      log.warn('spec lacks virtualMachineRef.name or authSecretRef.name; skipping');
      return;
    }
    const secretName = vmbmc.spec.authSecretRef.name;
    if (!this.secrets.hasSynced(ns, secretName)) {
      // the namespace's Secrets have not been listed yet: "not found" would scale the agent down
      // for nothing; that list re-queues this key (onListed)
      log.debug({ secret: secretName }, 'auth Secret not listed yet; waiting');
      return;
    }
    const vm = this.vms.get(ns, vmbmc.spec.virtualMachineRef.name);
    const secret = this.secrets.get(ns, secretName);
    if (this.modeOf(vmbmc) === 'Shared') return this.sharding.reconcileShared(vmbmc, desiredObjects(vmbmc, vm, secret, this.o.agent), log);
    // the agent's certificate first: the Deployment mounts its Secret (src/controller/tls.ts)
    const tls = await this.tls.prepare(vmbmc, agentObjectName(name));
    const d = desiredObjects(vmbmc, vm, secret, this.o.agent, tls.secretName, tls.minted === true);
    if (tls.problem) return this.writeStatus(vmbmc, d, { problem: tls.problem }, log);
    if (tls.requeueAfterMs !== undefined) this.queue?.addAfter(key, tls.requeueAfterMs);
    const observed = await this.writer.syncAgent(vmbmc, d, this.owned, log);
    await this.writeStatus(vmbmc, d, observed, log);
  }

  /** Writes the status (only when it changed) and records the Ready transitions as Events. */
  private async writeStatus(vmbmc: VirtualMachineBMC, d: DesiredObjects, observed: ObservedState, log: Logger): Promise<void> {
    const ns = vmbmc.metadata.namespace ?? '';
    const name = vmbmc.metadata.name;
    const next = desiredStatus(vmbmc, d, observed, new Date().toISOString().replace(/\.\d+Z$/, 'Z'));
    const patch = statusPatch(vmbmc.status, next);
    if (patch) {
      try {
        await this.client.mergePatch(Resources.vmbmc, ns, name, patch, 'status');
        const ready = next.conditions?.find((c) => c.type === 'Ready');
        const before = vmbmc.status?.conditions?.find((c) => c.type === 'Ready');
        log.debug({ ready: ready?.status, reason: ready?.reason }, 'status updated');
        if (ready && (ready.status !== before?.status || (ready.status === 'False' && ready.reason !== before?.reason))) {
          const warn: string[] = [Reason.VirtualMachineNotFound, Reason.SecretNotFound, Reason.SecretInvalid, Reason.NameConflict];
          this.events.record(vmbmc, warn.includes(ready.reason) ? 'Warning' : 'Normal', ready.status === 'True' ? 'Ready' : ready.reason, ready.message);
        }
      } catch (e) {
        if (isNotFound(e)) return; // deleted meanwhile
        throw e;
      }
    }
  }

  /** Reconciles one shard (`ns/k`): shard-reconcile.ts. */
  reconcileShard(key: string, log: Logger = this.log): Promise<void> {
    return this.sharding.reconcileShard(key, log);
  }

  /** Creates, updates or deletes the auto-created VirtualMachineBMC of a VM (ns/name): autocreate.ts. */
  reconcileAutoCreate(key: string, log: Logger = this.log): Promise<void> {
    return reconcileAutoCreate({ client: this.client, vms: this.vms, vmbmcs: this.vmbmcs }, key, log);
  }
}
