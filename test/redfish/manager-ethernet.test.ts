/**
 * Manager EthernetInterfaces and ManagerNetworkProtocol HostName/FQDN from the agent's network
 * model, validated against the DMTF schemas, and the same facts IPMI's LAN configuration reports.
 */
import { expect } from 'chai';
import { startAgent, type Agent } from '../../src/agent/agent.js';
import { NetworkModel } from '../../src/common/network.js';
import { SimulatedMachine } from '../../src/backend/simulator/simulator.js';
import { nullLogger } from '../../src/common/logger.js';
import { buildCommandTable, commandKey } from '../../src/ipmi/commands/index.js';
import { Privilege } from '../../src/ipmi/types.js';
import { ADMIN } from '../helpers/agent.js';
import { expectConforms } from '../helpers/redfish-schema.js';
import { POD_SOURCES } from '../helpers/pod-network.js';

const AUTH = { authorization: 'Basic ' + Buffer.from(`${ADMIN.username}:${ADMIN.password}`).toString('base64') };
const FQDN = 'vmbmc-vm1.ns1.svc.cluster.local';

describe('Redfish Manager EthernetInterfaces and NetworkProtocol from the network model', function () {
  this.timeout(20_000);
  let agent: Agent;
  let base: string;
  const network = new NetworkModel({ listenAddress: '0.0.0.0', fqdn: FQDN, sources: POD_SOURCES });

  before(async () => {
    agent = await startAgent({
      machine: new SimulatedMachine({ powerOnDelayMs: 0, powerOffDelayMs: 0 }),
      users: [ADMIN],
      logger: nullLogger(),
      address: '127.0.0.1',
      network,
      ipmi: false,
      redfish: { port: 0 },
    });
    base = `http://127.0.0.1:${agent.redfish!.port}`;
  });
  after(() => agent.close());

  const get = async (path: string) => {
    const r = await fetch(base + path, { headers: AUTH });
    return { status: r.status, body: (await r.json()) as Record<string, unknown> };
  };

  it('the Manager links its EthernetInterfaces collection, which holds one member', async () => {
    const m = await get('/redfish/v1/Managers/BMC');
    expect(m.body['EthernetInterfaces']).to.deep.equal({ '@odata.id': '/redfish/v1/Managers/BMC/EthernetInterfaces' });
    const c = await get('/redfish/v1/Managers/BMC/EthernetInterfaces');
    expect(c.status).to.equal(200);
    expectConforms('EthernetInterfaceCollection_EthernetInterfaceCollection', c.body);
    expect(c.body['Members']).to.deep.equal([{ '@odata.id': '/redfish/v1/Managers/BMC/EthernetInterfaces/eth0' }]);
  });

  it('the member: MAC, IPv4 with mask/gateway/origin, IPv6 with origin, HostName, FQDN, NameServers, speed, link', async () => {
    const r = await get('/redfish/v1/Managers/BMC/EthernetInterfaces/eth0');
    expect(r.status).to.equal(200);
    expectConforms('EthernetInterface_EthernetInterface', r.body);
    const b = r.body;
    expect(b['MACAddress']).to.equal('0A:58:0A:F4:01:11');
    expect(b['IPv4Addresses']).to.deep.equal([{ Address: '10.244.1.17', SubnetMask: '255.255.255.0', AddressOrigin: 'Static', Gateway: '10.244.1.1' }]);
    expect(b['IPv6Addresses']).to.deep.equal([{ Address: 'fd00::11', PrefixLength: 64, AddressOrigin: 'Static', AddressState: 'Preferred' }]);
    expect(b['HostName']).to.equal('vmbmc-vm1-5f7d8-x2x9q');
    expect(b['FQDN']).to.equal(FQDN);
    expect(b['NameServers']).to.deep.equal(['10.96.0.10']);
    expect(b['SpeedMbps']).to.equal(10000);
    expect(b['LinkStatus']).to.equal('LinkUp');
    expect(b['InterfaceEnabled']).to.equal(true);
    expect(b['VLAN']).to.deep.equal({ VLANEnable: false });
  });

  it('another member id is 404 ResourceNotFound', async () => {
    const r = await get('/redfish/v1/Managers/BMC/EthernetInterfaces/eth1');
    expect(r.status).to.equal(404);
    expect(JSON.stringify(r.body)).to.contain('ResourceNotFound');
  });

  it('ManagerNetworkProtocol carries the same HostName and FQDN', async () => {
    const r = await get('/redfish/v1/Managers/BMC/NetworkProtocol');
    expectConforms('ManagerNetworkProtocol_ManagerNetworkProtocol', r.body);
    expect(r.body['HostName']).to.equal('vmbmc-vm1-5f7d8-x2x9q');
    expect(r.body['FQDN']).to.equal(FQDN);
  });

  it('IPMI reports the same address and MAC from the same model', async () => {
    const table = buildCommandTable({ lan: { network } });
    const spec = table.get(commandKey(0x0c, 0x02))!;
    const ask = async (param: number) =>
      (
        await spec.handler({
          req: { netFn: 0x0c, cmd: 0x02, lun: 0, data: Buffer.from([1, param, 0, 0]) },
          session: { id: 1, username: 'admin', privilege: Privilege.Administrator, maxPrivilege: Privilege.Administrator, authType: 'rmcp+', remote: 'x' },
          machine: agent.machine,
          users: [],
          logger: nullLogger(),
          channel: 1,
        })
      ).data!.toString('hex');
    const nic = (await get('/redfish/v1/Managers/BMC/EthernetInterfaces/eth0')).body;
    const v4 = (nic['IPv4Addresses'] as Array<{ Address: string }>)[0]!.Address;
    expect(await ask(3)).to.equal('11' + Buffer.from(v4.split('.').map(Number)).toString('hex'));
    expect(await ask(5)).to.equal('11' + String(nic['MACAddress']).replace(/:/g, '').toLowerCase());
  });
});
