/**
 * Storage/1/Volumes: the volumes this service creates, each a new blank virtual disk of the VM
 * (KubeVirt: a CDI DataVolume with `source.blank` and a disk + volume in the VM spec, see
 * src/backend/kubevirt/volumes.ts). No RAID: a volume is one disk, RAIDType None, and it is not made
 * of existing drives (it is a drive itself: Links.Drives names it, its Drive links back).
 *
 * Apply time: the VM spec holds the disk at once, but KubeVirt builds the domain when a VMI starts,
 * so the guest sees the disk from the VM's next start (`@Redfish.OperationApplyTimeSupport`
 * SupportedValues `["OnReset"]`, on the collection for POST and on each volume for DELETE). The
 * create itself completes within the request (the DataVolume and the disk exist), so POST answers
 * 201 Created with Location and the volume (DSP0266 "POST (create)"), with a ResetRequired message
 * while the VM runs; no Task, since nothing is left to run that the service could report on except
 * the next start, which the volume's Status shows (StandbyOffline until a start attaches it).
 * DELETE removes only a volume this service created (any other disk of the VM is no volume here,
 * 404) and answers 204, or 200 with ResetRequired while the running guest still has the disk.
 *
 * Exactly once: a POST retried with the same Idempotency-Key / X-Request-Id gets the first answer
 * (core/idempotency.ts, wired in app.ts); the backend keeps that request's retryToken with the volume,
 * so a retry the answer cache has forgotten (an agent restart) is answered with the volume the first
 * attempt made (201 again, Idempotent-Replayed), or completes it (KubeVirt: a DataVolume made but not
 * yet in the VM spec); a POST whose Name an existing volume has is 409 ResourceAlreadyExists, so a
 * retry that carries neither header but names its volume cannot make a second.
 */
import type { MachineSnapshot, VolumeInfo } from '../../backend/types.js';
import { MAX_BMC_VOLUMES, MAX_VOLUME_BYTES } from '../../backend/validate.js';
import { RedfishError, renderMessage } from '../core/errors.js';
import { collection, sendResource } from '../core/odata.js';
import type { OperationHandlers, RedfishContext } from '../core/types.js';
import { SYSTEM, SYSTEM_ID, backend, link, requireId } from '../core/resource.js';

const STORAGE_ID = '1';
export const VOLUMES = `${SYSTEM}/Storage/${STORAGE_ID}/Volumes`;
const DRIVES = `${SYSTEM}/Storage/${STORAGE_ID}/Drives`;
const APPLY_TIMES = ['OnReset'] as const;
const OPERATION_APPLY_TIME = '@Redfish.OperationApplyTime';

export const volumePath = (id: string): string => `${VOLUMES}/${encodeURIComponent(id)}`;

/** `@Redfish.OperationApplyTimeSupport` (Settings_v1 OperationApplyTimeSupport): creates and deletes apply at the next start. */
export const applyTimeSupport = (): Record<string, unknown> => ({
  '@odata.type': '#Settings.v1_4_0.OperationApplyTimeSupport',
  SupportedValues: [...APPLY_TIMES],
});

const running = (snap: MachineSnapshot): boolean => snap.power === 'On' || snap.power === 'Paused';

/** The Volume's Status: Starting while the storage is made, StandbyOffline until a start attaches it, Enabled once the guest has it. */
function volumeStatus(v: VolumeInfo): Record<string, unknown> {
  if (v.state === 'error') return { State: 'Enabled', Health: 'Critical' };
  if (v.state === 'provisioning') return { State: 'Starting', Health: 'OK' };
  return { State: v.attached ? 'Enabled' : 'StandbyOffline', Health: 'OK' };
}

function describe(v: VolumeInfo): string {
  const when = v.attached ? 'attached to the running guest' : 'attached at the next start of the VM';
  const state =
    v.state === 'error' ? `provisioning failed: ${v.error ?? 'unknown error'}` : v.state === 'provisioning' ? 'storage being provisioned' : v.state === 'waiting' ? 'storage bound when the VM starts' : 'storage ready';
  return `Blank virtual disk ${v.id} created through this service (${v.backing}); ${state}; ${when}`;
}

