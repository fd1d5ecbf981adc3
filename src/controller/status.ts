/**
 * The status the controller reports for a VirtualMachineBMC (conditions, addresses, mode, shard,
 * port, endpoint) from what it observed, and the /status merge patch that gets it there. Pure.
 */
import {
  ConditionType,
  Reason,
  type BMCMode,
  type Condition,
  type ConditionStatus,
  type VirtualMachineBMC,
  type VirtualMachineBMCStatus,
} from './api/types.js';
import type { KubeObject } from '../kube/types.js';
import { bmcEndpoint, type DesiredObjects } from './reconcile.js';

function deploymentAvailable(dep: KubeObject | undefined): { ok: boolean; message: string } {
  if (!dep) return { ok: false, message: 'agent Deployment not created yet' };
  const st = (dep.status ?? {}) as { observedGeneration?: number; availableReplicas?: number; conditions?: Array<{ type: string; status: string }> };
  const gen = dep.metadata?.generation ?? 0;
  if ((st.observedGeneration ?? 0) < gen) return { ok: false, message: 'agent Deployment rollout not observed yet' };
  const available = st.conditions?.find((c) => c.type === 'Available')?.status === 'True';
  if ((st.availableReplicas ?? 0) >= 1 && available) return { ok: true, message: 'agent is available' };
  return { ok: false, message: `agent Deployment has ${st.availableReplicas ?? 0} available replica(s)` };
}

export function serviceAddresses(svc: KubeObject | undefined): { clusterIP?: string; loadBalancerIP?: string } {
  if (!svc) return {};
  const spec = (svc.spec ?? {}) as { clusterIP?: string; type?: string };
  const ingress = ((svc.status as { loadBalancer?: { ingress?: Array<{ ip?: string; hostname?: string }> } } | undefined)?.loadBalancer?.ingress ?? [])[0];
  const clusterIP = spec.clusterIP && spec.clusterIP !== 'None' ? spec.clusterIP : undefined;
  const lb = spec.type === 'LoadBalancer' ? (ingress?.ip ?? ingress?.hostname) : undefined;
  return { ...(clusterIP ? { clusterIP } : {}), ...(lb ? { loadBalancerIP: lb } : {}) };
}

export interface ObservedState {
  /** the agent's Deployment: its own (PerVM) or its shard's (Shared) */
  deployment?: KubeObject;
  service?: KubeObject;
  /** Shared mode: where the BMC is (or is to be) served */
  shared?: {
    shard: number;
    /** the port in the shard's fleet document; undefined = not listed there yet */
    ipmiPort?: number;
    /** why the shared agents cannot serve this BMC */
    unsupported?: string;
  };
  /** Set when an owned object could not be synced (name clash, API error). */
  problem?: { reason: string; message: string };
}

function cond(type: string, status: ConditionStatus, reason: string, message: string, generation: number | undefined, prev: Condition[] | undefined, now: string): Condition {
  const old = prev?.find((c) => c.type === type);
  const lastTransitionTime = old && old.status === status ? old.lastTransitionTime : now;
  return { type, status, reason, message, lastTransitionTime, ...(generation !== undefined ? { observedGeneration: generation } : {}) };
}

