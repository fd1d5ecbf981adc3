/**
 * Simulator-mode persistence of subscriptions: a JSON state file (mode 0600: HttpHeaders may hold
 * credentials), written to a temporary file and renamed so a crash never leaves half a file.
 */
import { promises as fs } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import type { SubscriptionPersistence, SubscriptionRecord } from './subscriptions.js';

export class FilePersistence implements SubscriptionPersistence {
  readonly where: string;
  constructor(private readonly path: string) {
    this.where = `file ${path}`;
  }

  async load(): Promise<SubscriptionRecord[]> {
    let text: string;
    try {
      text = await fs.readFile(this.path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    const doc = JSON.parse(text) as { subscriptions?: SubscriptionRecord[] };
    if (!Array.isArray(doc.subscriptions)) throw new Error(`${this.path}: no "subscriptions" array`);
    return doc.subscriptions;
  }

  async save(records: readonly SubscriptionRecord[]): Promise<void> {
    const tmp = join(dirname(this.path), `.${basename(this.path)}.${process.pid}.tmp`);
    await fs.writeFile(tmp, `${JSON.stringify({ subscriptions: records }, null, 2)}\n`, { mode: 0o600 });
    await fs.rename(tmp, this.path);
  }
}
