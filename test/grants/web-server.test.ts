import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  FlowMismatchError,
  InsecureUrlError,
  OAuthError,
  RefreshTokenAuth,
  StateMismatchError,
  StaticTokenAuth,
  WebServerFlow,
  type WebServerFlowOptions,
} from '../../src/index.js';
import { useFakeOrg } from '../_org.js';
import { caught, expectNoSecrets } from '../_secrets.js';

const fx = useFakeOrg();
const REDIRECT = 'http://localhost:3000/oauth/callback';

const flow = (overrides: Partial<WebServerFlowOptions> = {}) =>
  new WebServerFlow({
    clientId: fx.org.clientId,
    clientSecret: fx.org.clientSecret,
    redirectUri: REDIRECT,
    loginUrl: fx.org.loginUrl,
    ...overrides,
  });

describe('WebServerFlow', () => {
  it('start() builds an S256 authorize URL and a JSON-serialisable pending login', () => {
    const { url, pending } = flow().start();
    const parsed = new URL(url);
    expect(parsed.origin + parsed.pathname).toBe(`${fx.org.loginUrl}/services/oauth2/authorize`);
    const q = Object.fromEntries(parsed.searchParams);
    expect(q).toMatchObject({
      response_type: 'code',
      client_id: fx.org.clientId,
      redirect_uri: REDIRECT,
      scope: 'api refresh_token',
      state: pending.state,
      code_challenge_method: 'S256',
    });
    expect(q.code_challenge).toMatch(/^[\w-]{43}$/);
    expect(pending.codeVerifier).toMatch(/^[\w-]{43,128}$/);
    expect(url).not.toContain(pending.codeVerifier);
    expect(JSON.parse(JSON.stringify(pending))).toEqual(pending);
    const again = flow().start();
    expect(again.pending.state).not.toBe(pending.state);
    expect(again.pending.codeVerifier).not.toBe(pending.codeVerifier);
  });

  it('complete() exchanges the code with its PKCE verifier for a refresh-token session', async () => {
    const f = flow();
    const { url, pending } = f.start();
    const callback = await fx.org.approve(url);
    const rotated: string[] = [];
    const session = await f.complete(JSON.parse(JSON.stringify(pending)), callback.searchParams, {
      onRefreshTokenRotated: (t) => void rotated.push(t),
    });
    expect(session).toBeInstanceOf(RefreshTokenAuth);
    expect(session.instanceUrl).toBe(fx.org.instanceUrl);
    expect(fx.org.lastTokenRequest).toMatchObject({
      grant_type: 'authorization_code',
      redirect_uri: REDIRECT,
      code_verifier: pending.codeVerifier,
      client_secret: fx.org.clientSecret,
    });
    // The access token from the exchange is used first; the granted refresh token went to the handler.
    fx.org.resetStats();
    const token = await session.getToken();
    expect(fx.org.isValidToken(token)).toBe(true);
    expect(fx.org.stats.tokenRequests).toBe(0);
    expect(rotated).toHaveLength(1);
    expect(fx.org.isValidRefreshToken(rotated[0] as string)).toBe(true);
    await session.invalidate(token);
    await session.getToken();
    expect(fx.org.lastTokenRequest?.refresh_token).toBe(rotated[0]);
    expect(rotated).toHaveLength(2);
  });

  it('without the refresh_token scope the session is a StaticTokenAuth', async () => {
    const f = flow({ scopes: ['api'] });
    const { url, pending } = f.start();
    const session = await f.complete(pending, (await fx.org.approve(url)).searchParams);
    expect(session).toBeInstanceOf(StaticTokenAuth);
    expect(fx.org.isValidToken(await session.getToken())).toBe(true);
  });

  it('a wrong state is a StateMismatchError before any request', async () => {
    const f = flow();
    const { url, pending } = f.start();
    const callback = await fx.org.approve(url);
    callback.searchParams.set('state', `${pending.state}x`);
    fx.org.resetStats();
    expect(await caught(() => f.complete(pending, callback.searchParams))).toBeInstanceOf(
      StateMismatchError,
    );
    callback.searchParams.delete('state');
    expect(await caught(() => f.complete(pending, callback.searchParams))).toBeInstanceOf(
      StateMismatchError,
    );
    expect(fx.org.stats.tokenRequests).toBe(0);
  });

  it('a pending login from a differently configured flow is a FlowMismatchError before any request', async () => {
    const { url, pending } = flow().start();
    const callback = await fx.org.approve(url);
    fx.org.resetStats();
    for (const other of [
      flow({ redirectUri: 'http://localhost:3000/elsewhere' }),
      flow({ clientId: 'another-app' }),
      flow({ loginUrl: `http://localhost:${new URL(fx.org.loginUrl).port}` }),
    ]) {
      expect(await caught(() => other.complete(pending, callback.searchParams))).toBeInstanceOf(
        FlowMismatchError,
      );
    }
    expect(fx.org.stats.tokenRequests).toBe(0);
  });

  it('an error on the callback becomes an OAuthError, its description kept off the message', async () => {
    const f = flow();
    const { url, pending } = f.start();
    fx.org.denyNextAuthorization('access_denied');
    const callback = await fx.org.approve(url);
    const error = await caught(() => f.complete(pending, callback.searchParams));
    expect(error).toBeInstanceOf(OAuthError);
    expect(error).toMatchObject({ error: 'access_denied' });
    expect((error as OAuthError).errorDescription()).toBe('end-user denied authorization');
    expectNoSecrets(error, ['end-user denied authorization']);
  });

  it.each([
    'access_denied\r\n2026-01-01 INFO login ok for admin',
    'Your session expired: call +1 555 0100 to restore access',
    `access_denied${'x'.repeat(64)}`,
    'access denied',
  ])('a callback error that is no OAuth error code is never quoted: %j', async (bad) => {
    const f = flow();
    const { pending } = f.start();
    fx.org.resetStats();
    for (const callback of [
      { state: pending.state, error: bad, error_description: 'free text from the redirect' },
      new URLSearchParams({ state: pending.state, error: bad }),
    ]) {
      const error = await caught(() => f.complete(pending, callback));
      expect(error).toBeInstanceOf(OAuthError);
      expect(error).toMatchObject({ error: 'invalid_request', status: 400 });
      expect((error as Error).message).not.toMatch(/[\r\n]/);
      expectNoSecrets(error, [bad, 'free text from the redirect']);
    }
    expect(fx.org.stats.tokenRequests).toBe(0);
  });

  it('a wrong verifier or a replayed code is refused by the org', async () => {
    const f = flow();
    const { url, pending } = f.start();
    const callback = await fx.org.approve(url);
    const forged = { ...pending, codeVerifier: 'x'.repeat(64) };
    const refused = await caught(() => f.complete(forged, callback.searchParams));
    expect(refused).toMatchObject({ name: 'OAuthError', error: 'invalid_grant' });
    expect((refused as OAuthError).errorDescription()).toBe('invalid code verifier');
    // The code was spent by that attempt, as Salesforce spends it.
    expect(await caught(() => f.complete(pending, callback.searchParams))).toMatchObject({
      error: 'invalid_grant',
    });
  });

  it('validates its options and the pending login', async () => {
    expect(() => flow({ redirectUri: 'http://app.example.com/cb' })).toThrow(InsecureUrlError);
    expect(() => flow({ redirectUri: 'javascript:alert(1)' })).toThrow(
      expect.objectContaining({ option: 'redirectUri' }),
    );
    expect(() => flow({ scopes: ['api refresh_token'] })).toThrow(
      expect.objectContaining({ option: 'scopes' }),
    );
    expect(() => flow({ clientId: '' })).toThrow(ConfigError);
    expect(() => flow({ redirectUri: 'com.acme.app:/callback' })).not.toThrow();
    const error = await caught(() =>
      flow().complete({ state: 's' } as never, { code: 'c', state: 's' }),
    );
    expect(error).toMatchObject({ name: 'ConfigError', option: 'pending' });
    expectNoSecrets(flow(), [fx.org.clientSecret]);
  });
});
