/** Shared set-up for the controller tests: an emulator, a manager on it, and object builders. */
import { startApiServer, type ApiServerEmulator, type EmulatorOptions, type KubeObject } from '../emulator/index.js';
import { nullLogger } from '../../src/common/logger.js';
import { startManager, type Manager, type ManagerOptions } from '../../src/controller/manager.js';

export const AGENT_IMAGE = 'registry.example/virtbmc:test';
export const NS = 'default';
const b64 = (s: string) => Buffer.from(s).toString('base64');

export function vmObj(name: string, extra: { labels?: Record<string, string>; annotations?: Record<string, string> } = {}): KubeObject {
  return {
    apiVersion: 'kubevirt.io/v1',
    kind: 'VirtualMachine',
    metadata: { name, namespace: NS, ...extra },
    spec: { runStrategy: 'Halted', template: { spec: { domain: { devices: {} } } } },
  };
}

export function secretObj(name: string, password = 'pw', username = 'admin'): KubeObject {
  return { apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace: NS }, type: 'Opaque', data: { username: b64(username), password: b64(password) } };
}

export function vmbmcObj(name: string, vm: string, secret: string, spec: Record<string, unknown> = {}): KubeObject {
  return {
    apiVersion: 'bmc.kubevirt.io/v1beta1',
    kind: 'VirtualMachineBMC',
    metadata: { name, namespace: NS },
    spec: { virtualMachineRef: { name: vm }, authSecretRef: { name: secret }, ...spec },
  };
}

export interface Env {
  emu: ApiServerEmulator;
  mgr: Manager;
  close(): Promise<void>;
}

export async function startEnv(opts: Partial<ManagerOptions> = {}, emuOpts: EmulatorOptions = {}): Promise<Env> {
  const emu = await startApiServer({ workloadDelayMs: 10, vmiPhaseDelayMs: 5, ...emuOpts });
  const mgr = await startManager({
    kc: emu.makeKubeConfig(),
    logger: nullLogger(),
    agent: { image: AGENT_IMAGE },
    metricsBindAddress: '127.0.0.1:0',
    healthProbeBindAddress: '127.0.0.1:0',
    queue: { baseDelayMs: 10, maxDelayMs: 200 },
    informerBackoffMs: { min: 20, max: 200 },
    ...opts,
  });
  return {
    emu,
    mgr,
    async close() {
      await mgr.stop();
      await emu.close();
    },
  };
}

export type Cond = { type: string; status: string; reason: string; message: string };

export function condition(obj: KubeObject | undefined, type: string): Cond | undefined {
  return ((obj?.status as { conditions?: Cond[] } | undefined)?.conditions ?? []).find((c) => c.type === type);
}

export function getVmbmc(emu: ApiServerEmulator, name: string): KubeObject | undefined {
  return emu.get('bmc.kubevirt.io/v1beta1', 'VirtualMachineBMC', NS, name);
}
export function getDeployment(emu: ApiServerEmulator, name: string): KubeObject | undefined {
  return emu.get('apps/v1', 'Deployment', NS, name);
}
export function getService(emu: ApiServerEmulator, name: string): KubeObject | undefined {
  return emu.get('v1', 'Service', NS, name);
}

export function replicas(dep: KubeObject | undefined): number | undefined {
  return (dep?.spec as { replicas?: number } | undefined)?.replicas;
}

/** Waits until the VMBMC's Ready condition has the given status (and reason, if given); timeoutMs (default: emulator.waitFor's) only stops a hung test. */
export function waitReady(emu: ApiServerEmulator, name: string, status = 'True', reason?: string, timeoutMs?: number): Promise<KubeObject> {
  return emu.waitFor(() => {
    const o = getVmbmc(emu, name);
    const c = condition(o, 'Ready');
    return c && c.status === status && (!reason || c.reason === reason) ? o : undefined;
  }, timeoutMs);
}
