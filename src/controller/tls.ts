/**
 * TLS by default for the agents' Redfish service (spec.redfish.tls.mode, docs/security.md "TLS").
 *
 * - `Auto` (default): the controller provides the certificate. When the cert-manager API
 *   (cert-manager.io/v1 certificates) is served, it asks cert-manager for one (a Certificate whose
 *   Secret `<agent>-cm-tls` the Deployment mounts; issuer from --cert-manager-issuer, else a
 *   selfSigned Issuer `virtbmc-selfsigned` it creates in the namespace). Otherwise it mints a
 *   self-signed certificate itself (tls-mint.ts) into a Secret `<agent>-tls` it owns, and replaces
 *   it at 2/3 of its lifetime (the point cert-manager renews at by default: its CertificateSpec
 *   documentation in cert-manager/cert-manager pkg/apis/certmanager/v1/types_certificate.go).
 *   SANs: the Service's DNS names `<svc>`, `<svc>.<ns>`, `<svc>.<ns>.svc`, `<svc>.<ns>.svc.<domain>`.
 * - `Secret`: the user's kubernetes.io/tls Secret (spec.redfish.tls.secretRef).
 * - `Disabled`: plain HTTP.
 *
 * The agent re-reads its mounted certificate files (src/redfish/tls-certificate.ts, --tls-reload-seconds),
 * so a renewed certificate reaches it without a restart once the kubelet has refreshed the volume.
 */
import type { Logger } from '../common/logger.js';
import { isConflict, isKubeApiError, isNotFound, type KubeClient } from '../kube/client.js';
import { Resources, type ResourceRef } from '../kube/resources.js';
import type { KubeObject, OwnerReference } from '../kube/types.js';
import { LabelManagedBy, ManagedByValue, Reason, type RedfishTLSMode, type VirtualMachineBMC } from './api/types.js';
import { commonLabels, ownerRef } from './reconcile.js';
import { applyNeeded, FIELD_MANAGER, recordOf, type AppliedRecord } from './apply.js';
import { certManagerSecretName, mintedSecretName, tlsMode } from './tls-names.js';
import { inspectCertificate, mintSelfSigned } from './tls-mint.js';
import { AnnotationTlsSource, TLS_SOURCE_REDFISH } from '../kube/tls-secret.js';

export const CERT_MANAGER_GROUP = 'cert-manager.io';
export const CertificateResource: ResourceRef = { group: CERT_MANAGER_GROUP, version: 'v1', plural: 'certificates', namespaced: true, kind: 'Certificate' };
export const IssuerResource: ResourceRef = { group: CERT_MANAGER_GROUP, version: 'v1', plural: 'issuers', namespaced: true, kind: 'Issuer' };
/** The namespace's selfSigned Issuer the controller creates when no --cert-manager-issuer is given. */
export const SELF_SIGNED_ISSUER = 'virtbmc-selfsigned';
/** Lifetime of a minted certificate (and the `duration` asked of cert-manager). */
export const DEFAULT_CERT_VALIDITY_MS = 90 * 24 * 3600_000;
/** A pending renewal is re-checked at least this often (timers cannot span 90 days; the resync also re-checks). */
export const MAX_RENEW_REQUEUE_MS = 12 * 3600_000;
/** On the minted Secret: when the controller replaces the certificate. */
export const AnnotationRenewAt = 'bmc.kubevirt.io/tls-renew-at';
const TLS_SECRET_TYPE = 'kubernetes.io/tls';

/** The DNS names clients reach the BMC Service by (the certificate's SANs). */
export function serviceDnsNames(agentName: string, namespace: string, clusterDomain = 'cluster.local'): string[] {
  return [agentName, `${agentName}.${namespace}`, `${agentName}.${namespace}.svc`, `${agentName}.${namespace}.svc.${clusterDomain}`];
}

/** When a certificate valid from notBefore to notAfter is replaced: at 2/3 of its lifetime. */
export function renewalTime(notBefore: number, notAfter: number): number {
  return notBefore + Math.floor(((notAfter - notBefore) * 2) / 3);
}

/** Go duration syntax for cert-manager (whole hours when possible). */
function goDuration(ms: number): string {
  return ms % 3600_000 === 0 ? `${ms / 3600_000}h` : `${Math.max(1, Math.round(ms / 1000))}s`;
}

