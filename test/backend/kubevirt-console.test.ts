/**
 * The KubeVirt serial console bridge against the apiserver emulator's console websocket
 * (test/emulator/console.ts): the path and subprotocol, bytes both ways, re-opening on a new VMI
 * (reset) without the viewer doing anything, the VM off, RBAC, and SOL end to end.
 */
import { expect } from 'chai';
import type { KubeVirtMachine } from '../../src/backend/kubevirt/index.js';
import type { ConsoleEvent, ConsoleStream } from '../../src/backend/types.js';
import type { ApiServerEmulator } from '../emulator/index.js';
import { startTestAgent } from '../helpers/agent.js';
import { SolClient } from '../ipmi/sol-client.js';
import { NS, VM_NAME, closeAll, newMachine, startEmulator, until, vmFixture, vmiOf, waitPower } from './kubevirt-fixtures.js';

const CONSOLE_PATH = `/apis/subresources.kubevirt.io/v1/namespaces/${NS}/virtualmachineinstances/${VM_NAME}/console`;

function collect(s: ConsoleStream): { text: () => string; states: string[] } {
  const chunks: Buffer[] = [];
  const states: string[] = [];
  s.on((e: ConsoleEvent) => {
    if (e.type === 'data') chunks.push(e.data);
    if (e.type === 'state') states.push(e.state);
  });
  return { text: () => Buffer.concat(chunks).toString('latin1'), states };
}

