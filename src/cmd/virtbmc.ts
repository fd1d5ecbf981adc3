#!/usr/bin/env node
/**
 * `virtbmc`: the BMC agent for one VM. With no VM named (or with --simulate) it serves an in-memory
 * simulated VM; with `<namespace> <vm-name>` it controls a KubeVirt VirtualMachine.
 */
import { accountsFileWriter, readAccountsFile } from '../accounts/file.js';
import { AccountStore } from '../accounts/store.js';
import { pohFile, type PohPersistence } from '../ipmi/commands/poh.js';
import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import { Command, Option } from 'commander';
import { startAgent } from '../agent/agent.js';
import { warmBodyParser } from '../redfish/app.js';
import type { EventHub } from '../events/hub.js';
import type { StartEventsOptions } from '../events/index.js';
import { NetworkModel } from '../common/network.js';
import {
  ConfigError,
  IPMI_SESSION_TIMEOUT_RANGE,
  REDFISH_SESSION_TIMEOUT_RANGE,
  parseIntInRange,
  parseLockoutPolicy,
  parseNonNegative,
  parsePort,
  parsePositiveInt,
  resolveUsers,
  scrubbedCommandLine,
} from '../agent/config.js';
import { DEFAULT_LOCKOUT_POLICY } from '../accounts/lockout.js';
import { SimulatedMachine } from '../backend/simulator/simulator.js';
import { EgressPolicy } from '../backend/egress.js';
import type { Machine } from '../backend/types.js';
import type { MediaTlsOptions } from '../backend/kubevirt/index.js';
import type { UserAccount } from '../agent/types.js';
import type { SharedAgentOptions } from '../agent/shared.js';
import { stopOnSignals } from '../common/process.js';
import { createLogger } from '../common/logger.js';
import { pino } from 'pino';

interface Flags {
  simulate?: boolean;
  address?: string;
  ipmiPort: string;
  redfishPort: string;
  ipmi: boolean;
  redfish: boolean;
  username?: string;
  password?: string;
  passwordFile?: string;
  usersFile?: string;
  accountLockoutThreshold: string;
  accountLockoutDuration: string;
  accountLockoutResetAfter: string;
  logLevel: string;
  kubeconfig?: string;
  ipmiAllowInsecure?: boolean;
  ipmiSessionTimeout: string;
  ipmiMaxSessions: string;
  ipmiSol: boolean;
  tlsCert?: string;
  tlsKey?: string;
  plainHttp: 'redirect' | 'refuse';
  httpsRedirectPort?: string;
  tlsSecret?: string;
  tlsReloadSeconds: string;
  redfishSessionTimeout: string;
  simName: string;
  metricsPort?: string;
  metricsAddress: string;
  eventsStateFile?: string;
  accountsFile?: string;
  accountsSecret?: string;
  pohFile?: string;
  simPower: 'on' | 'off';
  simPowerOnDelay: string;
  simPowerOffDelay: string;
  simMediaDelay: string;
  simNoAcpi?: boolean;
  storageClass?: string;
  volumeMode?: 'Filesystem' | 'Block';
  mediaInsecureSkipVerify?: boolean;
  mediaCaConfigmap?: string;
  mediaCaFile?: string;
  mediaAllow: string[];
  mediaDeny: string[];
  fqdn?: string;
  simulateFleet?: string;
  fleetFile?: string;
  fleetConfigmap?: string;
  fleetIpmiBase: string;
}

