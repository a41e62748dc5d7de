// Salesforce keeps at most 5 refresh-token approvals per user and connected app: the sixth
// revokes the oldest, refresh token and access tokens. A test holding an early refresh token
// past five more logins must fail here as it would against an org.
import { afterEach, describe, expect, it } from 'vitest';
import { OAuthError, RefreshTokenAuth } from '../../src/index.js';
import { type FakeOrg, startFakeOrg } from '../../src/testing/index.js';

const LIMITS = '/services/data/v62.0/limits';
const opened: FakeOrg[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((org) => org.close()));
});

const sessionOf = (org: FakeOrg, refreshToken: string) =>
  new RefreshTokenAuth({
    clientId: org.clientId,
    clientSecret: org.clientSecret,
    refreshToken,
    loginUrl: org.loginUrl,
    instanceUrl: org.instanceUrl,
    backoff: false,
    onRefreshTokenRotated: () => {},
  });

describe('refresh-token approvals per user', () => {
  it('the sixth approval revokes the oldest family: its refresh token and its access tokens', async () => {
    const org = await startFakeOrg();
    opened.push(org);
    const oldest = sessionOf(org, org.issueRefreshToken());
    const token = await oldest.getToken();
    const limits = () =>
      fetch(`${org.instanceUrl}${LIMITS}`, { headers: { authorization: `Bearer ${token}` } });
    expect((await limits()).status).toBe(200);
    const later = Array.from({ length: 4 }, () => org.issueRefreshToken());
    expect((await limits()).status).toBe(200);
    expect(org.stats.approvalRevocations).toBe(0);

    const sixth = org.issueRefreshToken();
    expect(org.stats.approvalRevocations).toBe(1);
    expect((await limits()).status).toBe(401);
    await oldest.invalidate(token);
    const refused = await oldest.getToken().catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(OAuthError);
    expect(refused).toMatchObject({ error: 'invalid_grant' });
    // The five kept work, and another tenant's user has approvals of its own.
    for (const refreshToken of [...later, sixth]) {
      expect(org.isValidRefreshToken(refreshToken)).toBe(true);
    }
    const tenant = await org.addTenant();
    for (let i = 0; i < 5; i++) tenant.issueRefreshToken();
    expect(org.stats.approvalRevocations).toBe(1);
    expect(org.isValidRefreshToken(later[0] as string)).toBe(true);
  });

  it('refreshTokenApprovals sets the cap, and a family revoked otherwise frees its place', async () => {
    const org = await startFakeOrg({ refreshTokenApprovals: 2 });
    opened.push(org);
    const first = org.issueRefreshToken();
    const second = org.issueRefreshToken();
    // Reusing a rotated-away token revokes the first family (Salesforce's reuse rule)…
    const session = sessionOf(org, first);
    await session.invalidate(await session.getToken());
    await session.getToken();
    const reuse = await fetch(`${org.loginUrl}/services/oauth2/token`, {
      method: 'POST',
      body: new URLSearchParams({
        grant_type: 'refresh_token',
        refresh_token: first,
        client_id: org.clientId,
        client_secret: org.clientSecret,
      }),
    });
    expect(reuse.status).toBe(400);
    expect(org.stats.familyRevocations).toBe(1);
    // … so a new approval makes two live ones again and revokes nothing.
    const third = org.issueRefreshToken();
    expect(org.stats.approvalRevocations).toBe(0);
    expect(org.isValidRefreshToken(second)).toBe(true);
    org.issueRefreshToken();
    expect(org.stats.approvalRevocations).toBe(1);
    expect(org.isValidRefreshToken(second)).toBe(false);
    expect(org.isValidRefreshToken(third)).toBe(true);
    await expect(startFakeOrg({ refreshTokenApprovals: 0 })).rejects.toThrow(RangeError);
  });
});