export interface IssuerRef {
  kind: 'Issuer' | 'ClusterIssuer';
  name: string;
  group?: string;
}

/** `--cert-manager-issuer kind/name` (kind Issuer or ClusterIssuer; a bare name is an Issuer). */
export function parseIssuerRef(s: string): IssuerRef {
  const [a, b] = s.includes('/') ? s.split('/', 2) : ['Issuer', s];
  const kind = a === 'ClusterIssuer' ? 'ClusterIssuer' : a === 'Issuer' ? 'Issuer' : undefined;
  if (!kind || !b || !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(b)) throw new Error(`--cert-manager-issuer: expected Issuer/<name> or ClusterIssuer/<name>, got "${s}"`);
  return { kind, name: b };
}

/** The Certificate asked of cert-manager for an agent (owned by its VirtualMachineBMC). */
export function desiredCertificate(vmbmc: VirtualMachineBMC, agentName: string, dnsNames: string[], issuer: IssuerRef, validityMs: number): KubeObject {
  const c = certificateSpec(agentName, dnsNames, issuer, validityMs);
  return { ...c, metadata: { name: agentName, namespace: vmbmc.metadata.namespace, labels: commonLabels(agentName), ownerReferences: [ownerRef(vmbmc)] } };
}

function certificateSpec(objectName: string, dnsNames: string[], issuer: IssuerRef, validityMs: number): KubeObject {
  return {
    apiVersion: `${CERT_MANAGER_GROUP}/v1`,
    kind: 'Certificate',
    spec: {
      secretName: certManagerSecretName(objectName),
      commonName: dnsNames[0],
      dnsNames,
      duration: goDuration(validityMs),
      renewBefore: goDuration(Math.ceil(validityMs / 3)),
      usages: ['server auth', 'digital signature'],
      privateKey: { algorithm: 'ECDSA', size: 256, rotationPolicy: 'Always' },
      issuerRef: { group: issuer.group ?? CERT_MANAGER_GROUP, kind: issuer.kind, name: issuer.name },
    },
  };
}

export function selfSignedIssuer(namespace: string): KubeObject {
  return {
    apiVersion: `${CERT_MANAGER_GROUP}/v1`,
    kind: 'Issuer',
    metadata: { name: SELF_SIGNED_ISSUER, namespace, labels: { [LabelManagedBy]: ManagedByValue } },
    spec: { selfSigned: {} },
  };
}

export interface TlsPlan {
  mode: RedfishTLSMode;
  /** the kubernetes.io/tls Secret the Deployment mounts (undefined: plain HTTP) */
  secretName?: string;
  /** reconcile again then (the minted certificate's renewal) */
  requeueAfterMs?: number;
  /** the BMC cannot be served as asked */
  problem?: { reason: string; message: string };
  /** cert-manager issues it */
  certManager?: boolean;
  /** the controller's own Secret (the agent may write a Redfish ReplaceCertificate into it) */
  minted?: boolean;
}

export interface AgentTlsOptions {
  client: KubeClient;
  logger: Logger;
  /** the controller's clock (ms since the epoch) */
  now?: () => number;
  /** --cert-manager-issuer; unset: the namespace's selfSigned Issuer */
  issuer?: IssuerRef;
  validityMs?: number;
  clusterDomain?: string;
  /** how long a discovery answer about cert-manager is trusted (default 5 min) */
  discoveryTtlMs?: number;
}

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');
const unb64 = (s: unknown): string => (typeof s === 'string' ? Buffer.from(s, 'base64').toString('utf8') : '');

function ownedBy(obj: KubeObject, uid: string | undefined): boolean {
  return (obj.metadata?.ownerReferences ?? []).some((r) => r.controller && r.uid === uid);
}

async function getOrUndefined(client: KubeClient, r: ResourceRef, ns: string, name: string): Promise<KubeObject | undefined> {
  try {
    return await client.get<KubeObject>(r, ns, name);
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw e;
  }
}

