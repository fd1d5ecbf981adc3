/**
 * The writer of the objects the controller owns (agent ServiceAccount, Role, RoleBinding,
 * Deployment, Service; shard objects and fleet ConfigMaps): Server-Side Apply of one object at a
 * time (the pure parts are apply.ts), name conflicts with objects that are not ours, the roleRef
 * replace and the RollingUpdate repair the apply alone cannot do, and deletes of our own objects.
 * It remembers, per object, what it applied last (so an apply that would change nothing is not
 * sent) and which foreign objects it already reported.
 */
import type { Logger } from '../common/logger.js';
import { Reason, type VirtualMachineBMC } from './api/types.js';
import { isNotFound, type KubeClient } from '../kube/client.js';
import { Resources, type ResourceRef } from '../kube/resources.js';
import type { KubeObject } from '../kube/types.js';
import { applyNeeded, FIELD_MANAGER, type AppliedRecord, isOwnedBy, isSubset, recordOf, reduceManagedFields } from './apply.js';
import type { EventRecorder } from './events.js';
import type { WatchedResource } from './informers.js';
import { isShardObject } from './shard.js';
import { RoleResource } from './agent-rbac.js';
import type { DesiredObjects } from './reconcile.js';
import type { ObservedState } from './status.js';

/** The result of one sync: the object as it now stands, or why it was left alone. */
export interface SyncResult {
  object?: KubeObject;
  conflict?: string;
}

/** The informers of the objects the controller owns (a type, not an interface: Object.values keeps its element type). */
export type OwnedInformers = {
  deployments: WatchedResource;
  services: WatchedResource;
  serviceAccounts: WatchedResource;
  roles: WatchedResource;
  roleBindings: WatchedResource;
  configMaps: WatchedResource;
};

export class OwnedObjects {
  /** per owned object (`plural|ns|name`): what was applied last and what the apiserver recorded (apply.ts) */
  private readonly applied = new Map<string, AppliedRecord>();
  /** uids of foreign objects already reported as name conflicts (one Warning each) */
  private readonly conflictsReported = new Set<string>();

  constructor(
    private readonly client: KubeClient,
    private readonly events: EventRecorder,
  ) {}

  /** An owned object is gone: its apply record goes too (a later one is applied afresh). */
  forget(resource: ResourceRef, ns: string, name: string): void {
    this.applied.delete(`${resource.plural}|${ns}|${name}`);
  }

  /**
   * Brings one object in line (Server-Side Apply, src/controller/apply.ts); returns the object as
   * it now stands. `owner` is the VirtualMachineBMC that owns it (Events go there), or undefined
   * for shard objects (ours by their labels). An object with the name that is not ours is never
   * applied to (the apply is forced and would take it over): a conflict is reported instead.
   */
  async sync(
    desired: KubeObject,
    informer: WatchedResource,
    resource: ResourceRef,
    owner: VirtualMachineBMC | undefined,
    log: Logger,
  ): Promise<SyncResult> {
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
  async deleteIf(resource: ResourceRef, informer: WatchedResource, ns: string, name: string, mine: (o: KubeObject) => boolean, log: Logger): Promise<void> {
    const o = informer.get(ns, name);
    if (!o || !mine(o)) return;
    await this.client.delete(resource, ns, name).catch((e: unknown) => {
      if (!isNotFound(e)) throw e;
    });
    log.info({ object: `${resource.plural}/${name}` }, 'deleted');
  }

  /**
   * A PerVM agent's objects: ServiceAccount and Role first (binding a Role that does not exist is
   * refused, and the binding is only authorized because the Role's rules are held), then the
   * RoleBinding, Deployment and Service, independent of each other. Returns what the status reads.
   */
  async syncAgent(vmbmc: VirtualMachineBMC, d: DesiredObjects, inf: OwnedInformers, log: Logger): Promise<ObservedState> {
    const ns = vmbmc.metadata.namespace ?? '';
    const observed: ObservedState = {};
    type Step = [KubeObject, WatchedResource, ResourceRef];
    const first: Step[] = [
      [d.serviceAccount, inf.serviceAccounts, Resources.serviceAccount],
      [d.role, inf.roles, RoleResource],
    ];
    const then: Step[] = [
      [d.roleBinding, inf.roleBindings, Resources.roleBinding],
      [d.deployment, inf.deployments, Resources.deployment],
      [d.service, inf.services, Resources.service],
    ];
    const run = (steps: Step[]) => Promise.all(steps.map(([desired, informer, resource]) => this.sync(desired, informer, resource, vmbmc, log)));
    const firstResults = await run(first);
    if (firstResults[1]!.conflict) {
      // a Role with the agent's name that is not ours: never bind the agent to it (it could grant
      // anything its author holds); drop our binding if one exists, and report the conflict
      then.shift();
      const rb = inf.roleBindings.get(ns, d.roleBinding.metadata?.name ?? '');
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
    return observed;
  }
}
