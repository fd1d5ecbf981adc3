#!/usr/bin/env node
/**
 * `virtbmc-controller`: reconciles VirtualMachineBMC objects into a virtbmc agent (Deployment,
 * Service, ServiceAccount, RoleBinding) per VM.
 */
import { Command, Option } from 'commander';
import { pino } from 'pino';
import { stopOnSignals } from '../common/process.js';
import { createLogger } from '../common/logger.js';
import { loadKubeConfig } from '../kube/config.js';
import { startManager } from '../controller/manager.js';
import { parseIssuerRef, type IssuerRef } from '../controller/tls.js';

interface Flags {
  kubeconfig?: string;
  namespaceScope?: string;
  agentImage: string;
  agentImagePullPolicy: 'Always' | 'IfNotPresent' | 'Never';
  leaderElect?: boolean;
  leaderElectionNamespace: string;
  leaderElectionId: string;
  metricsBindAddress: string;
  healthProbeBindAddress: string;
  logLevel: string;
  workers: string;
  autoCreate: boolean;
  resyncSeconds: string;
  defaultMode: 'PerVM' | 'Shared';
  shards: string;
  agentMetricsPort?: string;
  certManagerIssuer?: string;
  agentCertValidityHours: string;
}

export function buildProgram(): Command {
  return new Command('virtbmc-controller')
    .description('Kubernetes controller for VirtualMachineBMC (bmc.kubevirt.io/v1beta1)')
    .option('--kubeconfig <path>', 'kubeconfig (default: in-cluster, then $KUBECONFIG / ~/.kube/config)')
    .option('--namespace-scope <ns>', 'watch and manage only this namespace (default: all namespaces)')
    .addOption(new Option('--agent-image <image>', 'virtbmc agent image').env('VIRTBMC_AGENT_IMAGE').makeOptionMandatory())
    .addOption(new Option('--agent-image-pull-policy <policy>', 'agent imagePullPolicy').choices(['Always', 'IfNotPresent', 'Never']).default('IfNotPresent'))
    .option('--leader-elect', 'enable leader election (one active replica)')
    .addOption(new Option('--leader-election-namespace <ns>', 'namespace of the leader Lease').env('POD_NAMESPACE').default('kubevirtbmc-system'))
    .option('--leader-election-id <name>', 'name of the leader Lease', 'virtbmc-controller-leader')
    .option('--metrics-bind-address <addr>', 'metrics endpoint ([host]:port, "0" disables)', ':8080')
    .option('--health-probe-bind-address <addr>', 'health probe endpoint ([host]:port, "0" disables)', ':8081')
    .addOption(new Option('--log-level <level>', 'log level').choices(['trace', 'debug', 'info', 'warn', 'error', 'silent']).default('info'))
    .option('--workers <n>', 'concurrent reconciles', '4')
    .option('--no-auto-create', 'do not create VirtualMachineBMCs for VMs labelled bmc.kubevirt.io/enabled=true')
    .option('--resync-seconds <s>', 'periodic full re-reconcile (0 = off)', '600')
    .addOption(
      new Option('--default-mode <mode>', 'mode of VirtualMachineBMCs without spec.mode: an agent pod each, or served by shared shard agents')
        .choices(['PerVM', 'Shared'])
        .default('PerVM'),
    )
    .option('--shards <k>', 'Shared mode: shard agents per namespace (rendezvous hashing; changing K moves only about 1/K of the BMCs)', '2')
    .option('--agent-metrics-port <port>', "agents serve Prometheus metrics on this port and their Services expose it (default: off)")
    .option(
      '--cert-manager-issuer <kind/name>',
      'agents\' Redfish certificates (tls mode Auto) from this cert-manager Issuer/<name> or ClusterIssuer/<name> when cert-manager is installed (default: a selfSigned Issuer per namespace)',
    )
    .option('--agent-cert-validity-hours <h>', 'lifetime of agent certificates (minted, or asked of cert-manager); renewed at 2/3 of it', '2160');
}

function positiveInt(v: string, flag: string, allowZero = false): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < (allowZero ? 0 : 1)) throw new UsageError(`${flag} must be a ${allowZero ? 'non-negative' : 'positive'} integer, got "${v}"`);
  return n;
}

class UsageError extends Error {}

function issuerFlag(v: string): IssuerRef {
  try {
    return parseIssuerRef(v);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

/** cert-manager accepts a duration of at least 1 h; more than 10 years is no rotation at all */
function certValidityHours(v: string): number {
  const n = positiveInt(v, '--agent-cert-validity-hours');
  if (n > 87600) throw new UsageError(`--agent-cert-validity-hours must be at most 87600 (10 years), got "${v}"`);
  return n;
}

function port(v: string, flag: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1024 || n > 10000) throw new UsageError(`${flag} must be a port in 1024-10000 (unprivileged, below the shards' IPMI ports), got "${v}"`);
  if ([6230, 8000, 8443].includes(n)) throw new UsageError(`${flag} ${n} is an agent port already (IPMI 6230, Redfish 8000/8443)`);
  return n;
}

async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  program.parse(argv);
  const f = program.opts<Flags>();
  if (!f.agentImage || !f.agentImage.trim()) throw new UsageError('--agent-image (or VIRTBMC_AGENT_IMAGE) must name the agent image');
  const tls = {
    ...(f.certManagerIssuer ? { certManagerIssuer: issuerFlag(f.certManagerIssuer) } : {}),
    validityMs: certValidityHours(f.agentCertValidityHours) * 3600_000,
  };
  const logger = createLogger(f.logLevel as pino.LevelWithSilent, pino.destination(2));
  const kc = loadKubeConfig(f.kubeconfig);

  const manager = await startManager({
    kc,
    logger,
    agent: {
      image: f.agentImage,
      imagePullPolicy: f.agentImagePullPolicy,
      ...(f.agentMetricsPort !== undefined ? { metricsPort: port(f.agentMetricsPort, '--agent-metrics-port') } : {}),
    },
    ...(f.namespaceScope ? { namespace: f.namespaceScope } : {}),
    workers: positiveInt(f.workers, '--workers'),
    resyncMs: positiveInt(f.resyncSeconds, '--resync-seconds', true) * 1000,
    autoCreate: f.autoCreate,
    defaultMode: f.defaultMode,
    shards: positiveInt(f.shards, '--shards'),
    tls,
    leaderElect: Boolean(f.leaderElect),
    leaderElectionNamespace: f.leaderElectionNamespace,
    leaseName: f.leaderElectionId,
    metricsBindAddress: f.metricsBindAddress,
    healthProbeBindAddress: f.healthProbeBindAddress,
    processMetrics: true,
  });
  logger.info(
    { identity: manager.identity, metrics: manager.metricsEndpoint?.url, health: manager.healthEndpoint?.url, leaderElect: Boolean(f.leaderElect) },
    'virtbmc-controller started',
  );

  stopOnSignals(logger, () => manager.stop(), 15_000);
}

main(process.argv).catch((e: unknown) => {
  if (e instanceof UsageError) {
    process.stderr.write(`virtbmc-controller: ${e.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`virtbmc-controller: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
