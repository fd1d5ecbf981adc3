/**
 * Group extension netFn (0x2C): the first request byte names the defining body (0x00 PICMG,
 * 0x03 VITA, 0xDC DCMI, HPM.2 under PICMG). We implement none of them and say so with 0xC1, the
 * answer the spec gives for an unsupported command. ipmitool probes three of these after every
 * session opens (HPM.2 Get LAN Attach Capabilities 0x3E, PICMG Get Properties 0x00, VITA Get VSO
 * Capabilities 0x00) and DCMI tools start with Get DCMI Capabilities (0x01); they are listed so
 * they answer at any privilege instead of 0xD4.
 */
import { CC, NetFn, Privilege, type CommandContext, type CommandSpec } from '../types.js';
import { fail, spec } from './util.js';

export const DefiningBody = { PICMG: 0x00, VITA: 0x03, DCMI: 0xdc } as const;

function unsupported(_ctx: CommandContext) {
  return fail(CC.INVALID_COMMAND);
}

export function groupExtCommands(): CommandSpec[] {
  return [
    spec(NetFn.GROUP_EXT, 0x00, 'PICMG Get Properties / VITA Get VSO Capabilities', Privilege.Callback, unsupported),
    spec(NetFn.GROUP_EXT, 0x01, 'DCMI Get DCMI Capabilities Info', Privilege.Callback, unsupported),
    spec(NetFn.GROUP_EXT, 0x3e, 'HPM.2 Get LAN Attach Capabilities', Privilege.Callback, unsupported),
  ];
}
