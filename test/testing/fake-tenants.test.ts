import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ClientCredentialsAuth, JwtBearerAuth, RefreshTokenAuth } from '../../src/index.js';
import { useFakeOrg } from '../_org.js';

// One fake org, several tenants: each with its own org id, user, app and (if asked) instance.
const fixture = useFakeOrg();

describe('the fake org with tenants', () => {
  it('mints for a tenant by its refresh token, its JWT username and its own app', async () => {
    const { org } = fixture;
    const tenant = await org.addTenant();
    const common = { loginUrl: org.loginUrl, instanceUrl: tenant.instanceUrl };
    const refreshing = new RefreshTokenAuth({
      ...common,
      clientId: org.clientId,
      clientSecret: org.clientSecret,
      refreshToken: tenant.issueRefreshToken(),
      onRefreshTokenRotated: () => {},
    });
    const jwt = new JwtBearerAuth({
      ...common,
      clientId: org.clientId,
      username: tenant.username,
      privateKey: org.jwtPrivateKey as string,
      audience: 'https://login.salesforce.com',
    });
    const own = new ClientCredentialsAuth({
      ...common,
      clientId: tenant.clientId,
      clientSecret: tenant.clientSecret,
    });
    for (const session of [refreshing, jwt, own]) {
      const info = await session.getTokenInfo();
      expect(info.orgId).toBe(tenant.orgId);
      expect(info.userId).toBe(tenant.userId);
      expect(info.signatureVerified).toBe(session !== jwt);
      expect((await session.identity()).username).toBe(tenant.username);
    }
    expect(tenant.stats.tokensIssued).toBe(3);
    // The org's first tenant is untouched, and its own app does not mint for the tenant.
    const first = fixture.session();
    expect((await first.getTokenInfo()).orgId).toBe('00D000000000001EAA');
    expect(tenant.stats.tokensIssued).toBe(3);
    await Promise.all([refreshing, jwt, own, first].map((s) => s.close()));
  });

  it('tenants added concurrently each get their own org, user and instance', async () => {
    const added = await Promise.all(
      [1, 2, 3, 4].map(() => fixture.org.addTenant({ ownInstance: true })),
    );
    for (const key of ['orgId', 'userId', 'username', 'clientId', 'instanceUrl'] as const) {
      expect(new Set(added.map((t) => t[key])).size).toBe(4);
    }
  });

  it("a tenant's own instance accepts its tokens only; its identity URL is its own", async () => {
    const { org } = fixture;
    const [a, b] = [await org.addTenant({ ownInstance: true }), await org.addTenant()];
    expect(a.instanceUrl).not.toBe(org.instanceUrl);
    expect(b.instanceUrl).toBe(org.instanceUrl);
    const mint = (t: typeof a) =>
      new ClientCredentialsAuth({
        loginUrl: org.loginUrl,
        instanceUrl: t.instanceUrl,
        clientId: t.clientId,
        clientSecret: t.clientSecret,
      });
    const [sa, sb] = [mint(a), mint(b)];
    const [ta, tb] = [await sa.getToken(), await sb.getToken()];
    const get = (base: string, token: string, path = '/services/data/v62.0/limits') =>
      fetch(`${base}${path}`, { headers: { authorization: `Bearer ${token}` } }).then(
        (r) => r.status,
      );
    expect(await get(a.instanceUrl, ta)).toBe(200);
    expect(await get(a.instanceUrl, tb)).toBe(401);
    expect(await get(org.instanceUrl, ta)).toBe(401);
    expect(await get(org.instanceUrl, tb)).toBe(200);
    expect(await get(org.instanceUrl, tb, `/id/${b.orgId}/${b.userId}`)).toBe(200);
    expect(await get(org.instanceUrl, tb, `/id/${a.orgId}/${a.userId}`)).toBe(403);
    expect(a.stats.apiRequests).toBe(1);
    expect(b.stats.apiRequests).toBe(3);
    // A test double that never shows its secrets in a failure message.
    expect(inspect(a)).not.toContain(a.clientSecret);
    expect(JSON.stringify(a)).not.toContain(a.clientSecret);
    await Promise.all([sa.close(), sb.close()]);
  });
});
