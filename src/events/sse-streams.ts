/**
 * The open Server-Sent Event streams of one machine's EventService, each shown as an
 * EventDestination in the Subscriptions collection while it is open (DSP0266 "Server-sent events":
 * opening a stream creates an EventDestination representing the connection, with a
 * service-generated opaque Context; closing the connection deletes it; deleting it closes the
 * connection). In memory only: a stream does not outlive its connection, nor the agent.
 */
import { randomBytes } from 'node:crypto';

export interface SseStreamRecord {
  /** "SSE<n>": never a push subscription's id (those are decimal) */
  readonly id: string;
  /** The user who opened it (ConfigureSelf may delete only its own) */
  readonly owner: string;
  /** Service-generated, opaque */
  readonly context: string;
  /** `redfish-sse://ip:port` of the client (EventDestination.Destination for SSE) */
  readonly destination: string;
  /** The stream's $filter, as the client sent it */
  readonly filter?: string;
  readonly createdAt: string;
  /** Ends the stream (the connection's answer ends; its record goes) */
  close(): void;
}

export class SseStreams {
  private next = 1;
  private readonly open = new Map<string, SseStreamRecord>();

  add(r: Omit<SseStreamRecord, 'id' | 'context'>): SseStreamRecord {
    const rec: SseStreamRecord = { ...r, id: `SSE${this.next++}`, context: randomBytes(16).toString('hex') };
    this.open.set(rec.id, rec);
    return rec;
  }

  get(id: string): SseStreamRecord | undefined {
    return this.open.get(id);
  }

  list(): SseStreamRecord[] {
    return [...this.open.values()];
  }

  /** Forget a stream (called when its connection has ended). */
  remove(id: string): void {
    this.open.delete(id);
  }

  get size(): number {
    return this.open.size;
  }
}

/** EventDestination.Destination of an SSE client: `redfish-sse://ip:port` (IPv6 in brackets). */
export function sseDestination(address: string | undefined, port: number | undefined): string {
  const host = address === undefined ? 'unknown' : address.includes(':') ? `[${address}]` : address;
  return `redfish-sse://${host}:${port ?? 0}`;
}
