/**
 * The browser's serial console: a websocket endpoint on the Redfish port (and its TLS) attached to
 * the same console stream as IPMI SOL (Machine.openConsole, src/backend/console.ts).
 *
 * Protocol (subprotocol `kvbmc.console.v1`, path /ui/ws/console/{ComputerSystemId}):
 *   - the upgrade is refused (403) when an Origin header names another host than the one asked
 *     (or http: while serving TLS); a browser always sends Origin, so another site's page cannot
 *     attach — and it could not authenticate anyway: the token is never in a cookie or a URL;
 *   - client → server, first message, within AUTH_TIMEOUT_MS: text `{"type":"auth","token":"<X-Auth-Token>"}`
 *     (a Redfish session token); anything else closes with 4401;
 *   - then binary messages are keystrokes for the guest; text messages are controls:
 *     `{"type":"resize","cols","rows"}` (noted; a serial line has no window size),
 *     `{"type":"break"}` (a serial break);
 *   - server → client: binary = guest output (first the backlog); text JSON
 *     `{"type":"hello",user,role,state,writer,holder,message}`, `{"type":"state",state}`,
 *     `{"type":"writer",writer,holder,message}`, `{"type":"notice",message}`;
 *   - the socket closes with 4401 when the session ends (logout, expiry), 4404 when the system has no
 *     console (or, in shared mode, is not one the session may see: the same answer as an unknown id),
 *     4403 when the account may not use the console: a role without ConfigureComponents (ReadOnly),
 *     or an account whose PasswordChangeRequired is set (the Redfish service answers such a session
 *     403 PasswordChangeRequired everywhere but its own account: core/auth.ts passwordChangeGate).
 *     Both are checked at attach and again every SESSION_CHECK_MS (a demotion or a new password
 *     requirement closes an open console).
 * Console privilege: ConfigureComponents, as OpenBMC's bmcweb asks of its host console websocket
 * (include/obmc_console.hpp, route /console0) — a ReadOnly account neither types nor watches: the
 * output of a serial console carries what is typed at its prompts.
 * Who may type: src/backend/console-writer.ts (one writer; SOL preempts).
 * Shared mode (core/tenancy.ts): the path's id names the tenant; the token's tenant store and the
 * session's scope decide whether the caller may see it (sharedConsoleSource below).
 */
import type http from 'node:http';
import { createRequire } from 'node:module';
import type { Duplex } from 'node:stream';
import type { RawData, WebSocket, WebSocketServer } from 'ws';
import { consoleWriterLock, type ConsoleWriter } from '../backend/console-writer.js';
import type { UserAccount } from '../accounts/types.js';
import type { ConsoleStream } from '../backend/types.js';
import type { Logger } from '../common/logger.js';
import { hasPrivilege } from './core/auth.js';
import type { Tenancy, TenantSessionStore } from './core/tenancy.js';
import type { RedfishDeps, RedfishSession, SessionStore } from './core/types.js';

export const CONSOLE_WS_PREFIX = '/ui/ws/console/';
export const CONSOLE_SUBPROTOCOL = 'kvbmc.console.v1';
export const AUTH_TIMEOUT_MS = 10_000;
/** How often an open console checks that its session still exists (logout closes it within this). */
export const SESSION_CHECK_MS = 2_000;
export const MAX_CONSOLE_CLIENTS = 16;
const MAX_MESSAGE_BYTES = 64 * 1024;
/** Output queued towards a slow browser before the console is held (back-pressure to the guest). */
const HIGH_WATER = 256 * 1024;
const LOW_WATER = 64 * 1024;

export const CLOSE_UNAUTHORIZED = 4401;
export const CLOSE_FORBIDDEN = 4403;
export const CLOSE_NO_CONSOLE = 4404;

/** Whom a console socket serves, once its first message named a session. */
export interface ConsoleTarget {
  /** The deps of the system whose console it is (machine, accounts) */
  deps: RedfishDeps;
  /** The store that issued the session (in shared mode possibly another tenant's) */
  sessions: SessionStore;
  session: RedfishSession;
  user: UserAccount;
}

