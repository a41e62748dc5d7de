import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { closeServer, readBody } from './fake-org.js';

/** One request as the echo server saw it. */
export interface EchoRecord {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** A running {@link startEchoServer}. */
export interface EchoServer {
  /** `http://127.0.0.1:PORT`: an origin that is not the org's. */
  readonly url: string;
  /** Every request received, in order. */
  readonly requests: readonly EchoRecord[];
  close(): Promise<void>;
}

/**
 * Starts a server on a loopback port that records every request and answers 200 with
 * `{"ok":true}`. Stand it in for a third-party API or a redirect target, then assert that
 * no `Authorization` header ever reached it.
 *
 * @example
 * ```ts
 * const other = await startEchoServer();
 * await sfFetch(`${other.url}/hello`);
 * expect(other.requests[0]?.headers.authorization).toBeUndefined();
 * ```
 */
export async function startEchoServer(): Promise<EchoServer> {
  const requests: EchoRecord[] = [];
  const server = createServer((req, res) => {
    readBody(req).then(
      (body) => {
        requests.push({
          method: req.method ?? 'GET',
          path: req.url ?? '/',
          headers: req.headers,
          body,
        });
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"ok":true}');
      },
      () => res.destroy(),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, requests, close: () => closeServer(server) };
}
