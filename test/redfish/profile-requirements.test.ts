/**
 * The Interop profiles' bar without the validator: every property the profiles this service passes
 * require (test/redfish/fixtures/profile-requirements.json, taken from DMTF Redfish-Interop-Validator
 * runs with the Ironic and OCP profiles, see docs/redfish.md) is present on the simulator's
 * resources. Presence is what a profile's ReadRequirement checks; null passes ("not known").
 * Also: the Allow header of each resource lists GET, and collections the profiles need have members.
 */
import { readFileSync } from 'node:fs';
import { expect } from 'chai';
import { startTestAgent, type TestAgent } from '../helpers/agent.js';

interface Requirement {
  profiles: string[];
  properties: string[];
}
const FIXTURE = JSON.parse(readFileSync(new URL('./fixtures/profile-requirements.json', import.meta.url), 'utf8')) as Record<string, Requirement | string>;
const REQUIREMENTS = Object.entries(FIXTURE).filter((e): e is [string, Requirement] => !e[0].startsWith('_'));
const AUTH = { authorization: 'Basic ' + Buffer.from('admin:password').toString('base64') };

/** The paths of `want` missing from `body` ('a/b', 'a[]/b': each element of a). */
function missingPaths(body: unknown, want: readonly string[]): string[] {
  const missing: string[] = [];
  const walk = (node: unknown, segs: string[], full: string): void => {
    if (segs.length === 0) return;
    const [seg, ...rest] = segs as [string, ...string[]];
    const each = seg.endsWith('[]');
    const key = each ? seg.slice(0, -2) : seg;
    if (typeof node !== 'object' || node === null || Array.isArray(node) || !(key in node)) {
      missing.push(full);
      return;
    }
    const value = (node as Record<string, unknown>)[key];
    if (each) {
      if (!Array.isArray(value)) missing.push(full);
      else for (const el of value) walk(el, rest, full);
    } else if (rest.length > 0) {
      walk(value, rest, full);
    }
  };
  for (const p of want) walk(body, p.split('/'), p);
  return [...new Set(missing)];
}

describe('Interop profile requirements (Ironic, OCP Baseline/Service/Server) on the simulator', function () {
  let t: TestAgent;
  before(async () => {
    t = await startTestAgent({ ipmi: false });
  });
  after(async () => t.close());

  it('the path walker finds what is missing and passes what is there', () => {
    const body = { A: { B: null }, L: [{ X: 1 }, { Y: 2 }], E: [], 'Actions': { '#S.Reset': { target: '/t' } } };
    expect(missingPaths(body, ['A/B', 'A/C', 'L[]/X', 'E[]/X', 'Actions/#S.Reset/target', 'Z'])).to.deep.equal(['A/C', 'L[]/X', 'Z']);
  });

  it('the fixture covers the four profiles', () => {
    const profiles = new Set(REQUIREMENTS.flatMap(([, r]) => r.profiles));
    expect([...profiles].sort()).to.deep.equal(['ironic', 'ocp-baseline', 'ocp-server', 'ocp-service']);
  });

  for (const [uri, req] of REQUIREMENTS) {
    it(`${uri} (${req.profiles.join(', ')}): ${req.properties.length} required properties`, async () => {
      const res = await fetch(t.redfishUrl + uri, { headers: AUTH });
      expect(res.status, uri).to.equal(200);
      expect(res.headers.get('allow') ?? '', `${uri} Allow`).to.match(/\bGET\b/);
      const body = (await res.json()) as Record<string, unknown>;
      expect(missingPaths(body, req.properties), uri).to.deep.equal([]);
    });
  }

  it('the collections the profiles walk into have members', async () => {
    for (const uri of ['/redfish/v1/Systems', '/redfish/v1/Chassis', '/redfish/v1/Managers', '/redfish/v1/Managers/BMC/EthernetInterfaces',
      '/redfish/v1/Managers/BMC/LogServices', '/redfish/v1/Systems/1/EthernetInterfaces', '/redfish/v1/Systems/1/Storage/1/Controllers']) {
      const body = (await (await fetch(t.redfishUrl + uri, { headers: AUTH })).json()) as { Members?: unknown[] };
      expect(body.Members?.length ?? 0, uri).to.be.greaterThan(0);
    }
  });
});
