import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { authFetch } from '../../src/adapters/fetch.js';
import {
  AuthError,
  ClientCredentialsAuth,
  ConfigError,
  InsecureUrlError,
  OAuthError,
} from '../../src/index.js';
import {
  type EchoServer,
  type FakeOrg,
  startEchoServer,
  startFakeOrg,
} from '../../src/testing/index.js';
import { caught, expectNoSecrets } from '../_secrets.js';

let org: FakeOrg;
let other: EchoServer;
let session: ClientCredentialsAuth;

beforeAll(async () => {
  org = await startFakeOrg();
  other = await startEchoServer();
});
afterAll(async () => {
  await org.close();
  await other.close();
});
beforeEach(() => {
  session = newSession();
});
afterEach(() => {
  org.healTokenEndpoint();
  org.setTokenDelay(0);
  org.setApiDelay(0);
  org.rejectApiTokens(undefined);
  org.resetStats();
});

function newSession(clientSecret = org.clientSecret) {
  return new ClientCredentialsAuth({
    clientId: org.clientId,
    clientSecret,
    loginUrl: org.loginUrl,
    instanceUrl: org.instanceUrl,
  });
}

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
    org.setTokenDelay(30);
    const responses = await Promise.all(Array.from({ length: 1000 }, () => sfFetch(LIMITS)));
    expect(responses.every((r) => r.status === 200)).toBe(true);
    await Promise.all(responses.map((r) => r.arrayBuffer()));
    expect(org.stats.tokenRequests).toBe(1);
    expect(org.stats.apiRequests).toBe(1000);
  });

  it('after revokeAllTokens(), 1,000 concurrent calls all succeed with 1 re-mint and 2,000 API requests', async () => {
    const sfFetch = authFetch(session);
    await (await sfFetch(LIMITS)).arrayBuffer();
    org.revokeAllTokens();
    org.resetStats();
    org.setTokenDelay(30);
    const responses = await Promise.all(Array.from({ length: 1000 }, () => sfFetch(LIMITS)));
    expect(responses.map((r) => r.status)).toEqual(Array(1000).fill(200));
    await Promise.all(responses.map((r) => r.arrayBuffer()));
    expect(org.stats.tokenRequests).toBe(1);
    expect(org.stats.apiRequests).toBe(2000);
    expect(org.stats.apiRequestsByStatus).toEqual({ 200: 1000, 401: 1000 });
  });

  it('requests already in flight with the stale token when the re-mint finished also succeed, without a second re-mint', async () => {
    const sfFetch = authFetch(session);
    const stale = await session.getToken();
    org.revokeAllTokens();
    org.resetStats();
    org.setTokenDelay(50);
    // Wave A's fast 401s start the re-mint; wave B carries the same stale token but its 401s arrive
    // only after the re-mint has finished, so its invalidations must not evict the new token.
    const waveA = Array.from({ length: 50 }, () => sfFetch(LIMITS));
    const waveB = Array.from({ length: 50 }, () => sfFetch(`${ECHO}?delayMs=300`));
    const statuses = (await Promise.all([...waveA, ...waveB])).map((r) => r.status);
    expect(statuses).toEqual(Array(100).fill(200));
    expect(org.stats.tokenRequests).toBe(1);
    const staleUses = org.apiRequests.filter((r) => r.token === stale);
    expect(staleUses.filter((r) => r.path.startsWith(ECHO))).toHaveLength(50);
    expect(org.stats.apiRequests).toBe(200);
  });
});

