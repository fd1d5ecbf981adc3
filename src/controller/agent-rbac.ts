/**
 * What one agent may do: the rules of the Role the controller creates per VirtualMachineBMC, named
 * like the agent's other objects and bound to the agent's ServiceAccount only. Every rule that can
 * carry `resourceNames` carries them: the agent reaches its own VM, that VM's VMI, the media
 * DataVolumes of the VM's CD-ROM drives and the DataVolumes of the volumes it may create
 * (`<vm>-bmc-volume-1..8`, src/kube/names.ts), nothing else. docs/kubevirt.md ("RBAC") explains each rule.
 *
 * Two things RBAC cannot narrow by name:
 * - `create` (the name is in the body, not the URL; kube-apiserver authorizes the POST without a
 *   name), so the agent keeps `create datavolumes` in its namespace (virtual media and Redfish
 *   volume creation), and `create configmaps` (its events ConfigMap, made on the first subscription);
 * - Events: `create` and `patch` of events in the namespace (client-go-style names are generated);
 * - nothing else is needed unnamed: list/watch carry the name through a `metadata.name` field
 *   selector, which is how the agent's single-object watches ask (src/backend/kubevirt/informer.ts).
 */
import { bmcVolumeDataVolumeNames, eventsConfigMapName, mediaDataVolumeName } from '../kube/names.js';
import type { KubeObject } from '../kube/types.js';

export interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}

export const RBAC_GROUP = 'rbac.authorization.k8s.io';
/** The per-VirtualMachineBMC Role (not among the shared src/kube/resources.ts: only the controller writes them). */
export const RoleResource = { group: RBAC_GROUP, version: 'v1', plural: 'roles', namespaced: true, kind: 'Role' } as const;

/** Names of the VM template's CD-ROM drives (disks with `cdrom`), sorted: one virtual-media slot each. */
export function cdromDrives(vm: KubeObject | undefined): string[] {
  const disks = ((vm?.spec as { template?: { spec?: { domain?: { devices?: { disks?: unknown } } } } } | undefined)?.template?.spec?.domain?.devices?.disks ?? []) as unknown;
  if (!Array.isArray(disks)) return [];
  const names = disks
    .filter((d): d is { name: string; cdrom: unknown } => typeof d === 'object' && d !== null && typeof (d as { name?: unknown }).name === 'string' && (d as { cdrom?: unknown }).cdrom != null)
    .map((d) => d.name);
  return [...new Set(names)].sort();
}

/** The media DataVolume names of a VM's CD-ROM drives (src/kube/names.ts, shared with the agent). */
export function mediaDataVolumeNames(vmName: string, drives: readonly string[]): string[] {
  return [...new Set(drives.map((d) => mediaDataVolumeName(vmName, d)))].sort();
}

/**
 * The Secrets the agent reads and rewrites by name (get/update, nothing else).
 */
export interface AgentSecrets {
  /** the VirtualMachineBMC's auth Secret, where the agent keeps its accounts (src/agent/accounts-secret.ts) */
  accountsSecret?: string | undefined;
  /** the certificate Secret the controller minted for it, where CertificateService.ReplaceCertificate writes (src/kube/tls-secret.ts) */
  tlsSecret?: string | undefined;
}

/**
 * The agent's rules for VM `vmName` with CD-ROM drives `drives` and the Secrets it may rewrite
 * (`secrets`). A rule with an empty `resourceNames` would grant every name, so the media DataVolume
 * rule is left out when there is no drive, and the Secret rule when it names no Secret.
 */
