/**
 * KubeVirt mode: the account store (src/accounts/store.ts) persisted in the VirtualMachineBMC's
 * auth Secret (`spec.authSecretRef`, the one whose `username`/`password` the controller hands the
 * agent as BMC_USERNAME/BMC_PASSWORD), under one more key, `virtbmc-accounts`.
 *
 * - The controller's pod-template hash covers only `username` and `password`
 *   (src/controller/reconcile.ts checkSecret), so the agent writing its own key does not roll the
 *   agent. The agent never writes `username` or `password`.
 * - RBAC: `get` and `update` on that one Secret, by resourceName (src/controller/agent-rbac.ts).
 * - Every write is GET, replace our key, PUT with that object's resourceVersion; a 409 (someone
 *   else changed the Secret meanwhile, e.g. `kubectl edit` of another key) re-reads and writes
 *   again, so neither their change nor ours is lost. The store serialises its writes and each
 *   one carries the whole list, so a retry never resurrects an older list.
 * - The document holds the passwords in clear (IPMI RAKP needs them), like the file the simulator
 *   keeps; it lives only in the Secret and in memory, and is never logged.
 * - The seed: `seed` is the SHA-256 of the Secret's username and password the list was built
 *   from. When they differ at the next start (someone edited the Secret, which also rolled the
 *   agent), the seed account `seedId` takes the new name and password (an Administrator, enabled)
 *   and the other accounts stay; a missing document is built from the configured users.
 */
import { createHash } from 'node:crypto';
import type { Logger } from '../common/logger.js';
import { errText, isKubeApiError, type KubeClient } from '../kube/client.js';
import { Resources } from '../kube/resources.js';
import type { KubeObject } from '../kube/types.js';
import { AccountStore, FIRST_USER_ID, MAX_USER_ID, type PersistFn, type StoredAccount } from '../accounts/store.js';
import type { Role, UserAccount } from '../accounts/types.js';

/** The Secret data key the agent owns. */
export const ACCOUNTS_KEY = 'virtbmc-accounts';
/** Attempts of one write when the Secret keeps changing under it (409) */
export const MAX_WRITE_ATTEMPTS = 8;

const ROLES = new Set<Role>(['Administrator', 'Operator', 'ReadOnly']);

export interface AccountsDocument {
  version: 1;
  /** SHA-256 (hex) of `${username}\0${password}` of the configured seed account */
  seed: string;
  /** The IPMI user id of the seed account */
  seedId: number;
  accounts: readonly StoredAccount[];
}

/** The Secret's accounts key holds something other than an accounts document. */
export class AccountsDocumentError extends Error {
  override name = 'AccountsDocumentError';
}

type SecretObject = KubeObject & { data?: Record<string, string> };
type Client = Pick<KubeClient, 'get' | 'replace'>;

export function seedDigest(u: Pick<UserAccount, 'username' | 'password'>): string {
  return createHash('sha256').update(`${u.username}\u0000${u.password}`, 'utf8').digest('hex');
}

/** The document in a Secret's data, undefined when absent; throws on a malformed one. */
export function parseAccountsDocument(data: Record<string, string> | undefined, where: string): AccountsDocument | undefined {
  const b64 = data?.[ACCOUNTS_KEY];
  if (b64 === undefined || b64 === '') return undefined;
  let doc: Partial<AccountsDocument>;
  try {
    doc = JSON.parse(Buffer.from(b64, 'base64').toString('utf8')) as Partial<AccountsDocument>;
  } catch {
    throw new AccountsDocumentError(`${where}: key ${ACCOUNTS_KEY} is not JSON`);
  }
  if (doc === null || typeof doc !== 'object' || doc.version !== 1 || typeof doc.seed !== 'string' || typeof doc.seedId !== 'number' || !Array.isArray(doc.accounts)) {
    throw new AccountsDocumentError(`${where}: key ${ACCOUNTS_KEY} is not a version 1 accounts document`);
  }
  doc.accounts.forEach((a, i) => {
    const r = a as unknown as Record<string, unknown>;
    const ok =
      Number.isInteger(r.id) && (r.id as number) >= FIRST_USER_ID && (r.id as number) <= MAX_USER_ID &&
      typeof r.username === 'string' && typeof r.password === 'string' && ROLES.has(r.role as Role) &&
      typeof r.enabled === 'boolean' && typeof r.passwordChangeRequired === 'boolean';
    if (!ok) throw new AccountsDocumentError(`${where}: ${ACCOUNTS_KEY} account ${i} is malformed`);
  });
  return doc as AccountsDocument;
}

/**
 * The accounts to start with: the saved list when its seed still matches the configured one;
 * the saved list with the seed account renamed/re-passworded when the Secret's credentials
 * changed; the configured users when nothing is saved yet.
 */
