/**
 * Shared mode (issue 16): the Tenancy's credential index, which answers a repeat Basic credential
 * with one keyed hash and a map lookup (src/redfish/core/tenancy.ts). A credential resolves only to
 * the tenants whose accounts hold it; a password change, an account deleted or disabled, and a
 * tenant removed take effect at the next lookup; the index keys are keyed with the Tenancy's own
 * random key, never the password or a plain hash of it. And the one IPMI sweep timer a shared
 * agent gives all of its sockets (src/ipmi/server.ts SweepGroup).
 */
import { expect } from 'chai';
import { createHash } from 'node:crypto';
import sinon from 'sinon';
import { AccountStore } from '../../src/accounts/store.js';
import { LoginLockout } from '../../src/accounts/lockout.js';
import { SweepGroup } from '../../src/ipmi/server.js';
import { MemorySessionStore } from '../../src/redfish/core/sessions.js';
import { Tenancy, TenantSessionStore } from '../../src/redfish/core/tenancy.js';
import type { RedfishDeps } from '../../src/redfish/core/types.js';

/** The deps Tenancy.add and match read (accounts, users, sessions, machine for the event hub). */
function deps(accounts: AccountStore, seq: number): RedfishDeps {
  return { machine: {}, accounts, users: accounts.users, sessions: new TenantSessionStore(new MemorySessionStore(), seq), lockout: new LoginLockout() } as unknown as RedfishDeps;
}

/** The index keys a Tenancy holds (private; read here to check what the index stores). */
const indexKeys = (t: Tenancy): string[] => [...(t as unknown as { index: Map<string, unknown> }).index.keys()];

