/**
 * Turning command-line flags and environment into an agent configuration. Pure: no I/O except
 * reading the users file, so the precedence rules (flags > env > defaults) are unit-tested.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { LOCKOUT_PROPERTIES, lockoutPolicyProblems, type LockoutPolicy } from '../accounts/lockout.js';
import type { Role, UserAccount } from '../accounts/types.js';
import { SESSION_TIMEOUT_LIMITS } from '../redfish/core/sessions.js';

/** `yaml` is loaded only when a users file is given (docs/scale.md "Cold start"); synchronous, as resolveUsers is. */
const loadCjs = createRequire(import.meta.url);
const parseYaml = (text: string): unknown => (loadCjs('yaml') as typeof import('yaml')).parse(text);

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

export interface CredentialInputs {
  flagUsername?: string | undefined;
  flagPassword?: string | undefined;
  /** --password-file: a file holding the password (one trailing newline is dropped) */
  passwordFile?: string | undefined;
  env: NodeJS.ProcessEnv;
  usersFile?: string | undefined;
}

const ROLES: readonly Role[] = ['Administrator', 'Operator', 'ReadOnly'];

/**
 * The primary BMC user comes from --username, else BMC_USERNAME (default admin), and is an
 * Administrator. Its password comes from --password-file, else --password, else BMC_PASSWORD; the
 * file and the environment are the documented ways (a command-line --password is visible in ps
 * and /proc/<pid>/cmdline; virtbmc warns). Extra users (e.g. a ReadOnly account) come from a
 * YAML/JSON users file: `[{username, password, role}]`. No password anywhere → ConfigError (never
 * a default password).
 */
export function resolveUsers(inp: CredentialInputs): UserAccount[] {
  const username = inp.flagUsername ?? inp.env['BMC_USERNAME'] ?? 'admin';
  if (inp.passwordFile !== undefined && inp.flagPassword !== undefined) {
    throw new ConfigError('--password and --password-file are exclusive: use one');
  }
  const password = inp.passwordFile !== undefined ? readPasswordFile(inp.passwordFile) : (inp.flagPassword ?? inp.env['BMC_PASSWORD']);
  if (password === undefined || password === '') {
    throw new ConfigError('no BMC password: pass --password-file or set BMC_PASSWORD');
  }
  checkAccount(username, password, 'the BMC user');
  const users: UserAccount[] = [{ username, password, role: 'Administrator' }];
  if (inp.usersFile) {
    let doc: unknown;
    try {
      doc = parseYaml(readFileSync(inp.usersFile, 'utf8'));
    } catch (e) {
      throw new ConfigError(`cannot read users file ${inp.usersFile}: ${(e as Error).message}`);
    }
    if (!Array.isArray(doc)) throw new ConfigError(`users file ${inp.usersFile} must hold a list of users`);
    doc.forEach((u: unknown, i: number) => {
      const rec = (u ?? {}) as Record<string, unknown>;
      const name = rec['username'];
      const pw = rec['password'];
      const role = rec['role'] ?? 'ReadOnly';
      if (typeof name !== 'string' || typeof pw !== 'string') {
        throw new ConfigError(`users file entry ${i}: username and password must be strings`);
      }
      if (!ROLES.includes(role as Role)) {
        throw new ConfigError(`users file entry ${i}: role must be one of ${ROLES.join(', ')}`);
      }
      checkAccount(name, pw, `users file entry ${i}`);
      if (users.some((x) => x.username === name)) throw new ConfigError(`duplicate user ${name}`);
      users.push({ username: name, password: pw, role: role as Role });
    });
  }
  return users;
}

/** The password in a file: its content less one trailing newline. Errors never show the content. */
export function readPasswordFile(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(`cannot read password file ${path}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  const pw = text.replace(/\r?\n$/, '');
  if (pw === '') throw new ConfigError(`password file ${path} is empty`);
  if (/[\r\n]/.test(pw)) throw new ConfigError(`password file ${path} must hold one line`);
  return pw;
}

/** Lockout policy from the three CLI flags (whole seconds); ConfigError naming the flag when out of range. */
export function parseLockoutPolicy(v: { threshold: string; duration: string; resetAfter: string }): LockoutPolicy {
  const flags: Record<keyof LockoutPolicy, string> = {
    threshold: '--account-lockout-threshold',
    durationSeconds: '--account-lockout-duration',
    counterResetAfterSeconds: '--account-lockout-reset-after',
  };
  const policy: LockoutPolicy = { threshold: Number(v.threshold), durationSeconds: Number(v.duration), counterResetAfterSeconds: Number(v.resetAfter) };
  const [first] = lockoutPolicyProblems(policy);
  if (first && first.message.includes('exceed')) throw new ConfigError(`${flags.counterResetAfterSeconds} must not exceed ${flags.durationSeconds}`);
  if (first) throw new ConfigError(first.message.replace(LOCKOUT_PROPERTIES[first.key], flags[first.key]));
  return policy;
}

function checkAccount(username: string, password: string, what: string): void {
  // IPMI carries user names in 16 bytes and RMCP+ passwords in 20 bytes.
  if (username.length === 0 || Buffer.byteLength(username) > 16) {
    throw new ConfigError(`${what}: user name must be 1..16 bytes`);
  }
  if (Buffer.byteLength(password) > 20) {
    throw new ConfigError(`${what}: password must be at most 20 bytes (the IPMI limit)`);
  }
}

export function parsePort(value: string, name: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new ConfigError(`${name} must be a port number, got ${value}`);
  return n;
}

export function parseNonNegative(value: string, name: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new ConfigError(`${name} must be a non-negative number, got ${value}`);
  return n;
}

/** An inclusive range of whole numbers, as the Redfish PATCH checks declare them (`{ integer: range }`). */
export interface IntRange {
  readonly min: number;
  readonly max: number;
}

/** A whole number in `range` (e.g. seconds); ConfigError naming the flag and the range otherwise. */
export function parseIntInRange(value: string, name: string, range: IntRange): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isInteger(n) || n < range.min || n > range.max) {
    throw new ConfigError(`${name} must be a whole number from ${range.min} to ${range.max}, got ${value}`);
  }
  return n;
}

/**
 * --redfish-session-timeout: the very range PATCH /redfish/v1/SessionService enforces on
 * SessionTimeout (SESSION_TIMEOUT_LIMITS, src/redfish/core/sessions.ts).
 */
export const REDFISH_SESSION_TIMEOUT_RANGE: IntRange = SESSION_TIMEOUT_LIMITS;
/** --ipmi-session-timeout: whole seconds, at least 1 (0 would end every session at once), at most a day like Redfish. */
export const IPMI_SESSION_TIMEOUT_RANGE: IntRange = { min: 1, max: SESSION_TIMEOUT_LIMITS.max };

export function parsePositiveInt(value: string, name: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new ConfigError(`${name} must be a whole number of at least 1, got ${value}`);
  return n;
}

/** The command line with the value of --password replaced. */
export function scrubbedCommandLine(argv: readonly string[]): string {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--password' && i + 1 < argv.length) {
      out.push(a, '***');
      i++;
    } else out.push(a.startsWith('--password=') ? '--password=***' : a);
  }
  return out.join(' ');
}
