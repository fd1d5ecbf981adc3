/**
 * Where InsertMedia may make the agent (and, in KubeVirt mode, CDI's importer) fetch from: the
 * media egress policy. An Administrator names the URL, so without a policy the agent is a
 * request-forgery proxy into whatever its Pod can reach: its own loopback ports, the node's
 * link-local cloud metadata service, multicast groups.
 *
 * The check, in order:
 *  1. the scheme is http or https (validateImageUrl already refuses the rest);
 *  2. a `deny` host pattern matching the URL's host refuses;
 *  3. the host is resolved (an IP literal is taken as is; the WHATWG URL parser has already turned
 *     `http://2130706433/` or `http://0x7f.1/` into 127.0.0.1) and EVERY address is checked: one
 *     refused address refuses the URL (no round-robin games);
 *  4. per address: a `deny` CIDR refuses; an `allow` CIDR, or an `allow` host pattern matching the
 *     URL's host, permits; an address in a default-refused range (DEFAULT_REFUSED) or one of the
 *     agent's own addresses (its Pod IP: localAddresses) refuses; anything else is permitted.
 *     An IPv6 address that carries an IPv4 address (IPv4-mapped, NAT64, 6to4, Teredo: see
 *     embeddedIPv4) is checked as itself AND as that IPv4 address, since a NAT64 gateway or 6to4
 *     relay forwards the request there: `deny` of either refuses, and a default-refused or own
 *     IPv4 address inside refuses unless the IPv6 form itself (or the IPv4 address) is allowed.
 * So `deny` always wins, `allow` only opens holes in the defaults (it never turns the policy into
 * an allow-only list), and private ranges (10/8, 172.16/12, 192.168/16, fc00::/7), where in-cluster
 * image servers live, are permitted unless denied.
 *
 * The probe connects to the address that was checked (`pinnedLookup`), so a DNS answer that
 * changes between check and connect (DNS rebinding) cannot move it. CDI's importer resolves the
 * name again on its own; docs/security.md says what that leaves open.
 */
import { lookup as dnsLookup } from 'node:dns/promises';
import type { LookupAddress } from 'node:dns';
import { BlockList, isIP } from 'node:net';
import { networkInterfaces } from 'node:os';

/** Ranges no image URL may reach unless allowed explicitly. */
export const DEFAULT_REFUSED: readonly { cidr: string; why: string }[] = [
  { cidr: '0.0.0.0/8', why: 'unspecified ("this network"; Linux connects 0.0.0.0 to the local host)' },
  { cidr: '127.0.0.0/8', why: 'loopback (the agent itself)' },
  { cidr: '169.254.0.0/16', why: 'link-local (cloud metadata at 169.254.169.254)' },
  { cidr: '100.100.100.200/32', why: 'cloud metadata (Alibaba Cloud)' },
  { cidr: '224.0.0.0/4', why: 'multicast' },
  { cidr: '240.0.0.0/4', why: 'reserved and broadcast' },
  { cidr: '::/128', why: 'unspecified' },
  { cidr: '::1/128', why: 'loopback (the agent itself)' },
  { cidr: 'fe80::/10', why: 'link-local' },
  { cidr: 'fd00:ec2::254/128', why: 'cloud metadata (AWS IPv6)' },
  { cidr: 'ff00::/8', why: 'multicast' },
];

export class EgressRuleError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EgressRuleError';
  }
}

type Family = 'ipv4' | 'ipv6';

interface Cidr {
  address: string;
  prefix: number;
  family: Family;
}

/** A host pattern: `images.example.com` (that host) or `*.example.com` (any host below it, not the apex). */
interface HostPattern {
  suffix: boolean;
  name: string;
}

const HOST_LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

function parseCidr(s: string): Cidr | undefined {
  const [addr, len, ...rest] = s.split('/');
  if (rest.length > 0 || addr === undefined) return undefined;
  const v = isIP(addr);
  if (v === 0) return undefined;
  const family: Family = v === 4 ? 'ipv4' : 'ipv6';
  const max = v === 4 ? 32 : 128;
  if (len === undefined) return { address: addr, prefix: max, family };
  if (!/^\d{1,3}$/.test(len) || Number(len) > max) return undefined;
  return { address: addr, prefix: Number(len), family };
}

