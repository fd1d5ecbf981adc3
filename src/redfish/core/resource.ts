/**
 * Helpers every Redfish resource module shares: the fixed ids and paths of the one system, manager
 * and chassis, the schema types, links, path-id checks, the backend-call wrapper, action-body and
 * enum-parameter parsing, ActionInfo, Status (with the machine's health) and PATCH property paths.
 */
import { isBackendError, type MachineHealth, type PowerState } from '../../backend/types.js';
import type { components } from '../../../generated/redfish/schema.js';
import { RedfishError, fromBackendError, renderMessage } from './errors.js';
import { REDFISH_IDS, type RedfishContext } from './types.js';

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

/** The seam's power states have the same names as Redfish's PowerState enum. */
export const redfishPowerState = (p: PowerState): Schemas['Resource_PowerState'] => p;

/** Every property path of a resource body (two levels deep), to tell read-only from unknown in PATCH. */
export function propertyPaths(body: Record<string, unknown>): string[] {
  const out: string[] = [];
  for (const [k, v] of Object.entries(body)) {
    out.push(k);
    if (typeof v === 'object' && v !== null && !Array.isArray(v)) for (const sub of Object.keys(v)) out.push(`${k}/${sub}`);
  }
  return out;
}
