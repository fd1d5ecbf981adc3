/**
 * The KubeVirt serial console bridge: the VMI's `console` subresource
 * (GET /apis/subresources.kubevirt.io/v1/namespaces/{ns}/virtualmachineinstances/{name}/console,
 * a websocket with the `plain.kubevirt.io` subprotocol carrying raw bytes in binary frames both
 * ways), with the kubeconfig's TLS and credentials (KubeConfig.applyToHTTPSOptions), fed into a
 * ConsoleHub (src/backend/console.ts).
 *
 * What we chose:
 * - Connected only while a viewer is attached (an active SOL payload) and a VMI runs. KubeVirt
 *   serves one serial connection per VMI and a new one closes the one before
 *   (pkg/virt-handler/rest/console.go newStopChan): a bridge held open all the time would kick
 *   every `virtctl console` user, and they it. The ring of recent output keeps what was seen
 *   while someone watched, for the next viewer.
 * - The VM off (no running VMI): the console is offline. SOL still activates; there is nothing to
 *   read and typed characters are refused ("character transfer unavailable") until a VMI runs.
 * - A new VMI (reset, power cycle, start): the bridge closes the old connection and opens one to
 *   the new VMI by itself, so an operator watching sees the next boot without re-activating.
 * - A connection that drops while the same VMI runs (network, another console client taking the
 *   console over) is re-opened with backoff (1 s doubling to 30 s).
 * - Back-pressure both ways: console input waits in the hub's bounded queue while the websocket
 *   has more than `maxBufferedBytes` unsent; a viewer that falls behind holds the console
 *   (ConsoleStream.hold), which stops reading the websocket, so TCP back-pressure reaches
 *   virt-handler and the guest's serial port. A viewer still has a hard bound of its own (SOL:
 *   256 KiB, then the oldest output is dropped and reported as an overrun).
 */
import type { RequestOptions } from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';
import WebSocket from 'ws';
import type { Logger } from '../../common/logger.js';
import { ConsoleHub } from '../console.js';
import type { ConsoleStream } from '../types.js';

export const CONSOLE_SUBPROTOCOL = 'plain.kubevirt.io';

export interface KubeVirtConsoleOptions {
  kc: KubeConfig;
  namespace: string;
  name: string;
  logger: Logger;
  reconnectMinMs?: number;
  reconnectMaxMs?: number;
  /** Unsent websocket bytes beyond which console input waits (default 64 KiB) */
  maxBufferedBytes?: number;
  ringBytes?: number;
  inputLimit?: number;
  /** Websocket opening handshake timeout (ms), default 10000 */
  handshakeTimeoutMs?: number;
}

export function consolePath(namespace: string, name: string): string {
  return `/apis/subresources.kubevirt.io/v1/namespaces/${encodeURIComponent(namespace)}/virtualmachineinstances/${encodeURIComponent(name)}/console`;
}

export class KubeVirtConsole {
  readonly hub: ConsoleHub;
  /** Connections opened so far (tests, logs) */
  connects = 0;
  private readonly o: Required<Omit<KubeVirtConsoleOptions, 'ringBytes' | 'inputLimit'>>;
  private vmiUid: string | undefined;
  private ws: WebSocket | undefined;
  private wsUid: string | undefined;
  private viewers = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private backoffMs: number;
  private blocked = false;
  private closed = false;

  constructor(opts: KubeVirtConsoleOptions) {
    this.o = {
      kc: opts.kc,
      namespace: opts.namespace,
      name: opts.name,
      logger: opts.logger,
      reconnectMinMs: opts.reconnectMinMs ?? 1000,
      reconnectMaxMs: opts.reconnectMaxMs ?? 30_000,
      maxBufferedBytes: opts.maxBufferedBytes ?? 64 * 1024,
      handshakeTimeoutMs: opts.handshakeTimeoutMs ?? 10_000,
    };
    this.backoffMs = this.o.reconnectMinMs;
    this.hub = new ConsoleHub({
      ...(opts.ringBytes !== undefined ? { ringBytes: opts.ringBytes } : {}),
      ...(opts.inputLimit !== undefined ? { inputLimit: opts.inputLimit } : {}),
      initialState: 'offline',
      sink: { write: (d) => this.send(d) },
      // a viewer that falls behind stops our reads: TCP back-pressure reaches the guest's serial port
      source: {
        pause: () => this.realWs()?.pause(),
        resume: () => this.realWs()?.resume(),
      },
    });
  }

  /** The running VMI (its uid), or undefined when none runs. Called on every VM/VMI change. */
  setRunningVmi(uid: string | undefined): void {
    if (uid === this.vmiUid) return;
    this.vmiUid = uid;
    if (this.ws && this.wsUid !== uid) this.disconnect('the VMI changed');
    this.clearRetry();
    this.backoffMs = this.o.reconnectMinMs;
    this.connectIfWanted();
  }

