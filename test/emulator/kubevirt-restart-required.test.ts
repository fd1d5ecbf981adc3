/**
 * The emulator's RestartRequired (virt-controller syncRestartRequired), rebootPolicy admission and
 * guest reboots, against upstream KubeVirt behaviour (see restart-required.ts and kubevirt.ts).
 */
import type { KubeConfig } from '@kubernetes/client-node';
import { expect } from 'chai';
import { ApiError, type ApiServerEmulator, type KubeObject } from './index.js';
import { emulatorPerTest, vmiSubresource, vmSubresource } from './helpers.js';
import { restartRequired, validLiveUpdateDisks } from './restart-required.js';

const NS = 'default';
type Cond = { type: string; status: string; reason?: string; message?: string };
type Spec = {
  runStrategy?: string;
  template: {
    spec: {
      domain: Record<string, unknown> & { devices: { disks: Record<string, unknown>[]; interfaces: Record<string, unknown>[] } };
      volumes: Record<string, unknown>[];
      [k: string]: unknown;
    };
  };
};

function vmObj(name: string, runStrategy: string, domain: Record<string, unknown> = {}): KubeObject {
  return {
    apiVersion: 'kubevirt.io/v1',
    kind: 'VirtualMachine',
    metadata: { name, namespace: NS },
    spec: {
      runStrategy,
      template: {
        metadata: {},
        spec: {
          domain: {
            cpu: { cores: 1, sockets: 1 },
            memory: { guest: '1Gi' },
            firmware: { uuid: '11111111-2222-3333-4444-555555555555' },
            devices: {
              disks: [{ name: 'root', disk: { bus: 'virtio' } }, { name: 'cdrom', cdrom: { bus: 'sata' } }],
              interfaces: [{ name: 'default', masquerade: {} }],
            },
            ...domain,
          },
          networks: [{ name: 'default', pod: {} }],
          volumes: [{ name: 'root', containerDisk: { image: 'img' } }],
        },
      },
    },
  };
}

