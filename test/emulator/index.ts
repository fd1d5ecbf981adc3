/**
 * In-process Kubernetes apiserver emulator for tests: HTTP on 127.0.0.1 (port 0), spoken to by an
 * unmodified @kubernetes/client-node through a kubeconfig. Includes small KubeVirt, CDI and
 * workload controllers, fault injection and an audit log. See docs/testing-emulator.md.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { installCdi } from './cdi.js';
import { Clock } from './clock.js';
import { installSerialConsole, type SerialConsoles } from './console.js';
import { installCrds, loadCrdFiles } from './crd.js';
import { CERT_MANAGER_CRDS } from './cert-manager.js';
import { installKubevirt, type KubevirtHooks } from './kubevirt.js';
import { serviceAccountIdentity, type Identity } from './rbac.js';
import { trackUpdate } from './managed-fields.js';
import { apiVersionOf, Registry } from './resources.js';
import { EmulatorServer } from './server.js';
import { Store } from './store.js';
import type { AuditEntry, EmulatorOptions, KubeObject } from './types.js';
import { installWorkloads } from './workloads.js';

/** the field manager of writes through the direct API (create, update): a client like any other, in managedFields */
export const DIRECT_MANAGER = 'emulator';

export type { AuditEntry, AuditVerb, EmulatorOptions, KubeObject, ObjectMeta, OwnerReference } from './types.js';
export type { GuestAgentInfo, KubevirtAction, KubevirtHooks, RunStrategy } from './kubevirt.js';
export { ApiError } from './status.js';
export { UNREACHABLE_HOST } from './cdi.js';
export { loadCrdFiles } from './crd.js';

export interface EmulatorFaults {
  /** the next `count` requests (matching `match`, if given) fail with `status` (default 500) and a Status body;
   *  `path` is the URL path, `url` the path with its query string */
  failNext(count: number, status?: number, match?: (req: { method: string; path: string; url: string }) => boolean): void;
  /** close every open watch stream now */
  dropWatches(): void;
  /** stop listening (clients see ECONNREFUSED) / listen again on the SAME port; await it to be sure */
  refuseConnections(on: boolean): Promise<void>;
  /** delay every response by ms (0 = off) */
  delayResponses(ms: number): void;
  /** compact: any watch from an older resourceVersion gets a 410 Expired ERROR event */
  expireHistory(): void;
  /** stop (true) / resume (false) sending BOOKMARK events on every watch stream; events still flow */
  stopBookmarks(on: boolean): void;
  /**
   * hang (true): the server accepts TCP and keeps every connection open but answers nothing and
   * sends nothing more on open watch streams, as a stopped (SIGSTOP) apiserver; false resumes it
   * (held requests are answered unless their client has gone, held watch events are delivered)
   */
  hang(on: boolean): void;
}

/** Credentials of one RBAC-checked identity. */
export interface EmulatorCredentials {
  user: string;
  groups: string[];
  token: string;
  kubeconfigYaml: string;
  makeKubeConfig(): KubeConfig;
}

export interface ApiServerEmulator {
  url: string;
  kubeconfigPath: string;
  kubeconfigYaml: string;
  /** admin credentials: no RBAC checks */
  makeKubeConfig(): KubeConfig;
  /** credentials for a user whose requests RBAC objects in the store authorize (403 Forbidden otherwise) */
  asUser(user: string, groups?: string[]): EmulatorCredentials;
  /** credentials for system:serviceaccount:NS:NAME (with the service-account groups), RBAC-checked */
  asServiceAccount(namespace: string, name: string): EmulatorCredentials;
  /** every request, in order */
  audit: AuditEntry[];
  /** fills metadata (uid, resourceVersion, creationTimestamp, generation); runs the same defaulting/validation as the API */
  create(obj: KubeObject): KubeObject;
  get(apiVersion: string, kind: string, namespace: string | undefined, name: string): KubeObject | undefined;
  list(apiVersion: string, kind: string, namespace?: string): KubeObject[];
  /** writes the whole object (status too), ignoring metadata.resourceVersion; bumps it, emits MODIFIED */
  update(obj: KubeObject): KubeObject;
  /** create (or replace, keeping status) every object of a multi-document YAML text, e.g. `kubectl kustomize` output */
  applyYaml(text: string): KubeObject[];
  /** like an API DELETE with background propagation (finalizers respected) */
  delete(apiVersion: string, kind: string, namespace: string | undefined, name: string): void;
  /**
   * Resolves with fn's first truthy value. fn is checked again after every change of the store
   * (an event: no poll delay for conditions on API objects) and at least every 25 ms (for
   * conditions on other state: a test's own variables, a client's cache). Rejects after timeoutMs
   * (default 30000: a hang guard longer than most tests' own timeout, not a bound on how fast
   * anything happens) or when the emulator is closed.
   */
  waitFor<T>(fn: () => T | undefined | false, timeoutMs?: number): Promise<T>;
  /**
   * Resolves once the emulated controllers (KubeVirt, CDI, workloads, garbage collection) have no
   * step pending: what they were going to do after the last change has been done. Await it before
   * asserting that something did NOT happen, instead of sleeping.
   */
  settled(): Promise<void>;
  faults: EmulatorFaults;
  /** KubeVirt test hooks (present when the kubevirt option is on) */
  kubevirt: KubevirtHooks;
  /** the current resourceVersion of the store */
  resourceVersion(): string;
  /** exceptions thrown inside the emulator's controllers (should stay empty; assert it in tests) */
  controllerErrors: Error[];
  /** the VMI serial console websocket subresource and its guest side (test/emulator/console.ts; kubevirt option) */
  serialConsoles: SerialConsoles;
  close(): Promise<void>;
}

