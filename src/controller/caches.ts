/**
 * The controller's caches: which resources it watches, with which selectors, and what is reduced
 * on arrival. VirtualMachineBMCs and VMs whole; Secrets per namespace, each reduced to a digest
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
import { RoleResource } from './agent-rbac.js';
import { ConfigMapResource } from './shard.js';
import { reduceSecret } from './reconcile.js';
import { reduceManagedFields } from './apply.js';
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

export function controllerCaches(o: CacheOptions): ControllerCaches {
  const backoff = o.informerBackoffMs ? { minBackoffMs: o.informerBackoffMs.min, maxBackoffMs: o.informerBackoffMs.max } : {};
  const mk = <T extends KubeObject>(resource: ResourceRef, labelSelector?: string) =>
    new ResourceInformer<T>({
      // owned objects (labelled): their managedFields are reduced to our entry's digest (apply.ts)
      ...(labelSelector ? { transform: reduceManagedFields } : {}),
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
    vmbmcs: mk(Resources.vmbmc),
    vms: mk(Resources.vm),
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
