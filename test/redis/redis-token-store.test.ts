import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { inspect } from 'node:util';
import { Redis } from 'ioredis';
import { createClient } from 'redis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { authFetch } from '../../src/adapters/fetch.js';
import {
  ConfigError,
  DIAGNOSTICS_CHANNELS,
  RefreshTokenAuth,
  type RefreshTokenOptions,
  SessionClosedError,
  SharedBackoffError,
  type SharedTokenStore,
  type StoreEvent,
  SubjectTokenType,
  sessionKey,
  TokenExchangeAuth,
  TokenStoreError,
} from '../../src/index.js';
import { secretFingerprint } from '../../src/session/shared-store.js';
import { RedisTokenStore } from '../../src/stores/redis.js';
import { useFakeOrg } from '../_org.js';
import { type RedisServer, redisTestsRun, startRedis } from '../_redis.js';
import { caught, expectNoSecrets } from '../_secrets.js';
import { delegating } from '../_stores.js';
import { until } from './_fleet.js';
import { startPartitionProxy } from './_proxy.js';

/** The `cirrus-auth:store` events published during each test of the enclosing describe. */
function storeEvents(): StoreEvent[] {
  const events: StoreEvent[] = [];
  const listener = (event: unknown) => events.push(event as StoreEvent);
  beforeAll(() => subscribe(DIAGNOSTICS_CHANNELS.store, listener));
  afterAll(() => unsubscribe(DIAGNOSTICS_CHANNELS.store, listener));
  afterEach(() => {
    events.length = 0;
  });
  return events;
}

