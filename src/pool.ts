import {
  ConfigError,
  InstanceUrlMismatchError,
  SessionClosedError,
  UnknownTenantError,
} from './errors.js';
import {
  ClientCredentialsAuth,
  type ClientCredentialsOptions,
} from './grants/client-credentials.js';
import { JwtBearerAuth, type JwtBearerOptions } from './grants/jwt-bearer.js';
import { RefreshTokenAuth, type RefreshTokenOptions } from './grants/refresh-token.js';
import { StaticTokenAuth, type StaticTokenOptions } from './grants/static-token.js';
import { TokenExchangeAuth, type TokenExchangeOptions } from './grants/token-exchange.js';
import { raceAbort } from './internal/abort.js';
import { MAX_TIMER_MS, optionalFunction, optionsObject, positiveMs } from './internal/options.js';
import {
  type AuthSession,
  type GetTokenOptions,
  peekOf,
  peekToken,
  type TenantSessions,
  tenantSessions,
} from './session/auth-session.js';
import { CachingSession, type CachingSessionOptions } from './session/caching-session.js';
import type { Identity, IdentityOptions } from './session/identity.js';
import { isSharedTokenStore, type SharedTokenStore } from './session/shared-store.js';
import { InMemoryTokenStore } from './stores/memory.js';
import { DEFAULT_LOGIN_URL, loginEndpoint, type TokenEndpointOptions } from './token-endpoint.js';
import type { TokenInfo } from './token-info.js';

/** Default `maxSessions` of a {@link SessionPool}. */
export const DEFAULT_POOL_MAX_SESSIONS = 1_000;

/** Default `idleMs` of a {@link SessionPool}: a session unused this long is closed. */
export const DEFAULT_POOL_IDLE_MS = 15 * 60_000;

/**
 * What `resolve` answers for a tenant: a grant (named as `fromEnv` names them) and that grant's
 * options. The pool's own options fill in what they leave out (`loginUrl`, `timeoutMs`,
 * `backoff`…), and the pool's store is always the session's.
 */
export type TenantConfig =
  | { readonly grant: 'client-credentials'; readonly options: PoolFilled<ClientCredentialsOptions> }
  | { readonly grant: 'jwt-bearer'; readonly options: PoolFilled<JwtBearerOptions> }
  | { readonly grant: 'refresh-token'; readonly options: PoolFilled<RefreshTokenOptions> }
  | { readonly grant: 'token-exchange'; readonly options: PoolFilled<TokenExchangeOptions> }
  | { readonly grant: 'static-token'; readonly options: StaticTokenOptions };

/** A grant's options where the pool's may fill in `loginUrl` (and the store is the pool's). */
export type PoolFilled<T> = Omit<T, 'loginUrl' | 'store'> & { loginUrl?: string | undefined };

/** The grants a {@link TenantConfig} may name. */
export type TenantGrant = TenantConfig['grant'];

/** Options of {@link SessionPool}: how to find a tenant's credentials, and the pool's bounds. */
export interface SessionPoolOptions
  extends Omit<CachingSessionOptions, 'store' | 'storeKey'>,
    Pick<TokenEndpointOptions, 'loginUrl' | 'timeoutMs' | 'fetch' | 'verifySignature'> {
  /**
   * A tenant's grant and options, or `undefined` for a tenant you do not know (the caller then
   * gets {@link UnknownTenantError}). Called once per session created: concurrent first calls
   * for a tenant share one call, and a session evicted and needed again calls it again. `signal`
   * aborts when the pool closes. {@link PostgresTokenStore.credentialsResolver} is one.
   */
  resolve: (
    tenant: string,
    options: { signal: AbortSignal },
  ) => TenantConfig | undefined | Promise<TenantConfig | undefined>;
  /**
   * How many sessions stay open; beyond it the least recently used is closed (its rotated
   * refresh token already in the store, its cached token too, so coming back costs no login).
   * @default DEFAULT_POOL_MAX_SESSIONS (1,000)
   */
  maxSessions?: number | undefined;
  /**
   * A session nobody used for this long (up to a quarter longer: the pool sweeps four times per
   * `idleMs`) is closed.
   * @default DEFAULT_POOL_IDLE_MS (15 minutes)
   */
  idleMs?: number | undefined;
  /**
   * Where every tenant's token and rotating refresh token live: a Redis or PostgreSQL store for
   * a fleet, and to outlive the process. Each tenant has its own entry.
   * @default a new InMemoryTokenStore of the pool's own (tokens outlive eviction, not the process)
   */
  store?: SharedTokenStore | undefined;
}

