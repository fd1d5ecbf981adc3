/**
 * Inventory, UpdateService and CertificateService on the simulator: every new GET validated against
 * its DMTF schema (ajv, like resources-schema.test.ts), the values they carry, the PATCHes
 * (AssetTag on Systems/1, SecureBootEnable with its "applies at the next start" message) and
 * ReplaceCertificate with certificate files (new connections see the new certificate).
 */
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import type { TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import type { ValidateFunction } from 'ajv';
import { schemaValidator } from '../helpers/redfish-schema.js';
import { routes } from '../../generated/redfish/routes.js';
import type { SimulatorOptions } from '../../src/backend/simulator/simulator.js';
import { startTestAgent, type TestAgent } from '../helpers/agent.js';


const INVENTORY_GETS = [
  'getSystem', 'getServiceRoot',
  'listSystemProcessors', 'getSystemProcessor', 'listSystemMemory', 'getSystemMemory', 'listSystemStorage', 'getSystemStorage',
  'getSystemDrive', 'listSystemSimpleStorage', 'getSystemSimpleStorage', 'getSystemSecureBoot', 'getSystemBios',
  'getUpdateService', 'listFirmwareInventory', 'getFirmwareInventory', 'getCertificateService', 'getCertificateLocations',
  'listHttpsCertificates', 'getHttpsCertificate', 'getSystemEthernetInterface', 'getChassis', 'listChassisNetworkAdapters',
  'getChassisNetworkAdapter',
];
const AUTH = { authorization: 'Basic ' + Buffer.from('admin:password').toString('base64') };
const JSON_AUTH = { ...AUTH, 'content-type': 'application/json' };

async function get(t: TestAgent, path: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(t.redfishUrl + path, { headers: AUTH });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}
async function patch(t: TestAgent, path: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(t.redfishUrl + path, { method: 'PATCH', headers: JSON_AUTH, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

function validator(operationId: string): ValidateFunction {
  const route = routes.find((r) => r.operationId === operationId && r.method === 'GET');
  expect(route, operationId).to.not.equal(undefined);
  const ref = route!.responseSchemaRef;
  expect(ref, `response schema of ${operationId}`).to.be.a('string');
  const v = schemaValidator(ref as string);
  expect(v, `schema of ${operationId}`).to.be.a('function');
  return v!;
}

const SIM: SimulatorOptions = {
  processors: { sockets: 2, cores: 4, threads: 2, model: 'Skylake-Server' },
  memoryMiB: 8192,
  disks: [
    { id: 'root', kind: 'disk', bus: 'virtio', capacityBytes: 30 * 2 ** 30, volume: 'DataVolume root-dv', serialNumber: 'ROOT-1' },
    { id: 'data', kind: 'disk', bus: 'sata', volume: 'ContainerDisk quay.io/x' },
    { id: 'cdrom', kind: 'cdrom', bus: 'sata', readOnly: true },
  ],
  nics: [{ id: 'default', macAddress: '02:00:00:aa:bb:cc', ipv4Addresses: ['10.0.2.15/24'], ipv6Addresses: ['fd00::15'], linkUp: true }],
  sku: 'u1.large',
  partNumber: 'PN-42',
};

describe('Redfish inventory (simulator)', () => {
  let t: TestAgent;
  beforeEach(async () => {
    t = await startTestAgent({ ipmi: false, sim: SIM });
  });
  afterEach(async () => t.close());

  /** Every concrete path of the inventory GET routes on this agent. */
  function paths(path: string): string[] {
    const p = path.replace('{ChassisId}', '1').replace('{ComputerSystemId}', '1').replace('{ManagerId}', 'BMC').replace('{StorageId}', '1').replace('{SimpleStorageId}', '1');
    if (p.includes('{ProcessorId}')) return ['CPU0', 'CPU1'].map((id) => p.replace('{ProcessorId}', id));
    if (p.includes('{MemoryId}')) return [p.replace('{MemoryId}', 'GuestMemory')];
    if (p.includes('{DriveId}')) return ['root', 'data'].map((id) => p.replace('{DriveId}', id));
    if (p.includes('{SoftwareInventoryId}')) return ['BMC', 'SystemFirmware'].map((id) => p.replace('{SoftwareInventoryId}', id));
    if (p.includes('{EthernetInterfaceId}')) return [p.replace('{EthernetInterfaceId}', 'default')];
    if (p.includes('{NetworkAdapterId}')) return [p.replace('{NetworkAdapterId}', 'default')];
    if (p.includes('{CertificateId}')) return []; // plain HTTP: no certificate (the TLS test checks it)
    return [p];
  }

  for (const power of ['Off', 'On'] as const) {
    it(`every inventory resource validates against its DMTF schema (power ${power})`, async () => {
      if (power === 'On') await t.sim.power('on');
      let checked = 0;
      for (const id of INVENTORY_GETS) {
        const route = routes.find((r) => r.operationId === id && r.method === 'GET')!;
        const validate = validator(id);
        for (const path of paths(route.path)) {
          const { status, body } = await get(t, path);
          expect(status, path).to.equal(200);
          expect(validate(body), `${path}: ${JSON.stringify(validate.errors?.slice(0, 3))}`).to.equal(true);
          checked++;
        }
      }
      expect(checked).to.be.greaterThan(20);
    });
  }

  it('the checker rejects a wrong Processor and Drive', () => {
    const proc = validator('getSystemProcessor');
    const base = { '@odata.id': '/x', '@odata.type': '#Processor.v1_22_0.Processor', Id: 'CPU0', Name: 'x' };
    expect(proc(base)).to.equal(true);
    expect(proc({ ...base, ProcessorType: 'Banana' })).to.equal(false);
    const drive = validator('getSystemDrive');
    expect(drive({ '@odata.id': '/x', '@odata.type': '#Drive.v1_22_0.Drive', Id: 'd', Name: 'x', CapacityBytes: 'big' })).to.equal(false);
  });

  it('serves the topology, memory, drives, SKU and part number of the machine', async () => {
    const sys = (await get(t, '/redfish/v1/Systems/1')).body;
    expect(sys.ProcessorSummary).to.deep.include({ Count: 2, CoreCount: 8, LogicalProcessorCount: 16, Model: 'Skylake-Server' });
    expect(sys).to.include({ SKU: 'u1.large', PartNumber: 'PN-42', AssetTag: '' });
    for (const k of ['Processors', 'Memory', 'Storage', 'SimpleStorage', 'SecureBoot', 'Bios']) expect(sys[k]).to.deep.equal({ '@odata.id': `/redfish/v1/Systems/1/${k}` });
    const procs = (await get(t, '/redfish/v1/Systems/1/Processors')).body;
    expect(procs['Members@odata.count']).to.equal(2);
    const cpu1 = (await get(t, '/redfish/v1/Systems/1/Processors/CPU1')).body;
    expect(cpu1).to.include({ TotalCores: 4, TotalThreads: 8, Model: 'Skylake-Server', ProcessorType: 'CPU' });
    expect((await get(t, '/redfish/v1/Systems/1/Processors/CPU2')).status).to.equal(404);
    expect((await get(t, '/redfish/v1/Systems/1/Memory/GuestMemory')).body).to.include({ CapacityMiB: 8192, MemoryType: 'DRAM' });
    const storage = (await get(t, '/redfish/v1/Systems/1/Storage/1')).body;
    // the CD-ROM drive is virtual media, not a Drive
    expect(storage.Drives).to.deep.equal([{ '@odata.id': '/redfish/v1/Systems/1/Storage/1/Drives/root' }, { '@odata.id': '/redfish/v1/Systems/1/Storage/1/Drives/data' }]);
    const root = (await get(t, '/redfish/v1/Systems/1/Storage/1/Drives/root')).body;
    expect(root).to.include({ CapacityBytes: 30 * 2 ** 30, Protocol: 'PCIe', SerialNumber: 'ROOT-1' });
    expect(String(root.Description)).to.contain('DataVolume root-dv');
    const data = (await get(t, '/redfish/v1/Systems/1/Storage/1/Drives/data')).body;
    expect(data).to.include({ Protocol: 'SATA' }).and.not.have.property('CapacityBytes');
    expect((await get(t, '/redfish/v1/Systems/1/Storage/1/Drives/cdrom')).status).to.equal(404);
    const simple = (await get(t, '/redfish/v1/Systems/1/SimpleStorage/1')).body;
    expect(simple.Devices).to.deep.equal([
      { Name: 'root', CapacityBytes: 30 * 2 ** 30, Status: { State: 'Enabled', Health: 'OK' } },
      { Name: 'data', Status: { State: 'Enabled', Health: 'OK' } },
    ]);
    const nic = (await get(t, '/redfish/v1/Systems/1/EthernetInterfaces/default')).body;
    expect(nic.IPv4Addresses).to.deep.equal([{ Address: '10.0.2.15', SubnetMask: '255.255.255.0' }]);
    expect(nic.IPv6Addresses).to.deep.equal([{ Address: 'fd00::15' }]);
    // unknown to the platform: null / empty, never made up
    expect(nic).to.include({ SpeedMbps: null, FQDN: null, HostName: null });
    expect(nic.NameServers).to.deep.equal([]);
    expect(nic.LinkStatus).to.equal('LinkDown'); // off: the link follows the power state
    const adapters = (await get(t, '/redfish/v1/Chassis/1/NetworkAdapters')).body;
    expect(adapters.Members).to.deep.equal([{ '@odata.id': '/redfish/v1/Chassis/1/NetworkAdapters/default' }]);
    expect(String((await get(t, '/redfish/v1/Chassis/1/NetworkAdapters/default')).body.Description)).to.contain('02:00:00:AA:BB:CC');
    expect((simple.Links as Record<string, unknown>).Storage).to.deep.equal({ '@odata.id': '/redfish/v1/Systems/1/Storage/1' });
    await t.sim.power('on');
    expect((await get(t, '/redfish/v1/Systems/1/EthernetInterfaces/default')).body.LinkStatus).to.equal('LinkUp');
  });

  it('PATCH AssetTag persists it; bad values are refused and change nothing', async () => {
    const ok = await patch(t, '/redfish/v1/Systems/1', { AssetTag: 'rack-7/u12' });
    expect(ok.status).to.equal(200);
    expect(ok.body.AssetTag).to.equal('rack-7/u12');
    expect((await t.sim.getSystemInfo()).assetTag).to.equal('rack-7/u12');
    const long = await patch(t, '/redfish/v1/Systems/1', { AssetTag: 'x'.repeat(65) });
    expect(long.status).to.equal(400);
    expect(JSON.stringify(long.body)).to.contain('PropertyValueFormatError');
    const typed = await patch(t, '/redfish/v1/Systems/1', { AssetTag: 7 });
    expect(typed.status).to.equal(400);
    expect((await get(t, '/redfish/v1/Systems/1')).body.AssetTag).to.equal('rack-7/u12');
    // with a boot change in the same PATCH both apply
    const both = await patch(t, '/redfish/v1/Systems/1', { AssetTag: '', Boot: { BootSourceOverrideTarget: 'Pxe' } });
    expect(both.status).to.equal(200);
    expect(both.body.AssetTag).to.equal('');
    expect((both.body.Boot as Record<string, unknown>).BootSourceOverrideTarget).to.equal('Pxe');
  });

  it('PATCH SecureBootEnable applies at the next start and says so while the machine runs', async () => {
    const off = await patch(t, '/redfish/v1/Systems/1/SecureBoot', { SecureBootEnable: true });
    expect(off.status).to.equal(200);
    expect(off.body.SecureBootEnable).to.equal(true);
    expect(off.body).to.not.have.property('@Message.ExtendedInfo'); // off: the next start is the next boot anyway
    await t.sim.power('on');
    let sb = (await get(t, '/redfish/v1/Systems/1/SecureBoot')).body;
    expect(sb).to.include({ SecureBootEnable: true, SecureBootCurrentBoot: 'Enabled' });
    const on = await patch(t, '/redfish/v1/Systems/1/SecureBoot', { SecureBootEnable: false });
    expect(on.status).to.equal(200);
    expect(on.body).to.include({ SecureBootEnable: false, SecureBootCurrentBoot: 'Enabled' });
    const info = on.body['@Message.ExtendedInfo'] as { MessageId: string; MessageArgs: string[] }[];
    expect(info.map((m) => m.MessageId)).to.deep.equal(['Base.1.22.1.ResetRequired']);
    expect(info[0]!.MessageArgs).to.deep.equal(['/redfish/v1/Systems/1/Actions/ComputerSystem.Reset', 'PowerCycle']);
    await t.sim.power('powerCycle');
    sb = (await get(t, '/redfish/v1/Systems/1/SecureBoot')).body;
    expect(sb).to.include({ SecureBootEnable: false, SecureBootCurrentBoot: 'Disabled' });
    const ro = await patch(t, '/redfish/v1/Systems/1/SecureBoot', { SecureBootCurrentBoot: 'Enabled' });
    expect(ro.status).to.equal(400);
    expect(JSON.stringify(ro.body)).to.contain('PropertyNotWritable');
  });

  it('UpdateService lists the BMC and the VM firmware and offers no update', async () => {
    const us = (await get(t, '/redfish/v1/UpdateService')).body;
    expect(us.ServiceEnabled).to.equal(false);
    expect(us).to.not.have.property('Actions');
    expect(us).to.not.have.property('MultipartHttpPushUri');
    const bmc = (await get(t, '/redfish/v1/UpdateService/FirmwareInventory/BMC')).body;
    expect(bmc).to.include({ Updateable: false });
    expect(bmc.Version).to.be.a('string').and.not.equal('');
    const fw = (await get(t, '/redfish/v1/UpdateService/FirmwareInventory/SystemFirmware')).body;
    expect(fw).to.include({ Updateable: false, Version: 'simulated-1.0' });
    const root = (await get(t, '/redfish/v1')).body;
    expect(root.UpdateService).to.deep.equal({ '@odata.id': '/redfish/v1/UpdateService' });
    expect(root.CertificateService).to.deep.equal({ '@odata.id': '/redfish/v1/CertificateService' });
    expect((root.ProtocolFeaturesSupported as Record<string, unknown>).MultipleHTTPRequests).to.equal(true);
  });

  it('a BIOS machine: Secure Boot off and refused with a conflict', async () => {
    await t.close();
    t = await startTestAgent({ ipmi: false, sim: { ...SIM, firmware: 'BIOS' } });
    const r = await patch(t, '/redfish/v1/Systems/1/SecureBoot', { SecureBootEnable: true });
    expect(r.status).to.equal(400);
    expect(JSON.stringify(r.body)).to.contain('PropertyValueConflict');
    expect((await get(t, '/redfish/v1/Systems/1/SecureBoot')).body.SecureBootEnable).to.equal(false);
    expect(((await get(t, '/redfish/v1/Systems/1/Bios')).body.Attributes as Record<string, unknown>).FirmwareType).to.equal('BIOS');
    expect((await patch(t, '/redfish/v1/Systems/1/SecureBoot', { SecureBootEnable: false })).status).to.equal(200);
  });
});

describe('Redfish CertificateService (HTTPS)', function () {
  this.timeout(30_000);
  let dir: string;
  const mk = (name: string, cn: string): { cert: string; key: string } => {
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
      '-subj', `/CN=${cn}/O=KubeVirtBMC test`, '-keyout', join(dir, `${name}.key`), '-out', join(dir, `${name}.crt`),
    ], { stdio: 'ignore' });
    return { cert: readFileSync(join(dir, `${name}.crt`), 'utf8'), key: readFileSync(join(dir, `${name}.key`), 'utf8') };
  };
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'rf-cert-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** GET over HTTPS (trusting anything) with the peer certificate the connection got. */
  function sget(port: number, path: string, opts: { method?: string; body?: unknown } = {}): Promise<{ status: number; body: Record<string, unknown>; peer: string }> {
    return new Promise((resolve, reject) => {
      const data = opts.body === undefined ? undefined : JSON.stringify(opts.body);
      const req = https.request(
        { host: '127.0.0.1', port, path, method: opts.method ?? 'GET', rejectUnauthorized: false, agent: false, headers: { ...(data ? JSON_AUTH : AUTH) } },
        (res) => {
          const peer = (res.socket as TLSSocket).getPeerX509Certificate?.()?.subject ?? '';
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (text += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text ? (JSON.parse(text) as Record<string, unknown>) : {}, peer }));
        },
      );
      req.on('error', reject);
      req.end(data);
    });
  }

  it('shows the HTTPS certificate and replaces it when it came from writable files', async () => {
    const first = mk('a', 'bmc-one.example');
    const second = mk('b', 'bmc-two.example');
    const other = mk('c', 'other.example');
    const t = await startTestAgent({
      ipmi: false,
      redfish: { port: 0, tls: { cert: first.cert, key: first.key, certFile: join(dir, 'a.crt'), keyFile: join(dir, 'a.key') } },
    });
    try {
      const svc = await sget(t.redfishPort, '/redfish/v1/CertificateService');
      expect(validator('getCertificateService')(svc.body)).to.equal(true);
      expect(svc.body.Actions).to.have.property('#CertificateService.ReplaceCertificate');
      const locs = await sget(t.redfishPort, '/redfish/v1/CertificateService/CertificateLocations');
      expect((locs.body.Links as { Certificates: unknown[] }).Certificates).to.deep.equal([{ '@odata.id': '/redfish/v1/Managers/BMC/NetworkProtocol/HTTPS/Certificates/1' }]);
      const c = await sget(t.redfishPort, '/redfish/v1/Managers/BMC/NetworkProtocol/HTTPS/Certificates/1');
      const v = validator('getHttpsCertificate');
      expect(v(c.body), JSON.stringify(v.errors?.slice(0, 3))).to.equal(true);
      expect(c.body.Subject).to.deep.equal({ CommonName: 'bmc-one.example', Organization: 'KubeVirtBMC test' });
      expect(c.body.Fingerprint).to.equal(new X509Certificate(first.cert).fingerprint256);
      expect(c.body.CertificateString).to.not.contain('PRIVATE KEY');
      expect(c.peer).to.contain('bmc-one.example');

      const action = '/redfish/v1/CertificateService/Actions/CertificateService.ReplaceCertificate';
      const uri = { '@odata.id': '/redfish/v1/Managers/BMC/NetworkProtocol/HTTPS/Certificates/1' };
      // a key that does not match: refused, nothing changes
      const bad = await sget(t.redfishPort, action, { method: 'POST', body: { CertificateString: second.cert + other.key, CertificateType: 'PEM', CertificateUri: uri } });
      expect(bad.status).to.equal(400);
      expect(JSON.stringify(bad.body)).to.contain('does not belong');
      const nokey = await sget(t.redfishPort, action, { method: 'POST', body: { CertificateString: second.cert, CertificateType: 'PEM', CertificateUri: uri } });
      expect(nokey.status).to.equal(400);
      expect(readFileSync(join(dir, 'a.crt'), 'utf8')).to.equal(first.cert);

      const ok = await sget(t.redfishPort, action, { method: 'POST', body: { CertificateString: second.cert + second.key, CertificateType: 'PEM', CertificateUri: uri } });
      expect(ok.status, JSON.stringify(ok.body)).to.equal(200);
      expect(ok.body.Subject).to.deep.include({ CommonName: 'bmc-two.example' });
      expect(readFileSync(join(dir, 'a.crt'), 'utf8')).to.equal(second.cert);
      expect(readFileSync(join(dir, 'a.key'), 'utf8')).to.equal(second.key);
      // a new connection gets the new certificate
      const after = await sget(t.redfishPort, '/redfish/v1/Managers/BMC/NetworkProtocol/HTTPS/Certificates/1');
      expect(after.peer).to.contain('bmc-two.example');
      expect((after.body.Subject as Record<string, string>).CommonName).to.equal('bmc-two.example');
    } finally {
      await t.close();
    }
  });

  it('is read-only when the files cannot be written (a Secret mount) or there are none', async function () {
    const c = mk('ro', 'bmc-ro.example');
    // root may write a 0444 file: then the certificate is given without files (also read-only)
    chmodSync(join(dir, 'ro.crt'), 0o444);
    const t = await startTestAgent({
      ipmi: false,
      redfish: { port: 0, tls: { cert: c.cert, key: c.key, ...(process.getuid?.() === 0 ? {} : { certFile: join(dir, 'ro.crt'), keyFile: join(dir, 'ro.key') }) } },
    });
    try {
      const svc = await sget(t.redfishPort, '/redfish/v1/CertificateService');
      expect(svc.body).to.not.have.property('Actions');
      const uri = { '@odata.id': '/redfish/v1/Managers/BMC/NetworkProtocol/HTTPS/Certificates/1' };
      const r = await sget(t.redfishPort, '/redfish/v1/CertificateService/Actions/CertificateService.ReplaceCertificate', {
        method: 'POST',
        body: { CertificateString: c.cert + c.key, CertificateType: 'PEM', CertificateUri: uri },
      });
      expect(r.status).to.equal(400);
      expect(JSON.stringify(r.body)).to.contain('ActionNotSupported').and.contain('cannot be replaced');
    } finally {
      await t.close();
    }
  });
});
