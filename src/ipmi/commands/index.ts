/**
 * The IPMI command table: (netFn << 8 | cmd) → handler. Session management commands (0x06/0x38…
 * 0x3D, 0x54) are the session layer's and are not here; anything not in the table gets 0xC1 from
 * the server.
 */
import type { CommandSpec } from '../types.js';
import { userCommands } from './users.js';
import { appCommands } from './app.js';
import { bmcInfoCommands } from './bmc-info.js';
import { chassisCommands } from './chassis.js';
import { groupExtCommands } from './group-ext.js';
import { lanCommands, type LanOptions } from './lan.js';
import { payloadCommands } from './payload.js';
import type { SolManager } from '../sol/manager.js';
import { pefCommands } from './pef.js';
import { pohCommands } from './poh.js';
import { storageCommands } from './storage.js';
import { watchdogCommands } from './watchdog.js';

export function commandKey(netFn: number, cmd: number): number {
  return ((netFn & 0xff) << 8) | (cmd & 0xff);
}

/**
 * `sol`: the SOL service the payload commands drive; without it SOL is reported absent. `lan`: the
 * network model and settings Get LAN Configuration Parameters reports (addresses read as 0 without one).
 */
export function buildCommandTable(opts: { sol?: SolManager; lan?: LanOptions } = {}): Map<number, CommandSpec> {
  const table = new Map<number, CommandSpec>();
  for (const c of [
    ...appCommands(),
    ...userCommands(),
    ...chassisCommands(),
    ...storageCommands(),
    ...groupExtCommands(),
    ...payloadCommands(opts.sol),
    ...lanCommands(opts.lan),
    ...watchdogCommands(),
    ...pohCommands(),
    ...pefCommands(),
    ...bmcInfoCommands(),
  ]) {
    const key = commandKey(c.netFn, c.cmd);
    if (table.has(key)) throw new Error(`duplicate IPMI command ${c.netFn.toString(16)}/${c.cmd.toString(16)}`);
    table.set(key, c);
  }
  return table;
}
