import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import type { UserAccount } from '../../src/accounts/types.js';
import { SimulatedMachine } from '../../src/backend/simulator/simulator.js';
import { isBackendError, type Machine } from '../../src/backend/types.js';
import { nullLogger } from '../../src/common/logger.js';
import { FIRMWARE, uuidToGuidBytes } from '../../src/ipmi/commands/app.js';
import { buildFruImage } from '../../src/ipmi/commands/fru.js';
import { buildCommandTable, commandKey } from '../../src/ipmi/commands/index.js';
import { bmcState } from '../../src/ipmi/commands/state.js';
import { mcLocatorRecord } from '../../src/ipmi/commands/storage.js';
import { CC, Privilege, type CommandContext, type IpmiResponse, type SessionView } from '../../src/ipmi/types.js';

const USERS: UserAccount[] = [
  { username: 'admin', password: 'password', role: 'Administrator' },
  { username: 'operator', password: 'op-secret', role: 'Operator' },
  { username: 'viewer', password: 'viewer-pw', role: 'ReadOnly' },
];

const SESSION: SessionView = {
  id: 0x1234,
  username: 'admin',
  privilege: Privilege.Administrator,
  maxPrivilege: Privilege.Administrator,
  authType: 'rmcp+',
  cipherSuite: 3,
  remote: '127.0.0.1:40000',
};

const table = buildCommandTable();

function call(machine: Machine, netFn: number, cmd: number, data: number[] = [], session = SESSION): Promise<IpmiResponse> {
  const spec = table.get(commandKey(netFn, cmd));
  if (!spec) throw new Error(`no handler for ${netFn}/${cmd}`);
  const ctx: CommandContext = {
    req: { netFn, cmd, lun: 0, data: Buffer.from(data) },
    session,
    machine,
    users: USERS,
    logger: nullLogger(),
    channel: 1,
  };
  return Promise.resolve(spec.handler(ctx));
}

const hex = (r: IpmiResponse) => (r.data ?? Buffer.alloc(0)).toString('hex');

