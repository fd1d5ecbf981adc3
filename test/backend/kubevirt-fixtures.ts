/**
 * Shared set-up for the KubeVirt backend tests: an emulator, a VM fixture, a machine on top,
 * polling helpers and a loopback HTTP server that answers HEAD for virtual media images.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import type { KubeConfig } from '@kubernetes/client-node';
import { expect } from 'chai';
import { LOOPBACK_MEDIA } from '../helpers/images.js';
import { pino, type Logger } from 'pino';
import { startKubeVirtFleet, type KubeVirtFleet } from '../../src/agent/kubevirt-fleet.js';
import { createKubeVirtMachine, type KubeVirtMachine, type MediaTlsOptions } from '../../src/backend/kubevirt/index.js';
import { nullLogger } from '../../src/common/logger.js';
import type { PowerState } from '../../src/backend/types.js';
import { startApiServer, type ApiServerEmulator, type EmulatorOptions, type KubeObject } from '../emulator/index.js';

export const NS = 'default';
export const VM_NAME = 'vm1';
export const FW_UUID = '5a6f2c1e-7d3b-4c8a-9e1f-0b2c3d4e5f60';

export interface VmFixtureOptions {
  name?: string;
  runStrategy?: string;
  running?: boolean;
  /** the empty CD-ROM drive `cdrom` (sata, no volume), default true */
  cdrom?: boolean;
  /** more empty CD-ROM drives (scsi), by name */
  extraCdroms?: string[];
  interfaces?: boolean;
}

