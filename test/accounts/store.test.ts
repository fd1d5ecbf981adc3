import { expect } from 'chai';
import {
  AccountStore,
  AccountStoreError,
  ROLE_TO_PRIVILEGE,
  passwordEquals,
  roleForPrivilege,
  type AccountChange,
  type StoredAccount,
} from '../../src/accounts/store.js';

async function rejects(p: Promise<unknown>, code: string): Promise<void> {
  try {
    await p;
  } catch (e) {
    expect(e).to.be.instanceOf(AccountStoreError);
    expect((e as AccountStoreError).code).to.equal(code);
    return;
  }
  expect.fail(`expected AccountStoreError ${code}`);
}

describe('accounts/store', () => {
  const seed = () => new AccountStore([{ username: 'admin', password: 'password', role: 'Administrator' }]);

  it('gives stable IPMI user ids from 2, never returns passwords', async () => {
    const s = seed();
    const a = await s.create({ username: 'op', password: 'secret1', role: 'Operator' });
    const b = await s.create({ username: 'ro', password: 'secret2', role: 'ReadOnly' });
    expect([s.byName('admin')!.id, a.id, b.id]).to.deep.equal([2, 3, 4]);
    await s.delete(a.id);
    expect(s.get(4)!.username).to.equal('ro');
    const c = await s.create({ username: 'new', password: 'secret3', role: 'ReadOnly' });
    expect(c.id).to.equal(3);
    expect(JSON.stringify(s.list())).to.not.include('secret');
    expect(s.list().map((v) => Object.keys(v).includes('password'))).to.deep.equal([false, false, false]);
  });

  it('keeps the live users[] list in place for the protocol servers', async () => {
    const s = seed();
    const live = s.users;
    const held = live[0]!;
    await s.update(2, { password: 'changed!' });
    expect(held.password).to.equal('changed!');
    await s.create({ username: 'op', password: 'x', role: 'Operator' });
    expect(live.map((u) => u.username)).to.deep.equal(['admin', 'op']);
    await s.update(3, { enabled: false });
    expect(live.map((u) => u.username)).to.deep.equal(['admin']);
    expect(s.users).to.equal(live);
  });

  it('verifies in constant time and refuses disabled accounts', async () => {
    const s = seed();
    expect(s.verify('admin', 'password')?.id).to.equal(2);
    expect(s.verify('admin', 'passwor')).to.equal(undefined);
    expect(s.verify('nobody', 'password')).to.equal(undefined);
    await s.create({ username: 'op', password: 'pw', role: 'Operator', enabled: false });
    expect(s.verify('op', 'pw')).to.equal(undefined);
    expect(s.testPassword(3, 'pw')).to.equal(true);
    expect(s.testPassword(3, 'pX')).to.equal(false);
    expect(s.testPassword(9, '\u0000no-such-user')).to.equal(false);
    expect(passwordEquals('a', 'a')).to.equal(true);
    expect(passwordEquals('a', 'ab')).to.equal(false);
  });

  it('protects the last enabled Administrator', async () => {
    const s = seed();
    await rejects(s.delete(2), 'last-admin');
    await rejects(s.update(2, { enabled: false }), 'last-admin');
    await rejects(s.update(2, { role: 'Operator' }), 'last-admin');
    expect(s.get(2)).to.include({ role: 'Administrator', enabled: true });
    await s.create({ username: 'admin2', password: 'pw', role: 'Administrator' });
    await s.update(2, { role: 'ReadOnly' });
    await rejects(s.delete(3), 'last-admin');
    expect(() => new AccountStore([{ username: 'ro', password: 'x', role: 'ReadOnly' }])).to.throw(AccountStoreError);
  });

  it('enforces the password policy and IPMI caps (20 bytes, 16 for v1.5)', async () => {
    const s = seed();
    await rejects(s.create({ username: 'u', password: 'x'.repeat(21), role: 'ReadOnly' }), 'invalid-password');
    await s.create({ username: 'u', password: 'x'.repeat(20), role: 'ReadOnly' });
    expect(() => s.checkPassword('x'.repeat(17), 16)).to.throw(AccountStoreError);
    s.checkPassword('x'.repeat(16), 16);
    s.setPasswordPolicy({ minLength: 8, maxLength: 20 });
    await rejects(s.update(3, { password: 'short' }), 'invalid-password');
    expect(() => s.setPasswordPolicy({ minLength: 1, maxLength: 21 })).to.throw(AccountStoreError);
    expect(() => s.setPasswordPolicy({ minLength: 9, maxLength: 8 })).to.throw(AccountStoreError);
    expect(s.verify('u', 'x'.repeat(20))).to.not.equal(undefined);
  });

  it('checks names and roles; a bad request changes nothing', async () => {
    const s = seed();
    await rejects(s.create({ username: 'admin', password: 'pw', role: 'ReadOnly' }), 'exists');
    await rejects(s.create({ username: '', password: 'pw', role: 'ReadOnly' }), 'invalid-name');
    await rejects(s.create({ username: 'x'.repeat(17), password: 'pw', role: 'ReadOnly' }), 'invalid-name');
    await rejects(s.create({ username: 'ok', password: 'pw', role: 'Root' as never }), 'invalid-role');
    await rejects(s.create({ username: 'ok', password: 'pw', role: 'ReadOnly', id: 2 }), 'exists');
    await rejects(s.create({ username: 'ok', password: 'pw', role: 'ReadOnly', id: 64 }), 'not-found');
    await rejects(s.update(2, { username: 'new', password: '' }), 'invalid-password');
    expect(s.list().map((a) => a.username)).to.deep.equal(['admin']);
    const v = await s.create({ username: 'at10', password: 'pw', role: 'ReadOnly', id: 10 });
    expect(v.id).to.equal(10);
  });

  it('clears PasswordChangeRequired on a password change', async () => {
    const s = seed();
    await s.create({ username: 'u', password: 'initial', role: 'Operator', passwordChangeRequired: true });
    expect(s.get(3)!.passwordChangeRequired).to.equal(true);
    await s.update(3, { role: 'ReadOnly' });
    expect(s.get(3)!.passwordChangeRequired).to.equal(true);
    await s.update(3, { password: 'next' });
    expect(s.get(3)!.passwordChangeRequired).to.equal(false);
  });

  it('passwordChangePending names the account only while its flag is set (create, PATCH, replaceAll, delete)', async () => {
    const s = seed();
    expect(s.passwordChangePending('admin')).to.equal(undefined);
    await s.create({ username: 'u', password: 'initial', role: 'Operator', passwordChangeRequired: true });
    expect(s.passwordChangePending('u')).to.include({ id: 3, username: 'u', passwordChangeRequired: true });
    expect(s.passwordChangePending('admin')).to.equal(undefined);
    await s.update(3, { password: 'next' });
    expect(s.passwordChangePending('u')).to.equal(undefined);
    await s.update(3, { passwordChangeRequired: true });
    expect(s.passwordChangePending('u')?.id).to.equal(3);
    await s.delete(3);
    expect(s.passwordChangePending('u')).to.equal(undefined);
    s.replaceAll([
      { id: 2, username: 'admin', password: 'pw', role: 'Administrator', enabled: true, passwordChangeRequired: false },
      { id: 4, username: 'ro', password: 'ro-pw', role: 'ReadOnly', enabled: true, passwordChangeRequired: true },
    ]);
    expect(s.passwordChangePending('ro')?.id).to.equal(4);
    expect(s.passwordChangePending('admin')).to.equal(undefined);
  });

  it('emits change events without passwords and persists each change in order', async () => {
    const writes: StoredAccount[][] = [];
    const s = new AccountStore([{ username: 'admin', password: 'password', role: 'Administrator' }], {
      persist: async (a) => {
        writes.push(a.map((x) => ({ ...x })));
      },
    });
    const seen: AccountChange[] = [];
    const off = s.onChange((c) => seen.push(c));
    await s.create({ username: 'op', password: 'pw-secret', role: 'Operator' });
    await s.update(3, { password: 'pw-secret-2' });
    await s.delete(3);
    off();
    await s.update(2, { password: 'other' });
    expect(seen.map((c) => c.type)).to.deep.equal(['created', 'updated', 'deleted']);
    expect(JSON.stringify(seen)).to.not.include('pw-secret');
    expect(seen[1]).to.include({ passwordChanged: true });
    expect(writes.map((w) => w.map((a) => a.password))).to.deep.equal([
      ['password', 'pw-secret'],
      ['password', 'pw-secret-2'],
      ['password'],
      ['other'],
    ]);
    const restored = new AccountStore(writes[1]!);
    expect(restored.verify('op', 'pw-secret-2')?.id).to.equal(3);
  });

  it('does not change the account when persisting fails', async () => {
    let fail = false;
    const s = new AccountStore([{ username: 'admin', password: 'password', role: 'Administrator' }], {
      persist: async () => {
        if (fail) throw new Error('apiserver down');
      },
    });
    fail = true;
    try {
      await s.create({ username: 'op', password: 'pw', role: 'Operator' });
      expect.fail('create should reject');
    } catch (e) {
      expect((e as Error).message).to.equal('apiserver down');
    }
    expect(s.byName('op')).to.equal(undefined);
    expect(s.users.map((u) => u.username)).to.deep.equal(['admin']);
  });

  it('replaceAll: keeps equal accounts (and their sessions), updates, removes and adds the others, tells the listeners, writes nothing; refuses bad targets whole', async () => {
    const writes: StoredAccount[][] = [];
    const s = new AccountStore(
      [
        { id: 2, username: 'admin', password: 'pw', role: 'Administrator', enabled: true, passwordChangeRequired: false },
        { id: 3, username: 'op', password: 'op-pw', role: 'Operator', enabled: true, passwordChangeRequired: false },
        { id: 4, username: 'ro', password: 'ro-pw', role: 'ReadOnly', enabled: true, passwordChangeRequired: false },
      ],
      { persist: async (a) => void writes.push([...a]) },
    );
    const users = s.users;
    const stamps = [2, 3, 4].map((id) => s.sessionStamp(id));
    const changes: AccountChange[] = [];
    s.onChange((c) => changes.push(c));
    const done = s.replaceAll([
      { id: 2, username: 'root', password: 'pw-2', role: 'Administrator', enabled: true, passwordChangeRequired: false },
      { id: 3, username: 'op', password: 'op-pw', role: 'Operator', enabled: true, passwordChangeRequired: false },
      { id: 5, username: 'new', password: 'new-pw', role: 'ReadOnly', enabled: true, passwordChangeRequired: false },
    ]);
    expect(done.removed.map((a) => a.username)).to.deep.equal(['ro']);
    expect(done.changed.map((a) => a.username), 'the account as it was').to.deep.equal(['admin']);
    expect(s.list().map((a) => `${a.id}:${a.username}`)).to.deep.equal(['2:root', '3:op', '5:new']);
    expect(s.verify('root', 'pw-2')?.id).to.equal(2);
    expect(s.verify('admin', 'pw')).to.equal(undefined);
    expect(s.users, 'the same live array').to.equal(users);
    expect(users.map((u) => u.username)).to.deep.equal(['root', 'op', 'new']);
    expect(s.sessionStamp(3), 'op untouched').to.equal(stamps[1]);
    expect(s.sessionStamp(2), 'admin re-passworded: its sessions end').to.not.equal(stamps[0]);
    expect(s.sessionStamp(4)).to.equal(undefined);
    expect(changes.map((c) => `${c.type}:${c.account.username}`)).to.deep.equal(['deleted:ro', 'updated:root', 'created:new']);
    expect(writes, 'nothing persisted').to.deep.equal([]);
    await s.flush();
    expect(writes.map((w) => w.map((a) => a.username))).to.deep.equal([['root', 'op', 'new']]);

    const before = JSON.stringify(s.snapshot());
    expect(() => s.replaceAll([{ id: 2, username: 'x', password: 'p', role: 'Administrator', enabled: true, passwordChangeRequired: false }, { id: 3, username: 'x', password: 'p', role: 'ReadOnly', enabled: true, passwordChangeRequired: false }])).to.throw(AccountStoreError, /twice/);
    expect(() => s.replaceAll([{ id: 2, username: 'a-name-longer-than-16', password: 'p', role: 'Administrator', enabled: true, passwordChangeRequired: false }])).to.throw(AccountStoreError, /16 bytes/);
    expect(() => s.replaceAll([{ id: 1, username: 'x', password: 'p', role: 'Administrator', enabled: true, passwordChangeRequired: false }])).to.throw(AccountStoreError, /outside/);
    expect(JSON.stringify(s.snapshot()), 'a refused target changes nothing').to.equal(before);
    s.replaceAll([]);
    expect(s.list()).to.deep.equal([]);
    expect(s.users).to.deep.equal([]);
  });

  it('maps roles to IPMI privileges both ways', () => {
    expect(ROLE_TO_PRIVILEGE).to.deep.equal({ Administrator: 4, Operator: 3, ReadOnly: 2 });
    expect([4, 3, 2, 1, 5].map(roleForPrivilege)).to.deep.equal(['Administrator', 'Operator', 'ReadOnly', undefined, undefined]);
  });
});
