/**
 * A minimal RMCP+ / IPMI 1.5 console for tests (not a test file itself): drives the handshake with
 * the project's codec over a UDP socket on loopback and records every datagram it sent, so fuzz
 * tests can mutate real traffic.
 */
import { run, type Run } from '../helpers/exec.js';
import { createSocket, type Socket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import {
  AuthType,
  PayloadType,
  RmcpClass,
  aesDecrypt,
  aesEncrypt,
  authHash,
  decodeLanResponse,
  decodeOpenSessionResponse,
  decodeRakp2,
  decodeRakp4,
  decodeRmcpPlus,
  decodeV15,
  deriveKeys,
  encodeLanRequest,
  encodeOpenSessionRequest,
  encodeRakp1,
  encodeRakp3,
  encodeRmcpHeader,
  encodeRmcpPlus,
  encodeV15,
  password16,
  rakp2AuthCode,
  rakp3AuthCode,
  rakp4Icv,
  rakp4IcvLength,
  sessionIntegrityKey,
  suiteById,
  verifyIntegrity,
  type CipherSuite,
  type RakpInputs,
} from '../../src/ipmi/codec/index.js';

/**
 * How long a handshake step waits for its answer. The BMC answers every step (a refusal is a status
 * code), so a missing answer fails the handshake: this only stops a hung test, and a loaded machine
 * (taskset -c 0 beside a CPU hog) took more than the 1 s that requests wait.
 */
const HANDSHAKE_REPLY_MS = 10_000;

export class UdpPeer {
  readonly socket: Socket;
  private queue: Buffer[] = [];
  private waiter: ((b: Buffer) => void) | undefined;
  readonly sent: Buffer[] = [];

  constructor(readonly port: number) {
    this.socket = createSocket('udp4');
    this.socket.on('message', (m) => {
      if (this.waiter) {
        const w = this.waiter;
        this.waiter = undefined;
        w(m);
      } else this.queue.push(m);
    });
  }

  async ready(): Promise<void> {
    await new Promise<void>((r) => this.socket.bind(0, '127.0.0.1', () => r()));
  }

  /** Sends and records a datagram. */
  send(b: Buffer): void {
    this.sent.push(Buffer.from(b));
    this.socket.send(b, this.port, '127.0.0.1');
  }

  /** Sends without recording (fuzzing). */
  sendRaw(b: Buffer): void {
    this.socket.send(b, this.port, '127.0.0.1');
  }

  drain(): void {
    this.queue = [];
  }

  receive(timeoutMs = 1000): Promise<Buffer | undefined> {
    const q = this.queue.shift();
    if (q) return Promise.resolve(q);
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.waiter = undefined;
        resolve(undefined);
      }, timeoutMs);
      this.waiter = (b) => {
        clearTimeout(t);
        resolve(b);
      };
    });
  }

  async exchange(b: Buffer, timeoutMs = 1000): Promise<Buffer | undefined> {
    this.send(b);
    return this.receive(timeoutMs);
  }

  close(): void {
    this.socket.close();
  }
}

export interface HandshakeResult {
  openStatus: number;
  /** Maximum privilege the Open Session Response granted */
  openMaxPrivilege?: number;
  rakp2Status?: number;
  rakp4Status?: number;
  /** true when RAKP2's auth code and RAKP4's ICV checked out */
  established: boolean;
}

let rqSeq = 1;
export function lanRequest(netFn: number, cmd: number, data: number[] | Buffer = []): Buffer {
  rqSeq = (rqSeq + 1) & 0x3f;
  return encodeLanRequest({ rsSA: 0x20, netFn, rsLUN: 0, rqSA: 0x81, rqSeq, rqLUN: 0, cmd, data: Buffer.from(data) });
}

export class RmcpPlusConsole {
  readonly peer: UdpPeer;
  readonly consoleId = (randomBytes(4).readUInt32LE(0) | 1) >>> 0;
  bmcId = 0;
  seq = 0;
  suite: CipherSuite;
  k1?: Buffer;
  aesKey?: Buffer;

  constructor(
    port: number,
    readonly user: string,
    readonly password: string,
    suiteId = 3,
    readonly role = 0x14,
  ) {
    this.peer = new UdpPeer(port);
    this.suite = suiteById(suiteId, true)!;
  }

  private pre(payloadType: number, payload: Buffer): Buffer {
    return Buffer.concat([
      encodeRmcpHeader(RmcpClass.IPMI),
      encodeRmcpPlus({ payloadType, encrypted: false, authenticated: false, sessionId: 0, sequence: 0, payload }),
    ]);
  }

