/**
 * Shared mode (issue 16), controller side: rendezvous hashing with bounded moves, per-shard port
 * allocation, and on the apiserver emulator the shard objects, fleet ConfigMaps, Services and
 * status of Shared-mode VirtualMachineBMCs, a change of K, and mode switches.
 */
import { expect } from 'chai';
import { bmcVolumeDataVolumeNames } from '../../src/kube/names.js';
import { allocatePorts, assignShard, parseFleet, shardKey, shardOfTlsSecret, shardRoleRules, SHARD_IPMI_PORT_BASE, type FleetSystem } from '../../src/controller/shard.js';
import type { VirtualMachineBMC } from '../../src/controller/api/types.js';
import type { ApiServerEmulator, KubeObject } from '../emulator/index.js';
import { condition, getDeployment, getService, getVmbmc, NS, secretObj, startEnv, vmbmcObj, vmObj, waitReady, type Env } from './fixtures.js';
import { nullLogger } from '../../src/common/logger.js';
import { startManager } from '../../src/controller/manager.js';

/** xorshift32: a seeded source of test keys, so a failure names its seed and replays */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

function bmc(name: string, extra: Partial<VirtualMachineBMC['status']> = {}): VirtualMachineBMC {
  return {
    apiVersion: 'bmc.kubevirt.io/v1beta1',
    kind: 'VirtualMachineBMC',
    metadata: { name, namespace: NS, uid: `uid-${name}` },
    spec: { virtualMachineRef: { name }, authSecretRef: { name: `${name}-s` } },
    status: extra,
  };
}

type Svc = { selector: Record<string, string>; clusterIP?: string; ports: Array<{ name: string; port: number; targetPort: number; protocol: string }> };
type Status = { mode?: string; shard?: number; ipmiPort?: number; endpoint?: string; bootOverride?: unknown };
const status = (o: KubeObject | undefined) => (o?.status ?? {}) as Status;
const fleetOf = (emu: ApiServerEmulator, k: number) => parseFleet(emu.get('v1', 'ConfigMap', NS, `virtbmc-shard-${k}`));

