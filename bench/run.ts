// `npm run bench`: measures the caching engine side by side with its baseline, alternating A and B
// in one process so machine noise hits both alike. Prints a table and writes bench/results.json.
import { writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { ClientCredentialsAuth } from 'cirrus-auth';
import { authFetch } from 'cirrus-auth/fetch';
import { startFakeOrg } from 'cirrus-auth/testing';

const ROUNDS = 7;
const OPS_PER_ROUND = 500_000;

/** Runs `fn` `ops` times, awaiting each, and answers operations per second. */
async function opsPerSecond(fn: () => Promise<unknown>, ops: number): Promise<number> {
  const start = process.hrtime.bigint();
  for (let i = 0; i < ops; i++) await fn();
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  return ops / seconds;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

const org = await startFakeOrg();
const options = {
  clientId: org.clientId,
  clientSecret: org.clientSecret,
  loginUrl: org.loginUrl,
  instanceUrl: org.instanceUrl,
};
const session = new ClientCredentialsAuth(options);
const token = await session.getToken();

// 1. Cache hit: getToken() on a warm cache against handing out an already-resolved promise.
const hit: number[] = [];
const baseline: number[] = [];
for (let round = 0; round < ROUNDS; round++) {
  hit.push(await opsPerSecond(() => session.getToken(), OPS_PER_ROUND));
  baseline.push(await opsPerSecond(() => Promise.resolve(token), OPS_PER_ROUND));
}

// 2. Cold start: N concurrent authFetch calls on a new session; count token requests, time the wave.
const N = 1000;
const cold: number[] = [];
let coldMints = 0;
for (let round = 0; round < 3; round++) {
  org.resetStats();
  const sfFetch = authFetch(new ClientCredentialsAuth(options));
  const start = performance.now();
  const responses = await Promise.all(
    Array.from({ length: N }, () => sfFetch('/services/data/v62.0/limits')),
  );
  await Promise.all(responses.map((r) => r.arrayBuffer()));
  cold.push(performance.now() - start);
  coldMints = Math.max(coldMints, org.stats.tokenRequests);
}

// 3. Memory: heap per idle session with a cached token.
globalThis.gc?.();
const before = process.memoryUsage().heapUsed;
const sessions = Array.from({ length: 10_000 }, () => new ClientCredentialsAuth(options));
globalThis.gc?.();
const perSessionBytes = (process.memoryUsage().heapUsed - before) / sessions.length;
await org.close();

const results = {
  machine: {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memoryBytes: totalmem(),
  },
  node: process.version,
  date: new Date().toISOString(),
  cacheHit: {
    getTokenOpsPerSec: Math.round(median(hit)),
    promiseResolveOpsPerSec: Math.round(median(baseline)),
    ratio: Number((median(hit) / median(baseline)).toFixed(3)),
  },
  coldStart: {
    concurrentRequests: N,
    tokenRequests: coldMints,
    medianMs: Number(median(cold).toFixed(1)),
  },
  memory: {
    bytesPerSession: Math.round(perSessionBytes),
    gcExposed: typeof globalThis.gc === 'function',
  },
};
console.table({
  'cache hit: getToken() ops/s': { value: results.cacheHit.getTokenOpsPerSec },
  'baseline: Promise.resolve ops/s': { value: results.cacheHit.promiseResolveOpsPerSec },
  'cache hit ratio (goal >= 1.0)': { value: results.cacheHit.ratio },
  [`cold start: ${N} concurrent authFetch, token requests`]: { value: coldMints },
  [`cold start: ${N} concurrent authFetch, median ms`]: { value: results.coldStart.medianMs },
  'heap bytes per idle session': { value: results.memory.bytesPerSession },
});
writeFileSync(new URL('results.json', import.meta.url), `${JSON.stringify(results, null, 2)}\n`);
