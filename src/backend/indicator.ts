/**
 * The machine's identify indicator: the "chassis identify" light a data-centre technician looks for.
 * A VM has no lamp, so this is BMC state kept beside the machine (one per Machine object, gone with
 * it), and what both protocols show and set:
 * - IPMI Chassis Identify (IPMI v2.0 §28.5): an interval in seconds (default 15, 0 = off) or
 *   "force on" → blinking, timed or until turned off; Get Chassis Status byte 3 reports it (bits 5:4:
 *   0 off, 1 temporary, 2 indefinite).
 * - Redfish ComputerSystem `IndicatorLED` (Off / Lit / Blinking; deprecated in favour of
 *   `LocationIndicatorActive`, still read by sushy/Ironic's indicator API) and
 *   `LocationIndicatorActive` (true = identifying; set true it blinks, as IPMI identify does).
 * A steady `Lit` has no IPMI counterpart: Get Chassis Status reports it as indefinitely on.
 * Times are the wall clock (Date.now, as IPMI's interval is), for both protocols.
 * Not persisted: a real BMC's identify light is off again after the BMC restarts, and so is this one
 * after the agent restarts (or, in shared mode, after a VM moves to another shard).
 */
import { perObject } from '../common/per-object.js';

export type IndicatorLed = 'Off' | 'Lit' | 'Blinking';

export class Indicator {
  /** ms epoch until which it is on; Infinity = until turned off; 0 = off */
  private until = 0;
  private steady = false;

  /** IPMI Chassis Identify: blink for `seconds` (0 = off), or until turned off when `seconds` is Infinity. */
  identify(seconds: number, now = Date.now()): void {
    this.steady = false;
    this.until = seconds === Infinity ? Infinity : seconds <= 0 ? 0 : now + seconds * 1000;
  }

  /** Redfish IndicatorLED: a state until changed. */
  setLed(led: IndicatorLed): void {
    this.steady = led === 'Lit';
    this.until = led === 'Off' ? 0 : Infinity;
  }

  led(now = Date.now()): IndicatorLed {
    if (!(this.until > now)) return 'Off';
    return this.steady ? 'Lit' : 'Blinking';
  }

  active(now = Date.now()): boolean {
    return this.until > now;
  }

  /** Get Chassis Status byte 3 bits 5:4: 0 off, 1 timed on, 2 indefinitely on. */
  ipmiState(now = Date.now()): 0 | 1 | 2 {
    if (this.until === Infinity) return 2;
    return this.until > now ? 1 : 0;
  }
}

const indicators = perObject<object, Indicator>(() => new Indicator());

/** The indicator of one machine (created off on first use). */
export function indicatorOf(machine: object): Indicator {
  return indicators.get(machine);
}
