/**
 * The agent in KubeVirt mode end to end: startAgent with the KubeVirt machine against the
 * apiserver emulator, driven by the real ipmitool (RMCP+, cipher suite 17) and by Redfish over
 * HTTP. Assertions look at the cluster objects (VM spec, VMI) as well as at the clients' output.
 */
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { expect } from 'chai';
import type { KubeVirtMachine } from '../../src/backend/kubevirt/index.js';
import { ONCE_ANNOTATION } from '../../src/backend/kubevirt/boot.js';
import { ADMIN, startTestAgent, type TestAgent } from '../helpers/agent.js';
import type { ApiServerEmulator } from '../emulator/index.js';
import {
  bootOrders,
  newMachine,
  startEmulator,
  startImageServer,
  until,
  vmFixture,
  vmOf,
  vmiOf,
  vmiPhase,
  type ImageServer,
} from '../backend/kubevirt-fixtures.js';
import { run, type Run } from '../helpers/exec.js';
import { havePythonModule, requireClient } from '../helpers/clients.js';
import { spawnVirtbmc } from '../helpers/virtbmc-process.js';

const exec = (bin: string, args: string[], timeoutMs = 20_000) => run(bin, args, timeoutMs);


const SYS = '/redfish/v1/Systems/1';
const BASIC = 'Basic ' + Buffer.from(`${ADMIN.username}:${ADMIN.password}`).toString('base64');

