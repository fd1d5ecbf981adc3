/**
 * Transport netFn (0x0C): Get / Set LAN Configuration Parameters (IPMI v2.0 §23.1–23.2, Table
 * 23-4) from the agent's network model (src/common/network.ts).
 *
 * Every parameter `ipmitool lan print` reads is answered: ipmitool 1.8.19 (lib/ipmi_lanp.c
 * get_lan_param_select) turns any non-zero completion code, 0x80 included, into a failure and
 * stops printing. pyghmi (ipmi/command.py _fetch_lancfg_param) wants revision 0x11 and reads 3, 4,
 * 5, 6, 12-15; freeipmi's ipmi-config Lan_Conf section reads 3-6, 12-15, 20 and 21. Parameters
 * outside Table 23-4's set we support answer 0x80 "parameter not supported", as the spec says.
 *
 * The address, mask, gateway, VLAN and auth settings belong to the pod network and the agent's
 * flags, not to the BMC: Set LAN Configuration Parameters answers 0x82 "attempt to write a
 * read-only parameter" for them, and only the set-in-progress handshake (parameter 0) is writable.
 */
import type { LockoutPolicy } from '../../accounts/lockout.js';
import { ipv4Bytes, macBytes, systemSources, type NetworkModel } from '../../common/network.js';
import { supportedSuites } from '../codec/suites.js';
import { CC, NetFn, Privilege, type CommandContext, type CommandSpec, type IpmiResponse } from '../types.js';
import { badLength, fail, le16, ok, spec } from './util.js';

/** Parameter revision byte (§23.2: 11h for this specification). */
export const LAN_PARAM_REVISION = 0x11;

export const LanCmd = { SET_LAN_CONFIG: 0x01, GET_LAN_CONFIG: 0x02 } as const;

/** Completion codes of Get/Set LAN Configuration Parameters (§23.1, §23.2). */
export const LanCC = {
  PARAM_NOT_SUPPORTED: 0x80,
  SET_IN_PROGRESS: 0x81,
  READ_ONLY: 0x82,
} as const;

export const LanParam = {
  SET_IN_PROGRESS: 0,
  AUTH_TYPE_SUPPORT: 1,
  AUTH_TYPE_ENABLES: 2,
  IP_ADDRESS: 3,
  IP_ADDRESS_SOURCE: 4,
  MAC_ADDRESS: 5,
  SUBNET_MASK: 6,
  IPV4_HEADER: 7,
  PRIMARY_RMCP_PORT: 8,
  BMC_ARP_CONTROL: 10,
  GRATUITOUS_ARP_INTERVAL: 11,
  DEFAULT_GATEWAY: 12,
  DEFAULT_GATEWAY_MAC: 13,
  BACKUP_GATEWAY: 14,
  BACKUP_GATEWAY_MAC: 15,
  COMMUNITY_STRING: 16,
  DESTINATION_COUNT: 17,
  DESTINATION_TYPE: 18,
  DESTINATION_ADDRESS: 19,
  VLAN_ID: 20,
  VLAN_PRIORITY: 21,
  CIPHER_SUITE_ENTRY_SUPPORT: 22,
  CIPHER_SUITE_ENTRIES: 23,
  CIPHER_SUITE_PRIVILEGES: 24,
  DESTINATION_VLAN_TAGS: 25,
  BAD_PASSWORD_THRESHOLD: 26,
  IPV6_SUPPORT: 50,
  IPV6_ENABLES: 51,
  IPV6_STATUS: 55,
  IPV6_STATIC_ADDRESS: 56,
  IPV6_DYNAMIC_ADDRESS: 59,
  IPV6_ROUTER_CONTROL: 64,
  IPV6_STATIC_ROUTER_1_ADDRESS: 65,
  IPV6_STATIC_ROUTER_1_MAC: 66,
  IPV6_STATIC_ROUTER_1_PREFIX_LENGTH: 67,
  IPV6_STATIC_ROUTER_1_PREFIX_VALUE: 68,
  IPV6_STATIC_ROUTER_2_ADDRESS: 69,
  IPV6_STATIC_ROUTER_2_MAC: 70,
  IPV6_STATIC_ROUTER_2_PREFIX_LENGTH: 71,
  IPV6_STATIC_ROUTER_2_PREFIX_VALUE: 72,
} as const;

/** IP Address Source (parameter 4): 4 = "address loaded by the BMC running another protocol" — the pod network (CNI). */
export const IP_SOURCE_OTHER = 0x04;

/** Auth type bits (parameter 1 / 2): 0 none, 1 MD2, 2 MD5, 4 straight password, 5 OEM. */
const AUTH_NONE = 0x01;
const AUTH_MD5 = 0x04;
const AUTH_PASSWORD = 0x10;

