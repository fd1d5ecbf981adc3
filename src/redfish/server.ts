/**
 * The Redfish server: the koa app (./app.ts) over HTTP, or over HTTPS with plain HTTP on the same
 * port either redirected (308) or refused. One net.Server accepts every connection and peeks at
 * the first byte: 0x16 (a TLS handshake record) goes to the TLS server, anything else to plain HTTP.
 */
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { ProtocolServer, ProtocolServerOptions } from '../accounts/types.js';
import { createRedfishApp, redfishCallback } from './app.js';
import { attachConsoleWebSocket, type ConsoleSource } from './console-ws.js';
import { NetworkModel } from '../common/network.js';
import { errorBody } from './core/errors.js';
import { JSON_TYPE, ODATA_VERSION } from './core/odata.js';
import type { Logger } from '../common/logger.js';
import { AccountStore } from '../accounts/store.js';
import { DEFAULT_LOCKOUT_POLICY, LoginLockout, type LockoutPolicy } from '../accounts/lockout.js';
import { MemorySessionStore, DEFAULT_SESSION_TIMEOUT_SECONDS } from './core/sessions.js';
import { REDFISH_IDS, type OperationHandlers, type RedfishDeps } from './core/types.js';
import { nameBasedUuid } from './core/uuid.js';
import { modules as allModules } from './resources/index.js';
import { TlsCertificate, type CertificateStore } from './tls-certificate.js';

export interface RedfishServerOptions extends ProtocolServerOptions {
  /**
   * The machine's account store, shared by both protocols (src/accounts/store.ts); one per machine,
   * never a module singleton. Absent: the server wraps `users` in a private store of its own.
   */
  accounts?: AccountStore;
  /** Session idle timeout in seconds (SessionService.SessionTimeout), default 1800. */
  sessionTimeoutSeconds?: number;
  /** Serve HTTPS with this certificate/key; plainHttp says what plain HTTP on the same port does. */
  tls?: {
    cert: Buffer | string;
    key: Buffer | string;
    plainHttp?: 'redirect' | 'refuse';
    /** The files cert/key came from: CertificateService.ReplaceCertificate rewrites them when writable */
    certFile?: string;
    keyFile?: string;
    /** The HTTPS port clients reach (a Service's 443 in front of the pod's port) for the redirect; default the listening port */
    redirectPort?: number;
    /** Re-read certFile/keyFile this often (seconds; a rotated Kubernetes Secret mount); 0 or unset = never */
    reloadSeconds?: number;
    /** ReplaceCertificate keeps the new pair here (the Secret behind a read-only mount) instead of in the files */
    store?: CertificateStore;
  };
  /** UDP port of this agent's IPMI server, when it runs (advertised in ManagerNetworkProtocol). */
  ipmiPort?: number;
  /** Whether IPMI Serial-over-LAN is served right now (Manager SerialConsole.ServiceEnabled). */
  serialConsole?: () => boolean;
  /** The agent's login lockout, shared with IPMI; default: a private one with `lockoutPolicy`. */
  lockout?: LoginLockout;
  /** The agent's network identity (Manager EthernetInterfaces, NetworkProtocol HostName/FQDN). */
  network?: NetworkModel;
  /** Policy of the private lockout when `lockout` is not given (default DEFAULT_LOCKOUT_POLICY). */
  lockoutPolicy?: Partial<LockoutPolicy>;
}

const PEEK_TIMEOUT_MS = 30_000;

/** Namespace for ServiceRoot UUIDs (a fixed random UUID of this project). */
const SERVICE_UUID_NAMESPACE = '6f1c1f8e-3b0e-4c55-9d2a-2f4b7a9c0d11';

export interface RedfishServerInternals {
  /** Modules to bind (tests may pass a subset to check the missing-handler refusal) */
  modules?: readonly OperationHandlers[];
  now?: () => Date;
}

/**
 * A request node's HTTP parser refused before koa saw it, answered with a Redfish error body instead
 * of node's bare 400: an unknown/extension method (llhttp only knows the registered methods) is
 * 501 Not Implemented (DSP0266: an unsupported HTTP method); oversized headers 431; a header timeout
 * 408; anything else 400. The connection is closed after (the parser cannot resynchronise).
 */
