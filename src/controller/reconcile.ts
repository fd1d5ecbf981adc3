/**
 * Pure reconcile logic: from a VirtualMachineBMC, its VM and its Secret (as the informers see them),
 * compute the objects that should exist and the status to report. No I/O here; controller.ts
 * applies the result. Everything is deterministic so repeated reconciles change nothing.
 */
import { createHmac } from 'node:crypto';
import {
  API_VERSION,
  AnnotationSecretHash,
  AnnotationServiceMetaKeys,
  AppNameValue,
  ConditionType,
  KIND,
  LabelAppName,
  LabelInstance,
  LabelManagedBy,
  LabelMetrics,
  ManagedByValue,
  Reason,
  type BMCMode,
  type Condition,
  type ConditionStatus,
  type VirtualMachineBMC,
  type VirtualMachineBMCStatus,
} from './api/types.js';
import type { KubeObject, OwnerReference } from '../kube/types.js';
import { agentObjectName } from './names.js';
import { agentRoleRules, cdromDrives, RBAC_GROUP } from './agent-rbac.js';
import { SHARD_REDFISH_PORT, shardSelectorLabels } from './shard.js';
import { agentDeployment, PER_VM_RESOURCES, type AgentVolume } from './agent-pod.js';

export const IPMI_PORT = 623;
export const IPMI_TARGET_PORT = 6230;
export const HTTP_PORT = 80;
export const HTTPS_PORT = 443;
export const REDFISH_HTTP_TARGET_PORT = 8000;
export const REDFISH_TLS_TARGET_PORT = 8443;
export const TLS_MOUNT = '/etc/virtbmc/tls';
export const MEDIA_CA_MOUNT = '/etc/virtbmc/media-ca';

export interface AgentSettings {
  /** Agent container image. */
  image: string;
  imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
  /** The cluster's DNS domain, for the agent's FQDN (default cluster.local) */
  clusterDomain?: string;
  /**
   * Agents serve Prometheus metrics on this TCP port (all interfaces) and their Services expose it
   * (port name `metrics`, label bmc.kubevirt.io/metrics=true: config/prometheus); undefined = off.
   */
  metricsPort?: number;
}

export interface SecretCheck {
  state: 'ok' | 'missing' | 'invalid';
  message: string;
  /**
   * HMAC-SHA256 of the Secret's `username` and `password` (the only keys the agent reads) keyed
   * with the Secret's uid (first 16 hex digits); undefined unless state is ok. Keyed so that
   * whoever may read the Deployment (but not the Secret) cannot test password guesses against the
   * annotation offline; other keys of the Secret do not roll the agent.
   */
  hash?: string;
}

export interface DesiredObjects {
  name: string;
  namespace: string;
  serviceAccount: KubeObject;
  /** the agent's own Role (src/controller/agent-rbac.ts) */
  role: KubeObject;
  roleBinding: KubeObject;
  deployment: KubeObject;
  service: KubeObject;
  replicas: 0 | 1;
  vmFound: boolean;
  secret: SecretCheck;
}

type Data = Record<string, string>;

/** The keys of the auth Secret the agent reads (env BMC_USERNAME / BMC_PASSWORD); nothing else is kept. */
export const SECRET_KEYS = ['username', 'password'] as const;

function decodeB64(s: string | undefined): string {
  return s === undefined ? '' : Buffer.from(s, 'base64').toString('utf8');
}

/** What the controller needs of an auth Secret: which keys are missing or empty, and the hash of the two it reads. */
export interface SecretDigest {
  missing: string[];
  /** see SecretCheck.hash; undefined when a key is missing */
  hash?: string;
}

/** The digest of a Secret as the apiserver sends it (base64 `data`). */
export function secretDigest(secret: KubeObject): SecretDigest {
  const data = (secret.data ?? {}) as Data;
  const missing = SECRET_KEYS.filter((k) => typeof data[k] !== 'string' || decodeB64(data[k]) === '');
  if (missing.length > 0) return { missing };
  const h = createHmac('sha256', secret.metadata?.uid ?? '');
  // sorted, as the hash over all keys was: a Secret holding just these two keys keeps its hash
  for (const k of [...SECRET_KEYS].sort()) h.update(`${k}\0${data[k]}\0`);
  return { missing: [], hash: h.digest('hex').slice(0, 16) };
}

