import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/_global-setup.ts'],
    testTimeout: 20_000,
    hookTimeout: 20_000,
    // Two files at a time even on CI's 2 cores (vitest's default leaves one core to itself and
    // runs one file at a time there): most of the suite waits on loopback sockets, timers and
    // child processes, so the second worker halves the wall time (220 s to 149 s) instead of
    // competing for CPU. Concurrency claims are counts, not timings, so they hold either way.
    maxWorkers: Math.max(2, availableParallelism() - 1),
  },
});
