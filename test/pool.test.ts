import { inspect } from 'node:util';
import axios from 'axios';
import ky from 'ky';
import { describe, expect, it } from 'vitest';
import { attachAuth } from '../src/adapters/axios.js';
import { authFetch } from '../src/adapters/fetch.js';
import { authHooks } from '../src/adapters/ky.js';
import {
  ConfigError,
  InMemoryTokenStore,
  SessionClosedError,
  SessionPool,
  type TenantConfig,
  UnknownTenantError,
} from '../src/index.js';
import type { FakeTenant } from '../src/testing/index.js';
import { useFakeOrg } from './_org.js';
import { caught } from './_secrets.js';

// Many tenants behind one fake org; every claim is a count the org made.
const fixture = useFakeOrg();

/** `n` tenants of the fake org, keyed `t0`…: a refresh-token family or its own app each. */
async function tenants(n: number, options: { ownInstance?: boolean } = {}) {
  const list: FakeTenant[] = [];
  for (let i = 0; i < n; i++) list.push(await fixture.org.addTenant(options));
  return list;
}

function refreshConfigs(list: FakeTenant[]) {
  const { org } = fixture;
  const configs = new Map<string, TenantConfig>();
  list.forEach((t, i) => {
    configs.set(`t${i}`, {
      grant: 'refresh-token',
      options: {
        clientId: org.clientId,
        clientSecret: org.clientSecret,
        refreshToken: t.issueRefreshToken(),
        instanceUrl: t.instanceUrl,
      },
    });
  });
  return configs;
}

function clientCredentialConfigs(list: FakeTenant[]) {
  const configs = new Map<string, TenantConfig>();
  list.forEach((t, i) => {
    configs.set(`t${i}`, {
      grant: 'client-credentials',
      options: { clientId: t.clientId, clientSecret: t.clientSecret, instanceUrl: t.instanceUrl },
    });
  });
  return configs;
}

/** A seeded generator, so a failure replays. */
function random(seed: number) {
  return () => {
    seed = (seed * 48_271) % 2_147_483_647;
    return seed / 2_147_483_647;
  };
}

