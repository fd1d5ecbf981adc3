/**
 * Power: how a VM/VMI pair reads as a PowerState, and which KubeVirt call each PowerAction makes.
 * Pure functions; machine.ts performs the calls and feeds 409 answers back through resolveConflict.
 */
import { BackendError, type PowerAction, type PowerState } from '../types.js';
import type { RunStrategy, VirtualMachine, VirtualMachineInstance } from './types.js';

const STARTING = new Set(['Starting', 'Provisioning', 'WaitingForVolumeBinding', 'Scheduling', 'Scheduled', 'Pending']);
const STOPPING = new Set(['Stopping', 'Terminating']);
const VMI_STARTING = new Set(['', 'Pending', 'Scheduling', 'Scheduled']);
const VMI_FINAL = new Set(['Succeeded', 'Failed']);

/** The run strategy in force: spec.runStrategy, else the deprecated spec.running (true → Always). */
export function effectiveRunStrategy(vm: VirtualMachine | undefined): RunStrategy {
  const rs = vm?.spec?.runStrategy;
  if (rs === 'Always' || rs === 'RerunOnFailure' || rs === 'Manual' || rs === 'Halted' || rs === 'Once') return rs;
  if (vm?.spec?.running === true) return 'Always';
  return 'Halted';
}

function conditionTrue(conds: { type?: string; status?: string }[] | undefined, type: string): boolean {
  return (conds ?? []).some((c) => c.type === type && c.status === 'True');
}

export function isVmiPaused(vmi: VirtualMachineInstance | undefined): boolean {
  return conditionTrue(vmi?.status?.conditions, 'Paused');
}

export function isVmiFinal(vmi: VirtualMachineInstance | undefined): boolean {
  return VMI_FINAL.has(vmi?.status?.phase ?? '');
}

export function isVmiRunning(vmi: VirtualMachineInstance | undefined): boolean {
  return vmi?.status?.phase === 'Running' && !vmi.metadata?.deletionTimestamp;
}

export function guestAgentConnected(vmi: VirtualMachineInstance | undefined): boolean {
  return conditionTrue(vmi?.status?.conditions, 'AgentConnected');
}

/**
 * Power state from the VM's printableStatus, the VMI phase and the Paused condition. The VMI is
 * the more current of the two (virt-controller updates the VM status after it), so a running VMI
 * wins over a lagging printableStatus, and a VMI being deleted reads as PoweringOff.
 */
export function derivePowerState(vm: VirtualMachine | undefined, vmi: VirtualMachineInstance | undefined): PowerState {
  const printable = vm?.status?.printableStatus ?? '';
  if (vmi && !isVmiFinal(vmi) && (isVmiPaused(vmi) || printable === 'Paused')) return 'Paused';
  if (vmi?.metadata?.deletionTimestamp && !isVmiFinal(vmi)) return 'PoweringOff';
  if (STOPPING.has(printable) && vmi && !isVmiFinal(vmi)) return 'PoweringOff';
  if (vmi && vmi.status?.phase === 'Running') return 'On';
  if (vmi && VMI_STARTING.has(vmi.status?.phase ?? '')) return 'PoweringOn';
  if (STARTING.has(printable)) return 'PoweringOn';
  return 'Off';
}

/** KubeVirt's action subresources of a VirtualMachine and of a VirtualMachineInstance. */
export type VmAction = 'start' | 'stop' | 'restart';
export type VmiAction = 'softreboot' | 'pause' | 'unpause';

export type PowerCall =
  | { target: 'vm'; sub: Extract<VmAction, 'start' | 'stop' | 'restart'>; body: Record<string, unknown> }
  | { target: 'vmi'; sub: VmiAction; body: Record<string, unknown> };

export type PowerPlan = { kind: 'noop' } | { kind: 'call'; call: PowerCall } | { kind: 'error'; error: BackendError };

export interface PowerContext {
  state: PowerState;
  vmi: VirtualMachineInstance | undefined;
  /** The VM spec holds a boot order/firmware the running VMI does not have yet. */
  pendingBootChange: boolean;
  /**
   * A guest reboot would end the VMI for good: rebootPolicy Terminate (VEP 171) under a run
   * strategy other than Always, where KubeVirt does not recreate it (tests/compute/vm_lifecycle.go).
   */
  softRebootEndsVmi?: boolean;
}

const START: PowerCall = { target: 'vm', sub: 'start', body: {} };
const STOP: PowerCall = { target: 'vm', sub: 'stop', body: {} };
// KubeVirt's StopOptions field is gracePeriod; RestartOptions' is gracePeriodSeconds (only 0 allowed).
const KILL: PowerCall = { target: 'vm', sub: 'stop', body: { gracePeriod: 0 } };
const RESTART_GRACEFUL: PowerCall = { target: 'vm', sub: 'restart', body: {} };
const RESTART_FORCE: PowerCall = { target: 'vm', sub: 'restart', body: { gracePeriodSeconds: 0 } };

function busy(state: PowerState): PowerPlan {
  return { kind: 'error', error: new BackendError('Busy', `the VM is ${state}; try again shortly`, { retryAfterSeconds: 2 }) };
}

