/**
 * The agent's own Role, as the controller generates it for this VM (src/controller/agent-rbac.ts),
 * grants exactly what the KubeVirt backend uses: a representative workload (watch, power, boot,
 * media) runs against the emulator as the agent's ServiceAccount bound to that Role only, every
 * request in its audit log must be allowed (by name: the emulator authorizes single-object
 * list/watch with their metadata.name field selector, like kube-apiserver), and every grant
 * (group, resource, verb, name) must be used.
 */
import { expect } from 'chai';
import type { KubeVirtMachine } from '../../src/backend/kubevirt/index.js';
import { agentRoleRules, cdromDrives, type PolicyRule } from '../../src/controller/agent-rbac.js';
import type { AuditEntry, ApiServerEmulator } from '../emulator/index.js';
import { grantServiceAccount } from '../emulator/helpers.js';
import { isBackendError, type Machine } from '../../src/backend/types.js';
import { KubeClient } from '../../src/kube/client.js';
import { nullLogger } from '../../src/common/logger.js';
import { MAX_BMC_VOLUMES } from '../../src/kube/names.js';
import { ConfigMapPersistence, KubeEventRecorder, eventsConfigMapName } from '../../src/events/kube.js';
import { SubscriptionManager } from '../../src/events/subscriptions.js';
import { captureLogger, emulatorPerTest, newMachine, startImageServer, until, vmFixture, waitPower } from './kubevirt-fixtures.js';

/** The Role the controller writes for the fixture VM (named after its CD-ROM drives). */
function agentRules(): PolicyRule[] {
  const vm = vmFixture({ runStrategy: 'Halted' });
  return agentRoleRules(vm.metadata.name!, cdromDrives(vm));
}

function resourceOf(a: AuditEntry): string {
  return a.subresource ? `${a.resource}/${a.subresource}` : a.resource;
}

function allows(rules: PolicyRule[], a: AuditEntry): boolean {
  return rules.some(
    (r) =>
      r.apiGroups.some((g) => g === '*' || g === a.group) &&
      r.resources.some((x) => x === '*' || x === resourceOf(a)) &&
      r.verbs.some((v) => v === '*' || v === a.verb) &&
      (!r.resourceNames?.length || (a.name !== undefined && r.resourceNames.includes(a.name))),
  );
}

