import { randomUUID } from 'node:crypto';
import { ConfigError } from '../errors.js';
import { MAX_TIMER_MS, optionsObject, positiveMs } from '../internal/options.js';
import type { TenantConfig } from '../pool.js';
import type { SharedSlot, SharedTokenStore, SharedWrite } from '../session/shared-store.js';
import { bounded, decodeFailure, encodeFailure, StoreCodec } from './codec.js';

/** Default `lockTtlMs` of {@link PostgresTokenStore}, as for the Redis store. */
export const POSTGRES_LOCK_TTL_MS = 10_000;

/** Default `queryTimeoutMs`: a query slower than this counts as PostgreSQL being down. */
export const DEFAULT_QUERY_TIMEOUT_MS = 2_000;

/** Default `table`. */
export const DEFAULT_TOKEN_TABLE = 'cirrus_auth_tokens';

/** Default `credentialsTable`. */
export const DEFAULT_CREDENTIALS_TABLE = 'cirrus_auth_credentials';

/**
 * The part of a `pg` client the store uses: `query(text, values)`. A `pg.Pool` is what you want
 * (one connection per concurrent query, reconnecting after an outage); a `pg.Client` works too.
 * Listen for the pool's `error` event yourself: `pg` emits one when an idle connection drops, and
 * an unhandled one ends the process. The store never ends the pool.
 */
export interface PostgresQueryable {
  query(
    text: string,
    values?: unknown[],
  ): Promise<{ rows: Record<string, unknown>[]; rowCount: number | null }>;
}

/** Options of {@link PostgresTokenStore}. */
export interface PostgresTokenStoreOptions {
  /** A `pg.Pool` (or `pg.Client`), connected to the database that holds the tables. */
  client: PostgresQueryable;
  /**
   * The table of session entries: a name, optionally schema-qualified (`auth.tokens`), lower case.
   * Create it with {@link PostgresTokenStore.ensureSchema}.
   * @default DEFAULT_TOKEN_TABLE (`cirrus_auth_tokens`)
   */
  table?: string | undefined;
  /**
   * The table of tenants' credentials for a SessionPool ({@link PostgresTokenStore.credentials}).
   * @default DEFAULT_CREDENTIALS_TABLE (`cirrus_auth_credentials`)
   */
  credentialsTable?: string | undefined;
  /**
   * How long the mint lock lives unless its holder renews it, as for the Redis store.
   * @default POSTGRES_LOCK_TTL_MS (10 seconds)
   */
  lockTtlMs?: number | undefined;
  /**
   * 32 bytes (a `Uint8Array`, or a base64 or hex string: `openssl rand -base64 32`). With it,
   * access tokens, refresh tokens and stored credentials are AES-256-GCM encrypted, each bound to
   * its row; without it they are stored in clear, readable by anyone with the database, its
   * backups or its WAL.
   * @default none
   */
  encryptionKey?: string | Uint8Array | undefined;
  /**
   * A query slower than this rejects, and the session falls back to minting in process.
   * @default DEFAULT_QUERY_TIMEOUT_MS (2 seconds)
   */
  queryTimeoutMs?: number | undefined;
}

/**
 * A tenant's credentials as kept in the credentials table: what a SessionPool's `resolve`
 * answers (a grant and its options, JSON-serialisable: no functions such as a rotation handler).
 */
export type StoredCredentials = TenantConfig;

/** The credentials table of a {@link PostgresTokenStore}: one sealed row per tenant. */
export interface CredentialsTable {
  /** Writes (or replaces) `tenant`'s credentials. */
  put(tenant: string, credentials: StoredCredentials): Promise<void>;
  /** `tenant`'s credentials, or `undefined` for an unknown tenant. */
  get(tenant: string): Promise<StoredCredentials | undefined>;
  /** Forgets `tenant`'s credentials; answers whether there were any. */
  delete(tenant: string): Promise<boolean>;
}

const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}(\.[a-z_][a-z0-9_]{0,62})?$/;

