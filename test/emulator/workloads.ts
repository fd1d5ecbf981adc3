/** Tiny stand-ins for kube-controller-manager: Deployments become available, Services get IPs. */
import type { Clock } from './clock.js';
import { invalid } from './status.js';
import type { Store } from './store.js';
import type { KubeObject } from './types.js';

interface DeploymentSpec {
  replicas?: number;
}

export function installWorkloads(store: Store, clock: Clock, delayMs: number): void {
  const reg = store.registry;
  const deployments = reg.mustByKind('apps/v1', 'Deployment');
  const services = reg.mustByKind('v1', 'Service');
  const namespaces = reg.mustByKind('v1', 'Namespace');
  let ipSeq = 10;
  let lbSeq = 10;
  let nodePortSeq = 30000;

  store.addDefaulter(namespaces, (obj, old) => {
    if (!old && !obj.metadata.deletionTimestamp) obj.status = { phase: 'Active' };
  });

  store.addDefaulter(services, (obj, old) => {
    const spec = ((obj.spec as Record<string, unknown> | undefined) ?? {}) as Record<string, unknown>;
    obj.spec = spec;
    if (!spec.type) spec.type = 'ClusterIP';
    const oldSpec = (old?.spec ?? {}) as Record<string, unknown>;
    if (spec.clusterIP === undefined || spec.clusterIP === '') {
      if (oldSpec.clusterIP) spec.clusterIP = oldSpec.clusterIP;
      else {
        const n = ipSeq++;
        spec.clusterIP = `10.96.${(n >> 8) & 255}.${n & 255}`;
      }
    }
    if (spec.clusterIP !== 'None' && !spec.clusterIPs) spec.clusterIPs = [spec.clusterIP];
    if (spec.type === 'NodePort' || spec.type === 'LoadBalancer') {
      const ports = (spec.ports as Record<string, unknown>[] | undefined) ?? [];
      for (const p of ports) if (p.nodePort === undefined) p.nodePort = nodePortSeq++;
    }
    if (!old) obj.status = { loadBalancer: {} };
  });

  // kubernetes pkg/apis/apps/validation/validation.go ValidateDeploymentStrategy
  store.addValidator(deployments, (obj) => {
    const strategy = (obj.spec as { strategy?: { type?: string; rollingUpdate?: unknown } } | undefined)?.strategy;
    if (strategy?.type === 'Recreate' && strategy.rollingUpdate !== undefined && strategy.rollingUpdate !== null) {
      throw invalid('Deployment', 'apps', obj.metadata.name ?? '', [
        { field: 'spec.strategy.rollingUpdate', message: "Forbidden: may not be specified when strategy `type` is 'Recreate'", reason: 'FieldValueForbidden' },
      ]);
    }
  });

  const settleDeployment = (ns: string, name: string, generation: number): void => {
    const d = store.get(deployments, ns, name);
    if (!d || d.metadata.generation !== generation) return;
    const want = (d.spec as DeploymentSpec | undefined)?.replicas ?? 1;
    const ts = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
    d.status = {
      observedGeneration: generation,
      replicas: want,
      updatedReplicas: want,
      readyReplicas: want,
      availableReplicas: want,
      conditions: [
        { type: 'Available', status: 'True', reason: 'MinimumReplicasAvailable', message: 'Deployment has minimum availability.', lastUpdateTime: ts, lastTransitionTime: ts },
        { type: 'Progressing', status: 'True', reason: 'NewReplicaSetAvailable', message: `ReplicaSet "${name}" has successfully progressed.`, lastUpdateTime: ts, lastTransitionTime: ts },
      ],
    };
    store.update(deployments, d, { force: true });
  };

  const ingress = (ns: string, name: string): void => {
    const s = store.get(services, ns, name);
    if (!s || (s.spec as { type?: string }).type !== 'LoadBalancer') return;
    const st = (s.status ?? {}) as { loadBalancer?: { ingress?: unknown[] } };
    if (st.loadBalancer?.ingress?.length) return;
    const n = lbSeq++;
    s.status = { loadBalancer: { ingress: [{ ip: `192.0.2.${n & 255}`, ipMode: 'VIP' }] } };
    store.update(services, s, { force: true });
  };

  store.onEvent((ev) => {
    const o: KubeObject = ev.obj;
    const ns = o.metadata.namespace ?? '';
    const name = o.metadata.name ?? '';
    if (ev.t === deployments && ev.type !== 'DELETED') {
      const gen = o.metadata.generation ?? 1;
      const observed = (o.status as { observedGeneration?: number } | undefined)?.observedGeneration;
      if (observed !== gen) {
        const want = (o.spec as DeploymentSpec | undefined)?.replicas ?? 1;
        clock.after(want === 0 ? 0 : delayMs, () => settleDeployment(ns, name, gen));
      }
    }
    if (ev.t === services && ev.type !== 'DELETED' && (o.spec as { type?: string } | undefined)?.type === 'LoadBalancer') {
      const st = (o.status ?? {}) as { loadBalancer?: { ingress?: unknown[] } };
      if (!st.loadBalancer?.ingress?.length) clock.after(delayMs, () => ingress(ns, name));
    }
  });
}
