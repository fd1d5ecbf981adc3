/**
 * Inventory from a KubeVirt VM on the emulator: CPU topology and model, memory, disks with their
 * capacity (DataVolume template request; the VMI's PVC capacity once running), firmware and Secure
 * Boot, SKU / part number labels, the asset tag annotation; the writes (asset tag, Secure Boot with
 * the SMM KubeVirt's admitter requires), and the same values through Redfish with the agent on top.
 */
import { expect } from 'chai';
import { disks, firmware, topology } from '../../src/backend/kubevirt/identity.js';
import type { KubeVirtMachine } from '../../src/backend/kubevirt/index.js';
import type { VirtualMachine } from '../../src/backend/kubevirt/types.js';
import { isBackendError } from '../../src/backend/types.js';
import type { ApiServerEmulator, KubeObject } from '../emulator/index.js';
import { startTestAgent, type TestAgent } from '../helpers/agent.js';
import { emulatorPerTest, newMachine, until, vmFixture, vmOf, waitPower } from './kubevirt-fixtures.js';

type Domain = Record<string, unknown> & { cpu?: unknown; firmware?: Record<string, unknown>; features?: unknown; devices: { disks: unknown[] } };
const domainOf = (vm: KubeObject): Domain => (vm.spec as { template: { spec: { domain: Domain } } }).template.spec.domain;

/** The fixture VM with inventory: 2 sockets × 2 cores × 2 threads "Skylake-Server", a DataVolume disk, UEFI. */
function inventoryVm(o: { efi?: Record<string, unknown> | null; smm?: boolean; runStrategy?: string; name?: string } = {}): KubeObject {
  const vm = vmFixture({ runStrategy: o.runStrategy ?? 'Halted', ...(o.name ? { name: o.name } : {}) });
  vm.metadata.labels = { 'bmc.kubevirt.io/sku': 'gold-8c', 'bmc.kubevirt.io/part-number': 'PN-1234' };
  const spec = vm.spec as { dataVolumeTemplates?: unknown[]; template: { spec: { volumes: unknown[] } } };
  spec.dataVolumeTemplates = [
    { metadata: { name: 'vm1-data' }, spec: { storage: { resources: { requests: { storage: '40Gi' } } }, source: { blank: {} } } },
  ];
  spec.template.spec.volumes.push({ name: 'data', dataVolume: { name: 'vm1-data' } });
  const d = domainOf(vm);
  d.cpu = { sockets: 2, cores: 2, threads: 2, model: 'Skylake-Server' };
  d.devices.disks.push({ name: 'data', serial: 'DATA-0001', disk: { bus: 'sata' } });
  if (o.efi !== null) d.firmware = { ...d.firmware, bootloader: { efi: o.efi ?? { secureBoot: false } } };
  if (o.smm) d.features = { smm: { enabled: true } };
  return vm;
}

