/**
 * The boot-once life cycle of one KubeVirt VM (pure decisions in boot.ts onceStep): mark the
 * override consumed when the VMI that boots it runs, and put the previous order back when that VMI
 * ends, timed so that KubeVirt does not flag the VM RestartRequired (docs/kubevirt.md "Boot
 * override"). All state is in the VM's annotation, so a restarted agent carries on where the last
 * one stopped.
 */
import type { Logger } from '../../common/logger.js';
import { BackendError } from '../types.js';
import { isKubeApiError, type KubeClient } from '../../kube/client.js';
import { Resources } from '../../kube/resources.js';
import { bootSignature, buildBootPatch, consumeWrite, nextBootVm, onceStep, parseSaved, restoreWrite, type BootWrite } from './boot.js';
import type { ObjectSource } from './informer.js';
import type { VirtualMachine, VirtualMachineInstance } from './types.js';

const WRITE_ATTEMPTS = 5;
/** retry of a failed bookkeeping write: 2 s, doubling up to 30 s while it keeps failing (an outage) */
const RETRY_MIN_MS = 2_000;
const RETRY_MAX_MS = 30_000;

export interface BootOnceDeps {
  client: KubeClient;
  namespace: string;
  name: string;
  logger: Logger;
  vmWatch: ObjectSource<VirtualMachine>;
  vmiWatch: ObjectSource<VirtualMachineInstance>;
}

/** Whether the next boot (template as restored for a consumed once) differs from what the VMI booted. */
export function nextBootDiffers(vm: VirtualMachine, vmi: VirtualMachineInstance | undefined): boolean {
  return vmi !== undefined && bootSignature(nextBootVm(vm).spec?.template?.spec) !== bootSignature(vmi.spec);
}

export class BootOnceKeeper {
  private running: Promise<void> | undefined;
  private again = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private retryMs = RETRY_MIN_MS;

  constructor(private readonly d: BootOnceDeps) {}

  /**
   * A watch saw a change: act on the boot-once annotation if there is something to do (cheap check
   * on the cached objects first, then re-read and decide again before writing).
   */
  changed(vm: VirtualMachine | undefined, vmi: VirtualMachineInstance | undefined): void {
    if (this.closed || !parseSaved(vm)) return;
    if (onceStep(vm, vmi).kind === 'none') return;
    this.kick();
  }

  /**
   * Before a power call that ends the consuming VMI and starts the next one (restart, or a start
   * after it ended): put the previous order back first, so KubeVirt creates the next VMI from it.
   * A failure fails the power action: the guest would otherwise boot the one-time order again.
   */
  async beforeNewVmi(): Promise<void> {
    for (let attempt = 0; attempt < WRITE_ATTEMPTS; attempt++) {
      const vm = await this.d.vmWatch.refresh();
      const saved = parseSaved(vm);
      if (!vm || !saved || saved.consumedBy === null) return;
      try {
        await this.patch(vm, restoreWrite(vm)!);
        this.d.logger.info({ vmi: saved.consumedBy }, 'boot-once override consumed; previous boot order restored before the restart');
        return;
      } catch (e) {
        if (await this.lostRace(e, vm)) continue;
        throw e;
      }
    }
    throw new BackendError('Busy', 'the VM kept changing while restoring the boot order; try again', { retryAfterSeconds: 1 });
  }

  /** bookkeeping is under way or a retry is scheduled */
  get busy(): boolean {
    return this.running !== undefined || this.retryTimer !== undefined;
  }

  close(): void {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
  }

  // ---- internals -----------------------------------------------------------------------------

  private kick(): void {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.step()
      .then(() => {
        this.retryMs = RETRY_MIN_MS;
      })
      .catch((e: unknown) => {
        if (this.closed) return;
        this.d.logger.warn({ err: e instanceof Error ? e.message : String(e), retryInMs: this.retryMs }, 'boot-once bookkeeping failed; retrying');
        if (!this.retryTimer) {
          this.retryTimer = setTimeout(() => {
            this.retryTimer = undefined;
            if (!this.closed) this.kick();
          }, this.retryMs);
          this.retryTimer.unref();
          this.retryMs = Math.min(this.retryMs * 2, RETRY_MAX_MS);
        }
      })
      .finally(() => {
        this.running = undefined;
        if (this.again && !this.closed) {
          this.again = false;
          this.kick();
        }
      });
  }

  /** Re-read VM and VMI, decide, write; repeat until nothing is left to do. */
  private async step(): Promise<void> {
    for (let attempt = 0; attempt < WRITE_ATTEMPTS * 2 && !this.closed; attempt++) {
      const [vm, vmi] = await Promise.all([this.d.vmWatch.refresh(), this.d.vmiWatch.refresh()]);
      const step = onceStep(vm, vmi);
      if (!vm || step.kind === 'none') return;
      const write = step.kind === 'consume' ? consumeWrite(vm, step.uid) : restoreWrite(vm);
      if (!write) return;
      try {
        await this.patch(vm, write);
      } catch (e) {
        if (await this.lostRace(e, vm)) continue;
        throw e;
      }
      if (step.kind === 'consume') {
        this.d.logger.info({ vmi: step.uid }, 'boot-once override consumed by the VMI that booted it; the order is restored when it ends');
      } else {
        this.d.logger.info({ why: step.why }, 'boot-once override over; previous boot order restored');
        if (vmi?.status?.phase === 'Running' && !vmi.metadata?.deletionTimestamp && nextBootDiffers(vm, vmi)) {
          // only when no agent watched while the consumer ended and a later VMI already booted
          this.d.logger.warn({ vmi: vmi.metadata?.uid }, 'a later VMI booted before the boot order was restored; it takes effect at its next restart');
        }
      }
    }
  }

  private async patch(vm: VirtualMachine, write: BootWrite): Promise<void> {
    const updated = await this.d.client.jsonPatch<VirtualMachine>(Resources.vm, this.d.namespace, this.d.name, buildBootPatch(vm, write));
    if (updated?.metadata) this.d.vmWatch.offer(updated);
  }

  /** A 409, or a 422 from the resourceVersion test with the VM really moved on: re-read and retry. */
  private async lostRace(e: unknown, seen: VirtualMachine): Promise<boolean> {
    if (isKubeApiError(e, 409)) return true;
    if (!isKubeApiError(e, 422)) return false;
    const now = await this.d.vmWatch.refresh().catch(() => undefined);
    return !now || now.metadata?.resourceVersion !== seen.metadata?.resourceVersion;
  }
}