export function startingAccounts(doc: AccountsDocument | undefined, configured: readonly UserAccount[]): { accounts: readonly (StoredAccount | UserAccount)[]; seedId: number; reseeded: boolean } {
  const seed = configured[0];
  if (!seed) throw new Error('no configured account');
  if (!doc) return { accounts: configured, seedId: FIRST_USER_ID, reseeded: false };
  if (doc.seed === seedDigest(seed)) return { accounts: doc.accounts, seedId: doc.seedId, reseeded: false };
  // The Secret's username/password changed: they win for the seed account; an account that
  // already had the new name gives it up (it is dropped: one name, one account).
  const others = doc.accounts.filter((a) => a.id !== doc.seedId && a.username !== seed.username);
  const free = (id: number) => !others.some((a) => a.id === id);
  let seedId = doc.seedId;
  if (!free(seedId)) for (seedId = FIRST_USER_ID; !free(seedId); seedId++);
  const accounts = [...others, { id: seedId, username: seed.username, password: seed.password, role: 'Administrator' as const, enabled: true, passwordChangeRequired: false }].sort((a, b) => a.id - b.id);
  return { accounts, seedId, reseeded: true };
}

export interface SecretAccountsOptions {
  client: Client;
  namespace: string;
  /** The auth Secret's name (VIRTBMC_ACCOUNTS_SECRET, set by the controller) */
  name: string;
  logger: Logger;
}

/** Reads and writes the accounts document of one Secret. */
export class SecretAccounts {
  readonly where: string;
  /** The Secret as last read or written (its other keys and resourceVersion are kept) */
  private last: SecretObject | undefined;
  seed = '';
  seedId = FIRST_USER_ID;
  /** Writes done, 409s retried (tests, logs) */
  readonly stats = { writes: 0, conflicts: 0 };

  constructor(private readonly o: SecretAccountsOptions) {
    this.where = `Secret ${o.namespace}/${o.name}`;
  }

  /** Take this object (e.g. from a watch) as the base of the next write, as if just read. */
  use(secret: SecretObject | undefined): void {
    this.last = secret;
  }

  /** The saved document, undefined when the key is absent; throws when the Secret cannot be read. */
  async load(): Promise<AccountsDocument | undefined> {
    this.last = await this.o.client.get<SecretObject>(Resources.secret, this.o.namespace, this.o.name);
    return parseAccountsDocument(this.last.data, this.where);
  }

  /** The store's persistence sink: one write of the whole list, retried on conflicts. */
  readonly persist: PersistFn = async (accounts) => {
    const value = Buffer.from(JSON.stringify({ version: 1, seed: this.seed, seedId: this.seedId, accounts } satisfies AccountsDocument)).toString('base64');
    for (let attempt = 1; ; attempt++) {
      const base = this.last ?? (await this.o.client.get<SecretObject>(Resources.secret, this.o.namespace, this.o.name));
      const body: SecretObject = { ...base, data: { ...base.data, [ACCOUNTS_KEY]: value } };
      try {
        this.last = await this.o.client.replace<SecretObject>(Resources.secret, this.o.namespace, this.o.name, body);
        this.stats.writes++;
        return;
      } catch (e) {
        this.last = undefined;
        if (!isKubeApiError(e, 409) || attempt >= MAX_WRITE_ATTEMPTS) {
          this.o.logger.warn({ secret: this.where, err: errText(e) }, 'accounts not saved to the Secret; the change is undone');
          throw e;
        }
        this.stats.conflicts++;
        this.o.logger.debug({ secret: this.where, attempt }, 'the Secret changed meanwhile (409): reading it again');
      }
    }
  };
}

/**
 * The KubeVirt-mode account store: loaded from the Secret (or seeded from `configured`), writing
 * every change back. The read is retried `loadAttempts` times (the apiserver may be starting);
 * after that the error is thrown: starting from the seed instead would overwrite saved accounts at
 * the first change.
 */
export async function secretAccountStore(
  o: SecretAccountsOptions & { configured: readonly UserAccount[]; loadAttempts?: number; retryDelayMs?: number; maxUserId?: number },
): Promise<{ store: AccountStore; secret: SecretAccounts }> {
  const secret = new SecretAccounts(o);
  let doc: AccountsDocument | undefined;
  const attempts = o.loadAttempts ?? 5;
  for (let i = 1; ; i++) {
    try {
      doc = await secret.load();
      break;
    } catch (e) {
      if (i >= attempts || e instanceof AccountsDocumentError) throw e;
      o.logger.warn({ secret: secret.where, err: errText(e), attempt: i }, 'cannot read the accounts Secret yet; retrying');
      await new Promise((r) => setTimeout(r, (o.retryDelayMs ?? 1000) * 2 ** (i - 1)));
    }
  }
  const start = startingAccounts(doc, o.configured);
  secret.seed = seedDigest(o.configured[0]!);
  secret.seedId = start.seedId;
  const store = new AccountStore(start.accounts, { persist: secret.persist, ...(o.maxUserId !== undefined ? { maxUserId: o.maxUserId } : {}) });
  if (doc && !start.reseeded) o.logger.info({ secret: secret.where, accounts: doc.accounts.length }, 'accounts loaded from the Secret');
  if (start.reseeded) {
    o.logger.info({ secret: secret.where, seedId: start.seedId }, "the Secret's username/password changed: the seed account takes them; saving");
    await secret.persist(store.snapshot());
  }
  return { store, secret };
}