/**
 * A Secret reduced on arrival to name, namespace, uid, resourceVersion and its digest: no data key,
 * label or annotation stays in the controller's memory (`kubectl apply` copies the whole Secret,
 * data included, into an annotation), not even the BMC credentials themselves.
 */
export function reduceSecret(obj: KubeObject): KubeObject {
  const m = obj.metadata ?? {};
  return {
    apiVersion: obj.apiVersion ?? 'v1',
    kind: obj.kind ?? 'Secret',
    metadata: {
      name: m.name,
      namespace: m.namespace,
      ...(m.uid ? { uid: m.uid } : {}),
      ...(m.resourceVersion ? { resourceVersion: m.resourceVersion } : {}),
    },
    digest: secretDigest(obj),
  } as KubeObject;
}

/** Is the Secret there, and does it carry non-empty `username` and `password`? (a raw or a reduced Secret) */
export function checkSecret(secretName: string, secret: KubeObject | undefined): SecretCheck {
  if (!secret) return { state: 'missing', message: `Secret ${secretName} not found` };
  const digest = (secret.digest as SecretDigest | undefined) ?? secretDigest(secret);
  if (digest.missing.length > 0 || !digest.hash) {
    return { state: 'invalid', message: `Secret ${secretName} lacks non-empty key(s): ${digest.missing.join(', ')}` };
  }
  return { state: 'ok', message: `Secret ${secretName} has the credentials`, hash: digest.hash };
}

export function ownerRef(vmbmc: VirtualMachineBMC): OwnerReference {
  return { apiVersion: API_VERSION, kind: KIND, name: vmbmc.metadata.name, uid: vmbmc.metadata.uid ?? '', controller: true, blockOwnerDeletion: true };
}

export function selectorLabels(name: string): Record<string, string> {
  return { [LabelAppName]: AppNameValue, [LabelInstance]: name };
}

export function commonLabels(name: string): Record<string, string> {
  return { ...selectorLabels(name), [LabelManagedBy]: ManagedByValue };
}

function meta(vmbmc: VirtualMachineBMC, name: string, extra: { labels?: Data; annotations?: Data } = {}) {
  return {
    name,
    namespace: vmbmc.metadata.namespace,
    labels: { ...(extra.labels ?? {}), ...commonLabels(name) },
    ...(extra.annotations && Object.keys(extra.annotations).length > 0 ? { annotations: extra.annotations } : {}),
    ownerReferences: [ownerRef(vmbmc)],
  };
}

export function ipmiEnabled(vmbmc: VirtualMachineBMC): boolean {
  return vmbmc.spec.ipmi?.enabled !== false;
}