function parseHostPattern(s: string): HostPattern | undefined {
  const lower = s.toLowerCase().replace(/\.$/, '');
  const suffix = lower.startsWith('*.');
  const name = suffix ? lower.slice(2) : lower;
  if (name === '' || name.length > 253 || !name.split('.').every((l) => HOST_LABEL.test(l))) return undefined;
  return { suffix, name };
}

/** An IPv4-mapped IPv6 address (::ffff:127.0.0.1, ::ffff:7f00:1) as the IPv4 address it is. */
export function normaliseAddress(address: string): { address: string; family: Family } {
  const a = address.toLowerCase();
  if (isIP(a) === 4) return { address: a, family: 'ipv4' };
  const dotted = /^(?:0{0,4}:){0,5}:?ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (dotted && isIP(dotted[1]!) === 4) return { address: dotted[1]!, family: 'ipv4' };
  const hex = /^(?:0{0,4}:){0,5}:?ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(a);
  if (hex) {
    const hi = parseInt(hex[1]!, 16);
    const lo = parseInt(hex[2]!, 16);
    return { address: `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`, family: 'ipv4' };
  }
  return { address: a, family: 'ipv6' };
}

/** The eight 16-bit groups of an IPv6 address (`isIP(a) === 6`; a zone `%eth0` is ignored). */
export function ipv6Groups(address: string): number[] | undefined {
  let a = address.toLowerCase().replace(/%.*$/, '');
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(a);
  if (dotted) {
    const [b0, b1, b2, b3] = dotted.slice(1).map(Number) as [number, number, number, number];
    a = `${a.slice(0, dotted.index)}${((b0 << 8) | b1).toString(16)}:${((b2 << 8) | b3).toString(16)}`;
  }
  const halves = a.split('::');
  if (halves.length > 2) return undefined;
  const part = (h: string | undefined) => (h === undefined || h === '' ? [] : h.split(':').map((g) => parseInt(g, 16)));
  const head = part(halves[0]);
  const tail = part(halves[1]);
  const fill = halves.length === 2 ? 8 - head.length - tail.length : 0;
  const groups = [...head, ...new Array<number>(Math.max(0, fill)).fill(0), ...tail];
  if (groups.length !== 8 || groups.some((g) => !Number.isInteger(g) || g < 0 || g > 0xffff)) return undefined;
  return groups;
}

function v4(hi: number, lo: number): string {
  return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
}

/**
 * The IPv4 address an IPv6 address stands for when it is one of the translation forms that
 * deliver to that IPv4 address (IPv4-mapped forms are folded by normaliseAddress already):
 *  - NAT64 well-known prefix 64:ff9b::/96 (RFC 6052 section 2.1; the IPv4 address is the last 32 bits);
 *  - NAT64 local-use prefix 64:ff9b:1::/48 (RFC 8215), with RFC 6052's /48 layout: the IPv4 address
 *    is in bits 48-63 and 72-87, around the reserved octet at bits 64-71;
 *  - 6to4 2002::/16 (RFC 3056 section 2: the IPv4 address is bits 16-47);
 *  - Teredo 2001::/32 (RFC 4380 section 4: the client's IPv4 address is bits 96-127, inverted);
 *  - SIIT's IPv4-translated ::ffff:0:0/96 (RFC 2765 section 2.1) and the deprecated
 *    IPv4-compatible ::/96 (RFC 4291 section 2.5.5.1; :: and ::1 themselves are refused anyway).
 * A network-specific NAT64 prefix an operator picked cannot be recognised: deny it with a rule.
 */
