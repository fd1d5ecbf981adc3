/**
 * An IPMI session lasts only as long as the account it logged in with: deleting, disabling,
 * renaming, re-roling or re-passwording the account ends its sessions at their next request
 * (src/ipmi/session/engine.ts accountCurrent), and the IPMI server also ends them as soon as the
 * store reports the change (server.ts), so a SOL console that only listens goes too. Driven
 * through the datagram engine (no sockets, no waits) and once with the real ipmitool.
 */
import { expect } from 'chai';
import { AccountStore } from '../../src/accounts/store.js';
import { SimulatedMachine } from '../../src/backend/simulator/simulator.js';
import { nullLogger } from '../../src/common/logger.js';
import { AuthType } from '../../src/ipmi/codec/index.js';
import { buildCommandTable } from '../../src/ipmi/commands/index.js';
import { IpmiEngine } from '../../src/ipmi/session/engine.js';
import { startIpmiServer } from '../../src/ipmi/server.js';
import { CC } from '../../src/ipmi/types.js';
import { haveCommand, requireClient } from '../helpers/clients.js';
import { run } from '../helpers/exec.js';
import { RmcpPlusConsole, V15Console } from './session-client.js';

const log = nullLogger();
const ADMIN = { username: 'admin', password: 'Owner-pw-1', role: 'Administrator' as const };
const OPER = { username: 'oper', password: 'Oper-pw-1', role: 'Operator' as const };
const OTHER = { username: 'other', password: 'Other-pw-1', role: 'Operator' as const };

function rig(accounts: AccountStore) {
  const engine = new IpmiEngine({
    machine: new SimulatedMachine({ powerOnDelayMs: 0, powerOffDelayMs: 0 }),
    users: accounts.users,
    accounts,
    logger: log,
    commands: buildCommandTable(),
    allowInsecure: false,
    channel: 1,
    guid: Buffer.alloc(16, 7),
    now: () => 1_000_000,
    maxSessions: 8,
    idleTimeoutMs: 60_000,
    handshakeTimeoutMs: 5_000,
  });
  const consoles: { close(): void }[] = [];
  let port = 40000;
  const via = <T extends { peer: { exchange: unknown; ready: unknown }; close(): void }>(c: T): T => {
    const p = port++;
    c.peer.exchange = async (b: Buffer) => engine.handle(b, { address: '10.0.0.5', port: p }, log);
    c.peer.ready = async () => undefined;
    consoles.push(c);
    return c;
  };
  return {
    engine,
    rmcp: (u: { username: string; password: string }, role = 0x13) => via(new RmcpPlusConsole(1, u.username, u.password, 3, role)),
    v15: (u: { username: string; password: string }) => via(new V15Console(1, u.username, u.password, AuthType.MD5, 3)),
    close: () => consoles.splice(0).forEach((c) => c.close()),
  };
}

/** Get Device ID inside the session: the answer, or undefined when the datagram was dropped. */
const ping = (c: { request(n: number, cmd: number): Promise<{ cc: number } | undefined> }) => c.request(0x06, 0x01);