/**
 * Where consoles come from: one machine (per-VM agent) or the tenants of a shared agent.
 * `resolve` answers 'unauthorized' for a token no store knows, 'not-found' when the session may not
 * see `systemId` (or no such system), else the target.
 */
export interface ConsoleSource {
  tls: boolean;
  logger: Logger;
  /** false when the id can be refused before authentication (per-VM: only one id exists) */
  known(systemId: string): boolean;
  resolve(systemId: string, token: string): ConsoleTarget | 'unauthorized' | 'not-found';
}

/**
 * Why the target's account may not use the console now (its role and PasswordChangeRequired can
 * change while a console is open): 'gone' when the account no longer exists or is disabled.
 */
function consoleRefusal(target: ConsoleTarget): 'gone' | 'PasswordChangeRequired' | 'InsufficientPrivilege' | undefined {
  const user = target.deps.users.find((u) => u.username === target.session.username);
  if (!user) return 'gone';
  if (target.deps.accounts.byName(user.username)?.passwordChangeRequired) return 'PasswordChangeRequired';
  if (!hasPrivilege(user.role, 'ConfigureComponents')) return 'InsufficientPrivilege';
  return undefined;
}

/** The one machine of a per-VM agent. */
export function singleConsoleSource(deps: RedfishDeps): ConsoleSource {
  return {
    tls: deps.tls,
    logger: deps.logger,
    known: (id) => id === deps.ids.system,
    resolve(id, token) {
      const session = deps.sessions.authenticate(token);
      const user = session ? deps.users.find((u) => u.username === session.username) : undefined;
      if (!session || !user) return 'unauthorized';
      if (id !== deps.ids.system) return 'not-found';
      return { deps, sessions: deps.sessions, session, user };
    },
  };
}

/**
 * The tenants of a shared agent: the token's prefix names the tenant store that issued it
 * (TenantSessionStore); the session's scope (the tenants its credentials matched at login) must
 * include the path's id, else the answer is the one of an unknown id, as Redfish's 404 there.
 */
export function sharedConsoleSource(tenancy: Tenancy, opts: { tls: boolean; logger: Logger }): ConsoleSource {
  return {
    tls: opts.tls,
    logger: opts.logger,
    known: () => true, // existence is told only to a caller who may see it
    resolve(id, token) {
      let issuer: { store: TenantSessionStore; session: RedfishSession; home: string } | undefined;
      for (const tid of tenancy.ids()) {
        const t = tenancy.get(tid);
        const store = t?.deps.sessions as TenantSessionStore | undefined;
        // each store checks its own token prefix first: only the issuer does a lookup
        const session = store?.authenticate(token);
        if (store && session) {
          issuer = { store, session, home: tid };
          break;
        }
      }
      if (!issuer) return 'unauthorized';
      const scope = issuer.store.scopeOf(issuer.session.id) ?? [issuer.home];
      const target = scope.includes(id) ? tenancy.get(id) : undefined;
      const user = target?.deps.users.find((u) => u.username === issuer.session.username);
      if (!target || !user) return 'not-found';
      return { deps: target.deps, sessions: issuer.store, session: issuer.session, user };
    },
  };
}

const REFUSAL_TEXT: Record<'PasswordChangeRequired' | 'InsufficientPrivilege', string> = {
  PasswordChangeRequired: 'Change your password first: this account must set a new password before it can use the console.',
  InsufficientPrivilege: 'Your role cannot use the serial console (it needs the ConfigureComponents privilege).',
};