/** Whose certificate: one per-VM agent (owned by its VirtualMachineBMC) or one shard (owned by its fleet ConfigMap). */
interface CertTarget {
  ns: string;
  /** the agent's object name: the Certificate's; the Secrets are `<it>-tls` (minted) and `<it>-cm-tls` */
  objectName: string;
  labels: Record<string, string>;
  owner: OwnerReference;
  /** is this existing object ours to update or delete? */
  mine(o: KubeObject): boolean;
  /** for messages: `VirtualMachineBMC`, `shard virtbmc-shard-0` */
  what: string;
}

function vmbmcTarget(vmbmc: VirtualMachineBMC, agentName: string): CertTarget {
  return {
    ns: vmbmc.metadata.namespace ?? 'default',
    objectName: agentName,
    labels: commonLabels(agentName),
    owner: ownerRef(vmbmc),
    mine: (o) => ownedBy(o, vmbmc.metadata.uid),
    what: 'VirtualMachineBMC',
  };
}

function certificateFor(t: CertTarget, dnsNames: string[], issuer: IssuerRef, validityMs: number): KubeObject {
  const c = certificateSpec(t.objectName, dnsNames, issuer, validityMs);
  return { ...c, metadata: { name: t.objectName, namespace: t.ns, labels: t.labels, ownerReferences: [t.owner] } };
}

/** The controller's side of agent certificates: what to mount, and the objects behind it. */
export class AgentTls {
  private readonly now: () => number;
  private readonly validityMs: number;
  private discovered?: { at: number; served: boolean };
  /** per Certificate (`ns/name`): what was applied last (apply.ts) */
  private readonly certificatesApplied = new Map<string, AppliedRecord>();
  /** namespaces whose selfSigned Issuer was created (or found) */
  private readonly issuerMade = new Set<string>();

  constructor(private readonly o: AgentTlsOptions) {
    this.now = o.now ?? Date.now;
    this.validityMs = o.validityMs ?? DEFAULT_CERT_VALIDITY_MS;
  }

  /** Is cert-manager.io/v1 `certificates` served? (discovery, cached for discoveryTtlMs) */
  async certManagerServed(): Promise<boolean> {
    const t = this.now();
    if (this.discovered && t - this.discovered.at < (this.o.discoveryTtlMs ?? 300_000)) return this.discovered.served;
    let served: boolean;
    try {
      const list = await this.o.client.request<{ resources?: Array<{ name?: string }> }>('GET', `/apis/${CERT_MANAGER_GROUP}/v1`);
      served = (list.resources ?? []).some((r) => r.name === 'certificates');
    } catch (e) {
      if (!isNotFound(e)) throw e;
      served = false;
    }
    if (this.discovered?.served !== served) this.issuerMade.clear();
    if (this.discovered?.served !== served) this.o.logger.info({ certManager: served }, served ? 'cert-manager API found: agent certificates come from cert-manager' : 'no cert-manager API: the controller mints agent certificates');
    this.discovered = { at: t, served };
    return served;
  }

  /** Decide and prepare the certificate of one VirtualMachineBMC's agent (PerVM mode). */
  async prepare(vmbmc: VirtualMachineBMC, agentName: string): Promise<TlsPlan> {
    const mode = tlsMode(vmbmc);
    const ns = vmbmc.metadata.namespace ?? 'default';
    if (mode === 'Disabled') {
      await this.dropMinted(vmbmc, ns, agentName);
      return { mode };
    }
    if (mode === 'Secret') {
      const ref = vmbmc.spec.redfish?.tls?.secretRef?.name;
      if (!ref) return { mode, problem: { reason: Reason.InvalidSpec, message: 'spec.redfish.tls.mode is Secret but spec.redfish.tls.secretRef.name is not set' } };
      await this.dropMinted(vmbmc, ns, agentName);
      return { mode, secretName: ref };
    }
    const dnsNames = serviceDnsNames(agentName, ns, this.o.clusterDomain);
    return this.provide(vmbmcTarget(vmbmc, agentName), dnsNames);
  }