export interface LanOptions {
  network?: NetworkModel;
  /** Whether IPMI 1.5 NONE / straight password and suite 0 are accepted (--ipmi-allow-insecure) */
  allowInsecure?: boolean;
  /** The UDP port the IPMI server is bound to */
  port?: () => number;
  /** The login lockout policy in force (parameter 26) */
  lockoutPolicy?: () => Readonly<LockoutPolicy>;
  /** The kernel's neighbour table (default /proc/net/arp), for the gateway's MAC */
  readArp?: () => string | undefined;
}

/** BMC-side state of the set-in-progress handshake (parameter 0), per command table. */
interface LanState {
  setInProgress: number;
}

function channelOk(ctx: CommandContext, b: number): boolean {
  const ch = b & 0x0f;
  return ch === 0x0e || ch === ctx.channel;
}

/** Gateway MAC from the kernel's neighbour table (/proc/net/arp), zeros when not resolved. */
export function arpLookup(text: string | undefined, ip: string | undefined): string | undefined {
  if (!ip) return undefined;
  for (const line of (text ?? '').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    // IP address, HW type, Flags (0x2 = complete), HW address, Mask, Device
    if (f[0] === ip && f[3] && (parseInt(f[2] ?? '0', 16) & 0x2) !== 0) return f[3];
  }
  return undefined;
}

