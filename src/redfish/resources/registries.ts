/** /redfish/v1/Registries: the Base message registry our error messages come from. */
import { baseRegistry } from '../../../generated/redfish/registries.js';
import { odataTypes } from '../../../generated/redfish/routes.js';
import { notFound } from '../core/errors.js';
import { collection, sendResource } from '../core/odata.js';
import type { OperationHandlers } from '../core/types.js';

const REGISTRIES = '/redfish/v1/Registries';
const FILE_ID = baseRegistry.RegistryPrefix; // "Base"
const REGISTRY_ID = baseRegistry.Id; // "Base.1.22.1"
const FILE = `${REGISTRIES}/${FILE_ID}`;
const COPY = `${FILE}/${REGISTRY_ID}`;

export const handlers: OperationHandlers = {
  listRegistries: async (ctx) => {
    sendResource(ctx, collection(ctx, REGISTRIES, 'MessageRegistryFileCollection', 'Message Registry File Collection', [FILE]));
  },

  getRegistryFile: async (ctx) => {
    if (ctx.params.MessageRegistryFileId !== FILE_ID) throw notFound('MessageRegistryFile', ctx.params.MessageRegistryFileId ?? '');
    sendResource(ctx, {
      '@odata.id': FILE,
      '@odata.type': odataTypes.MessageRegistryFile,
      Id: FILE_ID,
      Name: `${baseRegistry.Name} File`,
      Description: 'DMTF Base message registry: the messages in this service\'s error responses',
      Languages: [baseRegistry.Language],
      Registry: `${baseRegistry.RegistryPrefix}.${baseRegistry.RegistryVersion.split('.').slice(0, 2).join('.')}`,
      Location: [
        {
          Language: baseRegistry.Language,
          Uri: COPY,
          PublicationUri: `https://redfish.dmtf.org/registries/${REGISTRY_ID}.json`,
        },
      ],
    });
  },

  getMessageRegistry: async (ctx) => {
    const { MessageRegistryFileId: fileId, RegistryName: name } = ctx.params;
    if (fileId !== FILE_ID) throw notFound('MessageRegistryFile', fileId ?? '');
    if (name !== REGISTRY_ID) throw notFound('MessageRegistry', name ?? '');
    sendResource(ctx, baseRegistry);
  },
};