export function vmFixture(o: VmFixtureOptions = {}): KubeObject {
  const spec: Record<string, unknown> = {};
  if (o.running !== undefined) spec.running = o.running;
  else spec.runStrategy = o.runStrategy ?? 'Halted';
  const disks: Record<string, unknown>[] = [{ name: 'root', disk: { bus: 'virtio' } }];
  if (o.cdrom !== false) disks.push({ name: 'cdrom', cdrom: { bus: 'sata', readonly: true } });
  for (const name of o.extraCdroms ?? []) disks.push({ name, cdrom: { bus: 'scsi' } });
  spec.template = {
    metadata: { labels: { app: 'test' } },
    spec: {
      domain: {
        cpu: { cores: 2, sockets: 1, threads: 1 },
        memory: { guest: '2Gi' },
        firmware: { uuid: FW_UUID, serial: 'SN-0001' },
        devices: {
          disks,
          ...(o.interfaces === false ? {} : { interfaces: [{ name: 'default', masquerade: {}, macAddress: '02:11:22:33:44:55' }] }),
        },
      },
      networks: [{ name: 'default', pod: {} }],
      volumes: [{ name: 'root', containerDisk: { image: 'quay.io/containerdisks/fedora:40' } }],
    },
  };
  return { apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachine', metadata: { name: o.name ?? VM_NAME, namespace: NS }, spec };
}

export const FAST: EmulatorOptions = { vmiPhaseDelayMs: 5, vmiStopDelayMs: 5, dataVolumeImportMs: 60, bookmarkIntervalMs: 200 };

export async function startEmulator(opts: EmulatorOptions = {}): Promise<ApiServerEmulator> {
  return startApiServer({ ...FAST, ...opts });
}

type Closable = { close(): Promise<void> } | undefined;

/** The machines newMachine() opened on each emulator, so that closeAll() can close them. */
const machinesOf = new WeakMap<ApiServerEmulator, KubeVirtMachine[]>();

/**
 * A backend test's tear-down: close the machines newMachine() opened on `emu` (closing twice is
 * harmless), then `others` in the order given, then the emulator, whose controllers must have
 * logged no errors.
 */
export async function closeAll(emu: ApiServerEmulator, ...others: Closable[]): Promise<void> {
  for (const m of machinesOf.get(emu)?.splice(0) ?? []) await m.close();
  for (const o of others) await o?.close();
  await emu.close();
  expect(emu.controllerErrors).to.deep.equal([]);
}

/** Where a suite keeps its emulator (a test may swap in another one), and what else it opens per test. */
export interface SuiteEmulator {
  set(emu: ApiServerEmulator): void | Promise<void>;
  get(): ApiServerEmulator;
  others?(): Closable[];
}

/**
 * Registers a suite's hooks: before each test a fresh emulator (FAST timings plus `opts`) goes to
 * `suite.set`; after each test closeAll() takes down the suite's current emulator with its
 * machines and `suite.others`.
 */
export function emulatorPerTest(opts: EmulatorOptions, suite: SuiteEmulator): void {
  beforeEach(async () => {
    await suite.set(await startEmulator(opts));
  });
  afterEach(() => closeAll(suite.get(), ...(suite.others?.() ?? [])));
}

export async function newMachine(
  emu: ApiServerEmulator,
  opts: {
    name?: string;
    logger?: Logger;
    storageClassName?: string;
    kubeConfig?: KubeConfig;
    requestTimeoutMs?: number;
    mediaTls?: MediaTlsOptions;
    hotplugSyncTimeoutMs?: number;
    volumeSweepDelayMs?: number;
    clock?: () => number;
  } = {},
): Promise<KubeVirtMachine> {
  const m = (await createKubeVirtMachine({
    namespace: NS,
    name: opts.name ?? VM_NAME,
    logger: opts.logger ?? pino({ level: 'silent' }),
    kubeConfig: opts.kubeConfig ?? emu.makeKubeConfig(),
    watchMinBackoffMs: 20,
    watchMaxBackoffMs: 200,
    // the client's own default (10 s) unless a test wants a short one: the emulator answers from this
    // process, so on a loaded core a 2 s bound marked it unreachable (taskset -c 0 with a CPU hog)
    ...(opts.requestTimeoutMs !== undefined ? { requestTimeoutMs: opts.requestTimeoutMs } : {}),
    syncTimeoutMs: 2000,
    mediaProbeTimeoutMs: 2000,
    mediaEgress: LOOPBACK_MEDIA,
    ...(opts.storageClassName ? { storageClassName: opts.storageClassName } : {}),
    ...(opts.mediaTls ? { mediaTls: opts.mediaTls } : {}),
    ...(opts.hotplugSyncTimeoutMs !== undefined ? { hotplugSyncTimeoutMs: opts.hotplugSyncTimeoutMs } : {}),
    ...(opts.volumeSweepDelayMs !== undefined ? { volumeSweepDelayMs: opts.volumeSweepDelayMs } : {}),
    ...(opts.clock ? { clock: opts.clock } : {}),
  })) as KubeVirtMachine;
  machinesOf.set(emu, [...(machinesOf.get(emu) ?? []), m]);
  return m;
}

/** Poll until fn returns a truthy value (errors are retried). The deadline only stops a hung test: 30 s, past most tests' own timeout, as a loaded CI machine delays timers. */
/**
 * A shard agent (KubeVirt shared mode) on loopback reading the fleet from ConfigMap
 * `<namespace>/virtbmc-shard-0`: Redfish on a free port, no IPMI, no Kubernetes Events, login
 * lockout off, fast watch backoff. Its Redfish base URL is `http://127.0.0.1:${fleet.agent.redfish.port}`.
 */
export function startShardFleet(emu: ApiServerEmulator, namespace = NS): Promise<KubeVirtFleet> {
  return startKubeVirtFleet({
    kubeConfig: emu.makeKubeConfig(),
    configMap: { namespace, name: 'virtbmc-shard-0' },
    logger: nullLogger(),
    machine: { watchMinBackoffMs: 20, watchMaxBackoffMs: 200 },
    syncTimeoutMs: 3000,
    kubeEvents: false,
    shared: { address: '127.0.0.1', redfishPort: 0, ipmi: false, lockoutPolicy: { threshold: 0, durationSeconds: 30, counterResetAfterSeconds: 30 } },
  });
}

export async function until<T>(fn: () => Promise<T | undefined | false> | T | undefined | false, what: string, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? ` (last error: ${String(last)})` : ''}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export async function waitPower(m: { getPowerState(): Promise<PowerState> }, want: PowerState, timeoutMs = 30_000): Promise<void> {
  await until(async () => (await m.getPowerState()) === want, `power state ${want}`, timeoutMs);
}

export function vmiOf(emu: ApiServerEmulator, name = VM_NAME): KubeObject | undefined {
  return emu.get('kubevirt.io/v1', 'VirtualMachineInstance', NS, name);
}

export function vmOf(emu: ApiServerEmulator, name = VM_NAME): KubeObject {
  const vm = emu.get('kubevirt.io/v1', 'VirtualMachine', NS, name);
  if (!vm) throw new Error('VM missing');
  return vm;
}

export function vmiPhase(emu: ApiServerEmulator, name = VM_NAME): string | undefined {
  return (vmiOf(emu, name)?.status as { phase?: string } | undefined)?.phase;
}

type Obj = Record<string, unknown>;

/** The VM template's disks / interfaces (for boot-order assertions). */
export function devicesOf(o: KubeObject | undefined, fromVmi = false): { disks: Obj[]; interfaces: Obj[] } {
  const spec = fromVmi ? (o?.spec as Obj | undefined) : ((o?.spec as Obj | undefined)?.template as Obj | undefined)?.spec as Obj | undefined;
  const devices = ((spec?.domain as Obj | undefined)?.devices ?? {}) as { disks?: Obj[]; interfaces?: Obj[] };
  return { disks: devices.disks ?? [], interfaces: devices.interfaces ?? [] };
}

export function bootOrders(o: KubeObject | undefined, fromVmi = false): Record<string, number | undefined> {
  const d = devicesOf(o, fromVmi);
  const out: Record<string, number | undefined> = {};
  for (const x of d.disks) out[`disk/${String(x.name)}`] = x.bootOrder as number | undefined;
  for (const x of d.interfaces) out[`interface/${String(x.name)}`] = x.bootOrder as number | undefined;
  return out;
}

/** A loopback server answering HEAD with a claimed size; records every request it gets. */
export interface ImageServer {
  url(path: string): string;
  requests: { method: string; url: string }[];
  close(): Promise<void>;
}

export async function startImageServer(sizes: Record<string, number>): Promise<ImageServer> {
  const requests: { method: string; url: string }[] = [];
  const server = http.createServer((req, res) => {
    requests.push({ method: req.method ?? '', url: req.url ?? '' });
    const size = sizes[req.url ?? ''];
    if (size === undefined) {
      res.writeHead(404).end();
      return;
    }
    if (req.url?.startsWith('/redirect')) {
      res.writeHead(302, { location: 'http://127.0.0.1:1/elsewhere.iso' }).end();
      return;
    }
    res.writeHead(200, { 'content-length': String(size), 'content-type': 'application/octet-stream' });
    res.end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: (p) => `http://127.0.0.1:${port}${p}`,
    requests,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

/** A logger whose JSON lines the test can read. */
export function captureLogger(): { logger: Logger; lines: () => string[] } {
  const chunks: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString('utf8'));
      cb();
    },
  });
  return { logger: pino({ level: 'info' }, sink), lines: () => chunks.join('').split('\n').filter(Boolean) };
}
