/**
 * Redfish resources (systems, reset, boot override, ethernet, virtual media, managers, chassis)
 * against an in-process agent on the simulator. Every assertion on an action also checks the
 * simulator's own state, not only the HTTP answer.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { SimulatedMachine } from '../../src/backend/simulator/simulator.js';
import type { BootMode, BootTarget, MediaSlot, PowerAction } from '../../src/backend/types.js';
import { startTestAgent, type TestAgent } from '../helpers/agent.js';
import { startImageServer, type ImageServer } from '../helpers/images.js';

interface Reply {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
}

const BASIC = 'Basic ' + Buffer.from('admin:password').toString('base64');
const VIEWER = 'Basic ' + Buffer.from('viewer:viewer-pw').toString('base64');
const OPERATOR_AUTH = 'Basic ' + Buffer.from('operator:op-secret').toString('base64');

function client(t: TestAgent) {
  return async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Reply> => {
    const res = await fetch(t.redfishUrl + path, {
      method,
      headers: {
        authorization: BASIC,
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...headers,
      },
      ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    return { status: res.status, headers: res.headers, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
  };
}

/** MessageIds of a Redfish error body, without the registry prefix (e.g. "PropertyUnknown"). */
function messageIds(r: Reply): string[] {
  const err = r.body.error as { '@Message.ExtendedInfo'?: { MessageId: string }[] } | undefined;
  return (err?.['@Message.ExtendedInfo'] ?? []).map((m) => m.MessageId.split('.').pop() ?? '');
}

function expectError(r: Reply, status: number, messageId: string): void {
  expect(r.status, JSON.stringify(r.body)).to.equal(status);
  expect(messageIds(r)).to.include(messageId);
  const full = (r.body.error as { '@Message.ExtendedInfo': { MessageId: string }[] })['@Message.ExtendedInfo'];
  expect(full.find((m) => m.MessageId.endsWith('.' + messageId))!.MessageId).to.match(/^Base\.1\.\d+\.\d+\./);
}

const SYS = '/redfish/v1/Systems/1';
const RESET = `${SYS}/Actions/ComputerSystem.Reset`;

