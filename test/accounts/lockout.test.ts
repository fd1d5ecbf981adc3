import { expect } from 'chai';
import {
  DEFAULT_LOCKOUT_POLICY,
  LoginLockout,
  MAX_TRACKED,
  SOURCE_FACTOR,
  lockoutPolicyProblems,
  sourceKey,
} from '../../src/accounts/lockout.js';

describe('accounts/lockout (shared by IPMI and Redfish)', () => {
  const clock = { t: 0 };
  const now = () => clock.t;
  beforeEach(() => (clock.t = 1_000_000));

  it('validates the policy: ranges, whole numbers, CounterResetAfter <= Duration', () => {
    expect(lockoutPolicyProblems(DEFAULT_LOCKOUT_POLICY)).to.deep.equal([]);
    expect(lockoutPolicyProblems({ threshold: 0, durationSeconds: 1, counterResetAfterSeconds: 1 })).to.deep.equal([]);
    const bad = lockoutPolicyProblems({ threshold: -1, durationSeconds: 0.5, counterResetAfterSeconds: 90_000 });
    expect(bad.map((p) => p.key)).to.deep.equal(['threshold', 'durationSeconds', 'counterResetAfterSeconds']);
    expect(bad[0]!.message).to.contain('AccountLockoutThreshold');
    expect(lockoutPolicyProblems({ threshold: 3, durationSeconds: 10, counterResetAfterSeconds: 11 })[0]!.message).to.contain('must not exceed');
    expect(() => new LoginLockout({ threshold: 1001, durationSeconds: 1, counterResetAfterSeconds: 1 })).to.throw(RangeError);
    const l = new LoginLockout(DEFAULT_LOCKOUT_POLICY, now);
    expect(() => l.setPolicy({ threshold: 1, durationSeconds: 5, counterResetAfterSeconds: 6 })).to.throw(RangeError);
    expect(l.policy).to.deep.equal(DEFAULT_LOCKOUT_POLICY); // unchanged after a refused policy
  });

  it('locks the (account, source) pair at the threshold, for the duration, and only that pair', () => {
    const l = new LoginLockout({ threshold: 3, durationSeconds: 30, counterResetAfterSeconds: 30 }, now);
    expect(l.recordFailure('10.0.0.1', 'admin')).to.equal(undefined);
    expect(l.recordFailure('10.0.0.1', 'admin')).to.equal(undefined);
    expect(l.recordFailure('10.0.0.1', 'admin')).to.deep.equal({ scope: 'account', retryAfterMs: 30_000 });
    expect(l.check('10.0.0.1', 'admin')).to.deep.equal({ scope: 'account', retryAfterMs: 30_000 });
    expect(l.check('10.0.0.2', 'admin')).to.equal(undefined);
    expect(l.check('10.0.0.1', 'viewer')).to.equal(undefined);
    expect(l.check('10.0.0.1')).to.equal(undefined); // the source as such is not locked
    clock.t += 29_999;
    expect(l.check('10.0.0.1', 'admin')?.retryAfterMs).to.equal(1);
    clock.t += 1;
    expect(l.check('10.0.0.1', 'admin')).to.equal(undefined);
  });

  it('forgets failures after CounterResetAfter, and a success clears only its own pair', () => {
    const l = new LoginLockout({ threshold: 2, durationSeconds: 60, counterResetAfterSeconds: 10 }, now);
    l.recordFailure('s', 'a');
    clock.t += 10_001;
    expect(l.recordFailure('s', 'a')).to.equal(undefined); // the first one was forgotten
    l.recordSuccess('s', 'b'); // another account's success does not help a
    expect(l.recordFailure('s', 'a')?.scope).to.equal('account');
    const m = new LoginLockout({ threshold: 2, durationSeconds: 60, counterResetAfterSeconds: 60 }, now);
    m.recordFailure('s', 'a');
    m.recordSuccess('s', 'a');
    expect(m.recordFailure('s', 'a')).to.equal(undefined);
  });

  it('the source aggregate covers every name a source tries (unknown ones included) and locks the source', () => {
    const l = new LoginLockout({ threshold: 2, durationSeconds: 60, counterResetAfterSeconds: 60 }, now);
    for (let i = 0; i < 2 * SOURCE_FACTOR - 1; i++) expect(l.recordFailure('9.9.9.9')).to.equal(undefined);
    expect(l.recordFailure('9.9.9.9')).to.deep.equal({ scope: 'source', retryAfterMs: 60_000 });
    expect(l.check('9.9.9.9', 'anyone')?.scope).to.equal('source');
    expect(l.check('9.9.9.8', 'anyone')).to.equal(undefined);
  });

  it('threshold 0 never locks', () => {
    const l = new LoginLockout({ threshold: 0, durationSeconds: 60, counterResetAfterSeconds: 60 }, now);
    for (let i = 0; i < 100; i++) expect(l.recordFailure('s', 'a')).to.equal(undefined);
    expect(l.check('s', 'a')).to.equal(undefined);
  });

  it('IPv4-mapped IPv6 and plain IPv4 are one source', () => {
    expect(sourceKey('::ffff:10.1.2.3')).to.equal('10.1.2.3');
    expect(sourceKey('::1')).to.equal('::1');
    const l = new LoginLockout({ threshold: 1, durationSeconds: 60, counterResetAfterSeconds: 60 }, now);
    l.recordFailure('::ffff:10.1.2.3', 'a');
    expect(l.check('10.1.2.3', 'a')?.scope).to.equal('account');
  });

  it('memory stays bounded under failures from ever new (spoofed) sources', () => {
    const l = new LoginLockout({ threshold: 5, durationSeconds: 60, counterResetAfterSeconds: 60 }, now);
    for (let i = 0; i < MAX_TRACKED + 500; i++) l.recordFailure(`10.${i >> 16}.${(i >> 8) & 0xff}.${i & 0xff}`, 'admin');
    expect(l.tracked.pairs).to.be.at.most(MAX_TRACKED);
    expect(l.tracked.sources).to.be.at.most(MAX_TRACKED);
    // The newest keys are the ones kept.
    const last = MAX_TRACKED + 499;
    for (let k = 0; k < 4; k++) l.recordFailure(`10.${last >> 16}.${(last >> 8) & 0xff}.${last & 0xff}`, 'admin');
    expect(l.check(`10.${last >> 16}.${(last >> 8) & 0xff}.${last & 0xff}`, 'admin')?.scope).to.equal('account');
  });
});
