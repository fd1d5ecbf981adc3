/**
 * The Manager "BMC" (this agent), its Reset action, ActionInfo and NetworkProtocol. The BMC view
 * has no state of its own to restart, so Manager.Reset only logs and answers 204.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isBackendError } from '../../backend/types.js';
import { RedfishError } from '../core/errors.js';
import { collection, sendResource } from '../core/odata.js';
import { validatePatch, withWriteableProperties, type WritableTree } from '../core/patch.js';
import { networkOf } from './manager-ethernet.js';
import { nameBasedUuid } from '../core/uuid.js';
import type { OperationHandlers, RedfishContext } from '../core/types.js';
import {
  CHASSIS,
  MANAGER,
  MANAGERS,
  MANAGER_ID,
  SYSTEM,
  actionBody,
  actionInfo,
  enumParameter,
  link,
  propertyPaths,
  requireId,
  status,
  type Annotated,
  type Schemas,
} from '../core/resource.js';

const MANAGER_RESET_TYPES = ['GracefulRestart', 'ForceRestart'] as const;

/** The package version, read once from the nearest package.json named kubevirtbmc. */
function packageVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'kubevirtbmc' && pkg.version) return pkg.version;
    } catch {
      // not here; look one level up
    }
    dir = dirname(dir);
  }
  return 'unknown';
}
export const FIRMWARE_VERSION = packageVersion();

