// What the contract suite cannot say about cirrus-auth/undici: bodies undici cannot send twice,
// answers held back for judging that turn out large, undici.fetch over the same dispatcher, and
// what the interceptor hands the next dispatcher (whatever order the interceptors were composed in).
import { Readable } from 'node:stream';
import { Agent, type Dispatcher, interceptors, request, fetch as undiciFetch } from 'undici';
import { describe, expect, it } from 'vitest';
import { authInterceptor } from '../../src/adapters/undici.js';
import { ConfigError, StaticTokenAuth } from '../../src/index.js';
import { useFakeOrg } from '../_org.js';

const fx = useFakeOrg();
const ECHO = '/services/apexrest/echo';
const LIMITS = '/services/data/v62.0/limits';

const dispatcherFor = (session: Parameters<typeof authInterceptor>[0], options = {}) =>
  new Agent().compose(
    authInterceptor(session, options),
    interceptors.redirect({ maxRedirections: 3 }),
  );

describe('cirrus-auth/undici', () => {
  it('a stream body is sent once: a 401 comes back as it is, with the stale token invalidated', async () => {
    const session = await fx.staleSession();
    const stale = await session.getToken();
    const { statusCode, body } = await request(`${fx.org.instanceUrl}${ECHO}`, {
      dispatcher: dispatcherFor(session),
      method: 'POST',
      body: Readable.from([Buffer.from('one '), Buffer.from('shot')]),
    });
    await body.text();
    expect(statusCode).toBe(401);
    expect(fx.org.stats.apiRequests).toBe(1);
    // The next call gets a fresh token without another 401.
    expect(await session.getToken()).not.toBe(stale);
  });

  it('an answer held back for a custom isAuthFailure and larger than the peek arrives whole', async () => {
    const session = fx.session();
    let judged = 0;
    const dispatcher = dispatcherFor(session, {
      isAuthFailure: async (response: Response) => {
        judged++;
        return response.status === 401;
      },
    });
    const payload = Buffer.alloc(200_000, 'x').toString();
    const { statusCode, body } = await request(`${fx.org.instanceUrl}${ECHO}`, {
      dispatcher,
      method: 'POST',
      body: payload,
    });
    const echoed = (await body.json()) as { bodyBase64: string };
    expect(statusCode).toBe(200);
    expect(Buffer.from(echoed.bodyBase64, 'base64').toString()).toBe(payload);
    expect(judged).toBe(1);
    expect(fx.org.stats.apiRequests).toBe(1);
  });

  it('undici.fetch over the same dispatcher: one re-mint after a revocation, nothing to another origin', async () => {
    const session = fx.session();
    const dispatcher = dispatcherFor(session);
    expect((await undiciFetch(`${fx.org.instanceUrl}${LIMITS}`, { dispatcher })).status).toBe(200);
    fx.org.revokeAllTokens();
    const before = fx.org.stats.tokenRequests;
    expect((await undiciFetch(`${fx.org.instanceUrl}${LIMITS}`, { dispatcher })).status).toBe(200);
    expect(fx.org.stats.tokenRequests - before).toBe(1);
    await (await undiciFetch(`${fx.other.url}/x`, { dispatcher })).text();
    expect(fx.other.requests.at(-1)?.headers.authorization).toBeUndefined();
  });

  it('hands the next dispatcher the session where each API reads it, and no redirects for SOAP and Bulk', async () => {
    const session = new StaticTokenAuth({
      accessToken: 'tok123',
      instanceUrl: 'https://acme.my.salesforce.com',
    });
    const seen: Dispatcher.DispatchOptions[] = [];
    const next = ((opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler) => {
      seen.push(opts);
      handler.onResponseStart?.({} as Dispatcher.DispatchController, 200, {}, 'OK');
      handler.onResponseEnd?.({} as Dispatcher.DispatchController, {});
      return true;
    }) as Dispatcher['dispatch'];
    const dispatch = authInterceptor(session)(next);
    const send = (path: string, extra: Partial<Dispatcher.DispatchOptions> = {}) =>
      new Promise<void>((resolve, reject) => {
        dispatch(
          {
            origin: 'https://acme.my.salesforce.com',
            path,
            method: 'POST',
            headers: { Authorization: 'Bearer mine' },
            ...extra,
          },
          {
            onResponseEnd: () => resolve(),
            onResponseError: (_c, error) => reject(error),
          },
        );
      });
    await send('/services/data/v62.0/limits');
    await send('/services/async/62.0/job', {
      headers: ['X-SFDC-Session', 'old', 'content-type', 'application/xml'],
    });
    const envelope =
      '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Header><SessionHeader><sessionId/></SessionHeader></soapenv:Header><soapenv:Body/></soapenv:Envelope>';
    await send('/services/Soap/u/62.0', {
      body: envelope,
      headers: { 'content-length': String(Buffer.byteLength(envelope)) },
    });
    const headers = (opts: Dispatcher.DispatchOptions) => {
      const flat = opts.headers as string[];
      const pairs: [string, string][] = [];
      for (let i = 0; i < flat.length; i += 2)
        pairs.push([flat[i] as string, flat[i + 1] as string]);
      return pairs;
    };
    const [rest, bulk, soap] = seen as [
      Dispatcher.DispatchOptions,
      Dispatcher.DispatchOptions,
      Dispatcher.DispatchOptions,
    ];
    expect(headers(rest)).toEqual([['authorization', 'Bearer tok123']]);
    expect(rest).not.toHaveProperty('maxRedirections');
    expect(headers(bulk)).toEqual([
      ['content-type', 'application/xml'],
      ['authorization', 'Bearer tok123'],
      ['x-sfdc-session', 'tok123'],
    ]);
    expect((bulk as { maxRedirections?: number }).maxRedirections).toBe(0);
    expect(String(soap.body)).toContain('<sessionId>tok123</sessionId>');
    expect(headers(soap)).toContainEqual([
      'content-length',
      String(Buffer.byteLength(String(soap.body))),
    ]);
    expect((soap as { maxRedirections?: number }).maxRedirections).toBe(0);
  });

  it('requests to another origin and OAuth endpoints are handed on untouched', () => {
    const session = new StaticTokenAuth({
      accessToken: 'tok123',
      instanceUrl: 'https://acme.my.salesforce.com',
    });
    const seen: Dispatcher.DispatchOptions[] = [];
    const dispatch = authInterceptor(session)(((opts: Dispatcher.DispatchOptions) => {
      seen.push(opts);
      return true;
    }) as Dispatcher['dispatch']);
    const other = {
      origin: 'https://evil.example.com',
      path: '/x',
      method: 'GET' as const,
      headers: { a: 'b' },
    };
    const oauth = {
      origin: 'https://acme.my.salesforce.com',
      path: '/services/oauth2/token',
      method: 'POST' as const,
    };
    dispatch(other, {});
    dispatch(oauth, {});
    expect(seen[0]).toBe(other);
    expect(seen[1]).toBe(oauth);
  });

  it('bad options are a ConfigError when the interceptor is made', () => {
    const session = new StaticTokenAuth({
      accessToken: 'tok123',
      instanceUrl: 'https://acme.my.salesforce.com',
    });
    expect(() => authInterceptor(session, { origins: ['not a url'] })).toThrow(ConfigError);
    expect(() => authInterceptor(session, { isAuthFailure: 'yes' as never })).toThrow(ConfigError);
  });
});
