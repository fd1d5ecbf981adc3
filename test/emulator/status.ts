/** Kubernetes Status objects and the error type that carries them through the emulator. */

export interface StatusDetails {
  name?: string;
  group?: string;
  kind?: string;
  causes?: { reason?: string; message?: string; field?: string }[];
  retryAfterSeconds?: number;
}

export interface StatusBody {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, never>;
  status: 'Failure' | 'Success';
  message?: string;
  reason?: string;
  details?: StatusDetails;
  code: number;
}

const REASONS: Record<number, string> = {
  400: 'BadRequest',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'NotFound',
  405: 'MethodNotAllowed',
  406: 'NotAcceptable',
  409: 'Conflict',
  410: 'Expired',
  415: 'UnsupportedMediaType',
  422: 'Invalid',
  429: 'TooManyRequests',
  500: 'InternalError',
  503: 'ServiceUnavailable',
  504: 'Timeout',
};

export class ApiError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly reason: string = REASONS[code] ?? 'Unknown',
    readonly details?: StatusDetails,
  ) {
    super(message);
  }

  toStatus(): StatusBody {
    const s: StatusBody = {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: this.message,
      reason: this.reason,
      code: this.code,
    };
    if (this.details) s.details = this.details;
    return s;
  }
}

/** "virtualmachines.kubevirt.io" / "pods" style qualified resource used in messages. */
export function qualified(group: string, resource: string): string {
  return group ? `${resource}.${group}` : resource;
}

export function notFound(group: string, resource: string, name: string, kind = resource): ApiError {
  return new ApiError(404, `${qualified(group, resource)} "${name}" not found`, 'NotFound', { name, group, kind });
}

export function alreadyExists(group: string, resource: string, name: string): ApiError {
  return new ApiError(409, `${qualified(group, resource)} "${name}" already exists`, 'AlreadyExists', {
    name,
    group,
    kind: resource,
  });
}

/** apimachinery errors.NewConflict: "Operation cannot be fulfilled on R "name": why" */
export function conflict(group: string, resource: string, name: string, why: string): ApiError {
  return new ApiError(409, `Operation cannot be fulfilled on ${qualified(group, resource)} "${name}": ${why}`, 'Conflict', {
    name,
    group,
    kind: resource,
  });
}

export function badRequest(message: string): ApiError {
  return new ApiError(400, message, 'BadRequest');
}

export function invalid(kind: string, group: string, name: string, causes: { field: string; message: string; reason?: string }[]): ApiError {
  const text = causes.map((c) => `${c.field}: ${c.message}`).join(', ');
  return new ApiError(422, `${kind}${group ? '.' + group : ''} "${name}" is invalid: ${text}`, 'Invalid', {
    name,
    group,
    kind,
    causes: causes.map((c) => ({ reason: c.reason ?? 'FieldValueInvalid', message: c.message, field: c.field })),
  });
}

export function expired(message: string): ApiError {
  return new ApiError(410, message, 'Expired');
}

export function reasonFor(code: number): string {
  return REASONS[code] ?? 'Unknown';
}
