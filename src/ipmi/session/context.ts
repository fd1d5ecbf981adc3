/** State and settings shared by the session-layer handlers of one IPMI server. */
import type { UserAccount } from '../../accounts/types.js';
import type { Machine } from '../../backend/types.js';
import type { Logger } from '../../common/logger.js';
import type { LanRequest } from '../codec/index.js';
import type { CommandContext, CommandSpec } from '../types.js';
import type { AccountStore } from '../../accounts/store.js';
import type { LoginLockout } from '../../accounts/lockout.js';
import type { Session, SessionTable } from './table.js';

export interface EngineSettings {
  machine: Machine;
  users: readonly UserAccount[];
  /** The machine's account store (shared with Redfish); absent: a private one over `users` */
  accounts?: AccountStore;
  logger: Logger;
  /** (netFn << 8) | cmd → handler */
  commands: ReadonlyMap<number, CommandSpec>;
  allowInsecure: boolean;
  /** The IPMI channel number this LAN channel reports */
  channel: number;
  /** 16-byte GUID sent in RAKP2 */
  guid: Buffer;
  /** Clock, replaceable in tests */
  now: () => number;
}

/** A pending IPMI 1.5 Get Session Challenge, waiting for Activate Session. */
export interface Challenge {
  tempId: number;
  challenge: Buffer;
  authTypeCode: number;
  user: UserAccount;
  remoteAddress: string;
  createdAt: number;
}

export interface EngineContext extends EngineSettings {
  accounts: AccountStore;
  table: SessionTable;
  /** Login lockout per account and source, shared with Redfish */
  lockout: LoginLockout;
  challenges: Map<number, Challenge>;
}

export interface Remote {
  address: string;
  port: number;
}

export function findUser(users: readonly UserAccount[], name: Buffer | string): UserAccount | undefined {
  const n = typeof name === 'string' ? name : name.toString('latin1');
  if (n.length === 0) return undefined;
  return users.find((u) => u.username === n);
}

/** What the engine hands every command handler; session-layer commands use the fields beyond CommandContext. */
export interface SessionLayerContext extends CommandContext {
  /** The decoded LAN message (requester address, sequence number, ...) */
  lan: LanRequest;
  /** The source of the datagram */
  remote: Remote;
  /** The session the request arrived in; undefined before a session exists */
  state: Session | undefined;
}

/** The engine's table: the session-layer commands and every command of src/ipmi/commands. */
export type EngineCommandTable = ReadonlyMap<number, CommandSpec<SessionLayerContext>>;

/** How a request arrived, which is how its answer is framed: before any session (1.5 or RMCP+), or in one. */
export type Envelope = { kind: 'v15-pre' } | { kind: 'rmcp-pre' } | { kind: 'session'; session: Session };
