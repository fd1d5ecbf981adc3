/**
 * The Shared-mode half of the controller (docs/scale.md): which shard a VirtualMachineBMC is on
 * (rendezvous hashing, shard.ts), what each shard's fleet ConfigMap says (parsed once per
 * resourceVersion), which keys a change there wakes, a Shared-mode BMC's own reconcile (its
 * Service follows its shard) and the reconcile of one shard's objects. The pure parts (desired
 * shard objects, port allocation, the fleet document) are shard.ts; controller.ts owns the
 * informers and the queue and hands this what it needs.
 */
import type { Logger } from '../common/logger.js';
import { Reason, type BMCMode, type VirtualMachineBMC } from './api/types.js';
import { Resources, type ResourceRef } from '../kube/resources.js';
import type { KubeObject } from '../kube/types.js';
import {
  allocatePorts,
  assignShard,
  ConfigMapResource,
  desiredShardObjects,
  fleetSystem,
  isShardObject,
  parseFleet,
  shardIndex,
  shardKey,
  shardName,
  shardObjectLabels,
  shardRoleRules,
  type FleetSystem,
  type ShardCandidate,
} from './shard.js';
import type { NamespaceSecrets, WatchedResource } from './informers.js';
import { cdromDrives, RoleResource } from './agent-rbac.js';
import { checkSecret, desiredSharedService, ipmiEnabled, type AgentSettings, type DesiredObjects } from './reconcile.js';
import type { ObservedState } from './status.js';
import type { OwnedInformers, OwnedObjects } from './owned-objects.js';
import { serviceDnsNames, type AgentTls } from './tls.js';
import { certManagerSecretName, mintedSecretName, tlsMode } from './tls-names.js';
import { agentObjectName, splitKey } from './names.js';

/** `shard|<ns>/<k>`: one shard's objects (fleet ConfigMap, Role, Deployment ...); the only writer of its port allocation */
export const SHARD_PREFIX_KEY = 'shard|';

/** The work queue key of shard `k` of namespace `ns`. */
export function shardQueueKey(ns: string | undefined, k: number | undefined): string {
  return `${SHARD_PREFIX_KEY}${ns}/${k}`;
}

export interface ShardReconcileDeps {
  agent: AgentSettings;
  /** K: shards per namespace (fixed for the life of the controller) */
  shards: number;
  vmbmcs: WatchedResource<VirtualMachineBMC & KubeObject>;
  vms: WatchedResource;
  secrets: Pick<NamespaceSecrets, 'hasSynced' | 'get'>;
  owned: OwnedInformers;
  writer: OwnedObjects;
  tls: AgentTls;
  modeOf(b: VirtualMachineBMC): BMCMode;
  enqueue(key: string): void;
  enqueueAfter(key: string, ms: number): void;
  /** the controller's status write (only when it changed, with its Events) */
  writeStatus(vmbmc: VirtualMachineBMC, d: DesiredObjects, observed: ObservedState, log: Logger): Promise<void>;
}

export class ShardReconciler {
  /** rendezvous result per `ns/name` (K is fixed for the life of the controller) */
  private readonly shardOfKey = new Map<string, number>();
  /** parsed fleet documents per `ns/virtbmc-shard-<k>`, by resourceVersion */
  private readonly fleetCache = new Map<string, { rv: string; byName: Map<string, FleetSystem>; tls: boolean }>();

  constructor(private readonly d: ShardReconcileDeps) {}

  /** The shard (0..K-1) of a VirtualMachineBMC, by rendezvous hashing on `<namespace>/<name>`. */
  shardOf(namespace: string, name: string): number {
    const key = shardKey(namespace, name);
    let k = this.shardOfKey.get(key);
    if (k === undefined) {
      k = assignShard(key, this.d.shards);
      this.shardOfKey.set(key, k);
    }
    return k;
  }

