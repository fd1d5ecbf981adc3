/** RefIndex: which VirtualMachineBMCs reference a Secret or VM, kept per event instead of a walk over all. */
import { expect } from 'chai';
import { RefIndex } from '../../src/controller/informers.js';

describe('controller RefIndex', () => {
  it('answers the referrers of one object, follows moves and removals, and reports namespace changes', () => {
    const ix = new RefIndex();
    expect(ix.set('a', 'b1', 's1')).to.equal(true); // namespace a appears
    expect(ix.set('a', 'b2', 's1')).to.equal(false);
    expect(ix.set('a', 'b3', 's2')).to.equal(false);
    expect(ix.set('b', 'b1', 's1')).to.equal(true); // same names, other namespace
    expect([...ix.referrers('a', 's1')].sort()).to.deep.equal(['b1', 'b2']);
    expect(ix.referrers('a', 's2')).to.deep.equal(['b3']);
    expect(ix.referrers('b', 's1')).to.deep.equal(['b1']);
    expect(ix.referrers('a', 'nothing')).to.deep.equal([]);
    // b2 moves to s2; setting the same reference again changes nothing
    expect(ix.set('a', 'b2', 's2')).to.equal(false);
    expect(ix.set('a', 'b2', 's2')).to.equal(false);
    expect(ix.referrers('a', 's1')).to.deep.equal(['b1']);
    expect([...ix.referrers('a', 's2')].sort()).to.deep.equal(['b2', 'b3']);
    expect(ix.namespaces().sort()).to.deep.equal(['a', 'b']);
    // the last reference of namespace b goes: reported; a's go one by one
    expect(ix.set('b', 'b1', undefined)).to.equal(true);
    expect(ix.namespaces()).to.deep.equal(['a']);
    expect(ix.set('a', 'b1', undefined)).to.equal(false);
    expect(ix.set('a', 'b2', undefined)).to.equal(false);
    expect(ix.set('a', 'b3', undefined)).to.equal(true);
    expect(ix.namespaces()).to.deep.equal([]);
    expect(ix.referrers('a', 's2')).to.deep.equal([]);
    expect(ix.set('a', 'never-there', undefined)).to.equal(false);
  });
});