  open(): ConsoleStream {
    const s = this.hub.open();
    this.viewers++;
    this.connectIfWanted();
    let closed = false;
    const close = s.close.bind(s);
    s.close = () => {
      if (closed) return;
      closed = true;
      close();
      this.viewers--;
      if (this.viewers === 0) {
        this.clearRetry();
        if (this.ws) this.disconnect('no viewer left');
      }
    };
    return s;
  }

  close(): void {
    this.closed = true;
    this.clearRetry();
    if (this.ws) this.disconnect('closing');
  }

  // ---- internals -------------------------------------------------------------------------------

  private connectIfWanted(): void {
    if (this.closed || !this.vmiUid || this.viewers === 0 || this.ws || this.retryTimer) return;
    void this.connect(this.vmiUid);
  }

  private async connect(uid: string): Promise<void> {
    const cluster = this.o.kc.getCurrentCluster();
    if (!cluster) {
      this.o.logger.warn('serial console: the kubeconfig has no current cluster');
      return;
    }
    const url = new URL(cluster.server.replace(/\/+$/, '') + consolePath(this.o.namespace, this.o.name));
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    const reqOpts: RequestOptions = { headers: {} };
    // placeholder so a second connect does not start while credentials are prepared
    const pending = {} as WebSocket;
    this.ws = pending;
    this.wsUid = uid;
    try {
      await this.o.kc.applyToHTTPSOptions(reqOpts);
    } catch (e) {
      if (this.ws === pending) this.ws = undefined;
      this.o.logger.warn({ err: e instanceof Error ? e.message : String(e) }, 'serial console: cannot prepare credentials');
      this.scheduleRetry();
      return;
    }
    if (this.ws !== pending || this.closed || this.vmiUid !== uid || this.viewers === 0) {
      if (this.ws === pending) this.ws = undefined;
      this.connectIfWanted();
      return;
    }
    // The kubeconfig's agent is an https one; plain http (a local test apiserver) needs none.
    if (url.protocol === 'ws:') delete reqOpts.agent;
    const ws = new WebSocket(url, [CONSOLE_SUBPROTOCOL], {
      ...reqOpts,
      handshakeTimeout: this.o.handshakeTimeoutMs,
      perMessageDeflate: false,
    } as WebSocket.ClientOptions);
    ws.binaryType = 'nodebuffer';
    this.ws = ws;
    this.connects++;
    const log = this.o.logger;
    ws.on('open', () => {
      if (this.ws !== ws) return;
      if (ws.protocol !== CONSOLE_SUBPROTOCOL) log.warn({ protocol: ws.protocol }, 'serial console: the server chose another subprotocol');
      this.backoffMs = this.o.reconnectMinMs;
      if (this.hub.held) ws.pause(); // a viewer is still behind: do not read yet
      log.info({ vmi: uid }, 'serial console connected');
      this.hub.setState('connected');
    });
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (this.ws !== ws) return;
      this.hub.output(isBinary ? data : Buffer.from(data));
    });
    ws.on('unexpected-response', (_req, res) => {
      // e.g. 400 "VMI is not running" (between our watch and the server), 403 (RBAC), 404
      log.warn({ status: res.statusCode }, 'serial console: the API server refused the websocket');
      res.resume();
      ws.terminate();
    });
    ws.on('error', (e) => {
      log.debug({ err: e.message }, 'serial console websocket error');
    });
    ws.on('close', () => {
      if (this.ws !== ws) return;
      this.ws = undefined;
      this.blocked = false;
      this.hub.setState('offline');
      if (!this.closed && this.viewers > 0 && this.vmiUid === uid) {
        log.info({ vmi: uid, retryInMs: this.backoffMs }, 'serial console connection ended; re-opening');
        this.scheduleRetry();
      } else {
        this.connectIfWanted();
      }
    });
  }

  /** The open websocket (not the placeholder used while credentials are prepared). */
  private realWs(): WebSocket | undefined {
    const ws = this.ws;
    return ws && typeof ws.pause === 'function' ? ws : undefined;
  }

  private send(data: Buffer): boolean {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return true; // offline: the hub drops it
    ws.send(data, { binary: true }, () => {
      if (this.blocked && this.ws === ws && ws.bufferedAmount <= this.o.maxBufferedBytes / 2) {
        this.blocked = false;
        this.hub.drained();
      }
    });
    if (ws.bufferedAmount > this.o.maxBufferedBytes) {
      this.blocked = true;
      return false;
    }
    return true;
  }

  private disconnect(reason: string): void {
    const ws = this.ws;
    this.ws = undefined;
    this.blocked = false;
    this.hub.setState('offline');
    if (ws && typeof ws.close === 'function') {
      this.o.logger.info({ reason }, 'serial console disconnected');
      ws.close(1000);
      // a peer that never answers the close handshake does not keep the socket
      setTimeout(() => ws.terminate(), 2000).unref();
    }
  }

  private scheduleRetry(): void {
    if (this.retryTimer || this.closed) return;
    const delay = this.backoffMs;
    this.backoffMs = Math.min(this.o.reconnectMaxMs, this.backoffMs * 2);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.connectIfWanted();
    }, delay);
    this.retryTimer.unref();
  }

  private clearRetry(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
  }
}
