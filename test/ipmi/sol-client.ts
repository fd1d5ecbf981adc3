/**
 * A small SOL remote console for tests (not a test file itself): the RMCP+ handshake of
 * session-client.ts, then Activate Payload and the SOL packet protocol the way ipmitool's
 * lanplus.c runs it (ACK every packet with characters, resend our packets until ACKed, drop a
 * BMC retransmission we already have). Also a UDP proxy that drops chosen datagrams.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import {
  PayloadType,
  RmcpClass,
  aesDecrypt,
  aesEncrypt,
  decodeLanResponse,
  decodeRmcpPlus,
  encodeRmcpHeader,
  encodeRmcpPlus,
  verifyIntegrity,
} from '../../src/ipmi/codec/index.js';
import { decodeSol, encodeSol, type SolPacket } from '../../src/ipmi/sol/packet.js';
import { RmcpPlusConsole, lanRequest } from './session-client.js';

export interface SolClientOptions {
  port: number;
  user?: string;
  password?: string;
  suite?: number;
  /** ms before we resend an unacknowledged packet */
  retryMs?: number;
  /** RAKP1 role byte (privilege | 0x10 name-only lookup) */
  role?: number;
}

export class SolClient {
  readonly con: RmcpPlusConsole;
  /** Characters received from the BMC, in order, without BMC retransmissions */
  readonly received: Buffer[] = [];
  receivedBytes = 0;
  /** Every SOL packet from the BMC, as decoded (including retransmissions) */
  readonly packets: SolPacket[] = [];
  duplicatesSeen = 0;
  private lastSeq = 0;
  private outSeq = 0;
  private readonly retryMs: number;
  private ipmiWaiter: ((r: { cc: number; data: Buffer }) => void) | undefined;
  private ackWaiter: { seq: number; resolve: (p: SolPacket) => void } | undefined;
  private dataWaiters: Array<() => void> = [];

  constructor(opts: SolClientOptions) {
    this.con = new RmcpPlusConsole(opts.port, opts.user ?? 'admin', opts.password ?? 'password', opts.suite ?? 17, opts.role ?? 0x14);
    this.retryMs = opts.retryMs ?? 200;
  }

  get socket(): Socket {
    return this.con.peer.socket;
  }

  /** Handshake and privilege: ready for commands. */
  async open(privilege = 4): Promise<void> {
    const h = await this.con.handshake();
    if (!h.established) throw new Error('session not established');
    const r = await this.con.request(0x06, 0x3b, [privilege]);
    if (!r || r.cc !== 0) throw new Error(`Set Session Privilege failed: ${r?.cc}`);
    // From here on every datagram comes through our own listener.
    this.socket.on('message', (m: Buffer) => this.onMessage(m));
  }

  /** One IPMI request in the session, answered through the shared listener. */
  async request(netFn: number, cmd: number, data: number[] = [], timeoutMs = 2000): Promise<{ cc: number; data: Buffer }> {
    const msg = lanRequest(netFn, cmd, data);
    for (let tries = 0; tries < 3; tries++) {
      // a resend is a new session packet (new sequence number) carrying the same request
      const dgram = this.con.wrap(msg);
      const r = await new Promise<{ cc: number; data: Buffer } | undefined>((resolve) => {
        const t = setTimeout(() => {
          this.ipmiWaiter = undefined;
          resolve(undefined);
        }, timeoutMs);
        this.ipmiWaiter = (v) => {
          clearTimeout(t);
          resolve(v);
        };
        this.socket.send(dgram, this.con.peer.port, '127.0.0.1');
      });
      if (r) return r;
    }
    throw new Error(`no answer to ${netFn.toString(16)}/${cmd.toString(16)}`);
  }

  /** Characters per packet we send: the BMC's inbound payload size less the header (ipmitool does the same) */
  maxChars = 255;

  async activate(aux = 0xc6): Promise<{ cc: number; data: Buffer }> {
    const r = await this.request(0x06, 0x48, [0x01, 0x01, aux, 0, 0, 0]);
    if (r.cc === 0 && r.data.length >= 6) this.maxChars = Math.max(1, Math.min(255, r.data.readUInt16LE(4) - 4));
    return r;
  }

  deactivate(): Promise<{ cc: number; data: Buffer }> {
    return this.request(0x06, 0x49, [0x01, 0x01, 0, 0, 0, 0]);
  }

  /** Characters received so far as one buffer. */
  text(): string {
    return Buffer.concat(this.received).toString('latin1');
  }

