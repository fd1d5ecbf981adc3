/**
 * RBAC authorization for non-admin identities: Roles/ClusterRoles and their bindings in the store
 * decide, like kube-apiserver's RBAC authorizer (no aggregation rules). The admin token bypasses it.
 */
import type { ResourceType } from './resources.js';
import { ApiError } from './status.js';
import type { Store } from './store.js';
import type { AuditVerb, KubeObject } from './types.js';

export interface Identity {
  user: string;
  groups: string[];
}

export interface Attributes {
  verb: AuditVerb;
  group: string;
  resource: string;
  subresource?: string;
  namespace?: string;
  name?: string;
  nonResourceURL?: string;
}

interface PolicyRule {
  apiGroups?: string[];
  resources?: string[];
  verbs?: string[];
  resourceNames?: string[];
  nonResourceURLs?: string[];
}

interface Subject {
  kind: string;
  name: string;
  namespace?: string;
  apiGroup?: string;
}

interface Binding extends KubeObject {
  subjects?: Subject[];
  roleRef?: { kind: string; name: string; apiGroup?: string };
}

/** Service account identities as the token authenticator reports them. */
export function serviceAccountIdentity(namespace: string, name: string): Identity {
  return {
    user: `system:serviceaccount:${namespace}:${name}`,
    groups: ['system:serviceaccounts', `system:serviceaccounts:${namespace}`, 'system:authenticated'],
  };
}

function subjectMatches(s: Subject, id: Identity, bindingNs: string | undefined): boolean {
  switch (s.kind) {
    case 'User':
      return s.name === id.user;
    case 'Group':
      return id.groups.includes(s.name);
    case 'ServiceAccount':
      return id.user === `system:serviceaccount:${s.namespace ?? bindingNs ?? ''}:${s.name}`;
    default:
      return false;
  }
}

function ruleAllows(r: PolicyRule, a: Attributes): boolean {
  const verbs = r.verbs ?? [];
  if (!verbs.includes('*') && !verbs.includes(a.verb)) return false;
  if (a.nonResourceURL !== undefined) {
    return (r.nonResourceURLs ?? []).some((u) => u === '*' || u === a.nonResourceURL || (u.endsWith('*') && a.nonResourceURL!.startsWith(u.slice(0, -1))));
  }
  const groups = r.apiGroups ?? [];
  if (!groups.includes('*') && !groups.includes(a.group)) return false;
  const full = a.subresource ? `${a.resource}/${a.subresource}` : a.resource;
  const resources = r.resources ?? [];
  const resOk = resources.some(
    (x) => x === '*' || x === full || (a.subresource !== undefined && x === `*/${a.subresource}`) || (a.subresource === undefined && x === a.resource),
  );
  if (!resOk) return false;
  const names = r.resourceNames ?? [];
  if (names.length > 0) return a.name !== undefined && names.includes(a.name);
  return true;
}

export class Authorizer {
  constructor(private readonly store: Store) {}

  private rulesOf(kind: string, name: string, ns: string | undefined): PolicyRule[] {
    const reg = this.store.registry;
    const t = kind === 'ClusterRole' ? reg.mustByKind('rbac.authorization.k8s.io/v1', 'ClusterRole') : reg.mustByKind('rbac.authorization.k8s.io/v1', 'Role');
    const role = this.store.peek(t, kind === 'ClusterRole' ? undefined : ns, name);
    return ((role?.rules as PolicyRule[] | undefined) ?? []).slice();
  }

  allowed(id: Identity, a: Attributes): boolean {
    // every authenticated identity may discover the API (system:discovery / system:public-info-viewer)
    if (a.nonResourceURL !== undefined && a.verb === 'get' && /^\/(api|apis|version|healthz|readyz|livez|openapi)(\/|$)/.test(a.nonResourceURL)) return true;
    const reg = this.store.registry;
    const crbT = reg.mustByKind('rbac.authorization.k8s.io/v1', 'ClusterRoleBinding');
    const rbT = reg.mustByKind('rbac.authorization.k8s.io/v1', 'RoleBinding');
    for (const b of this.store.list(crbT) as Binding[]) {
      if (!b.roleRef || b.roleRef.kind !== 'ClusterRole') continue;
      if (!(b.subjects ?? []).some((s) => subjectMatches(s, id, undefined))) continue;
      if (this.rulesOf('ClusterRole', b.roleRef.name, undefined).some((r) => ruleAllows(r, a))) return true;
    }
    if (a.namespace !== undefined && a.nonResourceURL === undefined) {
      for (const b of this.store.list(rbT, a.namespace) as Binding[]) {
        if (!b.roleRef) continue;
        if (!(b.subjects ?? []).some((s) => subjectMatches(s, id, a.namespace))) continue;
        if (this.rulesOf(b.roleRef.kind, b.roleRef.name, a.namespace).some((r) => ruleAllows(r, a))) return true;
      }
    }
    return false;
  }

