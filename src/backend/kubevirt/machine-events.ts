/**
 * The seam events of one KubeVirt machine (src/backend/types.ts MachineEvent), derived by diffing
 * the view after every change the watches see: power transitions, boot override changes, media
 * slots (diffed by machine-media.ts), and a `booted` for each VMI seen running for the first time.
 * Also the snapshot generation, which moves whenever anything a reader sees changed.
 */
import { EventEmitter } from 'node:events';
import type { Logger } from '../../common/logger.js';
import type { MachineEvent, MachineListener, PowerState } from '../types.js';
import { deriveBootOverride } from './boot.js';
import { systemInfo } from './identity.js';
import { derivePowerState, isVmiRunning } from './power.js';
import type { VirtualMachine, VirtualMachineInstance } from './types.js';

export class MachineEventFeed {
  private readonly emitter = new EventEmitter();
  private gen = 1;
  private last: { power?: PowerState; boot?: string; info?: string } = {};
  private lastBootedUid: string | undefined;
  private bootedInitialised = false;

  constructor(private readonly logger: Logger) {
    this.emitter.setMaxListeners(0);
  }

  /** moves on with every change a snapshot would show */
  get generation(): number {
    return this.gen;
  }

  on(listener: MachineListener): () => void {
    this.emitter.on('event', listener);
    return () => this.emitter.off('event', listener);
  }

  /**
   * The watches moved to (vm, vmi); `media` is the media slots' own diff. Records the new state
   * and returns the events it makes (none on the first call, which only records) for publish(),
   * with the uid of the running VMI, if any.
   */
  diff(
    vm: VirtualMachine,
    vmi: VirtualMachineInstance | undefined,
    media: { events: MachineEvent[]; changed: boolean },
  ): { events: MachineEvent[]; runningUid: string | undefined } {
    const power = derivePowerState(vm, vmi);
    const boot = deriveBootOverride(vm);
    const bootKey = JSON.stringify(boot);
    const infoKey = JSON.stringify(systemInfo(vm, vmi));
    const out: MachineEvent[] = [];
    if (this.last.power !== undefined && this.last.power !== power) out.push({ type: 'power', from: this.last.power, to: power });
    if (this.last.boot !== undefined && this.last.boot !== bootKey) out.push({ type: 'boot', boot });
    out.push(...media.events);
    const changed = this.last.power !== power || this.last.boot !== bootKey || media.changed || this.last.info !== infoKey;
    this.last = { power, boot: bootKey, info: infoKey };

    // a VMI we have not seen running before has booted
    const runningUid = isVmiRunning(vmi) ? vmi!.metadata?.uid : undefined;
    if (runningUid && runningUid !== this.lastBootedUid) {
      if (this.bootedInitialised) out.push({ type: 'booted' });
      this.lastBootedUid = runningUid;
    }
    this.bootedInitialised = true;
    if (changed) this.gen++;
    return { events: out, runningUid };
  }

  /** Hands the events to every listener (a throwing listener is logged, the others still run). */
  publish(events: MachineEvent[]): void {
    for (const ev of events) this.emit(ev);
  }

  close(): void {
    this.emitter.removeAllListeners();
  }

  private emit(ev: MachineEvent): void {
    for (const l of this.emitter.listeners('event') as MachineListener[]) {
      try {
        l(ev);
      } catch (e) {
        this.logger.warn({ err: e instanceof Error ? e.message : String(e) }, 'machine listener threw');
      }
    }
  }
}
