/**
 * The task store behind /redfish/v1/TaskService: long-running operations (today: virtual media
 * insertion) run as tasks that a client follows through a task monitor (DSP0266 "Asynchronous
 * operations"). In memory only: an agent restart forgets its tasks, which the Redfish model allows
 * (the operation itself — e.g. the inserted image — is backend state and survives).
 *
 * Retention: a finished task (Completed, Exception, Cancelled) stays listable for
 * TASK_RETENTION_MINUTES after it ended, and at most MAX_FINISHED_TASKS finished tasks are kept
 * (the oldest finished one goes first: CompletedTaskOverWritePolicy "Oldest"). At most
 * MAX_RUNNING_TASKS run at once. Pruning happens on every store access (no timers), against the
 * injected clock.
 */
import { taskEventRegistry } from '../../../generated/redfish/registries.js';
import { odataTypes } from '../../../generated/redfish/routes.js';
import { renderMessage, type MessageRef } from './errors.js';
import { taskStateEvent } from '../../events/emit.js';
import { perObject } from '../../common/per-object.js';

export const TASK_RETENTION_MINUTES = 60;
export const MAX_FINISHED_TASKS = 32;
export const MAX_RUNNING_TASKS = 16;

/** "TaskEvent.1.0.5" */
export const TASK_EVENT_PREFIX = `${taskEventRegistry.RegistryPrefix}.${taskEventRegistry.RegistryVersion}`;

export type TaskState = 'New' | 'Running' | 'Cancelling' | 'Completed' | 'Exception' | 'Cancelled';
export type TaskHealth = 'OK' | 'Warning' | 'Critical';

/** The operation's final answer, given by the task monitor once the task has ended. */
export interface TaskResult {
  status: number;
  /** JSON body (an error body for failures); none for 204 */
  body?: Record<string, unknown>;
  headers?: Record<string, string>;
}

/** What started the task (Task.Payload), already stripped of secrets. */
export interface TaskPayload {
  httpOperation: string;
  targetUri: string;
  /** The request body as it may be shown to an Administrator (no credentials in URLs) */
  jsonBody?: Record<string, unknown>;
  /** The same for users who may not see URL query strings (ReadOnly, Operator) */
  jsonBodyMasked?: Record<string, unknown>;
}

/** A message in Task.Messages: a registry message, optionally with its text replaced by a cause. */
export interface TaskMessage extends MessageRef {
  /** Replaces the registry's Message text (e.g. why an insert failed) */
  text?: string;
}

export interface Task {
  readonly id: string;
  readonly name: string;
  readonly owner: string;
  readonly payload: TaskPayload;
  readonly startTime: Date;
  state: TaskState;
  health: TaskHealth;
  percentComplete?: number;
  endTime?: Date;
  messages: TaskMessage[];
  result?: TaskResult;
  /** Stop the operation (best effort); absent when it cannot be cancelled. */
  cancel?: () => Promise<void>;
  /** Bring the task up to date from the operation's current state (called when a client reads it). */
  refresh?: () => Promise<void>;
  /** Set once the task monitor was deleted (or the task cancelled): the monitor then answers 404. */
  monitorGone?: boolean;
  /** The cancellation in progress, shared by concurrent DELETEs */
  cancelling?: Promise<void>;
}

export interface TaskStoreOptions {
  now: () => Date;
  retentionMinutes?: number;
  maxFinished?: number;
  maxRunning?: number;
  /** Called on each task state change with the TaskEvent message key (the agent's events, issue 12) */
  onStateChange?: (task: Task, key: 'TaskStarted' | 'TaskCompletedOK' | 'TaskAborted' | 'TaskCancelled') => void;
  /** Put before each task id (shared mode: the tenant's number and `-`, so a task URI names its tenant) */
  idPrefix?: string;
}

export const isFinished = (t: Task): boolean => t.state === 'Completed' || t.state === 'Exception' || t.state === 'Cancelled';

/** A message of the TaskEvent registry ("TaskStarted", ...) about task `id`. */
export function taskEvent(key: string, ...args: string[]): MessageRef {
  return { messageId: `${TASK_EVENT_PREFIX}.${key}`, args };
}

/** A Message object (Message.v1_x) for a TaskEvent or Base registry message. */
export function renderTaskMessage(ref: TaskMessage): Record<string, unknown> {
  if (!ref.messageId.startsWith(`${TASK_EVENT_PREFIX}.`)) {
    const msg = renderMessage(ref);
    if (ref.text !== undefined) msg.Message = ref.text;
    return msg;
  }
  const key = ref.messageId.slice(TASK_EVENT_PREFIX.length + 1);
  const def = taskEventRegistry.Messages[key];
  const args = (ref.args ?? []).map(String);
  return {
    '@odata.type': odataTypes.Message,
    MessageId: ref.messageId,
    Message: def ? def.Message.replace(/%(\d+)/g, (m, n: string) => args[Number(n) - 1] ?? m) : ref.messageId,
    MessageArgs: args,
    MessageSeverity: def?.MessageSeverity ?? 'OK',
    Resolution: def?.Resolution ?? 'None.',
  };
}

/** What taskStoreOf needs of a Redfish service's deps. */
type TaskStoreDeps = { now: () => Date; machine?: object; taskIdPrefix?: string };

const stores = perObject<TaskStoreDeps, TaskStore>((deps) => {
  const machine = deps.machine;
  return new TaskStore({
    now: deps.now,
    ...(deps.taskIdPrefix !== undefined ? { idPrefix: deps.taskIdPrefix } : {}),
    // task state changes are events too (src/events)
    ...(machine ? { onStateChange: (task: Task, key: string) => taskStateEvent(machine, task.id, key, task.state) } : {}),
  });
});

