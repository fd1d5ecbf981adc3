/**
 * Auto-creation (docs/controller.md "Auto-creation"): a VM labelled bmc.kubevirt.io/enabled=true
 * with the annotation bmc.kubevirt.io/auth-secret gets a VirtualMachineBMC named like the VM,
 * labelled auto-created and owned by the VM; removing the label deletes it; a hand-made
 * VirtualMachineBMC of that name is never touched. Apart from the sync of the agent objects
 * (controller.ts): its only inputs are the VM and VirtualMachineBMC caches.
 */
import type { Logger } from '../common/logger.js';
import {
  API_VERSION,
  AnnotationAutoSecret,
  AnnotationAutoServiceType,
  KIND,
  LabelAutoCreated,
  LabelAutoEnabled,
  LabelManagedBy,
  ManagedByValue,
  type ServiceType,
  type VirtualMachineBMC,
} from './api/types.js';
import { isConflict, isNotFound, type KubeClient } from '../kube/client.js';
import { Resources } from '../kube/resources.js';
import type { KubeObject } from '../kube/types.js';
import type { WatchedResource } from './informers.js';
import { isSubset } from './apply.js';

const SERVICE_TYPES: readonly string[] = ['ClusterIP', 'NodePort', 'LoadBalancer'];

export interface AutoCreateDeps {
  client: KubeClient;
  vms: Pick<WatchedResource, 'get'>;
  vmbmcs: Pick<WatchedResource<VirtualMachineBMC & KubeObject>, 'get'>;
}

function splitKey(key: string): [string, string] {
  const i = key.indexOf('/');
  return [key.slice(0, i), key.slice(i + 1)];
}

/** Creates, updates or deletes the auto-created VirtualMachineBMC of the VM `ns/name`. */
export async function reconcileAutoCreate(d: AutoCreateDeps, key: string, log: Logger): Promise<void> {
  const [ns, vmName] = splitKey(key);
  const vm = d.vms.get(ns, vmName);
  const existing = d.vmbmcs.get(ns, vmName);
  const autoOwned = existing?.metadata.labels?.[LabelAutoCreated] === 'true' && existing.spec?.virtualMachineRef?.name === vmName;
  const secretName = vm?.metadata?.annotations?.[AnnotationAutoSecret];
  const wanted = vm !== undefined && !vm.metadata?.deletionTimestamp && vm.metadata?.labels?.[LabelAutoEnabled] === 'true' && !!secretName;
  if (!wanted) {
    if (existing && autoOwned) {
      await d.client.delete(Resources.vmbmc, ns, vmName).catch((e: unknown) => {
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
    await d.client.mergePatch(Resources.vmbmc, ns, vmName, { spec: { ...spec, service: spec.service ?? null } });
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
    await d.client.create(Resources.vmbmc, ns, body as unknown as KubeObject);
    log.info({ vm: vmName, vmbmc: vmName }, 'VirtualMachineBMC auto-created');
  } catch (e) {
    // exists already (made, and not yet in the cache): its own ADDED event brings this check back (controller.ts)
    if (!isConflict(e)) throw e;
  }
}
