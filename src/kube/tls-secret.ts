/**
 * The agent's side of a controller-minted certificate Secret (src/controller/tls.ts): a
 * certificate an Administrator installs through Redfish CertificateService.ReplaceCertificate is
 * written into the kubernetes.io/tls Secret the agent's HTTPS files are mounted from, so it
 * outlives the pod; the annotation tells the controller to keep it (no re-minting, no renewal)
 * until the Secret is deleted. Read and rewritten by name, with the resourceVersion it was read at
 * (a concurrent rotation by the controller makes the write fail with 409 rather than be lost).
 */
import type { KubeClient } from './client.js';
import { Resources } from './resources.js';
import type { KubeObject } from './types.js';

/** On the certificate Secret: `redfish` when the pair came from ReplaceCertificate (the controller keeps it). */
export const AnnotationTlsSource = 'bmc.kubevirt.io/tls-source';
export const TLS_SOURCE_REDFISH = 'redfish';

export class TlsSecretStore {
  constructor(
    private readonly client: KubeClient,
    private readonly namespace: string,
    private readonly name: string,
  ) {}

  async save(certPem: string, keyPem: string): Promise<void> {
    const cur = await this.client.get<KubeObject>(Resources.secret, this.namespace, this.name);
    const data = { ...((cur.data ?? {}) as Record<string, string>) };
    data['tls.crt'] = Buffer.from(certPem).toString('base64');
    data['tls.key'] = Buffer.from(keyPem).toString('base64');
    // the replaced certificate is not its own trust anchor in general (it may be CA-signed)
    delete data['ca.crt'];
    const metadata = { ...(cur.metadata ?? {}), annotations: { ...(cur.metadata?.annotations ?? {}), [AnnotationTlsSource]: TLS_SOURCE_REDFISH } };
    await this.client.replace(Resources.secret, this.namespace, this.name, { ...cur, metadata, data });
  }
}