/** The task store of one Redfish service (one per deps object, created on first use). */
export function taskStoreOf(deps: TaskStoreDeps): TaskStore {
  return stores.get(deps);
}

export class TaskStore {
  private readonly tasks = new Map<string, Task>();
  private nextId = 1;
  private readonly now: () => Date;
  readonly retentionMinutes: number;
  readonly maxFinished: number;
  readonly maxRunning: number;
  private readonly onStateChange: TaskStoreOptions['onStateChange'];
  private readonly idPrefix: string;

  constructor(opts: TaskStoreOptions) {
    this.onStateChange = opts.onStateChange;
    this.idPrefix = opts.idPrefix ?? '';
    this.now = opts.now;
    this.retentionMinutes = opts.retentionMinutes ?? TASK_RETENTION_MINUTES;
    this.maxFinished = opts.maxFinished ?? MAX_FINISHED_TASKS;
    this.maxRunning = opts.maxRunning ?? MAX_RUNNING_TASKS;
  }

  /** Whether another task may start now. */
  hasRoom(): boolean {
    this.prune();
    return [...this.tasks.values()].filter((t) => !isFinished(t)).length < this.maxRunning;
  }

  /** A new task in state New. The caller checks hasRoom() first. */
  create(name: string, owner: string, payload: TaskPayload): Task {
    this.prune();
    const id = `${this.idPrefix}${this.nextId++}`;
    const task: Task = { id, name, owner, payload, startTime: this.now(), state: 'New', health: 'OK', messages: [] };
    this.tasks.set(id, task);
    return task;
  }

  get(id: string): Task | undefined {
    this.prune();
    return this.tasks.get(id);
  }

  /** Every task, oldest first. */
  list(): Task[] {
    this.prune();
    return [...this.tasks.values()];
  }

  remove(id: string): boolean {
    return this.tasks.delete(id);
  }

  running(task: Task, percent?: number): void {
    if (isFinished(task) || task.state === 'Cancelling') return;
    if (task.state === 'New') {
      task.state = 'Running';
      task.messages.push(taskEvent('TaskStarted', task.id));
      this.onStateChange?.(task, 'TaskStarted');
    }
    if (percent !== undefined && percent !== task.percentComplete) {
      task.percentComplete = Math.max(0, Math.min(100, Math.round(percent)));
      // one progress message, kept current (a long import would otherwise pile them up)
      task.messages = task.messages.filter((m) => m.messageId !== `${TASK_EVENT_PREFIX}.TaskProgressChanged`);
      task.messages.push(taskEvent('TaskProgressChanged', task.id, String(task.percentComplete)));
    }
  }

  /**
   * Cancel a running task: Cancelling while task.cancel() runs, then Cancelled. When cancel() fails
   * the task goes back to Running and the error is rethrown. Concurrent calls share one attempt.
   */
  async cancel(task: Task): Promise<void> {
    if (isFinished(task)) return;
    if (task.cancelling) return task.cancelling;
    const stop = task.cancel;
    if (!stop) throw new Error(`task ${task.id} cannot be cancelled`);
    const before = task.state;
    task.state = 'Cancelling';
    task.cancelling = (async () => {
      try {
        await stop();
      } catch (e) {
        task.state = before;
        throw e;
      } finally {
        delete task.cancelling;
      }
      // the outcome says what happened (TaskEvent TaskCancelled), not Base OperationNotAllowed ("the HTTP method is not allowed")
      const cancelled = renderTaskMessage(taskEvent('TaskCancelled', task.id));
      this.finish(task, 'Cancelled', {
        status: 409,
        body: { error: { code: cancelled.MessageId, message: cancelled.Message, '@Message.ExtendedInfo': [cancelled] } },
      });
      task.monitorGone = true;
    })();
    return task.cancelling;
  }

  /** End a task; later calls on a finished task change nothing (first outcome wins). */
  finish(task: Task, state: 'Completed' | 'Exception' | 'Cancelled', result: TaskResult, more: TaskMessage[] = []): void {
    if (isFinished(task)) return;
    // while cancelling, only the cancellation ends the task (the operation's own end is ignored)
    if (task.state === 'Cancelling' && state !== 'Cancelled') return;
    task.state = state;
    task.endTime = this.now();
    task.result = result;
    delete task.cancel;
    delete task.refresh;
    task.messages = task.messages.filter((m) => m.messageId !== `${TASK_EVENT_PREFIX}.TaskProgressChanged`);
    if (state === 'Completed') {
      task.health = 'OK';
      task.percentComplete = 100;
      task.messages.push(taskEvent('TaskCompletedOK', task.id), ...more);
    } else if (state === 'Exception') {
      task.health = 'Critical';
      task.messages.push(taskEvent('TaskAborted', task.id), ...more);
    } else {
      task.health = 'Warning';
      task.messages.push(taskEvent('TaskCancelled', task.id), ...more);
    }
    this.onStateChange?.(task, state === 'Completed' ? 'TaskCompletedOK' : state === 'Exception' ? 'TaskAborted' : 'TaskCancelled');
    this.prune();
  }

  private prune(): void {
    const cutoff = this.now().getTime() - this.retentionMinutes * 60_000;
    const finished = [...this.tasks.values()].filter(isFinished).sort((a, b) => (a.endTime as Date).getTime() - (b.endTime as Date).getTime());
    let excess = finished.length - this.maxFinished;
    for (const t of finished) {
      if (excess > 0 || (t.endTime as Date).getTime() <= cutoff) {
        this.tasks.delete(t.id);
        excess--;
      }
    }
  }
}
