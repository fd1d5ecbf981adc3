/**
 * Pure reconcile logic, the desired objects: from a VirtualMachineBMC, its VM and its Secret (as the
 * informers see them), the objects that should exist, applied whole with Server-Side Apply
 * (apply.ts), the status in status.ts; no I/O in any of them (controller.ts applies the result). Everything is
 * deterministic so repeated reconciles change nothing.
 */
import { createHmac } from 'node:crypto';
import {
  API_VERSION,
  AnnotationSecretHash,
  AppNameValue,
  KIND,
  LabelAppName,
  LabelInstance,
  LabelManagedBy,
  LabelMetrics,
  ManagedByValue,
  type VirtualMachineBMC,
} from './api/types.js';
import type { KubeObject, OwnerReference } from '../kube/types.js';
import { agentObjectName } from './names.js';
import { agentRoleRules, cdromDrives, RBAC_GROUP } from './agent-rbac.js';
import { SHARD_REDFISH_PORT, SHARD_REDFISH_TLS_PORT, shardSelectorLabels } from './shard.js';
import { AGENT_NODE_OPTIONS, agentDeployment, PER_VM_RESOURCES, type AgentVolume } from './agent-pod.js';
import { defaultTlsSecretName, tlsMode } from './tls-names.js';

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
  /** the kubernetes.io/tls Secret to mount (src/controller/tls.ts decides; undefined = plain HTTP); default: by spec.redfish.tls alone */
  tlsSecret: string | undefined = defaultTlsSecretName(vmbmc, agentObjectName(vmbmc.metadata.name)),
  /** the certificate Secret is the controller-minted one: the agent may write a ReplaceCertificate into it */
  tlsMinted: boolean = tlsSecret !== undefined && tlsMode(vmbmc) === 'Auto',
): DesiredObjects {
  const name = agentObjectName(vmbmc.metadata.name);
  const namespace = vmbmc.metadata.namespace ?? 'default';
  const vmName = vmbmc.spec.virtualMachineRef.name;
  const secretName = vmbmc.spec.authSecretRef.name;
  const sec = checkSecret(secretName, secret);
  const replicas: 0 | 1 = vm && sec.state === 'ok' ? 1 : 0;
  const ipmi = ipmiEnabled(vmbmc);
  const tls = tlsSecret;
  const media = vmbmc.spec.redfish?.virtualMedia;
  const redfishPort = tls ? REDFISH_TLS_TARGET_PORT : REDFISH_HTTP_TARGET_PORT;

  const args = [namespace, vmName, '--address', '0.0.0.0', '--ipmi-port', String(IPMI_TARGET_PORT), '--redfish-port', String(redfishPort)];
  if (!ipmi) args.push('--no-ipmi');
  if (media?.storage?.storageClassName) args.push('--storage-class', media.storage.storageClassName);
  if (media?.storage?.volumeMode) args.push('--volume-mode', media.storage.volumeMode);
  // the redirect names the Service's HTTPS port (443), not the container's
  if (tls) args.push('--tls-cert', `${TLS_MOUNT}/tls.crt`, '--tls-key', `${TLS_MOUNT}/tls.key`, '--https-redirect-port', String(HTTPS_PORT));
  if (tls && tlsMinted) args.push('--tls-secret', tls);

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
    // V8 flags of a per-VM agent (agent-pod.ts AGENT_NODE_OPTIONS, docs/scale.md)
    { name: 'NODE_OPTIONS', value: AGENT_NODE_OPTIONS },
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
  // its auth Secret (accounts) and, when the controller minted it, its certificate Secret (ReplaceCertificate)
  const secrets = { accountsSecret: secretName, tlsSecret: tls && tlsMinted ? tls : undefined };
  const role: KubeObject = { apiVersion: `${RBAC_GROUP}/v1`, kind: 'Role', metadata: meta(vmbmc, name), rules: agentRoleRules(vmName, cdromDrives(vm), secrets) };
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
      // a label or annotation dropped from spec.service is removed by the apply (apply.ts)
      annotations: userAnnotations,
    }),
    spec: { type: svcSpec.type ?? 'ClusterIP', selector, ports },
  };
}

/**
 * Shared mode: the VMBMC's Service routes to shard `k`'s pod: 623/udp → its `ipmiPort` there,
 * 80/tcp → the shard's Redfish port; when the shard serves HTTPS (`tls`), 80 and 443 → its TLS
 * port (plain HTTP there is answered 308 to https://<host>/, as a per-VM agent). Same name, type, labels and annotations as in per-VM mode, so
 * `ipmitool -H <service>` is unchanged and a switch of mode or shard only re-points it.
 */
export function desiredSharedService(vmbmc: VirtualMachineBMC, k: number, ipmiPort: number, tls = false): KubeObject {
  const name = agentObjectName(vmbmc.metadata.name);
  const ports: unknown[] = [];
  if (ipmiEnabled(vmbmc) && ipmiPort > 0) ports.push({ name: 'ipmi', port: IPMI_PORT, targetPort: ipmiPort, protocol: 'UDP' });
  ports.push({ name: 'redfish', port: HTTP_PORT, targetPort: tls ? SHARD_REDFISH_TLS_PORT : SHARD_REDFISH_PORT, protocol: 'TCP' });
  if (tls) ports.push({ name: 'redfish-tls', port: HTTPS_PORT, targetPort: SHARD_REDFISH_TLS_PORT, protocol: 'TCP' });
  // no metrics port here: one shard pod sits behind many of these; its own Service carries it
  return bmcService(vmbmc, name, shardSelectorLabels(k), ports, false);
}

/** `<service>.<namespace>.svc`: the name clients use. */
export function bmcEndpoint(vmbmc: VirtualMachineBMC): string {
  return `${agentObjectName(vmbmc.metadata.name)}.${vmbmc.metadata.namespace ?? 'default'}.svc`;
}
