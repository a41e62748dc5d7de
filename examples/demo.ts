// `npm run demo`: starts the fake org, runs every example against it, then shows the engine at work.
// Exits 0 only if every figure is what it should be.
import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { promisify } from 'node:util';
import { ClientCredentialsAuth } from 'cirrus-auth';
import { authFetch } from 'cirrus-auth/fetch';
import { startEchoServer, startFakeOrg } from 'cirrus-auth/testing';

const org = await startFakeOrg();
const elsewhere = await startEchoServer();
const rows: { scenario: string; requests: number; mints: number; retries: number; ok: boolean }[] =
  [];
let failed = false;

// 1. Every example, as its own process, against the fake org.
const here = new URL('.', import.meta.url);
const env = {
  ...process.env,
  SF_CLIENT_ID: org.clientId,
  SF_CLIENT_SECRET: org.clientSecret,
  SF_LOGIN_URL: org.loginUrl,
  SF_INSTANCE_URL: org.instanceUrl,
};
for (const file of readdirSync(here)
  .filter((f) => f.endsWith('.ts') && f !== 'demo.ts')
  .sort()) {
  try {
    const run = await promisify(execFile)(process.execPath, [new URL(file, here).pathname], {
      env,
      timeout: 60_000,
    });
    process.stdout.write(run.stdout);
  } catch (error) {
    failed = true;
    console.error(`example ${file} failed:`, (error as { stderr?: string }).stderr ?? error);
  }
}

// 2. The engine, measured by what the org saw.
const session = new ClientCredentialsAuth({
  clientId: org.clientId,
  clientSecret: org.clientSecret,
  loginUrl: org.loginUrl,
  instanceUrl: org.instanceUrl,
});
const sfFetch = authFetch(session);
const N = 200;

async function scenario(
  name: string,
  expected: { requests: number; mints: number; retries: number },
  run: () => Promise<Response[]>,
) {
  org.resetStats();
  const responses = await run();
  await Promise.all(responses.map((r) => r.arrayBuffer()));
  const allOk = responses.every((r) => r.ok);
  const stats = org.stats;
  const row = {
    scenario: name,
    requests: stats.apiRequests,
    mints: stats.tokenRequests,
    retries: stats.apiRequestsByStatus[401] ?? 0,
    ok: false,
  };
  row.ok =
    allOk &&
    row.requests === expected.requests &&
    row.mints === expected.mints &&
    row.retries === expected.retries;
  failed ||= !row.ok;
  rows.push(row);
}

const burst = () =>
  Promise.all(Array.from({ length: N }, () => sfFetch('/services/data/v62.0/limits')));
org.setTokenDelay(50);
await scenario(
  `cold start, ${N} concurrent requests`,
  { requests: N, mints: 1, retries: 0 },
  burst,
);
await scenario(
  `warm cache, ${N} concurrent requests`,
  { requests: N, mints: 0, retries: 0 },
  burst,
);
const WAVE = N / 4;
await scenario(
  `4 waves of ${WAVE}, tokens revoked after wave 2`,
  { requests: N + WAVE, mints: 1, retries: WAVE },
  async () => {
    const all: Response[] = [];
    for (let wave = 1; wave <= 4; wave++) {
      const responses = Array.from({ length: WAVE }, () => sfFetch('/services/data/v62.0/limits'));
      all.push(...(await Promise.all(responses)));
      if (wave === 2) org.revokeAllTokens();
    }
    return all;
  },
);
await scenario('request to another origin', { requests: 0, mints: 0, retries: 0 }, async () => [
  await sfFetch(`${elsewhere.url}/weather`),
]);
const leaked = elsewhere.requests.some((r) => r.headers.authorization !== undefined);
failed ||= leaked;

console.table(rows);
console.log(leaked ? 'FAIL: a token reached another origin' : 'no token reached another origin');
await org.close();
await elsewhere.close();
console.log(failed ? 'demo: FAILED' : 'demo: every figure as expected');
process.exitCode = failed ? 1 : 0;
