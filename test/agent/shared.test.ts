/**
 * Shared mode (issue 16): one agent, three simulated VMs with three credential sets. Each
 * credential sees and controls only its VM over Redfish (one listener) and IPMI (one UDP port per
 * VM, ipmitool); other systems are 404, as if they did not exist; systems come and go at runtime.
 */
import { expect } from 'chai';
import dgram from 'node:dgram';
import type { UserAccount } from '../../src/accounts/types.js';
import { parseFleet, simulatedAccounts, simulatedFleet, startSharedAgent, type FleetSystem, type SharedAgent } from '../../src/agent/shared.js';
import { SimulatedMachine } from '../../src/backend/simulator/simulator.js';
import { nullLogger } from '../../src/common/logger.js';
import { rewrite, tenantPaths } from '../../src/redfish/core/tenancy.js';
import { haveCommand, havePythonModule, requireClient } from '../helpers/clients.js';
import { startEventReceiver } from '../helpers/event-receiver.js';
import { run } from '../helpers/exec.js';
import { freeUdpPort } from '../helpers/ports.js';

const ACCOUNTS: Record<string, UserAccount[]> = {
  'ns.vm-a': [
    { username: 'alice', password: 'alice-pw-1', role: 'Administrator' },
    { username: 'ops', password: 'ops-shared-pw', role: 'Operator' },
  ],
  'ns.vm-b': [
    { username: 'bob', password: 'bob-pw-22', role: 'Administrator' },
    { username: 'ops', password: 'ops-shared-pw', role: 'ReadOnly' },
  ],
  'ns.vm-c': [{ username: 'carol', password: 'carol-pw-333', role: 'Operator' }],
};
const CRED: Record<string, [string, string]> = {
  'ns.vm-a': ['alice', 'alice-pw-1'],
  'ns.vm-b': ['bob', 'bob-pw-22'],
  'ns.vm-c': ['carol', 'carol-pw-333'],
};
const basic = ([u, p]: [string, string]): string => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;

