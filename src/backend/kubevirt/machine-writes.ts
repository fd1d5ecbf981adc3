/**
 * The VM writes of KubeVirtMachine: power actions (VM/VMI action subresources, with the fallbacks
 * a 409 calls for, and the boot-once restore before a call that creates the next VMI), the boot
 * override, and JSON patches of the VM guarded by its resourceVersion (asset tag, Secure Boot).
 * Every write re-reads first (the host's fresh view) and retries when the VM moved meanwhile; the
 * machine (machine.ts) owns the reads, the watches and the events.
 */
import type { Logger } from '../../common/logger.js';
import { BackendError, isBackendError, POWER_ACTIONS, type BootOverride, type Capabilities, type PowerAction } from '../types.js';
import { validateBootChange } from '../validate.js';
import { buildBootPatch, deriveBootOverride, listBootDevices, planBootWrite, rebootTerminates } from './boot.js';
import { isKubeApiError, type JsonPatchOp, type KubeClient } from '../../kube/client.js';
import { Resources } from '../../kube/resources.js';
import { nextBootDiffers, type BootOnceKeeper } from './machine-boot.js';
import type { MediaHost } from './machine-media.js';
import { derivePowerState, effectiveRunStrategy, planPowerAction, resolveConflict, type VmAction } from './power.js';
import type { VirtualMachine } from './types.js';

const WRITE_ATTEMPTS = 5;

export interface VmWriteDeps {
  client: KubeClient;
  namespace: string;
  name: string;
  logger: Logger;
  /** the machine's fresh VM/VMI reads, its own-write offer, moved check and error mapping */
  host: Omit<MediaHost, 'changed'>;
  bootOnce: BootOnceKeeper;
  capabilities(): Capabilities;
}

export class VmWrites {
  constructor(private readonly d: VmWriteDeps) {}

  async power(action: PowerAction): Promise<void> {
    if (!(POWER_ACTIONS as readonly string[]).includes(action)) {
      throw new BackendError('InvalidArgument', `unknown power action ${String(action)}`);
    }
    const v = await this.d.host.view(true);
    const state = derivePowerState(v.vm, v.vmi);
    // the next boot differs from what the VMI booted (a boot write since it started, or a consumed
    // boot-once whose previous order comes back): a soft reboot inside the VMI would not apply it
    const pendingBootChange = nextBootDiffers(v.vm, v.vmi);
    const softRebootEndsVmi = rebootTerminates(v.vmi?.spec) && effectiveRunStrategy(v.vm) !== 'Always';
    const plan = planPowerAction(action, { state, vmi: v.vmi, pendingBootChange, softRebootEndsVmi });
    if (plan.kind === 'noop') return;
    if (plan.kind === 'error') throw plan.error;
    const { call } = plan;
    const target = call.target === 'vm' ? Resources.vmActions : Resources.vmiActions;
    this.d.logger.info({ action, state, call: call.sub, body: call.body }, 'power action');
    // a new VMI follows: a consumed boot-once override is over, restore the previous order first
    // (an off leaves it to the watch: restored once the VMI is gone, see boot.ts onceStep)
    // (not for a restart KubeVirt refuses anyway: runStrategy Halted/Once, subresource.go)
    const refusedRestart = call.sub === 'restart' && ['Halted', 'Once'].includes(effectiveRunStrategy(v.vm));
    if ((call.sub === 'restart' && !refusedRestart) || call.sub === 'start') await this.beforeNewVmi(action);
    try {
      await this.d.client.putSubresource(target, this.d.namespace, this.d.name, call.sub, call.body);
    } catch (e) {
      if (isKubeApiError(e, 409)) {
        const after = await this.d.host.view(true);
        const stateAfter = derivePowerState(after.vm, after.vmi);
        // a soft reboot the guest cannot take: fall back to a graceful VMI restart
        if (call.sub === 'softreboot' && /agent|ACPI/i.test(e.kubeMessage) && stateAfter === 'On') {
          return this.putPower('restart', {}, action);
        }
        const verdict = resolveConflict(action, stateAfter, effectiveRunStrategy(after.vm), e.kubeMessage);
        if (verdict === 'ok') return;
        throw verdict;
      }
      throw this.d.host.mapError(e, `power ${action}`);
    }
  }