/** A session as the pool keeps it: every session cirrus-auth ships closes. */
type PooledSession = AuthSession & {
  close(): Promise<void>;
  getTokenInfo(options?: GetTokenOptions): Promise<TokenInfo>;
  identity(options?: IdentityOptions): Promise<Identity>;
};

/** An open session of the pool. */
export interface Live {
  readonly session: PooledSession;
  handle: TenantSession;
  /** The use count at its last use: eviction and idleness compare it. */
  stamp: number;
  /** Until the pool closes it. */
  open: boolean;
}

/**
 * Counts uses of pooled sessions (every pool's: only order matters). A cache hit stamps its
 * session with it: one increment and one write, no clock read, no reordering.
 */
let uses = 0;

/** How many of the oldest-placed sessions eviction compares, to close the least recently used. */
const EVICTION_SAMPLE = 8;

/** A session unused for this many sweeps (each a quarter of `idleMs`) is idle. */
const IDLE_SWEEPS = 4;

const GRANTS: Record<TenantGrant, (options: never) => PooledSession> = {
  'client-credentials': (o: ClientCredentialsOptions) => new ClientCredentialsAuth(o),
  'jwt-bearer': (o: JwtBearerOptions) => new JwtBearerAuth(o),
  'refresh-token': (o: RefreshTokenOptions) => new RefreshTokenAuth(o),
  'token-exchange': (o: TokenExchangeOptions) => new TokenExchangeAuth(o),
  'static-token': (o: StaticTokenOptions) => new StaticTokenAuth(o) as unknown as PooledSession,
};

/** A source that never mints: the pool builds one session on it, to check its common options. */
const VALIDATION_SOURCE = {
  instanceUrl: 'https://validation.invalid',
  mint: () => Promise.reject(new SessionClosedError()),
};

/** Options a pool hands every tenant's session unless the tenant's own say otherwise. */
const COMMON = [
  'loginUrl',
  'timeoutMs',
  'fetch',
  'verifySignature',
  'tokenTtlMs',
  'refreshAheadMs',
  'backoff',
  'logger',
  'now',
] as const;

/**
 * Sessions for many tenants (orgs, or users of orgs) in one process: `pool.session(tenant)`
 * creates a tenant's session on first use from what `resolve` answers, and keeps at most
 * `maxSessions` open, closing the least recently used and any idle for `idleMs`. Each tenant is a
 * session of its own, so one tenant's broken credentials, backoff or rejection guard never delay
 * another's; each keeps its token and rotating refresh token in the pool's store under its own
 * entry, so a session closed and created again goes on with the same refresh-token chain.
 *
 * @example
 * ```ts
 * const pool = new SessionPool({
 *   resolve: async (tenant) => {
 *     const row = await db.tenant(tenant);
 *     return row && { grant: 'refresh-token', options: { clientId, clientSecret, ...row } };
 *   },
 *   store: new PostgresTokenStore({ client: pgPool, encryptionKey }),
 * });
 * const api = authFetch(pool, { tenant: (request) => request.headers.get('x-tenant') ?? '' });
 * ```
 */