describe('shared mode: rendezvous hashing and port allocation', () => {
  it('K → K+1 moves only keys onto the new shard, about 1/(K+1) of them; K+1 → K moves back exactly those (6 seeds × K=1..6)', () => {
    for (const seed of [1, 7, 42, 1234, 99991, 2 ** 31 - 1]) {
      const next = rng(seed);
      const keys = Array.from({ length: 600 }, () => shardKey(`ns-${next() % 5}`, `vm-${next().toString(36)}`));
      for (let K = 1; K <= 6; K++) {
        const before = keys.map((k) => assignShard(k, K));
        const after = keys.map((k) => assignShard(k, K + 1));
        let moved = 0;
        keys.forEach((_, i) => {
          if (before[i] !== after[i]) {
            moved++;
            expect(after[i], `seed ${seed} K ${K}: a moved key goes to the new shard only`).to.equal(K);
          }
        });
        // expected 600/(K+1); allow ±50 % (binomial spread at n=600 is far below that)
        const expected = keys.length / (K + 1);
        expect(moved, `seed ${seed} K ${K}`).to.be.within(expected * 0.5, expected * 1.5);
        // going down again: exactly the keys on the removed shard move, each back where it was
        keys.forEach((_, i) => {
          if (after[i] === K) expect(before[i]).to.not.equal(K);
          else expect(after[i]).to.equal(before[i]);
        });
        // and each shard has some keys (balance)
        for (let s = 0; s <= K; s++) expect(after.filter((x) => x === s).length, `seed ${seed} K+1 ${K + 1} shard ${s}`).to.be.greaterThan(expected * 0.4);
      }
    }
  });

  it('shard certificate Secret names map back to their shard; nothing else does', () => {
    expect(shardOfTlsSecret('virtbmc-shard-0-tls')).to.equal(0);
    expect(shardOfTlsSecret('virtbmc-shard-12-cm-tls')).to.equal(12);
    for (const n of ['virtbmc-shard-0', 'virtbmc-shard-x-tls', 'a-virtbmc-tls', 'virtbmc-shard-01-tls', undefined]) expect(shardOfTlsSecret(n), String(n)).to.equal(undefined);
  });

  it('assignShard is a pure function of the key and K, and refuses K < 1', () => {
    expect(assignShard('default/a', 5)).to.equal(assignShard('default/a', 5));
    expect(assignShard('default/a', 1)).to.equal(0);
    expect(() => assignShard('default/a', 0)).to.throw(RangeError);
  });

  it('ports: kept while held, taken over from status when free, else the lowest free; IPMI off gets 0', () => {
    const got = allocatePorts([
      { vmbmc: bmc('c'), ipmi: true, currentPort: SHARD_IPMI_PORT_BASE + 1 },
      { vmbmc: bmc('a'), ipmi: true },
      { vmbmc: bmc('b'), ipmi: true, previousPort: SHARD_IPMI_PORT_BASE + 1 }, // taken by c: falls back
      { vmbmc: bmc('d'), ipmi: true, previousPort: SHARD_IPMI_PORT_BASE + 7 },
      { vmbmc: bmc('e'), ipmi: false, currentPort: SHARD_IPMI_PORT_BASE + 3 },
      { vmbmc: bmc('f'), ipmi: true, currentPort: 80 }, // outside the range: re-allocated
    ]);
    expect(Object.fromEntries(got)).to.deep.equal({
      c: SHARD_IPMI_PORT_BASE + 1,
      d: SHARD_IPMI_PORT_BASE + 7,
      e: 0,
      a: SHARD_IPMI_PORT_BASE,
      b: SHARD_IPMI_PORT_BASE + 2,
      f: SHARD_IPMI_PORT_BASE + 3,
    });
    // a full range: the last one is left out (not given a duplicate)
    const full = allocatePorts([{ vmbmc: bmc('x'), ipmi: true }, { vmbmc: bmc('y'), ipmi: true }], 10001, 10001);
    expect(Object.fromEntries(full)).to.deep.equal({ x: 10001 });
  });

  it('the shard Role names every object; no rule with names is empty', () => {
    const sys = (vm: string): FleetSystem => ({ id: `${NS}.${vm}`, namespace: NS, vm, vmbmc: vm, vmbmcUid: 'u', secretName: `${vm}-s`, ipmiPort: 10001 });
    const rules = shardRoleRules(3, [sys('b'), sys('a')], (vm) => (vm === 'a' ? ['cd'] : []));
    const named = (res: string, verb: string) => rules.find((r) => r.resources.includes(res) && r.verbs.includes(verb) && r.resourceNames)?.resourceNames;
    expect(named('virtualmachines', 'patch')).to.deep.equal(['a', 'b']);
    expect(named('secrets', 'watch')).to.deep.equal(['a-s', 'b-s']);
    expect(named('configmaps', 'watch')).to.deep.equal(['virtbmc-shard-3']);
    expect(named('configmaps', 'update')).to.deep.equal(['a-virtbmc-events', 'b-virtbmc-events']);
    expect(named('datavolumes', 'watch')).to.deep.equal(['a-vmedia-cd']);
    // the Redfish volumes' DataVolumes: the fixed names of every member VM, get and delete only
    const volumeRule = rules.find((r) => r.resourceNames?.includes('a-bmc-volume-1'));
    expect(volumeRule?.verbs).to.deep.equal(['get', 'delete']);
    expect(volumeRule?.resourceNames).to.deep.equal([...bmcVolumeDataVolumeNames('a'), ...bmcVolumeDataVolumeNames('b')]);
    // Secrets: exactly the members' auth Secrets, read (watch) and written back (get/update: virtbmc-accounts), never created, patched, deleted or unnamed
    const secretRules = rules.filter((r) => r.resources.includes('secrets'));
    expect(secretRules).to.deep.equal([{ apiGroups: [''], resources: ['secrets'], resourceNames: ['a-s', 'b-s'], verbs: ['get', 'list', 'update', 'watch'] }]);
    for (const r of rules) if (r.resourceNames) expect(r.resourceNames.length).to.be.greaterThan(0);
    // unnamed: only the shared list+watch of VMs and VMIs (shared-informer.ts), creates that cannot be named, and Events
    const unnamed = rules.filter((r) => !r.resourceNames).map((r) => `${r.resources.join(',')}:${r.verbs.join(',')}`);
    expect(unnamed).to.deep.equal(['virtualmachines,virtualmachineinstances:list,watch', 'configmaps:create', 'events:create,patch', 'datavolumes:create']);
    expect(named('virtualmachines', 'list'), 'no named VM list: the namespace watch lists').to.equal(undefined);
  });
});

