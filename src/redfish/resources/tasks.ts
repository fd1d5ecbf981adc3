/**
 * /redfish/v1/TaskService, its Tasks and the task monitors (DSP0266 "Asynchronous operations").
 *
 * An operation that runs as a task (InsertMedia, PATCH of a VirtualMedia Image) answers 202 Accepted
 * with `Location` naming the task monitor /redfish/v1/TaskService/TaskMonitors/{id} and the Task as
 * body. GET on the monitor answers 202 with the Task (and Retry-After) while it runs, then the
 * operation's own final answer (204 on success, the error body of the failure otherwise) for as long
 * as the task is kept. DELETE on the monitor cancels a running task (for media: ejects what was being
 * inserted) and removes the monitor; on a finished task it only removes the monitor. The Task
 * resource stays listable until the store prunes it (core/tasks.ts: retention and bounds).
 *
 * Privileges: every logged-in user reads TaskService, Tasks and monitors (Privilege Registry: Login);
 * cancelling needs ConfigureManager, like the operations that start tasks. Task.Payload shows the
 * request body with URL query strings and credentials removed unless the reader is an Administrator.
 */
import { odataTypes } from '../../../generated/redfish/routes.js';
import { hasPrivilege } from '../core/auth.js';
import { RedfishError, errorBody, notFound } from '../core/errors.js';
import { JSON_TYPE, collection, sendResource } from '../core/odata.js';
import {
  isFinished,
  renderTaskMessage,
  taskStoreOf,
  type Task,
  type TaskPayload,
  type TaskResult,
} from '../core/tasks.js';
import type { OperationHandlers, RedfishContext } from '../core/types.js';

export const TASK_SERVICE = '/redfish/v1/TaskService';
export const TASKS = `${TASK_SERVICE}/Tasks`;
export const TASK_MONITORS = `${TASK_SERVICE}/TaskMonitors`;
/** Seconds a client is asked to wait before retrying when no task can start now. */
const BUSY_RETRY_SECONDS = 5;

export const taskUri = (id: string): string => `${TASKS}/${encodeURIComponent(id)}`;
export const monitorUri = (id: string): string => `${TASK_MONITORS}/${encodeURIComponent(id)}`;

/** Whether the reader may see URLs with their query strings (pre-signed tokens live there). */
export const seesFullUrls = (ctx: RedfishContext): boolean => ctx.state.user?.role === 'Administrator';

/** The Task resource as `ctx`'s user may see it. */
export function taskBody(ctx: RedfishContext, task: Task): Record<string, unknown> {
  const p = task.payload;
  const json = seesFullUrls(ctx) ? p.jsonBody : (p.jsonBodyMasked ?? p.jsonBody);
  const body: Record<string, unknown> = {
    '@odata.id': taskUri(task.id),
    '@odata.type': odataTypes.Task,
    Id: task.id,
    Name: task.name,
    TaskState: task.state,
    TaskStatus: task.health,
    StartTime: task.startTime.toISOString(),
    Messages: task.messages.map(renderTaskMessage),
    HidePayload: false,
    Payload: {
      HttpOperation: p.httpOperation,
      TargetUri: p.targetUri,
      HttpHeaders: [],
      ...(json ? { JsonBody: JSON.stringify(json) } : {}),
    },
  };
  if (task.percentComplete !== undefined) body.PercentComplete = task.percentComplete;
  if (task.endTime) body.EndTime = task.endTime.toISOString();
  // The monitor is gone once a task was cancelled or its monitor deleted.
  if (!task.monitorGone) body.TaskMonitor = monitorUri(task.id);
  return body;
}

/**
 * Answer the request that started `task` (and a poll of its monitor while it runs): 202 Accepted,
 * Location of the monitor, the Task as body (DSP0266: the body should be the Task; Tacklebox shows
 * TaskState/PercentComplete from it).
 *
 * No Retry-After (DSP0266 makes it optional): sushy 4.x's TaskMonitor.sleep_for hands a numeric
 * Retry-After to time.sleep() as a string, which raises; without it sushy and Tacklebox both poll
 * every second, which suits an import that takes seconds to minutes.
 */
export function sendAccepted(ctx: RedfishContext, task: Task): void {
  ctx.status = 202;
  ctx.set('Location', monitorUri(task.id));
  ctx.type = JSON_TYPE;
  ctx.body = taskBody(ctx, task);
}

