/**
 * The agent: one machine behind two protocol servers. Thin on purpose; protocol logic lives in
 * src/ipmi and src/redfish, machine logic in src/backend.
 */
import type { Machine } from '../backend/types.js';
import type { Logger } from '../common/logger.js';
import { startIpmiServer, type IpmiServerOptions } from '../ipmi/server.js';
import { startRedfishServer, type RedfishServerOptions } from '../redfish/server.js';
import type { ProtocolServer, UserAccount } from './types.js';

export interface AgentOptions {
  machine: Machine;
  users: readonly UserAccount[];
  logger: Logger;
  address: string;
  /** undefined/false disables IPMI */
  ipmi: false | Omit<IpmiServerOptions, 'machine' | 'users' | 'logger' | 'address'>;
  /** undefined/false disables Redfish */
  redfish: false | Omit<RedfishServerOptions, 'machine' | 'users' | 'logger' | 'address'>;
}

export interface Agent {
  readonly machine: Machine;
  readonly servers: readonly ProtocolServer[];
  readonly ipmi?: ProtocolServer;
  readonly redfish?: ProtocolServer;
  close(): Promise<void>;
}

export async function startAgent(opts: AgentOptions): Promise<Agent> {
  const common = { machine: opts.machine, users: opts.users, address: opts.address };
  const servers: ProtocolServer[] = [];
  let ipmi: ProtocolServer | undefined;
  let redfish: ProtocolServer | undefined;
  try {
    if (opts.ipmi) {
      ipmi = await startIpmiServer({ ...opts.ipmi, ...common, logger: opts.logger.child({ proto: 'ipmi' }) });
      servers.push(ipmi);
    }
    if (opts.redfish) {
      redfish = await startRedfishServer({
        // Redfish's ManagerNetworkProtocol reports the IPMI port actually served (unless told otherwise).
        ...(ipmi ? { ipmiPort: ipmi.port } : {}),
        ...opts.redfish,
        ...common,
        logger: opts.logger.child({ proto: 'redfish' }),
      });
      servers.push(redfish);
    }
  } catch (e) {
    await Promise.allSettled(servers.map((s) => s.close()));
    throw e;
  }
  let closed = false;
  return {
    machine: opts.machine,
    servers,
    ...(ipmi ? { ipmi } : {}),
    ...(redfish ? { redfish } : {}),
    async close() {
      if (closed) return;
      closed = true;
      await Promise.allSettled(servers.map((s) => s.close()));
      await opts.machine.close();
    },
  };
}
