/**
 * The account and protocol-server types moved to src/accounts/types.ts (the protocols import them
 * from there); this re-export keeps older imports working while they move.
 */
export type { ProtocolServer, ProtocolServerOptions, Role, UserAccount } from '../accounts/types.js';
