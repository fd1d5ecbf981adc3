/**
 * Virtual media on KubeVirt: the VM's CD-ROM disk is the `cd0` slot. Insert imports the image
 * into a CDI DataVolume and hot-plugs it into that disk (addvolume with the disk's name, which
 * KubeVirt's DeclarativeHotplugVolumes feature treats as "insert into the existing drive"); eject
 * removes the volume and deletes the DataVolume. The slot state is derived from the cluster
 * (DataVolume phase/progress, VM volumes), so it survives an agent restart.
 *
 * KubeVirt cannot hot-plug USB media, so there is no `usb0` slot; a VM without a CD-ROM disk has
 * no slot at all.
 *
 * Sizing: the image's Content-Length (from a HEAD request to the URL the user gave, the only
 * outbound request the agent makes itself; redirects are not followed) plus 10 %, rounded up to
 * whole GiB, at least 1 GiB: room for filesystem overhead on Filesystem-mode PVCs.
 *
 * TLS of the image server (MediaTlsOptions): a named CA ConfigMap becomes the DataVolume's
 * `source.http.certConfigMap` (CDI trusts it for the import); the HEAD request trusts the CA file
 * (the same bundle, mounted into the agent) or, with insecureSkipVerify, verifies nothing. CDI has
 * no per-DataVolume switch to skip verification of an http source, so insecureSkipVerify only
 * affects the agent's own HEAD.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import tls from 'node:tls';
import { BackendError, type MediaSlot } from '../types.js';
import { errText } from '../../kube/client.js';
import type { DataVolume, Disk, VirtualMachine, Volume } from './types.js';

export const IMAGE_ANNOTATION = 'bmc.kubevirt.io/image';
export const VM_LABEL = 'bmc.kubevirt.io/vm';
export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MEDIA_MARGIN = 0.1;
const GiB = 2 ** 30;

/** How the agent and CDI treat the TLS certificate of an https image URL. */
export interface MediaTlsOptions {
  /** the agent's HEAD request does not verify the server certificate (CDI's import still does) */
  insecureSkipVerify?: boolean;
  /** ConfigMap in the VM's namespace with the CA bundle CDI trusts for the import (certConfigMap) */
  caConfigMap?: string;
  /** PEM file with the CA bundle the agent's HEAD request trusts, besides the system roots */
  caFile?: string;
}

/**
 * The agent's media TLS settings: each value given on the command line (`flags`) wins over its
 * environment variable, which virtbmc-controller sets from the VirtualMachineBMC's
 * spec.redfish.virtualMedia.tls. A malformed VIRTBMC_MEDIA_INSECURE_SKIP_VERIFY throws.
 */
export function resolveMediaTls(flags: MediaTlsOptions, env: Record<string, string | undefined>): MediaTlsOptions {
  let insecure = flags.insecureSkipVerify === true;
  const raw = env.VIRTBMC_MEDIA_INSECURE_SKIP_VERIFY;
  const v = raw?.trim().toLowerCase();
  if (flags.insecureSkipVerify === undefined && v) {
    if (v === 'true' || v === '1') insecure = true;
    else if (v !== 'false' && v !== '0') throw new Error(`VIRTBMC_MEDIA_INSECURE_SKIP_VERIFY must be true or false, got "${raw}"`);
  }
  const caConfigMap = flags.caConfigMap || env.VIRTBMC_MEDIA_CA_CONFIGMAP || undefined;
  const caFile = flags.caFile || env.VIRTBMC_MEDIA_CA_FILE || undefined;
  return { ...(insecure ? { insecureSkipVerify: true } : {}), ...(caConfigMap ? { caConfigMap } : {}), ...(caFile ? { caFile } : {}) };
}

/** PVC size for an image of `bytes`: +10 %, rounded up to whole GiB, at least 1 GiB. */
export function mediaSize(bytes: number): string {
  const gib = Math.max(1, Math.ceil((bytes * (1 + MEDIA_MARGIN)) / GiB));
  return `${gib}Gi`;
}