export function desiredObjects(
  vmbmc: VirtualMachineBMC,
  vm: KubeObject | undefined,
  secret: KubeObject | undefined,
  agent: AgentSettings,
): DesiredObjects {
  const name = agentObjectName(vmbmc.metadata.name);
  const namespace = vmbmc.metadata.namespace ?? 'default';
  const vmName = vmbmc.spec.virtualMachineRef.name;
  const secretName = vmbmc.spec.authSecretRef.name;
  const sec = checkSecret(secretName, secret);
  const replicas: 0 | 1 = vm && sec.state === 'ok' ? 1 : 0;
  const ipmi = ipmiEnabled(vmbmc);
  const tls = vmbmc.spec.redfish?.tls?.secretRef?.name;
  const media = vmbmc.spec.redfish?.virtualMedia;
  const redfishPort = tls ? REDFISH_TLS_TARGET_PORT : REDFISH_HTTP_TARGET_PORT;

  const args = [namespace, vmName, '--address', '0.0.0.0', '--ipmi-port', String(IPMI_TARGET_PORT), '--redfish-port', String(redfishPort)];
  if (!ipmi) args.push('--no-ipmi');
  if (media?.storage?.storageClassName) args.push('--storage-class', media.storage.storageClassName);
  if (media?.storage?.volumeMode) args.push('--volume-mode', media.storage.volumeMode);
  if (tls) args.push('--tls-cert', `${TLS_MOUNT}/tls.crt`, '--tls-key', `${TLS_MOUNT}/tls.key`);

  const env: unknown[] = [
    { name: 'BMC_USERNAME', valueFrom: { secretKeyRef: { name: secretName, key: 'username' } } },
    { name: 'BMC_PASSWORD', valueFrom: { secretKeyRef: { name: secretName, key: 'password' } } },
    // where the agent writes account changes back (src/agent/accounts-secret.ts, its Role grants get/update on it)
    { name: 'VIRTBMC_ACCOUNTS_SECRET', value: secretName },
    // The agent's network identity (src/common/network.ts): its pod IP and its Service's DNS name
    { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
    { name: 'VIRTBMC_FQDN', value: `${name}.${namespace}.svc.${agent.clusterDomain ?? 'cluster.local'}` },
    // the owner of the agent's events ConfigMap (src/cmd/virtbmc.ts): deleting the VMBMC deletes it
    { name: 'VIRTBMC_OWNER_NAME', value: vmbmc.metadata.name },
    { name: 'VIRTBMC_OWNER_UID', value: vmbmc.metadata.uid ?? '' },
  ];
  if (media?.tls?.insecureSkipVerify) env.push({ name: 'VIRTBMC_MEDIA_INSECURE_SKIP_VERIFY', value: 'true' });
  if (media?.tls?.caBundleConfigMapRef?.name) {
    env.push({ name: 'VIRTBMC_MEDIA_CA_CONFIGMAP', value: media.tls.caBundleConfigMapRef.name });
    env.push({ name: 'VIRTBMC_MEDIA_CA_FILE', value: `${MEDIA_CA_MOUNT}/ca.crt` });
  }

  const volumes: AgentVolume[] = [];
  if (tls) volumes.push({ volume: { name: 'redfish-tls', secret: { secretName: tls } }, mount: { name: 'redfish-tls', mountPath: TLS_MOUNT, readOnly: true } });
  if (media?.tls?.caBundleConfigMapRef?.name) {
    volumes.push({ volume: { name: 'media-ca', configMap: { name: media.tls.caBundleConfigMapRef.name } }, mount: { name: 'media-ca', mountPath: MEDIA_CA_MOUNT, readOnly: true } });
  }

  const ports: unknown[] = [];
  if (ipmi) ports.push({ name: 'ipmi', containerPort: IPMI_TARGET_PORT, protocol: 'UDP' });
  ports.push({ name: 'redfish', containerPort: redfishPort, protocol: 'TCP' });

  const deployment = agentDeployment(meta(vmbmc, name), replicas, selectorLabels(name), {
    serviceAccountName: name,
    labels: commonLabels(name),
    ...(sec.hash ? { annotations: { [AnnotationSecretHash]: sec.hash } } : {}),
    image: agent.image,
    ...(agent.imagePullPolicy ? { imagePullPolicy: agent.imagePullPolicy } : {}),
    args,
    env,
    ports,
    redfishScheme: tls ? 'HTTPS' : 'HTTP',
    resources: PER_VM_RESOURCES,
    ...(agent.metricsPort !== undefined ? { metricsPort: agent.metricsPort } : {}),
    volumes,
  });

  const svcPorts: unknown[] = [];
  if (ipmi) svcPorts.push({ name: 'ipmi', port: IPMI_PORT, targetPort: IPMI_TARGET_PORT, protocol: 'UDP' });
  svcPorts.push({ name: 'redfish', port: HTTP_PORT, targetPort: redfishPort, protocol: 'TCP' });
  if (tls) svcPorts.push({ name: 'redfish-tls', port: HTTPS_PORT, targetPort: REDFISH_TLS_TARGET_PORT, protocol: 'TCP' });
  if (agent.metricsPort !== undefined) svcPorts.push({ name: 'metrics', port: agent.metricsPort, targetPort: agent.metricsPort, protocol: 'TCP' });
  const service = bmcService(vmbmc, name, selectorLabels(name), svcPorts, agent.metricsPort !== undefined);

  const serviceAccount: KubeObject = { apiVersion: 'v1', kind: 'ServiceAccount', metadata: meta(vmbmc, name) };
  // without the VM its drives are unknown: the Role then names no DataVolume (and grants no create)
  const role: KubeObject = { apiVersion: `${RBAC_GROUP}/v1`, kind: 'Role', metadata: meta(vmbmc, name), rules: agentRoleRules(vmName, cdromDrives(vm), secretName) };
  const roleBinding: KubeObject = {
    apiVersion: `${RBAC_GROUP}/v1`,
    kind: 'RoleBinding',
    metadata: meta(vmbmc, name),
    roleRef: { apiGroup: RBAC_GROUP, kind: 'Role', name },
    subjects: [{ kind: 'ServiceAccount', name, namespace }],
  };

  return { name, namespace, serviceAccount, role, roleBinding, deployment, service, replicas, vmFound: vm !== undefined, secret: sec };
}

/** The VMBMC's own Service (both modes): type, labels and annotations from spec.service. */
function bmcService(vmbmc: VirtualMachineBMC, name: string, selector: Data, ports: unknown[], metrics: boolean): KubeObject {
  const svcSpec = vmbmc.spec.service ?? {};
  const userLabels = svcSpec.labels ?? {};
  const userAnnotations = svcSpec.annotations ?? {};
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta(vmbmc, name, {
      labels: { ...userLabels, ...(metrics ? { [LabelMetrics]: 'true' } : {}) },
      annotations: {
        ...userAnnotations,
        // what we set beyond our own labels, so that what goes from spec.service (or metrics) is removed
        [AnnotationServiceMetaKeys]: JSON.stringify({
          labels: [...Object.keys(userLabels), ...(metrics ? [LabelMetrics] : [])].sort(),
          annotations: Object.keys(userAnnotations).sort(),
        }),
      },
    }),
    spec: { type: svcSpec.type ?? 'ClusterIP', selector, ports },
  };
}

