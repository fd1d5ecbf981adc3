/**
 * The agent's own network identity, one model read by both protocols: IPMI Get LAN Configuration
 * Parameters (src/ipmi/commands/lan.ts) and Redfish Manager EthernetInterfaces / NetworkProtocol
 * (src/redfish/resources/manager-ethernet.ts, managers.ts).
 *
 * What the BMC reports is the interface its listeners use: the one holding the listen address when
 * that is a specific address, else the one holding POD_IP (the downward API, set by the controller),
 * else the interface of the default route (/proc/net/route), else the first non-loopback interface,
 * else loopback. The default gateway comes from /proc/net/route for that interface, name servers
 * from /etc/resolv.conf, speed and link state from /sys/class/net/<if>/. Host name is the pod's
 * (os.hostname()); the FQDN is the agent Service's DNS name when the controller passes it
 * (VIRTBMC_FQDN / --fqdn). No VLAN: a pod interface carries none the BMC could see.
 *
 * Nothing here is settable from the BMC: the address belongs to the pod network.
 */
import { readFileSync } from 'node:fs';
import { hostname, networkInterfaces, type NetworkInterfaceInfo } from 'node:os';
import { isIPv4, isIPv6 } from 'node:net';

export interface Ipv4Config {
  address: string;
  subnetMask: string;
  prefixLength: number;
}

export interface Ipv6Config {
  address: string;
  prefixLength: number;
  /** Redfish IPv6AddressOrigin: link-local addresses are LinkLocal; the pod network assigns the rest */
  origin: 'LinkLocal' | 'Static';
}

export interface NetworkInfo {
  /** Kernel interface name (eth0, lo) */
  interfaceName: string;
  /** Lower-case colon form; 00:00:00:00:00:00 for loopback */
  macAddress: string;
  ipv4?: Ipv4Config;
  ipv6: Ipv6Config[];
  /** IPv4 default gateway of this interface, when it has one */
  ipv4Gateway?: string;
  /** IPv6 default gateway, when the kernel has one for this interface */
  ipv6Gateway?: string;
  hostName: string;
  /** Fully qualified name (the agent Service's DNS name) when known */
  fqdn?: string;
  nameServers: string[];
  /** Link speed in Mb/s when the kernel reports one (veth: 10000) */
  speedMbps?: number;
  linkUp: boolean;
  /** Always undefined: no 802.1Q tagging is visible to a pod */
  vlanId?: number;
}

/** Where the facts come from; tests pass their own. */
export interface NetworkSources {
  interfaces(): NodeJS.Dict<NetworkInterfaceInfo[]>;
  /** File content, or undefined when it cannot be read */
  readFile(path: string): string | undefined;
  hostname(): string;
}

export const systemSources: NetworkSources = {
  interfaces: () => networkInterfaces(),
  readFile: (path) => {
    try {
      return readFileSync(path, 'utf8');
    } catch {
      return undefined;
    }
  },
  hostname: () => hostname(),
};

export interface NetworkOptions {
  /** The address the listeners bind (0.0.0.0 / :: = all) */
  listenAddress: string;
  /** The pod's IP (env POD_IP), used to pick the interface when listening on all addresses */
  podIp?: string;
  /** FQDN the controller computed for the agent's Service */
  fqdn?: string;
  sources?: NetworkSources;
  /** How long one reading is reused (ms, default 5000); a pod's addresses do not change under it */
  cacheMs?: number;
  now?: () => number;
}

const WILDCARD = new Set(['', '0.0.0.0', '::', '::0']);

function bare(addr: string): string {
  const a = addr.startsWith('::ffff:') && isIPv4(addr.slice(7)) ? addr.slice(7) : addr;
  return a.replace(/%.*$/, '').toLowerCase();
}

/** /proc/net/route: default-route (destination 0) gateways per interface, little-endian hex. */
export function parseIpv4Routes(text: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of (text ?? '').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8) continue;
    const [iface, dest, gw, flags, , , , mask] = f as [string, string, string, string, string, string, string, string];
    // RTF_UP (1) and RTF_GATEWAY (2), destination and mask 0: a default route
    if (dest !== '00000000' || mask !== '00000000' || (parseInt(flags, 16) & 0x3) !== 0x3) continue;
    const n = parseInt(gw, 16);
    if (!Number.isFinite(n) || out.has(iface)) continue;
    out.set(iface, [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff].join('.'));
  }
  return out;
}

/** /proc/net/ipv6_route: default routes (::/0 with a next hop) per interface. */
export function parseIpv6Routes(text: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of (text ?? '').split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10) continue;
    const [dest, plen, , , hop, , , , flags, iface] = f as string[] as [string, string, string, string, string, string, string, string, string, string];
    if (!/^0{32}$/.test(dest) || plen !== '00' || /^0{32}$/.test(hop) || (parseInt(flags, 16) & 0x3) !== 0x3) continue;
    if (out.has(iface)) continue;
    const groups = hop.match(/.{4}/g)!.map((g) => parseInt(g, 16).toString(16));
    out.set(iface, compressIpv6(groups));
  }
  return out;
}

function compressIpv6(groups: string[]): string {
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < groups.length; ) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < groups.length && groups[j] === '0') j++;
    if (j - i > bestLen && j - i > 1) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

/** nameserver lines of resolv.conf, in order. */
export function parseResolvConf(text: string | undefined): string[] {
  const out: string[] = [];
  for (const line of (text ?? '').split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (m && (isIPv4(m[1]!) || isIPv6(m[1]!.replace(/%.*$/, '')))) out.push(m[1]!);
  }
  return out;
}

