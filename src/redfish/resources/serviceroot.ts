/** /redfish (version document) and /redfish/v1 (ServiceRoot). Both unauthenticated. */
import { odataTypes } from '../../../generated/redfish/routes.js';
import { sendResource } from '../core/odata.js';
import type { OperationHandlers } from '../core/types.js';

/** Redfish Specification (DSP0266) version whose behaviour this service follows. */
export const REDFISH_VERSION = '1.20.0';

const link = (id: string): { '@odata.id': string } => ({ '@odata.id': id });

export const handlers: OperationHandlers = {
  getRedfishVersion: async (ctx) => {
    sendResource(ctx, { v1: '/redfish/v1/' });
  },

  getServiceRoot: async (ctx) => {
    const deps = ctx.state.deps;
    sendResource(
      ctx,
      {
        '@odata.id': '/redfish/v1',
        '@odata.type': odataTypes.ServiceRoot,
        Id: 'RootService',
        Name: 'KubeVirtBMC Root Service',
        RedfishVersion: REDFISH_VERSION,
        UUID: deps.serviceUuid,
        Product: 'KubeVirtBMC',
        Vendor: 'KubeVirtBMC',
        // What we really implement: no $expand/$select/$filter/only/excerpt, no deep operations.
        ProtocolFeaturesSupported: {
          ExcerptQuery: false,
          ExpandQuery: { ExpandAll: false, Levels: false, Links: false, NoLinks: false },
          FilterQuery: false,
          OnlyMemberQuery: true,
          SelectQuery: false,
          DeepOperations: { DeepPATCH: false, DeepPOST: false },
          // HTTP/1.1 keep-alive with pipelining and concurrent connections are served (node's http server)
          MultipleHTTPRequests: true,
        },
        Systems: link('/redfish/v1/Systems'),
        Chassis: link('/redfish/v1/Chassis'),
        Managers: link('/redfish/v1/Managers'),
        SessionService: link('/redfish/v1/SessionService'),
        AccountService: link('/redfish/v1/AccountService'),
        Registries: link('/redfish/v1/Registries'),
        Tasks: link('/redfish/v1/TaskService'),
        UpdateService: link('/redfish/v1/UpdateService'),
        CertificateService: link('/redfish/v1/CertificateService'),
        EventService: link('/redfish/v1/EventService'),
        Links: { Sessions: link('/redfish/v1/SessionService/Sessions') },
      },
      { etag: true },
    );
  },
};
