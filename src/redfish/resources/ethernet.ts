/**
 * The system's EthernetInterfaces: one member per NIC the backend reports, addressed by the
 * seam's NetworkInterface.id. Link status follows the machine's power state.
 */
import { isIPv4, isIPv6 } from 'node:net';
import type { MachineSnapshot, NetworkInterface } from '../../backend/types.js';
import { RedfishError } from '../core/errors.js';
import { collection, sendResource } from '../core/odata.js';
import type { OperationHandlers, RedfishContext } from '../core/types.js';
import { SYSTEM, SYSTEM_ID, backend, requireId, status, type Annotated, type Schemas } from '../core/resource.js';

const BASE = `${SYSTEM}/EthernetInterfaces`;

const memberPath = (nic: NetworkInterface): string => `${BASE}/${encodeURIComponent(nic.id)}`;

function interfaceBody(nic: NetworkInterface, snap: MachineSnapshot): Record<string, unknown> {
  const running = snap.power === 'On' || snap.power === 'Paused';
  const mac = nic.macAddress.toUpperCase();
  const body: Annotated<Schemas['EthernetInterface_v1_12_4_EthernetInterface']> = {
    '@odata.type': '#EthernetInterface.v1_12_4.EthernetInterface',
    '@odata.id': memberPath(nic),
    Id: nic.id,
    Name: `Ethernet Interface ${nic.id}`,
    Description: `Virtual NIC ${nic.id} of ${snap.info.name}`,
    EthernetInterfaceType: 'Virtual',
    InterfaceEnabled: true,
    MACAddress: mac,
    PermanentMACAddress: mac,
    // the platform's link state when it reports one (KubeVirt: VMI interfaces[].linkState), else the power state
    LinkStatus: running && nic.linkUp !== false ? 'LinkUp' : 'LinkDown',
    Status: status(),
  };
  // what the guest does not tell the platform is null (unknown), not made up: KubeVirt reports no link
  // speed, the guest's resolver or FQDN; the host name only when the guest agent reports one
  body.SpeedMbps = nic.speedMbps ?? null;
  body.HostName = snap.info.guestOs?.hostName ?? null;
  body.FQDN = null;
  body.NameServers = [];
  body.IPv4Addresses = (nic.ipv4Addresses ?? []).map(ipv4Address).filter((a) => a !== undefined);
  const v6 = (nic.ipv6Addresses ?? []).map(ipv6Address).filter((a) => a !== undefined);
  if (v6.length > 0) body.IPv6Addresses = v6;
  return body;
}

/** "fd00::5" or "fd00::5/64" → an IPv6Address object; anything else is skipped. */
function ipv6Address(text: string): Record<string, string | number> | undefined {
  const [addr = '', prefix] = text.trim().split('/');
  if (!isIPv6(addr)) return undefined;
  const bits = prefix === undefined ? NaN : Number(prefix);
  return Number.isInteger(bits) && bits >= 0 && bits <= 128 ? { Address: addr, PrefixLength: bits } : { Address: addr };
}

/** "10.0.0.5" or "10.0.0.5/24" → an IPv4Address object; anything else is skipped. */
function ipv4Address(text: string): Record<string, string> | undefined {
  const [addr = '', prefix] = text.trim().split('/');
  if (!isIPv4(addr)) return undefined;
  const out: Record<string, string> = { Address: addr };
  const bits = prefix === undefined ? NaN : Number(prefix);
  if (Number.isInteger(bits) && bits >= 0 && bits <= 32) {
    const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
    out.SubnetMask = [24, 16, 8, 0].map((s) => (mask >>> s) & 0xff).join('.');
  }
  return out;
}

async function snapshot(ctx: RedfishContext): Promise<MachineSnapshot> {
  requireId(ctx, 'ComputerSystemId', SYSTEM_ID, 'ComputerSystem');
  return backend(ctx.state.deps.machine.snapshot());
}

export const handlers: OperationHandlers = {
  listSystemEthernetInterfaces: async (ctx) => {
    const snap = await snapshot(ctx);
    sendResource(
      ctx,
      collection(ctx, BASE, 'EthernetInterfaceCollection', 'Ethernet Interface Collection', snap.info.nics.map(memberPath)),
    );
  },

  getSystemEthernetInterface: async (ctx) => {
    const snap = await snapshot(ctx);
    const id = ctx.params.EthernetInterfaceId ?? '';
    const nic = snap.info.nics.find((n) => n.id === id);
    if (!nic) throw new RedfishError(404, 'ResourceNotFound', ['EthernetInterface', id]);
    sendResource(ctx, interfaceBody(nic, snap), { etag: true });
  },
};