describe('apiserver emulator: KubeVirt RestartRequired, rebootPolicy, guest reboot', () => {
  let emu: ApiServerEmulator;
  let kc: KubeConfig;

  const vm = (name = 'vm'): KubeObject => emu.get('kubevirt.io/v1', 'VirtualMachine', NS, name)!;
  const vmi = (name = 'vm'): KubeObject | undefined => emu.get('kubevirt.io/v1', 'VirtualMachineInstance', NS, name);
  const phase = (name = 'vm'): string | undefined => (vmi(name)?.status as { phase?: string } | undefined)?.phase;
  const cond = (name = 'vm'): Cond | undefined => ((vm(name).status as { conditions?: Cond[] } | undefined)?.conditions ?? []).find((c) => c.type === 'RestartRequired');
  const flagged = (name = 'vm'): boolean => cond(name)?.status === 'True';
  const running = (name = 'vm', notUid?: string): Promise<KubeObject> =>
    emu.waitFor(() => phase(name) === 'Running' && vmi(name)!.metadata.uid !== notUid && (vm(name).status as { printableStatus?: string }).printableStatus === 'Running' && vmi(name));
  const edit = (fn: (s: Spec) => void, name = 'vm'): void => {
    const v = vm(name);
    fn(v.spec as Spec);
    emu.update(v);
  };
  /** the VM controller has run every reconcile it had scheduled */
  const settle = (): Promise<void> => emu.settled();

  emulatorPerTest({ vmiPhaseDelayMs: 5, vmiStopDelayMs: 30 }, (e) => {
    emu = e;
    kc = e.makeKubeConfig();
  });

  it('a boot order change on a running VM raises it (upstream message, no reason); changing it back clears it', async () => {
    emu.create(vmObj('vm', 'Always'));
    await running();
    edit((s) => (s.template.spec.domain.devices.disks[1]!.bootOrder = 1));
    await emu.waitFor(() => flagged());
    expect(cond()).to.deep.include({ status: 'True', message: 'a non-live-updatable field was changed in the template spec' });
    expect(cond()!.reason).to.equal(undefined);
    // the same again as the VMI started with: nothing differs, syncRestartRequired removes it (kubevirt#16606)
    edit((s) => delete s.template.spec.domain.devices.disks[1]!.bootOrder);
    await emu.waitFor(() => cond() === undefined);
    // a bootloader change is not live either
    edit((s) => ((s.template.spec.domain.firmware as Record<string, unknown>).bootloader = { efi: { secureBoot: false } }));
    await emu.waitFor(() => flagged());
  });

  it('live-updatable fields do not raise it: CPU sockets, guest memory, placement, hotplug volumes', async () => {
    emu.create(vmObj('vm', 'Always'));
    await running();
    edit((s) => {
      (s.template.spec.domain.cpu as Record<string, unknown>).sockets = 2;
      s.template.spec.domain.memory = { guest: '2Gi' };
      s.template.spec.nodeSelector = { zone: 'a' };
      s.template.spec.tolerations = [{ key: 'k', operator: 'Exists' }];
      // the drive gets a hotpluggable volume named like it (declarative CD-ROM inject)
      s.template.spec.volumes.push({ name: 'cdrom', dataVolume: { name: 'iso', hotpluggable: true } });
    });
    await settle();
    expect(cond(), JSON.stringify(cond())).to.equal(undefined);
    // cores are not live
    edit((s) => ((s.template.spec.domain.cpu as Record<string, unknown>).cores = 2));
    await emu.waitFor(() => flagged());
  });

  it('the pure comparison: removing a CD-ROM drive, or a non-hotplug volume, needs a restart', () => {
    const base = (vmObj('x', 'Always').spec as Spec);
    const cur = JSON.parse(JSON.stringify(base)) as Spec;
    cur.template.spec.domain.devices.disks = cur.template.spec.domain.devices.disks.filter((d) => d.name !== 'cdrom');
    expect(validLiveUpdateDisks(base.template.spec, cur.template.spec)).to.equal(false);
    expect(restartRequired(base as never, cur as never, undefined)).to.equal(true);
    const vol = JSON.parse(JSON.stringify(base)) as Spec;
    vol.template.spec.volumes.push({ name: 'data', persistentVolumeClaim: { claimName: 'pvc' } });
    expect(restartRequired(base as never, vol as never, undefined)).to.equal(true);
    vol.template.spec.volumes[1] = { name: 'data', persistentVolumeClaim: { claimName: 'pvc', hotpluggable: true } };
    expect(restartRequired(base as never, vol as never, undefined)).to.equal(false);
    // an empty list is the same as none (Semantic.DeepEqual)
    const empty = JSON.parse(JSON.stringify(base)) as Spec;
    empty.template.spec.tolerations = [];
    expect(restartRequired(base as never, empty as never, undefined, { rolloutStrategy: 'Stage' })).to.equal(false);
    empty.template.spec.tolerations = [{ key: 'k', operator: 'Exists' }];
    expect(restartRequired(base as never, empty as never, undefined, { rolloutStrategy: 'Stage' })).to.equal(true);
    expect(restartRequired(base as never, empty as never, undefined)).to.equal(false); // LiveUpdate: placement is live
  });

  it('raised while the VMI exists it stays on the stopped VM until the next start; edits with no VMI raise nothing', async () => {
    emu.create(vmObj('vm', 'Always'));
    const first = await running();
    edit((s) => (s.template.spec.domain.devices.interfaces[0]!.bootOrder = 1));
    await emu.waitFor(() => flagged());
    expect((await vmSubresource(kc, NS, 'vm', 'stop')).status).to.equal(202);
    await emu.waitFor(() => !vmi());
    await settle();
    // sync() only compares while a VMI exists (getLastVMRevisionSpec), so nothing clears it now
    expect(flagged()).to.equal(true);
    // a change with no VMI is not compared at all
    edit((s) => (s.template.spec.domain.devices.disks[0]!.bootOrder = 2));
    await settle();
    expect(flagged()).to.equal(true);
    expect((await vmSubresource(kc, NS, 'vm', 'start')).status).to.equal(202);
    await running('vm', first.metadata.uid);
    await emu.waitFor(() => cond() === undefined);

    // stopped first, then edited: never raised
    expect((await vmSubresource(kc, NS, 'vm', 'stop')).status).to.equal(202);
    await emu.waitFor(() => !vmi());
    edit((s) => delete s.template.spec.domain.devices.interfaces[0]!.bootOrder);
    await settle();
    expect(cond()).to.equal(undefined);
  });

  it('rebootPolicy: accepted with the RebootPolicy gate (Beta in v1.9: on unless disabled); refused without it or with a bad value', async () => {
    emu.create(vmObj('ok', 'Halted', { rebootPolicy: 'Terminate' }));
    emu.kubevirt.setFeatureGates({ disabledFeatureGates: ['RebootPolicy'] });
    let err: unknown;
    try {
      emu.create(vmObj('off', 'Halted', { rebootPolicy: 'Terminate' }));
    } catch (e) {
      err = e;
    }
    expect(err).to.be.instanceOf(ApiError);
    expect((err as ApiError).code).to.equal(422);
    expect((err as ApiError).message).to.equal(
      'admission webhook "virtualmachine-validator.kubevirt.io" denied the request: RebootPolicy is specified but the RebootPolicy feature gate is not enabled',
    );
    // the VMI create admitter runs the same check
    const vmiErr = (() => {
      try {
        emu.create({ apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachineInstance', metadata: { name: 'v', namespace: NS }, spec: { domain: { rebootPolicy: 'Terminate', devices: {} } } });
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect((vmiErr as ApiError | undefined)?.message).to.equal(
      'admission webhook "virtualmachineinstances-create-validator.kubevirt.io" denied the request: RebootPolicy is specified but the RebootPolicy feature gate is not enabled',
    );
    // over the API too, with the Status body
    const r = await rawPost(kc, vmObj('off2', 'Halted', { rebootPolicy: 'Reboot' }));
    expect(r.status).to.equal(422);
    emu.kubevirt.setFeatureGates({ featureGates: ['RebootPolicy'] });
    const bad = await rawPost(kc, vmObj('bad', 'Halted', { rebootPolicy: 'Sometimes' }));
    expect(bad.status).to.equal(422);
    expect(JSON.stringify(bad.body)).to.contain('Unsupported value: \\"Sometimes\\"');
    expect((await rawPost(kc, vmObj('on', 'Halted', { rebootPolicy: 'Reboot' }))).status).to.equal(201);
  });

  it('guest reboot: a warm reboot keeps the VMI and its boot order; with rebootPolicy Terminate the VMI ends and Always recreates it from the template', async () => {
    emu.create(vmObj('warm', 'Always'));
    const w = await running('warm');
    edit((s) => (s.template.spec.domain.devices.disks[1]!.bootOrder = 1), 'warm');
    emu.kubevirt.guestReboot(NS, 'warm');
    await settle();
    expect(vmi('warm')!.metadata.uid).to.equal(w.metadata.uid);
    expect(emu.kubevirt.warmReboots(NS, 'warm')).to.equal(1);
    expect((vmi('warm')!.spec as Spec['template']['spec']).domain.devices.disks[1]!.bootOrder).to.equal(undefined);
    expect(flagged('warm')).to.equal(true); // still pending: the reboot did not apply it

    emu.create(vmObj('term', 'Always', { rebootPolicy: 'Terminate' }));
    const t = await running('term');
    edit((s) => (s.template.spec.domain.devices.disks[1]!.bootOrder = 1), 'term');
    await emu.waitFor(() => flagged('term'));
    emu.kubevirt.guestReboot(NS, 'term');
    const next = await running('term', t.metadata.uid);
    expect((next.spec as Spec['template']['spec']).domain.devices.disks[1]!.bootOrder).to.equal(1);
    await emu.waitFor(() => cond('term') === undefined);
  });

  it('rebootPolicy Terminate under Manual: a soft reboot (the guest reboots) leaves the VMI Succeeded (no new VMI)', async () => {
    emu.create(vmObj('m', 'Manual', { rebootPolicy: 'Terminate' }));
    expect((await vmSubresource(kc, NS, 'm', 'start')).status).to.equal(202);
    const first = await running('m');
    expect((await vmiSubresource(kc, NS, 'm', 'softreboot')).status).to.equal(200);
    await emu.waitFor(() => phase('m') === 'Succeeded');
    await settle();
    expect(vmi('m')!.metadata.uid).to.equal(first.metadata.uid);
    expect(phase('m')).to.equal('Succeeded');
  });
});

async function rawPost(kc: KubeConfig, body: KubeObject): Promise<{ status: number; body: unknown }> {
  const { rawRequest } = await import('./helpers.js');
  return rawRequest(kc, 'POST', `/apis/kubevirt.io/v1/namespaces/${NS}/virtualmachines`, body);
}