describe('KubeVirt serial console bridge', function () {
  this.timeout(30_000);
  let emu: ApiServerEmulator;
  let m: KubeVirtMachine;

  beforeEach(async () => {
    emu = await startEmulator();
    emu.create(vmFixture({ runStrategy: 'Halted' }));
    m = await newMachine(emu);
  });
  afterEach(() => closeAll(emu));

  it('opens the console subresource with plain.kubevirt.io once a viewer is attached and the VMI runs; bytes flow both ways', async () => {
    const s = m.openConsole();
    const got = collect(s);
    expect(s.state).to.equal('offline');
    expect(s.write(Buffer.from('lost'))).to.equal(0); // the VM is off: nothing taken
    expect(emu.serialConsoles.connections).to.have.length(0);
    await m.power('on');
    await waitPower(m, 'On');
    const conn = await until(() => emu.serialConsoles.current(NS, VM_NAME), 'console connection');
    expect(conn.path).to.equal(CONSOLE_PATH);
    expect(conn.offered).to.deep.equal(['plain.kubevirt.io']);
    expect(conn.protocol).to.equal('plain.kubevirt.io');
    expect(conn.vmiUid).to.equal(vmiOf(emu)!.metadata!.uid);
    const audit = emu.audit.find((a) => a.subresource === 'console');
    expect(audit).to.include({ verb: 'get', group: 'subresources.kubevirt.io', resource: 'virtualmachineinstances', name: VM_NAME, code: 101 });
    await until(() => s.state === 'connected', 'connected');
    emu.serialConsoles.write(NS, VM_NAME, 'Booting...\r\nlogin: ');
    await until(() => got.text().includes('login: '), 'guest output');
    expect(s.write(Buffer.from('root\r'))).to.equal(5);
    await until(() => emu.serialConsoles.received(NS, VM_NAME).toString() === 'root\r', 'guest input');
    s.close();
    await until(() => !conn.open, 'closed with the last viewer');
  });

  it('re-opens on the new VMI after a reset, so the viewer sees the next boot without doing anything', async () => {
    await m.power('on');
    await waitPower(m, 'On');
    const s = m.openConsole();
    const got = collect(s);
    const first = await until(() => emu.serialConsoles.current(NS, VM_NAME), 'first connection');
    await until(() => s.state === 'connected', 'connected');
    emu.serialConsoles.write(NS, VM_NAME, 'first boot\r\n');
    await until(() => got.text().includes('first boot'), 'first output');
    const uid1 = vmiOf(emu)!.metadata!.uid;
    await m.power('forceRestart');
    const second = await until(() => {
      const c = emu.serialConsoles.current(NS, VM_NAME);
      return c && c.vmiUid !== uid1 ? c : undefined;
    }, 'connection to the new VMI', 10_000);
    expect(first.open).to.equal(false);
    expect(second.vmiUid).to.equal(vmiOf(emu)!.metadata!.uid);
    expect(second.path).to.equal(CONSOLE_PATH);
    expect(second.protocol).to.equal('plain.kubevirt.io');
    await until(() => s.state === 'connected', 'connected again');
    emu.serialConsoles.write(NS, VM_NAME, 'second boot\r\n');
    await until(() => got.text().includes('second boot'), 'output of the new VMI');
    expect(got.states).to.include('offline');
    // powered off: the bridge goes offline and the server-side stream ends
    await m.power('forceOff');
    await waitPower(m, 'Off');
    await until(() => s.state === 'offline' && !second.open, 'offline');
    expect(s.write(Buffer.from('x'))).to.equal(0);
    s.close();
  });

  it('a connection that drops while the VMI runs is re-opened (another console client took it over)', async () => {
    await m.power('on');
    await waitPower(m, 'On');
    const s = m.openConsole();
    const first = await until(() => emu.serialConsoles.current(NS, VM_NAME), 'first connection');
    // what virt-handler does when a second client connects: the first stream ends
    first.ws.close(1000);
    const again = await until(() => {
      const c = emu.serialConsoles.current(NS, VM_NAME);
      return c && c !== first ? c : undefined;
    }, 're-opened connection', 10_000);
    expect(again.vmiUid).to.equal(first.vmiUid);
    s.close();
  });

  it('a viewer that holds stops the bridge reading the websocket; output resumes when it releases', async () => {
    await m.power('on');
    await waitPower(m, 'On');
    const s = m.openConsole();
    const got = collect(s);
    await until(() => s.state === 'connected', 'connected');
    const conn = emu.serialConsoles.current(NS, VM_NAME)!;
    s.hold(true);
    emu.serialConsoles.write(NS, VM_NAME, 'held back\r\n');
    // the bytes have left the server; held, the bridge does not pass them on
    await until(() => conn.ws.bufferedAmount === 0, 'sent by the server');
    await until(async () => {
      await new Promise((r) => setImmediate(r));
      return true;
    }, 'a turn of the event loop');
    expect(got.text()).to.equal('');
    s.hold(false);
    await until(() => got.text() === 'held back\r\n', 'output after release');
    s.close();
  });

  it('RBAC: the agent needs get on virtualmachineinstances/console for its VMI', async () => {
    await m.power('on');
    await waitPower(m, 'On');
    const role = (name: string, resources: string[]) => ({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'Role',
      metadata: { name, namespace: NS },
      rules: [
        { apiGroups: ['kubevirt.io'], resources: ['virtualmachines', 'virtualmachineinstances'], verbs: ['get', 'list', 'watch'] },
        { apiGroups: ['subresources.kubevirt.io'], resources, resourceNames: [VM_NAME], verbs: ['get'] },
      ],
    });
    const bind = (name: string, user: string) => ({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name, namespace: NS },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name },
      subjects: [{ kind: 'User', name: user, apiGroup: 'rbac.authorization.k8s.io' }],
    });
    emu.create(role('with-console', ['virtualmachineinstances/console']));
    emu.create(bind('with-console', 'alice'));
    emu.create(role('without-console', ['virtualmachineinstances/vnc']));
    emu.create(bind('without-console', 'bob'));

    const denied = await newMachine(emu, { kubeConfig: emu.asUser('bob').makeKubeConfig() });
    const sd = denied.openConsole();
    await until(() => emu.audit.some((a) => a.user === 'bob' && a.subresource === 'console' && a.code === 403), 'refused console');
    expect(sd.state).to.equal('offline');
    sd.close();

    const allowed = await newMachine(emu, { kubeConfig: emu.asUser('alice').makeKubeConfig() });
    const sa = allowed.openConsole();
    await until(() => sa.state === 'connected', 'console with the grant');
    expect(emu.audit.some((a) => a.user === 'alice' && a.subresource === 'console' && a.code === 101)).to.equal(true);
    sa.close();
  });

  it('SOL end to end: ipmi activation bridges to the VMI console', async () => {
    await m.power('on');
    await waitPower(m, 'On');
    const t = await startTestAgent({ machine: m, redfish: false });
    const c = new SolClient({ port: t.ipmiPort });
    try {
      await c.open();
      expect((await c.activate()).cc).to.equal(0);
      await until(() => emu.serialConsoles.current(NS, VM_NAME), 'bridge opened by the activation');
      emu.serialConsoles.write(NS, VM_NAME, 'kubevirt login: ');
      await c.waitFor(() => c.text().includes('kubevirt login: '));
      await c.send(Buffer.from('admin\r'));
      await until(() => emu.serialConsoles.received(NS, VM_NAME).toString().includes('admin\r'), 'typed line reached the guest');
      expect((await c.deactivate()).cc).to.equal(0);
      await until(() => !emu.serialConsoles.current(NS, VM_NAME), 'bridge closed with the activation');
    } finally {
      c.close();
      await t.close(); // closes m too; closeAll closing it again is harmless
    }
  });
});
