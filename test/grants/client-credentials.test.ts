import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { authFetch } from '../../src/adapters/fetch.js';
import {
  AuthError,
  BACKOFF_INITIAL_MS,
  ClientCredentialsAuth,
  ConfigError,
  InsecureUrlError,
  InstanceUrlMismatchError,
  OAuthError,
  ResponseTooLargeError,
  TransportError,
  UnexpectedResponseError,
} from '../../src/index.js';
import { startEchoServer } from '../../src/testing/index.js';
import { useFakeOrg } from '../_org.js';
import { caught, expectNoSecrets } from '../_secrets.js';

const fx = useFakeOrg();

describe('ClientCredentialsAuth against the fake org', () => {
  it('mints a token the org accepts, once, with the client_credentials grant', async () => {
    const s = fx.session();
    const token = await s.getToken();
    expect(fx.org.isValidToken(token)).toBe(true);
    expect(await s.getToken()).toBe(token);
    expect(fx.org.stats.tokenRequestsByGrant).toEqual({ client_credentials: 1 });
  });

  it('100 concurrent callers on a cold cache cause one token request', async () => {
    const s = fx.session();
    fx.org.setTokenDelay(20);
    const tokens = await Promise.all(Array.from({ length: 100 }, () => s.getToken()));
    expect(new Set(tokens).size).toBe(1);
    expect(fx.org.stats.tokenRequests).toBe(1);
  });

  it('100 concurrent invalidations of the same stale token cause one re-mint', async () => {
    const s = fx.session();
    const stale = await s.getToken();
    fx.org.setTokenDelay(20);
    const fresh = await Promise.all(
      Array.from({ length: 100 }, async () => {
        await s.invalidate(stale);
        return s.getToken();
      }),
    );
    expect(new Set(fresh).size).toBe(1);
    expect(fresh[0]).not.toBe(stale);
    expect(fx.org.stats.tokenRequests).toBe(2);
  });

  it('accepts the instance URL with a trailing slash and different case', async () => {
    const s = fx.session({
      instanceUrl: `${fx.org.instanceUrl.toUpperCase().replace('HTTP://', 'http://')}//`,
    });
    expect(s.instanceUrl).toBe(fx.org.instanceUrl);
    await expect(s.getToken()).resolves.toBeTypeOf('string');
  });

  it('a wrong secret is an OAuthError invalid_client that leaks neither secret nor description', async () => {
    const wrongSecret = 'wrong-secret-0123456789';
    const s = fx.session({ clientSecret: wrongSecret });
    const error = await caught(() => s.getToken());
    expect(error).toBeInstanceOf(OAuthError);
    expect(error).toMatchObject({
      code: 'ERR_OAUTH',
      error: 'invalid_client',
      status: 400,
      transient: false,
    });
    expect((error as OAuthError).errorDescription()).toBe('invalid client credentials');
    expectNoSecrets(error, [wrongSecret, fx.org.clientSecret, 'invalid client credentials']);
  });

  it('a wrong client id is an OAuthError invalid_client_id', async () => {
    const error = await caught(() => fx.session({ clientId: 'not-the-app' }).getToken());
    expect(error).toMatchObject({ name: 'OAuthError', error: 'invalid_client_id' });
  });

  it('never shows the secret or the token through util.inspect or JSON.stringify', async () => {
    const s = fx.session();
    const token = await s.getToken();
    expectNoSecrets(s, [fx.org.clientSecret, token]);
    expect(JSON.parse(JSON.stringify(s))).toEqual({
      type: 'ClientCredentialsAuth',
      instanceUrl: fx.org.instanceUrl,
    });
    expect(inspect(s)).toContain('ClientCredentialsAuth');
    expectNoSecrets(fx.org, [fx.org.clientSecret]);
  });
});

