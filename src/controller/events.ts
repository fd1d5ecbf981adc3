/**
 * Kubernetes Events on a VirtualMachineBMC (shown by `kubectl describe vmbmc`): objects created or
 * repaired, name conflicts, Ready transitions. Best effort: a failed event write is logged at debug
 * level and never fails a reconcile.
 */
import type { Logger } from '../common/logger.js';
import type { KubeClient } from '../kube/client.js';
import { Resources } from '../kube/resources.js';
import type { VirtualMachineBMC } from './api/types.js';

export const COMPONENT = 'virtbmc-controller';

export class EventRecorder {
  constructor(
    private readonly client: KubeClient,
    private readonly instance: string,
    private readonly log: Logger,
  ) {}

  record(obj: VirtualMachineBMC, type: 'Normal' | 'Warning', reason: string, message: string): void {
    const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    const ns = obj.metadata.namespace ?? 'default';
    const body = {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { generateName: `${obj.metadata.name}.`, namespace: ns },
      involvedObject: {
        apiVersion: obj.apiVersion,
        kind: obj.kind,
        name: obj.metadata.name,
        namespace: ns,
        uid: obj.metadata.uid,
        resourceVersion: obj.metadata.resourceVersion,
      },
      type,
      reason,
      message: message.slice(0, 1024),
      count: 1,
      firstTimestamp: now,
      lastTimestamp: now,
      source: { component: COMPONENT },
      reportingComponent: COMPONENT,
      reportingInstance: this.instance,
    };
    this.client.create(Resources.event, ns, body).catch((e: unknown) => {
      this.log.debug({ err: e instanceof Error ? e.message : String(e), reason }, 'could not record an event');
    });
  }
}
