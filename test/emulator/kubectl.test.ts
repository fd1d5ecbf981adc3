import { execFile, spawnSync } from 'node:child_process';
import { expect } from 'chai';
import type { ApiServerEmulator } from './index.js';
import { emulatorPerTest } from './helpers.js';
import { requireClient } from '../helpers/clients.js';

const HAVE_KUBECTL = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' }).status === 0;

function vmYaml(runStrategy: string, label: string): string {
  return `apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata:
  name: applied
  namespace: default
  labels: {tier: ${label}}
spec:
  runStrategy: ${runStrategy}
  template:
    spec:
      domain: {devices: {interfaces: [{name: default, masquerade: {}}]}}
      networks: [{name: default, pod: {}}]
`;
}

describe('apiserver emulator: kubectl @e2e', function () {
  // only stops a hung test (kubectl and agent starts: seconds each, more on a loaded core); nothing is timed
  this.timeout(60_000);
  let emu: ApiServerEmulator;
  // kubectl (client-go) sends no bearer token over plain http, hence allowAnonymous
  const kubectl = (args: string[], stdin?: string): Promise<{ code: number; out: string }> =>
    new Promise((resolve) => {
      const child = execFile('kubectl', ['--kubeconfig', emu.kubeconfigPath, ...args], { encoding: 'utf8', timeout: 50_000 }, (err, stdout, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: stdout + stderr }),
      );
      if (stdin !== undefined) child.stdin?.end(stdin);
    });

  before(function () {
    requireClient(this, HAVE_KUBECTL, 'kubectl');
  });
  emulatorPerTest({ allowAnonymous: true, vmiPhaseDelayMs: 5 }, (e) => {
    emu = e;
  });

  it('kubectl apply/get/label/delete work through discovery, short names and strategic merge patches', async () => {
    const created = await kubectl(['apply', '--validate=false', '-f', '-'], vmYaml('Always', 'one'));
    expect(created.code, created.out).to.equal(0);
    expect(created.out).to.contain('virtualmachine.kubevirt.io/applied created');
    await emu.waitFor(() => (emu.get('kubevirt.io/v1', 'VirtualMachine', 'default', 'applied')?.status as { printableStatus?: string } | undefined)?.printableStatus === 'Running');
    const printed = await kubectl(['get', 'vm', 'applied', '-o', 'jsonpath={.status.printableStatus}']);
    expect(printed.out).to.equal('Running');
    const changed = await kubectl(['apply', '--validate=false', '-f', '-'], vmYaml('Halted', 'two'));
    expect(changed.out).to.contain('configured');
    const vm = emu.get('kubevirt.io/v1', 'VirtualMachine', 'default', 'applied')!;
    expect(vm.metadata.labels).to.deep.equal({ tier: 'two' });
    expect(vm.metadata.generation).to.equal(2);
    expect(vm.metadata.annotations?.['kubectl.kubernetes.io/last-applied-configuration']).to.contain('Halted');
    await emu.waitFor(() => !emu.get('kubevirt.io/v1', 'VirtualMachineInstance', 'default', 'applied'));
    const names = await kubectl(['get', 'ns', '-o', 'name']);
    expect(names.out.split('\n').filter(Boolean)).to.deep.equal(['namespace/default', 'namespace/kube-public', 'namespace/kube-system']);
    expect((await kubectl(['delete', 'vm', 'applied'])).code).to.equal(0);
    expect(emu.get('kubevirt.io/v1', 'VirtualMachine', 'default', 'applied')).to.equal(undefined);
    const missing = await kubectl(['get', 'cm', 'nope']);
    expect(missing.code).to.not.equal(0);
    expect(missing.out).to.contain('configmaps "nope" not found');
  });
});
