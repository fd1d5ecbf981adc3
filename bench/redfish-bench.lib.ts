/**
 * Shared by the Redfish benches (bench/redfish-vs-base.ts, bench/redfish-instructions.ts): a session
 * login, and the bare node:http server the Redfish benches compare the agent with (bench/redfish-vs-base.ts,
 * bench/redfish-instructions.ts): it answers GET `path` with the agent's own body and headers
 * after the same two credential checks (a Basic header or a session token, constant-time compares)
 * and 401 otherwise. Run with `node -e <source>`; env B_BODY, B_HEADERS (JSON), B_BASIC (the whole
 * Authorization value), B_TOKEN, B_PORT. It writes `readyLine` and a newline when it listens.
 */
export const BARE_SESSION_TOKEN = 'bare-session-token-0123456789abcdef';

export function bareServerSource(path: string, readyLine: string): string {
  return `
    const http = require('node:http');
    const { timingSafeEqual } = require('node:crypto');
    const body = Buffer.from(process.env.B_BODY);
    const headers = JSON.parse(process.env.B_HEADERS);
    const want = { authorization: Buffer.from(process.env.B_BASIC), 'x-auth-token': Buffer.from(process.env.B_TOKEN) };
    const ok = (name, got) => { if (got === undefined) return false; const g = Buffer.from(got); return g.length === want[name].length && timingSafeEqual(g, want[name]); };
    http.createServer((q, s) => {
      if (q.url !== ${JSON.stringify(path)} || !(ok('x-auth-token', q.headers['x-auth-token']) || ok('authorization', q.headers.authorization))) {
        s.writeHead(401, { 'content-type': 'application/json' }); s.end('{}'); return;
      }
      s.writeHead(200, { ...headers, 'content-length': body.length }); s.end(body);
    }).listen(Number(process.env.B_PORT), '127.0.0.1', () => process.stdout.write(${JSON.stringify(readyLine + '\n')}));`;
}

/** POST a session for `admin` on 127.0.0.1:port; its X-Auth-Token. */
export async function login(port: number, password: string): Promise<string> {
  const r = await fetch(`http://127.0.0.1:${port}/redfish/v1/SessionService/Sessions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ UserName: 'admin', Password: password }),
  });
  const token = r.headers.get('x-auth-token');
  if (r.status !== 201 || !token) throw new Error(`login on ${port}: ${r.status}`);
  return token;
}