describe('Redfish resources: systems', function () {
  let t: TestAgent;
  let rf: ReturnType<typeof client>;

  beforeEach(async () => {
    t = await startTestAgent({ ipmi: false, sim: { nics: [{ id: 'nic0', macAddress: '02:aa:bb:cc:dd:ee', ipv4Addresses: ['10.0.2.15/24', 'fe80::1'] }] } });
    rf = client(t);
  });
  afterEach(async () => t.close());

  it('lists the one system', async () => {
    const r = await rf('GET', '/redfish/v1/Systems');
    expect(r.status).to.equal(200);
    expect(r.body['@odata.type']).to.equal('#ComputerSystemCollection.ComputerSystemCollection');
    expect(r.body.Members).to.deep.equal([{ '@odata.id': SYS }]);
    expect(r.body['Members@odata.count']).to.equal(1);
  });

  it('serves ComputerSystem 1 live from the backend', async () => {
    const info = await t.sim.getSystemInfo();
    const r = await rf('GET', SYS);
    expect(r.status).to.equal(200);
    expect(r.headers.get('etag')).to.match(/^(W\/)?".+"$/);
    const b = r.body;
    expect(b['@odata.id']).to.equal(SYS);
    expect(b['@odata.type']).to.match(/^#ComputerSystem\.v1_\d+_\d+\.ComputerSystem$/);
    expect(b.Id).to.equal('1');
    expect(b.Name).to.equal(info.name);
    expect(b.UUID).to.equal(info.uuid);
    expect(b.SerialNumber).to.equal(info.serialNumber);
    expect(b.Manufacturer).to.equal(info.manufacturer);
    expect(b.Model).to.equal(info.model);
    expect(b.SystemType).to.equal('Virtual');
    expect(b.PowerState).to.equal('Off');
    expect(b.Status).to.deep.equal({ State: 'Enabled', Health: 'OK' });
    // Count is sockets; LogicalProcessorCount every vCPU (the simulator: 1 socket of cpuCount cores)
    expect(b.ProcessorSummary).to.include({ Count: 1, CoreCount: info.cpuCount, LogicalProcessorCount: info.cpuCount, Model: 'Virtual CPU' });
    expect(b.MemorySummary).to.deep.equal({ TotalSystemMemoryGiB: info.memoryMiB / 1024, Status: { State: 'Enabled', Health: 'OK' } });
    const boot = b.Boot as Record<string, unknown>;
    expect(boot).to.include({ BootSourceOverrideTarget: 'None', BootSourceOverrideEnabled: 'Disabled', BootSourceOverrideMode: 'UEFI' });
    // the simulator has no floppy and no diags: they must not be advertised
    expect(boot['BootSourceOverrideTarget@Redfish.AllowableValues']).to.deep.equal([
      'None', 'Pxe', 'Hdd', 'Cd', 'Usb', 'BiosSetup', 'UefiHttp',
    ]);
    expect(boot['BootSourceOverrideEnabled@Redfish.AllowableValues']).to.have.members(['Disabled', 'Once', 'Continuous']);
    expect(boot['BootSourceOverrideMode@Redfish.AllowableValues']).to.have.members(['UEFI', 'Legacy']);
    expect(b.Links).to.deep.equal({
      Chassis: [{ '@odata.id': '/redfish/v1/Chassis/1' }],
      ManagedBy: [{ '@odata.id': '/redfish/v1/Managers/BMC' }],
    });
    expect(b.EthernetInterfaces).to.deep.equal({ '@odata.id': `${SYS}/EthernetInterfaces` });
    expect(b.VirtualMedia).to.deep.equal({ '@odata.id': `${SYS}/VirtualMedia` });
    const reset = (b.Actions as Record<string, Record<string, unknown>>)['#ComputerSystem.Reset']!;
    expect(reset.target).to.equal(RESET);
    expect(reset['@Redfish.ActionInfo']).to.equal(`${SYS}/ResetActionInfo`);

    await t.sim.power('on');
    expect((await rf('GET', SYS)).body.PowerState).to.equal('On');
    await t.sim.power('pause');
    expect((await rf('GET', SYS)).body.PowerState).to.equal('Paused');
  });

  it('shows transitional power states', async () => {
    await t.close();
    t = await startTestAgent({ ipmi: false, sim: { powerOnDelayMs: 2000 } });
    rf = client(t);
    await t.sim.power('on');
    expect((await rf('GET', SYS)).body.PowerState).to.equal('PoweringOn');
  });

  it('describes Reset in ResetActionInfo', async () => {
    const r = await rf('GET', `${SYS}/ResetActionInfo`);
    expect(r.status).to.equal(200);
    expect(r.body['@odata.type']).to.match(/^#ActionInfo\.v1_\d+_\d+\.ActionInfo$/);
    expect(r.body.Parameters).to.deep.equal([
      {
        Name: 'ResetType',
        Required: true,
        DataType: 'String',
        AllowableValues: [
          'On', 'ForceOn', 'ForceOff', 'GracefulShutdown', 'GracefulRestart', 'ForceRestart',
          'PowerCycle', 'Nmi', 'PushPowerButton', 'Pause', 'Resume',
        ],
      },
    ]);
  });

  describe('Reset', () => {
    const reset = (type: unknown) => rf('POST', RESET, { ResetType: type });
    const power = () => t.sim.getPowerState();

    it('On / ForceOn power on and boot', async () => {
      expect((await reset('On')).status).to.equal(204);
      expect(await power()).to.equal('On');
      expect(t.sim.bootHistory).to.have.length(1);
      expect((await reset('ForceOn')).status).to.equal(204); // already on: no second boot
      expect(t.sim.bootHistory).to.have.length(1);
      await t.sim.power('forceOff');
      expect((await reset('ForceOn')).status).to.equal(204);
      expect(await power()).to.equal('On');
      expect(t.sim.bootHistory).to.have.length(2);
    });

    it('ForceOff and GracefulShutdown power off', async () => {
      await t.sim.power('on');
      expect((await reset('ForceOff')).status).to.equal(204);
      expect(await power()).to.equal('Off');
      await t.sim.power('on');
      expect((await reset('GracefulShutdown')).status).to.equal(204);
      expect(await power()).to.equal('Off');
    });

    it('GracefulRestart, ForceRestart and PowerCycle reboot', async () => {
      await t.sim.power('on');
      for (const [i, type] of ['GracefulRestart', 'ForceRestart', 'PowerCycle'].entries()) {
        expect((await reset(type)).status, type).to.equal(204);
        expect(await power()).to.equal('On');
        expect(t.sim.bootHistory, type).to.have.length(i + 2);
      }
      await t.sim.power('forceOff');
      expect((await reset('PowerCycle')).status).to.equal(204); // off: simply powers on
      expect(await power()).to.equal('On');
      expect(t.sim.bootHistory).to.have.length(5);
    });

    it('Nmi, Pause, Resume', async () => {
      await t.sim.power('on');
      expect((await reset('Nmi')).status).to.equal(204);
      expect(t.sim.nmiCount).to.equal(1);
      expect((await reset('Pause')).status).to.equal(204);
      expect(await power()).to.equal('Paused');
      expect((await reset('Resume')).status).to.equal(204);
      expect(await power()).to.equal('On');
    });

    it('PushPowerButton toggles', async () => {
      expect((await reset('PushPowerButton')).status).to.equal(204);
      expect(await power()).to.equal('On');
      expect((await reset('PushPowerButton')).status).to.equal(204);
      expect(await power()).to.equal('Off');
    });

    it('rejects a missing, unknown or mistyped ResetType', async () => {
      expectError(await rf('POST', RESET, {}), 400, 'ActionParameterMissing');
      const unknown = await reset('Explode');
      expect(unknown.status).to.equal(400);
      expect(messageIds(unknown).some((m) => /^(ActionParameterValueNotInList|ActionParameterNotSupported|PropertyValueNotInList)$/.test(m))).to.equal(true);
      expect(messageIds(await reset(7))).to.satisfy((ids: string[]) => ids.some((m) => /TypeError|NotInList/.test(m)));
      expect((await reset(7)).status).to.equal(400);
      expect(await power()).to.equal('Off');
      expect(t.sim.bootHistory).to.have.length(0);
    });

    it('rejects unknown parameters', async () => {
      const r = await rf('POST', RESET, { ResetType: 'On', Delay: 5 });
      expect(r.status).to.equal(400);
      expect(await power()).to.equal('Off');
    });

    it('answers a conflict (restart while off) with 409 and a Base message', async () => {
      const r = await reset('ForceRestart');
      expectError(r, 409, 'ChassisPowerStateOnRequired');
      expect(JSON.stringify(r.body)).to.not.include('HTTP method');
      expect(await power()).to.equal('Off');
      expect((await reset('Nmi')).status).to.equal(409);
      expect(t.sim.nmiCount).to.equal(0);
    });

    it('answers busy (action during a transition) with Retry-After', async () => {
      await t.close();
      t = await startTestAgent({ ipmi: false, sim: { powerOnDelayMs: 5000 } });
      rf = client(t);
      expect((await reset('On')).status).to.equal(204);
      expect(await power()).to.equal('PoweringOn');
      const r = await reset('GracefulRestart');
      expectError(r, 409, 'ResourceInUse');
      expect(Number(r.headers.get('retry-after'))).to.be.greaterThan(0);
    });

    it('is refused to a ReadOnly user', async () => {
      const r = await rf('POST', RESET, { ResetType: 'On' }, { authorization: VIEWER });
      expect(r.status).to.equal(403);
      expect(await power()).to.equal('Off');
    });

    it('is refused without credentials', async () => {
      const res = await fetch(t.redfishUrl + RESET, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ ResetType: 'On' }),
      });
      expect(res.status).to.equal(401);
      expect(await power()).to.equal('Off');
    });
  });

  describe('PATCH boot override', () => {
    const patch = (boot: Record<string, unknown>, headers: Record<string, string> = {}) => rf('PATCH', SYS, { Boot: boot }, headers);

    it('sets target, enabled and mode, and changes the ETag', async () => {
      const before = await rf('GET', SYS);
      const r = await patch({ BootSourceOverrideTarget: 'Pxe', BootSourceOverrideEnabled: 'Continuous', BootSourceOverrideMode: 'Legacy' });
      expect(r.status).to.equal(200);
      expect(r.body.Boot).to.include({ BootSourceOverrideTarget: 'Pxe', BootSourceOverrideEnabled: 'Continuous', BootSourceOverrideMode: 'Legacy' });
      expect(await t.sim.getBootOverride()).to.deep.equal({ target: 'pxe', enabled: 'continuous', mode: 'Legacy' });
      const after = await rf('GET', SYS);
      expect(after.headers.get('etag')).to.not.equal(before.headers.get('etag'));
      // continuous survives boots
      await t.sim.power('on');
      await t.sim.power('forceRestart');
      expect(t.sim.bootHistory.map((b) => b.target)).to.deep.equal(['pxe', 'pxe']);
      expect((await rf('GET', SYS)).body.Boot).to.include({ BootSourceOverrideEnabled: 'Continuous' });
    });

    it('a Once override is consumed by the next boot (ForceRestart)', async () => {
      await t.sim.power('on');
      expect((await patch({ BootSourceOverrideTarget: 'Cd', BootSourceOverrideEnabled: 'Once' })).status).to.equal(200);
      expect((await rf('POST', RESET, { ResetType: 'ForceRestart' })).status).to.equal(204);
      expect(t.sim.bootHistory.at(-1)!.target).to.equal('cd');
      const r = await rf('GET', SYS);
      expect(r.body.Boot).to.include({ BootSourceOverrideEnabled: 'Disabled' });
      await rf('POST', RESET, { ResetType: 'ForceRestart' });
      expect(t.sim.bootHistory.at(-1)!.target).to.equal('hdd');
    });

    it('a target alone while Disabled means Once; while Continuous keeps Continuous', async () => {
      expect((await patch({ BootSourceOverrideTarget: 'Pxe' })).body.Boot).to.include({ BootSourceOverrideEnabled: 'Once' });
      expect((await t.sim.getBootOverride()).enabled).to.equal('once');
      await patch({ BootSourceOverrideEnabled: 'Continuous' });
      await patch({ BootSourceOverrideTarget: 'Hdd' });
      expect(await t.sim.getBootOverride()).to.include({ target: 'hdd', enabled: 'continuous' });
      await patch({ BootSourceOverrideTarget: 'None' });
      expect((await t.sim.getBootOverride()).enabled).to.equal('disabled');
    });

    it('rejects unknown, read-only, mistyped and out-of-list properties with their MessageIds', async () => {
      expectError(await rf('PATCH', SYS, { Frobnicate: 1 }), 400, 'PropertyUnknown');
      expectError(await rf('PATCH', SYS, { PowerState: 'On' }), 400, 'PropertyNotWritable');
      expectError(await rf('PATCH', SYS, { UUID: '00000000-0000-0000-0000-000000000000' }), 400, 'PropertyNotWritable');
      expectError(await patch({ BootSourceOverrideTarget: 5 }), 400, 'PropertyValueTypeError');
      expectError(await patch({ BootSourceOverrideTarget: 'Floppy' }), 400, 'PropertyValueNotInList');
      expectError(await patch({ BootSourceOverrideEnabled: 'Sometimes' }), 400, 'PropertyValueNotInList');
      expectError(await patch({ BootSourceOverrideMode: 'BIOS' }), 400, 'PropertyValueNotInList');
      expectError(await rf('PATCH', SYS, { Boot: 'Pxe' }), 400, 'PropertyValueTypeError');
      expect(await t.sim.getBootOverride()).to.deep.equal({ target: 'none', enabled: 'disabled', mode: 'UEFI' });
      expect(await t.sim.getPowerState()).to.equal('Off');
    });

    it('reports every problem of one PATCH and applies none of it', async () => {
      const r = await rf('PATCH', SYS, { PowerState: 'On', Boot: { BootSourceOverrideTarget: 'Pxe', BootSourceOverrideMode: 'BIOS' } });
      expect(r.status).to.equal(400);
      expect(messageIds(r)).to.include.members(['PropertyNotWritable', 'PropertyValueNotInList']);
      expect((await t.sim.getBootOverride()).target).to.equal('none');
    });

    it('honours If-Match: 412 on a stale ETag, 200 on the current one', async () => {
      const etag = (await rf('GET', SYS)).headers.get('etag')!;
      await patch({ BootSourceOverrideTarget: 'Pxe', BootSourceOverrideEnabled: 'Once' });
      expectError(await patch({ BootSourceOverrideTarget: 'Cd' }, { 'if-match': etag }), 412, 'PreconditionFailed');
      expect((await t.sim.getBootOverride()).target).to.equal('pxe');
      const fresh = (await rf('GET', SYS)).headers.get('etag')!;
      const ok = await patch({ BootSourceOverrideTarget: 'Cd' }, { 'if-match': fresh });
      expect(ok.status).to.equal(200);
      expect((await t.sim.getBootOverride()).target).to.equal('cd');
    });

    it('is refused to a ReadOnly user', async () => {
      const r = await patch({ BootSourceOverrideTarget: 'Pxe' }, { authorization: VIEWER });
      expect(r.status).to.equal(403);
      expect((await t.sim.getBootOverride()).target).to.equal('none');
    });
  });

  describe('EthernetInterfaces', () => {
    it('lists the backend NICs with MAC, link and addresses', async () => {
      const c = await rf('GET', `${SYS}/EthernetInterfaces`);
      expect(c.status).to.equal(200);
      expect(c.body.Members).to.deep.equal([{ '@odata.id': `${SYS}/EthernetInterfaces/nic0` }]);
      const r = await rf('GET', `${SYS}/EthernetInterfaces/nic0`);
      expect(r.status).to.equal(200);
      expect(r.body).to.include({ Id: 'nic0', MACAddress: '02:AA:BB:CC:DD:EE', PermanentMACAddress: '02:AA:BB:CC:DD:EE', LinkStatus: 'LinkDown' });
      expect(r.body.Status).to.deep.equal({ State: 'Enabled', Health: 'OK' });
      expect(r.body.IPv4Addresses).to.deep.equal([{ Address: '10.0.2.15', SubnetMask: '255.255.255.0' }]);
      await t.sim.power('on');
      expect((await rf('GET', `${SYS}/EthernetInterfaces/nic0`)).body.LinkStatus).to.equal('LinkUp');
      expectError(await rf('GET', `${SYS}/EthernetInterfaces/nic9`), 404, 'ResourceNotFound');
    });
  });

  describe('Chassis', () => {
    it('serves Chassis 1 linked to the system and manager', async () => {
      const c = await rf('GET', '/redfish/v1/Chassis');
      expect(c.body.Members).to.deep.equal([{ '@odata.id': '/redfish/v1/Chassis/1' }]);
      const r = await rf('GET', '/redfish/v1/Chassis/1');
      expect(r.status).to.equal(200);
      expect(r.body).to.include({ Id: '1', ChassisType: 'Other', PowerState: 'Off' });
      expect(r.body.Links).to.deep.include({
        ComputerSystems: [{ '@odata.id': SYS }],
        ManagedBy: [{ '@odata.id': '/redfish/v1/Managers/BMC' }],
      });
      await t.sim.power('on');
      expect((await rf('GET', '/redfish/v1/Chassis/1')).body.PowerState).to.equal('On');
    });
  });

  it('advertises and accepts only what the backend can do', async () => {
    // e.g. the KubeVirt backend has no NMI and a VM may only offer some boot devices
    class Limited extends SimulatedMachine {
      override readonly capabilities = {
        powerActions: ['on', 'forceOff', 'gracefulOff', 'forceRestart'] as PowerAction[],
        bootTargets: ['none', 'pxe', 'hdd'] as BootTarget[],
        bootModes: ['UEFI'] as BootMode[],
      };
    }
    const machine = new Limited({ initialPower: 'On' });
    await t.close();
    t = await startTestAgent({ ipmi: false, machine });
    rf = client(t);
    const sys = await rf('GET', SYS);
    const boot = sys.body.Boot as Record<string, unknown>;
    expect(boot['BootSourceOverrideTarget@Redfish.AllowableValues']).to.deep.equal(['None', 'Pxe', 'Hdd']);
    expect(boot['BootSourceOverrideMode@Redfish.AllowableValues']).to.deep.equal(['UEFI']);
    const info = await rf('GET', `${SYS}/ResetActionInfo`);
    expect((info.body.Parameters as { AllowableValues: string[] }[])[0]!.AllowableValues).to.deep.equal([
      'On', 'ForceOn', 'ForceOff', 'GracefulShutdown', 'ForceRestart', 'PushPowerButton',
    ]);
    for (const type of ['Nmi', 'PowerCycle', 'GracefulRestart', 'Pause']) {
      expectError(await rf('POST', RESET, { ResetType: type }), 400, 'ActionParameterValueNotInList');
    }
    expect(machine.nmiCount).to.equal(0);
    expect(machine.bootHistory).to.have.length(0);
    expectError(await rf('PATCH', SYS, { Boot: { BootSourceOverrideTarget: 'Cd' } }), 400, 'PropertyValueNotInList');
    expectError(await rf('PATCH', SYS, { Boot: { BootSourceOverrideMode: 'Legacy' } }), 400, 'PropertyValueNotInList');
    expect(await machine.getBootOverride()).to.deep.equal({ target: 'none', enabled: 'disabled', mode: 'UEFI' });
    expect((await rf('POST', RESET, { ResetType: 'ForceRestart' })).status).to.equal(204);
    expect(machine.bootHistory).to.have.length(1);
  });

  it('answers 404 ResourceNotFound for other ids', async () => {
    for (const p of ['/redfish/v1/Systems/2', '/redfish/v1/Systems/2/ResetActionInfo', '/redfish/v1/Chassis/X', '/redfish/v1/Managers/Other', `${SYS}/VirtualMedia/Floppy1`, '/redfish/v1/Managers/BMC/VirtualMedia/cd0']) {
      expectError(await rf('GET', p), 404, 'ResourceNotFound');
    }
    expectError(await rf('POST', '/redfish/v1/Systems/2/Actions/ComputerSystem.Reset', { ResetType: 'On' }), 404, 'ResourceNotFound');
    expect(await t.sim.getPowerState()).to.equal('Off');
  });

  it('an outage gives 503 with Retry-After, then recovers', async () => {
    t.sim.setAvailable(false);
    for (const p of [SYS, '/redfish/v1/Chassis/1', `${SYS}/EthernetInterfaces`, '/redfish/v1/Managers/BMC/VirtualMedia/Cd']) {
      const r = await rf('GET', p);
      expect(r.status, p).to.equal(503);
      expect(Number(r.headers.get('retry-after')), p).to.be.greaterThan(0);
      expect(messageIds(r)).to.include('ServiceTemporarilyUnavailable');
    }
    const post = await rf('POST', RESET, { ResetType: 'On' });
    expect(post.status).to.equal(503);
    t.sim.setAvailable(true);
    expect(await t.sim.getPowerState()).to.equal('Off');
    expect((await rf('GET', SYS)).status).to.equal(200);
    expect((await rf('POST', RESET, { ResetType: 'On' })).status).to.equal(204);
    expect(await t.sim.getPowerState()).to.equal('On');
  });
});

