/**
 * The CRD's OpenAPI v3 schema, written once as a TypeScript value whose type is derived from the
 * interfaces in types.ts: adding, removing or retyping a field there fails type-checking here until
 * the schema follows. hack/gen-crd.ts renders the CRD YAML from crdManifest().
 */
import {
  API_VERSION,
  GROUP,
  KIND,
  PLURAL,
  SHORT_NAMES,
  SINGULAR,
  VERSION,
  type Condition,
  type LocalObjectReference,
  type VirtualMachineBMCSpec,
  type VirtualMachineBMCStatus,
} from './types.js';

interface Described {
  description?: string;
}
export interface StringSchema extends Described {
  type: 'string';
  enum?: string[];
  default?: string;
  format?: string;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
}
export interface IntegerSchema extends Described {
  type: 'integer';
  format?: 'int32' | 'int64';
  minimum?: number;
  maximum?: number;
}
export interface BooleanSchema extends Described {
  type: 'boolean';
  default?: boolean;
}
export interface MapSchema extends Described {
  type: 'object';
  additionalProperties: StringSchema;
}
export interface OpaqueSchema extends Described {
  type: 'object';
  'x-kubernetes-preserve-unknown-fields': true;
}
export interface ArraySchema<U> extends Described {
  type: 'array';
  items: SchemaFor<U>;
  'x-kubernetes-list-type'?: 'atomic' | 'map' | 'set';
  'x-kubernetes-list-map-keys'?: string[];
}
type RequiredKeys<T> = { [K in keyof T]-?: object extends Pick<T, K> ? never : K }[keyof T];
export interface ObjectSchema<T> extends Described {
  type: 'object';
  /** Every field of T, each with the schema its TypeScript type calls for. */
  properties: { [K in keyof T]-?: SchemaFor<NonNullable<T[K]>> };
  required?: RequiredKeys<T>[];
  'x-kubernetes-map-type'?: 'atomic';
  /** CEL rules kube-apiserver evaluates on writes (the emulator does not: the controller checks them too) */
  'x-kubernetes-validations'?: Array<{ rule: string; message: string }>;
}
/** The schema shape a TypeScript type maps to. */
export type SchemaFor<T> = [T] extends [string]
  ? StringSchema
  : [T] extends [number]
    ? IntegerSchema
    : [T] extends [boolean]
      ? BooleanSchema
      : T extends readonly (infer U)[]
        ? ArraySchema<U>
        : string extends keyof T
          ? MapSchema | OpaqueSchema
          : ObjectSchema<T>;

const stringMap = (description: string): MapSchema => ({
  type: 'object',
  description,
  additionalProperties: { type: 'string' },
});

const localRef = (description: string): ObjectSchema<LocalObjectReference> => ({
  type: 'object',
  description,
  properties: { name: { type: 'string', description: 'Name of the object, in the namespace of this VirtualMachineBMC.', minLength: 1 } },
  required: ['name'],
  'x-kubernetes-map-type': 'atomic',
});

export const specSchema: ObjectSchema<VirtualMachineBMCSpec> = {
  type: 'object',
  description: 'Desired state: which VM this BMC controls, its credentials and how it is exposed.',
  properties: {
    virtualMachineRef: localRef('The KubeVirt VirtualMachine this BMC controls.'),
    authSecretRef: localRef('Secret with the BMC credentials under the keys `username` and `password`.'),
    mode: {
      type: 'string',
      description:
        'PerVM: an agent pod of its own. Shared: served by one of the namespace\'s shard agents (virtbmc-shard-<k>) beside other VMs. ' +
        "Unset: the controller's --default-mode; status.mode shows the effective mode. No schema default on purpose: " +
        'a stored default would pin every object and the controller-wide default could never apply.',
      enum: ['PerVM', 'Shared'],
    },
    service: {
      type: 'object',
      description: 'The Service that exposes the BMC.',
      properties: {
        type: {
          type: 'string',
          description: 'Service type.',
          enum: ['ClusterIP', 'NodePort', 'LoadBalancer'],
          default: 'ClusterIP',
        },
        labels: stringMap('Extra labels for the Service.'),
        annotations: stringMap('Extra annotations for the Service.'),
      },
    },
    ipmi: {
      type: 'object',
      description: 'IPMI over LAN settings.',
      properties: { enabled: { type: 'boolean', description: 'Serve IPMI (623/UDP). Default true.' } },
    },
    redfish: {
      type: 'object',
      description: 'Redfish settings.',
      properties: {
        virtualMedia: {
          type: 'object',
          description: 'Virtual media (CD-ROM images imported as CDI DataVolumes).',
          properties: {
            storage: {
              type: 'object',
              description: 'Storage for the DataVolume created on insert.',
              properties: {
                storageClassName: { type: 'string', description: 'StorageClass; unset uses the cluster default.' },
                volumeMode: { type: 'string', description: 'Volume mode.', enum: ['Filesystem', 'Block'] },
              },
            },
            tls: {
              type: 'object',
              description: 'TLS settings for fetching images over HTTPS.',
              properties: {
                insecureSkipVerify: { type: 'boolean', description: 'Do not verify the image server certificate.' },
                caBundleConfigMapRef: localRef('ConfigMap (key ca.crt) with the CA bundle for the image server.'),
              },
            },
          },
        },
        tls: {
          type: 'object',
          description:
            'Redfish over HTTPS (the Service exposes 443, and 80 answers plain HTTP with a 308 redirect). Unset or mode Auto: the controller ' +
            'provides the certificate (cert-manager when installed, else a self-signed one it renews).',
          properties: {
            mode: {
              type: 'string',
              description:
                'Auto: certificate from the controller (cert-manager Certificate, else minted and renewed at 2/3 of its lifetime). ' +
                'Secret: the kubernetes.io/tls Secret in secretRef. Disabled: plain HTTP only. Unset: Secret when secretRef is set, else Auto ' +
                '(no schema default: a stored default would turn an existing secretRef into Auto).',
              enum: ['Auto', 'Secret', 'Disabled'],
            },
            secretRef: localRef('kubernetes.io/tls Secret (tls.crt, tls.key); mode Secret.'),
          },
          'x-kubernetes-validations': [{ rule: "!has(self.mode) || self.mode != 'Secret' || has(self.secretRef)", message: 'mode Secret needs secretRef' }],
        },
      },
    },
  },
  required: ['virtualMachineRef', 'authSecretRef'],
};

