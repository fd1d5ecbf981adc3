/**
 * OpenStack sushy (the Redfish library ironic/metal3 use; Debian's python3-sushy) against the agent
 * on the simulator: power, boot override and virtual media, each checked on the simulator. Images are
 * served from a loopback HTTP server (the simulator checks the URL like a real BMC). sushy's
 * insert_media ignores the 202, so the script finds the task through the TaskService and follows it
 * with sushy's own TaskMonitor (TaskMonitor(conn, task.task_monitor).wait()).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { startTestAgent, type TestAgent } from '../helpers/agent.js';
import { startImageServer, type ImageServer } from '../helpers/images.js';

const run = promisify(execFile);
const PYTHON = '/usr/bin/python3';

// One sushy session per invocation; argv: base-url auth(session|basic) step [args...]. Prints JSON.
const SCRIPT = `
import json, sys, sushy
from sushy import auth as sauth
from sushy.taskmonitor import TaskMonitor
base, mode, step, *args = sys.argv[1:]
a = (sauth.SessionAuth if mode == 'session' else sauth.BasicAuth)(username='admin', password='password')
s = sushy.Sushy(base, auth=a)
system = s.get_system('/redfish/v1/Systems/1')
out = {}
if step == 'reset':
    system.reset_system(getattr(sushy, args[0]))
elif step == 'boot':
    kw = {'enabled': getattr(sushy, args[1])}
    if len(args) > 2:
        kw['mode'] = getattr(sushy, args[2])
    system.set_system_boot_options(getattr(sushy, args[0]), **kw)
elif step in ('insert', 'eject'):
    manager = s.get_manager('/redfish/v1/Managers/BMC')
    vm = manager.virtual_media.get_member('/redfish/v1/Managers/BMC/VirtualMedia/' + args[0])
    if step == 'insert':
        vm.insert_media(args[1])
        tasks = s.get_task_service().tasks
        task = max(tasks.get_members(), key=lambda t: int(t.identity))
        # sushy's TaskMonitor built directly: Sushy.get_task_monitor() loads sushy's bundled message
        # registries, a folder Debian's python3-sushy 4.3.3 does not ship (FileNotFoundError)
        monitor = TaskMonitor(s._conn, task.task_monitor)
        monitor.wait(30)
        task.refresh()
        out['task'] = {'state': str(task.task_state), 'percent': task.percent_complete,
                       'monitor_status': monitor.response.status_code, 'processing': monitor.is_processing,
                       'messages': [m['MessageId'] for m in task.json.get('Messages', [])]}
    else:
        vm.eject_media()
    vm.refresh()
    out['vm'] = {'inserted': vm.inserted, 'image': vm.image, 'media_types': sorted(str(t) for t in vm.media_types)}
elif step == 'retry':
    # a client retrying an action after a timeout, with the same Idempotency-Key
    path = '/redfish/v1/Managers/BMC/VirtualMedia/' + args[0] + '/Actions/VirtualMedia.InsertMedia'
    rs = [s._conn.post(path, data={'Image': args[1]}, headers={'Idempotency-Key': 'sushy-retry-1'}) for _ in range(2)]
    out['retry'] = [{'status': r.status_code, 'location': r.headers.get('Location'),
                     'replayed': r.headers.get('Idempotent-Replayed')} for r in rs]
system.refresh()
out['power'] = str(system.power_state)
out['boot'] = {'target': str(system.boot.target), 'enabled': str(system.boot.enabled), 'mode': str(system.boot.mode)}
out['resets'] = sorted(str(v) for v in system.get_allowed_reset_system_values())
out['uuid'] = system.uuid
print(json.dumps(out))
`;
import { requireClient, havePythonModule } from '../helpers/clients.js';

interface SushyOut {
  power: string;
  boot: { target: string; enabled: string; mode: string };
  resets: string[];
  uuid: string;
  vm?: { inserted: boolean; image: string | null; media_types: string[] };
  task?: { state: string; percent: number; monitor_status: number; processing: boolean; messages: string[] };
  retry?: { status: number; location: string; replayed: string | null }[];
}

describe('Redfish e2e: sushy @e2e', function () {
  this.timeout(60_000);
  let t: TestAgent;
  let img: ImageServer;

  before(async function () {
    requireClient(this, havePythonModule('sushy'), 'python3-sushy (Debian, /usr/bin/python3)');
    img = await startImageServer({ '/isos/boot.iso': 8192 });
  });
  after(async () => img?.close());
  beforeEach(async () => {
    t = await startTestAgent({ ipmi: false, sim: { mediaInsertDelayMs: 1500 } });
  });
  afterEach(async () => t?.close());

  async function sushy(mode: 'session' | 'basic', step: string, ...args: string[]): Promise<SushyOut> {
    const { stdout } = await run(PYTHON, ['-c', SCRIPT, t.redfishUrl, mode, step, ...args], { timeout: 30_000 });
    return JSON.parse(stdout.trim().split('\n').pop()!) as SushyOut;
  }

  it('power and boot override (session auth)', async () => {
    let out = await sushy('session', 'reset', 'RESET_ON');
    expect(await t.sim.getPowerState()).to.equal('On');
    expect(out.power).to.match(/on$/i);
    expect(out.uuid).to.equal((await t.sim.getSystemInfo()).uuid);
    expect(out.resets.length).to.be.greaterThan(5);

    out = await sushy('session', 'boot', 'BOOT_SOURCE_TARGET_PXE', 'BOOT_SOURCE_ENABLED_ONCE');
    expect(await t.sim.getBootOverride()).to.include({ target: 'pxe', enabled: 'once' });
    expect(out.boot.target).to.match(/pxe/i);

    await sushy('session', 'reset', 'RESET_FORCE_RESTART');
    expect(t.sim.bootHistory.at(-1)!.target).to.equal('pxe');
    expect((await t.sim.getBootOverride()).enabled).to.equal('disabled');

    out = await sushy('session', 'boot', 'BOOT_SOURCE_TARGET_CD', 'BOOT_SOURCE_ENABLED_CONTINUOUS', 'BOOT_SOURCE_MODE_BIOS');
    expect(await t.sim.getBootOverride()).to.deep.equal({ target: 'cd', enabled: 'continuous', mode: 'Legacy' });
    expect(out.boot.enabled).to.match(/continuous/i);

    await sushy('session', 'reset', 'RESET_FORCE_OFF');
    expect(await t.sim.getPowerState()).to.equal('Off');
  });

  it('power and boot override (basic auth)', async () => {
    await sushy('basic', 'reset', 'RESET_ON');
    expect(await t.sim.getPowerState()).to.equal('On');
    const out = await sushy('basic', 'boot', 'BOOT_SOURCE_TARGET_HDD', 'BOOT_SOURCE_ENABLED_CONTINUOUS', 'BOOT_SOURCE_MODE_UEFI');
    expect(await t.sim.getBootOverride()).to.deep.equal({ target: 'hdd', enabled: 'continuous', mode: 'UEFI' });
    expect(out.boot.mode).to.match(/uefi/i);
  });

  it('virtual media insert (a task sushy follows to Completed) and eject through the manager', async () => {
    const url = img.url('/isos/boot.iso');
    let out = await sushy('session', 'insert', 'Cd', url);
    expect(out.task).to.deep.include({ state: 'TaskState.COMPLETED', percent: 100, monitor_status: 204, processing: false });
    expect(out.task!.messages).to.include.members(['TaskEvent.1.0.5.TaskStarted', 'TaskEvent.1.0.5.TaskCompletedOK']);
    const cd = (await t.sim.listMedia()).find((m) => m.id === 'Cd')!;
    expect(cd).to.include({ state: 'inserted', image: url });
    expect(out.vm).to.deep.include({ inserted: true, image: url });
    out = await sushy('session', 'eject', 'Cd');
    expect((await t.sim.listMedia()).find((m) => m.id === 'Cd')!.state).to.equal('empty');
    expect(out.vm!.inserted).to.equal(false);
  });

  it('an insert retried with the same Idempotency-Key runs once', async () => {
    let inserts = 0;
    const unsubscribe = t.sim.on((ev) => {
      if (ev.type === 'media' && ev.slot.id === 'Cd' && ev.slot.state === 'inserting' && ev.slot.progress === 0) inserts++;
    });
    const out = await sushy('basic', 'retry', 'Cd', img.url('/isos/boot.iso'));
    unsubscribe();
    expect(out.retry!.map((r) => r.status)).to.deep.equal([202, 202]);
    expect(out.retry![1]!.location).to.equal(out.retry![0]!.location);
    expect(out.retry!.map((r) => r.replayed)).to.deep.equal([null, 'true']);
    expect(inserts).to.equal(1);
  });
});
