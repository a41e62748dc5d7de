import ky from 'ky';
import createClient from 'openapi-fetch';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { installGlobalFetch } from '../../src/adapters/fetch.js';
import { ConfigError } from '../../src/index.js';
import {
  type EchoServer,
  type FakeOrg,
  startEchoServer,
  startFakeOrg,
} from '../../src/testing/index.js';
import { sessionFor } from '../_org.js';

let orgA: FakeOrg;
let orgB: FakeOrg;
let other: EchoServer;
const original = globalThis.fetch;

beforeAll(async () => {
  [orgA, orgB, other] = await Promise.all([startFakeOrg(), startFakeOrg(), startEchoServer()]);
});
afterAll(async () => {
  await Promise.all([orgA.close(), orgB.close(), other.close()]);
});
afterEach(() => {
  globalThis.fetch = original;
  for (const org of [orgA, orgB]) {
    org.rejectApiTokens(undefined);
    org.resetStats();
  }
});

const LIMITS = '/services/data/v62.0/limits';
/** A minimal OpenAPI description of the one path the generated-client test calls. */
interface Paths {
  '/services/data/v62.0/limits': {
    get: {
      parameters: { query?: never; header?: never; path?: never; cookie?: never };
      requestBody?: never;
      responses: {
        200: {
          headers: Record<string, unknown>;
          content: { 'application/json': { DailyApiRequests: { Max: number } } };
        };
        401: { headers: Record<string, unknown>; content: { 'application/json': unknown } };
      };
    };
  };
}

describe('installGlobalFetch', () => {
  it('authenticates global fetch calls to the org and restores exactly the previous fetch', async () => {
    const session = sessionFor(orgA);
    const uninstall = installGlobalFetch(session);
    expect(globalThis.fetch).not.toBe(original);
    expect((await fetch(`${orgA.instanceUrl}${LIMITS}`)).status).toBe(200);
    expect(orgA.apiRequests.at(-1)?.token).toBe(await session.getToken());
    uninstall();
    expect(globalThis.fetch).toBe(original);
    uninstall();
    expect(globalThis.fetch).toBe(original);
  });

  it('passes other origins to the previous fetch with the same arguments, returning its very response', async () => {
    const calls: unknown[][] = [];
    const sentinel = new Response('from the previous fetch');
    const previous = (async (...args: unknown[]) => {
      calls.push(args);
      return sentinel;
    }) as typeof fetch;
    globalThis.fetch = previous;
    const uninstall = installGlobalFetch(sessionFor(orgA));
    const init = { headers: { 'x-user': '1' } };
    const url = `${other.url}/weather`;
    expect(await fetch(url, init)).toBe(sentinel);
    expect(calls).toEqual([[url, init]]);
    expect(orgA.stats.tokenRequests).toBe(0);
    uninstall();
    expect(globalThis.fetch).toBe(previous);
  });

  it('two orgs: each layer handles only its own origins, a request for neither passes through', async () => {
    const a = sessionFor(orgA);
    const b = sessionFor(orgB);
    const uninstallA = installGlobalFetch(a);
    const uninstallB = installGlobalFetch(b);
    expect((await fetch(`${orgA.instanceUrl}${LIMITS}`)).status).toBe(200);
    expect((await fetch(`${orgB.instanceUrl}${LIMITS}`)).status).toBe(200);
    expect(orgA.apiRequests.at(-1)?.token).toBe(await a.getToken());
    expect(orgB.apiRequests.at(-1)?.token).toBe(await b.getToken());
    await fetch(`${other.url}/neither`);
    expect(other.requests.at(-1)?.headers.authorization).toBeUndefined();
    uninstallA();
    uninstallB();
    expect(globalThis.fetch).toBe(original);
  });

  it.each([
    ['inner first', true],
    ['outer first', false],
  ])(
    'uninstalling in any order (%s) keeps the other layer working, then restores the original',
    async (_, innerFirst) => {
      const a = sessionFor(orgA);
      const b = sessionFor(orgB);
      const uninstallA = installGlobalFetch(a);
      const uninstallB = installGlobalFetch(b);
      (innerFirst ? uninstallA : uninstallB)();
      const [gone, kept] = innerFirst ? [orgA, orgB] : [orgB, orgA];
      expect((await fetch(`${gone.instanceUrl}${LIMITS}`)).status).toBe(401);
      expect(gone.apiRequests.at(-1)?.token).toBeUndefined();
      expect((await fetch(`${kept.instanceUrl}${LIMITS}`)).status).toBe(200);
      (innerFirst ? uninstallB : uninstallA)();
      expect(globalThis.fetch).toBe(original);
    },
  );

  it('installing twice for one session authenticates each request once: a persistent 401 makes 2 requests', async () => {
    const session = sessionFor(orgA);
    const first = installGlobalFetch(session);
    const second = installGlobalFetch(session);
    orgA.rejectApiTokens('invalid-session');
    expect((await fetch(`${orgA.instanceUrl}${LIMITS}`)).status).toBe(401);
    expect(orgA.stats.apiRequests).toBe(2);
    expect(orgA.stats.tokenRequests).toBe(2);
    second();
    first();
    expect(globalThis.fetch).toBe(original);
  });

  it('refuses a fetch option: the global one is what it wraps', () => {
    expect(() => installGlobalFetch(sessionFor(orgA), { fetch } as never)).toThrow(ConfigError);
    expect(globalThis.fetch).toBe(original);
  });
});

