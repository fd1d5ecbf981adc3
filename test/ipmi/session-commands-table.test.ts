/**
 * The session-layer commands as rows of the one command table (src/ipmi/session/commands.ts
 * sessionCommands): what each answers before a session and inside one, by its row's flags and
 * privilege, fed straight into IpmiEngine (no socket).
 */
import { expect } from 'chai';
import { SimulatedMachine } from '../../src/backend/simulator/simulator.js';
import { nullLogger } from '../../src/common/logger.js';
import { buildCommandTable } from '../../src/ipmi/commands/index.js';
import { IpmiEngine, type EngineOptions } from '../../src/ipmi/session/engine.js';
import { CC, NetFn, Privilege, type CommandSpec } from '../../src/ipmi/types.js';
import { RmcpPlusConsole, lanRequest, preSessionResponse, rmcpPreSession, v15PreSession } from './session-client.js';

const log = nullLogger();
const remote = { address: '127.0.0.1', port: 40000 };

function options(commands: ReadonlyMap<number, CommandSpec> = buildCommandTable()): EngineOptions {
  return {
    machine: new SimulatedMachine({ powerOnDelayMs: 0, powerOffDelayMs: 0 }),
    users: [{ username: 'admin', password: 'password', role: 'Administrator' }],
    logger: log,
    commands,
    allowInsecure: false,
    channel: 1,
    guid: Buffer.alloc(16, 7),
    now: () => 1_000_000,
    maxSessions: 8,
    idleTimeoutMs: 60000,
    handshakeTimeoutMs: 5000,
  };
}

describe('ipmi session-layer commands in the command table', () => {
  let engine: IpmiEngine;
  beforeEach(() => {
    engine = new IpmiEngine(options());
  });
  const pre = async (datagram: Buffer) => preSessionResponse((await engine.handle(datagram, remote, log))!);

  /** A suite-3 session opened for `privilege` (0x11 Callback ... 0x14 Administrator). */
  async function session(privilege: number): Promise<RmcpPlusConsole> {
    const c = new RmcpPlusConsole(1, 'admin', 'password', 3, privilege);
    c.peer.exchange = async (b: Buffer) => engine.handle(b, remote, log);
    c.peer.ready = async () => undefined;
    expect((await c.handshake()).established).to.equal(true);
    return c;
  }

  it('before a session: 38h and 54h answer over both formats, 39h only over IPMI 1.5, the rest D4h', async () => {
    const authCaps = lanRequest(NetFn.APP, 0x38, [0x8e, 0x04]);
    expect((await pre(rmcpPreSession(authCaps)))?.cc).to.equal(CC.OK);
    expect((await pre(v15PreSession(authCaps)))?.cc).to.equal(CC.OK);
    expect((await pre(rmcpPreSession(lanRequest(NetFn.APP, 0x54, [0x0e, 0x00, 0x80]))))?.cc).to.equal(CC.OK);
    // Get Session Challenge runs its handler over IPMI 1.5 (too short: C7h), is unknown to RMCP+
    expect((await pre(v15PreSession(lanRequest(NetFn.APP, 0x39, [0x02]))))?.cc).to.equal(CC.REQUEST_DATA_LENGTH_INVALID);
    expect((await pre(rmcpPreSession(lanRequest(NetFn.APP, 0x39, [0x02]))))?.cc).to.equal(CC.INVALID_COMMAND);
    for (const cmd of [0x3a, 0x3b, 0x3c, 0x3d]) {
      expect((await pre(rmcpPreSession(lanRequest(NetFn.APP, cmd, [0, 0, 0, 0, 0]))))?.cc, `cmd ${cmd.toString(16)}`).to.equal(CC.INSUFFICIENT_PRIVILEGE);
    }
    expect((await pre(rmcpPreSession(lanRequest(NetFn.CHASSIS, 0x01))))?.cc).to.equal(CC.INSUFFICIENT_PRIVILEGE);
  });

  it('inside a session: establishment commands get D5h, Get Session Info needs User, Callback may raise and close', async () => {
    const c = await session(0x11); // Callback
    expect((await c.request(NetFn.APP, 0x39, Array(17).fill(0)))?.cc).to.equal(CC.NOT_SUPPORTED_IN_PRESENT_STATE);
    expect((await c.request(NetFn.APP, 0x3a, Array(21).fill(0)))?.cc).to.equal(CC.NOT_SUPPORTED_IN_PRESENT_STATE);
    expect((await c.request(NetFn.APP, 0x38, [0x8e, 0x04]))?.cc).to.equal(CC.OK);
    expect((await c.request(NetFn.APP, 0x3d, [0x00]))?.cc).to.equal(CC.INSUFFICIENT_PRIVILEGE);
    expect((await c.request(NetFn.APP, 0x3b, [0x00]))?.data[0]).to.equal(Privilege.Callback);
    const info = await session(0x12); // User
    const r = await info.request(NetFn.APP, 0x3d, [0x00]);
    expect(r?.cc).to.equal(CC.OK);
    expect(r!.data[4]! & 0x0f).to.equal(Privilege.User);
    expect(r!.data[2]).to.equal(2); // two active sessions
    // Close Session of its own session: answered (sealed with its keys), then the session is gone
    const id = Buffer.alloc(4);
    id.writeUInt32LE(c.bmcId);
    expect((await c.request(NetFn.APP, 0x3c, [...id]))?.cc).to.equal(CC.OK);
    expect((await info.request(NetFn.APP, 0x3d, [0x00]))!.data[2]).to.equal(1);
  });

  it('a command table that defines a session-layer command is refused', () => {
    const table = new Map(buildCommandTable());
    table.set((NetFn.APP << 8) | 0x3d, { netFn: NetFn.APP, cmd: 0x3d, name: 'shadow', minPrivilege: Privilege.User, handler: () => ({ cc: 0 }) });
    expect(() => new IpmiEngine(options(table))).to.throw(/session-layer command/);
  });
});