describe('authFetch: retry at most once', () => {
  it('a persistent 401 makes exactly 2 API requests and resolves the 401 Response', async () => {
    const sfFetch = authFetch(session);
    org.rejectApiTokens('invalid-session');
    const response = await sfFetch(LIMITS);
    expect(response.status).toBe(401);
    expect(await response.json()).toEqual([
      { message: 'Session expired or invalid', errorCode: 'INVALID_SESSION_ID' },
    ]);
    expect(org.stats.apiRequests).toBe(2);
    expect(org.stats.tokenRequests).toBe(2);
    const [a, b] = org.apiRequests;
    expect(a?.token).not.toBe(b?.token);
  });

  it('makes no retry when re-minting returns the token that failed', async () => {
    const reusing = await startFakeOrg({ reuseAccessToken: true });
    try {
      const s = new ClientCredentialsAuth({
        ...reusing,
        loginUrl: reusing.loginUrl,
        clientSecret: reusing.clientSecret,
      });
      const sfFetch = authFetch(s);
      reusing.rejectApiTokens('invalid-session');
      const response = await sfFetch(LIMITS);
      expect(response.status).toBe(401);
      expect(await response.text()).toContain('INVALID_SESSION_ID');
      expect(reusing.stats.apiRequests).toBe(1);
      expect(reusing.stats.tokenRequests).toBe(2);
    } finally {
      await reusing.close();
    }
  });

  it("does not retry Salesforce's non-curable 401 and leaves its body readable", async () => {
    const sfFetch = authFetch(session);
    org.rejectApiTokens('not-valid-for-rest');
    const response = await sfFetch(LIMITS);
    expect(response.status).toBe(401);
    expect(await response.text()).toContain('This session is not valid for use with the REST API');
    expect(org.stats.apiRequests).toBe(1);
    expect(org.stats.tokenRequests).toBe(1);
  });

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
    expect(org.stats.apiRequests).toBe(2);
    expect(org.stats.tokenRequests).toBe(2);
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
    const response = await sfFetch(`${other.url}/public`, init);
    expect(response.status).toBe(200);
    expect(calls[0]?.[0]).toBe(`${other.url}/public`);
    expect(calls[0]?.[1]).toBe(init);
    expect(other.requests.at(-1)?.headers.authorization).toBeUndefined();
    expect(org.stats.tokenRequests).toBe(0);
  });

  it('sends the token to an origin listed in origins', async () => {
    const sfFetch = authFetch(session, { origins: [other.url] });
    await sfFetch(`${other.url}/listed`);
    const token = await session.getToken();
    expect(other.requests.at(-1)?.headers.authorization).toBe(`Bearer ${token}`);
  });

  it('a cross-origin redirect from the org does not carry the token onward', async () => {
    const sfFetch = authFetch(session);
    const before = other.requests.length;
    const response = await sfFetch(
      `/services/apexrest/redirect?to=${encodeURIComponent(`${other.url}/landed`)}`,
    );
    expect(response.status).toBe(200);
    expect(other.requests.length).toBe(before + 1);
    expect(other.requests.at(-1)?.path).toBe('/landed');
    expect(other.requests.at(-1)?.headers.authorization).toBeUndefined();
  });

  it('accepts a string, a URL and a Request, absolute or relative', async () => {
    const sfFetch = authFetch(session);
    const token = await session.getToken();
    const inputs = [
      LIMITS,
      `${org.instanceUrl}${LIMITS}`,
      new URL(LIMITS, org.instanceUrl),
      new Request(`${org.instanceUrl}${LIMITS}`),
    ];
    for (const input of inputs) {
      expect((await sfFetch(input)).status).toBe(200);
      expect(org.apiRequests.at(-1)?.token).toBe(token);
    }
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
  const form = () => {
    const f = new FormData();
    f.set('name', 'Acme');
    f.set('file', new Blob([bytes], { type: 'application/octet-stream' }), 'data.bin');
    return f;
  };
  const stream = () =>
    new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode('streamed '));
        controller.enqueue(new TextEncoder().encode('body'));
        controller.close();
      },
    });

  const bodies: [string, () => BodyInit, (echo: Echo) => Promise<void> | void][] = [
    ['a string', () => 'plain text', (e) => expect(decode(e)).toBe('plain text')],
    [
      'JSON',
      () => JSON.stringify({ Name: 'Acme', n: 1 }),
      (e) => expect(JSON.parse(decode(e))).toEqual({ Name: 'Acme', n: 1 }),
    ],
    [
      'URLSearchParams',
      () => new URLSearchParams({ a: '1', b: 'x y' }),
      (e) => expect(decode(e)).toBe('a=1&b=x+y'),
    ],
    ['binary', () => bytes, (e) => expect(raw(e)).toEqual(bytes)],
    ['an ArrayBuffer', () => bytes.slice().buffer, (e) => expect(raw(e)).toEqual(bytes)],
    ['a Blob', () => new Blob([bytes]), (e) => expect(raw(e)).toEqual(bytes)],
    [
      'FormData',
      form,
      async (e) => {
        const parsed = await new Response(raw(e), {
          headers: { 'content-type': e.headers['content-type'] ?? '' },
        }).formData();
        expect(parsed.get('name')).toBe('Acme');
        expect(new Uint8Array(await (parsed.get('file') as Blob).arrayBuffer())).toEqual(bytes);
      },
    ],
    ['a small stream', stream, (e) => expect(decode(e)).toBe('streamed body')],
  ];

  it.each(bodies)(
    '%s body arrives intact on the retry, with method, query and headers',
    async (_, body, check) => {
      const sfFetch = authFetch(session);
      const stale = await session.getToken();
      org.revokeAllTokens();
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
      const [first, second] = org.apiRequests.slice(-2);
      expect(first).toMatchObject({ status: 401, token: stale });
      expect(second?.status).toBe(200);
      expect(second?.token).not.toBe(stale);
    },
  );

  it('replays the body of a Request input', async () => {
    const sfFetch = authFetch(session);
    await session.getToken();
    org.revokeAllTokens();
    const request = new Request(`${org.instanceUrl}${ECHO}`, {
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
    org.revokeAllTokens();
    org.resetStats();
    const response = await sfFetch(ECHO, {
      method: 'POST',
      body: stream(),
      duplex: 'half',
    } as RequestInit);
    expect(response.status).toBe(401);
    expect(org.stats.apiRequests).toBe(1);
    // The stale token was invalidated, so the next call works.
    const next = (await (
      await sfFetch(ECHO, { method: 'POST', body: stream(), duplex: 'half' } as RequestInit)
    ).json()) as Echo;
    expect(decode(next)).toBe('streamed body');
  });
});