const conditionSchema: ObjectSchema<Condition> = {
  type: 'object',
  description: 'metav1.Condition',
  properties: {
    type: { type: 'string', maxLength: 316 },
    status: { type: 'string', enum: ['True', 'False', 'Unknown'] },
    observedGeneration: { type: 'integer', format: 'int64', minimum: 0 },
    lastTransitionTime: { type: 'string', format: 'date-time' },
    reason: { type: 'string', minLength: 1, maxLength: 1024, pattern: '^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$' },
    message: { type: 'string', maxLength: 32768 },
  },
  required: ['type', 'status', 'lastTransitionTime', 'reason', 'message'],
};

export const statusSchema: ObjectSchema<VirtualMachineBMCStatus> = {
  type: 'object',
  description: 'Observed state, written by the controller (and bootOverride by the agent).',
  properties: {
    clusterIP: { type: 'string', description: 'ClusterIP of the BMC Service.' },
    loadBalancerIP: { type: 'string', description: 'Load-balancer ingress address of the BMC Service.' },
    observedGeneration: { type: 'integer', format: 'int64', description: 'Generation the controller last acted on.' },
    mode: { type: 'string', description: 'Effective mode (spec.mode or the controller default).', enum: ['PerVM', 'Shared'] },
    shard: { type: 'integer', format: 'int32', minimum: 0, description: 'Shared mode: index of the shard agent serving this BMC.' },
    ipmiPort: { type: 'integer', format: 'int32', minimum: 0, maximum: 65535, description: "Shared mode: UDP port on the shard pod behind the Service's 623/udp." },
    endpoint: { type: 'string', description: 'DNS name of the BMC Service (what ipmitool -H and Redfish clients use).' },
    conditions: {
      type: 'array',
      description: 'Ready, VirtualMachineAvailable and SecretAvailable.',
      items: conditionSchema,
      'x-kubernetes-list-type': 'map',
      'x-kubernetes-list-map-keys': ['type'],
    },
    bootOverride: {
      type: 'object',
      description: 'Boot override bookkeeping owned by the agent (opaque to the controller).',
      'x-kubernetes-preserve-unknown-fields': true,
    },
  },
};

/** The CustomResourceDefinition object. */
export function crdManifest(): Record<string, unknown> {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${PLURAL}.${GROUP}` },
    spec: {
      group: GROUP,
      names: { kind: KIND, listKind: `${KIND}List`, plural: PLURAL, singular: SINGULAR, shortNames: SHORT_NAMES },
      scope: 'Namespaced',
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: [
            { name: 'VM', type: 'string', jsonPath: '.spec.virtualMachineRef.name' },
            { name: 'SECRET', type: 'string', jsonPath: '.spec.authSecretRef.name' },
            { name: 'CLUSTER-IP', type: 'string', jsonPath: '.status.clusterIP' },
            { name: 'MODE', type: 'string', jsonPath: '.status.mode' },
            { name: 'SHARD', type: 'integer', jsonPath: '.status.shard' },
            { name: 'ENDPOINT', type: 'string', jsonPath: '.status.endpoint' },
            { name: 'READY', type: 'string', jsonPath: ".status.conditions[?(@.type=='Ready')].status" },
            { name: 'AGE', type: 'date', jsonPath: '.metadata.creationTimestamp' },
          ],
          schema: {
            openAPIV3Schema: {
              type: 'object',
              description: `${KIND} (${API_VERSION}) gives a KubeVirt VirtualMachine an IPMI and Redfish BMC.`,
              properties: {
                apiVersion: { type: 'string' },
                kind: { type: 'string' },
                metadata: { type: 'object' },
                spec: specSchema,
                status: statusSchema,
              },
              required: ['spec'],
            },
          },
        },
      ],
    },
  };
}