export function answerClientError(logger: Logger) {
  return (err: Error & { code?: string }, socket: Duplex): void => {
    const inFlight = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage;
    if (err.code === 'ECONNRESET' || !socket.writable || inFlight?.headersSent) {
      socket.destroy();
      return;
    }
    let status = 400;
    let messageId = 'GeneralError';
    let detail = 'The request is not valid HTTP/1.1.';
    if (err.code === 'HPE_INVALID_METHOD') {
      status = 501;
      messageId = 'OperationNotAllowed';
      detail = 'The HTTP method is not implemented by this service.';
    } else if (err.code === 'HPE_HEADER_OVERFLOW') {
      status = 431;
      detail = 'The request headers are too large.';
    } else if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      status = 408;
      detail = 'The request headers did not arrive in time.';
    }
    logger.debug({ code: err.code, status }, 'redfish request refused by the HTTP parser');
    const body = JSON.stringify(errorBody([{ messageId }], detail));
    socket.end(
      `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? ''}\r\n` +
        `Content-Type: ${JSON_TYPE}\r\nOData-Version: ${ODATA_VERSION}\r\nCache-Control: no-store\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  };
}

/** The Redfish dependencies of one machine (one tenant in shared mode), without a listener. */
export async function createRedfishDeps(opts: RedfishServerOptions, internals: RedfishServerInternals = {}): Promise<RedfishDeps> {
  const now = internals.now ?? (() => new Date());
  const timeout = opts.sessionTimeoutSeconds ?? DEFAULT_SESSION_TIMEOUT_SECONDS;
  if (!Number.isInteger(timeout) || timeout < 1) {
    throw new Error(`Redfish session timeout must be a whole number of seconds ≥ 1 (got ${String(opts.sessionTimeoutSeconds)})`);
  }
  const info = await opts.machine.getSystemInfo();
  // the HTTPS certificate, for CertificateService (resources/certificates.ts); replaceable when from writable files
  const tlsCert = opts.tls
    ? new TlsCertificate(
        opts.tls.cert,
        opts.tls.key,
        opts.tls.certFile && opts.tls.keyFile ? { certFile: opts.tls.certFile, keyFile: opts.tls.keyFile } : undefined,
        opts.tls.store,
      )
    : undefined;
  // a GenerateCSR key kept before a restart still waits for its certificate; a slow apiserver (the
  // key kept in a Secret) holds the start up 2 s at most, the read then finishing in the background
  if (tlsCert) {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([tlsCert.restorePendingKey(), new Promise<void>((resolve) => (timer = setTimeout(resolve, 2000)))]);
    clearTimeout(timer);
  }
  const accounts = opts.accounts ?? new AccountStore(opts.users, { requireAdmin: false });
  const deps: RedfishDeps = {
    machine: opts.machine,
    users: accounts.users,
    accounts,
    sessions: new MemorySessionStore(timeout, now),
    lockout: opts.lockout ?? new LoginLockout({ ...DEFAULT_LOCKOUT_POLICY, ...opts.lockoutPolicy }, () => now().getTime()),
    logger: opts.logger,
    startedAt: now(),
    serviceUuid: nameBasedUuid(SERVICE_UUID_NAMESPACE, info.uuid.toLowerCase()),
    ids: REDFISH_IDS,
    now,
    tls: opts.tls !== undefined,
    ...(tlsCert ? { certificate: tlsCert } : {}),
    ...(opts.ipmiPort !== undefined ? { ipmiPort: opts.ipmiPort } : {}),
    ...(opts.serialConsole ? { serialConsole: opts.serialConsole } : {}),
    network: opts.network ?? new NetworkModel({ listenAddress: opts.address }),
  };
  return deps;
}

export async function startRedfishServer(
  opts: RedfishServerOptions,
  internals: RedfishServerInternals = {},
): Promise<ProtocolServer> {
  const deps = await createRedfishDeps(opts, internals);
  const app = createRedfishApp(deps, internals.modules ?? allModules);
  return listenRedfish(redfishCallback(app), opts, deps.certificate, deps);
}

/** The Redfish listener (HTTP, or HTTPS with plain HTTP redirected/refused) around a koa callback. */
export async function listenRedfish(
  callback: http.RequestListener,
  opts: Pick<RedfishServerOptions, 'address' | 'port' | 'tls' | 'logger'>,
  tlsCert?: TlsCertificate,
  /** Whose browser console the websocket serves: the machine (per-VM mode) or the tenants (shared mode) */
  consoleDeps?: RedfishDeps | ConsoleSource,
): Promise<ProtocolServer> {
  const sockets = new Set<net.Socket>();
  const track = (s: net.Socket): void => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  };

  let listener: net.Server;
  // the browser console's websocket (console-ws.ts), on the port that serves the page
  const consoles: { close(): void }[] = [];
  const tls = opts.tls;
  let stopReload: (() => void) | undefined;
  if (!tls) {
    const server = http.createServer(callback);
    server.on('connection', track);
    server.on('clientError', answerClientError(opts.logger));
    if (consoleDeps) consoles.push(attachConsoleWebSocket(server, consoleDeps));
    listener = server;
  } else {
    const secure = https.createServer({ cert: tls.cert, key: tls.key }, callback);
    // ReplaceCertificate: new connections get the new certificate, open ones keep theirs
    tlsCert?.onChange((cert, key) => secure.setSecureContext({ cert, key }));
    if (tlsCert && tls.reloadSeconds) {
      stopReload = tlsCert.watch(tls.reloadSeconds * 1000, (r) =>
        r === 'reloaded'
          ? opts.logger.info({ notAfter: tlsCert.certificate.validTo }, 'redfish HTTPS certificate reloaded from its files')
          : opts.logger.warn({ reason: r.rejected }, 'redfish HTTPS certificate files changed but were not taken'),
      );
    }
    const plain = http.createServer((req, res) => {
      // Only a plain host name or address from the Host header; anything else → our listen address.
      const given = (req.headers.host ?? '').replace(/:\d+$/, '');
      const host = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)$/.test(given) ? given : opts.address;
      const port = tls.redirectPort ?? (listener.address() as net.AddressInfo).port;
      const hostPart = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
      const portPart = port === 443 ? '' : `:${port}`;
      res.writeHead(308, { Location: `https://${hostPart}${portPart}${req.url ?? '/'}`, Connection: 'close' });
      res.end();
    });
    secure.on('clientError', answerClientError(opts.logger));
    if (consoleDeps) consoles.push(attachConsoleWebSocket(secure, consoleDeps));
    plain.on('clientError', answerClientError(opts.logger));
    secure.on('tlsClientError', (err) => opts.logger.debug({ err: err.message }, 'redfish TLS handshake failed'));
    listener = net.createServer({ pauseOnConnect: true }, (socket) => {
      track(socket);
      socket.on('error', () => socket.destroy());
      // A client that connects and never speaks is dropped; the HTTP(S) servers' own timeouts apply after.
      socket.setTimeout(PEEK_TIMEOUT_MS, () => socket.destroy());
      socket.once('data', (first: Buffer) => {
        socket.setTimeout(0);
        socket.pause();
        socket.unshift(first);
        if (first[0] === 0x16) secure.emit('connection', socket);
        else if (tls.plainHttp === 'refuse') return void socket.destroy();
        else plain.emit('connection', socket);
        process.nextTick(() => socket.resume());
      });
      socket.resume();
    });
  }
  listener.on('error', (err) => opts.logger.error({ err }, 'redfish server error'));

  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    listener.once('error', onError);
    listener.listen(opts.port, opts.address, () => {
      listener.off('error', onError);
      resolve();
    });
  });
  const addr = listener.address() as net.AddressInfo;
  const scheme = tls ? 'https' : 'http';
  const hostPart = addr.address.includes(':') ? `[${addr.address}]` : addr.address;
  opts.logger.info({ address: addr.address, port: addr.port, tls: Boolean(tls) }, 'redfish server listening');

  let closing: Promise<void> | undefined;
  return {
    name: 'redfish',
    address: addr.address,
    port: addr.port,
    url: `${scheme}://${hostPart}:${addr.port}/redfish/v1`,
    close() {
      closing ??= new Promise<void>((resolve) => {
        stopReload?.();
        listener.close(() => resolve());
        for (const c of consoles) c.close();
        for (const s of sockets) s.destroy();
      });
      return closing;
    },
  };
}