/** ISO 8601 local time with offset, e.g. 2026-11-25T20:15:03+01:00, and the offset alone. */
export function redfishDateTime(d: Date): { dateTime: string; offset: string } {
  const minutes = -d.getTimezoneOffset();
  const sign = minutes >= 0 ? '+' : '-';
  const abs = Math.abs(minutes);
  const pad = (n: number): string => String(n).padStart(2, '0');
  const offset = `${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
  const local = new Date(d.getTime() + minutes * 60_000);
  return { dateTime: local.toISOString().slice(0, 19) + offset, offset };
}

/**
 * The manager is this agent, which stays up when its machine's platform does not: a backend outage
 * degrades its health instead of failing the read. The UUID derives from the service UUID (itself
 * stable per machine), so it needs no backend call.
 */
/** Nothing on the manager is settable (its clock is the host's): `@Redfish.WriteableProperties` is empty. */
const MANAGER_WRITABLE: WritableTree = {};

async function managerBody(ctx: RedfishContext): Promise<Record<string, unknown>> {
  const { deps } = ctx.state;
  let vm: string | undefined;
  let reachable = true;
  try {
    const info = await deps.machine.getSystemInfo();
    vm = info.namespace ? `${info.namespace}/${info.name}` : info.name;
  } catch (e) {
    if (!isBackendError(e)) throw e;
    reachable = false;
  }
  const { dateTime, offset } = redfishDateTime(deps.now());
  const body: Annotated<Schemas['Manager_v1_24_0_Manager']> = {
    '@odata.type': '#Manager.v1_24_0.Manager',
    '@odata.id': MANAGER,
    Id: MANAGER_ID,
    Name: 'KubeVirtBMC',
    Description: vm ? `Virtual BMC for KubeVirt virtual machine ${vm}` : 'Virtual BMC for a KubeVirt virtual machine',
    ManagerType: 'BMC',
    UUID: nameBasedUuid(deps.serviceUuid, 'manager'),
    ServiceEntryPointUUID: deps.serviceUuid,
    Model: 'KubeVirtBMC',
    FirmwareVersion: FIRMWARE_VERSION,
    DateTime: dateTime,
    DateTimeLocalOffset: offset,
    PowerState: 'On',
    // Warning while the machine's platform cannot be reached
    Status: status('Enabled', reachable ? 'OK' : 'Warning'),
    NetworkProtocol: link(`${MANAGER}/NetworkProtocol`),
    // The agent's own interface (the network model IPMI's LAN configuration reports too)
    EthernetInterfaces: link(`${MANAGER}/EthernetInterfaces`),
    // The serial console is IPMI Serial-over-LAN, one activation at a time (src/ipmi/sol). There is
    // no manager command shell and no graphical console, so CommandShell/GraphicalConsole are absent.
    SerialConsole: {
      ServiceEnabled: deps.serialConsole?.() ?? false,
      MaxConcurrentSessions: 1,
      ConnectTypesSupported: ['IPMI'],
    },
    VirtualMedia: link(`${MANAGER}/VirtualMedia`),
    LogServices: link(`${MANAGER}/LogServices`),
    Links: {
      ManagerForServers: [link(SYSTEM)],
      ManagerForChassis: [link(CHASSIS)],
      ManagerInChassis: link(CHASSIS),
    },
    Actions: {
      '#Manager.Reset': {
        target: `${MANAGER}/Actions/Manager.Reset`,
        '@Redfish.ActionInfo': `${MANAGER}/ResetActionInfo`,
        'ResetType@Redfish.AllowableValues': [...MANAGER_RESET_TYPES],
      },
    },
  };
  return withWriteableProperties(body, MANAGER_WRITABLE);
}

function networkProtocolBody(ctx: RedfishContext): Record<string, unknown> {
  // The port this very request arrived on is the Redfish port; TLS decides which scheme it is.
  const port = ctx.req.socket.localPort ?? null;
  const { tls, ipmiPort } = ctx.state.deps;
  const net = networkOf(ctx);
  const body: Annotated<Schemas['ManagerNetworkProtocol_v1_12_0_ManagerNetworkProtocol']> = {
    '@odata.type': '#ManagerNetworkProtocol.v1_12_0.ManagerNetworkProtocol',
    '@odata.id': `${MANAGER}/NetworkProtocol`,
    Id: 'NetworkProtocol',
    Name: 'Manager Network Protocol',
    Description: 'Protocols served by this KubeVirtBMC agent',
    Status: status(),
    // Same model as Manager EthernetInterfaces and IPMI LAN configuration
    HostName: net.hostName,
    // null when the agent was given no FQDN (--fqdn / VIRTBMC_FQDN; the controller sets its Service's)
    FQDN: net.fqdn ?? null,
    HTTP: tls ? { ProtocolEnabled: false, Port: null } : { ProtocolEnabled: true, Port: port },
    HTTPS: tls
      ? { ProtocolEnabled: true, Port: port, ...(ctx.state.deps.certificate ? { Certificates: { '@odata.id': `${MANAGER}/NetworkProtocol/HTTPS/Certificates` } } : {}) }
      : { ProtocolEnabled: false, Port: null },
    // The agent passes the IPMI port only when its IPMI server runs.
    IPMI: ipmiPort !== undefined ? { ProtocolEnabled: true, Port: ipmiPort } : { ProtocolEnabled: false, Port: null },
  };
  return body;
}

export const handlers: OperationHandlers = {
  listManagers: async (ctx) => {
    sendResource(ctx, collection(ctx, MANAGERS, 'ManagerCollection', 'Manager Collection', [MANAGER]));
  },

  getManager: async (ctx) => {
    requireId(ctx, 'ManagerId', MANAGER_ID, 'Manager');
    sendResource(ctx, await managerBody(ctx), { etag: true });
  },

  patchManager: async (ctx) => {
    requireId(ctx, 'ManagerId', MANAGER_ID, 'Manager');
    // Nothing on the manager is settable (the clock is the host's): every property is refused, by name.
    validatePatch((ctx.request as { body?: unknown }).body, { writable: MANAGER_WRITABLE, readOnly: propertyPaths(await managerBody(ctx)) });
    throw new RedfishError(400, 'NoOperation');
  },

  resetManager: async (ctx) => {
    requireId(ctx, 'ManagerId', MANAGER_ID, 'Manager');
    const body = actionBody(ctx, 'Manager.Reset', ['ResetType']);
    const type = enumParameter(body, 'Manager.Reset', 'ResetType', MANAGER_RESET_TYPES);
    ctx.state.logger.info({ resetType: type }, 'manager reset requested (no-op)');
    ctx.status = 204;
  },

  getManagerResetActionInfo: async (ctx) => {
    requireId(ctx, 'ManagerId', MANAGER_ID, 'Manager');
    sendResource(ctx, actionInfo(`${MANAGER}/ResetActionInfo`, MANAGER_RESET_TYPES));
  },

  getManagerNetworkProtocol: async (ctx) => {
    requireId(ctx, 'ManagerId', MANAGER_ID, 'Manager');
    sendResource(ctx, networkProtocolBody(ctx), { etag: true });
  },
};
