/**
 * Every GET of the system/manager/chassis/ethernet/virtual-media/task resources, in several machine
 * states, validated against the DMTF schema named by its route (generated/redfish/openapi.bundled.json):
 * required properties, types and enums the way the DMTF Service Validator checks them, but offline
 * and in CI.
 */
import { expect } from 'chai';
import { routes } from '../../generated/redfish/routes.js';
import { SimulatedMachine, type SimulatorOptions } from '../../src/backend/simulator/simulator.js';
import type { MediaSlot } from '../../src/backend/types.js';
import { startTestAgent, type TestAgent } from '../helpers/agent.js';
import { startImageServer, type ImageServer } from '../helpers/images.js';
import { schemaValidator } from '../helpers/redfish-schema.js';


const OURS = new Set([
  'listSystems', 'getSystem', 'getSystemResetActionInfo', 'listSystemEthernetInterfaces', 'getSystemEthernetInterface',
  'listSystemVirtualMedia', 'getSystemVirtualMedia', 'listManagers', 'getManager', 'getManagerResetActionInfo',
  'getManagerNetworkProtocol', 'listManagerVirtualMedia', 'getManagerVirtualMedia', 'listChassis', 'getChassis',
  'getTaskService', 'listTasks', 'getTask',
]);
const getRoutes = routes.filter((r) => r.method === 'GET' && OURS.has(r.operationId));

const AUTH = { authorization: 'Basic ' + Buffer.from('admin:password').toString('base64') };

/** A backend whose CD insert failed (the simulator never fails one). */
class FailedCd extends SimulatedMachine {
  override async listMedia(): Promise<MediaSlot[]> {
    return (await super.listMedia()).map((m) =>
      m.id === 'Cd' ? { ...m, state: 'error', image: 'http://h.example/x.iso', error: 'download failed' } : m,
    );
  }
  override async snapshot() {
    return { ...(await super.snapshot()), media: await this.listMedia() };
  }
}

interface Scenario {
  name: string;
  sim?: SimulatorOptions;
  machine?: () => SimulatedMachine;
  prepare?: (sim: SimulatedMachine, env: { img: ImageServer; t: TestAgent }) => Promise<void>;
}

/** POST an InsertMedia over Redfish (a task), and wait for the task to end unless `wait` is false. */
async function insertOverRedfish(t: TestAgent, slot: string, image: string, wait = true): Promise<void> {
  const res = await fetch(`${t.redfishUrl}/redfish/v1/Managers/BMC/VirtualMedia/${slot}/Actions/VirtualMedia.InsertMedia`, {
    method: 'POST',
    headers: { ...AUTH, 'content-type': 'application/json' },
    body: JSON.stringify({ Image: image }),
  });
  expect(res.status).to.equal(202);
  for (let i = 0; wait && i < 500; i++) {
    const m = await fetch(t.redfishUrl + (res.headers.get('location') as string), { headers: AUTH });
    await m.arrayBuffer();
    if (m.status !== 202) return;
    await new Promise((r) => setTimeout(r, 10));
  }
}

const SCENARIOS: Scenario[] = [
  { name: 'off, empty media' },
  {
    name: 'on, boot override, media inserted and inserting, guest addresses',
    sim: {
      mediaInsertDelayMs: 3_600_000,
      nics: [
        { id: 'default', macAddress: '02:00:00:aa:bb:cc', ipv4Addresses: ['10.0.2.15/24'] },
        { id: 'nic1', macAddress: '02:00:00:aa:bb:cd' },
      ],
    },
    prepare: async (sim, { img, t }) => {
      await sim.power('on');
      await sim.setBootOverride({ target: 'uefiHttp', enabled: 'continuous', mode: 'Legacy' });
      await sim.insertMedia('UsbStick', { image: img.url('/disk.img'), writeProtected: false });
      // tasks: one that failed (404 image), one still running
      await insertOverRedfish(t, 'Cd', img.url('/missing.iso'));
      await insertOverRedfish(t, 'Cd', img.url('/boot.iso'), false);
    },
  },
  {
    name: 'paused, failed CD insert, USB inserted',
    machine: () => new FailedCd({ initialPower: 'On' }),
    prepare: async (sim, { img, t }) => {
      await sim.power('pause');
      // a completed task
      await insertOverRedfish(t, 'UsbStick', img.url('/usb.img'));
    },
  },
];