describe('shared mode: the credential index (Tenancy.match)', () => {
  let tenancy: Tenancy;
  let a: AccountStore;
  let b: AccountStore;

  beforeEach(() => {
    tenancy = new Tenancy(deps(new AccountStore([], { requireAdmin: false }), 0));
    a = new AccountStore([
      { username: 'alice', password: 'alice-pw', role: 'Administrator' },
      { username: 'ops', password: 'ops-pw', role: 'Operator' },
    ]);
    b = new AccountStore([
      { username: 'bob', password: 'bob-pw', role: 'Administrator' },
      { username: 'root', password: 'root-pw', role: 'Administrator' },
      { username: 'ops', password: 'ops-pw', role: 'ReadOnly' },
    ]);
    tenancy.add({ id: 'ns.a', deps: deps(a, tenancy.allocateSeq()) });
    tenancy.add({ id: 'ns.b', deps: deps(b, tenancy.allocateSeq()) });
  });

  it("resolves a credential to the tenants holding it and never to another tenant's", () => {
    // each twice: the first lookup of a credential and the repeat (an index hit) agree
    for (let i = 0; i < 2; i++) {
      expect(tenancy.match('alice', 'alice-pw')).to.deep.equal(['ns.a']);
      expect(tenancy.match('bob', 'bob-pw')).to.deep.equal(['ns.b']);
      expect(tenancy.match('ops', 'ops-pw')).to.deep.equal(['ns.a', 'ns.b']);
      expect(tenancy.match('alice', 'bob-pw')).to.deep.equal([]);
      expect(tenancy.match('bob', 'alice-pw')).to.deep.equal([]);
      expect(tenancy.match('alice', 'alice-pw ')).to.deep.equal([]);
      expect(tenancy.match('nobody', 'alice-pw')).to.deep.equal([]);
    }
  });

  it('a password change, a deleted and a disabled account stop matching at the next lookup', async () => {
    expect(tenancy.match('alice', 'alice-pw')).to.deep.equal(['ns.a']);
    await a.update(a.byName('alice')!.id, { password: 'alice-new' });
    expect(tenancy.match('alice', 'alice-pw')).to.deep.equal([]);
    expect(tenancy.match('alice', 'alice-new')).to.deep.equal(['ns.a']);

    // the shared credential changed in one tenant: the old one keeps the other, the new one this one
    await a.update(a.byName('ops')!.id, { password: 'ops-a-only' });
    expect(tenancy.match('ops', 'ops-pw')).to.deep.equal(['ns.b']);
    expect(tenancy.match('ops', 'ops-a-only')).to.deep.equal(['ns.a']);

    expect(tenancy.match('bob', 'bob-pw')).to.deep.equal(['ns.b']);
    await b.update(b.byName('bob')!.id, { enabled: false });
    expect(tenancy.match('bob', 'bob-pw')).to.deep.equal([]);
    await b.update(b.byName('bob')!.id, { enabled: true });
    expect(tenancy.match('bob', 'bob-pw')).to.deep.equal(['ns.b']);

    await b.delete(b.byName('ops')!.id);
    expect(tenancy.match('ops', 'ops-pw')).to.deep.equal([]);
    await b.delete(b.byName('bob')!.id);
    expect(tenancy.match('bob', 'bob-pw')).to.deep.equal([]);
    // a new account is found at once too
    await b.create({ username: 'bob', password: 'bob-again', role: 'Operator' });
    expect(tenancy.match('bob', 'bob-again')).to.deep.equal(['ns.b']);
    expect(tenancy.match('bob', 'bob-pw')).to.deep.equal([]);
  });

  it('a removed tenant matches nothing, and its accounts no longer reach the index', async () => {
    expect(tenancy.match('ops', 'ops-pw')).to.deep.equal(['ns.a', 'ns.b']);
    tenancy.remove('ns.b');
    expect(tenancy.match('ops', 'ops-pw')).to.deep.equal(['ns.a']);
    expect(tenancy.match('bob', 'bob-pw')).to.deep.equal([]);
    // a change in the removed tenant's store re-indexes nothing
    await b.create({ username: 'alice', password: 'alice-pw', role: 'Operator' });
    expect(tenancy.match('alice', 'alice-pw')).to.deep.equal(['ns.a']);
  });

  it('a tenant whose users are not its store\'s live list is checked against them on every hit', () => {
    const users = [{ username: 'carol', password: 'carol-pw', role: 'Administrator' as const }];
    const store = new AccountStore([], { requireAdmin: false });
    tenancy.add({ id: 'ns.c', deps: { ...deps(store, tenancy.allocateSeq()), users } });
    expect(tenancy.match('carol', 'carol-pw')).to.deep.equal(['ns.c']);
    expect(tenancy.match('carol', 'carol-pw')).to.deep.equal(['ns.c']);
    users[0]!.password = 'carol-changed';
    expect(tenancy.match('carol', 'carol-pw')).to.deep.equal([]);
    expect(tenancy.match('carol', 'carol-changed')).to.deep.equal(['ns.c']);
    users.length = 0;
    expect(tenancy.match('carol', 'carol-changed')).to.deep.equal([]);
  });

  it('index keys are keyed by the Tenancy: neither a password nor its plain SHA-256, and another Tenancy keys the same credential differently', () => {
    const keys = indexKeys(tenancy);
    expect(keys).to.have.length(4); // alice, ops (one key for both tenants' ops), bob, root
    const plain = (u: string, p: string, sep: string): string => createHash('sha256').update(`${u}${sep}${p}`).digest('base64');
    for (const [u, p] of [['alice', 'alice-pw'], ['ops', 'ops-pw'], ['bob', 'bob-pw'], ['root', 'root-pw']] as const) {
      for (const k of keys) {
        expect(k).not.to.include(p);
        expect(k).not.to.equal(plain(u, p, '\u0000'));
        expect(k).not.to.equal(plain(u, p, ':'));
      }
    }
    const other = new Tenancy(deps(new AccountStore([], { requireAdmin: false }), 0));
    other.add({ id: 'ns.a', deps: deps(new AccountStore([{ username: 'alice', password: 'alice-pw', role: 'Administrator' }]), other.allocateSeq()) });
    expect(indexKeys(other)).to.have.length(1);
    expect(keys).not.to.include(indexKeys(other)[0]);
  });
});

describe('IPMI: one sweep timer for many servers (SweepGroup)', () => {
  let clock: sinon.SinonFakeTimers;
  beforeEach(() => {
    clock = sinon.useFakeTimers();
  });
  afterEach(() => clock.restore());

  it('sweeps every member once a second on one timer, which goes with the last member', () => {
    const group = new SweepGroup();
    const swept: string[] = [];
    const stopA = group.add(() => swept.push('a'));
    const stopB = group.add(() => swept.push('b'));
    expect(clock.countTimers()).to.equal(1);
    clock.tick(999);
    expect(swept).to.deep.equal([]);
    clock.tick(1);
    expect(swept).to.deep.equal(['a', 'b']);
    stopA();
    clock.tick(1000);
    expect(swept).to.deep.equal(['a', 'b', 'b']);
    stopB();
    expect(group.size).to.equal(0);
    expect(clock.countTimers()).to.equal(0);
    // a member added later starts the timer again
    group.add(() => swept.push('c'));
    clock.tick(1000);
    expect(swept).to.deep.equal(['a', 'b', 'b', 'c']);
  });
});