describe('shared mode: one agent, three VMs, three credential sets', function () {
  this.timeout(60_000);
  let agent: SharedAgent;
  let base: string;
  let fleet: FleetSystem[];
  const machines = new Map<string, SimulatedMachine>();

  const get = async (path: string, auth: Record<string, string>): Promise<{ status: number; body: Record<string, unknown> }> => {
    const res = await fetch(`${base}${path}`, { headers: auth });
    const text = await res.text();
    return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
  };
  const as = (id: string): Record<string, string> => ({ Authorization: basic(CRED[id] as [string, string]) });
  const members = (b: Record<string, unknown>): string[] => (b.Members as { '@odata.id': string }[]).map((m) => m['@odata.id']);

  before(async () => {
    fleet = [];
    for (const vm of ['vm-a', 'vm-b', 'vm-c']) fleet.push({ id: `ns.${vm}`, namespace: 'ns', vm, ipmiPort: await freeUdpPort() });
    agent = await startSharedAgent({
      logger: nullLogger(),
      address: '127.0.0.1',
      redfishPort: 0,
      ipmi: {},
      backend: async (s) => {
        const m = new SimulatedMachine({ name: s.vm, powerOnDelayMs: 0, powerOffDelayMs: 0 });
        machines.set(s.id, m);
        return { machine: m, users: ACCOUNTS[s.id] as UserAccount[] };
      },
    });
    await agent.apply(fleet);
    base = `http://127.0.0.1:${agent.redfish.port}`;
  });
  after(async () => {
    await agent?.close();
  });

  it('lists for each credential exactly its own system, manager and chassis', async () => {
    for (const id of Object.keys(CRED)) {
      for (const coll of ['Systems', 'Managers', 'Chassis']) {
        const { status, body } = await get(`/redfish/v1/${coll}`, as(id));
        expect(status, `${id} ${coll}`).to.equal(200);
        expect(members(body)).to.deep.equal([`/redfish/v1/${coll}/${id}`]);
        expect(body['Members@odata.count']).to.equal(1);
      }
    }
  });

  it('a credential matching two VMs sees both, each with that VM role', async () => {
    const ops = { Authorization: basic(['ops', 'ops-shared-pw']) };
    const { body } = await get('/redfish/v1/Systems', ops);
    expect(members(body)).to.deep.equal(['/redfish/v1/Systems/ns.vm-a', '/redfish/v1/Systems/ns.vm-b']);
    // Operator on A may reset, ReadOnly on B may not
    const post = (id: string) =>
      fetch(`${base}/redfish/v1/Systems/${id}/Actions/ComputerSystem.Reset`, {
        method: 'POST',
        headers: { ...ops, 'Content-Type': 'application/json' },
        body: JSON.stringify({ ResetType: 'On' }),
      });
    expect((await post('ns.vm-b')).status).to.equal(403);
    expect((await machines.get('ns.vm-b')!.getPowerState())).to.equal('Off');
    expect([200, 202, 204]).to.include((await post('ns.vm-a')).status);
    expect(await machines.get('ns.vm-a')!.getPowerState()).to.equal('On');
    await machines.get('ns.vm-a')!.power('forceOff');
  });

  it('serves a system under its own id, with links to its own manager and chassis', async () => {
    const { status, body } = await get('/redfish/v1/Systems/ns.vm-b', as('ns.vm-b'));
    expect(status).to.equal(200);
    expect(body.Id).to.equal('ns.vm-b');
    expect(body['@odata.id']).to.equal('/redfish/v1/Systems/ns.vm-b');
    const text = JSON.stringify(body);
    expect(text).to.not.match(/\/redfish\/v1\/(Systems\/1|Managers\/BMC|Chassis\/1)\b/);
    expect(text).to.include('/redfish/v1/Managers/ns.vm-b');
    const mgr = await get('/redfish/v1/Managers/ns.vm-b', as('ns.vm-b'));
    expect(mgr.body.Id).to.equal('ns.vm-b');
    const ch = await get('/redfish/v1/Chassis/ns.vm-b', as('ns.vm-b'));
    expect(ch.body.Id).to.equal('ns.vm-b');
  });

  it("each system's answer follows its own machine's changes (the cached answer is per tenant and per state)", async () => {
    const boot = async (id: string): Promise<unknown> => ((await get(`/redfish/v1/Systems/${id}`, as(id))).body.Boot as Record<string, unknown>).BootSourceOverrideTarget;
    const before = { a: await boot('ns.vm-a'), b: await boot('ns.vm-b') };
    await machines.get('ns.vm-b')!.setBootOverride({ target: 'cd', enabled: 'continuous' });
    try {
      expect(await boot('ns.vm-b')).to.equal('Cd');
      expect(await boot('ns.vm-a')).to.equal(before.a);
      const b = await get('/redfish/v1/Systems/ns.vm-b', as('ns.vm-b'));
      expect(b.body.Id).to.equal('ns.vm-b');
    } finally {
      await machines.get('ns.vm-b')!.setBootOverride({ target: 'none', enabled: 'disabled' });
    }
    expect(await boot('ns.vm-b')).to.equal(before.b);
  });

  it("answers another VM's resources and unknown ids alike with 404, and the per-VM ids too", async () => {
    const other = await get('/redfish/v1/Systems/ns.vm-b', as('ns.vm-a'));
    const missing = await get('/redfish/v1/Systems/ns.nothing', as('ns.vm-a'));
    expect(other.status).to.equal(404);
    expect(missing.status).to.equal(404);
    const msgId = (b: Record<string, unknown>) => ((b.error as Record<string, unknown>)['@Message.ExtendedInfo'] as { MessageId: string }[])[0]!.MessageId;
    expect(msgId(other.body)).to.equal(msgId(missing.body));
    expect((await get('/redfish/v1/Managers/ns.vm-c/EthernetInterfaces', as('ns.vm-a'))).status).to.equal(404);
    expect((await get('/redfish/v1/Systems/1', as('ns.vm-a'))).status).to.equal(404);
    // no or wrong credentials: 401 whether the system exists or not
    expect((await get('/redfish/v1/Systems/ns.vm-a', {})).status).to.equal(401);
    expect((await get('/redfish/v1/Systems/ns.vm-a', { Authorization: basic(['alice', 'bob-pw-22']) })).status).to.equal(401);
    expect((await get('/redfish/v1/Systems/ns.nothing', { Authorization: basic(['alice', 'wrong']) })).status).to.equal(401);
    // a segment naming an Object.prototype member is no kind of system path: the same 404 as any
    // unknown URI, with credentials or without (it used to read as a resource "of type undefined")
    for (const path of ['/redfish/v1/constructor/x', '/redfish/v1/__proto__/x', '/redfish/v1/toString/x/y']) {
      const got = [await get(path, as('ns.vm-a')), await get(path, {})];
      for (const r of got) {
        expect(r.status, path).to.equal(404);
        expect(msgId(r.body), path).to.match(/\.ResourceMissingAtURI$/);
      }
    }
  });

  it('resets only the VM the credential belongs to', async () => {
    const res = await fetch(`${base}/redfish/v1/Systems/ns.vm-c/Actions/ComputerSystem.Reset`, {
      method: 'POST',
      headers: { ...as('ns.vm-c'), 'Content-Type': 'application/json' },
      body: JSON.stringify({ ResetType: 'On' }),
    });
    expect(res.status).to.be.oneOf([200, 202, 204]);
    expect(await machines.get('ns.vm-c')!.getPowerState()).to.equal('On');
    expect(await machines.get('ns.vm-a')!.getPowerState()).to.equal('Off');
    expect(await machines.get('ns.vm-b')!.getPowerState()).to.equal('Off');
    const refused = await fetch(`${base}/redfish/v1/Systems/ns.vm-b/Actions/ComputerSystem.Reset`, {
      method: 'POST',
      headers: { ...as('ns.vm-c'), 'Content-Type': 'application/json' },
      body: JSON.stringify({ ResetType: 'On' }),
    });
    expect(refused.status).to.equal(404);
    expect(await machines.get('ns.vm-b')!.getPowerState()).to.equal('Off');
    await machines.get('ns.vm-c')!.power('forceOff');
  });

  it("sessions belong to their VM: a token sees its system, SessionService lists only its VM's sessions", async () => {
    const login = await fetch(`${base}/redfish/v1/SessionService/Sessions`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ UserName: 'bob', Password: 'bob-pw-22' }),
    });
    expect(login.status).to.equal(201);
    const token = login.headers.get('X-Auth-Token') as string;
    const location = login.headers.get('Location') as string;
    const tok = { 'X-Auth-Token': token };
    expect(members((await get('/redfish/v1/Systems', tok)).body)).to.deep.equal(['/redfish/v1/Systems/ns.vm-b']);
    expect((await get('/redfish/v1/Systems/ns.vm-b', tok)).status).to.equal(200);
    expect((await get('/redfish/v1/Systems/ns.vm-a', tok)).status).to.equal(404);
    // A's admin does not see B's session, and cannot delete it
    const aSessions = await get('/redfish/v1/SessionService/Sessions', as('ns.vm-a'));
    expect(members(aSessions.body)).to.not.include(location);
    expect((await get(location, as('ns.vm-a'))).status).to.equal(404);
    const del = await fetch(`${base}${location}`, { method: 'DELETE', headers: as('ns.vm-a') });
    expect(del.status).to.equal(404);
    expect(members((await get('/redfish/v1/SessionService/Sessions', as('ns.vm-b'))).body)).to.include(location);
    // a wrong login is refused without creating anything
    const bad = await fetch(`${base}/redfish/v1/SessionService/Sessions`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ UserName: 'bob', Password: 'alice-pw-1' }),
    });
    expect(bad.status).to.equal(401);
    const out = await fetch(`${base}${location}`, { method: 'DELETE', headers: tok });
    expect(out.status).to.be.oneOf([200, 204]);
    expect((await get('/redfish/v1/Systems', tok)).status).to.equal(401);
  });

  it('AccountService shows only the accounts of the VM', async () => {
    const { body } = await get('/redfish/v1/AccountService/Accounts', as('ns.vm-a'));
    const names: string[] = [];
    for (const m of members(body)) names.push((await get(m, as('ns.vm-a'))).body.UserName as string);
    expect(names.sort()).to.deep.equal(['alice', 'ops']);
  });

  describe('sushy (ironic/metal3 Redfish library) with session auth', () => {
    const SCRIPT = `
import json, sys, sushy
from sushy import auth as sauth
base, user, pw = sys.argv[1:]
s = sushy.Sushy(base, auth=sauth.SessionAuth(username=user, password=pw))
ids = sorted(s.get_system_collection().members_identities)
system = s.get_system(ids[0])
out = {'systems': ids, 'id': system.identity, 'managers': [m.identity for m in system.managers], 'chassis': [c.identity for c in system.chassis]}
system.reset_system(sushy.RESET_ON)
print(json.dumps(out))
`;
    before(function () {
      requireClient(this, havePythonModule('sushy'), 'python3-sushy (Debian, /usr/bin/python3)');
    });

    it("lists, follows links to and resets only the credential's own system", async () => {
      const r = await run('/usr/bin/python3', ['-c', SCRIPT, base, 'carol', 'carol-pw-333'], 30_000);
      expect(r.code, r.out).to.equal(0);
      const out = JSON.parse(r.out.trim().split('\n').pop() as string) as Record<string, unknown>;
      expect(out).to.deep.equal({
        systems: ['/redfish/v1/Systems/ns.vm-c'],
        id: 'ns.vm-c',
        managers: ['ns.vm-c'],
        chassis: ['ns.vm-c'],
      });
      expect(await machines.get('ns.vm-c')!.getPowerState()).to.equal('On');
      expect(await machines.get('ns.vm-a')!.getPowerState()).to.equal('Off');
      await machines.get('ns.vm-c')!.power('forceOff');
    });
  });

  describe('IPMI: one UDP port per VM', () => {
    before(function () {
      requireClient(this, haveCommand('ipmitool'), 'ipmitool');
    });
    const ipmitool = (port: number, [u, p]: [string, string], ...cmd: string[]) =>
      run('ipmitool', ['-I', 'lanplus', '-C', '17', '-H', '127.0.0.1', '-p', String(port), '-U', u, '-P', p, '-L', 'OPERATOR', '-N', '1', '-R', '2', ...cmd]);

    it('each port answers its own credentials and controls its own VM', async () => {
      for (const s of fleet) {
        const port = agent.ipmiPort(s.id) as number;
        expect(port).to.equal(s.ipmiPort);
        const ok = await ipmitool(port, CRED[s.id] as [string, string], 'chassis', 'power', 'status');
        expect(ok.code, `${s.id}: ${ok.out}`).to.equal(0);
        expect(ok.out).to.include('Chassis Power is off');
        for (const other of fleet.filter((o) => o.id !== s.id && o.id !== 'ns.vm-a')) {
          const refused = await ipmitool(port, CRED[other.id] as [string, string], 'chassis', 'power', 'status');
          expect(refused.code, `${other.id} credentials on ${s.id}'s port`).to.not.equal(0);
        }
      }
      const on = await ipmitool(agent.ipmiPort('ns.vm-b') as number, CRED['ns.vm-b'] as [string, string], 'chassis', 'power', 'on');
      expect(on.code, on.out).to.equal(0);
      expect(await machines.get('ns.vm-b')!.getPowerState()).to.equal('On');
      expect(await machines.get('ns.vm-a')!.getPowerState()).to.equal('Off');
      expect(await machines.get('ns.vm-c')!.getPowerState()).to.equal('Off');
      await machines.get('ns.vm-b')!.power('forceOff');
    });
  });

  describe('SSE: one stream per credential carries the events of its systems only', () => {
    interface Frame {
      id: string;
      events: { MessageId: string; OriginOfCondition: { '@odata.id': string }; MessageArgs: string[] }[];
      logEntry: string;
    }
    /** Reads an SSE stream frame by frame; `next(pred)` resolves with the frames up to the first matching one. */
    const open = async (headers: Record<string, string>): Promise<{ next(pred: (f: Frame) => boolean): Promise<Frame[]>; close(): void }> => {
      const ctl = new AbortController();
      const res = await fetch(`${base}/redfish/v1/EventService/SSE`, { headers, signal: ctl.signal });
      expect(res.status).to.equal(200);
      const reader = (res.body as ReadableStream<Uint8Array>).getReader();
      const dec = new TextDecoder();
      let buf = '';
      const frames: Frame[] = [];
      const pull = async (): Promise<void> => {
        const { value, done } = await reader.read();
        if (done) throw new Error('stream ended');
        buf += dec.decode(value, { stream: true });
        let cut: number;
        while ((cut = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          const data = /^data: (.*)$/m.exec(block);
          if (!data) continue;
          const payload = JSON.parse(data[1] as string) as { Events: (Frame['events'][number] & { LogEntry: { '@odata.id': string } })[] };
          frames.push({ id: /^id: (.*)$/m.exec(block)?.[1] ?? '', events: payload.Events, logEntry: payload.Events[0]?.LogEntry['@odata.id'] ?? '' });
        }
      };
      return {
        async next(pred) {
          for (;;) {
            const i = frames.findIndex(pred);
            if (i >= 0) return frames.splice(0, i + 1);
            await pull();
          }
        },
        close: () => ctl.abort(),
      };
    };
    const origin = (f: Frame): string => f.events[0]?.OriginOfCondition['@odata.id'] ?? '';
    const power = (f: Frame): boolean => /ResourcePowered(On|Off)$/.test(f.events[0]?.MessageId ?? '');

    it('ops (vm-a, vm-b, session) and carol (vm-c, Basic) each get their own systems\' power events, under the systems\' ids', async () => {
      const login = await fetch(`${base}/redfish/v1/SessionService/Sessions`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ UserName: 'ops', Password: 'ops-shared-pw' }),
      });
      expect(login.status).to.equal(201);
      const token = login.headers.get('X-Auth-Token') as string;
      const ops = await open({ 'X-Auth-Token': token });
      const carol = await open(as('ns.vm-c'));
      try {
        const a = machines.get('ns.vm-a')!;
        const b = machines.get('ns.vm-b')!;
        const c = machines.get('ns.vm-c')!;
        await a.power('on');
        await c.power('on');
        await b.power('on');
        // barrier: an event of vm-a emitted after all of them; whatever ops would get arrives before it
        await a.power('forceOff');
        const opsFrames = (await ops.next((f) => power(f) && origin(f) === '/redfish/v1/Systems/ns.vm-a' && f.events[0]!.MessageId.endsWith('Off'))).filter(power);
        expect(opsFrames.map(origin)).to.deep.equal(['/redfish/v1/Systems/ns.vm-a', '/redfish/v1/Systems/ns.vm-b', '/redfish/v1/Systems/ns.vm-a']);
        // the payload speaks the system's ids throughout (args, its own manager's log entry)
        for (const f of opsFrames) {
          expect(f.events[0]!.MessageArgs).to.deep.equal([origin(f)]);
          expect((f.events[0] as unknown as { Message: string }).Message).to.include(`'${origin(f)}'`);
          expect(f.logEntry).to.match(new RegExp(`^/redfish/v1/Managers/${origin(f).split('/').pop()!.replace('.', '\\.')}/LogServices/EventLog/Entries/\\d+$`));
          expect(f.id).to.match(/^\d+$/);
        }
        // ids are one service-wide, increasing sequence
        const ids = opsFrames.map((f) => Number(f.id));
        expect([...ids].sort((x, y) => x - y)).to.deep.equal(ids);
        await c.power('forceOff');
        const carolFrames = (await carol.next((f) => power(f) && f.events[0]!.MessageId.endsWith('Off'))).filter(power);
        expect(carolFrames.map(origin)).to.deep.equal(['/redfish/v1/Systems/ns.vm-c', '/redfish/v1/Systems/ns.vm-c']);
        // resume: Last-Event-ID replays only the caller's systems after that id
        const resumed = await open({ 'X-Auth-Token': token, 'Last-Event-ID': String(ids[0]) });
        try {
          const again = (await resumed.next((f) => Number(f.id) === ids[2])).filter(power);
          expect(again.map((f) => Number(f.id))).to.deep.equal(ids.slice(1));
        } finally {
          resumed.close();
        }
        // $filter sees the systems' own ids
        const filtered = await fetch(`${base}/redfish/v1/EventService/SSE?$filter=${encodeURIComponent("OriginResource eq '/redfish/v1/Systems/ns.vm-b'")}`, { headers: { 'X-Auth-Token': token, 'Last-Event-ID': '0' } });
        const reader = (filtered.body as ReadableStream<Uint8Array>).getReader();
        let text = '';
        while (!text.includes('ns.vm-b')) text += new TextDecoder().decode((await reader.read()).value);
        await reader.cancel();
        expect(text).not.to.include('Systems/ns.vm-a');
      } finally {
        ops.close();
        carol.close();
        await machines.get('ns.vm-b')!.power('forceOff');
      }
    });

    it('a login on one system shows in its stream, not in another credential\'s sharing none of its systems', async () => {
      const carol = await open(as('ns.vm-c'));
      const alice = await open(as('ns.vm-a'));
      try {
        const login = await fetch(`${base}/redfish/v1/SessionService/Sessions`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ UserName: 'carol', Password: 'carol-pw-333' }),
        });
        expect(login.status).to.equal(201);
        const frames = await carol.next((f) => origin(f).startsWith('/redfish/v1/SessionService/Sessions/'));
        expect(frames.length).to.be.greaterThan(0);
        await machines.get('ns.vm-a')!.power('on');
        const aliceFrames = await alice.next((f) => power(f));
        expect(aliceFrames.map(origin)).to.deep.equal(['/redfish/v1/Systems/ns.vm-a']);
        await fetch(`${base}${login.headers.get('Location') as string}`, { method: 'DELETE', headers: { 'X-Auth-Token': login.headers.get('X-Auth-Token') as string } });
      } finally {
        carol.close();
        alice.close();
        await machines.get('ns.vm-a')!.power('forceOff');
      }
    });
    it("push subscriptions speak the system's ids: an OriginResources filter on ns.vm-c matches its power events", async () => {
      const rx = await startEventReceiver();
      const auth = { ...as('ns.vm-c'), 'Content-Type': 'application/json' };
      const made = await fetch(`${base}/redfish/v1/EventService/Subscriptions`, {
        method: 'POST',
        headers: auth,
        body: JSON.stringify({ Destination: rx.url, Protocol: 'Redfish', Context: 'c', OriginResources: [{ '@odata.id': '/redfish/v1/Systems/ns.vm-c' }] }),
      });
      expect(made.status).to.equal(201);
      try {
        await machines.get('ns.vm-a')!.power('on');
        await machines.get('ns.vm-c')!.power('on');
        await rx.waitFor((r) => r.length >= 1, 'the vm-c power event');
        const ev = (rx.received[0]!.body as unknown as { Events: { OriginOfCondition: { '@odata.id': string }; LogEntry: { '@odata.id': string } }[] }).Events[0]!;
        expect(ev.OriginOfCondition['@odata.id']).to.equal('/redfish/v1/Systems/ns.vm-c');
        expect(ev.LogEntry['@odata.id']).to.match(/^\/redfish\/v1\/Managers\/ns\.vm-c\/LogServices\/EventLog\/Entries\/\d+$/);
        expect(JSON.stringify(rx.received)).not.to.include('ns.vm-a');
      } finally {
        await fetch(`${base}${made.headers.get('Location') as string}`, { method: 'DELETE', headers: as('ns.vm-c') });
        await rx.close();
        await machines.get('ns.vm-a')!.power('forceOff');
        await machines.get('ns.vm-c')!.power('forceOff');
      }
    });
  });

  describe('runtime changes', () => {
    it('a changed password stops matching at once, the new one matches', async () => {
      // the change goes through the VM's own account store (AccountService PATCH, as carol)
      expect((await get('/redfish/v1/Systems', as('ns.vm-c'))).status).to.equal(200);
      const patch = async (auth: Record<string, string>, password: string): Promise<number> => {
        const accounts = await get('/redfish/v1/AccountService/Accounts', auth);
        const mine = members(accounts.body)[0]!;
        const res = await fetch(`${base}${mine}`, { method: 'PATCH', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ Password: password }) });
        await res.arrayBuffer();
        return res.status;
      };
      expect(await patch(as('ns.vm-c'), 'carol-new-pw-9')).to.be.oneOf([200, 204]);
      expect((await get('/redfish/v1/Systems', as('ns.vm-c'))).status).to.equal(401);
      const now = await get('/redfish/v1/Systems', { Authorization: basic(['carol', 'carol-new-pw-9']) });
      expect(members(now.body)).to.deep.equal(['/redfish/v1/Systems/ns.vm-c']);
      // the other VMs' accounts are untouched
      expect((await get('/redfish/v1/Systems', as('ns.vm-a'))).status).to.equal(200);
      expect(await patch({ Authorization: basic(['carol', 'carol-new-pw-9']) }, CRED['ns.vm-c']![1])).to.be.oneOf([200, 204]);
    });

    it('a credential of two VMs changed in one: the old password keeps only the other VM, the new one only this VM, at once', async () => {
      const ops = (pw: string) => ({ Authorization: basic(['ops', pw]) });
      expect(members((await get('/redfish/v1/Systems', ops('ops-shared-pw'))).body)).to.deep.equal(['/redfish/v1/Systems/ns.vm-a', '/redfish/v1/Systems/ns.vm-b']);
      // ops' home is vm-a (first visible): its own account there (an Operator may change its own password)
      const mine = members((await get('/redfish/v1/AccountService/Accounts', ops('ops-shared-pw'))).body).find((m) => m.endsWith('/3'))!;
      const change = async (from: string, to: string): Promise<number> => {
        const res = await fetch(`${base}${mine}`, { method: 'PATCH', headers: { ...ops(from), 'content-type': 'application/json' }, body: JSON.stringify({ Password: to }) });
        await res.arrayBuffer();
        return res.status;
      };
      expect(await change('ops-shared-pw', 'ops-a-only-77')).to.be.oneOf([200, 204]);
      expect(members((await get('/redfish/v1/Systems', ops('ops-shared-pw'))).body)).to.deep.equal(['/redfish/v1/Systems/ns.vm-b']);
      expect(members((await get('/redfish/v1/Systems', ops('ops-a-only-77'))).body)).to.deep.equal(['/redfish/v1/Systems/ns.vm-a']);
      expect((await get('/redfish/v1/Systems/ns.vm-b', ops('ops-a-only-77'))).status).to.equal(404);
      // back: both again under one credential
      expect(await change('ops-a-only-77', 'ops-shared-pw')).to.be.oneOf([200, 204]);
      expect(members((await get('/redfish/v1/Systems', ops('ops-shared-pw'))).body)).to.deep.equal(['/redfish/v1/Systems/ns.vm-a', '/redfish/v1/Systems/ns.vm-b']);
      expect((await get('/redfish/v1/Systems', ops('ops-a-only-77'))).status).to.equal(401);
    });

    it('adds and removes systems at runtime, touching only the difference', async () => {
      const keepA = machines.get('ns.vm-a');
      const portD = await freeUdpPort();
      const next = [fleet[0]!, fleet[1]!, { id: 'ns.vm-d', namespace: 'ns', vm: 'vm-d', ipmiPort: portD }];
      ACCOUNTS['ns.vm-d'] = [{ username: 'dave', password: 'dave-pw-4444', role: 'Administrator' }];
      await agent.apply(next);
      expect(agent.ids()).to.deep.equal(['ns.vm-a', 'ns.vm-b', 'ns.vm-d']);
      expect(machines.get('ns.vm-a')).to.equal(keepA);
      expect((await get('/redfish/v1/Systems', as('ns.vm-c'))).status).to.equal(401);
      const d = await get('/redfish/v1/Systems', { Authorization: basic(['dave', 'dave-pw-4444']) });
      expect(members(d.body)).to.deep.equal(['/redfish/v1/Systems/ns.vm-d']);
      // C's UDP port is closed: it can be bound again
      const s = dgram.createSocket('udp4');
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.bind(fleet[2]!.ipmiPort, '127.0.0.1', () => resolve());
      });
      await new Promise<void>((r) => s.close(() => r()));
    });
  });
});

