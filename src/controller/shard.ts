/**
 * Shared mode (issue 16), the pure part: which shard serves a VirtualMachineBMC (rendezvous
 * hashing), which UDP port it gets on that shard, and the objects of one shard — Deployment,
 * ServiceAccount, Role, RoleBinding and the fleet ConfigMap the agent reads (contract:
 * /work/brief/shared-contract.md; docs/controller.md "Modes"). No I/O; controller.ts applies it.
 *
 * Shards live in the namespace of the VirtualMachineBMCs they serve: a Service selects pods of its
 * own namespace only, so that is where the shard pod must be for a VMBMC's Service to route 623/udp
 * to it, and a shard never holds the Secrets of two namespaces.
 */
import { createHash } from 'node:crypto';
import { AppNameValue, LabelAppName, LabelInstance, LabelManagedBy, LabelMetrics, LabelShard, ManagedByValue, type VirtualMachineBMC } from './api/types.js';
import type { KubeObject } from '../kube/types.js';
import { eventsConfigMapName, bmcVolumeDataVolumeNames } from '../kube/names.js';
import { mediaDataVolumeNames, RBAC_GROUP, type PolicyRule } from './agent-rbac.js';
import { agentDeployment, SHARD_RESOURCES, type PullPolicy } from './agent-pod.js';

export const SHARD_PREFIX = 'virtbmc-shard-';
/** First UDP port handed out on a shard pod; ports go up from here, lowest free first. */
export const SHARD_IPMI_PORT_BASE = 10001;
export const SHARD_IPMI_PORT_MAX = 65535;
export const SHARD_REDFISH_PORT = 8000;
/** The shard agent's Redfish port when it serves HTTPS (plain HTTP there is redirected to the Service's 443) */
export const SHARD_REDFISH_TLS_PORT = 8443;
/** Where the shard's certificate Secret is mounted */
export const SHARD_TLS_MOUNT = '/etc/virtbmc/tls';
export const FLEET_KEY = 'fleet.json';
export const DEFAULT_SHARDS = 2;

export function shardName(k: number): string {
  return `${SHARD_PREFIX}${k}`;
}

/** `virtbmc-shard-<k>` → k, else undefined. */
export function shardIndex(name: string | undefined): number | undefined {
  if (!name?.startsWith(SHARD_PREFIX)) return undefined;
  const rest = name.slice(SHARD_PREFIX.length);
  return /^(0|[1-9][0-9]{0,5})$/.test(rest) ? Number(rest) : undefined;
}