describe('authFetch: abort and errors', () => {
  it('an abort while waiting for the token rejects promptly; the shared mint goes on', async () => {
    const sfFetch = authFetch(session);
    org.setTokenDelay(300);
    const controller = new AbortController();
    const aborted = sfFetch(LIMITS, { signal: controller.signal });
    const patient = sfFetch(LIMITS);
    controller.abort();
    expect(await caught(() => aborted)).toMatchObject({ name: 'AbortError' });
    expect((await patient).status).toBe(200);
    expect(org.stats.tokenRequests).toBe(1);
    expect(org.stats.apiRequests).toBe(1);
  });

  it('an abort while waiting for the re-mint after a 401 rejects promptly; the re-mint goes on', async () => {
    const sfFetch = authFetch(session);
    await session.getToken();
    org.revokeAllTokens();
    org.resetStats();
    org.setTokenDelay(300);
    const controller = new AbortController();
    const aborted = sfFetch(LIMITS, { signal: controller.signal });
    while (org.stats.tokenRequests === 0) await new Promise((r) => setTimeout(r, 5));
    controller.abort();
    expect(await caught(() => aborted)).toMatchObject({ name: 'AbortError' });
    expect((await sfFetch(LIMITS)).status).toBe(200);
    expect(org.stats.tokenRequests).toBe(1);
    expect(org.stats.apiRequestsByStatus).toEqual({ 200: 1, 401: 1 });
  });

  it('a token endpoint failure reaches the caller as the AuthError subclass with no secret', async () => {
    const wrong = 'definitely-wrong-secret';
    const sfFetch = authFetch(newSession(wrong));
    const error = await caught(() => sfFetch(LIMITS));
    expect(error).toBeInstanceOf(OAuthError);
    expect(error).toBeInstanceOf(AuthError);
    expectNoSecrets(error, [wrong, org.clientSecret]);
    expect(org.stats.apiRequests).toBe(0);
  });
});

function raw(echo: Echo): Uint8Array<ArrayBuffer> {
  return new Uint8Array(Buffer.from(echo.bodyBase64, 'base64'));
}

function decode(echo: Echo): string {
  return Buffer.from(echo.bodyBase64, 'base64').toString('utf8');
}