  /** The systems of shard ConfigMap `ns/name`, by VirtualMachineBMC name (parsed once per resourceVersion). */
  fleet(namespace: string, name: string): Map<string, FleetSystem> | undefined {
    const cm = this.d.owned.configMaps.get(namespace, name);
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

  /** A fleet ConfigMap changed: its shard, and only the BMCs whose entry came, went or changed. */
  fleetChanged(cm: KubeObject): void {
    if (!isShardObject(cm)) return;
    const ns = cm.metadata?.namespace ?? '';
    const name = cm.metadata?.name ?? '';
    this.d.enqueue(shardQueueKey(ns, shardIndex(name)));
    // only the BMCs whose entry came, went or changed: the others have nothing new to follow
    const beforeEntry = this.fleetCache.get(`${ns}/${name}`);
    const before = beforeEntry?.byName ?? new Map<string, FleetSystem>();
    const after = this.fleet(ns, name) ?? new Map<string, FleetSystem>();
    if ((beforeEntry?.tls ?? false) !== this.fleetTls(ns, name)) {
      // the shard's scheme changed: every member's Service follows (80/443 → its TLS port, or back)
      for (const bmc of new Set([...before.keys(), ...after.keys()])) this.d.enqueue(`${ns}/${bmc}`);
      return;
    }
    for (const [bmc, sys] of after) {
      const old = before.get(bmc);
      if (!old || old.ipmiPort !== sys.ipmiPort || old.vmbmcUid !== sys.vmbmcUid) this.d.enqueue(`${ns}/${bmc}`);
    }
    for (const bmc of before.keys()) if (!after.has(bmc)) this.d.enqueue(`${ns}/${bmc}`);
  }

  /** Queue the shards a VirtualMachineBMC is on (by its hash, if Shared) or listed by (its fleet entry). */
  enqueueShardsOf(b: VirtualMachineBMC & KubeObject): void {
    const ns = b.metadata.namespace ?? '';
    const name = b.metadata.name;
    if (this.d.modeOf(b) === 'Shared') this.d.enqueue(shardQueueKey(ns, this.shardOf(ns, name)));
    for (const cm of this.d.owned.configMaps.list(ns)) {
      if (isShardObject(cm) && this.fleet(ns, cm.metadata?.name ?? '')?.has(name)) this.d.enqueue(shardQueueKey(ns, shardIndex(cm.metadata?.name)));
    }
  }

  /** Queue the VirtualMachineBMCs that shard `ns/name`'s fleet document lists. */
  enqueueListed(namespace: string, name: string): void {
    for (const bmc of this.fleet(namespace, name)?.keys() ?? []) this.d.enqueue(`${namespace}/${bmc}`);
  }

  /** Queue every shard that has objects (also those beyond K after K went down: they are removed). */
  enqueueExisting(): void {
    for (const inf of [this.d.owned.configMaps, this.d.owned.deployments]) {
      for (const o of inf.list()) if (isShardObject(o)) this.d.enqueue(shardQueueKey(o.metadata?.namespace, shardIndex(o.metadata?.name)));
    }
  }

  /**
   * Shared mode: the BMC's own agent objects go (if it was PerVM), its Service points at its
   * shard's pod and the port the shard's fleet document gives it. The shard reconcile (below) is
   * what lists it there; this only follows.
   */
  async reconcileShared(vmbmc: VirtualMachineBMC & KubeObject, d: DesiredObjects, log: Logger): Promise<void> {
    const { owned, writer } = this.d;
    const ns = d.namespace;
    const name = vmbmc.metadata.name;
    const k = this.shardOf(ns, name);
    const uid = vmbmc.metadata.uid;
    const mine = (o: KubeObject) => (o.metadata?.ownerReferences ?? []).some((r) => r.controller && r.uid === uid);
    // PerVM → Shared: the BMC's own agent goes; the Service stays (same name) and is re-pointed
    await Promise.all(
      ([
        [Resources.deployment, owned.deployments],
        [Resources.roleBinding, owned.roleBindings],
        [RoleResource, owned.roles],
        [Resources.serviceAccount, owned.serviceAccounts],
      ] as Array<[ResourceRef, WatchedResource]>).map(([r, inf]) => writer.deleteIf(r, inf, ns, d.name, mine, log)),
    );
    const entry = this.fleet(ns, shardName(k))?.get(name);
    const listed = entry && entry.vmbmcUid === (uid ?? '') ? entry : undefined;
    // Auto: the shard's one certificate (reconcileShard); a certificate of the user's own cannot be served by a shard
    const unsupported = tlsMode(vmbmc) === 'Secret'
      ? 'spec.redfish.tls (mode Secret) is not supported in Shared mode (a shard serves one controller-issued certificate for all its BMCs); use mode Auto or PerVM'
      : undefined;
    const observed: ObservedState = {
      deployment: owned.deployments.get(ns, shardName(k)),
      shared: { shard: k, ...(listed ? { ipmiPort: listed.ipmiPort } : {}), ...(unsupported ? { unsupported } : {}) },
    };
    if (listed) {
      const r = await writer.sync(desiredSharedService(vmbmc, k, listed.ipmiPort, this.fleetTls(ns, shardName(k))), owned.services, Resources.service, vmbmc, log);
      if (r.conflict) observed.problem = { reason: Reason.NameConflict, message: r.conflict };
      observed.service = r.object;
    } else {
      // not on its shard yet (new, or moving): the Service keeps routing where it did meanwhile
      const svc = owned.services.get(ns, d.name);
      if (svc && mine(svc)) observed.service = svc;
      this.d.enqueue(shardQueueKey(ns, k));
    }
    await this.d.writeStatus(vmbmc, d, observed, log);
  }

  /**
   * One shard (`ns/k`): its members are the namespace's Shared-mode BMCs that hash to k and can be
   * served (VM there, Secret valid); ports are allocated here only (one key is reconciled by one
   * worker at a time, so there is one writer per shard). Role first (the agent may read a system
   * before it is listed), then the fleet ConfigMap, the Deployment and the metrics Service. A shard
   * without members has no objects.
   */
  async reconcileShard(key: string, log: Logger): Promise<void> {
    const { owned, writer, tls } = this.d;
    const [ns, kStr] = splitKey(key);
    const k = Number(kStr);
    const name = shardName(k);
    const current = this.fleet(ns, name);
    const candidates: ShardCandidate[] = [];
    if (k < this.d.shards) {
      for (const b of this.d.vmbmcs.list(ns)) {
        if (b.metadata.deletionTimestamp || !b.spec?.virtualMachineRef?.name || !b.spec?.authSecretRef?.name) continue;
        if (this.d.modeOf(b) !== 'Shared' || this.shardOf(ns, b.metadata.name) !== k || tlsMode(b) === 'Secret') continue;
        if (!this.d.vms.get(ns, b.spec.virtualMachineRef.name)) continue;
        const held = current?.get(b.metadata.name);
        const cur = held && held.vmbmcUid === (b.metadata.uid ?? '') ? held : undefined;
        const secretName = b.spec.authSecretRef.name;
        if (!this.d.secrets.hasSynced(ns, secretName)) {
          if (!cur) continue; // its Secret's first list queues this shard again; a listed one stays meanwhile
        } else if (checkSecret(secretName, this.d.secrets.get(ns, secretName)).state !== 'ok') continue;
        candidates.push({
          vmbmc: b,
          ipmi: ipmiEnabled(b),
          ...(cur ? { currentPort: cur.ipmiPort } : {}),
          ...(b.status?.ipmiPort !== undefined ? { previousPort: b.status.ipmiPort } : {}),
        });
      }
    }
    const all: Array<[ResourceRef, WatchedResource]> = [
      [Resources.deployment, owned.deployments],
      [Resources.service, owned.services],
      [ConfigMapResource, owned.configMaps],
      [Resources.roleBinding, owned.roleBindings],
      [RoleResource, owned.roles],
      [Resources.serviceAccount, owned.serviceAccounts],
    ];
    if (candidates.length === 0) {
      for (const [r, inf] of all) await writer.deleteIf(r, inf, ns, name, isShardObject, log);
      await tls.dropShard(ns, name, shardObjectLabels(k));
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
    const tlsSecret = wantTls ? ((await tls.certManagerServed()) ? certManagerSecretName(name) : mintedSecretName(name)) : undefined;
    const rules = shardRoleRules(k, systems, (vm) => cdromDrives(this.d.vms.get(ns, vm)));
    const agent = this.d.agent;
    const objs = desiredShardObjects(ns, k, systems, rules, {
      image: agent.image,
      ...(agent.imagePullPolicy ? { imagePullPolicy: agent.imagePullPolicy } : {}),
      ...(agent.metricsPort !== undefined ? { metricsPort: agent.metricsPort } : {}),
      ...(tlsSecret ? { tlsSecret } : {}),
    });
    const step = async (desired: KubeObject, inf: WatchedResource, r: ResourceRef) => {
      const res = await writer.sync(desired, inf, r, undefined, log);
      if (res.conflict) throw new Error(`shard ${ns}/${name}: ${res.conflict}`);
      return res.object;
    };
    await Promise.all([step(objs.serviceAccount, owned.serviceAccounts, Resources.serviceAccount), step(objs.role, owned.roles, RoleResource)]);
    await step(objs.roleBinding, owned.roleBindings, Resources.roleBinding);
    const cm = await step(objs.configMap, owned.configMaps, ConfigMapResource);
    if (wantTls) {
      // the certificate before the Deployment that mounts it; owned by the fleet ConfigMap (garbage
      // collected with the shard), SANs: the Service names of every member, re-issued when they change
      const dnsNames = systems
        .map((s) => agentObjectName(s.vmbmc))
        .sort()
        .flatMap((svc) => serviceDnsNames(svc, ns, agent.clusterDomain));
      // no blockOwnerDeletion: under the OwnerReferencesPermissionEnforcement admission plugin
      // (kubernetes plugin/pkg/admission/gc) setting it needs update on configmaps/finalizers, which
      // the controller is not granted; foreground deletion of the ConfigMap need not wait for it
      const owner = { apiVersion: 'v1', kind: 'ConfigMap', name, uid: cm?.metadata?.uid ?? '', controller: true };
      const plan = await tls.prepareShard(ns, name, shardObjectLabels(k), owner, dnsNames);
      if (plan.problem) throw new Error(`shard ${ns}/${name}: ${plan.problem.message}`);
      if (plan.requeueAfterMs !== undefined) this.d.enqueueAfter(`${SHARD_PREFIX_KEY}${key}`, plan.requeueAfterMs);
    }
    await step(objs.deployment, owned.deployments, Resources.deployment);
    if (!wantTls) await tls.dropShard(ns, name, shardObjectLabels(k));
    if (objs.metricsService) await step(objs.metricsService, owned.services, Resources.service);
    else await writer.deleteIf(Resources.service, owned.services, ns, name, isShardObject, log);
  }
}