  /**
   * The one certificate of shard `k` in `ns` (shared mode): SANs `dnsNames` (every member's
   * Service names), owned by the shard's fleet ConfigMap `owner` and labelled as a shard object.
   * Re-minted when the names change (a member came or went) or at 2/3 of its life.
   */
  async prepareShard(ns: string, shard: string, labels: Record<string, string>, owner: OwnerReference, dnsNames: string[]): Promise<TlsPlan> {
    const target: CertTarget = {
      ns,
      objectName: shard,
      labels,
      owner,
      // shard objects are ours by their labels (a re-created ConfigMap has a new uid)
      mine: (o) => Object.entries(labels).every(([k, v]) => o.metadata?.labels?.[k] === v),
      what: `shard ${shard}`,
    };
    return this.provide(target, dnsNames);
  }

  /** A shard that serves no TLS (or no longer exists) keeps no minted certificate. */
  async dropShard(ns: string, shard: string, labels: Record<string, string>): Promise<void> {
    const mine = (o: KubeObject) => Object.entries(labels).every(([k, v]) => o.metadata?.labels?.[k] === v);
    const s = await getOrUndefined(this.o.client, Resources.secret, ns, mintedSecretName(shard));
    if (s && mine(s)) {
      await this.o.client.delete(Resources.secret, ns, mintedSecretName(shard)).catch((e: unknown) => {
        if (!isNotFound(e)) throw e;
      });
      this.o.logger.info({ object: `secrets/${mintedSecretName(shard)}` }, 'shard certificate removed');
    }
    // a cert-manager Certificate stays (as a per-VM agent's does when it opts out): it is owned by the
    // fleet ConfigMap, so garbage collection removes it with the shard; the controller is not granted delete on it
  }

  /** Auto: cert-manager when served, else a minted self-signed certificate. */
  private async provide(t: CertTarget, dnsNames: string[]): Promise<TlsPlan> {
    if (await this.certManagerServed()) {
      const problem = await this.ensureCertificate(t, dnsNames);
      if (problem) return { mode: 'Auto', problem };
      await this.dropMintedOf(t);
      return { mode: 'Auto', secretName: certManagerSecretName(t.objectName), certManager: true };
    }
    return this.ensureMinted(t, dnsNames);
  }

  private async dropMintedOf(t: CertTarget): Promise<void> {
    const name = mintedSecretName(t.objectName);
    const s = await getOrUndefined(this.o.client, Resources.secret, t.ns, name);
    if (!s || !t.mine(s)) return;
    await this.o.client.delete(Resources.secret, t.ns, name).catch((e: unknown) => {
      if (!isNotFound(e)) throw e;
    });
    this.o.logger.info({ object: `secrets/${name}` }, 'minted agent certificate removed');
  }

  /** The minted Secret goes when the controller no longer provides the certificate itself. */
  private async dropMinted(vmbmc: VirtualMachineBMC, ns: string, agentName: string): Promise<void> {
    const name = mintedSecretName(agentName);
    const s = await getOrUndefined(this.o.client, Resources.secret, ns, name);
    if (!s || !ownedBy(s, vmbmc.metadata.uid)) return;
    await this.o.client.delete(Resources.secret, ns, name).catch((e: unknown) => {
      if (!isNotFound(e)) throw e;
    });
    this.o.logger.info({ object: `secrets/${name}` }, 'minted agent certificate removed');
  }

  private async ensureCertificate(t: CertTarget, dnsNames: string[]): Promise<TlsPlan['problem']> {
    const { ns, objectName: agentName } = t;
    const issuer = this.o.issuer ?? { kind: 'Issuer' as const, name: SELF_SIGNED_ISSUER };
    if (!this.o.issuer && !this.issuerMade.has(ns)) {
      try {
        await this.o.client.create(IssuerResource, ns, selfSignedIssuer(ns));
        this.o.logger.info({ object: `issuers/${SELF_SIGNED_ISSUER}`, namespace: ns }, 'created');
      } catch (e) {
        if (!isConflict(e)) throw e; // there already (ours, or one the user made: either issues)
      }
      // once per namespace and controller run (a deleted Issuer comes back after a restart or a cert-manager reinstall)
      this.issuerMade.add(ns);
    }
    const desired = certificateFor(t, dnsNames, issuer, this.validityMs);
    const actual = await getOrUndefined(this.o.client, CertificateResource, ns, agentName);
    if (actual && !t.mine(actual)) return { reason: Reason.NameConflict, message: `Certificate ${agentName} exists and is not owned by this ${t.what}` };
    // Server-Side Apply as for the agent objects (apply.ts): cert-manager's defaults and status
    // are not ours; a field someone else changed is taken back
    const key = `${ns}/${agentName}`;
    if (!applyNeeded(desired, actual, this.certificatesApplied.get(key))) return undefined;
    const result = await this.o.client.apply<KubeObject>(CertificateResource, ns, agentName, desired, { fieldManager: FIELD_MANAGER, force: true });
    this.certificatesApplied.set(key, recordOf(desired, result));
    if (!actual) this.o.logger.info({ object: `certificates/${agentName}` }, 'created');
    else if (result.metadata?.resourceVersion !== actual.metadata?.resourceVersion) this.o.logger.info({ object: `certificates/${agentName}` }, 'updated');
    return undefined;
  }

