/**
 * sushy (Debian python3-sushy, what ironic uses) reading the inventory: system.processors.summary and
 * members, system.storage drives (and the max drive size ironic uses), system.simple_storage,
 * system.secure_boot (get and set_enabled, applied at the next start), system.bios attributes and
 * set_attributes through the Bios settings object (pending_attributes, supported_apply_times).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { startTestAgent, type TestAgent } from '../helpers/agent.js';
import { havePythonModule, requireClient } from '../helpers/clients.js';

const run = promisify(execFile);

const SCRIPT = `
import json, sys, sushy
from sushy import auth as sauth
base, step = sys.argv[1:3]
s = sushy.Sushy(base, auth=sauth.BasicAuth(username='admin', password='password'))
system = s.get_system('/redfish/v1/Systems/1')
out = {}
p = system.processors
out['summary'] = {'count': p.summary.count, 'arch': str(p.summary.architecture)}
out['processors'] = [{'cores': m.total_cores, 'threads': m.total_threads, 'model': m.model, 'isa': str(m.instruction_set)} for m in p.get_members()]
st = system.storage
out['storage'] = {'max': st.max_drive_size_bytes, 'drives': sorted([d.identity, d.capacity_bytes, str(d.protocol)] for x in st.get_members() for d in x.drives)}
out['simple'] = sorted(system.simple_storage.disks_sizes_bytes)
sb = system.secure_boot
if step == 'secure-on':
    sb.set_enabled(True)
    sb.refresh()
out['secure_boot'] = {'enabled': sb.enabled, 'current': str(sb.current_boot)}
bios = system.bios
if step == 'bios-secure-on':
    bios.set_attributes({'SecureBoot': True}, apply_time=sushy.APPLY_TIME_ON_RESET)
    bios.refresh()
if step == 'bios-immediate':
    try:
        bios.set_attributes({'SecureBoot': True}, apply_time=sushy.APPLY_TIME_IMMEDIATE)
        out['bios_error'] = None
    except sushy.exceptions.BadRequestError as e:
        out['bios_error'] = e.code
    bios.refresh()
out['bios'] = dict(bios.attributes)
out['bios_pending'] = dict(bios.pending_attributes)
out['bios_apply_times'] = sorted(str(x) for x in (bios.supported_apply_times or []))
out['memory_gib'] = system.memory_summary.size_gib
print(json.dumps(out))
`;

interface Out {
  summary: { count: number; arch: string };
  processors: { cores: number; threads: number; model: string; isa: string }[];
  storage: { max: number; drives: [string, number | null, string][] };
  simple: number[];
  secure_boot: { enabled: boolean; current: string };
  bios: Record<string, unknown>;
  bios_pending: Record<string, unknown>;
  bios_apply_times: string[];
  bios_error?: string | null;
  memory_gib: number;
}

describe('Redfish e2e: sushy inventory @e2e', function () {
  this.timeout(60_000);
  let t: TestAgent;
  before(function () {
    requireClient(this, havePythonModule('sushy'), 'python3-sushy (Debian, /usr/bin/python3)');
  });
  beforeEach(async () => {
    t = await startTestAgent({
      ipmi: false,
      sim: {
        initialPower: 'On',
        processors: { sockets: 2, cores: 2, threads: 2, model: 'Skylake-Server', architecture: 'amd64' },
        memoryMiB: 4096,
        disks: [
          { id: 'root', kind: 'disk', bus: 'virtio', capacityBytes: 20 * 2 ** 30 },
          { id: 'data', kind: 'disk', bus: 'sata', capacityBytes: 100 * 2 ** 30 },
          { id: 'cdrom', kind: 'cdrom', bus: 'sata' },
        ],
      },
    });
  });
  afterEach(async () => t?.close());

  async function sushy(step: string): Promise<Out> {
    const { stdout } = await run('/usr/bin/python3', ['-c', SCRIPT, t.redfishUrl, step], { timeout: 30_000 });
    return JSON.parse(stdout.trim().split('\n').pop()!) as Out;
  }

  it('reads processors, storage, simple storage, Secure Boot and BIOS attributes', async () => {
    const out = await sushy('read');
    // sushy's summary counts logical processors (the members' TotalThreads)
    expect(out.summary).to.deep.equal({ count: 8, arch: 'ProcessorArchitecture.X86' });
    expect(out.processors).to.deep.equal([
      { cores: 2, threads: 4, model: 'Skylake-Server', isa: 'InstructionSet.X86_64' },
      { cores: 2, threads: 4, model: 'Skylake-Server', isa: 'InstructionSet.X86_64' },
    ]);
    expect(out.storage).to.deep.equal({ max: 100 * 2 ** 30, drives: [['data', 100 * 2 ** 30, 'Protocol.SATA'], ['root', 20 * 2 ** 30, 'Protocol.PCIe']] });
    expect(out.simple).to.deep.equal([20 * 2 ** 30, 100 * 2 ** 30]);
    expect(out.secure_boot).to.deep.equal({ enabled: false, current: 'SecureBootCurrentBoot.DISABLED' });
    expect(out.bios).to.include({ FirmwareType: 'UEFI', SecureBoot: false });
    expect(out.memory_gib).to.equal(4);
  });

  it('set_enabled(True) changes the next start; the running guest keeps its boot', async () => {
    const out = await sushy('secure-on');
    expect(out.secure_boot).to.deep.equal({ enabled: true, current: 'SecureBootCurrentBoot.DISABLED' });
    expect((await t.sim.getSystemInfo()).firmware?.secureBoot).to.equal(true);
    await t.sim.power('powerCycle');
    expect((await sushy('read')).secure_boot).to.deep.equal({ enabled: true, current: 'SecureBootCurrentBoot.ENABLED' });
  });

  it('bios.set_attributes (apply_time OnReset) writes the settings object; the running firmware changes at the next start', async () => {
    const out = await sushy('bios-secure-on');
    expect(out.bios_apply_times).to.deep.equal(['ApplyTime.ON_RESET']);
    expect(out.bios_pending).to.include({ SecureBoot: true });
    expect(out.bios).to.include({ SecureBoot: false });
    expect((await t.sim.getSystemInfo()).firmware?.secureBoot).to.equal(true);
    await t.sim.power('powerCycle');
    expect((await sushy('read')).bios).to.include({ SecureBoot: true });
  });

  it('bios.set_attributes with apply_time Immediate is refused and changes nothing', async () => {
    const out = await sushy('bios-immediate');
    expect(out.bios_error).to.match(/PropertyValueNotInList$/);
    expect(out.bios_pending).to.include({ SecureBoot: false });
    expect((await t.sim.getSystemInfo()).firmware?.secureBoot).to.equal(false);
  });
});