/** Start a task for the current request, or 503 when too many run already. */
export function startTask(ctx: RedfishContext, name: string, payload: Omit<TaskPayload, 'httpOperation' | 'targetUri'>): Task {
  const store = taskStoreOf(ctx.state.deps);
  if (!store.hasRoom()) {
    throw new RedfishError(503, 'ServiceTemporarilyUnavailable', [String(BUSY_RETRY_SECONDS)], {
      retryAfterSeconds: BUSY_RETRY_SECONDS,
      detail: `${store.maxRunning} tasks are running already; retry when one has finished.`,
    });
  }
  return store.create(name, ctx.state.user?.username ?? '', {
    httpOperation: ctx.method,
    targetUri: ctx.path,
    ...payload,
  });
}

/** The final answer of a failed operation, from the error it failed with. */
export function errorResult(err: RedfishError): TaskResult {
  const headers: Record<string, string> = { ...(err.opts.headers ?? {}) };
  return { status: err.status, body: errorBody(err.messages(), err.opts.detail), headers };
}

/** Let a running task catch up with its operation before it is shown (a failed read changes nothing). */
async function refreshed(ctx: RedfishContext, task: Task): Promise<Task> {
  if (!isFinished(task) && task.refresh) {
    try {
      await task.refresh();
    } catch (e) {
      ctx.state.logger.debug({ err: e, task: task.id }, 'task refresh failed');
    }
  }
  return task;
}

async function findTask(ctx: RedfishContext): Promise<Task> {
  const id = ctx.params.TaskId ?? '';
  const task = taskStoreOf(ctx.state.deps).get(id);
  if (!task) throw notFound('Task', id);
  return refreshed(ctx, task);
}

async function findMonitor(ctx: RedfishContext): Promise<Task> {
  const task = taskStoreOf(ctx.state.deps).get(ctx.params.TaskId ?? '');
  if (!task || task.monitorGone) throw new RedfishError(404, 'ResourceMissingAtURI', [ctx.path]);
  return refreshed(ctx, task);
}

export const handlers: OperationHandlers = {
  getTaskService: async (ctx) => {
    const store = taskStoreOf(ctx.state.deps);
    sendResource(
      ctx,
      {
        '@odata.id': TASK_SERVICE,
        '@odata.type': odataTypes.TaskService,
        Id: 'TaskService',
        Name: 'Task Service',
        Description: `Long-running operations (virtual media insertion). Finished tasks are kept ${store.retentionMinutes} minutes, at most ${store.maxFinished} of them (oldest first out).`,
        ServiceEnabled: true,
        DateTime: ctx.state.deps.now().toISOString(),
        CompletedTaskOverWritePolicy: 'Oldest',
        // task state changes are events (EventService subscriptions, SSE, EventLog)
        LifeCycleEventOnTaskStateChange: true,
        TaskAutoDeleteTimeoutMinutes: store.retentionMinutes,
        Status: { State: 'Enabled', Health: 'OK' },
        Tasks: { '@odata.id': TASKS },
      },
      { etag: true },
    );
  },

  listTasks: async (ctx) => {
    const members = taskStoreOf(ctx.state.deps)
      .list()
      .map((t) => taskUri(t.id));
    sendResource(ctx, collection(ctx, TASKS, 'TaskCollection', 'Task Collection', members));
  },

  getTask: async (ctx) => {
    sendResource(ctx, taskBody(ctx, await findTask(ctx)), { etag: true });
  },

  getTaskMonitor: async (ctx) => {
    const task = await findMonitor(ctx);
    if (!isFinished(task) || !task.result) {
      sendAccepted(ctx, task);
      return;
    }
    const { status, body, headers } = task.result;
    for (const [k, v] of Object.entries(headers ?? {})) ctx.set(k, v);
    ctx.status = status;
    if (body) {
      ctx.type = JSON_TYPE;
      ctx.body = body;
    }
  },

  deleteTaskMonitor: async (ctx) => {
    const task = await findMonitor(ctx);
    const user = ctx.state.user;
    if (!user || !hasPrivilege(user.role, 'ConfigureManager')) throw new RedfishError(403, 'InsufficientPrivilege');
    const store = taskStoreOf(ctx.state.deps);
    if (!isFinished(task)) {
      if (!task.cancel) {
        // the task is in transition and has no way to stop (Base ResourceInUse), not a method the URI refuses (OperationNotAllowed)
        throw new RedfishError(409, 'ResourceInUse', [], { detail: `Task ${task.id} cannot be cancelled; wait for it to finish.` });
      }
      await store.cancel(task);
      ctx.state.logger.info({ task: task.id }, 'task cancelled');
    }
    task.monitorGone = true;
    ctx.status = 204;
  },
};