export function buildProgram(): Command {
  return new Command('virtbmc')
    .description('IPMI and Redfish BMC for a KubeVirt virtual machine (or a simulated one)')
    .argument('[namespace]', 'namespace of the VirtualMachine (KubeVirt mode)')
    .argument('[vm-name]', 'name of the VirtualMachine (KubeVirt mode)')
    .option('--simulate', 'serve an in-memory simulated VM (the default when no VM is named)')
    .option('--address <addr>', 'listen address (default: 127.0.0.1 when simulating, 0.0.0.0 otherwise)')
    .option('--ipmi-port <port>', 'IPMI over LAN UDP port', '623')
    .option('--redfish-port <port>', 'Redfish HTTP(S) port', '80')
    .option('--no-ipmi', 'do not serve IPMI')
    .option('--no-redfish', 'do not serve Redfish')
    .option('--username <name>', 'BMC user name (env BMC_USERNAME; default admin)')
    .option('--password-file <path>', 'file holding the BMC password (or env BMC_PASSWORD; one of them is required)')
    .option('--password <password>', 'BMC password on the command line: visible in ps and /proc/<pid>/cmdline, prefer --password-file or BMC_PASSWORD')
    .option('--users-file <path>', 'YAML list of extra users: [{username, password, role: Administrator|Operator|ReadOnly}]')
    .addOption(
      new Option('--log-level <level>', 'log level').choices(['trace', 'debug', 'info', 'warn', 'error', 'silent']).default('info'),
    )
    .option('--kubeconfig <path>', 'kubeconfig (KubeVirt mode; default: in-cluster, then $KUBECONFIG)')
    .option(
      '--ipmi-allow-insecure',
      'allow IPMI cipher suite 0, and IPMI 1.5 auth types NONE (unauthenticated) and straight password (the password in clear in every packet); off by default',
    )
    .option(
      '--account-lockout-threshold <n>',
      'failed logins of one account from one source address that lock that pair, IPMI and Redfish alike (0 = never; Redfish AccountLockoutThreshold)',
      String(DEFAULT_LOCKOUT_POLICY.threshold),
    )
    .option('--account-lockout-duration <seconds>', 'how long a lockout lasts (AccountLockoutDuration)', String(DEFAULT_LOCKOUT_POLICY.durationSeconds))
    .option(
      '--account-lockout-reset-after <seconds>',
      'seconds after the last failure at which the failure count restarts, at most the duration (AccountLockoutCounterResetAfter)',
      String(DEFAULT_LOCKOUT_POLICY.counterResetAfterSeconds),
    )
    .option('--ipmi-session-timeout <seconds>', 'IPMI idle session timeout, 1..86400', '60')
    .option('--ipmi-max-sessions <n>', 'maximum concurrent IPMI sessions', '32')
    .option('--no-ipmi-sol', 'do not serve IPMI Serial-over-LAN (the VM serial console; on by default)')
    .option('--tls-cert <path>', 'serve Redfish over HTTPS with this certificate (PEM)')
    .option('--tls-key <path>', 'private key for --tls-cert (PEM)')
    .addOption(
      new Option('--plain-http <mode>', 'with TLS: what plain HTTP on the Redfish port does')
        .choices(['redirect', 'refuse'])
        .default('redirect'),
    )
    .option('--https-redirect-port <port>', 'with TLS: the HTTPS port the redirect of plain HTTP names (e.g. a Service\'s 443 in front of the pod; default: the Redfish port)')
    .option('--tls-secret <name>', 'KubeVirt mode, with TLS: the kubernetes.io/tls Secret (VM namespace) the --tls-cert/--tls-key mount comes from; ReplaceCertificate writes the new pair there')
    .option('--tls-reload-seconds <s>', 'with TLS: re-read --tls-cert/--tls-key this often and serve a renewed pair without a restart (0 = never)', '60')
    .option('--redfish-session-timeout <seconds>', 'Redfish session idle timeout, 30..86400 (as SessionService PATCH)', '1800')
    .option('--sim-name <name>', 'simulated VM name', 'sim-vm')
    .option('--metrics-port <port>', 'serve Prometheus metrics on this TCP port (GET /metrics; off unless given)')
    .option('--metrics-address <addr>', 'listen address of the metrics port', '127.0.0.1')
    .option('--accounts-file <path>', 'simulator: keep the user accounts (Redfish AccountService, IPMI users) in this file, mode 0600, across restarts; created from the configured users when missing (default: memory)')
    .option('--accounts-secret <name>', 'KubeVirt mode: keep the user accounts in this Secret of the VM\'s namespace (key virtbmc-accounts; the controller passes the VirtualMachineBMC\'s auth Secret as VIRTBMC_ACCOUNTS_SECRET) (default: memory)')
    .option('--poh-file <path>', 'simulator: keep the power-on hours (IPMI Get POH Counter) in this file across restarts (default: memory)')
    .option('--events-state-file <path>', 'simulator: keep Redfish event subscriptions in this file across restarts (default: memory; KubeVirt mode keeps them in the <vm>-virtbmc-events ConfigMap)')
    .addOption(new Option('--sim-power <state>', 'simulated VM initial power').choices(['on', 'off']).default('off'))
    .option('--sim-power-on-delay <ms>', 'time the simulated VM spends powering on', '1000')
    .option('--sim-power-off-delay <ms>', 'time the simulated VM spends shutting down', '1000')
    .option('--sim-media-delay <ms>', 'time a simulated virtual media insert takes', '500')
    .option('--sim-no-acpi', 'the simulated guest ignores ACPI (graceful shutdown does nothing)')
    .option('--storage-class <name>', 'KubeVirt mode: storage class for the DataVolumes of virtual media and Redfish volumes')
    .addOption(new Option('--volume-mode <mode>', 'KubeVirt mode: volume mode for the DataVolumes of virtual media and Redfish volumes').choices(['Filesystem', 'Block']))
    .option(
      '--media-insecure-skip-verify',
      "KubeVirt mode: the agent's HEAD request to an https image URL does not verify the certificate; CDI's import still does (env VIRTBMC_MEDIA_INSECURE_SKIP_VERIFY)",
    )
    .option(
      '--media-ca-configmap <name>',
      'KubeVirt mode: ConfigMap with the CA bundle CDI trusts for image imports, set as the DataVolume certConfigMap (env VIRTBMC_MEDIA_CA_CONFIGMAP)',
    )
    .addOption(
      new Option('--fqdn <name>', "the agent's fully qualified DNS name (Redfish FQDN); the controller sets its Service's name").env('VIRTBMC_FQDN'),
    )
    .addOption(
      new Option(
        '--media-allow <rules>',
        'image URLs may reach these addresses although the default refuses them: comma-separated CIDRs (127.0.0.0/8) and host patterns (iso.example.com, *.example.com); repeatable (env VIRTBMC_MEDIA_ALLOW)',
      )
        .argParser(collectRules)
        .default([]),
    )
    .addOption(
      new Option(
        '--media-deny <rules>',
        'image URLs may never reach these: comma-separated CIDRs and host patterns; deny wins over allow; repeatable (env VIRTBMC_MEDIA_DENY)',
      )
        .argParser(collectRules)
        .default([]),
    )
    .option('--simulate-fleet <n>', 'shared mode: serve N simulated VMs (ids sim.vm-0001..., user admin, password <password>-vm-0001...) on one Redfish port')
    .option('--fleet-file <path>', 'shared mode: serve the systems of this fleet document (JSON, docs/scale.md), re-read when it changes')
    .option('--fleet-configmap <namespace/name>', 'shared mode, KubeVirt: the fleet document in this ConfigMap (key fleet.json), watched')
    .option('--fleet-ipmi-base <port>', 'with --simulate-fleet: IPMI UDP port of the first VM, the next ones follow (0 = no IPMI)', '0')
    .option(
      '--media-ca-file <path>',
      "KubeVirt mode: PEM CA bundle the agent's HEAD request to an https image URL trusts (env VIRTBMC_MEDIA_CA_FILE)",
    );
}

