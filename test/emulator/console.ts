/**
 * The VMI serial console subresource of the emulator, as virt-api and virt-handler serve it:
 *
 * - GET /apis/subresources.kubevirt.io/v1/namespaces/{ns}/virtualmachineinstances/{name}/console,
 *   upgraded to a websocket (pkg/virt-api/api.go registers `virtualmachineinstances/console`; RBAC
 *   verb get). The upgrader offers the `plain.kubevirt.io` subprotocol and, as gorilla's does,
 *   proceeds without one when the client offers none that matches
 *   (staging/src/kubevirt.io/client-go/kubevirt/typed/core/v1/websocket.go NewUpgrader).
 * - Before upgrading, the VMI is checked (pkg/virt-api/rest/console.go validateVMIForConsole):
 *   missing → 404; autoattachSerialConsole false → 400 "No serial consoles are present."; phase
 *   Failed → 409; not Running → 400 "VMI is not running".
 * - Raw bytes in binary frames both ways (pkg/virt-api/rest/streamer.go NewRawStreamer).
 * - One serial connection per VMI: a new one closes the one before
 *   (pkg/virt-handler/rest/console.go newStopChan).
 * - The stream ends when the VMI stops running or goes away (virt-handler loses the socket).
 *
 * The guest side is a test hook: write() is what the guest prints (lost when nobody is connected,
 * as on a serial line nobody reads), received() is what it was sent.
 */
import type http from 'node:http';
import type { Socket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import type { EmulatorServer } from './server.js';
import type { Store } from './store.js';
import type { KubeObject } from './types.js';

export const PLAIN_STREAM_PROTOCOL = 'plain.kubevirt.io';

export interface ConsoleConnection {
  namespace: string;
  name: string;
  vmiUid: string;
  /** Request path as received */
  path: string;
  /** Subprotocols the client offered, and the one chosen ('' = none) */
  offered: string[];
  protocol: string;
  open: boolean;
  /** Why the emulator ended it, if it did */
  endedBy?: 'replaced' | 'vmi-stopped' | 'closed';
  received: Buffer[];
  ws: WebSocket;
}

export type UpgradeReject = (code: number, message: string, reason?: string) => void;

function vmiRunning(o: KubeObject | undefined): boolean {
  const st = o?.status as { phase?: string } | undefined;
  return st?.phase === 'Running' && !o?.metadata?.deletionTimestamp;
}

export class SerialConsoles {
  readonly connections: ConsoleConnection[] = [];
  private readonly wss: WebSocketServer;

  constructor(private readonly store: Store) {
    this.wss = new WebSocketServer({
      noServer: true,
      perMessageDeflate: false,
      handleProtocols: (offered) => (offered.has(PLAIN_STREAM_PROTOCOL) ? PLAIN_STREAM_PROTOCOL : false),
    });
    const vmiT = store.registry.mustByKind('kubevirt.io/v1', 'VirtualMachineInstance');
    store.onEvent((ev) => {
      if (ev.t !== vmiT) return;
      const uid = ev.obj.metadata?.uid;
      if (ev.type === 'DELETED' || !vmiRunning(ev.obj)) {
        for (const c of this.connections) if (c.open && c.vmiUid === uid) this.end(c, 'vmi-stopped');
      }
    });
  }

  /** Upgrade handler for virtualmachineinstances/console (see EmulatorServer.addUpgrade). */
  handle(req: http.IncomingMessage, socket: Socket, head: Buffer, namespace: string, name: string, reject: UpgradeReject): void {
    const vmiT = this.store.registry.mustByKind('kubevirt.io/v1', 'VirtualMachineInstance');
    const vmi = this.store.get(vmiT, namespace, name);
    if (!vmi) return reject(404, `virtualmachineinstances.kubevirt.io "${name}" not found`, 'NotFound');
    const devices = (vmi.spec as { domain?: { devices?: { autoattachSerialConsole?: boolean } } } | undefined)?.domain?.devices;
    if (devices?.autoattachSerialConsole === false) return reject(400, 'No serial consoles are present.', 'BadRequest');
    const phase = (vmi.status as { phase?: string } | undefined)?.phase;
    if (phase === 'Failed') return reject(409, `Operation cannot be fulfilled on virtualmachineinstance.kubevirt.io "${name}": VMI is in failed status`, 'Conflict');
    if (!vmiRunning(vmi)) return reject(400, 'VMI is not running', 'BadRequest');
    const uid = vmi.metadata?.uid ?? '';
    const offered = String(req.headers['sec-websocket-protocol'] ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      for (const c of this.connections) if (c.open && c.vmiUid === uid) this.end(c, 'replaced');
      const conn: ConsoleConnection = { namespace, name, vmiUid: uid, path: req.url ?? '', offered, protocol: ws.protocol, open: true, received: [], ws };
      this.connections.push(conn);
      ws.on('message', (data: Buffer) => conn.received.push(Buffer.from(data)));
      ws.on('close', () => {
        conn.open = false;
      });
      ws.on('error', () => undefined);
    });
  }

  /** The connection open for this VMI name, if any. */
  current(namespace: string, name: string): ConsoleConnection | undefined {
    return this.connections.find((c) => c.open && c.namespace === namespace && c.name === name);
  }

  /** The guest prints: to the open connection, or nowhere. Returns whether someone got it. */
  write(namespace: string, name: string, data: string | Buffer): boolean {
    const c = this.current(namespace, name);
    if (!c) return false;
    c.ws.send(typeof data === 'string' ? Buffer.from(data, 'latin1') : data, { binary: true });
    return true;
  }

  /** Everything the guest of this VMI name was sent, over all connections. */
  received(namespace: string, name: string): Buffer {
    return Buffer.concat(this.connections.filter((c) => c.namespace === namespace && c.name === name).flatMap((c) => c.received));
  }

  close(): void {
    for (const c of this.connections) if (c.open) this.end(c, 'closed');
    this.wss.close();
  }

  private end(c: ConsoleConnection, why: NonNullable<ConsoleConnection['endedBy']>): void {
    c.open = false;
    c.endedBy = why;
    c.ws.close(1000);
    setTimeout(() => c.ws.terminate(), 500).unref();
  }
}

/** Serves virtualmachineinstances/console on the emulator's server. */
export function installSerialConsole(store: Store, server: EmulatorServer): SerialConsoles {
  const consoles = new SerialConsoles(store);
  server.addUpgrade('subresources.kubevirt.io', 'v1', 'virtualmachineinstances', 'console', (req, socket, head, t, reject) =>
    consoles.handle(req, socket, head, t.namespace, t.name, reject),
  );
  return consoles;
}
