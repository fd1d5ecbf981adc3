/**
 * What a command handler's outcome becomes on the wire: its answer trimmed to what is sent, or its
 * failure mapped onto a completion code (backend errors by kind, anything else 0xFF). The engine
 * (engine.ts) applies it to every handler it runs.
 */
import { isBackendError } from '../../backend/types.js';
import type { Logger } from '../../common/logger.js';
import { CC, type IpmiResponse } from '../types.js';

/** A handler's answer as sent: completion code cut to a byte, data only when there is some. */
export function settled(r: IpmiResponse): IpmiResponse {
  const out: IpmiResponse = r.data ? { cc: r.cc & 0xff, data: r.data } : { cc: r.cc & 0xff };
  if (r.closeAfter !== undefined) out.closeAfter = r.closeAfter;
  return out;
}

/** Maps a handler failure onto a completion code. */
export function completionForError(e: unknown, command: string, log: Logger): IpmiResponse {
  if (isBackendError(e)) {
    switch (e.code) {
      case 'Busy':
        return { cc: CC.NODE_BUSY };
      case 'Conflict':
        return { cc: CC.NOT_SUPPORTED_IN_PRESENT_STATE };
      case 'InvalidArgument':
        return { cc: CC.INVALID_DATA_FIELD };
      case 'Unsupported':
        return { cc: CC.NOT_SUPPORTED_IN_PRESENT_STATE };
      case 'Unavailable':
      case 'NotFound':
        log.warn({ command, code: e.code, msg: e.message }, 'backend cannot serve the request');
        return { cc: CC.UNSPECIFIED };
    }
  }
  log.error({ err: e, command }, 'command handler failed');
  return { cc: CC.UNSPECIFIED };
}
