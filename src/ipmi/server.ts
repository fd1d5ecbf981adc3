// PLACEHOLDER — the IPMI helper replaces this file. Signature contract used by src/agent/agent.ts.
import type { ProtocolServer, ProtocolServerOptions } from '../agent/types.js';

export interface IpmiServerOptions extends ProtocolServerOptions {
  /** Allow cipher suite 0 and IPMI 1.5 auth type NONE (off by default). */
  allowInsecure?: boolean;
  /** Idle session timeout in seconds (default 60). */
  sessionTimeoutSeconds?: number;
  /** Maximum concurrent sessions (default 32). */
  maxSessions?: number;
}

export async function startIpmiServer(_opts: IpmiServerOptions): Promise<ProtocolServer> {
  throw new Error('IPMI server not implemented yet');
}
