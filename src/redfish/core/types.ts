/**
 * The Redfish framework's shared vocabulary: what every resource module (ours and helper D's)
 * receives. Handlers are plain async functions of a koa context; the app binds them to the
 * generated route table (generated/redfish/routes.ts) by operationId.
 */
import type { ParameterizedContext } from 'koa';
import type { NetworkModel } from '../../common/network.js';
import type { Role, UserAccount } from '../../accounts/types.js';
import type { Machine } from '../../backend/types.js';
import type { BmcEvent } from '../../events/hub.js';
import type { AccountStore } from '../../accounts/store.js';
import type { LoginLockout } from '../../accounts/lockout.js';
import type { Logger } from '../../common/logger.js';
import type { OperationId, Privilege, RouteDef } from '../../../generated/redfish/routes.js';
import type { TlsCertificate } from '../tls-certificate.js';

export type { OperationId, Privilege, RouteDef, Role, UserAccount };

/** Fixed resource ids: one system, one manager, one chassis per agent. */
export const REDFISH_IDS = { system: '1', manager: 'BMC', chassis: '1' } as const;
export type RedfishIds = typeof REDFISH_IDS;

/** A logged-in Redfish session (token kept only as a hash). */
export interface RedfishSession {
  readonly id: string;
  readonly username: string;
  readonly createdAt: Date;
  lastUsedAt: Date;
  /** Client address the session was created from */
  readonly clientAddress?: string;
  /** Client-supplied Context string from the login request */
  readonly context?: string;
}

export interface SessionStore {
  /** Idle timeout in seconds (SessionService.SessionTimeout) */
  timeoutSeconds: number;
  /** Create a session for an already-authenticated user; returns it with the plaintext token (only time it exists). */
  create(user: UserAccount, clientAddress?: string, context?: string): { session: RedfishSession; token: string };
  /** Find a live session by token and refresh its last-used time; undefined if unknown or expired. */
  authenticate(token: string): RedfishSession | undefined;
  /** A live session by id (does not refresh it). */
  get(id: string): RedfishSession | undefined;
  /** Live sessions, oldest first. */
  list(): RedfishSession[];
  /** Revoke; true if it existed. */
  delete(id: string): boolean;
}

export interface RedfishDeps {
  machine: Machine;
  users: readonly UserAccount[];
  /** The account store `users` comes from (AccountService writes go here; shared with IPMI) */
  accounts: AccountStore;
  sessions: SessionStore;
  /** Shared mode: put before this service's task ids (core/tasks.ts), so a task URI names its tenant */
  taskIdPrefix?: string;
  /** Login lockout per account and source (src/accounts/lockout.ts), shared with IPMI; AccountService knobs */
  lockout: LoginLockout;
  logger: Logger;
  startedAt: Date;
  /** ServiceRoot UUID: stable per machine (name-based UUID of the machine UUID) */
  serviceUuid: string;
  ids: RedfishIds;
  /** Clock, injectable for tests */
  now: () => Date;
  /** Whether the service is served over TLS (affects advertised protocols) */
  tls: boolean;
  /** The HTTPS certificate when served over TLS (CertificateService, src/redfish/tls-certificate.ts) */
  certificate?: TlsCertificate;
  /** UDP port of the agent's IPMI server when it runs and the agent passed it (undefined otherwise) */
  ipmiPort?: number;
  /** Whether IPMI Serial-over-LAN is served right now (Manager SerialConsole); absent = not */
  serialConsole?: () => boolean;
  /** The agent's own network identity (src/common/network.ts), shared with IPMI's LAN configuration; absent: read from the listening socket's interface */
  network?: NetworkModel;
}

export interface RedfishState {
  deps: RedfishDeps;
  /** The authenticated user (undefined on the few unauthenticated routes) */
  user?: UserAccount;
  requestId: string;
  logger: Logger;
  /** The route being served */
  route?: RouteDef;
  /**
   * True when the user reached this route only through the ConfigureSelf privilege: the handler
   * must then allow the request only on the user's own resource (own session, own account).
   */
  selfOnly?: boolean;
  /**
   * Exactly-once requests that carry an Idempotency-Key / X-Request-Id (core/idempotency.ts): a
   * digest of the user, the key and the request (method, path, body), the same for every retry of
   * it. Handlers hand it to the backend so that a retry reaching a restarted agent (the answer
   * cache is in memory) still finds what the first attempt made.
   */
  retryToken?: string;
  /** Shared mode: the path routed inside the tenant (its system, manager and chassis under the per-VM ids) */
  internalPath?: string;
  /** Shared mode: the tenant serving this request, the system ids the caller may see, every tenant's events (SSE) */
  tenant?: { id: string; visible: readonly string[]; events?: SharedEventSource };
}

/** Shared mode: one event of a tenant as the shared SSE stream carries it (core/tenancy.ts FleetEvents). */
export interface SharedEvent {
  /** Service-wide sequence number: the stream's `id:` (Last-Event-ID) */
  readonly seq: number;
  readonly tenant: string;
  /** The tenant's event, its origin under the tenant's ids (what `$filter` sees) */
  readonly event: BmcEvent;
  /** About the tenant's system, manager, chassis or one of its tasks (not a session or other service-level resource) */
  readonly systemScoped: boolean;
}

/** Shared mode: the events of every tenant in one sequence. */
export interface SharedEventSource {
  /** Events after `seq` of these tenants still kept, oldest first */
  since(seq: number, tenants: readonly string[]): SharedEvent[];
  /** Listen to these tenants' events; returns what stops it */
  on(tenants: readonly string[], listener: (e: SharedEvent) => void): () => void;
  /** The SSE frame of an event (`id:` its seq, every path under its tenant's ids) */
  frame(e: SharedEvent): string;
}

export type RedfishContext = ParameterizedContext<RedfishState> & { params: Record<string, string> };
export type RedfishHandler = (ctx: RedfishContext) => Promise<void>;
export type OperationHandlers = Partial<Record<OperationId, RedfishHandler>>;
