/**
 * Writes to the VM for the inventory the BMC serves: the asset tag (an annotation) and UEFI Secure
 * Boot (the template's firmware, applied when the next VMI starts). Pure patch builders: the
 * machine runs them with its re-read/retry loop (machine.ts).
 */
import { pointerSegment, type JsonPatchOp } from '../../kube/client.js';
import { BackendError } from '../types.js';
import { ASSET_TAG_ANNOTATION } from './identity.js';
import type { VirtualMachine } from './types.js';

const DOMAIN = '/spec/template/spec/domain';
/** Longest asset tag accepted (SMBIOS strings and Redfish clients cope with far less in practice). */
export const MAX_ASSET_TAG = 64;

/** A JSON patch setting (or, for '', removing) the asset tag annotation; [] when nothing changes. */
export function assetTagPatch(vm: VirtualMachine, tag: string): JsonPatchOp[] {
  if (tag.length > MAX_ASSET_TAG) throw new BackendError('InvalidArgument', `the asset tag is longer than ${MAX_ASSET_TAG} characters`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(tag)) throw new BackendError('InvalidArgument', 'the asset tag contains control characters');
  const annotations = vm.metadata?.annotations;
  const current = annotations?.[ASSET_TAG_ANNOTATION];
  if ((current ?? '') === tag) return [];
  const ops: JsonPatchOp[] = [{ op: 'test', path: '/metadata/resourceVersion', value: vm.metadata?.resourceVersion ?? '' }];
  const path = `/metadata/annotations/${pointerSegment(ASSET_TAG_ANNOTATION)}`;
  if (tag === '') ops.push({ op: 'remove', path });
  else if (annotations) ops.push({ op: 'add', path, value: tag });
  else ops.push({ op: 'add', path: '/metadata/annotations', value: { [ASSET_TAG_ANNOTATION]: tag } });
  return ops;
}

/**
 * A JSON patch turning Secure Boot on or off in the VM template; [] when it already is. Secure Boot
 * needs UEFI (Conflict with BIOS firmware) and SMM: KubeVirt refuses a VMI with Secure Boot and
 * SMM off ("SecureBoot requires SMM", kubevirt/kubevirt
 * pkg/virt-api/webhooks/validating-webhook/admitters/vmi-create-admitter.go validateDomainSpec),
 * so enabling it also enables features.smm when the VM has it off or unset. Disabling leaves SMM
 * as it is.
 */
export function secureBootPatch(vm: VirtualMachine, enabled: boolean): JsonPatchOp[] {
  const domain = vm.spec?.template?.spec?.domain ?? {};
  const fw = domain.firmware;
  const efi = fw?.bootloader?.efi;
  if (efi == null) {
    if (!enabled) return [];
    throw new BackendError('Conflict', 'Secure Boot needs UEFI firmware; the VM boots BIOS (set BootSourceOverrideMode to UEFI first)');
  }
  const ops: JsonPatchOp[] = [{ op: 'test', path: '/metadata/resourceVersion', value: vm.metadata?.resourceVersion ?? '' }];
  const isOn = efi.secureBoot !== false;
  if (isOn !== enabled) ops.push({ op: 'add', path: `${DOMAIN}/firmware/bootloader/efi`, value: { ...efi, secureBoot: enabled } });
  const smm = domain.features?.smm;
  const smmOn = smm != null && smm.enabled !== false;
  if (enabled && !smmOn) {
    if (domain.features) ops.push({ op: 'add', path: `${DOMAIN}/features/smm`, value: { ...(smm ?? {}), enabled: true } });
    else ops.push({ op: 'add', path: `${DOMAIN}/features`, value: { smm: { enabled: true } } });
  }
  return ops.length > 1 ? ops : [];
}
