// Client CPU time per request, adapter vs bare client, with the server in another process:
// `node --expose-gc bench/cpu.ts` alone, or figure 9 of `npm run bench`. Interleaved rounds, median of each.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import {
  type InstantName,
  instantBatches,
  instantPairs,
  type LoopbackName,
  loopbackPairs,
} from './clients.ts';
import { gc, load, median } from './lib.ts';

/** One client's figure: µs of client CPU per request, bare and with the adapter. */
export interface CpuFigure {
  bareUs: number;
  adapterUs: number;
  overheadUs: number;
  overheadPct: number;
}

/** Starts the server child; answers its URL and a stop function. */
export async function startServerProcess(): Promise<{ url: string; stop(): Promise<void> }> {
  const child = spawn(
    process.execPath,
    [fileURLToPath(new URL('./server-child.ts', import.meta.url))],
    {
      stdio: ['pipe', 'pipe', 'inherit'],
    },
  );
  const [line] = (await once(child.stdout, 'data')) as [Buffer];
  return {
    url: line.toString().trim(),
    stop: async () => {
      child.stdin.end();
      await once(child, 'exit');
    },
  };
}

/** µs of this process's CPU (user + system) per call of `send`, over `total` calls. */
async function cpuPerRequest(total: number, concurrency: number, send: () => Promise<unknown>) {
  // Each round starts from a collected heap, so one side does not pay for the other's garbage.
  gc();
  const before = process.cpuUsage();
  await load(total, concurrency, send);
  const used = process.cpuUsage(before);
  return (used.user + used.system) / total;
}

/**
 * Measures fetch, axios and ky, bare (a fixed `Authorization` header) and with the adapter around
 * a `StaticTokenAuth`: `rounds` interleaved rounds of `perRound` requests at `concurrency`.
 */
export async function measureCpu(options: {
  rounds: number;
  perRound: number;
  concurrency: number;
}): Promise<Record<LoopbackName, CpuFigure>> {
  const server = await startServerProcess();
  try {
    const pairs = loopbackPairs(server.url);
    const out = {} as Record<LoopbackName, CpuFigure>;
    for (const [name, [bare, adapter]] of Object.entries(pairs) as [
      keyof typeof pairs,
      (typeof pairs)[keyof typeof pairs],
    ][]) {
      // Warm both: connection pools, JIT.
      await load(options.perRound, options.concurrency, bare);
      await load(options.perRound, options.concurrency, adapter);
      const a: number[] = [];
      const b: number[] = [];
      for (let round = 0; round < options.rounds; round++) {
        const order = round % 2 === 0 ? [bare, adapter] : [adapter, bare];
        for (const send of order) {
          const us = await cpuPerRequest(options.perRound, options.concurrency, send);
          (send === bare ? a : b).push(us);
        }
      }
      const bareUs = median(a);
      const adapterUs = median(b);
      // The median of each round's own difference: a slow stretch of the machine hits a pair.
      const overheadUs = median(b.map((us, i) => us - (a[i] as number)));
      out[name] = { bareUs, adapterUs, overheadUs, overheadPct: (overheadUs / bareUs) * 100 };
    }
    return out;
  } finally {
    await server.stop();
  }
}

/**
 * The adapters' own CPU per call, over an instant transport (a fetch that answers at once, an
 * axios adapter that resolves at once): no socket and no server, so the figure resolves a
 * microsecond, which the figures over loopback cannot (their noise floor is several). Bare clients
 * send a fixed header; the adapters a `StaticTokenAuth`'s token. Batches of 16 concurrent calls,
 * interleaved rounds from a collected heap, the median of each round's own difference.
 */
export async function measureIntrinsic(options: {
  rounds: number;
  calls: number;
}): Promise<Record<'fetch' | 'axios' | 'ky', CpuFigure>> {
  const pairs = instantPairs();
  const perCall = async (send: () => Promise<unknown>) => {
    gc();
    const before = process.cpuUsage();
    await instantBatches(options.calls, send);
    const used = process.cpuUsage(before);
    return (used.user + used.system) / options.calls;
  };
  const out = {} as Record<InstantName, CpuFigure>;
  for (const [name, [bare, adapter]] of Object.entries(pairs) as [
    keyof typeof pairs,
    (typeof pairs)[keyof typeof pairs],
  ][]) {
    await perCall(bare);
    await perCall(adapter);
    const a: number[] = [];
    const b: number[] = [];
    for (let round = 0; round < options.rounds; round++) {
      for (const send of round % 2 === 0 ? [bare, adapter] : [adapter, bare]) {
        (send === bare ? a : b).push(await perCall(send));
      }
    }
    const bareUs = median(a);
    const overheadUs = median(b.map((us, i) => us - (a[i] as number)));
    out[name] = {
      bareUs,
      adapterUs: median(b),
      overheadUs,
      overheadPct: (overheadUs / bareUs) * 100,
    };
  }
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const figures = await measureCpu({ rounds: 10, perRound: 4_000, concurrency: 16 });
  const intrinsic = await measureIntrinsic({ rounds: 16, calls: 50_000 });
  for (const [name, f] of Object.entries(intrinsic)) {
    console.log(
      `${name} (instant transport): bare ${f.bareUs.toFixed(2)} µs, adapter ${f.adapterUs.toFixed(2)} µs, +${f.overheadUs.toFixed(2)} µs`,
    );
  }
  for (const [name, f] of Object.entries(figures)) {
    console.log(
      `${name}: bare ${f.bareUs.toFixed(1)} µs, adapter ${f.adapterUs.toFixed(1)} µs, +${f.overheadUs.toFixed(1)} µs (${f.overheadPct.toFixed(1)}%)`,
    );
  }
}