/** Name of the DataVolume backing the VM's cd0 slot (a DNS label, at most 63 characters). */
export function mediaDataVolumeName(vmName: string): string {
  const suffix = '-vmedia-cd0';
  const name = vmName + suffix;
  if (name.length <= 63) return name;
  const hash = createHash('sha256').update(vmName).digest('hex').slice(0, 8);
  return `${vmName.slice(0, 63 - suffix.length - 9).replace(/[-.]+$/, '')}-${hash}${suffix}`;
}

/** The CD-ROM disk cd0 maps to: the first one that is empty or holds our DataVolume, else the first one. */
export function pickCdrom(vm: VirtualMachine | undefined, dvName: string): Disk | undefined {
  const disks = (vm?.spec?.template?.spec?.domain?.devices?.disks ?? []).filter((d) => d.cdrom !== undefined && d.cdrom !== null);
  const volumes = vm?.spec?.template?.spec?.volumes ?? [];
  const free = disks.find((d) => {
    const v = volumes.find((x) => x.name === d.name);
    return v === undefined || v.dataVolume?.name === dvName;
  });
  return free ?? disks[0];
}

export function volumeFor(vm: VirtualMachine | undefined, name: string): Volume | undefined {
  return (vm?.spec?.template?.spec?.volumes ?? []).find((v) => v.name === name);
}

export function parseProgress(p: string | undefined): number | undefined {
  if (!p) return undefined;
  const n = Number.parseFloat(p.replace('%', ''));
  return Number.isFinite(n) ? Math.max(0, Math.min(100, Math.floor(n))) : undefined;
}

/** The import failed (CDI reports Failed, or a Running=False condition with an error reason). */
export function dataVolumeError(dv: DataVolume): string | undefined {
  const conds = dv.status?.conditions ?? [];
  if (dv.status?.phase === 'Failed') {
    const c = conds.find((x) => x.message);
    return c?.message ?? 'the DataVolume import failed';
  }
  if (dv.status?.phase === 'Succeeded') return undefined;
  const running = conds.find((c) => c.type === 'Running');
  if (running && running.status === 'False' && /error|fail|crash|backoff/i.test(running.reason ?? '')) {
    return running.message ?? `import ${running.reason}`;
  }
  return undefined;
}

/**
 * cd0 as seen in the cluster. `localError` is an error of our own last call (e.g. addvolume
 * refused) that the cluster objects do not show.
 */
export function deriveSlot(
  vm: VirtualMachine | undefined,
  dv: DataVolume | undefined,
  dvName: string,
  localError: string | undefined,
): MediaSlot | undefined {
  const disk = pickCdrom(vm, dvName);
  if (!disk) return undefined;
  const base: MediaSlot = { id: 'cd0', kind: 'cd', state: 'empty', writeProtected: true };
  const vol = volumeFor(vm, disk.name);
  const ours = vol?.dataVolume?.name === dvName;
  if (dv?.metadata?.deletionTimestamp) dv = undefined; // being deleted: as good as gone
  if (dv) {
    const image = dv.metadata?.annotations?.[IMAGE_ANNOTATION] ?? dv.spec?.source?.http?.url;
    const withImage = image ? { ...base, image } : base;
    const err = localError ?? dataVolumeError(dv);
    if (err) return { ...withImage, state: 'error', error: err };
    if (dv.status?.phase === 'Succeeded' && ours) return { ...withImage, state: 'inserted', progress: 100 };
    const progress = dv.status?.phase === 'Succeeded' ? 100 : parseProgress(dv.status?.progress);
    return { ...withImage, state: 'inserting', ...(progress !== undefined ? { progress } : {}) };
  }
  if (ours) return { ...base, state: 'error', error: `DataVolume ${dvName} is missing; eject to clear` };
  if (vol) return { ...base, state: 'inserted' }; // something the BMC did not put there
  if (localError) return { ...base, state: 'error', error: localError };
  return base;
}

export interface MediaManifestOptions {
  namespace: string;
  vm: VirtualMachine;
  dvName: string;
  url: string;
  size: string;
  storageClassName?: string;
  volumeMode?: 'Filesystem' | 'Block';
  /** CDI certConfigMap: ConfigMap with the CA that signs the image server's certificate */
  certConfigMap?: string;
}