/** Repeatable, comma-separated rule lists (--media-allow a,b --media-allow c) */
function collectRules(value: string, previous: string[]): string[] {
  return [...previous, ...value.split(',').map((r) => r.trim()).filter((r) => r !== '')];
}

/** The media egress policy from the flags and VIRTBMC_MEDIA_ALLOW / VIRTBMC_MEDIA_DENY (comma-separated) */
function resolveMediaEgress(flags: { mediaAllow: readonly string[]; mediaDeny: readonly string[] }, env: NodeJS.ProcessEnv): EgressPolicy {
  const fromEnv = (v: string | undefined) => (v ?? '').split(',').map((r) => r.trim()).filter((r) => r !== '');
  try {
    return new EgressPolicy({
      allow: [...flags.mediaAllow, ...fromEnv(env['VIRTBMC_MEDIA_ALLOW'])],
      deny: [...flags.mediaDeny, ...fromEnv(env['VIRTBMC_MEDIA_DENY'])],
    });
  } catch (e) {
    throw new ConfigError((e as Error).message);
  }
}

/** The image server TLS of InsertMedia from the flags and VIRTBMC_MEDIA_CA_* (both KubeVirt modes; loads the KubeVirt backend) */
async function mediaTlsFromFlags(flags: Flags): Promise<MediaTlsOptions> {
  const { resolveMediaTls } = await import('../backend/kubevirt/index.js');
  try {
    return resolveMediaTls(
      {
        ...(flags.mediaInsecureSkipVerify ? { insecureSkipVerify: true } : {}),
        ...(flags.mediaCaConfigmap ? { caConfigMap: flags.mediaCaConfigmap } : {}),
        ...(flags.mediaCaFile ? { caFile: flags.mediaCaFile } : {}),
      },
      process.env,
    );
  } catch (e) {
    throw new ConfigError((e as Error).message);
  }
}

