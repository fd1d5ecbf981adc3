/**
 * Records real IPMI client traffic as fuzz seeds: starts the IPMI server on a simulated VM behind
 * a loopback UDP relay, runs ipmitool (lanplus -C 3 / -C 17, lan with MD5) and freeipmi (v1.5 and
 * LAN_2_0), and writes every datagram a client sent into fuzz/corpus/ipmi-codec/ (one file each)
 * and each client's whole conversation into fuzz/corpus/ipmi-engine/ (mode 0 framing, see
 * ipmi-engine.fuzz.ts). In-session seeds (modes 1, 3, 5: LAN messages inside an RMCP+ suite 3 / 17
 * or an IPMI 1.5 MD5 session) come from the command table.
 * Run: npx tsx fuzz/record-ipmi.ts (needs ipmitool and freeipmi: make test-deps).
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createSocket, type RemoteInfo } from 'node:dgram';
import { mkdirSync, writeFileSync } from 'node:fs';
import { SimulatedMachine } from '../src/backend/simulator/simulator.js';
import { nullLogger } from '../src/common/logger.js';
import { encodeLanRequest } from '../src/ipmi/codec/index.js';
import { buildCommandTable } from '../src/ipmi/commands/index.js';
import { startIpmiServer } from '../src/ipmi/server.js';
import { frame } from './common.js';

const USER = ['admin', 'Record-pw-1'];
const CLIENTS: Record<string, [string, string[]][]> = {
  'ipmitool-lanplus-c3': [['ipmitool', ['-I', 'lanplus', '-C', '3', 'power', 'status']], ['ipmitool', ['-I', 'lanplus', '-C', '3', 'chassis', 'bootdev', 'pxe']]],
  'ipmitool-lanplus-c17': [['ipmitool', ['-I', 'lanplus', '-C', '17', 'mc', 'info']], ['ipmitool', ['-I', 'lanplus', '-C', '17', 'sdr', 'list']]],
  'ipmitool-lanplus-auto': [['ipmitool', ['-I', 'lanplus', 'session', 'info', 'active']]],
  'ipmitool-lan-md5': [['ipmitool', ['-I', 'lan', 'chassis', 'status']], ['ipmitool', ['-I', 'lan', 'fru', 'print']]],
  'ipmitool-wrong-password': [['ipmitool', ['-I', 'lanplus', '-C', '17', '-P', 'wrong', 'power', 'status']]],
  'freeipmi-v15': [['ipmipower', ['--stat']]],
  'freeipmi-lan20': [['ipmipower', ['-D', 'LAN_2_0', '--stat']]],
};

function exec(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve) => execFile(cmd, args, { timeout: 20_000 }, () => resolve()));
}

async function main(): Promise<void> {
  const server = await startIpmiServer({
    address: '127.0.0.1',
    port: 0,
    machine: new SimulatedMachine({ powerOnDelayMs: 0, powerOffDelayMs: 0 }),
    users: [{ username: USER[0]!, password: USER[1]!, role: 'Administrator' }],
    logger: nullLogger(),
    lockoutPolicy: { threshold: 0 },
  });
  const relay = createSocket('udp4');
  const upstream = createSocket('udp4');
  let client: RemoteInfo | undefined;
  let captured: Buffer[] = [];
  relay.on('message', (m, r) => {
    client = r;
    captured.push(Buffer.from(m));
    upstream.send(m, server.port, '127.0.0.1');
  });
  upstream.on('message', (m) => {
    if (client) relay.send(m, client.port, client.address);
  });
  await new Promise<void>((r) => relay.bind(0, '127.0.0.1', () => r()));
  await new Promise<void>((r) => upstream.bind(0, '127.0.0.1', () => r()));
  const port = relay.address().port;
  const codecDir = 'fuzz/corpus/ipmi-codec';
  const engineDir = 'fuzz/corpus/ipmi-engine';
  mkdirSync(codecDir, { recursive: true });
  mkdirSync(engineDir, { recursive: true });
  const seen = new Set<string>();
  let files = 0;
  for (const [name, runs] of Object.entries(CLIENTS)) {
    for (const [i, [cmd, args]] of runs.entries()) {
      captured = [];
      const creds =
        cmd === 'ipmitool'
          ? ['-H', '127.0.0.1', '-p', String(port), '-U', USER[0]!, ...(args.includes('-P') ? [] : ['-P', USER[1]!]), '-N', '1', '-R', '1']
          : ['-h', `127.0.0.1:${port}`, '-u', USER[0]!, '-p', USER[1]!];
      await exec(cmd, [...creds, ...args]);
      for (const d of captured) {
        const h = createHash('sha1').update(d).digest('hex').slice(0, 12);
        if (seen.has(h)) continue;
        seen.add(h);
        writeFileSync(`${codecDir}/${name}-${h}`, d);
        files++;
      }
      writeFileSync(`${engineDir}/${name}-${i}`, Buffer.concat([Buffer.from([0]), frame(captured.slice(0, 16))]));
      files++;
      console.log(`${name} #${i}: ${captured.length} datagrams`);
    }
  }
  // Mode 1 seeds: one in-session LAN request per command of the table (empty data and a few bytes).
  const table = buildCommandTable();
  const msgs: Buffer[] = [];
  let rq = 1;
  for (const key of table.keys()) {
    const netFn = key >> 8;
    const cmd = key & 0xff;
    for (const data of [Buffer.alloc(0), Buffer.from([0x01, 0x00, 0x00, 0x00])]) {
      msgs.push(encodeLanRequest({ rsSA: 0x20, netFn, rsLUN: 0, rqSA: 0x81, rqSeq: (rq++ << 2) & 0xfc, rqLUN: 0, cmd, data }));
    }
  }
  for (let i = 0; i < msgs.length; i += 8) {
    writeFileSync(`${engineDir}/commands-suite3-${i / 8}`, Buffer.concat([Buffer.from([1]), frame(msgs.slice(i, i + 8))]));
    writeFileSync(`${engineDir}/commands-suite17-${i / 8}`, Buffer.concat([Buffer.from([3]), frame(msgs.slice(i, i + 8))]));
    writeFileSync(`${engineDir}/commands-v15md5-${i / 8}`, Buffer.concat([Buffer.from([5]), frame(msgs.slice(i, i + 8))]));
    files += 3;
  }
  console.log(`wrote ${files} seed files`);
  relay.close();
  upstream.close();
  await server.close();
}

await main();
