/**
 * ComputerSystem resources: the Systems collection, Systems/1 (GET/PATCH boot override), the
 * Reset action and its ActionInfo. Everything is read live from the backend seam on each request.
 *
 * Also exports the small helpers the other resource modules of this service share (fixed ids,
 * backend-call wrapper, action-body parsing) so that logic lives in one place.
 */
import {
  isBackendError,
  type BootEnabled,
  type BootOverride,
  type MachineHealth,
  type BootTarget,
  type Capabilities,
  type MachineSnapshot,
  type PowerAction,
  type PowerState,
} from '../../backend/types.js';
import { RedfishError, fromBackendError, renderMessage } from '../core/errors.js';
import { checkIfMatch, collection, sendResource } from '../core/odata.js';
import { validatePatch } from '../core/patch.js';
import type { components } from '../../../generated/redfish/schema.js';
import { REDFISH_IDS, type OperationHandlers, type RedfishContext } from '../core/types.js';

// ---- shared by the resource modules ----------------------------------------------------------

export const SYSTEM_ID = REDFISH_IDS.system;
export const MANAGER_ID = REDFISH_IDS.manager;
export const CHASSIS_ID = REDFISH_IDS.chassis;
export const SYSTEMS = '/redfish/v1/Systems';
export const SYSTEM = `${SYSTEMS}/${SYSTEM_ID}`;
export const MANAGERS = '/redfish/v1/Managers';
export const MANAGER = `${MANAGERS}/${MANAGER_ID}`;
export const CHASSIS_COLLECTION = '/redfish/v1/Chassis';
export const CHASSIS = `${CHASSIS_COLLECTION}/${CHASSIS_ID}`;

/** A DMTF schema type that also admits annotations (`X@Redfish.AllowableValues`, `@Redfish.ActionInfo`) at every level. */
export type Annotated<T> = T extends readonly (infer U)[]
  ? Annotated<U>[]
  : T extends object
    ? { -readonly [K in keyof T]: Annotated<T[K]> } & { [k: `${string}@${string}`]: unknown }
    : T;
export type Schemas = components['schemas'];

export const link = (id: string): { '@odata.id': string } => ({ '@odata.id': id });

/** 404 ResourceNotFound unless the path parameter names the one resource this service has. */
export function requireId(ctx: RedfishContext, param: string, expected: string, type: string): void {
  const got = ctx.params[param];
  if (got !== expected) throw new RedfishError(404, 'ResourceNotFound', [type, String(got)]);
}

/** Await a backend call, turning a BackendError into the matching Redfish error. */
export async function backend<T>(p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (e) {
    if (isBackendError(e)) throw fromBackendError(e);
    throw e;
  }
}

/**
 * The JSON object posted to an action. Rejects a non-object body and any parameter not in
 * `allowed` (ActionParameterUnknown), so a typo never silently does nothing.
 */
export function actionBody(ctx: RedfishContext, action: string, allowed: readonly string[]): Record<string, unknown> {
  const raw: unknown = (ctx.request as { body?: unknown }).body;
  if (raw === undefined || raw === null || raw === '') return {};
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new RedfishError(400, 'MalformedJSON');
  const body = raw as Record<string, unknown>;
  for (const key of Object.keys(body)) {
    if (!allowed.includes(key)) throw new RedfishError(400, 'ActionParameterUnknown', [action, key], { property: key });
  }
  return body;
}

/** A string action parameter that must be present and one of `allowable`. */
export function enumParameter(
  body: Record<string, unknown>,
  action: string,
  name: string,
  allowable: readonly string[],
): string {
  const v = body[name];
  if (v === undefined) throw new RedfishError(400, 'ActionParameterMissing', [action, name], { property: name });
  if (typeof v !== 'string') {
    throw new RedfishError(400, 'ActionParameterValueTypeError', [JSON.stringify(v), name, action], { property: name });
  }
  if (!allowable.includes(v)) {
    throw new RedfishError(400, 'ActionParameterValueNotInList', [v, name, action], { property: name });
  }
  return v;
}

export function actionInfo(path: string, allowable: readonly string[]): Record<string, unknown> {
  const body: Annotated<Schemas['ActionInfo_v1_5_0_ActionInfo']> = {
    '@odata.type': '#ActionInfo.v1_5_0.ActionInfo',
    '@odata.id': path,
    Id: 'ResetActionInfo',
    Name: 'Reset Action Info',
    Parameters: [{ Name: 'ResetType', Required: true, DataType: 'String', AllowableValues: [...allowable] }],
  };
  return body;
}

