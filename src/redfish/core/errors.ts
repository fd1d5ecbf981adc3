/**
 * Redfish errors: a thrown RedfishError becomes an error body whose text comes from the DMTF Base
 * message registry (generated/redfish/registries.ts), with %1.. filled from the arguments.
 */
import { baseRegistry } from '../../../generated/redfish/registries.js';
import { odataTypes } from '../../../generated/redfish/routes.js';
import type { BackendError } from '../../backend/types.js';

/** "Base.1.22.1" */
export const BASE_PREFIX = `${baseRegistry.RegistryPrefix}.${baseRegistry.RegistryVersion}`;

/** One @Message.ExtendedInfo entry before rendering. */
export interface MessageRef {
  /** Short key ("PropertyUnknown") or full id ("Base.1.22.1.PropertyUnknown") */
  messageId: string;
  args?: readonly string[];
  /** JSON pointer of the property concerned, e.g. "#/Boot/BootSourceOverrideTarget" */
  property?: string;
}

export interface RedfishErrorOptions {
  property?: string;
  retryAfterSeconds?: number;
  headers?: Record<string, string>;
  /** Further messages reported in the same error (several problems in one PATCH) */
  more?: readonly MessageRef[];
  /** Free text replacing the top-level error.message (e.g. the backend's explanation) */
  detail?: string;
}

export class RedfishError extends Error {
  readonly status: number;
  /** Full MessageId, e.g. "Base.1.22.1.PropertyUnknown" */
  readonly messageId: string;
  readonly args: readonly string[];
  readonly opts: RedfishErrorOptions;

  constructor(status: number, messageId: string, args: readonly string[] = [], opts: RedfishErrorOptions = {}) {
    const full = fullMessageId(messageId);
    super(`${status} ${full}`);
    this.name = 'RedfishError';
    this.status = status;
    this.messageId = full;
    this.args = args;
    this.opts = opts;
  }

  /** The messages this error reports, first one first. */
  messages(): MessageRef[] {
    const first: MessageRef = { messageId: this.messageId, args: this.args };
    if (this.opts.property !== undefined) first.property = this.opts.property;
    return [first, ...(this.opts.more ?? [])];
  }
}

export function fullMessageId(id: string): string {
  return id.includes('.') ? id : `${BASE_PREFIX}.${id}`;
}

/** A Message object (Message.v1_x) for a Base registry message. */
export function renderMessage(ref: MessageRef): Record<string, unknown> {
  const full = fullMessageId(ref.messageId);
  const key = full.slice(full.lastIndexOf('.') + 1);
  const def = full.startsWith(`${BASE_PREFIX}.`) ? baseRegistry.Messages[key] : undefined;
  const args = (ref.args ?? []).map(String);
  const text = def ? def.Message.replace(/%(\d+)/g, (m, n: string) => args[Number(n) - 1] ?? m) : full;
  const msg: Record<string, unknown> = {
    '@odata.type': odataTypes.Message,
    MessageId: full,
    Message: text,
    MessageArgs: args,
    MessageSeverity: def?.MessageSeverity ?? 'Critical',
    Resolution: def?.Resolution ?? 'None.',
  };
  if (ref.property !== undefined) msg.RelatedProperties = [ref.property.startsWith('#') ? ref.property : `#/${ref.property}`];
  return msg;
}

/** The {error: ...} body for a list of messages. */
export function errorBody(messages: readonly MessageRef[], detail?: string): Record<string, unknown> {
  const rendered = messages.map(renderMessage);
  const single = rendered.length === 1 ? rendered[0] : undefined;
  return {
    error: {
      code: single ? single.MessageId : `${BASE_PREFIX}.GeneralError`,
      message:
        detail ?? (single ? single.Message : 'Several problems were found in the request; see @Message.ExtendedInfo for each.'),
      '@Message.ExtendedInfo': rendered,
    },
  };
}

// ---- helpers for common cases ----------------------------------------------------------------

export const notFound = (type: string, id: string): RedfishError => new RedfishError(404, 'ResourceNotFound', [type, id]);
export const insufficientPrivilege = (): RedfishError => new RedfishError(403, 'InsufficientPrivilege');

/** Map a backend seam failure to the Redfish status and message. */
export function fromBackendError(
  e: BackendError,
  context: {
    action?: string;
    uri?: string;
    /** The Id of the chassis that is powered off, when that is why the request conflicts (a reset of a VM that is off) */
    poweredOffChassis?: string;
  } = {},
): RedfishError {
  const retry = e.retryAfterSeconds ?? 5;
  const retryHeaders = { 'Retry-After': String(retry) };
  switch (e.code) {
    case 'Busy':
      return new RedfishError(409, 'ResourceInUse', [], { retryAfterSeconds: retry, headers: retryHeaders, detail: e.message });
    case 'Unavailable':
      return new RedfishError(503, 'ServiceTemporarilyUnavailable', [String(retry)], {
        retryAfterSeconds: retry,
        headers: retryHeaders,
        detail: e.message,
      });
    case 'Conflict':
      // Not OperationNotAllowed: that one says the HTTP method is wrong for the URI (a 405).
      return context.poweredOffChassis !== undefined
        ? new RedfishError(409, 'ChassisPowerStateOnRequired', [context.poweredOffChassis], { detail: e.message })
        : new RedfishError(409, 'ResourceInUse', [], { detail: e.message });
    case 'NotFound':
      return context.uri
        ? new RedfishError(404, 'ResourceMissingAtURI', [context.uri], { detail: e.message })
        : new RedfishError(404, 'GeneralError', [], { detail: e.message });
    case 'Unsupported':
      return context.action
        ? new RedfishError(400, 'ActionNotSupported', [context.action], { detail: e.message })
        : new RedfishError(501, 'GeneralError', [], { detail: e.message });
    case 'InvalidArgument':
      return new RedfishError(400, 'GeneralError', [], { detail: e.message });
  }
}