export function embeddedIPv4(address: string): { form: string; ipv4: string } | undefined {
  if (isIP(address) !== 6) return undefined;
  const g = ipv6Groups(address);
  if (!g) return undefined;
  const [g0, g1, g2, g3, g4, g5, g6, g7] = g as [number, number, number, number, number, number, number, number];
  if (g0 === 0x64 && g1 === 0xff9b && g2 === 0 && g3 === 0 && g4 === 0 && g5 === 0) return { form: 'NAT64', ipv4: v4(g6, g7) };
  if (g0 === 0x64 && g1 === 0xff9b && g2 === 1 && g4 >> 8 === 0) return { form: 'NAT64', ipv4: v4(g3, ((g4 & 0xff) << 8) | (g5 >> 8)) };
  if (g0 === 0x2002) return { form: '6to4', ipv4: v4(g1, g2) };
  if (g0 === 0x2001 && g1 === 0) return { form: 'Teredo', ipv4: v4(g6 ^ 0xffff, g7 ^ 0xffff) };
  if (g0 === 0 && g1 === 0 && g2 === 0 && g3 === 0) {
    if (g4 === 0xffff && g5 === 0) return { form: 'SIIT', ipv4: v4(g6, g7) };
    if (g4 === 0 && g5 === 0 && (g6 !== 0 || g7 > 1)) return { form: 'IPv4-compatible', ipv4: v4(g6, g7) };
  }
  return undefined;
}

/** Every address of every interface of this host (in a Pod: the Pod IPs, both families). */
export function systemLocalAddresses(): string[] {
  return Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((i) => i.address));
}

class Ranges {
  private readonly list = new BlockList();
  private empty = true;

  add(c: Cidr): void {
    this.list.addSubnet(c.address, c.prefix, c.family);
    this.empty = false;
  }

  has(address: string, family: Family): boolean {
    return !this.empty && this.list.check(address, family);
  }
}

export interface EgressRules {
  /** CIDRs (`10.0.0.0/8`, `127.0.0.1`, `fd00::/8`) and host patterns (`iso.example.com`, `*.example.com`) */
  allow?: readonly string[];
  deny?: readonly string[];
}

export interface EgressDecision {
  /** the address to connect to (the first one resolved, all of them checked) */
  address: string;
  family: 4 | 6;
}

export type Resolver = (host: string) => Promise<LookupAddress[]>;

const systemResolver: Resolver = (host) => dnsLookup(host, { all: true, verbatim: true });

/** Why a URL is refused: the reason stays in the agent's log; users see only that policy refused it. */
export class EgressRefused extends Error {
  constructor(
    message: string,
    /** `policy` (refused address or host) or `unresolved` (DNS gave nothing) */
    readonly kind: 'policy' | 'unresolved',
  ) {
    super(message);
    this.name = 'EgressRefused';
  }
}

export class EgressPolicy {
  private readonly allowNets = new Ranges();
  private readonly denyNets = new Ranges();
  private readonly refusedNets = new Ranges();
  private readonly allowHosts: HostPattern[] = [];
  private readonly denyHosts: HostPattern[] = [];
  readonly rules: Required<EgressRules>;

  /**
   * EgressRuleError naming the first entry that is neither a CIDR nor a host pattern.
   * `localAddresses` lists the agent's own addresses, read at every check (interfaces change).
   */
  constructor(
    rules: EgressRules = {},
    private readonly resolve: Resolver = systemResolver,
    private readonly localAddresses: () => readonly string[] = systemLocalAddresses,
  ) {
    this.rules = { allow: [...(rules.allow ?? [])], deny: [...(rules.deny ?? [])] };
    for (const [list, nets, hosts] of [
      [this.rules.allow, this.allowNets, this.allowHosts],
      [this.rules.deny, this.denyNets, this.denyHosts],
    ] as const) {
      for (const raw of list) {
        const s = raw.trim();
        const c = parseCidr(s);
        if (c) {
          nets.add(c);
          continue;
        }
        const h = parseHostPattern(s);
        if (!h) throw new EgressRuleError(`media egress rule "${raw}" is neither a CIDR (10.0.0.0/8, fd00::/8, 192.0.2.1) nor a host pattern (iso.example.com, *.example.com)`);
        hosts.push(h);
      }
    }
    for (const r of DEFAULT_REFUSED) this.refusedNets.add(parseCidr(r.cidr)!);
  }

  /** The policy with no rules: the defaults only. */
  static readonly DEFAULT = new EgressPolicy();

  private static matches(patterns: readonly HostPattern[], host: string): boolean {
    const h = host.toLowerCase().replace(/\.$/, '');
    return patterns.some((p) => (p.suffix ? h.endsWith(`.${p.name}`) : h === p.name));
  }

