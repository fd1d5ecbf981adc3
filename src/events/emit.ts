/**
 * Small emitters for the events that come from the protocol layers (logins, sessions, tasks), so
 * that those files only gain one call each. A failed login names the account only when it exists
 * (a mistyped password in the user field must not land in events), never a password.
 */
import { eventsOf } from './index.js';
import { MANAGER_URI } from './machine.js';

export type Protocol = 'ipmi' | 'redfish';
const SESSIONS = '/redfish/v1/SessionService/Sessions';
export const SESSION_SERVICE_URI = '/redfish/v1/SessionService';

/** Session id as event detail: Redfish ids as they are, IPMI ones prefixed (they share the hub). */
export function sessionOpened(machine: object, proto: Protocol, sessionId: string, username: string, address?: string): void {
  const origin = proto === 'redfish' ? `${SESSIONS}/${sessionId}` : SESSION_SERVICE_URI;
  eventsOf(machine).hub.emit({
    kind: 'login',
    key: 'ResourceCreated',
    reason: 'LoginSucceeded',
    source: proto,
    args: [],
    origin,
    resourceType: 'Session',
    detail: { session: `${proto}:${sessionId}`, user: username, ...(address ? { address } : {}) },
  });
}

export function sessionClosed(machine: object, proto: Protocol, sessionId: string, username?: string): void {
  const origin = proto === 'redfish' ? `${SESSIONS}/${sessionId}` : SESSION_SERVICE_URI;
  eventsOf(machine).hub.emit({
    kind: 'sessionClosed',
    key: 'ResourceRemoved',
    reason: 'SessionClosed',
    source: proto,
    args: [],
    origin,
    resourceType: 'Session',
    detail: { session: `${proto}:${sessionId}`, ...(username ? { user: username } : {}) },
  });
}

export function loginFailed(machine: object, proto: Protocol, knownUser: string | undefined, address?: string): void {
  eventsOf(machine).hub.emit({
    kind: 'loginFailed',
    registry: 'Base',
    key: 'AccessDenied',
    reason: 'LoginFailed',
    source: proto,
    args: [proto === 'redfish' ? SESSION_SERVICE_URI : 'IPMI'],
    severity: 'Warning',
    origin: SESSION_SERVICE_URI,
    resourceType: 'SessionService',
    detail: { ...(knownUser ? { user: knownUser } : {}), ...(address ? { address } : {}) },
  });
}

/** A task changed state (TaskEvent registry: TaskStarted, TaskCompletedOK, TaskAborted, TaskCancelled). */
export function taskStateEvent(machine: object, taskId: string, key: string, state: string): void {
  const origin = `/redfish/v1/TaskService/Tasks/${encodeURIComponent(taskId)}`;
  eventsOf(machine).hub.emit({
    kind: 'task',
    registry: 'TaskEvent',
    key,
    reason: key === 'TaskCompletedOK' ? 'TaskCompleted' : key,
    source: 'redfish',
    args: [taskId],
    origin,
    resourceType: 'Task',
    detail: { task: taskId, state },
  });
}

/**
 * The Redfish service of this machine started and accepts requests (HeartbeatEvent 1.1.0
 * RedfishServiceStarted: "the Redfish service started and is fully functional"). An event like the
 * others: it lands in the EventLog (and SEL) and reaches subscribers whose filters match it. Origin
 * the Manager, the BMC whose service it is. Called once the listener listens (per-VM agent), or
 * once a system's tenant is served (shared mode: one entry in each system's log).
 */
export function redfishServiceStarted(machine: object): void {
  serviceEvent(machine, 'RedfishServiceStarted');
}

/**
 * The Redfish service of this machine is stopping (HeartbeatEvent 1.1.0 RedfishServiceShuttingDown:
 * "the Redfish service is shutting down and is no longer able to service requests"): the agent's
 * stop (SIGTERM: the pod is deleted or rolled), or in shared mode the system leaving this agent
 * (its VMBMC moved to another shard or deleted). Subscribers are then given a bounded time to take
 * it (SubscriptionManager.settle) before the servers close; SSE streams get it while still open.
 */
export function redfishServiceShuttingDown(machine: object): void {
  serviceEvent(machine, 'RedfishServiceShuttingDown');
}

function serviceEvent(machine: object, key: 'RedfishServiceStarted' | 'RedfishServiceShuttingDown'): void {
  eventsOf(machine).hub.emit({
    kind: 'service',
    registry: 'HeartbeatEvent',
    key,
    reason: key,
    source: 'agent',
    args: [],
    origin: MANAGER_URI,
    resourceType: 'Manager',
  });
}
