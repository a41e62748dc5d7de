import { Redis } from 'ioredis';
import pg from 'pg';
import { createClient } from 'redis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  CachingSession,
  InMemoryTokenStore,
  RefreshTokenAuth,
  SharedBackoffError,
  type SharedToken,
  type SharedTokenStore,
  type TokenSource,
} from '../../src/index.js';
import { PostgresTokenStore } from '../../src/stores/postgres.js';
import { RedisTokenStore } from '../../src/stores/redis.js';
import { useFakeOrg } from '../_org.js';
import { type PostgresServer, postgresTestsRun, startPostgres } from '../_postgres.js';
import { type RedisServer, redisTestsRun, startRedis } from '../_redis.js';
import { caught } from '../_secrets.js';

// One contract, every store: what a SharedTokenStore promises (fencing, compare-and-swap,
// relative lifetimes, shared failures) and the fleet protocol sessions run on top of it. A new
// store is its file plus one line in `stores` below.
const fixture = useFakeOrg();
const KEY = Buffer.alloc(32, 9).toString('base64');

let redis: RedisServer | undefined;
const clientFor = (url: string) => createClient({ url }).on('error', () => {});
let nodeRedis: ReturnType<typeof clientFor> | undefined;
let ioredis: Redis | undefined;
if (redisTestsRun) {
  beforeAll(async () => {
    redis = await startRedis();
    nodeRedis = clientFor(redis.url);
    await nodeRedis.connect();
    ioredis = new Redis(redis.port, '127.0.0.1');
  });
  afterAll(async () => {
    await nodeRedis?.close().catch(() => {});
    ioredis?.disconnect();
    await redis?.stop();
  });
  afterEach(async () => {
    await nodeRedis?.sendCommand(['FLUSHALL']);
  });
}

let postgres: PostgresServer | undefined;
let pgPool: pg.Pool | undefined;
if (postgresTestsRun) {
  beforeAll(async () => {
    postgres = await startPostgres();
    pgPool = new pg.Pool({ connectionString: postgres.url, max: 8 }).on('error', () => {});
    await new PostgresTokenStore({ client: pgPool }).ensureSchema();
  }, 60_000);
  afterAll(async () => {
    await pgPool?.end().catch(() => {});
    await postgres?.destroy();
  });
  afterEach(async () => {
    await pgPool?.query('TRUNCATE cirrus_auth_tokens');
  });
}

interface StoreKind {
  readonly name: string;
  readonly runs: boolean;
  make(options?: { lockTtlMs?: number; encrypted?: boolean }): SharedTokenStore;
}

const stores: StoreKind[] = [
  {
    name: 'InMemoryTokenStore',
    runs: true,
    make: (o = {}) => new InMemoryTokenStore({ lockTtlMs: o.lockTtlMs }),
  },
  {
    name: 'RedisTokenStore (node-redis)',
    runs: redisTestsRun,
    make: (o = {}) =>
      new RedisTokenStore({
        client: nodeRedis as NonNullable<typeof nodeRedis>,
        lockTtlMs: o.lockTtlMs,
        encryptionKey: o.encrypted === false ? undefined : KEY,
      }),
  },
  {
    name: 'RedisTokenStore (ioredis)',
    runs: redisTestsRun,
    make: (o = {}) =>
      new RedisTokenStore({
        client: ioredis as Redis,
        lockTtlMs: o.lockTtlMs,
        encryptionKey: o.encrypted === false ? undefined : KEY,
      }),
  },
  {
    name: 'PostgresTokenStore (pg)',
    runs: postgresTestsRun,
    make: (o = {}) =>
      new PostgresTokenStore({
        client: pgPool as pg.Pool,
        lockTtlMs: o.lockTtlMs,
        encryptionKey: o.encrypted === false ? undefined : KEY,
      }),
  },
];

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const token = (accessToken: string, overrides: Partial<SharedToken> = {}): SharedToken => ({
  accessToken,
  expiresInMs: 60_000,
  staleInMs: 50_000,
  refreshInMs: 40_000,
  ...overrides,
});

