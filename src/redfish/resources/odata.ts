/** /redfish/v1/odata: the OData service document listing the service's top-level resources. */
import { sendResource } from '../core/odata.js';
import type { OperationHandlers } from '../core/types.js';

const TOP_LEVEL: readonly [string, string][] = [
  ['Service', '/redfish/v1/'],
  ['Systems', '/redfish/v1/Systems'],
  ['Chassis', '/redfish/v1/Chassis'],
  ['Managers', '/redfish/v1/Managers'],
  ['SessionService', '/redfish/v1/SessionService'],
  ['AccountService', '/redfish/v1/AccountService'],
  ['Registries', '/redfish/v1/Registries'],
  ['Tasks', '/redfish/v1/TaskService'],
  ['Sessions', '/redfish/v1/SessionService/Sessions'],
];

export const handlers: OperationHandlers = {
  getOdataServiceDocument: async (ctx) => {
    sendResource(ctx, {
      '@odata.context': '/redfish/v1/$metadata',
      value: TOP_LEVEL.map(([name, url]) => ({ name, kind: 'Singleton', url })),
    });
  },
};
