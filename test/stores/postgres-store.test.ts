import { inspect } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, SessionPool, TokenStoreError } from '../../src/index.js';
import { PostgresTokenStore } from '../../src/stores/postgres.js';
import { useFakeOrg } from '../_org.js';
import { type PostgresServer, postgresTestsRun, startPostgres } from '../_postgres.js';
import { caught } from '../_secrets.js';

// What the store contract suite does not cover: migrations, what is at rest, outages, the
// credentials table behind a SessionPool. Real PostgreSQL on loopback.
const fixture = useFakeOrg();
const KEY = Buffer.alloc(32, 7).toString('base64');

describe('PostgresTokenStore: construction', () => {
  const client = { query: async () => ({ rows: [], rowCount: 0 }) };
  it('bad options are a ConfigError naming the option', async () => {
    expect(() => new PostgresTokenStore({ client: {} as never })).toThrow(ConfigError);
    for (const table of ['x; DROP TABLE y', 'Tokens', 'a.b.c', '', '1abc']) {
      expect(await caught(() => new PostgresTokenStore({ client, table }))).toMatchObject({
        option: 'table',
      });
    }
    expect(() => new PostgresTokenStore({ client, encryptionKey: 'short' })).toThrow(ConfigError);
    expect(() => new PostgresTokenStore({ client, queryTimeoutMs: 0 })).toThrow(ConfigError);
    expect(() => new PostgresTokenStore({ client, table: 'auth.tokens' })).not.toThrow();
  });

  it('never shows the encryption key', () => {
    const store = new PostgresTokenStore({ client, encryptionKey: KEY });
    for (const shown of [inspect(store, { showHidden: true }), JSON.stringify(store)]) {
      expect(shown).not.toContain(KEY);
      expect(shown).toContain('cirrus_auth_tokens');
    }
  });

  it('an unreachable database is a transient TokenStoreError within queryTimeoutMs, never a hang', async () => {
    const hanging = { query: () => new Promise<never>(() => {}) };
    const store = new PostgresTokenStore({ client: hanging, queryTimeoutMs: 50 });
    const error = await caught(() => store.read('k'));
    expect(error).toBeInstanceOf(TokenStoreError);
    expect(error).toMatchObject({ transient: true, problem: 'unavailable' });
    const failing = {
      query: async () => {
        throw Object.assign(new Error('duplicate key value violates "sealed-token-text"'), {
          code: '23505',
        });
      },
    };
    const quoted = await caught(() => new PostgresTokenStore({ client: failing }).read('k'));
    expect(String((quoted as Error & { cause: Error }).cause.message)).not.toContain(
      'sealed-token-text',
    );
  });
});

describe.skipIf(!postgresTestsRun)('PostgresTokenStore on PostgreSQL', () => {
  let server: PostgresServer;
  let pool: pg.Pool;
  beforeAll(async () => {
    server = await startPostgres();
    pool = new pg.Pool({ connectionString: server.url, max: 12 }).on('error', () => {});
  }, 60_000);
  afterAll(async () => {
    await pool?.end().catch(() => {});
    await server?.destroy();
  });

  it('ensureSchema() run by 10 processes at once: no error, one schema', async () => {
    await pool.query('CREATE SCHEMA auth');
    const stores = Array.from(
      { length: 10 },
      () =>
        new PostgresTokenStore({
          client: pool,
          table: 'auth.tokens',
          credentialsTable: 'auth.tenants',
        }),
    );
    await Promise.all(stores.map((s) => s.ensureSchema()));
    await stores[0]?.ensureSchema();
    const { rows } = await pool.query(
      "SELECT table_name FROM information_schema.tables WHERE table_schema = 'auth' ORDER BY 1",
    );
    expect(rows.map((r) => r.table_name)).toEqual(['tenants', 'tokens']);
  });

  it('with encryptionKey, no access token, refresh token or credential is readable at rest', async () => {
    const store = new PostgresTokenStore({ client: pool, encryptionKey: KEY });
    await store.ensureSchema();
    const { org } = fixture;
    const refreshToken = org.issueRefreshToken();
    await store.credentials.put('acme', {
      grant: 'refresh-token',
      options: {
        clientId: org.clientId,
        clientSecret: org.clientSecret,
        refreshToken,
        instanceUrl: org.instanceUrl,
      },
    });
    const sessions = new SessionPool({
      loginUrl: org.loginUrl,
      store,
      resolve: store.credentialsResolver(),
    });
    const session = await sessions.session('acme');
    const first = await session.getToken();
    session.confirm(first);
    await session.invalidate(first);
    const second = await session.getToken();
    const info = await session.getTokenInfo();
    const dump = JSON.stringify(
      (await pool.query('SELECT * FROM cirrus_auth_tokens')).rows.concat(
        (await pool.query('SELECT * FROM cirrus_auth_credentials')).rows,
      ),
    );
    for (const secret of [first, second, refreshToken, org.clientSecret, info.userId as string]) {
      expect(dump).not.toContain(secret);
    }
    expect(dump).not.toContain('/id/');
    // Unknown tenants are unknown; a tenant's row can go.
    expect(await caught(() => sessions.session('nobody'))).toMatchObject({
      code: 'ERR_UNKNOWN_TENANT',
    });
    expect(await store.credentials.delete('acme')).toBe(true);
    expect(await store.credentials.get('acme')).toBeUndefined();
    await sessions.close();
    // Another key cannot open what this one sealed: refused, never guessed at.
    const other = new PostgresTokenStore({ client: pool, encryptionKey: Buffer.alloc(32, 1) });
    const key = (await pool.query('SELECT key FROM cirrus_auth_tokens WHERE secret IS NOT NULL'))
      .rows[0]?.key;
    expect(await caught(() => other.read(key))).toMatchObject({ problem: 'undecryptable' });
    expect(org.stats.familyRevocations).toBe(0);
  });
});
