/**
 * Replays the fuzz seeds (fuzz/corpus/<target>/) and every crash found so far
 * (fuzz/regressions/<target>/) through each fuzz target: each must pass the target's invariants.
 * Runs without Jazzer.js: the targets are plain functions.
 */
import { expect } from 'chai';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chunks, frame } from '../../fuzz/common.js';
import { fuzz as ipmiCodec } from '../../fuzz/ipmi-codec.fuzz.js';
import { fuzz as ipmiEngine } from '../../fuzz/ipmi-engine.fuzz.js';
import { fuzz as jsonPatch } from '../../fuzz/json-patch.fuzz.js';
import { fuzz as redfishBody } from '../../fuzz/redfish-body.fuzz.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const TARGETS: Record<string, (d: Buffer) => void | Promise<void>> = {
  'ipmi-codec': ipmiCodec,
  'ipmi-engine': ipmiEngine,
  'redfish-body': redfishBody,
  'json-patch': jsonPatch,
};

function inputs(target: string): { name: string; data: Buffer }[] {
  return ['corpus', 'regressions'].flatMap((kind) => {
    const dir = join(ROOT, 'fuzz', kind, target);
    if (!existsSync(dir)) return [];
    return readdirSync(dir)
      .filter((f) => !f.startsWith('.') && !f.endsWith('.md'))
      .map((f) => ({ name: `${kind}/${target}/${f}`, data: readFileSync(join(dir, f)) }));
  });
}

describe('fuzz targets: seeds and past crashes replay clean', () => {
  for (const [target, fuzz] of Object.entries(TARGETS)) {
    it(`${target}: every seed and regression input passes the invariants`, async () => {
      const all = inputs(target);
      expect(all.length, `seeds for ${target}`).to.be.greaterThan(5);
      for (const { name, data } of all) {
        try {
          await fuzz(data);
        } catch (e) {
          throw new Error(`${name}: ${(e as Error).message}`, { cause: e });
        }
      }
    });
  }

  it('the framing helpers round-trip (the engine seeds depend on it)', () => {
    const parts = [Buffer.from('ab'), Buffer.alloc(0), Buffer.from([1, 2, 3])];
    expect(chunks(frame(parts), 10)).to.deep.equal(parts);
    expect(chunks(frame(parts), 2)).to.deep.equal(parts.slice(0, 2));
    expect(chunks(Buffer.from([5, 0, 1]), 4)).to.deep.equal([Buffer.from([1])]); // a cut-off chunk
  });
});
