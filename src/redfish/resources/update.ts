/**
 * UpdateService with a FirmwareInventory of what really runs: the BMC (this agent, its package
 * version) and the VM's firmware (UEFI/OVMF or BIOS/SeaBIOS, as the VM declares it). Nothing can be
 * updated through Redfish: the agent is updated by replacing its container image, the VM firmware
 * comes with KubeVirt's virt-launcher image. So the service is not enabled, has no SimpleUpdate or
 * MultipartHttpPushUri, and every inventory item says Updateable false.
 */
import type { SystemInfo } from '../../backend/types.js';
import { RedfishError } from '../core/errors.js';
import { collection, sendResource } from '../core/odata.js';
import type { OperationHandlers } from '../core/types.js';
import { FIRMWARE_VERSION } from './managers.js';
import { MANAGER, SYSTEM, backend, link, status, type Annotated, type Schemas } from '../core/resource.js';

export const UPDATE_SERVICE = '/redfish/v1/UpdateService';
export const FIRMWARE_INVENTORY = `${UPDATE_SERVICE}/FirmwareInventory`;
const BMC_ID = 'BMC';
const FIRMWARE_ID = 'SystemFirmware';

function bmcItem(): Record<string, unknown> {
  const body: Annotated<Schemas['SoftwareInventory_v1_13_0_SoftwareInventory']> = {
    '@odata.type': '#SoftwareInventory.v1_13_0.SoftwareInventory',
    '@odata.id': `${FIRMWARE_INVENTORY}/${BMC_ID}`,
    Id: BMC_ID,
    Name: 'KubeVirtBMC agent',
    Description: 'The virtual BMC (virtbmc); updated by replacing its container image, not through Redfish',
    Version: FIRMWARE_VERSION,
    Manufacturer: 'KubeVirtBMC',
    Updateable: false,
    WriteProtected: true,
    Status: status(),
    RelatedItem: [link(MANAGER)],
  };
  return body;
}

function firmwareItem(info: SystemInfo): Record<string, unknown> {
  const uefi = (info.firmware?.type ?? 'UEFI') === 'UEFI';
  const body: Annotated<Schemas['SoftwareInventory_v1_13_0_SoftwareInventory']> = {
    '@odata.type': '#SoftwareInventory.v1_13_0.SoftwareInventory',
    '@odata.id': `${FIRMWARE_INVENTORY}/${FIRMWARE_ID}`,
    Id: FIRMWARE_ID,
    Name: uefi ? 'UEFI firmware (OVMF)' : 'BIOS firmware (SeaBIOS)',
    Description: 'The VM firmware; it ships with the KubeVirt virt-launcher image and cannot be updated through Redfish',
    // the firmware comes with KubeVirt (TianoCore OVMF / SeaBIOS builds in virt-launcher)
    Manufacturer: 'KubeVirt',
    Updateable: false,
    WriteProtected: true,
    Status: status(),
    RelatedItem: [link(SYSTEM)],
  };
  // KubeVirt does not report the firmware build: null (unknown)
  body.Version = info.firmware?.version ?? info.biosVersion ?? null;
  return body;
}

export const handlers: OperationHandlers = {
  getUpdateService: async (ctx) => {
    const body: Annotated<Schemas['UpdateService_v1_17_0_UpdateService']> = {
      '@odata.type': '#UpdateService.v1_17_0.UpdateService',
      '@odata.id': UPDATE_SERVICE,
      Id: 'UpdateService',
      Name: 'Update Service',
      Description: 'Inventory only: neither the BMC nor the VM firmware can be updated through Redfish',
      ServiceEnabled: false,
      Status: { State: 'Disabled', Health: 'OK' },
      FirmwareInventory: link(FIRMWARE_INVENTORY),
    };
    sendResource(ctx, body, { etag: true });
  },

  listFirmwareInventory: async (ctx) => {
    sendResource(
      ctx,
      collection(ctx, FIRMWARE_INVENTORY, 'SoftwareInventoryCollection', 'Firmware Inventory Collection', [
        `${FIRMWARE_INVENTORY}/${BMC_ID}`,
        `${FIRMWARE_INVENTORY}/${FIRMWARE_ID}`,
      ]),
    );
  },

  getFirmwareInventory: async (ctx) => {
    const id = ctx.params.SoftwareInventoryId ?? '';
    if (id === BMC_ID) return sendResource(ctx, bmcItem(), { etag: true });
    if (id === FIRMWARE_ID) {
      const info = await backend(ctx.state.deps.machine.getSystemInfo());
      return sendResource(ctx, firmwareItem(info), { etag: true });
    }
    throw new RedfishError(404, 'ResourceNotFound', ['SoftwareInventory', id]);
  },
};