export function volumeBody(v: VolumeInfo): Record<string, unknown> {
  return {
    '@odata.type': '#Volume.v1_10_2.Volume',
    '@odata.id': volumePath(v.id),
    Id: v.id,
    Name: v.name,
    Description: describe(v),
    CapacityBytes: v.capacityBytes,
    RAIDType: 'None',
    Status: volumeStatus(v),
    Links: { Drives: [link(`${DRIVES}/${encodeURIComponent(v.id)}`)], 'Drives@odata.count': 1 },
    '@Redfish.OperationApplyTimeSupport': applyTimeSupport(),
  };
}

function volumesOf(ctx: RedfishContext): Promise<VolumeInfo[]> {
  const m = ctx.state.deps.machine;
  return m.listVolumes ? backend(m.listVolumes()) : Promise.resolve([]);
}

function checkPath(ctx: RedfishContext): void {
  requireId(ctx, 'ComputerSystemId', SYSTEM_ID, 'ComputerSystem');
  requireId(ctx, 'StorageId', STORAGE_ID, 'Storage');
}

/** Volume properties a create may not set here (read-only, or what a VM's disk does not have). */
const NOT_SETTABLE = new Set([
  'Id', 'Status', 'Links', 'Actions', 'Oem', 'Description', 'DisplayName', 'Encrypted', 'EncryptionTypes', 'Identifiers', 'BlockSizeBytes',
  'Operations', 'OptimumIOSizeBytes', 'VolumeType', 'VolumeUsage', 'ReadCachePolicy', 'WriteCachePolicy', 'StripSizeBytes', 'Capacity',
  'CapacitySources', 'ProvisioningPolicy', 'InitializeMethod', 'IOPerfModeEnabled', 'Compressed', 'Deduplicated', 'LogicalUnitNumber', 'MediaSpanCount',
]);

interface CreateBody {
  capacityBytes: number;
  name?: string;
}

/** Check a create body (Volume schema): CapacityBytes required, Name optional, RAIDType None or absent, apply time OnReset or absent. */
function parseCreate(raw: unknown): CreateBody {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new RedfishError(400, 'MalformedJSON');
  const body = raw as Record<string, unknown>;
  for (const key of Object.keys(body)) {
    if (['CapacityBytes', 'Name', 'RAIDType', OPERATION_APPLY_TIME].includes(key) || key.startsWith('@odata.')) continue;
    if (key === 'Links') {
      throw new RedfishError(400, 'PropertyNotWritable', ['Links'], {
        property: '#/Links',
        detail: 'A volume here is a new blank virtual disk, not one made of existing drives: leave Links out.',
      });
    }
    if (NOT_SETTABLE.has(key)) throw new RedfishError(400, 'PropertyNotWritable', [key], { property: `#/${key}` });
    throw new RedfishError(400, 'PropertyUnknown', [key], { property: `#/${key}` });
  }
  const when = body[OPERATION_APPLY_TIME];
  if (when !== undefined && when !== 'OnReset') {
    throw new RedfishError(400, 'PropertyValueNotInList', [String(typeof when === 'string' ? when : JSON.stringify(when)), OPERATION_APPLY_TIME], {
      property: `#/${OPERATION_APPLY_TIME}`,
      detail: 'A new disk reaches the guest when the VM next starts: OnReset is the only apply time.',
    });
  }
  const raid = body.RAIDType;
  if (raid !== undefined && raid !== null) {
    if (typeof raid !== 'string') throw new RedfishError(400, 'PropertyValueTypeError', [JSON.stringify(raid), 'RAIDType'], { property: '#/RAIDType' });
    if (raid !== 'None') {
      throw new RedfishError(400, 'PropertyValueNotInList', [raid, 'RAIDType'], { property: '#/RAIDType', detail: 'A VM disk has no RAID: RAIDType None (or none at all).' });
    }
  }
  const cap = body.CapacityBytes;
  if (cap === undefined || cap === null) throw new RedfishError(400, 'PropertyMissing', ['CapacityBytes'], { property: '#/CapacityBytes' });
  if (typeof cap !== 'number' || !Number.isInteger(cap)) {
    throw new RedfishError(400, 'PropertyValueTypeError', [JSON.stringify(cap), 'CapacityBytes'], { property: '#/CapacityBytes', detail: 'CapacityBytes is a whole number of bytes.' });
  }
  if (cap <= 0 || cap > MAX_VOLUME_BYTES) {
    throw new RedfishError(400, 'PropertyValueOutOfRange', [String(cap), 'CapacityBytes'], {
      property: '#/CapacityBytes',
      detail: `CapacityBytes must be from 1 to ${MAX_VOLUME_BYTES} (64 TiB); it is rounded up to a whole MiB, as CDI sizes a disk image.`,
    });
  }
  const name = body.Name;
  if (name !== undefined && typeof name !== 'string') throw new RedfishError(400, 'PropertyValueTypeError', [JSON.stringify(name), 'Name'], { property: '#/Name' });
  if (typeof name === 'string' && !/^[\x20-\x7e]{1,63}$/.test(name)) {
    throw new RedfishError(400, 'PropertyValueFormatError', [name.slice(0, 80), 'Name'], { property: '#/Name', detail: 'Name is 1 to 63 printable ASCII characters.' });
  }
  return { capacityBytes: cap, ...(typeof name === 'string' ? { name } : {}) };
}