/**
 * Shared mode: the VMBMC's Service routes to shard `k`'s pod: 623/udp → its `ipmiPort` there,
 * 80/tcp → the shard's Redfish port. Same name, type, labels and annotations as in per-VM mode, so
 * `ipmitool -H <service>` is unchanged and a switch of mode or shard only re-points it.
 */
export function desiredSharedService(vmbmc: VirtualMachineBMC, k: number, ipmiPort: number): KubeObject {
  const name = agentObjectName(vmbmc.metadata.name);
  const ports: unknown[] = [];
  if (ipmiEnabled(vmbmc) && ipmiPort > 0) ports.push({ name: 'ipmi', port: IPMI_PORT, targetPort: ipmiPort, protocol: 'UDP' });
  ports.push({ name: 'redfish', port: HTTP_PORT, targetPort: SHARD_REDFISH_PORT, protocol: 'TCP' });
  // no metrics port here: one shard pod sits behind many of these; its own Service carries it
  return bmcService(vmbmc, name, shardSelectorLabels(k), ports, false);
}

/** `<service>.<namespace>.svc`: the name clients use. */
export function bmcEndpoint(vmbmc: VirtualMachineBMC): string {
  return `${agentObjectName(vmbmc.metadata.name)}.${vmbmc.metadata.namespace ?? 'default'}.svc`;
}

/**
 * Does `actual` already hold everything in `desired`? Objects: every desired key must match (the
 * apiserver's defaults are extra keys and are ignored); arrays: same length, element-wise.
 * This is how drift is detected without fighting defaulted fields.
 */
export function isSubset(desired: unknown, actual: unknown): boolean {
  if (desired === null || typeof desired !== 'object') {
    if (typeof desired === 'number' && typeof actual === 'string') return String(desired) === actual;
    return desired === actual;
  }
  if (Array.isArray(desired)) {
    return Array.isArray(actual) && actual.length === desired.length && desired.every((d, i) => isSubset(d, actual[i]));
  }
  if (actual === null || typeof actual !== 'object' || Array.isArray(actual)) {
    // An empty desired map matches an absent one ({} vs undefined after a round trip).
    return Object.keys(desired).length === 0 && (actual === undefined || actual === null);
  }
  const a = actual as Record<string, unknown>;
  return Object.entries(desired as Record<string, unknown>).every(([k, v]) => v === undefined || isSubset(v, a[k]));
}

function isOwnedBy(obj: KubeObject, uid: string | undefined): boolean {
  return (obj.metadata?.ownerReferences ?? []).some((r) => r.controller && r.uid === uid);
}

export type SyncPlan = { action: 'create'; body: KubeObject } | { action: 'patch'; patch: Record<string, unknown> } | { action: 'none' } | { action: 'conflict'; message: string };

function labelsPatch(desired: Data, actual: Data | undefined, previouslyManaged: string[] = []): Data | null {
  const out: Record<string, string | null> = { ...desired };
  for (const k of previouslyManaged) if (!(k in desired) && actual && k in actual) out[k] = null;
  return out as Data;
}

