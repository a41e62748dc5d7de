// The client credentials grant works on the org's My Domain only: Salesforce refuses it on the
// generic login hosts with 400 invalid_grant "request not supported on this domain". The fake's
// genericLoginUrl plays such a host, and ClientCredentialsAuth refuses those hosts at construction.
import { describe, expect, it } from 'vitest';
import {
  ClientCredentialsAuth,
  ConfigError,
  OAuthError,
  RefreshTokenAuth,
} from '../../src/index.js';
import { sessionFor, useFakeOrg } from '../_org.js';
import { expectNoSecrets } from '../_secrets.js';

const fx = useFakeOrg();
const LIMITS = '/services/data/v62.0/limits';

async function post(url: string, params: Record<string, string>) {
  const response = await fetch(`${url}/services/oauth2/token`, {
    method: 'POST',
    body: new URLSearchParams(params),
  });
  return { status: response.status, body: await response.json() };
}

describe('the generic login host', () => {
  it('refuses client credentials as Salesforce does, where the My Domain grants them', async () => {
    const params = {
      grant_type: 'client_credentials',
      client_id: fx.org.clientId,
      client_secret: fx.org.clientSecret,
    };
    expect(await post(fx.org.genericLoginUrl, params)).toEqual({
      status: 400,
      body: { error: 'invalid_grant', error_description: 'request not supported on this domain' },
    });
    expect((await post(fx.org.loginUrl, params)).status).toBe(200);
  });

  it('a ClientCredentialsAuth pointed there fails with reason domain-not-supported, nothing shown', async () => {
    const session = sessionFor(fx.org, { loginUrl: fx.org.genericLoginUrl, backoff: false });
    const error = await session.getToken().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OAuthError);
    expect(error).toMatchObject({ reason: 'domain-not-supported', status: 400 });
    expectNoSecrets(error, ['request not supported on this domain', fx.org.clientSecret]);
  });

  it('grants the refresh token there, and serves no API: the token works at the instance', async () => {
    const session = new RefreshTokenAuth({
      clientId: fx.org.clientId,
      clientSecret: fx.org.clientSecret,
      refreshToken: fx.org.issueRefreshToken(),
      loginUrl: fx.org.genericLoginUrl,
      instanceUrl: fx.org.instanceUrl,
      onRefreshTokenRotated: () => {},
    });
    const token = await session.getToken();
    const headers = { authorization: `Bearer ${token}` };
    expect((await fetch(`${fx.org.genericLoginUrl}${LIMITS}`, { headers })).status).toBe(404);
    expect((await fetch(`${fx.org.instanceUrl}${LIMITS}`, { headers })).status).toBe(200);
  });

  it('ClientCredentialsAuth refuses login.salesforce.com and test.salesforce.com at construction', () => {
    for (const loginUrl of ['https://login.salesforce.com', 'https://TEST.salesforce.com/']) {
      let thrown: unknown;
      try {
        new ClientCredentialsAuth({
          clientId: fx.org.clientId,
          clientSecret: fx.org.clientSecret,
          loginUrl,
          instanceUrl: 'https://acme.my.salesforce.com',
        });
      } catch (error) {
        thrown = error;
      }
      expect(thrown).toBeInstanceOf(ConfigError);
      expect(thrown).toMatchObject({ option: 'loginUrl' });
      expect(String((thrown as Error).message)).toContain('My Domain');
    }
    // A My Domain is fine.
    expect(
      () =>
        new ClientCredentialsAuth({
          clientId: fx.org.clientId,
          clientSecret: fx.org.clientSecret,
          loginUrl: 'https://acme.my.salesforce.com',
          instanceUrl: 'https://acme.my.salesforce.com',
        }),
    ).not.toThrow();
  });
});