  /**
   * Privilege-escalation prevention: a Role/ClusterRole may only hold rules its author holds (or
   * has `escalate` on it); a binding may only reference a role whose rules its author holds (or
   * has `bind` on it). Throws 403 like kube-apiserver.
   */
  checkEscalation(id: Identity, t: ResourceType, obj: KubeObject, ns: string | undefined): void {
    if (t.group !== 'rbac.authorization.k8s.io') return;
    const name = obj.metadata?.name ?? '';
    let rules: PolicyRule[];
    let scopeNs: string | undefined;
    if (t.resource === 'roles' || t.resource === 'clusterroles') {
      if (this.allowed(id, { verb: 'escalate' as AuditVerb, group: t.group, resource: t.resource, namespace: ns, name })) return;
      rules = (obj.rules as PolicyRule[] | undefined) ?? [];
      scopeNs = t.resource === 'roles' ? ns : undefined;
    } else if (t.resource === 'rolebindings' || t.resource === 'clusterrolebindings') {
      const ref = (obj as Binding).roleRef;
      if (!ref) return;
      const refResource = ref.kind === 'ClusterRole' ? 'clusterroles' : 'roles';
      if (this.allowed(id, { verb: 'bind' as AuditVerb, group: t.group, resource: refResource, namespace: ns, name: ref.name })) return;
      rules = this.rulesOf(ref.kind, ref.name, ns);
      scopeNs = t.resource === 'rolebindings' ? ns : undefined;
    } else return;
    const missing: string[] = [];
    for (const r of rules) {
      for (const verb of r.verbs ?? []) {
        if (r.nonResourceURLs?.length) {
          for (const u of r.nonResourceURLs) {
            if (!this.allowed(id, { verb: verb as AuditVerb, group: '', resource: '', nonResourceURL: u })) missing.push(`{NonResourceURLs:["${u}"], Verbs:["${verb}"]}`);
          }
          continue;
        }
        for (const g of r.apiGroups ?? []) {
          for (const res of r.resources ?? []) {
            const [resource, subresource] = res.split('/');
            const names = r.resourceNames?.length ? r.resourceNames : [undefined];
            for (const n of names) {
              const a: Attributes = { verb: verb as AuditVerb, group: g, resource, ...(subresource ? { subresource } : {}), namespace: scopeNs, ...(n ? { name: n } : {}) };
              if (!this.allowed(id, a)) {
                missing.push(`{APIGroups:["${g}"], Resources:["${res}"]${n ? `, ResourceNames:["${n}"]` : ''}, Verbs:["${verb}"]}`);
              }
            }
          }
        }
      }
    }
    if (missing.length > 0) {
      const q = `${t.resource}.${t.group}`;
      throw new ApiError(
        403,
        `${q} "${name}" is forbidden: user "${id.user}" (groups=${JSON.stringify(id.groups)}) is attempting to grant RBAC permissions not currently held:\n${missing.join('\n')}`,
        'Forbidden',
        { name, group: t.group, kind: t.resource },
      );
    }
  }

  /** kube-apiserver's wording of a denial */
  static message(id: Identity, a: Attributes): string {
    if (a.nonResourceURL !== undefined) return `forbidden: User "${id.user}" cannot ${a.verb} path "${a.nonResourceURL}"`;
    const res = a.subresource ? `${a.resource}/${a.subresource}` : a.resource;
    const qualified = a.group ? `${a.resource}.${a.group}` : a.resource;
    const subject = a.name ? `${qualified} "${a.name}"` : qualified;
    const scope = a.namespace !== undefined ? `in the namespace "${a.namespace}"` : 'at the cluster scope';
    return `${subject} is forbidden: User "${id.user}" cannot ${a.verb} resource "${res}" in API group "${a.group}" ${scope}`;
  }
}
