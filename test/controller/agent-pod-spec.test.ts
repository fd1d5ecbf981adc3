/**
 * One builder for the agent pod (src/controller/agent-pod.ts): the per-VM Deployment and the shard
 * Deployment differ only where they are meant to (identity, command line, environment, ports,
 * resources, the per-VM extras: with TLS, which is the default, the HTTPS readiness probe and the
 * certificate mount); everything else — security contexts, probes, /tmp, the
 * Deployment strategy — is the same object.
 */
import { expect } from 'chai';
import { desiredObjects } from '../../src/controller/reconcile.js';
import { desiredShardObjects } from '../../src/controller/shard.js';
import { PER_VM_RESOURCES, SHARD_RESOURCES } from '../../src/controller/agent-pod.js';
import type { VirtualMachineBMC } from '../../src/controller/api/types.js';
import type { KubeObject } from '../../src/kube/types.js';

const b64 = (s: string) => Buffer.from(s).toString('base64');
const secret: KubeObject = { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'creds', namespace: 'ns1', uid: 'u1' }, data: { username: b64('a'), password: b64('b') } };
const vm: KubeObject = { apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachine', metadata: { name: 'vm1', namespace: 'ns1' } };
const bmc: VirtualMachineBMC = {
  apiVersion: 'bmc.kubevirt.io/v1beta1',
  kind: 'VirtualMachineBMC',
  metadata: { name: 'b', namespace: 'ns1', uid: 'uid-1' },
  spec: { virtualMachineRef: { name: 'vm1' }, authSecretRef: { name: 'creds' } },
};
type Mount = { name: string; mountPath: string };
type Container = Record<string, unknown> & {
  args: string[];
  ports: Array<{ name: string; containerPort: number }>;
  readinessProbe: { httpGet: { scheme: string } };
  volumeMounts: Mount[];
};
type Spec = {
  replicas: number;
  template: { metadata: Record<string, unknown>; spec: Record<string, unknown> & { containers: Container[]; volumes: Array<{ name: string }> } };
} & Record<string, unknown>;

describe('agent pod builder: per-VM and shard Deployments', () => {
  for (const [metricsPort, tlsMode] of [[undefined, 'Auto'], [9100, 'Auto'], [undefined, 'Disabled'], [9100, 'Disabled']] as const) {
    it(`share everything but the intended differences (metrics ${metricsPort ?? 'off'}, tls ${tlsMode})`, () => {
      const agent = { image: 'i:1', ...(metricsPort !== undefined ? { metricsPort } : {}) };
      const b: VirtualMachineBMC = { ...bmc, spec: { ...bmc.spec, redfish: { tls: { mode: tlsMode } } } };
      const perVm = JSON.parse(JSON.stringify(desiredObjects(b, vm, secret, agent).deployment.spec)) as Spec;
      // a shard with an Auto member serves HTTPS with its one certificate (controller.ts reconcileShard)
      const shardTls = tlsMode === 'Auto' ? { tlsSecret: 'virtbmc-shard-0-tls' } : {};
      const shard = JSON.parse(JSON.stringify(desiredShardObjects('ns1', 0, [], [], { ...agent, ...shardTls }).deployment.spec)) as Spec;
      const pc = perVm.template.spec.containers[0]!;
      const sc = shard.template.spec.containers[0]!;
      // the intended differences
      expect(pc.resources).to.deep.equal(PER_VM_RESOURCES);
      expect(sc.resources).to.deep.equal(SHARD_RESOURCES);
      expect(pc.args.slice(0, 2)).to.deep.equal(['ns1', 'vm1']);
      expect(sc.args.slice(0, 2)).to.deep.equal(['--fleet-configmap', 'ns1/virtbmc-shard-0']);
      expect(pc.ports.map((p) => p.name)).to.deep.equal(['ipmi', 'redfish', ...(metricsPort ? ['metrics'] : [])]);
      expect(sc.ports.map((p) => p.name)).to.deep.equal(['redfish', ...(metricsPort ? ['metrics'] : [])]);
      // the metrics flags come from the builder, the same in both
      const tail = (a: string[]) => a.slice(-4);
      if (metricsPort) expect(tail(pc.args)).to.deep.equal(tail(sc.args)).and.deep.equal(['--metrics-port', '9100', '--metrics-address', '0.0.0.0']);
      else for (const a of [pc.args, sc.args]) expect(a).to.not.include('--metrics-port');
      // TLS: the probe's scheme and the certificate mount, alike in both shapes
      if (tlsMode === 'Auto') {
        expect(pc.readinessProbe.httpGet.scheme).to.equal('HTTPS');
        expect(sc.readinessProbe.httpGet.scheme).to.equal('HTTPS');
        expect(pc.volumeMounts.map((m) => m.name)).to.deep.equal(['tmp', 'redfish-tls']);
        expect(sc.volumeMounts).to.deep.equal(pc.volumeMounts);
        expect(perVm.template.spec.volumes).to.deep.include({ name: 'redfish-tls', secret: { secretName: 'b-virtbmc-tls' } });
        expect(shard.template.spec.volumes).to.deep.include({ name: 'redfish-tls', secret: { secretName: 'virtbmc-shard-0-tls' } });
        expect(pc.ports.find((p) => p.name === 'redfish')?.containerPort).to.equal(8443);
        expect(sc.ports.find((p) => p.name === 'redfish')?.containerPort).to.equal(8443);
        const tlsArgs = (a: string[]) => a.filter((x, i) => x.startsWith('--tls-') || x.startsWith('/etc/virtbmc/tls') || x === '--https-redirect-port' || a[i - 1] === '--https-redirect-port');
        // (the per-VM agent also gets --tls-secret for ReplaceCertificate; a shard's certificate is not replaceable)
        expect(tlsArgs(sc.args)).to.deep.equal(tlsArgs(pc.args).filter((x, i, all) => x !== '--tls-secret' && all[i - 1] !== '--tls-secret'));
        expect(sc.args).to.not.include('--tls-secret');
        for (const c of [pc, sc]) c.readinessProbe.httpGet.scheme = 'HTTP';
        for (const c of [pc, sc]) c.volumeMounts = c.volumeMounts.filter((m) => m.name !== 'redfish-tls');
        for (const d of [perVm, shard]) d.template.spec.volumes = d.template.spec.volumes.filter((v) => v.name !== 'redfish-tls');
      } else {
        for (const c of [pc, sc]) expect(c.readinessProbe.httpGet.scheme).to.equal('HTTP');
        for (const c of [pc, sc]) expect(c.volumeMounts.map((m) => m.name)).to.deep.equal(['tmp']);
      }
      // the rest is identical
      for (const c of [pc, sc]) for (const k of ['args', 'env', 'ports', 'resources']) delete c[k];
      for (const s of [perVm, shard]) {
        delete (s.template.spec as Record<string, unknown>).serviceAccountName;
        delete (s as Record<string, unknown>).selector;
        s.template.metadata = {};
      }
      expect(perVm).to.deep.equal(shard);
      expect(pc.securityContext).to.deep.include({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false });
    });
  }
});
