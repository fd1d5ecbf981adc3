/**
 * The generated route table matches the spec and the contract, every operation has a handler (the
 * app refuses to build otherwise), and regenerating from the DMTF bundle changes nothing.
 */
import { AccountStore } from '../../src/accounts/store.js';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { parse as parseYaml } from 'yaml';
import { metadataReferences, odataTypes, routes } from '../../generated/redfish/routes.js';
import { SimulatedMachine } from '../../src/backend/simulator/simulator.js';
import { nullLogger } from '../../src/common/logger.js';
import { bindHandlers, createRedfishApp } from '../../src/redfish/app.js';
import { LoginLockout } from '../../src/accounts/lockout.js';
import { MemorySessionStore } from '../../src/redfish/core/sessions.js';
import { REDFISH_IDS, type OperationHandlers, type RedfishDeps } from '../../src/redfish/core/types.js';
import { modules } from '../../src/redfish/resources/index.js';
import { startRedfishServer } from '../../src/redfish/server.js';
import { ADMIN } from '../helpers/agent.js';

const run = promisify(execFile);
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The operationIds fixed by the C/D contract. */
const CONTRACT = [
  'getRedfishVersion', 'getServiceRoot', 'getMetadata', 'getOpenApiDocument', 'getOdataServiceDocument', 'listSystems', 'getSystem',
  'patchSystem', 'resetSystem', 'getSystemResetActionInfo', 'listSystemEthernetInterfaces', 'getSystemEthernetInterface',
  'listSystemVirtualMedia', 'getSystemVirtualMedia', 'patchSystemVirtualMedia', 'insertSystemVirtualMedia', 'getSystemInsertMediaActionInfo',
  'ejectSystemVirtualMedia', 'listManagers', 'getManager', 'patchManager', 'resetManager', 'getManagerResetActionInfo',
  'getManagerNetworkProtocol', 'listManagerVirtualMedia', 'getManagerVirtualMedia', 'patchManagerVirtualMedia',
  'insertManagerVirtualMedia', 'getManagerInsertMediaActionInfo', 'ejectManagerVirtualMedia', 'listChassis', 'getChassis', 'getSessionService',
  'patchSessionService', 'listSessions', 'createSession', 'getSession', 'deleteSession', 'getAccountService',
  'patchAccountService', 'listAccounts', 'createAccount', 'getAccount', 'patchAccount', 'deleteAccount', 'listRoles', 'getRole', 'listRegistries', 'getRegistryFile', 'getMessageRegistry',
  'getTaskService', 'listTasks', 'getTask', 'getTaskMonitor', 'deleteTaskMonitor',
  // Manager network (issue 13)
  'listManagerEthernetInterfaces', 'getManagerEthernetInterface',
  // events (issue 12)
  'getEventService', 'patchEventService', 'listEventSubscriptions', 'createEventSubscription', 'getEventSubscription',
  'patchEventSubscription', 'deleteEventSubscription', 'submitTestEvent', 'getEventServiceSse',
  'listManagerLogServices', 'getManagerLogService', 'listManagerLogEntries', 'getManagerLogEntry', 'clearManagerLog',
  // inventory, certificates, update (issue 13)
  'listSystemProcessors', 'getSystemProcessor', 'listSystemMemory', 'getSystemMemory', 'listSystemStorage',
  'getSystemStorage', 'listSystemStorageControllers', 'getSystemStorageController', 'listSystemStorageVolumes',
  'createSystemStorageVolume', 'getSystemStorageVolume', 'deleteSystemStorageVolume',
  'getSystemDrive', 'listSystemSimpleStorage', 'getSystemSimpleStorage', 'getSystemSecureBoot',
  'patchSystemSecureBoot', 'getSystemBios', 'getSystemBiosSettings', 'patchSystemBiosSettings', 'getUpdateService', 'listFirmwareInventory', 'getFirmwareInventory',
  'getCertificateService', 'getCertificateLocations', 'replaceCertificate', 'generateCsr', 'getGenerateCsrActionInfo', 'listHttpsCertificates', 'getHttpsCertificate',
  'listChassisNetworkAdapters', 'getChassisNetworkAdapter',
];

function deps(): RedfishDeps {
  const now = (): Date => new Date();
  return {
    machine: new SimulatedMachine(),
    users: [ADMIN],
    accounts: new AccountStore([ADMIN]),
    sessions: new MemorySessionStore(1800, now),
    lockout: new LoginLockout(),
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
    expect(open).to.have.members(['getRedfishVersion', 'getServiceRoot', 'getMetadata', 'getOpenApiDocument', 'getOdataServiceDocument', 'createSession']);
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

  it('download-schema.sh copies a local bundle into the cache, and fails clearly on a bad folder', async () => {
    const version = `test-${process.pid}`;
    const src = mkdtempSync(join(tmpdir(), 'dsp8010-'));
    const cache = join(ROOT, '.redfish-schema', `DSP8010_${version}`);
    try {
      for (const sub of ['openapi', 'csdl', 'registries']) mkdirSync(join(src, sub));
      writeFileSync(join(src, 'openapi', 'marker.yaml'), 'x: 1\n');
      const env = { ...process.env, REDFISH_SCHEMA_DIR: src, REDFISH_SCHEMA_VERSION: version };
      const ok = await run('bash', [join(ROOT, 'hack/redfish/download-schema.sh')], { cwd: ROOT, env });
      expect(ok.stdout).to.contain(`from local folder ${src}`);
      expect(readFileSync(join(cache, 'openapi', 'marker.yaml'), 'utf8')).to.equal('x: 1\n');

      let failure: { code?: number; stderr?: string } = {};
      try {
        await run('bash', [join(ROOT, 'hack/redfish/download-schema.sh')], {
          cwd: ROOT,
          env: { ...env, REDFISH_SCHEMA_DIR: join(src, 'openapi') },
        });
      } catch (e) {
        failure = e as { code?: number; stderr?: string };
      }
      expect(failure.code).to.equal(1);
      expect(failure.stderr).to.contain('not a DSP8010 bundle');
    } finally {
      rmSync(src, { recursive: true, force: true });
      rmSync(cache, { recursive: true, force: true });
    }
  });

  it('the bundled spec is closed (every $ref resolves inside it) and generated files say not to edit them', () => {
    // Freshness itself is checked by hack/verify-generated.sh (make test runs it; ~5 s).
    const doc = JSON.parse(readFileSync(join(ROOT, 'generated/redfish/openapi.bundled.json'), 'utf8')) as {
      components: { schemas: Record<string, unknown> };
    };
    const refs = new Set<string>();
    const walk = (n: unknown): void => {
      if (Array.isArray(n)) n.forEach(walk);
      else if (n && typeof n === 'object') {
        for (const [k, v] of Object.entries(n)) {
          if (k === '$ref' && typeof v === 'string') refs.add(v);
          else walk(v);
        }
      }
    };
    walk(doc);
    expect(refs.size).to.be.greaterThan(100);
    for (const ref of refs) {
      expect(ref, ref).to.match(/^#\/components\/schemas\//);
      expect(doc.components.schemas[ref.slice('#/components/schemas/'.length)], ref).to.not.equal(undefined);
    }
    for (const f of ['routes.ts', 'schema.ts', 'registries.ts']) {
      expect(readFileSync(join(ROOT, 'generated/redfish', f), 'utf8').split('\n')[0]).to.match(/^\/\/ Code generated .* DO NOT EDIT\.$/);
    }
  });
});