describe('IPMI command table', () => {
  let sim: SimulatedMachine;
  beforeEach(() => {
    sim = new SimulatedMachine({ name: 'vm1', uuid: '01234567-89ab-4def-8123-456789abcdef' });
  });
  afterEach(() => sim.close());

  describe('table', () => {
    it('leaves session management to the session layer', () => {
      for (const cmd of [0x38, 0x39, 0x3a, 0x3b, 0x3c, 0x3d, 0x54]) expect(table.has(commandKey(0x06, cmd))).to.equal(false);
    });
    it('requires OPERATOR for power and boot options, USER for status', () => {
      expect(table.get(commandKey(0x00, 0x02))!.minPrivilege).to.equal(Privilege.Operator);
      expect(table.get(commandKey(0x00, 0x08))!.minPrivilege).to.equal(Privilege.Operator);
      expect(table.get(commandKey(0x00, 0x09))!.minPrivilege).to.equal(Privilege.Operator);
      expect(table.get(commandKey(0x00, 0x01))!.minPrivilege).to.equal(Privilege.User);
      expect(table.get(commandKey(0x06, 0x01))!.minPrivilege).to.equal(Privilege.User);
    });
  });

  describe('app', () => {
    it('Get Device ID returns exactly 15 bytes with IPMI 2.0 and the CNCF IANA number', async () => {
      const r = await call(sim, 0x06, 0x01);
      expect(r.cc).to.equal(CC.OK);
      // id 20, rev 01, fw 0.01, IPMI 2.0, support 8e, IANA 53 e1 00, product 0001, aux 00 01 00 00
      expect(hex(r)).to.equal('20' + '01' + '00' + '01' + '02' + '8e' + '53e100' + '0100' + '00010000');
      expect(r.data!.length).to.equal(15);
      const iana = r.data![6]! | (r.data![7]! << 8) | (r.data![8]! << 16);
      expect(iana).to.equal(57683);
      expect((await call(sim, 0x06, 0x01, [0])).cc).to.equal(CC.REQUEST_DATA_LENGTH_INVALID);
    });

    it('reports the package version as firmware revision', () => {
      const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
      expect(`${FIRMWARE.major}.${FIRMWARE.minor}.${FIRMWARE.patch}`).to.equal(pkg.version);
    });

    it('GUIDs use the IPMI byte order (the UUID reversed)', async () => {
      expect(uuidToGuidBytes('01234567-89ab-cdef-8123-456789abcdef').toString('hex')).to.equal('efcdab8967452381efcdab8967452301');
      expect(() => uuidToGuidBytes('not-a-uuid')).to.throw();
      const sys = await call(sim, 0x06, 0x37);
      const dev = await call(sim, 0x06, 0x08);
      expect(hex(sys)).to.equal('efcdab8967452381ef4dab8967452301');
      expect(hex(dev)).to.equal(hex(sys));
    });

    it('Cold/Warm Reset are refused with D5', async () => {
      expect((await call(sim, 0x06, 0x02)).cc).to.equal(CC.NOT_SUPPORTED_IN_PRESENT_STATE);
      expect((await call(sim, 0x06, 0x03)).cc).to.equal(CC.NOT_SUPPORTED_IN_PRESENT_STATE);
    });

    it('Get Self Test Results and ACPI power state follow the machine', async () => {
      expect(hex(await call(sim, 0x06, 0x04))).to.equal('5500');
      expect(hex(await call(sim, 0x06, 0x07))).to.equal('0503');
      await sim.power('on');
      expect(hex(await call(sim, 0x06, 0x07))).to.equal('0000');
    });

    it('user 1 is the disabled null user; configured users follow with their privilege', async () => {
      const a1 = await call(sim, 0x06, 0x44, [0x01, 1]);
      expect(hex(a1)).to.equal('0483010f');
      expect(hex(await call(sim, 0x06, 0x46, [1]))).to.equal('00'.repeat(16));
      expect(hex(await call(sim, 0x06, 0x44, [0x0e, 2]))).to.equal('04430134');
      expect(hex(await call(sim, 0x06, 0x44, [0x01, 3]))).to.equal('04430133');
      expect(hex(await call(sim, 0x06, 0x44, [0x01, 4]))).to.equal('04430132');
      const name = await call(sim, 0x06, 0x46, [3]);
      expect(name.data!.length).to.equal(16);
      expect(name.data!.toString('latin1').replace(/\0+$/, '')).to.equal('operator');
      expect((await call(sim, 0x06, 0x46, [5])).cc).to.equal(CC.INVALID_DATA_FIELD);
      expect((await call(sim, 0x06, 0x44, [0x01, 0])).cc).to.equal(CC.INVALID_DATA_FIELD);
      expect((await call(sim, 0x06, 0x44, [0x02, 2])).cc).to.equal(CC.INVALID_DATA_FIELD);
      expect((await call(sim, 0x06, 0x44, [0x01])).cc).to.equal(CC.REQUEST_DATA_LENGTH_INVALID);
    });

    it('Get Channel Info / Access describe one 802.3 LAN channel', async () => {
      expect(hex(await call(sim, 0x06, 0x42, [0x0e]))).to.equal('01040181f21b000000');
      expect(hex(await call(sim, 0x06, 0x42, [0x01]))).to.equal('01040181f21b000000');
      expect((await call(sim, 0x06, 0x42, [0x07])).cc).to.equal(CC.INVALID_DATA_FIELD);
      expect(hex(await call(sim, 0x06, 0x41, [0x01, 0x80]))).to.equal('2204');
      expect(hex(await call(sim, 0x06, 0x41, [0x0e, 0x40]))).to.equal('2204');
      expect((await call(sim, 0x06, 0x41, [0x01, 0x00])).cc).to.equal(CC.INVALID_DATA_FIELD);
    });

    it('PEF: capabilities without actions or filters, configuration disabled and read-only', async () => {
      expect(hex(await call(sim, 0x04, 0x10))).to.equal('510000');
      expect(hex(await call(sim, 0x04, 0x13, [0x01, 0x00, 0x00]))).to.equal('1100');
      expect(hex(await call(sim, 0x04, 0x13, [0x81, 0x00, 0x00]))).to.equal('11');
      expect(hex(await call(sim, 0x04, 0x13, [0x08, 0x00, 0x00]))).to.equal('1100');
      expect(hex(await call(sim, 0x04, 0x13, [0x0d, 0x00, 0x01]))).to.equal('11000100');
      expect((await call(sim, 0x04, 0x13, [0x0c, 0x01, 0x00])).cc).to.equal(CC.PARAMETER_OUT_OF_RANGE);
      expect((await call(sim, 0x04, 0x13, [0x06, 0x01, 0x00])).cc).to.equal(CC.PARAMETER_OUT_OF_RANGE);
      expect((await call(sim, 0x04, 0x13, [0x40, 0x00, 0x00])).cc).to.equal(0x80);
      expect((await call(sim, 0x04, 0x12, [0x01, 0x01])).cc).to.equal(0x82);
      expect((await call(sim, 0x04, 0x12, [0x00, 0x01])).cc).to.equal(CC.OK);
      expect((await call(sim, 0x04, 0x12, [0x00, 0x01])).cc).to.equal(0x81);
      expect((await call(sim, 0x04, 0x12, [0x00, 0x00])).cc).to.equal(CC.OK);
      expect((await call(sim, 0x04, 0x13, [0x01, 0x00])).cc).to.equal(CC.REQUEST_DATA_LENGTH_INVALID);
    });

    it('Set Channel Security Keys: K_G reads as the null key, only the null key can be set; K_R answers 84h', async () => {
      const zeros = new Array<number>(20).fill(0);
      expect(hex(await call(sim, 0x06, 0x56, [0x0e, 0x00, 0x01]))).to.equal(`00${'00'.repeat(20)}`);
      expect(hex(await call(sim, 0x06, 0x56, [0x01, 0x01, 0x01, ...zeros]))).to.equal('00');
      expect((await call(sim, 0x06, 0x56, [0x01, 0x01, 0x01, ...zeros.slice(1), 0x07])).cc).to.equal(0x83);
      expect((await call(sim, 0x06, 0x56, [0x01, 0x01, 0x01, 0x00])).cc).to.equal(0x81);
      expect((await call(sim, 0x06, 0x56, [0x01, 0x01, 0x01, ...zeros, 0x00])).cc).to.equal(0x82);
      expect((await call(sim, 0x06, 0x56, [0x01, 0x02, 0x01])).cc).to.equal(CC.INVALID_DATA_FIELD);
      for (const op of [0x00, 0x01, 0x02]) expect((await call(sim, 0x06, 0x56, [0x01, op, 0x00])).cc).to.equal(0x84);
      expect((await call(sim, 0x06, 0x56, [0x01, 0x00, 0x05])).cc).to.equal(CC.INVALID_DATA_FIELD);
      expect((await call(sim, 0x06, 0x56, [0x07, 0x00, 0x01])).cc).to.equal(CC.INVALID_DATA_FIELD);
      expect((await call(sim, 0x06, 0x56, [0x01, 0x00])).cc).to.equal(CC.REQUEST_DATA_LENGTH_INVALID);
    });
  });

  describe('chassis', () => {
    it('Chassis Control maps each code onto the machine', async () => {
      expect((await call(sim, 0x00, 0x02, [1])).cc).to.equal(CC.OK);
      expect(await sim.getPowerState()).to.equal('On');
      expect(sim.bootHistory).to.have.length(1);
      expect((await call(sim, 0x00, 0x02, [3])).cc).to.equal(CC.OK);
      expect(sim.bootHistory).to.have.length(2);
      expect((await call(sim, 0x00, 0x02, [4])).cc).to.equal(CC.OK);
      expect(sim.nmiCount).to.equal(1);
      expect((await call(sim, 0x00, 0x02, [2])).cc).to.equal(CC.OK);
      expect(sim.bootHistory).to.have.length(3);
      expect((await call(sim, 0x00, 0x02, [5])).cc).to.equal(CC.OK);
      expect(await sim.getPowerState()).to.equal('Off');
      await sim.power('on');
      expect((await call(sim, 0x00, 0x02, [0])).cc).to.equal(CC.OK);
      expect(await sim.getPowerState()).to.equal('Off');
    });

    it('reset, diag and soft while off answer D5 and change nothing', async () => {
      for (const code of [3, 4, 5]) {
        expect((await call(sim, 0x00, 0x02, [code])).cc, `code ${code}`).to.equal(CC.NOT_SUPPORTED_IN_PRESENT_STATE);
      }
      expect(await sim.getPowerState()).to.equal('Off');
      expect(sim.bootHistory).to.have.length(0);
      expect(sim.nmiCount).to.equal(0);
    });

    it('rejects unknown controls with CC and bad lengths with C7', async () => {
      expect((await call(sim, 0x00, 0x02, [6])).cc).to.equal(CC.INVALID_DATA_FIELD);
      expect((await call(sim, 0x00, 0x02, [0x11])).cc).to.equal(CC.INVALID_DATA_FIELD);
      expect((await call(sim, 0x00, 0x02, [])).cc).to.equal(CC.REQUEST_DATA_LENGTH_INVALID);
      expect((await call(sim, 0x00, 0x02, [1, 0])).cc).to.equal(CC.REQUEST_DATA_LENGTH_INVALID);
      expect(await sim.getPowerState()).to.equal('Off');
    });

    it('a backend outage surfaces as an Unavailable BackendError for the server to map', async () => {
      sim.setAvailable(false);
      let err: unknown;
      try {
        await call(sim, 0x00, 0x01);
      } catch (e) {
        err = e;
      }
      expect(isBackendError(err, 'Unavailable')).to.equal(true);
      sim.setAvailable(true);
      expect((await call(sim, 0x00, 0x01)).cc).to.equal(CC.OK);
    });

    it('Get Chassis Status: power, unknown restore policy, last event via IPMI, identify', async () => {
      expect(hex(await call(sim, 0x00, 0x01))).to.equal('600040');
      await call(sim, 0x00, 0x02, [1]);
      expect(hex(await call(sim, 0x00, 0x01))).to.equal('611040');
      await call(sim, 0x00, 0x04, [0, 1]); // identify on indefinitely
      expect(hex(await call(sim, 0x00, 0x01))).to.equal('611060');
      await call(sim, 0x00, 0x04, [10]); // timed
      expect(hex(await call(sim, 0x00, 0x01))).to.equal('611050');
      await call(sim, 0x00, 0x04, [0]); // off
      expect(hex(await call(sim, 0x00, 0x01))).to.equal('611040');
      expect(hex(await call(sim, 0x00, 0x07))).to.equal('0101'); // restart cause: chassis control, channel 1
    });

    it('Get Chassis Status answers at once from powerStateNow, and through getPowerState when the backend has no state at hand', async () => {
      await sim.power('on');
      const spec = table.get(commandKey(0x00, 0x01))!;
      const ctx = (machine: Machine): CommandContext => ({ req: { netFn: 0, cmd: 1, lun: 0, data: Buffer.alloc(0) }, session: SESSION, machine, users: USERS, logger: nullLogger(), channel: 1 });
      const now = spec.handler(ctx(sim));
      expect(now).not.to.be.instanceOf(Promise);
      expect(hex(now as IpmiResponse)).to.equal('610040');
      // a backend that would have to wait (KubeVirt) says undefined: the answer comes from getPowerState
      let asked = 0;
      const waiting = Object.assign(Object.create(sim) as Machine, {
        powerStateNow: () => undefined,
        getPowerState: async () => {
          asked++;
          return 'Off' as const;
        },
      });
      const later = spec.handler(ctx(waiting));
      expect(later).to.be.instanceOf(Promise);
      expect(hex(await later)).to.equal('600040');
      expect(asked).to.equal(1);
      // an outage throws from powerStateNow as getPowerState rejects
      sim.setAvailable(false);
      expect(() => spec.handler(ctx(sim))).to.throw().that.satisfies((e: unknown) => isBackendError(e, 'Unavailable'));
    });

    it('a power-on from elsewhere clears the "via IPMI" bit once the attribution window is over', async () => {
      await call(sim, 0x00, 0x02, [1]);
      await call(sim, 0x00, 0x02, [0]);
      bmcState(sim).ipmiBootPendingUntil = 0; // pretend the window has passed
      await sim.power('on'); // e.g. Redfish
      expect(hex(await call(sim, 0x00, 0x01))).to.equal('610040');
      expect(hex(await call(sim, 0x00, 0x07))).to.equal('0001');
    });

    it('offers no power restore policy: query gives an empty mask, setting one is refused', async () => {
      expect(hex(await call(sim, 0x00, 0x06, [0x03]))).to.equal('00');
      for (const p of [0, 1, 2, 7]) expect((await call(sim, 0x00, 0x06, [p])).cc, `policy ${p}`).to.equal(CC.INVALID_DATA_FIELD);
      expect((await call(sim, 0x00, 0x06, [])).cc).to.equal(CC.REQUEST_DATA_LENGTH_INVALID);
    });

    it('Get Chassis Capabilities names the BMC for every function', async () => {
      expect(hex(await call(sim, 0x00, 0x00))).to.equal('0020202020');
    });

    it('reports PoweringOn and Paused as on', async () => {
      const slow = new SimulatedMachine({ powerOnDelayMs: 10_000 });
      await slow.power('on');
      expect(await slow.getPowerState()).to.equal('PoweringOn');
      expect((await call(slow, 0x00, 0x01)).data![0]! & 1).to.equal(1);
      await slow.close();
      await sim.power('on');
      await sim.power('pause');
      expect((await call(sim, 0x00, 0x01)).data![0]! & 1).to.equal(1);
    });
  });

  describe('system boot options', () => {
    const set = (data: number[]) => call(sim, 0x00, 0x08, data);
    const get = (param: number) => call(sim, 0x00, 0x09, [param, 0, 0]);

    it('runs the ipmitool bootdev transaction and maps flags onto the override', async () => {
      expect((await set([0x00, 0x01])).cc).to.equal(CC.OK);
      expect((await set([0x04, 0x01, 0x01])).cc).to.equal(CC.OK);
      expect((await set([0x05, 0xe0, 0x04, 0, 0, 0])).cc).to.equal(CC.OK);
      expect((await set([0x00, 0x02])).cc).to.equal(CC.OK);
      expect((await set([0x00, 0x00])).cc).to.equal(CC.OK);
      expect(await sim.getBootOverride()).to.deep.equal({ target: 'pxe', enabled: 'continuous', mode: 'UEFI' });
      expect(hex(await get(5))).to.equal('0105e004000000');
      expect(hex(await get(4))).to.equal('01040001');
      expect(hex(await get(0))).to.equal('010000');
    });

    it('answers 0x81 to a second set-in-progress', async () => {
      expect((await set([0x00, 0x01])).cc).to.equal(CC.OK);
      expect(hex(await get(0))).to.equal('010001');
      expect((await set([0x00, 0x01])).cc).to.equal(0x81);
      expect((await set([0x00, 0x00])).cc).to.equal(CC.OK);
      expect((await set([0x00, 0x01])).cc).to.equal(CC.OK);
      expect((await set([0x00, 0x03])).cc).to.equal(CC.INVALID_DATA_FIELD);
      // An abandoned transaction does not block others forever.
      bmcState(sim).setInProgressSince = Date.now() - 61_000;
      expect(hex(await get(0))).to.equal('010000');
      expect((await set([0x00, 0x01])).cc).to.equal(CC.OK);
    });

    it('stores parameter 3 and the valid/locked bit', async () => {
      expect((await set([0x03, 0x08])).cc).to.equal(CC.OK);
      expect(hex(await get(3))).to.equal('010308');
      expect((await set([0x83])).cc).to.equal(CC.OK); // mark parameter 3 invalid/locked
      expect(hex(await get(3))).to.equal('018308');
    });

    it('once override is consumed by the next boot and then reads back invalid', async () => {
      expect((await set([0x05, 0x80, 0x14, 0, 0, 0])).cc).to.equal(CC.OK);
      expect(await sim.getBootOverride()).to.deep.equal({ target: 'cd', enabled: 'once', mode: 'Legacy' });
      expect(hex(await get(5))).to.equal('01058014000000');
      await call(sim, 0x00, 0x02, [1]);
      expect(sim.bootHistory.map((h) => h.target)).to.deep.equal(['cd']);
      expect(hex(await get(5))).to.equal('01050000000000');
      await call(sim, 0x00, 0x02, [3]);
      expect(sim.bootHistory.map((h) => h.target)).to.deep.equal(['cd', 'hdd']);
    });

    it('refuses targets the machine lacks with CC and leaves the override alone', async () => {
      await set([0x05, 0xc0, 0x08, 0, 0, 0]);
      for (const dev of [0x3c, 0x10, 0x28]) {
        expect((await set([0x05, 0x80, dev, 0, 0, 0])).cc, `device 0x${dev.toString(16)}`).to.equal(CC.INVALID_DATA_FIELD);
      }
      expect(await sim.getBootOverride()).to.deep.equal({ target: 'hdd', enabled: 'continuous', mode: 'Legacy' });
      expect(hex(await get(5))).to.equal('0105c008000000');
    });

    it('answers 0x80 for unsupported parameters and C7 for bad lengths', async () => {
      expect((await get(1)).cc).to.equal(0x80);
      expect((await get(7)).cc).to.equal(0x80);
      expect((await set([0x02, 0x00])).cc).to.equal(0x80);
      expect((await set([0x05, 0x80, 0x04])).cc).to.equal(CC.REQUEST_DATA_LENGTH_INVALID);
      expect((await call(sim, 0x00, 0x09, [5])).cc).to.equal(CC.REQUEST_DATA_LENGTH_INVALID);
      expect((await call(sim, 0x00, 0x08, [])).cc).to.equal(CC.REQUEST_DATA_LENGTH_INVALID);
    });

    it('reads back a Redfish-side change', async () => {
      await set([0x05, 0x80, 0x04, 0, 0, 0]);
      await sim.setBootOverride({ target: 'biosSetup', enabled: 'continuous', mode: 'UEFI' });
      expect(hex(await get(5))).to.equal('0105e018000000');
    });
  });

  describe('storage', () => {
    it('serves the FRU image in chunks the client can reassemble', async () => {
      const image = buildFruImage(await sim.getSystemInfo());
      const info = await call(sim, 0x0a, 0x10, [0]);
      expect(info.data!.readUInt16LE(0)).to.equal(image.length);
      expect(info.data![2]).to.equal(0);
      const parts: Buffer[] = [];
      let off = 0;
      while (off < image.length) {
        const r = await call(sim, 0x0a, 0x11, [0, off & 0xff, off >> 8, 255]);
        expect(r.cc).to.equal(CC.OK);
        const n = r.data![0]!;
        expect(n).to.be.within(1, 128);
        expect(r.data!.length).to.equal(n + 1);
        parts.push(r.data!.subarray(1));
        off += n;
      }
      expect(Buffer.concat(parts).equals(image)).to.equal(true);
      expect((await call(sim, 0x0a, 0x11, [1, 0, 0, 8])).cc).to.equal(CC.NOT_PRESENT);
      expect((await call(sim, 0x0a, 0x10, [2])).cc).to.equal(CC.NOT_PRESENT);
      expect((await call(sim, 0x0a, 0x11, [0, 0xff, 0x7f, 8])).cc).to.equal(CC.PARAMETER_OUT_OF_RANGE);
    });

    it('SDR repository holds one MC locator record, readable in parts with a reservation', async () => {
      const info = await call(sim, 0x0a, 0x20);
      expect(info.data!.length).to.equal(14);
      expect(info.data![0]).to.equal(0x51);
      expect(info.data!.readUInt16LE(1)).to.equal(1);
      const rec = mcLocatorRecord();
      expect(rec[3]).to.equal(0x12);
      expect(rec[4]).to.equal(rec.length - 5);
      expect(rec[5]).to.equal(0x20);
      const res = await call(sim, 0x0a, 0x22);
      const id = res.data!.readUInt16LE(0);
      expect(id).to.not.equal(0);
      const head = await call(sim, 0x0a, 0x23, [0, 0, 0, 0, 0, 5]);
      expect(hex(head)).to.equal('ffff' + rec.subarray(0, 5).toString('hex'));
      const rest = await call(sim, 0x0a, 0x23, [id & 0xff, id >> 8, 1, 0, 5, 0xff]);
      expect(hex(rest)).to.equal('ffff' + rec.subarray(5).toString('hex'));
      expect((await call(sim, 0x0a, 0x23, [0x99, 0x99, 1, 0, 5, 0xff])).cc).to.equal(CC.RESERVATION_CANCELLED);
      expect((await call(sim, 0x0a, 0x23, [0, 0, 7, 0, 0, 0xff])).cc).to.equal(CC.NOT_PRESENT);
    });

    it('SEL is empty', async () => {
      // version 51h, no entries, 16000 bytes free (Add SEL Entry is supported), no add/erase yet, Reserve supported
      expect(hex(await call(sim, 0x0a, 0x40))).to.equal('51' + '0000' + '803e' + 'ffffffff' + 'ffffffff' + '02');
      expect((await call(sim, 0x0a, 0x43, [0, 0, 0, 0, 0, 0xff])).cc).to.equal(CC.NOT_PRESENT);
      const before = Math.floor(Date.now() / 1000);
      const t = await call(sim, 0x0a, 0x48);
      const after = Math.floor(Date.now() / 1000);
      // Get SEL Time: the clock in whole seconds, read while the command ran
      expect(t.data?.readUInt32LE(0), 'SEL time read during the command').to.be.within(before, after);
    });
  });

  describe('robustness', () => {
    it('every handler answers any request data with a completion code (or a BackendError)', async function () {
      // thousands of calls: CPU-bound, 20 s past on a core shared with a CPU hog; only stops a hang
      this.timeout(120_000);
      let seed = 12345;
      const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) >> 16) & 0xff;
      await sim.power('on');
      for (const spec of table.values()) {
        for (let len = 0; len <= 12; len++) {
          for (let round = 0; round < 4; round++) {
            const data = Array.from({ length: len }, rnd);
            const what = `${spec.name} ${Buffer.from(data).toString('hex')}`;
            try {
              const r = await call(sim, spec.netFn, spec.cmd, data);
              expect(r.cc, what).to.be.within(0, 0xff);
              if (r.data !== undefined) expect(Buffer.isBuffer(r.data), what).to.equal(true);
            } catch (e) {
              // The only acceptable throw is a backend refusal, which the server maps to a code.
              expect(isBackendError(e), `${what}: ${String(e)}`).to.equal(true);
            }
          }
        }
      }
    });
  });

  describe('group extension', () => {
    it('answers the ipmitool and DCMI probes with C1 at any privilege', async () => {
      const low: SessionView = { ...SESSION, privilege: Privilege.Callback };
      for (const [cmd, data] of [
        [0x3e, [0x00, 0x02]],
        [0x00, [0x00]],
        [0x00, [0x03]],
        [0x01, [0xdc, 0x01]],
      ] as Array<[number, number[]]>) {
        expect(table.get(commandKey(0x2c, cmd))!.minPrivilege).to.equal(Privilege.Callback);
        expect((await call(sim, 0x2c, cmd, data, low)).cc).to.equal(CC.INVALID_COMMAND);
      }
    });
  });
});
