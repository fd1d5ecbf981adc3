/**
 * The VirtualMachineBMC controller: informers feed a work queue; workers (only while this replica
 * leads) reconcile one key at a time: ServiceAccount, Role, RoleBinding, Deployment and Service per
 * VirtualMachineBMC, then the status (merge patch on /status, controller-owned fields only).
 * Secrets are watched per namespace (one informer for each namespace VirtualMachineBMCs reference
 * Secrets in, each Secret reduced to a digest on arrival: NamespaceSecrets); RefIndex maps a Secret
 * or a VM to the VirtualMachineBMCs that name it, so an event there wakes only those.
 * Keys are `ns/name` for VirtualMachineBMCs and `vm|ns/name` for VM auto-creation checks.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import { newRequestId, type Logger } from '../common/logger.js';
import {
  KIND,
  LabelManagedBy,
  ManagedByValue,
  Reason,
  type BMCMode,
  type VirtualMachineBMC,
} from './api/types.js';
import {
  allocatePorts,
  assignShard,
  ConfigMapResource,
  DEFAULT_SHARDS,
  desiredShardObjects,
  fleetSystem,
  isShardObject,
  parseFleet,
  shardIndex,
  shardKey,
  shardName,
  shardObjectLabels,
  shardOfTlsSecret,
  shardRoleRules,
  type FleetSystem,
  type ShardCandidate,
} from './shard.js';
import { EventRecorder } from './events.js';
import { NamespaceSecrets, RefIndex, ResourceInformer } from './informers.js';
import { cdromDrives, RoleResource } from './agent-rbac.js';
import { isNotFound, KubeApiError, KubeClient } from '../kube/client.js';
import { Resources, type ResourceRef } from '../kube/resources.js';
import type { KubeObject } from '../kube/types.js';
import { ControllerMetrics } from './metrics.js';
import { checkSecret, desiredObjects, desiredSharedService, ipmiEnabled, reduceSecret, type AgentSettings, type DesiredObjects } from './reconcile.js';
import { applyNeeded, FIELD_MANAGER, type AppliedRecord, isOwnedBy, isSubset, recordOf, reduceManagedFields } from './apply.js';
import { desiredStatus, statusPatch, type ObservedState } from './status.js';
import { WorkQueue, type WorkQueueOptions } from './workqueue.js';
import { reconcileAutoCreate } from './autocreate.js';
import { AgentTls, type IssuerRef } from './tls.js';
import { certManagerSecretName, mintedSecretName, tlsMode } from './tls-names.js';
import { serviceDnsNames } from './tls.js';
import { agentObjectName } from './names.js';

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
/** `shard|<ns>/<k>`: one shard's objects (fleet ConfigMap, Role, Deployment ...); the only writer of its port allocation */
const SHARD_PREFIX_KEY = 'shard|';

function keyOf(obj: KubeObject): string {
  return `${obj.metadata?.namespace ?? ''}/${obj.metadata?.name ?? ''}`;
}