  /** Open Session + RAKP 1–4. `algs` overrides the proposal (for refusal tests). */
  /** `afterOpen`: run between Open Session and RAKP1 (e.g. advance the server's clock). */
  async handshake(algs?: { auth: number; integrity: number; conf: number }, afterOpen?: () => unknown, stopAfterRakp2 = false): Promise<HandshakeResult> {
    await this.peer.ready();
    const prop = algs ?? this.suite;
    const osr = await this.peer.exchange(
      this.pre(PayloadType.OPEN_SESSION_REQUEST, encodeOpenSessionRequest({ tag: 1, maxPrivilege: 0, consoleSessionId: this.consoleId, ...prop })),
      HANDSHAKE_REPLY_MS,
    );
    if (!osr) throw new Error('no Open Session Response');
    const o = decodeOpenSessionResponse(this.payloadOf(osr));
    if (!o.ok) throw new Error(o.message);
    if (o.value.status !== 0) return { openStatus: o.value.status, established: false };
    this.bmcId = o.value.bmcSessionId;
    const openMaxPrivilege = o.value.maxPrivilege;
    if (afterOpen) await afterOpen();
    const rm = randomBytes(16);
    const uname = Buffer.from(this.user);
    const r2raw = await this.peer.exchange(this.pre(PayloadType.RAKP1, encodeRakp1({ tag: 2, bmcSessionId: this.bmcId, rm, role: this.role, username: uname })), HANDSHAKE_REPLY_MS);
    if (!r2raw) throw new Error('no RAKP2');
    const r2 = decodeRakp2(this.payloadOf(r2raw));
    if (!r2.ok) throw new Error(r2.message);
    if (r2.value.status !== 0 || stopAfterRakp2) return { openStatus: 0, openMaxPrivilege, rakp2Status: r2.value.status, established: false };
    const hash = authHash(this.suite.auth) ?? 'sha1';
    const inputs: RakpInputs = {
      hash,
      kuid: Buffer.from(this.password),
      consoleSessionId: this.consoleId,
      bmcSessionId: this.bmcId,
      rm,
      rc: Buffer.from(r2.value.rc),
      guid: Buffer.from(r2.value.guid),
      role: this.role,
      username: uname,
    };
    const rakp2Ok = rakp2AuthCode(inputs).equals(r2.value.authCode);
    const r4raw = await this.peer.exchange(
      this.pre(PayloadType.RAKP3, encodeRakp3({ tag: 3, status: 0, bmcSessionId: this.bmcId, authCode: rakp3AuthCode(inputs) })),
      HANDSHAKE_REPLY_MS,
    );
    if (!r4raw) throw new Error('no RAKP4');
    const r4 = decodeRakp4(this.payloadOf(r4raw));
    if (!r4.ok) throw new Error(r4.message);
    if (r4.value.status !== 0) return { openStatus: 0, openMaxPrivilege, rakp2Status: 0, rakp4Status: r4.value.status, established: false };
    const sik = sessionIntegrityKey(inputs);
    const keys = deriveKeys(hash, sik);
    this.k1 = keys.k1;
    this.aesKey = keys.k2.subarray(0, 16);
    const icvOk = rakp4Icv(hash, sik, rm, this.bmcId, inputs.guid, rakp4IcvLength(this.suite.auth)).equals(r4.value.icv);
    return { openStatus: 0, openMaxPrivilege, rakp2Status: 0, rakp4Status: 0, established: rakp2Ok && icvOk };
  }

  payloadOf(datagram: Buffer): Buffer {
    const p = decodeRmcpPlus(datagram.subarray(4));
    if (!p.ok) throw new Error(p.message);
    return p.value.payload;
  }

  /** An in-session request datagram with the next sequence number (or a given one). */
  wrap(msg: Buffer, sequence?: number): Buffer {
    const seq = sequence ?? ++this.seq;
    const enc = this.suite.conf !== 0;
    const auth = this.suite.integrity !== 0;
    return Buffer.concat([
      encodeRmcpHeader(RmcpClass.IPMI),
      encodeRmcpPlus(
        {
          payloadType: PayloadType.IPMI,
          encrypted: enc,
          authenticated: auth,
          sessionId: this.bmcId,
          sequence: seq,
          payload: enc ? aesEncrypt(this.aesKey!, randomBytes(16), msg) : msg,
        },
        auth ? { alg: this.suite.integrity, k1: this.k1! } : undefined,
      ),
    ]);
  }

  /** Decodes an in-session response datagram after checking its integrity. */
  unwrap(datagram: Buffer): { cc: number; data: Buffer; cmd: number } | undefined {
    const p = decodeRmcpPlus(datagram.subarray(4));
    if (!p.ok || p.value.sessionId !== this.consoleId) return undefined;
    if (this.suite.integrity !== 0 && !verifyIntegrity(p.value, this.suite.integrity, this.k1!)) return undefined;
    let msg = p.value.payload;
    if (this.suite.conf !== 0) {
      const d = aesDecrypt(this.aesKey!, msg);
      if (!d.ok) return undefined;
      msg = d.value;
    }
    const r = decodeLanResponse(msg);
    return r.ok ? { cc: r.value.cc, data: r.value.data, cmd: r.value.cmd } : undefined;
  }