describe('kubevirt backend: inventory', function () {
  this.timeout(20000);
  let emu: ApiServerEmulator;
  let m: KubeVirtMachine;
  let t: TestAgent | undefined;

  emulatorPerTest({}, {
    set: (e) => {
      emu = e;
    },
    get: () => emu,
    others: () => [t],
  });
  afterEach(() => {
    t = undefined;
  });

  it('reads topology, memory, disks, firmware, SKU and part number from the VM', async () => {
    emu.create(inventoryVm());
    m = await newMachine(emu);
    const info = await m.getSystemInfo();
    expect(info.processors).to.deep.equal({ sockets: 2, cores: 2, threads: 2, model: 'Skylake-Server' });
    expect(info.cpuCount).to.equal(8);
    expect(info.memoryMiB).to.equal(2048);
    expect(info.disks).to.deep.equal([
      { id: 'root', kind: 'disk', bus: 'virtio', volume: 'ContainerDisk quay.io/containerdisks/fedora:40' },
      { id: 'cdrom', kind: 'cdrom', bus: 'sata', readOnly: true },
      { id: 'data', kind: 'disk', bus: 'sata', serialNumber: 'DATA-0001', volume: 'DataVolume vm1-data', capacityBytes: 40 * 2 ** 30 },
    ]);
    expect(info.firmware).to.deep.equal({ type: 'UEFI', secureBoot: false });
    expect(info).to.include({ sku: 'gold-8c', partNumber: 'PN-1234', assetTag: '' });
  });

  it('asset tag: set, changed and cleared as a VM annotation', async () => {
    emu.create(inventoryVm());
    m = await newMachine(emu);
    await m.setAssetTag('rack-3/u7');
    expect(vmOf(emu).metadata.annotations?.['bmc.kubevirt.io/asset-tag']).to.equal('rack-3/u7');
    expect((await m.getSystemInfo()).assetTag).to.equal('rack-3/u7');
    await m.setAssetTag('rack-4');
    expect(vmOf(emu).metadata.annotations?.['bmc.kubevirt.io/asset-tag']).to.equal('rack-4');
    await m.setAssetTag('');
    expect(vmOf(emu).metadata.annotations ?? {}).to.not.have.property('bmc.kubevirt.io/asset-tag');
    const err = await m.setAssetTag('x'.repeat(65)).catch((e: unknown) => e);
    expect(isBackendError(err, 'InvalidArgument')).to.equal(true);
  });

  it('the emulator refuses Secure Boot without SMM, as KubeVirt does', () => {
    expect(() => emu.create(inventoryVm({ efi: { secureBoot: true } }))).to.throw(/SecureBoot requires SMM/);
    // efi without secureBoot means Secure Boot on (the admitter's secureBootEnabled)
    expect(() => emu.create(inventoryVm({ efi: {} }))).to.throw(/SecureBoot requires SMM/);
  });

  it('Secure Boot on turns SMM on too, applies at the next start; off keeps SMM; BIOS refuses', async () => {
    emu.create(inventoryVm({ runStrategy: 'Always' }));
    m = await newMachine(emu);
    await waitPower(m, 'On');
    expect((await m.getSystemInfo()).firmware).to.deep.equal({ type: 'UEFI', secureBoot: false, secureBootCurrent: false });
    await m.setSecureBoot(true);
    const d = domainOf(vmOf(emu));
    expect((d.firmware?.bootloader as { efi: unknown }).efi).to.deep.equal({ secureBoot: true });
    expect(d.features).to.deep.equal({ smm: { enabled: true } });
    // the running VMI keeps what it booted with
    expect((await m.getSystemInfo()).firmware).to.deep.equal({ type: 'UEFI', secureBoot: true, secureBootCurrent: false });
    await m.power('forceRestart');
    await until(async () => (await m.getSystemInfo()).firmware?.secureBootCurrent === true, 'the new VMI boots with Secure Boot');
    await m.setSecureBoot(false);
    expect(domainOf(vmOf(emu)).features).to.deep.equal({ smm: { enabled: true } });
    expect((domainOf(vmOf(emu)).firmware?.bootloader as { efi: unknown }).efi).to.deep.equal({ secureBoot: false });
    // unchanged: no spec write (metadata.generation counts spec changes)
    const gen = vmOf(emu).metadata.generation;
    expect(gen).to.be.a('number');
    await m.setSecureBoot(false);
    expect(vmOf(emu).metadata.generation).to.equal(gen);

    await m.close();
    emu.create(inventoryVm({ efi: null, name: 'vm2' }));
    const bios = await newMachine(emu, { name: 'vm2' });
    expect((await bios.getSystemInfo()).firmware).to.deep.equal({ type: 'BIOS', secureBoot: false });
    const err = await bios.setSecureBoot(true).catch((e: unknown) => e);
    expect(isBackendError(err, 'Conflict')).to.equal(true);
  });

  it('through Redfish: Processors, Drives, SecureBoot PATCH and AssetTag PATCH change the VM', async () => {
    emu.create(inventoryVm());
    m = await newMachine(emu);
    t = await startTestAgent({ ipmi: false, machine: m });
    const auth = { authorization: 'Basic ' + Buffer.from('admin:password').toString('base64') };
    const get = async (p: string): Promise<Record<string, unknown>> => (await (await fetch(t!.redfishUrl + p, { headers: auth })).json()) as Record<string, unknown>;
    const patch = async (p: string, body: unknown): Promise<Response> =>
      fetch(t!.redfishUrl + p, { method: 'PATCH', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify(body) });

    const sys = await get('/redfish/v1/Systems/1');
    expect(sys.ProcessorSummary).to.deep.include({ Count: 2, CoreCount: 4, LogicalProcessorCount: 8, Model: 'Skylake-Server' });
    expect(sys).to.include({ SKU: 'gold-8c', PartNumber: 'PN-1234' });
    // KubeVirt reports no firmware build: BiosVersion and the firmware inventory's Version are null (unknown)
    expect(sys.BiosVersion).to.equal(null);
    expect((await get('/redfish/v1/UpdateService/FirmwareInventory/SystemFirmware')).Version).to.equal(null);
    expect((await get('/redfish/v1/Systems/1/Processors'))['Members@odata.count']).to.equal(2);
    const data = await get('/redfish/v1/Systems/1/Storage/1/Drives/data');
    expect(data).to.include({ CapacityBytes: 40 * 2 ** 30, Protocol: 'SATA', SerialNumber: 'DATA-0001' });

    expect((await patch('/redfish/v1/Systems/1', { AssetTag: 'DC1-R12' })).status).to.equal(200);
    expect(vmOf(emu).metadata.annotations?.['bmc.kubevirt.io/asset-tag']).to.equal('DC1-R12');
    const sb = await patch('/redfish/v1/Systems/1/SecureBoot', { SecureBootEnable: true });
    expect(sb.status).to.equal(200);
    expect(((await sb.json()) as Record<string, unknown>).SecureBootEnable).to.equal(true);
    expect(domainOf(vmOf(emu)).features).to.deep.equal({ smm: { enabled: true } });
  });
});