export const status = (
  state: Schemas['Resource_State'] = 'Enabled',
  health: Schemas['Resource_Health'] = 'OK',
): { State: Schemas['Resource_State']; Health: Schemas['Resource_Health'] } => ({
  State: state,
  Health: health,
});

/**
 * Status of a resource that shows the machine's state: Health follows the backend's health (OK,
 * or Warning/Critical while the platform's view is interrupted or stale), with one Condition that
 * says why (Base registry message, then the backend's explanation) and since when.
 */
export function machineStatus(health: MachineHealth | undefined): Record<string, unknown> {
  const h = health?.status ?? 'OK';
  const out: Record<string, unknown> = { State: 'Enabled', Health: h };
  if (h === 'OK') return out;
  const ref =
    h === 'Critical'
      ? { messageId: 'CouldNotEstablishConnection', args: ['Kubernetes API'] }
      : { messageId: 'UndeterminedFault', args: ['Kubernetes API watch'] };
  const m = renderMessage(ref);
  out.Conditions = [
    {
      MessageId: m.MessageId,
      MessageArgs: m.MessageArgs,
      Message: health?.message ? `${String(m.Message)} ${health.message}.` : m.Message,
      Severity: h,
      ...(health?.since ? { Timestamp: health.since.toISOString() } : {}),
    },
  ];
  return out;
}

// ---- vocabulary mapping ----------------------------------------------------------------------

/** The seam's power states have the same names as Redfish's PowerState enum. */
export const redfishPowerState = (p: PowerState): Schemas['Resource_PowerState'] => p;

const TARGETS: Record<BootTarget, Schemas['ComputerSystem_BootSource']> = {
  none: 'None',
  pxe: 'Pxe',
  hdd: 'Hdd',
  cd: 'Cd',
  usb: 'Usb',
  floppy: 'Floppy',
  biosSetup: 'BiosSetup',
  diags: 'Diags',
  uefiHttp: 'UefiHttp',
};
const TARGET_FROM_REDFISH = new Map<string, BootTarget>(Object.entries(TARGETS).map(([k, v]) => [v, k as BootTarget]));

const ENABLED: Record<BootEnabled, Schemas['ComputerSystem_v1_27_0_BootSourceOverrideEnabled']> = { disabled: 'Disabled', once: 'Once', continuous: 'Continuous' };
const ENABLED_FROM_REDFISH = new Map<string, BootEnabled>(Object.entries(ENABLED).map(([k, v]) => [v, k as BootEnabled]));

/** Redfish ResetType → what the seam does. PushPowerButton depends on the current state. */
const RESET_TYPES: Record<string, PowerAction | 'button'> = {
  On: 'on',
  ForceOn: 'on',
  ForceOff: 'forceOff',
  GracefulShutdown: 'gracefulOff',
  GracefulRestart: 'gracefulRestart',
  ForceRestart: 'forceRestart',
  PowerCycle: 'powerCycle',
  Nmi: 'nmi',
  PushPowerButton: 'button',
  Pause: 'pause',
  Resume: 'resume',
};

/** ResetType values the backend can honour, in the order above. */
export function allowedResetTypes(caps: Capabilities): string[] {
  return Object.entries(RESET_TYPES)
    .filter(([, a]) =>
      a === 'button' ? caps.powerActions.includes('on') && caps.powerActions.includes('gracefulOff') : caps.powerActions.includes(a),
    )
    .map(([name]) => name);
}

const allowedTargets = (caps: Capabilities): string[] => caps.bootTargets.map((t) => TARGETS[t]);

// ---- ComputerSystem --------------------------------------------------------------------------

