/**
 * The IPMI SEL is the agent's event history (src/ipmi/commands/storage.ts, src/events/sel.ts):
 * ipmitool `sel info/list/elist/clear/add` and freeipmi `ipmi-sel` show the same events as the
 * Redfish EventLog; record encoding, reservations and Add SEL Entry at the command level.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { eventsOf } from '../../src/events/index.js';
import { EventHub } from '../../src/events/hub.js';
import { selRecord, selRecordId } from '../../src/events/sel.js';
import { ADMIN, OPERATOR, READONLY, startTestAgent, type TestAgent } from '../helpers/agent.js';
import { haveCommand, requireClient } from '../helpers/clients.js';
import { run } from '../helpers/exec.js';

describe('IPMI SEL records (src/events/sel.ts)', () => {
  const hub = new EventHub({ now: () => new Date('2026-03-01T10:00:00Z') });
  it('encodes a power-on as a System ACPI Power State S0 system event record from the BMC', () => {
    const e = hub.emit({ kind: 'power', key: 'ResourcePoweredOn', reason: 'PoweredOn', args: ['/redfish/v1/Systems/1'], origin: '/redfish/v1/Systems/1', resourceType: 'ComputerSystem', detail: { from: 'Off', to: 'On' } });
    const r = selRecord(e);
    expect(r.length).to.equal(16);
    expect(r.readUInt16LE(0)).to.equal(selRecordId(e.id));
    expect(r[2]).to.equal(0x02);
    expect(r.readUInt32LE(3)).to.equal(Date.parse('2026-03-01T10:00:00Z') / 1000);
    expect([...r.subarray(7, 14)]).to.deep.equal([0x20, 0x00, 0x04, 0x22, 0x01, 0x6f, 0x00]);
  });
  it('keeps record ids in 0001h..FFFEh', () => {
    expect(selRecordId(1)).to.equal(1);
    expect(selRecordId(0xfffe)).to.equal(0xfffe);
    expect(selRecordId(0xffff)).to.equal(1);
  });
  it('a recovered backend is a deassertion of Management Subsystem Health', () => {
    const e = hub.emit({ kind: 'health', key: 'ResourceStatusChangedOK', reason: 'BackendRecovered', args: ['/redfish/v1/Systems/1', 'OK'], origin: '/redfish/v1/Systems/1', resourceType: 'ComputerSystem', detail: { status: 'OK' } });
    const r = selRecord(e);
    expect(r[10]).to.equal(0x28);
    expect(r[12]).to.equal(0xef);
  });
});

const LEVEL = { Administrator: 'ADMINISTRATOR', Operator: 'OPERATOR', ReadOnly: 'USER' } as const;

describe('IPMI SEL with ipmitool and freeipmi', function () {
  let t: TestAgent;
  const ipmitool = (args: string, user = ADMIN) =>
    run('ipmitool', ['-I', 'lanplus', '-H', '127.0.0.1', '-p', String(t.ipmiPort), '-U', user.username, '-P', user.password, '-L', LEVEL[user.role], '-N', '3', '-R', '3', ...args.split(' ')]);
  before(function () {
    requireClient(this, haveCommand('ipmitool'), 'ipmitool');
  });
  beforeEach(async () => {
    t = await startTestAgent();
  });
  afterEach(async () => {
    await t.close();
  });

  it('`sel elist` lists the power events of `power on` / `power off` in order, the same entries as the Redfish EventLog', async () => {
    expect((await ipmitool('power on')).code).to.equal(0);
    expect((await ipmitool('power off')).code).to.equal(0);
    const r = await ipmitool('sel elist');
    expect(r.code, r.out).to.equal(0);
    const lines = r.out.split('\n').filter((l) => l.includes('System ACPI Power State'));
    expect(lines.length, r.out).to.be.at.least(2);
    const on = lines.findIndex((l) => /S0\/G0/.test(l));
    const off = lines.findIndex((l) => /soft-off/.test(l));
    expect(on, r.out).to.be.at.least(0);
    expect(off, r.out).to.be.greaterThan(on);
    // logins are Session Audit entries
    expect(r.out).to.match(/Session Audit/);
    // the same history as the EventLog: one SEL line per log entry at the time of listing
    const log = eventsOf(t.agent.machine).hub.log();
    const powerLog = log.filter((e) => e.kind === 'power');
    expect(lines.length).to.equal(powerLog.length);
    const res = await fetch(`${t.redfishUrl}/redfish/v1/Managers/BMC/LogServices/EventLog/Entries`, {
      headers: { authorization: 'Basic ' + Buffer.from(`${ADMIN.username}:${ADMIN.password}`).toString('base64') },
    });
    const body = (await res.json()) as { Members: { Id: string; MessageId: string }[] };
    const firstLine = r.out.split('\n').find((l) => l.trim() !== '')!;
    // ipmitool prints the record id in hex first
    expect(Number.parseInt(firstLine.split('|')[0]!.trim(), 16)).to.equal(Number(body.Members[0]!.Id));
  });

  it('`sel info` counts the entries; `sel clear` empties the SEL and the EventLog; ReadOnly may not clear', async () => {
    expect((await ipmitool('power on')).code).to.equal(0);
    let info = await ipmitool('sel info');
    expect(info.code, info.out).to.equal(0);
    const entries = Number(/Entries\s*:\s*(\d+)/.exec(info.out)?.[1]);
    expect(entries).to.be.at.least(2);
    expect(info.out).to.match(/Reserve\s*Supported|reserve/i);
    const denied = await ipmitool('sel clear', READONLY);
    expect(denied.code).not.to.equal(0);
    const cleared = await ipmitool('sel clear', OPERATOR);
    expect(cleared.code, cleared.out).to.equal(0);
    // the clearing session's own close/next login come after the clear; no power entry remains
    const list = await ipmitool('sel elist');
    expect(list.out).not.to.contain('System ACPI Power State');
    expect(eventsOf(t.agent.machine).hub.log().some((e) => e.kind === 'power')).to.equal(false);
    info = await ipmitool('sel info');
    expect(info.out).to.match(/Last Del Time\s*:\s*\d/);
  });

  it('`sel add` stores a record that `sel list` shows and the Redfish side sees as an event', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sel-'));
    const file = join(dir, 'events.txt');
    // ipmitool sel add file format: 16 hex bytes per line; a temperature upper-critical assertion
    writeFileSync(file, '0x04 0x01 0x30 0x01 0x01 0x09 0x01 0x00\n');
    const r = await ipmitool(`sel add ${file}`, OPERATOR);
    expect(r.code, r.out).to.equal(0);
    const log = eventsOf(t.agent.machine).hub.log();
    const added = log.find((e) => e.kind === 'sel');
    expect(added, JSON.stringify(log.map((e) => e.kind))).to.not.equal(undefined);
    const list = await ipmitool('sel list');
    expect(list.out).to.match(/Temperature/);
  });

  it('freeipmi ipmi-sel shows the same power events', async function () {
    requireClient(this, haveCommand('ipmi-sel'), 'freeipmi ipmi-sel');
    expect((await ipmitool('power on')).code).to.equal(0);
    const r = await run('ipmi-sel', ['-h', `127.0.0.1:${t.ipmiPort}`, '-u', ADMIN.username, '-p', ADMIN.password, '-l', 'ADMIN', '-D', 'LAN_2_0', '--ignore-sdr-cache', '--session-timeout=20000', '--retransmission-timeout=3000']);
    expect(r.code, r.out).to.equal(0);
    expect(r.out).to.match(/System ACPI Power State.*S0\/G0/);
    expect(r.out).to.match(/Session Audit/);
  });
});
