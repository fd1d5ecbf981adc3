/**
 * A loopback TCP proxy for fault tests: forwards 127.0.0.1:<port> to a target, and can freeze —
 * stop forwarding both ways while keeping every socket open, as a proxy or NAT whose forwarding
 * died, or a peer stopped with SIGSTOP — and thaw again. While frozen, new connections are still
 * accepted (and connected to the target) but carry nothing; bytes either side sends meanwhile are
 * held (the sockets stop reading, so the kernel buffers them) and flow on thaw, in order. Nothing
 * is closed by the proxy except on close(), or when one side of a pair closes while not frozen.
 */
import net from 'node:net';

export interface TcpProxy {
  /** the proxy's port on 127.0.0.1 */
  readonly port: number;
  /** http://127.0.0.1:<port> */
  readonly url: string;
  readonly frozen: boolean;
  /** connections accepted so far */
  readonly accepted: number;
  /** connection pairs open now */
  readonly open: number;
  freeze(): void;
  thaw(): void;
  close(): Promise<void>;
}

interface Pair {
  client: net.Socket;
  upstream: net.Socket;
  /** a side ended or failed while frozen: finish it on thaw */
  pendingClose: boolean;
}

export async function startTcpProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
  let frozen = false;
  let accepted = 0;
  const pairs = new Set<Pair>();

  const teardown = (p: Pair): void => {
    pairs.delete(p);
    p.client.destroy();
    p.upstream.destroy();
  };

  const server = net.createServer({ pauseOnConnect: true }, (client) => {
    accepted++;
    const upstream = net.connect({ port: targetPort, host: targetHost });
    const p: Pair = { client, upstream, pendingClose: false };
    pairs.add(p);
    const forward = (from: net.Socket, to: net.Socket): void => {
      from.on('data', (chunk: Buffer) => {
        // a chunk read just before a freeze is held too (pause() stops further reads)
        if (!to.destroyed) to.write(chunk);
      });
      from.on('end', () => {
        if (frozen) p.pendingClose = true;
        else to.end();
      });
    };
    forward(client, upstream);
    forward(upstream, client);
    upstream.pause();
    const fail = (): void => {
      if (frozen) p.pendingClose = true;
      else teardown(p);
    };
    client.on('error', fail);
    upstream.on('error', fail);
    client.on('close', () => {
      if (!frozen) teardown(p);
      else p.pendingClose = true;
    });
    upstream.on('close', () => {
      if (!frozen) teardown(p);
      else p.pendingClose = true;
    });
    if (!frozen) {
      client.resume();
      upstream.resume();
    }
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as net.AddressInfo).port;

  return {
    port,
    url: `http://127.0.0.1:${port}`,
    get frozen() {
      return frozen;
    },
    get accepted() {
      return accepted;
    },
    get open() {
      return pairs.size;
    },
    freeze() {
      if (frozen) return;
      frozen = true;
      for (const p of pairs) {
        p.client.pause();
        p.upstream.pause();
      }
    },
    thaw() {
      if (!frozen) return;
      frozen = false;
      for (const p of [...pairs]) {
        if (p.client.destroyed || p.upstream.destroyed) {
          // one side went away meanwhile: what the other had sent is flushed, then both close
          p.client.resume();
          p.upstream.resume();
          setImmediate(() => teardown(p));
          continue;
        }
        p.client.resume();
        p.upstream.resume();
      }
    },
    async close() {
      frozen = false;
      for (const p of [...pairs]) teardown(p);
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
