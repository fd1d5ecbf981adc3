/**
 * sushy (Debian python3-sushy, what ironic uses) creating and deleting a volume:
 * `system.storage.get_members()[0].volumes.create(...)` with apply_time OnReset (the only one the
 * collection's @Redfish.OperationApplyTimeSupport offers), the new Volume read back through the
 * Location of the 201, the volume sizes, and `volume.delete()`.
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
base = sys.argv[1]
s = sushy.Sushy(base, auth=sauth.BasicAuth(username='admin', password='password'))
system = s.get_system('/redfish/v1/Systems/1')
storage = system.storage.get_members()[0]
vols = storage.volumes
out = {'apply_times': sorted(str(x) for x in vols.operation_apply_time_support.mapped_supported_values)}
v = vols.create({'CapacityBytes': 10 * 2**30, 'Name': 'ironic-data', 'RAIDType': 'None'}, apply_time=sushy.APPLY_TIME_ON_RESET)
out['created'] = {'id': v.identity, 'name': v.name, 'bytes': v.capacity_bytes, 'raid': str(v.raid_type)}
vols.refresh()
out['sizes'] = vols.volumes_sizes_bytes
try:
    vols.create({'CapacityBytes': 2**30, 'RAIDType': 'RAID1'})
    out['raid1'] = None
except sushy.exceptions.BadRequestError as e:
    out['raid1'] = e.code
v.delete()
# a new read (refreshing the cached collection would re-read the deleted member too)
fresh = s.get_system('/redfish/v1/Systems/1').storage.get_members()[0].volumes
out['after_delete'] = list(fresh.members_identities)
print(json.dumps(out))
`;

describe('Redfish e2e: sushy volumes @e2e', function () {
  this.timeout(60_000);
  let t: TestAgent;
  before(function () {
    requireClient(this, havePythonModule('sushy'), 'python3-sushy (Debian, /usr/bin/python3)');
  });
  beforeEach(async () => {
    t = await startTestAgent({ ipmi: false, sim: { initialPower: 'On' } });
  });
  afterEach(async () => t?.close());

  it('volumes.create(apply_time=OnReset) makes a disk the guest gets at its next start; delete() removes it', async () => {
    const { stdout } = await run('/usr/bin/python3', ['-c', SCRIPT, t.redfishUrl], { timeout: 30_000 });
    const out = JSON.parse(stdout.trim().split('\n').pop()!) as Record<string, unknown>;
    expect(out.apply_times).to.deep.equal(['ApplyTime.ON_RESET']);
    expect(out.created).to.deep.equal({ id: 'bmc-volume-1', name: 'ironic-data', bytes: 10 * 2 ** 30, raid: 'RAIDType.NONE' });
    expect(out.sizes).to.deep.equal([10 * 2 ** 30]);
    expect(String(out.raid1)).to.match(/PropertyValueNotInList$/);
    expect(out.after_delete).to.deep.equal([]);
    // the disk was in the machine's definition between the two (the simulator's disks)
    expect((await t.sim.getSystemInfo()).disks?.map((d) => d.id)).to.deep.equal(['root', 'cdrom']);
  });
});
