import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { sessionKey } from '../../src/index.js';
import { PostgresTokenStore } from '../../src/stores/postgres.js';
import { type FakeOrg, startFakeOrg } from '../../src/testing/index.js';
import { type PostgresServer, postgresTestsRun, startPostgres } from '../_postgres.js';
import { type FleetConfig, type FleetMember, startFleet, stopFleet, until } from './_fleet.js';

// Refresh tokens that survive everything: a fleet on PostgreSQL, every process SIGKILLed and
// PostgreSQL itself SIGKILLed and restarted (crash recovery from its WAL), mid-rotation. The
// counts are the fake org's: family revocations (a rotated-away token presented again) and
// whether the refresh token the store holds is the one the org still accepts.
describe.skipIf(!postgresTestsRun)('refresh tokens on PostgreSQL survive every crash', () => {
  let server: PostgresServer;
  let org: FakeOrg;
  let fleet: FleetMember[] = [];
  const storeKey = 'integration@acme.example';

  beforeAll(async () => {
    [server, org] = await Promise.all([startPostgres(), startFakeOrg({ apiLogLimit: 0 })]);
    await withStore((store) => store.ensureSchema());
  }, 60_000);
  afterAll(async () => {
    await stopFleet(fleet);
    await Promise.all([server?.destroy(), org?.close()]);
  });
  afterEach(async () => {
    await stopFleet(fleet);
    fleet = [];
    org.setTokenDelay(0);
  });

  async function withStore<T>(fn: (store: PostgresTokenStore) => Promise<T>): Promise<T> {
    const pool = new pg.Pool({ connectionString: server.url }).on('error', () => {});
    try {
      return await fn(new PostgresTokenStore({ client: pool }));
    } finally {
      await pool.end();
    }
  }

  const key = () =>
    sessionKey({
      loginUrl: org.loginUrl,
      clientId: org.clientId,
      grant: 'refresh_token',
      user: storeKey,
    });
  const storedSecret = () => withStore(async (store) => (await store.read(key())).secret);

  function configFor(refreshToken: string): FleetConfig {
    return {
      storeUrl: server.url,
      client: 'postgres',
      grant: 'refresh_token',
      refreshToken,
      storeKey,
      lockTtlMs: 600,
      commandTimeoutMs: 300,
      clientId: org.clientId,
      clientSecret: org.clientSecret,
      loginUrl: org.loginUrl,
      instanceUrl: org.instanceUrl,
    };
  }

  const refreshes = () => org.stats.tokenRequestsByGrant.refresh_token ?? 0;

  /** Every member rotates the refresh token once, one after another. */
  async function rotateThroughAll(members: FleetMember[]): Promise<void> {
    for (const member of members) {
      expect(await member.ask('rotate')).toEqual({ rotated: 1 });
    }
  }

  it('PostgreSQL killed while a rotation is in flight, every process killed, all restarted: 0 family revocations, no lost token', async () => {
    const initial = org.issueRefreshToken();
    fleet = await startFleet(4, configFor(initial));
    await rotateThroughAll(fleet);
    expect(refreshes()).toBe(4);
    expect(org.isValidRefreshToken((await storedSecret()) as string)).toBe(true);

    // 1. PostgreSQL dies while a refresh is at the org: the holder gets the rotated token back
    // with nowhere to commit it, keeps its lease (no one else presents the old token meanwhile)
    // and commits it once PostgreSQL is back from crash recovery.
    org.setTokenDelay(400);
    const inFlight = fleet[0]?.ask('rotate');
    await until(() => refreshes() === 5);
    await server.stop();
    expect(await inFlight).toEqual({ rotated: 1 });
    org.setTokenDelay(0);
    // While PostgreSQL is down, the others refuse to present a refresh token they cannot check.
    const meanwhile = await fleet[1]?.ask('rotate').then(
      () => 'refreshed',
      (error: { code?: string }) => error.code,
    );
    expect(meanwhile).toBe('ERR_TOKEN_STORE');
    await server.start();
    await until(async () => {
      const secret = await storedSecret().catch(() => undefined);
      return secret !== undefined && org.isValidRefreshToken(secret);
    });
    expect(refreshes()).toBe(5);

    // 2. Every process and PostgreSQL SIGKILLed at once, between rotations; PostgreSQL restarts
    // from its WAL and a new fleet starts with the refresh token it was first configured with
    // (rotated away long ago): it presents the stored one instead.
    await Promise.all(
      fleet.map(async (member) => {
        const exited = new Promise((resolve) => member.child.once('exit', resolve));
        member.child.kill('SIGKILL');
        await exited;
      }),
    );
    await server.stop();
    await server.start();
    fleet = await startFleet(4, configFor(initial));
    await rotateThroughAll(fleet);
    await rotateThroughAll(fleet);
    expect(refreshes()).toBe(13);
    expect(org.stats.familyRevocations).toBe(0);
    expect(org.isValidRefreshToken(initial)).toBe(false);
    expect(org.isValidRefreshToken((await storedSecret()) as string)).toBe(true);
  });
});
