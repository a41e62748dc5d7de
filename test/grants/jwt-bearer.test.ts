import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  JWT_ASSERTION_LIFETIME_S,
  JWT_BEARER_GRANT,
  JwtBearerAuth,
  type JwtBearerOptions,
  OAuthError,
} from '../../src/index.js';
import { useFakeOrg } from '../_org.js';
import { caught, expectNoSecrets } from '../_secrets.js';
import { expectSingleFlightAndCas } from './_single-flight.js';

const fx = useFakeOrg({ users: ['integration@acme.com'] });

const jwt = (overrides: Partial<JwtBearerOptions> = {}) =>
  new JwtBearerAuth({
    clientId: fx.org.clientId,
    username: 'integration@acme.com',
    privateKey: fx.org.jwtPrivateKey as string,
    loginUrl: fx.org.loginUrl,
    instanceUrl: fx.org.instanceUrl,
    ...overrides,
  });

function claimsOf(assertion: string) {
  const [header, payload] = assertion.split('.');
  return {
    header: JSON.parse(Buffer.from(header as string, 'base64url').toString()),
    claims: JSON.parse(Buffer.from(payload as string, 'base64url').toString()),
  };
}

describe('JwtBearerAuth', () => {
  it('signs an RS256 assertion the org verifies, with iss, sub, aud and a short exp', async () => {
    const token = await jwt().getToken();
    expect(fx.org.isValidToken(token)).toBe(true);
    const request = fx.org.lastTokenRequest ?? {};
    expect(request.grant_type).toBe(JWT_BEARER_GRANT);
    expect(Object.keys(request).sort()).toEqual(['assertion', 'grant_type']);
    const { header, claims } = claimsOf(request.assertion ?? '');
    expect(header).toEqual({ alg: 'RS256' });
    expect(claims).toMatchObject({
      iss: fx.org.clientId,
      sub: 'integration@acme.com',
      aud: fx.org.loginUrl,
    });
    const now = Date.now() / 1000;
    expect(claims.exp).toBeGreaterThan(now);
    expect(claims.exp).toBeLessThanOrEqual(Math.ceil(now) + JWT_ASSERTION_LIFETIME_S);
    expect(JWT_ASSERTION_LIFETIME_S).toBeLessThan(180);
  });

  it('accepts a PKCS#1 PEM, a PEM with literal \\n escapes, a KeyObject and a CryptoKey', async () => {
    const pem = fx.org.jwtPrivateKey as string;
    const key = createPrivateKey(pem);
    const pkcs1 = key.export({ type: 'pkcs1', format: 'pem' }).toString();
    const cryptoKey = await crypto.subtle.importKey(
      'pkcs8',
      key.export({ type: 'pkcs8', format: 'der' }),
      { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
      false,
      ['sign'],
    );
    for (const privateKey of [pkcs1, pem.replace(/\n/g, '\\n'), key, cryptoKey]) {
      await expect(jwt({ privateKey }).getToken()).resolves.toBeTypeOf('string');
    }
  });

  it('the audience defaults to the login URL and can be set', async () => {
    const wrong = await caught(() => jwt({ audience: 'https://test.salesforce.com' }).getToken());
    expect(wrong).toBeInstanceOf(OAuthError);
    expect(wrong).toMatchObject({ error: 'invalid_grant' });
    expect((wrong as OAuthError).errorDescription()).toBe('Audience validation failed');
    await expect(jwt({ audience: fx.org.loginUrl }).getToken()).resolves.toBeTypeOf('string');
  });

  it.each([
    [
      'an unknown user',
      { username: 'stranger@acme.com' },
      'invalid_grant',
      "user hasn't approved this consumer",
    ],
    [
      'another client id',
      { clientId: 'not-the-app' },
      'invalid_client_id',
      'client identifier invalid',
    ],
    [
      'an expired assertion',
      { now: () => Date.now() - 3_600_000 },
      'invalid_grant',
      'expired authorization code',
    ],
  ])('%s is refused with Salesforce’s OAuth error', async (_, overrides, error, description) => {
    const failure = await caught(() => jwt(overrides).getToken());
    expect(failure).toMatchObject({ name: 'OAuthError', error, transient: false });
    expect((failure as OAuthError).errorDescription()).toBe(description);
  });

  it('a key the connected app does not trust is refused, and the assertion never shows', async () => {
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    const session = jwt({ privateKey: other });
    const failure = await caught(() => session.getToken());
    expect(failure).toMatchObject({ name: 'OAuthError', error: 'invalid_grant' });
    const assertion = fx.org.lastTokenRequest?.assertion ?? '';
    expect(assertion.length).toBeGreaterThan(100);
    const pemBody = (fx.org.jwtPrivateKey as string).split('\n')[5] ?? '';
    expectNoSecrets(failure, [assertion, pemBody]);
    expectNoSecrets(session, [assertion, pemBody]);
  });

  it.each([
    ['not a key', 'hello'],
    ['a public key', generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey],
    ['an EC key', generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey],
    ['a 1024-bit RSA key', generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey],
    ['a number', 42],
  ])('%s is a ConfigError at construction, naming privateKey', (_, privateKey) => {
    let thrown: unknown;
    try {
      jwt({ privateKey: privateKey as never });
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(ConfigError);
    expect(thrown).toMatchObject({ option: 'privateKey' });
    expect(fx.org.stats.tokenRequests).toBe(0);
  });

  it('rejects missing options by name and defaults loginUrl to login.salesforce.com', () => {
    expect(() => jwt({ username: '' })).toThrow(expect.objectContaining({ option: 'username' }));
    expect(() => jwt({ audience: 'nope' })).toThrow(
      expect.objectContaining({ option: 'audience' }),
    );
    const { loginUrl: _, ...rest } = {
      clientId: 'x',
      username: 'u',
      privateKey: fx.org.jwtPrivateKey as string,
      instanceUrl: 'https://acme.my.salesforce.com',
      loginUrl: '',
    };
    expect(() => new JwtBearerAuth(rest)).not.toThrow();
  });

  it('single-flight and compare-and-swap hold for the JWT grant', async () => {
    await expectSingleFlightAndCas(jwt(), fx.org, JWT_BEARER_GRANT);
  });
});
