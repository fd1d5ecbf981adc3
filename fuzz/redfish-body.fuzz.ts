/**
 * Fuzz target: Redfish request bodies through the real koa app (src/redfish/app.ts: the JSON body
 * reader with its size and depth caps, authentication, routing) into the PATCH validation
 * (src/redfish/core/patch.ts) and the action/session/AccountService handlers, in memory (no
 * socket). Virtual media inserts are left out: they reach out to the image URL.
 *
 * Input: byte 0 picks the route, byte 1 the Content-Type and the credentials, the rest is the body.
 * Invariants: never a 500 (an unexpected handler error); every answer is JSON; every error answer is
 * a Redfish error (error.code, @Message.ExtendedInfo with MessageIds); the lockout policy and the
 * session timeout stay valid whatever was PATCHed; no answer echoes the password.
 */
import { AccountStore } from '../src/accounts/store.js';
import { IncomingMessage, ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import { LoginLockout, lockoutPolicyProblems } from '../src/accounts/lockout.js';
import { SimulatedMachine } from '../src/backend/simulator/simulator.js';
import { nullLogger } from '../src/common/logger.js';
import { createRedfishApp } from '../src/redfish/app.js';
import { MemorySessionStore } from '../src/redfish/core/sessions.js';
import { REDFISH_IDS, type RedfishDeps } from '../src/redfish/core/types.js';
import { modules } from '../src/redfish/resources/index.js';
import { invariant } from './common.js';

const PASSWORD = 'Fuzz-Redfish-pw9';
const ROUTES: ReadonlyArray<[string, string]> = [
  ['PATCH', '/redfish/v1/Systems/1'],
  ['POST', '/redfish/v1/Systems/1/Actions/ComputerSystem.Reset'],
  ['POST', '/redfish/v1/Systems/1/VirtualMedia/Cd/Actions/VirtualMedia.EjectMedia'],
  ['PATCH', '/redfish/v1/Managers/BMC'],
  ['POST', '/redfish/v1/Managers/BMC/Actions/Manager.Reset'],
  ['PATCH', '/redfish/v1/SessionService'],
  ['POST', '/redfish/v1/SessionService/Sessions'],
  ['PATCH', '/redfish/v1/AccountService'],
  ['POST', '/redfish/v1/Systems'],
  ['PATCH', '/redfish/v1/AccountService/Accounts/1'],
];
const TYPES = ['application/json', 'application/json; charset=utf-8', 'text/plain', ''];
const AUTH = [`Basic ${Buffer.from(`admin:${PASSWORD}`).toString('base64')}`, `Basic ${Buffer.from('viewer:viewer-pw').toString('base64')}`];

const now = () => new Date(1_767_225_600_000);
const accounts = new AccountStore([
  { username: 'admin', password: PASSWORD, role: 'Administrator' },
  { username: 'viewer', password: 'viewer-pw', role: 'ReadOnly' },
]);
const deps: RedfishDeps = {
  machine: new SimulatedMachine({ powerOnDelayMs: 0, powerOffDelayMs: 0, mediaInsertDelayMs: 0 }),
  users: accounts.users,
  accounts,
  sessions: new MemorySessionStore(1800, now),
  lockout: new LoginLockout({ threshold: 0, durationSeconds: 30, counterResetAfterSeconds: 30 }),
  logger: nullLogger(),
  startedAt: now(),
  serviceUuid: '00000000-0000-5000-8000-000000000000',
  ids: REDFISH_IDS,
  now,
  tls: false,
};
const callback = createRedfishApp(deps, modules).callback();

function call(method: string, url: string, headers: Record<string, string>, body: Buffer): Promise<{ status: number; text: string }> {
  const req = new IncomingMessage(new Socket());
  req.method = method;
  req.url = url;
  req.headers = { ...headers, 'content-length': String(body.length) };
  if (body.length > 0) req.push(body);
  req.push(null);
  const res = new ServerResponse(req);
  const out: Buffer[] = [];
  return new Promise((resolve, reject) => {
    res.write = ((c: unknown) => (out.push(Buffer.from(c as Buffer)), true)) as typeof res.write;
    res.end = ((c?: unknown) => {
      if (c !== undefined && typeof c !== 'function') out.push(Buffer.from(c as Buffer));
      resolve({ status: res.statusCode, text: Buffer.concat(out).toString('utf8') });
      return res;
    }) as typeof res.end;
    Promise.resolve(callback(req, res)).catch(reject);
  });
}

export async function fuzz(data: Buffer): Promise<void> {
  if (data.length < 2) return;
  const [method, url] = ROUTES[data[0]! % ROUTES.length]!;
  const headers: Record<string, string> = { host: 'bmc', authorization: AUTH[(data[1]! >> 2) & 1]! };
  const type = TYPES[data[1]! & 3]!;
  if (type) headers['content-type'] = type;
  const r = await call(method, url, headers, data.subarray(2));
  invariant(r.status !== 500, `500 for ${method} ${url}: ${r.text.slice(0, 300)}`);
  invariant(r.status >= 200 && r.status < 600, `status ${r.status}`);
  invariant(!r.text.includes(PASSWORD), 'answer echoes the password');
  if (r.text.length > 0) {
    let json: Record<string, unknown>;
    try {
      json = JSON.parse(r.text) as Record<string, unknown>;
    } catch {
      throw new Error(`answer is not JSON (${r.status}): ${r.text.slice(0, 200)}`);
    }
    if (r.status >= 400) {
      const err = json.error as Record<string, unknown> | undefined;
      invariant(err && typeof err.code === 'string', `error answer without error.code: ${r.text.slice(0, 200)}`);
      const info = err['@Message.ExtendedInfo'];
      invariant(Array.isArray(info) && info.length > 0, 'error answer without @Message.ExtendedInfo');
      for (const m of info as Record<string, unknown>[]) invariant(typeof m.MessageId === 'string', 'ExtendedInfo entry without MessageId');
    }
  }
  invariant(lockoutPolicyProblems(deps.lockout.policy).length === 0, `lockout policy became invalid: ${JSON.stringify(deps.lockout.policy)}`);
  invariant(Number.isInteger(deps.sessions.timeoutSeconds) && deps.sessions.timeoutSeconds >= 30, 'session timeout became invalid');
  // Keep the lockout off and the session store from filling, whatever the input changed.
  if (deps.lockout.policy.threshold !== 0) deps.lockout.setPolicy({ threshold: 0, durationSeconds: 30, counterResetAfterSeconds: 30 });
  for (const s of deps.sessions.list()) deps.sessions.delete(s.id);
}