async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  program.parse(argv);
  const flags = program.opts<Flags>();
  const [namespace, vmName] = program.args as [string?, string?];
  const kubevirtMode = !flags.simulate && namespace !== undefined;
  if (kubevirtMode && vmName === undefined) throw new ConfigError('KubeVirt mode needs both <namespace> and <vm-name>');
  if (Boolean(flags.tlsCert) !== Boolean(flags.tlsKey)) throw new ConfigError('--tls-cert and --tls-key go together');
  if (flags.tlsSecret && flags.fleetConfigmap !== undefined) throw new ConfigError('--tls-secret is per-VM only: a shared agent\'s certificate is not replaceable over Redfish');
  if (flags.tlsSecret && (!flags.tlsCert || !kubevirtMode)) throw new ConfigError('--tls-secret needs --tls-cert/--tls-key and KubeVirt mode');

  // Logs go to stderr as JSON; stdout carries the ready line (and nothing else).
  const logger = createLogger(flags.logLevel as pino.LevelWithSilent, pino.destination(2));
  const lockoutPolicy = parseLockoutPolicy({
    threshold: flags.accountLockoutThreshold,
    duration: flags.accountLockoutDuration,
    resetAfter: flags.accountLockoutResetAfter,
  });
  if (flags.fleetConfigmap !== undefined) {
    // the shard agent: every system's accounts come from its Secret, none from flags or env
    if (namespace !== undefined) throw new ConfigError('--fleet-configmap takes no <namespace> <vm-name>: the fleet ConfigMap names the VMs');
    return mainShared(flags, logger, flags.address ?? '0.0.0.0', [], lockoutPolicy, true);
  }
  const users = resolveUsers({
    flagUsername: flags.username,
    flagPassword: flags.password,
    passwordFile: flags.passwordFile,
    env: process.env,
    usersFile: flags.usersFile,
  });
  if (flags.password !== undefined) {
    // Overwrite our command line (Linux: process.title rewrites the argv area that ps and
    // /proc/<pid>/cmdline show); it was visible until now, and stays visible to whatever copied it.
    process.title = scrubbedCommandLine(process.argv);
    logger.warn('--password puts the password where every local user can read it (ps, /proc/<pid>/cmdline): use --password-file or BMC_PASSWORD');
  }
  const address = flags.address ?? (kubevirtMode ? '0.0.0.0' : '127.0.0.1');
  if (flags.simulateFleet !== undefined || flags.fleetFile !== undefined || flags.fleetConfigmap !== undefined) {
    return mainShared(flags, logger, address, users, lockoutPolicy, kubevirtMode);
  }

  const mediaEgress = resolveMediaEgress(flags, process.env);
  let machine: Machine;
  if (kubevirtMode) {
    const { createKubeVirtMachine } = await import('../backend/kubevirt/index.js');
    const mediaTls = await mediaTlsFromFlags(flags);
    machine = await createKubeVirtMachine({
      namespace: namespace!,
      name: vmName!,
      logger: logger.child({ backend: 'kubevirt' }),
      ...(flags.kubeconfig ? { kubeconfig: flags.kubeconfig } : {}),
      ...(flags.storageClass ? { storageClassName: flags.storageClass } : {}),
      ...(flags.volumeMode ? { volumeMode: flags.volumeMode } : {}),
      mediaTls,
      mediaEgress,
    });
  } else {
    machine = new SimulatedMachine({
      name: flags.simName,
      initialPower: flags.simPower === 'on' ? 'On' : 'Off',
      powerOnDelayMs: parseNonNegative(flags.simPowerOnDelay, '--sim-power-on-delay'),
      powerOffDelayMs: parseNonNegative(flags.simPowerOffDelay, '--sim-power-off-delay'),
      mediaInsertDelayMs: parseNonNegative(flags.simMediaDelay, '--sim-media-delay'),
      acpiListening: !flags.simNoAcpi,
      mediaProbe: { egress: mediaEgress },
    });
  }

  // The agent's own network identity, one model for IPMI LAN configuration and Redfish
  // EthernetInterfaces: the interface of the listen address, else POD_IP's (downward API)
  const network = new NetworkModel({
    listenAddress: address,
    ...(process.env['POD_IP'] ? { podIp: process.env['POD_IP'] } : {}),
    ...(flags.fqdn ? { fqdn: flags.fqdn } : {}),
  });

  // Events: subscriptions persist in the cluster (KubeVirt) or the state file (simulator); in
  // KubeVirt mode the agent's actions are also Kubernetes Events on the VM (src/events/kube.ts).
  let eventsOpts: StartEventsOptions = {};
  let attachKubeEvents: ((hub: EventHub) => void) | undefined;
  let tlsStore: { save(certPem: string, keyPem: string): Promise<void> } | undefined;
  const warnSave = (msg: string, err: unknown): void => logger.warn({ err: err instanceof Error ? err.message : String(err) }, msg);
  if (kubevirtMode) {
    const { KubeClient } = await import('../kube/client.js');
    const { loadKubeConfig } = await import('../kube/config.js');
    const { ConfigMapPersistence, KubeEventRecorder, eventsConfigMapName } = await import('../events/kube.js');
    const client = new KubeClient(loadKubeConfig(flags.kubeconfig), { logger: logger.child({ component: 'events' }) });
    // the controller names the VirtualMachineBMC (the ConfigMap's owner) in the agent's env
    const ownerUid = process.env.VIRTBMC_OWNER_UID;
    const ownerName = process.env.VIRTBMC_OWNER_NAME;
    eventsOpts = {
      subscriptions: {
        persistence: new ConfigMapPersistence({
          client,
          namespace: namespace!,
          name: eventsConfigMapName(vmName!),
          ...(ownerUid && ownerName ? { owner: { apiVersion: 'bmc.kubevirt.io/v1beta1', kind: 'VirtualMachineBMC', name: ownerName, uid: ownerUid } } : {}),
        }),
        onError: warnSave,
      },
    };
    if (flags.tlsSecret) {
      const { TlsSecretStore } = await import('../kube/tls-secret.js');
      tlsStore = new TlsSecretStore(client, namespace!, flags.tlsSecret);
    }
    attachKubeEvents = (hub) => void new KubeEventRecorder({ client, namespace: namespace!, vmName: vmName!, logger: logger.child({ component: 'k8s-events' }) }).attach(hub);
  } else if (flags.eventsStateFile) {
    const { FilePersistence } = await import('../events/persistence.js');
    eventsOpts = { subscriptions: { persistence: new FilePersistence(flags.eventsStateFile), onError: warnSave } };
  }
  const metrics =
    flags.metricsPort !== undefined
      ? { registry: new (await import('../agent/metrics.js')).AgentMetrics({ processMetrics: true }), listen: { address: flags.metricsAddress, port: parsePort(flags.metricsPort, '--metrics-port') } }
      : undefined;

  // Accounts: one store per machine for both protocols; the simulator may keep it in a file,
  // KubeVirt mode in the VirtualMachineBMC's auth Secret (src/agent/accounts-secret.ts).
  if (flags.accountsFile && kubevirtMode) throw new ConfigError('--accounts-file is for the simulator');
  const accountsSecret = flags.accountsSecret ?? process.env['VIRTBMC_ACCOUNTS_SECRET'];
  if (flags.accountsSecret && !kubevirtMode) throw new ConfigError('--accounts-secret is for KubeVirt mode');
  let accounts: AccountStore;
  if (kubevirtMode && accountsSecret) {
    const { KubeClient } = await import('../kube/client.js');
    const { loadKubeConfig } = await import('../kube/config.js');
    const { secretAccountStore } = await import('../agent/accounts-secret.js');
    const client = new KubeClient(loadKubeConfig(flags.kubeconfig), { logger: logger.child({ component: 'accounts' }) });
    accounts = (await secretAccountStore({ client, namespace: namespace!, name: accountsSecret, configured: users, logger: logger.child({ component: 'accounts' }) })).store;
  } else {
    if (kubevirtMode) logger.info('no accounts Secret given (VIRTBMC_ACCOUNTS_SECRET): account changes live in memory until the agent restarts');
    const saved = flags.accountsFile ? readAccountsFile(flags.accountsFile) : undefined;
    accounts = new AccountStore(saved ?? users, flags.accountsFile ? { persist: accountsFileWriter(flags.accountsFile) } : {});
    if (flags.accountsFile && !saved) await accountsFileWriter(flags.accountsFile)(accounts.snapshot());
    if (saved) logger.info({ file: flags.accountsFile, accounts: saved.length }, 'accounts loaded from the accounts file (the configured users only seed a new file)');
  }

  // Power-on hours: KubeVirt reads them from the VMI; the simulator counts, optionally in a file
  if (flags.pohFile && kubevirtMode) throw new ConfigError('--poh-file is for the simulator (KubeVirt mode reads the VMI\'s running time)');
  let poh: PohPersistence | undefined;
  if (flags.pohFile) {
    poh = pohFile(flags.pohFile);
    try {
      poh.load();
    } catch (e) {
      throw new ConfigError(`--poh-file: ${(e as Error).message}`);
    }
  }

  const agent = await startAgent({
    accounts,
    events: eventsOpts,
    ...(metrics ? { metrics } : {}),
    network,
    machine,
    users,
    logger,
    address,
    lockoutPolicy,
    ipmi: flags.ipmi && {
      port: parsePort(flags.ipmiPort, '--ipmi-port'),
      allowInsecure: Boolean(flags.ipmiAllowInsecure),
      sessionTimeoutSeconds: parseIntInRange(flags.ipmiSessionTimeout, '--ipmi-session-timeout', IPMI_SESSION_TIMEOUT_RANGE),
      maxSessions: parsePositiveInt(flags.ipmiMaxSessions, '--ipmi-max-sessions'),
      ...(flags.ipmiSol ? {} : { sol: false as const }),
      ...(poh ? { poh } : {}),
    },
    redfish: flags.redfish && {
      port: parsePort(flags.redfishPort, '--redfish-port'),
      sessionTimeoutSeconds: parseIntInRange(flags.redfishSessionTimeout, '--redfish-session-timeout', REDFISH_SESSION_TIMEOUT_RANGE),
      ...(flags.tlsCert && flags.tlsKey ? { tls: { ...tlsFromFlags(flags)!, ...(tlsStore ? { store: tlsStore } : {}) } } : {}),
    },
  });

  attachKubeEvents?.(agent.events.hub);
  const what = kubevirtMode ? `VirtualMachine ${namespace}/${vmName}` : `simulated VM ${flags.simName}`;
  // metrics=<url> last (when served), so a line without it reads as before
  const endpoints = [...agent.servers.map((s) => `${s.name}=${s.url}`), ...(agent.metrics ? [`metrics=${agent.metrics.url}`] : [])].join(' ');
  stopOnSignals(logger, () => agent.close(), 10_000);
  process.stdout.write(`virtbmc ready: ${what} ${endpoints}\n`);
  logger.info({ endpoints: Object.fromEntries(agent.servers.map((s) => [s.name, s.url])), vm: what }, 'ready');
  // what the first request with a body needs, loaded once ready rather than before (docs/scale.md)
  void warmBodyParser();
}