describe('SessionPool', () => {
  it('1,000 tenants x 10 concurrent cold calls: exactly 1,000 token requests and 1,000 resolves', async () => {
    const { org } = fixture;
    const configs = clientCredentialConfigs(await tenants(1_000));
    let resolves = 0;
    const pool = new SessionPool({
      loginUrl: org.loginUrl,
      maxSessions: 1_000,
      resolve: async (tenant) => {
        resolves++;
        return configs.get(tenant);
      },
    });
    const keys = [...configs.keys()];
    const calls = keys.flatMap((key) =>
      Array.from({ length: 10 }, async () => (await pool.session(key)).getTokenInfo()),
    );
    const infos = await Promise.all(calls);
    expect(org.stats.tokenRequests).toBe(1_000);
    expect(resolves).toBe(1_000);
    expect(new Set(infos.map((i) => i.orgId)).size).toBe(1_000);
    expect(pool.size).toBe(1_000);
    await pool.close();
  });

  it('100 slots for 1,000 rotating tenants, 10,000 random calls: chains intact, 0 family revocations', async () => {
    const { org } = fixture;
    const list = await tenants(1_000);
    const configs = refreshConfigs(list);
    const pool = new SessionPool({
      loginUrl: org.loginUrl,
      maxSessions: 100,
      resolve: (tenant) => configs.get(tenant),
    });
    const next = random(11);
    let forced = 0;
    let biggest = 0;
    for (let batch = 0; batch < 200; batch++) {
      // 50 concurrent calls on random tenants; about a third force a refresh (a rotation).
      await Promise.all(
        Array.from({ length: 50 }, async () => {
          const session = await pool.session(`t${Math.floor(next() * 1_000)}`);
          const token = await session.getToken();
          if (next() < 0.3) {
            forced++;
            session.confirm(token);
            await session.invalidate(token);
            expect(await session.getToken()).not.toBe(token);
          }
        }),
      );
      biggest = Math.max(biggest, pool.size);
    }
    expect(biggest).toBeLessThanOrEqual(100);
    expect(forced).toBeGreaterThan(2_000);
    expect(org.stats.familyRevocations).toBe(0);
    // Every tenant that was asked for still refreshes: its chain is unbroken.
    const asked = list.filter((t) => t.stats.tokensIssued > 0);
    expect(asked.length).toBeGreaterThan(900);
    await pool.close();
    const again = new SessionPool({
      loginUrl: org.loginUrl,
      resolve: (tenant) => configs.get(tenant),
    });
    // A new pool on a new (empty) store presents the configured, rotated-away tokens: that is
    // what a lost chain looks like, and why the pool's store must be durable across restarts.
    const lost = await caught(async () => (await again.session('t0')).getToken());
    expect(lost).toMatchObject({ code: 'ERR_OAUTH' });
    await again.close();
  });

  it("one tenant's broken credentials and backoff never delay another's", async () => {
    const { org } = fixture;
    const [good, bad] = await tenants(2);
    const configs = clientCredentialConfigs([good as FakeTenant, bad as FakeTenant]);
    const broken = configs.get('t1') as TenantConfig & { grant: 'client-credentials' };
    configs.set('t1', { ...broken, options: { ...broken.options, clientSecret: 'wrong' } });
    const pool = new SessionPool({
      loginUrl: org.loginUrl,
      backoff: { initialMs: 60_000, maxMs: 60_000 },
      resolve: (tenant) => configs.get(tenant),
    });
    const api = authFetch(pool, { tenant: (request) => request.headers.get('x-tenant') ?? '' });
    const call = (tenant: string) =>
      api('/services/data/v62.0/limits', { headers: { 'x-tenant': tenant } }).then(
        (r) => r.status,
        (error: { code?: string }) => error.code,
      );
    const results = await Promise.all(
      Array.from({ length: 400 }, (_, i) => call(i % 2 === 0 ? 't0' : 't1')),
    );
    const good200 = results.filter((r, i) => i % 2 === 0 && r === 200).length;
    const badFailed = results.filter((r, i) => i % 2 === 1 && r === 'ERR_OAUTH').length;
    expect(good200).toBe(200);
    expect(badFailed).toBe(200);
    expect(good?.stats.tokensIssued).toBe(1);
    expect(good?.stats.apiRequests).toBe(200);
    // The broken tenant asked once and then backed off; the good one never waited on it.
    expect(org.stats.tokenRequests).toBe(2);
    await pool.close();
  });

  it("one tenant's rejection guard never holds another back", async () => {
    const { org } = fixture;
    const [good, refused] = (await tenants(2)) as [FakeTenant, FakeTenant];
    const pool = new SessionPool({
      loginUrl: org.loginUrl,
      resolve: (tenant) => clientCredentialConfigs([good, refused]).get(tenant),
    });
    refused.rejectApiTokens('invalid-session'); // an IP restriction, say: every token refused
    const api = authFetch(pool, { tenant: (request) => request.headers.get('x-tenant') ?? '' });
    const statuses = { t0: [] as number[], t1: [] as number[] };
    for (let round = 0; round < 10; round++) {
      await Promise.all(
        Array.from({ length: 40 }, async (_, i) => {
          const tenant = i % 2 === 0 ? 't0' : 't1';
          const r = await api('/services/data/v62.0/limits', { headers: { 'x-tenant': tenant } });
          statuses[tenant].push(r.status);
        }),
      );
    }
    expect(statuses.t0.every((s) => s === 200)).toBe(true);
    expect(statuses.t1.every((s) => s === 401)).toBe(true);
    expect(good.stats.tokensIssued).toBe(1);
    // 200 refused calls: the first token, one re-mint, then the guard holds (no login storm).
    expect(refused.stats.tokensIssued).toBeGreaterThanOrEqual(2);
    expect(refused.stats.tokensIssued).toBeLessThanOrEqual(3);
    await pool.close();
  });

  it('an unknown tenant is a typed error, asked again next time; a bad config a ConfigError', async () => {
    const { org } = fixture;
    const configs = new Map<string, TenantConfig>();
    let resolves = 0;
    const pool = new SessionPool({
      loginUrl: org.loginUrl,
      resolve: (tenant) => {
        resolves++;
        return configs.get(tenant);
      },
    });
    const unknown = await caught(() => pool.session('acme'));
    expect(unknown).toBeInstanceOf(UnknownTenantError);
    expect(unknown).toMatchObject({ code: 'ERR_UNKNOWN_TENANT', tenant: 'acme', transient: false });
    configs.set('acme', {
      grant: 'client-credentials',
      options: {
        clientId: org.clientId,
        clientSecret: org.clientSecret,
        instanceUrl: org.instanceUrl,
      },
    });
    expect(typeof (await (await pool.session('acme')).getToken())).toBe('string');
    expect(resolves).toBe(2);
    configs.set('odd', { grant: 'password', options: {} } as unknown as TenantConfig);
    expect(await caught(() => pool.session('odd'))).toMatchObject({
      code: 'ERR_CONFIG',
      option: 'grant',
    });
    configs.set('nosecret', {
      grant: 'client-credentials',
      options: { clientId: org.clientId, instanceUrl: org.instanceUrl },
    } as unknown as TenantConfig);
    expect(await caught(() => pool.session('nosecret'))).toMatchObject({
      code: 'ERR_CONFIG',
      option: 'clientSecret',
    });
    expect(await caught(() => pool.session(''))).toBeInstanceOf(ConfigError);
    await pool.close();
  });

  it('bad options are a ConfigError at construction', () => {
    const resolve = () => undefined;
    expect(() => new SessionPool({ resolve, maxSessions: 0 })).toThrow(ConfigError);
    expect(() => new SessionPool({ resolve, idleMs: -1 })).toThrow(ConfigError);
    expect(() => new SessionPool({} as never)).toThrow(ConfigError);
    expect(() => new SessionPool({ resolve, store: {} as never })).toThrow(ConfigError);
  });

  it('idle sessions close; coming back costs no token request, the store kept the token', async () => {
    const { org } = fixture;
    const configs = clientCredentialConfigs(await tenants(3));
    const pool = new SessionPool({
      loginUrl: org.loginUrl,
      idleMs: 60,
      resolve: (tenant) => configs.get(tenant),
    });
    const first = await Promise.all(
      ['t0', 't1', 't2'].map(async (t) => (await pool.session(t)).getToken()),
    );
    expect(pool.size).toBe(3);
    await new Promise((resolve) => setTimeout(resolve, 250));
    expect(pool.size).toBe(0);
    const again = await Promise.all(
      ['t0', 't1', 't2'].map(async (t) => (await pool.session(t)).getToken()),
    );
    expect(again).toEqual(first);
    expect(org.stats.tokenRequests).toBe(3);
    await pool.close();
  });

  it('eviction takes a session unused lately, never the one in use', async () => {
    const { org } = fixture;
    const configs = clientCredentialConfigs(await tenants(4));
    const pool = new SessionPool({
      loginUrl: org.loginUrl,
      maxSessions: 2,
      resolve: (tenant) => configs.get(tenant),
    });
    const t0 = await pool.session('t0');
    await t0.getToken();
    await (await pool.session('t1')).getToken();
    await t0.getToken(); // t0 used after t1 was opened
    await (await pool.session('t2')).getToken(); // evicts t1
    expect(pool.live('t0')).toBeDefined();
    expect(pool.live('t1')).toBeUndefined();
    expect(pool.live('t2')).toBeDefined();
    await pool.close();
  });

  it('a session handle outlives eviction: its next call opens a new session on the same entry', async () => {
    const { org } = fixture;
    const configs = refreshConfigs(await tenants(2));
    const rotated: string[] = [];
    for (const config of configs.values()) {
      (config.options as { onRefreshTokenRotated?: (t: string) => void }).onRefreshTokenRotated = (
        t,
      ) => void rotated.push(t);
    }
    const pool = new SessionPool({
      loginUrl: org.loginUrl,
      maxSessions: 1,
      resolve: (tenant) => configs.get(tenant),
    });
    const a = await pool.session('t0');
    const first = await a.getToken();
    await (await pool.session('t1')).getToken(); // evicts t0
    expect(pool.size).toBe(1);
    a.confirm(first);
    await a.invalidate(first); // reopens t0 (evicting t1), on the same store entry
    const second = await a.getToken();
    expect(second).not.toBe(first);
    expect(org.stats.familyRevocations).toBe(0);
    expect(rotated).toHaveLength(3);
    expect(org.isValidRefreshToken(rotated.at(-1) as string)).toBe(true);
    await pool.close();
  });

  it('close() awaits a mint in flight, keeps its rotated token, then refuses', async () => {
    const { org } = fixture;
    const store = new InMemoryTokenStore();
    const configs = refreshConfigs(await tenants(1));
    const pool = new SessionPool({ loginUrl: org.loginUrl, store, resolve: (t) => configs.get(t) });
    const session = await pool.session('t0');
    org.setTokenDelay(200);
    const minting = session.getToken();
    await new Promise((resolve) => setTimeout(resolve, 50));
    await pool.close();
    org.setTokenDelay(0);
    expect(typeof (await minting)).toBe('string');
    expect(await caught(() => pool.session('t0'))).toBeInstanceOf(SessionClosedError);
    // The rotated refresh token is in the store: a new pool on it carries on.
    const next = new SessionPool({ loginUrl: org.loginUrl, store, resolve: (t) => configs.get(t) });
    const s = await next.session('t0');
    const token = await s.getToken();
    s.confirm(token);
    await s.invalidate(token);
    expect(await s.getToken()).not.toBe(token);
    expect(org.stats.familyRevocations).toBe(0);
    await next.close();
  });

  it('never shows a credential in util.inspect or JSON.stringify', async () => {
    const { org } = fixture;
    const pool = new SessionPool({
      loginUrl: org.loginUrl,
      resolve: () => ({
        grant: 'client-credentials',
        options: {
          clientId: org.clientId,
          clientSecret: org.clientSecret,
          instanceUrl: org.instanceUrl,
        },
      }),
    });
    const session = await pool.session('acme');
    const token = await session.getToken();
    for (const shown of [
      inspect(pool, { showHidden: true, depth: 9 }),
      JSON.stringify(pool),
      inspect(session, { showHidden: true }),
      JSON.stringify(session),
    ]) {
      expect(shown).not.toContain(org.clientSecret);
      expect(shown).not.toContain(token);
    }
    await pool.close();
  });
});

