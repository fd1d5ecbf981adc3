/**
 * The per-VM ids a shared agent routes each tenant's system, manager and chassis under
 * (tenancy.ts), and the lookup the GET fast path (../fast-get.ts) makes with them: one table for both.
 */
import { REDFISH_IDS } from './types.js';

export const V1 = '/redfish/v1/';

/** per kind: the per-VM id, the resource type (404 messages) and the per-VM path of the resource itself */
export const KINDS: Readonly<Record<string, { internal: string; type: string; path: string }>> = {
  Systems: { internal: REDFISH_IDS.system, type: 'ComputerSystem', path: `${V1}Systems/${REDFISH_IDS.system}` },
  Managers: { internal: REDFISH_IDS.manager, type: 'Manager', path: `${V1}Managers/${REDFISH_IDS.manager}` },
  Chassis: { internal: REDFISH_IDS.chassis, type: 'Chassis', path: `${V1}Chassis/${REDFISH_IDS.chassis}` },
};

/**
 * The per-VM path of a tenant's system, manager or chassis itself (`/redfish/v1/<kind>/<one
 * segment>` → the kind's constant per-VM path, as systemPath routes it), found without splitting
 * the URL; '' for any other URL (a sub-path, another kind). The GET fast path's route lookup.
 */
export function internalResourcePath(url: string): string {
  if (!url.startsWith(V1)) return '';
  const kindEnd = url.indexOf('/', V1.length);
  if (kindEnd < 0 || url.indexOf('/', kindEnd + 1) >= 0) return '';
  const kindName = url.slice(V1.length, kindEnd);
  return Object.hasOwn(KINDS, kindName) ? (KINDS[kindName] as { path: string }).path : '';
}
