/** Shared shapes of the apiserver emulator. */
import type { ObjectMeta as KubeObjectMeta } from '../../src/kube/types.js';

export type { OwnerReference } from '../../src/kube/types.js';

/**
 * Metadata as the emulator stores it: the shared shape, plus fields only the emulator acts on, and
 * whatever else a client sends.
 */
export interface ObjectMeta extends KubeObjectMeta {
  deletionGracePeriodSeconds?: number;
  finalizers?: string[];
  [k: string]: unknown;
}

export type KubeObject = { apiVersion: string; kind: string; metadata: ObjectMeta; [k: string]: unknown };

export interface EmulatorOptions {
  /** virt-controller timings: VMI Pending → Scheduling → Scheduled → Running (ms each), default 20 */
  vmiPhaseDelayMs?: number;
  /** how long a stopping VMI takes to disappear (graceful), default 20 */
  vmiStopDelayMs?: number;
  /** CDI import duration for a DataVolume (ms), default 50; progress goes 0%→100% */
  dataVolumeImportMs?: number;
  /** Deployments become available after this (ms), default 20; Services get a clusterIP at once,
      LoadBalancer Services an ingress IP after this */
  workloadDelayMs?: number;
  /** how many resourceVersions back a watch may start before 410 Gone, default 1000 */
  watchHistory?: number;
  /** install KubeVirt / CDI API groups (default true); false → 404 for their groups */
  kubevirt?: boolean;
  cdi?: boolean;
  /** bearer token the kubeconfig carries and the server requires (default: random) */
  token?: string;
  /** reject creates in a namespace that does not exist with 404, like kube-apiserver (default false) */
  requireNamespaces?: boolean;
  /** also accept requests without a token (kubectl/client-go send no bearer token over plain http) */
  allowAnonymous?: boolean;
  /** CRD YAML files to install at start (e.g. config/crd/bases/*.yaml): their schemas are enforced */
  crdFiles?: string[];
  /** serve cert-manager.io/v1 Certificate and Issuer (CRDs, as installing cert-manager does: test/emulator/cert-manager.ts) */
  certManager?: boolean;
  /** interval of BOOKMARK events on watches that allow them (ms), default 60000 as kube-apiserver's watch cache */
  bookmarkIntervalMs?: number;
  /** KubeVirt developerConfiguration.featureGates / disabledFeatureGates (feature-gates.ts: v1.9 states,
      Beta gates on unless disabled), to model clusters with or without e.g. RebootPolicy */
  kubevirtFeatureGates?: string[];
  kubevirtDisabledFeatureGates?: string[];
}

export type AuditVerb = 'get' | 'list' | 'watch' | 'create' | 'update' | 'patch' | 'delete' | 'deletecollection';

export interface AuditEntry {
  verb: AuditVerb;
  group: string;
  version: string;
  resource: string;
  subresource?: string;
  namespace?: string;
  name?: string;
  /** HTTP status returned */
  code: number;
  /** set (and resource '') for non-resource requests such as /version, /api, /healthz */
  nonResourceURL?: string;
  /** the RBAC user, for requests made with a token from asUser()/asServiceAccount() (absent for the admin token) */
  user?: string;
}
