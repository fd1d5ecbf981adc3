/**
 * A Redfish event subscriber on 127.0.0.1 for tests: records every POSTed Event payload (with its
 * headers) and answers with `status` (changeable, to play a failing subscriber).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Received {
  headers: http.IncomingHttpHeaders;
  body: { Context?: string; Events: { EventId: string; MessageId: string; OriginOfCondition: { '@odata.id': string }; MessageArgs: string[]; MessageSeverity: string }[] };
}

export interface EventReceiver {
  url: string;
  received: Received[];
  /** Answers given so far (also the failing ones) */
  attempts: number;
  status: number;
  /** Resolves once `pred` holds for the received payloads (polled on each arrival; bounded) */
  waitFor(pred: (r: Received[]) => boolean, what: string, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export async function startEventReceiver(path = '/events'): Promise<EventReceiver> {
  const waiters: (() => void)[] = [];
  const r: Partial<EventReceiver> & { received: Received[]; attempts: number; status: number } = { received: [], attempts: 0, status: 200 };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      r.attempts++;
      if (r.status >= 200 && r.status < 300) r.received.push({ headers: req.headers, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Received['body'] });
      res.writeHead(r.status).end();
      for (const w of waiters.splice(0)) w();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  r.url = `http://127.0.0.1:${port}${path}`;
  r.waitFor = async (pred, what, timeoutMs = 10_000) => {
    const deadline = Date.now() + timeoutMs;
    while (!pred(r.received)) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; got ${JSON.stringify(r.received.map((x) => x.body.Events.map((e) => e.MessageId)))}`);
      await new Promise<void>((resolve) => {
        waiters.push(resolve);
        setTimeout(resolve, 200).unref();
      });
    }
  };
  r.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return r as EventReceiver;
}
