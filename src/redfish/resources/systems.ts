/**
 * ComputerSystem resources: the Systems collection, Systems/1 (GET/PATCH boot override), the
 * Reset action and its ActionInfo. Everything is read live from the backend seam on each request.
 * The helpers the resource modules share are in ../core/resource.ts.
 */
import {
  isBackendError,
  type Machine,
  type BootEnabled,
  type BootOverride,
  type BootTarget,
  type Capabilities,
  type MachineSnapshot,
  type PowerAction,
} from '../../backend/types.js';
import { indicatorOf, type Indicator, type IndicatorLed } from '../../backend/indicator.js';
import { REDFISH_BOOT_TARGET } from '../../events/machine.js';
import { RedfishError, fromBackendError } from '../core/errors.js';
import { checkIfMatch, collection, prepareResource, sendPrepared, sendResource, type PreparedResource } from '../core/odata.js';
import { validatePatch, withWriteableProperties, type WritableTree } from '../core/patch.js';
import type { OperationHandlers, RedfishContext, RedfishDeps } from '../core/types.js';
import {
  CHASSIS,
  MANAGER,
  SYSTEM,
  SYSTEMS,
  SYSTEM_ID,
  actionBody,
  actionInfo,
  backend,
  enumParameter,
  link,
  machineStatus,
  propertyPaths,
  redfishPowerState,
  requireId,
  status,
  type Annotated,
  type Schemas,
} from '../core/resource.js';

// ---- vocabulary mapping ----------------------------------------------------------------------

// boot targets: REDFISH_BOOT_TARGET (src/events/machine.ts), shared with the boot-override events
const TARGET_FROM_REDFISH = new Map<string, BootTarget>(Object.entries(REDFISH_BOOT_TARGET).map(([k, v]) => [v, k as BootTarget]));

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

const allowedTargets = (caps: Capabilities): string[] => caps.bootTargets.map((t) => REDFISH_BOOT_TARGET[t]);

// ---- ComputerSystem --------------------------------------------------------------------------

/** IndicatorLED values (all three: the indicator is the agent's, backend/indicator.ts). */
const LEDS: readonly IndicatorLed[] = ['Off', 'Lit', 'Blinking'];

/**
 * What a PATCH of Systems/1 may change: the table parseSystemPatch checks against and the body's
 * `@Redfish.WriteableProperties` come from (AssetTag only when the backend can keep it).
 */
function systemWritable(caps: Capabilities, canSetAssetTag: boolean): WritableTree {
  const Boot: WritableTree[string] = {
    object: {
      BootSourceOverrideTarget: { enum: allowedTargets(caps) },
      BootSourceOverrideEnabled: { enum: Object.values(ENABLED) },
      BootSourceOverrideMode: { enum: [...caps.bootModes] },
    },
  };
  // Two literals, not `{ ...(cond ? {...} : {}), Boot }`: on every GET, a literal that starts with a
  // spread and adds keys leaves objects that outlive young-generation GCs (docs/scale.md "Memory
  // after load", bench/scale-spread.ts).
  return canSetAssetTag
    ? { AssetTag: 'string', IndicatorLED: { enum: LEDS }, LocationIndicatorActive: 'boolean', Boot }
    : { IndicatorLED: { enum: LEDS }, LocationIndicatorActive: 'boolean', Boot };
}

/**
 * The host serial console as ComputerSystem.SerialConsole describes it (ComputerSystem_v1.xml,
 * HostSerialConsole): IPMI Serial-over-LAN on the agent's IPMI port, one activation at a time
 * (src/ipmi/sol). No SSH or Telnet console is offered. The browser console websocket is not the
 * schema's `WebSocket` console: that one is DSP0266's "WebSocket inbound access" (Redfish
 * authentication on the upgrade, raw pty bytes), ours speaks its own subprotocol (console-ws.ts).
 */
function serialConsoleOf(deps: RedfishDeps): Record<string, unknown> {
  const enabled = deps.ipmiPort !== undefined && (deps.serialConsole?.() ?? false);
  return {
    MaxConcurrentSessions: 1,
    IPMI: { ServiceEnabled: enabled, Port: deps.ipmiPort ?? null, SharedWithManagerCLI: false },
  };
}