describe('shared mode on the apiserver emulator', function () {
  this.timeout(20000);
  let env: Env | undefined;
  afterEach(async () => {
    await env?.close();
    env = undefined;
  });

  /** 3 Shared VMBMCs (a, b, c) and a PerVM one (p). */
  function seed(emu: ApiServerEmulator): void {
    for (const n of ['a', 'b', 'c', 'p']) {
      emu.create(vmObj(`vm-${n}`));
      emu.create(secretObj(`s-${n}`, `pw-${n}`));
    }
    for (const n of ['a', 'b', 'c']) emu.create(vmbmcObj(n, `vm-${n}`, `s-${n}`, { mode: 'Shared' }));
    emu.create(vmbmcObj('p', 'vm-p', 's-p'));
  }

  it('3 Shared VMBMCs: shard Deployments, fleet ConfigMaps and Roles, each Service on its shard pod and port, status columns; PerVM unchanged', async () => {
    env = await startEnv({ shards: 2 });
    const { emu } = env;
    seed(emu);
    for (const n of ['a', 'b', 'c', 'p']) await waitReady(emu, n);
    const used = new Set<number>();
    for (const n of ['a', 'b', 'c']) {
      const k = assignShard(`${NS}/${n}`, 2);
      const st = status(getVmbmc(emu, n));
      expect(st).to.include({ mode: 'Shared', shard: k, endpoint: `${n}-virtbmc.${NS}.svc` });
      const entry = fleetOf(emu, k)!.systems.find((s) => s.vmbmc === n)!;
      expect(entry).to.deep.include({ id: `${NS}.vm-${n}`, namespace: NS, vm: `vm-${n}`, secretName: `s-${n}`, vmbmcUid: getVmbmc(emu, n)!.metadata.uid });
      expect(st.ipmiPort).to.equal(entry.ipmiPort).and.to.be.at.least(SHARD_IPMI_PORT_BASE);
      used.add(k * 100000 + entry.ipmiPort);
      const svc = getService(emu, `${n}-virtbmc`)!.spec as Svc;
      expect(svc.selector).to.deep.equal({ 'app.kubernetes.io/name': 'virtbmc', 'bmc.kubevirt.io/instance': `virtbmc-shard-${k}` });
      // TLS by default (mode Auto): 80 and 443 reach the shard's HTTPS port (80 gets the 308)
      expect(svc.ports.map((p) => `${p.port}/${p.protocol}->${p.targetPort}`)).to.deep.equal([`623/UDP->${entry.ipmiPort}`, '80/TCP->8443', '443/TCP->8443']);
      // no agent of its own
      expect(getDeployment(emu, `${n}-virtbmc`)).to.equal(undefined);
      // the shard pod's labels match the Service's selector
      const dep = getDeployment(emu, `virtbmc-shard-${k}`)!;
      const tmpl = (dep.spec as { template: { metadata: { labels: Record<string, string> }; spec: { serviceAccountName: string; containers: Array<{ args: string[] }> } } }).template;
      for (const [key, v] of Object.entries(svc.selector)) expect(tmpl.metadata.labels[key]).to.equal(v);
      expect(tmpl.spec.serviceAccountName).to.equal(`virtbmc-shard-${k}`);
      expect(tmpl.spec.containers[0]!.args.slice(0, 2)).to.deep.equal(['--fleet-configmap', `${NS}/virtbmc-shard-${k}`]);
    }
    expect(used.size, 'ports unique per shard').to.equal(3);
    // every shard object only for shards that have systems, and the Role names exactly them
    for (const k of [0, 1]) {
      const members = ['a', 'b', 'c'].filter((n) => assignShard(`${NS}/${n}`, 2) === k);
      const cm = fleetOf(emu, k);
      if (members.length === 0) {
        expect(cm, `shard ${k} without systems has no ConfigMap`).to.equal(undefined);
        continue;
      }
      expect(cm!.systems.map((s) => s.vmbmc).sort()).to.deep.equal(members);
      const role = emu.get('rbac.authorization.k8s.io/v1', 'Role', NS, `virtbmc-shard-${k}`)!;
      const vmRule = (role.rules as Array<{ resources: string[]; resourceNames?: string[] }>).find((r) => r.resources.includes('virtualmachines'))!;
      expect(vmRule.resourceNames).to.deep.equal(members.map((n) => `vm-${n}`));
      const rb = emu.get('rbac.authorization.k8s.io/v1', 'RoleBinding', NS, `virtbmc-shard-${k}`)!;
      expect(rb.subjects).to.deep.equal([{ kind: 'ServiceAccount', name: `virtbmc-shard-${k}`, namespace: NS }]);
    }
    // PerVM: as before
    expect(status(getVmbmc(emu, 'p'))).to.deep.include({ mode: 'PerVM', endpoint: `p-virtbmc.${NS}.svc` });
    expect(status(getVmbmc(emu, 'p')).shard).to.equal(undefined);
    const pSvc = getService(emu, 'p-virtbmc')!.spec as Svc;
    expect(pSvc.ports.map((p) => `${p.port}/${p.protocol}->${p.targetPort}`)).to.deep.equal(['623/UDP->6230', '80/TCP->8443', '443/TCP->8443']);
    expect(getDeployment(emu, 'p-virtbmc')).to.not.equal(undefined);
    const pEnv = (getDeployment(emu, 'p-virtbmc')!.spec as { template: { spec: { containers: Array<{ env: Array<{ name: string; value?: string }> }> } } }).template.spec.containers[0]!.env;
    expect(pEnv.find((e) => e.name === 'VIRTBMC_OWNER_UID')?.value).to.equal(getVmbmc(emu, 'p')!.metadata.uid);
  });

  it('changing K moves only the VMBMCs the hash says, keeping their ports and status; empty shards go', async () => {
    env = await startEnv({ shards: 1 });
    const { emu } = env;
    const names = Array.from({ length: 8 }, (_, i) => `m${i}`);
    for (const n of names) {
      emu.create(vmObj(`vm-${n}`));
      emu.create(secretObj(`s-${n}`));
      emu.create(vmbmcObj(n, `vm-${n}`, `s-${n}`, { mode: 'Shared' }));
    }
    for (const n of names) await waitReady(emu, n);
    const before = new Map(names.map((n) => [n, status(getVmbmc(emu, n))]));
    for (const st of before.values()) expect(st.shard).to.equal(0);
    // the agent's bookkeeping in status survives the move
    for (const n of names) {
      const o = getVmbmc(emu, n)!;
      emu.update({ ...o, status: { ...(o.status as object), bootOverride: { target: 'Pxe', once: true } } });
    }
    // K: 1 → 3 (a new controller with --shards 3, as after a rollout)
    await env.mgr.stop();
    const mgr = await startManager({
      kc: emu.makeKubeConfig(),
      logger: nullLogger(),
      agent: { image: 'registry.example/virtbmc:test' },
      metricsBindAddress: '127.0.0.1:0',
      healthProbeBindAddress: '127.0.0.1:0',
      queue: { baseDelayMs: 10, maxDelayMs: 200 },
      informerBackoffMs: { min: 20, max: 200 },
      shards: 3,
    });
    env = { emu, mgr, close: async () => { await mgr.stop(); await emu.close(); } };
    const want = new Map(names.map((n) => [n, assignShard(`${NS}/${n}`, 3)]));
    await emu.waitFor(() => names.every((n) => status(getVmbmc(emu, n)).shard === want.get(n) && condition(getVmbmc(emu, n), 'Ready')?.status === 'True'), 10000);
    const moved = names.filter((n) => want.get(n) !== 0);
    expect(moved.length, 'some move (8 keys, K 1→3)').to.be.greaterThan(0);
    for (const n of names) {
      const st = status(getVmbmc(emu, n));
      // the port comes along (each shard starts from its own range, so a moved BMC keeps its old one)
      expect(st.ipmiPort, n).to.equal(before.get(n)!.ipmiPort);
      expect(st.bootOverride, n).to.deep.equal({ target: 'Pxe', once: true });
      const svc = getService(emu, `${n}-virtbmc`)!.spec as Svc;
      expect(svc.selector['bmc.kubevirt.io/instance']).to.equal(`virtbmc-shard-${want.get(n)}`);
      expect(svc.ports[0]!.targetPort).to.equal(st.ipmiPort);
      expect(svc.clusterIP, 'the Service stays (same cluster IP)').to.be.a('string');
    }
    for (const k of [0, 1, 2]) {
      const members = names.filter((n) => want.get(n) === k).sort();
      await emu.waitFor(() => JSON.stringify((fleetOf(emu, k)?.systems ?? []).map((s) => s.vmbmc).sort()) === JSON.stringify(members));
    }
    // K: 3 → 1 again: shards 1 and 2 are deleted, all back on 0 with their ports
    await mgr.stop();
    const mgr1 = await startManager({
      kc: emu.makeKubeConfig(),
      logger: nullLogger(),
      agent: { image: 'registry.example/virtbmc:test' },
      metricsBindAddress: '127.0.0.1:0',
      healthProbeBindAddress: '127.0.0.1:0',
      queue: { baseDelayMs: 10, maxDelayMs: 200 },
      informerBackoffMs: { min: 20, max: 200 },
      shards: 1,
    });
    env = { emu, mgr: mgr1, close: async () => { await mgr1.stop(); await emu.close(); } };
    await emu.waitFor(() => !getDeployment(emu, 'virtbmc-shard-1') && !getDeployment(emu, 'virtbmc-shard-2') && !fleetOf(emu, 1) && !fleetOf(emu, 2), 10000);
    await emu.waitFor(() => names.every((n) => status(getVmbmc(emu, n)).shard === 0 && condition(getVmbmc(emu, n), 'Ready')?.status === 'True'), 10000);
    for (const n of names) expect(status(getVmbmc(emu, n)).ipmiPort, n).to.equal(before.get(n)!.ipmiPort);
    expect(emu.get('rbac.authorization.k8s.io/v1', 'Role', NS, 'virtbmc-shard-1')).to.equal(undefined);
    expect(emu.get('v1', 'ServiceAccount', NS, 'virtbmc-shard-2')).to.equal(undefined);
  });

  it('PerVM → Shared removes the own agent and re-points the same Service; Shared → PerVM brings it back and empties the shard', async () => {
    env = await startEnv({ shards: 1 });
    const { emu } = env;
    emu.create(vmObj('vm'));
    emu.create(secretObj('s'));
    emu.create(vmbmcObj('x', 'vm', 's'));
    await waitReady(emu, 'x');
    const ip = (getService(emu, 'x-virtbmc')!.spec as Svc).clusterIP;
    const set = (mode: string | undefined) => {
      const o = getVmbmc(emu, 'x')!;
      emu.update({ ...o, spec: { ...(o.spec as object), mode } });
    };
    set('Shared');
    await emu.waitFor(() => !getDeployment(emu, 'x-virtbmc') && status(getVmbmc(emu, 'x')).mode === 'Shared' && condition(getVmbmc(emu, 'x'), 'Ready')?.status === 'True');
    expect(emu.get('v1', 'ServiceAccount', NS, 'x-virtbmc')).to.equal(undefined);
    expect(emu.get('rbac.authorization.k8s.io/v1', 'Role', NS, 'x-virtbmc')).to.equal(undefined);
    const svc = getService(emu, 'x-virtbmc')!.spec as Svc;
    expect(svc.clusterIP).to.equal(ip);
    expect(svc.selector['bmc.kubevirt.io/instance']).to.equal('virtbmc-shard-0');
    set(undefined); // back to the default, PerVM
    await emu.waitFor(() => getDeployment(emu, 'x-virtbmc') && status(getVmbmc(emu, 'x')).mode === 'PerVM' && condition(getVmbmc(emu, 'x'), 'Ready')?.status === 'True');
    await emu.waitFor(() => !getDeployment(emu, 'virtbmc-shard-0') && !fleetOf(emu, 0));
    expect(status(getVmbmc(emu, 'x')).ipmiPort).to.equal(undefined);
    expect((getService(emu, 'x-virtbmc')!.spec as Svc).selector).to.deep.equal({ 'app.kubernetes.io/name': 'virtbmc', 'bmc.kubevirt.io/instance': 'x-virtbmc' });
  });

  it('the Service selector is exact: a key added on the side is drift, and a mode switch leaves no stale key behind', async () => {
    env = await startEnv({ shards: 1 });
    const { emu } = env;
    emu.create(vmObj('vm'));
    emu.create(secretObj('s'));
    emu.create(vmbmcObj('x', 'vm', 's'));
    await waitReady(emu, 'x');
    const selector = () => (getService(emu, 'x-virtbmc')!.spec as Svc).selector;
    const perVm = { 'app.kubernetes.io/name': 'virtbmc', 'bmc.kubevirt.io/instance': 'x-virtbmc' };
    const shard0 = { 'app.kubernetes.io/name': 'virtbmc', 'bmc.kubevirt.io/instance': 'virtbmc-shard-0' };
    expect(selector()).to.deep.equal(perVm);
    // an extra key (an older release's label, a hand edit): no agent pod carries it, so the Service
    // selects nothing; a merge patch of the selector would keep it, a subset check would not see it
    const svc = getService(emu, 'x-virtbmc')!;
    emu.update({ ...svc, spec: { ...(svc.spec as object), selector: { ...perVm, 'bmc.kubevirt.io/legacy': 'yes' } } });
    await emu.waitFor(() => !('bmc.kubevirt.io/legacy' in selector()));
    expect(selector()).to.deep.equal(perVm);
    // the same key put back, then the switch to Shared: the Service ends up selecting exactly the shard pod
    const svc2 = getService(emu, 'x-virtbmc')!;
    const o = getVmbmc(emu, 'x')!;
    emu.update({ ...svc2, spec: { ...(svc2.spec as object), selector: { ...perVm, 'bmc.kubevirt.io/legacy': 'yes' } } });
    emu.update({ ...o, spec: { ...(o.spec as object), mode: 'Shared' } });
    await emu.waitFor(() => status(getVmbmc(emu, 'x')).mode === 'Shared' && condition(getVmbmc(emu, 'x'), 'Ready')?.status === 'True');
    await emu.waitFor(() => selector()['bmc.kubevirt.io/instance'] === 'virtbmc-shard-0');
    expect(selector()).to.deep.equal(shard0);
    // and the shard pod carries every key of it
    const tmpl = (getDeployment(emu, 'virtbmc-shard-0')!.spec as { template: { metadata: { labels: Record<string, string> } } }).template;
    for (const [k, v] of Object.entries(selector())) expect(tmpl.metadata.labels[k], k).to.equal(v);
  });

  it('--default-mode Shared applies to BMCs without spec.mode; spec.redfish.tls is refused in Shared mode; a missing VM leaves the shard', async () => {
    env = await startEnv({ shards: 1, defaultMode: 'Shared' });
    const { emu } = env;
    emu.create(vmObj('vm1'));
    emu.create(secretObj('s'));
    emu.create(vmbmcObj('d', 'vm1', 's'));
    emu.create(vmbmcObj('t', 'vm1', 's', { redfish: { tls: { secretRef: { name: 'tls' } } } }));
    emu.create(vmbmcObj('gone', 'vm-missing', 's'));
    await waitReady(emu, 'd');
    expect(status(getVmbmc(emu, 'd')).mode).to.equal('Shared');
    const t = await waitReady(emu, 't', 'False', 'SharedModeUnsupported');
    expect(condition(t, 'Ready')?.message).to.contain('spec.redfish.tls');
    await waitReady(emu, 'gone', 'False', 'VirtualMachineNotFound');
    expect(fleetOf(emu, 0)!.systems.map((s) => s.vmbmc)).to.deep.equal(['d']);
    // the VM appears: it joins the shard and becomes Ready
    emu.create(vmObj('vm-missing'));
    await waitReady(emu, 'gone');
    expect(fleetOf(emu, 0)!.systems.map((s) => s.vmbmc).sort()).to.deep.equal(['d', 'gone']);
  });
});
