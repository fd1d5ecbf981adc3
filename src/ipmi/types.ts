/**
 * Shared IPMI vocabulary: privilege levels, completion codes, net functions and the shape of a
 * command handler. The session layer (src/ipmi/server.ts, src/ipmi/session/) dispatches decoded
 * requests to the (netFn, cmd) → handler table in src/ipmi/commands/.
 */
import type { Machine } from '../backend/types.js';
import type { AccountStore } from '../accounts/store.js';
import type { UserAccount } from '../accounts/types.js';
import type { Logger } from '../common/logger.js';

export enum Privilege {
  Callback = 1,
  User = 2,
  Operator = 3,
  Administrator = 4,
  Oem = 5,
}

/** Completion codes (IPMI v2.0 §5.2 Table 5-2); command-specific ones live with their commands. */
export const CC = {
  OK: 0x00,
  NODE_BUSY: 0xc0,
  INVALID_COMMAND: 0xc1,
  INVALID_FOR_LUN: 0xc2,
  TIMEOUT: 0xc3,
  OUT_OF_SPACE: 0xc4,
  RESERVATION_CANCELLED: 0xc5,
  REQUEST_DATA_TRUNCATED: 0xc6,
  REQUEST_DATA_LENGTH_INVALID: 0xc7,
  REQUEST_DATA_FIELD_LENGTH_EXCEEDED: 0xc8,
  PARAMETER_OUT_OF_RANGE: 0xc9,
  CANNOT_RETURN_REQUESTED_BYTES: 0xca,
  NOT_PRESENT: 0xcb,
  INVALID_DATA_FIELD: 0xcc,
  ILLEGAL_FOR_TYPE: 0xcd,
  RESPONSE_NOT_PROVIDED: 0xce,
  DUPLICATE_REQUEST: 0xcf,
  DESTINATION_UNAVAILABLE: 0xd3,
  INSUFFICIENT_PRIVILEGE: 0xd4,
  NOT_SUPPORTED_IN_PRESENT_STATE: 0xd5,
  SUBFUNCTION_DISABLED: 0xd6,
  UNSPECIFIED: 0xff,
} as const;

export const NetFn = {
  CHASSIS: 0x00,
  BRIDGE: 0x02,
  SENSOR_EVENT: 0x04,
  APP: 0x06,
  FIRMWARE: 0x08,
  STORAGE: 0x0a,
  TRANSPORT: 0x0c,
  GROUP_EXT: 0x2c,
  OEM_GROUP: 0x2e,
} as const;

/** What a handler may know about the session a request arrived in. */
export interface SessionView {
  /** BMC-side session id (0 for pre-session messages) */
  readonly id: number;
  readonly username: string;
  /** Current privilege (raised by Set Session Privilege Level) */
  readonly privilege: Privilege;
  /** Upper bound negotiated at session setup */
  readonly maxPrivilege: Privilege;
  /** 'rmcp+' for IPMI 2.0; the IPMI 1.5 auth type otherwise */
  readonly authType: 'rmcp+' | 'md5' | 'password' | 'none';
  /** RMCP+ cipher suite id, when authType is rmcp+ */
  readonly cipherSuite?: number;
  /** Remote address:port */
  readonly remote: string;
}

export interface IpmiRequest {
  netFn: number;
  cmd: number;
  /** Responder LUN the request addressed */
  lun: number;
  data: Buffer;
}

/** The result of every IPMI command, session-layer ones included. */
export interface IpmiResponse {
  cc: number;
  data?: Buffer;
  /** Session layer only (Close Session of the requester's own session): forget this session once the response is sent */
  closeAfter?: number;
}

/** Everything a handler needs: the request, its session, the machine and the configured users. */
export interface CommandContext {
  req: IpmiRequest;
  session: SessionView;
  machine: Machine;
  users: readonly UserAccount[];
  /** The account store (Set User Name/Password/Access write here); absent in bare test contexts */
  accounts?: AccountStore;
  /** A child logger carrying the request id */
  logger: Logger;
  /** IPMI channel number this LAN channel reports (1) */
  channel: number;
}

export type CommandHandler<C extends CommandContext = CommandContext> = (ctx: C) => Promise<IpmiResponse> | IpmiResponse;

/**
 * One row of the command table. Commands from src/ipmi/commands use the plain CommandContext; the
 * session-layer commands (src/ipmi/session/commands.ts) get the engine's richer context, `C`.
 */
export interface CommandSpec<C extends CommandContext = CommandContext> {
  netFn: number;
  cmd: number;
  /** For logs, e.g. "Get Chassis Status" */
  name: string;
  /** Minimum session privilege (spec Appendix G); lower → cc 0xD4 */
  minPrivilege: Privilege;
  /**
   * Also answered before a session exists, with no privilege check: 'both' over IPMI 1.5 and RMCP+,
   * 'v15' over IPMI 1.5 only (RMCP+ gets C1h). Anything else before a session gets D4h.
   */
  preSession?: 'both' | 'v15';
  /** Session establishment only: inside a session the command gets D5h (not supported in present state) */
  establishmentOnly?: boolean;
  handler: CommandHandler<C>;
}

/** The privilege an account gets at most over IPMI. */
export function privilegeForRole(role: UserAccount['role']): Privilege {
  switch (role) {
    case 'Administrator':
      return Privilege.Administrator;
    case 'Operator':
      return Privilege.Operator;
    case 'ReadOnly':
      return Privilege.User;
  }
}