/** The value of one parameter (without the revision byte), or a completion code. */
export function lanParameter(
  param: number,
  setSelector: number,
  opts: LanOptions & { state?: LanState },
): Buffer | number {
  const net = opts.network?.current();
  const insecure = opts.allowInsecure ?? false;
  const authTypes = AUTH_MD5 | (insecure ? AUTH_NONE | AUTH_PASSWORD : 0);
  switch (param) {
    case LanParam.SET_IN_PROGRESS:
      return Buffer.from([opts.state?.setInProgress ?? 0]);
    case LanParam.AUTH_TYPE_SUPPORT:
      return Buffer.from([authTypes]);
    case LanParam.AUTH_TYPE_ENABLES:
      // Callback, User, Operator, Administrator, OEM: every level takes the same auth types
      return Buffer.from([authTypes, authTypes, authTypes, authTypes, 0x00]);
    case LanParam.IP_ADDRESS:
      return ipv4Bytes(net?.ipv4?.address);
    case LanParam.IP_ADDRESS_SOURCE:
      return Buffer.from([IP_SOURCE_OTHER]);
    case LanParam.MAC_ADDRESS:
      return macBytes(net?.macAddress ?? '');
    case LanParam.SUBNET_MASK:
      return ipv4Bytes(net?.ipv4?.subnetMask);
    case LanParam.IPV4_HEADER:
      // The kernel's defaults and the spec's: TTL 64, Don't Fragment, precedence 0 / TOS 0x10
      return Buffer.from([0x40, 0x40, 0x10]);
    case LanParam.PRIMARY_RMCP_PORT:
      return opts.port ? Buffer.from(le16(opts.port())) : LanCC.PARAM_NOT_SUPPORTED;
    case LanParam.BMC_ARP_CONTROL:
      // ARP responses: the pod's kernel answers them; no gratuitous ARPs are sent
      return Buffer.from([0x02]);
    case LanParam.GRATUITOUS_ARP_INTERVAL:
      return Buffer.from([0x00]);
    case LanParam.DEFAULT_GATEWAY:
      return ipv4Bytes(net?.ipv4Gateway);
    case LanParam.DEFAULT_GATEWAY_MAC:
      return macBytes(arpLookup(opts.readArp?.(), net?.ipv4Gateway) ?? '');
    case LanParam.BACKUP_GATEWAY:
      return Buffer.alloc(4);
    case LanParam.BACKUP_GATEWAY_MAC:
      return Buffer.alloc(6);
    case LanParam.COMMUNITY_STRING:
      // No PET alerts are sent, so no SNMP community is in use
      return Buffer.alloc(18);
    case LanParam.DESTINATION_COUNT:
      return Buffer.from([0x00]);
    case LanParam.DESTINATION_TYPE:
      // Only the volatile destination (selector 0) exists, unused: PET trap, no acknowledge
      return setSelector === 0 ? Buffer.from([0x00, 0x00, 0x00, 0x00]) : CC.PARAMETER_OUT_OF_RANGE;
    case LanParam.DESTINATION_ADDRESS:
      return setSelector === 0 ? Buffer.from([0x00, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]) : CC.PARAMETER_OUT_OF_RANGE;
    case LanParam.VLAN_ID:
      // Bit 7 of byte 2 clear: VLAN disabled (a pod interface carries no tag the BMC sees)
      return Buffer.from([0x00, 0x00]);
    case LanParam.VLAN_PRIORITY:
      return Buffer.from([0x00]);
    case LanParam.CIPHER_SUITE_ENTRY_SUPPORT:
      return Buffer.from([implementedSuites.length & 0x1f]);
    case LanParam.CIPHER_SUITE_ENTRIES:
      // A reserved byte, then the ids of every suite this BMC implements, in its order of
      // preference; those turned off (no packet integrity, without --ipmi-allow-insecure) are
      // listed too, and parameter 24 says they are unused, as a BMC shows a disabled suite
      return Buffer.from([0x00, ...implementedSuites.map((s) => s.id)]);
    case LanParam.CIPHER_SUITE_PRIVILEGES:
      return cipherSuitePrivileges(insecure);
    case LanParam.BAD_PASSWORD_THRESHOLD: {
      if (!opts.lockoutPolicy) return LanCC.PARAM_NOT_SUPPORTED;
      const p = opts.lockoutPolicy();
      // No session audit event (no SEL entries are logged); intervals in 10-second units
      const tens = (s: number) => Math.min(0xffff, Math.ceil(s / 10));
      return Buffer.from([0x00, Math.min(0xff, p.threshold), ...le16(tens(p.counterResetAfterSeconds)), ...le16(tens(p.durationSeconds))]);
    }
    // IPv6 (IPMI v2.0 errata 4, Table 23-4 params 50-59; freeipmi's ipmi-config reads 55 for every
    // LAN section). The pod's IPv6 addresses are reported as static entries: the pod network
    // assigned them, the BMC runs neither DHCPv6 nor SLAAC itself.
    case LanParam.IPV6_SUPPORT:
      // Bit 1: dual stack (IPv4 and IPv6 at once); no IPv6-only mode, no IPv6 alerting
      return Buffer.from([0x02]);
    case LanParam.IPV6_ENABLES:
      // 0 IPv4 only, 2 IPv4 and IPv6
      return Buffer.from([net && net.ipv6.length > 0 ? 0x02 : 0x00]);
    case LanParam.IPV6_STATUS:
      // Static address entries, dynamic entries, DHCPv6/SLAAC support bits (none)
      return Buffer.from([Math.min(0xff, net?.ipv6.length ?? 0), 0x00, 0x00]);
    case LanParam.IPV6_STATIC_ADDRESS: {
      const a = net?.ipv6[setSelector];
      if (!a) return CC.PARAMETER_OUT_OF_RANGE;
      // Selector, enabled static address, the address, prefix length, status 0 = active
      return Buffer.concat([Buffer.from([setSelector, 0x80]), ipv6Bytes(a.address), Buffer.from([a.prefixLength, 0x00])]);
    }
    case LanParam.IPV6_DYNAMIC_ADDRESS:
      return CC.PARAMETER_OUT_OF_RANGE;
    // IPv6 routers (params 64-72; freeipmi's Lan6_Conf reads them, see its
    // ipmi-config/ipmi-config-category-core-lan6-conf-section.c). Like the addresses, the pod's
    // IPv6 default route (/proc/net/ipv6_route) is reported as static router 1, since the pod
    // network set it up and the BMC runs no router discovery. Its MAC, a prefix for it and a
    // second router are not known: zeros, as for an unused entry.
    case LanParam.IPV6_ROUTER_CONTROL:
      // Bit 0 static router address enabled, bit 1 dynamic (never)
      return Buffer.from([net?.ipv6Gateway ? 0x01 : 0x00]);
    case LanParam.IPV6_STATIC_ROUTER_1_ADDRESS:
      return net?.ipv6Gateway ? ipv6Bytes(net.ipv6Gateway) : Buffer.alloc(16);
    case LanParam.IPV6_STATIC_ROUTER_2_ADDRESS:
    case LanParam.IPV6_STATIC_ROUTER_1_PREFIX_VALUE:
    case LanParam.IPV6_STATIC_ROUTER_2_PREFIX_VALUE:
      return Buffer.alloc(16);
    case LanParam.IPV6_STATIC_ROUTER_1_MAC:
    case LanParam.IPV6_STATIC_ROUTER_2_MAC:
      return Buffer.alloc(6);
    case LanParam.IPV6_STATIC_ROUTER_1_PREFIX_LENGTH:
    case LanParam.IPV6_STATIC_ROUTER_2_PREFIX_LENGTH:
      return Buffer.from([0x00]);
    default:
      return LanCC.PARAM_NOT_SUPPORTED;
  }
}

/** Every suite the BMC implements, offered or not (parameters 22 and 23). */
const implementedSuites = supportedSuites(true);

