/**
 * /redfish/v1/openapi.yaml (DSP0266 "OpenAPI"): public, application/yaml, and exactly the
 * operations the service routes: every route's path and method is in it and nothing else is.
 */
import { expect } from 'chai';
import { parse } from 'yaml';
import { routes } from '../../generated/redfish/routes.js';
import { startTestAgent, type TestAgent } from '../helpers/agent.js';

describe('Redfish /redfish/v1/openapi.yaml', () => {
  let t: TestAgent;
  before(async () => {
    t = await startTestAgent({ ipmi: false });
  });
  after(async () => t.close());

  it('is served without credentials as application/yaml for the Accept values DSP0266 names, and 406-free for */*', async () => {
    for (const accept of ['application/yaml', 'application/yaml;charset=utf-8', 'application/*', '*/*']) {
      const r = await fetch(`${t.redfishUrl}/redfish/v1/openapi.yaml`, { headers: { accept } });
      expect(r.status, accept).to.equal(200);
      expect(r.headers.get('content-type'), accept).to.match(/^application\/yaml/);
      await r.text();
    }
  });

  it('describes exactly the routed operations, with their operationIds and DMTF schema references', async () => {
    const doc = parse(await (await fetch(`${t.redfishUrl}/redfish/v1/openapi.yaml`)).text()) as {
      openapi: string;
      paths: Record<string, Record<string, { operationId: string }>>;
    };
    expect(doc.openapi).to.match(/^3\./);
    const METHODS = new Set(['get', 'put', 'post', 'patch', 'delete']);
    const served = Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.entries(ops)
        .filter(([m]) => METHODS.has(m))
        .map(([m, op]) => `${m.toUpperCase()} ${path} ${op.operationId}`),
    );
    const routed = routes.map((r) => `${r.method} ${r.path} ${r.operationId}`);
    expect(served.sort()).to.deep.equal(routed.sort());
    const text = JSON.stringify(doc);
    expect(text).to.contain('http://redfish.dmtf.org/schemas/v1/ComputerSystem.v1_27_0.yaml#/components/schemas/ComputerSystem_v1_27_0_ComputerSystem');
    // the maintainers' comments are not served
    expect(await (await fetch(`${t.redfishUrl}/redfish/v1/openapi.yaml`)).text()).to.not.contain('Hand-maintained');
  });
});