function systemBody(snap: MachineSnapshot, caps: Capabilities, writable: WritableTree, deps: RedfishDeps, led: IndicatorLed): Record<string, unknown> {
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
    // the identify indicator IPMI Chassis Identify sets too (backend/indicator.ts)
    IndicatorLED: led,
    'IndicatorLED@Redfish.AllowableValues': [...LEDS],
    LocationIndicatorActive: led !== 'Off',
    Processors: link(`${SYSTEM}/Processors`),
    Memory: link(`${SYSTEM}/Memory`),
    Storage: link(`${SYSTEM}/Storage`),
    SimpleStorage: link(`${SYSTEM}/SimpleStorage`),
    SecureBoot: link(`${SYSTEM}/SecureBoot`),
    Bios: link(`${SYSTEM}/Bios`),
    Boot: {
      BootSourceOverrideTarget: REDFISH_BOOT_TARGET[boot.target],
      'BootSourceOverrideTarget@Redfish.AllowableValues': allowedTargets(caps),
      BootSourceOverrideEnabled: ENABLED[boot.enabled],
      'BootSourceOverrideEnabled@Redfish.AllowableValues': Object.values(ENABLED),
      BootSourceOverrideMode: boot.mode,
      'BootSourceOverrideMode@Redfish.AllowableValues': [...caps.bootModes],
    },
    SerialConsole: serialConsoleOf(deps),
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
  // null where the platform does not say (Redfish: the value is unknown); KubeVirt reports no firmware version
  body.BiosVersion = info.biosVersion ?? info.firmware?.version ?? null;
  body.SKU = info.sku ?? null;
  body.PartNumber = info.partNumber ?? null;
  if (info.guestOs?.hostName) body.HostName = info.guestOs.hostName;
  return withWriteableProperties(body, writable);
}

const writableOf = (machine: Machine): WritableTree => systemWritable(machine.capabilities, machine.setAssetTag !== undefined);

/**
 * The Systems/1 answer per deps (one per machine, one per tenant in shared mode), with the state it
 * was made from: the snapshot generation (backend/types.ts: it moves with every change a snapshot
 * shows: power, boot override, media, system info) and the serial console's state (IPMI SOL
 * enabled, which is the agent's, not the machine's) and the identify indicator (also the agent's;
 * read at each request, so a timed IPMI identify that ran out shows Off). Only kept while health is OK: a degraded
 * backend re-reads on every request, and its Status carries a message and time.
 */
interface SystemMemo {
  generation: number;
  sol: boolean;
  led: IndicatorLed;
  prepared: PreparedResource;
  /** the machine it was made for and its indicator (one WeakMap lookup per GET instead of two) */
  machine: object;
  indicator: Indicator;
}
const systemMemo = new WeakMap<RedfishDeps, SystemMemo>();

/**
 * The Systems/1 answer (prepareResource of systemBody): the one made for the same generation and
 * serial console state when there is one, so a GET between two changes costs a snapshot instead
 * of the body, its JSON text and its ETag (docs/redfish.md "Performance"), and not even the
 * snapshot when the backend tells its generation (Machine.currentGeneration: the simulator, and KubeVirt while its watches are current and healthy).
 */
async function preparedSystem(ctx: RedfishContext): Promise<PreparedResource> {
  const deps = ctx.state.deps;
  const machine = deps.machine;
  const sol = deps.ipmiPort !== undefined && (deps.serialConsole?.() ?? false);
  const memo = systemMemo.get(deps);
  const indicator = memo !== undefined && memo.machine === machine ? memo.indicator : indicatorOf(machine);
  const led = indicator.led();
  // the backend says a snapshot now would be healthy and of the kept answer's generation: no snapshot
  if (memo !== undefined && memo.sol === sol && memo.led === led && machine.currentGeneration?.() === memo.generation) return memo.prepared;
  const snap = await backend(machine.snapshot());
  const healthy = (snap.health?.status ?? 'OK') === 'OK';
  if (healthy && memo !== undefined && memo.generation === snap.generation && memo.sol === sol && memo.led === led) return memo.prepared;
  const prepared = prepareResource(systemBody(snap, machine.capabilities, writableOf(machine), deps, led));
  if (healthy) systemMemo.set(deps, { generation: snap.generation, sol, led, prepared, machine, indicator });
  else systemMemo.delete(deps);
  return prepared;
}

