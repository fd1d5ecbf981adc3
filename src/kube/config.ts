/** Where the agent and the controller get their cluster credentials from. */
import { existsSync } from 'node:fs';
import { KubeConfig } from '@kubernetes/client-node';

const SA_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

/**
 * An explicit kubeconfig file wins; otherwise the in-cluster service account when running in a
 * pod, and $KUBECONFIG / ~/.kube/config when not.
 */
export function loadKubeConfig(path?: string): KubeConfig {
  const kc = new KubeConfig();
  if (path) kc.loadFromFile(path);
  else if (process.env.KUBERNETES_SERVICE_HOST && existsSync(SA_TOKEN)) kc.loadFromCluster();
  else kc.loadFromDefault();
  return kc;
}
