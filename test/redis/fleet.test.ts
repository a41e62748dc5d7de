import pg from 'pg';
import { createClient } from 'redis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type SharedTokenStore, sessionKey } from '../../src/index.js';
import { PostgresTokenStore } from '../../src/stores/postgres.js';
import { RedisTokenStore } from '../../src/stores/redis.js';
import { type FakeOrg, startFakeOrg } from '../../src/testing/index.js';
import { type PostgresServer, postgresTestsRun, startPostgres } from '../_postgres.js';
import { type RedisServer, redisTestsRun, startRedis } from '../_redis.js';
import {
  everyWorkerGoesOn,
  type FleetConfig,
  type FleetMember,
  startFleet,
  stopFleet,
  until,
} from './_fleet.js';

/** What a fleet process's load reports: requests answered 2xx, the rest, and each status/code. */
interface LoadCounts {
  ok: number;
  failed: number;
  statuses: Record<string, number>;
}

/** A store server the fleet runs on: the same tests run over each. */
interface Backend {
  readonly client: 'redis' | 'ioredis' | 'postgres';
  readonly runs: boolean;
  /**
   * Whether `npm test` runs every fleet test on it, or only those where the client library itself
   * shows (cold single-flight, revocations under load, the store killed): ioredis drives the same
   * RedisTokenStore commands as node-redis, and the store contract suite runs both clients. Its
   * other rows run under `npm run soak` (or with CIRRUS_SOAK=1), which keeps `npm test` inside its budget.
   */
  readonly everyTest: boolean;
  /** How many processes the fleet has (PostgreSQL's: 4, as its issue asks; Redis's: 8). */
  readonly processes: number;
  start(): Promise<void>;
  url(): string;
  /** Kills the server (SIGKILL). */
  kill(): Promise<void>;
  /** Starts it again: Redis empty (no persistence), PostgreSQL with its data. */
  restart(): Promise<void>;
  /** Empties it between tests. */
  flush(): Promise<void>;
  /** A store on it, for the test's own reads, and a way to close it. */
  open(): Promise<{ store: SharedTokenStore; close(): Promise<void> }>;
  close(): Promise<void>;
}

function redisBackend(client: 'redis' | 'ioredis'): Backend {
  let redis: RedisServer | undefined;
  return {
    client,
    runs: redisTestsRun,
    everyTest: client === 'redis',
    processes: 8,
    start: async () => {
      redis = await startRedis();
    },
    url: () => (redis as RedisServer).url,
    kill: async () => redis?.stop(),
    restart: async () => redis?.start(),
    flush: async () => void (await redis?.command('FLUSHALL')),
    open: async () => {
      const c = await createClient({ url: (redis as RedisServer).url }).connect();
      return {
        store: new RedisTokenStore({ client: c }),
        close: async () => void (await c.close()),
      };
    },
    close: async () => redis?.stop(),
  };
}

function postgresBackend(): Backend {
  let server: PostgresServer | undefined;
  const backend: Backend = {
    client: 'postgres',
    runs: postgresTestsRun,
    everyTest: true,
    processes: 4,
    start: async () => {
      server = await startPostgres();
      const { store, close } = await backend.open();
      await (store as PostgresTokenStore).ensureSchema();
      await close();
    },
    url: () => (server as PostgresServer).url,
    kill: async () => server?.stop(),
    restart: async () => server?.start(),
    flush: async () => {
      const pool = new pg.Pool({ connectionString: (server as PostgresServer).url });
      await pool.query('TRUNCATE cirrus_auth_tokens').finally(() => pool.end());
    },
    open: async () => {
      const pool = new pg.Pool({ connectionString: (server as PostgresServer).url }).on(
        'error',
        () => {},
      );
      return { store: new PostgresTokenStore({ client: pool }), close: () => pool.end() };
    },
    close: async () => server?.destroy(),
  };
  return backend;
}

const backends = [redisBackend('redis'), redisBackend('ioredis'), postgresBackend()];

for (const backend of backends) {
  describe.skipIf(!backend.runs)(`a fleet of processes on ${backend.client}`, () =>
    fleetTests(backend),
  );
}

// `npm run soak` runs this file with every row (npm names the script it runs in the environment).
const soak = process.env.CIRRUS_SOAK === '1' || process.env.npm_lifecycle_event === 'soak';