  async request(netFn: number, cmd: number, data: number[] = [], timeoutMs = 1000): Promise<{ cc: number; data: Buffer } | undefined> {
    const raw = await this.peer.exchange(this.wrap(lanRequest(netFn, cmd, data)), timeoutMs);
    return raw ? this.unwrap(raw) : undefined;
  }

  close(): void {
    this.peer.close();
  }
}

/** Pre-session IPMI 1.5 request (auth NONE, session 0). */
export function v15PreSession(msg: Buffer): Buffer {
  return Buffer.concat([encodeRmcpHeader(RmcpClass.IPMI), encodeV15(AuthType.NONE, 0, 0, msg)]);
}

/** Pre-session RMCP+ IPMI request (session 0, not authenticated). */
export function rmcpPreSession(msg: Buffer): Buffer {
  return Buffer.concat([
    encodeRmcpHeader(RmcpClass.IPMI),
    encodeRmcpPlus({ payloadType: PayloadType.IPMI, encrypted: false, authenticated: false, sessionId: 0, sequence: 0, payload: msg }),
  ]);
}

/** The LAN response inside a pre-session reply of either format. */
export function preSessionResponse(datagram: Buffer): { cc: number; data: Buffer } | undefined {
  const body = datagram.subarray(4);
  let msg: Buffer;
  if (body[0] === AuthType.RMCPPLUS) {
    const p = decodeRmcpPlus(body);
    if (!p.ok) return undefined;
    msg = p.value.payload;
  } else {
    const p = decodeV15(body);
    if (!p.ok) return undefined;
    msg = p.value.message;
  }
  const r = decodeLanResponse(msg);
  return r.ok ? { cc: r.value.cc, data: r.value.data } : undefined;
}

export { password16 };

export { run, type Run } from '../helpers/exec.js';

/**
 * ipmitool against 127.0.0.1:port. `-I lan` without `-N` gets `-N 10`: ipmitool waits `-N` (default
 * 2 s) for the pong to its opening presence ping and misreads a later one (docs/ipmi.md "Clients").
 */
export function ipmitool(port: number, args: string[], creds = ['-U', 'admin', '-P', 'password']): Promise<Run> {
  const lan = args.some((a, i) => a === '-I' && args[i + 1] === 'lan');
  const wait = lan && !args.includes('-N') ? ['-N', '10'] : [];
  return run('ipmitool', ['-H', '127.0.0.1', '-p', String(port), ...creds, ...wait, ...args]);
}


/** IPMI 1.5 console: Get Session Challenge, Activate Session, then MD5/password-signed requests. */
export class V15Console {
  readonly peer: UdpPeer;
  sessionId = 0;
  seq = 0;
  private readonly pw16: Buffer;

  constructor(
    port: number,
    readonly user: string,
    password: string,
    readonly authType: number = AuthType.MD5,
    readonly priv = 4,
  ) {
    this.peer = new UdpPeer(port);
    this.pw16 = password16(password);
  }

  private packet(seq: number, sid: number, msg: Buffer): Buffer {
    return Buffer.concat([encodeRmcpHeader(RmcpClass.IPMI), encodeV15(this.authType, seq, sid, msg, this.pw16)]);
  }

  /** Returns the Activate Session completion code (undefined: no answer). */
  async activate(): Promise<number | undefined> {
    await this.peer.ready();
    const name = Buffer.alloc(16);
    name.write(this.user);
    const ch = await this.peer.exchange(v15PreSession(lanRequest(6, 0x39, [this.authType, ...name])));
    const c = ch && preSessionResponse(ch);
    if (!c || c.cc !== 0) return c?.cc;
    const temp = c.data.readUInt32LE(0);
    const outSeq = Buffer.alloc(4);
    outSeq.writeUInt32LE(0x1000);
    const act = await this.peer.exchange(this.packet(0, temp, lanRequest(6, 0x3a, [this.authType, this.priv, ...c.data.subarray(4, 20), ...outSeq])));
    const a = act && preSessionResponse(act);
    if (!a || a.cc !== 0) return a?.cc;
    this.sessionId = a.data.readUInt32LE(1);
    this.seq = a.data.readUInt32LE(5);
    return 0;
  }

  wrap(msg: Buffer, sequence?: number): Buffer {
    const s = sequence ?? this.seq++;
    return this.packet(s, this.sessionId, msg);
  }

  async request(netFn: number, cmd: number, data: number[] = [], timeoutMs = 1000): Promise<{ cc: number; data: Buffer } | undefined> {
    const raw = await this.peer.exchange(this.wrap(lanRequest(netFn, cmd, data)), timeoutMs);
    return raw ? preSessionResponse(raw) : undefined;
  }

  close(): void {
    this.peer.close();
  }
}