export function dataVolumeManifest(o: MediaManifestOptions): DataVolume & { apiVersion: string; kind: string } {
  const vmName = o.vm.metadata?.name ?? '';
  const labels: Record<string, string> = { [MANAGED_BY_LABEL]: 'virtbmc' };
  if (vmName.length <= 63) labels[VM_LABEL] = vmName;
  return {
    apiVersion: 'cdi.kubevirt.io/v1beta1',
    kind: 'DataVolume',
    metadata: {
      name: o.dvName,
      namespace: o.namespace,
      labels,
      annotations: {
        [IMAGE_ANNOTATION]: o.url,
        // import right away even with WaitForFirstConsumer storage: the VM consumes it only once attached
        'cdi.kubevirt.io/storage.bind.immediate.requested': 'true',
      },
      // a plain (non-controller) owner reference: deleting the VM cleans the DataVolume up, and
      // KubeVirt's VM controller does not adopt it as one of its dataVolumeTemplates
      ...(o.vm.metadata?.uid
        ? { ownerReferences: [{ apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachine', name: vmName, uid: o.vm.metadata.uid }] }
        : {}),
    },
    spec: {
      source: { http: { url: o.url, ...(o.certConfigMap ? { certConfigMap: o.certConfigMap } : {}) } },
      storage: {
        resources: { requests: { storage: o.size } },
        ...(o.storageClassName ? { storageClassName: o.storageClassName } : {}),
        ...(o.volumeMode ? { volumeMode: o.volumeMode } : {}),
      },
    },
  };
}

/** addvolume body: plug the DataVolume into the existing CD-ROM disk (same name). */
export function addVolumeBody(disk: Disk, dvName: string): Record<string, unknown> {
  return {
    name: disk.name,
    disk: { name: disk.name, cdrom: disk.cdrom ?? {} },
    volumeSource: { dataVolume: { name: dvName, hotpluggable: true } },
  };
}

export interface ProbeOptions {
  /** default 10000 */
  timeoutMs?: number;
  tls?: Pick<MediaTlsOptions, 'insecureSkipVerify' | 'caFile'>;
}

/**
 * HEAD the image URL for its size. Only the URL itself is contacted: redirects are reported, not
 * followed. Any failure is the caller's input problem → InvalidArgument, except an unreadable CA
 * file, which is the agent's configuration problem → Unavailable.
 */
export async function probeImageSize(url: URL, opts: ProbeOptions = {}): Promise<number> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const tlsOpts: https.RequestOptions = {};
  if (url.protocol === 'https:') {
    if (opts.tls?.insecureSkipVerify) tlsOpts.rejectUnauthorized = false;
    else if (opts.tls?.caFile) {
      let pem: string;
      try {
        // read per insert: a mounted ConfigMap may have been updated
        pem = await readFile(opts.tls.caFile, 'utf8');
      } catch (e) {
        throw new BackendError('Unavailable', `cannot read the media CA file ${opts.tls.caFile}: ${errText(e)}`, { cause: e });
      }
      tlsOpts.ca = [...tls.rootCertificates, pem];
    }
  }
  let res: { status: number; headers: http.IncomingHttpHeaders };
  try {
    res = await new Promise((resolve, reject) => {
      const mod = url.protocol === 'https:' ? https : http;
      // agent: false: one connection for this request, closed afterwards (nothing pooled)
      const req = mod.request(url, { method: 'HEAD', agent: false, ...tlsOpts }, (r) => {
        r.resume();
        resolve({ status: r.statusCode ?? 0, headers: r.headers });
      });
      req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      req.on('error', reject);
      req.end();
    });
  } catch (e) {
    throw new BackendError('InvalidArgument', `image URL ${url.href} is not reachable: ${errText(e)}`, { cause: e });
  }
  if (res.status >= 300 && res.status < 400) {
    const loc = res.headers.location;
    throw new BackendError(
      'InvalidArgument',
      `image URL ${url.href} redirects${loc ? ` to ${loc}` : ''}; give the final URL`,
    );
  }
  if (res.status < 200 || res.status >= 300) {
    throw new BackendError('InvalidArgument', `image URL ${url.href} answered HEAD with HTTP ${res.status}`);
  }
  const raw = res.headers['content-length'];
  const len = Number(raw);
  if (raw === undefined || !Number.isFinite(len) || len <= 0) {
    throw new BackendError('InvalidArgument', `image URL ${url.href} did not report the image size (Content-Length)`);
  }
  return len;
}