  /** Resolves once `pred` holds (checked after each data packet), or rejects after timeoutMs. */
  async waitFor(pred: () => boolean, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pred()) {
      if (Date.now() > deadline) throw new Error('timed out waiting for SOL data');
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 50);
        this.dataWaiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Sends characters, resending until acknowledged; returns the ACK packets. */
  async send(data: Buffer, op = 0): Promise<SolPacket[]> {
    const acks: SolPacket[] = [];
    let rest = data;
    do {
      const chunk = rest.subarray(0, this.maxChars);
      this.outSeq = this.outSeq >= 15 ? 1 : this.outSeq + 1;
      const seq = this.outSeq;
      const pkt = encodeSol({ seq, ackSeq: 0, acceptedCount: 0, op, data: chunk });
      let ack: SolPacket | undefined;
      for (let tries = 0; tries < 20 && !ack; tries++) {
        ack = await new Promise<SolPacket | undefined>((resolve) => {
          const t = setTimeout(() => {
            this.ackWaiter = undefined;
            resolve(undefined);
          }, this.retryMs);
          this.ackWaiter = {
            seq,
            resolve: (p) => {
              clearTimeout(t);
              resolve(p);
            },
          };
          this.sendSol(pkt);
        });
      }
      if (!ack) throw new Error(`SOL packet ${seq} never acknowledged`);
      acks.push(ack);
      if (ack.op & 0x20) return acks; // transfer unavailable: the rest is not wanted
      rest = rest.subarray(Math.min(ack.acceptedCount, chunk.length));
    } while (rest.length > 0);
    return acks;
  }

  /** An operation-only packet (no characters, acknowledges nothing): break, flush, CTS… */
  control(op: number): void {
    this.sendSol(encodeSol({ seq: 0, ackSeq: 0, acceptedCount: 0, op, data: Buffer.alloc(0) }));
  }

  close(): void {
    this.con.close();
  }

  private sendSol(payload: Buffer): void {
    const c = this.con;
    const enc = c.suite.conf !== 0;
    const auth = c.suite.integrity !== 0;
    const dgram = Buffer.concat([
      encodeRmcpHeader(RmcpClass.IPMI),
      encodeRmcpPlus(
        {
          payloadType: PayloadType.SOL,
          encrypted: enc,
          authenticated: auth,
          sessionId: c.bmcId,
          sequence: ++c.seq,
          payload: enc ? aesEncrypt(c.aesKey!, randomBytes(16), payload) : payload,
        },
        auth ? { alg: c.suite.integrity, k1: c.k1! } : undefined,
      ),
    ]);
    this.socket.send(dgram, c.peer.port, '127.0.0.1');
  }

  private onMessage(m: Buffer): void {
    const c = this.con;
    const p = decodeRmcpPlus(m.subarray(4));
    if (!p.ok || p.value.sessionId !== c.consoleId) return;
    if (c.suite.integrity !== 0 && !verifyIntegrity(p.value, c.suite.integrity, c.k1!)) return;
    let msg = p.value.payload;
    if (c.suite.conf !== 0) {
      const d = aesDecrypt(c.aesKey!, msg);
      if (!d.ok) return;
      msg = d.value;
    }
    if (p.value.payloadType === PayloadType.IPMI) {
      const r = decodeLanResponse(msg);
      if (r.ok && this.ipmiWaiter) {
        const w = this.ipmiWaiter;
        this.ipmiWaiter = undefined;
        w({ cc: r.value.cc, data: r.value.data });
      }
      return;
    }
    if (p.value.payloadType !== PayloadType.SOL) return;
    const d = decodeSol(msg);
    if (!d.ok) return;
    const s = d.value;
    this.packets.push({ ...s, data: Buffer.from(s.data) });
    if (s.ackSeq !== 0 && this.ackWaiter?.seq === s.ackSeq) {
      const w = this.ackWaiter;
      this.ackWaiter = undefined;
      w.resolve(s);
    }
    if (s.seq !== 0) {
      if (s.seq === this.lastSeq) {
        this.duplicatesSeen++;
      } else {
        this.lastSeq = s.seq;
        this.received.push(Buffer.from(s.data));
        this.receivedBytes += s.data.length;
      }
      this.sendSol(encodeSol({ seq: 0, ackSeq: s.seq, acceptedCount: s.data.length, op: 0, data: Buffer.alloc(0) }));
      const ws = this.dataWaiters;
      this.dataWaiters = [];
      for (const w of ws) w();
    }
  }
}

/**
 * A UDP proxy on loopback between one client and the agent. `drop(dir, n)` decides per datagram
 * (n counts datagrams of that direction from 1) whether it is lost.
 */
export class LossyProxy {
  readonly socket = createSocket('udp4');
  port = 0;
  private client: RemoteInfo | undefined;
  private readonly counts = { up: 0, down: 0 };
  readonly dropped = { up: 0, down: 0 };

  constructor(
    private readonly target: number,
    public drop: (dir: 'up' | 'down', n: number) => boolean = () => false,
  ) {}

  async start(): Promise<number> {
    this.socket.on('message', (m, r) => {
      if (r.port === this.target) {
        if (!this.client) return;
        const n = ++this.counts.down;
        if (this.drop('down', n)) {
          this.dropped.down++;
          return;
        }
        this.socket.send(m, this.client.port, this.client.address);
      } else {
        this.client = r;
        const n = ++this.counts.up;
        if (this.drop('up', n)) {
          this.dropped.up++;
          return;
        }
        this.socket.send(m, this.target, '127.0.0.1');
      }
    });
    await new Promise<void>((r) => this.socket.bind(0, '127.0.0.1', () => r()));
    this.port = this.socket.address().port;
    return this.port;
  }

  close(): void {
    this.socket.close();
  }
}
