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

  it('fills conn.userInfo from the token answer, and conn.identity() works with it', async () => {
    const conn = await jsforceConnection(fx.session());
    expect(conn.userInfo).toEqual({
      id: '005000000000001AAA',
      organizationId: '00D000000000001EAA',
      // The identity URL on the instance: jsforce's identity() puts the token into its query.
      url: `${fx.org.instanceUrl}/id/00D000000000001EAA/005000000000001AAA`,
    });
    const identity = await conn.identity();
    expect(identity).toMatchObject({ user_id: '005000000000001AAA', username: fx.org.username });
    // jsforceOptions fills it too, through the connection:new listener.
    const plain = new jsforce.Connection(await jsforceOptions(fx.session()));
    expect(plain.userInfo?.organizationId).toBe('00D000000000001EAA');
  });

  it("a refresh hands jsforce the token answer as res, as jsforce's own refresh does", async () => {
    const conn = await jsforceConnection(fx.session());
    await conn.query(SOQL);
    const refreshed: [string, Record<string, unknown>][] = [];
    conn.on('refresh', (token: string, res: Record<string, unknown>) => {
      refreshed.push([token, res]);
    });
    fx.org.revokeAllTokens();
    await conn.query(SOQL);
    expect(refreshed).toHaveLength(1);
    const [token, res] = refreshed[0] as [string, Record<string, unknown>];
    expect(fx.org.isValidToken(token)).toBe(true);
    expect(res).toMatchObject({
      access_token: token,
      instance_url: fx.org.instanceUrl,
      id: `${fx.org.loginUrl}/id/00D000000000001EAA/005000000000001AAA`,
      token_type: 'Bearer',
      issued_at: expect.stringMatching(/^\d{13}$/),
      scope: 'api',
    });
    expect(res).not.toHaveProperty('refresh_token');
    expect(conn.userInfo?.id).toBe('005000000000001AAA');
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

  it('a connection whose session moved on sends the new token, and a revocation of both is cured', async () => {
    const session = fx.session();
    const conn = await jsforceConnection(session);
    await conn.query(SOQL);
    const held = conn.accessToken as string;
    // Another client of the session had its token rejected and re-minted: the connection still
    // holds the old one, which the org later revokes along with the new.
    await session.invalidate(held);
    const current = await session.getToken();
    session.confirm(current); // that client's request with it succeeded
    fx.org.revokeAllTokens();
    fx.org.resetStats();
    expect((await conn.query(SOQL)).done).toBe(true);
    expect(fx.org.stats.tokenRequests).toBe(1);
    expect(fx.org.apiRequests.map((r) => [r.status, r.token === current])).toEqual([
      [401, true],
      [200, false],
    ]);
    expect(conn.accessToken).toBe(await session.getToken());
    // No revocation: the next call goes out with the session's token at once (no 401 first).
    const newer = await session.getToken();
    await session.invalidate(newer);
    const newest = await session.getToken();
    fx.org.resetStats();
    expect((await conn.query(SOQL)).done).toBe(true);
    expect(fx.org.apiRequests.map((r) => [r.status, r.token === newest])).toEqual([[200, true]]);
    expect(conn.accessToken).toBe(newest);
  });

  it('a persistently rejected token: each request re-sent at most once, then no re-mint at all', async () => {
    const conn = await jsforceConnection(fx.session());
    await conn.query(SOQL);
    fx.org.rejectApiTokens('invalid-session');
    fx.org.resetStats();
    const first = await caught(() => conn.query(SOQL));
    expect(first).toBeInstanceOf(RefreshLoopError);
    expect(first).toMatchObject({ code: 'ERR_REFRESH_LOOP', reason: 'rejected-again' });
    expect(fx.org.stats.apiRequests).toBe(2);
    expect(fx.org.stats.tokenRequests).toBe(1);
    // The re-minted token was rejected before any request with it succeeded: the rejection
    // guard holds minting back, so each further call costs one request and no login.
    for (let call = 1; call <= 10; call++) {
      const error = await caught(() => conn.query(SOQL));
      expect(String((error as Error).message)).toContain('just reported as rejected');
    }
    expect(fx.org.stats.apiRequests).toBe(12);
    expect(fx.org.stats.tokenRequests).toBe(1);
    // Once the org accepts tokens again, calls succeed with no new login.
    fx.org.rejectApiTokens(undefined);
    expect((await conn.query(SOQL)).done).toBe(true);
    expect(fx.org.stats.tokenRequests).toBe(1);
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

  it('SOAP (the envelope) and Bulk API 1.0 (X-SFDC-Session) calls survive a revocation with 1 re-mint each', async () => {
    const conn = await jsforceConnection(fx.session());
    const soap = (conn as unknown as { soap: { getUserInfo(): Promise<unknown> } }).soap;
    await soap.getUserInfo();
    for (const call of [
      () => soap.getUserInfo(),
      () => conn.bulk.createJob('Account', 'insert').open(),
      () => soap.getUserInfo(),
    ]) {
      fx.org.revokeAllTokens();
      fx.org.resetStats();
      await call();
      expect(fx.org.stats.tokenRequests).toBe(1);
      expect(fx.org.apiRequests.map((r) => r.status)).toEqual([
        fx.org.apiRequests[0]?.path.startsWith('/services/async/') ? 400 : 500,
        200,
      ]);
    }
  });

  it('maxRefreshes, refreshWindowMs and now are deprecated no-ops: accepted and ignored', async () => {
    const conn = await jsforceConnection(fx.session(), {
      maxRefreshes: 1,
      refreshWindowMs: 1,
      now: () => 0,
    });
    for (let i = 0; i < 3; i++) {
      fx.org.revokeAllTokens();
      expect((await conn.query(SOQL)).done).toBe(true);
    }
  });

  it('with a rotating RefreshTokenAuth, 100 revocation rounds back to back all succeed', async () => {
    const { session, rotated } = fx.refreshing();
    const conn = await jsforceConnection(session);
    await conn.query(SOQL);
    fx.org.resetStats();
    for (let i = 0; i < 100; i++) {
      fx.org.revokeAllTokens();
      expect((await conn.query(SOQL)).done).toBe(true);
    }
    expect(fx.org.stats.tokenRequests).toBe(100);
    expect(fx.org.stats.apiRequestsByStatus).toEqual({ 200: 100, 401: 100 });
    expect(rotated).toHaveLength(101);
    expect(fx.org.stats.familyRevocations).toBe(0);
    expect(fx.org.isValidRefreshToken(rotated.at(-1) as string)).toBe(true);
  });

  describe('the bearer goes only to the org', () => {
    const connections: [string, () => Promise<import('jsforce').Connection>][] = [
      ['jsforceConnection (jsforce 3)', () => jsforceConnection(fx.session())],
      [
        'new jsforce.Connection(await jsforceOptions(...))',
        async () => new jsforce.Connection(await jsforceOptions(fx.session())),
      ],
      [
        'jsforceConnection with @jsforce/jsforce-node',
        async () =>
          jsforceConnection(fx.session(), {
            Connection: (await import('@jsforce/jsforce-node')).Connection,
          }) as unknown as Promise<import('jsforce').Connection>,
      ],
    ];
    it.each(connections)('%s: a foreign absolute URL is sent without it', async (_, make) => {
      const conn = await make();
      await conn.request(`${fx.other.url}/collect`);
      await conn.requestGet(`${fx.other.url}/collect-get`);
      const seen = fx.other.requests.slice(-2);
      expect(seen.map((r) => r.path)).toEqual(['/collect', '/collect-get']);
      for (const r of seen) {
        expect(r.headers.authorization).toBeUndefined();
        expect(r.headers['x-sfdc-session']).toBeUndefined();
      }
      // The org itself still gets it.
      await conn.request('/services/data/v62.0/limits');
      expect(fx.org.apiRequests.at(-1)?.token).toBe(conn.accessToken);
    });

    it.each(connections)(
      '%s: a redirect from the org to another host does not carry it',
      async (_, make) => {
        const conn = await make();
        const to = encodeURIComponent(`${fx.other.url}/landed`);
        await conn.request(`/services/apexrest/redirect?to=${to}`);
        expect(fx.org.apiRequests.at(-1)?.token).toBe(conn.accessToken);
        expect(fx.other.requests.at(-1)?.path).toBe('/landed');
        expect(fx.other.requests.at(-1)?.headers.authorization).toBeUndefined();
      },
    );
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
