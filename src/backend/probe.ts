/**
 * The image URL check every backend does before it "inserts" media: one HEAD request to the URL the
 * user gave (redirects reported, not followed; one connection, not pooled). Failures are the
 * caller's input problem → InvalidArgument, with a message that names the URL without its query
 * string or credentials (a pre-signed URL carries its token there) and no internal detail; an
 * unreadable CA file is the agent's configuration problem → Unavailable.
 *
 * The KubeVirt backend sizes the DataVolume from the answer (probeImageSize); the simulator only
 * needs the URL to serve something (probeImage).
 */
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import tls from 'node:tls';
import { BackendError } from './types.js';
import { EgressPolicy, EgressRefused, pinnedLookup, type EgressDecision } from './egress.js';

export interface ProbeTlsOptions {
  /** Trust any certificate (only the HEAD; CDI verifies on its own) */
  insecureSkipVerify?: boolean;
  /** PEM bundle trusted in addition to the system roots, read at each probe */
  caFile?: string;
}

export interface ProbeOptions {
  /** default 10000 */
  timeoutMs?: number;
  tls?: ProbeTlsOptions;
  /**
   * Where the URL may point (src/backend/egress.ts); default EgressPolicy.DEFAULT, which refuses
   * loopback, link-local (cloud metadata), unspecified, multicast and reserved addresses.
   */
  egress?: EgressPolicy;
}

export interface ProbeResult {
  status: number;
  /** Content-Length, when the server gave a positive one */
  size?: number;
}

/** The URL as it may appear in messages and logs: no userinfo, query or fragment. */
export function shownUrl(url: URL): string {
  return `${url.origin}${url.pathname}`;
}

/** Why a connection failed, in words that reveal nothing of the agent's internals (no addresses). */
function reason(e: unknown): string {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'ECONNREFUSED':
      return 'connection refused';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'host name not found';
    case 'ECONNRESET':
      return 'connection reset';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return 'host unreachable';
    case 'ETIMEDOUT':
      return 'connection timed out';
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
      return 'self-signed certificate not trusted';
    case 'CERT_HAS_EXPIRED':
      return 'certificate expired';
    case 'ERR_TLS_CERT_ALTNAME_INVALID':
      return 'certificate does not name this host';
    default:
      if (typeof code === 'string' && /CERT|SSL|TLS|UNABLE_TO/.test(code)) return 'certificate not trusted';
      if (e instanceof Error && e.message.startsWith('no answer within')) return e.message;
      return 'request failed';
  }
}

/** HEAD the image URL; 2xx or InvalidArgument (see the module comment). */
export async function probeImage(url: URL, opts: ProbeOptions = {}): Promise<ProbeResult> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const shown = shownUrl(url);
  // the egress policy first: nothing leaves the agent for a refused address; the reason (which
  // address, which range) goes to the log through `cause`, the user sees only that it is refused
  let decision: EgressDecision;
  try {
    decision = await (opts.egress ?? EgressPolicy.DEFAULT).check(url);
  } catch (e) {
    if (!(e instanceof EgressRefused)) throw e;
    throw new BackendError(
      'InvalidArgument',
      e.kind === 'unresolved' ? `image URL ${shown} is not reachable: host name not found` : `image URL ${shown} is not allowed by the agent's media egress policy`,
      { cause: e },
    );
  }
  const tlsOpts: https.RequestOptions = {};
  if (url.protocol === 'https:') {
    if (opts.tls?.insecureSkipVerify) tlsOpts.rejectUnauthorized = false;
    else if (opts.tls?.caFile) {
      let pem: string;
      try {
        // read per probe: a mounted ConfigMap may have been updated
        pem = await readFile(opts.tls.caFile, 'utf8');
      } catch (e) {
        throw new BackendError('Unavailable', `cannot read the media CA file ${opts.tls.caFile}`, { cause: e });
      }
      tlsOpts.ca = [...tls.rootCertificates, pem];
    }
  }
  let res: { status: number; headers: http.IncomingHttpHeaders };
  try {
    res = await new Promise((resolve, reject) => {
      const mod = url.protocol === 'https:' ? https : http;
      // connect to the address the policy checked, whatever a second DNS answer would say
      const req = mod.request(url, { method: 'HEAD', agent: false, lookup: pinnedLookup(decision), ...tlsOpts }, (r) => {
        r.resume();
        resolve({ status: r.statusCode ?? 0, headers: r.headers });
      });
      req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      req.on('error', reject);
      req.end();
    });
  } catch (e) {
    throw new BackendError('InvalidArgument', `image URL ${shown} is not reachable: ${reason(e)}`, { cause: e });
  }
  if (res.status >= 300 && res.status < 400) {
    throw new BackendError('InvalidArgument', `image URL ${shown} redirects (HTTP ${res.status}); give the final URL`);
  }
  if (res.status < 200 || res.status >= 300) {
    throw new BackendError('InvalidArgument', `image URL ${shown} answered HTTP ${res.status}${res.status === 404 ? ' (not found)' : ''}`);
  }
  const raw = res.headers['content-length'];
  const len = Number(raw);
  return raw !== undefined && Number.isFinite(len) && len > 0 ? { status: res.status, size: len } : { status: res.status };
}

/** HEAD the image URL for its size (Content-Length required). */
export async function probeImageSize(url: URL, opts: ProbeOptions = {}): Promise<number> {
  const { size } = await probeImage(url, opts);
  if (size === undefined) {
    throw new BackendError('InvalidArgument', `image URL ${shownUrl(url)} did not report the image size (Content-Length)`);
  }
  return size;
}
