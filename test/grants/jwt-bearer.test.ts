import { createPrivateKey, generateKeyPairSync, sign } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  JWT_ASSERTION_LIFETIME_S,
  JWT_BEARER_GRANT,
  JwtBearerAuth,
  type JwtBearerOptions,
  jwtAudienceFor,
  OAuthError,
} from '../../src/index.js';
import { startFakeOrg } from '../../src/testing/index.js';
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

/** An assertion the fake org's key signed, with `exp` in milliseconds when asked. */
async function assertionWith(options: { expInMs: boolean }): Promise<string> {
  const encode = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const now = Date.now();
  const claims = {
    iss: fx.org.clientId,
    sub: 'integration@acme.com',
    aud: 'https://login.salesforce.com',
    exp: options.expInMs ? now + 300_000 : Math.floor(now / 1000) + 300,
  };
  const input = `${encode({ alg: 'RS256' })}.${encode(claims)}`;
  const signature = sign(
    'sha256',
    Buffer.from(input),
    createPrivateKey(fx.org.jwtPrivateKey as string),
  );
  return `${input}.${signature.toString('base64url')}`;
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
      // Salesforce's login host, not the loopback host it was POSTed to.
      aud: 'https://login.salesforce.com',
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

  it('a wrong audience is refused as Salesforce does: audience-invalid, or for a My Domain the misleading user-not-approved', async () => {
    const wrong = await caught(() => jwt({ audience: 'https://test.salesforce.com' }).getToken());
    expect(wrong).toBeInstanceOf(OAuthError);
    expect(wrong).toMatchObject({ error: 'invalid_grant', reason: 'audience-invalid' });
    expect((wrong as OAuthError).errorDescription()).toBe('audience is invalid');
    for (const audience of [fx.org.loginUrl, 'https://acme.my.salesforce.com']) {
      const misleading = await caught(() => jwt({ audience }).getToken());
      expect(misleading).toMatchObject({ error: 'invalid_grant', reason: 'user-not-approved' });
      expect((misleading as OAuthError).errorDescription()).toBe(
        "user hasn't approved this consumer",
      );
    }
    await expect(jwt({ audience: 'https://login.salesforce.com' }).getToken()).resolves.toBeTypeOf(
      'string',
    );
  });

  it('a My Domain loginUrl and no audience succeeds: aud is https://login.salesforce.com', async () => {
    // The assertion is POSTed to the My Domain host (routed to the fake org over real HTTP).
    const hosts: string[] = [];
    const routed: typeof fetch = (input, init) => {
      const url = new URL(String(input));
      hosts.push(url.host);
      return fetch(`${fx.org.loginUrl}${url.pathname}`, init);
    };
    const session = jwt({ loginUrl: 'https://acme.my.salesforce.com', fetch: routed });
    expect(fx.org.isValidToken(await session.getToken())).toBe(true);
    expect(hosts).toEqual(['acme.my.salesforce.com']);
    expect(claimsOf(fx.org.lastTokenRequest?.assertion ?? '').claims.aud).toBe(
      'https://login.salesforce.com',
    );
  });

  it('a sandbox host defaults aud to https://test.salesforce.com, which a sandbox org wants', async () => {
    const sandbox = await startFakeOrg({
      users: ['integration@acme.com'],
      audience: 'https://test.salesforce.com',
    });
    try {
      const routed: typeof fetch = (input, init) =>
        fetch(`${sandbox.loginUrl}${new URL(String(input)).pathname}`, init);
      for (const loginUrl of [
        'https://acme--uat.sandbox.my.salesforce.com',
        'https://test.salesforce.com',
      ]) {
        const session = new JwtBearerAuth({
          clientId: sandbox.clientId,
          username: 'integration@acme.com',
          privateKey: sandbox.jwtPrivateKey as string,
          loginUrl,
          instanceUrl: sandbox.instanceUrl,
          fetch: routed,
        });
        expect(sandbox.isValidToken(await session.getToken())).toBe(true);
      }
      // The production audience is refused by a sandbox.
      const production = new JwtBearerAuth({
        clientId: sandbox.clientId,
        username: 'integration@acme.com',
        privateKey: sandbox.jwtPrivateKey as string,
        loginUrl: sandbox.loginUrl,
        instanceUrl: sandbox.instanceUrl,
      });
      expect(await caught(() => production.getToken())).toMatchObject({
        reason: 'audience-invalid',
      });
    } finally {
      await sandbox.close();
    }
  });

  it.each([
    ['https://login.salesforce.com', 'https://login.salesforce.com'],
    ['https://acme.my.salesforce.com', 'https://login.salesforce.com'],
    ['https://ACME.My.Salesforce.com', 'https://login.salesforce.com'],
    ['https://acme-dev-ed.develop.my.salesforce.com', 'https://login.salesforce.com'],
    ['https://acme.my.salesforce.mil', 'https://login.salesforce.com'],
    ['http://127.0.0.1:8080', 'https://login.salesforce.com'],
    ['https://test.salesforce.com', 'https://test.salesforce.com'],
    ['https://acme--uat.sandbox.my.salesforce.com', 'https://test.salesforce.com'],
    ['https://acme--uat.my.salesforce.com', 'https://test.salesforce.com'],
    ['https://acme--uat.cs42.my.salesforce.com', 'https://test.salesforce.com'],
    ['https://cs42.salesforce.com', 'https://test.salesforce.com'],
    ['https://speed-fun-1234.scratch.my.salesforce.com', 'https://test.salesforce.com'],
    ['https://acme.my.site.com', 'https://acme.my.site.com'],
    ['https://acme.my.site.com/partners', 'https://acme.my.site.com/partners'],
    ['https://acme--uat.sandbox.my.site.com', 'https://acme--uat.sandbox.my.site.com'],
  ])('jwtAudienceFor(%s) is %s', (loginUrl, audience) => {
    expect(jwtAudienceFor(loginUrl)).toBe(audience);
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

  it('each refusal carries its reason: an expired assertion is assertion-expired', async () => {
    const reasons = await Promise.all(
      [
        { username: 'stranger@acme.com' },
        { clientId: 'not-the-app' },
        { now: () => Date.now() - 3_600_000 },
        { privateKey: generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey },
      ].map(
        async (overrides) => ((await caught(() => jwt(overrides).getToken())) as OAuthError).reason,
      ),
    );
    expect(reasons).toEqual([
      'user-not-approved',
      'invalid-client',
      'assertion-expired',
      'invalid-assertion',
    ]);
  });

  it('the fake org accepts an exp in milliseconds, as Salesforce does (sfdx-core sends one)', async () => {
    const { claims } = claimsOf(await assertionWith({ expInMs: true }));
    expect(claims.exp).toBeGreaterThan(Date.now());
    const response = await fetch(`${fx.org.loginUrl}/services/oauth2/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: JWT_BEARER_GRANT,
        assertion: await assertionWith({ expInMs: true }),
      }),
    });
    expect(response.status).toBe(200);
    expect(
      fx.org.isValidToken(((await response.json()) as { access_token: string }).access_token),
    ).toBe(true);
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
