/**
 * bmc.kubevirt.io/v1beta1 VirtualMachineBMC: the TypeScript shape of the custom resource. The CRD's
 * OpenAPI schema (schema.ts) is typed against these interfaces, so the two cannot drift apart.
 * Wire-compatible with upstream KubeVirtBMC v1beta1 (virtualMachineRef, authSecretRef, service,
 * ipmi, status.clusterIP/loadBalancerIP/conditions/bootOverride), plus spec.redfish.
 */

import type { ObjectMeta } from '../../kube/types.js';

export const GROUP = 'bmc.kubevirt.io';
export const VERSION = 'v1beta1';
export const API_VERSION = `${GROUP}/${VERSION}`;
export const KIND = 'VirtualMachineBMC';
export const PLURAL = 'virtualmachinebmcs';
export const SINGULAR = 'virtualmachinebmc';
export const SHORT_NAMES = ['vmbmc', 'vmbmcs'];

/** Condition types written by the controller. */
export const ConditionType = {
  Ready: 'Ready',
  VirtualMachineAvailable: 'VirtualMachineAvailable',
  SecretAvailable: 'SecretAvailable',
} as const;
export type ConditionType = (typeof ConditionType)[keyof typeof ConditionType];

/** Condition reasons (CamelCase, stable: tools may match on them). */
export const Reason = {
  VirtualMachineFound: 'VirtualMachineFound',
  VirtualMachineNotFound: 'VirtualMachineNotFound',
  SecretFound: 'SecretFound',
  SecretNotFound: 'SecretNotFound',
  SecretInvalid: 'SecretInvalid',
  AgentAvailable: 'AgentAvailable',
  AgentNotAvailable: 'AgentNotAvailable',
  AgentScaledDown: 'AgentScaledDown',
  ServicePending: 'ServicePending',
  /** Shared mode: the shard has not listed this BMC in its fleet ConfigMap yet */
  ShardPending: 'ShardPending',
  /** Shared mode: a spec field the shared agents cannot honour (spec.redfish.tls) */
  SharedModeUnsupported: 'SharedModeUnsupported',
  NameConflict: 'NameConflict',
  /** the spec asks for something inconsistent (spec.redfish.tls.mode Secret without secretRef) */
  InvalidSpec: 'InvalidSpec',
  ReconcileError: 'ReconcileError',
} as const;
export type Reason = (typeof Reason)[keyof typeof Reason];

export type ServiceType = 'ClusterIP' | 'NodePort' | 'LoadBalancer';
/**
 * How the BMC is served: `PerVM` — an agent pod of its own; `Shared` — one of the namespace's shard
 * agents serves it beside other VMs (docs/controller.md "Modes"). Unset: the controller's
 * `--default-mode` (PerVM unless set otherwise).
 */
export type BMCMode = 'PerVM' | 'Shared';
export const BMC_MODES: readonly BMCMode[] = ['PerVM', 'Shared'];
export type VolumeMode = 'Filesystem' | 'Block';

export interface LocalObjectReference {
  /** Name of the referenced object in the same namespace. */
  name: string;
}

export interface ServiceSpec {
  /** Type of the BMC Service (default ClusterIP). */
  type?: ServiceType;
  /** Extra labels for the BMC Service. */
  labels?: Record<string, string>;
  /** Extra annotations for the BMC Service (e.g. for a load-balancer implementation). */
  annotations?: Record<string, string>;
}

export interface IPMISpec {
  /** Serve IPMI over LAN (623/UDP on the Service). Default true. */
  enabled?: boolean;
}

export interface VirtualMediaStorage {
  /** StorageClass for the DataVolume created on a virtual media insert; unset = cluster default. */
  storageClassName?: string;
  /** Volume mode of that DataVolume. */
  volumeMode?: VolumeMode;
}

export interface VirtualMediaTLS {
  /** Do not verify the TLS certificate of the image URL (CDI import and the agent's size probe). */
  insecureSkipVerify?: boolean;
  /** ConfigMap (key ca.crt) with the CA bundle that signs the image server's certificate. */
  caBundleConfigMapRef?: LocalObjectReference;
}

export interface VirtualMediaSpec {
  storage?: VirtualMediaStorage;
  tls?: VirtualMediaTLS;
}

