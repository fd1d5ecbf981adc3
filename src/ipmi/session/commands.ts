/**
 * Session-level App commands, rows of the engine's command table like every other command (see
 * sessionCommands) but answered with the session table at hand: Get Channel Authentication
 * Capabilities (38), Get Channel Cipher Suites (54), Set Session Privilege Level (3B), Close Session
 * (3C) and Get Session Info (3D). Get Session Challenge (39) and Activate Session (3A) live in v15.ts.
 */
import { isIPv4 } from 'node:net';
import { cipherSuiteRecords, supportedSuites, type LanRequest } from '../codec/index.js';
import { CC, NetFn, Privilege, privilegeForRole, type CommandSpec, type IpmiResponse } from '../types.js';
import { sessionClosed } from '../../events/emit.js';
import type { EngineContext, SessionLayerContext } from './context.js';
import type { Session } from './table.js';
import { getSessionChallenge } from './v15.js';

export const SessionCmd = {
  GET_CHANNEL_AUTH_CAPS: 0x38,
  GET_SESSION_CHALLENGE: 0x39,
  ACTIVATE_SESSION: 0x3a,
  SET_SESSION_PRIVILEGE: 0x3b,
  CLOSE_SESSION: 0x3c,
  GET_SESSION_INFO: 0x3d,
  GET_CHANNEL_CIPHER_SUITES: 0x54,
} as const;

function channelOk(ctx: EngineContext, b: number): boolean {
  const ch = b & 0x0f;
  return ch === 0x0e || ch === ctx.channel;
}

export function getChannelAuthCaps(ctx: EngineContext, req: LanRequest): IpmiResponse {
  if (req.data.length < 2) return { cc: CC.REQUEST_DATA_LENGTH_INVALID };
  if (!channelOk(ctx, req.data[0]!)) return { cc: CC.INVALID_DATA_FIELD };
  const v2 = (req.data[0]! & 0x80) !== 0;
  const priv = req.data[1]! & 0x0f;
  if (priv < Privilege.Callback || priv > Privilege.Oem) return { cc: CC.INVALID_DATA_FIELD };
  // auth types: MD5 (bit 2); straight password (bit 4) and none (bit 0) only when insecure
  const types = 0x04 | (ctx.allowInsecure ? 0x10 | 0x01 : 0);
  return {
    cc: CC.OK,
    data: Buffer.from([
      ctx.channel,
      (v2 ? 0x80 : 0) | types,
      0x04, // non-null user names exist; per-message and user-level authentication enabled
      v2 ? 0x03 : 0x00, // IPMI 1.5 and 2.0 connections
      0,
      0,
      0,
      0,
    ]),
  };
}

export function getChannelCipherSuites(ctx: EngineContext, req: LanRequest): IpmiResponse {
  if (req.data.length < 3) return { cc: CC.REQUEST_DATA_LENGTH_INVALID };
  if (!channelOk(ctx, req.data[0]!)) return { cc: CC.INVALID_DATA_FIELD };
  const payloadType = req.data[1]! & 0x3f;
  const index = req.data[2]! & 0x3f;
  const bySuite = (req.data[2]! & 0x80) !== 0;
  const suites = supportedSuites(ctx.allowInsecure);
  let records: Buffer = Buffer.alloc(0);
  if (payloadType === 0 || payloadType === 1) {
    if (bySuite) {
      records = cipherSuiteRecords(suites);
    } else {
      const a = [...new Set(suites.map((s) => s.auth))].map((x) => x & 0x3f);
      const i = [...new Set(suites.map((s) => s.integrity))].map((x) => 0x40 | x);
      const c = [...new Set(suites.map((s) => s.conf))].map((x) => 0x80 | x);
      records = Buffer.from([...a, ...i, ...c]);
    }
  }
  const chunk = records.subarray(index * 16, index * 16 + 16);
  return { cc: CC.OK, data: Buffer.concat([Buffer.from([ctx.channel]), chunk]) };
}

export function setSessionPrivilege(s: Session, req: LanRequest): IpmiResponse {
  if (req.data.length < 1) return { cc: CC.REQUEST_DATA_LENGTH_INVALID };
  const want = req.data[0]! & 0x0f;
  if (want === 0) return { cc: CC.OK, data: Buffer.from([s.privilege]) };
  if (want < Privilege.Callback || want > Privilege.Oem) return { cc: CC.INVALID_DATA_FIELD };
  const userMax = s.user ? privilegeForRole(s.user.role) : Privilege.Callback;
  if (want > userMax) return { cc: 0x80 }; // not available for this user
  if (want > s.maxPrivilege) return { cc: 0x81 }; // above the limit negotiated for this session
  s.privilege = want;
  return { cc: CC.OK, data: Buffer.from([want]) };
}

export function closeSession(ctx: EngineContext, s: Session, req: LanRequest): IpmiResponse {
  if (req.data.length < 4) return { cc: CC.REQUEST_DATA_LENGTH_INVALID };
  const id = req.data.readUInt32LE(0);
  let target: Session | undefined;
  if (id === 0) {
    if (req.data.length < 5) return { cc: CC.REQUEST_DATA_LENGTH_INVALID };
    target = ctx.table.active().find((x) => x.handle === req.data[4]);
    if (!target) return { cc: 0x88 };
  } else {
    target = ctx.table.get(id);
    if (!target || target.state !== 'active') return { cc: 0x87 };
  }
  if (target === s) {
    sessionClosed(ctx.machine, 'ipmi', s.id.toString(16), s.username);
    return { cc: CC.OK, closeAfter: s.id };
  }
  if (s.privilege < Privilege.Administrator) return { cc: CC.INSUFFICIENT_PRIVILEGE };
  ctx.table.delete(target.id);
  sessionClosed(ctx.machine, 'ipmi', target.id.toString(16), target.username);
  return { cc: CC.OK };
}

