/**
 * The BMC's SOL service: one SOL payload instance (type 1, instance 1) on the LAN channel, owned
 * by at most one RMCP+ session at a time (IPMI v2.0 §24.1–24.5), and the channel's SOL
 * configuration. The session layer hands it SOL packets and tells it when sessions end; the
 * payload commands (src/ipmi/commands/payload.ts) activate and deactivate through it.
 */
import { consoleWriterLock, type ConsoleWriter } from '../../backend/console-writer.js';
import type { Machine } from '../../backend/types.js';
import type { Logger } from '../../common/logger.js';
import { Privilege, type IpmiResponse } from '../types.js';
import { SolConfig } from './config.js';
import { SOL_HEADER } from './packet.js';
import { SolPayload, type SolCounters } from './payload.js';

export const SOL_PAYLOAD_TYPE = 0x01;
export const SOL_INSTANCE = 1;
/** Instances of the SOL payload this BMC supports at once */
export const SOL_INSTANCES = 1;
/**
 * Payload size announced both ways in Activate Payload (header included). The accepted-character
 * count is one byte, so 4 + 251 keeps any client that reads the figure as "characters" in range.
 */
export const SOL_PAYLOAD_SIZE = 255;

/** Activate Payload completion codes (§24.1 Table 24-2). */
export const ActivateCC = {
  ALREADY_ACTIVE: 0x80,
  TYPE_DISABLED: 0x81,
  LIMIT_REACHED: 0x82,
  CANNOT_WITH_ENCRYPTION: 0x83,
  CANNOT_WITHOUT_ENCRYPTION: 0x84,
} as const;

/** Deactivate Payload completion codes (§24.2). */
export const DeactivateCC = {
  ALREADY_DEACTIVATED: 0x80,
  TYPE_DISABLED: 0x81,
} as const;

/** What the manager needs to know about the session asking. */
export interface SolSession {
  readonly id: number;
  readonly privilege: Privilege;
  /** 'rmcp+' for IPMI 2.0 sessions */
  readonly authType: string;
  /** Whether this session's packets are encrypted / authenticated (its cipher suite) */
  readonly encrypted: boolean;
  readonly authenticated: boolean;
}

/** How SOL packets reach a session (the session layer wraps and sends them). */
export interface SolTransport {
  /** Sends a SOL payload in the given session; false when the session is gone. */
  transmit(sessionId: number, payload: Buffer): boolean;
  /** Whether the session is still open (not closed, not timed out). */
  isLive(sessionId: number): boolean;
}

export interface SolManagerOptions {
  machine: Pick<Machine, 'openConsole'>;
  logger: Logger;
  channel: number;
  /** The UDP port SOL answers on (the IPMI server's) */
  port: () => number;
  /** Output bytes held per activation at most (default 256 KiB) */
  outputLimit?: number;
}


export class SolManager {
  readonly config: SolConfig;
  private transport: SolTransport | undefined;
  private owner: { sessionId: number; payload: SolPayload; writer: ConsoleWriter } | undefined;
  private readonly opts: SolManagerOptions;

  constructor(opts: SolManagerOptions) {
    this.opts = opts;
    this.config = new SolConfig(opts.channel, opts.port);
  }

  /** Whether the machine has a console at all. */
  get available(): boolean {
    return typeof this.opts.machine.openConsole === 'function';
  }

  bind(transport: SolTransport): void {
    this.transport = transport;
  }

  /** The session that owns instance 1, or 0. An owner whose session has gone is let go first. */
  get ownerSessionId(): number {
    this.sweep();
    return this.owner?.sessionId ?? 0;
  }

  /** Ends an activation whose session closed or timed out without telling us. */
  sweep(): void {
    const o = this.owner;
    if (o && this.transport && !this.transport.isLive(o.sessionId)) this.end(o.sessionId, false);
  }

  get counters(): SolCounters | undefined {
    return this.owner?.payload.counters;
  }

  /** The running payload (tests). */
  get payload(): SolPayload | undefined {
    return this.owner?.payload;
  }

