/**
 * KubeVirt behaviour: a small virt-controller (VM → VMI, runStrategy, state change requests,
 * hot-plug), VMI phase progression standing in for virt-handler, the subresources.kubevirt.io API
 * (start/stop/restart, pause/unpause/softreboot/reset, addvolume/removevolume) and test hooks.
 * Rules and error texts follow KubeVirt's pkg/virt-api/rest/subresource.go.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { Clock } from './clock.js';
import { clone, deepEqual } from './patch.js';
import type { ResourceType } from './resources.js';
import type { EmulatorServer, SubresourceRequest } from './server.js';
import {
  advanceHotplugPhase,
  applyVolumeRequest,
  declarativeHotplug,
  declarativeSyncOn,
  diskVolumeCauses,
  hotplugDiskCauses,
  vmiStorageUpdateCauses,
  volumeStatusFor,
  webhookDenied,
  type KubevirtFeatureGates,
  type VolumeRequest,
} from './hotplug.js';
import { featureGateEnabled, type FeatureGateConfig } from './feature-gates.js';
import { restartRequired, RESTART_REQUIRED_MESSAGE } from './restart-required.js';
import { ApiError, badRequest, conflict, invalid } from './status.js';
import type { Store } from './store.js';
import type { KubeObject } from './types.js';

export type RunStrategy = 'Always' | 'RerunOnFailure' | 'Manual' | 'Halted' | 'Once';
const RUN_STRATEGIES: RunStrategy[] = ['Always', 'RerunOnFailure', 'Manual', 'Halted', 'Once'];
const FINALIZER = 'kubevirt.io/virtualMachineControllerFinalize';
const GROUP = 'kubevirt.io';
const SUB_GROUP = 'subresources.kubevirt.io';

type Obj = Record<string, unknown>;
interface Condition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
  lastTransitionTime?: string | null;
  lastProbeTime?: string | null;
}
interface ChangeRequest {
  action: 'Start' | 'Stop';
  uid?: string;
  data?: Record<string, string>;
}

export interface KubevirtAction {
  action: string;
  namespace: string;
  name: string;
  body: unknown;
  code: number;
}

export interface GuestAgentInfo {
  guestOSInfo?: Obj;
  hostname?: string;
}

/** Test hooks on the emulator (emulator.kubevirt). */
export interface KubevirtHooks {
  /** the guest powers off by itself: the VMI goes Succeeded and the runStrategy decides what follows */
  guestShutdown(namespace: string, name: string): void;
  /**
   * the guest reboots itself (or takes a soft reboot): a warm reboot inside the same VMI, which
   * keeps its spec and so its boot order; with spec.domain.rebootPolicy Terminate the VMI ends
   * (Succeeded) and the run strategy decides what follows
   */
  guestReboot(namespace: string, name: string): void;
  /** how many warm reboots the current VMI has had (0 when there is none) */
  warmReboots(namespace: string, name: string): number;
  /** the VMI fails (e.g. the launcher crashed): phase Failed */
  failVmi(namespace: string, name: string, reason?: string): void;
  /** connect (info) or disconnect (undefined) the guest agent: AgentConnected condition, status.guestOSInfo */
  setGuestAgent(namespace: string, name: string, info: GuestAgentInfo | undefined): void;
  /** every subresource call (start, stop, softreboot, reset, ...) in order, with the status answered */
  actions: KubevirtAction[];
  /** the volume hotplug gates in force now (from the developerConfiguration, feature-gates.ts) */
  hotplugGates(): KubevirtFeatureGates;
  /** replace the developerConfiguration feature gates at run time, as an admin editing the KubeVirt CR would */
  setFeatureGates(gates: FeatureGateConfig): void;
}