describe('Redfish resources: DMTF schema conformance', function () {
  let img: ImageServer;
  before(async () => {
    img = await startImageServer({ '/disk.img': 2048, '/usb.img': 1024, '/boot.iso': 4096 });
  });
  after(async () => img.close());

  for (const sc of SCENARIOS) {
    describe(sc.name, () => {
      let t: TestAgent;
      before(async () => {
        const machine = sc.machine?.();
        t = await startTestAgent({ ipmi: false, ...(sc.sim ? { sim: sc.sim } : {}), ...(machine ? { machine } : {}) });
        await sc.prepare?.(machine ?? t.sim, { img, t });
      });
      after(async () => t.close());

      it('every resource validates against its route schema', async () => {
        const nics = (await (machineOf(t).getSystemInfo())).nics.map((n) => n.id);
        const taskList = (await (await fetch(`${t.redfishUrl}/redfish/v1/TaskService/Tasks`, { headers: AUTH })).json()) as { Members: { '@odata.id': string }[] };
        const tasks = taskList.Members.map((m) => m['@odata.id'].split('/').pop() as string);
        let checked = 0;
        for (const route of getRoutes) {
          const validate = schemaValidator(route.responseSchemaRef ?? '');
          expect(validate, `schema ${route.responseSchemaRef}`).to.be.a('function');
          for (const path of expand(route.path, nics, tasks)) {
            const res = await fetch(t.redfishUrl + path, { headers: AUTH });
            expect(res.status, path).to.equal(200);
            const body = (await res.json()) as Record<string, unknown>;
            const ok = validate!(body);
            expect(ok, `${path}: ${JSON.stringify(validate!.errors?.slice(0, 3))}`).to.equal(true);
            expect(body['@odata.id'], path).to.equal(path);
            checked++;
          }
        }
        expect(checked).to.be.greaterThanOrEqual(getRoutes.length - (tasks.length === 0 ? 1 : 0));
      });
    });
  }

  it('the checker does reject a wrong payload', () => {
    const validate = schemaValidator('ComputerSystem_ComputerSystem')!;
    const good = { '@odata.id': '/redfish/v1/Systems/1', '@odata.type': '#ComputerSystem.v1_27_0.ComputerSystem', Id: '1', Name: 'x' };
    expect(validate(good)).to.equal(true);
    expect(validate({ ...good, PowerState: 'Sideways' })).to.equal(false);
    expect(validate({ ...good, Boot: { BootSourceOverrideTarget: 'Nowhere' } })).to.equal(false);
    const { Name: _n, ...missing } = good;
    expect(validate(missing)).to.equal(false);
  });
});

function machineOf(t: TestAgent): SimulatedMachine {
  return t.agent.machine as SimulatedMachine;
}

/** Concrete paths for a route path: our fixed ids, both media slots, every NIC, every task. */
function expand(path: string, nics: string[], tasks: string[]): string[] {
  let out = [path.replace('{ComputerSystemId}', '1').replace('{ManagerId}', 'BMC').replace('{ChassisId}', '1')];
  if (path.includes('{VirtualMediaId}')) out = ['Cd', 'UsbStick'].flatMap((id) => out.map((p) => p.replace('{VirtualMediaId}', id)));
  if (path.includes('{TaskId}')) out = tasks.flatMap((id) => out.map((p) => p.replace('{TaskId}', id)));
  if (path.includes('{EthernetInterfaceId}')) out = nics.flatMap((id) => out.map((p) => p.replace('{EthernetInterfaceId}', id)));
  return out;
}
