/**
 * The controller's caches: which resources it watches, with which selectors, and what is reduced
 * on arrival. VirtualMachineBMCs without their managedFields; VMs reduced to what the controller
 * reads of them (reduceVm);
 * Secrets per namespace, each reduced to a digest
 * (NamespaceSecrets); the objects it owns only when labelled managed-by virtbmc-controller, their
 * managedFields reduced to our entry's digest (apply.ts). The mechanism is informers.ts; the
 * controller wires their events (controller.ts).
 */
import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from '../common/logger.js';
import { LabelManagedBy, ManagedByValue, type VirtualMachineBMC } from './api/types.js';
import type { KubeClient } from '../kube/client.js';
import { Resources, type ResourceRef } from '../kube/resources.js';
import type { KubeObject } from '../kube/types.js';
import { NamespaceSecrets, ResourceInformer } from './informers.js';
import { RoleResource, cdromDrives } from './agent-rbac.js';
import { ConfigMapResource } from './shard.js';
import { reduceSecret } from './reconcile.js';
import { metadataWithoutManagedFields, reduceManagedFields } from './apply.js';
import type { OwnedInformers } from './owned-objects.js';

export interface CacheOptions {
  kc: KubeConfig;
  client: KubeClient;
  logger: Logger;
  /** Watch only this namespace (default: all). */
  namespace?: string;
  /** Informer restart backoff bounds (ms). */
  informerBackoffMs?: { min: number; max: number };
  /** Called on every informer restart (the errors metric). */
  onRestart: () => void;
}

export interface ControllerCaches {
  vmbmcs: ResourceInformer<VirtualMachineBMC & KubeObject>;
  vms: ResourceInformer;
  secrets: NamespaceSecrets;
  /** in this order: deployments, services, serviceAccounts, roles, roleBindings, configMaps */
  owned: OwnedInformers;
}

/**
 * Informer transform for VMs: only what the controller reads of a VM — its metadata without
 * managedFields (auto-creation reads labels, annotations and deletionTimestamp; references read
 * the name) and its CD-ROM drives (the agent Role, agent-rbac.ts cdromDrives) — since the cache
 * holds every VM the controller may see, and a VM's status and managedFields are most of its size
 * (docs/scale.md "The controller at scale": the watched objects were the largest part of the heap).
 */
export function reduceVm(vm: KubeObject): KubeObject {
  const metadata = metadataWithoutManagedFields(vm);
  const disks = cdromDrives(vm).map((name) => ({ name, cdrom: {} }));
  return {
    ...(vm.apiVersion !== undefined ? { apiVersion: vm.apiVersion } : {}),
    ...(vm.kind !== undefined ? { kind: vm.kind } : {}),
    metadata,
    spec: { template: { spec: { domain: { devices: { disks } } } } },
  };
}

/**
 * Informer transform for VirtualMachineBMCs: the object without its managedFields, which the
 * controller never reads (it writes status with merge patches, never the cached object back).
 */
export function dropManagedFields(obj: KubeObject): KubeObject {
  if ((obj.metadata as { managedFields?: unknown } | undefined)?.managedFields === undefined) return obj;
  return { ...obj, metadata: metadataWithoutManagedFields(obj) };
}

export function controllerCaches(o: CacheOptions): ControllerCaches {
  const backoff = o.informerBackoffMs ? { minBackoffMs: o.informerBackoffMs.min, maxBackoffMs: o.informerBackoffMs.max } : {};
  const mk = <T extends KubeObject>(resource: ResourceRef, labelSelector?: string, transform?: (obj: KubeObject) => KubeObject) =>
    new ResourceInformer<T>({
      // owned objects (labelled): their managedFields are reduced to our entry's digest (apply.ts)
      ...(transform ? { transform } : labelSelector ? { transform: reduceManagedFields } : {}),
      kc: o.kc,
      client: o.client,
      resource,
      ...(o.namespace ? { namespace: o.namespace } : {}),
      ...(labelSelector ? { labelSelector } : {}),
      logger: o.logger,
      ...backoff,
      onRestart: o.onRestart,
    });
  const owned = `${LabelManagedBy}=${ManagedByValue}`;
  return {
    vmbmcs: mk(Resources.vmbmc, undefined, dropManagedFields),
    vms: mk(Resources.vm, undefined, reduceVm),
    secrets: new NamespaceSecrets(Resources.secret, { kc: o.kc, client: o.client, reduce: reduceSecret, logger: o.logger, ...backoff, onRestart: o.onRestart }),
    owned: {
      deployments: mk(Resources.deployment, owned),
      services: mk(Resources.service, owned),
      serviceAccounts: mk(Resources.serviceAccount, owned),
      roles: mk(RoleResource, owned),
      roleBindings: mk(Resources.roleBinding, owned),
      configMaps: mk(ConfigMapResource, owned),
    },
  };
}
