// Small helpers for bench/run.ts: load generation, percentiles, side-by-side alternation.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** Runs `task` `total` times with at most `concurrency` in flight; answers the wall time in ms. */
export async function load(
  total: number,
  concurrency: number,
  task: (i: number) => Promise<unknown>,
): Promise<number> {
  let next = 0;
  const started = performance.now();
  const worker = async () => {
    while (next < total) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, total) }, worker));
  return performance.now() - started;
}

/** Runs `task` from `concurrency` workers until `durationMs` has passed; answers each call's latency. */
export async function loadFor(
  durationMs: number,
  concurrency: number,
  task: () => Promise<unknown>,
): Promise<number[]> {
  const latencies: number[] = [];
  const end = performance.now() + durationMs;
  const worker = async () => {
    while (performance.now() < end) {
      const t = performance.now();
      await task();
      latencies.push(performance.now() - t);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return latencies;
}

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

export function median(values: number[]): number {
  return percentile(values, 50);
}

/**
 * Measures A and B side by side: `rounds` rounds, alternating which goes first, so machine noise
 * falls on both. Each run answers a rate; the result is the median rate of each and B/A.
 */
export async function sideBySide(
  rounds: number,
  a: () => Promise<number>,
  b: () => Promise<number>,
) {
  const ra: number[] = [];
  const rb: number[] = [];
  for (let round = 0; round < rounds; round++) {
    if (round % 2 === 0) {
      ra.push(await a());
      rb.push(await b());
    } else {
      rb.push(await b());
      ra.push(await a());
    }
  }
  // The median of each round's own B/A: a slow stretch of the machine hits a pair, not a side.
  const ratios = ra.map((a, i) => (rb[i] as number) / a);
  return { a: median(ra), b: median(rb), ratio: median(ratios) };
}

/** A keep-alive loopback server that answers every request 200 `{"ok":true}`. */
export async function startPlainServer(): Promise<{
  url: string;
  server: Server;
  close(): Promise<void>;
}> {
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '11' });
      res.end('{"ok":true}');
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

export function gc(): void {
  globalThis.gc?.();
  globalThis.gc?.();
}

export function heapUsed(): number {
  gc();
  return process.memoryUsage().heapUsed;
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
