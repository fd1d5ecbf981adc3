/**
 * The VirtualMachineBMC controller: informers feed a work queue; workers (only while this replica
 * leads) reconcile one key at a time: ServiceAccount, Role, RoleBinding, Deployment and Service per
 * VirtualMachineBMC, then the status (merge patch on /status, controller-owned fields only).
 * Secrets are watched one by one, only those a VirtualMachineBMC references (NamedSecrets).
 * Keys are `ns/name` for VirtualMachineBMCs and `vm|ns/name` for VM auto-creation checks.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import { newRequestId, type Logger } from '../common/logger.js';
import {
  API_VERSION,
  AnnotationAutoSecret,
  AnnotationAutoServiceType,
  KIND,
  LabelAutoCreated,
  LabelAutoEnabled,
  LabelManagedBy,
  ManagedByValue,
  Reason,
  type ServiceType,
  type VirtualMachineBMC,
} from './api/types.js';
import { EventRecorder } from './events.js';
import { NamedSecrets, ResourceInformer } from './informers.js';
import { cdromDrives, RoleResource } from './agent-rbac.js';
import { isConflict, isNotFound, KubeApiError, KubeClient } from '../kube/client.js';
import { Resources, type ResourceRef } from '../kube/resources.js';
import type { KubeObject } from '../kube/types.js';
import { ControllerMetrics } from './metrics.js';
import {
  desiredObjects,
  desiredStatus,
  planSync,
  SECRET_KEYS,
  statusPatch,
  SYNC_FIELDS,
  isSubset,
  type AgentSettings,
  type ObservedState,
} from './reconcile.js';
import { WorkQueue, type WorkQueueOptions } from './workqueue.js';

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
}

const VM_PREFIX = 'vm|';
const SERVICE_TYPES: readonly string[] = ['ClusterIP', 'NodePort', 'LoadBalancer'];

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
  readonly secrets: NamedSecrets;
  readonly deployments: ResourceInformer;
  readonly services: ResourceInformer;
  readonly serviceAccounts: ResourceInformer;
  readonly roles: ResourceInformer;
  readonly roleBindings: ResourceInformer;
  private readonly all: Array<Pick<ResourceInformer, 'start' | 'stop' | 'synced' | 'resource'>>;
  private queue?: WorkQueue;
  private workers: Promise<void>[] = [];
  /** settles when the workers of the previous leadership term have finished */
  private previousWorkers: Promise<unknown> = Promise.resolve();
  private resyncTimer?: NodeJS.Timeout;
  private readonly log: Logger;
  private readonly events: EventRecorder;
  /** uids of foreign objects already reported as name conflicts (one Warning each) */
  private readonly conflictsReported = new Set<string>();
  /** CD-ROM drives per VM (`ns/name` → names), to re-reconcile when they change (the agent Role names their DataVolumes) */
  private readonly vmDrives = new Map<string, string>();

  constructor(private readonly o: ControllerOptions) {
    if (!o.kc.getCurrentCluster()) throw new Error('kubeconfig has no current cluster');
    // a slow API server gets more patience here than in the agent: reconciles are not interactive
    this.client = new KubeClient(o.kc, { logger: o.logger, timeoutMs: 30_000, maxSockets: 32 });
    this.events = new EventRecorder(this.client, o.identity ?? 'virtbmc-controller', o.logger);
    this.metrics = o.metrics ?? new ControllerMetrics();
    this.log = o.logger;
    const mk = <T extends KubeObject>(resource: ResourceRef, labelSelector?: string) =>
      new ResourceInformer<T>({
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
    this.secrets = new NamedSecrets(Resources.secret, {
      kc: o.kc,
      client: this.client,
      keys: SECRET_KEYS,
      logger: o.logger,
      ...(o.informerBackoffMs ? { minBackoffMs: o.informerBackoffMs.min, maxBackoffMs: o.informerBackoffMs.max } : {}),
      onRestart: () => this.metrics.errors.inc({ kind: 'informer' }),
    });
    this.deployments = mk(Resources.deployment, owned);
    this.services = mk(Resources.service, owned);
    this.serviceAccounts = mk(Resources.serviceAccount, owned);
    this.roles = mk(RoleResource, owned);
    this.roleBindings = mk(Resources.roleBinding, owned);
    this.all = [this.vmbmcs, this.vms, this.secrets, this.deployments, this.services, this.serviceAccounts, this.roles, this.roleBindings];
    this.wireEvents();
  }

  private enqueue(key: string): void {
    this.queue?.add(key);
  }

  private wireEvents(): void {
    this.vmbmcs.onChange((obj) => {
      this.enqueue(keyOf(obj));
      this.metrics.managed.set(this.vmbmcs.list().length);
      this.trackSecrets();
    });
    const byOwner = (obj: KubeObject) => {
      for (const r of obj.metadata?.ownerReferences ?? []) {
        if (r.controller && r.kind === KIND && r.apiVersion.startsWith('bmc.kubevirt.io/')) this.enqueue(`${obj.metadata?.namespace}/${r.name}`);
      }
    };
    for (const inf of [this.deployments, this.services, this.serviceAccounts, this.roles, this.roleBindings]) inf.onChange(byOwner);
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
      for (const b of this.vmbmcs.list(ns)) if (b.spec?.virtualMachineRef?.name === name) this.enqueue(keyOf(b));
    });
    const bySecret = (ns: string, name: string | undefined) => {
      for (const b of this.vmbmcs.list(ns)) if (b.spec?.authSecretRef?.name === name) this.enqueue(keyOf(b));
    };
    this.secrets.onChange((s) => bySecret(s.metadata?.namespace ?? '', s.metadata?.name));
    // a Secret that does not exist sends no event: its first (empty) list must wake the VMBMCs too
    this.secrets.onListed(bySecret);
  }

  /** Watch exactly the auth Secrets the VirtualMachineBMCs reference. */
  private trackSecrets(): void {
    const refs: Array<[string, string]> = [];
    for (const b of this.vmbmcs.list()) {
      const name = b.spec?.authSecretRef?.name;
      if (name && !b.metadata.deletionTimestamp) refs.push([b.metadata.namespace ?? '', name]);
    }
    this.secrets.track(refs);
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
    for (const b of this.vmbmcs.list()) this.enqueue(keyOf(b));
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
    this.trackSecrets(); // (normally done by the VirtualMachineBMC event already)
    if (!this.secrets.hasSynced(ns, secretName)) {
      // the Secret's own watch has not listed yet: "not found" would scale the agent down for
      // nothing; its first list re-queues this key (onListed)
      log.debug({ secret: secretName }, 'auth Secret not listed yet; waiting');
      return;
    }
    const vm = this.vms.get(ns, vmbmc.spec.virtualMachineRef.name);
    const secret = this.secrets.get(ns, secretName);
    const d = desiredObjects(vmbmc, vm, secret, this.o.agent);
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

  /** Brings one owned object in line; returns the object as it now stands. */
  private async sync(
    desired: KubeObject,
    informer: ResourceInformer,
    resource: ResourceRef,
    owner: VirtualMachineBMC,
    log: Logger,
  ): Promise<{ object?: KubeObject; conflict?: string }> {
    const ownerUid = owner.metadata.uid;
    const ns = desired.metadata?.namespace ?? '';
    const name = desired.metadata?.name ?? '';
    const fields = SYNC_FIELDS[desired.kind ?? ''] ?? [];
    let actual = informer.get(ns, name);
    for (let attempt = 0; attempt < 2; attempt++) {
      const plan = planSync(desired, actual, ownerUid, fields);
      switch (plan.action) {
        case 'none':
          return { object: actual };
        case 'conflict':
          log.warn({ object: `${resource.plural}/${name}` }, plan.message);
          if (actual?.metadata?.uid && !this.conflictsReported.has(actual.metadata.uid)) {
            this.conflictsReported.add(actual.metadata.uid);
            this.events.record(owner, 'Warning', Reason.NameConflict, plan.message);
          }
          return { object: undefined, conflict: plan.message };
        case 'create':
          try {
            const created = await this.client.create(resource, ns, plan.body);
            log.info({ object: `${resource.plural}/${name}` }, 'created');
            this.events.record(owner, 'Normal', 'Created', `Created ${desired.kind} ${name}`);
            return { object: created };
          } catch (e) {
            if (!isConflict(e)) throw e;
            actual = await this.client.get<KubeObject>(resource, ns, name); // the cache was behind: compare with the real one
            continue;
          }
        case 'patch': {
          if (resource === Resources.roleBinding && actual && !isSubset(desired.roleRef, actual.roleRef)) {
            // roleRef is immutable: replace the binding.
            await this.client.delete(resource, ns, name).catch((e: unknown) => {
              if (!isNotFound(e)) throw e;
            });
            actual = undefined;
            continue;
          }
          const patched = await this.client.mergePatch(resource, ns, name, plan.patch);
          log.info({ object: `${resource.plural}/${name}` }, 'updated (drift repaired or spec changed)');
          this.events.record(owner, 'Normal', 'Updated', `Updated ${desired.kind} ${name} to the desired state`);
          return { object: patched };
        }
      }
    }
    throw new Error(`could not sync ${resource.plural}/${name}`);
  }

  /** Creates, updates or deletes the auto-created VirtualMachineBMC of a VM (ns/name). */
  async reconcileAutoCreate(key: string, log: Logger = this.log): Promise<void> {
    const [ns, vmName] = splitKey(key);
    const vm = this.vms.get(ns, vmName);
    const existing = this.vmbmcs.get(ns, vmName);
    const autoOwned = existing?.metadata.labels?.[LabelAutoCreated] === 'true' && existing.spec?.virtualMachineRef?.name === vmName;
    const secretName = vm?.metadata?.annotations?.[AnnotationAutoSecret];
    const wanted = vm !== undefined && !vm.metadata?.deletionTimestamp && vm.metadata?.labels?.[LabelAutoEnabled] === 'true' && !!secretName;
    if (!wanted) {
      if (existing && autoOwned) {
        await this.client.delete(Resources.vmbmc, ns, vmName).catch((e: unknown) => {
          if (!isNotFound(e)) throw e;
        });
        log.info({ vm: vmName }, 'auto-created VirtualMachineBMC removed (VM no longer opts in)');
      }
      return;
    }
    const svcType = vm.metadata?.annotations?.[AnnotationAutoServiceType];
    const spec: VirtualMachineBMC['spec'] = {
      virtualMachineRef: { name: vmName },
      authSecretRef: { name: secretName },
      ...(svcType && SERVICE_TYPES.includes(svcType) ? { service: { type: svcType as ServiceType } } : {}),
    };
    if (existing) {
      if (!autoOwned) {
        log.debug({ vm: vmName }, 'a VirtualMachineBMC with the VM name exists and was not auto-created; leaving it alone');
        return;
      }
      // an invalid service-type annotation counts as none (as on create): back to the default type
      if (isSubset(spec, existing.spec) && (spec.service !== undefined || existing.spec.service?.type === undefined)) return;
      await this.client.mergePatch(Resources.vmbmc, ns, vmName, { spec: { ...spec, service: spec.service ?? null } });
      log.info({ vm: vmName }, 'auto-created VirtualMachineBMC updated');
      return;
    }
    const body: VirtualMachineBMC = {
      apiVersion: API_VERSION,
      kind: KIND,
      metadata: {
        name: vmName,
        namespace: ns,
        labels: { [LabelAutoCreated]: 'true', [LabelManagedBy]: ManagedByValue },
        ownerReferences: [
          { apiVersion: vm.apiVersion ?? 'kubevirt.io/v1', kind: vm.kind ?? 'VirtualMachine', name: vmName, uid: vm.metadata?.uid ?? '', controller: true, blockOwnerDeletion: false },
        ],
      },
      spec,
    };
    try {
      await this.client.create(Resources.vmbmc, ns, body as unknown as KubeObject);
      log.info({ vm: vmName, vmbmc: vmName }, 'VirtualMachineBMC auto-created');
    } catch (e) {
      if (!isConflict(e)) throw e; // exists already: the next event reconciles it
    }
  }
}
