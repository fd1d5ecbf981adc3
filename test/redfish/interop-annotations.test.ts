/**
 * What the Interop profiles read beyond presence, kept honest against what the service does:
 * `@Redfish.WriteableProperties` lists exactly what a PATCH takes (same table), the InsertMedia
 * ActionInfo lists exactly the values the action takes, Bios has a settings object whose PATCH
 * changes what the VM boots with next, and ComputerSystem SerialConsole names the IPMI SOL port.
 */
import { expect } from 'chai';
import { withWriteableProperties } from '../../src/redfish/core/patch.js';
import { ADMIN, READONLY, startTestAgent, type TestAgent } from '../helpers/agent.js';

type Body = Record<string, unknown> & { error?: { '@Message.ExtendedInfo'?: { MessageId: string }[] } };

function basic(u: { username: string; password: string }): string {
  return 'Basic ' + Buffer.from(`${u.username}:${u.password}`).toString('base64');
}

async function rf(t: TestAgent, method: string, path: string, body?: unknown, user = ADMIN): Promise<{ status: number; body: Body; headers: Headers }> {
  const res = await fetch(t.redfishUrl + path, {
    method,
    headers: { authorization: basic(user), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : {}) as Body, headers: res.headers };
}

const firstId = (r: { body: Body }): string => r.body.error?.['@Message.ExtendedInfo']?.[0]?.MessageId ?? '';
const WP = '@Redfish.WriteableProperties';

describe('withWriteableProperties', () => {
  it('lists leaves at their own level: the root always, a nested object only when it has writable leaves', () => {
    const body = { A: 1, B: { C: 2, D: 3 }, E: { F: 4 }, G: 5 };
    withWriteableProperties(body, { A: 'string', B: { object: { C: 'integer' } }, E: { object: {} } });
    expect(body).to.deep.equal({ A: 1, B: { C: 2, D: 3, [WP]: ['C'] }, E: { F: 4 }, G: 5, [WP]: ['A'] });
    const none: Record<string, unknown> = { X: 1 };
    withWriteableProperties(none, {});
    expect(none[WP]).to.deep.equal([]);
  });
});

describe('Redfish interop annotations on the simulator', function () {
  let t: TestAgent;
  beforeEach(async () => {
    t = await startTestAgent();
  });
  afterEach(async () => t.close());

  it('Systems/1: Boot lists the three override properties, the root AssetTag and the identify indicator; each listed one PATCHes, an unlisted one is PropertyNotWritable', async () => {
    const sys = (await rf(t, 'GET', '/redfish/v1/Systems/1')).body;
    const boot = sys.Boot as Record<string, unknown>;
    expect(boot[WP]).to.have.members(['BootSourceOverrideTarget', 'BootSourceOverrideEnabled', 'BootSourceOverrideMode']);
    expect(sys[WP]).to.deep.equal(['AssetTag', 'IndicatorLED', 'LocationIndicatorActive']);
    for (const name of boot[WP] as string[]) {
      const values = boot[`${name}@Redfish.AllowableValues`] as string[];
      const value = values.find((v) => v !== 'None' && v !== 'Disabled') ?? values[0];
      const r = await rf(t, 'PATCH', '/redfish/v1/Systems/1', { Boot: { [name]: value } });
      expect(r.status, `${name}=${value}`).to.equal(200);
    }
    expect((await rf(t, 'PATCH', '/redfish/v1/Systems/1', { AssetTag: 'rack-7' })).body.AssetTag).to.equal('rack-7');
    expect((await rf(t, 'PATCH', '/redfish/v1/Systems/1', { IndicatorLED: 'Lit' })).body.IndicatorLED).to.equal('Lit');
    expect((await rf(t, 'PATCH', '/redfish/v1/Systems/1', { LocationIndicatorActive: false })).body.LocationIndicatorActive).to.equal(false);
    const ro = await rf(t, 'PATCH', '/redfish/v1/Systems/1', { SerialNumber: 'x' });
    expect([ro.status, firstId(ro)]).to.satisfy(([s, id]: [number, string]) => s === 400 && id.endsWith('.PropertyNotWritable'));
  });

  it('SecureBoot, VirtualMedia, SessionService, AccountService and the Manager list what their PATCH takes', async () => {
    expect((await rf(t, 'GET', '/redfish/v1/Systems/1/SecureBoot')).body[WP]).to.deep.equal(['SecureBootEnable']);
    expect((await rf(t, 'GET', '/redfish/v1/Systems/1/VirtualMedia/Cd')).body[WP]).to.have.members(['Image', 'Inserted', 'WriteProtected']);
    expect((await rf(t, 'GET', '/redfish/v1/SessionService')).body[WP]).to.deep.equal(['SessionTimeout']);
    expect((await rf(t, 'GET', '/redfish/v1/AccountService')).body[WP]).to.include.members(['AccountLockoutThreshold', 'MinPasswordLength']);
    // nothing on the manager is settable: an empty list, so a profile's DateTime write check says "not writable"
    expect((await rf(t, 'GET', '/redfish/v1/Managers/BMC')).body[WP]).to.deep.equal([]);
    const r = await rf(t, 'PATCH', '/redfish/v1/SessionService', { SessionTimeout: 600 });
    expect([r.status, r.body.SessionTimeout]).to.deep.equal([200, 600]);
  });

  it('an account lists everything for ConfigureUsers, only Password on the caller\'s own account for ReadOnly', async () => {
    const accounts = (await rf(t, 'GET', '/redfish/v1/AccountService/Accounts')).body.Members as { '@odata.id': string }[];
    let viewerUri = '';
    for (const m of accounts) {
      const a = (await rf(t, 'GET', m['@odata.id'])).body;
      expect(a[WP]).to.have.members(['UserName', 'Password', 'RoleId', 'Enabled', 'Locked', 'PasswordChangeRequired']);
      if (a.UserName === READONLY.username) viewerUri = m['@odata.id'];
    }
    expect(viewerUri).to.not.equal('');
    const own = await rf(t, 'GET', viewerUri, undefined, READONLY);
    expect(own.body[WP]).to.deep.equal(['Password']);
    const denied = await rf(t, 'PATCH', viewerUri, { RoleId: 'Administrator' }, READONLY);
    expect(denied.status).to.equal(403);
  });

  it('InsertMediaActionInfo lists the values InsertMedia takes per slot, and the action refuses the others', async () => {
    for (const [slot, wp] of [['Cd', ['true']], ['UsbStick', ['true', 'false']]] as const) {
      const media = (await rf(t, 'GET', `/redfish/v1/Managers/BMC/VirtualMedia/${slot}`)).body;
      const action = (media.Actions as Record<string, Record<string, string>>)['#VirtualMedia.InsertMedia']!;
      const infoUri = action['@Redfish.ActionInfo']!;
      expect(infoUri).to.equal(`/redfish/v1/Managers/BMC/VirtualMedia/${slot}/InsertMediaActionInfo`);
      const info = await rf(t, 'GET', infoUri);
      expect(info.status).to.equal(200);
      expect(info.body['@odata.type']).to.match(/^#ActionInfo\./);
      const params = Object.fromEntries((info.body.Parameters as { Name: string; AllowableValues?: string[]; Required?: boolean }[]).map((p) => [p.Name, p]));
      expect(Object.keys(params)).to.have.members(['Image', 'Inserted', 'WriteProtected', 'TransferMethod', 'TransferProtocolType']);
      expect(params.Image?.Required).to.equal(true);
      expect(params.WriteProtected?.AllowableValues).to.deep.equal(wp);
      expect(params.Inserted?.AllowableValues).to.deep.equal(['true']);
      expect(params.TransferMethod?.AllowableValues).to.deep.equal(['Stream']);
      expect(params.TransferProtocolType?.AllowableValues).to.have.members(['HTTP', 'HTTPS']);
      // the same document under the system
      expect((await rf(t, 'GET', `/redfish/v1/Systems/1/VirtualMedia/${slot}/InsertMediaActionInfo`)).body.Parameters).to.deep.equal(info.body.Parameters);
    }
    const act = '/redfish/v1/Managers/BMC/VirtualMedia/Cd/Actions/VirtualMedia.InsertMedia';
    const img = 'http://img.example/a.iso';
    for (const [param, value] of [['WriteProtected', false], ['Inserted', false], ['TransferMethod', 'Upload'], ['TransferProtocolType', 'NFS']] as const) {
      const r = await rf(t, 'POST', act, { Image: img, [param]: value });
      expect([r.status, firstId(r)], param).to.satisfy(([s, id]: [number, string]) => s === 400 && id.endsWith('.ActionParameterValueNotInList'));
    }
    // a CD is read-only media through PATCH too; nothing was inserted by any of the refusals
    const p = await rf(t, 'PATCH', '/redfish/v1/Managers/BMC/VirtualMedia/Cd', { Image: img, WriteProtected: false });
    expect([p.status, firstId(p)]).to.satisfy(([s, id]: [number, string]) => s === 400 && id.endsWith('.PropertyValueNotInList'));
    expect((await rf(t, 'GET', '/redfish/v1/Managers/BMC/VirtualMedia/Cd')).body.Inserted).to.equal(false);
    expect((await rf(t, 'GET', '/redfish/v1/Managers/BMC/VirtualMedia/Nope/InsertMediaActionInfo')).status).to.equal(404);
  });

  it('Bios has a settings object (a Bios, OnReset); PATCH Attributes/SecureBoot writes the next start, the running Bios keeps what it booted', async () => {
    await t.sim.power('on');
    const bios = (await rf(t, 'GET', '/redfish/v1/Systems/1/Bios')).body;
    const settings = bios['@Redfish.Settings'] as { SettingsObject: { '@odata.id': string }; SupportedApplyTimes: string[] };
    expect(settings.SupportedApplyTimes).to.deep.equal(['OnReset']);
    const uri = settings.SettingsObject['@odata.id'];
    const pending = (await rf(t, 'GET', uri)).body;
    expect(pending['@odata.type']).to.match(/^#Bios\./);
    expect((pending.Attributes as Record<string, unknown>)[WP]).to.deep.equal(['SecureBoot']);
    expect((pending.Attributes as Record<string, unknown>).SecureBoot).to.equal(false);

    const r = await rf(t, 'PATCH', uri, { Attributes: { SecureBoot: true } });
    expect(r.status).to.equal(200);
    expect((r.body.Attributes as Record<string, unknown>).SecureBoot).to.equal(true);
    expect((r.body['@Message.ExtendedInfo'] as { MessageId: string }[])[0]?.MessageId).to.match(/\.ResetRequired$/);
    expect((await rf(t, 'GET', '/redfish/v1/Systems/1/SecureBoot')).body.SecureBootEnable).to.equal(true);
    expect(((await rf(t, 'GET', '/redfish/v1/Systems/1/Bios')).body.Attributes as Record<string, unknown>).SecureBoot).to.equal(false);
    // a new start applies it
    await t.sim.power('forceOff');
    await t.sim.power('on');
    expect(((await rf(t, 'GET', '/redfish/v1/Systems/1/Bios')).body.Attributes as Record<string, unknown>).SecureBoot).to.equal(true);

    const fw = await rf(t, 'PATCH', uri, { Attributes: { FirmwareType: 'BIOS' } });
    expect([fw.status, firstId(fw)]).to.satisfy(([s, id]: [number, string]) => s === 400 && id.endsWith('.PropertyNotWritable'));
    const unknown = await rf(t, 'PATCH', uri, { Attributes: { TurboMode: true } });
    expect([unknown.status, firstId(unknown)]).to.satisfy(([s, id]: [number, string]) => s === 400 && id.endsWith('.PropertyUnknown'));
    expect((await rf(t, 'PATCH', uri, { Attributes: { SecureBoot: true } }, READONLY)).status).to.equal(403);
  });

  it('Bios/Settings refuses Secure Boot on BIOS firmware, as SecureBoot does', async () => {
    await t.close();
    t = await startTestAgent({ sim: { firmware: 'BIOS' } });
    const r = await rf(t, 'PATCH', '/redfish/v1/Systems/1/Bios/Settings', { Attributes: { SecureBoot: true } });
    expect([r.status, firstId(r)]).to.satisfy(([s, id]: [number, string]) => s === 400 && id.endsWith('.PropertyValueConflict'));
    expect((await rf(t, 'GET', '/redfish/v1/Systems/1/SecureBoot')).body.SecureBootEnable).to.equal(false);
  });

  it('ComputerSystem SerialConsole is IPMI SOL on the agent\'s IPMI port', async () => {
    const sc = (await rf(t, 'GET', '/redfish/v1/Systems/1')).body.SerialConsole as { IPMI: { ServiceEnabled: boolean; Port: number } };
    expect(sc.IPMI).to.include({ ServiceEnabled: true, Port: t.ipmiPort });
    expect(Object.keys(sc)).to.not.include.members(['SSH', 'Telnet', 'WebSocket']);
  });
});
