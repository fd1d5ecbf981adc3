/**
 * Kubernetes API failures (KubeApiError from src/kube/client.ts) mapped onto the backend seam's
 * error codes. A 401 or 403 is also logged: the agent cannot fix it, an operator must.
 */
import type { Logger } from '../../common/logger.js';
import { errText, KubeApiError } from '../../kube/client.js';
import { describeRbacNeed } from '../../kube/resources.js';
import { BackendError } from '../types.js';

/**
 * Map a failed request onto the seam's error codes. `what` names the operation for the message.
 * 409s are mapped to Conflict here; callers that can tell "already in the requested state" from a
 * real conflict handle them before calling this.
 */
export function toBackendError(e: unknown, what: string, logger: Logger): BackendError {
  if (e instanceof BackendError) return e;
  if (!(e instanceof KubeApiError)) {
    return new BackendError('Unavailable', `${what}: ${errText(e)}`, { cause: e, retryAfterSeconds: 5 });
  }
  const msg = e.kubeMessage;
  switch (true) {
    case e.status === 0:
      return new BackendError('Unavailable', `${what}: Kubernetes API unreachable (${e.message})`, {
        cause: e,
        retryAfterSeconds: 5,
      });
    case e.status === 401:
      logger.error({ method: e.method, path: e.path }, 'Kubernetes API rejected the agent credentials (401)');
      return new BackendError('Unavailable', `${what}: the agent's Kubernetes credentials were rejected`, { cause: e });
    case e.status === 403: {
      const need = e.rbac;
      const needs = describeRbacNeed(need);
      logger.error(
        { verb: need.verb, group: need.group, resource: need.resource, path: e.path },
        `RBAC: the agent's service account may not ${need.verb} ${need.resource}${need.group ? '.' + need.group : ''}; the agent's Role (created per VirtualMachineBMC by virtbmc-controller) lacks it`,
      );
      return new BackendError('Unavailable', `${what}: forbidden by RBAC (needs ${needs})`, { cause: e });
    }
    case e.status === 404:
      return new BackendError('NotFound', `${what}: ${msg}`, { cause: e });
    case e.status === 409:
      return new BackendError('Conflict', `${what}: ${msg}`, { cause: e });
    case e.status === 400 || e.status === 422:
      return new BackendError('InvalidArgument', `${what}: ${msg}`, { cause: e });
    case e.status === 429:
      return new BackendError('Busy', `${what}: API server throttling`, { cause: e, retryAfterSeconds: 2 });
    default:
      return new BackendError('Unavailable', `${what}: ${msg}`, { cause: e, retryAfterSeconds: 5 });
  }
}