function serviceMetaKeys(obj: KubeObject): { labels: string[]; annotations: string[] } {
  try {
    const v = JSON.parse(obj.metadata?.annotations?.[AnnotationServiceMetaKeys] ?? '{}') as { labels?: unknown; annotations?: unknown };
    const arr = (x: unknown) => (Array.isArray(x) ? x.filter((s): s is string => typeof s === 'string') : []);
    return { labels: arr(v.labels), annotations: arr(v.annotations) };
  } catch {
    return { labels: [], annotations: [] };
  }
}

/**
 * How to bring an existing object (or none) to the desired one. Metadata: our labels/annotations and
 * owner reference; body: the fields named in `fields` (spec, or roleRef/subjects). A merge patch
 * replaces lists wholesale and leaves other map keys alone.
 */
export function planSync(
  desired: KubeObject,
  actual: KubeObject | undefined,
  ownerUid: string | undefined,
  fields: string[],
  /** instead of the owner reference (shard objects have many VMBMCs and no owner: src/controller/shard.ts) */
  owns?: (actual: KubeObject) => boolean,
): SyncPlan {
  if (!actual) return { action: 'create', body: desired };
  if (owns ? !owns(actual) : !isOwnedBy(actual, ownerUid)) {
    return { action: 'conflict', message: `${desired.kind} ${desired.metadata?.name} exists and is not ${owns ? 'ours' : 'owned by this VirtualMachineBMC'}` };
  }
  const dm = desired.metadata ?? {};
  const am = actual.metadata ?? {};
  const isService = desired.kind === 'Service';
  const prev = isService ? serviceMetaKeys(actual) : { labels: [], annotations: [] };
  const metaOk =
    isSubset(dm.labels ?? {}, am.labels ?? {}) &&
    isSubset(dm.annotations ?? {}, am.annotations ?? {}) &&
    prev.labels.every((k) => k in (dm.labels ?? {}) || !(k in (am.labels ?? {}))) &&
    prev.annotations.every((k) => k in (dm.annotations ?? {}) || !(k in (am.annotations ?? {})));
  const exact = EXACT_MAPS[desired.kind ?? ''] ?? [];
  const bodyOk = fields.every((f) => isSubset(desired[f], actual[f])) && exact.every((p) => extraKeys(at(desired, p), at(actual, p)).length === 0);
  if (metaOk && bodyOk) return { action: 'none' };
  const patch: Record<string, unknown> = {
    metadata: {
      labels: labelsPatch(dm.labels ?? {}, am.labels, prev.labels),
      annotations: labelsPatch(dm.annotations ?? {}, am.annotations, prev.annotations),
    },
  };
  for (const f of fields) patch[f] = desired[f];
  if (desired.kind === 'Deployment') {
    // Switching an edited strategy back to Recreate must drop rollingUpdate.
    const spec = patch.spec as Record<string, unknown>;
    patch.spec = { ...spec, strategy: { type: 'Recreate', rollingUpdate: null } };
  }
  if (isService) patch.spec = keepNodePorts(desired, actual);
  // a merge patch merges maps: the keys of an exact map that should not be there are removed by name
  for (const p of exact) {
    const extra = extraKeys(at(desired, p), at(actual, p));
    if (extra.length === 0) continue;
    // copy along the path: the patch shares its maps with `desired`
    let parent: Record<string, unknown> = patch;
    for (const k of p.slice(0, -1)) parent = parent[k] = { ...(parent[k] as Record<string, unknown>) };
    const leaf = p[p.length - 1]!;
    parent[leaf] = { ...(parent[leaf] as Record<string, unknown>), ...Object.fromEntries(extra.map((k) => [k, null])) };
  }
  return { action: 'patch', patch };
}

/**
 * Maps compared and written whole (per kind, as paths in the object): an extra key there is drift,
 * not an apiserver default. A Service's selector is one: a key no agent pod carries makes it select
 * nothing (the apiserver defaults no selector key: kubernetes pkg/apis/core/v1/defaults.go).
 */
export const EXACT_MAPS: Record<string, string[][]> = {
  Service: [['spec', 'selector']],
};

function at(obj: unknown, path: readonly string[]): unknown {
  let cur = obj;
  for (const k of path) cur = cur !== null && typeof cur === 'object' ? (cur as Record<string, unknown>)[k] : undefined;
  return cur;
}

