/**
 * The Chassis "1": the VM's (virtual) enclosure. A VM has no physical chassis, so ChassisType is
 * "Other" (none of the physical form factors apply); power state and the identify indicator follow
 * the machine.
 */
import { indicatorOf } from '../../backend/indicator.js';
import { collection, sendResource } from '../core/odata.js';
import type { OperationHandlers } from '../core/types.js';
import {
  CHASSIS,
  CHASSIS_COLLECTION,
  CHASSIS_ID,
  MANAGER,
  SYSTEM,
  backend,
  link,
  machineStatus,
  redfishPowerState,
  requireId,
  type Annotated,
  type Schemas,
} from '../core/resource.js';

export const handlers: OperationHandlers = {
  listChassis: async (ctx) => {
    sendResource(ctx, collection(ctx, CHASSIS_COLLECTION, 'ChassisCollection', 'Chassis Collection', [CHASSIS]));
  },

  getChassis: async (ctx) => {
    requireId(ctx, 'ChassisId', CHASSIS_ID, 'Chassis');
    const snap = await backend(ctx.state.deps.machine.snapshot());
    const body: Annotated<Schemas['Chassis_v1_28_0_Chassis']> = {
      '@odata.type': '#Chassis.v1_28_0.Chassis',
      '@odata.id': CHASSIS,
      Id: CHASSIS_ID,
      Name: `Chassis of ${snap.info.name}`,
      Description: 'Virtual enclosure of a KubeVirt virtual machine',
      ChassisType: 'Other',
      Manufacturer: snap.info.manufacturer,
      Model: snap.info.model,
      SerialNumber: snap.info.serialNumber,
      PowerState: redfishPowerState(snap.power),
      Status: machineStatus(snap.health),
      // the system's identify indicator (backend/indicator.ts), shown here as bmcweb does; it is
      // set through the ComputerSystem (PATCH) or IPMI Chassis Identify (no Chassis PATCH is routed)
      LocationIndicatorActive: indicatorOf(ctx.state.deps.machine).active(),
      NetworkAdapters: link(`${CHASSIS}/NetworkAdapters`),
      Links: {
        ComputerSystems: [link(SYSTEM)],
        ManagedBy: [link(MANAGER)],
        ManagersInChassis: [link(MANAGER)],
      },
    };
    sendResource(ctx, body, { etag: true });
  },
};
