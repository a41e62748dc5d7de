import { Readable } from 'node:stream';
import axios, { AxiosError } from 'axios';
import { describe, expect, it } from 'vitest';
import { attachAuth } from '../../src/adapters/axios.js';
import { ConfigError } from '../../src/index.js';
import { startFakeOrg } from '../../src/testing/index.js';
import { sessionFor, useFakeOrg } from '../_org.js';
import { caught } from '../_secrets.js';

const fx = useFakeOrg();
const LIMITS = '/services/data/v62.0/limits';

describe('attachAuth (axios specifics)', () => {
  it("runs the user's request and response interceptors once per call, even when the call is retried", async () => {
    const session = fx.session();
    const api = axios.create({ baseURL: session.instanceUrl });
    let requests = 0;
    let responses = 0;
    api.interceptors.request.use((config) => {
      requests++;
      return config;
    });
    attachAuth(api, session);
    api.interceptors.request.use((config) => {
      requests++;
      return config;
    });
    api.interceptors.response.use((response) => {
      responses++;
      return response;
    });
    await session.getToken();
    fx.org.revokeAllTokens();
    fx.org.resetStats();
    const response = await api.get(LIMITS);
    expect(response.status).toBe(200);
    expect(fx.org.stats.apiRequests).toBe(2);
    expect(requests).toBe(2);
    expect(responses).toBe(1);
  });

  it('replaces a user-set authorization header of any case: one Authorization, the bearer', async () => {
    const session = fx.session();
    const api = axios.create({
      baseURL: session.instanceUrl,
      headers: { AUTHORIZATION: 'Basic default' },
    });
    attachAuth(api, session);
    const response = await api.get('/services/apexrest/echo', {
      headers: { authorization: 'Basic per-call' },
    });
    expect(response.status).toBe(200);
    const token = await session.getToken();
    // Two headers would reach Node's server joined by a comma and fail the token check.
    expect(fx.org.apiRequests.at(-1)).toMatchObject({ token, status: 200 });
  });

  it('detaching restores the instance: no bearer, and a 401 is no longer retried', async () => {
    const session = fx.session();
    const api = axios.create({ baseURL: session.instanceUrl });
    const detach = attachAuth(api, session);
    expect((await api.get(LIMITS)).status).toBe(200);
    detach();
    fx.org.resetStats();
    const error = await caught(() => api.get(LIMITS));
    expect(error).toBeInstanceOf(AxiosError);
    expect((error as AxiosError).response?.status).toBe(401);
    expect(fx.org.stats.apiRequests).toBe(1);
    expect(fx.org.apiRequests.at(-1)?.token).toBeUndefined();
  });

  it('retries when validateStatus accepts the 401, and resolves with the retried answer', async () => {
    const session = await fx.staleSession();
    const api = axios.create({ baseURL: session.instanceUrl, validateStatus: () => true });
    attachAuth(api, session);
    expect((await api.get(LIMITS)).status).toBe(200);
    expect(fx.org.stats.apiRequestsByStatus).toEqual({ 200: 1, 401: 1 });
  });

  it('sends a stream body once and returns its 401 untried; the next call works', async () => {
    const session = await fx.staleSession();
    const api = axios.create({ baseURL: session.instanceUrl });
    attachAuth(api, session);
    const error = await caught(() =>
      api.post('/services/apexrest/echo', Readable.from(['one shot'])),
    );
    expect((error as AxiosError).response?.status).toBe(401);
    expect(fx.org.stats.apiRequests).toBe(1);
    const next = await api.post('/services/apexrest/echo', Readable.from(['one shot']));
    expect(Buffer.from(next.data.bodyBase64, 'base64').toString()).toBe('one shot');
  });

  it("responseType 'stream': a non-curable 401 is read, not retried, and its body is handed on whole", async () => {
    const session = fx.session();
    const api = axios.create({ baseURL: session.instanceUrl, validateStatus: () => true });
    attachAuth(api, session);
    await session.getToken();
    fx.org.resetStats();
    fx.org.rejectApiTokens('not-valid-for-rest');
    const response = await api.get(LIMITS, { responseType: 'stream' });
    expect(response.status).toBe(401);
    const chunks: Buffer[] = [];
    for await (const chunk of response.data as Readable) chunks.push(Buffer.from(chunk));
    const body = Buffer.concat(chunks).toString();
    expect(body).toContain('not valid for use with the REST API');
    expect(JSON.parse(body)).toBeInstanceOf(Array); // the whole body, not just the peeked part
    expect(fx.org.stats.apiRequests).toBe(1);
    expect(fx.org.stats.tokenRequests).toBe(0);
  });

  it("responseType 'stream': a curable 401 is retried and the retry's stream reaches the caller", async () => {
    const session = await fx.staleSession();
    const api = axios.create({ baseURL: session.instanceUrl });
    attachAuth(api, session);
    const response = await api.get(LIMITS, { responseType: 'stream' });
    expect(response.status).toBe(200);
    const chunks: Buffer[] = [];
    for await (const chunk of response.data as Readable) chunks.push(Buffer.from(chunk));
    expect(JSON.parse(Buffer.concat(chunks).toString())).toHaveProperty('DailyApiRequests');
    expect(fx.org.stats.apiRequestsByStatus).toEqual({ 200: 1, 401: 1 });
  });

  it('honours a per-request adapter', async () => {
    const session = await fx.staleSession();
    const api = axios.create({ baseURL: session.instanceUrl });
    attachAuth(api, session);
    expect((await api.get(LIMITS, { adapter: 'fetch' })).status).toBe(200);
    expect(fx.org.stats.apiRequestsByStatus).toEqual({ 200: 1, 401: 1 });
  });

  it('rejects what is not an axios instance', () => {
    expect(() => attachAuth({} as never, fx.session())).toThrow(ConfigError);
  });
});