describe('shared mode: fleet document and rewriting', () => {
  it('parses the contract document and refuses bad ids, duplicates and shared ports', () => {
    const ok = parseFleet(JSON.stringify({ systems: [{ id: 'ns.vm1', namespace: 'ns', vm: 'vm1', vmbmc: 'b', secretName: 's', ipmiPort: 10001 }] }));
    expect(ok).to.deep.equal([{ id: 'ns.vm1', namespace: 'ns', vm: 'vm1', vmbmc: 'b', secretName: 's', ipmiPort: 10001 }]);
    expect(() => parseFleet('{"systems":[{"id":"x","namespace":"ns","vm":"vm1"}]}')).to.throw(/id must be/);
    expect(() => parseFleet('{"systems":[{"namespace":"ns","vm":"a","ipmiPort":1},{"namespace":"ns","vm":"b","ipmiPort":1}]}')).to.throw(/used twice/);
    expect(() => parseFleet('{"systems":[{"namespace":"ns","vm":"a"},{"namespace":"ns","vm":"a"}]}')).to.throw(/duplicate/);
    expect(() => parseFleet('{}')).to.throw(/array/);
  });

  it('simulated fleet ids, ports and accounts follow the documented pattern', () => {
    const f = simulatedFleet(3, 20000);
    expect(f.map((s) => [s.id, s.ipmiPort])).to.deep.equal([
      ['sim.vm-0001', 20000],
      ['sim.vm-0002', 20001],
      ['sim.vm-0003', 20002],
    ]);
    expect(simulatedAccounts(f[1]!, 'pw')).to.deep.equal([{ username: 'admin', password: 'pw-vm-0002', role: 'Administrator' }]);
    expect(simulatedFleet(2, 0).map((s) => s.ipmiPort)).to.deep.equal([0, 0]);
  });

  it("rewrites only whole path segments of the tenant's own resources", () => {
    const out = JSON.parse(rewrite(
      {
        '@odata.id': '/redfish/v1/Systems/1',
        Id: '1',
        Links: { ManagedBy: [{ '@odata.id': '/redfish/v1/Managers/BMC' }], Chassis: [{ '@odata.id': '/redfish/v1/Chassis/1' }] },
        Other: '/redfish/v1/Systems/10',
        Deep: '/redfish/v1/Systems/1/Bios',
        Text: 'See /redfish/v1/Chassis/1.',
        Quoted: "The resource '/redfish/v1/Systems/1' has powered on.",
      },
      'ns.vm',
      ['ns.vm'],
    ));
    expect(out).to.deep.equal({
      '@odata.id': '/redfish/v1/Systems/ns.vm',
      Id: 'ns.vm',
      Links: { ManagedBy: [{ '@odata.id': '/redfish/v1/Managers/ns.vm' }], Chassis: [{ '@odata.id': '/redfish/v1/Chassis/ns.vm' }] },
      Quoted: "The resource '/redfish/v1/Systems/ns.vm' has powered on.",
      Other: '/redfish/v1/Systems/10',
      Deep: '/redfish/v1/Systems/ns.vm/Bios',
      Text: 'See /redfish/v1/Chassis/ns.vm.',
    });
  });

  it('a frozen (prepared) answer is rewritten once per tenant: each tenant gets its own ids, collections follow the visible list', () => {
    const system = Object.freeze({ '@odata.id': '/redfish/v1/Systems/1', Id: '1', Links: { ManagedBy: [{ '@odata.id': '/redfish/v1/Managers/BMC' }] } });
    const a = rewrite(system, 'ns.a', ['ns.a']);
    expect(JSON.parse(a)).to.deep.equal({ '@odata.id': '/redfish/v1/Systems/ns.a', Id: 'ns.a', Links: { ManagedBy: [{ '@odata.id': '/redfish/v1/Managers/ns.a' }] } });
    expect(rewrite(system, 'ns.a', ['ns.a'])).to.equal(a);
    expect(JSON.parse(rewrite(system, 'ns.b', ['ns.b'])).Id).to.equal('ns.b');
    expect(rewrite(system, 'ns.a', ['ns.a', 'ns.b'])).to.equal(a);
    const list = Object.freeze({ '@odata.id': '/redfish/v1/Systems', Members: [{ '@odata.id': '/redfish/v1/Systems/1' }], 'Members@odata.count': 1 });
    expect(JSON.parse(rewrite(list, 'ns.a', ['ns.a']))['Members@odata.count']).to.equal(1);
    expect(JSON.parse(rewrite(list, 'ns.a', ['ns.a', 'ns.b'])).Members).to.deep.equal([{ '@odata.id': '/redfish/v1/Systems/ns.a' }, { '@odata.id': '/redfish/v1/Systems/ns.b' }]);
  });

  it('the answer rewrite (an indexOf walk) gives what tenantPaths (the regular expression) gives, on every boundary', () => {
    const tails = ['', '"', "'", '/', '/x', '#', '?a=1', '.', ' ', '\t', '\n', '0', 'x', '-', ':', '\\'];
    const heads = ['Systems/1', 'Managers/BMC', 'Chassis/1', 'Systems/12', 'Managers/BM', 'Chassis/', 'Sessions/1', 'Systems'];
    const texts: string[] = [];
    for (const h of heads) for (const t of tails) texts.push(`/redfish/v1/${h}${t}`, `x /redfish/v1/${h}${t} /redfish/v1/Systems/1`, `/redfish/v1//redfish/v1/${h}${t}`);
    for (const text of texts) {
      // rewrite serialises its object: compare on a body whose one string is the text
      const got = JSON.parse(rewrite({ Text: text }, 'ns.vm', ['ns.vm'])) as { Text: string };
      const want = JSON.parse(tenantPaths(JSON.stringify({ Text: text }), 'ns.vm')) as { Text: string };
      expect(got.Text, JSON.stringify(text)).to.equal(want.Text);
    }
    expect(texts.length).to.equal(heads.length * tails.length * 3);
  });
});