function now(): string {
  return new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function obj(v: unknown): Obj {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : {};
}

function arr<T = Obj>(v: unknown): T[] {
  return Array.isArray(v) ? (v as T[]) : [];
}

export function runStrategyOf(vm: KubeObject): RunStrategy {
  const spec = obj(vm.spec);
  if (typeof spec.runStrategy === 'string') return spec.runStrategy as RunStrategy;
  return spec.running === true ? 'Always' : 'Halted';
}

function phaseOf(vmi: KubeObject | undefined): string {
  return (obj(vmi?.status).phase as string | undefined) ?? '';
}

function isFinal(vmi: KubeObject | undefined): boolean {
  const p = phaseOf(vmi);
  return p === 'Succeeded' || p === 'Failed';
}

function conds(o: KubeObject | undefined): Condition[] {
  return arr<Condition>(obj(o?.status).conditions);
}

function hasCond(o: KubeObject | undefined, type: string, status = 'True'): boolean {
  return conds(o).some((c) => c.type === type && c.status === status);
}

function setCond(list: Condition[], c: Condition): Condition[] {
  const prev = list.find((x) => x.type === c.type);
  const ltt = prev && prev.status === c.status ? prev.lastTransitionTime : now();
  return [...list.filter((x) => x.type !== c.type), { ...c, lastProbeTime: null, lastTransitionTime: ltt }];
}

function macFor(seed: string): string {
  const h = createHash('sha256').update(seed).digest();
  return ['02', '54', '00', h[0], h[1], h[2]].map((x) => (typeof x === 'number' ? x.toString(16).padStart(2, '0') : x)).join(':');
}

function parseBody(b: unknown): Obj {
  if (b === undefined || b === null) return {};
  if (typeof b !== 'object' || Array.isArray(b)) {
    throw badRequest('Can not unmarshal Request body to struct, error: json: cannot unmarshal into Go value');
  }
  return b as Obj;
}

function isDryRun(body: Obj): boolean {
  return Array.isArray(body.dryRun) && (body.dryRun as unknown[]).includes('All');
}

export interface KubevirtTimings {
  phaseDelayMs: number;
  stopDelayMs: number;
  /** developerConfiguration feature gates (feature-gates.ts) */
  gates?: FeatureGateConfig;
}

export function installKubevirt(
  store: Store,
  server: EmulatorServer,
  clock: Clock,
  timing: KubevirtTimings,
): KubevirtHooks {
  const vmT = store.registry.mustByKind('kubevirt.io/v1', 'VirtualMachine');
  const vmiT = store.registry.mustByKind('kubevirt.io/v1', 'VirtualMachineInstance');
  const actions: KubevirtAction[] = [];
  const pending = new Set<string>();
  const stopTimers = new Map<string, NodeJS.Timeout | undefined>();
  const progressTimers = new Map<string, NodeJS.Timeout | undefined>();
  const agents = new Map<string, GuestAgentInfo>();
  /** VMI uid → warm reboots inside it (guest reboots without rebootPolicy Terminate) */
  const reboots = new Map<string, number>();
  /** VMI uid → the VM template spec it was started from (to raise RestartRequired on later edits) */
  const startedFrom = new Map<string, string>();
  const templateOf = (vm: KubeObject): string => JSON.stringify(obj(obj(vm.spec).template).spec ?? {});

  const k = (ns: string, name: string): string => `${ns}/${name}`;
  const getVm = (ns: string, name: string): KubeObject | undefined => store.get(vmT, ns, name);
  const getVmi = (ns: string, name: string): KubeObject | undefined => store.get(vmiT, ns, name);
  const write = (t: ResourceType, o: KubeObject): KubeObject => store.update(t, o, { force: true });

  // ------------------------------------------------------------------ admission (validating webhook)

  store.addValidator(vmT, (vm) => {
    const spec = obj(vm.spec);
    if (spec.runStrategy !== undefined && spec.running !== undefined && spec.running !== null) {
      throw invalid('VirtualMachine', GROUP, vm.metadata.name ?? '', [
        { field: 'spec.running', message: 'Running and RunStrategy are mutually exclusive. Note that Running is deprecated, please use RunStrategy instead' },
      ]);
    }
    if (spec.runStrategy !== undefined && !RUN_STRATEGIES.includes(spec.runStrategy as RunStrategy)) {
      throw invalid('VirtualMachine', GROUP, vm.metadata.name ?? '', [
        { field: 'spec.runStrategy', message: `Invalid value: "${String(spec.runStrategy)}": invalid runStrategy` },
      ]);
    }
    if (!spec.template || typeof spec.template !== 'object') {
      throw invalid('VirtualMachine', GROUP, vm.metadata.name ?? '', [{ field: 'spec.template', message: 'Required value: missing virtual machine template.', reason: 'FieldValueRequired' }]);
    }
  });

  /** DeclarativeHotplugVolumes / HotplugVolumes as configured now (timing.gates; setFeatureGates replaces it) */
  const hotplugGates = (): KubevirtFeatureGates => ({
    declarativeHotplugVolumes: featureGateEnabled('DeclarativeHotplugVolumes', timing.gates),
    hotplugVolumes: featureGateEnabled('HotplugVolumes', timing.gates),
  });

  // the disk/volume rules of virtualmachine-validator.kubevirt.io (vms-admitter.go: the template spec
  // through ValidateVirtualMachineInstanceSpec, and validateVolumeRequests for status.volumeRequests).
  // Checked when the template or the volume requests change: our own status writes pass as before.
  store.addValidator(vmT, (vm, old) => {
    const tpl = obj(obj(obj(vm.spec).template).spec);
    if (!old || !deepEqual(tpl, obj(obj(obj(old.spec).template).spec))) {
      const causes = diskVolumeCauses('spec.template.spec', tpl, hotplugGates());
      if (causes.length) throw webhookDenied('virtualmachine-validator.kubevirt.io', causes);
    }
    const reqs = arr<VolumeRequest>(obj(vm.status).volumeRequests);
    if (reqs.length && !deepEqual(reqs, arr(obj(old?.status).volumeRequests))) {
      let next = tpl;
      for (const r of reqs) {
        if (r.addVolumeOptions) {
          const c = hotplugDiskCauses(r.addVolumeOptions.disk, r.addVolumeOptions.name, 'AddVolume request', 'Status.volumeRequests');
          if (c.length) throw webhookDenied('virtualmachine-validator.kubevirt.io', c);
        }
        next = applyVolumeRequest(next, r);
      }
      const causes = diskVolumeCauses('spec.template.spec', next, hotplugGates());
      if (causes.length) throw webhookDenied('virtualmachine-validator.kubevirt.io', causes);
    }
  });

  // virtualmachineinstances-create-validator / -update-validator: the same disk/volume rules on
  // create; on a spec update the hotplug storage checks (storagehotplug.go AdmitHotplugStorage)
  store.addValidator(vmiT, (vmi, old) => {
    const spec = obj(vmi.spec);
    if (!old) {
      const causes = diskVolumeCauses('spec', spec, hotplugGates());
      if (causes.length) throw webhookDenied('virtualmachineinstances-create-validator.kubevirt.io', causes);
      return;
    }
    const oldSpec = obj(old.spec);
    if (deepEqual(spec.volumes, oldSpec.volumes) && deepEqual(obj(obj(spec.domain).devices).disks, obj(obj(oldSpec.domain).devices).disks)) return;
    const causes = vmiStorageUpdateCauses(spec, oldSpec, hotplugGates());
    if (causes.length) throw webhookDenied('virtualmachineinstances-update-validator.kubevirt.io', causes);
  });

  // VEP 171 rebootPolicy (ValidateVirtualMachineInstanceSpec → validateRebootPolicy in
  // pkg/virt-api/webhooks/validating-webhook/admitters/vmi-create-admitter.go; the VM admitter runs it
  // on spec.template.spec, vms-admitter.go ValidateVirtualMachineSpec). The Reboot|Terminate enum is
  // the CRD schema's (+kubebuilder:validation:Enum in staging/src/kubevirt.io/api/core/v1/schema.go).
  const checkRebootPolicy = (kind: string, name: string, field: string, spec: Obj, webhook: string): void => {
    const policy = obj(spec.domain).rebootPolicy;
    if (policy === undefined || policy === null) return;
    if (policy !== 'Reboot' && policy !== 'Terminate') {
      // the apiserver's schema check, before any webhook
      throw invalid(kind, GROUP, name, [{ field, message: `Unsupported value: "${String(policy)}": supported values: "Reboot", "Terminate"`, reason: 'FieldValueNotSupported' }]);
    }
    if (!featureGateEnabled('RebootPolicy', timing.gates)) {
      throw webhookDenied(webhook, [{ type: 'FieldValueInvalid', field, message: 'RebootPolicy is specified but the RebootPolicy feature gate is not enabled' }]);
    }
  };
  store.addValidator(vmT, (vm, old) => {
    // a status write (virt-controller uses the status subresource, which the VM webhook does not see)
    // leaves the spec as it was: only spec writes are admitted again
    if (old && deepEqual(old.spec, vm.spec)) return;
    const spec = obj(obj(obj(vm.spec).template).spec);
    checkRebootPolicy('VirtualMachine', vm.metadata.name ?? '', 'spec.template.spec.domain.rebootPolicy', spec, 'virtualmachine-validator.kubevirt.io');
  });
  // "SecureBoot requires SMM" (validateDomainSpec in
  // pkg/virt-api/webhooks/validating-webhook/admitters/vmi-create-admitter.go: EFI with secureBoot
  // unset or true needs features.smm with enabled unset or true; TDX launch security is exempt). The
  // VM admitter runs it on spec.template.spec (vms-admitter.go), the VMI create admitter on spec.
  const checkSecureBootSmm = (field: string, spec: Obj, webhook: string): void => {
    const domain = obj(spec.domain);
    const efi = obj(obj(domain.firmware).bootloader).efi;
    if (efi === undefined || efi === null) return;
    if (obj(efi).secureBoot === false) return;
    const smm = obj(domain.features).smm;
    if (smm !== undefined && smm !== null && obj(smm).enabled !== false) return;
    if (obj(domain.launchSecurity).tdx != null) return;
    throw webhookDenied(webhook, [{ type: 'FieldValueInvalid', field, message: `${field} has EFI SecureBoot enabled. SecureBoot requires SMM, which is currently disabled.` }]);
  };
  store.addValidator(vmT, (vm, old) => {
    if (old && deepEqual(old.spec, vm.spec)) return;
    checkSecureBootSmm('spec.template.spec.domain', obj(obj(obj(vm.spec).template).spec), 'virtualmachine-validator.kubevirt.io');
  });
  store.addValidator(vmiT, (vmi, old) => {
    if (old) return;
    checkSecureBootSmm('spec.domain', obj(vmi.spec), 'virtualmachineinstances-create-validator.kubevirt.io');
  });
  store.addValidator(vmiT, (vmi, old) => {
    if (old) return; // the create admitter; a VMI spec does not change afterwards
    checkRebootPolicy('VirtualMachineInstance', vmi.metadata.name ?? '', 'spec.domain.rebootPolicy', obj(vmi.spec), 'virtualmachineinstances-create-validator.kubevirt.io');
  });

  // ------------------------------------------------------------------ VMI lifecycle (virt-handler)

  const interfacesStatus = (vmi: KubeObject): Obj[] => {
    const spec = obj(vmi.spec);
    const ifaces = arr(obj(obj(obj(spec.domain).devices)).interfaces);
    const list = ifaces.length ? ifaces : [{ name: 'default' }];
    const seedBase = `${vmi.metadata.namespace}/${vmi.metadata.name}`;
    return list.map((i, idx) => {
      const ip = `10.244.0.${(createHash('sha256').update(seedBase).digest().readUInt8(3) % 200) + 10 + idx}`;
      return {
        name: i.name,
        mac: (i.macAddress as string | undefined) ?? macFor(`${seedBase}/${String(i.name)}`),
        ipAddress: ip,
        ipAddresses: [ip],
        interfaceName: `eth${idx}`,
        infoSource: 'domain, guest-agent',
        queueCount: 1,
      };
    });
  };

  const PHASES = ['Pending', 'Scheduling', 'Scheduled', 'Running'];

  const advance = (ns: string, name: string, uid: string): void => {
    progressTimers.delete(uid);
    const vmi = getVmi(ns, name);
    if (!vmi || vmi.metadata.uid !== uid || vmi.metadata.deletionTimestamp) return;
    const phase = phaseOf(vmi);
    const i = PHASES.indexOf(phase);
    if (i < 0 || i === PHASES.length - 1) return;
    const next = PHASES[i + 1];
    const st = obj(vmi.status);
    st.phase = next;
    st.phaseTransitionTimestamps = [...arr(st.phaseTransitionTimestamps), { phase: next, phaseTransitionTimestamp: now() }];
    if (next === 'Scheduled') {
      st.nodeName = 'emulator-node';
      vmi.metadata.labels = { ...(vmi.metadata.labels ?? {}), 'kubevirt.io/nodeName': 'emulator-node' };
    }
    if (next === 'Running') {
      st.interfaces = interfacesStatus(vmi);
      st.conditions = setCond(arr<Condition>(st.conditions), { type: 'Ready', status: 'True' });
      st.conditions = setCond(st.conditions as Condition[], { type: 'LiveMigratable', status: 'True' });
      st.guestOSInfo = {};
      const info = agents.get(k(ns, name));
      if (info) applyAgent(st, info);
      if (vmi.metadata.annotations?.['emulator.kubevirt.io/start-paused'] === 'true') {
        st.conditions = setCond(st.conditions as Condition[], { type: 'Paused', status: 'True', reason: 'PausedByUser', message: 'VMI was paused by user' });
        delete vmi.metadata.annotations['emulator.kubevirt.io/start-paused'];
      }
      vmi.status = st;
      syncVolumeStatus(vmi);
    }
    write(vmiT, vmi);
    if (next !== 'Running') progressTimers.set(uid, clock.after(timing.phaseDelayMs, () => advance(ns, name, uid)));
  };

  const applyAgent = (st: Obj, info: GuestAgentInfo | undefined): void => {
    if (info) {
      st.conditions = setCond(arr<Condition>(st.conditions), { type: 'AgentConnected', status: 'True' });
      st.guestOSInfo = clone(info.guestOSInfo ?? {});
    } else {
      st.conditions = arr<Condition>(st.conditions).filter((c) => c.type !== 'AgentConnected');
      st.guestOSInfo = {};
    }
  };

  const dvT = store.registry.byKind('cdi.kubevirt.io/v1beta1', 'DataVolume');

  const pvcT = store.registry.byKind('v1', 'PersistentVolumeClaim');

  /** the claim behind a hotplugged volume: a DataVolume is attachable once CDI finished the import */
  const claimOf = (ns: string, v: Obj): { exists: boolean; ready: boolean } => {
    const dvName = obj(v.dataVolume).name;
    if (typeof dvName === 'string') {
      const dv = dvT ? store.peek(dvT, ns, dvName) : undefined;
      if (!dv || dv.metadata.deletionTimestamp) return { exists: false, ready: false };
      return { exists: true, ready: (obj(dv.status).phase as string | undefined) === 'Succeeded' };
    }
    const claim = obj(v.persistentVolumeClaim).claimName;
    if (typeof claim === 'string') {
      const pvc = pvcT ? store.peek(pvcT, ns, claim) : undefined;
      return { exists: !!pvc, ready: !!pvc && obj(pvc.status).phase === 'Bound' };
    }
    return { exists: true, ready: true };
  };

  /** how long a removed hotplugged volume keeps its (unmounted) status entry before it goes */
  const unplugTimers = new Map<string, NodeJS.Timeout | undefined>();
  /** virt-handler's attach steps of a hotplugged volume, one phase delay each */
  const attachTimers = new Map<string, NodeJS.Timeout | undefined>();
  const scheduleAttachStep = (vmi: KubeObject, vname: string): void => {
    const key = `${vmi.metadata.uid ?? ''}/${vname}`;
    if (attachTimers.has(key)) return;
    const ns = vmi.metadata.namespace ?? '';
    attachTimers.set(
      key,
      clock.after(timing.phaseDelayMs, () => {
        attachTimers.delete(key);
        const cur = getVmi(ns, vmi.metadata.name ?? '');
        if (!cur || cur.metadata.uid !== vmi.metadata.uid || phaseOf(cur) !== 'Running' || cur.metadata.deletionTimestamp) return;
        const st = obj(cur.status);
        const list = arr(st.volumeStatus);
        const i = list.findIndex((x) => x.name === vname);
        const step = i >= 0 ? advanceHotplugPhase(list[i]!) : undefined;
        if (!step || !arr(obj(cur.spec).volumes).some((v) => v.name === vname)) return;
        list[i] = step;
        st.volumeStatus = list;
        cur.status = st;
        write(vmiT, cur);
        if (step.phase !== 'Ready') scheduleAttachStep(cur, vname);
      }),
    );
  };

  /**
   * Recompute volumeStatus of a running VMI from its spec (entries already Ready stay as they are).
   * A hotplugged volume that left the spec keeps its entry while its attachment pod exists, in the
   * phase it had when Ready or MountedToPod, else Detaching (pkg/virt-controller/watch/vmi/storage.go
   * updateVolumeStatus, phaseForUnpluggedVolume): right after an eject the old medium still reads
   * Ready. One phase delay later virt-handler has detached and unmounted it (UnMountedFromPod,
   * pkg/virt-handler/vm.go updateHotplugVolumeStatus), and after another the entry goes. Until then
   * declarative hotplug does not add a volume of that name again (hotplug.go getNewHotplugVMVolumes).
   */
  const syncVolumeStatus = (vmi: KubeObject): void => {
    const ns = vmi.metadata.namespace ?? '';
    const vst = obj(vmi.status);
    const vols = arr(obj(vmi.spec).volumes);
    const old = arr(vst.volumeStatus);
    const names = new Set(vols.map((v) => String(v.name)));
    const next = vols.map((v) => {
      const prev = old.find((s) => s.name === v.name);
      // an entry that is attached or attaching keeps going its own way (attachTimers)
      if (prev && (prev.phase === 'Ready' || prev.phase === 'AttachedToNode' || prev.phase === 'MountedToPod')) return prev;
      return volumeStatusFor(v, claimOf(ns, v), () => randomUUID());
    });
    for (const s of next) if (s.phase === 'AttachedToNode' || s.phase === 'MountedToPod') scheduleAttachStep(vmi, String(s.name));
    const vmiName = vmi.metadata.name ?? '';
    /** one unplug step of `vname` on the current VMI (still this uid): change its entry, or drop it */
    const unplugStep = (vname: string, change: (e: Obj) => Obj | undefined): boolean => {
      const cur = getVmi(ns, vmiName);
      if (!cur || cur.metadata.uid !== vmi.metadata.uid) return false;
      if (arr(obj(cur.spec).volumes).some((v) => v.name === vname)) return false; // back in the spec
      const st = obj(cur.status);
      const list: Obj[] = [];
      for (const e of arr(st.volumeStatus)) {
        if (e.name !== vname) list.push(e);
        else {
          const c = change(e);
          if (c) list.push(c);
        }
      }
      st.volumeStatus = list;
      cur.status = st;
      write(vmiT, cur);
      return true;
    };
    for (const s of old) {
      if (names.has(String(s.name)) || !s.hotplugVolume) continue;
      const vname = String(s.name);
      const key = `${vmi.metadata.uid ?? ''}/${vname}`;
      if (unplugTimers.has(key)) {
        next.push(s); // unplugging: the timers move it on
        continue;
      }
      const kept = s.phase === 'Ready' || s.phase === 'MountedToPod' ? s.phase : 'Detaching';
      next.push({ ...s, phase: kept });
      unplugTimers.set(
        key,
        clock.after(timing.phaseDelayMs, () => {
          const unmounted = unplugStep(vname, (e) => ({
            ...e,
            phase: 'UnMountedFromPod',
            reason: 'VolumeUnMountedFromPod',
            message: `Volume ${vname} has been unmounted from virt-launcher pod`,
          }));
          if (!unmounted) {
            unplugTimers.delete(key);
            return;
          }
          unplugTimers.set(
            key,
            clock.after(timing.phaseDelayMs, () => {
              unplugTimers.delete(key);
              if (unplugStep(vname, () => undefined)) schedule(ns, vmiName);
            }),
          );
        }),
      );
    }
    vst.volumeStatus = next;
    vmi.status = vst;
  };

  /** graceful (or immediate) VMI deletion, like virt-controller deleting it */
  const deleteVmi = (ns: string, name: string, graceSeconds?: number): void => {
    const vmi = getVmi(ns, name);
    if (!vmi) return;
    const grace = graceSeconds ?? (obj(vmi.spec).terminationGracePeriodSeconds as number | undefined);
    try {
      store.delete(vmiT, ns, name, { gracePeriodSeconds: grace });
    } catch {
      return;
    }
    if (grace === 0) finalizeVmi(ns, name, vmi.metadata.uid ?? '');
  };

  const finalizeVmi = (ns: string, name: string, uid: string): void => {
    const key = uid;
    clock.cancel(stopTimers.get(key));
    stopTimers.delete(key);
    const vmi = getVmi(ns, name);
    if (!vmi || vmi.metadata.uid !== uid) return;
    vmi.metadata.finalizers = (vmi.metadata.finalizers ?? []).filter((f) => f !== FINALIZER);
    if (!vmi.metadata.deletionTimestamp) {
      write(vmiT, vmi);
      return;
    }
    if (vmi.metadata.finalizers.length === 0) {
      store.remove(vmiT, vmi);
    } else write(vmiT, vmi);
  };

  const onVmiEvent = (type: string, vmi: KubeObject): void => {
    const ns = vmi.metadata.namespace ?? '';
    const name = vmi.metadata.name ?? '';
    const uid = vmi.metadata.uid ?? '';
    if (type === 'DELETED') {
      clock.cancel(progressTimers.get(uid));
      progressTimers.delete(uid);
      clock.cancel(stopTimers.get(uid));
      stopTimers.delete(uid);
    } else if (vmi.metadata.deletionTimestamp) {
      clock.cancel(progressTimers.get(uid));
      progressTimers.delete(uid);
      if (!stopTimers.has(uid)) {
        const grace = vmi.metadata.deletionGracePeriodSeconds;
        const termGrace = obj(vmi.spec).terminationGracePeriodSeconds;
        const immediate = grace === 0 || termGrace === 0 || isFinal(vmi);
        stopTimers.set(uid, clock.after(immediate ? 0 : timing.stopDelayMs, () => finalizeVmi(ns, name, uid)));
      }
    } else if (type === 'ADDED') {
      if (!vmi.status || !phaseOf(vmi)) {
        const v = clone(vmi);
        v.status = { ...obj(v.status), phase: 'Pending', phaseTransitionTimestamps: [{ phase: 'Pending', phaseTransitionTimestamp: now() }] };
        // VMIs created by hand still get the finalizer virt-controller adds
        v.metadata.finalizers = [...new Set([...(v.metadata.finalizers ?? []), FINALIZER])];
        clock.after(0, () => {
          const cur = getVmi(ns, name);
          if (cur && cur.metadata.uid === uid && !phaseOf(cur)) {
            cur.status = v.status;
            cur.metadata.finalizers = v.metadata.finalizers;
            write(vmiT, cur);
          }
        });
      }
      if (!progressTimers.has(uid)) progressTimers.set(uid, clock.after(timing.phaseDelayMs, () => advance(ns, name, uid)));
    }
    schedule(ns, name);
  };

  // ------------------------------------------------------------------ VM controller

  const schedule = (ns: string, name: string): void => {
    const key = k(ns, name);
    if (pending.has(key)) return;
    pending.add(key);
    clock.after(0, () => {
      pending.delete(key);
      reconcile(ns, name);
    });
  };

  const createVmi = (vm: KubeObject, paused = false): void => {
    const ns = vm.metadata.namespace ?? '';
    const name = vm.metadata.name ?? '';
    const tpl = obj(obj(vm.spec).template);
    const tplMeta = obj(tpl.metadata);
    const vmi: KubeObject = {
      apiVersion: 'kubevirt.io/v1',
      kind: 'VirtualMachineInstance',
      metadata: {
        name,
        namespace: ns,
        labels: { ...(clone(tplMeta.labels) as Record<string, string> | undefined), 'kubevirt.io/vm': name },
        annotations: {
          ...(clone(tplMeta.annotations) as Record<string, string> | undefined),
          'kubevirt.io/vm-generation': String(vm.metadata.generation ?? 1),
          ...(paused ? { 'emulator.kubevirt.io/start-paused': 'true' } : {}),
        },
        finalizers: [FINALIZER],
        ownerReferences: [{ apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachine', name, uid: vm.metadata.uid ?? '', controller: true, blockOwnerDeletion: true }],
      },
      spec: clone(obj(tpl.spec)),
      status: { phase: 'Pending', phaseTransitionTimestamps: [{ phase: 'Pending', phaseTransitionTimestamp: now() }] },
    };
    try {
      const created = store.create(vmiT, vmi);
      startedFrom.set(created.metadata.uid ?? '', templateOf(vm));
    } catch {
      /* an old VMI still terminating: the next reconcile retries */
    }
  };

  const reconcile = (ns: string, name: string): void => {
    let vm = getVm(ns, name);
    if (!vm) return;
    let vmi = getVmi(ns, name);
    const status = obj(vm.status);
    let changeReqs = arr<ChangeRequest>(status.stateChangeRequests);

    // hot-plug volume requests: make them permanent in the template and plug them into a running VMI
    const volReqs = arr<VolumeRequest>(status.volumeRequests);
    if (volReqs.length > 0) {
      const spec = obj(vm.spec);
      const tpl = obj(spec.template);
      let tplSpec = obj(tpl.spec);
      for (const r of volReqs) tplSpec = applyVolumeRequest(tplSpec, r);
      tpl.spec = tplSpec;
      spec.template = tpl;
      vm.spec = spec;
      const st = obj(vm.status);
      delete st.volumeRequests;
      vm.status = st;
      // the HotplugVolumes (legacy) path: virt-controller makes the requests permanent in the
      // template and plugs them into the VMI (vm.go); whether that needs a restart is
      // syncRestartRequired's business (volume changes of hotplug volumes are live)
      vm = write(vmT, vm);
      if (vmi && !vmi.metadata.deletionTimestamp && !isFinal(vmi)) {
        let vspec = obj(vmi.spec);
        for (const r of volReqs) vspec = applyVolumeRequest(vspec, r);
        vmi.spec = vspec;
        if (phaseOf(vmi) === 'Running') syncVolumeStatus(vmi);
        vmi = write(vmiT, vmi);
      }
    }

    // explicit state change requests (start/stop/restart under Manual etc.)
    for (let r = changeReqs[0]; r !== undefined; r = changeReqs[0]) {
      if (r.action === 'Stop') {
        if (vmi && (!r.uid || vmi.metadata.uid === r.uid)) {
          if (!vmi.metadata.deletionTimestamp) deleteVmi(ns, name);
          break; // wait until it is gone
        }
        changeReqs = changeReqs.slice(1);
      } else {
        if (vmi && !isFinal(vmi) && !vmi.metadata.deletionTimestamp) {
          changeReqs = changeReqs.slice(1); // already running: nothing to start
          continue;
        }
        if (vmi) {
          if (isFinal(vmi) && !vmi.metadata.deletionTimestamp) deleteVmi(ns, name, 0);
          if (getVmi(ns, name)) break;
          vmi = undefined;
        }
        if (runStrategyOf(vm) === 'Halted') {
          // virt-controller moves a Halted VM to Always when it honours a start request
          const spec = obj(vm.spec);
          if (spec.runStrategy !== undefined) spec.runStrategy = 'Always';
          else spec.running = true;
          vm.spec = spec;
          vm = store.update(vmT, vm, { scope: 'main', force: true });
        }
        createVmi(vm, r.data?.paused === 'true');
        vmi = getVmi(ns, name);
        changeReqs = changeReqs.slice(1);
      }
    }
    if (changeReqs.length !== arr(status.stateChangeRequests).length) {
      // record what is left (virt-controller drops each request once it has acted on it)
      vm = getVm(ns, name) ?? vm;
      const st = obj(vm.status);
      if (changeReqs.length === 0) delete st.stateChangeRequests;
      else st.stateChangeRequests = changeReqs;
      vm.status = st;
      vm = write(vmT, vm);
    }

    if (changeReqs.length === 0) {
      const deleting = !!vmi?.metadata.deletionTimestamp;
      switch (runStrategyOf(vm)) {
        case 'Always':
          if (!vmi) createVmi(vm);
          else if (isFinal(vmi) && !deleting) deleteVmi(ns, name, 0);
          break;
        case 'RerunOnFailure':
          // a finished VMI goes away; only a failed one is started again (through a start request)
          if (vmi) {
            if (isFinal(vmi) && !deleting) {
              const failed = phaseOf(vmi) === 'Failed';
              deleteVmi(ns, name, 0);
              if (failed) {
                vm = getVm(ns, name) ?? vm;
                vm.status = { ...obj(vm.status), stateChangeRequests: [{ action: 'Start' }] };
                vm = write(vmT, vm);
                schedule(ns, name);
              }
            }
          } else if (obj(vm.status).runStrategy !== 'RerunOnFailure') {
            createVmi(vm); // a new VM, or one that just came from another run strategy
          }
          break;
        case 'Once':
          if (!vmi) createVmi(vm);
          break;
        case 'Halted':
          if (vmi && !deleting) deleteVmi(ns, name);
          break;
        case 'Manual':
          break;
      }
    }
    vmi = getVmi(ns, name);
    if (vmi && declarativeSyncOn(hotplugGates())) vmi = syncDeclarativeVolumes(vm, vmi);
    updateVmStatus(ns, name, vmi);
  };

  /**
   * Declarative hotplug (vm.go handleDeclarativeVolumeHotplug → pkg/storage/hotplug/hotplug.go):
   * hotpluggable volumes added to / removed from the template of a running VM reach its VMI spec;
   * volumeStatus follows (Ready only once the DataVolume is imported).
   */
  const syncDeclarativeVolumes = (vm: KubeObject, vmi: KubeObject): KubeObject => {
    if (phaseOf(vmi) !== 'Running' || vmi.metadata.deletionTimestamp) return vmi;
    const change = declarativeHotplug(obj(obj(obj(vm.spec).template).spec), obj(vmi.spec), obj(vmi.status));
    if (!change) return vmi;
    const spec = obj(vmi.spec);
    spec.volumes = change.volumes;
    const domain = obj(spec.domain);
    domain.devices = { ...obj(domain.devices), disks: change.disks };
    spec.domain = domain;
    vmi.spec = spec;
    syncVolumeStatus(vmi);
    try {
      return write(vmiT, vmi);
    } catch (e) {
      // the VMI webhook refused the change (e.g. a new CD-ROM device, which cannot be hot-plugged):
      // virt-controller logs "failed to update hotplug volumes for vmi" and leaves the VMI as it is
      if (e instanceof ApiError) return getVmi(vmi.metadata.namespace ?? '', vmi.metadata.name ?? '') ?? vmi;
      throw e;
    }
  };

  const updateVmStatus = (ns: string, name: string, vmi: KubeObject | undefined): void => {
    const vm = getVm(ns, name);
    if (!vm) return;
    const st = clone(obj(vm.status));
    const rs = runStrategyOf(vm);
    const phase = phaseOf(vmi);
    const paused = hasCond(vmi, 'Paused');
    const deleting = !!vmi?.metadata.deletionTimestamp;
    let printable: string;
    if (vm.metadata.deletionTimestamp) printable = 'Terminating';
    else if (!vmi) printable = 'Stopped';
    else if (deleting) printable = 'Stopping';
    else if (phase === 'Running') printable = paused ? 'Paused' : 'Running';
    else if (phase === 'Succeeded') printable = 'Stopped';
    else if (phase === 'Failed') printable = rs === 'Always' || rs === 'RerunOnFailure' ? 'CrashLoopBackOff' : 'Stopped';
    else printable = 'Starting';
    const ready = !!vmi && phase === 'Running' && !deleting && hasCond(vmi, 'Ready');
    st.printableStatus = printable;
    st.created = !!vmi && !isFinal(vmi);
    st.ready = ready;
    st.runStrategy = rs;
    st.desiredGeneration = vm.metadata.generation;
    st.observedGeneration = vm.metadata.generation;
    let c = arr<Condition>(st.conditions);
    c = setCond(c, ready ? { type: 'Ready', status: 'True' } : { type: 'Ready', status: 'False', reason: vmi ? 'PodNotReady' : 'VMINotExists', message: vmi ? 'VMI is not ready' : 'VMI does not exist' });
    if (paused) c = setCond(c, { type: 'Paused', status: 'True', reason: 'PausedByUser', message: 'VMI was paused by user' });
    else c = c.filter((x) => x.type !== 'Paused');
    // RestartRequired as virt-controller's syncRestartRequired computes it (see restart-required.ts):
    // only while a VMI object exists (any phase) that has a start revision; with no VMI it is left
    // as it is (pkg/virt-controller/watch/vm/vm.go sync(): getLastVMRevisionSpec only when vmi != nil)
    const from = vmi ? startedFrom.get(vmi.metadata.uid ?? '') : undefined;
    if (vmi && from !== undefined) {
      if (restartRequired({ template: { spec: JSON.parse(from) as unknown } }, obj(vm.spec), vmi)) {
        // setRestartRequired sets no reason, only the message
        c = setCond(c, { type: 'RestartRequired', status: 'True', message: RESTART_REQUIRED_MESSAGE });
      } else c = c.filter((x) => x.type !== 'RestartRequired');
    }
    st.conditions = c;
    if (!deepEqual(st, vm.status)) {
      vm.status = st;
      write(vmT, vm);
    }
  };

  store.onEvent((ev) => {
    if (dvT && ev.t === dvT) {
      // virt-controller re-queues the VMIs that use a DataVolume when it changes
      // (pkg/virt-controller/watch/vmi/storage.go listVMIsMatchingDV): pending hotplug volumes move on
      const ns = ev.obj.metadata.namespace ?? '';
      const dvName = ev.obj.metadata.name ?? '';
      clock.after(0, () => {
        for (const v of store.list(vmiT, ns)) {
          if (phaseOf(v) !== 'Running' || v.metadata.deletionTimestamp) continue;
          const uses = new Set(arr(obj(v.spec).volumes).filter((x) => obj(x.dataVolume).name === dvName).map((x) => String(x.name)));
          if (!arr(obj(v.status).volumeStatus).some((s) => uses.has(String(s.name)) && s.phase !== 'Ready')) continue;
          syncVolumeStatus(v);
          write(vmiT, v);
        }
      });
      return;
    }
    if (ev.t === vmiT) {
      if (ev.type === 'DELETED') startedFrom.delete(ev.obj.metadata.uid ?? '');
      onVmiEvent(ev.type, ev.obj);
    }
    else if (ev.t === vmT) {
      const ns = ev.obj.metadata.namespace ?? '';
      const name = ev.obj.metadata.name ?? '';
      if (ev.type === 'DELETED') return;
      schedule(ns, name);
    }
  });

  // ------------------------------------------------------------------ subresources.kubevirt.io

  const vmNotFound = (name: string): ApiError =>
    new ApiError(404, `virtualmachine.kubevirt.io "${name}" not found`, 'NotFound', { name, group: GROUP, kind: 'virtualmachine' });
  const vmiNotFound = (name: string): ApiError =>
    new ApiError(404, `virtualmachineinstance.kubevirt.io "${name}" not found`, 'NotFound', { name, group: GROUP, kind: 'virtualmachineinstance' });
  const vmConflict = (name: string, why: string): ApiError => conflict(GROUP, 'virtualmachine', name, why);
  const vmiConflict = (name: string, why: string): ApiError => conflict(GROUP, 'virtualmachineinstance', name, why);
  const internal = (why: string): ApiError => new ApiError(500, `Internal error occurred: ${why}`, 'InternalError', { causes: [{ message: why }] });

  const addChangeRequests = (vm: KubeObject, reqs: ChangeRequest[], dryRun: boolean): void => {
    const st = obj(vm.status);
    const existing = arr<ChangeRequest>(st.stateChangeRequests);
    const onlyStop = reqs.length === 1 && reqs[0]?.action === 'Stop';
    if (existing.length > 0 && !onlyStop) throw internal('unable to complete request: stop/start already underway');
    if (dryRun) return;
    st.stateChangeRequests = reqs;
    vm.status = st;
    write(vmT, vm);
    schedule(vm.metadata.namespace ?? '', vm.metadata.name ?? '');
  };

  const setRunning = (vm: KubeObject, running: boolean, dryRun: boolean): void => {
    if (dryRun) return;
    const spec = obj(vm.spec);
    if (spec.runStrategy !== undefined) spec.runStrategy = running ? 'Always' : 'Halted';
    else spec.running = running;
    vm.spec = spec;
    store.update(vmT, vm, { scope: 'main', force: true });
  };

  const graceOf = (v: unknown, field: string): number | undefined => {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v)) throw badRequest(`Can not unmarshal Request body to struct, error: ${field} must be an integer`);
    return v;
  };

  const start = (req: SubresourceRequest): { code: number } => {
    const body = parseBody(req.body);
    const dryRun = isDryRun(body);
    const vm = getVm(req.namespace, req.name);
    if (!vm) throw vmNotFound(req.name);
    const vmi = getVmi(req.namespace, req.name);
    if (vmi && !isFinal(vmi) && phaseOf(vmi) !== 'Unknown' && phaseOf(vmi) !== '') throw vmConflict(req.name, 'VM is already running');
    const paused = body.paused === true;
    const rs = runStrategyOf(vm);
    switch (rs) {
      case 'Halted':
        if (paused) addChangeRequests(vm, [{ action: 'Start', data: { paused: 'true' } }], dryRun);
        else setRunning(vm, true, dryRun);
        break;
      case 'RerunOnFailure':
      case 'Manual': {
        if (rs === 'RerunOnFailure' && phaseOf(vmi) === 'Failed') throw vmConflict(req.name, 'RerunOnFailure does not support starting VM from failed state');
        const needsRestart = (rs === 'RerunOnFailure' && phaseOf(vmi) === 'Succeeded') || (rs === 'Manual' && isFinal(vmi));
        const startReq: ChangeRequest = { action: 'Start', ...(paused ? { data: { paused: 'true' } } : {}) };
        addChangeRequests(vm, needsRestart ? [{ action: 'Stop', uid: vmi?.metadata.uid }, startReq] : [startReq], dryRun);
        break;
      }
      case 'Always':
      case 'Once':
        throw vmConflict(req.name, `${rs} does not support manual start requests`);
    }
    return { code: 202 };
  };

  const stop = (req: SubresourceRequest): { code: number } => {
    const body = parseBody(req.body);
    const dryRun = isDryRun(body);
    // KubeVirt's StopOptions calls it gracePeriod; gracePeriodSeconds is accepted as an alias
    const grace = graceOf(body.gracePeriod ?? body.gracePeriodSeconds, 'gracePeriod');
    const vm = getVm(req.namespace, req.name);
    if (!vm) throw vmNotFound(req.name);
    const rs = runStrategyOf(vm);
    const vmi = getVmi(req.namespace, req.name);
    const live = !!vmi && !isFinal(vmi);
    let oldGrace = 0;
    if (vmi && live && grace !== undefined) {
      oldGrace = (obj(vmi.spec).terminationGracePeriodSeconds as number | undefined) ?? 0;
    }
    if (rs === 'Halted') {
      if (!live) throw vmConflict(req.name, 'VM is not running');
      const hasTerm = obj(vmi?.spec).terminationGracePeriodSeconds !== undefined;
      if (grace === undefined || (hasTerm && grace >= oldGrace)) {
        throw vmConflict(req.name, 'Halted only supports manual stop requests with a shorter graceperiod');
      }
    }
    if ((rs === 'Manual' || rs === 'RerunOnFailure') && !live) throw vmConflict(req.name, 'VM is not running');
    if (vmi && live && grace !== undefined && !dryRun) {
      const spec = obj(vmi.spec);
      spec.terminationGracePeriodSeconds = grace;
      vmi.spec = spec;
      write(vmiT, vmi);
    }
    switch (rs) {
      case 'Halted':
      case 'Manual':
      case 'RerunOnFailure': // current KubeVirt keeps RerunOnFailure and asks virt-controller to stop
        addChangeRequests(vm, [{ action: 'Stop', uid: vmi?.metadata.uid }], dryRun);
        break;
      default:
        setRunning(vm, false, dryRun);
    }
    if (!dryRun && grace === 0 && vmi) {
      // a forced stop: the VMI goes at once
      deleteVmi(req.namespace, req.name, 0);
    }
    return { code: 202 };
  };

  const restart = (req: SubresourceRequest): { code: number } => {
    const body = parseBody(req.body);
    const dryRun = isDryRun(body);
    const grace = graceOf(body.gracePeriodSeconds, 'gracePeriodSeconds');
    if (grace !== undefined && grace > 0) throw badRequest('For force restart, only gracePeriod=0 is supported for now');
    if (grace !== undefined && grace < 0) throw badRequest('gracePeriod has to be greater or equal to 0');
    const vm = getVm(req.namespace, req.name);
    if (!vm) throw vmNotFound(req.name);
    const rs = runStrategyOf(vm);
    if (rs === 'Halted' || rs === 'Once') throw vmConflict(req.name, `RunStategy ${rs} does not support manual restart requests`);
    const vmi = getVmi(req.namespace, req.name);
    if (!vmi) throw vmConflict(req.name, 'VM is not running: Halted');
    addChangeRequests(vm, [{ action: 'Stop', uid: vmi.metadata.uid }, { action: 'Start' }], dryRun);
    if (!dryRun && grace === 0) deleteVmi(req.namespace, req.name, 0);
    return { code: 202 };
  };

  const runningVmi = (req: SubresourceRequest, notRunning = 'VM is not running'): KubeObject => {
    const vmi = getVmi(req.namespace, req.name);
    if (!vmi) throw vmiNotFound(req.name);
    if (phaseOf(vmi) !== 'Running') throw vmiConflict(req.name, notRunning);
    return vmi;
  };

  const pause = (req: SubresourceRequest): { code: number } => {
    const body = parseBody(req.body);
    const vmi = runningVmi(req);
    if (obj(vmi.spec).livenessProbe) {
      throw new ApiError(403, `virtualmachineinstance.kubevirt.io "${req.name}" is forbidden: Pausing VMIs with LivenessProbe is currently not supported`, 'Forbidden', { name: req.name, group: GROUP, kind: 'virtualmachineinstance' });
    }
    if (conds(vmi).some((c) => c.type === 'Paused')) throw vmiConflict(req.name, 'VMI is already paused');
    if (!isDryRun(body)) {
      const st = obj(vmi.status);
      st.conditions = setCond(arr<Condition>(st.conditions), { type: 'Paused', status: 'True', reason: 'PausedByUser', message: 'VMI was paused by user' });
      vmi.status = st;
      write(vmiT, vmi);
    }
    return { code: 200 };
  };

  const unpause = (req: SubresourceRequest): { code: number } => {
    const body = parseBody(req.body);
    const vmi = runningVmi(req, 'VMI is not paused');
    if (!conds(vmi).some((c) => c.type === 'Paused')) throw vmiConflict(req.name, 'VMI is not paused');
    if (!isDryRun(body)) {
      const st = obj(vmi.status);
      st.conditions = arr<Condition>(st.conditions).filter((c) => c.type !== 'Paused');
      vmi.status = st;
      write(vmiT, vmi);
    }
    return { code: 200 };
  };

  const softreboot = (req: SubresourceRequest): { code: number } => {
    parseBody(req.body);
    const vmi = runningVmi(req);
    if (hasCond(vmi, 'Paused')) throw vmiConflict(req.name, 'VMI is paused');
    const acpi = obj(obj(obj(obj(vmi.spec).domain).features).acpi).enabled;
    if (!hasCond(vmi, 'AgentConnected') && acpi === false) {
      throw vmiConflict(req.name, 'VMI neither have the agent connected nor the ACPI feature enabled');
    }
    // the guest reboots: with rebootPolicy Terminate that ends the VMI (tests/compute/vm_lifecycle.go
    // "with reboot policy": a soft reboot recreates the VMI under Always, leaves it Succeeded otherwise)
    const uid = vmi.metadata.uid;
    clock.after(timing.phaseDelayMs, () => {
      const cur = getVmi(req.namespace, req.name);
      if (cur && cur.metadata.uid === uid && phaseOf(cur) === 'Running') guestReboot(req.namespace, req.name);
    });
    return { code: 200 };
  };

  const reset = (req: SubresourceRequest): { code: number } => {
    parseBody(req.body);
    runningVmi(req, 'VMI is not running');
    return { code: 200 };
  };

  const volumeOptions = (req: SubresourceRequest, add: boolean): VolumeRequest => {
    if (req.body === undefined || req.body === null) throw badRequest('Request with no body, a new name is expected as the request body');
    const b = parseBody(req.body);
    const name = typeof b.name === 'string' ? b.name : '';
    if (add) {
      if (!name) throw badRequest('AddVolumeOptions requires name to be set');
      if (!b.disk || typeof b.disk !== 'object') throw badRequest('AddVolumeOptions requires disk to not be nil');
      if (!b.volumeSource || typeof b.volumeSource !== 'object') throw badRequest('AddVolumeOptions requires VolumeSource to not be nil');
      const src = clone(obj(b.volumeSource));
      if (src.dataVolume) src.dataVolume = { ...obj(src.dataVolume), hotpluggable: true };
      else if (src.persistentVolumeClaim) src.persistentVolumeClaim = { ...obj(src.persistentVolumeClaim), hotpluggable: true };
      return { addVolumeOptions: { name, disk: { ...clone(obj(b.disk)), name }, volumeSource: src, ...(Array.isArray(b.dryRun) ? { dryRun: b.dryRun as string[] } : {}) } };
    }
    if (!name) throw badRequest('RemoveVolumeOptions requires name to be set');
    return { removeVolumeOptions: { name, ...(Array.isArray(b.dryRun) ? { dryRun: b.dryRun as string[] } : {}) } };
  };

  const sourceName = (src: Obj): string => (obj(src.dataVolume).name as string | undefined) ?? (obj(src.persistentVolumeClaim).claimName as string | undefined) ?? '';

  const verifyVolume = (volumes: Obj[], r: VolumeRequest): string | undefined => {
    if (r.addVolumeOptions) {
      const o = r.addVolumeOptions;
      const srcName = sourceName(o.volumeSource);
      for (const v of volumes) {
        if (v.name === o.name) return `Unable to add volume [${o.name}] because volume with that name already exists`;
        if (srcName && sourceName(v) === srcName) return `Unable to add volume source [${srcName}] because it already exists`;
      }
      return undefined;
    }
    const n = r.removeVolumeOptions?.name ?? '';
    const v = volumes.find((x) => x.name === n || (sourceName(x) !== '' && sourceName(x) === n));
    if (!v) return `Unable to remove volume [${n}] because it does not exist`;
    const hot = !!(obj(v.dataVolume).hotpluggable || obj(v.persistentVolumeClaim).hotpluggable);
    if (!hot) return `Unable to remove volume [${String(v.name)}] because it is not hotpluggable`;
    return undefined;
  };

  /**
   * addvolume/removevolume (pkg/virt-api/rest/volumes.go): refused with 400 unless HotplugVolumes or
   * DeclarativeHotplugVolumes is on. With HotplugVolumes the VM call records a status.volumeRequest
   * that virt-controller applies to the template and the VMI; with only DeclarativeHotplugVolumes it
   * patches the template directly (vmVolumePatch: ApplyVolumeRequestOnVMISpec, through the VM
   * webhook), and declarative hotplug carries it to the VMI. Either way a request named like an
   * existing CD-ROM drive appends a second disk of that name, which the webhook rejects, and
   * removevolume drops the drive's disk with the volume.
   */
  const hotplugApiOn = (): void => {
    const g = hotplugGates();
    if (!g.hotplugVolumes && !g.declarativeHotplugVolumes) {
      throw badRequest('Enable DeclarativeHotplugVolumes or HotplugVolumes feature gate to use this API.');
    }
  };

  const vmVolume = (add: boolean) => (req: SubresourceRequest): { code: number } => {
    hotplugApiOn();
    const r = volumeOptions(req, add);
    const vm = getVm(req.namespace, req.name);
    if (!vm) throw vmNotFound(req.name);
    const volumes = arr(obj(obj(obj(vm.spec).template).spec).volumes);
    const err = verifyVolume(volumes, r);
    if (err) throw vmConflict(req.name, err);
    const dry = (r.addVolumeOptions?.dryRun ?? r.removeVolumeOptions?.dryRun ?? []).includes('All');
    if (!hotplugGates().hotplugVolumes) {
      // vmVolumePatch: the template itself, through the VM webhook; an Invalid answer is passed on
      const spec = obj(vm.spec);
      const tpl = obj(spec.template);
      tpl.spec = applyVolumeRequest(obj(tpl.spec), r);
      spec.template = tpl;
      vm.spec = spec;
      try {
        store.update(vmT, vm, { scope: 'main', force: true, dryRun: dry });
      } catch (e) {
        if (e instanceof ApiError && e.code === 422) throw e;
        throw internal(`unable to patch vm: ${e instanceof Error ? e.message : String(e)}`);
      }
      return { code: 202 };
    }
    const st = obj(vm.status);
    const existing = arr<VolumeRequest>(st.volumeRequests);
    const n = r.addVolumeOptions?.name ?? r.removeVolumeOptions?.name ?? '';
    for (const e of existing) {
      if (add && e.addVolumeOptions?.name === n) throw vmConflict(req.name, `add volume request for volume [${n}] already exists`);
      if (add && e.removeVolumeOptions?.name === n) throw vmConflict(req.name, `unable to add volume since a remove volume request for volume [${n}] already exists and is still being processed`);
      if (!add && e.removeVolumeOptions?.name === n) throw vmConflict(req.name, `a remove volume request for volume [${n}] already exists and is still being processed`);
    }
    if (!dry) {
      st.volumeRequests = [...existing.filter((e) => add || e.addVolumeOptions?.name !== n), r];
      vm.status = st;
      write(vmT, vm);
      schedule(req.namespace, req.name);
    }
    return { code: 202 };
  };

  const vmiVolume = (add: boolean) => (req: SubresourceRequest): { code: number } => {
    hotplugApiOn();
    const r = volumeOptions(req, add);
    const vmi = getVmi(req.namespace, req.name);
    if (!vmi) throw vmiNotFound(req.name);
    // vmiVolumePatch: ephemeral hotplug into a VM's VMI only with HotplugVolumes
    const ownedByVm = (vmi.metadata.ownerReferences ?? []).some((o) => o.kind === 'VirtualMachine' && o.controller === true);
    if (ownedByVm && !hotplugGates().hotplugVolumes) throw badRequest(`VMI ${req.namespace}/${req.name} is owned by a VM`);
    if (phaseOf(vmi) !== 'Running') throw vmiConflict(req.name, 'VMI is not running');
    const err = verifyVolume(arr(obj(vmi.spec).volumes), r);
    if (err) throw vmiConflict(req.name, err);
    const dry = (r.addVolumeOptions?.dryRun ?? r.removeVolumeOptions?.dryRun ?? []).includes('All');
    vmi.spec = applyVolumeRequest(obj(vmi.spec), r);
    if (!dry) syncVolumeStatus(vmi);
    try {
      store.update(vmiT, vmi, { force: true, dryRun: dry });
    } catch (e) {
      if (e instanceof ApiError && e.code === 422) throw e;
      throw internal(`unable to patch vmi: ${e instanceof Error ? e.message : String(e)}`);
    }
    return { code: 202 };
  };

  const recorded =
    (action: string, fn: (req: SubresourceRequest) => { code: number }) =>
    (req: SubresourceRequest): { code: number; body?: unknown } => {
      try {
        const r = fn(req);
        actions.push({ action, namespace: req.namespace, name: req.name, body: clone(req.body), code: r.code });
        return r;
      } catch (e) {
        actions.push({ action, namespace: req.namespace, name: req.name, body: clone(req.body), code: e instanceof ApiError ? e.code : 500 });
        throw e;
      }
    };

  const vmSubs: [string, (req: SubresourceRequest) => { code: number }][] = [
    ['start', start],
    ['stop', stop],
    ['restart', restart],
    ['addvolume', vmVolume(true)],
    ['removevolume', vmVolume(false)],
  ];
  const vmiSubs: [string, (req: SubresourceRequest) => { code: number }][] = [
    ['pause', pause],
    ['unpause', unpause],
    ['softreboot', softreboot],
    ['reset', reset],
    ['addvolume', vmiVolume(true)],
    ['removevolume', vmiVolume(false)],
  ];
  for (const [sub, fn] of vmSubs) server.addSubresource(SUB_GROUP, 'v1', 'virtualmachines', sub, recorded(sub, fn));
  for (const [sub, fn] of vmiSubs) server.addSubresource(SUB_GROUP, 'v1', 'virtualmachineinstances', sub, recorded(sub, fn));

  // ------------------------------------------------------------------ test hooks

  const endVmi = (ns: string, name: string, phase: 'Succeeded' | 'Failed', reason: string): void => {
    const vmi = getVmi(ns, name);
    if (!vmi) throw new Error(`emulator: no VMI ${ns}/${name}`);
    if (isFinal(vmi)) return;
    clock.cancel(progressTimers.get(vmi.metadata.uid ?? ''));
    progressTimers.delete(vmi.metadata.uid ?? '');
    const st = obj(vmi.status);
    st.phase = phase;
    st.reason = reason;
    st.phaseTransitionTimestamps = [...arr(st.phaseTransitionTimestamps), { phase, phaseTransitionTimestamp: now() }];
    st.conditions = setCond(
      arr<Condition>(st.conditions).filter((c) => c.type !== 'Paused' && c.type !== 'AgentConnected'),
      { type: 'Ready', status: 'False', reason: 'PodTerminating', message: 'virt-launcher pod is terminating' },
    );
    vmi.status = st;
    vmi.metadata.finalizers = (vmi.metadata.finalizers ?? []).filter((f) => f !== FINALIZER);
    write(vmiT, vmi);
  };

  /**
   * A guest-initiated reboot. Without a rebootPolicy (or Reboot) libvirt restarts the guest inside
   * the same domain: the VMI, its uid and its spec (boot order) stay. With Terminate the domain gets
   * on_reboot=destroy (pkg/virt-launcher/virtwrap/converter/compute/reboot_policy.go) and goes
   * Shutoff; virt-handler reports the VMI Succeeded (pkg/virt-handler/vm.go), and the VM controller
   * recreates it from the template only under runStrategy Always.
   */
  function guestReboot(ns: string, name: string): void {
    const vmi = getVmi(ns, name);
    if (!vmi) throw new Error(`emulator: no VMI ${ns}/${name}`);
    if (phaseOf(vmi) !== 'Running') throw new Error(`emulator: VMI ${ns}/${name} is not running`);
    if (obj(obj(vmi.spec).domain).rebootPolicy === 'Terminate') endVmi(ns, name, 'Succeeded', 'GuestReboot');
    else reboots.set(vmi.metadata.uid ?? '', (reboots.get(vmi.metadata.uid ?? '') ?? 0) + 1);
  }

  return {
    actions,
    hotplugGates,
    setFeatureGates: (cfg) => {
      timing.gates = { ...(cfg.featureGates ? { featureGates: [...cfg.featureGates] } : {}), ...(cfg.disabledFeatureGates ? { disabledFeatureGates: [...cfg.disabledFeatureGates] } : {}) };
      // virt-controller re-syncs every VM when the KubeVirt CR changes
      for (const vm of store.list(vmT)) schedule(vm.metadata.namespace ?? '', vm.metadata.name ?? '');
    },
    guestReboot,
    warmReboots: (ns, name) => reboots.get(getVmi(ns, name)?.metadata.uid ?? '') ?? 0,
    guestShutdown: (ns, name) => endVmi(ns, name, 'Succeeded', 'GuestShutdown'),
    failVmi: (ns, name, reason = 'LauncherCrashed') => endVmi(ns, name, 'Failed', reason),
    setGuestAgent: (ns, name, info) => {
      if (info) agents.set(k(ns, name), clone(info));
      else agents.delete(k(ns, name));
      const vmi = getVmi(ns, name);
      if (vmi && phaseOf(vmi) === 'Running') {
        const st = obj(vmi.status);
        applyAgent(st, info);
        vmi.status = st;
        write(vmiT, vmi);
      }
    },
  };
}