  async setBootOverride(change: Partial<BootOverride>): Promise<BootOverride> {
    validateBootChange(change, this.d.capabilities());
    for (let attempt = 0; attempt < WRITE_ATTEMPTS; attempt++) {
      const v = await this.d.host.view(true);
      const current = deriveBootOverride(v.vm);
      const next: BootOverride = { ...current, ...change };
      // a target alone arms it once when no override is active (what most BMCs do)
      if (change.target !== undefined && change.enabled === undefined && current.enabled === 'disabled') next.enabled = 'once';
      if (next.target === 'none') next.enabled = 'disabled';
      if (next.enabled === 'disabled') next.target = 'none';
      if (next.target !== 'none' && !listBootDevices(v.vm).some((d) => d.cls === next.target)) {
        throw new BackendError('Unsupported', `the VM has no device for boot target ${next.target}`);
      }
      const write = planBootWrite(v.vm, next, v.vmi?.metadata?.uid ?? null);
      if (!write) return current;
      try {
        const updated = await this.d.client.jsonPatch<VirtualMachine>(Resources.vm, this.d.namespace, this.d.name, buildBootPatch(v.vm, write));
        if (updated?.metadata) this.d.host.offerVm(updated);
        this.d.logger.info({ boot: next }, 'boot override written');
        return deriveBootOverride(updated?.metadata ? updated : (await this.d.host.view(true)).vm);
      } catch (e) {
        if (isKubeApiError(e, 409)) continue; // changed under us: re-read, retry
        // 422 is both "the resourceVersion test failed" and "the new spec is invalid": only the
        // former is worth a retry, and it shows as a moved resourceVersion
        if (isKubeApiError(e, 422) && (await this.d.host.vmMoved(v.vm))) continue;
        throw this.d.host.mapError(e, 'set boot override');
      }
    }
    throw new BackendError('Busy', 'the VM kept changing while writing the boot override; try again', { retryAfterSeconds: 1 });
  }

  /** Re-read the VM, JSON-patch it (guarded by its resourceVersion), retry when it moved meanwhile. */
  async patchVm(what: string, build: (vm: VirtualMachine) => JsonPatchOp[]): Promise<void> {
    for (let attempt = 0; attempt < WRITE_ATTEMPTS; attempt++) {
      const v = await this.d.host.view(true);
      const ops = build(v.vm);
      if (ops.length === 0) return;
      try {
        const updated = await this.d.client.jsonPatch<VirtualMachine>(Resources.vm, this.d.namespace, this.d.name, ops);
        if (updated?.metadata) this.d.host.offerVm(updated);
        return;
      } catch (e) {
        if (isKubeApiError(e, 409)) continue;
        if (isKubeApiError(e, 422) && (await this.d.host.vmMoved(v.vm))) continue;
        throw this.d.host.mapError(e, what);
      }
    }
    throw new BackendError('Busy', `the VM kept changing while trying to ${what}; try again`, { retryAfterSeconds: 1 });
  }

  /** Boot-once: put the previous order back before a power call that creates the next VMI. */
  private async beforeNewVmi(action: PowerAction): Promise<void> {
    try {
      await this.d.bootOnce.beforeNewVmi();
    } catch (e) {
      throw isBackendError(e) ? e : this.d.host.mapError(e, `power ${action}: restore the boot order of a boot-once override`);
    }
  }

  /** PUT a VM action subresource (restart, ...) and map its failure. */
  private async putPower(sub: VmAction, body: unknown, action: PowerAction): Promise<void> {
    if (sub === 'restart' || sub === 'start') await this.beforeNewVmi(action);
    try {
      await this.d.client.putSubresource(Resources.vmActions, this.d.namespace, this.d.name, sub, body);
    } catch (e) {
      throw this.d.host.mapError(e, `power ${action}`);
    }
  }
}
