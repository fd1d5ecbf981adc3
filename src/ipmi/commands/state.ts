/**
 * BMC-local state the IPMI commands keep per machine: what exists only on the BMC side and not in
 * the backend seam (boot option bytes the seam cannot express, set-in-progress, how the
 * machine was last powered on, SDR reservations). Keyed by the Machine object so every command
 * table talking to the same machine sees one state, and it goes away with the machine.
 */
import type { Machine } from '../../backend/types.js';
import { perObject } from '../../common/per-object.js';
import { BOOT_FLAGS_LENGTH } from './boot-options.js';

/** How long after an IPMI power-on/reset/cycle a boot the backend reports is credited to IPMI. */
export const IPMI_BOOT_ATTRIBUTION_MS = 120_000;

export interface BmcState {
  /** Boot option parameter 0 bits 1:0 (0 set complete, 1 set in progress) */
  setInProgress: number;
  /** When set in progress was last entered (ms epoch) */
  setInProgressSince: number;
  /** Boot option parameter 3 (valid bit clearing), bits 4:0 */
  validBitClearing: number;
  /** Boot option parameter 4 byte 2 (boot info acknowledge bits) */
  bootInfoAck: number;
  /** Last parameter 5 bytes written */
  bootFlags: Buffer;
  /** Parameters marked invalid/locked through bit 7 of the selector */
  invalidParams: Set<number>;
  /** Until when (ms epoch) a boot is attributed to the last IPMI chassis control */
  ipmiBootPendingUntil: number;
  /** The machine's last power-on/restart came from an IPMI Chassis Control command */
  lastBootViaIpmi: boolean;
  /** Last SDR repository reservation id handed out (0 = none yet) */
  sdrReservation: number;
  /** Last SEL reservation id handed out */
  selReservation: number;
}

const states = perObject<Machine, BmcState>((machine) => {
  const state: BmcState = {
    setInProgress: 0,
    setInProgressSince: 0,
    validBitClearing: 0,
    bootInfoAck: 0,
    bootFlags: Buffer.alloc(BOOT_FLAGS_LENGTH),
    invalidParams: new Set(),
    ipmiBootPendingUntil: 0,
    lastBootViaIpmi: false,
    sdrReservation: 0,
    selReservation: 0,
  };
  // A power-on or boot that no recent IPMI command asked for was started by someone else
  // (Redfish, kubectl, the guest): the "last power event: command" bit no longer holds.
  machine.on((ev) => {
    const poweredOn =
      (ev.type === 'power' && (ev.from === 'Off' || ev.from === 'PoweringOff') && (ev.to === 'On' || ev.to === 'PoweringOn')) ||
      ev.type === 'booted';
    if (poweredOn) state.lastBootViaIpmi = Date.now() <= state.ipmiBootPendingUntil;
  });
  return state;
});

export function bmcState(machine: Machine): BmcState {
  return states.get(machine);
}

/** Reservation ids are 16-bit, never 0. */
export function nextReservation(current: number): number {
  return current >= 0xffff ? 1 : current + 1;
}