describe('KubeVirt agent end to end (ipmitool, Redfish) @e2e', function () {
  this.timeout(60_000);
  let emu: ApiServerEmulator;
  let machine: KubeVirtMachine;
  let t: TestAgent;
  let images: ImageServer;

  const ipmitool = (cmd: string): Promise<Run> =>
    exec('ipmitool', [
      ...['-I', 'lanplus', '-C', '17', '-H', '127.0.0.1', '-p', String(t.ipmiPort)],
      ...['-U', ADMIN.username, '-P', ADMIN.password, '-N', '3', '-R', '3'],
      ...cmd.split(' '),
    ]);

  const rf = async (method: string, path: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> => {
    const res = await fetch(t.redfishUrl + path, {
      method,
      headers: { authorization: BASIC, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
  };

  beforeEach(async () => {
    t = undefined as unknown as TestAgent;
    emu = await startEmulator({ dataVolumeImportMs: 100 });
    emu.create(vmFixture({ runStrategy: 'Halted' }));
    machine = await newMachine(emu);
    t = await startTestAgent({ machine });
    images = await startImageServer({ '/install.iso': 700 * 2 ** 20 });
  });
  afterEach(async () => {
    // the agent closes the machine too; if the agent failed to start, close the machine here
    if (t as TestAgent | undefined) await t.close();
    else await (machine as KubeVirtMachine | undefined)?.close();
    await images?.close();
    await emu?.close();
  });

  it('ipmitool: power status/on, chassis bootdev pxe lands in the VM spec, unsupported devices are refused', async () => {
    expect((await ipmitool('power status')).out).to.contain('Chassis Power is off');
    const on = await ipmitool('power on');
    expect(on.code, on.out).to.equal(0);
    await until(() => vmiPhase(emu) === 'Running', 'VMI Running');
    await until(async () => (await ipmitool('power status')).out.includes('Chassis Power is on'), 'ipmitool power status on', 15_000);

    const boot = await ipmitool('chassis bootdev pxe');
    expect(boot.out).to.contain('Set Boot Device to pxe');
    expect(bootOrders(vmOf(emu))['interface/default']).to.equal(1);
    expect(vmOf(emu).metadata.annotations?.[ONCE_ANNOTATION]).to.be.a('string');
    expect((await ipmitool('chassis bootparam get 5')).out).to.contain('Force PXE');

    // BIOS setup has no KubeVirt equivalent: refused, nothing changes
    const bios = await ipmitool('chassis bootdev bios');
    expect(bios.out).to.not.contain('Set Boot Device to bios');
    expect(bios.out).to.match(/Invalid data field|not supported|failed/i);
    expect(bootOrders(vmOf(emu))['interface/default']).to.equal(1);

    // power reset = a new VMI, which consumes the once override; the template keeps the one-time
    // order while that VMI runs (no RestartRequired), and reads show the next boot
    const uid = vmiOf(emu)!.metadata.uid;
    expect((await ipmitool('power reset')).code).to.equal(0);
    await until(() => vmiPhase(emu) === 'Running' && vmiOf(emu)!.metadata.uid !== uid, 'new VMI');
    const booted = vmiOf(emu)!.metadata.uid;
    expect(bootOrders(vmiOf(emu), true)['interface/default']).to.equal(1);
    const consumedBy = (): string | undefined => {
      const raw = vmOf(emu).metadata.annotations?.[ONCE_ANNOTATION];
      return raw === undefined ? undefined : (JSON.parse(raw) as { consumedBy?: string }).consumedBy;
    };
    await until(() => consumedBy() === booted, 'once consumed');
    await until(async () => !(await ipmitool('chassis bootparam get 5')).out.includes('Force PXE'), 'boot flags: no override for the next boot');

    expect((await ipmitool('power off')).code).to.equal(0);
    await until(() => vmiOf(emu) === undefined, 'VMI gone');
    await until(() => vmOf(emu).metadata.annotations?.[ONCE_ANNOTATION] === undefined, 'previous order restored');
    expect(bootOrders(vmOf(emu))['interface/default']).to.equal(undefined);
    await until(async () => (await ipmitool('power status')).out.includes('Chassis Power is off'), 'power status off', 15_000);
  });

  it('Redfish: Reset and Boot PATCH drive KubeVirt; AllowableValues tell what KubeVirt can do', async () => {
    const sys = await rf('GET', SYS);
    expect(sys.status).to.equal(200);
    expect(sys.body.PowerState).to.equal('Off');
    expect(sys.body.UUID).to.equal('5a6f2c1e-7d3b-4c8a-9e1f-0b2c3d4e5f60');
    const bootInfo = sys.body.Boot as Record<string, unknown>;
    const targets = bootInfo['BootSourceOverrideTarget@Redfish.AllowableValues'] as string[];
    expect(targets).to.include.members(['Pxe', 'Hdd', 'Cd']);
    expect(targets).to.not.include('BiosSetup');
    expect(targets).to.not.include('UefiHttp');
    const resetInfo = JSON.stringify(sys.body.Actions) + JSON.stringify((await rf('GET', `${SYS}/ResetActionInfo`)).body);
    expect(resetInfo).to.not.contain('Nmi');

    expect((await rf('POST', `${SYS}/Actions/ComputerSystem.Reset`, { ResetType: 'On' })).status).to.be.oneOf([200, 202, 204]);
    await until(() => vmiPhase(emu) === 'Running', 'VMI Running');
    await until(async () => (await rf('GET', SYS)).body.PowerState === 'On', 'PowerState On');

    const patched = await rf('PATCH', SYS, { Boot: { BootSourceOverrideTarget: 'Cd', BootSourceOverrideEnabled: 'Continuous', BootSourceOverrideMode: 'UEFI' } });
    expect(patched.status, JSON.stringify(patched.body)).to.be.oneOf([200, 204]);
    expect(bootOrders(vmOf(emu))).to.deep.equal({ 'disk/cdrom': 1, 'disk/root': 2, 'interface/default': 3 });
    const fw = (vmOf(emu).spec as { template: { spec: { domain: { firmware: { bootloader?: unknown } } } } }).template.spec.domain.firmware;
    expect(fw.bootloader).to.deep.equal({ efi: { secureBoot: false } });
    expect(((await rf('GET', SYS)).body.Boot as Record<string, unknown>).BootSourceOverrideTarget).to.equal('Cd');

    const bad = await rf('PATCH', SYS, { Boot: { BootSourceOverrideTarget: 'BiosSetup', BootSourceOverrideEnabled: 'Once' } });
    expect(bad.status).to.be.within(400, 499);
    expect(bootOrders(vmOf(emu))['disk/cdrom']).to.equal(1);

    const uid = vmiOf(emu)!.metadata.uid;
    expect((await rf('POST', `${SYS}/Actions/ComputerSystem.Reset`, { ResetType: 'ForceRestart' })).status).to.be.oneOf([200, 202, 204]);
    await until(() => vmiPhase(emu) === 'Running' && vmiOf(emu)!.metadata.uid !== uid, 'new VMI after ForceRestart');
    expect(bootOrders(vmiOf(emu), true)['disk/cdrom']).to.equal(1);

    const nmi = await rf('POST', `${SYS}/Actions/ComputerSystem.Reset`, { ResetType: 'Nmi' });
    expect(nmi.status).to.be.within(400, 599);

    expect((await rf('POST', `${SYS}/Actions/ComputerSystem.Reset`, { ResetType: 'ForceOff' })).status).to.be.oneOf([200, 202, 204]);
    await until(() => vmiOf(emu) === undefined, 'VMI gone');
    await until(async () => (await rf('GET', SYS)).body.PowerState === 'Off', 'PowerState Off');
  });

  it('Redfish volumes: POST makes a blank DataVolume + VM disk (201), Status follows CDI and the next start; DELETE removes both, never the root disk', async () => {
    const VOLS = `${SYS}/Storage/1/Volumes`;
    const created = await rf('POST', VOLS, { CapacityBytes: 3 * 2 ** 30, Name: 'data' });
    expect(created.status, JSON.stringify(created.body)).to.equal(201);
    expect(created.body).to.deep.include({ Id: 'bmc-volume-1', Name: 'data', CapacityBytes: 3 * 2 ** 30, RAIDType: 'None' });
    const dv = emu.get('cdi.kubevirt.io/v1beta1', 'DataVolume', 'default', 'vm1-bmc-volume-1');
    expect(dv?.spec).to.deep.equal({ source: { blank: {} }, storage: { resources: { requests: { storage: '3Gi' } } } });
    const tpl = (vmOf(emu).spec as { template: { spec: { volumes: { name: string }[]; domain: { devices: { disks: { name: string }[] } } } } }).template.spec;
    expect(tpl.domain.devices.disks.map((d) => d.name)).to.include('bmc-volume-1');
    expect(tpl.volumes.map((v) => v.name)).to.include('bmc-volume-1');
    // CDI provisions it (emulated); the VM is off: ready, attached at the next start
    await until(async () => ((await rf('GET', `${VOLS}/bmc-volume-1`)).body.Status as { State?: string }).State === 'StandbyOffline', 'StandbyOffline');
    expect((await rf('POST', `${SYS}/Actions/ComputerSystem.Reset`, { ResetType: 'On' })).status).to.be.oneOf([200, 202, 204]);
    await until(async () => ((await rf('GET', `${VOLS}/bmc-volume-1`)).body.Status as { State?: string }).State === 'Enabled', 'attached by the start');
    const drive = await rf('GET', `${SYS}/Storage/1/Drives/bmc-volume-1`);
    expect(drive.body.Links).to.deep.include({ 'Volumes@odata.count': 1 });
    expect((await rf('DELETE', `${VOLS}/root`)).status).to.equal(404);
    const del = await rf('DELETE', `${VOLS}/bmc-volume-1`);
    expect(del.status, JSON.stringify(del.body)).to.equal(200); // the running guest keeps it until its next start
    await until(() => !emu.get('cdi.kubevirt.io/v1beta1', 'DataVolume', 'default', 'vm1-bmc-volume-1'), 'DataVolume deleted');
    const after = (vmOf(emu).spec as { template: { spec: { domain: { devices: { disks: { name: string }[] } } } } }).template.spec.domain.devices.disks.map((d) => d.name);
    expect(after).to.deep.equal(['root', 'cdrom']);
  });

  it('Redfish volume create retried with an Idempotency-Key: after a failure that left its DataVolume the retry completes it with that DataVolume; a restarted agent answers a retry with the same volume', async () => {
    const VOLS = `${SYS}/Storage/1/Volumes`;
    const DV = (): Record<string, unknown> & { metadata: { uid?: string } } => emu.get('cdi.kubevirt.io/v1beta1', 'DataVolume', 'default', 'vm1-bmc-volume-1')!;
    const post = async (agent: TestAgent): Promise<{ status: number; replayed: string | null; location: string | null; body: Record<string, unknown> }> => {
      const res = await fetch(agent.redfishUrl + VOLS, {
        method: 'POST',
        headers: { authorization: BASIC, 'content-type': 'application/json', 'Idempotency-Key': 'vol-1' },
        body: JSON.stringify({ CapacityBytes: 2 ** 30, Name: 'scratch' }),
      });
      return { status: res.status, replayed: res.headers.get('idempotent-replayed'), location: res.headers.get('location'), body: (await res.json()) as Record<string, unknown> };
    };
    // the VM patch fails, and so does the rollback's delete: the DataVolume stays behind
    emu.faults.failNext(1, 500, (r) => r.method === 'PATCH' && r.path.endsWith('/virtualmachines/vm1'));
    emu.faults.failNext(1, 500, (r) => r.method === 'DELETE' && r.path.includes('/datavolumes/'));
    const failed = await post(t);
    expect(failed.status, JSON.stringify(failed.body)).to.be.within(500, 599);
    const uid = DV().metadata.uid;
    expect(uid).to.be.a('string');
    const retry = await post(t);
    expect(retry.status, JSON.stringify(retry.body)).to.equal(201);
    expect(retry.body).to.deep.include({ Id: 'bmc-volume-1', Name: 'scratch' });
    expect(DV().metadata.uid, 'the first attempt\'s DataVolume, attached').to.equal(uid);
    // a restart: the answer cache is gone, the volume's request mark is not
    await t.close();
    machine = await newMachine(emu);
    t = await startTestAgent({ machine });
    const after = await post(t);
    expect([after.status, after.replayed, after.location]).to.deep.equal([201, 'true', `${VOLS}/bmc-volume-1`]);
    expect(emu.list('cdi.kubevirt.io/v1beta1', 'DataVolume', 'default')).to.have.length(1);
    const tpl = (vmOf(emu).spec as { template: { spec: { domain: { devices: { disks: { name: string }[] } } } } }).template.spec;
    expect(tpl.domain.devices.disks.map((d) => d.name)).to.deep.equal(['root', 'cdrom', 'bmc-volume-1']);
  });

  it('Redfish virtual media on a running VM with an empty CD-ROM drive: InsertMedia → 202 → task Completed → the VMI has the CD; EjectMedia leaves the drive', async () => {
    type Obj = Record<string, unknown>;
    const tplOf = () => (vmOf(emu).spec as { template: { spec: { volumes?: Obj[]; domain: { devices: { disks: Obj[] } } } } }).template.spec;
    const vmiSpec = () => vmiOf(emu)!.spec as { volumes?: Obj[]; domain: { devices: { disks: Obj[] } } };
    // the fixture's drive: disks: [{name: cdrom, cdrom: {bus: sata}}], no volume
    expect(tplOf().domain.devices.disks.find((d) => d.name === 'cdrom')).to.deep.include({ cdrom: { bus: 'sata', readonly: true } });
    expect(tplOf().volumes?.some((v) => v.name === 'cdrom')).to.equal(false);
    expect((await rf('POST', `${SYS}/Actions/ComputerSystem.Reset`, { ResetType: 'On' })).status).to.be.oneOf([200, 202, 204]);
    await until(() => vmiPhase(emu) === 'Running', 'VMI Running');
    const vmiUid = vmiOf(emu)!.metadata.uid;

    const base = `${SYS}/VirtualMedia`;
    const coll = await rf('GET', base);
    // one slot per CD-ROM drive, Id = the disk name; KubeVirt has no USB media
    expect((coll.body.Members as { '@odata.id': string }[]).map((x) => x['@odata.id'])).to.deep.equal([`${base}/cdrom`]);
    expect((await rf('GET', `${base}/UsbStick`)).status).to.equal(404);
    const before = await rf('GET', `${base}/cdrom`);
    expect(before.body).to.deep.include({ Id: 'cdrom', Inserted: false });

    const res = await fetch(t.redfishUrl + `${base}/cdrom/Actions/VirtualMedia.InsertMedia`, {
      method: 'POST',
      headers: { authorization: BASIC, 'content-type': 'application/json' },
      body: JSON.stringify({ Image: images.url('/install.iso'), TransferProtocolType: 'HTTP' }),
    });
    const accepted = (await res.json()) as Obj;
    expect(res.status, JSON.stringify(accepted)).to.equal(202);
    const monitor = res.headers.get('location');
    expect(monitor).to.be.a('string');
    const taskUri = accepted['@odata.id'] as string;
    expect(taskUri).to.match(/^\/redfish\/v1\/TaskService\/Tasks\/[^/]+$/);

    // follow the monitor as a client would: 202 while the task runs, something else once it ended
    const seen: number[] = [];
    await until(async () => {
      const r = await fetch(t.redfishUrl + monitor!, { headers: { authorization: BASIC } });
      await r.arrayBuffer();
      seen.push(r.status);
      return r.status !== 202;
    }, 'task monitor done', 20_000);
    expect(seen.at(-1)).to.not.equal(202);
    const task = await rf('GET', taskUri);
    expect(task.body, JSON.stringify(task.body)).to.deep.include({ TaskState: 'Completed', PercentComplete: 100 });

    // the VMI really has the CD: the volume in its spec and Ready in its volumeStatus
    const dvName = 'vm1-vmedia-cdrom';
    expect(images.requests).to.deep.equal([{ method: 'HEAD', url: '/install.iso' }]);
    const dv = emu.get('cdi.kubevirt.io/v1beta1', 'DataVolume', 'default', dvName)!;
    expect((dv.status as { phase: string }).phase).to.equal('Succeeded');
    expect(vmiSpec().volumes?.find((v) => v.name === 'cdrom')).to.deep.equal({ name: 'cdrom', dataVolume: { name: dvName, hotpluggable: true } });
    const vs = ((vmiOf(emu)!.status as { volumeStatus?: Obj[] }).volumeStatus ?? []).find((x) => x.name === 'cdrom');
    expect(vs).to.deep.include({ phase: 'Ready', reason: 'VolumeReady' });
    const inserted = await rf('GET', `${base}/cdrom`);
    expect(inserted.body).to.deep.include({ Inserted: true, Image: images.url('/install.iso') });

    const ej = await rf('POST', `${base}/cdrom/Actions/VirtualMedia.EjectMedia`, {});
    expect(ej.status, JSON.stringify(ej.body)).to.be.oneOf([200, 202, 204]);
    await until(() => emu.get('cdi.kubevirt.io/v1beta1', 'DataVolume', 'default', dvName) === undefined, 'DataVolume deleted');
    // the drive is still declared (VM and VMI), the volume is gone from both
    expect(tplOf().domain.devices.disks.map((d) => d.name)).to.deep.equal(['root', 'cdrom']);
    expect(tplOf().volumes?.some((v) => v.name === 'cdrom')).to.equal(false);
    await until(() => !vmiSpec().volumes?.some((v) => v.name === 'cdrom'), 'volume gone from the VMI');
    expect(vmiSpec().domain.devices.disks.map((d) => d.name)).to.deep.equal(['root', 'cdrom']);
    expect((await rf('GET', `${base}/cdrom`)).body.Inserted).to.equal(false);
    // all of it live: same VMI, no RestartRequired
    expect(vmiOf(emu)!.metadata.uid).to.equal(vmiUid);
    const conds = (vmOf(emu).status as { conditions?: { type: string; status: string }[] }).conditions ?? [];
    expect(conds.some((c) => c.type === 'RestartRequired' && c.status === 'True')).to.equal(false);
  });
  it('sushy (python3-sushy): insert_media on the CD-ROM drive, follow the task with its TaskMonitor to Completed, eject', async function () {
    const PY = '/usr/bin/python3';
    requireClient(this, existsSync(PY) && havePythonModule('sushy'), 'python3-sushy (Debian, /usr/bin/python3)');
    expect((await rf('POST', `${SYS}/Actions/ComputerSystem.Reset`, { ResetType: 'On' })).status).to.be.oneOf([200, 202, 204]);
    await until(() => vmiPhase(emu) === 'Running', 'VMI Running');
    // sushy's insert_media ignores the 202: find the task through the TaskService and follow its monitor
    const script = [
      'import json, sys, sushy',
      'from sushy import auth as sauth',
      'from sushy.taskmonitor import TaskMonitor',
      'base, slot, image = sys.argv[1:]',
      "s = sushy.Sushy(base, auth=sauth.SessionAuth(username='admin', password='password'))",
      "vm = s.get_manager('/redfish/v1/Managers/BMC').virtual_media.get_member('/redfish/v1/Managers/BMC/VirtualMedia/' + slot)",
      'vm.insert_media(image)',
      'task = max(s.get_task_service().tasks.get_members(), key=lambda t: int(t.identity))',
      'monitor = TaskMonitor(s._conn, task.task_monitor)',
      'monitor.wait(30)',
      'task.refresh(); vm.refresh()',
      'out = {"task": str(task.task_state), "percent": task.percent_complete, "monitor_status": monitor.response.status_code, "inserted": vm.inserted, "image": vm.image}',
      'vm.eject_media(); vm.refresh()',
      'out["after_eject"] = vm.inserted',
      "print('RESULT ' + json.dumps(out))",
    ].join('\n');
    const r = await exec(PY, ['-c', script, t.redfishUrl, 'cdrom', images.url('/install.iso')], 45_000);
    expect(r.code, r.out).to.equal(0);
    const line = r.out.split('\n').find((l) => l.startsWith('RESULT '));
    expect(line, r.out).to.be.a('string');
    const out = JSON.parse(line!.slice('RESULT '.length)) as Record<string, unknown>;
    expect(out).to.deep.include({ task: 'TaskState.COMPLETED', percent: 100, monitor_status: 204, inserted: true, image: images.url('/install.iso'), after_eject: false });
    // and in the cluster: the drive stays, our volume and DataVolume are gone
    const tpl = (vmOf(emu).spec as { template: { spec: { volumes?: { name: string }[]; domain: { devices: { disks: { name: string }[] } } } } }).template.spec;
    expect(tpl.domain.devices.disks.map((d) => d.name)).to.deep.equal(['root', 'cdrom']);
    expect(tpl.volumes?.some((v) => v.name === 'cdrom')).to.equal(false);
    await until(() => emu.get('cdi.kubevirt.io/v1beta1', 'DataVolume', 'default', 'vm1-vmedia-cdrom') === undefined, 'DataVolume deleted');
  });
});

describe('virtbmc CLI in KubeVirt mode @e2e', function () {
  // only stops a hung test (each agent start compiles it with tsx: seconds, more on a loaded core); nothing is timed
  this.timeout(180_000);

  it('serves a VM from a kubeconfig: ipmitool power on reaches KubeVirt, the token never reaches the logs', async () => {
    const emu = await startEmulator({ token: 'kube-token-do-not-log' });
    emu.create(vmFixture({ runStrategy: 'Halted' }));
    const env: NodeJS.ProcessEnv = { ...process.env, BMC_PASSWORD: 'cli-pw-123' };
    delete env.KUBECONFIG;
    const p = spawnVirtbmc(
      ['default', 'vm1', '--kubeconfig', emu.kubeconfigPath, '--address', '127.0.0.1', '--ipmi-port', '0', '--redfish-port', '0', '--log-level', 'debug'],
      { env },
    );
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    try {
      await until(() => /virtbmc ready/.test(out) || p.exitCode !== null, 'ready line', 150_000);
      const line = out.split('\n').find((l) => l.startsWith('virtbmc ready'))!;
      expect(line, err).to.contain('VirtualMachine default/vm1');
      const port = /ipmi=udp:\/\/127\.0\.0\.1:(\d+)/.exec(line)![1]!;
      const ipmi = (cmd: string) =>
        exec('ipmitool', ['-I', 'lanplus', '-C', '17', '-H', '127.0.0.1', '-p', port, '-U', 'admin', '-P', 'cli-pw-123', '-N', '3', '-R', '3', ...cmd.split(' ')]);
      expect((await ipmi('power status')).out).to.contain('Chassis Power is off');
      expect((await ipmi('power on')).code).to.equal(0);
      await until(() => vmiPhase(emu) === 'Running', 'VMI Running', 15_000);
      await until(async () => (await ipmi('power status')).out.includes('Chassis Power is on'), 'power status on', 15_000);
      p.kill('SIGTERM');
      const [code] = (await once(p, 'exit')) as [number];
      expect(code).to.equal(0);
      expect(err + out).to.not.include('kube-token-do-not-log');
      expect(err + out).to.not.include('cli-pw-123');
    } finally {
      if (p.exitCode === null) p.kill('SIGKILL');
      await emu.close();
    }
  });
});
