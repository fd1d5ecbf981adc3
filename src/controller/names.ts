/** Names of the objects the controller creates for a VirtualMachineBMC, and the work queue's `ns/name` keys. */
import { createHash } from 'node:crypto';
import type { KubeObject } from '../kube/types.js';

export const MAX_NAME = 63;
const SUFFIX = '-virtbmc';

export function shortHash(s: string, len = 8): string {
  return createHash('sha256').update(s).digest('hex').slice(0, len);
}

/**
 * `<vmbmc-name>-virtbmc`, usable as a Service name (DNS-1035 label: lower-case alphanumerics and
 * '-', starts with a letter, at most 63 characters). Names that had to be shortened or rewritten get
 * a hash of the original, so two VirtualMachineBMCs never map to the same objects.
 */
export function agentObjectName(vmbmcName: string): string {
  const plain = `${vmbmcName}${SUFFIX}`;
  if (/^[a-z]([-a-z0-9]*[a-z0-9])?$/.test(plain) && plain.length <= MAX_NAME) return plain;
  let base = vmbmcName.toLowerCase().replace(/[^a-z0-9-]/g, '-');
  if (!/^[a-z]/.test(base)) base = `b-${base}`;
  const hash = shortHash(vmbmcName);
  const room = MAX_NAME - SUFFIX.length - hash.length - 1;
  base = base.slice(0, room).replace(/-+$/, '');
  return `${base}-${hash}${SUFFIX}`;
}

/** `ns/name` of an object (a work queue key). */
export function keyOf(obj: KubeObject): string {
  return `${obj.metadata?.namespace ?? ''}/${obj.metadata?.name ?? ''}`;
}

/** `ns/name` → [ns, name], split at the first '/' (a namespace holds none). */
export function splitKey(key: string): [string, string] {
  const i = key.indexOf('/');
  return [key.slice(0, i), key.slice(i + 1)];
}