describe('kubevirt identity: disk capacity and firmware (pure)', () => {
  const vm = (): VirtualMachine => inventoryVm() as unknown as VirtualMachine;
  it('prefers the capacity the VMI reports from the PVC over the template request', () => {
    const v = vm();
    const vmi = { spec: {}, status: { volumeStatus: [{ name: 'data', persistentVolumeClaimInfo: { claimName: 'vm1-data', capacity: { storage: '42Gi' } } }] } };
    expect(disks(v, vmi).find((d) => d.id === 'data')?.capacityBytes).to.equal(42 * 2 ** 30);
    expect(disks(v, undefined).find((d) => d.id === 'data')?.capacityBytes).to.equal(40 * 2 ** 30);
  });
  it('topology follows virt-launcher: limits, else requests, as sockets when no topology', () => {
    expect(topology({ resources: { requests: { cpu: '3' }, limits: { cpu: '1500m' } } })).to.deep.equal({ sockets: 2, cores: 1, threads: 1, model: 'Virtual CPU' });
    expect(topology({ cpu: { cores: 4 } })).to.deep.equal({ sockets: 1, cores: 4, threads: 1, model: 'Virtual CPU' });
  });
  it('efi without secureBoot is Secure Boot on; bios or no bootloader is BIOS', () => {
    const v = vm();
    (v.spec!.template!.spec!.domain!.firmware!.bootloader as Record<string, unknown>) = { efi: {} };
    expect(firmware(v, undefined)).to.deep.equal({ type: 'UEFI', secureBoot: true });
    (v.spec!.template!.spec!.domain!.firmware!.bootloader as Record<string, unknown>) = { bios: {} };
    expect(firmware(v, undefined)).to.deep.equal({ type: 'BIOS', secureBoot: false });
  });
});
