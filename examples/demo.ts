// `npm run demo`: starts the fake org, runs every example against it, then drives the same
// scenarios through the fetch, axios and ky adapters and prints what the org saw.
// Exits 0 only if every figure is what it should be.
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import axios from 'axios';
import { type AuthSession, ClientCredentialsAuth } from 'cirrus-auth';
import { attachAuth } from 'cirrus-auth/axios';
import { authFetch } from 'cirrus-auth/fetch';
import { authHooks } from 'cirrus-auth/ky';
import { startEchoServer, startFakeOrg } from 'cirrus-auth/testing';
import ky from 'ky';

const org = await startFakeOrg({ users: ['integration@example.com'], pubsub: true });
const elsewhere = await startEchoServer();
let failed = false;

// 1. Every example, as its own process, against the fake org, with the variables it reads.
const here = new URL('.', import.meta.url);
const scratch = mkdtempSync(join(tmpdir(), 'cirrus-demo-'));
const keyFile = join(scratch, 'server.key');
writeFileSync(keyFile, org.jwtPrivateKey ?? '', { mode: 0o600 });
const refreshTokenFile = join(scratch, 'refresh-token');
const orgVars = {
  SF_CLIENT_ID: org.clientId,
  SF_LOGIN_URL: org.loginUrl,
  SF_INSTANCE_URL: org.instanceUrl,
};
// Three tenants behind the fake org, each on an instance of its own, for the many-orgs example.
const tenants = await Promise.all([1, 2, 3].map(() => org.addTenant({ ownInstance: true })));
const registry = Object.fromEntries(
  tenants.map((t, i) => [
    `tenant-${i + 1}`,
    { clientId: t.clientId, clientSecret: t.clientSecret, instanceUrl: t.instanceUrl },
  ]),
);
const envFor: Record<string, Record<string, string>> = {
  'many-orgs.ts': { SF_LOGIN_URL: org.loginUrl, TENANTS: JSON.stringify(registry) },
  'pubsub.ts': {
    ...orgVars,
    SF_CLIENT_SECRET: org.clientSecret,
    PUBSUB_TARGET: org.pubsub?.target ?? '',
  },
  'jwt-bearer.ts': { ...orgVars, SF_USERNAME: org.username, SF_PRIVATE_KEY_FILE: keyFile },
  'refresh-token.ts': {
    ...orgVars,
    SF_CLIENT_SECRET: org.clientSecret,
    SF_REFRESH_TOKEN: org.issueRefreshToken(),
    REFRESH_TOKEN_FILE: refreshTokenFile,
  },
};
// The streaming example waits for an event: one is published every 100 ms while examples run.
const publishing = setInterval(
  () => org.streaming.publish('/event/Order__e', { Message__c: 'hi' }),
  100,
);
const examples = readdirSync(here).filter((f) => f.endsWith('.ts') && f !== 'demo.ts');
for (const file of examples.sort()) {
  const env = {
    ...process.env,
    ...(envFor[file] ?? { ...orgVars, SF_CLIENT_SECRET: org.clientSecret }),
  };
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
clearInterval(publishing);
// The refresh-token example must have persisted the live, rotated refresh token.
if (!org.isValidRefreshToken(readFileSync(refreshTokenFile, 'utf8'))) {
  failed = true;
  console.error('refresh-token example: the saved refresh token is not the live one');
}
rmSync(scratch, { recursive: true, force: true });
// The many-orgs example: one token and one API call per tenant, each at its own instance.
if (!tenants.every((t) => t.stats.tokensIssued === 1 && t.stats.apiRequests === 1)) {
  failed = true;
  console.error('many-orgs example: not one token and one accepted call per tenant');
}

// 2. The same scenarios through each adapter, measured by what the org saw.
/** Sends one GET through an adapter and answers whether it succeeded. */
type Get = (url: string) => Promise<boolean>;
const adapters: Record<string, (session: AuthSession) => Get> = {
  fetch: (session) => {
    const sfFetch = authFetch(session);
    return async (url) => {
      const response = await sfFetch(url);
      await response.arrayBuffer();
      return response.ok;
    };
  },
  axios: (session) => {
    const api = axios.create({ baseURL: session.instanceUrl });
    attachAuth(api, session);
    return async (url) => (await api.get(url)).status === 200;
  },
  ky: (session) => {
    const api = ky.create({ baseUrl: session.instanceUrl, hooks: authHooks(session) });
    return async (url) => (await api.get(url.replace(/^\//, ''))).ok;
  },
};

const N = 200;
const LIMITS = '/services/data/v62.0/limits';
const rows: Record<string, string | number | boolean>[] = [];
const burst = (get: Get, n: number) => Promise.all(Array.from({ length: n }, () => get(LIMITS)));

for (const [name, adapter] of Object.entries(adapters)) {
  const get = adapter(
    new ClientCredentialsAuth({
      clientId: org.clientId,
      clientSecret: org.clientSecret,
      loginUrl: org.loginUrl,
      instanceUrl: org.instanceUrl,
    }),
  );
  const scenario = async (
    label: string,
    expected: { requests: number; mints: number; retries: number },
    run: () => Promise<boolean[]>,
  ) => {
    org.resetStats();
    const results = await run();
    const { apiRequests: requests, tokenRequests: mints, apiRequestsByStatus } = org.stats;
    const retries = apiRequestsByStatus[401] ?? 0;
    const ok =
      results.every(Boolean) &&
      requests === expected.requests &&
      mints === expected.mints &&
      retries === expected.retries;
    failed ||= !ok;
    rows.push({
      adapter: name,
      scenario: label,
      requests,
      'token requests': mints,
      '401s retried': retries,
      ok,
    });
  };

  org.setTokenDelay(50);
  await scenario(`cold start, ${N} concurrent`, { requests: N, mints: 1, retries: 0 }, () =>
    burst(get, N),
  );
  await scenario(`warm cache, ${N} concurrent`, { requests: N, mints: 0, retries: 0 }, () =>
    burst(get, N),
  );
  const wave = N / 4;
  await scenario(
    `4 waves of ${wave}, revoked after wave 2`,
    { requests: N + wave, mints: 1, retries: wave },
    async () => {
      const all: boolean[] = [];
      for (let i = 1; i <= 4; i++) {
        all.push(...(await burst(get, wave)));
        if (i === 2) org.revokeAllTokens();
      }
      return all;
    },
  );
  await scenario('another origin', { requests: 0, mints: 0, retries: 0 }, async () => [
    await get(`${elsewhere.url}/weather`),
  ]);
}

const leaked = elsewhere.requests.some((r) => r.headers.authorization !== undefined);
failed ||= leaked || elsewhere.requests.length !== Object.keys(adapters).length;
console.table(rows);
console.log(
  leaked
    ? 'FAIL: a token reached another origin'
    : `another origin received ${elsewhere.requests.length} requests, none with a token`,
);
await org.close();
await elsewhere.close();
console.log(failed ? 'demo: FAILED' : 'demo: every figure as expected');
process.exitCode = failed ? 1 : 0;