/** The status the controller owns (never bootOverride). */
export function desiredStatus(vmbmc: VirtualMachineBMC, d: DesiredObjects, observed: ObservedState, now: string): VirtualMachineBMCStatus {
  const gen = vmbmc.metadata.generation;
  const prev = vmbmc.status?.conditions;
  const vmName = vmbmc.spec.virtualMachineRef.name;
  const conditions: Condition[] = [];
  conditions.push(
    d.vmFound
      ? cond(ConditionType.VirtualMachineAvailable, 'True', Reason.VirtualMachineFound, `VirtualMachine ${vmName} found`, gen, prev, now)
      : cond(ConditionType.VirtualMachineAvailable, 'False', Reason.VirtualMachineNotFound, `VirtualMachine ${vmName} not found`, gen, prev, now),
  );
  const secReason = d.secret.state === 'ok' ? Reason.SecretFound : d.secret.state === 'missing' ? Reason.SecretNotFound : Reason.SecretInvalid;
  conditions.push(cond(ConditionType.SecretAvailable, d.secret.state === 'ok' ? 'True' : 'False', secReason, d.secret.message, gen, prev, now));

  const addr = serviceAddresses(observed.service);
  const sh = observed.shared;
  const gone = sh ? `not served by shard ${sh.shard}` : 'agent scaled to 0';
  let ready: [ConditionStatus, string, string];
  if (observed.problem) ready = ['False', observed.problem.reason, observed.problem.message];
  else if (sh?.unsupported) ready = ['False', Reason.SharedModeUnsupported, sh.unsupported];
  else if (!d.vmFound) ready = ['False', Reason.VirtualMachineNotFound, `VirtualMachine ${vmName} not found; ${gone}`];
  else if (d.secret.state !== 'ok') ready = ['False', secReason, `${d.secret.message}; ${gone}`];
  else if (sh && sh.ipmiPort === undefined) ready = ['False', Reason.ShardPending, `waiting for shard ${sh.shard} (ConfigMap virtbmc-shard-${sh.shard}) to list this BMC`];
  else {
    const dep = deploymentAvailable(observed.deployment);
    const svcType = (observed.service?.spec as { type?: string } | undefined)?.type;
    if (!dep.ok) ready = ['False', Reason.AgentNotAvailable, dep.message];
    else if (!addr.clusterIP) ready = ['False', Reason.ServicePending, 'BMC Service has no cluster IP yet'];
    else if (svcType === 'LoadBalancer' && !addr.loadBalancerIP) ready = ['False', Reason.ServicePending, 'waiting for a load-balancer address'];
    else ready = ['True', Reason.AgentAvailable, `BMC reachable at ${addr.loadBalancerIP ?? addr.clusterIP}`];
  }
  conditions.unshift(cond(ConditionType.Ready, ready[0], ready[1], ready[2], gen, prev, now));
  const mode: BMCMode = sh ? 'Shared' : 'PerVM';
  // ipmiPort stays while a BMC waits (so a move keeps it where it can), and goes with PerVM mode
  const ipmiPort = sh ? (sh.ipmiPort ?? vmbmc.status?.ipmiPort) : undefined;
  return {
    ...addr,
    ...(gen !== undefined ? { observedGeneration: gen } : {}),
    mode,
    ...(sh ? { shard: sh.shard } : {}),
    ...(ipmiPort !== undefined ? { ipmiPort } : {}),
    endpoint: bmcEndpoint(vmbmc),
    conditions,
  };
}

/**
 * The merge patch for /status that moves the current status to `next`, or undefined when nothing
 * changed. Only controller-owned fields appear; status.bootOverride is never touched.
 */
export function statusPatch(current: VirtualMachineBMCStatus | undefined, next: VirtualMachineBMCStatus): Record<string, unknown> | undefined {
  const cur = current ?? {};
  const patch: Record<string, unknown> = {};
  for (const k of ['clusterIP', 'loadBalancerIP', 'observedGeneration', 'mode', 'shard', 'ipmiPort', 'endpoint'] as const) {
    if (cur[k] !== next[k]) patch[k] = next[k] ?? null;
  }
  if (!conditionsEqual(cur.conditions ?? [], next.conditions ?? [])) patch.conditions = next.conditions ?? [];
  return Object.keys(patch).length > 0 ? { status: patch } : undefined;
}

function conditionsEqual(a: Condition[], b: Condition[]): boolean {
  const fields = ['type', 'status', 'reason', 'message', 'lastTransitionTime', 'observedGeneration'] as const;
  return a.length === b.length && a.every((c, i) => fields.every((f) => c[f] === b[i]![f]));
}