/** Keys of `actual` (a map) that `desired` (a map) lacks. */
function extraKeys(desired: unknown, actual: unknown): string[] {
  if (actual === null || typeof actual !== 'object' || Array.isArray(actual)) return [];
  const d = desired !== null && typeof desired === 'object' ? (desired as Record<string, unknown>) : {};
  return Object.keys(actual).filter((k) => !(k in d));
}

/** Keep the nodePorts the apiserver allocated, so a repair does not move them. */
function keepNodePorts(desired: KubeObject, actual: KubeObject): unknown {
  const ds = desired.spec as { type?: string; ports?: Array<Record<string, unknown>> };
  if (ds.type === 'ClusterIP') return ds;
  const actualPorts = ((actual.spec as { ports?: Array<Record<string, unknown>> } | undefined)?.ports ?? []);
  const ports = (ds.ports ?? []).map((p) => {
    const match = actualPorts.find((a) => a.name === p.name && a.protocol === p.protocol && typeof a.nodePort === 'number');
    return match ? { ...p, nodePort: match.nodePort } : p;
  });
  return { ...ds, ports };
}

/** Fields compared and written per kind. */
export const SYNC_FIELDS: Record<string, string[]> = {
  ServiceAccount: [],
  Role: ['rules'],
  RoleBinding: ['roleRef', 'subjects'],
  Deployment: ['spec'],
  Service: ['spec'],
  ConfigMap: ['data'],
};

function deploymentAvailable(dep: KubeObject | undefined): { ok: boolean; message: string } {
  if (!dep) return { ok: false, message: 'agent Deployment not created yet' };
  const st = (dep.status ?? {}) as { observedGeneration?: number; availableReplicas?: number; conditions?: Array<{ type: string; status: string }> };
  const gen = dep.metadata?.generation ?? 0;
  if ((st.observedGeneration ?? 0) < gen) return { ok: false, message: 'agent Deployment rollout not observed yet' };
  const available = st.conditions?.find((c) => c.type === 'Available')?.status === 'True';
  if ((st.availableReplicas ?? 0) >= 1 && available) return { ok: true, message: 'agent is available' };
  return { ok: false, message: `agent Deployment has ${st.availableReplicas ?? 0} available replica(s)` };
}

export function serviceAddresses(svc: KubeObject | undefined): { clusterIP?: string; loadBalancerIP?: string } {
  if (!svc) return {};
  const spec = (svc.spec ?? {}) as { clusterIP?: string; type?: string };
  const ingress = ((svc.status as { loadBalancer?: { ingress?: Array<{ ip?: string; hostname?: string }> } } | undefined)?.loadBalancer?.ingress ?? [])[0];
  const clusterIP = spec.clusterIP && spec.clusterIP !== 'None' ? spec.clusterIP : undefined;
  const lb = spec.type === 'LoadBalancer' ? (ingress?.ip ?? ingress?.hostname) : undefined;
  return { ...(clusterIP ? { clusterIP } : {}), ...(lb ? { loadBalancerIP: lb } : {}) };
}

export interface ObservedState {
  /** the agent's Deployment: its own (PerVM) or its shard's (Shared) */
  deployment?: KubeObject;
  service?: KubeObject;
  /** Shared mode: where the BMC is (or is to be) served */
  shared?: {
    shard: number;
    /** the port in the shard's fleet document; undefined = not listed there yet */
    ipmiPort?: number;
    /** why the shared agents cannot serve this BMC */
    unsupported?: string;
  };
  /** Set when an owned object could not be synced (name clash, API error). */
  problem?: { reason: string; message: string };
}

function cond(type: string, status: ConditionStatus, reason: string, message: string, generation: number | undefined, prev: Condition[] | undefined, now: string): Condition {
  const old = prev?.find((c) => c.type === type);
  const lastTransitionTime = old && old.status === status ? old.lastTransitionTime : now;
  return { type, status, reason, message, lastTransitionTime, ...(generation !== undefined ? { observedGeneration: generation } : {}) };
}

