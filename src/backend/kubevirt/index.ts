/**
 * The KubeVirt backend: a Machine over one VirtualMachine, through the Kubernetes API.
 * See docs/kubevirt.md for how BMC operations map onto KubeVirt and CDI calls.
 */
import type { EgressPolicy } from '../egress.js';
import { accessSync, constants } from 'node:fs';
import type { KubeConfig } from '@kubernetes/client-node';
import type { Machine } from '../types.js';
import type { Logger } from '../../common/logger.js';
import { KubeClient } from '../../kube/client.js';
import { loadKubeConfig } from '../../kube/config.js';
import { KubeVirtMachine } from './machine.js';
import type { MediaTlsOptions } from './media.js';

export { KubeVirtMachine, type KubeVirtMachineConfig } from './machine.js';
export { resolveMediaTls, type MediaTlsOptions } from './media.js';
export { KubeClient } from '../../kube/client.js';

export interface KubeVirtMachineOptions {
  namespace: string;
  name: string;
  logger: Logger;
  /** Path to a kubeconfig; default: in-cluster config, then $KUBECONFIG / ~/.kube/config */
  kubeconfig?: string;
  /** A ready KubeConfig (tests); wins over `kubeconfig` */
  kubeConfig?: KubeConfig;
  storageClassName?: string;
  volumeMode?: 'Filesystem' | 'Block';
  /** Per-request timeout against the API server (ms), default 10000 */
  requestTimeoutMs?: number;
  /** How long creation waits for the first watch lists (ms), default 5000; the agent starts anyway */
  syncTimeoutMs?: number;
  /** Watch retry backoff bounds (ms), defaults 200 / 10000 */
  watchMinBackoffMs?: number;
  watchMaxBackoffMs?: number;
  /** Silent-watch bounds (ms): check the server after 30000 without event or bookmark, re-open after 90000 (docs/kubevirt.md) */
  watchSilenceProbeMs?: number;
  watchMaxSilenceMs?: number;
  /** While the API is unreachable: probe it this often (ms), default 1000; requests fail fast meanwhile */
  apiProbeIntervalMs?: number;
  /** Timeout of the HEAD request that sizes a virtual media image (ms), default 10000 */
  mediaProbeTimeoutMs?: number;
  /** TLS of https virtual media servers (see docs/kubevirt.md) */
  mediaTls?: MediaTlsOptions;
  /** Where image URLs may point (src/backend/egress.ts); default EgressPolicy.DEFAULT (no loopback, link-local, metadata) */
  mediaEgress?: EgressPolicy;
  /** How long a running VM may take to pick up an inserted CD before the slot reports an error (ms), default 30000 */
  hotplugSyncTimeoutMs?: number;
  /** When the first sweep of volume DataVolumes left by unfinished creates runs after start (ms), default 5 minutes */
  volumeSweepDelayMs?: number;
  /** The wall clock the volume orphan grace is measured on (tests); default Date.now */
  clock?: () => number;
}

export async function createKubeVirtMachine(opts: KubeVirtMachineOptions): Promise<Machine> {
  const kc = opts.kubeConfig ?? loadKubeConfig(opts.kubeconfig);
  const client = new KubeClient(kc, {
    logger: opts.logger,
    // an API server known to be down fails requests at once (503 / 0xFF) instead of after the timeout
    failFast: true,
    ...(opts.requestTimeoutMs !== undefined ? { timeoutMs: opts.requestTimeoutMs } : {}),
    ...(opts.apiProbeIntervalMs !== undefined ? { probeIntervalMs: opts.apiProbeIntervalMs } : {}),
  });
  const machine = new KubeVirtMachine({
    client,
    namespace: opts.namespace,
    name: opts.name,
    logger: opts.logger,
    ...(opts.storageClassName ? { storageClassName: opts.storageClassName } : {}),
    ...(opts.volumeMode ? { volumeMode: opts.volumeMode } : {}),
    ...(opts.watchMinBackoffMs !== undefined ? { watchMinBackoffMs: opts.watchMinBackoffMs } : {}),
    ...(opts.watchMaxBackoffMs !== undefined ? { watchMaxBackoffMs: opts.watchMaxBackoffMs } : {}),
    ...(opts.watchSilenceProbeMs !== undefined ? { watchSilenceProbeMs: opts.watchSilenceProbeMs } : {}),
    ...(opts.watchMaxSilenceMs !== undefined ? { watchMaxSilenceMs: opts.watchMaxSilenceMs } : {}),
    ...(opts.mediaProbeTimeoutMs !== undefined ? { mediaProbeTimeoutMs: opts.mediaProbeTimeoutMs } : {}),
    ...(opts.mediaTls ? { mediaTls: opts.mediaTls } : {}),
    ...(opts.mediaEgress ? { mediaEgress: opts.mediaEgress } : {}),
    ...(opts.hotplugSyncTimeoutMs !== undefined ? { hotplugSyncTimeoutMs: opts.hotplugSyncTimeoutMs } : {}),
    ...(opts.volumeSweepDelayMs !== undefined ? { volumeSweepDelayMs: opts.volumeSweepDelayMs } : {}),
    ...(opts.clock ? { clock: opts.clock } : {}),
  });
  const caFile = opts.mediaTls?.caFile;
  if (caFile) {
    try {
      accessSync(caFile, constants.R_OK);
    } catch (e) {
      // not fatal: power and boot control work without it; an https media insert reports it
      opts.logger.warn({ caFile, err: e instanceof Error ? e.message : String(e) }, 'the media CA file is not readable');
    }
  }
  if (opts.mediaTls?.insecureSkipVerify && !opts.mediaTls.caConfigMap) {
    opts.logger.warn(
      'media TLS verification is skipped only for the agent\'s own HEAD request; CDI still verifies https image servers (name a CA ConfigMap for it)',
    );
  }
  await machine.start(opts.syncTimeoutMs ?? 5_000);
  return machine;
}