/**
 * A durable token store in PostgreSQL, shared by every process and machine of a fleet: the same
 * protocol as the Redis store (one token request per fleet, compare-and-swap invalidation, a
 * rotating refresh token never presented twice), and what is in it survives restarts of every
 * process and of PostgreSQL itself. A rotated refresh token is committed (one autocommit
 * statement, so durable when it returns) before the session hands out the access token it came
 * with.
 *
 * The mint lock is a lease on the entry's row: a fence and an expiry, taken and checked by
 * single-statement compare-and-swap (`UPDATE … WHERE lock_fence = $fence AND lock_expires_at >
 * now`). It is neither `SELECT … FOR UPDATE SKIP LOCKED` nor an advisory lock, because both live
 * only as long as a transaction or a connection: the lock must outlive a holder cut off from the
 * database mid-refresh (until its lease ends), and must not pin a pooled connection for the length
 * of a token request. Times are the database's (`clock_timestamp()`), so processes whose clocks
 * differ agree. {@link ensureSchema} serialises concurrent migrations with an advisory lock.
 *
 * @example
 * ```ts
 * import pg from 'pg';
 * import { RefreshTokenAuth } from 'cirrus-auth';
 * import { PostgresTokenStore } from 'cirrus-auth/postgres';
 *
 * const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL }).on('error', log);
 * const store = new PostgresTokenStore({ client: pool, encryptionKey: process.env.TOKEN_STORE_KEY });
 * await store.ensureSchema();
 * const session = new RefreshTokenAuth({ ...options, store });
 * ```
 */
export class PostgresTokenStore implements SharedTokenStore {
  readonly lockTtlMs: number;
  readonly #client: PostgresQueryable;
  readonly #table: string;
  readonly #credentials: string;
  readonly #codec: StoreCodec;
  readonly #timeoutMs: number;

