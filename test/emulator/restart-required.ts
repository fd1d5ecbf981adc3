/**
 * The VM condition RestartRequired, computed the way virt-controller does it.
 *
 * Upstream (kubevirt/kubevirt, pkg/virt-controller/watch/vm/vm.go):
 * - startVMI() takes a ControllerRevision of the VM spec when it creates a VMI (createVMRevision,
 *   one revision per VM generation) and clears RestartRequired (cleanupRestartRequired); stopVMI()
 *   clears it too when it deletes the VMI.
 * - sync() reads that revision back (getLastVMRevisionSpec) only while a VMI object exists (any
 *   phase, also while terminating or Succeeded/Failed), and syncRestartRequired() compares the
 *   current template spec with it after copying over the fields that can change live. A difference
 *   sets the condition ("a non-live-updatable field was changed in the template spec"); no
 *   difference removes it (the removal is PR kubevirt/kubevirt#16606, KubeVirt ≥ 1.8; before, the
 *   condition stayed until the next start or stop).
 * - With no VMI, nothing touches the condition: a RestartRequired raised while the VMI existed stays
 *   on the stopped VM until the next start.
 *
 * Fields treated as live (copied from the current spec before the comparison), as upstream:
 * - volumes, when validLiveUpdateVolumes() holds: every added/changed/removed volume is a hotplug
 *   volume (dataVolume/persistentVolumeClaim with hotpluggable: true; IsHotplugVolume in
 *   pkg/storage/types/volume.go);
 * - disks, when validLiveUpdateDisks() holds: added/changed disks belong to a hotplug volume, removed
 *   disks belonged to one, and no CD-ROM disk was removed;
 * - with the LiveUpdate VM rollout strategy (the default, pkg/virt-config/virt-config.go
 *   DefaultVMRolloutStrategy): domain.cpu.sockets, domain.memory.guest, nodeSelector, affinity,
 *   tolerations;
 * - interfaces and networks, when pkg/network/vmliveupdate/restart.go IsRestartRequired() says no
 *   restart is needed (compared with the VMI spec: no VMI interface/network removed or changed,
 *   interface `state` ignored, multus networkName ignored on a migratable VMI, the pod network not
 *   newly added);
 * - firmware.uuid, when the VMI's firmware uuid equals the template's (the firmware synchronizer).
 * Boot order (disks[].bootOrder, interfaces[].bootOrder) and firmware.bootloader are not live.
 */
import { clone, deepEqual } from './patch.js';

type Obj = Record<string, unknown>;

function obj(v: unknown): Obj {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : {};
}

function arr(v: unknown): Obj[] {
  return Array.isArray(v) ? (v as Obj[]) : [];
}

function byName(list: Obj[]): Map<string, Obj> {
  return new Map(list.map((x) => [String(x.name), x]));
}

export const RESTART_REQUIRED_MESSAGE = 'a non-live-updatable field was changed in the template spec';

/** pkg/storage/types/volume.go IsHotplugVolume (declarative hotplug and hotpluggable memory dumps). */
export function isHotplugVolume(v: Obj | undefined): boolean {
  if (!v) return false;
  return !!(obj(v.dataVolume).hotpluggable || obj(v.persistentVolumeClaim).hotpluggable || obj(v.memoryDump).hotpluggable);
}

/** vm.go validLiveUpdateVolumes: every volume change concerns a hotplug volume. */
export function validLiveUpdateVolumes(oldSpec: Obj, curSpec: Obj, updateVolumesStrategy?: string): boolean {
  const oldVols = byName(arr(oldSpec.volumes));
  for (const v of arr(curSpec.volumes)) {
    const name = String(v.name);
    const old = oldVols.get(name);
    if (isHotplugVolume(v)) oldVols.delete(name);
    else if (!old) return false;
    else if ((v.persistentVolumeClaim || v.dataVolume) && updateVolumesStrategy === 'Migration') oldVols.delete(name);
    else if (!deepEqual(old, v)) return false;
    else oldVols.delete(name);
  }
  for (const v of oldVols.values()) if (!isHotplugVolume(v)) return false;
  return true;
}

function disksOf(spec: Obj): Obj[] {
  return arr(obj(obj(obj(spec.domain).devices)).disks);
}

/** vm.go validLiveUpdateDisks: disk changes only for hotplug volumes, and no CD-ROM drive removed. */
export function validLiveUpdateDisks(oldSpec: Obj, curSpec: Obj): boolean {
  const oldDisks = byName(disksOf(oldSpec));
  const oldVols = byName(arr(oldSpec.volumes));
  const vols = byName(arr(curSpec.volumes));
  const newDisks = byName(disksOf(curSpec));
  for (const d of disksOf(curSpec)) {
    const name = String(d.name);
    const vol = vols.get(name);
    const old = oldDisks.get(name);
    if (vol && isHotplugVolume(vol)) oldDisks.delete(name);
    else if (!old) return false;
    else if (!deepEqual(old, d)) return false;
    else oldDisks.delete(name);
  }
  for (const [name, d] of oldDisks) {
    const v = oldVols.get(name);
    if (v && !isHotplugVolume(v)) return false;
    if (d.cdrom !== undefined && d.cdrom !== null && !newDisks.has(name)) return false;
  }
  return true;
}

function withoutState(i: Obj | undefined): Obj | undefined {
  if (!i) return i;
  const c = { ...i };
  delete c.state;
  return c;
}

