/**
 * RMCP+ payload commands (IPMI v2.0 §24) and the SOL configuration commands (§26.2–26.3):
 * Activate / Deactivate Payload, Get Payload Activation Status, Get Payload Instance Info, Get
 * Channel Payload Support / Version (netFn App) and Get/Set SOL Configuration Parameters (netFn
 * Transport). The SOL service itself is src/ipmi/sol/manager.ts; without one (no console in the
 * backend) SOL is reported as absent and activation answers "payload type disabled".
 */
import { suiteById } from '../codec/suites.js';
import { SOL_PARAM_REVISION, SolConfigCC } from '../sol/config.js';
import { DeactivateCC, SOL_INSTANCES, SOL_INSTANCE, SOL_PAYLOAD_TYPE, ActivateCC, type SolManager } from '../sol/manager.js';
import { CC, NetFn, Privilege, type CommandContext, type CommandSpec, type IpmiResponse } from '../types.js';
import { badLength, fail, le32, ok, spec } from './util.js';

export const PayloadCmd = {
  ACTIVATE_PAYLOAD: 0x48,
  DEACTIVATE_PAYLOAD: 0x49,
  GET_PAYLOAD_ACTIVATION_STATUS: 0x4a,
  GET_PAYLOAD_INSTANCE_INFO: 0x4b,
  GET_CHANNEL_PAYLOAD_SUPPORT: 0x4e,
  GET_CHANNEL_PAYLOAD_VERSION: 0x4f,
} as const;

export const SolCmd = {
  SET_SOL_CONFIG: 0x21,
  GET_SOL_CONFIG: 0x22,
} as const;

const IPMI_PAYLOAD_TYPE = 0x00;
/** "This channel" in channel number fields */
const CURRENT_CHANNEL = 0x0e;

function channelOk(ctx: CommandContext, byte: number): boolean {
  const ch = byte & 0x0f;
  return ch === CURRENT_CHANNEL || ch === ctx.channel;
}

function solSession(ctx: CommandContext) {
  const s = ctx.session;
  const suite = s.cipherSuite !== undefined ? suiteById(s.cipherSuite, true) : undefined;
  return {
    id: s.id,
    privilege: s.privilege,
    authType: s.authType,
    encrypted: (suite?.conf ?? 0) !== 0,
    authenticated: (suite?.integrity ?? 0) !== 0,
  };
}

