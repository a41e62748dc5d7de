import ky, { HTTPError } from 'ky';
import { describe, expect, it } from 'vitest';
import { authHooks } from '../../src/adapters/ky.js';
import { useFakeOrg } from '../_org.js';
import { caught } from '../_secrets.js';

const fx = useFakeOrg();
const LIMITS = 'services/data/v62.0/limits';

describe('authHooks (ky specifics)', () => {
  it('the auth retry goes through no ky retry: beforeRetry never runs for it', async () => {
    const session = await fx.staleSession();
    let beforeRetry = 0;
    const api = ky.create({ baseUrl: session.instanceUrl, hooks: authHooks(session) }).extend({
      hooks: { beforeRetry: [() => void beforeRetry++] },
    });
    expect((await api.get(LIMITS)).status).toBe(200);
    expect(fx.org.stats.apiRequestsByStatus).toEqual({ 200: 1, 401: 1 });
    expect(beforeRetry).toBe(0);
  });

  it("does not spend the user's retry budget: a 5xx after the auth retry still gets ky's retry", async () => {
    const session = await fx.staleSession();
    fx.org.failApiRequests(503, { times: 1 });
    let beforeRetry = 0;
    const api = ky
      .create({
        baseUrl: session.instanceUrl,
        hooks: authHooks(session),
        retry: { limit: 1, delay: () => 0 },
      })
      .extend({ hooks: { beforeRetry: [() => void beforeRetry++] } });
    expect((await api.get(LIMITS)).status).toBe(200);
    expect(fx.org.stats.apiRequestsByStatus).toEqual({ 401: 1, 503: 1, 200: 1 });
    expect(beforeRetry).toBe(1);
    // ky's own retry carried the fresh token, not the stale one it copied before the first send.
    const [stale, fresh, retried] = fx.org.apiRequests;
    expect(retried?.token).toBe(fresh?.token);
    expect(retried?.token).not.toBe(stale?.token);
  });

  it("the user's own beforeRequest and afterResponse hooks run once per call", async () => {
    const session = await fx.staleSession();
    const seen: string[] = [];
    const api = ky.create({ baseUrl: session.instanceUrl, hooks: authHooks(session) }).extend({
      hooks: {
        beforeRequest: [() => void seen.push('beforeRequest')],
        afterResponse: [({ response }) => void seen.push(`afterResponse ${response.status}`)],
      },
    });
    expect((await api.get(LIMITS)).status).toBe(200);
    expect(seen).toEqual(['beforeRequest', 'afterResponse 200']);
  });

  it('works through ky.extend on a client that has hooks of its own', async () => {
    const session = await fx.staleSession();
    let mine = 0;
    const base = ky.create({
      baseUrl: session.instanceUrl,
      hooks: { beforeRequest: [() => void mine++] },
    });
    const api = base.extend({ hooks: authHooks(session) });
    expect(await api.get(LIMITS).json()).toMatchObject({ DailyApiRequests: { Max: 15000 } });
    expect(mine).toBe(1);
  });

  it('a persistent 401 throws HTTPError after exactly 2 requests, with retry on or off', async () => {
    for (const retry of [undefined, 0, 5]) {
      const session = fx.session();
      fx.org.rejectApiTokens('invalid-session');
      fx.org.resetStats();
      const api = ky.create({
        baseUrl: session.instanceUrl,
        hooks: authHooks(session),
        ...(retry === undefined ? {} : { retry }),
      });
      const error = await caught(() => api.get(LIMITS));
      expect(error).toBeInstanceOf(HTTPError);
      expect(fx.org.stats.apiRequests).toBe(2);
    }
  });
});
