// Salesforce's login rate limit (about 3,600 logins per user per hour, then "login rate
// exceeded"), which the fake org plays with a small window here: a client that storms logins
// must meet the refusal in tests, not only in production.
import { afterEach, describe, expect, it } from 'vitest';
import { OAuthError, RefreshTokenAuth } from '../../src/index.js';
import { type FakeOrg, startFakeOrg } from '../../src/testing/index.js';
import { sessionFor } from '../_org.js';
import { expectNoSecrets } from '../_secrets.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const opened: FakeOrg[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((org) => org.close()));
});
async function org(logins: number, windowMs: number): Promise<FakeOrg> {
  const started = await startFakeOrg({ loginRate: { logins, windowMs } });
  opened.push(started);
  return started;
}

async function clientCredentials(o: FakeOrg): Promise<{ status: number; body: unknown }> {
  const response = await fetch(`${o.loginUrl}/services/oauth2/token`, {
    method: 'POST',
    body: new URLSearchParams({
      grant_type: 'client_credentials',
      client_id: o.clientId,
      client_secret: o.clientSecret,
    }),
  });
  return { status: response.status, body: await response.json() };
}

describe('the fake org’s login rate limit', () => {
  it('refuses the login past the limit with Salesforce’s answer, and lets one in as the window moves', async () => {
    const o = await org(3, 400);
    for (let i = 0; i < 3; i++) expect((await clientCredentials(o)).status).toBe(200);
    expect(await clientCredentials(o)).toEqual({
      status: 400,
      body: { error: 'invalid_grant', error_description: 'login rate exceeded' },
    });
    // Refusals do not count: once the first logins leave the window, logins work again.
    await sleep(450);
    expect((await clientCredentials(o)).status).toBe(200);
  });

  it('the limit is per user: another tenant’s user still logs in', async () => {
    const o = await org(2, 60_000);
    const tenant = await o.addTenant();
    const mine = sessionFor(o, { backoff: false });
    await mine.invalidate(await mine.getToken());
    await mine.invalidate(await mine.getToken());
    const refused = await mine.getToken().catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(OAuthError);
    expect(refused).toMatchObject({ reason: 'rate-exceeded', status: 400 });
    expectNoSecrets(refused, ['login rate exceeded', o.clientSecret]);
    const theirs = sessionFor(o, {
      clientId: tenant.clientId,
      clientSecret: tenant.clientSecret,
      instanceUrl: tenant.instanceUrl,
    });
    expect(await theirs.getToken()).toMatch(/^00D/);
  });

  it('a session refused by the limit backs off instead of asking again on every call', async () => {
    const o = await org(1, 60_000);
    const session = sessionFor(o, { backoff: { initialMs: 5_000, maxMs: 5_000 } });
    await session.invalidate(await session.getToken());
    o.resetStats();
    const outcomes = await Promise.all(
      Array.from({ length: 20 }, () => session.getToken().catch((e: unknown) => e)),
    );
    for (let call = 0; call < 20; call++) outcomes.push(await session.getToken().catch((e) => e));
    expect(outcomes.every((e) => e instanceof OAuthError && e.reason === 'rate-exceeded')).toBe(
      true,
    );
    expect(o.stats.tokenRequests).toBe(1);
  });

  it('a refused refresh rotates nothing: the refresh token still works once the window moves on', async () => {
    const o = await org(1, 400);
    const rotated: string[] = [];
    const session = new RefreshTokenAuth({
      clientId: o.clientId,
      clientSecret: o.clientSecret,
      refreshToken: o.issueRefreshToken(),
      loginUrl: o.loginUrl,
      instanceUrl: o.instanceUrl,
      backoff: false,
      onRefreshTokenRotated: (token) => {
        rotated.push(token);
      },
    });
    await session.invalidate(await session.getToken());
    expect(rotated).toHaveLength(1);
    const refused = await session.getToken().catch((e: unknown) => e);
    expect(refused).toMatchObject({ reason: 'rate-exceeded' });
    expect(rotated).toHaveLength(1);
    await sleep(450);
    expect(await session.getToken()).toMatch(/^00D/);
    expect(rotated).toHaveLength(2);
    expect(o.stats.familyRevocations).toBe(0);
  });
});