describe.skipIf(!redisTestsRun)('RedisTokenStore on a real redis-server', () => {
  // Several sessions on one store in one process behave as several processes would: each has its
  // own engine, lock and memory; only Redis is shared. The multi-process proofs are in fleet.test.ts.
  const fixture = useFakeOrg();
  let redis: RedisServer;
  const clientFor = (url: string) =>
    createClient({
      url,
      disableOfflineQueue: true,
      socket: { reconnectStrategy: () => 50, connectTimeout: 300 },
    }).on('error', () => {});
  let client: ReturnType<typeof clientFor>;
  const KEY = Buffer.alloc(32, 7).toString('base64');
  const LIMITS = '/services/data/v62.0/limits';

  beforeAll(async () => {
    redis = await startRedis();
    client = clientFor(redis.url);
    await client.connect();
  });
  afterAll(async () => {
    await client?.close().catch(() => {});
    await redis?.stop();
  });
  /** Sessions a test opened: closed after it, so none probes Redis during the next test. */
  const opened: { close(): Promise<void> }[] = [];
  function open<T extends { close(): Promise<void> }>(session: T): T {
    opened.push(session);
    return session;
  }

  afterEach(async () => {
    await Promise.all(opened.splice(0).map((session) => session.close()));
    await redis.start();
    await until(() => client.isReady);
    await client.sendCommand(['FLUSHALL']);
  });

  function refreshingOn(store: RedisTokenStore, overrides: Partial<RefreshTokenOptions> = {}) {
    const refreshing = fixture.refreshing({ store, ...overrides });
    open(refreshing.session);
    return refreshing;
  }

  /** Another process's session on the same refresh token (the same shared entry). */
  function sibling(
    refreshToken: string,
    store: SharedTokenStore,
    overrides: Partial<RefreshTokenOptions> = {},
  ) {
    return open(
      new RefreshTokenAuth({
        clientId: fixture.org.clientId,
        clientSecret: fixture.org.clientSecret,
        refreshToken,
        loginUrl: fixture.org.loginUrl,
        instanceUrl: fixture.org.instanceUrl,
        store,
        ...overrides,
      }),
    );
  }

  /** Every key and value in Redis, as text. */
  async function dump(): Promise<string[]> {
    const keys = (await client.sendCommand(['KEYS', '*'])) as string[];
    const values = await Promise.all(keys.map((key) => client.sendCommand(['GET', key])));
    return [...keys, ...values.map(String)];
  }

  describe('RedisTokenStore', () => {
    it('rejects bad options with ConfigError naming them, at construction', () => {
      const bad: [string, () => unknown][] = [
        ['options', () => new RedisTokenStore(undefined as never)],
        ['client', () => new RedisTokenStore({ client: {} as never })],
        ['client', () => new RedisTokenStore({ client: undefined as never })],
        ['keyPrefix', () => new RedisTokenStore({ client, keyPrefix: 'a{b}' })],
        ['keyPrefix', () => new RedisTokenStore({ client, keyPrefix: 3 as never })],
        ['lockTtlMs', () => new RedisTokenStore({ client, lockTtlMs: 0 })],
        ['lockTtlMs', () => new RedisTokenStore({ client, lockTtlMs: 1.5 })],
        ['commandTimeoutMs', () => new RedisTokenStore({ client, commandTimeoutMs: -1 })],
        ['encryptionKey', () => new RedisTokenStore({ client, encryptionKey: 'c2hvcnQ=' })],
        ['encryptionKey', () => new RedisTokenStore({ client, encryptionKey: new Uint8Array(16) })],
        ['encryptionKey', () => new RedisTokenStore({ client, encryptionKey: 42 as never })],
      ];
      for (const [option, construct] of bad) {
        let error: unknown;
        try {
          construct();
        } catch (e) {
          error = e;
        }
        expect(error, option).toBeInstanceOf(ConfigError);
        expect((error as ConfigError).option).toBe(option);
      }
      // 32 bytes as bytes, base64 or hex are all fine.
      new RedisTokenStore({ client, encryptionKey: new Uint8Array(32) });
      new RedisTokenStore({ client, encryptionKey: 'ab'.repeat(32) });
      new RedisTokenStore({ client, encryptionKey: KEY });
    });

    it('rejects a store that is not one, and sessions that cannot share one', () => {
      const { org } = fixture;
      expect(() => fixture.session({ store: {} as never })).toThrow(
        expect.objectContaining({ option: 'store' }),
      );
      const store = new RedisTokenStore({ client });
      expect(
        () =>
          new TokenExchangeAuth({
            clientId: org.clientId,
            instanceUrl: org.instanceUrl,
            subjectToken: () => 'changes every time',
            subjectTokenType: SubjectTokenType.ACCESS_TOKEN,
            store,
          }),
      ).toThrow(expect.objectContaining({ option: 'storeKey' }));
      expect(() => fixture.session({ store, storeKey: '' })).toThrow(
        expect.objectContaining({ option: 'storeKey' }),
      );
    });

    it('keys name the grant and hash the rest: no client id, username or secret in clear', () => {
      const identity = {
        loginUrl: 'https://acme.my.salesforce.com',
        clientId: '3MVG9-consumer-key',
        grant: 'jwt_bearer',
        user: 'integration@acme.com',
      };
      const key = sessionKey(identity);
      expect(key).toMatch(/^jwt_bearer:[0-9a-f]{40}$/);
      expect(sessionKey({ ...identity, user: 'other@acme.com' })).not.toBe(key);
      expect(sessionKey({ ...identity, clientId: 'another-app' })).not.toBe(key);
      expect(sessionKey({ ...identity, loginUrl: 'https://test.salesforce.com' })).not.toBe(key);
      expect(sessionKey({ ...identity, grant: 'client_credentials' })).not.toBe(key);
    });

    it('two sessions share one token; compare-and-swap invalidation: 50 invalidations, 1 re-mint', async () => {
      const store = new RedisTokenStore({ client });
      const sessions = Array.from({ length: 50 }, () => open(fixture.session({ store })));
      const first = await Promise.all(sessions.map((s) => s.getToken()));
      expect(new Set(first).size).toBe(1);
      expect(fixture.org.stats.tokenRequests).toBe(1);
      // A token that is not the stored one changes nothing.
      await sessions[0]?.invalidate('not-the-token');
      expect(fixture.org.stats.tokenRequests).toBe(1);
      await Promise.all(sessions.map((s) => s.invalidate(first[0] as string)));
      const second = await Promise.all(sessions.map((s) => s.getToken()));
      expect(new Set(second).size).toBe(1);
      expect(second[0]).not.toBe(first[0]);
      expect(fixture.org.stats.tokenRequests).toBe(2);
    });

    it('a live holder renews its lock: a mint slower than lockTtlMs is still the only one', async () => {
      const store = new RedisTokenStore({ client, lockTtlMs: 200 });
      fixture.org.setTokenDelay(900);
      const sessions = Array.from({ length: 4 }, () => open(fixture.session({ store })));
      const tokens = await Promise.all(sessions.map((s) => s.getToken()));
      expect(new Set(tokens).size).toBe(1);
      expect(fixture.org.stats.tokenRequests).toBe(1);
    });

    it('separate key prefixes are separate caches', async () => {
      const a = open(fixture.session({ store: new RedisTokenStore({ client, keyPrefix: 'a:' }) }));
      const b = open(fixture.session({ store: new RedisTokenStore({ client, keyPrefix: 'b:' }) }));
      expect(await a.getToken()).not.toBe(await b.getToken());
      expect(fixture.org.stats.tokenRequests).toBe(2);
    });

    it('works the same through an ioredis client', async () => {
      const io = new Redis(redis.port, '127.0.0.1', { lazyConnect: false });
      try {
        const store = new RedisTokenStore({ client: io });
        const viaNodeRedis = open(fixture.session({ store: new RedisTokenStore({ client }) }));
        const viaIoredis = open(fixture.session({ store }));
        expect(await viaIoredis.getToken()).toBe(await viaNodeRedis.getToken());
        expect(fixture.org.stats.tokenRequests).toBe(1);
      } finally {
        io.disconnect();
      }
    });
  });

  describe('secrets at rest', () => {
    it('with encryptionKey, Redis holds no token, refresh token or secret in clear', async () => {
      const store = new RedisTokenStore({ client, encryptionKey: KEY });
      const { session, rotated, refreshToken } = refreshingOn(store);
      const token = await session.getToken();
      expect(rotated).toHaveLength(1);
      const everything = (await dump()).join('\n');
      expect(everything).toContain(':refresh');
      for (const secret of [token, refreshToken, rotated[0] as string, fixture.org.clientSecret]) {
        expect(everything).not.toContain(secret);
      }
      expect(everything).not.toContain(fixture.org.clientId);
      // A second session (another process) reads it back through the same key.
      const other = sibling(refreshToken, store);
      expect(await other.getToken()).toBe(token);
      expect(fixture.org.stats.tokenRequests).toBe(1);
    });

    it("TokenInfo travels with the token, sealed like it: every process answers the first's", async () => {
      const store = new RedisTokenStore({ client, encryptionKey: KEY });
      const first = open(fixture.session({ store }));
      const info = await first.getTokenInfo();
      expect(info).toMatchObject({ orgId: '00D000000000001EAA', signatureVerified: true });
      // Another process: it mints nothing, and tells the same story about the token.
      const second = open(fixture.session({ store }));
      expect(await second.getTokenInfo()).toEqual(info);
      expect(fixture.org.stats.tokenRequests).toBe(1);
      const everything = (await dump()).join('\n');
      for (const field of ['005000000000001AAA', '/id/', 'Bearer', String(info.issuedAt)]) {
        expect(everything).not.toContain(field);
      }
      // Through a store value this library did not write, the info is not trusted but the token is.
      const plain = new RedisTokenStore({ client, keyPrefix: 'plain:' });
      const writer = open(fixture.session({ store: plain }));
      const token = await writer.getToken();
      const [key] = (await client.sendCommand(['KEYS', 'plain:*:token'])) as string[];
      const raw = String(await client.sendCommand(['GET', key as string]));
      const [digest, sealed] = [raw.slice(0, raw.indexOf('|')), raw.slice(raw.indexOf('|') + 1)];
      const body = JSON.parse(sealed.slice(sealed.indexOf('{')));
      body.info = { ...body.info, scopes: 'not-a-list' };
      await client.sendCommand([
        'SET',
        key as string,
        `${digest}|${sealed.slice(0, sealed.indexOf('{'))}${JSON.stringify(body)}`,
        'PX',
        '600000',
      ]);
      const reader = open(fixture.session({ store: plain }));
      expect(await reader.getToken()).toBe(token);
      expect(await reader.getTokenInfo()).toEqual({
        instanceUrl: fixture.org.instanceUrl,
        scopes: [],
        signatureVerified: false,
      });
    });

    it('without encryptionKey, values are in clear (as documented) but keys still hold no secret', async () => {
      const { session, rotated } = refreshingOn(new RedisTokenStore({ client }));
      const token = await session.getToken();
      const keys = ((await client.sendCommand(['KEYS', '*'])) as string[]).join('\n');
      const values = (await dump()).join('\n');
      expect(values).toContain(token);
      expect(values).toContain(rotated[0]);
      for (const secret of [token, rotated[0] as string, fixture.org.clientSecret]) {
        expect(keys).not.toContain(secret);
      }
    });

    it('a process with another encryptionKey gets a typed, non-transient error and mints nothing', async () => {
      const { session, refreshToken } = refreshingOn(
        new RedisTokenStore({ client, encryptionKey: KEY }),
      );
      const token = await session.getToken();
      const intruder = sibling(
        refreshToken,
        new RedisTokenStore({ client, encryptionKey: Buffer.alloc(32, 9) }),
      );
      const error = await caught(() => intruder.getToken());
      expect(error).toBeInstanceOf(TokenStoreError);
      expect(error).toMatchObject({
        code: 'ERR_TOKEN_STORE',
        problem: 'undecryptable',
        transient: false,
      });
      expect(fixture.org.stats.tokenRequests).toBe(1);
      expect(fixture.org.stats.familyRevocations).toBe(0);
      expectNoSecrets(error, [token, refreshToken, fixture.org.clientSecret]);
      // Nor does a process without a key read the sealed values as if they were clear.
      const plain = open(fixture.session({ store: new RedisTokenStore({ client }) }));
      await plain.getToken(); // another key entirely: its own entry
    });

    it('inspect and JSON show the prefix, never the encryption key', () => {
      const store = new RedisTokenStore({ client, encryptionKey: KEY });
      for (const view of [inspect(store, { showHidden: true, depth: 5 }), JSON.stringify(store)]) {
        expect(view).toContain('cirrus-auth:');
        expect(view).not.toContain(KEY);
        expect(view).not.toContain(Buffer.from(KEY, 'base64').toString('hex'));
      }
    });
  });

  describe('when Redis fails', () => {
    const events = storeEvents();

    it('falls back to one in-process mint, publishes it, and rejoins when Redis is back', async () => {
      const store = new RedisTokenStore({ client, commandTimeoutMs: 200 });
      const a = open(fixture.session({ store }));
      const b = open(fixture.session({ store }));
      const token = await a.getToken();
      await redis.stop();
      await a.invalidate(token);
      await b.invalidate(token);
      const [fromA, fromB] = await Promise.all([a.getToken(), b.getToken()]);
      expect(fromA).not.toBe(fromB); // each minted on its own: the fleet is split for now
      expect(fixture.org.stats.tokenRequests).toBe(3);
      expect(events.map((e) => e.outcome)).toEqual(['unavailable', 'unavailable']);
      expect(events[0]).toMatchObject({
        session: 'ClientCredentialsAuth',
        code: 'ERR_TOKEN_STORE',
      });

      await redis.start();
      await until(() => events.filter((e) => e.outcome === 'rejoined').length === 2, 5_000);
      // One offered its token, the other adopted it: one token again, without a token request.
      expect(await a.getToken()).toBe(await b.getToken());
      expect(fixture.org.stats.tokenRequests).toBe(3);
    });

    it('a slow Redis (CLIENT PAUSE) counts as down: requests go on after commandTimeoutMs', async () => {
      const store = new RedisTokenStore({ client, commandTimeoutMs: 100 });
      const session = open(fixture.session({ store }));
      await client.sendCommand(['CLIENT', 'PAUSE', '1500', 'ALL']);
      expect(typeof (await session.getToken())).toBe('string');
      expect(fixture.org.stats.tokenRequests).toBe(1);
      expect(events.map((e) => e.outcome)).toEqual(['unavailable']);
      await until(() => events.some((e) => e.outcome === 'rejoined'), 5_000);
      await session.close();
    });

    it('a rotating refresh token is never used outside the store: typed transient error, no request', async () => {
      const store = new RedisTokenStore({ client, commandTimeoutMs: 200 });
      const { session, refreshToken } = refreshingOn(store);
      const token = await session.getToken();
      await redis.stop();
      await session.invalidate(token);
      const error = await caught(() => session.getToken());
      expect(error).toBeInstanceOf(TokenStoreError);
      expect(error).toMatchObject({ problem: 'unavailable', transient: true });
      expectNoSecrets(error, [token, refreshToken]);
      expect(fixture.org.stats.tokenRequests).toBe(1);

      await redis.start(); // empty: the rotated token died with it, but this process still has it
      await until(() => events.some((e) => e.outcome === 'rejoined'), 5_000);
      expect(typeof (await session.getToken())).toBe('string');
      expect(fixture.org.stats.tokenRequests).toBe(2);
      expect(fixture.org.stats.familyRevocations).toBe(0);
    });

    it('revoke() revokes the refresh token the store holds, even one another process rotated', async () => {
      const store = new RedisTokenStore({ client });
      const { session, refreshToken } = refreshingOn(store);
      const rotatedElsewhere: string[] = [];
      const other = sibling(refreshToken, store, {
        onRefreshTokenRotated: (token) => {
          rotatedElsewhere.push(token);
        },
      });
      const first = await session.getToken();
      await other.invalidate(first);
      await other.getToken(); // the other process rotates; `session` never saw the new token
      expect(fixture.org.stats.tokenRequests).toBe(2);
      expect(rotatedElsewhere).toHaveLength(1);
      const latest = rotatedElsewhere[0] as string;
      expect(fixture.org.isValidRefreshToken(latest)).toBe(true);
      await session.revoke();
      expect(fixture.org.isValidRefreshToken(latest)).toBe(false);
      expect(fixture.org.stats.familyRevocations).toBe(0);
      // Nothing of the session is left in Redis for the fleet to present.
      expect(await dump()).toEqual([]);
    });
  });

  describe('a rotated refresh token the store missed', () => {
    /** The real store, whose swapSecret fails while `failing` is set (a Redis hiccup). */
    function flaky(inner: RedisTokenStore) {
      const state = { failing: true, swaps: 0 };
      const store: SharedTokenStore = delegating(inner, {
        swapSecret: (key, presented, secret) => {
          state.swaps++;
          return state.failing
            ? Promise.reject(new Error('connection lost'))
            : inner.swapSecret(key, presented, secret);
        },
      });
      return { store, state };
    }
    it('holds the fleet back (the holder keeps the lock) until it stores it: 0 family revocations', async () => {
      const { store: failing, state } = flaky(new RedisTokenStore({ client, lockTtlMs: 300 }));
      const { session, rotated, refreshToken } = refreshingOn(failing as RedisTokenStore);
      const token = await session.getToken(); // rotated, but the store kept the old refresh token
      expect(rotated).toHaveLength(1);
      expect(state.swaps).toBe(1);
      state.failing = false;

      const other = sibling(refreshToken, new RedisTokenStore({ client }));
      await other.invalidate(token);
      // `other` must not present the refresh token the store still holds (it is dead): it waits,
      // as `session` keeps the lock until it stores the rotated one.
      const fresh = await other.getToken();
      expect(fresh).not.toBe(token);
      expect(state.swaps).toBe(2);
      expect(fixture.org.stats.tokenRequests).toBe(2);
      expect(fixture.org.stats.familyRevocations).toBe(0);
    });

    it("is not lost when the refresh fails after Salesforce rotated it (another org's instance_url)", async () => {
      const { store: failing, state } = flaky(new RedisTokenStore({ client, lockTtlMs: 300 }));
      // No backoff, so the failure is not shared and the other process refreshes at once.
      const { session, rotated, refreshToken } = refreshingOn(failing as RedisTokenStore, {
        backoff: false,
      });
      fixture.org.failTokenEndpoint(
        { kind: 'instance-url', instanceUrl: 'https://elsewhere.my.salesforce.com' },
        { times: 1 },
      );
      const error = await caught(() => session.getToken());
      expect(error).toMatchObject({ code: 'ERR_INSTANCE_URL_MISMATCH' });
      expect(rotated).toHaveLength(1); // adopted before the answer failed
      state.failing = false;
      // Another process refreshes: it must present the rotated token, never the one it replaced.
      const other = sibling(refreshToken, new RedisTokenStore({ client }));
      expect(typeof (await other.getToken())).toBe('string');
      expect(fixture.org.stats.tokenRequests).toBe(2);
      expect(fixture.org.stats.familyRevocations).toBe(0);
    });

    it('close() makes one last attempt to store it', async () => {
      const inner = new RedisTokenStore({ client });
      const { store: failing, state } = flaky(inner);
      const { session, rotated } = refreshingOn(failing as RedisTokenStore);
      await session.getToken();
      state.failing = false;
      await session.close();
      expect(state.swaps).toBe(2);
      // Stored in clear here (no encryptionKey), so a scan finds it.
      const values = await dump();
      expect(values.some((v) => v.includes(rotated[0] as string))).toBe(true);
    });

    it("close() while waiting for another process's mint rejects the wait with SessionClosedError", async () => {
      const store = new RedisTokenStore({ client });
      fixture.org.setTokenDelay(1_500);
      const holder = open(fixture.session({ store }));
      const waiter = fixture.session({ store });
      const held = holder.getToken();
      await until(() => fixture.org.stats.tokenRequests === 1);
      const waiting = waiter.getToken().then(
        () => 'token',
        (error: unknown) => error,
      );
      await waiter.close();
      const outcome = await waiting;
      expect(outcome).toBeInstanceOf(SessionClosedError);
      // Closed without waiting for the other process's token request to finish.
      expect(await Promise.race([held.then(() => 'done'), Promise.resolve('pending')])).toBe(
        'pending',
      );
      await held;
      expect(fixture.org.stats.tokenRequests).toBe(1);
    });

    it('a custom store whose renew throws synchronously never crashes the process', async () => {
      const inner = new RedisTokenStore({ client, lockTtlMs: 30 });
      const store: SharedTokenStore = {
        lockTtlMs: 30,
        read: (key) => inner.read(key),
        acquire: (key) => inner.acquire(key),
        renew: () => {
          throw new Error('not implemented');
        },
        release: () => {
          throw new Error('not implemented either');
        },
        write: (key, fence, entry) => inner.write(key, fence, entry),
        deleteIf: (key, token) => inner.deleteIf(key, token),
        swapSecret: (key, presented, secret) => inner.swapSecret(key, presented, secret),
      };
      fixture.org.setTokenDelay(200); // several renewals fire during the mint
      const session = open(fixture.session({ store }));
      expect(typeof (await session.getToken())).toBe('string');
    });
  });

  /** The Redis keys of a session's entry (default prefix), from its grant and user. */
  function keysOf(grant: string, user: string) {
    const { loginUrl, clientId } = fixture.org;
    const key = sessionKey({ loginUrl, clientId, grant, user });
    const base = `cirrus-auth:{${key}}`;
    return { key, token: `${base}:token`, refresh: `${base}:refresh` };
  }

  describe('an unreadable stored value', () => {
    const events = storeEvents();
    const keyed = { 'no encryptionKey': {}, encryptionKey: { encryptionKey: KEY } };
    const values = {
      garbage: 'd2f1|e1.bm90IGEgc2VhbGVkIHZhbHVl',
      empty: '',
      unprefixed: JSON.stringify({
        accessToken: 'planted-by-hand',
        expiresInMs: 60_000,
        staleInMs: 50_000,
        refreshInMs: 40_000,
      }),
    };
    const cases = Object.keys(keyed).flatMap((mode) =>
      Object.keys(values).map((kind) => [mode, kind] as [keyof typeof keyed, keyof typeof values]),
    );

    it.each(cases)(
      'access-token entry, %s, %s value: treated as absent, reported, replaced: 1 token request',
      async (mode, kind) => {
        const store = new RedisTokenStore({ client, ...keyed[mode] });
        const names = keysOf('client_credentials', '');
        await client.sendCommand(['SET', names.token, values[kind]]); // no TTL: it would stay
        const warnings: object[] = [];
        const logger = { warn: (fields: object) => warnings.push(fields) };
        const sessions = Array.from({ length: 5 }, () => open(fixture.session({ store, logger })));
        const tokens = await Promise.all(sessions.map((s) => s.getToken()));
        expect(new Set(tokens).size).toBe(1);
        expect(fixture.org.stats.tokenRequests).toBe(1);
        // Overwritten: another process now reads the new token, without a request.
        expect(await client.sendCommand(['GET', names.token])).not.toBe(values[kind]);
        expect(await open(fixture.session({ store })).getToken()).toBe(tokens[0]);
        expect(fixture.org.stats.tokenRequests).toBe(1);
        expect(events.length).toBeGreaterThan(0);
        for (const event of events) {
          expect(event).toEqual({
            session: 'ClientCredentialsAuth',
            instanceUrl: fixture.org.instanceUrl,
            outcome: 'unreadable',
            code: 'ERR_TOKEN_STORE',
          });
        }
        expect(warnings).toContainEqual(expect.objectContaining({ outcome: 'unreadable' }));
        expectNoSecrets(warnings, [tokens[0] as string, fixture.org.clientSecret]);
      },
    );

    it.each(Object.keys(keyed) as (keyof typeof keyed)[])(
      'access-token entry, %s, next to a good refresh token: 1 refresh, 0 family revocations',
      async (mode) => {
        const store = new RedisTokenStore({ client, ...keyed[mode] });
        const { session, refreshToken } = refreshingOn(store);
        await session.getToken();
        const names = keysOf('refresh_token', `rt:${secretFingerprint(refreshToken)}`);
        await client.sendCommand(['SET', names.token, values.garbage]);
        expect(typeof (await sibling(refreshToken, store).getToken())).toBe('string');
        expect(fixture.org.stats.tokenRequests).toBe(2);
        expect(fixture.org.stats.familyRevocations).toBe(0);
      },
    );

    it.each(cases)(
      'refresh-token entry, %s, %s value: still refused (non-transient), left untouched, no request',
      async (mode, kind) => {
        const store = new RedisTokenStore({ client, ...keyed[mode] });
        const { session, refreshToken } = refreshingOn(store);
        const token = await session.getToken();
        const names = keysOf('refresh_token', `rt:${secretFingerprint(refreshToken)}`);
        await client.sendCommand(['SET', names.refresh, values[kind]]);
        await session.invalidate(token);
        const other = sibling(refreshToken, store);
        for (const refused of [session, other]) {
          const error = await caught(() => refused.getToken());
          expect(error).toBeInstanceOf(TokenStoreError);
          expect(error).toMatchObject({ problem: 'undecryptable', transient: false });
          expectNoSecrets(error, [token, refreshToken]);
        }
        expect(fixture.org.stats.tokenRequests).toBe(1);
        expect(await client.sendCommand(['GET', names.refresh])).toBe(values[kind]);
      },
    );
  });

  describe('a holder cut off from Redis mid-refresh', () => {
    it('past lockTtlMs, nobody else presents its refresh token: 0 family revocations, the rotated token reaches the store', async () => {
      const proxy = await startPartitionProxy(redis.port);
      const cutOff = clientFor(proxy.url);
      await cutOff.connect();
      try {
        const options = { lockTtlMs: 300, commandTimeoutMs: 100 };
        const inner = new RedisTokenStore({ client: cutOff, ...options });
        // The real store, counting the renewals Redis answered (so applied) before the cut.
        let renewed = 0;
        const counting: SharedTokenStore = delegating(inner, {
          renew: async (key, fence, ttlMs) => {
            const held = await inner.renew(key, fence, ttlMs);
            renewed++;
            return held;
          },
        });
        const holder = refreshingOn(counting as RedisTokenStore, { timeoutMs: 3_000 });
        const elsewhere: string[] = [];
        const other = sibling(holder.refreshToken, new RedisTokenStore({ client, ...options }), {
          timeoutMs: 3_000,
          onRefreshTokenRotated: (token) => {
            elsewhere.push(token);
          },
        });
        fixture.org.setTokenDelay(1_000); // the holder's refresh is held up at the org...
        const held = holder.session.getToken();
        await until(() => fixture.org.stats.tokenRequests === 1);
        // ...past a renewal made while the request runs, then its line to Redis goes dead.
        await until(() => renewed >= 2);
        proxy.partition();
        const tried = other.getToken().then(
          (token) => token,
          (error: unknown) => error,
        );
        expect(typeof (await held)).toBe('string'); // rotated at the org; the store missed it
        expect(holder.rotated).toHaveLength(1);
        proxy.heal();
        const outcome = await tried;
        expect(fixture.org.stats.familyRevocations).toBe(0);
        expect(typeof outcome).toBe('string');
        // Not lost: the store holds the newest refresh token, live at the org, and the fleet
        // refreshes from it.
        const names = keysOf('refresh_token', `rt:${secretFingerprint(holder.refreshToken)}`);
        const latest = elsewhere.at(-1) ?? (holder.rotated[0] as string);
        await until(async () => (await inner.read(names.key)).secret === latest, 2_000);
        expect(fixture.org.isValidRefreshToken(latest)).toBe(true);
        fixture.org.setTokenDelay(0);
        await other.invalidate(outcome as string);
        expect(typeof (await other.getToken())).toBe('string');
        expect(fixture.org.stats.familyRevocations).toBe(0);
      } finally {
        await cutOff.close().catch(() => {});
        await proxy.close();
      }
    });

    it('a renewal too slow to vouch for the lease: the refresh token is not presented', async () => {
      const inner = new RedisTokenStore({ client, lockTtlMs: 100 });
      const slow: SharedTokenStore = delegating(inner, {
        // Answers "still held", but only after the margin the lease had over the request.
        renew: async (key, fence, ttlMs) => {
          if (ttlMs !== undefined) await new Promise((resolve) => setTimeout(resolve, 150));
          return inner.renew(key, fence, ttlMs);
        },
      });
      const { session } = refreshingOn(slow as RedisTokenStore);
      const error = await caught(() => session.getToken());
      expect(error).toBeInstanceOf(TokenStoreError);
      expect(error).toMatchObject({ problem: 'unavailable', transient: true });
      expect(fixture.org.stats.tokenRequests).toBe(0);
    });
  });

  describe('a failed mint', () => {
    it('opens one backoff window for every process: the others get SharedBackoffError, no request', async () => {
      const store = new RedisTokenStore({ client });
      const backoff = { initialMs: 200, maxMs: 200 };
      const a = open(fixture.session({ store, backoff }));
      const b = open(fixture.session({ store, backoff }));
      fixture.org.failTokenEndpoint({ kind: 'status', status: 503, body: '' });
      const first = await caught(() => a.getToken());
      expect(first).toMatchObject({ transient: true });
      const shared = await caught(() => b.getToken());
      expect(shared).toBeInstanceOf(SharedBackoffError);
      expect(shared).toMatchObject({
        code: 'ERR_SHARED_BACKOFF',
        failedWith: (first as { code: string }).code,
        transient: true,
      });
      expect((shared as SharedBackoffError).retryAfterMs).toBeLessThanOrEqual(200);
      expect(await caught(() => b.getToken())).toBe(shared); // from memory now, no Redis read
      expect(fixture.org.stats.tokenRequests).toBe(1);

      fixture.org.healTokenEndpoint();
      await new Promise((resolve) => setTimeout(resolve, 250));
      const token = await b.getToken();
      expect(await a.getToken()).toBe(token);
      expect(fixture.org.stats.tokenRequests).toBe(2);
    });
    it('is shared only when the token endpoint caused it; `backoff: false` ignores it', async () => {
      const store = new RedisTokenStore({ client });
      const backoff = { initialMs: 200, maxMs: 200 };
      const a = open(fixture.session({ store, backoff }));
      const b = open(fixture.session({ store, backoff }));
      // A connection reset may be this process's own network: the others still try.
      fixture.org.failTokenEndpoint({ kind: 'reset' }, { times: 2 });
      expect(await caught(() => a.getToken())).toMatchObject({ code: 'ERR_TRANSPORT' });
      expect(await caught(() => b.getToken())).toMatchObject({ code: 'ERR_TRANSPORT' });
      expect(fixture.org.stats.tokenRequests).toBe(2);
      // A 503 is shared, but a session that turned backoff off asks anyway.
      fixture.org.failTokenEndpoint({ kind: 'status', status: 503, body: '' }, { times: 1 });
      await new Promise((resolve) => setTimeout(resolve, 250));
      await caught(() => a.getToken());
      const eager = open(fixture.session({ store, backoff: false }));
      expect(typeof (await eager.getToken())).toBe('string');
      expect(fixture.org.stats.tokenRequests).toBe(4);
    });
  });

  describe('across clocks', () => {
    it('a session on an injected clock and one on the real clock share a token (lifetimes are relative)', async () => {
      const store = new RedisTokenStore({ client });
      let fake = 1_000;
      const injected = open(fixture.session({ store, now: () => fake }));
      const real = open(fixture.session({ store }));
      const token = await injected.getToken();
      expect(await real.getToken()).toBe(token);
      fake += 60 * 60_000; // an hour later on the injected clock only
      expect(fixture.org.stats.tokenRequests).toBe(1);
      expect(await real.getToken()).toBe(token);
    });

    it('revoke() while the store is unreachable rejects instead of revoking a possibly stale token', async () => {
      const store = new RedisTokenStore({ client, commandTimeoutMs: 200 });
      const { session } = refreshingOn(store);
      const token = await session.getToken();
      await redis.stop();
      await session.invalidate(token); // notices the outage
      const error = await caught(() => session.revoke());
      expect(error).toMatchObject({ code: 'ERR_TOKEN_STORE', problem: 'unavailable' });
      expect(fixture.org.stats.revocations).toBe(0);
    });
  });

  describe('the rejection guard across a fleet', () => {
    it('4 processes against an org refusing every token for 2 s: about one login per window, fleet-wide', async () => {
      const store = new RedisTokenStore({ client });
      const backoff = { initialMs: 200, maxMs: 1_000 };
      const fleet = Array.from(
        { length: 4 },
        () =>
          authFetch(open(fixture.session({ store, backoff }))) as (
            path: string,
          ) => Promise<Response>,
      );
      for (const sfFetch of fleet) expect((await sfFetch(LIMITS)).status).toBe(200);
      fixture.org.rejectApiTokens('invalid-session');
      fixture.org.resetStats();
      let calls = 0;
      const until_ = Date.now() + 2_000;
      await Promise.all(
        fleet.map(async (sfFetch) => {
          while (Date.now() < until_) {
            const response = await sfFetch(LIMITS);
            await response.body?.cancel();
            expect(response.status).toBe(401);
            calls++;
          }
        }),
      );
      expect(calls).toBeGreaterThan(40);
      // Without sharing the guard each process re-mints on its first sight of each token.
      expect(fixture.org.stats.tokenRequests).toBeLessThanOrEqual(8);
      expect(fixture.org.stats.apiRequests).toBeLessThanOrEqual(2 * calls);
      fixture.org.rejectApiTokens(undefined);
      const healed = Date.now() + 2_000;
      let ok = 0;
      while (ok < fleet.length && Date.now() < healed) {
        ok = 0;
        for (const sfFetch of fleet) if ((await sfFetch(LIMITS)).status === 200) ok++;
        if (ok < fleet.length) await new Promise((r) => setTimeout(r, 50));
      }
      expect(ok).toBe(fleet.length);
    });
  });

  describe('the store itself', () => {
    const key = sessionKey({
      loginUrl: 'https://acme.my.salesforce.com',
      clientId: 'app',
      grant: 'refresh_token',
      user: 'u',
    });
    const token = (accessToken: string, expiresInMs = 60_000) => ({
      accessToken,
      expiresInMs,
      staleInMs: expiresInMs - 10_000,
      refreshInMs: expiresInMs - 20_000,
    });

    it('swapSecret is a compare-and-swap on the presented secret; lock writes are fenced', async () => {
      const store = new RedisTokenStore({ client, encryptionKey: KEY });
      expect(await store.swapSecret(key, 'initial', 'second')).toBe(true); // none stored yet
      expect(await store.swapSecret(key, 'initial', 'forked')).toBe(false); // not current
      const fence = (await store.acquire(key)) as string;
      expect(await store.acquire(key)).toBeUndefined(); // held
      expect(await store.read(key)).toMatchObject({ secret: 'second', locked: true });
      expect(await store.swapSecret(key, 'second', 'third')).toBe(true);
      expect((await store.read(key)).secret).toBe('third');
      expect(await store.renew(key, fence)).toBe(true);
      await store.release(key, fence);
      expect(await store.read(key)).toMatchObject({ locked: false });
      expect(await store.renew(key, fence)).toBe(false);
      // Writes are fenced: a lost lock writes nothing.
      expect(await store.write(key, fence, { token: token('t1') })).toBe(false);
      expect((await store.read(key)).token).toBeUndefined();
    });

    it('renew extends the lock to at least ttlMs and never shortens a longer lease', async () => {
      const store = new RedisTokenStore({ client, lockTtlMs: 1_000 });
      const fence = (await store.acquire(key)) as string;
      const lock = `cirrus-auth:{${key}}:lock`;
      expect(await store.renew(key, fence, 60_000)).toBe(true);
      expect(Number(await client.sendCommand(['PTTL', lock]))).toBeGreaterThan(59_000);
      expect(await store.renew(key, fence)).toBe(true); // held, and left as it was
      expect(Number(await client.sendCommand(['PTTL', lock]))).toBeGreaterThan(59_000);
      expect(await store.renew(key, 'another fence', 120_000)).toBe(false);
      expect(Number(await client.sendCommand(['PTTL', lock]))).toBeLessThanOrEqual(60_000);
    });

    it("keeps lifetimes relative: a reader sees the time left by Redis's clock, whatever its own", async () => {
      const store = new RedisTokenStore({ client });
      const fence = (await store.acquire(key)) as string;
      await store.write(key, fence, { token: token('t1', 60_000) });
      const read = (await store.read(key)).token;
      expect(read?.expiresInMs).toBeGreaterThan(59_000);
      expect(read?.expiresInMs).toBeLessThanOrEqual(60_000);
      expect((read?.expiresInMs ?? 0) - (read?.staleInMs ?? 0)).toBe(10_000);
      expect((read?.expiresInMs ?? 0) - (read?.refreshInMs ?? 0)).toBe(20_000);
    });

    it('a token write with no lifetime left clears the stored token', async () => {
      const store = new RedisTokenStore({ client });
      const fence = (await store.acquire(key)) as string;
      await store.write(key, fence, { token: token('t1') });
      expect((await store.read(key)).token?.accessToken).toBe('t1');
      await store.write(key, fence, { token: token('t2', 0) });
      expect((await store.read(key)).token).toBeUndefined();
    });

    it('a sealed value with a truncated authentication tag is refused, not accepted', async () => {
      const store = new RedisTokenStore({ client, encryptionKey: KEY });
      expect(await store.swapSecret(key, 'x', 'secret-value')).toBe(true);
      const name = `cirrus-auth:{${key}}:refresh`;
      const stored = (await client.sendCommand(['GET', name])) as string;
      const [digest, sealed] = stored.split('|') as [string, string];
      const bytes = Buffer.from(sealed.slice('e1.'.length), 'base64url');
      // iv (12) + a 4-byte tag, no ciphertext: GCM without a minimum tag length would try it.
      const forged = `${digest}|e1.${Buffer.concat([bytes.subarray(0, 12), bytes.subarray(12, 16)]).toString('base64url')}`;
      await client.sendCommand(['SET', name, forged]);
      const error = await caught(() => store.read(key));
      expect(error).toMatchObject({ code: 'ERR_TOKEN_STORE', problem: 'undecryptable' });
    });
  });
});