function splitKey(key: string): [string, string] {
  const i = key.indexOf('/');
  return [key.slice(0, i), key.slice(i + 1)];
}

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
  readonly deployments: ResourceInformer;
  readonly services: ResourceInformer;
  readonly serviceAccounts: ResourceInformer;
  readonly roles: ResourceInformer;
  readonly roleBindings: ResourceInformer;
  readonly configMaps: ResourceInformer;
  readonly shards: number;
  readonly defaultMode: BMCMode;
  /** rendezvous result per `ns/name` (K is fixed for the life of the controller) */
  private readonly shardOfKey = new Map<string, number>();
  /** parsed fleet documents per `ns/virtbmc-shard-<k>`, by resourceVersion */
  private readonly fleetCache = new Map<string, { rv: string; byName: Map<string, FleetSystem>; tls: boolean }>();
  private readonly all: Array<Pick<ResourceInformer, 'start' | 'stop' | 'synced' | 'resource'>>;
  private queue?: WorkQueue;
  private workers: Promise<void>[] = [];
  /** settles when the workers of the previous leadership term have finished */
  private previousWorkers: Promise<unknown> = Promise.resolve();
  private resyncTimer?: NodeJS.Timeout;
  private readonly log: Logger;
  private readonly events: EventRecorder;
  /** per owned object (`plural|ns|name`): what was applied last and what the apiserver recorded (apply.ts) */
  private readonly applied = new Map<string, AppliedRecord>();
  /** uids of foreign objects already reported as name conflicts (one Warning each) */
  private readonly conflictsReported = new Set<string>();
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
    const mk = <T extends KubeObject>(resource: ResourceRef, labelSelector?: string) =>
      new ResourceInformer<T>({
        // owned objects (labelled): their managedFields are reduced to our entry's digest (apply.ts)
        ...(labelSelector ? { transform: reduceManagedFields } : {}),
        kc: o.kc,
        client: this.client,
        resource,
        ...(o.namespace ? { namespace: o.namespace } : {}),
        ...(labelSelector ? { labelSelector } : {}),
        logger: o.logger,
        ...(o.informerBackoffMs ? { minBackoffMs: o.informerBackoffMs.min, maxBackoffMs: o.informerBackoffMs.max } : {}),
        onRestart: () => this.metrics.errors.inc({ kind: 'informer' }),
      });
    const owned = `${LabelManagedBy}=${ManagedByValue}`;
    this.vmbmcs = mk(Resources.vmbmc);
    this.vms = mk(Resources.vm);
    this.secrets = new NamespaceSecrets(Resources.secret, {
      kc: o.kc,
      client: this.client,
      reduce: reduceSecret,
      logger: o.logger,
      ...(o.informerBackoffMs ? { minBackoffMs: o.informerBackoffMs.min, maxBackoffMs: o.informerBackoffMs.max } : {}),
      onRestart: () => this.metrics.errors.inc({ kind: 'informer' }),
    });
    this.deployments = mk(Resources.deployment, owned);
    this.services = mk(Resources.service, owned);
    this.serviceAccounts = mk(Resources.serviceAccount, owned);
    this.roles = mk(RoleResource, owned);
    this.roleBindings = mk(Resources.roleBinding, owned);
    this.configMaps = mk(ConfigMapResource, owned);
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
    this.all = [this.vmbmcs, this.vms, this.secrets, this.deployments, this.services, this.serviceAccounts, this.roles, this.roleBindings, this.configMaps];
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
    });
    const byOwner = (wakesBmcs: boolean) => (obj: KubeObject) => {
      if (isShardObject(obj)) {
        // a shard object changed: the shard repairs it; its BMCs follow its Deployment's availability
        this.enqueue(`${SHARD_PREFIX_KEY}${obj.metadata?.namespace}/${shardIndex(obj.metadata?.name)}`);
        if (wakesBmcs) this.enqueueListed(obj.metadata?.namespace ?? '', obj.metadata?.name ?? '');
        return;
      }
      for (const r of obj.metadata?.ownerReferences ?? []) {
        if (r.controller && r.kind === KIND && r.apiVersion.startsWith('bmc.kubevirt.io/')) this.enqueue(`${obj.metadata?.namespace}/${r.name}`);
      }
    };
    // an owned object gone: its apply record goes too (a later one is applied afresh)
    const forget = (r: ResourceRef) => (o: KubeObject, kind: 'add' | 'update' | 'delete') => {
      if (kind === 'delete') this.applied.delete(`${r.plural}|${o.metadata?.namespace ?? ''}|${o.metadata?.name ?? ''}`);
    };
    for (const [inf, r] of [
      [this.deployments, Resources.deployment],
      [this.services, Resources.service],
      [this.serviceAccounts, Resources.serviceAccount],
      [this.roles, RoleResource],
      [this.roleBindings, Resources.roleBinding],
      [this.configMaps, ConfigMapResource],
    ] as Array<[ResourceInformer, ResourceRef]>) inf.onChange(forget(r));
    this.deployments.onChange(byOwner(true));
    for (const inf of [this.services, this.serviceAccounts, this.roles, this.roleBindings]) inf.onChange(byOwner(false));
    this.configMaps.onChange((cm) => {
      if (!isShardObject(cm)) return;
      const ns = cm.metadata?.namespace ?? '';
      const name = cm.metadata?.name ?? '';
      this.enqueue(`${SHARD_PREFIX_KEY}${ns}/${shardIndex(name)}`);
      // only the BMCs whose entry came, went or changed: the others have nothing new to follow
      const beforeEntry = this.fleetCache.get(`${ns}/${name}`);
      const before = beforeEntry?.byName ?? new Map<string, FleetSystem>();
      const after = this.fleet(ns, name) ?? new Map<string, FleetSystem>();
      if ((beforeEntry?.tls ?? false) !== this.fleetTls(ns, name)) {
        // the shard's scheme changed: every member's Service follows (80/443 → its TLS port, or back)
        for (const bmc of new Set([...before.keys(), ...after.keys()])) this.enqueue(`${ns}/${bmc}`);
        return;
      }
      for (const [bmc, sys] of after) {
        const old = before.get(bmc);
        if (!old || old.ipmiPort !== sys.ipmiPort || old.vmbmcUid !== sys.vmbmcUid) this.enqueue(`${ns}/${bmc}`);
      }
      for (const bmc of before.keys()) if (!after.has(bmc)) this.enqueue(`${ns}/${bmc}`);
    });
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
      if (k !== undefined) this.enqueue(`${SHARD_PREFIX_KEY}${ns}/${k}`);
    });
    // a Secret that does not exist sends no event: the namespace's (re-)list wakes its VMBMCs
    this.secrets.onListed((ns) => {
      for (const b of this.vmbmcs.list(ns)) if (b.spec?.authSecretRef?.name) this.enqueueBmc(b);
    });
  }

  modeOf(b: VirtualMachineBMC): BMCMode {
    return b.spec?.mode ?? this.defaultMode;
  }

  /** The shard (0..K-1) of a VirtualMachineBMC, by rendezvous hashing on `<namespace>/<name>`. */
  shardOf(namespace: string, name: string): number {
    const key = shardKey(namespace, name);
    let k = this.shardOfKey.get(key);
    if (k === undefined) {
      k = assignShard(key, this.shards);
      this.shardOfKey.set(key, k);
    }
    return k;
  }

  /** The systems of shard ConfigMap `ns/name`, by VirtualMachineBMC name (parsed once per resourceVersion). */
  fleet(namespace: string, name: string): Map<string, FleetSystem> | undefined {
    const cm = this.configMaps.get(namespace, name);
    const key = `${namespace}/${name}`;
    if (!cm) {
      this.fleetCache.delete(key);
      return undefined;
    }
    const rv = cm.metadata?.resourceVersion ?? '';
    const hit = this.fleetCache.get(key);
    if (hit && hit.rv === rv) return hit.byName;
    const doc = parseFleet(cm);
    const byName = new Map((doc?.systems ?? []).map((s) => [s.vmbmc, s] as const));
    this.fleetCache.set(key, { rv, byName, tls: doc?.tls === true });
    return byName;
  }

  /** Does shard ConfigMap `ns/name` say the shard serves HTTPS? */
  fleetTls(namespace: string, name: string): boolean {
    this.fleet(namespace, name);
    return this.fleetCache.get(`${namespace}/${name}`)?.tls ?? false;
  }

  /**
   * Queue a VirtualMachineBMC, and the shards it is (or was, or will be) on — those only when what
   * a shard reads of it changed (`force`: always): a status write of ours is no news to its shard.
   */
  private enqueueBmc(b: VirtualMachineBMC & KubeObject, force = true): void {
    const ns = b.metadata.namespace ?? '';
    const name = b.metadata.name;
    this.enqueue(keyOf(b));
    const key = keyOf(b);
    const print = JSON.stringify([b.metadata.uid, b.metadata.deletionTimestamp, b.spec, b.status?.ipmiPort]);
    if (!force && this.shardPrint.get(key) === print) return;
    this.shardPrint.set(key, print);
    if (this.modeOf(b) === 'Shared') this.enqueue(`${SHARD_PREFIX_KEY}${ns}/${this.shardOf(ns, name)}`);
    for (const cm of this.configMaps.list(ns)) {
      if (isShardObject(cm) && this.fleet(ns, cm.metadata?.name ?? '')?.has(name)) this.enqueue(`${SHARD_PREFIX_KEY}${ns}/${shardIndex(cm.metadata?.name)}`);
    }
  }

  /** Queue the VirtualMachineBMCs that shard `ns/name`'s fleet document lists. */
  private enqueueListed(namespace: string, name: string): void {
    for (const bmc of this.fleet(namespace, name)?.keys() ?? []) this.enqueue(`${namespace}/${bmc}`);
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
    // shards that exist (also those beyond K after K went down: they are removed)
    for (const inf of [this.configMaps, this.deployments]) {
      for (const o of inf.list()) if (isShardObject(o)) this.enqueue(`${SHARD_PREFIX_KEY}${o.metadata?.namespace}/${shardIndex(o.metadata?.name)}`);
    }
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
    if (this.modeOf(vmbmc) === 'Shared') return this.reconcileShared(vmbmc, desiredObjects(vmbmc, vm, secret, this.o.agent), log);
    // the agent's certificate first: the Deployment mounts its Secret (src/controller/tls.ts)
    const tls = await this.tls.prepare(vmbmc, agentObjectName(name));
    const d = desiredObjects(vmbmc, vm, secret, this.o.agent, tls.secretName, tls.minted === true);
    if (tls.problem) return this.writeStatus(vmbmc, d, { problem: tls.problem }, log);
    if (tls.requeueAfterMs !== undefined) this.queue?.addAfter(key, tls.requeueAfterMs);
    const observed: ObservedState = {};
    type Step = [KubeObject, ResourceInformer, ResourceRef];
    // the Role first: binding a Role that does not exist is refused (and the binding is only
    // authorized because the Role's rules are held), then the rest, independent of each other
    const first: Step[] = [
      [d.serviceAccount, this.serviceAccounts, Resources.serviceAccount],
      [d.role, this.roles, RoleResource],
    ];
    const then: Step[] = [
      [d.roleBinding, this.roleBindings, Resources.roleBinding],
      [d.deployment, this.deployments, Resources.deployment],
      [d.service, this.services, Resources.service],
    ];
    const run = (steps: Step[]) => Promise.all(steps.map(([desired, informer, resource]) => this.sync(desired, informer, resource, vmbmc, log)));
    const firstResults = await run(first);
    if (firstResults[1]!.conflict) {
      // a Role with the agent's name that is not ours: never bind the agent to it (it could grant
      // anything its author holds); drop our binding if one exists, and report the conflict
      then.shift();
      const rb = this.roleBindings.get(ns, d.roleBinding.metadata?.name ?? '');
      if (rb && (rb.metadata?.ownerReferences ?? []).some((r) => r.controller && r.uid === vmbmc.metadata.uid)) {
        await this.client.delete(Resources.roleBinding, ns, d.roleBinding.metadata?.name ?? '').catch((e: unknown) => {
          if (!isNotFound(e)) throw e;
        });
        log.warn({ object: `rolebindings/${d.roleBinding.metadata?.name}` }, 'agent RoleBinding removed: its Role is not ours');
      }
    }
    const steps = [...first, ...then];
    const results = [...firstResults, ...(await run(then))];
    results.forEach((r, i) => {
      const resource = steps[i]![2];
      if (r.conflict && !observed.problem) observed.problem = { reason: Reason.NameConflict, message: r.conflict };
      if (resource === Resources.deployment) observed.deployment = r.object;
      if (resource === Resources.service) observed.service = r.object;
    });
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

  /**
   * Brings one object in line (Server-Side Apply, src/controller/apply.ts); returns the object as
   * it now stands. `owner` is the VirtualMachineBMC that owns it (Events go there), or undefined
   * for shard objects (ours by their labels). An object with the name that is not ours is never
   * applied to (the apply is forced and would take it over): a conflict is reported instead.
   */
  private async sync(
    desired: KubeObject,
    informer: ResourceInformer,
    resource: ResourceRef,
    owner: VirtualMachineBMC | undefined,
    log: Logger,
  ): Promise<{ object?: KubeObject; conflict?: string }> {
    const ownerUid = owner?.metadata.uid;
    const ns = desired.metadata?.namespace ?? '';
    const name = desired.metadata?.name ?? '';
    const key = `${resource.plural}|${ns}|${name}`;
    const mine = (o: KubeObject) => (owner ? isOwnedBy(o, ownerUid) : isShardObject(o));
    let actual = informer.get(ns, name);
    if (!actual) {
      // the cache may be behind: a forced apply must not meet an object that is not ours
      this.applied.delete(key);
      actual = await this.client.get<KubeObject>(resource, ns, name).catch((e: unknown) => {
        if (isNotFound(e)) return undefined;
        throw e;
      });
    }
    if (actual && !mine(actual)) {
      const message = `${desired.kind} ${name} exists and is not ${owner ? 'owned by this VirtualMachineBMC' : 'ours'}`;
      log.warn({ object: `${resource.plural}/${name}` }, message);
      if (owner && actual.metadata?.uid && !this.conflictsReported.has(actual.metadata.uid)) {
        this.conflictsReported.add(actual.metadata.uid);
        this.events.record(owner, 'Warning', Reason.NameConflict, message);
      }
      return { object: undefined, conflict: message };
    }
    if (actual && resource === Resources.roleBinding && !isSubset(desired.roleRef, actual.roleRef)) {
      // roleRef is immutable: replace the binding
      await this.client.delete(resource, ns, name).catch((e: unknown) => {
        if (!isNotFound(e)) throw e;
      });
      this.applied.delete(key);
      actual = undefined;
    }
    const strategy = (actual?.spec as { strategy?: { rollingUpdate?: unknown } } | undefined)?.strategy;
    if (actual && resource === Resources.deployment && strategy?.rollingUpdate !== undefined && strategy.rollingUpdate !== null) {
      // someone switched the agent to RollingUpdate: its rollingUpdate is theirs, so the apply would
      // leave it, and Recreate with it is invalid (apps validation ValidateDeploymentStrategy)
      actual = await this.client.jsonPatch<KubeObject>(resource, ns, name, [
        { op: 'test', path: '/metadata/resourceVersion', value: actual.metadata?.resourceVersion },
        { op: 'remove', path: '/spec/strategy/rollingUpdate' },
        { op: 'replace', path: '/spec/strategy/type', value: 'Recreate' },
      ]);
    }
    if (!applyNeeded(desired, actual, this.applied.get(key))) return { object: actual };
    const result = await this.client.apply<KubeObject>(resource, ns, name, desired, { fieldManager: FIELD_MANAGER, force: true });
    this.applied.set(key, recordOf(desired, result));
    if (!actual) {
      log.info({ object: `${resource.plural}/${name}` }, 'created');
      if (owner) this.events.record(owner, 'Normal', 'Created', `Created ${desired.kind} ${name}`);
    } else if (result.metadata?.resourceVersion !== actual.metadata?.resourceVersion) {
      log.info({ object: `${resource.plural}/${name}` }, 'updated (drift repaired or spec changed)');
      if (owner) this.events.record(owner, 'Normal', 'Updated', `Updated ${desired.kind} ${name} to the desired state`);
    }
    return { object: reduceManagedFields(result) };
  }

  /** Deletes `ns/name` if the cache holds it and `mine` says it is ours; 404 is fine. */
  private async deleteIf(resource: ResourceRef, informer: ResourceInformer, ns: string, name: string, mine: (o: KubeObject) => boolean, log: Logger): Promise<void> {
    const o = informer.get(ns, name);
    if (!o || !mine(o)) return;
    await this.client.delete(resource, ns, name).catch((e: unknown) => {
      if (!isNotFound(e)) throw e;
    });
    log.info({ object: `${resource.plural}/${name}` }, 'deleted');
  }

  /**
   * Shared mode: the BMC's own agent objects go (if it was PerVM), its Service points at its
   * shard's pod and the port the shard's fleet document gives it. The shard reconcile (below) is
   * what lists it there; this only follows.
   */
  private async reconcileShared(vmbmc: VirtualMachineBMC & KubeObject, d: DesiredObjects, log: Logger): Promise<void> {
    const ns = d.namespace;
    const name = vmbmc.metadata.name;
    const k = this.shardOf(ns, name);
    const uid = vmbmc.metadata.uid;
    const mine = (o: KubeObject) => (o.metadata?.ownerReferences ?? []).some((r) => r.controller && r.uid === uid);
    // PerVM → Shared: the BMC's own agent goes; the Service stays (same name) and is re-pointed
    await Promise.all(
      ([
        [Resources.deployment, this.deployments],
        [Resources.roleBinding, this.roleBindings],
        [RoleResource, this.roles],
        [Resources.serviceAccount, this.serviceAccounts],
      ] as Array<[ResourceRef, ResourceInformer]>).map(([r, inf]) => this.deleteIf(r, inf, ns, d.name, mine, log)),
    );
    const entry = this.fleet(ns, shardName(k))?.get(name);
    const listed = entry && entry.vmbmcUid === (uid ?? '') ? entry : undefined;
    // Auto: the shard's one certificate (reconcileShard); a certificate of the user's own cannot be served by a shard
    const unsupported = tlsMode(vmbmc) === 'Secret'
      ? 'spec.redfish.tls (mode Secret) is not supported in Shared mode (a shard serves one controller-issued certificate for all its BMCs); use mode Auto or PerVM'
      : undefined;
    const observed: ObservedState = {
      deployment: this.deployments.get(ns, shardName(k)),
      shared: { shard: k, ...(listed ? { ipmiPort: listed.ipmiPort } : {}), ...(unsupported ? { unsupported } : {}) },
    };
    if (listed) {
      const r = await this.sync(desiredSharedService(vmbmc, k, listed.ipmiPort, this.fleetTls(ns, shardName(k))), this.services, Resources.service, vmbmc, log);
      if (r.conflict) observed.problem = { reason: Reason.NameConflict, message: r.conflict };
      observed.service = r.object;
    } else {
      // not on its shard yet (new, or moving): the Service keeps routing where it did meanwhile
      const svc = this.services.get(ns, d.name);
      if (svc && mine(svc)) observed.service = svc;
      this.enqueue(`${SHARD_PREFIX_KEY}${ns}/${k}`);
    }
    await this.writeStatus(vmbmc, d, observed, log);
  }

  /**
   * One shard (`ns/k`): its members are the namespace's Shared-mode BMCs that hash to k and can be
   * served (VM there, Secret valid); ports are allocated here only (one key is reconciled by one
   * worker at a time, so there is one writer per shard). Role first (the agent may read a system
   * before it is listed), then the fleet ConfigMap, the Deployment and the metrics Service. A shard
   * without members has no objects.
   */
  async reconcileShard(key: string, log: Logger = this.log): Promise<void> {
    const [ns, kStr] = splitKey(key);
    const k = Number(kStr);
    const name = shardName(k);
    const current = this.fleet(ns, name);
    const candidates: ShardCandidate[] = [];
    if (k < this.shards) {
      for (const b of this.vmbmcs.list(ns)) {
        if (b.metadata.deletionTimestamp || !b.spec?.virtualMachineRef?.name || !b.spec?.authSecretRef?.name) continue;
        if (this.modeOf(b) !== 'Shared' || this.shardOf(ns, b.metadata.name) !== k || tlsMode(b) === 'Secret') continue;
        if (!this.vms.get(ns, b.spec.virtualMachineRef.name)) continue;
        const held = current?.get(b.metadata.name);
        const cur = held && held.vmbmcUid === (b.metadata.uid ?? '') ? held : undefined;
        const secretName = b.spec.authSecretRef.name;
        if (!this.secrets.hasSynced(ns, secretName)) {
          if (!cur) continue; // its Secret's first list queues this shard again; a listed one stays meanwhile
        } else if (checkSecret(secretName, this.secrets.get(ns, secretName)).state !== 'ok') continue;
        candidates.push({
          vmbmc: b,
          ipmi: ipmiEnabled(b),
          ...(cur ? { currentPort: cur.ipmiPort } : {}),
          ...(b.status?.ipmiPort !== undefined ? { previousPort: b.status.ipmiPort } : {}),
        });
      }
    }
    const all: Array<[ResourceRef, ResourceInformer]> = [
      [Resources.deployment, this.deployments],
      [Resources.service, this.services],
      [ConfigMapResource, this.configMaps],
      [Resources.roleBinding, this.roleBindings],
      [RoleResource, this.roles],
      [Resources.serviceAccount, this.serviceAccounts],
    ];
    if (candidates.length === 0) {
      for (const [r, inf] of all) await this.deleteIf(r, inf, ns, name, isShardObject, log);
      await this.tls.dropShard(ns, name, shardObjectLabels(k));
      return;
    }
    const ports = allocatePorts(candidates);
    const systems: FleetSystem[] = [];
    for (const c of candidates) {
      const p = ports.get(c.vmbmc.metadata.name);
      if (p === undefined) log.error({ vmbmc: c.vmbmc.metadata.name, shard: k }, 'no free UDP port left on the shard; not served');
      else systems.push(fleetSystem(c.vmbmc, p));
    }
    // one scheme per shard: HTTPS as soon as one listed member is Auto (the default); Disabled members
    // of such a shard are served over HTTPS too (names in the certificate, 80 redirected); a shard of
    // Disabled members only serves plain HTTP (docs/security.md "TLS by default", Shared mode)
    const wantTls = candidates.some((c) => ports.has(c.vmbmc.metadata.name) && tlsMode(c.vmbmc) === 'Auto');
    const tlsSecret = wantTls ? ((await this.tls.certManagerServed()) ? certManagerSecretName(name) : mintedSecretName(name)) : undefined;
    const rules = shardRoleRules(k, systems, (vm) => cdromDrives(this.vms.get(ns, vm)));
    const objs = desiredShardObjects(ns, k, systems, rules, {
      image: this.o.agent.image,
      ...(this.o.agent.imagePullPolicy ? { imagePullPolicy: this.o.agent.imagePullPolicy } : {}),
      ...(this.o.agent.metricsPort !== undefined ? { metricsPort: this.o.agent.metricsPort } : {}),
      ...(tlsSecret ? { tlsSecret } : {}),
    });
    const step = async (desired: KubeObject, inf: ResourceInformer, r: ResourceRef) => {
      const res = await this.sync(desired, inf, r, undefined, log);
      if (res.conflict) throw new Error(`shard ${ns}/${name}: ${res.conflict}`);
      return res.object;
    };
    await Promise.all([step(objs.serviceAccount, this.serviceAccounts, Resources.serviceAccount), step(objs.role, this.roles, RoleResource)]);
    await step(objs.roleBinding, this.roleBindings, Resources.roleBinding);
    const cm = await step(objs.configMap, this.configMaps, ConfigMapResource);
    if (wantTls) {
      // the certificate before the Deployment that mounts it; owned by the fleet ConfigMap (garbage
      // collected with the shard), SANs: the Service names of every member, re-issued when they change
      const dnsNames = systems
        .map((s) => agentObjectName(s.vmbmc))
        .sort()
        .flatMap((svc) => serviceDnsNames(svc, ns, this.o.agent.clusterDomain));
      // no blockOwnerDeletion: under the OwnerReferencesPermissionEnforcement admission plugin
      // (kubernetes plugin/pkg/admission/gc) setting it needs update on configmaps/finalizers, which
      // the controller is not granted; foreground deletion of the ConfigMap need not wait for it
      const owner = { apiVersion: 'v1', kind: 'ConfigMap', name, uid: cm?.metadata?.uid ?? '', controller: true };
      const plan = await this.tls.prepareShard(ns, name, shardObjectLabels(k), owner, dnsNames);
      if (plan.problem) throw new Error(`shard ${ns}/${name}: ${plan.problem.message}`);
      if (plan.requeueAfterMs !== undefined) this.queue?.addAfter(`${SHARD_PREFIX_KEY}${key}`, plan.requeueAfterMs);
    }
    await step(objs.deployment, this.deployments, Resources.deployment);
    if (!wantTls) await this.tls.dropShard(ns, name, shardObjectLabels(k));
    if (objs.metricsService) await step(objs.metricsService, this.services, Resources.service);
    else await this.deleteIf(Resources.service, this.services, ns, name, isShardObject, log);
  }

  /** Creates, updates or deletes the auto-created VirtualMachineBMC of a VM (ns/name): autocreate.ts. */
  reconcileAutoCreate(key: string, log: Logger = this.log): Promise<void> {
    return reconcileAutoCreate({ client: this.client, vms: this.vms, vmbmcs: this.vmbmcs }, key, log);
  }
}