/** The hashing key of a VirtualMachineBMC: `<namespace>/<name>` (contract point 3). */
export function shardKey(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

/** Rendezvous (highest-random-weight) score of `key` on shard `k`: 48 bits of SHA-256. */
export function shardScore(key: string, k: number): number {
  return createHash('sha256').update(`${key}\0${k}`).digest().readUIntBE(0, 6);
}

/**
 * The shard of `key` among `shards` (0..shards-1): the one with the highest score. Going from K to
 * K+1 shards moves exactly the keys whose new shard K outscores their old one (about 1/(K+1) of
 * them), all onto shard K; going down moves only the keys of the removed shard.
 */
export function assignShard(key: string, shards: number): number {
  if (!Number.isInteger(shards) || shards < 1) throw new RangeError(`shards must be a positive integer, got ${shards}`);
  let best = 0;
  let bestScore = -1;
  for (let k = 0; k < shards; k++) {
    const s = shardScore(key, k);
    if (s > bestScore) {
      best = k;
      bestScore = s;
    }
  }
  return best;
}

/** One system of a fleet document (contract point 2, with the 19:10 additions). */
export interface FleetSystem {
  /** `<namespace>.<vm>`: Redfish ComputerSystem/Manager/Chassis Id */
  id: string;
  namespace: string;
  vm: string;
  vmbmc: string;
  vmbmcUid: string;
  secretName: string;
  /** UDP port on the shard pod; 0 = no IPMI for this system */
  ipmiPort: number;
  media?: { storageClassName?: string; volumeMode?: string };
}

export interface FleetDocument {
  systems: FleetSystem[];
  /**
   * The shard serves Redfish over HTTPS (one certificate naming every member's Service): the
   * controller's record for the members' Services (80 and 443 → the TLS port); the agent ignores
   * it (its scheme comes from its command line).
   */
  tls?: boolean;
}

/** The fleet document of a shard ConfigMap, or undefined when it is missing or malformed. */
export function parseFleet(cm: KubeObject | undefined): FleetDocument | undefined {
  const raw = (cm?.data as Record<string, string> | undefined)?.[FLEET_KEY];
  if (raw === undefined) return undefined;
  try {
    const doc = JSON.parse(raw) as { systems?: unknown };
    if (!Array.isArray(doc.systems)) return undefined;
    const systems = doc.systems.filter(
      (s): s is FleetSystem => typeof s === 'object' && s !== null && typeof (s as FleetSystem).vmbmc === 'string' && Number.isInteger((s as FleetSystem).ipmiPort),
    );
    return { systems, ...((doc as { tls?: unknown }).tls === true ? { tls: true } : {}) };
  } catch {
    return undefined;
  }
}

/** A VirtualMachineBMC that belongs on a shard, with what the port allocation may reuse. */
export interface ShardCandidate {
  vmbmc: VirtualMachineBMC;
  ipmi: boolean;
  /** its port in this shard's current document (kept as long as it stays) */
  currentPort?: number;
  /** status.ipmiPort (from the shard it is moving away from): taken when free here */
  previousPort?: number;
}

/**
 * Ports for the candidates of one shard: a port already held in this shard stays; a VMBMC moving
 * in keeps the port from its status when no one here holds it; the rest get the lowest free port
 * from SHARD_IPMI_PORT_BASE, in name order (deterministic). Candidates without IPMI get 0.
 * Returns name → port; a name missing from the result found no free port.
 */
export function allocatePorts(candidates: readonly ShardCandidate[], base = SHARD_IPMI_PORT_BASE, max = SHARD_IPMI_PORT_MAX): Map<string, number> {
  const out = new Map<string, number>();
  const used = new Set<number>();
  const sorted = [...candidates].sort((a, b) => (a.vmbmc.metadata.name < b.vmbmc.metadata.name ? -1 : a.vmbmc.metadata.name > b.vmbmc.metadata.name ? 1 : 0));
  const valid = (p: number | undefined): p is number => p !== undefined && Number.isInteger(p) && p >= base && p <= max;
  for (const c of sorted) {
    if (!c.ipmi) out.set(c.vmbmc.metadata.name, 0);
    else if (valid(c.currentPort) && !used.has(c.currentPort)) {
      out.set(c.vmbmc.metadata.name, c.currentPort);
      used.add(c.currentPort);
    }
  }
  for (const c of sorted) {
    if (out.has(c.vmbmc.metadata.name) || !valid(c.previousPort) || used.has(c.previousPort)) continue;
    out.set(c.vmbmc.metadata.name, c.previousPort);
    used.add(c.previousPort);
  }
  let next = base;
  for (const c of sorted) {
    if (out.has(c.vmbmc.metadata.name)) continue;
    while (used.has(next)) next++;
    if (next > max) break;
    out.set(c.vmbmc.metadata.name, next);
    used.add(next);
  }
  return out;
}

/** The fleet entry of a VirtualMachineBMC on port `ipmiPort`. */
export function fleetSystem(vmbmc: VirtualMachineBMC, ipmiPort: number): FleetSystem {
  const ns = vmbmc.metadata.namespace ?? 'default';
  const vm = vmbmc.spec.virtualMachineRef.name;
  const st = vmbmc.spec.redfish?.virtualMedia?.storage;
  const media = { ...(st?.storageClassName ? { storageClassName: st.storageClassName } : {}), ...(st?.volumeMode ? { volumeMode: st.volumeMode } : {}) };
  return {
    id: `${ns}.${vm}`,
    namespace: ns,
    vm,
    vmbmc: vmbmc.metadata.name,
    vmbmcUid: vmbmc.metadata.uid ?? '',
    secretName: vmbmc.spec.authSecretRef.name,
    ipmiPort,
    ...(Object.keys(media).length > 0 ? { media } : {}),
  };
}

/** The shard's Role: everything named, for exactly its systems (contract CHANGE 19:10, RBAC). */
export function shardRoleRules(k: number, systems: readonly FleetSystem[], drivesOf: (vm: string) => readonly string[]): PolicyRule[] {
  const sorted = (xs: Iterable<string>) => [...new Set(xs)].sort();
  const vms = sorted(systems.map((s) => s.vm));
  const secrets = sorted(systems.map((s) => s.secretName));
  const eventCms = sorted(vms.map(eventsConfigMapName));
  const dvs = sorted(vms.flatMap((vm) => mediaDataVolumeNames(vm, drivesOf(vm))));
  const rules: PolicyRule[] = [
    // reads and writes of exactly its VMs and their VMIs by name ...
    { apiGroups: ['kubevirt.io'], resources: ['virtualmachines'], resourceNames: vms, verbs: ['get', 'patch'] },
    { apiGroups: ['kubevirt.io'], resources: ['virtualmachineinstances'], resourceNames: vms, verbs: ['get'] },
    // ... but ONE list+watch of the namespace's VMs and VMIs shared by all its systems
    // (src/backend/kubevirt/shared-informer.ts): RBAC authorizes a list/watch by name only with a
    // metadata.name field selector, so a shared watch cannot be named (docs/security.md "Shared mode")
    { apiGroups: ['kubevirt.io'], resources: ['virtualmachines', 'virtualmachineinstances'], verbs: ['list', 'watch'] },
    {
      apiGroups: ['subresources.kubevirt.io'],
      resources: ['virtualmachines/start', 'virtualmachines/stop', 'virtualmachines/restart'],
      resourceNames: vms,
      verbs: ['update'],
    },
    {
      apiGroups: ['subresources.kubevirt.io'],
      resources: ['virtualmachineinstances/softreboot', 'virtualmachineinstances/pause', 'virtualmachineinstances/unpause'],
      resourceNames: vms,
      verbs: ['update'],
    },
    { apiGroups: ['subresources.kubevirt.io'], resources: ['virtualmachineinstances/console'], resourceNames: vms, verbs: ['get'] },
    // each system's auth Secret, by name only: its credentials followed by a single-object list+watch
    // (fieldSelector metadata.name), and account changes written back to its virtbmc-accounts key
    // (GET, then PUT with that resourceVersion, as a per-VM agent: src/agent/accounts-secret.ts)
    { apiGroups: [''], resources: ['secrets'], resourceNames: secrets, verbs: ['get', 'list', 'update', 'watch'] },
    // the fleet document itself
    { apiGroups: [''], resources: ['configmaps'], resourceNames: [shardName(k)], verbs: ['get', 'list', 'watch'] },
    // the VMs' events ConfigMaps (subscriptions), created on first use: create cannot be named
    { apiGroups: [''], resources: ['configmaps'], resourceNames: eventCms, verbs: ['get', 'update'] },
    { apiGroups: [''], resources: ['configmaps'], verbs: ['create'] },
    { apiGroups: [''], resources: ['events'], verbs: ['create', 'patch'] },
  ];
  if (dvs.length > 0) {
    rules.push({ apiGroups: ['cdi.kubevirt.io'], resources: ['datavolumes'], resourceNames: dvs, verbs: ['get', 'list', 'watch', 'delete'] });
  }
  // the DataVolumes of volumes created over Redfish, a fixed set of names per VM (as agentRoleRules)
  const volumeDvs = sorted(vms.flatMap((vm) => bmcVolumeDataVolumeNames(vm)));
  if (volumeDvs.length > 0) rules.push({ apiGroups: ['cdi.kubevirt.io'], resources: ['datavolumes'], resourceNames: volumeDvs, verbs: ['get', 'delete'] });
  if (dvs.length > 0 || volumeDvs.length > 0) rules.push({ apiGroups: ['cdi.kubevirt.io'], resources: ['datavolumes'], verbs: ['create'] });
  return rules;
}

export function shardSelectorLabels(k: number): Record<string, string> {
  return { [LabelAppName]: AppNameValue, [LabelInstance]: shardName(k) };
}

function shardLabels(k: number): Record<string, string> {
  return { ...shardSelectorLabels(k), [LabelManagedBy]: ManagedByValue, [LabelShard]: String(k) };
}

export interface ShardSettings {
  image: string;
  imagePullPolicy?: PullPolicy;
  /** the agents' --metrics-port (undefined = metrics off) */
  metricsPort?: number;
  /** serve Redfish over HTTPS with this kubernetes.io/tls Secret (undefined = plain HTTP) */
  tlsSecret?: string;
}

export interface ShardObjects {
  name: string;
  namespace: string;
  serviceAccount: KubeObject;
  role: KubeObject;
  roleBinding: KubeObject;
  configMap: KubeObject;
  deployment: KubeObject;
  /** only when metrics are on: one scrape target per shard pod (the VMBMC Services do not carry the metrics port in shared mode) */
  metricsService?: KubeObject;
}

/** The objects of shard `k` in `namespace` serving `systems` (sorted by id here). */
export function desiredShardObjects(namespace: string, k: number, systems: readonly FleetSystem[], rules: PolicyRule[], agent: ShardSettings): ShardObjects {
  const name = shardName(k);
  const meta = (extraLabels: Record<string, string> = {}) => ({ name, namespace, labels: { ...extraLabels, ...shardLabels(k) } });
  const tls = agent.tlsSecret;
  const doc: FleetDocument = { systems: [...systems].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)), ...(tls ? { tls: true } : {}) };
  const redfishPort = tls ? SHARD_REDFISH_TLS_PORT : SHARD_REDFISH_PORT;
  const args = ['--fleet-configmap', `${namespace}/${name}`, '--address', '0.0.0.0', '--redfish-port', String(redfishPort)];
  // as a per-VM agent (reconcile.ts): the redirect of plain HTTP names the Services' 443; the
  // mounted Secret is re-read (a re-minted certificate reaches the pod without a restart)
  if (tls) args.push('--tls-cert', `${SHARD_TLS_MOUNT}/tls.crt`, '--tls-key', `${SHARD_TLS_MOUNT}/tls.key`, '--https-redirect-port', '443');
  const deployment = agentDeployment(meta(), 1, shardSelectorLabels(k), {
    serviceAccountName: name,
    // never anything per system here: membership reaches the agent through the watched ConfigMap, not a restart
    labels: shardLabels(k),
    image: agent.image,
    ...(agent.imagePullPolicy ? { imagePullPolicy: agent.imagePullPolicy } : {}),
    args,
    env: [
      { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
      { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
    ],
    ports: [{ name: 'redfish', containerPort: redfishPort, protocol: 'TCP' }],
    redfishScheme: tls ? 'HTTPS' : 'HTTP',
    resources: SHARD_RESOURCES,
    ...(tls ? { volumes: [{ volume: { name: 'redfish-tls', secret: { secretName: tls } }, mount: { name: 'redfish-tls', mountPath: SHARD_TLS_MOUNT, readOnly: true } }] } : {}),
    ...(agent.metricsPort !== undefined ? { metricsPort: agent.metricsPort } : {}),
  });
  const metricsService: KubeObject | undefined =
    agent.metricsPort === undefined
      ? undefined
      : {
          apiVersion: 'v1',
          kind: 'Service',
          metadata: meta({ [LabelMetrics]: 'true' }),
          spec: { type: 'ClusterIP', selector: shardSelectorLabels(k), ports: [{ name: 'metrics', port: agent.metricsPort, targetPort: agent.metricsPort, protocol: 'TCP' }] },
        };
  return {
    name,
    namespace,
    serviceAccount: { apiVersion: 'v1', kind: 'ServiceAccount', metadata: meta() },
    role: { apiVersion: `${RBAC_GROUP}/v1`, kind: 'Role', metadata: meta(), rules },
    roleBinding: {
      apiVersion: `${RBAC_GROUP}/v1`,
      kind: 'RoleBinding',
      metadata: meta(),
      roleRef: { apiGroup: RBAC_GROUP, kind: 'Role', name },
      subjects: [{ kind: 'ServiceAccount', name, namespace }],
    },
    configMap: { apiVersion: 'v1', kind: 'ConfigMap', metadata: meta(), data: { [FLEET_KEY]: JSON.stringify(doc) } },
    deployment,
    ...(metricsService ? { metricsService } : {}),
  };
}

/** The labels of every object of shard `k` (its certificate Secret and Certificate too). */
export function shardObjectLabels(k: number): Record<string, string> {
  return shardLabels(k);
}

/** `virtbmc-shard-<k>-tls` (minted) or `virtbmc-shard-<k>-cm-tls` (cert-manager) → k, else undefined. */
export function shardOfTlsSecret(name: string | undefined): number | undefined {
  const m = /^(.*?)-(cm-)?tls$/.exec(name ?? '');
  return m ? shardIndex(m[1]) : undefined;
}

/** Is this object one of our shard objects (labels, not owner references: a shard has many owners)? */
export function isShardObject(obj: KubeObject | undefined): boolean {
  const l = obj?.metadata?.labels ?? {};
  return l[LabelManagedBy] === ManagedByValue && l[LabelShard] !== undefined && shardIndex(obj?.metadata?.name) !== undefined;
}

/** The shard fleet ConfigMaps (not among src/kube/resources.ts: only the controller writes them). */
export const ConfigMapResource = { group: '', version: 'v1', plural: 'configmaps', namespaced: true, kind: 'ConfigMap' } as const;
