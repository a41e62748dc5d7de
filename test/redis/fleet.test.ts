import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { sessionKey } from '../../src/index.js';
import { RedisTokenStore } from '../../src/stores/redis.js';
import { type FakeOrg, startFakeOrg } from '../../src/testing/index.js';
import { type RedisServer, redisTestsRun, startRedis } from '../_redis.js';
import { type FleetConfig, type FleetMember, startFleet, stopFleet, until } from './_fleet.js';

describe.skipIf(!redisTestsRun)('a fleet of processes on one redis-server', () => {
  // Real processes against one real redis-server and one fake org: every claim is a count the
  // fake org made (token requests, family revocations) or the children reported.
  let redis: RedisServer;
  let org: FakeOrg;
  let fleet: FleetMember[] = [];

  beforeAll(async () => {
    [redis, org] = await Promise.all([startRedis(), startFakeOrg({ apiLogLimit: 0 })]);
  });
  afterAll(async () => {
    await stopFleet(fleet);
    await Promise.all([redis?.stop(), org?.close()]);
  });
  afterEach(async () => {
    await stopFleet(fleet);
    fleet = [];
    org.setTokenDelay(0);
    org.resetStats();
    await redis.start().catch(() => {}); // a test that stopped it gets it back
    await redis.command('FLUSHALL');
  });

  function configFor(overrides: Partial<FleetConfig> = {}): FleetConfig {
    return {
      redisUrl: redis.url,
      clientId: org.clientId,
      clientSecret: org.clientSecret,
      loginUrl: org.loginUrl,
      instanceUrl: org.instanceUrl,
      ...overrides,
    };
  }

  const PROCESSES = 8;

  describe.each(['redis', 'ioredis'] as const)('a fleet of %s clients', (client) => {
    it('8 processes x 200 concurrent cold getToken() calls make exactly 1 token request', async () => {
      fleet = await startFleet(PROCESSES, configFor({ client }));
      const answers = await Promise.all(
        fleet.map((member) => member.ask<{ distinct: string[] }>('getTokens', { n: 200 })),
      );
      expect(org.stats.tokenRequests).toBe(1);
      expect(new Set(answers.flatMap((a) => a.distinct)).size).toBe(1);
    });

    it('8 processes under authFetch load through 5 revocations: 1 re-mint each, 0 failed requests', async () => {
      fleet = await startFleet(PROCESSES, configFor({ client }));
      await Promise.all(fleet.map((member) => member.ask('startLoad', { concurrency: 4 })));
      const ok = () => org.stats.apiRequestsByStatus['200'] ?? 0;
      await until(() => ok() >= 200);
      expect(org.stats.tokenRequests).toBe(1);
      for (let revocation = 1; revocation <= 5; revocation++) {
        org.revokeAllTokens();
        const before = ok();
        // Every process must have seen the revocation and gone on with the new token.
        await until(() => ok() >= before + 400);
        expect(org.stats.tokenRequests).toBe(1 + revocation);
      }
      const counts = await Promise.all(
        fleet.map((member) => member.ask<{ ok: number; failed: number }>('stopLoad')),
      );
      expect(counts.reduce((sum, c) => sum + c.failed, 0)).toBe(0);
      expect(counts.every((c) => c.ok > 0)).toBe(true);
      expect(org.stats.apiRequestsByStatus['401'] ?? 0).toBeGreaterThanOrEqual(5);
      expect(org.stats.tokenRequests).toBe(6);
    });

    it('rotation on: 8 processes forcing 100 refreshes: 0 family revocations, each rotated token stored and delivered once', async () => {
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
      const { createClient } = await import('redis');
      const redisClient = await createClient({ url: redis.url }).connect();
      try {
        const store = new RedisTokenStore({ client: redisClient });
        const key = sessionKey({
          loginUrl: org.loginUrl,
          clientId: org.clientId,
          grant: 'refresh_token',
          user: storeKey,
        });
        expect((await store.read(key)).secret).toBe(live[0]);
      } finally {
        await redisClient.close();
      }
    });

    it('SIGKILL of the lock holder mid-mint: the others get a token within lockTtlMs plus one mint', async () => {
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
    });

    it('a token endpoint outage: the fleet backs off as one, fewer token requests than processes', async () => {
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
    });

    it('Redis stopped mid-run: 0 failed requests; restarted: the fleet converges on one token', async () => {
      fleet = await startFleet(PROCESSES, configFor({ client, commandTimeoutMs: 200 }));
      await Promise.all(fleet.map((member) => member.ask('startLoad', { concurrency: 4 })));
      const ok = () => org.stats.apiRequestsByStatus['200'] ?? 0;
      await until(() => ok() >= 200);
      expect(org.stats.tokenRequests).toBe(1);

      await redis.stop();
      // Every process now needs a new token while Redis is gone: each mints its own, once.
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

      await redis.start();
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
      await until(() => ok() >= again + 400);
      expect(org.stats.tokenRequests).toBe(minted + 1);

      const counts = await Promise.all(
        fleet.map((member) => member.ask<{ ok: number; failed: number }>('stopLoad')),
      );
      expect(counts.reduce((sum, c) => sum + c.failed, 0)).toBe(0);
    });
  });
});