describe('third-party packages that call the global fetch themselves', () => {
  it('ky with no fetch option: token on org requests, one re-mint after revocation, none elsewhere', async () => {
    const uninstall = installGlobalFetch(sessionFor(orgA));
    const api = ky.create({ baseUrl: orgA.instanceUrl });
    expect(await api.get(LIMITS.slice(1)).json()).toMatchObject({
      DailyApiRequests: { Max: 15000 },
    });
    orgA.revokeAllTokens();
    orgA.resetStats();
    const results = await Promise.all(
      Array.from({ length: 20 }, () => api.get(LIMITS.slice(1)).json()),
    );
    expect(results).toHaveLength(20);
    expect(orgA.stats.tokenRequests).toBe(1);
    expect(orgA.stats.apiRequestsByStatus).toEqual({ 200: 20, 401: 20 });
    await ky.get(`${other.url}/elsewhere`);
    expect(other.requests.at(-1)?.headers.authorization).toBeUndefined();
    uninstall();
  });

  it('a generated OpenAPI client (openapi-fetch) created after installation gets auth; one created before does not', async () => {
    const before = createClient<Paths>({ baseUrl: orgA.instanceUrl });
    const uninstall = installGlobalFetch(sessionFor(orgA));
    const after = createClient<Paths>({ baseUrl: orgA.instanceUrl });
    const { data, response } = await after.GET('/services/data/v62.0/limits');
    expect(response.status).toBe(200);
    expect(data?.DailyApiRequests.Max).toBe(15000);

    orgA.revokeAllTokens();
    orgA.resetStats();
    const again = await Promise.all(
      Array.from({ length: 10 }, () => after.GET('/services/data/v62.0/limits')),
    );
    expect(again.map((r) => r.response.status)).toEqual(Array(10).fill(200));
    expect(orgA.stats.tokenRequests).toBe(1);

    // It captured fetch when it was created, before installation: no token, so the org says 401.
    expect((await before.GET('/services/data/v62.0/limits')).response.status).toBe(401);
    const elsewhere = createClient<Paths>({ baseUrl: other.url });
    await elsewhere.GET('/services/data/v62.0/limits');
    expect(other.requests.at(-1)?.headers.authorization).toBeUndefined();
    uninstall();
  });
});

describe('installGlobalFetch: each API gets the session where it reads it', () => {
  it('a SOAP call (envelope) and a Bulk 1.0 call (X-SFDC-Session) survive a revocation with 1 re-mint each', async () => {
    const session = sessionFor(orgA);
    const uninstall = installGlobalFetch(session);
    try {
      const soap = () =>
        fetch(`${orgA.instanceUrl}/services/Soap/u/62.0`, {
          method: 'POST',
          headers: { 'content-type': 'text/xml', soapaction: '""' },
          body: '<se:Envelope xmlns:se="http://schemas.xmlsoap.org/soap/envelope/"><se:Header><SessionHeader xmlns="urn:partner.soap.sforce.com"><sessionId>SESSION</sessionId></SessionHeader></se:Header><se:Body><getUserInfo xmlns="urn:partner.soap.sforce.com"/></se:Body></se:Envelope>',
        });
      const bulk = () =>
        fetch(`${orgA.instanceUrl}/services/async/62.0/job`, {
          method: 'POST',
          headers: { 'content-type': 'application/xml' },
          body: '<jobInfo/>',
        });
      expect((await soap()).status).toBe(200);
      for (const [call, rejection] of [
        [soap, 500],
        [bulk, 400],
      ] as const) {
        orgA.revokeAllTokens();
        orgA.resetStats();
        expect((await call()).status).toBe(200);
        expect(orgA.stats.tokenRequests).toBe(1);
        expect(orgA.apiRequests.map((r) => r.status)).toEqual([rejection, 200]);
      }
    } finally {
      uninstall();
    }
  });
});