describe('IPMI sessions end with their account', () => {
  let store: AccountStore;
  let r: ReturnType<typeof rig>;
  beforeEach(() => {
    store = new AccountStore([ADMIN, OPER, OTHER]);
    r = rig(store);
  });
  afterEach(() => r.close());

  const changes: [string, (s: AccountStore, id: number) => Promise<unknown>][] = [
    ['deleted', (s, id) => s.delete(id)],
    ['disabled', (s, id) => s.update(id, { enabled: false })],
    ['given a new password', (s, id) => s.update(id, { password: 'Fresh-pw-9' })],
    ['renamed', (s, id) => s.update(id, { username: 'renamed' })],
    ['given another role', (s, id) => s.update(id, { role: 'ReadOnly' })],
  ];

  for (const [what, change] of changes) {
    it(`RMCP+ and IPMI 1.5 sessions of an account ${what} end at their next request; others go on`, async () => {
      const mine = r.rmcp(OPER);
      const mine15 = r.v15(OPER);
      const theirs = r.rmcp(OTHER);
      expect((await mine.handshake()).established).to.equal(true);
      expect(await mine15.activate()).to.equal(0);
      expect((await theirs.handshake()).established).to.equal(true);
      expect((await ping(mine))?.cc).to.equal(CC.OK);
      expect((await ping(mine15))?.cc).to.equal(CC.OK);
      expect(r.engine.ctx.table.active()).to.have.length(3);

      await change(store, store.idForName(OPER.username));
      // no server here to end them at once: the next request does
      expect(await ping(mine), 'RMCP+ datagram dropped').to.equal(undefined);
      expect(await ping(mine15), 'IPMI 1.5 datagram dropped').to.equal(undefined);
      expect(r.engine.ctx.table.active().map((s) => s.username)).to.deep.equal([OTHER.username]);
      expect((await ping(theirs))?.cc).to.equal(CC.OK);
    });
  }

  it('changes that leave the credentials alone (PasswordChangeRequired, the same password again) keep the session', async () => {
    const mine = r.rmcp(OPER);
    expect((await mine.handshake()).established).to.equal(true);
    const id = store.idForName(OPER.username);
    await store.update(id, { passwordChangeRequired: true });
    await store.update(id, { password: OPER.password });
    expect((await ping(mine))?.cc).to.equal(CC.OK);
  });

  it('ends at the next request even while the change is still being persisted', async () => {
    let release!: () => void;
    const gate = new Promise<void>((res) => (release = res));
    let writes = 0;
    store = new AccountStore([ADMIN, OPER], { persist: async () => (++writes === 1 ? gate : undefined) });
    r.close();
    r = rig(store);
    const mine = r.rmcp(OPER);
    expect((await mine.handshake()).established).to.equal(true);
    const pending = store.update(store.idForName(OPER.username), { password: 'Fresh-pw-9' });
    expect(await ping(mine)).to.equal(undefined);
    release();
    await pending;
    const again = r.rmcp({ username: OPER.username, password: 'Fresh-pw-9' });
    expect((await again.handshake()).established).to.equal(true);
    expect((await ping(again))?.cc).to.equal(CC.OK);
  });

  it('the server ends them as soon as the store reports the change (nothing has to arrive)', async () => {
    const server = await startIpmiServer({ address: '127.0.0.1', port: 0, machine: new SimulatedMachine({ powerOnDelayMs: 0, powerOffDelayMs: 0 }), users: store.users, accounts: store, logger: log });
    try {
      // ipmitool holds one session for the whole script: the operator's own password change
      // comes from a second session (the admin's), and the operator's next command is refused
      const c = new RmcpPlusConsole(server.port, OPER.username, OPER.password, 3, 0x13);
      expect((await c.handshake()).established).to.equal(true);
      expect((await ping(c))?.cc).to.equal(CC.OK);
      const a = new RmcpPlusConsole(server.port, ADMIN.username, ADMIN.password, 17, 0x14);
      expect((await a.handshake()).established).to.equal(true);
      // Get Session Info (index 0 = this one): 2 active sessions
      const before = await a.request(0x06, 0x3d, [0x00]);
      expect((before?.data[2] ?? 0) & 0x3f).to.equal(2);
      await store.delete(store.idForName(OPER.username));
      const after = await a.request(0x06, 0x3d, [0x00]);
      expect((after?.data[2] ?? 0) & 0x3f, 'the deleted account\'s session is gone at once').to.equal(1);
      c.close();
      a.close();
    } finally {
      await server.close();
    }
  });

  it('ipmitool: the session that sets its own password goes on (no failed Close Session); the account\'s other sessions end', async function () {
    requireClient(this, haveCommand('ipmitool'), 'ipmitool');
    const server = await startIpmiServer({ address: '127.0.0.1', port: 0, machine: new SimulatedMachine({ powerOnDelayMs: 0, powerOffDelayMs: 0 }), users: store.users, accounts: store, logger: log });
    try {
      const other = new RmcpPlusConsole(server.port, ADMIN.username, ADMIN.password, 3, 0x14);
      expect((await other.handshake()).established).to.equal(true);
      const tool = (pw: string, ...cmd: string[]) =>
        run('ipmitool', ['-I', 'lanplus', '-C', '17', '-H', '127.0.0.1', '-p', String(server.port), '-U', ADMIN.username, '-P', pw, '-N', '1', '-R', '1', ...cmd], 20_000);
      const userIds = (out: string) => [...out.matchAll(/^user id\s+:\s+(\d+)$/gm)].map((m) => Number(m[1]));
      const admin = store.idForName(ADMIN.username);
      expect(userIds((await tool(ADMIN.password, 'session', 'info', 'all')).out)).to.deep.equal([admin, admin]);
      const set = await tool(ADMIN.password, 'user', 'set', 'password', String(admin), 'Fresh-pw-7');
      expect(set.code, set.out).to.equal(0);
      expect(set.out).to.contain('Set User Password command successful');
      expect(set.out).to.not.contain('Close Session command failed');
      // only the listing session itself is left: the other one used the old password
      const after = await tool('Fresh-pw-7', 'session', 'info', 'all');
      expect(userIds(after.out), after.out).to.deep.equal([admin]);
      other.close();
    } finally {
      await server.close();
    }
  });

  it('ipmitool: after `user disable` from another session, the account cannot log in and its old session is gone', async function () {
    requireClient(this, haveCommand('ipmitool'), 'ipmitool');
    const server = await startIpmiServer({ address: '127.0.0.1', port: 0, machine: new SimulatedMachine({ powerOnDelayMs: 0, powerOffDelayMs: 0 }), users: store.users, accounts: store, logger: log });
    try {
      const c = new RmcpPlusConsole(server.port, OPER.username, OPER.password, 3, 0x13);
      expect((await c.handshake()).established).to.equal(true);
      const tool = (u: { username: string; password: string }, ...cmd: string[]) =>
        run('ipmitool', ['-I', 'lanplus', '-C', '17', '-H', '127.0.0.1', '-p', String(server.port), '-U', u.username, '-P', u.password, '-N', '1', '-R', '1', ...cmd], 20_000);
      const id = store.idForName(OPER.username);
      const userIds = (out: string) => [...out.matchAll(/^user id\s+:\s+(\d+)$/gm)].map((m) => Number(m[1])).sort();
      const before = await tool(ADMIN, 'session', 'info', 'all');
      expect(userIds(before.out), before.out).to.deep.equal([store.idForName(ADMIN.username), id].sort());
      const d = await tool(ADMIN, 'user', 'disable', String(id));
      expect(d.code, d.out).to.equal(0);
      const after = await tool(ADMIN, 'session', 'info', 'all');
      expect(userIds(after.out), after.out).to.deep.equal([store.idForName(ADMIN.username)]);
      expect(after.out).to.match(/^active sessions\s+:\s+1$/m);
      expect((await tool(OPER, 'chassis', 'power', 'status')).code).to.not.equal(0);
      c.close();
    } finally {
      await server.close();
    }
  });
});
