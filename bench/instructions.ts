// Figure 9c: machine instructions per call, adapter vs bare client, counted by Valgrind
// (`cachegrind --cache-sim=no`) on a single-threaded Node (`--single-threaded`: no JIT or GC
// helper threads). Unlike CPU time on a shared 2-core VM, the count repeats to a few hundred
// instructions in 400,000, so it settles differences of a microsecond that figures 9 and 9b
// cannot. `node bench/instructions.ts` alone, or part of `npm run bench` where `valgrind` is
// installed (Debian: apt-get install valgrind).
//
// Each side runs in its own process twice, with `small` and `large` calls; the difference of the
// two counts divided by the difference in calls is the per-call count, start-up, shut-down and
// JIT warm-up cancelled: 16,000 and 64,000 calls give the same figure as 4,000 and 16,000 to a
// few percent, while 1,000 and 4,000 still count the tiers of compilation (four times as much).
// Instant transport by default (the adapters' own work, repeatable to about 100 instructions);
// `--loopback` adds the loopback server child (untraced), whose counts move by a few thousand
// with how many answers one event-loop turn happens to batch.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import {
  type ClientName,
  type InstantName,
  instantBatches,
  instantPairs,
  loopbackPairs,
} from './clients.ts';
import { startServerProcess } from './cpu.ts';
import { load } from './lib.ts';

export type Transport = 'instant' | 'loopback';

/** The call counts of the instant transport's two runs: past the JIT's warm-up. */
export const STEADY = { small: 16_000, large: 64_000 } as const;

/** One client's count: instructions per call, bare and with the adapter. */
export interface InstructionFigure {
  bare: number;
  adapter: number;
  overhead: number;
  overheadPct: number;
}

const run = promisify(execFile);
const self = fileURLToPath(import.meta.url);

/** Whether `valgrind` can be run here. */
export async function valgrindAvailable(): Promise<boolean> {
  return run('valgrind', ['--version']).then(
    () => true,
    () => false,
  );
}

/** Instructions one child run executed: start-up, `calls` calls of one side, shut-down. */
async function count(transport: Transport, client: InstantName, side: 0 | 1, calls: number) {
  const { stderr } = await run(
    'valgrind',
    [
      '--tool=cachegrind',
      '--cache-sim=no',
      '--cachegrind-out-file=/dev/null',
      process.execPath,
      '--single-threaded',
      self,
      '--child',
      transport,
      client,
      String(side),
      String(calls),
    ],
    { maxBuffer: 16 * 1024 * 1024 },
  );
  const refs = /I\s+refs:\s+([\d,]+)/.exec(stderr)?.[1];
  if (refs === undefined) throw new Error(`no instruction count in valgrind's output:\n${stderr}`);
  return Number(refs.replaceAll(',', ''));
}

/**
 * Counts every client's two sides over `transports`, two Valgrind processes at a time (one per
 * core of the 2-core machine the figures come from).
 */
export async function measureInstructions(options: {
  transports: readonly Transport[];
  small: number;
  large: number;
}): Promise<Record<string, InstructionFigure>> {
  const jobs: { key: string; transport: Transport; client: InstantName; side: 0 | 1 }[] = [];
  for (const transport of options.transports)
    for (const client of transport === 'instant'
      ? (['fetch', 'fetch-new-url', 'axios', 'ky'] as const)
      : (['fetch', 'axios', 'ky'] as const))
      for (const side of [0, 1] as const)
        jobs.push({ key: `${client} (${transport})`, transport, client, side });
  const perCall = new Map<string, [number, number]>();
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) {
      const job = jobs[next++] as (typeof jobs)[number];
      const small = await count(job.transport, job.client, job.side, options.small);
      const large = await count(job.transport, job.client, job.side, options.large);
      const sides = perCall.get(job.key) ?? [0, 0];
      sides[job.side] = (large - small) / (options.large - options.small);
      perCall.set(job.key, sides);
    }
  };
  await Promise.all([worker(), worker()]);
  const out: Record<string, InstructionFigure> = {};
  for (const [key, [bare, adapter]] of perCall) {
    out[key] = {
      bare,
      adapter,
      overhead: adapter - bare,
      overheadPct: ((adapter - bare) / bare) * 100,
    };
  }
  return out;
}

if (process.argv[2] === '--child') {
  const [, , , transport, client, side, calls] = process.argv as string[];
  if (transport === 'instant') {
    const send = instantPairs()[client as InstantName][Number(side)] as () => Promise<unknown>;
    await instantBatches(Number(calls), send);
  } else {
    const server = await startServerProcess();
    const send = loopbackPairs(server.url)[client as ClientName][
      Number(side)
    ] as () => Promise<unknown>;
    await load(Number(calls), 16, send);
    await server.stop();
  }
  // The loopback agents keep sockets open: leave at once, as every side does.
  process.exit(0);
} else if (import.meta.url === `file://${process.argv[1]}`) {
  if (!(await valgrindAvailable())) {
    console.log('SKIPPED: valgrind is not installed (Debian: apt-get install valgrind)');
  } else {
    const figures = await measureInstructions({ transports: ['instant'], ...STEADY });
    if (process.argv.includes('--loopback'))
      Object.assign(
        figures,
        await measureInstructions({ transports: ['loopback'], small: 1_000, large: 4_000 }),
      );
    for (const [name, f] of Object.entries(figures))
      console.log(
        `${name}: bare ${Math.round(f.bare)}, adapter ${Math.round(f.adapter)} instructions per call, +${Math.round(f.overhead)} (${f.overheadPct.toFixed(2)}%)`,
      );
  }
}
