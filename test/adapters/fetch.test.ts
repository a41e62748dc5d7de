import { beforeEach, describe, expect, it } from 'vitest';
import { authFetch } from '../../src/adapters/fetch.js';
import { type ClientCredentialsAuth, ConfigError, InsecureUrlError } from '../../src/index.js';
import { useFakeOrg } from '../_org.js';
import { caught } from '../_secrets.js';

const fx = useFakeOrg();
let session: ClientCredentialsAuth;
beforeEach(() => {
  session = fx.session();
});

const LIMITS = '/services/data/v62.0/limits';
const ECHO = '/services/apexrest/echo';

interface Echo {
  method: string;
  path: string;
  query: string;
  headers: Record<string, string>;
  bodyBase64: string;
}

describe('authFetch: concurrency, proven by counts', () => {
  it('1,000 concurrent calls on a cold cache make exactly 1 token request', async () => {
    const sfFetch = authFetch(session);
    fx.org.setTokenDelay(30);
    const responses = await Promise.all(Array.from({ length: 1000 }, () => sfFetch(LIMITS)));
    expect(responses.every((r) => r.status === 200)).toBe(true);
    await Promise.all(responses.map((r) => r.arrayBuffer()));
    expect(fx.org.stats.tokenRequests).toBe(1);
    expect(fx.org.stats.apiRequests).toBe(1000);
  });

  it('after revokeAllTokens(), 1,000 concurrent calls all succeed with 1 re-mint and 2,000 API requests', async () => {
    const sfFetch = authFetch(session);
    await (await sfFetch(LIMITS)).arrayBuffer();
    fx.org.revokeAllTokens();
    fx.org.resetStats();
    fx.org.setTokenDelay(30);
    const responses = await Promise.all(Array.from({ length: 1000 }, () => sfFetch(LIMITS)));
    expect(responses.map((r) => r.status)).toEqual(Array(1000).fill(200));
    await Promise.all(responses.map((r) => r.arrayBuffer()));
    expect(fx.org.stats.tokenRequests).toBe(1);
    expect(fx.org.stats.apiRequests).toBe(2000);
    expect(fx.org.stats.apiRequestsByStatus).toEqual({ 200: 1000, 401: 1000 });
  });
});

describe('authFetch: auth failure detection', () => {
  it('a custom isAuthFailure can read the body without consuming the caller’s copy', async () => {
    let seen = '';
    const sfFetch = authFetch(session, {
      isAuthFailure: async (response) => {
        seen = await response.text();
        return response.status === 404;
      },
    });
    const response = await sfFetch('/services/data/v62.0/nothing-here');
    expect(seen).toContain('NOT_FOUND');
    expect(response.status).toBe(404);
    expect(await response.text()).toContain('NOT_FOUND');
    expect(fx.org.stats.apiRequests).toBe(2);
    expect(fx.org.stats.tokenRequests).toBe(2);
  });
});

describe('authFetch: the bearer goes only to the org', () => {
  it('sends no token to another origin and passes the call through untouched', async () => {
    const calls: unknown[][] = [];
    const spy = ((...args: Parameters<typeof fetch>) => {
      calls.push(args);
      return fetch(...args);
    }) as typeof fetch;
    const sfFetch = authFetch(session, { fetch: spy });
    const init = { headers: { 'x-user': '1' } };
    const response = await sfFetch(`${fx.other.url}/public`, init);
    expect(response.status).toBe(200);
    expect(calls[0]?.[0]).toBe(`${fx.other.url}/public`);
    expect(calls[0]?.[1]).toBe(init);
    expect(fx.other.requests.at(-1)?.headers.authorization).toBeUndefined();
    expect(fx.org.stats.tokenRequests).toBe(0);
  });

  it('accepts a string, a URL and a Request, absolute or relative', async () => {
    const sfFetch = authFetch(session);
    const token = await session.getToken();
    const inputs = [
      LIMITS,
      `${fx.org.instanceUrl}${LIMITS}`,
      new URL(LIMITS, fx.org.instanceUrl),
      new Request(`${fx.org.instanceUrl}${LIMITS}`),
    ];
    for (const input of inputs) {
      expect((await sfFetch(input)).status).toBe(200);
      expect(fx.org.apiRequests.at(-1)?.token).toBe(token);
    }
  });

  it('keeps headers given as a Map or any Headers-like object', async () => {
    const sfFetch = authFetch(session);
    const headers = new Map([
      ['x-from-map', 'yes'],
      ['content-type', 'text/plain'],
    ]);
    const echo = (await (
      await sfFetch(ECHO, { method: 'POST', body: 'hi', headers: headers as never })
    ).json()) as Echo;
    expect(echo.headers).toMatchObject({ 'x-from-map': 'yes', 'content-type': 'text/plain' });
  });

  it('rejects bad adapter options with ConfigError', () => {
    expect(() => authFetch(session, { origins: 'https://x.my.salesforce.com' as never })).toThrow(
      ConfigError,
    );
    expect(() => authFetch(session, { origins: ['http://x.my.salesforce.com'] })).toThrow(
      InsecureUrlError,
    );
    expect(() => authFetch(session, { isAuthFailure: true as never })).toThrow(
      expect.objectContaining({ option: 'isAuthFailure' }),
    );
    expect(() => authFetch({} as never)).toThrow(expect.objectContaining({ option: 'session' }));
    expect(() => authFetch(session, { maxReplayBodyBytes: -1 })).toThrow(ConfigError);
  });
});