export function payloadCommands(sol: SolManager | undefined): CommandSpec[] {
  const hasSol = sol?.available === true;

  const activate = (ctx: CommandContext): IpmiResponse => {
    const d = ctx.req.data;
    const e = badLength(d, 6);
    if (e) return e;
    const type = d[0]! & 0x3f;
    if (type !== SOL_PAYLOAD_TYPE) return fail(type === IPMI_PAYLOAD_TYPE ? ActivateCC.TYPE_DISABLED : CC.INVALID_DATA_FIELD);
    if (!sol || !hasSol) return fail(ActivateCC.TYPE_DISABLED);
    const r = sol.activate(solSession(ctx), d[1]! & 0x0f, d[2]!);
    if (r.cc === 0) ctx.logger.info({ sid: ctx.session.id }, 'SOL payload activated');
    return r.data ? { cc: r.cc, data: r.data } : fail(r.cc);
  };

  const deactivate = (ctx: CommandContext): IpmiResponse => {
    const d = ctx.req.data;
    const e = badLength(d, 6);
    if (e) return e;
    const type = d[0]! & 0x3f;
    if (type !== SOL_PAYLOAD_TYPE) return fail(type === IPMI_PAYLOAD_TYPE ? DeactivateCC.TYPE_DISABLED : CC.INVALID_DATA_FIELD);
    if (!sol || !hasSol) return fail(DeactivateCC.TYPE_DISABLED);
    const owner = sol.ownerSessionId;
    const cc = sol.deactivate(d[1]! & 0x0f, ctx.session.id);
    if (cc === 0) ctx.logger.info({ sid: ctx.session.id, owner }, 'SOL payload deactivated');
    return fail(cc);
  };

  const activationStatus = (ctx: CommandContext): IpmiResponse => {
    const d = ctx.req.data;
    const e = badLength(d, 1);
    if (e) return e;
    const type = d[0]! & 0x3f;
    if (type !== SOL_PAYLOAD_TYPE || !hasSol) return fail(CC.INVALID_DATA_FIELD);
    return ok([SOL_INSTANCES & 0x0f, sol!.ownerSessionId !== 0 ? 0x01 : 0x00, 0x00]);
  };

  const instanceInfo = (ctx: CommandContext): IpmiResponse => {
    const d = ctx.req.data;
    const e = badLength(d, 2);
    if (e) return e;
    const type = d[0]! & 0x3f;
    const instance = d[1]! & 0x0f;
    if (type !== SOL_PAYLOAD_TYPE || !hasSol || instance < 1 || instance > SOL_INSTANCES) return fail(CC.INVALID_DATA_FIELD);
    const owner = sol!.ownerSessionId;
    // Session id (0 = not active), then 8 payload-specific bytes: for SOL byte 1 = serial port number.
    return ok([...le32(owner), owner !== 0 ? SOL_INSTANCE : 0, 0, 0, 0, 0, 0, 0, 0]);
  };

  const payloadSupport = (ctx: CommandContext): IpmiResponse => {
    const d = ctx.req.data;
    const e = badLength(d, 1);
    if (e) return e;
    if (!channelOk(ctx, d[0]!)) return fail(CC.INVALID_DATA_FIELD);
    // Standard payloads (bit 0 IPMI, bit 1 SOL), session setup payloads (Open Session
    // request/response, RAKP 1-4), no OEM payloads, 2 reserved bytes.
    return ok([hasSol ? 0x03 : 0x01, 0x00, 0x3f, 0x00, 0x00, 0x00, 0x00, 0x00]);
  };

  const payloadVersion = (ctx: CommandContext): IpmiResponse => {
    const d = ctx.req.data;
    const e = badLength(d, 2);
    if (e) return e;
    if (!channelOk(ctx, d[0]!)) return fail(CC.INVALID_DATA_FIELD);
    const type = d[1]! & 0x3f;
    // Format version 1.0 (major in bits 7:4); 0x80 = payload type not available on this channel.
    if (type === IPMI_PAYLOAD_TYPE || (type === SOL_PAYLOAD_TYPE && hasSol)) return ok([0x10]);
    return fail(0x80);
  };

  const getConfig = (ctx: CommandContext): IpmiResponse => {
    const d = ctx.req.data;
    const e = badLength(d, 4);
    if (e) return e;
    if (!channelOk(ctx, d[0]!)) return fail(CC.INVALID_DATA_FIELD);
    if (!sol) return fail(SolConfigCC.PARAM_NOT_SUPPORTED);
    const value = sol.config.get(d[1]!);
    if (!value) return fail(SolConfigCC.PARAM_NOT_SUPPORTED);
    if (d[0]! & 0x80) return ok([SOL_PARAM_REVISION]);
    return ok(Buffer.concat([Buffer.from([SOL_PARAM_REVISION]), value]));
  };

  const setConfig = (ctx: CommandContext): IpmiResponse => {
    const d = ctx.req.data;
    if (d.length < 3) return fail(CC.REQUEST_DATA_LENGTH_INVALID);
    if (!channelOk(ctx, d[0]!)) return fail(CC.INVALID_DATA_FIELD);
    if (!sol) return fail(SolConfigCC.PARAM_NOT_SUPPORTED);
    const r = sol.config.set(d[1]!, d.subarray(2));
    if (r.cc === 0) ctx.logger.info({ param: d[1] }, 'SOL configuration parameter set');
    return fail(r.cc);
  };

  return [
    spec(NetFn.APP, PayloadCmd.ACTIVATE_PAYLOAD, 'Activate Payload', Privilege.User, activate),
    spec(NetFn.APP, PayloadCmd.DEACTIVATE_PAYLOAD, 'Deactivate Payload', Privilege.User, deactivate),
    spec(NetFn.APP, PayloadCmd.GET_PAYLOAD_ACTIVATION_STATUS, 'Get Payload Activation Status', Privilege.User, activationStatus),
    spec(NetFn.APP, PayloadCmd.GET_PAYLOAD_INSTANCE_INFO, 'Get Payload Instance Info', Privilege.User, instanceInfo),
    spec(NetFn.APP, PayloadCmd.GET_CHANNEL_PAYLOAD_SUPPORT, 'Get Channel Payload Support', Privilege.User, payloadSupport),
    spec(NetFn.APP, PayloadCmd.GET_CHANNEL_PAYLOAD_VERSION, 'Get Channel Payload Version', Privilege.User, payloadVersion),
    spec(NetFn.TRANSPORT, SolCmd.SET_SOL_CONFIG, 'Set SOL Configuration Parameters', Privilege.Administrator, setConfig),
    spec(NetFn.TRANSPORT, SolCmd.GET_SOL_CONFIG, 'Get SOL Configuration Parameters', Privilege.User, getConfig),
  ];
}
