/** A pod's network as the agent's network model sees it: eth0 10.244.1.17/24 via 10.244.1.1, fd00::11/64. */
import type { NetworkSources } from '../../src/common/network.js';

export const POD_MAC = '0a:58:0a:f4:01:11';
const MAC = POD_MAC;
export const POD_SOURCES: NetworkSources = {
  interfaces: () => ({
    lo: [{ address: '127.0.0.1', netmask: '255.0.0.0', family: 'IPv4', mac: '00:00:00:00:00:00', internal: true, cidr: '127.0.0.1/8' }],
    eth0: [
      { address: '10.244.1.17', netmask: '255.255.255.0', family: 'IPv4', mac: MAC, internal: false, cidr: '10.244.1.17/24' },
      { address: 'fd00::11', netmask: 'ffff:ffff:ffff:ffff::', family: 'IPv6', mac: MAC, internal: false, cidr: 'fd00::11/64', scopeid: 0 },
    ],
  }),
  readFile: (p) =>
    ({
      '/proc/net/route': 'Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\neth0\t00000000\t0101F40A\t0003\t0\t0\t0\t00000000\t0\t0\t0',
      '/etc/resolv.conf': 'nameserver 10.96.0.10\n',
      '/sys/class/net/eth0/speed': '10000',
      '/sys/class/net/eth0/operstate': 'up',
    })[p],
  hostname: () => 'vmbmc-vm1-5f7d8-x2x9q',
};