export async function startApiServer(opts: EmulatorOptions = {}): Promise<ApiServerEmulator> {
  const o = {
    vmiPhaseDelayMs: opts.vmiPhaseDelayMs ?? 20,
    vmiStopDelayMs: opts.vmiStopDelayMs ?? 20,
    dataVolumeImportMs: opts.dataVolumeImportMs ?? 50,
    workloadDelayMs: opts.workloadDelayMs ?? 20,
    watchHistory: opts.watchHistory ?? 1000,
    kubevirt: opts.kubevirt ?? true,
    cdi: opts.cdi ?? true,
    token: opts.token ?? randomBytes(16).toString('hex'),
    requireNamespaces: opts.requireNamespaces ?? false,
    // kube-apiserver's bookmark period (k8s.io/apiserver pkg/storage/cacher/cacher.go defaultBookmarkFrequency)
    bookmarkIntervalMs: opts.bookmarkIntervalMs ?? 60_000,
    allowAnonymous: opts.allowAnonymous ?? false,
  };
  const clock = new Clock();
  const registry = new Registry({ kubevirt: o.kubevirt, cdi: o.cdi });
  const store = new Store(registry, clock, o.watchHistory, o.requireNamespaces);
  const server = new EmulatorServer(store, o.token, o.bookmarkIntervalMs, o.allowAnonymous);
  installWorkloads(store, clock, o.workloadDelayMs);
  installCrds(store, clock);
  const noKubevirt = (): never => {
    throw new Error('emulator: started with kubevirt: false');
  };
  const kubevirt: KubevirtHooks = o.kubevirt
    ? installKubevirt(store, server, clock, {
        phaseDelayMs: o.vmiPhaseDelayMs,
        stopDelayMs: o.vmiStopDelayMs,
        gates: {
          ...(opts.kubevirtFeatureGates ? { featureGates: opts.kubevirtFeatureGates } : {}),
          ...(opts.kubevirtDisabledFeatureGates ? { disabledFeatureGates: opts.kubevirtDisabledFeatureGates } : {}),
        },
      })
    : { actions: [], guestShutdown: noKubevirt, guestReboot: noKubevirt, warmReboots: noKubevirt, failVmi: noKubevirt, setGuestAgent: noKubevirt, hotplugGates: noKubevirt, setFeatureGates: noKubevirt };
  if (o.cdi) installCdi(store, clock, o.dataVolumeImportMs);
  const serialConsoles = o.kubevirt ? installSerialConsole(store, server) : undefined;

  const nsT = registry.mustByKind('v1', 'Namespace');
  for (const ns of ['default', 'kube-system', 'kube-public']) store.create(nsT, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
  const crdT = registry.mustByKind('apiextensions.k8s.io/v1', 'CustomResourceDefinition');
  // EMULATOR_CRD_FILES (comma-separated) adds CRDs to every emulator: run any suite under the real schemas
  const envCrds = (process.env.EMULATOR_CRD_FILES ?? '').split(',').filter((f) => f.trim() !== '');
  for (const crd of loadCrdFiles([...envCrds, ...(opts.crdFiles ?? [])])) {
    if (!store.peek(crdT, undefined, crd.metadata.name ?? '')) store.create(crdT, crd);
  }
  if (opts.certManager) for (const crd of CERT_MANAGER_CRDS) store.create(crdT, crd);

  await server.listen(0);
  const url = `http://127.0.0.1:${server.port}`;
  const kubeconfigFor = (token: string): string => [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: emulator',
    '  cluster:',
    `    server: ${url}`,
    // client-node refuses plain http unless TLS verification is off (nothing to verify on loopback)
    '    insecure-skip-tls-verify: true',
    'contexts:',
    '- name: emulator',
    '  context:',
    '    cluster: emulator',
    '    user: emulator',
    '    namespace: default',
    'current-context: emulator',
    'users:',
    '- name: emulator',
    '  user:',
    `    token: ${token}`,
    '',
  ].join('\n');
  const kubeconfigYaml = kubeconfigFor(o.token);
  const loadKc = (yaml: string): KubeConfig => {
    const kc = new KubeConfig();
    kc.loadFromString(yaml);
    return kc;
  };
  const credentials = (id: Identity): EmulatorCredentials => {
    const token = randomBytes(16).toString('hex');
    server.identities.set(token, id);
    const yaml = kubeconfigFor(token);
    return { user: id.user, groups: id.groups, token, kubeconfigYaml: yaml, makeKubeConfig: () => loadKc(yaml) };
  };
  const dir = mkdtempSync(join(tmpdir(), 'kube-emulator-'));
  const kubeconfigPath = join(dir, 'kubeconfig');
  writeFileSync(kubeconfigPath, kubeconfigYaml, { mode: 0o600 });

  let closed = false;
  // waitFor's wake-ups: the next store change (checked once the write that made it has returned),
  // or 25 ms, whichever comes first
  const changeWaiters = new Set<() => void>();
  store.onEvent(() => {
    for (const wake of [...changeWaiters]) wake();
  });
  const nextChange = (): Promise<void> =>
    new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        changeWaiters.delete(wake);
        setImmediate(resolve);
      };
      const timer = setTimeout(wake, 25);
      changeWaiters.add(wake);
    });
  const emu: ApiServerEmulator = {
    url,
    kubeconfigPath,
    kubeconfigYaml,
    makeKubeConfig: () => loadKc(kubeconfigYaml),
    asUser: (user, groups = []) => credentials({ user, groups: [...new Set([...groups, 'system:authenticated'])] }),
    asServiceAccount: (namespace, name) => credentials(serviceAccountIdentity(namespace, name)),
    audit: server.audit,
    create(obj) {
      const t = registry.mustByKind(obj.apiVersion, obj.kind);
      return store.create(t, trackUpdate(t.kind, apiVersionOf(t), undefined, obj, DIRECT_MANAGER, 'main'));
    },
    get(apiVersion, kind, namespace, name) {
      return store.get(registry.mustByKind(apiVersion, kind), namespace, name);
    },
    list(apiVersion, kind, namespace) {
      return store.list(registry.mustByKind(apiVersion, kind), namespace);
    },
    update(obj) {
      const t = registry.mustByKind(obj.apiVersion, obj.kind);
      // recorded like any client's write (managed-fields.ts), against the live managedFields: the
      // caller's copy may be older (no resourceVersion check here)
      const cur = store.peek(t, t.namespaced ? (obj.metadata?.namespace ?? 'default') : undefined, obj.metadata?.name ?? '');
      const body = { ...obj, metadata: { ...obj.metadata, managedFields: undefined } };
      const managedFields = cur ? (trackUpdate(t.kind, apiVersionOf(t), cur, body, DIRECT_MANAGER, 'all').metadata.managedFields as unknown[] | undefined) ?? [] : undefined;
      return store.update(t, obj, { scope: 'all', force: true, managedFields });
    },
    applyYaml(text) {
      const out: KubeObject[] = [];
      for (const doc of parseAllDocuments(text)) {
        const o = doc.toJSON() as KubeObject | null;
        if (!o || typeof o !== 'object') continue;
        if (!o.apiVersion || !o.kind || !o.metadata?.name) throw new Error('emulator.applyYaml: every document needs apiVersion, kind and metadata.name');
        const t = registry.mustByKind(o.apiVersion, o.kind);
        const ns = t.namespaced ? (o.metadata.namespace ?? 'default') : undefined;
        const cur = store.get(t, ns, o.metadata.name);
        if (cur) out.push(store.update(t, { ...o, metadata: { ...o.metadata, namespace: ns } }, { scope: 'main', force: true }));
        else out.push(store.create(t, o));
      }
      return out;
    },
    delete(apiVersion, kind, namespace, name) {
      store.delete(registry.mustByKind(apiVersion, kind), namespace, name);
    },
    // the deadline only stops a hung test (a loaded CI machine delays timers): keep it generous
    async waitFor<T>(fn: () => T | undefined | false, timeoutMs = 30_000): Promise<T> {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const v = fn();
        if (v) return v;
        if (closed) throw new Error('emulator.waitFor: the emulator was closed before the condition held');
        if (Date.now() > deadline) throw new Error(`emulator.waitFor: condition not met within ${timeoutMs} ms`);
        await nextChange();
      }
    },
    faults: {
      failNext(count, status = 500, match) {
        if (count > 0) server.faults.push({ remaining: count, status, match });
      },
      dropWatches() {
        server.dropWatches();
      },
      refuseConnections(on) {
        return server.refuse(on);
      },
      delayResponses(ms) {
        server.delayMs = Math.max(0, ms);
      },
      expireHistory() {
        store.compact();
      },
      stopBookmarks(on) {
        server.bookmarksOff = on;
      },
      hang(on) {
        server.hang(on);
      },
    },
    kubevirt,
    settled: () => clock.idle(),
    resourceVersion: () => String(store.rv),
    controllerErrors: clock.errors,
    get serialConsoles(): SerialConsoles {
      if (!serialConsoles) throw new Error('emulator: started with kubevirt: false');
      return serialConsoles;
    },
    async close() {
      if (closed) return;
      closed = true;
      for (const wake of [...changeWaiters]) wake(); // pending waitFor calls reject now
      clock.close();
      serialConsoles?.close();
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return emu;
}