export class SessionPool implements TenantSessions {
  readonly #resolve: SessionPoolOptions['resolve'];
  readonly #max: number;
  readonly #idleMs: number;
  readonly #store: SharedTokenStore;
  readonly #common: Record<string, unknown>;
  /** The use count at each of the last sweeps, oldest first: idleness compares stamps with it. */
  readonly #marks: number[] = [];
  /**
   * Open sessions in the order they were placed. A use only stamps its entry (no reordering on a
   * cache hit); eviction compares the stamps of the first few, closes the least recently used
   * and moves the others to the end, so every entry is compared in turn (an approximate LRU).
   */
  readonly #live = new Map<string, Live>();
  readonly #starting = new Map<string, Promise<Live>>();
  /** Sessions being closed: a tenant's next session waits until its last one is gone. */
  readonly #leaving = new Map<string, Promise<void>>();
  readonly #closing = new AbortController();
  readonly #sweeper: ReturnType<typeof setInterval>;

  constructor(options: SessionPoolOptions) {
    const o = optionsObject(options);
    if (typeof o.resolve !== 'function') throw new ConfigError('resolve', 'must be a function');
    this.#resolve = o.resolve;
    this.#max = positiveCount('maxSessions', o.maxSessions, DEFAULT_POOL_MAX_SESSIONS);
    this.#idleMs = positiveMs('idleMs', o.idleMs, DEFAULT_POOL_IDLE_MS, MAX_TIMER_MS);
    if (o.store !== undefined && !isSharedTokenStore(o.store)) {
      throw new ConfigError('store', 'must be a shared token store such as InMemoryTokenStore');
    }
    this.#store = o.store ?? new InMemoryTokenStore();
    this.#common = {};
    for (const name of COMMON) {
      if (o[name] !== undefined) this.#common[name] = o[name];
    }
    // The options every tenant's session gets are checked now, not at a tenant's first call:
    // by the validators the sessions themselves run, on a session that never mints.
    optionalFunction('now', o.now);
    loginEndpoint(this.#common, DEFAULT_LOGIN_URL);
    new CachingSession(VALIDATION_SOURCE, this.#common);
    const sweepMs = Math.max(5, Math.floor(this.#idleMs / IDLE_SWEEPS));
    this.#sweeper = setInterval(() => this.#sweep(), sweepMs);
    this.#sweeper.unref?.();
  }

  /** How many sessions are open. */
  get size(): number {
    return this.#live.size;
  }

  /**
   * The tenant's session, created on first use (concurrent first calls share one `resolve` and
   * one session). The session stays valid after the pool closes its underlying one: its next
   * call opens a new one. Rejects with {@link UnknownTenantError} for a tenant `resolve` does not
   * know, with `resolve`'s own error if it throws, and with ConfigError for a config that is
   * wrong (nothing is remembered: the next call asks again). `signal` aborts this caller's wait.
   */
  async session(tenant: string, options: GetTokenOptions = {}): Promise<TenantSession> {
    const live = this.live(tenant);
    if (live !== undefined) return live.handle;
    return (await this.#open(tenant, options.signal)).handle;
  }

  /**
   * Internal, for adapters: the tenant's open session without waiting, marked used, or
   * `undefined` when `session()` has work to do.
   */
  live(tenant: string): Live | undefined {
    const live = this.#live.get(tenant);
    if (live !== undefined) live.stamp = ++uses;
    return live;
  }

  /** Closes `tenant`'s session, if open (for an offboarded tenant). Its store entry stays. */
  async evict(tenant: string): Promise<void> {
    const live = this.#live.get(tenant);
    if (live !== undefined) this.#retire(tenant, live);
    await this.#leaving.get(tenant);
  }

  /**
   * Closes every session, awaiting mints in flight (so no rotated refresh token is lost); from
   * then on `session()` rejects with SessionClosedError.
   */
  async close(): Promise<void> {
    if (this.#closing.signal.aborted) return;
    this.#closing.abort();
    clearInterval(this.#sweeper);
    await Promise.allSettled([...this.#starting.values()]);
    for (const [tenant, live] of [...this.#live]) this.#retire(tenant, live);
    await Promise.allSettled([...this.#leaving.values()]);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** `util.inspect` and `JSON.stringify` show counts, never a tenant's credentials. */
  toJSON(): { type: string; sessions: number; maxSessions: number } {
    return { type: 'SessionPool', sessions: this.#live.size, maxSessions: this.#max };
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `SessionPool { sessions: ${this.#live.size}, maxSessions: ${this.#max} }`;
  }

  /** Single-flight creation of `tenant`'s session. */
  #open(tenant: string, signal: AbortSignal | undefined): Promise<Live> {
    if (typeof tenant !== 'string' || tenant === '') {
      return Promise.reject(new ConfigError('tenant', 'must be a non-empty string'));
    }
    if (this.#closing.signal.aborted) return Promise.reject(new SessionClosedError());
    let starting = this.#starting.get(tenant);
    if (starting === undefined) {
      starting = this.#create(tenant).finally(() => this.#starting.delete(tenant));
      this.#starting.set(tenant, starting);
    }
    return signal === undefined ? starting : raceAbort(starting, signal);
  }

  async #create(tenant: string): Promise<Live> {
    // The tenant's last session finishes closing first: its rotated token is then in the store.
    await this.#leaving.get(tenant);
    const config = await this.#resolve(tenant, { signal: this.#closing.signal });
    if (this.#closing.signal.aborted) throw new SessionClosedError();
    if (config === undefined || config === null) throw new UnknownTenantError(tenant);
    const session = this.#build(config);
    const live: Live = {
      session,
      handle: undefined as unknown as TenantSession,
      stamp: ++uses,
      open: true,
    };
    live.handle = new TenantSession(tenant, live, this);
    this.#live.set(tenant, live);
    while (this.#live.size > this.#max) this.#evictOne(live);
    return live;
  }

  #build(config: TenantConfig): PooledSession {
    const c = optionsObject(config as unknown as Record<string, unknown>) as TenantConfig;
    const make = Object.hasOwn(GRANTS, c.grant) ? GRANTS[c.grant as TenantGrant] : undefined;
    if (make === undefined) {
      throw new ConfigError('grant', `must be one of ${Object.keys(GRANTS).join(', ')}`);
    }
    const own = optionsObject(c.options as unknown as Record<string, unknown>);
    const options: Record<string, unknown> = { ...this.#common, ...own };
    if (c.grant !== 'static-token') options.store = this.#store;
    return (make as (o: unknown) => PooledSession)(options);
  }

  /** Closes the least recently used of the first few placed sessions, never `keep`. */
  #evictOne(keep: Live): void {
    const sample: [string, Live][] = [];
    for (const entry of this.#live) {
      if (entry[1] !== keep) sample.push(entry);
      if (sample.length === EVICTION_SAMPLE) break;
    }
    let victim = sample[0] as [string, Live];
    for (const entry of sample) if (entry[1].stamp < victim[1].stamp) victim = entry;
    for (const [tenant, live] of sample) {
      if (live === victim[1]) continue;
      this.#live.delete(tenant);
      this.#live.set(tenant, live);
    }
    this.#retire(victim[0], victim[1]);
  }

  /** Takes a session out of the pool and closes it; the tenant's next one waits for that. */
  #retire(tenant: string, live: Live): void {
    live.open = false;
    if (this.#live.get(tenant) === live) this.#live.delete(tenant);
    const previous = this.#leaving.get(tenant) ?? Promise.resolve();
    const leaving = previous
      .then(() => live.session.close())
      .catch(() => {})
      .finally(() => {
        if (this.#leaving.get(tenant) === leaving) this.#leaving.delete(tenant);
      });
    this.#leaving.set(tenant, leaving);
  }

  #sweep(): void {
    this.#marks.push(uses);
    if (this.#marks.length <= IDLE_SWEEPS) return;
    // Unused since the sweep IDLE_SWEEPS ago: idle for at least idleMs.
    const before = this.#marks.shift() as number;
    for (const [tenant, live] of this.#live) {
      if (live.stamp <= before) this.#retire(tenant, live);
    }
  }

  /** Internal, for adapters: the tenant's session, at once when it is open. */
  [tenantSessions](tenant: string, signal?: AbortSignal): AuthSession | Promise<AuthSession> {
    return this.live(tenant)?.handle ?? this.session(tenant, { signal });
  }

  /** Internal: the tenant's open session, opening one if needed, for {@link TenantSession}. */
  async current(tenant: string, signal: AbortSignal | undefined): Promise<PooledSession> {
    return (this.live(tenant) ?? (await this.#open(tenant, signal))).session;
  }
}

/**
 * One tenant's session in a {@link SessionPool}: an {@link AuthSession} that goes through the
 * pool, so it stays usable when the pool closes the session underneath (its next call opens a new
 * one, on the same store entry). Adapters take it like any session.
 */
export class TenantSession implements AuthSession {
  /** The tenant key it was asked for. */
  readonly tenant: string;
  readonly instanceUrl: string;
  readonly #pool: SessionPool;
  /** The pool's entry it was made for: while open, calls go straight to its session. */
  readonly #own: Live;

  /** Internal: made by {@link SessionPool} for each session it opens. */
  constructor(tenant: string, own: Live, pool: SessionPool) {
    this.tenant = tenant;
    this.instanceUrl = own.session.instanceUrl;
    this.#own = own;
    this.#pool = pool;
  }

  getToken(options?: GetTokenOptions): Promise<string> {
    // The hot path: its session is open; the session's own cache answers (no await here).
    const own = this.#own;
    if (own.open) {
      own.stamp = ++uses;
      return own.session.getToken(options);
    }
    return this.#session(options?.signal).then((session) => session.getToken(options));
  }

  async invalidate(staleToken: string): Promise<void> {
    await (await this.#session(undefined)).invalidate(staleToken);
  }

  confirm(acceptedToken: string): void {
    this.#pool.live(this.tenant)?.session.confirm?.(acceptedToken);
  }

  async getTokenInfo(options?: GetTokenOptions): Promise<TokenInfo> {
    return (await this.#session(options?.signal)).getTokenInfo(options);
  }

  async identity(options?: IdentityOptions): Promise<Identity> {
    return (await this.#session(options?.signal)).identity(options);
  }

  /** Internal hot path: the open session's token at hand, if any. */
  [peekToken](): string | undefined {
    const own = this.#own;
    if (own.open) {
      own.stamp = ++uses;
      return (own.session as { [peekToken]?: () => string | undefined })[peekToken]?.();
    }
    const live = this.#pool.live(this.tenant);
    if (live === undefined || live.session.instanceUrl !== this.instanceUrl) return undefined;
    return peekOf(live.session)?.();
  }

  /** `util.inspect` and `JSON.stringify` show the tenant and instance, nothing secret. */
  toJSON(): { type: string; tenant: string; instanceUrl: string } {
    return { type: 'TenantSession', tenant: this.tenant, instanceUrl: this.instanceUrl };
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `TenantSession { tenant: '${this.tenant}', instanceUrl: '${this.instanceUrl}' }`;
  }

  async #session(signal: AbortSignal | undefined): Promise<PooledSession> {
    const session = await this.#pool.current(this.tenant, signal);
    // Re-resolved elsewhere: the bearer rules this handle was built with no longer hold.
    if (session.instanceUrl !== this.instanceUrl) {
      throw new InstanceUrlMismatchError(this.instanceUrl, session.instanceUrl);
    }
    return session;
  }
}

function positiveCount(option: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw new ConfigError(option, 'must be a positive integer');
  }
  return value;
}