function systemBody(snap: MachineSnapshot, caps: Capabilities): Record<string, unknown> {
  const { info, boot } = snap;
  const cpu = info.processors ?? { sockets: Math.max(1, info.cpuCount), cores: 1, threads: 1, model: 'Virtual CPU' };
  const body: Annotated<Schemas['ComputerSystem_v1_27_0_ComputerSystem']> = {
    '@odata.type': '#ComputerSystem.v1_27_0.ComputerSystem',
    '@odata.id': SYSTEM,
    Id: SYSTEM_ID,
    Name: info.name,
    Description: info.namespace ? `KubeVirt virtual machine ${info.namespace}/${info.name}` : 'KubeVirt virtual machine',
    SystemType: 'Virtual',
    UUID: info.uuid,
    SerialNumber: info.serialNumber,
    Manufacturer: info.manufacturer,
    Model: info.model,
    PowerState: redfishPowerState(snap.power),
    Status: machineStatus(snap.health),
    // Count is sockets, CoreCount cores, LogicalProcessorCount threads (ComputerSystem ProcessorSummary)
    ProcessorSummary: {
      Count: cpu.sockets,
      CoreCount: cpu.sockets * cpu.cores,
      LogicalProcessorCount: info.cpuCount,
      Model: cpu.model,
      Status: status(),
    },
    MemorySummary: { TotalSystemMemoryGiB: Math.round((info.memoryMiB / 1024) * 1000) / 1000, Status: status() },
    AssetTag: info.assetTag ?? '',
    Processors: link(`${SYSTEM}/Processors`),
    Memory: link(`${SYSTEM}/Memory`),
    Storage: link(`${SYSTEM}/Storage`),
    SimpleStorage: link(`${SYSTEM}/SimpleStorage`),
    SecureBoot: link(`${SYSTEM}/SecureBoot`),
    Bios: link(`${SYSTEM}/Bios`),
    Boot: {
      BootSourceOverrideTarget: TARGETS[boot.target],
      'BootSourceOverrideTarget@Redfish.AllowableValues': allowedTargets(caps),
      BootSourceOverrideEnabled: ENABLED[boot.enabled],
      'BootSourceOverrideEnabled@Redfish.AllowableValues': Object.values(ENABLED),
      BootSourceOverrideMode: boot.mode,
      'BootSourceOverrideMode@Redfish.AllowableValues': [...caps.bootModes],
    },
    EthernetInterfaces: link(`${SYSTEM}/EthernetInterfaces`),
    VirtualMedia: link(`${SYSTEM}/VirtualMedia`),
    Links: { Chassis: [link(CHASSIS)], ManagedBy: [link(MANAGER)] },
    Actions: {
      '#ComputerSystem.Reset': {
        target: `${SYSTEM}/Actions/ComputerSystem.Reset`,
        '@Redfish.ActionInfo': `${SYSTEM}/ResetActionInfo`,
        'ResetType@Redfish.AllowableValues': allowedResetTypes(caps),
      },
    },
  };
  if (info.biosVersion) body.BiosVersion = info.biosVersion;
  else if (info.firmware?.version) body.BiosVersion = info.firmware.version;
  if (info.sku) body.SKU = info.sku;
  if (info.partNumber) body.PartNumber = info.partNumber;
  if (info.guestOs?.hostName) body.HostName = info.guestOs.hostName;
  return body;
}

async function currentSystem(ctx: RedfishContext): Promise<Record<string, unknown>> {
  const machine = ctx.state.deps.machine;
  return systemBody(await backend(machine.snapshot()), machine.capabilities);
}

/** Every property path of a resource body (two levels deep), to tell read-only from unknown in PATCH. */
export function propertyPaths(body: Record<string, unknown>): string[] {
  const out: string[] = [];
  for (const [k, v] of Object.entries(body)) {
    out.push(k);
    if (typeof v === 'object' && v !== null && !Array.isArray(v)) for (const sub of Object.keys(v)) out.push(`${k}/${sub}`);
  }
  return out;
}

/** Check a PATCH body for Systems/1 (every problem reported at once) and turn it into a seam change. */
function parseSystemPatch(raw: unknown, current: Record<string, unknown>, caps: Capabilities): { boot: Partial<BootOverride>; assetTag?: string } {
  const body = validatePatch(raw, {
    writable: {
      AssetTag: 'string',
      Boot: {
        object: {
          BootSourceOverrideTarget: { enum: allowedTargets(caps) },
          BootSourceOverrideEnabled: { enum: Object.values(ENABLED) },
          BootSourceOverrideMode: { enum: [...caps.bootModes] },
        },
      },
    },
    readOnly: propertyPaths(current),
  });
  const boot = (body.Boot ?? {}) as Record<string, string | undefined>;
  const change: Partial<BootOverride> = {};
  if (boot.BootSourceOverrideTarget !== undefined) change.target = TARGET_FROM_REDFISH.get(boot.BootSourceOverrideTarget)!;
  if (boot.BootSourceOverrideEnabled !== undefined) change.enabled = ENABLED_FROM_REDFISH.get(boot.BootSourceOverrideEnabled)!;
  const mode = caps.bootModes.find((m) => m === boot.BootSourceOverrideMode);
  if (mode !== undefined) change.mode = mode;
  return { boot: change, ...(typeof body.AssetTag === 'string' ? { assetTag: body.AssetTag } : {}) };
}

