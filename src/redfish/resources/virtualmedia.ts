/**
 * VirtualMedia: one member per backend media slot, with the slot's id as the Redfish Id (the
 * simulator's "Cd" and "UsbStick"; on KubeVirt each CD-ROM drive by its disk name), served identically under
 * Managers/BMC/VirtualMedia and Systems/1/VirtualMedia (clients look in either place). Insert and
 * eject go through the actions or, for clients that prefer it, a PATCH of Image/Inserted.
 *
 * Insert runs as a task (resources/tasks.ts): after the synchronous checks (400 bad parameters,
 * 404 unknown slot, 409 slot already holding media) it answers 202 Accepted with the task monitor
 * in Location. The task calls machine.insertMedia and then follows the machine's `media` events for
 * the slot: PercentComplete from the slot's progress, Completed once it is inserted, Exception with
 * the cause when insertMedia rejects (URL unreachable or 404, no drive, quota...) or the slot goes to
 * error. Cancelling the task (DELETE on its monitor) ejects the slot. Eject stays synchronous (204).
 *
 * Users other than Administrators see Image (and a task's Payload) without query string or
 * credentials: a pre-signed URL carries its access token in the query.
 */
import { maskImageCredentials, validateImageUrl } from '../../backend/validate.js';
import { isBackendError, type MediaSlot, type MediaSlotId } from '../../backend/types.js';
import { RedfishError, fromBackendError } from '../core/errors.js';
import { checkIfMatch, collection, sendResource } from '../core/odata.js';
import { validatePatch, withWriteableProperties, type WritableTree } from '../core/patch.js';
import { taskStoreOf, type Task } from '../core/tasks.js';
import type { OperationHandlers, RedfishContext, RedfishHandler } from '../core/types.js';
import { errorResult, seesFullUrls, sendAccepted, startTask } from './tasks.js';
import { MANAGER, MANAGER_ID, SYSTEM, SYSTEM_ID, actionBody, backend, propertyPaths, requireId, type Annotated, type Schemas } from '../core/resource.js';

const KIND_INFO: Record<MediaSlot['kind'], { name: string; mediaTypes: Schemas['VirtualMedia_v1_6_5_MediaType'][] }> = {
  cd: { name: 'Virtual CD', mediaTypes: ['CD', 'DVD'] },
  usb: { name: 'Virtual USB Stick', mediaTypes: ['USBStick'] },
};

const INSERT = 'VirtualMedia.InsertMedia';
const EJECT = 'VirtualMedia.EjectMedia';

/**
 * The values InsertMedia takes for its enumerated parameters, per slot kind: insert() checks a
 * request against this table and InsertMediaActionInfo shows it, so the two cannot disagree.
 * - Inserted: only true (the backend attaches an image or nothing: "attached, not inserted" does not exist);
 * - WriteProtected: a CD or DVD is read-only media (KubeVirt CD-ROM disks are, see
 *   backend/kubevirt/machine-media.ts), a USB stick may be either;
 * - TransferMethod: Stream (the image is read from its URL, never uploaded to the BMC);
 * - TransferProtocolType: the image URL's scheme (backend/validate.ts takes http and https only).
 * UserName and Password are refused (ActionParameterNotSupported), so the ActionInfo does not list them.
 */
const INSERT_VALUES = {
  Inserted: ['true'],
  TransferMethod: ['Stream'],
  TransferProtocolType: ['HTTP', 'HTTPS'],
} as const satisfies Record<string, readonly string[]>;
const writeProtectedValues = (kind: MediaSlot['kind']): readonly string[] => (kind === 'cd' ? ['true'] : ['true', 'false']);
const isOneOf = (values: readonly string[], v: unknown): v is string => typeof v === 'string' && values.includes(v);
/** What an image URL must look like (validateImageUrl: http or https, a host, no credentials, a file). */
const IMAGE_PATTERN = '^[Hh][Tt][Tt][Pp][Ss]?://[^/@?#]+/[^#]+$';

