import jsforce from 'jsforce';
import { describe, expect, it } from 'vitest';
import { jsforceConnection, jsforceOptions, RefreshLoopError } from '../../src/adapters/jsforce.js';
import { StaticTokenAuth } from '../../src/index.js';
import { startFakeOrg } from '../../src/testing/index.js';
import { useFakeOrg } from '../_org.js';
import { caught } from '../_secrets.js';

const fx = useFakeOrg();
const SOQL = 'SELECT Id, Name FROM Account';

describe('jsforce integration (the real jsforce 3)', () => {
  it('jsforceConnection: query, sobject create and retrieve, limits, and a Bulk 2.0 job', async () => {
    const conn = await jsforceConnection(fx.session());
    expect(conn.instanceUrl).toBe(fx.org.instanceUrl);
    const result = await conn.query(SOQL);
    expect(result.records[0]).toMatchObject({ Name: 'Acme' });
    const created = await conn.sobject('Account').create({ Name: 'Globex' });
    expect(created).toMatchObject({ success: true });
    const id = (created as { id: string }).id;
    const fetched = await conn.sobject('Account').retrieve(id);
    expect(fetched).toMatchObject({ Id: id, Name: 'Globex' });
    expect(await conn.limits()).toMatchObject({ DailyApiRequests: { Max: 15000 } });
    const job = await conn.request({
      method: 'POST',
      url: `/services/data/v${conn.version}/jobs/ingest`,
      body: JSON.stringify({ object: 'Account', operation: 'insert' }),
      headers: { 'content-type': 'application/json' },
    });
    expect(job).toMatchObject({ object: 'Account', operation: 'insert', state: 'Open' });
    expect(fx.org.stats.tokenRequests).toBe(1);
  });

  it('a cold start of 50 concurrent queries mints once', async () => {
    fx.org.setTokenDelay(20);
    const conn = new jsforce.Connection(await jsforceOptions(fx.session()));
    const results = await Promise.all(Array.from({ length: 50 }, () => conn.query(SOQL)));
    expect(results.every((r) => r.done)).toBe(true);
    expect(fx.org.stats.tokenRequests).toBe(1);
  });

  it('after revokeAllTokens(), 50 concurrent queries recover with exactly one re-mint', async () => {
    const conn = await jsforceConnection(fx.session());
    await conn.query(SOQL);
    fx.org.revokeAllTokens();
    fx.org.resetStats();
    fx.org.setTokenDelay(20);
    const results = await Promise.all(Array.from({ length: 50 }, () => conn.query(SOQL)));
    expect(results.every((r) => r.done)).toBe(true);
    expect(fx.org.stats.tokenRequests).toBe(1);
    expect(fx.org.stats.apiRequestsByStatus).toEqual({ 200: 50, 401: 50 });
  });

  it('a persistently rejected token makes a bounded number of requests, then a RefreshLoopError', async () => {
    const conn = await jsforceConnection(fx.session());
    fx.org.rejectApiTokens('invalid-session');
    fx.org.resetStats();
    const error = await caught(() => conn.query(SOQL));
    // jsforce wraps what refreshFn reports: "Unable to refresh session due to: <our message>".
    expect(String((error as Error).message)).toContain('too many token refreshes');
    expect(fx.org.stats.apiRequests).toBe(6);
    expect(fx.org.stats.tokenRequests).toBe(5);
  });

  it('a session that hands back the rejected token stops at once', async () => {
    const token = await fx.session().getToken();
    const conn = await jsforceConnection(
      new StaticTokenAuth({ accessToken: token, instanceUrl: fx.org.instanceUrl }),
    );
    fx.org.revokeAllTokens();
    fx.org.resetStats();
    const error = await caught(() => conn.query(SOQL));
    expect(String((error as Error).message)).toContain('just reported as rejected');
    expect(fx.org.stats.apiRequests).toBe(1);
  });

  it('refreshFn reports RefreshLoopError with the code callers branch on', async () => {
    const token = await fx.session().getToken();
    const { refreshFn } = await jsforceOptions(
      new StaticTokenAuth({ accessToken: token, instanceUrl: fx.org.instanceUrl }),
    );
    const reported = await new Promise<Error | null>((resolve) =>
      refreshFn({ accessToken: token } as never, (error) => resolve(error)),
    );
    expect(reported).toBeInstanceOf(RefreshLoopError);
    expect(reported).toMatchObject({ code: 'ERR_REFRESH_LOOP' });
  });

  it('rejects options that would turn the loop guard off', async () => {
    for (const bad of [
      { refreshWindowMs: 0 },
      { refreshWindowMs: Number.NaN },
      { maxRefreshes: 0 },
    ]) {
      await expect(jsforceOptions(fx.session(), bad)).rejects.toMatchObject({
        name: 'ConfigError',
      });
    }
  });

  it('with a rotating RefreshTokenAuth, 20 consecutive forced refreshes keep working', async () => {
    const { session, rotated } = fx.refreshing();
    // Each forced refresh is a separate incident a minute apart, as far as the loop guard can tell.
    let clock = 0;
    const conn = await jsforceConnection(session, { now: () => clock });
    for (let i = 0; i < 20; i++) {
      fx.org.revokeAllTokens();
      clock += 61_000;
      expect((await conn.query(SOQL)).done).toBe(true);
    }
    expect(rotated).toHaveLength(21);
    expect(fx.org.stats.familyRevocations).toBe(0);
    expect(fx.org.isValidRefreshToken(rotated.at(-1) as string)).toBe(true);
  });

  it("side by side: jsforce's own oauth2 + refreshToken refresh breaks on the second refresh under rotation", async () => {
    const org = await startFakeOrg();
    try {
      const refreshToken = org.issueRefreshToken();
      const conn = new jsforce.Connection({
        oauth2: { clientId: org.clientId, clientSecret: org.clientSecret, loginUrl: org.loginUrl },
        instanceUrl: org.instanceUrl,
        accessToken: 'expired',
        refreshToken,
        version: '62.0',
      });
      expect((await conn.query(SOQL)).done).toBe(true); // first refresh works, rotated token dropped
      org.revokeAllTokens();
      const error = await caught(() => conn.query(SOQL)); // second refresh presents the dead token
      expect(String((error as Error).message)).toContain('expired access/refresh token');
      expect(org.stats.familyRevocations).toBe(1);
      expect(org.stats.tokenRequestsByGrant).toEqual({ refresh_token: 2 });
    } finally {
      await org.close();
    }
  });
});
