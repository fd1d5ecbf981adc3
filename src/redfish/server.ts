// PLACEHOLDER — the Redfish helper replaces this file. Signature contract used by src/agent/agent.ts.
import type { ProtocolServer, ProtocolServerOptions } from '../agent/types.js';

export interface RedfishServerOptions extends ProtocolServerOptions {
  /** Session idle timeout in seconds (SessionService.SessionTimeout), default 1800. */
  sessionTimeoutSeconds?: number;
  /** Serve HTTPS with this certificate/key; plainHttp says what plain HTTP on the same port does. */
  tls?: { cert: Buffer | string; key: Buffer | string; plainHttp?: 'redirect' | 'refuse' };
}

export async function startRedfishServer(_opts: RedfishServerOptions): Promise<ProtocolServer> {
  throw new Error('Redfish server not implemented yet');
}
