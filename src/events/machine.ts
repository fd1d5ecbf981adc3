/**
 * The machine's own changes as events: the backend's MachineEvent stream (power, boot, media,
 * booted) and its health (MachineSnapshot.health, polled) become ResourceEvent messages on the hub.
 * Changes made outside the BMC (virtctl, the guest shutting down) arrive the same way, through the
 * backend's watch, so they are reported too.
 */
import type { BootOverride, BootTarget, HealthStatus, Machine, MachineEvent, MediaSlot, PowerState } from '../backend/types.js';
import type { components } from '../../generated/redfish/schema.js';
import type { EventHub, EventInput } from './hub.js';

/** Resource URIs of our one system and manager (src/redfish/core/types.ts REDFISH_IDS). */
export const SYSTEM_URI = '/redfish/v1/Systems/1';
export const MANAGER_URI = '/redfish/v1/Managers/BMC';
export const mediaUri = (id: string): string => `${MANAGER_URI}/VirtualMedia/${encodeURIComponent(id)}`;

const POWER_KEYS: Readonly<Record<PowerState, { key: string; reason: string }>> = {
  On: { key: 'ResourcePoweredOn', reason: 'PoweredOn' },
  Off: { key: 'ResourcePoweredOff', reason: 'PoweredOff' },
  PoweringOn: { key: 'ResourcePoweringOn', reason: 'PoweringOn' },
  PoweringOff: { key: 'ResourcePoweringOff', reason: 'PoweringOff' },
  Paused: { key: 'ResourcePaused', reason: 'Paused' },
};

/**
 * Backend boot target → Redfish BootSourceOverrideTarget: the one map, used by the events here and
 * by the ComputerSystem resource (src/redfish/resources/systems.ts) both ways.
 */
export const REDFISH_BOOT_TARGET: Readonly<Record<BootTarget, components['schemas']['ComputerSystem_BootSource']>> = {
  none: 'None',
  pxe: 'Pxe',
  hdd: 'Hdd',
  cd: 'Cd',
  usb: 'Usb',
  floppy: 'Floppy',
  biosSetup: 'BiosSetup',
  diags: 'Diags',
  uefiHttp: 'UefiHttp',
};

export interface MachineBridgeOptions {
  /** Poll MachineSnapshot.health this often (ms); 0 = never (call checkHealth() yourself). Default 5000. */
  healthIntervalMs?: number;
}

export class MachineEventBridge {
  private boot: BootOverride | undefined;
  private readonly media = new Map<string, MediaSlot['state']>();
  private health: HealthStatus = 'OK';
  private readonly off: () => void;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly machine: Machine,
    private readonly hub: EventHub,
    opts: MachineBridgeOptions = {},
  ) {
    this.off = machine.on((e) => this.onMachineEvent(e));
    const every = opts.healthIntervalMs ?? 5000;
    if (every > 0) {
      this.timer = setInterval(() => void this.checkHealth(), every);
      this.timer.unref();
    }
    hub.addCloser(() => this.close());
  }

  /** Seed what later changes are compared with (boot override, media states, health). */
  async start(): Promise<void> {
    try {
      const snap = await this.machine.snapshot();
      this.boot ??= snap.boot;
      for (const s of snap.media) if (!this.media.has(s.id)) this.media.set(s.id, s.state);
      this.health = snap.health?.status ?? 'OK';
    } catch {
      // an outage at start: checkHealth reports it
    }
  }

  close(): void {
    this.off();
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private emit(input: Omit<EventInput, 'source'>): void {
    this.hub.emit({ source: 'backend', ...input });
  }

  onMachineEvent(e: MachineEvent): void {
    switch (e.type) {
      case 'power': {
        if (e.from === e.to) return;
        const k = POWER_KEYS[e.to];
        this.emit({ kind: 'power', key: k.key, reason: k.reason, args: [SYSTEM_URI], origin: SYSTEM_URI, resourceType: 'ComputerSystem', detail: { from: e.from, to: e.to } });
        return;
      }
      case 'booted':
        if (this.boot?.enabled === 'once') this.consumed();
        return;
      case 'boot': {
        const prev = this.boot;
        this.boot = e.boot;
        if (prev?.enabled === 'once' && e.boot.enabled === 'disabled') {
          this.boot = prev; // consumed() reports and records it
          this.consumed();
          return;
        }
        if (prev && prev.target === e.boot.target && prev.enabled === e.boot.enabled && prev.mode === e.boot.mode) return;
        const target = REDFISH_BOOT_TARGET[e.boot.target];
        this.emit({
          kind: 'boot',
          key: 'PropertyValueModifiedByClient',
          reason: 'BootOverrideSet',
          args: ['Boot/BootSourceOverrideTarget', target],
          origin: SYSTEM_URI,
          resourceType: 'ComputerSystem',
          detail: { target, enabled: e.boot.enabled, mode: e.boot.mode },
        });
        return;
      }
      case 'media': {
        const slot = e.slot;
        const prev = this.media.get(slot.id);
        this.media.set(slot.id, slot.state);
        if (prev === slot.state) return;
        const origin = mediaUri(slot.id);
        if (slot.state === 'inserted') {
          this.emit({ kind: 'media', key: 'ResourceStateChanged', reason: 'MediaInserted', args: [origin, 'Inserted'], origin, resourceType: 'VirtualMedia', detail: { slot: slot.id } });
        } else if (slot.state === 'empty' && prev !== undefined) {
          this.emit({ kind: 'media', key: 'ResourceStateChanged', reason: 'MediaEjected', args: [origin, 'Ejected'], origin, resourceType: 'VirtualMedia', detail: { slot: slot.id } });
        } else if (slot.state === 'error') {
          // the backend's error text never carries the image URL's query (backend/probe.ts); keep it short
          const why = (slot.error ?? 'insert failed').replace(/\?\S*/g, '').slice(0, 200);
          this.emit({ kind: 'mediaFailed', key: 'ResourceErrorsDetected', reason: 'MediaInsertFailed', args: ['Image', why], origin, resourceType: 'VirtualMedia', detail: { slot: slot.id } });
        }
        return;
      }
    }
  }

  private consumed(): void {
    this.boot = this.boot ? { ...this.boot, enabled: 'disabled' } : this.boot;
    this.emit({ kind: 'bootConsumed', key: 'ResourceStateChanged', reason: 'BootOverrideConsumed', args: [SYSTEM_URI, 'BootOverrideConsumed'], origin: SYSTEM_URI, resourceType: 'ComputerSystem' });
  }

  /** Compare the backend's health with the last seen; report outage and recovery. */
  async checkHealth(): Promise<void> {
    let status: HealthStatus;
    let message: string | undefined;
    try {
      const snap = await this.machine.snapshot();
      status = snap.health?.status ?? 'OK';
      message = snap.health?.message;
    } catch (e) {
      status = 'Critical';
      message = e instanceof Error ? e.message : String(e);
    }
    if (status === this.health) return;
    this.health = status;
    const key = status === 'OK' ? 'ResourceStatusChangedOK' : status === 'Warning' ? 'ResourceStatusChangedWarning' : 'ResourceStatusChangedCritical';
    const reason = status === 'OK' ? 'BackendRecovered' : 'BackendUnavailable';
    this.emit({
      kind: 'health',
      key,
      reason,
      args: [SYSTEM_URI, status],
      origin: SYSTEM_URI,
      resourceType: 'ComputerSystem',
      detail: { status, ...(message ? { message: message.replace(/\?\S*/g, '').slice(0, 200) } : {}) },
    });
  }
}