/** Pick the interface the BMC's listeners use (see the file comment for the order). */
export function chooseInterface(
  ifaces: NodeJS.Dict<NetworkInterfaceInfo[]>,
  opts: { listenAddress: string; podIp?: string; defaultRouteIfaces: readonly string[] },
): string | undefined {
  const names = Object.keys(ifaces).filter((n) => (ifaces[n] ?? []).length > 0);
  const holding = (addr: string) => names.find((n) => (ifaces[n] ?? []).some((a) => bare(a.address) === bare(addr)));
  if (!WILDCARD.has(opts.listenAddress)) {
    const n = holding(opts.listenAddress);
    if (n) return n;
  }
  if (opts.podIp) {
    const n = holding(opts.podIp);
    if (n) return n;
  }
  const routed = opts.defaultRouteIfaces.find((n) => names.includes(n));
  if (routed) return routed;
  return names.find((n) => (ifaces[n] ?? []).some((a) => !a.internal)) ?? names[0];
}

/** One reading of the network facts. */
export function readNetwork(opts: NetworkOptions): NetworkInfo {
  const src = opts.sources ?? systemSources;
  const ifaces = src.interfaces();
  const v4routes = parseIpv4Routes(src.readFile('/proc/net/route'));
  const v6routes = parseIpv6Routes(src.readFile('/proc/net/ipv6_route'));
  const name =
    chooseInterface(ifaces, {
      listenAddress: opts.listenAddress,
      ...(opts.podIp ? { podIp: opts.podIp } : {}),
      defaultRouteIfaces: [...v4routes.keys(), ...v6routes.keys()],
    }) ?? 'lo';
  const addrs = ifaces[name] ?? [];
  const listen = bare(opts.listenAddress);
  const pod = opts.podIp ? bare(opts.podIp) : undefined;
  const v4all = addrs.filter((a) => a.family === 'IPv4');
  // The address the listeners bind or the pod IP first, when the interface has several
  const v4 = v4all.find((a) => a.address === listen) ?? v4all.find((a) => a.address === pod) ?? v4all[0];
  const ipv6 = addrs
    .filter((a) => a.family === 'IPv6')
    .map<Ipv6Config>((a) => ({
      address: bare(a.address),
      prefixLength: prefixOf(a),
      origin: /^fe[89ab]/i.test(a.address) ? 'LinkLocal' : 'Static',
    }));
  const mac = (addrs.find((a) => a.mac && a.mac !== '00:00:00:00:00:00')?.mac ?? '00:00:00:00:00:00').toLowerCase();
  const speedText = src.readFile(`/sys/class/net/${name}/speed`)?.trim();
  const speed = speedText !== undefined && /^\d+$/.test(speedText) ? Number(speedText) : undefined;
  const oper = src.readFile(`/sys/class/net/${name}/operstate`)?.trim();
  // loopback reports "unknown"; a missing file (no /sys) means we cannot tell, and the listeners are up
  const linkUp = oper === undefined || oper === 'up' || oper === 'unknown';
  const info: NetworkInfo = {
    interfaceName: name,
    macAddress: mac,
    ipv6,
    hostName: src.hostname(),
    nameServers: parseResolvConf(src.readFile('/etc/resolv.conf')),
    linkUp,
  };
  if (v4) info.ipv4 = { address: v4.address, subnetMask: v4.netmask, prefixLength: prefixOf(v4) };
  const gw4 = v4routes.get(name);
  if (gw4) info.ipv4Gateway = gw4;
  const gw6 = v6routes.get(name);
  if (gw6) info.ipv6Gateway = gw6;
  if (opts.fqdn) info.fqdn = opts.fqdn;
  if (speed !== undefined && speed > 0) info.speedMbps = speed;
  return info;
}

function prefixOf(a: NetworkInterfaceInfo): number {
  const m = /\/(\d+)$/.exec(a.cidr ?? '');
  if (m) return Number(m[1]);
  if (a.family === 'IPv4') return a.netmask.split('.').reduce((n, o) => n + popcount(Number(o)), 0);
  return 128;
}

function popcount(n: number): number {
  let c = 0;
  for (let v = n & 0xff; v; v >>= 1) c += v & 1;
  return c;
}

/** The model both protocols hold: the current reading, refreshed at most every cacheMs. */
export class NetworkModel {
  private cached: { at: number; info: NetworkInfo } | undefined;
  private readonly now: () => number;
  private readonly cacheMs: number;

  constructor(private readonly opts: NetworkOptions) {
    this.now = opts.now ?? Date.now;
    this.cacheMs = opts.cacheMs ?? 5000;
  }

  current(): NetworkInfo {
    const t = this.now();
    if (this.cached && t - this.cached.at < this.cacheMs) return this.cached.info;
    const info = readNetwork(this.opts);
    this.cached = { at: t, info };
    return info;
  }
}

/** A MAC in colon form as 6 bytes (zeros when it does not parse). */
export function macBytes(mac: string): Buffer {
  const hex = mac.replace(/[:-]/g, '');
  return /^[0-9a-fA-F]{12}$/.test(hex) ? Buffer.from(hex, 'hex') : Buffer.alloc(6);
}

/** A dotted IPv4 address as 4 bytes (zeros when absent or not IPv4). */
export function ipv4Bytes(addr: string | undefined): Buffer {
  if (!addr || !isIPv4(addr)) return Buffer.alloc(4);
  return Buffer.from(addr.split('.').map(Number));
}
