/**
 * perObject (src/common/per-object.ts), the "state attached to an object, made on first use"
 * helper behind indicatorOf, eventHubOf, taskStoreOf and the others.
 */
import { expect } from 'chai';
import { perObject } from '../../src/common/per-object.js';

describe('perObject', () => {
  it('makes the value on first get, from that key, and only once', () => {
    const made: object[] = [];
    const state = perObject((key: object) => {
      made.push(key);
      return { n: made.length };
    });
    const k = {};
    const first = state.get(k);
    expect(made).to.deep.equal([k]);
    expect(made[0]).to.equal(k);
    expect(state.get(k)).to.equal(first);
    expect(made).to.have.length(1);
  });

  it('keeps a separate value per key', () => {
    const state = perObject(() => ({ count: 0 }));
    const a = {};
    const b = {};
    state.get(a).count++;
    expect(state.get(a).count).to.equal(1);
    expect(state.get(b).count).to.equal(0);
    expect(state.get(a)).to.not.equal(state.get(b));
  });

  it('peek does not make a value', () => {
    let calls = 0;
    const state = perObject(() => ++calls);
    const k = {};
    expect(state.peek(k)).to.equal(undefined);
    expect(calls).to.equal(0);
    expect(state.get(k)).to.equal(1);
    expect(state.peek(k)).to.equal(1);
    expect(calls).to.equal(1);
  });

  it('set attaches a value that get then returns without making one, and replaces an earlier one', () => {
    let calls = 0;
    const state = perObject(() => `made ${++calls}`);
    const k = {};
    state.set(k, 'attached');
    expect(state.get(k)).to.equal('attached');
    expect(calls).to.equal(0);
    state.set(k, 'again');
    expect(state.peek(k)).to.equal('again');
    expect(state.get(k)).to.equal('again');
    expect(calls).to.equal(0);
  });

  it('makes an undefined value only once too', () => {
    let calls = 0;
    const state = perObject((): undefined => {
      calls++;
      return undefined;
    });
    const k = {};
    expect(state.get(k)).to.equal(undefined);
    expect(state.get(k)).to.equal(undefined);
    expect(calls).to.equal(1);
  });
});