  /**
   * Activate Payload for SOL instance 1. `aux` is request byte 3: bit 7 encryption, bit 6
   * authentication, bits 3:2 serial alert behaviour, bit 1 startup handshake.
   */
  activate(s: SolSession, instance: number, aux: number): IpmiResponse {
    const cfg = this.config;
    if (!this.available || !cfg.enabled) return { cc: ActivateCC.TYPE_DISABLED };
    if (instance !== SOL_INSTANCE) return { cc: 0xcc };
    if (s.authType !== 'rmcp+') return { cc: 0xd5 };
    if (s.privilege < cfg.privilege) return { cc: 0xd4 };
    // One instance: a second activation, from any session, is refused (0x80) until deactivated.
    this.sweep();
    if (this.owner) return { cc: ActivateCC.ALREADY_ACTIVE };
    const wantEnc = (aux & 0x80) !== 0;
    const wantAuth = (aux & 0x40) !== 0;
    // SOL packets travel with the session's own protection, like every payload of the session.
    if (wantEnc && !s.encrypted) return { cc: ActivateCC.CANNOT_WITH_ENCRYPTION };
    if (!wantEnc && (s.encrypted || cfg.forceEncryption)) return { cc: ActivateCC.CANNOT_WITHOUT_ENCRYPTION };
    if ((wantAuth && !s.authenticated) || (!wantAuth && (s.authenticated || cfg.forceAuthentication))) {
      // No code of its own for authentication: "invalid data field" (§24.1)
      return { cc: 0xcc };
    }
    const console = this.opts.machine.openConsole!();
    const sessionId = s.id;
    const log = this.opts.logger.child({ sol: sessionId });
    const payload = new SolPayload({
      console,
      config: cfg,
      maxChars: SOL_PAYLOAD_SIZE - SOL_HEADER,
      ...(this.opts.outputLimit !== undefined ? { outputLimit: this.opts.outputLimit } : {}),
      log,
      transmit: (buf) => {
        if (this.transport && !this.transport.transmit(sessionId, buf)) this.end(sessionId, false);
      },
    });
    // SOL takes the console input from a browser console (src/backend/console-writer.ts)
    const writer: ConsoleWriter = { kind: 'sol', label: `IPMI SOL session 0x${sessionId.toString(16).padStart(8, '0')}` };
    consoleWriterLock(this.opts.machine).acquire(writer, true);
    this.owner = { sessionId, payload, writer };
    log.info({ console: console.state }, 'SOL activated');
    const port = this.opts.port();
    const data = Buffer.alloc(12);
    // bytes 1-4 auxiliary response data: none for SOL
    data.writeUInt16LE(SOL_PAYLOAD_SIZE, 4); // inbound payload size
    data.writeUInt16LE(SOL_PAYLOAD_SIZE, 6); // outbound payload size
    data.writeUInt16LE(port, 8);
    data.writeUInt16LE(0xffff, 10); // no VLAN
    return { cc: 0, data };
  }

  /**
   * Deactivate Payload (any session may end the activation, §24.2). The owner gets a last packet
   * saying "deactivating" only when another session ends it: the owner's own request already has
   * its answer, and a SOL packet right after it is read by ipmitool as the answer to its next
   * request (`sol looptest`: "Unexpected data length (0) ... activation response").
   */
  deactivate(instance: number, bySessionId?: number): number {
    if (!this.available) return DeactivateCC.TYPE_DISABLED;
    if (instance !== SOL_INSTANCE) return 0xcc;
    this.sweep();
    if (!this.owner) return DeactivateCC.ALREADY_DEACTIVATED;
    this.end(this.owner.sessionId, this.owner.sessionId !== bySessionId);
    return 0;
  }

  /** A SOL payload arrived in a session (authenticated and decrypted). */
  receive(sessionId: number, payload: Buffer): void {
    const o = this.owner;
    if (!o || o.sessionId !== sessionId) {
      this.opts.logger.debug({ sid: sessionId }, 'SOL packet for a session without an active payload dropped');
      return;
    }
    o.payload.receive(payload);
  }

  /** The session ended (closed, timed out): its activation ends with it. */
  sessionClosed(sessionId: number): void {
    if (this.owner?.sessionId === sessionId) this.end(sessionId, false);
  }

  closeAll(): void {
    if (this.owner) this.end(this.owner.sessionId, false);
  }

  private end(sessionId: number, notify: boolean): void {
    const o = this.owner;
    if (!o || o.sessionId !== sessionId) return;
    this.owner = undefined;
    consoleWriterLock(this.opts.machine).release(o.writer);
    o.payload.deactivate(notify);
    this.opts.logger.info({ sol: sessionId, ...o.payload.counters }, 'SOL deactivated');
  }
}