describe('Redfish resources: virtual media', function () {
  let t: TestAgent;
  let rf: ReturnType<typeof client>;
  let img: ImageServer;
  let ISO: string;

  before(async () => {
    img = await startImageServer({ '/boot/installer.iso': 4096, '/disk.img': 2048, '/other.iso': 100 });
    ISO = img.url('/boot/installer.iso');
  });
  after(async () => img.close());
  beforeEach(async () => {
    t = await startTestAgent({ ipmi: false });
    rf = client(t);
  });
  afterEach(async () => t.close());

  const slot = async (id: 'Cd' | 'UsbStick') => (await t.sim.listMedia()).find((s) => s.id === id)!;

  /** Poll the task monitor named by an insert's 202 until it stops answering 202 (bounded). */
  async function finished(accepted: Reply): Promise<Reply> {
    expect(accepted.status, JSON.stringify(accepted.body)).to.equal(202);
    const monitor = accepted.headers.get('location')!;
    expect(monitor).to.match(/^\/redfish\/v1\/TaskService\/TaskMonitors\/\d+$/);
    for (let i = 0; i < 500; i++) {
      const r = await rf('GET', monitor);
      if (r.status !== 202) return r;
      await new Promise((res) => setTimeout(res, 10));
    }
    throw new Error('task did not finish');
  }

  for (const base of ['/redfish/v1/Managers/BMC/VirtualMedia', '/redfish/v1/Systems/1/VirtualMedia']) {
    describe(`under ${base}`, () => {
      it('lists Cd and UsbStick', async () => {
        const r = await rf('GET', base);
        expect(r.status).to.equal(200);
        expect(r.body['@odata.type']).to.equal('#VirtualMediaCollection.VirtualMediaCollection');
        expect(r.body.Members).to.deep.equal([{ '@odata.id': `${base}/Cd` }, { '@odata.id': `${base}/UsbStick` }]);
      });

      it('describes empty slots', async () => {
        const cd = await rf('GET', `${base}/Cd`);
        expect(cd.status).to.equal(200);
        expect(cd.body).to.include({
          '@odata.id': `${base}/Cd`, Id: 'Cd', Image: null, ImageName: null, Inserted: false, WriteProtected: true,
          ConnectedVia: 'NotConnected', TransferMethod: 'Stream',
        });
        expect(cd.body.MediaTypes).to.deep.equal(['CD', 'DVD']);
        const actions = cd.body.Actions as Record<string, { target: string }>;
        expect(actions['#VirtualMedia.InsertMedia']!.target).to.equal(`${base}/Cd/Actions/VirtualMedia.InsertMedia`);
        expect(actions['#VirtualMedia.EjectMedia']!.target).to.equal(`${base}/Cd/Actions/VirtualMedia.EjectMedia`);
        const usb = await rf('GET', `${base}/UsbStick`);
        expect(usb.body.MediaTypes).to.deep.equal(['USBStick']);
      });

      it('inserts as a task and ejects through the actions', async () => {
        const ins = await rf('POST', `${base}/Cd/Actions/VirtualMedia.InsertMedia`, { Image: ISO, TransferProtocolType: 'HTTP' });
        expect(ins.status, JSON.stringify(ins.body)).to.equal(202);
        expect(ins.body['@odata.type']).to.match(/^#Task\.v1_\d+_\d+\.Task$/);
        expect(ins.body.TaskMonitor).to.equal(ins.headers.get('location'));
        const done = await finished(ins);
        expect(done.status).to.equal(204);
        expect(await slot('Cd')).to.include({ state: 'inserted', image: ISO, writeProtected: true });
        const task = await rf('GET', ins.body['@odata.id'] as string);
        expect(task.body).to.include({ TaskState: 'Completed', TaskStatus: 'OK', PercentComplete: 100 });
        const r = await rf('GET', `${base}/Cd`);
        expect(r.body).to.include({ Image: ISO, ImageName: 'installer.iso', Inserted: true, ConnectedVia: 'URI', TransferProtocolType: 'HTTP' });
        // the other path sees the same slot
        const other = base.includes('Managers') ? '/redfish/v1/Systems/1/VirtualMedia' : '/redfish/v1/Managers/BMC/VirtualMedia';
        expect((await rf('GET', `${other}/Cd`)).body.Inserted).to.equal(true);
        // full: refused synchronously, no task
        const tasksBefore = (await rf('GET', '/redfish/v1/TaskService/Tasks')).body['Members@odata.count'];
        const again = await rf('POST', `${base}/Cd/Actions/VirtualMedia.InsertMedia`, { Image: img.url('/other.iso') });
        expectError(again, 409, 'ResourceInUse');
        expect((await rf('GET', '/redfish/v1/TaskService/Tasks')).body['Members@odata.count']).to.equal(tasksBefore);
        expect((await slot('Cd')).image).to.equal(ISO);
        const ej = await rf('POST', `${base}/Cd/Actions/VirtualMedia.EjectMedia`, {});
        expect(ej.status).to.equal(204);
        expect((await slot('Cd')).state).to.equal('empty');
        expect((await rf('GET', `${base}/Cd`)).body).to.include({ Inserted: false, Image: null, ConnectedVia: 'NotConnected' });
      });

      it('inserts writable media into the USB slot', async () => {
        const ins = await rf('POST', `${base}/UsbStick/Actions/VirtualMedia.InsertMedia`, { Image: img.url('/disk.img'), WriteProtected: false, Inserted: true, TransferMethod: 'Stream' });
        expect((await finished(ins)).status).to.equal(204);
        expect(await slot('UsbStick')).to.include({ state: 'inserted', writeProtected: false });
        expect((await rf('GET', `${base}/UsbStick`)).body).to.include({ WriteProtected: false, TransferProtocolType: 'HTTP' });
      });

      it('rejects bad insert requests without touching the slot', async () => {
        const act = `${base}/Cd/Actions/VirtualMedia.InsertMedia`;
        const probes = img.requests.length;
        expectError(await rf('POST', act, {}), 400, 'ActionParameterMissing');
        expectError(await rf('POST', act, { Image: 'not a url' }), 400, 'ActionParameterValueFormatError');
        expectError(await rf('POST', act, { Image: 'ftp://h.example/x.iso' }), 400, 'ActionParameterValueFormatError');
        expectError(await rf('POST', act, { Image: ISO, TransferMethod: 'Upload' }), 400, 'ActionParameterValueNotInList');
        expectError(await rf('POST', act, { Image: ISO, TransferProtocolType: 'NFS' }), 400, 'ActionParameterValueNotInList');
        expectError(await rf('POST', act, { Image: ISO, TransferProtocolType: 'HTTPS' }), 400, 'ActionParameterValueConflict');
        expectError(await rf('POST', act, { Image: ISO, Bogus: 1 }), 400, 'ActionParameterUnknown');
        expectError(await rf('POST', act, { Image: ISO, WriteProtected: 'yes' }), 400, 'ActionParameterValueTypeError');
        expectError(await rf('POST', `${base}/Floppy/Actions/VirtualMedia.InsertMedia`, { Image: ISO }), 404, 'ResourceNotFound');
        // credentials in the URL are refused, and not echoed back
        const cred = await rf('POST', act, { Image: 'http://u:s3cr3t@h.example/x.iso' });
        expectError(cred, 400, 'ActionParameterValueFormatError');
        expect(JSON.stringify(cred.body)).to.not.include('s3cr3t');
        expect((await slot('Cd')).state).to.equal('empty');
        expect((await rf('GET', '/redfish/v1/TaskService/Tasks')).body['Members@odata.count']).to.equal(0);
        expect(img.requests.length).to.equal(probes); // refused before the image server is asked
      });

      it('inserts (as a task) and ejects through PATCH', async () => {
        const r = await rf('PATCH', `${base}/Cd`, { Image: ISO, Inserted: true });
        expect((await finished(r)).status).to.equal(204);
        expect(r.body.Payload).to.include({ HttpOperation: 'PATCH', TargetUri: `${base}/Cd` });
        expect((await slot('Cd')).state).to.equal('inserted');
        expect((await rf('GET', `${base}/Cd`)).body).to.include({ Image: ISO, Inserted: true });
        const etag = (await rf('GET', `${base}/Cd`)).headers.get('etag')!;
        const e = await rf('PATCH', `${base}/Cd`, { Image: null, Inserted: false }, { 'if-match': etag });
        expect(e.status).to.equal(200);
        expect((await slot('Cd')).state).to.equal('empty');
        expectError(await rf('PATCH', `${base}/Cd`, { Image: ISO }, { 'if-match': etag }), 412, 'PreconditionFailed');
        expectError(await rf('PATCH', `${base}/Cd`, { MediaTypes: ['CD'] }), 400, 'PropertyNotWritable');
        expectError(await rf('PATCH', `${base}/Cd`, { Inserted: 'yes' }), 400, 'PropertyValueTypeError');
        expectError(await rf('PATCH', `${base}/Cd`, { Image: 'nope' }), 400, 'PropertyValueFormatError');
        const cred = await rf('PATCH', `${base}/Cd`, { Image: 'https://u:s3cr3t@h.example/x.iso' });
        expectError(cred, 400, 'PropertyValueFormatError');
        expect(JSON.stringify(cred.body)).to.not.include('s3cr3t');
        expect((await slot('Cd')).state).to.equal('empty');
      });
    });
  }

  it('a 404 image ends the task in Exception with the cause; the slot stays empty', async () => {
    const VM = '/redfish/v1/Managers/BMC/VirtualMedia/Cd';
    const ins = await rf('POST', `${VM}/Actions/VirtualMedia.InsertMedia`, { Image: img.url('/gone.iso?sig=tok3n') });
    const done = await finished(ins);
    expectError(done, 400, 'ActionParameterValueError');
    expect((done.body.error as { message: string }).message).to.equal(`image URL ${img.base}/gone.iso answered HTTP 404 (not found)`);
    const task = await rf('GET', ins.body['@odata.id'] as string);
    expect(task.body).to.include({ TaskState: 'Exception', TaskStatus: 'Critical' });
    const msgs = task.body.Messages as { MessageId: string; Message: string }[];
    expect(msgs.map((m) => m.MessageId)).to.include.members(['TaskEvent.1.0.5.TaskStarted', 'TaskEvent.1.0.5.TaskAborted']);
    expect(msgs.find((m) => m.MessageId.endsWith('ActionParameterValueError'))!.Message).to.include('HTTP 404');
    expect((await slot('Cd')).state).to.equal('empty');
  });

  it('shows insert progress on the slot and the task; cancelling the task ejects', async () => {
    await t.close();
    t = await startTestAgent({ ipmi: false, sim: { mediaInsertDelayMs: 60_000 } });
    rf = client(t);
    const VM = '/redfish/v1/Managers/BMC/VirtualMedia/Cd';
    const ins = await rf('POST', `${VM}/Actions/VirtualMedia.InsertMedia`, { Image: ISO });
    expect(ins.status).to.equal(202);
    const monitor = ins.headers.get('location')!;
    // the URL check happens in the task: wait until the slot reports inserting
    for (let i = 0; i < 500 && (await slot('Cd')).state !== 'inserting'; i++) await new Promise((res) => setTimeout(res, 10));
    const r = await rf('GET', VM);
    expect(r.body).to.include({ Inserted: false, Image: ISO });
    expect((r.body.Status as Record<string, string>).State).to.equal('Starting');
    const running = await rf('GET', monitor);
    expect(running.status).to.equal(202);
    expect(running.headers.get('location')).to.equal(monitor);
    expect(running.headers.get('retry-after')).to.equal(null); // see sendAccepted: sushy 4.x cannot sleep on it
    expect(running.body).to.include({ TaskState: 'Running', PercentComplete: 0 });
    expectError(await rf('DELETE', monitor, undefined, { authorization: VIEWER }), 403, 'InsufficientPrivilege');
    expect((await rf('DELETE', monitor)).status).to.equal(204);
    expect((await slot('Cd')).state).to.equal('empty');
    expectError(await rf('GET', monitor), 404, 'ResourceMissingAtURI');
    const task = await rf('GET', ins.body['@odata.id'] as string);
    expect(task.body).to.include({ TaskState: 'Cancelled', TaskStatus: 'Warning' });
    expect(task.body.TaskMonitor).to.equal(undefined);
  });

  it('shows a failed insert as Critical with the reason', async () => {
    // A backend that reports a failed insert on the slot is modelled here.
    class FailingMedia extends SimulatedMachine {
      override async listMedia(): Promise<MediaSlot[]> {
        return (await super.listMedia()).map((m) =>
          m.id === 'Cd' ? { ...m, state: 'error', image: ISO, error: 'HTTP 404 fetching the image' } : m,
        );
      }
    }
    await t.close();
    t = await startTestAgent({ ipmi: false, machine: new FailingMedia() });
    rf = client(t);
    const r = await rf('GET', '/redfish/v1/Systems/1/VirtualMedia/Cd');
    expect(r.status).to.equal(200);
    expect(r.body).to.include({ Inserted: false, Image: ISO, ConnectedVia: 'NotConnected' });
    const st = r.body.Status as { Health: string; Conditions: { Message: string; MessageId: string }[] };
    expect(st.Health).to.equal('Critical');
    expect(st.Conditions[0]!.Message).to.equal('HTTP 404 fetching the image');
    expect(st.Conditions[0]!.MessageId).to.match(/^Base\./);
    expect((await rf('GET', '/redfish/v1/Systems/1/VirtualMedia/UsbStick')).body.Status).to.deep.equal({ State: 'Enabled', Health: 'OK' });
  });

  it('is refused to a ReadOnly user', async () => {
    const r = await rf('POST', '/redfish/v1/Managers/BMC/VirtualMedia/Cd/Actions/VirtualMedia.InsertMedia', { Image: ISO }, { authorization: VIEWER });
    expect(r.status).to.equal(403);
    expect((await slot('Cd')).state).to.equal('empty');
  });

  it('shows the image without query string or credentials to users other than Administrators', async () => {
    const signed = `${ISO}?X-Amz-Signature=tok3n#frag`;
    expect((await finished(await rf('POST', '/redfish/v1/Managers/BMC/VirtualMedia/Cd/Actions/VirtualMedia.InsertMedia', { Image: signed }))).status).to.equal(204);
    expect((await rf('GET', '/redfish/v1/Managers/BMC/VirtualMedia/Cd')).body.Image).to.equal(signed);
    for (const who of [VIEWER, OPERATOR_AUTH]) {
      const r = await rf('GET', '/redfish/v1/Systems/1/VirtualMedia/Cd', undefined, { authorization: who });
      expect(r.body).to.include({ Image: ISO, ImageName: 'installer.iso' });
      expect(JSON.stringify(r.body)).to.not.include('tok3n');
    }
  });
});

describe('Redfish resources: managers', function () {
  let t: TestAgent;
  let rf: ReturnType<typeof client>;

  before(async () => {
    t = await startTestAgent({ ipmi: false });
    rf = client(t);
  });
  after(async () => t.close());

  it('serves Manager BMC', async () => {
    const c = await rf('GET', '/redfish/v1/Managers');
    expect(c.body.Members).to.deep.equal([{ '@odata.id': '/redfish/v1/Managers/BMC' }]);
    const before = Math.floor(Date.now() / 1000) * 1000; // DateTime has whole seconds
    const r = await rf('GET', '/redfish/v1/Managers/BMC');
    const after = Date.now();
    expect(r.status).to.equal(200);
    const b = r.body;
    expect(b).to.include({ Id: 'BMC', ManagerType: 'BMC' });
    expect(b.UUID).to.match(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    expect(b.FirmwareVersion).to.equal(pkg.version);
    expect(b.DateTime).to.match(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$/);
    expect(String(b.DateTime).endsWith(String(b.DateTimeLocalOffset))).to.equal(true);
    // the service's clock, read while the request ran: between the instants before and after it
    expect(Date.parse(String(b.DateTime)), 'DateTime read during the request').to.be.within(before, after);
    expect(b.Status).to.deep.equal({ State: 'Enabled', Health: 'OK' });
    expect(b.Links).to.deep.include({
      ManagerForServers: [{ '@odata.id': '/redfish/v1/Systems/1' }],
      ManagerForChassis: [{ '@odata.id': '/redfish/v1/Chassis/1' }],
    });
    expect(b.VirtualMedia).to.deep.equal({ '@odata.id': '/redfish/v1/Managers/BMC/VirtualMedia' });
    expect(b.NetworkProtocol).to.deep.equal({ '@odata.id': '/redfish/v1/Managers/BMC/NetworkProtocol' });
    const reset = (b.Actions as Record<string, Record<string, unknown>>)['#Manager.Reset']!;
    expect(reset.target).to.equal('/redfish/v1/Managers/BMC/Actions/Manager.Reset');
    expect(reset['@Redfish.ActionInfo']).to.equal('/redfish/v1/Managers/BMC/ResetActionInfo');
  });

  it('stays readable during a backend outage, with degraded health', async () => {
    const before = await rf('GET', '/redfish/v1/Managers/BMC');
    t.sim.setAvailable(false);
    try {
      const r = await rf('GET', '/redfish/v1/Managers/BMC');
      expect(r.status).to.equal(200);
      expect(r.body.Status).to.deep.equal({ State: 'Enabled', Health: 'Warning' });
      expect(r.body.UUID).to.equal(before.body.UUID);
      expect((await rf('GET', '/redfish/v1/Managers/BMC/NetworkProtocol')).status).to.equal(200);
      expect((await rf('GET', '/redfish/v1/Systems/1')).status).to.equal(503);
    } finally {
      t.sim.setAvailable(true);
    }
    expect((await rf('GET', '/redfish/v1/Managers/BMC')).body.Status).to.deep.equal({ State: 'Enabled', Health: 'OK' });
  });

  it('Manager.Reset accepts GracefulRestart/ForceRestart and rejects anything else', async () => {
    const act = '/redfish/v1/Managers/BMC/Actions/Manager.Reset';
    expect((await rf('POST', act, { ResetType: 'GracefulRestart' })).status).to.equal(204);
    expect((await rf('POST', act, { ResetType: 'ForceRestart' })).status).to.equal(204);
    expectError(await rf('POST', act, { ResetType: 'On' }), 400, 'ActionParameterValueNotInList');
    expectError(await rf('POST', act, {}), 400, 'ActionParameterMissing');
    const info = await rf('GET', '/redfish/v1/Managers/BMC/ResetActionInfo');
    expect((info.body.Parameters as { AllowableValues: string[] }[])[0]!.AllowableValues).to.deep.equal(['GracefulRestart', 'ForceRestart']);
    // the machine is untouched by a BMC reset
    expect(await t.sim.getPowerState()).to.equal('Off');
    expect((await rf('GET', '/redfish/v1/Managers/BMC')).status).to.equal(200);
  });

  it('NetworkProtocol reports the port this service listens on', async () => {
    const r = await rf('GET', '/redfish/v1/Managers/BMC/NetworkProtocol');
    expect(r.status).to.equal(200);
    expect(r.body.HTTP).to.deep.equal({ ProtocolEnabled: true, Port: t.redfishPort });
    expect(r.body.HTTPS).to.deep.include({ ProtocolEnabled: false });
    expect(r.body.IPMI).to.deep.equal({ ProtocolEnabled: false, Port: null }); // this agent runs without IPMI
  });

  it('NetworkProtocol reports the IPMI port the agent gives it', async () => {
    const s = await startTestAgent({ ipmi: false, redfish: { port: 0, ipmiPort: 16230 } });
    try {
      const r = await fetch(`${s.redfishUrl}/redfish/v1/Managers/BMC/NetworkProtocol`, { headers: { authorization: BASIC } });
      expect(((await r.json()) as Record<string, unknown>).IPMI).to.deep.equal({ ProtocolEnabled: true, Port: 16230 });
    } finally {
      await s.close();
    }
  });

  it('NetworkProtocol over TLS reports HTTPS on the service port', async function () {
    this.timeout(20_000);
    const dir = mkdtempSync(join(tmpdir(), 'rf-np-'));
    try {
      execFileSync('openssl', [
        'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
        '-subj', '/CN=127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
      ], { stdio: 'ignore' });
      const tls = { cert: readFileSync(join(dir, 'cert.pem')), key: readFileSync(join(dir, 'key.pem')) };
      const s = await startTestAgent({ ipmi: false, redfish: { port: 0, tls } });
      try {
        const body = await new Promise<string>((resolve, reject) => {
          https
            .get(`https://127.0.0.1:${s.redfishPort}/redfish/v1/Managers/BMC/NetworkProtocol`, { headers: { authorization: BASIC }, rejectUnauthorized: false }, (res) => {
              let text = '';
              res.on('data', (c: Buffer) => (text += c.toString()));
              res.on('end', () => resolve(text));
            })
            .on('error', reject);
        });
        const np = JSON.parse(body) as Record<string, unknown>;
        expect(np.HTTPS).to.deep.equal({ ProtocolEnabled: true, Port: s.redfishPort, Certificates: { '@odata.id': '/redfish/v1/Managers/BMC/NetworkProtocol/HTTPS/Certificates' } });
        expect(np.HTTP).to.deep.include({ ProtocolEnabled: false });
      } finally {
        await s.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('PATCH names the read-only or unknown property', async () => {
    expectError(await rf('PATCH', '/redfish/v1/Managers/BMC', { DateTime: '2020-01-01T00:00:00+00:00' }), 400, 'PropertyNotWritable');
    expectError(await rf('PATCH', '/redfish/v1/Managers/BMC', { Nope: 1 }), 400, 'PropertyUnknown');
  });
});

describe('Redfish resources: session-based client flow (bmclib/gofish style)', function () {
  let t: TestAgent;

  before(async () => {
    t = await startTestAgent({ ipmi: false });
  });
  after(async () => t.close());

  it('logs in, checks its session before each call, cycles power, sets UEFI PXE once, logs out', async () => {
    const base = t.redfishUrl;
    const login = await fetch(`${base}/redfish/v1/SessionService/Sessions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ UserName: 'admin', Password: 'password' }),
    });
    expect(login.status).to.equal(201);
    const token = login.headers.get('x-auth-token')!;
    const location = login.headers.get('location')!;
    expect(token).to.be.a('string').with.length.greaterThan(10);
    const sessionPath = location.startsWith('http') ? new URL(location).pathname : location;
    const auth = { 'x-auth-token': token };
    const alive = async () => expect((await fetch(base + sessionPath, { headers: auth })).status).to.equal(200);

    await alive();
    const cycle = await fetch(`${base}${RESET}`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ ResetType: 'PowerCycle' }),
    });
    expect(cycle.status).to.equal(204);
    expect(await t.sim.getPowerState()).to.equal('On');
    expect(t.sim.bootHistory).to.have.length(1);

    await alive();
    const patch = await fetch(base + SYS, {
      method: 'PATCH',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ Boot: { BootSourceOverrideTarget: 'Pxe', BootSourceOverrideEnabled: 'Once', BootSourceOverrideMode: 'UEFI' } }),
    });
    expect(patch.status).to.equal(200);
    expect(await t.sim.getBootOverride()).to.deep.equal({ target: 'pxe', enabled: 'once', mode: 'UEFI' });

    await alive();
    const restart = await fetch(`${base}${RESET}`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ ResetType: 'PowerCycle' }),
    });
    expect(restart.status).to.equal(204);
    expect(t.sim.bootHistory.at(-1)).to.include({ target: 'pxe', mode: 'UEFI' });

    await alive();
    const logout = await fetch(base + sessionPath, { method: 'DELETE', headers: auth });
    expect(logout.status).to.equal(204);
    expect((await fetch(base + SYS, { headers: auth })).status).to.equal(401);
  });
});