export function agentRoleRules(vmName: string, drives: readonly string[], secrets: AgentSecrets = {}): PolicyRule[] {
  const vm = [vmName];
  const rules: PolicyRule[] = [
    // state: single-object watches of the VM and its VMI (same name); boot override and media are JSON patches on the VM
    { apiGroups: ['kubevirt.io'], resources: ['virtualmachines'], resourceNames: vm, verbs: ['get', 'list', 'watch', 'patch'] },
    { apiGroups: ['kubevirt.io'], resources: ['virtualmachineinstances'], resourceNames: vm, verbs: ['get', 'list', 'watch'] },
    // power (PUT on KubeVirt's subresource API is the `update` verb)
    {
      apiGroups: ['subresources.kubevirt.io'],
      resources: ['virtualmachines/start', 'virtualmachines/stop', 'virtualmachines/restart'],
      resourceNames: vm,
      verbs: ['update'],
    },
    {
      apiGroups: ['subresources.kubevirt.io'],
      resources: ['virtualmachineinstances/softreboot', 'virtualmachineinstances/pause', 'virtualmachineinstances/unpause'],
      resourceNames: vm,
      verbs: ['update'],
    },
    // serial console (a websocket GET)
    { apiGroups: ['subresources.kubevirt.io'], resources: ['virtualmachineinstances/console'], resourceNames: vm, verbs: ['get'] },
    // Redfish event subscriptions survive restarts in one ConfigMap (src/events/kube.ts): read and rewrite it by name
    { apiGroups: [''], resources: ['configmaps'], resourceNames: [eventsConfigMapName(vmName)], verbs: ['get', 'update'] },
    // ... created on the first subscription: create cannot be limited by name (RBAC), see docs/kubevirt.md
    { apiGroups: [''], resources: ['configmaps'], verbs: ['create'] },
    // Kubernetes Events on the VM (src/events/kube.ts): new ones, and count/lastTimestamp of repeats; their names are generated
    { apiGroups: [''], resources: ['events'], verbs: ['create', 'patch'] },
  ];
  const dvs = mediaDataVolumeNames(vmName, drives);
  if (dvs.length > 0) {
    // the media DataVolume of each drive: follow its import, delete it on eject
    rules.push({ apiGroups: ['cdi.kubevirt.io'], resources: ['datavolumes'], resourceNames: dvs, verbs: ['get', 'list', 'watch', 'delete'] });
  }
  // the DataVolumes of volumes created over Redfish (src/backend/kubevirt/volumes.ts): a fixed set of
  // MAX_BMC_VOLUMES names per VM, read on GET and deleted on DELETE; no list/watch (read by name)
  rules.push({ apiGroups: ['cdi.kubevirt.io'], resources: ['datavolumes'], resourceNames: bmcVolumeDataVolumeNames(vmName), verbs: ['get', 'delete'] });
  // create cannot be limited by name (RBAC): any name in the namespace, for media and volumes; see docs/kubevirt.md
  rules.push({ apiGroups: ['cdi.kubevirt.io'], resources: ['datavolumes'], verbs: ['create'] });
  // one rule, read and rewrite by name: account changes (IPMI, Redfish) written back to the auth Secret's
  // virtbmc-accounts key, and a ReplaceCertificate written into the minted certificate Secret
  const secretNames = [...new Set([secrets.accountsSecret, secrets.tlsSecret].filter((n): n is string => !!n))];
  if (secretNames.length > 0) rules.push({ apiGroups: [''], resources: ['secrets'], resourceNames: secretNames, verbs: ['get', 'update'] });
  return rules;
}

/**
 * What the controller must hold itself to create and bind these Roles without `escalate` or
 * `bind` (kube-apiserver's escalation check: every granted rule must be covered by the author's
 * own): the same rules for every name. config/rbac/agent_grants_role.yaml must equal this
 * (test/controller/rbac.test.ts).
 */
export function delegatedRules(): PolicyRule[] {
  const seen = new Map<string, PolicyRule>();
  for (const r of agentRoleRules('vm', ['cd'], { accountsSecret: 'secret', tlsSecret: 'vm-tls' })) {
    const key = `${r.apiGroups.join(',')}|${r.resources.join(',')}`;
    const prev = seen.get(key);
    if (prev) prev.verbs = [...new Set([...prev.verbs, ...r.verbs])];
    else seen.set(key, { apiGroups: [...r.apiGroups], resources: [...r.resources], verbs: [...r.verbs] });
  }
  return [...seen.values()];
}
