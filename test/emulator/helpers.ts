/**
 * Helpers for the emulator's own tests: per-test set-up, and raw calls the typed clients cannot make
 * (KubeVirt subresources).
 */
import type { KubeConfig } from '@kubernetes/client-node';
import { expect } from 'chai';
import { startApiServer, type ApiServerEmulator, type EmulatorOptions } from './index.js';

/**
 * Registers a suite's hooks: a fresh emulator before each test, handed to `started` (which keeps it
 * and makes its clients); after each test its controllers must have logged no errors, then it is closed.
 */
export function emulatorPerTest(opts: EmulatorOptions, started: (emu: ApiServerEmulator) => void): void {
  let emu: ApiServerEmulator;
  beforeEach(async () => {
    emu = await startApiServer(opts);
    started(emu);
  });
  afterEach(async () => {
    expect(emu.controllerErrors).to.deep.equal([]);
    await emu.close();
  });
}

export interface RawReply {
  status: number;
  body: unknown;
}

/** A request authenticated the way client-node would, via kc.applyToFetchOptions(). */
export async function rawRequest(kc: KubeConfig, method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<RawReply> {
  const opts = await kc.applyToFetchOptions({});
  // client-node hands back node-fetch Headers: copy them into a plain object for the global fetch
  const headers: Record<string, string> = { 'Content-Type': contentType };
  const h = opts.headers as { forEach?: (cb: (v: string, k: string) => void) => void } | Record<string, string> | undefined;
  if (h && typeof h.forEach === 'function') (h as { forEach: (cb: (v: string, k: string) => void) => void }).forEach((v, k) => (headers[k] = v));
  else if (h) Object.assign(headers, h);
  const server = kc.getCurrentCluster()?.server ?? '';
  const res = await fetch(server + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    /* plain text */
  }
  return { status: res.status, body: parsed };
}

export function vmSubresource(kc: KubeConfig, ns: string, name: string, action: string, body: unknown = {}): Promise<RawReply> {
  return rawRequest(kc, 'PUT', `/apis/subresources.kubevirt.io/v1/namespaces/${ns}/virtualmachines/${name}/${action}`, body);
}

export function vmiSubresource(kc: KubeConfig, ns: string, name: string, action: string, body: unknown = {}): Promise<RawReply> {
  return rawRequest(kc, 'PUT', `/apis/subresources.kubevirt.io/v1/namespaces/${ns}/virtualmachineinstances/${name}/${action}`, body);
}

/**
 * A Role named `sa` with `rules` and its RoleBinding to the ServiceAccount `sa` in `namespace`:
 * what the controller writes for an agent (src/controller/agent-rbac.ts), so a test can run the
 * agent's client as `emu.asServiceAccount(namespace, sa)` under exactly those rules.
 */
export function grantServiceAccount(emu: ApiServerEmulator, namespace: string, sa: string, rules: unknown[]): void {
  emu.create({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name: sa, namespace }, rules } as never);
  emu.create({
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'RoleBinding',
    metadata: { name: sa, namespace },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: sa },
    subjects: [{ kind: 'ServiceAccount', name: sa, namespace }],
  } as never);
}