  /** Why `address` (normalised) is refused by default, if it is: a DEFAULT_REFUSED range or an own address. */
  private refusedByDefault(address: string, family: Family, own: ReadonlySet<string>): string | undefined {
    if (this.refusedNets.has(address, family)) {
      const why = DEFAULT_REFUSED.find((r) => {
        const c = parseCidr(r.cidr)!;
        const one = new BlockList();
        one.addSubnet(c.address, c.prefix, c.family);
        return one.check(address, family);
      })?.why;
      return why ?? 'refused by default';
    }
    if (own.has(address)) return "one of the agent's own addresses (its Pod IP)";
    return undefined;
  }

  /** The agent's own addresses, normalised (IPv4-mapped as IPv4, zones dropped, IPv6 expanded). */
  private ownAddresses(): Set<string> {
    const own = new Set<string>();
    for (const a of this.localAddresses()) {
      if (isIP(a.replace(/%.*$/, '')) === 0) continue;
      own.add(EgressPolicy.canonical(a));
    }
    return own;
  }

  /** One spelling per address, so a set lookup works whatever the IPv6 compression. */
  private static canonical(address: string): string {
    const n = normaliseAddress(address.replace(/%.*$/, ''));
    if (n.family === 'ipv4') return n.address;
    return ipv6Groups(n.address)?.map((g) => g.toString(16)).join(':') ?? n.address;
  }

  /** Whether one address may be reached for a URL whose host is `host` (a reason when not). */
  addressVerdict(address: string, host: string, own: ReadonlySet<string> = this.ownAddresses()): string | undefined {
    const n = normaliseAddress(address);
    const inner = embeddedIPv4(n.address);
    const carried = inner ? ` (${inner.form} for ${inner.ipv4})` : '';
    if (this.denyNets.has(n.address, n.family)) return `${n.address} is in a denied range`;
    if (inner && this.denyNets.has(inner.ipv4, 'ipv4')) return `${n.address}${carried}: ${inner.ipv4} is in a denied range`;
    if (this.allowNets.has(n.address, n.family) || EgressPolicy.matches(this.allowHosts, host)) return undefined;
    if (inner && !this.allowNets.has(inner.ipv4, 'ipv4')) {
      const why = this.refusedByDefault(inner.ipv4, 'ipv4', own);
      if (why) return `${n.address}${carried}: ${inner.ipv4} is ${why}`;
    }
    const why = this.refusedByDefault(n.address, n.family, own.has(EgressPolicy.canonical(n.address)) ? new Set([n.address]) : new Set());
    return why ? `${n.address} is ${why}` : undefined;
  }

  /**
   * Check a URL: EgressRefused (policy or unresolved), else the address to connect to. The
   * scheme is checked again here so no caller can skip it.
   */
  async check(url: URL): Promise<EgressDecision> {
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new EgressRefused(`scheme ${url.protocol} is not http or https`, 'policy');
    const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
    if (EgressPolicy.matches(this.denyHosts, host)) throw new EgressRefused(`host ${host} matches a deny pattern`, 'policy');
    let addrs: LookupAddress[];
    if (isIP(host) !== 0) addrs = [{ address: host, family: isIP(host) }];
    else {
      try {
        addrs = await this.resolve(host);
      } catch (e) {
        throw new EgressRefused(`host ${host} did not resolve (${(e as NodeJS.ErrnoException).code ?? 'error'})`, 'unresolved');
      }
    }
    if (addrs.length === 0) throw new EgressRefused(`host ${host} resolved to no address`, 'unresolved');
    const own = this.ownAddresses();
    for (const a of addrs) {
      const why = this.addressVerdict(a.address, host, own);
      if (why) throw new EgressRefused(`host ${host}: ${why}`, 'policy');
    }
    const first = addrs[0]!;
    return { address: first.address, family: first.family === 6 ? 6 : 4 };
  }
}

/**
 * A `lookup` for http.request that answers with the checked address whatever the name (so the
 * connection goes where the policy looked; TLS still verifies the URL's host name).
 */
export function pinnedLookup(d: EgressDecision) {
  return (
    _host: string,
    options: { all?: boolean } | number | undefined,
    cb: (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void,
  ): void => {
    if (typeof options === 'object' && options?.all) cb(null, [{ address: d.address, family: d.family }]);
    else cb(null, d.address, d.family);
  };
}