function ipv4Bytes(address: string): Buffer {
  const a = address.startsWith('::ffff:') ? address.slice(7) : address;
  if (!isIPv4(a)) return Buffer.alloc(4);
  return Buffer.from(a.split('.').map((x) => Number(x)));
}

export function getSessionInfo(ctx: EngineContext, s: Session, req: LanRequest): IpmiResponse {
  if (req.data.length < 1) return { cc: CC.REQUEST_DATA_LENGTH_INVALID };
  const index = req.data[0]!;
  const active = ctx.table.active();
  let target: Session | undefined;
  if (index === 0) target = s;
  else if (index === 0xfe) {
    if (req.data.length < 2) return { cc: CC.REQUEST_DATA_LENGTH_INVALID };
    target = active.find((x) => x.handle === req.data[1]);
  } else if (index === 0xff) {
    if (req.data.length < 5) return { cc: CC.REQUEST_DATA_LENGTH_INVALID };
    target = ctx.table.get(req.data.readUInt32LE(1));
    if (target?.state !== 'active') target = undefined;
  } else {
    target = active[index - 1];
    // An index past the active sessions is an empty slot: handle 00h and the two counts only
    // (§22.20). ipmitool's `session info all` walks every slot and stops on anything shorter than
    // 3 bytes or a failure, so a CBh there would end it with exit status 1.
    if (!target) {
      if (index > ctx.table.opts.maxSessions) return { cc: CC.INVALID_DATA_FIELD };
      return { cc: CC.OK, data: Buffer.from([0x00, Math.min(ctx.table.opts.maxSessions, 63) & 0x3f, Math.min(active.length, 63) & 0x3f]) };
    }
  }
  if (!target) return { cc: CC.NOT_PRESENT };
  const data = Buffer.alloc(18);
  data[0] = target.handle;
  data[1] = Math.min(ctx.table.opts.maxSessions, 63) & 0x3f;
  data[2] = Math.min(active.length, 63) & 0x3f;
  data[3] = target.userId & 0x3f;
  data[4] = target.privilege & 0x0f;
  data[5] = ((target.protocol === 'rmcp+' ? 1 : 0) << 4) | (ctx.channel & 0x0f);
  ipv4Bytes(target.remoteAddress).copy(data, 6);
  // bytes 10..15: console MAC address, unknown over UDP: zeros
  data.writeUInt16LE(target.remotePort, 16);
  return { cc: CC.OK, data };
}

/**
 * The session-layer rows of the command table (privileges as IPMI v2.0 Appendix G), for the engine
 * of `ctx`. Inside a session they get the session table's view of the requester (`state`).
 */
export function sessionCommands(ctx: EngineContext): CommandSpec<SessionLayerContext>[] {
  const inSession = (f: (s: Session, c: SessionLayerContext) => IpmiResponse) => (c: SessionLayerContext) =>
    c.state ? f(c.state, c) : { cc: CC.UNSPECIFIED };
  const app = (cmd: number, name: string, minPrivilege: Privilege, rest: Pick<CommandSpec<SessionLayerContext>, 'handler' | 'preSession' | 'establishmentOnly'>) => ({
    netFn: NetFn.APP,
    cmd,
    name,
    minPrivilege,
    ...rest,
  });
  return [
    app(SessionCmd.GET_CHANNEL_AUTH_CAPS, 'Get Channel Authentication Capabilities', Privilege.Callback, {
      preSession: 'both',
      handler: (c) => getChannelAuthCaps(ctx, c.lan),
    }),
    app(SessionCmd.GET_CHANNEL_CIPHER_SUITES, 'Get Channel Cipher Suites', Privilege.Callback, {
      preSession: 'both',
      handler: (c) => getChannelCipherSuites(ctx, c.lan),
    }),
    app(SessionCmd.GET_SESSION_CHALLENGE, 'Get Session Challenge', Privilege.Callback, {
      preSession: 'v15',
      establishmentOnly: true,
      handler: (c) => getSessionChallenge(ctx, c.lan, c.remote, c.logger) ?? { cc: CC.UNSPECIFIED },
    }),
    // Activate Session arrives under the temporary session id of its challenge and is answered on
    // that path (engine handleV15 → v15.ts activateSession); this row only gives it its D5h in a session.
    app(SessionCmd.ACTIVATE_SESSION, 'Activate Session', Privilege.Callback, {
      establishmentOnly: true,
      handler: () => ({ cc: CC.NOT_SUPPORTED_IN_PRESENT_STATE }),
    }),
    app(SessionCmd.SET_SESSION_PRIVILEGE, 'Set Session Privilege Level', Privilege.Callback, {
      handler: inSession((s, c) => setSessionPrivilege(s, c.lan)),
    }),
    app(SessionCmd.CLOSE_SESSION, 'Close Session', Privilege.Callback, {
      handler: inSession((s, c) => closeSession(ctx, s, c.lan)),
    }),
    app(SessionCmd.GET_SESSION_INFO, 'Get Session Info', Privilege.User, {
      handler: inSession((s, c) => getSessionInfo(ctx, s, c.lan)),
    }),
  ];
}
