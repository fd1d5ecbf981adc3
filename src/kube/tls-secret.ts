/**
 * The agent's side of a controller-minted certificate Secret (src/controller/tls.ts): a
 * certificate an Administrator installs through Redfish CertificateService.ReplaceCertificate is
 * written into the kubernetes.io/tls Secret the agent's HTTPS files are mounted from, so it
 * outlives the pod; the annotation tells the controller to keep it (no re-minting, no renewal)
 * until the Secret is deleted. Read and rewritten by name, with the resourceVersion it was read at
 * (a concurrent rotation by the controller makes the write fail with 409 rather than be lost).
 * A GenerateCSR key waiting for its certificate is kept in the same Secret (`csr-pending.key`), so a
 * restarted agent can still install the certificate a CA signs for it.
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

  /** Key of the Secret's data holding a GenerateCSR key that waits for its certificate */
  static readonly PENDING_KEY = 'csr-pending.key';

  /** The Secret as it is now, and a copy of its data to change and write back with it (replace). */
  private async read(): Promise<{ cur: KubeObject; data: Record<string, string> }> {
    const cur = await this.client.get<KubeObject>(Resources.secret, this.namespace, this.name);
    return { cur, data: { ...((cur.data ?? {}) as Record<string, string>) } };
  }

  async savePendingKey(keyPem: string | undefined): Promise<void> {
    const { cur, data } = await this.read();
    if (keyPem === undefined) {
      if (!(TlsSecretStore.PENDING_KEY in data)) return;
      delete data[TlsSecretStore.PENDING_KEY];
    } else data[TlsSecretStore.PENDING_KEY] = Buffer.from(keyPem).toString('base64');
    await this.client.replace(Resources.secret, this.namespace, this.name, { ...cur, data });
  }

  async loadPendingKey(): Promise<string | undefined> {
    const v = (await this.read()).data[TlsSecretStore.PENDING_KEY];
    return v === undefined ? undefined : Buffer.from(v, 'base64').toString('utf8');
  }

  async save(certPem: string, keyPem: string): Promise<void> {
    const { cur, data } = await this.read();
    data['tls.crt'] = Buffer.from(certPem).toString('base64');
    data['tls.key'] = Buffer.from(keyPem).toString('base64');
    // the replaced certificate is not its own trust anchor in general (it may be CA-signed)
    delete data['ca.crt'];
    const metadata = { ...(cur.metadata ?? {}), annotations: { ...(cur.metadata?.annotations ?? {}), [AnnotationTlsSource]: TLS_SOURCE_REDFISH } };
    await this.client.replace(Resources.secret, this.namespace, this.name, { ...cur, metadata, data });
  }
}
