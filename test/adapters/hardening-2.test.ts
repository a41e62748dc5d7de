// Findings of the second outside review against the adapters, each a regression test.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import axios from 'axios';
import ky from 'ky';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attachAuth } from '../../src/adapters/axios.js';
import { authFetch, installGlobalFetch } from '../../src/adapters/fetch.js';
import { authHooks } from '../../src/adapters/ky.js';
import { AuthError } from '../../src/index.js';
import { closeServer } from '../../src/testing/fake-org.js';
import { useFakeOrg } from '../_org.js';
import { caught, expectNoSecrets } from '../_secrets.js';
import { drivers } from './_drivers.js';

const fx = useFakeOrg();
const LIMITS = '/services/data/v62.0/limits';

/** A loopback server whose every answer `handler` writes; it counts requests. */
async function serve(handler: Parameters<typeof createServer>[1]) {
  let hits = 0;
  const server: Server = createServer((req, res) => {
    hits++;
    handler?.(req, res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url, hits: () => hits, close: () => closeServer(server) };
}

describe('5. axios decides the origin exactly as axios builds the URL', () => {
  it.each([
    ['a leading space', (org: string) => ` ${org}${LIMITS}`],
    ['a leading tab', (org: string) => `\t${org}${LIMITS}`],
    ['a leading newline', (org: string) => `\n${org}${LIMITS}`],
    ['a tab inside the scheme', (org: string) => `ht\ttp${org.slice(4)}${LIMITS}`],
  ])('an org URL with %s under a foreign baseURL gets no bearer', async (_, shape) => {
    const api = axios.create({ baseURL: fx.other.url });
    attachAuth(api, fx.session());
    await api.get(shape(fx.org.instanceUrl)).catch(() => {});
    const seen = fx.other.requests.at(-1);
    expect(seen).toBeDefined();
    expect(seen?.headers.authorization).toBeUndefined();
    expect(fx.org.stats.tokenRequests).toBe(0);
  });

  it('allowAbsoluteUrls: false sends an absolute org URL under the foreign baseURL, without the bearer', async () => {
    const api = axios.create({ baseURL: fx.other.url, allowAbsoluteUrls: false });
    attachAuth(api, fx.session());
    await api.get(`${fx.org.instanceUrl}${LIMITS}`).catch(() => {});
    expect(fx.other.requests.at(-1)?.headers.authorization).toBeUndefined();
    expect(fx.org.stats.apiRequests).toBe(0);
  });
});

describe('6. axios judges a rejection by the origin that answered', () => {
  it('a 401 from a foreign host reached by a redirect costs no mint', async () => {
    const foreign = await serve((_req, res) => {
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end('[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]');
    });
    try {
      const session = fx.session();
      const api = axios.create({ baseURL: session.instanceUrl, validateStatus: () => true });
      attachAuth(api, session);
      await api.get(LIMITS);
      fx.org.resetStats();
      const to = encodeURIComponent(`${foreign.url}/x`);
      for (let i = 0; i < 20; i++) {
        expect((await api.get(`/services/apexrest/redirect?to=${to}`)).status).toBe(401);
      }
      expect(fx.org.stats.tokenRequests).toBe(0);
      expect(foreign.hits()).toBe(20);
    } finally {
      await foreign.close();
    }
  });
});

describe('8. stacked adapters retry once per call', () => {
  it.each([
    [
      'ky authHooks',
      (session: ReturnType<typeof fx.session>) => async () => {
        const api = ky.create({ hooks: authHooks(session), retry: 0, throwHttpErrors: false });
        return (await api.get(`${session.instanceUrl}${LIMITS}`)).status;
      },
    ],
    [
      "axios with adapter: 'fetch'",
      (session: ReturnType<typeof fx.session>) => async () => {
        const api = axios.create({ adapter: 'fetch', validateStatus: () => true });
        attachAuth(api, session);
        return (await api.get(`${session.instanceUrl}${LIMITS}`)).status;
      },
    ],
  ])(
    '%s over installGlobalFetch: a persistent 401 makes 2 API requests and 1 mint',
    async (_, make) => {
      const session = fx.session();
      const uninstall = installGlobalFetch(session);
      try {
        const call = make(session);
        expect(await call()).toBe(200);
        fx.org.rejectApiTokens('invalid-session');
        fx.org.resetStats();
        expect(await call()).toBe(401);
        expect(fx.org.stats.apiRequests).toBe(2);
        expect(fx.org.stats.tokenRequests).toBe(1);
        // Once the org accepts tokens again, a revocation is still cured once.
        fx.org.rejectApiTokens(undefined);
        expect(await call()).toBe(200);
        fx.org.revokeAllTokens();
        fx.org.resetStats();
        expect(await call()).toBe(200);
        expect(fx.org.stats.apiRequests).toBe(2);
        expect(fx.org.stats.tokenRequests).toBe(1);
      } finally {
        uninstall();
      }
    },
  );
});

describe('10. a 401 whose body stalls', () => {
  let stalling: Awaited<ReturnType<typeof serve>>;
  beforeAll(async () => {
    stalling = await serve((_req, res) => {
      res.writeHead(401, { 'content-type': 'application/json' });
      res.write('[{"message":');
      // ...and nothing more.
    });
  });
  afterAll(() => stalling.close());

  it.each([
    [
      'authFetch',
      async (origins: string[], url: string) => {
        const response = await authFetch(fx.session(), { origins })(url);
        await response.body?.cancel();
        return response.status;
      },
    ],
    [
      'ky authHooks',
      async (origins: string[], url: string) => {
        const api = ky.create({
          hooks: authHooks(fx.session(), { origins }),
          retry: 0,
          throwHttpErrors: false,
        });
        const response = await api.get(url);
        await response.body?.cancel();
        return response.status;
      },
    ],
    [
      'axios',
      async (origins: string[], url: string) => {
        const api = axios.create({ validateStatus: () => true, responseType: 'stream' });
        attachAuth(api, fx.session(), { origins });
        const response = await api.get(url);
        response.data.destroy();
        return response.status;
      },
    ],
  ])('%s returns instead of hanging, and retries once on the status alone', async (_, call) => {
    const before = stalling.hits();
    const status = await call([stalling.url], `${stalling.url}${LIMITS}`);
    expect(status).toBe(401);
    expect(stalling.hits() - before).toBe(2);
  });
});

describe('1. a token no header can carry never reaches the runtime', () => {
  it.each(drivers)(
    '$label: a third-party session handing out one gets a typed error that does not quote it',
    async (driver) => {
      const bad = '00Dtoken\r\nX-Injected: 1';
      const session = {
        instanceUrl: fx.org.instanceUrl,
        getToken: async () => bad,
        invalidate: async () => {},
      };
      const thrown = await caught(() => driver.client(session).send({ url: LIMITS }));
      expect(driver.authErrorOf(thrown)).toBeInstanceOf(AuthError);
      expectNoSecrets(thrown, ['00Dtoken', 'X-Injected']);
      expect(fx.org.stats.apiRequests).toBe(0);
    },
  );
});

describe('8b. installGlobalFetch still authenticates a request that carries its own stale bearer', () => {
  it('an SDK that set the token it was handed at construction is cured after a revocation', async () => {
    const session = fx.session();
    const uninstall = installGlobalFetch(session);
    try {
      const handed = await session.getToken();
      const sdk = () =>
        fetch(`${fx.org.instanceUrl}${LIMITS}`, { headers: { authorization: `Bearer ${handed}` } });
      expect((await sdk()).status).toBe(200);
      fx.org.revokeAllTokens();
      fx.org.resetStats();
      expect((await sdk()).status).toBe(200);
      expect(fx.org.stats.tokenRequests).toBe(1);
      expect(fx.org.stats.apiRequests).toBe(2);
    } finally {
      uninstall();
    }
  });
});
