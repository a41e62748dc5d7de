import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type FakeOrg, startFakeOrg } from '../../src/testing/index.js';
import { type RedisServer, startRedis } from '../_redis.js';
import { type FleetConfig, type FleetMember, startFleet, stopFleet, until } from './_fleet.js';

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
});
