import { ApiException, CustomObjectsApi, PatchStrategy, setHeaderOptions, type KubeConfig } from '@kubernetes/client-node';
import { expect } from 'chai';
import { existsSync } from 'node:fs';
import { startApiServer, type ApiServerEmulator, type KubeObject } from './index.js';
import { emulatorPerTest, rawRequest } from './helpers.js';

const WIDGET_CRD: KubeObject = {
  apiVersion: 'apiextensions.k8s.io/v1',
  kind: 'CustomResourceDefinition',
  metadata: { name: 'widgets.example.com' },
  spec: {
    group: 'example.com',
    names: { kind: 'Widget', plural: 'widgets', shortNames: ['wd'] },
    scope: 'Namespaced',
    versions: [
      {
        name: 'v1',
        served: true,
        storage: true,
        subresources: { status: {} },
        schema: {
          openAPIV3Schema: {
            type: 'object',
            properties: {
              spec: {
                type: 'object',
                required: ['size'],
                properties: {
                  size: { type: 'integer', minimum: 1, maximum: 10 },
                  mode: { type: 'string', enum: ['fast', 'slow'], default: 'slow' },
                  name: { type: 'string', minLength: 1, pattern: '^[a-z]+$' },
                  tags: { type: 'array', maxItems: 2, items: { type: 'string' } },
                  labels: { type: 'object', additionalProperties: { type: 'string' } },
                  opts: { type: 'object', properties: { retries: { type: 'integer', default: 3 } }, default: {} },
                  free: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
                  port: { 'x-kubernetes-int-or-string': true },
                },
              },
              status: { type: 'object', properties: { ready: { type: 'boolean' } } },
            },
          },
        },
      },
    ],
  },
};

describe('apiserver emulator: CustomResourceDefinitions', () => {
  let emu: ApiServerEmulator;
  let kc: KubeConfig;
  let co: CustomObjectsApi;
  const g = { group: 'example.com', version: 'v1', namespace: 'default', plural: 'widgets' };

  emulatorPerTest({}, (e) => {
    emu = e;
    kc = e.makeKubeConfig();
    co = kc.makeApiClient(CustomObjectsApi);
  });

  async function invalid(body: unknown): Promise<{ message: string; details: { causes: { field: string; reason: string }[] } }> {
    try {
      await co.createNamespacedCustomObject({ ...g, body });
    } catch (e) {
      expect((e as ApiException<string>).code).to.equal(422);
      return JSON.parse((e as ApiException<string>).body);
    }
    throw new Error('expected 422');
  }

  it('creating a CRD serves its resource, establishes it, and prunes/defaults/validates by its schema', async () => {
    expect((await rawRequest(kc, 'GET', '/apis/example.com/v1/namespaces/default/widgets')).status).to.equal(404);
    emu.create(WIDGET_CRD);
    await emu.waitFor(() => (emu.get('apiextensions.k8s.io/v1', 'CustomResourceDefinition', undefined, 'widgets.example.com')?.status as { conditions?: { type: string }[] } | undefined)?.conditions?.some((c) => c.type === 'Established'));

    const w = (await co.createNamespacedCustomObject({
      ...g,
      body: { apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'w' }, spec: { size: 2, unknown: 'x', free: { any: { thing: 1 } }, port: 'http', labels: { a: 'b' } }, extra: 1 },
    })) as KubeObject;
    expect(w.spec).to.deep.equal({ size: 2, mode: 'slow', free: { any: { thing: 1 } }, port: 'http', labels: { a: 'b' }, opts: { retries: 3 } });
    expect(w).to.not.have.property('extra');

    const bad = await invalid({ apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'bad' }, spec: { size: 20, mode: 'turbo', name: 'A1', tags: ['a', 'b', 'c'], labels: { n: 1 } } });
    expect(bad.message).to.match(/^Widget\.example\.com "bad" is invalid: \[/);
    expect(bad.message).to.contain('spec.mode: Unsupported value: "turbo": supported values: "fast", "slow"');
    expect(bad.message).to.contain('spec.size: Invalid value: 20: spec.size in body should be less than or equal to 10');
    expect(bad.message).to.contain("spec.name: Invalid value: \"A1\": spec.name in body should match '^[a-z]+$'");
    expect(bad.details.causes.map((c) => c.field)).to.include.members(['spec.mode', 'spec.size', 'spec.name', 'spec.tags', 'spec.labels.n']);

    const missing = await invalid({ apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'm' }, spec: {} });
    expect(missing.message).to.equal('Widget.example.com "m" is invalid: spec.size: Required value');
    const wrongType = await invalid({ apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 't' }, spec: { size: 'big' } });
    expect(wrongType.message).to.contain('spec.size in body must be of type integer: "string"');

    // patches are validated too, and the status subresource works for CRD-served types
    try {
      await co.patchNamespacedCustomObject({ ...g, name: 'w', body: { spec: { size: 0 } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
      expect.fail('expected 422');
    } catch (e) {
      expect((e as ApiException<string>).code).to.equal(422);
    }
    const st = (await co.patchNamespacedCustomObjectStatus({ ...g, name: 'w', body: { status: { ready: true, junk: 1 } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch))) as KubeObject;
    expect(st.status).to.deep.equal({ ready: true });

    // deleting the CRD stops serving the resource and removes its objects
    emu.delete('apiextensions.k8s.io/v1', 'CustomResourceDefinition', undefined, 'widgets.example.com');
    expect((await rawRequest(kc, 'GET', '/apis/example.com/v1/namespaces/default/widgets')).status).to.equal(404);
  });

  it('crdFiles: the project CRD attaches its schema to the built-in VirtualMachineBMC type', async function () {
    const file = 'config/crd/bases/bmc.kubevirt.io_virtualmachinebmcs.yaml';
    expect(existsSync(file), file).to.equal(true);
    const withCrd = await startApiServer({ crdFiles: [file] });
    try {
      const c = withCrd.makeKubeConfig().makeApiClient(CustomObjectsApi);
      try {
        await c.createNamespacedCustomObject({
          group: 'bmc.kubevirt.io', version: 'v1beta1', namespace: 'default', plural: 'virtualmachinebmcs',
          body: { apiVersion: 'bmc.kubevirt.io/v1beta1', kind: 'VirtualMachineBMC', metadata: { name: 'b' }, spec: {} },
        });
        expect.fail('expected 422');
      } catch (e) {
        expect((e as ApiException<string>).code).to.equal(422);
        expect(JSON.parse((e as ApiException<string>).body).message).to.contain('spec.virtualMachineRef: Required value');
      }
    } finally {
      await withCrd.close();
    }
  });
});
