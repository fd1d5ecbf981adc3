import { expect } from 'chai';
import type { NetworkInterfaceInfo } from 'node:os';
import {
  NetworkModel,
  chooseInterface,
  parseIpv4Routes,
  parseIpv6Routes,
  parseResolvConf,
  readNetwork,
  type NetworkSources,
} from '../../src/common/network.js';

const v4 = (address: string, netmask: string, mac: string, internal = false): NetworkInterfaceInfo => ({
  address,
  netmask,
  family: 'IPv4',
  mac,
  internal,
  cidr: null,
});
const v6 = (address: string, prefix: number, mac: string, internal = false): NetworkInterfaceInfo => ({
  address,
  netmask: 'ffff:ffff:ffff:ffff::',
  family: 'IPv6',
  mac,
  internal,
  cidr: `${address}/${prefix}`,
  scopeid: 0,
});

/** A pod: lo plus eth0 10.244.1.17/24 with a default route via 10.244.1.1. */
const POD_ROUTE = [
  'Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT',
  'eth0\t00000000\t0101F40A\t0003\t0\t0\t0\t00000000\t0\t0\t0',
  'eth0\t0001F40A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0',
].join('\n');
const POD_ROUTE6 = [
  'fd000000000000000000000000000000 08 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0',
  '00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000000000000000000000000000001 00000400 00000001 00000000 00000003     eth0',
].join('\n');
const MAC = '0a:58:0a:f4:01:11';

function pod(over: Partial<Record<string, string>> = {}): NetworkSources {
  const files: Record<string, string> = {
    '/proc/net/route': POD_ROUTE,
    '/proc/net/ipv6_route': POD_ROUTE6,
    '/etc/resolv.conf': 'search ns1.svc.cluster.local svc.cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n',
    '/sys/class/net/eth0/speed': '10000\n',
    '/sys/class/net/eth0/operstate': 'up\n',
    ...over,
  } as Record<string, string>;
  return {
    interfaces: () => ({
      lo: [v4('127.0.0.1', '255.0.0.0', '00:00:00:00:00:00', true), v6('::1', 128, '00:00:00:00:00:00', true)],
      eth0: [v4('10.244.1.17', '255.255.255.0', MAC), v6('fd00::11', 64, MAC), v6('fe80::858:aff:fef4:111', 64, MAC)],
    }),
    readFile: (p) => files[p],
    hostname: () => 'vmbmc-vm1-7d9c-abcde',
  };
}

describe('agent network model', () => {
  it('parses default routes from /proc/net/route (little-endian hex, UP|GATEWAY only)', () => {
    expect([...parseIpv4Routes(POD_ROUTE)]).to.deep.equal([['eth0', '10.244.1.1']]);
    expect(parseIpv4Routes('header\n')).to.have.property('size', 0);
    expect(parseIpv4Routes(undefined)).to.have.property('size', 0);
  });

  it('parses the IPv6 default route and compresses the next hop', () => {
    expect([...parseIpv6Routes(POD_ROUTE6)]).to.deep.equal([['eth0', 'fd00::1']]);
  });

  it('reads name servers from resolv.conf, skipping junk', () => {
    expect(parseResolvConf('nameserver 10.96.0.10\n# nameserver 1.1.1.1\nnameserver not-an-ip\nnameserver fd00::a\n')).to.deep.equal(['10.96.0.10', 'fd00::a']);
  });

  it('on 0.0.0.0 in a pod: the default-route interface, its address, mask, MAC, gateway, speed, DNS', () => {
    const n = readNetwork({ listenAddress: '0.0.0.0', fqdn: 'vmbmc-vm1.ns1.svc.cluster.local', sources: pod() });
    expect(n.interfaceName).to.equal('eth0');
    expect(n.ipv4).to.deep.equal({ address: '10.244.1.17', subnetMask: '255.255.255.0', prefixLength: 24 });
    expect(n.macAddress).to.equal(MAC);
    expect(n.ipv4Gateway).to.equal('10.244.1.1');
    expect(n.ipv6Gateway).to.equal('fd00::1');
    expect(n.ipv6).to.deep.equal([
      { address: 'fd00::11', prefixLength: 64, origin: 'Static' },
      { address: 'fe80::858:aff:fef4:111', prefixLength: 64, origin: 'LinkLocal' },
    ]);
    expect(n.hostName).to.equal('vmbmc-vm1-7d9c-abcde');
    expect(n.fqdn).to.equal('vmbmc-vm1.ns1.svc.cluster.local');
    expect(n.nameServers).to.deep.equal(['10.96.0.10']);
    expect(n.speedMbps).to.equal(10000);
    expect(n.linkUp).to.equal(true);
    expect(n.vlanId).to.equal(undefined);
  });

  it('a specific listen address picks its interface (loopback: no gateway, zero MAC)', () => {
    const n = readNetwork({ listenAddress: '127.0.0.1', sources: pod() });
    expect(n.interfaceName).to.equal('lo');
    expect(n.ipv4?.address).to.equal('127.0.0.1');
    expect(n.macAddress).to.equal('00:00:00:00:00:00');
    expect(n.ipv4Gateway).to.equal(undefined);
    expect(n.fqdn).to.equal(undefined);
  });

  it('POD_IP picks the interface when listening on all addresses and no route is known', () => {
    const ifaces = pod().interfaces();
    expect(chooseInterface(ifaces, { listenAddress: '::', podIp: '10.244.1.17', defaultRouteIfaces: [] })).to.equal('eth0');
    expect(chooseInterface(ifaces, { listenAddress: '0.0.0.0', defaultRouteIfaces: [] })).to.equal('eth0');
  });

  it('a link that is down reads as down; an unreadable /sys leaves speed unknown', () => {
    const n = readNetwork({ listenAddress: '0.0.0.0', sources: pod({ '/sys/class/net/eth0/operstate': 'down\n', '/sys/class/net/eth0/speed': '-1\n' }) });
    expect(n.linkUp).to.equal(false);
    expect(n.speedMbps).to.equal(undefined);
  });

  it('the model re-reads only after cacheMs', () => {
    let t = 0;
    let reads = 0;
    const src = pod();
    const counting: NetworkSources = { ...src, interfaces: () => (reads++, src.interfaces()) };
    const m = new NetworkModel({ listenAddress: '0.0.0.0', sources: counting, cacheMs: 1000, now: () => t });
    m.current();
    m.current();
    expect(reads).to.equal(1);
    t = 1000;
    m.current();
    expect(reads).to.equal(2);
  });

  it('reads this machine without throwing (real /proc and os.networkInterfaces)', () => {
    const n = new NetworkModel({ listenAddress: '127.0.0.1' }).current();
    expect(n.interfaceName).to.equal('lo');
    expect(n.ipv4?.address).to.equal('127.0.0.1');
    expect(n.hostName).to.be.a('string').and.not.equal('');
  });
});
