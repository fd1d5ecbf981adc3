/**
 * The emulator's patch code (test/emulator/patch.ts) treats a document's keys as data: names
 * that JavaScript objects inherit (`constructor`, `toString`) are missing keys, and `__proto__`
 * is an ordinary key that ends up in the result, as in kube-apiserver's Go maps. The first case
 * was found by fuzz/json-patch.fuzz.ts (fuzz/regressions/json-patch/move-from-inherited-constructor).
 */
import { expect } from 'chai';
import { jsonPatch, mergePatch, strategicMergePatch } from './patch.js';
import { ApiError } from './status.js';

function refused(f: () => unknown): ApiError {
  try {
    f();
  } catch (e) {
    expect(e).to.be.instanceOf(ApiError);
    return e as ApiError;
  }
  expect.fail('expected an ApiError');
}

describe('emulator patches: keys are own data, not the prototype', () => {
  const doc = { spec: { running: false } };

  it('JSON patch: move/copy/remove/replace/test of an inherited name are missing keys (422), never a TypeError', () => {
    for (const ops of [
      [{ op: 'move', from: '/spec/constructor', path: '/spec/running' }],
      [{ op: 'copy', from: '/spec/toString', path: '/spec/x' }],
      [{ op: 'remove', path: '/spec/constructor' }],
      [{ op: 'replace', path: '/spec/hasOwnProperty', value: 1 }],
      [{ op: 'add', path: '/spec/constructor/name', value: 1 }],
    ]) {
      const e = refused(() => jsonPatch(doc, ops));
      expect(e.code, JSON.stringify(ops)).to.equal(422);
    }
    // a test op against an inherited name sees no value
    expect(() => jsonPatch(doc, [{ op: 'test', path: '/spec/constructor', value: null }])).to.not.throw();
  });

  it('JSON patch: "__proto__" is a key like any other, and the prototype stays', () => {
    const out = jsonPatch(doc, [{ op: 'add', path: '/spec/__proto__', value: { polluted: true } }]) as { spec: Record<string, unknown> };
    expect(JSON.parse(JSON.stringify(out))).to.deep.equal(JSON.parse('{"spec":{"running":false,"__proto__":{"polluted":true}}}'));
    expect(Object.getPrototypeOf(out.spec)).to.equal(Object.prototype);
    expect(out.spec['polluted']).to.equal(undefined);
    expect(({} as Record<string, unknown>)['polluted']).to.equal(undefined);
    const e = refused(() => jsonPatch(doc, [{ op: 'test', path: '/spec/polluted', value: true }]));
    expect(e.code).to.equal(422);
  });

  it('merge and strategic merge patch: "__proto__" in a patch becomes an own key', () => {
    const patch = JSON.parse('{"spec":{"__proto__":{"polluted":true}}}') as unknown;
    for (const out of [mergePatch(doc, patch), strategicMergePatch(doc, patch)] as { spec: Record<string, unknown> }[]) {
      expect(Object.getPrototypeOf(out.spec)).to.equal(Object.prototype);
      expect(out.spec['polluted']).to.equal(undefined);
      expect(JSON.stringify(out)).to.equal('{"spec":{"running":false,"__proto__":{"polluted":true}}}');
    }
  });
});
