/**
 * cert-manager's API as CRDs (what installing cert-manager adds to a cluster): cert-manager.io/v1
 * Certificate and Issuer, served when a test starts the emulator with `certManager: true`.
 * The schemas keep what the controller writes and what cert-manager's types require
 * (cert-manager/cert-manager pkg/apis/certmanager/v1/types_certificate.go: spec.secretName and
 * spec.issuerRef are not omitempty, issuerRef.name is required; types_issuer.go: spec holds one
 * issuer type such as selfSigned). Nothing here issues certificates: a test that needs the Secret
 * plays cert-manager itself (test/controller/tls.test.ts).
 */
import type { KubeObject } from './types.js';

const preserve = { type: 'object', 'x-kubernetes-preserve-unknown-fields': true };

function crd(kind: string, plural: string, spec: Record<string, unknown>): KubeObject {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${plural}.cert-manager.io` },
    spec: {
      group: 'cert-manager.io',
      names: { kind, plural, singular: kind.toLowerCase(), listKind: `${kind}List` },
      scope: 'Namespaced',
      versions: [
        {
          name: 'v1',
          served: true,
          storage: true,
          subresources: { status: {} },
          schema: { openAPIV3Schema: { type: 'object', properties: { spec, status: preserve } } },
        },
      ],
    },
  };
}

export const CERT_MANAGER_CRDS: KubeObject[] = [
  crd('Certificate', 'certificates', {
    type: 'object',
    required: ['secretName', 'issuerRef'],
    properties: {
      secretName: { type: 'string', minLength: 1 },
      commonName: { type: 'string' },
      dnsNames: { type: 'array', items: { type: 'string' } },
      ipAddresses: { type: 'array', items: { type: 'string' } },
      duration: { type: 'string' },
      renewBefore: { type: 'string' },
      usages: { type: 'array', items: { type: 'string' } },
      isCA: { type: 'boolean' },
      privateKey: {
        type: 'object',
        properties: {
          algorithm: { type: 'string', enum: ['RSA', 'ECDSA', 'Ed25519'] },
          encoding: { type: 'string', enum: ['PKCS1', 'PKCS8'] },
          rotationPolicy: { type: 'string', enum: ['Never', 'Always'] },
          size: { type: 'integer' },
        },
      },
      issuerRef: {
        type: 'object',
        required: ['name'],
        properties: { name: { type: 'string' }, kind: { type: 'string' }, group: { type: 'string' } },
      },
    },
  }),
  crd('Issuer', 'issuers', preserve),
];