describe('kubevirt backend: RBAC role covers the workload', function () {
  this.timeout(20000);
  let emu: ApiServerEmulator;
  let m: KubeVirtMachine | undefined;

  emulatorPerTest({}, {
    set: (e) => {
      emu = e;
    },
    get: () => emu,
  });

  it('has no wildcards, and names its objects in every rule but `create datavolumes`, `create configmaps` and events', () => {
    const unnamed = [
      { apiGroups: ['cdi.kubevirt.io'], resources: ['datavolumes'], verbs: ['create'] },
      { apiGroups: [''], resources: ['configmaps'], verbs: ['create'] },
      { apiGroups: [''], resources: ['events'], verbs: ['create', 'patch'] },
    ];
    for (const r of agentRules()) {
      expect(r.apiGroups).to.not.include('*');
      expect(r.resources).to.not.include('*');
      expect(r.verbs).to.not.include('*');
      if (!r.resourceNames?.length) expect(unnamed).to.deep.include(r);
    }
  });

  /** Install the generated Role and bind it to the agent's service account in the VM's namespace. */
  function bindAgentRole(): void {
    grantServiceAccount(emu, 'default', 'vm1-virtbmc', agentRules());
  }

  it('without the binding the API answers 403: Unavailable, and the log names the permission', async () => {
    emu.create(vmFixture({ runStrategy: 'Halted' }));
    const cap = captureLogger();
    m = await newMachine(emu, { kubeConfig: emu.asServiceAccount('default', 'vm1-virtbmc').makeKubeConfig(), logger: cap.logger });
    const err = await m.getPowerState().catch((e: unknown) => e);
    expect(isBackendError(err, 'Unavailable'), String(err)).to.equal(true);
    expect((err as Error).message).to.match(/RBAC.*get on virtualmachines\.kubevirt\.io/);
    expect(cap.lines().some((l) => l.includes('RBAC') && l.includes('"resource":"virtualmachines"'))).to.equal(true);
  });

  it('every request of a power/boot/media/watch workload is granted, and every grant is used', async () => {
    const images = await startImageServer({ '/os.iso': 2 ** 30 });
    try {
      emu.create(vmFixture({ runStrategy: 'Halted' }));
      bindAgentRole();
      // the backend runs as the agent's service account: the emulator enforces the role (403 otherwise)
      m = await newMachine(emu, { kubeConfig: emu.asServiceAccount('default', 'vm1-virtbmc').makeKubeConfig() });
      // (set-up writes the store directly: the audit log holds only the backend's requests)
      await m.power('on');
      await waitPower(m, 'On');
      // the serial console: its websocket GET must be granted
      const openConsole = (m as Machine).openConsole;
      expect(openConsole, 'the KubeVirt backend opens a serial console').to.be.a('function');
      const c = openConsole!.call(m);
      await until(() => emu.audit.some((a) => a.subresource === 'console'), 'console request');
      c.close();
      await m.power('gracefulRestart'); // nothing pending: a soft reboot
      await m.setBootOverride({ target: 'pxe', enabled: 'once', mode: 'UEFI' });
      await m.power('pause');
      await waitPower(m, 'Paused');
      await m.power('resume');
      await waitPower(m, 'On');
      await m.power('gracefulRestart'); // pending boot change: a graceful VMI restart
      await until(async () => (await m!.getBootOverride()).enabled === 'disabled', 'once consumed');
      await waitPower(m, 'On');
      await m.insertMedia('cdrom', { image: images.url('/os.iso') });
      await until(async () => (await m!.listMedia())[0]?.state === 'inserted', 'inserted');
      await m.ejectMedia('cdrom');
      // volumes over Redfish: every one of the fixed DataVolume names is created, read and deleted
      const made: string[] = [];
      for (let i = 0; i < MAX_BMC_VOLUMES; i++) made.push((await m.createVolume({ capacityBytes: 2 ** 30 })).id);
      expect((await m.listVolumes()).map((v) => v.id)).to.deep.equal(made);
      for (const id of made) await m.deleteVolume(id);
      expect(await m.listVolumes()).to.deep.equal([]);
      await m.power('forceRestart');
      await m.power('gracefulOff');
      await waitPower(m, 'Off');
      emu.faults.dropWatches(); // a watch restart re-lists
      await m.power('on');
      await m.power('forceOff');
      await waitPower(m, 'Off');
      await m.snapshot();
      // the agent's events (src/events/kube.ts) as the same service account: Kubernetes Events
      // (a new one, then a repeat that patches its count) and the subscriptions ConfigMap
      // (created, rewritten, read back)
      const sa = new KubeClient(emu.asServiceAccount('default', 'vm1-virtbmc').makeKubeConfig(), { logger: nullLogger() });
      const rec = new KubeEventRecorder({ client: sa, namespace: 'default', vmName: 'vm1', logger: nullLogger() });
      rec.record('Normal', 'PoweredOff', 'Power is Off');
      rec.record('Normal', 'PoweredOff', 'Power is Off');
      await rec.flushed();
      expect(rec.stats).to.deep.include({ created: 1, patched: 1, failed: 0 });
      const persistence = () => new ConfigMapPersistence({ client: sa, namespace: 'default', name: eventsConfigMapName('vm1') });
      const subs = new SubscriptionManager({ persistence: persistence() });
      await subs.load();
      await subs.create({ destination: 'http://127.0.0.1:9/', owner: 'admin', deliveryRetryPolicy: 'SuspendRetries' });
      await subs.update('1', { context: 'again' });
      const again = new SubscriptionManager({ persistence: persistence() });
      await again.load();
      expect(again.list().map((x) => x.context)).to.deep.equal(['again']);
    } finally {
      await images.close();
    }

    const rules = agentRules();
    const requests = emu.audit.filter((a) => !a.nonResourceURL);
    const show = (a: AuditEntry) => `${a.verb} ${a.group}/${resourceOf(a)}${a.name ? ` ${a.name}` : ''}`;
    expect(requests.filter((a) => a.code === 403).map(show)).to.deep.equal([]);
    const denied = requests.filter((a) => !allows(rules, a)).map(show);
    expect([...new Set(denied)]).to.deep.equal([]);

    // least privilege: every (group, resource, verb, name) the role grants was needed by the workload
    const used = new Set(requests.flatMap((a) => [`${a.group}|${resourceOf(a)}|${a.verb}|${a.name ?? ''}`, `${a.group}|${resourceOf(a)}|${a.verb}|*`]));
    const unused: string[] = [];
    for (const r of rules) {
      for (const g of r.apiGroups) for (const res of r.resources) for (const v of r.verbs) {
        for (const n of r.resourceNames?.length ? r.resourceNames : ['*']) if (!used.has(`${g}|${res}|${v}|${n}`)) unused.push(`${v} ${g}/${res} ${n}`);
      }
    }
    expect(unused).to.deep.equal([]);
  });
});
