/** Input checks every backend applies the same way, so protocols see the same errors everywhere. */
import { BackendError, type BootOverride, type Capabilities, type CreateVolumeRequest } from './types.js';

const ENABLED = new Set(['disabled', 'once', 'continuous']);

export function validateBootChange(change: Partial<BootOverride>, caps: Capabilities): void {
  if (change.target !== undefined && !caps.bootTargets.includes(change.target)) {
    throw new BackendError('Unsupported', `boot target ${String(change.target)} is not supported`);
  }
  if (change.enabled !== undefined && !ENABLED.has(change.enabled)) {
    throw new BackendError('InvalidArgument', `boot override enabled must be disabled, once or continuous`);
  }
  if (change.mode !== undefined && !caps.bootModes.includes(change.mode)) {
    throw new BackendError('Unsupported', `boot mode ${String(change.mode)} is not supported`);
  }
}

/**
 * Virtual media images must be absolute http(s) URLs with a host and a path, and no credentials:
 * a URL is logged, shown to every reader and copied into backend objects, so a password in it
 * would leak everywhere. Error messages never repeat the input (it may hold a password).
 */
export function validateImageUrl(image: string): URL {
  let url: URL;
  try {
    url = new URL(image);
  } catch {
    throw new BackendError('InvalidArgument', 'the image is not a valid URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new BackendError('InvalidArgument', `image URL scheme ${url.protocol} is not supported; use http or https`);
  }
  if (!url.hostname) throw new BackendError('InvalidArgument', 'image URL has no host');
  if (url.username || url.password) {
    throw new BackendError('InvalidArgument', 'image URLs with embedded credentials are not supported');
  }
  if (url.pathname === '/' || url.pathname === '') {
    throw new BackendError('InvalidArgument', 'image URL names no file');
  }
  return url;
}

/** The image as it may be shown back in an error: any user:password@ part masked. */
export function maskImageCredentials(image: string): string {
  return image.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/?#@]*@/i, '$1***@');
}

export { MAX_BMC_VOLUMES } from '../kube/names.js';

/** 1 MiB: CDI aligns disk images to it (containerized-data-importer pkg/util/util.go DefaultAlignBlockSize). */
export const VOLUME_ALIGN_BYTES = 1024 * 1024;
/** The largest size a volume request may ask for: 64 TiB, far below 2^53 so every size is exact. */
export const MAX_VOLUME_BYTES = 64 * 2 ** 40;
const VOLUME_NAME = /^[\x20-\x7e]{1,63}$/;

/**
 * A volume request as every backend takes it: a positive integer size up to MAX_VOLUME_BYTES,
 * rounded up to a whole MiB the way CDI sizes a blank image (GetRequiredSpace: RoundUp(requested,
 * DefaultAlignBlockSize); its webhook refuses less than 1 MiB, which the rounding never asks for);
 * a name of 1 to 63 printable characters. Returns the rounded size.
 */
export function validateVolumeRequest(req: CreateVolumeRequest): number {
  const n = req.capacityBytes;
  if (!Number.isSafeInteger(n) || n <= 0 || n > MAX_VOLUME_BYTES) {
    throw new BackendError('InvalidArgument', `the capacity must be a whole number of bytes from 1 to ${MAX_VOLUME_BYTES}`);
  }
  if (req.name !== undefined && !VOLUME_NAME.test(req.name)) throw new BackendError('InvalidArgument', 'the volume name must be 1 to 63 printable characters');
  // kept as an annotation value: a short token (Redfish passes a hex digest)
  if (req.requestId !== undefined && !/^[A-Za-z0-9._:-]{1,128}$/.test(req.requestId)) throw new BackendError('InvalidArgument', 'the request id must be 1 to 128 letters, digits or ._:-');
  return Math.ceil(n / VOLUME_ALIGN_BYTES) * VOLUME_ALIGN_BYTES;
}