describe('adapters over a SessionPool', () => {
  async function twoTenants() {
    const { org } = fixture;
    const [a, b] = await tenants(2, { ownInstance: true });
    const configs = clientCredentialConfigs([a as FakeTenant, b as FakeTenant]);
    const pool = new SessionPool({ loginUrl: org.loginUrl, resolve: (t) => configs.get(t) });
    return { a: a as FakeTenant, b: b as FakeTenant, pool };
  }

  const adapters = [
    {
      name: 'fetch',
      make: (pool: SessionPool) => {
        const api = authFetch(pool, { tenant: (r) => r.headers.get('x-tenant') ?? '' });
        return (url: string, tenant: string) =>
          api(url, { headers: { 'x-tenant': tenant } }).then((r) => r.status);
      },
    },
    {
      name: 'axios',
      make: (pool: SessionPool) => {
        const api = axios.create({ validateStatus: () => true });
        attachAuth(api, pool, { tenant: (config) => String(config.headers['x-tenant'] ?? '') });
        return (url: string, tenant: string) =>
          api.get(url, { headers: { 'x-tenant': tenant } }).then((r) => r.status);
      },
    },
    {
      name: 'ky',
      make: (pool: SessionPool) => {
        const api = ky.create({
          throwHttpErrors: false,
          retry: 0,
          hooks: authHooks(pool, { tenant: (r) => r.headers.get('x-tenant') ?? '' }),
        });
        return (url: string, tenant: string) =>
          api.get(url, { headers: { 'x-tenant': tenant } }).then((r) => r.status);
      },
    },
  ];

  for (const adapter of adapters) {
    it(`${adapter.name}: each tenant's token goes to its own instance only, and a revocation re-mints once`, async () => {
      const { org } = fixture;
      const { a, b, pool } = await twoTenants();
      const call = adapter.make(pool);
      const limits = '/services/data/v62.0/limits';
      expect(await call(`${a.instanceUrl}${limits}`, 't0')).toBe(200);
      expect(await call(`${b.instanceUrl}${limits}`, 't1')).toBe(200);
      // A request for tenant t1 to t0's instance carries no token at all: t0's is not t1's to
      // send, and t1's must not reach another tenant's instance.
      org.resetStats();
      expect(await call(`${a.instanceUrl}${limits}`, 't1')).toBe(401);
      expect(org.apiRequests.at(-1)?.token).toBeUndefined();
      expect(org.stats.tokenRequests).toBe(0);
      org.revokeAllTokens();
      expect(await call(`${a.instanceUrl}${limits}`, 't0')).toBe(200);
      expect(org.stats.tokenRequests).toBe(1);
      // Counted since resetStats(): t0's one re-mint, nothing for t1.
      expect(a.stats.tokensIssued).toBe(1);
      expect(b.stats.tokensIssued).toBe(0);
      expect(await caught(() => call(`${a.instanceUrl}${limits}`, 'nobody'))).toMatchObject({
        code: 'ERR_UNKNOWN_TENANT',
      });
      await pool.close();
    });
  }
});