function fleetTests(backend: Backend) {
  const { client } = backend;
  /** A test of the fleet protocol, not of the client: on every backend only under soak. */
  const protocolTest = it.skipIf(!backend.everyTest && !soak);
  // Real processes against one real store server and one fake org: every claim is a count the
  // fake org made (token requests, family revocations) or the children reported.
  let org: FakeOrg;
  let fleet: FleetMember[] = [];

  beforeAll(async () => {
    [, org] = await Promise.all([backend.start(), startFakeOrg({ apiLogLimit: 0 })]);
  }, 60_000);
  afterAll(async () => {
    await stopFleet(fleet);
    await Promise.all([backend.close(), org?.close()]);
  });
  afterEach(async () => {
    await stopFleet(fleet);
    fleet = [];
    org.setTokenDelay(0);
    org.healTokenEndpoint();
    org.resetStats();
    await backend.restart().catch(() => {}); // a test that stopped it gets it back
    await backend.flush();
  });

  function configFor(overrides: Partial<FleetConfig> = {}): FleetConfig {
    return {
      storeUrl: backend.url(),
      client,
      clientId: org.clientId,
      clientSecret: org.clientSecret,
      loginUrl: org.loginUrl,
      instanceUrl: org.instanceUrl,
      ...overrides,
    };
  }

  const PROCESSES = backend.processes;
  it(`${PROCESSES} processes x 200 concurrent cold getToken() calls make exactly 1 token request`, async () => {
    fleet = await startFleet(PROCESSES, configFor({ client }));
    const answers = await Promise.all(
      fleet.map((member) => member.ask<{ distinct: string[] }>('getTokens', { n: 200 })),
    );
    expect(org.stats.tokenRequests).toBe(1);
    expect(new Set(answers.flatMap((a) => a.distinct)).size).toBe(1);
  });

  it(`${PROCESSES} processes under authFetch load through 5 revocations: 1 re-mint each, 0 failed requests`, async () => {
    fleet = await startFleet(PROCESSES, configFor({ client }));
    await Promise.all(fleet.map((member) => member.ask('startLoad', { concurrency: 4 })));
    const ok = () => org.stats.apiRequestsByStatus['200'] ?? 0;
    await until(() => ok() >= 200);
    expect(org.stats.tokenRequests).toBe(1);
    for (let revocation = 1; revocation <= 5; revocation++) {
      org.revokeAllTokens();
      const before = ok();
      // Every process must have seen the revocation and gone on with the new token.
      await everyWorkerGoesOn(fleet);
      await until(() => ok() >= before + 400);
      expect(org.stats.tokenRequests).toBe(1 + revocation);
    }
    const counts = await Promise.all(fleet.map((member) => member.ask<LoadCounts>('stopLoad')));
    // A failure names what each failing process saw (statuses, error codes), not just a count.
    expect(counts.filter((c) => c.failed > 0).map((c) => c.statuses)).toEqual([]);
    expect(counts.every((c) => c.ok > 0)).toBe(true);
    expect(org.stats.apiRequestsByStatus['401'] ?? 0).toBeGreaterThanOrEqual(5);
    expect(org.stats.tokenRequests).toBe(6);
  });

  protocolTest(
    `rotation on: ${PROCESSES} processes forcing 100 refreshes: 0 family revocations, each rotated token stored and delivered once`,
    async () => {
      const storeKey = 'integration@acme.example';
      fleet = await startFleet(
        PROCESSES,
        configFor({
          client,
          grant: 'refresh_token',
          refreshToken: org.issueRefreshToken(),
          storeKey,
        }),
      );
      let seed = 7;
      const random = () => {
        seed = (seed * 48_271) % 2_147_483_647;
        return seed / 2_147_483_647;
      };
      const refreshes = () => org.stats.tokenRequestsByGrant.refresh_token ?? 0;
      while (refreshes() < 100) {
        // A random subset of processes, each forcing a refresh with 1-20 concurrent callers; never
        // more processes than refreshes left, so the total lands on exactly 100.
        const room = 100 - refreshes();
        const chosen = fleet.filter(() => random() < 0.5).slice(0, room);
        const round =
          chosen.length > 0 ? chosen : [fleet[Math.floor(random() * PROCESSES)] as FleetMember];
        const answers = await Promise.all(
          round.map((member) =>
            member.ask<{ distinct: string[]; replaced: boolean }>('refresh', {
              n: 1 + Math.floor(random() * 20),
            }),
          ),
        );
        for (const answer of answers) {
          expect(answer.distinct).toHaveLength(1);
          expect(answer.replaced).toBe(true);
        }
      }
      expect(refreshes()).toBe(100);
      expect(org.stats.familyRevocations).toBe(0);
      const rotated = fleet.flatMap((member) =>
        member.events.flatMap((event) => (event.type === 'rotated' ? [event.token] : [])),
      );
      expect(rotated).toHaveLength(100);
      expect(new Set(rotated).size).toBe(100);
      const live = rotated.filter((token) => org.isValidRefreshToken(token));
      expect(live).toHaveLength(1);
      // The store holds the live one.
      const { store, close } = await backend.open();
      try {
        const key = sessionKey({
          loginUrl: org.loginUrl,
          clientId: org.clientId,
          grant: 'refresh_token',
          user: storeKey,
        });
        expect((await store.read(key)).secret).toBe(live[0]);
      } finally {
        await close();
      }
    },
  );

  protocolTest(
    'SIGKILL of the lock holder mid-mint: the others get a token within lockTtlMs plus one mint',
    async () => {
      const lockTtlMs = 1_000;
      fleet = await startFleet(PROCESSES, configFor({ client, lockTtlMs }));
      org.setTokenDelay(60_000); // the first token request hangs
      const answers = fleet.map((member) =>
        member.ask<{ distinct: string[] }>('getTokens', { n: 20 }).then(
          (result) => ({ member, result }),
          (error: unknown) => ({ member, error }),
        ),
      );
      // The holder's request has reached the org (and hangs there).
      await until(() => org.stats.tokenRequests === 1);
      const holder = fleet.find((m) => m.events.some((e) => e.type === 'mintStart')) as FleetMember;
      org.setTokenDelay(0);
      const killedAt = performance.now();
      holder.child.kill('SIGKILL');
      const survivors = (await Promise.all(answers)).filter((a) => a.member !== holder);
      const elapsedMs = performance.now() - killedAt;
      expect(survivors).toHaveLength(PROCESSES - 1);
      const tokens = new Set(survivors.flatMap((a) => ('result' in a ? a.result.distinct : [])));
      expect(tokens.size).toBe(1);
      expect(org.stats.tokenRequests).toBe(2); // the holder's, lost with it, and one more
      const minters = fleet.filter((m) => m.events.some((e) => e.type === 'mintStart'));
      expect(minters).toHaveLength(2);
      // A generous bound: the lock's TTL, one mint on loopback, and the waiters' 50 ms poll.
      expect(elapsedMs).toBeLessThan(lockTtlMs + 2_000);
    },
  );

  protocolTest(
    'a token endpoint outage: the fleet backs off as one, fewer token requests than processes',
    async () => {
      fleet = await startFleet(PROCESSES, configFor({ client }));
      await Promise.all(fleet.map((member) => member.ask('getTokens', { n: 10 })));
      org.failTokenEndpoint({ kind: 'status', status: 503, body: '' });
      org.revokeAllTokens();
      org.resetStats();
      await Promise.all(fleet.map((member) => member.ask('startLoad', { concurrency: 2 })));
      await new Promise((resolve) => setTimeout(resolve, 2_500));
      const duringOutage = org.stats.tokenRequests;
      org.healTokenEndpoint();
      const ok = () => org.stats.apiRequestsByStatus['200'] ?? 0;
      await until(() => ok() >= 200, 15_000);
      await Promise.all(fleet.map((member) => member.ask('stopLoad')));
      // Backing off process by process, each would have asked at least once (8) and again per window.
      expect(duringOutage).toBeGreaterThanOrEqual(1);
      expect(duringOutage).toBeLessThan(PROCESSES);
    },
  );

  it('the store killed mid-run: 0 failed requests; restarted: the fleet converges on one token', async () => {
    fleet = await startFleet(PROCESSES, configFor({ client, commandTimeoutMs: 200 }));
    await Promise.all(fleet.map((member) => member.ask('startLoad', { concurrency: 4 })));
    const ok = () => org.stats.apiRequestsByStatus['200'] ?? 0;
    await until(() => ok() >= 200);
    expect(org.stats.tokenRequests).toBe(1);

    await backend.kill();
    // Every process now needs a new token while the store is gone: each mints its own, once.
    org.revokeAllTokens();
    await until(() =>
      fleet.every((m) => m.events.some((e) => e.type === 'store' && e.outcome === 'unavailable')),
    ).catch((error) => {
      console.log(
        fleet.map((m) => JSON.stringify(m.events)),
        org.stats,
      );
      throw error;
    });
    const before = ok();
    await until(() => ok() >= before + 400);
    const minted = org.stats.tokenRequests;
    expect(minted).toBeGreaterThan(1);
    expect(minted).toBeLessThanOrEqual(1 + PROCESSES);

    await backend.restart();
    await until(() =>
      fleet.every((m) => m.events.some((e) => e.type === 'store' && e.outcome === 'rejoined')),
    );
    await until(async () => {
      const current = await Promise.all(fleet.map((m) => m.ask<{ token: string }>('current')));
      return new Set(current.map((c) => c.token)).size === 1;
    });
    // Converging took no token request: the first process back offered its token to the rest.
    expect(org.stats.tokenRequests).toBe(minted);
    // And the fleet is one again: a revocation now costs one re-mint, not one per process.
    org.revokeAllTokens();
    const again = ok();
    await everyWorkerGoesOn(fleet);
    await until(() => ok() >= again + 400);
    expect(org.stats.tokenRequests).toBe(minted + 1);

    const counts = await Promise.all(fleet.map((member) => member.ask<LoadCounts>('stopLoad')));
    expect(counts.filter((c) => c.failed > 0).map((c) => c.statuses)).toEqual([]);
  });
}