function conflict(message: string): PowerPlan {
  return { kind: 'error', error: new BackendError('Conflict', message) };
}

/** Whether a soft reboot can reach the guest: a connected guest agent, or ACPI not turned off. */
export function canSoftReboot(vmi: VirtualMachineInstance | undefined): boolean {
  return guestAgentConnected(vmi) || vmi?.spec?.domain?.features?.acpi?.enabled !== false;
}

/** The KubeVirt call (or the immediate answer) for an action in a given state. */
export function planPowerAction(action: PowerAction, ctx: PowerContext): PowerPlan {
  const { state } = ctx;
  if (action === 'nmi') {
    return { kind: 'error', error: new BackendError('Unsupported', 'KubeVirt has no API to inject an NMI') };
  }
  if (action === 'forceOff') return state === 'Off' ? { kind: 'noop' } : { kind: 'call', call: KILL };
  if (state === 'PoweringOn' || state === 'PoweringOff') {
    if (action === 'on' && state === 'PoweringOn') return { kind: 'noop' };
    if (action === 'gracefulOff') return state === 'PoweringOff' ? { kind: 'noop' } : { kind: 'call', call: STOP };
    return busy(state);
  }
  switch (action) {
    case 'on':
      if (state === 'On') return { kind: 'noop' };
      if (state === 'Paused') return conflict('the VM is paused; resume it instead');
      return { kind: 'call', call: START };
    case 'gracefulOff':
      return state === 'Off' ? { kind: 'noop' } : { kind: 'call', call: STOP };
    case 'gracefulRestart':
      if (state === 'Off') return conflict('cannot restart a VM that is off');
      if (state === 'Paused') return conflict('a paused guest cannot handle a reboot request; resume it first');
      // A soft reboot keeps the VMI, so a boot order set since it started would not apply: restart
      // the VMI gracefully instead. Likewise when neither the guest agent nor ACPI can take it.
      // And when a guest reboot would leave the VM off (rebootPolicy Terminate without Always).
      if (ctx.pendingBootChange || ctx.softRebootEndsVmi || !canSoftReboot(ctx.vmi)) return { kind: 'call', call: RESTART_GRACEFUL };
      return { kind: 'call', call: { target: 'vmi', sub: 'softreboot', body: {} } };
    case 'forceRestart':
      if (state === 'Off') return conflict('cannot reset a VM that is off');
      return { kind: 'call', call: RESTART_FORCE };
    case 'powerCycle':
      return state === 'Off' ? { kind: 'call', call: START } : { kind: 'call', call: RESTART_FORCE };
    case 'pause':
      if (state === 'Paused') return { kind: 'noop' };
      if (state === 'Off') return conflict('cannot pause a VM that is off');
      return { kind: 'call', call: { target: 'vmi', sub: 'pause', body: {} } };
    case 'resume':
      if (state === 'On') return { kind: 'noop' };
      if (state !== 'Paused') return conflict('the VM is not paused');
      return { kind: 'call', call: { target: 'vmi', sub: 'unpause', body: {} } };
  }
  return conflict(`unknown power action ${String(action)}`);
}

/** Whether the state already is (or is heading to) what the action asks for. */
export function endStateHolds(action: PowerAction, state: PowerState): boolean {
  switch (action) {
    case 'on':
      return state === 'On' || state === 'PoweringOn';
    case 'gracefulOff':
    case 'forceOff':
      return state === 'Off' || state === 'PoweringOff';
    case 'pause':
      return state === 'Paused';
    case 'resume':
      return state === 'On';
    default:
      // restarts and cycles are events, not states: a refused one did not happen
      return false;
  }
}

/**
 * KubeVirt answered 409. Given the state re-read afterwards, decide: success (the requested end
 * state holds, e.g. "VM is already running" for on, or KubeVirt brings the VM up by itself under
 * Always/RerunOnFailure), Busy (a transition is under way), or Conflict with KubeVirt's reason.
 */
export function resolveConflict(
  action: PowerAction,
  stateAfter: PowerState,
  runStrategy: RunStrategy,
  kubeMessage: string,
): 'ok' | BackendError {
  if (endStateHolds(action, stateAfter)) return 'ok';
  if (stateAfter === 'PoweringOn' || stateAfter === 'PoweringOff') {
    return new BackendError('Busy', `the VM is ${stateAfter}; try again shortly (${kubeMessage})`, { retryAfterSeconds: 2 });
  }
  // Always (and RerunOnFailure after a failure) already asks KubeVirt to run the VM, which is
  // (re)starting it by itself: the request is satisfied
  if ((action === 'on' || action === 'powerCycle') && (runStrategy === 'Always' || runStrategy === 'RerunOnFailure')) return 'ok';
  if (runStrategy === 'Once') {
    return new BackendError('Conflict', `runStrategy Once does not allow this; change the VM's runStrategy (${kubeMessage})`);
  }
  return new BackendError('Conflict', `KubeVirt refused: ${kubeMessage}`);
}
