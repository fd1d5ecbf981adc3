/**
 * The Redfish verified-credentials cache (src/redfish/core/auth.ts VerifiedCredentials): HTTP Basic
 * credentials found good are remembered per account store, keyed by an HMAC; every account change
 * (through Redfish or the AccountStore, i.e. IPMI too) takes effect at the next request, a wrong
 * password is never remembered, the lockout still applies, and the cache is bounded.
 */
import { expect } from 'chai';
import { AccountStore } from '../../src/accounts/store.js';
import type { UserAccount } from '../../src/accounts/types.js';
import { VerifiedCredentials, verifiedCredentialsOf, VERIFIED_MAX } from '../../src/redfish/core/auth.js';
import { ADMIN, OPERATOR, READONLY, startTestAgent, type TestAgent } from '../helpers/agent.js';

const basic = (u: { username: string; password: string }): string => `Basic ${Buffer.from(`${u.username}:${u.password}`).toString('base64')}`;

async function get(t: TestAgent, path: string, user: { username: string; password: string }): Promise<Response> {
  const r = await fetch(`${t.redfishUrl}${path}`, { headers: { Authorization: basic(user) } });
  await r.arrayBuffer();
  return r;
}

async function send(t: TestAgent, method: string, path: string, body?: unknown): Promise<number> {
  const r = await fetch(`${t.redfishUrl}${path}`, {
    method,
    headers: { Authorization: basic(ADMIN), ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  await r.arrayBuffer();
  return r.status;
}

describe('Redfish verified-credentials cache', () => {
  describe('over HTTP, in the agent', () => {
    let t: TestAgent;
    beforeEach(async () => {
      t = await startTestAgent({ ipmi: false });
    });
    afterEach(async () => t?.close());

    const cache = () => verifiedCredentialsOf(t.agent.accounts);
    const idOf = (name: string) => t.agent.accounts.idForName(name);

    it('remembers credentials found good, never a wrong password', async () => {
      expect((await get(t, '/redfish/v1/Systems/1', OPERATOR)).status).to.equal(200);
      expect(cache()?.size).to.equal(1);
      for (let i = 0; i < 3; i++) {
        expect((await get(t, '/redfish/v1/Systems/1', { username: OPERATOR.username, password: 'wrong' })).status).to.equal(401);
        expect((await get(t, '/redfish/v1/Systems/1', { username: 'nobody', password: OPERATOR.password })).status).to.equal(401);
      }
      expect(cache()?.size).to.equal(1);
      expect((await get(t, '/redfish/v1/Systems/1', OPERATOR)).status).to.equal(200);
      expect(cache()?.size).to.equal(1);
    });

    it('a password change through Redfish ends the old password at once and the new one works', async () => {
      expect((await get(t, '/redfish/v1/Systems/1', OPERATOR)).status).to.equal(200);
      expect(await send(t, 'PATCH', `/redfish/v1/AccountService/Accounts/${idOf('operator')}`, { Password: 'op-new-pw' })).to.equal(200);
      expect((await get(t, '/redfish/v1/Systems/1', OPERATOR)).status).to.equal(401);
      expect((await get(t, '/redfish/v1/Systems/1', { username: 'operator', password: 'op-new-pw' })).status).to.equal(200);
    });

    it('a role change through Redfish shows in the next answer (Allow) and privileges', async () => {
      const before = await get(t, '/redfish/v1/Systems/1', OPERATOR);
      expect(before.headers.get('allow')).to.equal('GET, HEAD, PATCH');
      expect(await send(t, 'PATCH', `/redfish/v1/AccountService/Accounts/${idOf('operator')}`, { RoleId: 'ReadOnly' })).to.equal(200);
      const after = await get(t, '/redfish/v1/Systems/1', OPERATOR);
      expect(after.status).to.equal(200);
      expect(after.headers.get('allow')).to.equal('GET, HEAD');
    });

    it('disabling or deleting an account through Redfish refuses its cached credentials', async () => {
      expect((await get(t, '/redfish/v1/Systems/1', OPERATOR)).status).to.equal(200);
      expect((await get(t, '/redfish/v1/Systems/1', READONLY)).status).to.equal(200);
      expect(await send(t, 'PATCH', `/redfish/v1/AccountService/Accounts/${idOf('operator')}`, { Enabled: false })).to.equal(200);
      expect((await get(t, '/redfish/v1/Systems/1', OPERATOR)).status).to.equal(401);
      expect((await get(t, '/redfish/v1/Systems/1', READONLY)).status).to.equal(200);
      expect(await send(t, 'DELETE', `/redfish/v1/AccountService/Accounts/${idOf('viewer')}`)).to.equal(204);
      expect((await get(t, '/redfish/v1/Systems/1', READONLY)).status).to.equal(401);
    });

    it('changes made in the AccountStore (as IPMI makes them) apply at the next request', async () => {
      const store = t.agent.accounts;
      expect((await get(t, '/redfish/v1/Systems/1', OPERATOR)).status).to.equal(200);
      await store.update(idOf('operator'), { password: 'ipmi-pw' });
      expect((await get(t, '/redfish/v1/Systems/1', OPERATOR)).status).to.equal(401);
      expect((await get(t, '/redfish/v1/Systems/1', { username: 'operator', password: 'ipmi-pw' })).status).to.equal(200);
      await store.update(idOf('operator'), { role: 'ReadOnly' });
      expect((await get(t, '/redfish/v1/Systems/1', { username: 'operator', password: 'ipmi-pw' })).headers.get('allow')).to.equal('GET, HEAD');
      await store.update(idOf('operator'), { enabled: false });
      expect((await get(t, '/redfish/v1/Systems/1', { username: 'operator', password: 'ipmi-pw' })).status).to.equal(401);
      expect((await get(t, '/redfish/v1/Systems/1', READONLY)).status).to.equal(200);
      await store.delete(idOf('viewer'));
      expect((await get(t, '/redfish/v1/Systems/1', READONLY)).status).to.equal(401);
      // renaming ends the old name's credentials
      expect((await get(t, '/redfish/v1/Systems/1', ADMIN)).status).to.equal(200);
      await store.update(idOf('admin'), { username: 'root' });
      expect((await get(t, '/redfish/v1/Systems/1', ADMIN)).status).to.equal(401);
      expect((await get(t, '/redfish/v1/Systems/1', { username: 'root', password: ADMIN.password })).status).to.equal(200);
    });

    it('cached credentials are still refused while the account is locked out', async () => {
      expect((await get(t, '/redfish/v1/Systems/1', OPERATOR)).status).to.equal(200);
      for (let i = 0; i < 5; i++) expect((await get(t, '/redfish/v1/Systems/1', { username: 'operator', password: `bad-${i}` })).status).to.equal(401);
      expect((await get(t, '/redfish/v1/Systems/1', OPERATOR)).status).to.equal(429);
      expect(cache()?.size).to.equal(1);
    });
  });

  describe('the cache itself', () => {
    const users: UserAccount[] = Array.from({ length: 6 }, (_, i) => ({ username: `u${i}`, password: `pw-${i}`, role: i === 0 ? 'Administrator' : 'Operator' }));
    let store: AccountStore;
    beforeEach(() => {
      store = new AccountStore(users.map((u) => ({ ...u })));
    });
    const live = (i: number) => store.liveAccount(store.idForName(`u${i}`)) as UserAccount;

    it('finds only what it was given, under the same name and password', () => {
      const c = new VerifiedCredentials(store);
      expect(c.lookup(store.users, 'u1', 'pw-1')).to.equal(undefined);
      c.remember(live(1), 'u1', 'pw-1');
      expect(c.lookup(store.users, 'u1', 'pw-1')).to.equal(live(1));
      expect(c.lookup(store.users, 'u1', 'pw-2')).to.equal(undefined);
      expect(c.lookup(store.users, 'u2', 'pw-1')).to.equal(undefined);
      expect(c.lookup(store.users, 'u1:pw-1', '')).to.equal(undefined);
      // a list that does not hold the account (another tenant's) gets nothing
      expect(c.lookup([], 'u1', 'pw-1')).to.equal(undefined);
    });

    it('keeps no password: entries hold an HMAC key, the account id, its object and stamp', () => {
      const c = new VerifiedCredentials(store);
      c.remember(live(1), 'u1', 'pw-1');
      const entries = [...(c as unknown as { entries: Map<string, unknown> }).entries];
      expect(entries).to.have.length(1);
      const [key, entry] = entries[0] as [string, Record<string, unknown>];
      expect(key).to.not.include('pw-1');
      expect(Buffer.from(key, 'base64')).to.have.length(32);
      expect(Object.keys(entry).sort()).to.deep.equal(['id', 'stamp', 'user']);
    });

    it('is emptied by every change the store emits', async () => {
      const c = new VerifiedCredentials(store);
      c.remember(live(1), 'u1', 'pw-1');
      c.remember(live(2), 'u2', 'pw-2');
      await store.update(store.idForName('u3'), { passwordChangeRequired: true });
      expect(c.size).to.equal(0);
      expect(c.lookup(store.users, 'u1', 'pw-1')).to.equal(undefined);
    });

    it('refuses an entry whose account changed even without a change event', async () => {
      // a second store instance's events do not reach this cache: the stamp check alone catches it
      const c = new VerifiedCredentials(store);
      c.remember(live(1), 'u1', 'pw-1');
      const entries = (c as unknown as { entries: Map<string, unknown> }).entries;
      const saved = [...entries];
      await store.update(store.idForName('u1'), { password: 'pw-1b' });
      for (const [k, v] of saved) entries.set(k, v);
      expect(c.lookup(store.users, 'u1', 'pw-1')).to.equal(undefined);
      expect(c.size).to.equal(0);
    });

    it('holds at most its bound, dropping the oldest first', () => {
      expect(VERIFIED_MAX).to.be.at.least(62); // every account of a full IPMI user table fits
      const c = new VerifiedCredentials(store, 4);
      for (let i = 0; i < 6; i++) c.remember(live(i), `u${i}`, `pw-${i}`);
      expect(c.size).to.equal(4);
      expect(c.lookup(store.users, 'u0', 'pw-0')).to.equal(undefined);
      expect(c.lookup(store.users, 'u1', 'pw-1')).to.equal(undefined);
      for (let i = 2; i < 6; i++) expect(c.lookup(store.users, `u${i}`, `pw-${i}`), `u${i}`).to.equal(live(i));
    });

    it('caches nothing for an account the store does not hold', () => {
      const c = new VerifiedCredentials(store);
      c.remember({ username: 'ghost', password: 'x', role: 'Administrator' }, 'ghost', 'x');
      expect(c.size).to.equal(0);
    });
  });
});
