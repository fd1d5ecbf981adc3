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

  /** Every rule that applies to `id` in `ns` (ClusterRoleBindings, plus RoleBindings of `ns`): RBAC's RulesFor. */
  private rulesFor(id: Identity, ns: string | undefined): PolicyRule[] {
    const reg = this.store.registry;
    const out: PolicyRule[] = [];
    for (const b of this.store.list(reg.mustByKind('rbac.authorization.k8s.io/v1', 'ClusterRoleBinding')) as Binding[]) {
      if (b.roleRef?.kind === 'ClusterRole' && (b.subjects ?? []).some((s) => subjectMatches(s, id, undefined))) out.push(...this.rulesOf('ClusterRole', b.roleRef.name, undefined));
    }
    if (ns !== undefined) {
      for (const b of this.store.list(reg.mustByKind('rbac.authorization.k8s.io/v1', 'RoleBinding'), ns) as Binding[]) {
        if (b.roleRef && (b.subjects ?? []).some((s) => subjectMatches(s, id, ns))) out.push(...this.rulesOf(b.roleRef.kind, b.roleRef.name, ns));
      }
    }
    return out;
  }

  /**
   * Privilege-escalation prevention, as kube-apiserver's RBAC storage does it
   * (kubernetes pkg/registry/rbac/{role,clusterrole,rolebinding,clusterrolebinding}/policybased/storage.go,
   * pkg/registry/rbac/escalation_check.go, pkg/registry/rbac/validation/rule.go ConfirmNoEscalation):
   * - members of system:masters may write anything (EscalationAllowed);
   * - a Role/ClusterRole write passes with `escalate` on roles/clusterroles, authorized with the
   *   request's own name: a create (POST to the collection) has none, so `escalate` restricted by
   *   resourceNames never authorizes a create (RoleEscalationAuthorized uses RequestInfo.Name);
   * - a binding write passes with `bind` on the referenced role (by its name: BindingAuthorized);
   *   without it, a binding to a role that does not exist is 404 NotFound (GetRoleReferenceRules);
   * - an update that only touches ownerReferences/finalizers passes (IsOnlyMutatingGCFields);
   * - otherwise every rule granted must be covered by the author's own rules in that namespace
   *   (RulesFor + Covers, k8s.io/component-helpers/auth/rbac/validation/policy_comparator.go).
   * `requestName` is the name in the URL (undefined for a create), `old` the stored object on update.
   * Throws 403 like kube-apiserver.
   */
  checkEscalation(id: Identity, t: ResourceType, obj: KubeObject, ns: string | undefined, requestName?: string, old?: KubeObject): void {
    if (t.group !== 'rbac.authorization.k8s.io') return;
    if (id.groups.includes('system:masters')) return;
    if (old && onlyGcFieldsChanged(obj, old)) return;
    const name = obj.metadata?.name ?? '';
    let rules: PolicyRule[];
    let scopeNs: string | undefined;
    if (t.resource === 'roles' || t.resource === 'clusterroles') {
      const escalate: Attributes = { verb: 'escalate' as AuditVerb, group: t.group, resource: t.resource, ...(ns !== undefined ? { namespace: ns } : {}), ...(requestName ? { name: requestName } : {}) };
      if (this.allowed(id, escalate)) return;
      rules = (obj.rules as PolicyRule[] | undefined) ?? [];
      scopeNs = t.resource === 'roles' ? ns : undefined;
    } else if (t.resource === 'rolebindings' || t.resource === 'clusterrolebindings') {
      const ref = (obj as Binding).roleRef;
      if (!ref) return;
      const refResource = ref.kind === 'ClusterRole' ? 'clusterroles' : 'roles';
      if (this.allowed(id, { verb: 'bind' as AuditVerb, group: t.group, resource: refResource, namespace: ns, name: ref.name })) return;
      // GetRoleReferenceRules: a role that does not exist (yet) is a NotFound error, not "no rules"
      const reg = this.store.registry;
      const refType = reg.mustByKind('rbac.authorization.k8s.io/v1', ref.kind === 'ClusterRole' ? 'ClusterRole' : 'Role');
      if (!this.store.peek(refType, ref.kind === 'ClusterRole' ? undefined : ns, ref.name)) {
        throw new ApiError(404, `${refResource}.rbac.authorization.k8s.io "${ref.name}" not found`, 'NotFound', { name: ref.name, group: t.group, kind: refResource });
      }
      rules = this.rulesOf(ref.kind, ref.name, ns);
      scopeNs = t.resource === 'rolebindings' ? ns : undefined;
    } else return;
    const missing = uncovered(this.rulesFor(id, scopeNs), rules);
    if (missing.length > 0) {
      const q = `${t.resource}.${t.group}`;
      throw new ApiError(
        403,
        `${q} "${name}" is forbidden: user "${id.user}" (groups=${JSON.stringify(id.groups)}) is attempting to grant RBAC permissions not currently held:\n${missing.map(ruleText).join('\n')}`,
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

// ------------------------------------------------------------------ rule coverage (escalation check)

/** The atomic rules a rule grants: one verb, group, resource (and name, if it names any) each. */
function breakdown(r: PolicyRule): PolicyRule[] {
  const out: PolicyRule[] = [];
  for (const verb of r.verbs ?? []) {
    for (const u of r.nonResourceURLs ?? []) out.push({ verbs: [verb], nonResourceURLs: [u] });
    for (const g of r.apiGroups ?? []) {
      for (const res of r.resources ?? []) {
        if (r.resourceNames?.length) for (const n of r.resourceNames) out.push({ apiGroups: [g], resources: [res], verbs: [verb], resourceNames: [n] });
        else out.push({ apiGroups: [g], resources: [res], verbs: [verb] });
      }
    }
  }
  return out;
}

const hasAll = (set: string[] | undefined, want: string[] | undefined): boolean => (want ?? []).every((w) => (set ?? []).includes(w));

/** component-helpers policy_comparator.go resourceCoversAll: `*`, exact, or `*\/<subresource>`. */
function resourcesCover(owner: string[] | undefined, want: string[] | undefined): boolean {
  const o = owner ?? [];
  if (o.includes('*')) return true;
  return (want ?? []).every((path) => o.includes(path) || (path.includes('/') && o.includes(`*/${path.slice(path.indexOf('/') + 1)}`)));
}

/** component-helpers policy_comparator.go nonResourceURLCovers: exact, or a trailing `*` prefix. */
function urlsCover(owner: string[] | undefined, want: string[] | undefined): boolean {
  return (want ?? []).every((u) => (owner ?? []).some((o) => o === u || (o.endsWith('*') && u.startsWith(o.slice(0, -1)))));
}

/** component-helpers policy_comparator.go ruleCovers. */
function ruleCovers(owner: PolicyRule, sub: PolicyRule): boolean {
  const verbs = (owner.verbs ?? []).includes('*') || hasAll(owner.verbs, sub.verbs);
  const groups = (owner.apiGroups ?? []).includes('*') || hasAll(owner.apiGroups, sub.apiGroups);
  const resources = resourcesCover(owner.resources, sub.resources);
  const urls = urlsCover(owner.nonResourceURLs, sub.nonResourceURLs);
  // a rule without resourceNames (all names) is covered only by an owner rule without them
  const names = sub.resourceNames?.length ? !owner.resourceNames?.length || hasAll(owner.resourceNames, sub.resourceNames) : !owner.resourceNames?.length;
  return verbs && groups && resources && urls && names;
}

/** component-helpers policy_comparator.go Covers: the atomic servant rules no owner rule covers. */
export function uncovered(ownerRules: PolicyRule[], servantRules: PolicyRule[]): PolicyRule[] {
  return servantRules.flatMap(breakdown).filter((sub) => !ownerRules.some((o) => ruleCovers(o, sub)));
}

function ruleText(r: PolicyRule): string {
  const q = (k: string, v: string[] | undefined) => (v?.length ? `${k}:[${v.map((x) => JSON.stringify(x)).join(' ')}]` : '');
  return `{${[q('APIGroups', r.apiGroups), q('Resources', r.resources), q('ResourceNames', r.resourceNames), q('NonResourceURLs', r.nonResourceURLs), q('Verbs', r.verbs)].filter(Boolean).join(', ')}}`;
}

/** kubernetes pkg/registry/rbac/helpers.go IsOnlyMutatingGCFields: only ownerReferences/finalizers differ. */
function onlyGcFieldsChanged(obj: KubeObject, old: KubeObject): boolean {
  const strip = (o: KubeObject) => {
    const { ownerReferences: _o, finalizers: _f, resourceVersion: _rv, managedFields: _m, ...meta } = (o.metadata ?? {}) as Record<string, unknown>;
    return JSON.stringify(canonical({ ...o, metadata: meta }));
  };
  return strip(obj) === strip(old);
}

function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (v && typeof v === 'object') return Object.fromEntries(Object.keys(v).sort().map((k) => [k, canonical((v as Record<string, unknown>)[k])]));
  return v;
}

/**
 * The name a list/watch is authorized (and audited) for: a fieldSelector that requires
 * `metadata.name=<n>` (or `==`) makes RBAC check `resourceNames` against <n>, so a Role naming one
 * object allows list/watch of exactly that object (k8s.io/apiserver pkg/endpoints/request/requestinfo.go:
 * FieldSelector.RequiresExactMatch("metadata.name"), kept only if it is a valid path segment name).
 */
export function nameFromFieldSelector(selector: string | null | undefined): string | undefined {
  if (!selector) return undefined;
  // fields.ParseSelector: terms split at unescaped commas; a backslash escapes the next character
  const terms: string[] = [];
  let cur = '';
  for (let i = 0; i < selector.length; i++) {
    const c = selector[i]!;
    if (c === '\\' && i + 1 < selector.length) cur += c + selector[++i]!;
    else if (c === ',') {
      terms.push(cur);
      cur = '';
    } else cur += c;
  }
  terms.push(cur);
  for (const term of terms) {
    let i = 0;
    let op = '';
    for (; i < term.length; i++) {
      if (term[i] === '\\') {
        i++;
        continue;
      }
      op = term.startsWith('!=', i) ? '!=' : term.startsWith('==', i) ? '==' : term[i] === '=' ? '=' : '';
      if (op) break;
    }
    if (!op) return undefined; // unparsable: upstream then authorizes without a name
    if (term.slice(0, i).trim() !== 'metadata.name' || op === '!=') continue;
    const value = term.slice(i + op.length).replace(/\\(.)/g, '$1');
    // content.IsPathSegmentName: not "." or "..", no "/" or "%"
    if (value === '' || value === '.' || value === '..' || value.includes('/') || value.includes('%')) return undefined;
    return value;
  }
  return undefined;
}