describe('attachAuth (review findings)', () => {
  it('re-sending a failed config (as axios-retry does) does not nest retries', async () => {
    // backoff: false turns the rejection guard off, so every call may retry once.
    const session = fx.session({ backoff: false });
    const api = axios.create({ baseURL: session.instanceUrl });
    attachAuth(api, session);
    fx.org.rejectApiTokens('invalid-session');
    fx.org.resetStats();
    const first = (await caught(() => api.get(LIMITS))) as AxiosError;
    expect(fx.org.stats.apiRequests).toBe(2);
    fx.org.resetStats();
    await caught(() => api.request(first.config as never));
    expect(fx.org.stats.apiRequests).toBe(2);
    fx.org.resetStats();
    const second = (await caught(() => api.request(first.config as never))) as AxiosError;
    await caught(() => api.request(second.config as never));
    expect(fx.org.stats.apiRequests).toBe(4);
  });
});

describe('attachAuth, twice on one instance', () => {
  it('two sessions for two orgs on one instance: each org gets its own bearer, re-sends included', async () => {
    const other = await startFakeOrg();
    try {
      const a = fx.session();
      // backoff: false turns the rejection guard off, so every call may retry once.
      const b = sessionFor(other, { backoff: false });
      const api = axios.create();
      attachAuth(api, a);
      attachAuth(api, b);
      await api.get(`${fx.org.instanceUrl}${LIMITS}`);
      await api.get(`${other.instanceUrl}${LIMITS}`);
      expect(fx.org.apiRequests.at(-1)?.token).toBe(await a.getToken());
      expect(other.apiRequests.at(-1)?.token).toBe(await b.getToken());
      other.rejectApiTokens('invalid-session');
      other.resetStats();
      const failed = (await caught(() => api.get(`${other.instanceUrl}${LIMITS}`))) as AxiosError;
      await caught(() => api.request(failed.config as never));
      expect(other.stats.apiRequests).toBe(4);
    } finally {
      await other.close();
    }
  });
});