async function currentSystem(ctx: RedfishContext): Promise<Record<string, unknown>> {
  const machine = ctx.state.deps.machine;
  const led = indicatorOf(machine).led();
  return systemBody(await backend(machine.snapshot()), machine.capabilities, writableOf(machine), ctx.state.deps, led);
}

/** Check a PATCH body for Systems/1 (every problem reported at once) and turn it into a seam change. */
interface SystemPatch {
  boot: Partial<BootOverride>;
  assetTag?: string;
  /** IndicatorLED, or LocationIndicatorActive as Blinking/Off (IndicatorLED wins when both are given) */
  led?: IndicatorLed;
}

function parseSystemPatch(raw: unknown, current: Record<string, unknown>, machine: Machine): SystemPatch {
  const caps = machine.capabilities;
  const body = validatePatch(raw, { writable: writableOf(machine), readOnly: propertyPaths(current) });
  const boot = (body.Boot ?? {}) as Record<string, string | undefined>;
  const change: Partial<BootOverride> = {};
  if (boot.BootSourceOverrideTarget !== undefined) change.target = TARGET_FROM_REDFISH.get(boot.BootSourceOverrideTarget)!;
  if (boot.BootSourceOverrideEnabled !== undefined) change.enabled = ENABLED_FROM_REDFISH.get(boot.BootSourceOverrideEnabled)!;
  const mode = caps.bootModes.find((m) => m === boot.BootSourceOverrideMode);
  if (mode !== undefined) change.mode = mode;
  const out: SystemPatch = { boot: change };
  if (typeof body.AssetTag === 'string') out.assetTag = body.AssetTag;
  if (typeof body.LocationIndicatorActive === 'boolean') out.led = body.LocationIndicatorActive ? 'Blinking' : 'Off';
  const led = LEDS.find((l) => l === body.IndicatorLED);
  if (led !== undefined) out.led = led;
  return out;
}

/** Longest AssetTag accepted (the KubeVirt backend keeps it in an annotation, see backend/kubevirt/inventory.ts). */
const MAX_ASSET_TAG = 64;

export const handlers: OperationHandlers = {
  listSystems: async (ctx) => {
    sendResource(ctx, collection(ctx, SYSTEMS, 'ComputerSystemCollection', 'Computer System Collection', [SYSTEM]));
  },

  getSystem: async (ctx) => {
    requireId(ctx, 'ComputerSystemId', SYSTEM_ID, 'ComputerSystem');
    sendPrepared(ctx, await preparedSystem(ctx));
  },

  patchSystem: async (ctx) => {
    requireId(ctx, 'ComputerSystemId', SYSTEM_ID, 'ComputerSystem');
    const machine = ctx.state.deps.machine;
    const current = await currentSystem(ctx);
    checkIfMatch(ctx, current);
    const parsed = parseSystemPatch((ctx.request as { body?: unknown }).body, current, machine);
    const change = parsed.boot;
    if (parsed.assetTag !== undefined) {
      // eslint-disable-next-line no-control-regex
      if (parsed.assetTag.length > MAX_ASSET_TAG || /[\u0000-\u001f\u007f]/.test(parsed.assetTag)) {
        throw new RedfishError(400, 'PropertyValueFormatError', [JSON.stringify(parsed.assetTag), 'AssetTag'], {
          property: 'AssetTag',
          detail: `AssetTag takes at most ${MAX_ASSET_TAG} printable characters.`,
        });
      }
    }
    if (change.target !== undefined && change.target !== 'none' && change.enabled === undefined) {
      // A target without Enabled while the override is Disabled means "boot from it next time"
      // (what ironic-style clients expect); an active Once/Continuous override keeps its mode.
      const now = await backend(machine.getBootOverride());
      if (now.enabled === 'disabled') change.enabled = 'once';
    }
    if (change.target === 'none' && change.enabled === undefined) change.enabled = 'disabled';
    if (parsed.assetTag !== undefined && machine.setAssetTag) await backend(machine.setAssetTag(parsed.assetTag));
    if (Object.keys(change).length > 0) await backend(machine.setBootOverride(change));
    if (parsed.led !== undefined) {
      indicatorOf(machine).setLed(parsed.led);
      ctx.state.logger.info({ user: ctx.state.user?.username, led: parsed.led }, 'identify indicator set');
    }
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
