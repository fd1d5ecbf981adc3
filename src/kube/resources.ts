/**
 * The API resources this project reads and writes, their URL paths, and the RBAC permission a
 * request needs (for 403 messages).
 */

/** One API resource, enough to build its URL. */
export interface ResourceRef {
  group: string; // '' for core
  version: string;
  plural: string;
  namespaced: boolean;
  kind: string;
}

export const KUBEVIRT_GROUP = 'kubevirt.io';
/** KubeVirt's aggregated API for actions (start, stop, restart, softreboot, pause, ...). */
export const KUBEVIRT_SUBRESOURCE_GROUP = 'subresources.kubevirt.io';
export const CDI_GROUP = 'cdi.kubevirt.io';

export const Resources = {
  vmbmc: { group: 'bmc.kubevirt.io', version: 'v1beta1', plural: 'virtualmachinebmcs', namespaced: true, kind: 'VirtualMachineBMC' },
  vm: { group: KUBEVIRT_GROUP, version: 'v1', plural: 'virtualmachines', namespaced: true, kind: 'VirtualMachine' },
  vmi: { group: KUBEVIRT_GROUP, version: 'v1', plural: 'virtualmachineinstances', namespaced: true, kind: 'VirtualMachineInstance' },
  /** the same VMs through the subresource API: only for putSubresource */
  vmActions: { group: KUBEVIRT_SUBRESOURCE_GROUP, version: 'v1', plural: 'virtualmachines', namespaced: true, kind: 'VirtualMachine' },
  vmiActions: {
    group: KUBEVIRT_SUBRESOURCE_GROUP,
    version: 'v1',
    plural: 'virtualmachineinstances',
    namespaced: true,
    kind: 'VirtualMachineInstance',
  },
  dataVolume: { group: CDI_GROUP, version: 'v1beta1', plural: 'datavolumes', namespaced: true, kind: 'DataVolume' },
  secret: { group: '', version: 'v1', plural: 'secrets', namespaced: true, kind: 'Secret' },
  service: { group: '', version: 'v1', plural: 'services', namespaced: true, kind: 'Service' },
  serviceAccount: { group: '', version: 'v1', plural: 'serviceaccounts', namespaced: true, kind: 'ServiceAccount' },
  event: { group: '', version: 'v1', plural: 'events', namespaced: true, kind: 'Event' },
  deployment: { group: 'apps', version: 'v1', plural: 'deployments', namespaced: true, kind: 'Deployment' },
  roleBinding: { group: 'rbac.authorization.k8s.io', version: 'v1', plural: 'rolebindings', namespaced: true, kind: 'RoleBinding' },
  lease: { group: 'coordination.k8s.io', version: 'v1', plural: 'leases', namespaced: true, kind: 'Lease' },
} as const satisfies Record<string, ResourceRef>;

/** URL path of a collection (no name), an object, or an object's subresource. */
export function resourcePath(r: ResourceRef, namespace?: string, name?: string, subresource?: string): string {
  let p = r.group === '' ? `/api/${r.version}` : `/apis/${r.group}/${r.version}`;
  if (r.namespaced && namespace) p += `/namespaces/${encodeURIComponent(namespace)}`;
  p += `/${r.plural}`;
  if (name !== undefined) p += `/${encodeURIComponent(name)}`;
  if (subresource) p += `/${subresource}`;
  return p;
}

/** What an RBAC rule must grant for a request: derived from its method and path. */
export interface RbacNeed {
  verb: string;
  group: string;
  /** plural, with `/subresource` when there is one */
  resource: string;
}

/** Work out the RBAC verb and resource of a request (for 403 messages). */
export function rbacNeed(method: string, path: string, query?: Record<string, unknown>): RbacNeed {
  const p = path.split('?')[0]!.split('/').filter(Boolean);
  let group = '';
  let rest: string[];
  if (p[0] === 'api') {
    rest = p.slice(2);
  } else {
    group = p[1] ?? '';
    rest = p.slice(3);
  }
  if (rest[0] === 'namespaces' && rest.length >= 3) rest = rest.slice(2);
  const [resource = '', name, sub] = rest;
  let verb: string;
  switch (method) {
    case 'GET':
      verb = query?.watch ? 'watch' : name === undefined ? 'list' : 'get';
      break;
    case 'POST':
      verb = 'create';
      break;
    case 'PUT':
      verb = 'update';
      break;
    case 'PATCH':
      verb = 'patch';
      break;
    case 'DELETE':
      verb = name === undefined ? 'deletecollection' : 'delete';
      break;
    default:
      verb = method.toLowerCase();
  }
  return { verb, group, resource: sub ? `${resource}/${sub}` : resource };
}

/** "patch on deployments.apps" */
export function describeRbacNeed(need: RbacNeed): string {
  return `${need.verb} on ${need.resource}${need.group ? '.' + need.group : ''}`;
}
