/**
 * Every GET response in the tree, and error bodies, validated with ajv against the DMTF schemas the
 * generator bundled (generated/redfish/openapi.bundled.json): types, enums, required properties and
 * no unknown properties — what the DMTF Service Validator checks, runnable offline in CI.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { expect } from 'chai';
import { bindHandlers } from '../../src/redfish/app.js';
import { modules } from '../../src/redfish/resources/index.js';
import { ADMIN, startTestAgent, type TestAgent } from '../helpers/agent.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BASIC = `Basic ${Buffer.from(`${ADMIN.username}:${ADMIN.password}`).toString('base64')}`;

function loadValidator(): (name: string) => ValidateFunction {
  // DMTF writes allowed annotation names as x-patternProperties (OpenAPI 3.0 has no patternProperties).
  const text = readFileSync(join(ROOT, 'generated/redfish/openapi.bundled.json'), 'utf8').replaceAll(
    '"x-patternProperties"',
    '"patternProperties"',
  );
  const doc = JSON.parse(text) as { components: Record<string, unknown> };
  const ajv = new Ajv({ strict: false, allErrors: true });
  (addFormatsModule as unknown as (a: Ajv) => void)(ajv);
  ajv.addSchema({ components: doc.components }, 'bundle');
  return (name) => {
    const v = ajv.getSchema(`bundle#/components/schemas/${name}`);
    if (!v) throw new Error(`no schema ${name}`);
    return v;
  };
}

describe('Redfish payloads against the DMTF schemas', () => {
  let t: TestAgent;
  const schema = loadValidator();
  // each route with a matcher of its OpenAPI path ({Param} = one segment)
  const compiled = bindHandlers(modules).map((r) => ({
    ...r,
    regex: new RegExp(`^${r.def.path.replace(/[.$]/g, '\\$&').replace(/\{[A-Za-z0-9_]+\}/g, '[^/]+')}$`),
  }));

  before(async () => {
    t = await startTestAgent({ ipmi: false, sim: { initialPower: 'On' } });
  });
  after(async () => t?.close());

  async function get(uri: string): Promise<Record<string, unknown>> {
    const res = await fetch(`${t.redfishUrl}${uri}`, { headers: { Authorization: BASIC } });
    expect(res.status, uri).to.equal(200);
    return (await res.json()) as Record<string, unknown>;
  }

  it('every resource reachable from the service root matches its schema', async () => {
    const seen = new Set<string>();
    const queue = ['/redfish/v1'];
    const failures: string[] = [];
    while (queue.length > 0) {
      const uri = queue.shift() as string;
      if (seen.has(uri)) continue;
      seen.add(uri);
      const route = compiled.find((r) => r.def.method === 'GET' && r.regex.test(uri));
      expect(route, uri).to.not.equal(undefined);
      const body = await get(uri);
      const ref = route!.def.responseSchemaRef;
      if (ref) {
        const v = schema(ref);
        if (!v(body)) failures.push(`${uri} (${ref}): ${JSON.stringify(v.errors?.slice(0, 3))}`);
      }
      const walk = (node: unknown): void => {
        if (Array.isArray(node)) node.forEach(walk);
        else if (node && typeof node === 'object') {
          for (const [k, v] of Object.entries(node)) {
            if (k === '@odata.id' && typeof v === 'string' && v.startsWith('/redfish/v1')) queue.push(v.replace(/\/$/, ''));
            else walk(v);
          }
        }
      };
      if (!/^\/redfish\/v1\/Registries\/[^/]+\/./.test(uri)) walk(body); // registries: DMTF files, verbatim
    }
    expect(failures, failures.join('\n')).to.deep.equal([]);
    expect(seen.size).to.be.greaterThan(20);
  });

  it('a new session and error bodies match their schemas', async () => {
    const res = await fetch(`${t.redfishUrl}/redfish/v1/SessionService/Sessions`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ UserName: 'admin', Password: 'password' }),
    });
    expect(res.status).to.equal(201);
    const session = schema('Session_Session');
    expect(session(await res.json()), JSON.stringify(session.errors)).to.equal(true);

    const bad = await fetch(`${t.redfishUrl}/redfish/v1/SessionService`, {
      method: 'PATCH',
      headers: { 'Content-Type': 'application/json', Authorization: BASIC },
      body: JSON.stringify({ Nope: 1, SessionTimeout: 'x' }),
    });
    expect(bad.status).to.equal(400);
    const err = schema('RedfishError');
    const message = schema('Message_Message');
    const body = (await bad.json()) as { error: { '@Message.ExtendedInfo': unknown[] } };
    expect(err(body), JSON.stringify(err.errors)).to.equal(true);
    expect(body.error['@Message.ExtendedInfo']).to.have.length(2);
    for (const m of body.error['@Message.ExtendedInfo']) expect(message(m), JSON.stringify(message.errors)).to.equal(true);
  });

  it('the validator itself catches a wrong payload (a check that can fail)', () => {
    const v = schema('Session_Session');
    expect(v({ '@odata.id': '/x', '@odata.type': '#Session.v1_8_0.Session', Id: '1', Name: 'n', Bogus: true })).to.equal(false);
    expect(v({ '@odata.id': '/x', '@odata.type': '#Session.v1_8_0.Session', Id: '1' })).to.equal(false); // Name required
  });
});