/** Longest AssetTag accepted (the KubeVirt backend keeps it in an annotation, see backend/kubevirt/inventory.ts). */
const MAX_ASSET_TAG = 64;

export const handlers: OperationHandlers = {
  listSystems: async (ctx) => {
    sendResource(ctx, collection(ctx, SYSTEMS, 'ComputerSystemCollection', 'Computer System Collection', [SYSTEM]));
  },

  getSystem: async (ctx) => {
    requireId(ctx, 'ComputerSystemId', SYSTEM_ID, 'ComputerSystem');
    sendResource(ctx, await currentSystem(ctx), { etag: true });
  },

  patchSystem: async (ctx) => {
    requireId(ctx, 'ComputerSystemId', SYSTEM_ID, 'ComputerSystem');
    const machine = ctx.state.deps.machine;
    const current = await currentSystem(ctx);
    checkIfMatch(ctx, current);
    const parsed = parseSystemPatch((ctx.request as { body?: unknown }).body, current, machine.capabilities);
    const change = parsed.boot;
    if (parsed.assetTag !== undefined) {
      // eslint-disable-next-line no-control-regex
      if (parsed.assetTag.length > MAX_ASSET_TAG || /[\u0000-\u001f\u007f]/.test(parsed.assetTag)) {
        throw new RedfishError(400, 'PropertyValueFormatError', [JSON.stringify(parsed.assetTag), 'AssetTag'], {
          property: 'AssetTag',
          detail: `AssetTag takes at most ${MAX_ASSET_TAG} printable characters.`,
        });
      }
      if (!machine.setAssetTag) throw new RedfishError(400, 'PropertyNotWritable', ['AssetTag'], { property: 'AssetTag' });
    }
    if (change.target !== undefined && change.target !== 'none' && change.enabled === undefined) {
      // A target without Enabled while the override is Disabled means "boot from it next time"
      // (what ironic-style clients expect); an active Once/Continuous override keeps its mode.
      const now = await backend(machine.getBootOverride());
      if (now.enabled === 'disabled') change.enabled = 'once';
    }
    if (change.target === 'none' && change.enabled === undefined) change.enabled = 'disabled';
    if (parsed.assetTag !== undefined) await backend(machine.setAssetTag!(parsed.assetTag));
    if (Object.keys(change).length > 0) await backend(machine.setBootOverride(change));
    sendResource(ctx, await currentSystem(ctx), { etag: true });
  },

  resetSystem: async (ctx) => {
    requireId(ctx, 'ComputerSystemId', SYSTEM_ID, 'ComputerSystem');
    const machine = ctx.state.deps.machine;
    const body = actionBody(ctx, 'ComputerSystem.Reset', ['ResetType']);
    const type = enumParameter(body, 'ComputerSystem.Reset', 'ResetType', allowedResetTypes(machine.capabilities));
    let action = RESET_TYPES[type]!;
    if (action === 'button') {
      const power = await backend(machine.getPowerState());
      action = power === 'Off' || power === 'PoweringOff' ? 'on' : 'gracefulOff';
    }
    ctx.state.logger.info({ resetType: type, action }, 'system reset');
    try {
      await machine.power(action);
    } catch (e) {
      // a reset the VM's power state forbids (restart while off): say the chassis must be on
      if (isBackendError(e, 'Conflict') && (await machine.getPowerState().catch(() => undefined)) === 'Off') {
        throw fromBackendError(e, { poweredOffChassis: ctx.state.deps.ids.chassis });
      }
      if (isBackendError(e)) throw fromBackendError(e);
      throw e;
    }
    ctx.status = 204;
  },

  getSystemResetActionInfo: async (ctx) => {
    requireId(ctx, 'ComputerSystemId', SYSTEM_ID, 'ComputerSystem');
    sendResource(ctx, actionInfo(`${SYSTEM}/ResetActionInfo`, allowedResetTypes(ctx.state.deps.machine.capabilities)));
  },
};
