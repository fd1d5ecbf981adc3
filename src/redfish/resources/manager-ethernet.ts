/**
 * The manager's own EthernetInterfaces: the one interface the agent's listeners use, from the
 * network model IPMI's LAN configuration reads too (src/common/network.ts). Read-only: the address
 * belongs to the pod network. The system's (the VM's) interfaces are ethernet.ts.
 */
import { NetworkModel, type NetworkInfo } from '../../common/network.js';
import { RedfishError } from '../core/errors.js';
import { collection, sendResource } from '../core/odata.js';
import type { OperationHandlers, RedfishContext } from '../core/types.js';
import { CHASSIS, MANAGER, MANAGER_ID, requireId, status, type Annotated, type Schemas } from '../core/resource.js';

export const MANAGER_NIC_ID = 'eth0';
const BASE = `${MANAGER}/EthernetInterfaces`;
const MEMBER = `${BASE}/${MANAGER_NIC_ID}`;

/** The model the agent shares; a bare Redfish server reads the interface of its own socket. */
export function networkOf(ctx: RedfishContext): NetworkInfo {
  const deps = ctx.state.deps;
  deps.network ??= new NetworkModel({ listenAddress: ctx.req.socket.localAddress ?? '0.0.0.0' });
  return deps.network.current();
}

export function managerInterfaceBody(net: NetworkInfo): Record<string, unknown> {
  const mac = net.macAddress.toUpperCase();
  const body: Annotated<Schemas['EthernetInterface_v1_12_4_EthernetInterface']> = {
    '@odata.type': '#EthernetInterface.v1_12_4.EthernetInterface',
    '@odata.id': MEMBER,
    Id: MANAGER_NIC_ID,
    Name: 'Manager Ethernet Interface',
    Description: `The BMC agent's network interface (${net.interfaceName}), assigned by the pod network`,
    EthernetInterfaceType: 'Virtual',
    InterfaceEnabled: true,
    LinkStatus: net.linkUp ? 'LinkUp' : 'LinkDown',
    MACAddress: mac,
    PermanentMACAddress: mac,
    HostName: net.hostName,
    NameServers: net.nameServers,
    StaticNameServers: [],
    // DHCP is not the BMC's: the pod network (CNI) hands out the address
    DHCPv4: { DHCPEnabled: false },
    DHCPv6: { OperatingMode: 'Disabled' },
    IPv4Addresses: net.ipv4
      ? [
          {
            Address: net.ipv4.address,
            SubnetMask: net.ipv4.subnetMask,
            AddressOrigin: 'Static',
            // null: this interface has no IPv4 default route (loopback, an isolated namespace)
            Gateway: net.ipv4Gateway ?? null,
          },
        ]
      : [],
    IPv4StaticAddresses: [],
    IPv6Addresses: net.ipv6.map((a) => ({ Address: a.address, PrefixLength: a.prefixLength, AddressOrigin: a.origin, AddressState: 'Preferred' })),
    IPv6StaticAddresses: [],
    IPv6AddressPolicyTable: [],
    ...(net.ipv6Gateway ? { IPv6DefaultGateway: net.ipv6Gateway } : {}),
    // No 802.1Q tag is visible to a pod
    VLAN: { VLANEnable: false },
    Status: status('Enabled', 'OK'),
    Links: { Chassis: { '@odata.id': CHASSIS } },
  };
  // null is "not known": no --fqdn/VIRTBMC_FQDN was given; the kernel reports no speed (loopback)
  body.FQDN = net.fqdn ?? null;
  body.SpeedMbps = net.speedMbps ?? null;
  return body;
}

export const handlers: OperationHandlers = {
  listManagerEthernetInterfaces: async (ctx) => {
    requireId(ctx, 'ManagerId', MANAGER_ID, 'Manager');
    sendResource(ctx, collection(ctx, BASE, 'EthernetInterfaceCollection', 'Manager Ethernet Interface Collection', [MEMBER]));
  },

  getManagerEthernetInterface: async (ctx) => {
    requireId(ctx, 'ManagerId', MANAGER_ID, 'Manager');
    if (ctx.params['EthernetInterfaceId'] !== MANAGER_NIC_ID) {
      throw new RedfishError(404, 'ResourceNotFound', ['EthernetInterface', ctx.params['EthernetInterfaceId'] ?? '']);
    }
    sendResource(ctx, managerInterfaceBody(networkOf(ctx)), { etag: true });
  },
};
