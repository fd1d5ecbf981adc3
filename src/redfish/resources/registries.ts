/**
 * /redfish/v1/Registries: the message registries our messages come from, served verbatim: Base (error
 * messages), TaskEvent (Task.Messages of the TaskService), ResourceEvent (events: EventService,
 * EventLog) and HeartbeatEvent (subscription heartbeats, the "service started" log entry).
 *
 * Which registries there are is src/events/hub.ts REGISTRIES (also EventService.RegistryPrefixes);
 * this file adds only each one's description.
 */
import type { MessageRegistryDocument } from '../../../generated/redfish/registries.js';
import { odataTypes } from '../../../generated/redfish/routes.js';
import { REGISTRIES as REGISTRY_DOCUMENTS, type RegistryPrefix } from '../../events/hub.js';
import { notFound } from '../core/errors.js';
import { collection, sendResource } from '../core/odata.js';
import type { OperationHandlers } from '../core/types.js';

const REGISTRIES = '/redfish/v1/Registries';

interface RegistryFile {
  registry: MessageRegistryDocument;
  description: string;
}

/**
 * The MessageRegistryFile description of every registry in hub.ts REGISTRIES: `satisfies` makes a
 * registry added there without a description here (or one described here that is not there) a
 * compile error. The key order is the order of the Registries collection's Members, which differs
 * from RegistryPrefixes' order (hub.ts) and is kept as clients have always seen it.
 */
const DESCRIPTIONS = {
  Base: "DMTF Base message registry: the messages in this service's error responses",
  TaskEvent: 'DMTF TaskEvent message registry: the messages of tasks (TaskService)',
  ResourceEvent: 'DMTF ResourceEvent message registry: the messages of events (EventService, EventLog)',
  HeartbeatEvent: 'DMTF HeartbeatEvent message registry: subscription heartbeats (SendHeartbeat) and the service-started log entry',
} satisfies Record<RegistryPrefix, string>;

/** File id ("Base", "TaskEvent": the registry's RegistryPrefix) → the registry it serves. */
const FILES = new Map<string, RegistryFile>(
  (Object.keys(DESCRIPTIONS) as RegistryPrefix[]).map((prefix) => {
    const registry = REGISTRY_DOCUMENTS[prefix];
    return [registry.RegistryPrefix, { registry, description: DESCRIPTIONS[prefix] }];
  }),
);

const fileUri = (id: string): string => `${REGISTRIES}/${id}`;

export const handlers: OperationHandlers = {
  listRegistries: async (ctx) => {
    sendResource(
      ctx,
      collection(ctx, REGISTRIES, 'MessageRegistryFileCollection', 'Message Registry File Collection', [...FILES.keys()].map(fileUri)),
    );
  },

  getRegistryFile: async (ctx) => {
    const id = ctx.params.MessageRegistryFileId ?? '';
    const file = FILES.get(id);
    if (!file) throw notFound('MessageRegistryFile', id);
    const reg = file.registry;
    sendResource(ctx, {
      '@odata.id': fileUri(id),
      '@odata.type': odataTypes.MessageRegistryFile,
      Id: id,
      Name: `${reg.Name} File`,
      Description: file.description,
      Languages: [reg.Language],
      Registry: `${reg.RegistryPrefix}.${reg.RegistryVersion.split('.').slice(0, 2).join('.')}`,
      Location: [
        {
          Language: reg.Language,
          Uri: `${fileUri(id)}/${reg.Id}`,
          PublicationUri: `https://redfish.dmtf.org/registries/${reg.Id}.json`,
        },
      ],
    });
  },

  getMessageRegistry: async (ctx) => {
    const { MessageRegistryFileId: fileId, RegistryName: name } = ctx.params;
    const file = FILES.get(fileId ?? '');
    if (!file) throw notFound('MessageRegistryFile', fileId ?? '');
    if (name !== file.registry.Id) throw notFound('MessageRegistry', name ?? '');
    sendResource(ctx, file.registry);
  },
};
