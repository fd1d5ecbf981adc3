/**
 * The agent pod, one builder for both shapes: the per-VM agent Deployment (reconcile.ts
 * desiredObjects) and the shard agent Deployment (shard.ts desiredShardObjects). What is the same
 * for every agent lives here (security contexts, probes, the writable /tmp, the metrics flags, the
 * Deployment around the template); what differs comes in as options: labels and annotations of
 * the pod, its ServiceAccount, the command line, environment and ports, the Redfish scheme the
 * readiness probe uses, the resources, and extra volumes (TLS, media CA).
 */
import type { KubeObject } from '../kube/types.js';

export type PullPolicy = 'Always' | 'IfNotPresent' | 'Never';

export interface AgentResources {
  requests: { cpu: string; memory: string };
  limits: { cpu: string; memory: string };
}

/** An agent serving one VM. */
export const PER_VM_RESOURCES: AgentResources = { requests: { cpu: '10m', memory: '64Mi' }, limits: { cpu: '500m', memory: '256Mi' } };
/** An agent serving a shard's VMs (docs/scale.md: up to about 1,000 systems per process). */
export const SHARD_RESOURCES: AgentResources = { requests: { cpu: '50m', memory: '128Mi' }, limits: { cpu: '1', memory: '512Mi' } };

/**
 * V8 flags of a per-VM agent, in its NODE_OPTIONS: a semi-space of at most 2 MB caps the young
 * generation that otherwise grows to 16 MB per semi-space under sustained Redfish load (docs/scale.md
 * "Memory after load"), for a few more scavenges. Measured by bench/scale-agent.ts against node's
 * defaults in the same run.
 */
export const AGENT_NODE_OPTIONS = '--max-semi-space-size=2';

export interface AgentVolume {
  volume: Record<string, unknown>;
  mount: Record<string, unknown>;
}

export interface AgentPodOptions {
  /** the pod's ServiceAccount (each agent has its own: per VM, or per shard) */
  serviceAccountName: string;
  labels: Record<string, string>;
  annotations?: Record<string, string>;
  image: string;
  imagePullPolicy?: PullPolicy;
  /** the `virtbmc` command line, without the metrics flags */
  args: readonly string[];
  env: readonly unknown[];
  /** container ports, without the metrics port; one of them must be named `redfish` (the probes use it) */
  ports: readonly unknown[];
  redfishScheme: 'HTTP' | 'HTTPS';
  resources: AgentResources;
  /** agents serve Prometheus metrics on this port (all interfaces); undefined = off */
  metricsPort?: number;
  /** volumes beyond the writable /tmp */
  volumes?: readonly AgentVolume[];
}

/** The pod template of an agent. */
export function agentPodTemplate(o: AgentPodOptions): Record<string, unknown> {
  const args = [...o.args];
  const ports = [...o.ports];
  if (o.metricsPort !== undefined) {
    args.push('--metrics-port', String(o.metricsPort), '--metrics-address', '0.0.0.0');
    ports.push({ name: 'metrics', containerPort: o.metricsPort, protocol: 'TCP' });
  }
  const extra = o.volumes ?? [];
  const annotations = o.annotations && Object.keys(o.annotations).length > 0 ? o.annotations : undefined;
  return {
    metadata: { labels: o.labels, ...(annotations ? { annotations } : {}) },
    spec: {
      serviceAccountName: o.serviceAccountName,
      automountServiceAccountToken: true,
      enableServiceLinks: false,
      securityContext: { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } },
      containers: [
        {
          name: 'virtbmc',
          image: o.image,
          imagePullPolicy: o.imagePullPolicy ?? 'IfNotPresent',
          args,
          env: [...o.env],
          ports,
          readinessProbe: { httpGet: { path: '/redfish/v1', port: 'redfish', scheme: o.redfishScheme }, periodSeconds: 10 },
          livenessProbe: { tcpSocket: { port: 'redfish' }, initialDelaySeconds: 10, periodSeconds: 20 },
          resources: o.resources,
          securityContext: {
            allowPrivilegeEscalation: false,
            readOnlyRootFilesystem: true,
            runAsNonRoot: true,
            capabilities: { drop: ['ALL'] },
            seccompProfile: { type: 'RuntimeDefault' },
          },
          volumeMounts: [{ name: 'tmp', mountPath: '/tmp' }, ...extra.map((v) => v.mount)],
        },
      ],
      volumes: [{ name: 'tmp', emptyDir: {} }, ...extra.map((v) => v.volume)],
    },
  };
}

/**
 * An agent Deployment: one replica at most (IPMI sessions and the SOL console live in the
 * process), Recreate so two agents never serve one VM at once, two old ReplicaSets kept.
 */
export function agentDeployment(metadata: Record<string, unknown>, replicas: 0 | 1, selector: Record<string, string>, pod: AgentPodOptions): KubeObject {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata,
    spec: {
      replicas,
      revisionHistoryLimit: 2,
      strategy: { type: 'Recreate' },
      selector: { matchLabels: selector },
      template: agentPodTemplate(pod),
    },
  };
}