/**
 * Where the agent's Redfish HTTPS certificate comes from: `Auto` — the controller provides one
 * (cert-manager Certificate when cert-manager is installed, else a self-signed one it mints and
 * renews); `Secret` — spec.redfish.tls.secretRef; `Disabled` — plain HTTP only.
 */
export type RedfishTLSMode = 'Auto' | 'Secret' | 'Disabled';
export const REDFISH_TLS_MODES: readonly RedfishTLSMode[] = ['Auto', 'Secret', 'Disabled'];

export interface RedfishTLS {
  /** Auto, Secret or Disabled; unset = Secret when secretRef is set, else Auto. */
  mode?: RedfishTLSMode;
  /** kubernetes.io/tls Secret (tls.crt, tls.key) the agent serves Redfish HTTPS with (mode Secret). */
  secretRef?: LocalObjectReference;
}

export interface RedfishSpec {
  virtualMedia?: VirtualMediaSpec;
  /** Redfish over HTTPS (on by default: mode Auto); the Service's 443 and 80 reach it, HTTP is redirected. */
  tls?: RedfishTLS;
}

export interface VirtualMachineBMCSpec {
  /** The KubeVirt VirtualMachine (same namespace) this BMC controls. */
  virtualMachineRef: LocalObjectReference;
  /** Secret (same namespace) with keys `username` and `password`: the BMC credentials. */
  authSecretRef: LocalObjectReference;
  /** PerVM or Shared; unset = the controller's --default-mode (status.mode shows the effective one). */
  mode?: BMCMode;
  service?: ServiceSpec;
  ipmi?: IPMISpec;
  redfish?: RedfishSpec;
}

export type ConditionStatus = 'True' | 'False' | 'Unknown';

/** metav1.Condition */
export interface Condition {
  type: string;
  status: ConditionStatus;
  observedGeneration?: number;
  lastTransitionTime: string;
  reason: string;
  message: string;
}

export interface VirtualMachineBMCStatus {
  /** ClusterIP of the BMC Service. */
  clusterIP?: string;
  /** Ingress address of the BMC Service when it is of type LoadBalancer. */
  loadBalancerIP?: string;
  /** Generation of the spec the controller last acted on. */
  observedGeneration?: number;
  /** The effective mode (spec.mode, or the controller's default). */
  mode?: BMCMode;
  /** Shared mode: the shard (0..K-1) whose agent serves this BMC (Deployment virtbmc-shard-<shard>). */
  shard?: number;
  /** Shared mode: the UDP port on the shard pod that the Service's 623/udp maps to. */
  ipmiPort?: number;
  /** DNS name clients use (the BMC Service: `<name>.<namespace>.svc`). */
  endpoint?: string;
  conditions?: Condition[];
  /** Boot override bookkeeping owned by the agent; the controller never writes it. */
  bootOverride?: Record<string, unknown>;
}

export interface VirtualMachineBMC {
  apiVersion: typeof API_VERSION;
  kind: typeof KIND;
  metadata: ObjectMeta & { name: string };
  spec: VirtualMachineBMCSpec;
  status?: VirtualMachineBMCStatus;
}

/** Labels and annotations the controller reads or writes. */
export const LabelAutoEnabled = 'bmc.kubevirt.io/enabled';
export const AnnotationAutoSecret = 'bmc.kubevirt.io/auth-secret';
export const AnnotationAutoServiceType = 'bmc.kubevirt.io/service-type';
export const LabelAutoCreated = 'bmc.kubevirt.io/auto-created';
export const LabelInstance = 'bmc.kubevirt.io/instance';
export const LabelManagedBy = 'app.kubernetes.io/managed-by';
export const LabelAppName = 'app.kubernetes.io/name';
export const ManagedByValue = 'virtbmc-controller';
export const AppNameValue = 'virtbmc';
export const AnnotationSecretHash = 'bmc.kubevirt.io/secret-hash';
/** On every shard object: the shard index (objects named virtbmc-shard-<k>). */
export const LabelShard = 'bmc.kubevirt.io/shard';
/** On Services that expose an agent's metrics port (what the ServiceMonitor sample selects). */
export const LabelMetrics = 'bmc.kubevirt.io/metrics';