function refuse(socket: Duplex, status: number, reason: string): void {
  socket.end(`HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}

/** Whether the Origin header (when sent) is this service as the client reached it. */
export function originAllowed(req: http.IncomingMessage, tls: boolean): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) return true; // not a browser: no cross-site risk, the token still decides
  let u: URL;
  try {
    u = new URL(origin);
  } catch {
    return false;
  }
  if (u.protocol !== (tls ? 'https:' : 'http:')) return false;
  return u.host !== '' && u.host.toLowerCase() === (req.headers.host ?? '').toLowerCase();
}

export interface ConsoleWebSocket {
  /** Handles an HTTP upgrade; false when the path is not the console's (the caller answers). */
  handleUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): boolean;
  readonly clients: number;
  close(): void;
}

/**
 * `ws` is loaded when the first console upgrade arrives, not at start (docs/scale.md "Cold
 * start"): most agents never serve a browser console. Synchronous (CommonJS) so an upgrade is
 * handled in the same tick as before.
 */
const loadCjs = createRequire(import.meta.url);

export function createConsoleWebSocket(from: RedfishDeps | ConsoleSource): ConsoleWebSocket {
  const source: ConsoleSource = 'resolve' in from ? from : singleConsoleSource(from);
  let server: WebSocketServer | undefined;
  const wss = (): WebSocketServer =>
    (server ??= new (loadCjs('ws') as { WebSocketServer: typeof WebSocketServer }).WebSocketServer({
      noServer: true,
      maxPayload: MAX_MESSAGE_BYTES,
      perMessageDeflate: false,
      handleProtocols: (offered) => (offered.has(CONSOLE_SUBPROTOCOL) ? CONSOLE_SUBPROTOCOL : false),
    }));
  const open = new Set<WebSocket>();
  const log = source.logger.child({ console: 'web' });

  const serve = (ws: WebSocket, req: http.IncomingMessage, systemId: string): void => {
    open.add(ws);
    const send = (msg: object): void => {
      if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(msg));
    };
    let cleanup = (): void => undefined;
    const authTimer = setTimeout(() => ws.close(CLOSE_UNAUTHORIZED, 'authentication timeout'), AUTH_TIMEOUT_MS);
    authTimer.unref?.();
    ws.on('close', () => {
      clearTimeout(authTimer);
      open.delete(ws);
      cleanup();
    });
    ws.on('error', () => ws.terminate());

    ws.once('message', (first: RawData, isBinary: boolean) => {
      clearTimeout(authTimer);
      let token = '';
      if (!isBinary) {
        try {
          const m = JSON.parse(first.toString()) as { type?: unknown; token?: unknown };
          if (m.type === 'auth' && typeof m.token === 'string') token = m.token;
        } catch {
          /* not JSON: refused below */
        }
      }
      const resolved = token ? source.resolve(systemId, token) : 'unauthorized';
      if (resolved === 'unauthorized') {
        send({ type: 'error', message: 'The session token is not valid; log in again.' });
        ws.close(CLOSE_UNAUTHORIZED, 'NoValidSession');
        return;
      }
      if (resolved === 'not-found') {
        send({ type: 'error', message: `No system ${systemId} for this session.` });
        ws.close(CLOSE_NO_CONSOLE, 'no such system');
        return;
      }
      const target: ConsoleTarget = resolved;
      const { deps, session, user } = target;
      /** The account still may use the console; else the socket is closed (4401 gone, 4403 refused). */
      const mayNow = (): boolean => {
        const why = consoleRefusal(target);
        if (why === undefined) return true;
        if (why === 'gone') ws.close(CLOSE_UNAUTHORIZED, 'account gone');
        else {
          send({ type: 'error', message: REFUSAL_TEXT[why], code: why });
          ws.close(CLOSE_FORBIDDEN, why);
        }
        return false;
      };
      if (!mayNow()) {
        log.info({ user: user.username }, 'browser console refused');
        return;
      }
      if (typeof deps.machine.openConsole !== 'function') {
        send({ type: 'error', message: 'This system has no serial console.' });
        ws.close(CLOSE_NO_CONSOLE, 'no console');
        return;
      }
      const stream: ConsoleStream = deps.machine.openConsole();
      const lock = consoleWriterLock(deps.machine);
      let writer = false;
      const me: ConsoleWriter = {
        kind: 'web',
        label: `${user.username} (browser)`,
        revoked: (by) => {
          writer = false;
          send({ type: 'writer', writer: false, holder: by.label, message: `${by.label} took the console input; read-only until it is released.` });
          lock.wait(me, granted);
        },
      };
      const granted = (): void => {
        writer = true;
        send({ type: 'writer', writer: true, holder: me.label, message: 'You have the console input.' });
      };
      let hello: string;
      if (lock.acquire(me)) {
        writer = true;
        hello = 'You have the console input.';
      } else {
        hello = `${lock.holder?.label ?? 'Another client'} holds the console input; read-only until it is released.`;
        lock.wait(me, granted);
      }
      log.info({ user: user.username, writer, remote: req.socket.remoteAddress }, 'browser console attached');
      send({ type: 'hello', user: user.username, role: user.role, state: stream.state, writer, holder: lock.holder?.label ?? null, message: hello });
      if (stream.backlog.length > 0) ws.send(stream.backlog);

      // output → browser, holding the console while the browser lags
      let held = false;
      let drainTimer: NodeJS.Timeout | undefined;
      const checkDrain = (): void => {
        if (ws.bufferedAmount <= LOW_WATER || ws.readyState !== ws.OPEN) {
          held = false;
          drainTimer = undefined;
          stream.hold(false);
        } else drainTimer = setTimeout(checkDrain, 20);
      };
      const off = stream.on((e) => {
        if (e.type === 'data') {
          if (ws.readyState !== ws.OPEN) return;
          ws.send(e.data);
          if (!held && ws.bufferedAmount > HIGH_WATER) {
            held = true;
            stream.hold(true);
            drainTimer = setTimeout(checkDrain, 20);
          }
        } else if (e.type === 'state') send({ type: 'state', state: e.state });
        else if (e.type === 'drain') ws.resume();
      });

      let warned = false;
      ws.on('message', (data: RawData, binary: boolean) => {
        const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
        if (!binary) {
          let m: { type?: unknown; cols?: unknown; rows?: unknown };
          try {
            m = JSON.parse(buf.toString()) as typeof m;
          } catch {
            return send({ type: 'notice', message: 'Unrecognised control message ignored.' });
          }
          if (m.type === 'break' && writer && mayNow()) stream.sendBreak();
          // resize: a serial line carries no window size; the guest learns it from stty/resize
          return;
        }
        if (!target.sessions.authenticate(token)) return void ws.close(CLOSE_UNAUTHORIZED, 'session ended');
        if (!mayNow()) return;
        if (!writer) {
          if (!warned) send({ type: 'notice', message: `Input ignored: ${lock.holder?.label ?? 'another client'} holds the console input.` });
          warned = true;
          return;
        }
        warned = false;
        const n = stream.write(buf);
        // the input queue is full: stop reading the browser until the console drains
        if (n < buf.length && stream.state === 'connected') ws.pause();
      });

      const sessionCheck = setInterval(() => {
        if (!target.sessions.get(session.id)) ws.close(CLOSE_UNAUTHORIZED, 'session ended');
        else mayNow();
      }, SESSION_CHECK_MS);
      sessionCheck.unref?.();
      cleanup = () => {
        clearInterval(sessionCheck);
        if (drainTimer) clearTimeout(drainTimer);
        off();
        lock.release(me);
        stream.close();
        log.info({ user: user.username }, 'browser console detached');
      };
    });
  };

  return {
    handleUpgrade(req, socket, head) {
      const path = (req.url ?? '').split('?')[0] as string;
      if (!path.startsWith(CONSOLE_WS_PREFIX)) return false;
      let system: string;
      try {
        system = decodeURIComponent(path.slice(CONSOLE_WS_PREFIX.length));
      } catch {
        return refuse(socket, 404, 'Not Found'), true;
      }
      if (system === '' || system.includes('/') || !source.known(system)) return refuse(socket, 404, 'Not Found'), true;
      if (!originAllowed(req, source.tls)) return refuse(socket, 403, 'Forbidden'), true;
      if (open.size >= MAX_CONSOLE_CLIENTS) return refuse(socket, 503, 'Service Unavailable'), true;
      wss().handleUpgrade(req, socket, head, (ws) => serve(ws, req, system));
      return true;
    },
    get clients() {
      return open.size;
    },
    close() {
      for (const ws of open) ws.terminate();
      server?.close();
    },
  };
}

/** Hooks the console endpoint onto an HTTP(S) server's upgrades; other upgrade paths get 404. */
export function attachConsoleWebSocket(server: http.Server, from: RedfishDeps | ConsoleSource): ConsoleWebSocket {
  const c = createConsoleWebSocket(from);
  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    if (!c.handleUpgrade(req, socket, head)) refuse(socket, 404, 'Not Found');
  });
  return c;
}
