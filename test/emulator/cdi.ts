/**
 * CDI behaviour for DataVolumes: a PVC appears, the import runs ImportScheduled → ImportInProgress
 * (progress "0.00%" … "100.0%") → Succeeded. Nothing is ever downloaded; a source URL whose host is
 * "unreachable.invalid" fails to connect the way CDI reports it (Running=False, reason Error).
 */
import type { Clock } from './clock.js';
import { clone, deepEqual } from './patch.js';
import type { Store } from './store.js';
import type { KubeObject } from './types.js';
import { webhookDenied } from './hotplug.js';

type Obj = Record<string, unknown>;

function obj(v: unknown): Obj {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : {};
}

function now(): string {
  return new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export const UNREACHABLE_HOST = 'unreachable.invalid';

function sourceUrl(dv: KubeObject): { kind: string; url?: string } {
  const src = obj(obj(dv.spec).source);
  const kind = Object.keys(src)[0] ?? 'blank';
  const url = obj(src[kind]).url;
  return { kind, url: typeof url === 'string' ? url : undefined };
}

function hostOf(url: string | undefined): string | undefined {
  if (!url) return undefined;
  try {
    return new URL(url.replace(/^docker:\/\//, 'https://')).hostname;
  } catch {
    return undefined;
  }
}

function conditions(bound: boolean, ready: boolean, running: { status: string; reason: string; message?: string }): Obj[] {
  const t = now();
  return [
    { type: 'Bound', status: bound ? 'True' : 'False', reason: bound ? 'Bound' : 'Pending', message: bound ? 'PVC Bound' : 'PVC Pending', lastHeartbeatTime: t, lastTransitionTime: t },
    { type: 'Ready', status: ready ? 'True' : 'False', reason: ready ? '' : 'TransferRunning', lastHeartbeatTime: t, lastTransitionTime: t },
    { type: 'Running', status: running.status, reason: running.reason, ...(running.message ? { message: running.message } : {}), lastHeartbeatTime: t, lastTransitionTime: t },
  ];
}

/** CDI's DataVolume webhook (pkg/operator/resources/cluster/apiserver.go). */
const DV_WEBHOOK = 'datavolume-validate.cdi.kubevirt.io';
const SUFFIX: Record<string, number> = { '': 1, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60, m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18 };

/** A Kubernetes quantity ("1Gi", "1536Mi", "1e9", "500m") in base units; NaN when it is none (k8s.io/apimachinery resource.ParseQuantity). */
export function quantityValue(q: unknown): number {
  if (typeof q === 'number') return q;
  if (typeof q !== 'string') return NaN;
  const m = /^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?)$/.exec(q.trim());
  if (!m) return NaN;
  return Number(m[1]) * (m[2] ? 10 ** Number(m[2].slice(1)) : SUFFIX[m[3] ?? '']!);
}

interface Cause {
  type: string;
  message: string;
  field: string;
}

/**
 * What CDI's webhook requires of a new DataVolume (containerized-data-importer
 * pkg/apiserver/webhooks/datavolume-validate.go validateDataVolumeSpec, and util.go
 * validateNumberOfSources / validateBlankSource), the first failing rule only, as upstream returns:
 * a name of at most 253 characters; exactly one of spec.pvc and spec.storage; a storage request
 * above zero and of at least 1 MiB (missing only for a clone through the storage API, which the
 * emulator does not model: missing is refused); exactly one source (or a sourceRef); contentType
 * empty, kubevirt or archive, and not archive for a blank source.
 */
export function dataVolumeCauses(dv: KubeObject): Cause[] {
  const name = dv.metadata.name ?? '';
  if (name.length > 253) return [{ type: 'FieldValueInvalid', message: 'Name cannot be longer than 253 characters', field: '' }];
  const spec = obj(dv.spec);
  const field = 'spec';
  if (spec.pvc === undefined && spec.storage === undefined) return [{ type: 'FieldValueInvalid', message: 'Missing Data volume PVC', field: `${field}.PVC` }];
  if (spec.pvc !== undefined && spec.storage !== undefined) {
    return [{ type: 'FieldValueInvalid', message: 'Duplicate storage definition, both target storage and target pvc defined', field: `${field}.PVC.Storage` }];
  }
  const which = spec.pvc !== undefined ? 'PVC' : 'Storage';
  const requests = obj(obj(obj(spec.pvc ?? spec.storage).resources).requests);
  const sizeField = `${field}.${which}.resources.requests.size`;
  if (requests.storage === undefined) return [{ type: 'FieldValueInvalid', message: `${which} size is missing`, field: sizeField }];
  const size = quantityValue(requests.storage);
  if (!(size > 0)) return [{ type: 'FieldValueInvalid', message: `${which} size can't be equal or less than zero`, field: sizeField }];
  if (size < 2 ** 20) return [{ type: 'FieldValueInvalid', message: `${which} size should be at least 1MiB`, field: sizeField }];
  const source = spec.source;
  if ((source === undefined) === (spec.sourceRef === undefined)) {
    return [{ type: 'FieldValueInvalid', message: 'Data volume should have either Source or SourceRef, or be externally populated', field: `${field}.source` }];
  }
  if (source === undefined) return [];
  const sources = Object.values(obj(source)).filter((v) => v !== null && v !== undefined).length;
  if (sources === 0) return [{ type: 'FieldValueInvalid', message: 'Missing Data volume source', field: `${field}.source` }];
  if (sources > 1) return [{ type: 'FieldValueInvalid', message: 'Multiple Data volume sources', field: `${field}.source` }];
  const ct = spec.contentType;
  if (ct !== undefined && ct !== '' && ct !== 'kubevirt' && ct !== 'archive') {
    return [{ type: 'FieldValueInvalid', message: 'ContentType not one of: kubevirt, archive', field: `${field}.contentType` }];
  }
  if (obj(source).blank !== undefined && ct === 'archive') {
    return [{ type: 'FieldValueInvalid', message: 'SourceType cannot be blank and the contentType be archive', field: `${field}.contentType` }];
  }
  return [];
}

export function installCdi(store: Store, clock: Clock, importMs: number): void {
  const dvT = store.registry.mustByKind('cdi.kubevirt.io/v1beta1', 'DataVolume');
  const pvcT = store.registry.mustByKind('v1', 'PersistentVolumeClaim');

  // CDI's validating webhook on create, and its refusal to change a spec afterwards (datavolume-validate.go
  // Admit: "Cannot update DataVolume Spec"; upstream admits checkpoint-only updates of multi-stage VDDK/imageio
  // imports, sources the emulator does not model)
  store.addValidator(dvT, (dv, old) => {
    if (old) {
      if (!deepEqual(dv.spec, old.spec)) {
        throw webhookDenied(DV_WEBHOOK, [{ type: 'FieldValueDuplicate', message: 'Cannot update DataVolume Spec', field: 'DataVolume.Spec' }]);
      }
      return;
    }
    const causes = dataVolumeCauses(dv);
    if (causes.length) throw webhookDenied(DV_WEBHOOK, causes);
  });

  /** the status this controller last wrote, per DataVolume uid */
  const written = new Map<string, unknown>();

  /** Writes the import status; stops (false) when the DV is gone or someone else (a test) changed its status. */
  const setStatus = (ns: string, name: string, uid: string, status: Obj): boolean => {
    const dv = store.get(dvT, ns, name);
    if (!dv || dv.metadata.uid !== uid || dv.metadata.deletionTimestamp) return false;
    if (written.has(uid) && !deepEqual(dv.status, written.get(uid))) return false;
    dv.status = status;
    written.set(uid, clone(status));
    store.update(dvT, dv, { force: true });
    return true;
  };

  const ensurePvc = (dv: KubeObject): void => {
    const ns = dv.metadata.namespace ?? '';
    const name = dv.metadata.name ?? '';
    if (store.peek(pvcT, ns, name)) return;
    const spec = obj(dv.spec);
    const pvcSpec = obj(spec.pvc ?? spec.storage);
    store.create(pvcT, {
      apiVersion: 'v1',
      kind: 'PersistentVolumeClaim',
      metadata: {
        name,
        namespace: ns,
        labels: { app: 'containerized-data-importer' },
        ownerReferences: [{ apiVersion: 'cdi.kubevirt.io/v1beta1', kind: 'DataVolume', name, uid: dv.metadata.uid ?? '', controller: true, blockOwnerDeletion: true }],
      },
      spec: { accessModes: ['ReadWriteOnce'], ...pvcSpec },
      status: { phase: 'Bound', accessModes: ['ReadWriteOnce'], capacity: obj(obj(pvcSpec.resources).requests) },
    });
  };

  const run = (dv: KubeObject): void => {
    const ns = dv.metadata.namespace ?? '';
    const name = dv.metadata.name ?? '';
    const uid = dv.metadata.uid ?? '';
    const { kind, url } = sourceUrl(dv);
    const step = Math.max(1, Math.floor(importMs / 6));
    setStatus(ns, name, uid, { phase: 'Pending', progress: 'N/A', conditions: conditions(false, false, { status: 'False', reason: '' }) });
    try {
      ensurePvc(dv);
    } catch {
      /* the PVC exists already */
    }
    if (kind === 'upload') {
      clock.after(step, () =>
        setStatus(ns, name, uid, { phase: 'UploadReady', progress: 'N/A', conditions: conditions(true, false, { status: 'True', reason: 'Pod is running' }) }),
      );
      return;
    }
    clock.after(step, () => {
      if (!setStatus(ns, name, uid, { phase: 'ImportScheduled', progress: 'N/A', conditions: conditions(true, false, { status: 'False', reason: 'Pending' }) })) return;
      clock.after(step, () => {
        if (hostOf(url) === UNREACHABLE_HOST) {
          const message = `Unable to connect to http data source: Get "${url}": dial tcp: lookup ${UNREACHABLE_HOST}: no such host`;
          setStatus(ns, name, uid, {
            phase: 'ImportInProgress',
            progress: 'N/A',
            restartCount: 1,
            conditions: conditions(true, false, { status: 'False', reason: 'Error', message }),
          });
          return;
        }
        const progress = (pct: number, last: boolean): void => {
          const ok = setStatus(ns, name, uid, {
            phase: last ? 'Succeeded' : 'ImportInProgress',
            progress: last ? '100.0%' : `${pct.toFixed(2)}%`,
            conditions: last
              ? conditions(true, true, { status: 'False', reason: 'Completed' })
              : conditions(true, false, { status: 'True', reason: 'Pod is running' }),
          });
          if (!ok || last) return;
          const nextPct = pct + 25;
          clock.after(step, () => progress(nextPct, nextPct >= 100));
        };
        progress(0, false);
      });
    });
  };

  store.onEvent((ev) => {
    if (ev.t === dvT && ev.type === 'DELETED') written.delete(ev.obj.metadata.uid ?? '');
    if (ev.t === dvT && ev.type === 'ADDED' && !obj(ev.obj.status).phase) {
      const dv = ev.obj;
      clock.after(0, () => run(dv));
    }
  });
}
