/**
 * Every GET of the system/manager/chassis/ethernet/virtual-media resources, in several machine
 * states, validated against the DMTF schema named by its route (generated/redfish/openapi.bundled.json):
 * required properties, types and enums the way the DMTF Service Validator checks them, but offline
 * and in CI.
 */
import { readFileSync } from 'node:fs';
import { expect } from 'chai';
import { Ajv, type ValidateFunction } from 'ajv';
import { routes } from '../../generated/redfish/routes.js';
import { SimulatedMachine, type SimulatorOptions } from '../../src/backend/simulator/simulator.js';
import type { MediaSlot } from '../../src/backend/types.js';
import { startTestAgent, type TestAgent } from '../helpers/agent.js';

/** DMTF schemas allow annotations (`X@Redfish.AllowableValues`, `@odata.etag`) where they forbid other extra properties. */
const ANNOTATION = '^([a-zA-Z_][a-zA-Z0-9_]*)?@(odata|Redfish|Message)\\.[a-zA-Z_][a-zA-Z0-9_]*$';

function allowAnnotations(x: unknown): unknown {
  if (Array.isArray(x)) return x.map(allowAnnotations);
  if (typeof x !== 'object' || x === null) return x;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(x)) out[k] = allowAnnotations(v);
  if (out.additionalProperties === false) {
    out.patternProperties = { [ANNOTATION]: {}, ...(out.patternProperties as Record<string, unknown> | undefined) };
  }
  return out;
}

const spec = JSON.parse(readFileSync(new URL('../../generated/redfish/openapi.bundled.json', import.meta.url), 'utf8')) as {
  components: Record<string, unknown>;
};
const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false });
ajv.addSchema({ components: allowAnnotations(spec.components) }, 'spec');

const OURS = new Set([
  'listSystems', 'getSystem', 'getSystemResetActionInfo', 'listSystemEthernetInterfaces', 'getSystemEthernetInterface',
  'listSystemVirtualMedia', 'getSystemVirtualMedia', 'listManagers', 'getManager', 'getManagerResetActionInfo',
  'getManagerNetworkProtocol', 'listManagerVirtualMedia', 'getManagerVirtualMedia', 'listChassis', 'getChassis',
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
  prepare?: (sim: SimulatedMachine) => Promise<void>;
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
    prepare: async (sim) => {
      await sim.power('on');
      await sim.setBootOverride({ target: 'uefiHttp', enabled: 'continuous', mode: 'Legacy' });
      await sim.insertMedia('UsbStick', { image: 'https://h.example/disk.img', writeProtected: false });
    },
  },
  {
    name: 'paused, failed CD insert, USB inserted',
    machine: () => new FailedCd({ initialPower: 'On' }),
    prepare: async (sim) => {
      await sim.power('pause');
      await sim.insertMedia('UsbStick', { image: 'http://h.example/usb.img' });
    },
  },
];

describe('Redfish resources: DMTF schema conformance', function () {
  for (const sc of SCENARIOS) {
    describe(sc.name, () => {
      let t: TestAgent;
      before(async () => {
        const machine = sc.machine?.();
        t = await startTestAgent({ ipmi: false, ...(sc.sim ? { sim: sc.sim } : {}), ...(machine ? { machine } : {}) });
        await sc.prepare?.(machine ?? t.sim);
      });
      after(async () => t.close());

      it('every resource validates against its route schema', async () => {
        const nics = (await (machineOf(t).getSystemInfo())).nics.map((n) => n.id);
        let checked = 0;
        for (const route of getRoutes) {
          const validate = ajv.getSchema(`spec#/components/schemas/${route.responseSchemaRef}`) as ValidateFunction | undefined;
          expect(validate, `schema ${route.responseSchemaRef}`).to.be.a('function');
          for (const path of expand(route.path, nics)) {
            const res = await fetch(t.redfishUrl + path, { headers: AUTH });
            expect(res.status, path).to.equal(200);
            const body = (await res.json()) as Record<string, unknown>;
            const ok = validate!(body);
            expect(ok, `${path}: ${JSON.stringify(validate!.errors?.slice(0, 3))}`).to.equal(true);
            expect(body['@odata.id'], path).to.equal(path);
            checked++;
          }
        }
        expect(checked).to.be.greaterThanOrEqual(getRoutes.length);
      });
    });
  }

  it('the checker does reject a wrong payload', () => {
    const validate = ajv.getSchema('spec#/components/schemas/ComputerSystem_ComputerSystem') as ValidateFunction;
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

/** Concrete paths for a route path: our fixed ids, both media slots, every NIC. */
function expand(path: string, nics: string[]): string[] {
  let out = [path.replace('{ComputerSystemId}', '1').replace('{ManagerId}', 'BMC').replace('{ChassisId}', '1')];
  if (path.includes('{VirtualMediaId}')) out = ['Cd', 'UsbStick'].flatMap((id) => out.map((p) => p.replace('{VirtualMediaId}', id)));
  if (path.includes('{EthernetInterfaceId}')) out = nics.flatMap((id) => out.map((p) => p.replace('{EthernetInterfaceId}', id)));
  return out;
}
