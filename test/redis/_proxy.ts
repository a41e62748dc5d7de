import { once } from 'node:events';
import { type AddressInfo, connect, createServer, type Socket } from 'node:net';

/** A TCP proxy on loopback in front of a server, whose line can go dead without closing. */
export interface PartitionProxy {
  readonly port: number;
  /** `redis://` URL of the proxy. */
  readonly url: string;
  /**
   * Stops forwarding, both ways: bytes are held back and connections stay open, so the client
   * sees neither an error nor a close, only commands that never answer (a network partition, not
   * a crash).
   */
  partition(): void;
  /** Forwards again, held-back bytes first and in order (as TCP retransmits them once healed). */
  heal(): void;
  close(): Promise<void>;
}

/** Starts a {@link PartitionProxy} in front of `127.0.0.1:targetPort`. */
export async function startPartitionProxy(targetPort: number): Promise<PartitionProxy> {
  let cut = false;
  // One queue for both directions: what was held back goes out in the order it came in.
  const held: (() => void)[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((downstream) => {
    const upstream = connect(targetPort, '127.0.0.1');
    const forward = (from: Socket, to: Socket) => {
      sockets.add(from);
      from.on('data', (chunk: Buffer) => {
        if (cut) held.push(() => to.write(chunk));
        else to.write(chunk);
      });
      from.on('error', () => {});
      from.on('close', () => {
        sockets.delete(from);
        to.destroy();
      });
    };
    forward(downstream, upstream);
    forward(upstream, downstream);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    partition() {
      cut = true;
    },
    heal() {
      cut = false;
      for (const send of held.splice(0)) send();
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
