/**
 * The Kubernetes object shapes shared by the agent's KubeVirt backend and the controller. Objects
 * arrive from the API server, so every field is optional unless a caller narrows it.
 */

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: OwnerReference[];
  /** who owns which fields (Server-Side Apply); fieldsV1 is the FieldsV1 tree */
  managedFields?: ManagedFieldsEntry[];
}

export interface ManagedFieldsEntry {
  manager?: string;
  operation?: 'Apply' | 'Update';
  apiVersion?: string;
  time?: string;
  fieldsType?: string;
  fieldsV1?: Record<string, unknown>;
  subresource?: string;
}

/** The fields every object has; typed objects (VirtualMachine, ...) extend this. */
export interface KubeObjectBase {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
}

/** An object of any kind, fields beyond the common ones untyped (what generic code handles). */
export interface KubeObject extends KubeObjectBase {
  [k: string]: unknown;
}

export interface KubeList<T> {
  metadata?: { resourceVersion?: string; continue?: string };
  items: T[];
}

/** metav1.Status: the body of an API error. */
export interface KubeStatus {
  kind?: 'Status';
  status?: string;
  message?: string;
  reason?: string;
  code?: number;
  details?: { name?: string; group?: string; kind?: string; causes?: { message?: string }[] };
}
