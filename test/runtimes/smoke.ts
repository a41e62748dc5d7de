// The smoke suite every runtime runs (Node, Bun, Deno, workerd, Chromium): the same checks against
// the fake org, through the built package (cirrus-auth, cirrus-auth/fetch: its own name), using nothing
// but web APIs itself. A host (runtimes.test.ts) starts the org and a control server; the runtime
// calls the control server to read the org's counters and to revoke tokens, and reports each
// check as { name, ok, detail }. Kept free of Node and vitest so every runtime can load it.

import {
  ClientCredentialsAuth,
  JwtBearerAuth,
  RefreshTokenAuth,
  StaticTokenAuth,
} from 'cirrus-auth';
import { authFetch } from 'cirrus-auth/fetch';

/** What the host hands the runtime. */
export interface SmokeConfig {
  loginUrl: string;
  instanceUrl: string;
  clientId: string;
  clientSecret: string;
  username: string;
  /** PKCS#8 PEM whose public half the org verifies JWT assertions with. */
  privateKey: string;
  /** Base URL of the host's control server: GET /stats, POST /revoke, POST /refresh-token, /seen. */
  control: string;
}

export interface SmokeCheck {
  name: string;
  ok: boolean;
  detail: string;
}

interface Stats {
  tokenRequests: number;
  apiRequests: number;
  familyRevocations: number;
}

const LIMITS = '/services/data/v62.0/limits';

export async function runSmoke(config: SmokeConfig): Promise<SmokeCheck[]> {
  const stats = async (): Promise<Stats> => (await fetch(`${config.control}/stats`)).json();
  const post = async (path: string) =>
    (await fetch(`${config.control}${path}`, { method: 'POST' })).text();
  const server = {
    clientId: config.clientId,
    clientSecret: config.clientSecret,
    loginUrl: config.loginUrl,
    instanceUrl: config.instanceUrl,
  };
  const checks: SmokeCheck[] = [];
  const check = async (name: string, body: () => Promise<string | undefined>) => {
    try {
      const failure = await body();
      checks.push({ name, ok: failure === undefined, detail: failure ?? 'ok' });
    } catch (error) {
      const e = error as { name?: string; code?: string; message?: string };
      checks.push({ name, ok: false, detail: `threw ${e.name} ${e.code ?? ''}: ${e.message}` });
    }
  };

  await check('client credentials + authFetch', async () => {
    const api = authFetch(new ClientCredentialsAuth(server));
    const response = await api(`${config.instanceUrl}${LIMITS}`);
    const body = (await response.json()) as Record<string, unknown>;
    if (response.status !== 200) return `status ${response.status}`;
    if (!('DailyApiRequests' in body)) return 'no limits in the answer';
  });

  await check('single-flight: 10 concurrent callers, 1 token request', async () => {
    const session = new ClientCredentialsAuth(server);
    const before = await stats();
    const tokens = await Promise.all(Array.from({ length: 10 }, () => session.getToken()));
    const after = await stats();
    if (new Set(tokens).size !== 1) return `${new Set(tokens).size} different tokens`;
    if (after.tokenRequests - before.tokenRequests !== 1)
      return `${after.tokenRequests - before.tokenRequests} token requests`;
  });

  await check('revocation: one re-mint, one retry', async () => {
    const api = authFetch(new ClientCredentialsAuth(server));
    await api(`${config.instanceUrl}${LIMITS}`);
    await post('/revoke');
    const before = await stats();
    const response = await api(`${config.instanceUrl}${LIMITS}`);
    const after = await stats();
    if (response.status !== 200) return `status ${response.status}`;
    if (after.tokenRequests - before.tokenRequests !== 1)
      return `${after.tokenRequests - before.tokenRequests} token requests`;
    if (after.apiRequests - before.apiRequests !== 2)
      return `${after.apiRequests - before.apiRequests} API requests`;
  });

  await check('refresh token rotation: the rotated token is used, no family revoked', async () => {
    const rotated: string[] = [];
    const session = new RefreshTokenAuth({
      ...server,
      refreshToken: await post('/refresh-token'),
      onRefreshTokenRotated: (token) => {
        rotated.push(token);
      },
    });
    const before = await stats();
    const first = await session.getToken();
    await session.invalidate(first);
    const second = await session.getToken();
    const response = await authFetch(session)(`${config.instanceUrl}${LIMITS}`);
    const after = await stats();
    if (first === second) return 'the same token after invalidate';
    if (rotated.length !== 2 || rotated[0] === rotated[1]) return `${rotated.length} rotations`;
    if (after.familyRevocations !== before.familyRevocations) return 'a family was revoked';
    if (response.status !== 200) return `status ${response.status}`;
  });

  await check('JWT bearer: an RS256 assertion the org verifies', async () => {
    const session = new JwtBearerAuth({
      clientId: config.clientId,
      username: config.username,
      privateKey: config.privateKey,
      loginUrl: config.loginUrl,
      instanceUrl: config.instanceUrl,
    });
    const response = await authFetch(session)(`${config.instanceUrl}${LIMITS}`);
    if (response.status !== 200) return `status ${response.status}`;
  });

  await check('static token: sent to the org, never to another origin', async () => {
    const token = await new ClientCredentialsAuth(server).getToken();
    const api = authFetch(
      new StaticTokenAuth({ accessToken: token, instanceUrl: config.instanceUrl }),
    );
    const response = await api(`${config.instanceUrl}${LIMITS}`);
    await api(`${config.control}/seen`, { headers: { 'x-probe': '1' } });
    const seen = (await (await fetch(`${config.control}/seen`)).json()) as {
      authorization: number;
    };
    if (response.status !== 200) return `status ${response.status}`;
    if (seen.authorization !== 0) return 'the bearer reached another origin';
  });

  return checks;
}
