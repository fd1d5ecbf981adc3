/** Small helpers shared by the command files. */
import { CC, type CommandHandler, type CommandSpec, type IpmiResponse, type Privilege } from '../types.js';

export function ok(data?: Buffer | readonly number[]): IpmiResponse {
  if (data === undefined) return { cc: CC.OK };
  return { cc: CC.OK, data: Buffer.isBuffer(data) ? data : Buffer.from(data) };
}

export function fail(cc: number): IpmiResponse {
  return { cc };
}

/** 0xC7 unless min <= data.length <= max. */
export function badLength(data: Buffer, min: number, max = min): IpmiResponse | undefined {
  return data.length < min || data.length > max ? fail(CC.REQUEST_DATA_LENGTH_INVALID) : undefined;
}

export function spec(netFn: number, cmd: number, name: string, minPrivilege: Privilege, handler: CommandHandler): CommandSpec {
  return { netFn, cmd, name, minPrivilege, handler };
}

/** Little-endian 16/32-bit encoders for response building. */
export function le16(v: number): number[] {
  return [v & 0xff, (v >>> 8) & 0xff];
}

export function le32(v: number): number[] {
  return [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
}
