/**
 * SOL configuration parameters (IPMI v2.0 §26.2–26.3, Table 26-5), one set for the LAN channel.
 * Get/Set SOL Configuration Parameters (netFn 0x0C, cmds 0x22/0x21) read and write them; the SOL
 * payload reads the timing ones (accumulate interval/threshold, retry count/interval) at the
 * moment it needs them, so a change applies to the running activation at once.
 * Everything is kept in memory: "non-volatile" values last as long as the agent process.
 */
import { Privilege } from '../types.js';

export const SolParam = {
  SET_IN_PROGRESS: 0,
  ENABLE: 1,
  AUTHENTICATION: 2,
  CHARACTER_ACCUMULATE: 3,
  RETRY: 4,
  NONVOLATILE_BIT_RATE: 5,
  VOLATILE_BIT_RATE: 6,
  PAYLOAD_CHANNEL: 7,
  PAYLOAD_PORT: 8,
} as const;

/** Parameter revision byte returned first by Get SOL Configuration Parameters (§26.3: 11h). */
export const SOL_PARAM_REVISION = 0x11;

/** Set SOL Configuration Parameters completion codes (§26.2). */
export const SolConfigCC = {
  PARAM_NOT_SUPPORTED: 0x80,
  SET_IN_PROGRESS_ACTIVE: 0x81,
  READ_ONLY: 0x82,
} as const;

/** Bit rate codes of params 5/6: 0 = "use the serial channel's setting", 6…0xA = 9600…115200. */
const BIT_RATES = new Set([0x00, 0x06, 0x07, 0x08, 0x09, 0x0a]);

export type SetResult = { cc: number };

export class SolConfig {
  setInProgress = 0;
  enabled = true;
  forceEncryption = true;
  forceAuthentication = true;
  /** Minimum privilege to activate SOL (param 2 bits 3:0) */
  privilege: number = Privilege.User;
  /** Character accumulate interval, 5 ms units, 1-based */
  accumulateInterval = 4;
  /** Character send threshold, 1-based */
  sendThreshold = 200;
  /** Retries after the first transmission, 0..7 */
  retryCount = 7;
  /** Retry interval, 10 ms units (0 means 10 ms here, the smallest step) */
  retryInterval = 10;
  nonVolatileBitRate = 0x0a;
  volatileBitRate = 0x0a;

  constructor(
    /** The channel SOL runs on (param 7) */
    readonly channel: number,
    /** The UDP port SOL runs on (param 8): the one the server listens on */
    private readonly port: () => number,
  ) {}

  get accumulateMs(): number {
    return Math.max(1, this.accumulateInterval) * 5;
  }

  get retryMs(): number {
    return Math.max(1, this.retryInterval) * 10;
  }

  /** Parameter data (without the revision byte), or undefined when not supported. */
  get(param: number): Buffer | undefined {
    switch (param) {
      case SolParam.SET_IN_PROGRESS:
        return Buffer.from([this.setInProgress]);
      case SolParam.ENABLE:
        return Buffer.from([this.enabled ? 1 : 0]);
      case SolParam.AUTHENTICATION:
        return Buffer.from([(this.forceEncryption ? 0x80 : 0) | (this.forceAuthentication ? 0x40 : 0) | (this.privilege & 0x0f)]);
      case SolParam.CHARACTER_ACCUMULATE:
        return Buffer.from([this.accumulateInterval, this.sendThreshold]);
      case SolParam.RETRY:
        return Buffer.from([this.retryCount & 0x07, this.retryInterval]);
      case SolParam.NONVOLATILE_BIT_RATE:
        return Buffer.from([this.nonVolatileBitRate]);
      case SolParam.VOLATILE_BIT_RATE:
        return Buffer.from([this.volatileBitRate]);
      case SolParam.PAYLOAD_CHANNEL:
        return Buffer.from([this.channel & 0x0f]);
      case SolParam.PAYLOAD_PORT: {
        const p = this.port();
        return Buffer.from([p & 0xff, (p >>> 8) & 0xff]);
      }
      default:
        return undefined;
    }
  }

  /**
   * Applies one parameter write. Values outside the spec's ranges get 0xCC and change nothing;
   * length errors get 0xC7.
   */
  set(param: number, data: Buffer): SetResult {
    const len = (n: number) => (data.length !== n ? { cc: 0xc7 } : undefined);
    const bad = { cc: 0xcc };
    switch (param) {
      case SolParam.SET_IN_PROGRESS: {
        const e = len(1);
        if (e) return e;
        const v = data[0]! & 0x03;
        if (v === 0x03) return bad;
        if (v === 0x01 && this.setInProgress === 0x01) return { cc: SolConfigCC.SET_IN_PROGRESS_ACTIVE };
        // Commit write (2) applies at once here (every write already took effect): back to complete.
        this.setInProgress = v === 0x02 ? 0 : v;
        return { cc: 0 };
      }
      case SolParam.ENABLE: {
        const e = len(1);
        if (e) return e;
        if ((data[0]! & 0xfe) !== 0) return bad;
        this.enabled = data[0] === 1;
        return { cc: 0 };
      }
      case SolParam.AUTHENTICATION: {
        const e = len(1);
        if (e) return e;
        const b = data[0]!;
        const priv = b & 0x0f;
        if ((b & 0x30) !== 0 || priv < Privilege.User || priv > Privilege.Oem) return bad;
        this.forceEncryption = (b & 0x80) !== 0;
        this.forceAuthentication = (b & 0x40) !== 0;
        this.privilege = priv;
        return { cc: 0 };
      }
      case SolParam.CHARACTER_ACCUMULATE: {
        const e = len(2);
        if (e) return e;
        // Both are 1-based: 0 is reserved.
        if (data[0] === 0 || data[1] === 0) return bad;
        this.accumulateInterval = data[0]!;
        this.sendThreshold = data[1]!;
        return { cc: 0 };
      }
      case SolParam.RETRY: {
        const e = len(2);
        if (e) return e;
        if ((data[0]! & 0xf8) !== 0) return bad;
        this.retryCount = data[0]!;
        this.retryInterval = data[1]!;
        return { cc: 0 };
      }
      case SolParam.NONVOLATILE_BIT_RATE:
      case SolParam.VOLATILE_BIT_RATE: {
        const e = len(1);
        if (e) return e;
        const v = data[0]! & 0x0f;
        if ((data[0]! & 0xf0) !== 0 || !BIT_RATES.has(v)) return bad;
        if (param === SolParam.NONVOLATILE_BIT_RATE) this.nonVolatileBitRate = v;
        else this.volatileBitRate = v;
        return { cc: 0 };
      }
      case SolParam.PAYLOAD_CHANNEL:
      case SolParam.PAYLOAD_PORT:
        // The port is the server's own and SOL runs only on this channel: both read-only.
        return { cc: SolConfigCC.READ_ONLY };
      default:
        return { cc: SolConfigCC.PARAM_NOT_SUPPORTED };
    }
  }
}