describe('authFetch: the retried request is the same request', () => {
  const bytes = new Uint8Array([0, 1, 2, 250, 255, 13, 10]);
  const stream = () =>
    new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode('streamed '));
        controller.enqueue(new TextEncoder().encode('body'));
        controller.close();
      },
    });

  // JSON, string, URLSearchParams, FormData and binary are in the contract suite for every adapter.
  const bodies: [string, () => BodyInit, (echo: Echo) => Promise<void> | void][] = [
    ['an ArrayBuffer', () => bytes.slice().buffer, (e) => expect(raw(e)).toEqual(bytes)],
    ['a Blob', () => new Blob([bytes]), (e) => expect(raw(e)).toEqual(bytes)],
    ['a small stream', stream, (e) => expect(decode(e)).toBe('streamed body')],
  ];

  it.each(bodies)(
    '%s body arrives intact on the retry, with method, query and headers',
    async (_, body, check) => {
      const sfFetch = authFetch(session);
      const stale = await session.getToken();
      fx.org.revokeAllTokens();
      const response = await sfFetch(`${ECHO}?q=1&x=a%20b`, {
        method: 'PUT',
        headers: { 'x-custom': 'kept', accept: 'application/json' },
        body: body(),
        duplex: 'half',
      } as RequestInit);
      expect(response.status).toBe(200);
      const echo = (await response.json()) as Echo;
      expect(echo.method).toBe('PUT');
      expect(echo.query).toBe('?q=1&x=a%20b');
      expect(echo.headers['x-custom']).toBe('kept');
      await check(echo);
      const [first, second] = fx.org.apiRequests.slice(-2);
      expect(first).toMatchObject({ status: 401, token: stale });
      expect(second?.status).toBe(200);
      expect(second?.token).not.toBe(stale);
    },
  );

  it('replays the body of a Request input', async () => {
    const sfFetch = authFetch(session);
    await session.getToken();
    fx.org.revokeAllTokens();
    const request = new Request(`${fx.org.instanceUrl}${ECHO}`, {
      method: 'POST',
      body: 'from a Request',
      headers: { 'x-r': '1' },
    });
    const echo = (await (await sfFetch(request)).json()) as Echo;
    expect(decode(echo)).toBe('from a Request');
    expect(echo.headers['x-r']).toBe('1');
  });

  it('a stream over the replay limit is sent once and its 401 returned untried', async () => {
    const sfFetch = authFetch(session, { maxReplayBodyBytes: 8 });
    await session.getToken();
    fx.org.revokeAllTokens();
    fx.org.resetStats();
    const response = await sfFetch(ECHO, {
      method: 'POST',
      body: stream(),
      duplex: 'half',
    } as RequestInit);
    expect(response.status).toBe(401);
    expect(fx.org.stats.apiRequests).toBe(1);
    // The stale token was invalidated, so the next call works.
    const next = (await (
      await sfFetch(ECHO, { method: 'POST', body: stream(), duplex: 'half' } as RequestInit)
    ).json()) as Echo;
    expect(decode(next)).toBe('streamed body');
  });
});

describe('authFetch: abort and errors', () => {
  it('a stream over the replay limit is released when the token cannot be had', async () => {
    let cancelled: unknown;
    const body = new ReadableStream<Uint8Array>({
      pull: (controller) => controller.enqueue(new Uint8Array(64)),
      cancel: (reason) => {
        cancelled = reason;
      },
    });
    const failing = fx.session({ clientSecret: 'wrong-secret-value' });
    const sfFetch = authFetch(failing, { maxReplayBodyBytes: 16 });
    const error = await caught(() =>
      sfFetch(ECHO, { method: 'POST', body, duplex: 'half' } as RequestInit),
    );
    expect(error).toMatchObject({ name: 'OAuthError' });
    expect(cancelled).toBe(error);
  });

  it('an abort while waiting for the re-mint after a 401 rejects promptly; the re-mint goes on', async () => {
    const sfFetch = authFetch(session);
    await session.getToken();
    fx.org.revokeAllTokens();
    fx.org.resetStats();
    fx.org.setTokenDelay(300);
    const controller = new AbortController();
    const aborted = sfFetch(LIMITS, { signal: controller.signal });
    while (fx.org.stats.tokenRequests === 0) await new Promise((r) => setTimeout(r, 5));
    controller.abort();
    expect(await caught(() => aborted)).toMatchObject({ name: 'AbortError' });
    expect((await sfFetch(LIMITS)).status).toBe(200);
    expect(fx.org.stats.tokenRequests).toBe(1);
    expect(fx.org.stats.apiRequestsByStatus).toEqual({ 200: 1, 401: 1 });
  });
});

function raw(echo: Echo): Uint8Array<ArrayBuffer> {
  return new Uint8Array(Buffer.from(echo.bodyBase64, 'base64'));
}

function decode(echo: Echo): string {
  return Buffer.from(echo.bodyBase64, 'base64').toString('utf8');
}
