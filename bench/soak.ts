// `npm run soak` (not in CI; `-- --requests=100000` for a shorter run): requests through authFetch
// against the fake org at concurrency 32, a server-side revocation every 10,000 requests, and on one
// revocation in five a token-endpoint fault (a 503, or a stall past timeoutMs) for the re-mint.
// Reports requests, mints, retries, failures, unhandled rejections and heap growth.
import { subscribe } from 'node:diagnostics_channel';
import {
  AuthError,
  ClientCredentialsAuth,
  DIAGNOSTICS_CHANNELS,
  type MintEndEvent,
  type RetryEvent,
} from 'cirrus-auth';
import { authFetch } from 'cirrus-auth/fetch';
import { startFakeOrg } from 'cirrus-auth/testing';
import { heapUsed, load, sleep } from './lib.ts';

const total = Number(
  process.argv.find((a) => a.startsWith('--requests='))?.split('=')[1] ?? 1_000_000,
);
const EVERY = 10_000;
let unhandled = 0;
process.on('unhandledRejection', () => {
  unhandled++;
});

const org = await startFakeOrg({
  apiLogLimit: 0,
  // The figures count the logins each contender makes (a naive client's run into the thousands);
  // Salesforce would refuse them past about 3,600 an hour, which tests meet, not the bench.
  loginRate: { logins: Number.MAX_SAFE_INTEGER },
});
const session = new ClientCredentialsAuth({
  clientId: org.clientId,
  clientSecret: org.clientSecret,
  loginUrl: org.loginUrl,
  instanceUrl: org.instanceUrl,
  timeoutMs: 500,
  backoff: { initialMs: 50, maxMs: 200 },
});
const sfFetch = authFetch(session);
let mints = 0;
let failedMints = 0;
let retries = 0;
subscribe(DIAGNOSTICS_CHANNELS.mintEnd, (e) => {
  if ((e as MintEndEvent).outcome === 'ok') mints++;
  else failedMints++;
});
subscribe(DIAGNOSTICS_CHANNELS.retry, (e) => {
  if ((e as RetryEvent).retried) retries++;
});

let revocations = 0;
let faults = 0;
let ok = 0;
let expectedFailures = 0;
let unexpected = 0;
await load(1_000, 32, async () => (await sfFetch('/services/data/v62.0/limits')).arrayBuffer());
const before = heapUsed();
const started = performance.now();
await load(total, 32, async (i) => {
  if (i > 0 && i % EVERY === 0) {
    org.revokeAllTokens();
    revocations++;
    if (revocations % 5 === 0) {
      faults++;
      org.failTokenEndpoint(
        faults % 2 === 0 ? { kind: 'status', status: 503, body: '' } : { kind: 'stall' },
        { times: 1 },
      );
    }
  }
  try {
    const response = await sfFetch('/services/data/v62.0/limits');
    await response.arrayBuffer();
    if (response.ok) ok++;
    else unexpected++;
  } catch (error) {
    // The injected faults surface as transient AuthErrors (and backoff repeats them); anything else is a bug.
    if (error instanceof AuthError && error.transient) expectedFailures++;
    else unexpected++;
    // A client pauses after a failure; without it, fast failures would eat the request budget.
    await sleep(10);
  }
});
const seconds = (performance.now() - started) / 1000;
const growth = heapUsed() - before;
await org.close();

const figures = {
  requests: total,
  seconds: Number(seconds.toFixed(1)),
  requestsPerSecond: Math.round(total / seconds),
  ok,
  revocations,
  faultsInjected: faults,
  mints,
  failedMints,
  retries,
  failuresFromInjectedFaults: expectedFailures,
  unexpectedFailures: unexpected,
  unhandledRejections: unhandled,
  heapGrowthMB: Number((growth / 1024 / 1024).toFixed(2)),
};
console.table(figures);
const goals = {
  'no unexpected failures': unexpected === 0,
  'no unhandled rejections': unhandled === 0,
  'one successful mint per revocation (plus the first)': mints === revocations + 1,
  'heap growth under 5 MB': growth < 5 * 1024 * 1024,
};
console.table(goals);
process.exit(Object.values(goals).every(Boolean) ? 0 : 1);