function insertActionInfo(parent: Parent, slot: MediaSlot): Record<string, unknown> {
  // Object.assign, not a spread-then-key literal (it leaves promoted garbage per call on Node 20, docs/scale.md "Memory after load")
  const allow = Object.assign({}, INSERT_VALUES, { WriteProtected: writeProtectedValues(slot.kind) });
  const body: Annotated<Schemas['ActionInfo_v1_5_0_ActionInfo']> = {
    '@odata.type': '#ActionInfo.v1_5_0.ActionInfo',
    '@odata.id': `${parent.base}/${encodeURIComponent(slot.id)}/InsertMediaActionInfo`,
    Id: 'InsertMediaActionInfo',
    Name: 'Insert Media Action Info',
    Parameters: [
      { Name: 'Image', Required: true, DataType: 'String', AllowablePattern: IMAGE_PATTERN },
      { Name: 'Inserted', Required: false, DataType: 'Boolean', AllowableValues: [...allow.Inserted] },
      { Name: 'WriteProtected', Required: false, DataType: 'Boolean', AllowableValues: [...allow.WriteProtected] },
      { Name: 'TransferMethod', Required: false, DataType: 'String', AllowableValues: [...allow.TransferMethod] },
      { Name: 'TransferProtocolType', Required: false, DataType: 'String', AllowableValues: [...allow.TransferProtocolType] },
    ],
  };
  return body;
}

/** Where the collection lives: under the manager or under the system. */
interface Parent {
  param: string;
  id: string;
  type: string;
  base: string;
}
const UNDER_MANAGER: Parent = { param: 'ManagerId', id: MANAGER_ID, type: 'Manager', base: `${MANAGER}/VirtualMedia` };
const UNDER_SYSTEM: Parent = { param: 'ComputerSystemId', id: SYSTEM_ID, type: 'ComputerSystem', base: `${SYSTEM}/VirtualMedia` };

function protocolOf(image: string | undefined): 'HTTP' | 'HTTPS' | null {
  if (!image) return null;
  if (image.startsWith('https:')) return 'HTTPS';
  if (image.startsWith('http:')) return 'HTTP';
  return null;
}

function imageName(image: string | undefined): string | null {
  if (!image) return null;
  try {
    const last = new URL(image).pathname.split('/').filter(Boolean).pop();
    return last ? decodeURIComponent(last) : null;
  } catch {
    return null;
  }
}

