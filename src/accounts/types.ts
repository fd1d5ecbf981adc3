/**
 * The accounts both protocols serve and the contract between the agent and each protocol server.
 * src/ipmi and src/redfish import these from here, never from src/agent (which imports them):
 * the dependency points one way (docs/architecture.md, hack/check-imports.ts).
 */
import type { Machine } from '../backend/types.js';
import type { Logger } from '../common/logger.js';

/** Redfish role names; IPMI maps Administrator → ADMINISTRATOR(4), Operator → OPERATOR(3), ReadOnly → USER(2). */
export type Role = 'Administrator' | 'Operator' | 'ReadOnly';

export interface UserAccount {
  username: string;
  password: string;
  role: Role;
}

/** What the agent hands to each protocol server; each server has its own options on top. */
export interface ProtocolServerOptions {
  /** Listen address (e.g. 127.0.0.1, ::1, 0.0.0.0) */
  address: string;
  /** Listen port; 0 picks a free one (tests) */
  port: number;
  machine: Machine;
  users: readonly UserAccount[];
  logger: Logger;
}

/** A started protocol server. */
export interface ProtocolServer {
  /** "ipmi" or "redfish" */
  readonly name: string;
  /** The bound address and port (after port 0 resolution). */
  readonly address: string;
  readonly port: number;
  /** Human-readable endpoint, e.g. udp://127.0.0.1:623 or http://127.0.0.1:8000/redfish/v1 */
  readonly url: string;
  close(): Promise<void>;
}