/** The Redfish HTTPS options of --tls-cert/--tls-key (both modes), or undefined for plain HTTP. */
function tlsFromFlags(flags: Flags) {
  if (!flags.tlsCert || !flags.tlsKey) return undefined;
  return {
    cert: readFileSync(flags.tlsCert),
    key: readFileSync(flags.tlsKey),
    plainHttp: flags.plainHttp,
    // CertificateService.ReplaceCertificate rewrites these when writable (never a Secret mount; never in shared mode)
    certFile: flags.tlsCert,
    keyFile: flags.tlsKey,
    ...(flags.httpsRedirectPort !== undefined ? { redirectPort: parsePort(flags.httpsRedirectPort, '--https-redirect-port') } : {}),
    reloadSeconds: parseIntInRange(flags.tlsReloadSeconds, '--tls-reload-seconds', { min: 0, max: 86400 }),
  };
}

/** What both shared modes (simulated fleet, KubeVirt fleet) serve with: ports, network identity, TLS, session limits, metrics. */
async function sharedServeOptions(
  flags: Flags,
  address: string,
  lockoutPolicy: ReturnType<typeof parseLockoutPolicy>,
): Promise<Omit<SharedAgentOptions, 'backend' | 'logger'>> {
  const network = new NetworkModel({
    listenAddress: address,
    ...(process.env['POD_IP'] ? { podIp: process.env['POD_IP'] } : {}),
    ...(flags.fqdn ? { fqdn: flags.fqdn } : {}),
  });
  // metrics with a `system` label per served system (prom-client loaded only when asked for)
  const metricsPort = flags.metricsPort !== undefined ? parsePort(flags.metricsPort, '--metrics-port') : undefined;
  const metrics =
    metricsPort !== undefined
      ? { registry: new (await import('../agent/metrics.js')).AgentMetrics({ processMetrics: true, systemLabel: true }), listen: { address: flags.metricsAddress, port: metricsPort } }
      : undefined;
  return {
    address,
    redfishPort: parsePort(flags.redfishPort, '--redfish-port'),
    lockoutPolicy,
    network,
    ...(metrics ? { metrics } : {}),
    ...(flags.tlsCert ? { tls: tlsFromFlags(flags)! } : {}),
    sessionTimeoutSeconds: parseIntInRange(flags.redfishSessionTimeout, '--redfish-session-timeout', REDFISH_SESSION_TIMEOUT_RANGE),
    ipmi: flags.ipmi && {
      allowInsecure: Boolean(flags.ipmiAllowInsecure),
      sessionTimeoutSeconds: parseIntInRange(flags.ipmiSessionTimeout, '--ipmi-session-timeout', IPMI_SESSION_TIMEOUT_RANGE),
      maxSessions: parsePositiveInt(flags.ipmiMaxSessions, '--ipmi-max-sessions'),
      ...(flags.ipmiSol ? {} : { sol: false as const }),
    },
  };
}