function withoutMultusName(n: Obj | undefined): Obj | undefined {
  if (!n || !n.multus) return n;
  return { ...n, multus: { ...obj(n.multus), networkName: '' } };
}

/** pkg/network/vmliveupdate/restart.go IsRestartRequired: interface/network changes need a restart. */
export function networkRestartRequired(tplSpec: Obj, vmi: Obj | undefined): boolean {
  const vmiSpec = obj(vmi?.spec);
  const desiredIfaces = byName(arr(obj(obj(tplSpec.domain).devices).interfaces));
  const currentIfaces = byName(arr(obj(obj(vmiSpec.domain).devices).interfaces));
  for (const [name, cur] of currentIfaces) {
    if (!desiredIfaces.has(name)) return true;
    if (!deepEqual(withoutState(desiredIfaces.get(name)), withoutState(cur))) return true;
  }
  const desiredNets = arr(tplSpec.networks);
  const currentNets = arr(vmiSpec.networks);
  const hasPod = (l: Obj[]): boolean => l.some((n) => n.pod !== undefined && n.pod !== null);
  if (hasPod(desiredNets) && !hasPod(currentNets)) return true;
  const desired = byName(desiredNets);
  const migratable = arr(obj(vmi?.status).conditions).some((c) => c.type === 'LiveMigratable' && c.status === 'True');
  for (const [name, cur] of byName(currentNets)) {
    if (!desired.has(name)) return true;
    const a = migratable ? withoutMultusName(desired.get(name)) : desired.get(name);
    const b = migratable ? withoutMultusName(cur) : cur;
    if (!deepEqual(a, b)) return true;
  }
  return false;
}

export interface RestartRequiredOptions {
  /** the VM rollout strategy; LiveUpdate (the default) makes CPU sockets, memory, placement live */
  rolloutStrategy?: 'LiveUpdate' | 'Stage';
}

/**
 * syncRestartRequired: whether the VM's current spec differs from the spec its VMI started from in
 * a field that cannot change live. `lastSeenSpec` and `currentSpec` are VM specs (with .template).
 */
export function restartRequired(
  lastSeenSpec: Obj,
  currentSpec: Obj,
  vmi: Obj | undefined,
  opts: RestartRequiredOptions = {},
): boolean {
  const cur = obj(obj(currentSpec.template).spec);
  const last = clone(obj(obj(lastSeenSpec.template).spec));
  const updateVolumesStrategy = typeof currentSpec.updateVolumesStrategy === 'string' ? currentSpec.updateVolumesStrategy : undefined;
  const lastDomain = (): Obj => {
    last.domain = obj(last.domain);
    return last.domain as Obj;
  };
  const lastDevices = (): Obj => {
    const d = lastDomain();
    d.devices = obj(d.devices);
    return d.devices as Obj;
  };
  const copy = (target: Obj, key: string, value: unknown): void => {
    if (value === undefined) delete target[key];
    else target[key] = clone(value);
  };
  const curDomain = obj(cur.domain);
  const curDevices = obj(curDomain.devices);

  const liveVolumes = validLiveUpdateVolumes(last, cur, updateVolumesStrategy);
  const liveDisks = validLiveUpdateDisks(last, cur);
  if (liveVolumes) copy(last, 'volumes', cur.volumes);
  if (liveDisks) copy(lastDevices(), 'disks', curDevices.disks);

  if ((opts.rolloutStrategy ?? 'LiveUpdate') === 'LiveUpdate') {
    const lastCpu = obj(lastDomain().cpu);
    if (lastDomain().cpu !== undefined && curDomain.cpu !== undefined) copy(lastCpu, 'sockets', obj(curDomain.cpu).sockets);
    if (obj(curDomain.memory).guest !== undefined) {
      const d = lastDomain();
      d.memory = { ...obj(d.memory), guest: obj(curDomain.memory).guest };
    }
    copy(last, 'nodeSelector', cur.nodeSelector);
    copy(last, 'affinity', cur.affinity);
    copy(last, 'tolerations', cur.tolerations);
  }

  if (vmi && !networkRestartRequired(cur, vmi)) {
    copy(lastDevices(), 'interfaces', curDevices.interfaces);
    copy(last, 'networks', cur.networks);
  }

  const vmiUuid = obj(obj(obj(vmi?.spec).domain).firmware).uuid;
  const curFirmware = curDomain.firmware;
  if (vmi && obj(obj(vmi.spec).domain).firmware !== undefined && curFirmware !== undefined && vmiUuid === obj(curFirmware).uuid) {
    const d = lastDomain();
    d.firmware = { ...obj(d.firmware) };
    copy(d.firmware as Obj, 'uuid', obj(curFirmware).uuid);
  }
  return !deepEqual(normalise(last), normalise(cur));
}

/**
 * equality.Semantic.DeepEqual (k8s.io/apimachinery third_party/forked/golang/reflect) treats an
 * empty and a nil slice or map as equal: drop empty arrays, and the empty struct containers this
 * comparison itself may have created.
 */
function normalise(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(normalise);
  if (v !== null && typeof v === 'object') {
    const out: Obj = {};
    for (const [k, x] of Object.entries(v as Obj)) {
      if (x === undefined || (Array.isArray(x) && x.length === 0)) continue;
      const n = normalise(x);
      if (n !== null && typeof n === 'object' && !Array.isArray(n) && Object.keys(n as Obj).length === 0 && (k === 'devices' || k === 'domain' || k === 'firmware' || k === 'cpu' || k === 'memory')) continue;
      out[k] = n;
    }
    return out;
  }
  return v;
}