const resetRequired = (): Record<string, unknown> => renderMessage({ messageId: 'ResetRequired', args: [`${SYSTEM}/Actions/ComputerSystem.Reset`, 'ForceRestart'] });

export const handlers: OperationHandlers = {
  listSystemStorageVolumes: async (ctx) => {
    checkPath(ctx);
    const vols = await volumesOf(ctx);
    const body = collection(ctx, VOLUMES, 'VolumeCollection', 'Volume Collection', vols.map((v) => volumePath(v.id)));
    if (ctx.state.deps.machine.createVolume) {
      body.Description = `Blank virtual disks created through this service (at most ${MAX_BMC_VOLUMES}); POST CapacityBytes (and a Name) to add one, applied at the next start`;
      body['@Redfish.OperationApplyTimeSupport'] = applyTimeSupport();
    }
    sendResource(ctx, body, { etag: true });
  },

  getSystemStorageVolume: async (ctx) => {
    checkPath(ctx);
    const id = ctx.params.VolumeId ?? '';
    const v = (await volumesOf(ctx)).find((x) => x.id === id);
    if (!v) throw new RedfishError(404, 'ResourceNotFound', ['Volume', id]);
    sendResource(ctx, volumeBody(v), { etag: true });
  },

  createSystemStorageVolume: async (ctx) => {
    checkPath(ctx);
    const machine = ctx.state.deps.machine;
    if (!machine.createVolume) throw new RedfishError(405, 'OperationNotAllowed', [], { detail: 'This backend cannot create volumes.' });
    const req = parseCreate((ctx.request as { body?: unknown }).body);
    const token = ctx.state.retryToken;
    const existing = await volumesOf(ctx);
    // a retry whose first answer the answer cache no longer has (e.g. the agent restarted): that answer again
    const made = token !== undefined ? existing.find((v) => v.requestId === token) : undefined;
    if (made) ctx.set('Idempotent-Replayed', 'true');
    if (!made && req.name !== undefined && existing.some((v) => v.name === req.name)) {
      throw new RedfishError(409, 'ResourceAlreadyExists', ['Volume', 'Name', req.name], { property: '#/Name' });
    }
    if (!made && existing.length >= MAX_BMC_VOLUMES) {
      throw new RedfishError(400, 'CreateLimitReachedForResource', [], { detail: `At most ${MAX_BMC_VOLUMES} volumes are created through this service per VM; delete one first.` });
    }
    const created = made ?? (await backend(machine.createVolume({ ...req, ...(token !== undefined ? { requestId: token } : {}) })));
    if (!made) ctx.state.logger.info({ user: ctx.state.user?.username, volume: created.id, capacityBytes: created.capacityBytes, backing: created.backing }, 'volume created');
    const out = volumeBody(created);
    const snap = await backend(machine.snapshot());
    if (running(snap)) out['@Message.ExtendedInfo'] = [resetRequired()];
    ctx.set('Location', volumePath(created.id));
    sendResource(ctx, out, { etag: true, status: 201 });
  },

  deleteSystemStorageVolume: async (ctx) => {
    checkPath(ctx);
    const machine = ctx.state.deps.machine;
    const id = ctx.params.VolumeId ?? '';
    const v = (await volumesOf(ctx)).find((x) => x.id === id);
    if (!v || !machine.deleteVolume) throw new RedfishError(404, 'ResourceNotFound', ['Volume', id]);
    await backend(machine.deleteVolume(id));
    ctx.state.logger.info({ user: ctx.state.user?.username, volume: id }, 'volume deleted');
    const snap = await backend(machine.snapshot());
    if (running(snap) && v.attached) {
      sendResource(ctx, { '@Message.ExtendedInfo': [renderMessage({ messageId: 'Success' }), resetRequired()] });
      return;
    }
    ctx.status = 204;
  },
};