  private async ensureMinted(target: CertTarget, dnsNames: string[]): Promise<TlsPlan> {
    const { ns } = target;
    const name = mintedSecretName(target.objectName);
    const t = this.now();
    const actual = await getOrUndefined(this.o.client, Resources.secret, ns, name);
    if (actual && !target.mine(actual)) {
      return { mode: 'Auto', problem: { reason: Reason.NameConflict, message: `Secret ${name} exists and is not owned by this ${target.what}` } };
    }
    const data = (actual?.data ?? {}) as Record<string, unknown>;
    const facts = actual ? inspectCertificate(unb64(data['tls.crt']), unb64(data['tls.key'])) : undefined;
    const why = !actual
      ? 'none yet'
      : !facts
        ? 'tls.crt does not parse'
        : !facts.keyMatches
          ? 'tls.key does not match tls.crt'
          : facts.dnsNames.join(',') !== dnsNames.join(',')
            ? 'its DNS names changed'
            : t >= renewalTime(facts.notBefore, facts.notAfter)
              ? 'renewal due'
              : undefined;
    if (facts?.keyMatches && actual?.metadata?.annotations?.[AnnotationTlsSource] === TLS_SOURCE_REDFISH) {
      // an Administrator's certificate (ReplaceCertificate): kept as it is, never renewed; deleting the Secret hands it back
      return { mode: 'Auto', secretName: name, minted: true };
    }
    if (!why && facts) {
      return { mode: 'Auto', secretName: name, minted: true, requeueAfterMs: Math.min(MAX_RENEW_REQUEUE_MS, renewalTime(facts.notBefore, facts.notAfter) - t) };
    }
    // whole seconds: X.509 times carry no milliseconds
    const notBefore = Math.floor(t / 1000) * 1000;
    const notAfter = notBefore + this.validityMs;
    const minted = await mintSelfSigned({ dnsNames, notBefore: new Date(notBefore), notAfter: new Date(notAfter) });
    const renewAt = renewalTime(notBefore, notAfter);
    const body: KubeObject = {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {
        name,
        namespace: ns,
        labels: target.labels,
        annotations: { [AnnotationRenewAt]: new Date(renewAt).toISOString() },
        ownerReferences: [target.owner],
        ...(actual?.metadata?.resourceVersion ? { resourceVersion: actual.metadata.resourceVersion } : {}),
      },
      type: TLS_SECRET_TYPE,
      // ca.crt: the self-signed certificate is its own trust anchor (what clients pin)
      data: { 'tls.crt': b64(minted.certPem), 'tls.key': b64(minted.keyPem), 'ca.crt': b64(minted.certPem) },
    };
    try {
      if (actual) await this.o.client.replace(Resources.secret, ns, name, body);
      else await this.o.client.create(Resources.secret, ns, body);
    } catch (e) {
      // a concurrent writer (409) or a Secret that appeared meanwhile: the retry re-reads it
      if (isConflict(e) || isKubeApiError(e, 422)) throw new Error(`agent certificate Secret ${name}: ${(e as Error).message}`);
      throw e;
    }
    this.o.logger.info({ object: `secrets/${name}`, reason: why, notAfter: new Date(notAfter).toISOString(), renewAt: new Date(renewAt).toISOString() }, actual ? 'agent certificate renewed' : 'agent certificate minted');
    return { mode: 'Auto', secretName: name, minted: true, requeueAfterMs: Math.min(MAX_RENEW_REQUEUE_MS, renewAt - t) };
  }
}