describe.each(stores)('$name', (kind) => {
  describe.skipIf(!kind.runs)('the store contract', () => {
    let n = 0;
    const key = () => `contract:${kind.name.length}:${++n}:${Math.random()}`;

    it('an unknown key reads as empty', async () => {
      expect(await kind.make().read(key())).toMatchObject({
        token: undefined,
        secret: undefined,
        locked: false,
        failure: undefined,
      });
    });

    it('the lock is exclusive and fenced: only its holder releases it, writes, renews', async () => {
      const store = kind.make();
      const k = key();
      const fence = (await store.acquire(k)) as string;
      expect(typeof fence).toBe('string');
      expect(await store.acquire(k)).toBeUndefined();
      expect((await store.read(k)).locked).toBe(true);
      await store.release(k, 'not-the-fence');
      expect(await store.acquire(k)).toBeUndefined();
      expect(await store.write(k, 'not-the-fence', { token: token('t') })).toBe(false);
      expect((await store.read(k)).token).toBeUndefined();
      expect(await store.renew(k, 'not-the-fence')).toBe(false);
      expect(await store.renew(k, fence)).toBe(true);
      expect(await store.write(k, fence, { token: token('t') })).toBe(true);
      await store.release(k, fence);
      expect((await store.read(k)).locked).toBe(false);
      const next = await store.acquire(k);
      expect(next).not.toBe(fence);
      expect(await store.write(k, fence, { token: token('stale-holder') })).toBe(false);
      expect((await store.read(k)).token?.accessToken).toBe('t');
    });

    it('a lock nobody renews frees itself after lockTtlMs; renew never shortens it', async () => {
      const store = kind.make({ lockTtlMs: 100 });
      const k = key();
      const fence = (await store.acquire(k)) as string;
      expect(await store.renew(k, fence, 400)).toBe(true);
      expect(await store.renew(k, fence, 10)).toBe(true); // a short renewal keeps the long lease
      await sleep(200);
      expect(await store.acquire(k)).toBeUndefined();
      await sleep(300);
      expect(typeof (await store.acquire(k))).toBe('string');
    });

    it('a token reads back with its lifetimes counting down and its age growing', async () => {
      const store = kind.make();
      const k = key();
      const fence = (await store.acquire(k)) as string;
      const info = {
        instanceUrl: 'https://acme.my.salesforce.com',
        scopes: ['api'],
        signatureVerified: true,
        idToken: 'id.token.sig',
      };
      await store.write(k, fence, {
        token: token('t', { ageMs: 1_000, declaredInMs: 55_000, replacement: true, info }),
      });
      await sleep(60);
      const read = (await store.read(k)).token as SharedToken;
      expect(read.accessToken).toBe('t');
      expect(read.expiresInMs).toBeLessThanOrEqual(60_000 - 40);
      expect(read.expiresInMs).toBeGreaterThan(50_000);
      // The margins written with it hold: stale 10 s before expiry, refresh 20 s before.
      expect(read.expiresInMs - read.staleInMs).toBeCloseTo(10_000, -2);
      expect(read.expiresInMs - read.refreshInMs).toBeCloseTo(20_000, -2);
      expect(read.ageMs).toBeGreaterThanOrEqual(1_040);
      expect(60_000 - read.expiresInMs).toBeCloseTo((read.ageMs as number) - 1_000, -2);
      expect(read.declaredInMs).toBeLessThanOrEqual(55_000 - 40);
      expect(read.replacement).toBe(true);
      expect(read.info).toEqual(info);
    });

    it('a token with no time left clears it; clear drops token, secret and failure', async () => {
      const store = kind.make();
      const k = key();
      const fence = (await store.acquire(k)) as string;
      await store.write(k, fence, { token: token('t') });
      await store.swapSecret(k, 'none', 'secret-1');
      await store.write(k, fence, { token: token('t', { expiresInMs: 0 }) });
      expect((await store.read(k)).token).toBeUndefined();
      await store.write(k, fence, { token: token('t2') });
      await store.write(k, fence, {
        failure: { code: 'ERR_OAUTH', transient: false, failures: 1, retryInMs: 5_000 },
      });
      expect(await store.write(k, fence, { clear: true })).toBe(true);
      expect(await store.read(k)).toMatchObject({
        token: undefined,
        secret: undefined,
        failure: undefined,
      });
    });

    it('a failure opens a window for its time; a token written after it ends it', async () => {
      const store = kind.make();
      const k = key();
      const fence = (await store.acquire(k)) as string;
      await store.write(k, fence, {
        failure: { code: 'ERR_TRANSPORT', transient: true, failures: 3, retryInMs: 300 },
      });
      const open = (await store.read(k)).failure;
      expect(open).toMatchObject({ code: 'ERR_TRANSPORT', transient: true, failures: 3 });
      expect(open?.retryInMs).toBeLessThanOrEqual(300);
      expect(open?.retryInMs).toBeGreaterThan(0);
      await store.write(k, fence, { token: token('t') });
      expect((await store.read(k)).failure).toBeUndefined();
      await store.write(k, fence, {
        failure: { code: 'ERR_OAUTH', transient: false, failures: 1, retryInMs: 50 },
      });
      await sleep(120);
      expect((await store.read(k)).failure).toBeUndefined();
    });

    it('swapSecret is a compare-and-swap on the presented secret, and needs no lock', async () => {
      const store = kind.make();
      const k = key();
      expect(await store.swapSecret(k, 'anything', 'rt-1')).toBe(true); // none stored yet
      expect(await store.swapSecret(k, 'rt-0', 'rt-x')).toBe(false);
      expect((await store.read(k)).secret).toBe('rt-1');
      expect(await store.swapSecret(k, 'rt-1', 'rt-2')).toBe(true);
      expect((await store.read(k)).secret).toBe('rt-2');
      // A retry of a swap that landed (its answer lost) is no conflict; an older one still is.
      expect(await store.swapSecret(k, 'rt-1', 'rt-2')).toBe(true);
      expect(await store.swapSecret(k, 'rt-0', 'rt-1')).toBe(false);
      expect((await store.read(k)).secret).toBe('rt-2');
    });

    it('deleteIf clears the token only while it is still the stale one', async () => {
      const store = kind.make();
      const k = key();
      const fence = (await store.acquire(k)) as string;
      await store.write(k, fence, { token: token('current') });
      expect(await store.deleteIf(k, 'older')).toBe(false);
      expect((await store.read(k)).token?.accessToken).toBe('current');
      expect(await store.deleteIf(k, 'current')).toBe(true);
      expect((await store.read(k)).token).toBeUndefined();
      expect(await store.deleteIf(k, 'current')).toBe(false);
    });

    it('keys are separate entries', async () => {
      const store = kind.make();
      const [a, b] = [key(), key()];
      const fence = (await store.acquire(a)) as string;
      expect(typeof (await store.acquire(b))).toBe('string');
      await store.write(a, fence, { token: token('a') });
      expect((await store.read(b)).token).toBeUndefined();
    });
  });

  describe.skipIf(!kind.runs)('the fleet protocol on it', () => {
    it('20 sessions share one token; 20 invalidations of it make one re-mint', async () => {
      const store = kind.make();
      const sessions = Array.from({ length: 20 }, () => fixture.session({ store }));
      const first = await Promise.all(sessions.map((s) => s.getToken()));
      expect(new Set(first).size).toBe(1);
      expect(fixture.org.stats.tokenRequests).toBe(1);
      await sessions[0]?.invalidate('not-the-token');
      await Promise.all(sessions.map((s) => s.invalidate(first[0] as string)));
      const second = await Promise.all(sessions.map((s) => s.getToken()));
      expect(new Set(second).size).toBe(1);
      expect(second[0]).not.toBe(first[0]);
      expect(fixture.org.stats.tokenRequests).toBe(2);
      await Promise.all(sessions.map((s) => s.close()));
    });

    it('rotation across 5 sessions on one refresh token: 4 rounds, 4 requests, 0 family revocations', async () => {
      const store = kind.make();
      const initial = fixture.org.issueRefreshToken();
      const rotated: string[] = [];
      const sessions = Array.from(
        { length: 5 },
        () =>
          new RefreshTokenAuth({
            clientId: fixture.org.clientId,
            clientSecret: fixture.org.clientSecret,
            refreshToken: initial,
            loginUrl: fixture.org.loginUrl,
            instanceUrl: fixture.org.instanceUrl,
            store,
            onRefreshTokenRotated: (t) => void rotated.push(t),
          }),
      );
      let current = await sessions[0]?.getToken();
      for (let round = 1; round < 4; round++) {
        // A request with it worked (an adapter says so): its rejection is an expiry, not a storm.
        for (const s of sessions) s.confirm(current as string);
        await Promise.all(sessions.map((s) => s.invalidate(current as string)));
        const tokens = await Promise.all(sessions.map((s) => s.getToken()));
        expect(new Set(tokens).size).toBe(1);
        current = tokens[0];
      }
      expect(fixture.org.stats.tokenRequests).toBe(4);
      expect(fixture.org.stats.familyRevocations).toBe(0);
      expect(rotated).toHaveLength(4);
      expect(fixture.org.isValidRefreshToken(rotated.at(-1) as string)).toBe(true);
      await Promise.all(sessions.map((s) => s.close()));
    });

    it('a failed mint opens one window for every session: the others get SharedBackoffError', async () => {
      const store = kind.make();
      const backoff = { initialMs: 200, maxMs: 200 };
      const a = fixture.session({ store, backoff });
      const b = fixture.session({ store, backoff });
      fixture.org.failTokenEndpoint({ kind: 'status', status: 503, body: '' });
      expect(await caught(() => a.getToken())).toMatchObject({ transient: true });
      const shared = await caught(() => b.getToken());
      expect(shared).toBeInstanceOf(SharedBackoffError);
      expect(fixture.org.stats.tokenRequests).toBe(1);
      fixture.org.healTokenEndpoint();
      await sleep(250);
      expect(await b.getToken()).toBe(await a.getToken());
      expect(fixture.org.stats.tokenRequests).toBe(2);
      await Promise.all([a.close(), b.close()]);
    });

    it('getTokenInfo() is the same on every session', async () => {
      const store = kind.make();
      const a = fixture.session({ store });
      const b = fixture.session({ store });
      const info = await a.getTokenInfo();
      expect(info.orgId).toBe('00D000000000001EAA');
      expect(await b.getTokenInfo()).toEqual(info);
      expect(fixture.org.stats.tokenRequests).toBe(1);
      await Promise.all([a.close(), b.close()]);
    });

    it('revoke() on one session revokes the refresh token another rotated', async () => {
      const store = kind.make();
      const initial = fixture.org.issueRefreshToken();
      const make = (onRotated?: (t: string) => void) =>
        new RefreshTokenAuth({
          clientId: fixture.org.clientId,
          clientSecret: fixture.org.clientSecret,
          refreshToken: initial,
          loginUrl: fixture.org.loginUrl,
          instanceUrl: fixture.org.instanceUrl,
          store,
          onRefreshTokenRotated: onRotated,
        });
      const elsewhere: string[] = [];
      const [a, b] = [make(), make((t) => void elsewhere.push(t))];
      const first = await a.getToken();
      await b.invalidate(first);
      await b.getToken();
      const latest = elsewhere.at(-1) as string;
      expect(fixture.org.isValidRefreshToken(latest)).toBe(true);
      await a.revoke();
      expect(fixture.org.isValidRefreshToken(latest)).toBe(false);
      expect(fixture.org.stats.familyRevocations).toBe(0);
      await Promise.all([a.close(), b.close()]);
    });

    it('a TokenSource of your own gets single-flight, compare-and-swap and the fleet for free', async () => {
      const store = kind.make();
      let mints = 0;
      const source: TokenSource = {
        instanceUrl: 'https://acme.my.salesforce.com',
        identity: {
          loginUrl: 'https://vault.example',
          clientId: 'vault',
          grant: 'vault',
          user: 'integration',
        },
        mint: async function mintFromVault() {
          mints++;
          await sleep(20);
          return { accessToken: `vault-token-${mints}` };
        },
      };
      const sessions = Array.from({ length: 10 }, () => new CachingSession(source, { store }));
      const cold = await Promise.all(sessions.flatMap((s) => [s.getToken(), s.getToken()]));
      expect(new Set(cold)).toEqual(new Set(['vault-token-1']));
      expect(mints).toBe(1);
      await Promise.all(sessions.map((s) => s.invalidate('vault-token-1')));
      const warm = await Promise.all(sessions.map((s) => s.getToken()));
      expect(new Set(warm)).toEqual(new Set(['vault-token-2']));
      expect(mints).toBe(2);
      // Without the store, each session is on its own: ten mints.
      const alone = Array.from({ length: 10 }, () => new CachingSession(source));
      await Promise.all(alone.map((s) => s.getToken()));
      expect(mints).toBe(12);
      await Promise.all([...sessions, ...alone].map((s) => s.close()));
    });
  });
});
