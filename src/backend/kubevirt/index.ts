/**
 * The KubeVirt backend: a Machine over one VirtualMachine, through the Kubernetes API.
 * See docs/kubevirt.md for how BMC operations map onto KubeVirt and CDI calls.
 */
import { existsSync } from 'node:fs';
import { KubeConfig } from '@kubernetes/client-node';
import type { Machine } from '../types.js';
import type { Logger } from '../../common/logger.js';
import { KubeClient } from '../../kube/client.js';
import { KubeVirtMachine } from './machine.js';

export { KubeVirtMachine, type KubeVirtMachineConfig } from './machine.js';
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
  /** Timeout of the HEAD request that sizes a virtual media image (ms), default 10000 */
  mediaProbeTimeoutMs?: number;
}

const SA_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

export function loadKubeConfig(path?: string): KubeConfig {
  const kc = new KubeConfig();
  if (path) kc.loadFromFile(path);
  else if (process.env.KUBERNETES_SERVICE_HOST && existsSync(SA_TOKEN)) kc.loadFromCluster();
  else kc.loadFromDefault();
  return kc;
}

export async function createKubeVirtMachine(opts: KubeVirtMachineOptions): Promise<Machine> {
  const kc = opts.kubeConfig ?? loadKubeConfig(opts.kubeconfig);
  const client = new KubeClient(kc, { logger: opts.logger, ...(opts.requestTimeoutMs !== undefined ? { timeoutMs: opts.requestTimeoutMs } : {}) });
  const machine = new KubeVirtMachine({
    client,
    namespace: opts.namespace,
    name: opts.name,
    logger: opts.logger,
    ...(opts.storageClassName ? { storageClassName: opts.storageClassName } : {}),
    ...(opts.volumeMode ? { volumeMode: opts.volumeMode } : {}),
    ...(opts.watchMinBackoffMs !== undefined ? { watchMinBackoffMs: opts.watchMinBackoffMs } : {}),
    ...(opts.watchMaxBackoffMs !== undefined ? { watchMaxBackoffMs: opts.watchMaxBackoffMs } : {}),
    ...(opts.mediaProbeTimeoutMs !== undefined ? { mediaProbeTimeoutMs: opts.mediaProbeTimeoutMs } : {}),
  });
  await machine.start(opts.syncTimeoutMs ?? 5_000);
  return machine;
}