/** The status the controller owns (never bootOverride). */
export function desiredStatus(vmbmc: VirtualMachineBMC, d: DesiredObjects, observed: ObservedState, now: string): VirtualMachineBMCStatus {
  const gen = vmbmc.metadata.generation;
  const prev = vmbmc.status?.conditions;
  const vmName = vmbmc.spec.virtualMachineRef.name;
  const conditions: Condition[] = [];
  conditions.push(
    d.vmFound
      ? cond(ConditionType.VirtualMachineAvailable, 'True', Reason.VirtualMachineFound, `VirtualMachine ${vmName} found`, gen, prev, now)
      : cond(ConditionType.VirtualMachineAvailable, 'False', Reason.VirtualMachineNotFound, `VirtualMachine ${vmName} not found`, gen, prev, now),
  );
  const secReason = d.secret.state === 'ok' ? Reason.SecretFound : d.secret.state === 'missing' ? Reason.SecretNotFound : Reason.SecretInvalid;
  conditions.push(cond(ConditionType.SecretAvailable, d.secret.state === 'ok' ? 'True' : 'False', secReason, d.secret.message, gen, prev, now));

  const addr = serviceAddresses(observed.service);
  const sh = observed.shared;
  const gone = sh ? `not served by shard ${sh.shard}` : 'agent scaled to 0';
  let ready: [ConditionStatus, string, string];
  if (observed.problem) ready = ['False', observed.problem.reason, observed.problem.message];
  else if (sh?.unsupported) ready = ['False', Reason.SharedModeUnsupported, sh.unsupported];
  else if (!d.vmFound) ready = ['False', Reason.VirtualMachineNotFound, `VirtualMachine ${vmName} not found; ${gone}`];
  else if (d.secret.state !== 'ok') ready = ['False', secReason, `${d.secret.message}; ${gone}`];
  else if (sh && sh.ipmiPort === undefined) ready = ['False', Reason.ShardPending, `waiting for shard ${sh.shard} (ConfigMap virtbmc-shard-${sh.shard}) to list this BMC`];
  else {
    const dep = deploymentAvailable(observed.deployment);
    const svcType = (observed.service?.spec as { type?: string } | undefined)?.type;
    if (!dep.ok) ready = ['False', Reason.AgentNotAvailable, dep.message];
    else if (!addr.clusterIP) ready = ['False', Reason.ServicePending, 'BMC Service has no cluster IP yet'];
    else if (svcType === 'LoadBalancer' && !addr.loadBalancerIP) ready = ['False', Reason.ServicePending, 'waiting for a load-balancer address'];
    else ready = ['True', Reason.AgentAvailable, `BMC reachable at ${addr.loadBalancerIP ?? addr.clusterIP}`];
  }
  conditions.unshift(cond(ConditionType.Ready, ready[0], ready[1], ready[2], gen, prev, now));
  const mode: BMCMode = sh ? 'Shared' : 'PerVM';
  // ipmiPort stays while a BMC waits (so a move keeps it where it can), and goes with PerVM mode
  const ipmiPort = sh ? (sh.ipmiPort ?? vmbmc.status?.ipmiPort) : undefined;
  return {
    ...addr,
    ...(gen !== undefined ? { observedGeneration: gen } : {}),
    mode,
    ...(sh ? { shard: sh.shard } : {}),
    ...(ipmiPort !== undefined ? { ipmiPort } : {}),
    endpoint: bmcEndpoint(vmbmc),
    conditions,
  };
}

/**
 * The merge patch for /status that moves the current status to `next`, or undefined when nothing
 * changed. Only controller-owned fields appear; status.bootOverride is never touched.
 */
export function statusPatch(current: VirtualMachineBMCStatus | undefined, next: VirtualMachineBMCStatus): Record<string, unknown> | undefined {
  const cur = current ?? {};
  const patch: Record<string, unknown> = {};
  for (const k of ['clusterIP', 'loadBalancerIP', 'observedGeneration', 'mode', 'shard', 'ipmiPort', 'endpoint'] as const) {
    if (cur[k] !== next[k]) patch[k] = next[k] ?? null;
  }
  if (!conditionsEqual(cur.conditions ?? [], next.conditions ?? [])) patch.conditions = next.conditions ?? [];
  return Object.keys(patch).length > 0 ? { status: patch } : undefined;
}

function conditionsEqual(a: Condition[], b: Condition[]): boolean {
  const fields = ['type', 'status', 'reason', 'message', 'lastTransitionTime', 'observedGeneration'] as const;
  return a.length === b.length && a.every((c, i) => fields.every((f) => c[f] === b[i]![f]));
}
