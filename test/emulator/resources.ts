/** The resource types the emulator serves, and lookups by URL and by apiVersion/kind. */

export interface ResourceType {
  group: string;
  version: string;
  /** plural resource name used in URLs */
  resource: string;
  kind: string;
  namespaced: boolean;
  /** has a /status subresource: main-resource writes keep the stored status, /status writes keep the rest */
  statusSubresource: boolean;
  /** maintains metadata.generation (bumped on changes outside metadata and status) */
  generation: boolean;
  /** API family, used to switch KubeVirt / CDI off */
  family?: 'kubevirt' | 'cdi';
  shortNames?: string[];
}

function rt(
  group: string,
  version: string,
  resource: string,
  kind: string,
  namespaced: boolean,
  statusSubresource = false,
  generation = false,
  family?: 'kubevirt' | 'cdi',
): ResourceType {
  return { group, version, resource, kind, namespaced, statusSubresource, generation, family };
}

export const RESOURCE_TYPES: readonly ResourceType[] = [
  rt('', 'v1', 'namespaces', 'Namespace', false, true),
  rt('', 'v1', 'pods', 'Pod', true, true),
  rt('', 'v1', 'secrets', 'Secret', true),
  rt('', 'v1', 'configmaps', 'ConfigMap', true),
  rt('', 'v1', 'services', 'Service', true, true),
  rt('', 'v1', 'endpoints', 'Endpoints', true),
  rt('', 'v1', 'serviceaccounts', 'ServiceAccount', true),
  rt('', 'v1', 'events', 'Event', true),
  rt('', 'v1', 'persistentvolumeclaims', 'PersistentVolumeClaim', true, true),
  rt('', 'v1', 'nodes', 'Node', false, true),
  rt('events.k8s.io', 'v1', 'events', 'Event', true),
  rt('apps', 'v1', 'deployments', 'Deployment', true, true, true),
  rt('apps', 'v1', 'replicasets', 'ReplicaSet', true, true, true),
  rt('rbac.authorization.k8s.io', 'v1', 'roles', 'Role', true),
  rt('rbac.authorization.k8s.io', 'v1', 'rolebindings', 'RoleBinding', true),
  rt('rbac.authorization.k8s.io', 'v1', 'clusterroles', 'ClusterRole', false),
  rt('rbac.authorization.k8s.io', 'v1', 'clusterrolebindings', 'ClusterRoleBinding', false),
  rt('coordination.k8s.io', 'v1', 'leases', 'Lease', true),
  rt('apiextensions.k8s.io', 'v1', 'customresourcedefinitions', 'CustomResourceDefinition', false, true, true),
  rt('bmc.kubevirt.io', 'v1beta1', 'virtualmachinebmcs', 'VirtualMachineBMC', true, true, true),
  rt('kubevirt.io', 'v1', 'virtualmachines', 'VirtualMachine', true, true, true, 'kubevirt'),
  // KubeVirt's VMI CRD has no status subresource: virt-handler writes whole objects.
  rt('kubevirt.io', 'v1', 'virtualmachineinstances', 'VirtualMachineInstance', true, false, true, 'kubevirt'),
  rt('cdi.kubevirt.io', 'v1beta1', 'datavolumes', 'DataVolume', true, true, true, 'cdi'),
];

const SHORT_NAMES: Record<string, string[]> = {
  namespaces: ['ns'],
  pods: ['po'],
  configmaps: ['cm'],
  services: ['svc'],
  endpoints: ['ep'],
  serviceaccounts: ['sa'],
  events: ['ev'],
  persistentvolumeclaims: ['pvc'],
  nodes: ['no'],
  deployments: ['deploy'],
  replicasets: ['rs'],
  customresourcedefinitions: ['crd', 'crds'],
  virtualmachines: ['vm', 'vms'],
  virtualmachineinstances: ['vmi', 'vmis'],
  datavolumes: ['dv', 'dvs'],
};
for (const t of RESOURCE_TYPES) {
  if (SHORT_NAMES[t.resource] && !(t.group === 'events.k8s.io')) t.shortNames = SHORT_NAMES[t.resource];
}

export function apiVersionOf(t: ResourceType): string {
  return t.group ? `${t.group}/${t.version}` : t.version;
}

export function splitApiVersion(apiVersion: string): { group: string; version: string } {
  const i = apiVersion.indexOf('/');
  return i < 0 ? { group: '', version: apiVersion } : { group: apiVersion.slice(0, i), version: apiVersion.slice(i + 1) };
}

export class Registry {
  readonly types: ResourceType[];
  constructor(opts: { kubevirt: boolean; cdi: boolean }) {
    this.types = RESOURCE_TYPES.filter(
      (t) => (t.family !== 'kubevirt' || opts.kubevirt) && (t.family !== 'cdi' || opts.cdi),
    );
  }

  byResource(group: string, version: string, resource: string): ResourceType | undefined {
    return this.types.find((t) => t.group === group && t.version === version && t.resource === resource);
  }

  byKind(apiVersion: string, kind: string): ResourceType | undefined {
    const { group, version } = splitApiVersion(apiVersion);
    return this.types.find((t) => t.group === group && t.version === version && t.kind === kind);
  }

  /** byKind, throwing a plain Error for test set-up mistakes */
  mustByKind(apiVersion: string, kind: string): ResourceType {
    const t = this.byKind(apiVersion, kind);
    if (!t) throw new Error(`emulator: unknown (or disabled) type ${apiVersion} ${kind}`);
    return t;
  }

  groups(): { group: string; version: string }[] {
    const seen = new Map<string, { group: string; version: string }>();
    for (const t of this.types) if (t.group) seen.set(`${t.group}/${t.version}`, { group: t.group, version: t.version });
    return [...seen.values()];
  }
}
