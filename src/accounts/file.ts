/**
 * Simulator persistence of the account store: one JSON file (`--accounts-file`), written after
 * every change to a temporary file with mode 0600 and renamed over the old one, so a crash leaves
 * the old or the new list, never half of one. It holds passwords in clear (IPMI RAKP needs them,
 * src/accounts/store.ts), so it is created owner-readable only; it is never logged.
 */
import { chmod, rename, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import type { PersistFn, StoredAccount } from './store.js';

const ROLES = new Set(['Administrator', 'Operator', 'ReadOnly']);

/** The accounts a file holds, or undefined when it does not exist yet; throws on a malformed file. */
export function readAccountsFile(path: string): StoredAccount[] | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  const doc = JSON.parse(text) as { accounts?: unknown };
  if (!Array.isArray(doc.accounts)) throw new Error(`${path}: no "accounts" list`);
  return doc.accounts.map((a: unknown, i: number) => {
    const r = a as Record<string, unknown>;
    const ok =
      typeof r.id === 'number' && typeof r.username === 'string' && typeof r.password === 'string' && ROLES.has(r.role as string) &&
      typeof r.enabled === 'boolean' && typeof r.passwordChangeRequired === 'boolean';
    if (!ok) throw new Error(`${path}: account ${i} is malformed`);
    return r as unknown as StoredAccount;
  });
}

/** A PersistFn writing the whole list to `path` (atomic rename, mode 0600). */
export function accountsFileWriter(path: string): PersistFn {
  return async (accounts) => {
    const tmp = `${path}.${process.pid}.tmp`;
    await writeFile(tmp, `${JSON.stringify({ version: 1, accounts }, null, 2)}\n`, { mode: 0o600 });
    await chmod(tmp, 0o600);
    await rename(tmp, path);
  };
}