/**
 * Parameter 24, RMCP+ Messaging Cipher Suite Privilege Levels: a reserved byte, then 16 nibbles,
 * nibble N (low nibble first) the maximum privilege of cipher suite id N. The nibbles are indexed
 * by suite id, not by the position in parameter 23: so read ipmitool (lib/ipmi_lanp.c: "each
 * nibble holds the maximum privilege level available for that cipher suite number", `lan print`
 * "Cipher Suite Priv Max"), freeipmi (ipmi-config-category-core-rmcpplus-conf-privilege-section.c:
 * "you want to index at [id] not [i]") and OpenBMC (cipher_mgmt: privileges keyed by cipher id).
 * An offered suite allows ADMINISTRATOR; one not offered is 0h, which all three show as unused
 * ("X" / "Unused"). Suites 16 and 17 have no nibble (ids 0–15 only); they allow ADMINISTRATOR, and
 * Get Channel Cipher Suites lists them.
 */
export function cipherSuitePrivileges(allowInsecure: boolean): Buffer {
  const offered = new Set(supportedSuites(allowInsecure).map((s) => s.id));
  const nibble = (id: number) => (offered.has(id) ? Privilege.Administrator : 0);
  const bytes = [0x00];
  for (let id = 0; id < 16; id += 2) bytes.push(nibble(id) | (nibble(id + 1) << 4));
  return Buffer.from(bytes);
}

/** An IPv6 address as 16 bytes. */
export function ipv6Bytes(addr: string): Buffer {
  const [head = '', tail] = addr.split('::');
  const parse = (part: string) => (part === '' ? [] : part.split(':').map((g) => parseInt(g, 16) & 0xffff));
  const h = parse(head);
  const t = tail === undefined ? [] : parse(tail);
  const groups = tail === undefined ? h : [...h, ...new Array<number>(Math.max(0, 8 - h.length - t.length)).fill(0), ...t];
  const out = Buffer.alloc(16);
  groups.slice(0, 8).forEach((g, i) => out.writeUInt16BE(Number.isFinite(g) ? g : 0, i * 2));
  return out;
}

/** Parameters a real BMC lets you write that here belong to the pod network or the agent's flags. */
const READ_ONLY = new Set<number>(
  Object.values(LanParam).filter((p) => p !== LanParam.SET_IN_PROGRESS && p !== LanParam.PRIMARY_RMCP_PORT),
);

export function lanCommands(opts: LanOptions = {}): CommandSpec[] {
  const state: LanState = { setInProgress: 0 };
  const all = { ...opts, state, readArp: opts.readArp ?? (() => systemSources.readFile('/proc/net/arp')) };

  const get = (ctx: CommandContext): IpmiResponse => {
    const d = ctx.req.data;
    const bad = badLength(d, 4);
    if (bad) return bad;
    if (!channelOk(ctx, d[0]!)) return fail(CC.INVALID_DATA_FIELD);
    const value = lanParameter(d[1]!, d[2]!, all);
    if (typeof value === 'number') return fail(value);
    // Bit 7 of byte 1: "get parameter revision only"
    if (d[0]! & 0x80) return ok([LAN_PARAM_REVISION]);
    return ok(Buffer.concat([Buffer.from([LAN_PARAM_REVISION]), value]));
  };

  const set = (ctx: CommandContext): IpmiResponse => {
    const d = ctx.req.data;
    if (d.length < 3) return fail(CC.REQUEST_DATA_LENGTH_INVALID);
    if (!channelOk(ctx, d[0]!)) return fail(CC.INVALID_DATA_FIELD);
    const param = d[1]!;
    if (param === LanParam.SET_IN_PROGRESS) {
      if (d.length !== 3) return fail(CC.REQUEST_DATA_LENGTH_INVALID);
      const v = d[2]! & 0x03;
      if (v === 3) return fail(CC.INVALID_DATA_FIELD);
      if (v === 1 && state.setInProgress === 1) return fail(LanCC.SET_IN_PROGRESS);
      // 2 = commit write: nothing is ever written, so nothing to commit
      if (v !== 2) state.setInProgress = v;
      return ok();
    }
    if (param === LanParam.PRIMARY_RMCP_PORT && opts.port) return fail(LanCC.READ_ONLY);
    if (READ_ONLY.has(param)) {
      ctx.logger.info({ param }, 'Set LAN Configuration refused: the pod network owns the address');
      return fail(LanCC.READ_ONLY);
    }
    return fail(LanCC.PARAM_NOT_SUPPORTED);
  };

  return [
    spec(NetFn.TRANSPORT, LanCmd.SET_LAN_CONFIG, 'Set LAN Configuration Parameters', Privilege.Administrator, set),
    spec(NetFn.TRANSPORT, LanCmd.GET_LAN_CONFIG, 'Get LAN Configuration Parameters', Privilege.Operator, get),
  ];
}
