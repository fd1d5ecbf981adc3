/**
 * The agent ClusterRole (config/rbac/agent_role.yaml) grants exactly what the KubeVirt backend
 * uses: a representative workload (watch, power, boot, media) runs against the emulator, and every
 * request in its audit log must be allowed by the Role's rules; every rule must be used.
 */
import { readFileSync } from 'node:fs';
import { expect } from 'chai';
import { parse } from 'yaml';
import type { KubeVirtMachine } from '../../src/backend/kubevirt/index.js';
import type { AuditEntry, ApiServerEmulator } from '../emulator/index.js';
import { isBackendError } from '../../src/backend/types.js';
import { captureLogger, emulatorPerTest, newMachine, startImageServer, until, vmFixture, waitPower } from './kubevirt-fixtures.js';

interface Rule {
  apiGroups?: string[];
  resources?: string[];
  verbs?: string[];
  resourceNames?: string[];
}

const ROLE_PATH = new URL('../../config/rbac/agent_role.yaml', import.meta.url);

function loadRole(): { kind: string; metadata: { name: string }; rules: Rule[] } {
  return parse(readFileSync(ROLE_PATH, 'utf8')) as { kind: string; metadata: { name: string }; rules: Rule[] };
}

function resourceOf(a: AuditEntry): string {
  return a.subresource ? `${a.resource}/${a.subresource}` : a.resource;
}

function allows(rules: Rule[], a: AuditEntry): boolean {
  return rules.some(
    (r) =>
      (r.apiGroups ?? []).some((g) => g === '*' || g === a.group) &&
      (r.resources ?? []).some((x) => x === '*' || x === resourceOf(a)) &&
      (r.verbs ?? []).some((v) => v === '*' || v === a.verb),
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

  it('is the ClusterRole named virtbmc without wildcards', () => {
    const role = loadRole();
    expect(role.kind).to.equal('ClusterRole');
    expect(role.metadata.name).to.equal('virtbmc');
    for (const r of role.rules) {
      expect(r.apiGroups).to.not.include('*');
      expect(r.resources).to.not.include('*');
      expect(r.verbs).to.not.include('*');
    }
  });

  /** Install the role file and bind it to the agent's service account in the VM's namespace. */
  function bindAgentRole(): void {
    const role = loadRole();
    emu.create({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name: role.metadata.name }, rules: role.rules } as never);
    emu.create({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: 'virtbmc-vm1', namespace: 'default' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'virtbmc' },
      subjects: [{ kind: 'ServiceAccount', name: 'vm1-virtbmc', namespace: 'default' }],
    } as never);
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
      await m.power('gracefulRestart'); // nothing pending: a soft reboot
      await m.setBootOverride({ target: 'pxe', enabled: 'once', mode: 'UEFI' });
      await m.power('pause');
      await waitPower(m, 'Paused');
      await m.power('resume');
      await waitPower(m, 'On');
      await m.power('gracefulRestart'); // pending boot change: a graceful VMI restart
      await until(async () => (await m!.getBootOverride()).enabled === 'disabled', 'once consumed');
      await waitPower(m, 'On');
      await m.insertMedia('cd0', { image: images.url('/os.iso') });
      await until(async () => (await m!.listMedia())[0]?.state === 'inserted', 'inserted');
      await m.ejectMedia('cd0');
      await m.power('forceRestart');
      await m.power('gracefulOff');
      await waitPower(m, 'Off');
      emu.faults.dropWatches(); // a watch restart re-lists
      await m.power('on');
      await m.power('forceOff');
      await waitPower(m, 'Off');
      await m.snapshot();
    } finally {
      await images.close();
    }

    const role = loadRole();
    const requests = emu.audit.filter((a) => !a.nonResourceURL);
    expect(requests.filter((a) => a.code === 403).map((a) => `${a.verb} ${a.group}/${resourceOf(a)}`)).to.deep.equal([]);
    const denied = requests.filter((a) => !allows(role.rules, a)).map((a) => `${a.verb} ${a.group}/${resourceOf(a)}`);
    expect([...new Set(denied)]).to.deep.equal([]);

    // least privilege: every (group, resource, verb) the role grants was needed by the workload
    const used = new Set(requests.map((a) => `${a.group}|${resourceOf(a)}|${a.verb}`));
    const unused: string[] = [];
    for (const r of role.rules) {
      for (const g of r.apiGroups ?? []) for (const res of r.resources ?? []) for (const v of r.verbs ?? []) {
        if (!used.has(`${g}|${res}|${v}`)) unused.push(`${v} ${g}/${res}`);
      }
    }
    expect(unused).to.deep.equal([]);
  });
});
