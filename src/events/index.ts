/**
 * The agent's eventing, per machine: the event hub, the push subscriptions fed by it, the bridge
 * from the machine's own changes, and the open SSE streams. One per machine (eventsOf), so
 * IPMI (SEL, login events) and Redfish (EventService, EventLog) share it.
 */
import type { Machine } from '../backend/types.js';
import { perObject } from '../common/per-object.js';
import { EventHub, attachEventHub, eventHubOf, type EventHubOptions } from './hub.js';
import { MachineEventBridge, type MachineBridgeOptions } from './machine.js';
import { SseStreams } from './sse-streams.js';
import { SubscriptionManager, type SubscriptionManagerOptions } from './subscriptions.js';

export interface AgentEvents {
  readonly hub: EventHub;
  readonly subscriptions: SubscriptionManager;
  readonly bridge?: MachineEventBridge;
  /** Open SSE streams, each an EventDestination while it is open */
  readonly sseStreams: SseStreams;
  /** How many SSE streams are open (metrics) */
  readonly sseClients: number;
  close(): void;
}

/** Set by startEvents; made by eventsOf for a machine it never set up (a server started on its own, tests). */
const all = perObject<object, AgentEvents>((machine) => {
  const hub = eventHubOf(machine);
  return make(hub, new SubscriptionManager({ now: hub.now }));
});

function make(hub: EventHub, subscriptions: SubscriptionManager, bridge?: MachineEventBridge): AgentEvents {
  const off = hub.on((e) => subscriptions.publish(e));
  const sseStreams = new SseStreams();
  return {
    hub,
    subscriptions,
    ...(bridge ? { bridge } : {}),
    sseStreams,
    get sseClients() {
      return sseStreams.size;
    },
    close() {
      off();
      subscriptions.close();
      hub.close();
    },
  };
}

export interface StartEventsOptions extends EventHubOptions {
  subscriptions?: SubscriptionManagerOptions;
  bridge?: MachineBridgeOptions;
}

/** Set up eventing for a machine (the agent calls this before its servers start). */
export async function startEvents(machine: Machine, opts: StartEventsOptions = {}): Promise<AgentEvents> {
  const hub = new EventHub(opts);
  attachEventHub(machine, hub);
  const subscriptions = new SubscriptionManager({ now: hub.now, ...opts.subscriptions });
  await subscriptions.load();
  const bridge = new MachineEventBridge(machine, hub, opts.bridge);
  await bridge.start();
  const ev = make(hub, subscriptions, bridge);
  all.set(machine, ev);
  return ev;
}

/** The eventing of a machine; a server started on its own (tests) gets an in-memory one without a bridge. */
export function eventsOf(machine: object): AgentEvents {
  return all.get(machine);
}