describe('ClientCredentialsAuth options', () => {
  const valid = () => ({
    clientId: 'id',
    clientSecret: 's3cr3t-value',
    loginUrl: 'https://acme.my.salesforce.com',
    instanceUrl: 'https://acme.my.salesforce.com',
  });

  it.each([
    ['clientId', { clientId: '' }],
    ['clientSecret', { clientSecret: undefined }],
    ['loginUrl', { loginUrl: undefined }],
    ['loginUrl', { loginUrl: 'not a url' }],
    ['loginUrl', { loginUrl: 'ftp://acme.my.salesforce.com' }],
    ['instanceUrl', { instanceUrl: 'https://user:pw@acme.my.salesforce.com' }],
    ['instanceUrl', { instanceUrl: 'https://acme.my.salesforce.com/?q=1' }],
    ['timeoutMs', { timeoutMs: 0 }],
    ['tokenTtlMs', { tokenTtlMs: Number.NaN }],
    ['fetch', { fetch: 'fetch' }],
    ['now', { now: 5 }],
  ])('rejects a bad %s with ConfigError at construction', (option, patch) => {
    const error = (() => {
      try {
        new ClientCredentialsAuth({ ...valid(), ...patch } as never);
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(ConfigError);
    expect(error).toMatchObject({ code: 'ERR_CONFIG', option });
    expectNoSecrets(error, ['s3cr3t-value']);
  });

  it('rejects a non-object', () => {
    expect(() => new ClientCredentialsAuth(undefined as never)).toThrow(ConfigError);
  });

  it('refuses plain http to a non-loopback host with InsecureUrlError before any traffic', () => {
    let calls = 0;
    const fetch = (() => {
      calls++;
    }) as unknown as typeof globalThis.fetch;
    for (const option of ['loginUrl', 'instanceUrl'] as const) {
      const error = (() => {
        try {
          new ClientCredentialsAuth({
            ...valid(),
            fetch,
            [option]: 'http://acme.my.salesforce.com',
          });
        } catch (e) {
          return e;
        }
      })();
      expect(error).toBeInstanceOf(InsecureUrlError);
      expect(error).toBeInstanceOf(ConfigError);
      expect(error).toMatchObject({ code: 'ERR_INSECURE_URL', option });
    }
    expect(calls).toBe(0);
  });

  it('allows plain http to loopback hosts and normalises URLs', () => {
    for (const host of ['localhost:8080', '127.0.0.1', '127.8.9.10:1', '[::1]:9']) {
      const s = new ClientCredentialsAuth({
        ...valid(),
        loginUrl: `http://${host}`,
        instanceUrl: ` http://${host}/// `,
      });
      expect(s.instanceUrl).toBe(`http://${host}`);
    }
  });
});

describe('token endpoint failures give typed errors within the timeout', () => {
  const TIMEOUT_MS = 400;
  const secrets = () => [fx.org.clientSecret];

  async function failure(): Promise<unknown> {
    const started = performance.now();
    const error = await caught(() => fx.session({ timeoutMs: TIMEOUT_MS }).getToken());
    expect(performance.now() - started).toBeLessThan(TIMEOUT_MS + 2_000);
    expectNoSecrets(error, secrets());
    return error;
  }

  it('an access_token no header can carry is refused at mint, never cached, never shown', async () => {
    // Before: accepted, then the first request threw undici's TypeError quoting the token.
    const bad = '00Dxx!AQ-token-text\r\nx-injected: 1';
    fx.org.failTokenEndpoint(
      {
        kind: 'status',
        status: 200,
        body: JSON.stringify({ access_token: bad, instance_url: fx.org.instanceUrl }),
      },
      { times: 1 },
    );
    const session = fx.session({ backoff: false });
    const sfFetch = authFetch(session);
    const error = await caught(() => sfFetch(`${fx.org.instanceUrl}/services/data/v62.0/limits`));
    expect(error).toBeInstanceOf(UnexpectedResponseError);
    expect(error).toMatchObject({ code: 'ERR_UNEXPECTED_RESPONSE', status: 200, transient: false });
    expectNoSecrets(error, ['AQ-token-text', fx.org.clientSecret]);
    expectNoSecrets(session, ['AQ-token-text', fx.org.clientSecret]);
    expect(fx.org.stats.apiRequests).toBe(0);
    // Nothing was cached: the next call mints again and gets a token the org accepts.
    const token = await session.getToken();
    expect(fx.org.isValidToken(token)).toBe(true);
    expect(fx.org.stats.tokenRequests).toBe(2);
  });

  it('a redirect is an UnexpectedResponseError and the target receives nothing', async () => {
    for (const status of [301, 302, 303, 307, 308] as const) {
      fx.org.failTokenEndpoint({ kind: 'redirect', status, location: `${fx.other.url}/steal` });
      const error = await failure();
      expect(error).toBeInstanceOf(UnexpectedResponseError);
      expect(error).toMatchObject({ status, transient: false });
    }
    expect(fx.other.requests).toHaveLength(0);
  });

  it('a stall before headers is a transient TransportError at the timeout', async () => {
    fx.org.failTokenEndpoint({ kind: 'stall' });
    const error = await failure();
    expect(error).toBeInstanceOf(TransportError);
    expect(error).toMatchObject({ code: 'ERR_TRANSPORT', transient: true });
  });

  it('a stall mid-body is a transient TransportError at the timeout', async () => {
    fx.org.failTokenEndpoint({ kind: 'stall-body' });
    expect(await failure()).toMatchObject({ name: 'TransportError', transient: true });
  });

  it('a connection reset is a transient TransportError', async () => {
    fx.org.failTokenEndpoint({ kind: 'reset' });
    expect(await failure()).toMatchObject({ name: 'TransportError', transient: true });
  });

  it('an unparsable answer echoing the form keeps the cause chain, not its bytes', async () => {
    // The HTTP client's parser error holds the bytes it choked on: here, the form with the secret.
    fx.org.failTokenEndpoint({ kind: 'malformed-echo' });
    const error = await failure();
    expect(error).toMatchObject({ name: 'TransportError', code: 'ERR_TRANSPORT', transient: true });
    const chain: unknown[] = [];
    for (let at: unknown = (error as Error).cause; at instanceof Error; at = at.cause) {
      chain.push({ name: at.name, code: (at as { code?: unknown }).code });
    }
    // Node 22's undici names the parser's code; Node 24's leaves it undefined. Either way the
    // classes survive, and a code, when there is one, is kept.
    const [outer, parser] = chain as { name: string; code: unknown }[];
    expect(chain).toHaveLength(2);
    expect(outer).toEqual({ name: 'TypeError', code: undefined });
    expect(parser?.name).toBe('HTTPParserError');
    expect([undefined, 'HPE_INVALID_HEADER_TOKEN']).toContain(parser?.code);
  });

  it('connection refused is a transient TransportError', async () => {
    const closed = await startEchoServer();
    await closed.close();
    const error = await caught(() =>
      fx
        .session({ loginUrl: closed.url, instanceUrl: closed.url, timeoutMs: TIMEOUT_MS })
        .getToken(),
    );
    expect(error).toMatchObject({ name: 'TransportError', transient: true });
    expect((error as Error).cause).toBeDefined();
  });

  it.each([
    [false, 'streamed'],
    [true, 'with content-length'],
  ])('an oversized body (%s, %s) is a ResponseTooLargeError', async (declareLength) => {
    fx.org.failTokenEndpoint({ kind: 'oversized', bytes: 10 * 1024 * 1024, declareLength });
    const error = await failure();
    expect(error).toBeInstanceOf(ResponseTooLargeError);
    expect(error).toMatchObject({ code: 'ERR_RESPONSE_TOO_LARGE', limitBytes: 64 * 1024 });
  });

  it('an HTML 502 echoing the secret is an UnexpectedResponseError that shows no body', async () => {
    fx.org.failTokenEndpoint({
      kind: 'status',
      status: 502,
      headers: { 'content-type': 'text/html' },
      body: `<html><body>Bad gateway for client_secret=${fx.org.clientSecret}</body></html>`,
    });
    const error = await failure();
    expect(error).toBeInstanceOf(UnexpectedResponseError);
    expect(error).toMatchObject({ status: 502, transient: true });
  });

  it.each([500, 503, 429])(
    'status %i without an OAuth body is a transient UnexpectedResponseError',
    async (status) => {
      fx.org.failTokenEndpoint({
        kind: 'status',
        status,
        body: 'busy',
        headers: { 'retry-after': '1' },
      });
      expect(await failure()).toMatchObject({
        name: 'UnexpectedResponseError',
        status,
        transient: true,
      });
    },
  );

  it('an OAuth error whose description carries the secret keeps it out of every view', async () => {
    fx.org.failTokenEndpoint({
      kind: 'status',
      status: 400,
      body: JSON.stringify({
        error: 'invalid_grant',
        error_description: `bad secret ${fx.org.clientSecret}`,
      }),
    });
    const error = await failure();
    expect(error).toMatchObject({ name: 'OAuthError', error: 'invalid_grant', transient: false });
  });

  it.each([
    ['non-JSON', 'hello'],
    ['JSON without access_token', '{"instance_url":"x"}'],
    ['JSON without instance_url', '{"access_token":"abcdef"}'],
    ['access_token of the wrong type', '{"access_token":42,"instance_url":"x"}'],
    [
      'refresh_token of the wrong type',
      '{"access_token":"a","instance_url":"x","refresh_token":{}}',
    ],
    ['expires_in not a number', '{"access_token":"a","instance_url":"x","expires_in":"soon"}'],
    ['an array', '[]'],
  ])('a 200 with %s is an UnexpectedResponseError', async (_, body) => {
    fx.org.failTokenEndpoint({ kind: 'status', status: 200, body });
    expect(await failure()).toMatchObject({
      name: 'UnexpectedResponseError',
      status: 200,
      transient: false,
    });
  });

  it("another org's instance_url is an InstanceUrlMismatchError", async () => {
    fx.org.failTokenEndpoint({
      kind: 'instance-url',
      instanceUrl: 'https://evil.my.salesforce.com/',
    });
    const error = await failure();
    expect(error).toBeInstanceOf(InstanceUrlMismatchError);
    expect(error).toMatchObject({
      configured: fx.org.instanceUrl,
      returned: 'https://evil.my.salesforce.com',
    });
  });

  it('recovers on the first call after the backoff window once the fault is cleared', async () => {
    let now = 1_000_000;
    const s = fx.session({ timeoutMs: TIMEOUT_MS, now: () => now });
    fx.org.failTokenEndpoint({ kind: 'status', status: 503, body: '' }, { times: 1 });
    const first = await caught(() => s.getToken());
    expect(first).toBeInstanceOf(AuthError);
    expect(await caught(() => s.getToken())).toBe(first); // inside the backoff window: no request
    expect(fx.org.stats.tokenRequests).toBe(1);
    now += BACKOFF_INITIAL_MS;
    await expect(s.getToken()).resolves.toBeTypeOf('string');
    expect(fx.org.stats.tokenRequests).toBe(2);
  });
});