/** Shared mode: one process, many VMs (src/agent/shared.ts). */
async function mainShared(
  flags: Flags,
  logger: ReturnType<typeof createLogger>,
  address: string,
  users: readonly UserAccount[],
  lockoutPolicy: ReturnType<typeof parseLockoutPolicy>,
  kubevirtMode: boolean,
): Promise<void> {
  const { startSharedAgent, simulatedFleet, simulatedAccounts, readFleetFile } = await import('../agent/shared.js');
  if ([flags.simulateFleet, flags.fleetFile, flags.fleetConfigmap].filter((x) => x !== undefined).length > 1) {
    throw new ConfigError('--simulate-fleet, --fleet-file and --fleet-configmap exclude each other');
  }
  if (kubevirtMode && flags.fleetConfigmap === undefined) {
    throw new ConfigError('--simulate-fleet and --fleet-file serve simulated VMs and take no <namespace> <vm-name>; KubeVirt shared mode is --fleet-configmap <namespace>/<name>');
  }
  if (flags.fleetConfigmap !== undefined) return mainKubeVirtFleet(flags, logger, address, lockoutPolicy);
  const base = users[0]?.password ?? '';
  const systems =
    flags.simulateFleet !== undefined
      ? simulatedFleet(parsePositiveInt(flags.simulateFleet, '--simulate-fleet'), flags.fleetIpmiBase === '0' ? 0 : parsePort(flags.fleetIpmiBase, '--fleet-ipmi-base'))
      : readFleetFile(flags.fleetFile as string);
  const agent = await startSharedAgent({
    logger,
    ...(await sharedServeOptions(flags, address, lockoutPolicy)),
    backend: async (system) => ({
      machine: new SimulatedMachine({
        name: system.vm,
        initialPower: flags.simPower === 'on' ? 'On' : 'Off',
        powerOnDelayMs: parseNonNegative(flags.simPowerOnDelay, '--sim-power-on-delay'),
        powerOffDelayMs: parseNonNegative(flags.simPowerOffDelay, '--sim-power-off-delay'),
        mediaInsertDelayMs: parseNonNegative(flags.simMediaDelay, '--sim-media-delay'),
        acpiListening: !flags.simNoAcpi,
      }),
      users: simulatedAccounts(system, base),
    }),
  });
  await agent.apply(systems);
  if (flags.fleetFile !== undefined) {
    const file = flags.fleetFile;
    // polled stat: survives the symlink swap of a mounted ConfigMap
    watchFile(file, { interval: 2000 }, () => {
      let next;
      try {
        next = readFleetFile(file);
      } catch (e) {
        logger.warn({ err: (e as Error).message }, 'fleet file unreadable; keeping the current systems');
        return;
      }
      agent.apply(next).catch((e: unknown) => logger.error({ err: (e as Error).message }, 'fleet change failed'));
    });
  }
  process.stdout.write(`virtbmc ready: shared ${agent.ids().length} systems redfish=${agent.redfish.url}${agent.metrics ? ` metrics=${agent.metrics.url}` : ''}\n`);
  logger.info({ systems: agent.ids().length, redfish: agent.redfish.url }, 'ready (shared)');
  stopOnSignals(logger, async () => {
    if (flags.fleetFile !== undefined) unwatchFile(flags.fleetFile);
    await agent.close();
  }, 10_000);
}