/** An image URL without userinfo, query string or fragment (what non-Administrators see). */
export function redactImage(image: string): string {
  try {
    const u = new URL(image);
    return `${u.origin}${u.pathname}`;
  } catch {
    return maskImageCredentials(image).replace(/[?#].*$/s, '');
  }
}

/**
 * What a VirtualMedia PATCH takes (see patch below): Image (a URL inserts, null ejects), Inserted
 * (false ejects) and WriteProtected (chosen with the Image it protects). Also the body's
 * `@Redfish.WriteableProperties`.
 */
const MEDIA_WRITABLE: WritableTree = { Image: 'string', Inserted: 'boolean', WriteProtected: 'boolean' };

function mediaBody(ctx: RedfishContext, parent: Parent, raw: MediaSlot): Record<string, unknown> {
  const slot: MediaSlot = raw.image !== undefined && !seesFullUrls(ctx) ? { ...raw, image: redactImage(raw.image) } : raw;
  const id = slot.id;
  const path = `${parent.base}/${encodeURIComponent(id)}`;
  const present = slot.state === 'inserted' || slot.state === 'inserting';
  const body: Annotated<Schemas['VirtualMedia_v1_6_5_VirtualMedia']> = {
    '@odata.type': '#VirtualMedia.v1_6_5.VirtualMedia',
    '@odata.id': path,
    Id: id,
    Name: slot.name ?? KIND_INFO[slot.kind].name,
    MediaTypes: KIND_INFO[slot.kind].mediaTypes,
    Image: present ? (slot.image ?? null) : null,
    ImageName: present ? imageName(slot.image) : null,
    Inserted: slot.state === 'inserted',
    WriteProtected: slot.writeProtected,
    ConnectedVia: present ? 'URI' : 'NotConnected',
    TransferMethod: 'Stream',
    TransferProtocolType: present ? protocolOf(slot.image) : null,
    Status: { State: 'Enabled', Health: 'OK' },
    Actions: {
      '#VirtualMedia.InsertMedia': { target: `${path}/Actions/${INSERT}`, '@Redfish.ActionInfo': `${path}/InsertMediaActionInfo` },
      '#VirtualMedia.EjectMedia': { target: `${path}/Actions/${EJECT}` },
    },
  };
  if (slot.state === 'inserting') {
    // Still being fetched/imported: not usable yet.
    body.Status = { State: 'Starting', Health: 'OK' };
    if (slot.progress !== undefined) {
      body.Description = `Inserting ${slot.image ?? 'image'}: ${slot.progress}% done`;
    }
  } else if (slot.state === 'error') {
    const message = slot.error ?? 'the last insert failed';
    body.Image = slot.image ?? null;
    body.Description = `Insert failed: ${message}`;
    body.Status = {
      State: 'Enabled',
      Health: 'Critical',
      Conditions: [{ MessageId: 'Base.1.22.1.GeneralError', Message: message, Severity: 'Critical' }],
    };
  }
  return withWriteableProperties(body, MEDIA_WRITABLE);
}

/** The slot id the URL names (the Redfish VirtualMedia Id is the backend slot id). */
function mediaId(ctx: RedfishContext, parent: Parent): { slot: MediaSlotId } {
  requireId(ctx, parent.param, parent.id, parent.type);
  return { slot: ctx.params.VirtualMediaId ?? '' };
}

async function currentMedia(ctx: RedfishContext, parent: Parent): Promise<Record<string, unknown>> {
  const { slot } = mediaId(ctx, parent);
  const slots = await backend(ctx.state.deps.machine.listMedia());
  const s = slots.find((x) => x.id === slot);
  if (!s) throw new RedfishError(404, 'ResourceNotFound', ['VirtualMedia', slot]);
  return mediaBody(ctx, parent, s);
}

/**
 * Validate an image URL up front so a bad one gets the Redfish format error, not a generic 400.
 * validateImageUrl refuses credentials in the URL before it is logged or stored (UserName/Password
 * parameters are refused too). `onBad` gets the image as it may be shown back (credentials masked)
 * and the reason.
 */
function checkImage(image: string, onBad: (shown: string, detail: string) => RedfishError): URL {
  try {
    return validateImageUrl(image);
  } catch (e) {
    if (isBackendError(e, 'InvalidArgument')) throw onBad(maskImageCredentials(image), e.message);
    throw e;
  }
}

function boolParameter(body: Record<string, unknown>, name: string, dflt: boolean): boolean {
  const v = body[name];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'boolean') {
    throw new RedfishError(400, 'ActionParameterValueTypeError', [JSON.stringify(v), name, INSERT], { property: name });
  }
  return v;
}

async function insert(ctx: RedfishContext, parent: Parent): Promise<void> {
  const { slot } = mediaId(ctx, parent);
  const body = actionBody(ctx, INSERT, [
    'Image',
    'Inserted',
    'WriteProtected',
    'TransferMethod',
    'TransferProtocolType',
    'UserName',
    'Password',
  ]);
  const image = body.Image;
  if (image === undefined || image === null) throw new RedfishError(400, 'ActionParameterMissing', [INSERT, 'Image'], { property: 'Image' });
  if (typeof image !== 'string') {
    throw new RedfishError(400, 'ActionParameterValueTypeError', [JSON.stringify(image), 'Image', INSERT], { property: 'Image' });
  }
  const url = checkImage(image, (shown, detail) =>
    new RedfishError(400, 'ActionParameterValueFormatError', [shown, 'Image', INSERT], { property: 'Image', detail }),
  );
  const inserted = boolParameter(body, 'Inserted', true);
  const writeProtected = boolParameter(body, 'WriteProtected', true);
  // WriteProtected depends on the slot's kind: checked once the slot is known, in startInsert
  if (!isOneOf(INSERT_VALUES.Inserted, String(inserted))) {
    throw new RedfishError(400, 'ActionParameterValueNotInList', [String(inserted), 'Inserted', INSERT], { property: 'Inserted' });
  }
  for (const cred of ['UserName', 'Password']) {
    if (body[cred] !== undefined) throw new RedfishError(400, 'ActionParameterNotSupported', [cred, INSERT], { property: cred });
  }
  const method = body.TransferMethod;
  if (method !== undefined && method !== null && !isOneOf(INSERT_VALUES.TransferMethod, method)) {
    throw new RedfishError(400, 'ActionParameterValueNotInList', [String(method), 'TransferMethod', INSERT], {
      property: 'TransferMethod',
    });
  }
  const proto = body.TransferProtocolType;
  if (proto !== undefined && proto !== null) {
    if (!isOneOf(INSERT_VALUES.TransferProtocolType, proto)) {
      throw new RedfishError(400, 'ActionParameterValueNotInList', [String(proto), 'TransferProtocolType', INSERT], {
        property: 'TransferProtocolType',
      });
    }
    if (proto !== protocolOf(image)) {
      throw new RedfishError(400, 'ActionParameterValueConflict', ['TransferProtocolType', proto], {
        property: 'TransferProtocolType',
      });
    }
  }
  await startInsert(ctx, parent, slot, url, { image, writeProtected }, INSERT);
}

/** The request body of an insert as a task's Payload shows it (no credentials were accepted). */
function payloadBodies(image: string, writeProtected: boolean): { jsonBody: Record<string, unknown>; jsonBodyMasked: Record<string, unknown> } {
  return {
    jsonBody: { Image: image, WriteProtected: writeProtected },
    jsonBodyMasked: { Image: redactImage(image), WriteProtected: writeProtected },
  };
}

/**
 * Synchronous part of an insert (slot exists and is free), then the task. `via` names the request
 * in messages (the action, or PATCH).
 */
async function startInsert(
  ctx: RedfishContext,
  parent: Parent,
  slot: MediaSlotId,
  url: URL,
  req: { image: string; writeProtected: boolean },
  via: string,
): Promise<void> {
  const machine = ctx.state.deps.machine;
  const slots = await backend(machine.listMedia());
  const current = slots.find((x) => x.id === slot);
  if (!current) throw new RedfishError(404, 'ResourceNotFound', ['VirtualMedia', slot]);
  if (current.state === 'inserted' || current.state === 'inserting') {
    throw new RedfishError(409, 'ResourceInUse', [], {
      detail: `Virtual media ${slot} already holds an image${current.state === 'inserting' ? ' (being inserted)' : ''}; eject it first.`,
    });
  }
  if (!isOneOf(writeProtectedValues(current.kind), String(req.writeProtected))) {
    const detail = `${KIND_INFO[current.kind].name} media is always write-protected.`;
    throw via === 'PATCH'
      ? new RedfishError(400, 'PropertyValueNotInList', ['false', 'WriteProtected'], { property: '#/WriteProtected', detail })
      : new RedfishError(400, 'ActionParameterValueNotInList', ['false', 'WriteProtected', INSERT], { property: 'WriteProtected', detail });
  }
  const task = startTask(ctx, `Insert media into ${slot}`, payloadBodies(req.image, req.writeProtected));
  // without the query: a pre-signed image URL carries its access token there
  ctx.state.logger.info({ slot, image: url.origin + url.pathname, task: task.id }, 'virtual media insert');
  runInsert(ctx, parent, slot, req, task, via);
  sendAccepted(ctx, task);
}

/** Insert in the background; the task reports how it goes. */
function runInsert(
  ctx: RedfishContext,
  parent: Parent,
  slot: MediaSlotId,
  req: { image: string; writeProtected: boolean },
  task: Task,
  via: string,
): void {
  const { machine } = ctx.state.deps;
  const store = taskStoreOf(ctx.state.deps);
  const logger = ctx.state.logger.child({ task: task.id, slot });
  const uri = `${parent.base}/${encodeURIComponent(slot)}`;
  let accepted = false;
  let unsubscribe: (() => void) | undefined;
  const done = (): void => {
    unsubscribe?.();
    unsubscribe = undefined;
  };
  const fail = (err: RedfishError, cause: string): void => {
    if (task.state === 'Cancelling') return;
    // the registry message of the error, its text replaced by the cause (as in VirtualMedia Status.Conditions)
    store.finish(task, 'Exception', errorResult(err), [{ messageId: err.messageId, args: err.args, text: err.opts.detail ?? cause }]);
    logger.warn({ cause }, 'virtual media insert failed');
    done();
  };
  // Whether the backend has shown this insert under way (inserting) since it accepted it: only then
  // does an empty slot mean "ejected meanwhile" rather than a view that has not caught up yet.
  let underWay = false;
  // An error reported before insertMedia answered: confirmed by a fresh read once it has.
  let earlyError = false;
  const onSlot = (s: MediaSlot, fromEvent = true): void => {
    if (task.state === 'Completed' || task.state === 'Exception' || task.state === 'Cancelled') return done();
    if (s.state === 'inserting') {
      if (accepted) underWay = true;
      store.running(task, s.progress);
    } else if (s.state === 'inserted') {
      store.finish(task, 'Completed', { status: 204 });
      logger.info('virtual media inserted');
      done();
    } else if (s.state === 'error') {
      if (!accepted) {
        earlyError = true;
        return;
      }
      const cause = s.error ?? 'the insert failed';
      fail(new RedfishError(400, 'GeneralError', [], { detail: `Inserting into ${slot} failed: ${cause}` }), cause);
    } else if (s.state === 'empty' && fromEvent && underWay && task.state !== 'Cancelling') {
      const cause = 'the media was ejected before the insert completed';
      fail(new RedfishError(409, 'ResourceInUse', [], { detail: `Inserting into ${slot} stopped: ${cause}.` }), cause);
    }
  };
  /** Re-read the slot (a missed event must not leave the task running forever). */
  const reread = async (): Promise<void> => {
    const current = (await machine.listMedia()).find((x) => x.id === slot);
    if (current) onSlot(current, false);
  };
  unsubscribe = machine.on((ev) => {
    if (ev.type === 'media' && ev.slot.id === slot) onSlot(ev.slot);
  });
  // Called when a client reads the task or its monitor.
  task.refresh = async () => {
    if (accepted) await reread();
  };
  task.cancel = async () => {
    await backend(machine.ejectMedia(slot));
    done();
  };
  store.running(task, 0);
  machine.insertMedia(slot, req).then(
    (s) => {
      accepted = true;
      if (task.state === 'Cancelling' || task.state === 'Cancelled') {
        // cancelled before the backend had taken the insert: take it out again (eject is idempotent)
        machine.ejectMedia(slot).catch((e: unknown) => logger.warn({ err: e }, 'virtual media: eject after a cancelled insert failed'));
        return;
      }
      onSlot(s, false);
      if (s.state === 'inserting') underWay = true;
      if (earlyError) reread().catch((e: unknown) => logger.warn({ err: e }, 'virtual media: re-reading the slot failed'));
    },
    (e: unknown) => {
      if (isBackendError(e, 'InvalidArgument')) {
        // the image (unreachable, 404, redirect...): backend messages name URLs without their query
        fail(
          via === 'PATCH'
            ? new RedfishError(400, 'PropertyValueError', ['Image'], { property: '#/Image', detail: e.message })
            : new RedfishError(400, 'ActionParameterValueError', ['Image', INSERT], { property: 'Image', detail: e.message }),
          e.message,
        );
      } else if (isBackendError(e)) {
        const err = fromBackendError(e, { action: via, uri });
        fail(new RedfishError(err.status, err.messageId, err.args, { ...err.opts, detail: e.message }), e.message);
      } else {
        logger.error({ err: e }, 'virtual media insert failed unexpectedly');
        fail(new RedfishError(500, 'InternalError'), 'internal error');
      }
    },
  );
}

async function eject(ctx: RedfishContext, parent: Parent): Promise<void> {
  const { slot } = mediaId(ctx, parent);
  actionBody(ctx, EJECT, []);
  ctx.state.logger.info({ slot }, 'virtual media eject');
  await backend(ctx.state.deps.machine.ejectMedia(slot));
  ctx.status = 204;
}

/**
 * PATCH alternative to the actions: {"Image": url[, "Inserted": true][, "WriteProtected": b]}
 * inserts; {"Image": null} or {"Inserted": false} ejects.
 */
async function patch(ctx: RedfishContext, parent: Parent): Promise<void> {
  const { slot } = mediaId(ctx, parent);
  const current = await currentMedia(ctx, parent);
  checkIfMatch(ctx, current);
  const raw: unknown = (ctx.request as { body?: unknown }).body;
  // Image may be null (eject), which the generic checker has no type for: take it out first.
  const ejectByNull = typeof raw === 'object' && raw !== null && (raw as Record<string, unknown>).Image === null;
  const rest = ejectByNull ? { ...(raw as Record<string, unknown>) } : raw;
  if (ejectByNull) delete (rest as Record<string, unknown>).Image;
  const spec = { writable: MEDIA_WRITABLE, readOnly: propertyPaths(current) };
  const body = ejectByNull && Object.keys(rest as object).length === 0 ? {} : validatePatch(rest, spec);
  const image = ejectByNull ? null : (body.Image as string | undefined);
  const inserted = body.Inserted as boolean | undefined;
  const wp = body.WriteProtected as boolean | undefined;

  const machine = ctx.state.deps.machine;
  if (image === null || inserted === false) {
    if (typeof image === 'string') {
      throw new RedfishError(400, 'PropertyValueConflict', ['Image', 'Inserted'], { property: '#/Image' });
    }
    await backend(machine.ejectMedia(slot));
  } else if (typeof image === 'string') {
    const url = checkImage(image, (shown, detail) =>
      new RedfishError(400, 'PropertyValueFormatError', [shown, 'Image'], { property: '#/Image', detail }),
    );
    await startInsert(ctx, parent, slot, url, { image, writeProtected: wp ?? true }, 'PATCH');
    return;
  } else if (wp !== undefined && wp !== current.WriteProtected) {
    // Write protection is chosen when the image is attached; changing it later is not possible.
    throw new RedfishError(400, 'PropertyValueIncorrect', ['WriteProtected', String(wp)], { property: '#/WriteProtected' });
  }
  sendResource(ctx, await currentMedia(ctx, parent), { etag: true });
}

function collectionHandler(parent: Parent): RedfishHandler {
  return async (ctx) => {
    requireId(ctx, parent.param, parent.id, parent.type);
    // Only the slots the backend has (KubeVirt has no USB media, and one CD per CD-ROM drive).
    const slots = await backend(ctx.state.deps.machine.listMedia());
    sendResource(
      ctx,
      collection(
        ctx,
        parent.base,
        'VirtualMediaCollection',
        'Virtual Media Collection',
        slots.map((s) => `${parent.base}/${encodeURIComponent(s.id)}`),
      ),
    );
  };
}

function actionInfoHandler(parent: Parent): RedfishHandler {
  return async (ctx) => {
    const { slot } = mediaId(ctx, parent);
    const s = (await backend(ctx.state.deps.machine.listMedia())).find((x) => x.id === slot);
    if (!s) throw new RedfishError(404, 'ResourceNotFound', ['VirtualMedia', slot]);
    sendResource(ctx, insertActionInfo(parent, s));
  };
}

function getHandler(parent: Parent): RedfishHandler {
  return async (ctx) => sendResource(ctx, await currentMedia(ctx, parent), { etag: true });
}

export const handlers: OperationHandlers = {
  listManagerVirtualMedia: collectionHandler(UNDER_MANAGER),
  getManagerVirtualMedia: getHandler(UNDER_MANAGER),
  patchManagerVirtualMedia: (ctx) => patch(ctx, UNDER_MANAGER),
  insertManagerVirtualMedia: (ctx) => insert(ctx, UNDER_MANAGER),
  getManagerInsertMediaActionInfo: actionInfoHandler(UNDER_MANAGER),
  ejectManagerVirtualMedia: (ctx) => eject(ctx, UNDER_MANAGER),

  listSystemVirtualMedia: collectionHandler(UNDER_SYSTEM),
  getSystemVirtualMedia: getHandler(UNDER_SYSTEM),
  patchSystemVirtualMedia: (ctx) => patch(ctx, UNDER_SYSTEM),
  insertSystemVirtualMedia: (ctx) => insert(ctx, UNDER_SYSTEM),
  getSystemInsertMediaActionInfo: actionInfoHandler(UNDER_SYSTEM),
  ejectSystemVirtualMedia: (ctx) => eject(ctx, UNDER_SYSTEM),
};
