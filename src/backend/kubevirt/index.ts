// PLACEHOLDER — the KubeVirt backend helper replaces this file. Signature used by src/cmd/virtbmc.ts.
import type { Machine } from '../types.js';
import type { Logger } from '../../common/logger.js';

export interface KubeVirtMachineOptions {
  namespace: string;
  name: string;
  logger: Logger;
  /** Path to a kubeconfig; default: in-cluster config, then $KUBECONFIG / ~/.kube/config */
  kubeconfig?: string;
  storageClassName?: string;
  volumeMode?: 'Filesystem' | 'Block';
}

export async function createKubeVirtMachine(_opts: KubeVirtMachineOptions): Promise<Machine> {
  throw new Error('KubeVirt backend not implemented yet');
}
