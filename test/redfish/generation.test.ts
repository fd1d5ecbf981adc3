/**
 * The generated route table matches the spec and the contract, every operation has a handler (the
 * app refuses to build otherwise), and regenerating from the DMTF bundle changes nothing.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { parse as parseYaml } from 'yaml';
import { metadataReferences, odataTypes, routes } from '../../generated/redfish/routes.js';
import { SimulatedMachine } from '../../src/backend/simulator/simulator.js';
import { nullLogger } from '../../src/common/logger.js';
import { bindHandlers, createRedfishApp } from '../../src/redfish/app.js';
import { LoginThrottle, MemorySessionStore } from '../../src/redfish/core/sessions.js';
import { REDFISH_IDS, type OperationHandlers, type RedfishDeps } from '../../src/redfish/core/types.js';
import { modules } from '../../src/redfish/resources/index.js';
import { startRedfishServer } from '../../src/redfish/server.js';
import { ADMIN } from '../helpers/agent.js';

const run = promisify(execFile);
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The operationIds fixed by the C/D contract. */
const CONTRACT = [
  'getRedfishVersion', 'getServiceRoot', 'getMetadata', 'getOdataServiceDocument', 'listSystems', 'getSystem',
  'patchSystem', 'resetSystem', 'getSystemResetActionInfo', 'listSystemEthernetInterfaces', 'getSystemEthernetInterface',
  'listSystemVirtualMedia', 'getSystemVirtualMedia', 'patchSystemVirtualMedia', 'insertSystemVirtualMedia',
  'ejectSystemVirtualMedia', 'listManagers', 'getManager', 'patchManager', 'resetManager', 'getManagerResetActionInfo',
  'getManagerNetworkProtocol', 'listManagerVirtualMedia', 'getManagerVirtualMedia', 'patchManagerVirtualMedia',
  'insertManagerVirtualMedia', 'ejectManagerVirtualMedia', 'listChassis', 'getChassis', 'getSessionService',
  'patchSessionService', 'listSessions', 'createSession', 'getSession', 'deleteSession', 'getAccountService',
  'listAccounts', 'getAccount', 'listRoles', 'getRole', 'listRegistries', 'getRegistryFile', 'getMessageRegistry',
];

function schemaBundleAvailable(): boolean {
  return Boolean(process.env.REDFISH_SCHEMA_DIR) ||
    existsSync(join(ROOT, '.redfish-schema', 'DSP8010_2025.4', 'openapi')) ||
    existsSync(join(ROOT, '..', 'shared', 'redfish', 'DSP8010_2025.4', 'openapi'));
}

function deps(): RedfishDeps {
  const now = (): Date => new Date();
  return {
    machine: new SimulatedMachine(),
    users: [ADMIN],
    sessions: new MemorySessionStore(1800, now),
    loginGuard: new LoginThrottle(10, 60, now),
    logger: nullLogger(),
    startedAt: now(),
    serviceUuid: '00000000-0000-5000-8000-000000000000',
    ids: REDFISH_IDS,
    now,
    tls: false,
  };
}

describe('Redfish generation', () => {
  it('routes.ts lists exactly the operations of hack/redfish/spec/openapi.yaml, as the contract names them', () => {
    const spec = parseYaml(readFileSync(join(ROOT, 'hack/redfish/spec/openapi.yaml'), 'utf8')) as {
      paths: Record<string, Record<string, { operationId?: string }>>;
    };
    const fromSpec: string[] = [];
    for (const [path, item] of Object.entries(spec.paths)) {
      for (const [method, op] of Object.entries(item)) {
        if (!op?.operationId) continue;
        fromSpec.push(`${method.toUpperCase()} ${path} ${op.operationId}`);
      }
    }
    expect(routes.map((r) => `${r.method} ${r.path} ${r.operationId}`)).to.have.members(fromSpec);
    expect(routes.map((r) => r.operationId)).to.have.members(CONTRACT);
    for (const r of routes) expect(r.koaPath).to.equal(r.path.replace(/\{(\w+)\}/g, ':$1'));
  });

  it('takes privileges from the DMTF Privilege Registry and leaves only the login path and public documents open', () => {
    const by = (id: string): readonly (readonly string[])[] => routes.find((r) => r.operationId === id)!.privileges;
    expect(by('resetSystem')).to.deep.equal([['ConfigureComponents']]);
    expect(by('patchSystem')).to.deep.equal([['ConfigureComponents']]);
    expect(by('patchSessionService')).to.deep.equal([['ConfigureManager']]);
    expect(by('getSystem')).to.deep.equal([['Login']]);
    expect(by('getSession')).to.deep.include(['ConfigureSelf']);
    const open = routes.filter((r) => r.privileges.some((alt) => alt.includes('NoAuth'))).map((r) => r.operationId);
    expect(open).to.have.members(['getRedfishVersion', 'getServiceRoot', 'getMetadata', 'getOdataServiceDocument', 'createSession']);
  });

  it('emits @odata.type strings and $metadata references for the same schema versions', () => {
    expect(odataTypes.ComputerSystem).to.match(/^#ComputerSystem\.v1_\d+_\d+\.ComputerSystem$/);
    expect(odataTypes.ComputerSystemCollection).to.equal('#ComputerSystemCollection.ComputerSystemCollection');
    const namespaces = new Set(metadataReferences.flatMap((r) => r.namespaces));
    for (const t of Object.values(odataTypes)) expect(namespaces.has(t.slice(1, t.lastIndexOf('.'))), t).to.equal(true);
  });

  it('every route has a handler', () => {
    expect(() => bindHandlers(modules)).to.not.throw();
    expect(bindHandlers(modules)).to.have.length(routes.length);
  });

  it('refuses to build the app when a handler is missing, naming the operationId', async () => {
    const withoutGetSystem: OperationHandlers[] = modules.map((m) => {
      const copy = { ...m };
      delete copy.getSystem;
      return copy;
    });
    expect(() => createRedfishApp(deps(), withoutGetSystem)).to.throw(/no handler for operationId\(s\): getSystem$/);
    const machine = new SimulatedMachine();
    let failed: unknown;
    try {
      const server = await startRedfishServer(
        { address: '127.0.0.1', port: 0, machine, users: [ADMIN], logger: nullLogger() },
        { modules: withoutGetSystem },
      );
      await server.close();
    } catch (e) {
      failed = e;
    }
    expect(String(failed)).to.contain('getSystem');
    await machine.close();
  });

  it('refuses duplicate handlers too', () => {
    const twice = [...modules, { getServiceRoot: async () => undefined } as OperationHandlers];
    expect(() => createRedfishApp(deps(), twice)).to.throw(/several handlers for: getServiceRoot/);
  });

  it('generated/redfish is what the generator produces (hack/verify-generated.sh)', async function () {
    this.timeout(60_000);
    if (!schemaBundleAvailable()) this.skip();
    const { stdout } = await run('bash', [join(ROOT, 'hack/verify-generated.sh')], { cwd: ROOT });
    expect(stdout).to.contain('up to date');
  });
});