/** Shared mode on KubeVirt (src/agent/kubevirt-fleet.ts): the shard agent the controller runs. */
async function mainKubeVirtFleet(
  flags: Flags,
  logger: ReturnType<typeof createLogger>,
  address: string,
  lockoutPolicy: ReturnType<typeof parseLockoutPolicy>,
): Promise<void> {
  const { startKubeVirtFleet, parseConfigMapRef } = await import('../agent/kubevirt-fleet.js');
  const { loadKubeConfig } = await import('../kube/config.js');
  let configMap;
  try {
    configMap = parseConfigMapRef(flags.fleetConfigmap as string);
  } catch (e) {
    throw new ConfigError((e as Error).message);
  }
  const mediaTls = await mediaTlsFromFlags(flags);
  const mediaEgress = resolveMediaEgress(flags, process.env);
  const fleet = await startKubeVirtFleet({
    kubeConfig: loadKubeConfig(flags.kubeconfig),
    configMap,
    logger,
    machine: { mediaTls, mediaEgress },
    shared: await sharedServeOptions(flags, address, lockoutPolicy),
  });
  const { agent } = fleet;
  process.stdout.write(`virtbmc ready: shared ${agent.ids().length} systems from ConfigMap ${configMap.namespace}/${configMap.name} redfish=${agent.redfish.url}${agent.metrics ? ` metrics=${agent.metrics.url}` : ''}\n`);
  logger.info({ systems: agent.ids().length, redfish: agent.redfish.url, configMap: `${configMap.namespace}/${configMap.name}` }, 'ready (shared, KubeVirt)');
  stopOnSignals(logger, () => fleet.close(), 10_000);
}

main(process.argv).catch((e: unknown) => {
  if (e instanceof ConfigError) {
    process.stderr.write(`virtbmc: ${e.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`virtbmc: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