  constructor(options: PostgresTokenStoreOptions) {
    const o = optionsObject(options);
    const client = o.client as unknown;
    if (
      typeof client !== 'object' ||
      client === null ||
      typeof (client as PostgresQueryable).query !== 'function'
    ) {
      throw new ConfigError('client', 'must be a pg Pool or Client (with query())');
    }
    this.#client = client as PostgresQueryable;
    this.#table = identifier('table', o.table === undefined ? DEFAULT_TOKEN_TABLE : o.table);
    this.#credentials = identifier(
      'credentialsTable',
      o.credentialsTable === undefined ? DEFAULT_CREDENTIALS_TABLE : o.credentialsTable,
    );
    this.lockTtlMs = positiveMs('lockTtlMs', o.lockTtlMs, POSTGRES_LOCK_TTL_MS, MAX_TIMER_MS);
    this.#timeoutMs = positiveMs(
      'queryTimeoutMs',
      o.queryTimeoutMs,
      DEFAULT_QUERY_TIMEOUT_MS,
      MAX_TIMER_MS,
    );
    this.#codec = new StoreCodec(o.encryptionKey);
  }

  /**
   * Creates the tables if they are missing. Safe to run from every process at start-up: an
   * advisory transaction lock makes concurrent runs take turns.
   */
  async ensureSchema(): Promise<void> {
    const t = this.#table;
    const c = this.#credentials;
    // One simple query: its statements run in one implicit transaction, which holds the lock.
    await this.#query(`SELECT pg_advisory_xact_lock(hashtext('cirrus-auth schema'));
CREATE TABLE IF NOT EXISTS ${t} (
  key text PRIMARY KEY,
  token text, token_expires_at timestamptz,
  secret text,
  lock_fence text, lock_expires_at timestamptz,
  failure text, failure_expires_at timestamptz
);
CREATE TABLE IF NOT EXISTS ${c} (
  tenant text PRIMARY KEY,
  sealed text NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
);`);
  }

  async read(key: string): Promise<SharedSlot> {
    const { rows } = await this.#query(
      `SELECT token, secret, failure,
  (extract(epoch FROM token_expires_at - clock_timestamp()) * 1000)::float8 AS token_ms,
  (lock_fence IS NOT NULL AND lock_expires_at > clock_timestamp()) AS locked,
  (extract(epoch FROM failure_expires_at - clock_timestamp()) * 1000)::float8 AS failure_ms
FROM ${this.#table} WHERE key = $1`,
      [key],
    );
    const row = rows[0];
    if (row === undefined) {
      return {
        token: undefined,
        tokenUnreadable: false,
        secret: undefined,
        locked: false,
        failure: undefined,
      };
    }
    const tokenMs = Number(row.token_ms);
    const live = typeof row.token === 'string' && tokenMs > 0;
    const token = live
      ? this.#codec.openToken(`${key}:token`, row.token as string, tokenMs)
      : undefined;
    const failureMs = Number(row.failure_ms);
    return {
      token,
      tokenUnreadable: live && token === undefined,
      // Unlike an access token, a refresh token that does not open is refused, never replaced.
      secret:
        typeof row.secret === 'string'
          ? this.#codec.openSecret(`${key}:refresh`, row.secret)
          : undefined,
      locked: row.locked === true,
      failure:
        typeof row.failure === 'string' && failureMs > 0
          ? decodeFailure(row.failure, failureMs)
          : undefined,
    };
  }

  async acquire(key: string): Promise<string | undefined> {
    const fence = randomUUID();
    const { rows } = await this.#query(
      `INSERT INTO ${this.#table} AS t (key, lock_fence, lock_expires_at)
VALUES ($1, $2, clock_timestamp() + $3 * interval '1 millisecond')
ON CONFLICT (key) DO UPDATE SET lock_fence = EXCLUDED.lock_fence, lock_expires_at = EXCLUDED.lock_expires_at
WHERE t.lock_fence IS NULL OR t.lock_expires_at <= clock_timestamp()
RETURNING lock_fence`,
      [key, fence, this.lockTtlMs],
    );
    return rows[0]?.lock_fence === fence ? fence : undefined;
  }

  async renew(key: string, fence: string, ttlMs = this.lockTtlMs): Promise<boolean> {
    // Never shortens: the periodic renewals must not cut the longer lease taken before a secret is presented.
    const { rowCount } = await this.#query(
      `UPDATE ${this.#table}
SET lock_expires_at = greatest(lock_expires_at, clock_timestamp() + $3 * interval '1 millisecond')
WHERE key = $1 AND lock_fence = $2 AND lock_expires_at > clock_timestamp()`,
      [key, fence, Math.max(1, Math.ceil(ttlMs))],
    );
    return rowCount === 1;
  }

  async release(key: string, fence: string): Promise<void> {
    await this.#query(
      `UPDATE ${this.#table} SET lock_fence = NULL, lock_expires_at = NULL
WHERE key = $1 AND lock_fence = $2`,
      [key, fence],
    );
  }

  async write(key: string, fence: string, entry: SharedWrite): Promise<boolean> {
    const ttlMs = Math.floor(entry.token?.expiresInMs ?? 0);
    // What happens to the token: kept, replaced, deleted (no time left), or cleared with the rest.
    let mode = 'keep';
    if (entry.clear) mode = 'clear';
    else if (entry.token !== undefined) mode = ttlMs > 0 ? 'set' : 'delete';
    const token =
      mode === 'set' ? this.#codec.sealToken(`${key}:token`, entry.token as never) : null;
    const failure =
      entry.failure === undefined || entry.clear ? null : encodeFailure(entry.failure);
    const failureMs = Math.max(1, Math.floor(entry.failure?.retryInMs ?? 1));
    const { rowCount } = await this.#query(
      `UPDATE ${this.#table} SET
  token = CASE $3 WHEN 'keep' THEN token WHEN 'set' THEN $4 ELSE NULL END,
  token_expires_at = CASE $3 WHEN 'keep' THEN token_expires_at
    WHEN 'set' THEN clock_timestamp() + $5 * interval '1 millisecond' ELSE NULL END,
  secret = CASE $3 WHEN 'clear' THEN NULL ELSE secret END,
  failure = CASE WHEN $6::text IS NOT NULL THEN $6 WHEN $3 = 'keep' THEN failure ELSE NULL END,
  failure_expires_at = CASE WHEN $6::text IS NOT NULL THEN clock_timestamp() + $7 * interval '1 millisecond'
    WHEN $3 = 'keep' THEN failure_expires_at ELSE NULL END
WHERE key = $1 AND lock_fence = $2 AND lock_expires_at > clock_timestamp()`,
      [key, fence, mode, token, ttlMs, failure, failureMs],
    );
    return rowCount === 1;
  }

  async swapSecret(key: string, presented: string, secret: string): Promise<boolean> {
    const value = this.#codec.sealSecret(`${key}:refresh`, secret);
    const before = this.#codec.casPrefix(presented);
    // Storing the secret already stored succeeds: a retry after a lost answer is no conflict.
    const after = this.#codec.casPrefix(secret);
    const { rowCount } = await this.#query(
      `INSERT INTO ${this.#table} AS t (key, secret) VALUES ($1, $2)
ON CONFLICT (key) DO UPDATE SET secret = EXCLUDED.secret
WHERE t.secret IS NULL OR left(t.secret, length($3)) = $3 OR left(t.secret, length($4)) = $4`,
      [key, value, before, after],
    );
    return rowCount === 1;
  }

  async deleteIf(key: string, staleToken: string): Promise<boolean> {
    const prefix = this.#codec.casPrefix(staleToken);
    const { rowCount } = await this.#query(
      `UPDATE ${this.#table} SET token = NULL, token_expires_at = NULL
WHERE key = $1 AND left(token, length($2)) = $2 AND token_expires_at > clock_timestamp()`,
      [key, prefix],
    );
    return rowCount === 1;
  }

  /**
   * The credentials table, for a SessionPool's tenants: `put` them once (from your onboarding
   * flow), and give the pool {@link credentialsResolver} as its `resolve`. Rows are sealed like
   * tokens (with `encryptionKey`, AES-256-GCM bound to the tenant).
   */
  get credentials(): CredentialsTable {
    const table = this.#credentials;
    const codec = this.#codec;
    const name = (tenant: string) => `credentials:${tenant}`;
    return {
      put: async (tenant, credentials) => {
        if (typeof tenant !== 'string' || tenant === '') {
          throw new ConfigError('tenant', 'must be a non-empty string');
        }
        const sealed = codec.sealSecret(name(tenant), JSON.stringify(credentials));
        await this.#query(
          `INSERT INTO ${table} (tenant, sealed) VALUES ($1, $2)
ON CONFLICT (tenant) DO UPDATE SET sealed = EXCLUDED.sealed, updated_at = clock_timestamp()`,
          [tenant, sealed],
        );
      },
      get: async (tenant) => {
        const { rows } = await this.#query(`SELECT sealed FROM ${table} WHERE tenant = $1`, [
          tenant,
        ]);
        const sealed = rows[0]?.sealed;
        if (typeof sealed !== 'string') return undefined;
        return JSON.parse(codec.openSecret(name(tenant), sealed)) as StoredCredentials;
      },
      delete: async (tenant) => {
        const { rowCount } = await this.#query(`DELETE FROM ${table} WHERE tenant = $1`, [tenant]);
        return rowCount === 1;
      },
    };
  }

  /**
   * A SessionPool `resolve` that reads the credentials table: a tenant without a row is unknown.
   */
  credentialsResolver(): (tenant: string) => Promise<StoredCredentials | undefined> {
    const table = this.credentials;
    return (tenant) => table.get(tenant);
  }

  /** `util.inspect` and `JSON.stringify` show the table, never the encryption key. */
  toJSON(): { type: string; table: string; encrypted: boolean } {
    return { type: 'PostgresTokenStore', table: this.#table, encrypted: this.#codec.encrypted };
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `PostgresTokenStore { table: '${this.#table}', encrypted: ${this.#codec.encrypted} }`;
  }

  /** One query, or a transient TokenStoreError when it fails or outlives queryTimeoutMs. */
  #query(
    text: string,
    values?: unknown[],
  ): Promise<{ rows: Record<string, unknown>[]; rowCount: number | null }> {
    return bounded(
      () => this.#client.query(text, values),
      this.#timeoutMs,
      // pg's errors may quote parameters (a sealed token): keep only the class and SQLSTATE.
      (error) => {
        const code = (error as { code?: unknown })?.code;
        return `query failed: ${(error as Error)?.name ?? 'Error'}${typeof code === 'string' ? ` ${code}` : ''}`;
      },
    );
  }
}

function identifier(option: string, value: unknown): string {
  if (typeof value !== 'string' || !IDENTIFIER.test(value)) {
    throw new ConfigError(option, 'must be a lower-case table name, optionally schema.table');
  }
  return value;
}
