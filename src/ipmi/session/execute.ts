/**
 * Running one request against the engine's command table (the session-layer rows of commands.ts
 * and every command of src/ipmi/commands): who may run what before and inside a session, the
 * handler's context, and its outcome settled or mapped onto a completion code (completion.ts).
 */
import type { Logger } from '../../common/logger.js';
import type { LanRequest } from '../codec/index.js';
import { CC, Privilege, type CommandSpec, type IpmiResponse, type SessionView } from '../types.js';
import type { EngineCommandTable, EngineContext, Envelope, Remote, SessionLayerContext } from './context.js';
import { completionForError, settled } from './completion.js';
import type { Session } from './table.js';

/** What executing one request yields: an IpmiResponse, none (dropped), or the promise of either. */
export type PendingResponse = IpmiResponse | undefined | Promise<IpmiResponse | undefined>;

/** What a handler sees as "the session" of a request that arrived before any session. */
const NO_SESSION: SessionView = { id: 0, username: '', privilege: Privilege.Callback, maxPrivilege: Privilege.Callback, authType: 'none', remote: '' };

/**
 * One table for every command. Before a session only the rows marked preSession run (no privilege
 * check); inside one, establishment-only rows get D5h and the rest need their minimum privilege.
 */
export function executeCommand(
  table: EngineCommandTable,
  ctx: EngineContext,
  req: LanRequest,
  env: Envelope,
  remote: Remote,
  log: Logger,
): PendingResponse {
  const spec = table.get((req.netFn << 8) | req.cmd);
  if (env.kind !== 'session') {
    if (!spec?.preSession) return { cc: CC.INSUFFICIENT_PRIVILEGE };
    if (spec.preSession === 'v15' && env.kind !== 'v15-pre') return { cc: CC.INVALID_COMMAND };
    return runHandler(ctx, spec, req, undefined, remote, log);
  }
  const s = env.session;
  if (!spec) return { cc: CC.INVALID_COMMAND };
  if (spec.establishmentOnly) return { cc: CC.NOT_SUPPORTED_IN_PRESENT_STATE };
  if (s.privilege < spec.minPrivilege) {
    log.info({ cmd: spec.name, privilege: s.privilege, needed: spec.minPrivilege }, 'insufficient privilege');
    return { cc: CC.INSUFFICIENT_PRIVILEGE };
  }
  return runHandler(ctx, spec, req, s, remote, log);
}

function runHandler(
  ctx: EngineContext,
  spec: CommandSpec<SessionLayerContext>,
  req: LanRequest,
  s: Session | undefined,
  remote: Remote,
  log: Logger,
): IpmiResponse | Promise<IpmiResponse> {
  const cctx: SessionLayerContext = {
    req: { netFn: req.netFn, cmd: req.cmd, lun: req.rsLUN, data: req.data },
    session: s ?? NO_SESSION,
    machine: ctx.machine,
    users: ctx.users,
    accounts: ctx.accounts,
    logger: log,
    channel: ctx.channel,
    lan: req,
    remote,
    state: s,
  };
  try {
    const r = spec.handler(cctx);
    // Promise.resolve returns a native promise as is (and adopts any other thenable).
    if (typeof (r as Partial<PromiseLike<IpmiResponse>>).then === 'function') {
      return Promise.resolve(r).then(settled, (e: unknown) => completionForError(e, spec.name, log));
    }
    return settled(r as IpmiResponse);
  } catch (e) {
    return completionForError(e, spec.name, log);
  }
}
