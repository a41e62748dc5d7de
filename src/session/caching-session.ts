import { Mutex } from 'async-mutex';
import { ConfigError, SessionClosedError, SharedBackoffError, TokenStoreError } from '../errors.js';
import { checkSignal, raceAbort } from '../internal/abort.js';
import { lateGlobalFetch } from '../internal/late-fetch.js';
import { MAX_TIMER_MS, optionalFunction, positiveMs, requiredString } from '../internal/options.js';
import { unrefTimer } from '../internal/runtime.js';
import { normaliseBaseUrl } from '../internal/url.js';
import { bareTokenInfo, type TokenInfo } from '../token-info.js';
import { type AuthSession, type GetTokenOptions, peekToken } from './auth-session.js';
import {
  BACKOFF_INITIAL_MS,
  BACKOFF_MAX_MS,
  type BackoffPolicy,
  backoffDelayMs,
  backoffOf,
  retryWindowMs,
} from './backoff.js';
import { type Logger, type MintReason, publish } from './diagnostics.js';
import { FleetSource } from './fleet.js';
import { fetchIdentity, type Identity, type IdentityOptions } from './identity.js';
import { errorCode, instrumented } from './instrument.js';
import { EXPIRY_MARGIN_MS, expiryMarginMs, type LifetimePolicy, lifetimesOf } from './lifetimes.js';
import { Redacted } from './redacted.js';
import { isSharedTokenStore, type SharedTokenStore, sessionKey } from './shared-store.js';
import {
  type MintContext,
  type MintedToken,
  type MintFn,
  type SourceIdentity,
  type TokenSource,
  tokenSourceOf,
} from './token-source.js';
import { type CachedToken, MemoryTokenStore } from './token-store.js';

export type { MintContext, MintedToken, MintFn, SourceIdentity, TokenSource };
export { BACKOFF_INITIAL_MS, BACKOFF_MAX_MS, EXPIRY_MARGIN_MS, expiryMarginMs };

/** Default local lifetime of a token whose response carries no `expires_in` (Salesforce's usual). */
export const DEFAULT_TOKEN_TTL_MS = 30 * 60_000;

/**
 * How long before a token goes stale a background refresh starts, while the cached token is still
 * handed out: after warm-up no caller waits for a mint. Capped at a quarter of the token's lifetime.
 */
export const DEFAULT_REFRESH_AHEAD_MS = 5 * 60_000;

/** The mint timeout assumed for a grant that does not tell (the token endpoint's default). */
const DEFAULT_MINT_TIMEOUT_MS = 30_000;

/**
 * The rejection guard's idea of "right after it was minted": a token rejected this soon after its
 * mint, before any request with it succeeded, makes the session stop minting for a backoff window.
 * A token older than this is taken to have worked (a caller that never calls `confirm` is not
 * penalised for a legitimate revocation).
 */
export const FRESH_TOKEN_MS = 30_000;

/** Options of the caching engine, shared by every minting session. */
export interface CachingSessionOptions {
  /**
   * How long a token is used before a new one is minted, when the token response has no
   * `expires_in` (a shorter `expires_in` wins). Salesforce tokens live as long as the org's session
   * timeout; a 401 is the real expiry signal and always wins over this guess.
   * @default DEFAULT_TOKEN_TTL_MS (30 minutes)
   */
  tokenTtlMs?: number | undefined;
  /**
   * Refresh-ahead window: once a cached token is this close to going stale, `getToken()` still
   * returns it at once and starts one background mint. `0` turns it off.
   * @default DEFAULT_REFRESH_AHEAD_MS (5 minutes, at most a quarter of the token's lifetime)
   */
  refreshAheadMs?: number | undefined;
  /**
   * After a failed mint, callers get the same error at once, without a token request, for a while:
   * exponential from `initialMs`, with jitter, capped at `maxMs`; a 429/503 `Retry-After` is
   * honoured. A successful mint resets it. `false` turns it off (not advised: Salesforce locks a
   * user out at about 3,600 logins an hour).
   * @default { initialMs: BACKOFF_INITIAL_MS, maxMs: BACKOFF_MAX_MS }
   */
  backoff?: { initialMs?: number | undefined; maxMs?: number | undefined } | false | undefined;
  /** Where to log mints, failures and backoff: a pino- or console-shaped object. @default none */
  logger?: Logger | undefined;
  /**
   * The clock, in epoch milliseconds. Inject one in tests instead of sleeping.
   * @default Date.now
   */
  now?: (() => number) | undefined;
  /**
   * A store shared by many processes (`RedisTokenStore` from `cirrus-auth/redis`): the fleet mints
   * one token, invalidates it with one compare-and-swap and, for rotating refresh tokens, keeps the
   * current refresh token there. If the store fails or is slow, the session mints in process and
   * rejoins when it is back (a rotating refresh token is never used outside the store).
   * @default none: the token lives in this process only
   */
  store?: SharedTokenStore | undefined;
  /**
   * With `store`: the user part of the shared key, in place of the one the grant derives (the
   * username, or a hash of the initial refresh token). Give every process of a fleet the same
   * value, for example the Salesforce username, when they do not all start from the same
   * refresh token. Required for a token exchange whose subject token is a function.
   */
  storeKey?: string | undefined;
}

interface Cached {
  readonly token: CachedToken;
  /** Settled once and handed to every cache-hit caller: no allocation on the hot path. */
  readonly promise: Promise<string>;
}

interface Failure {
  readonly error: unknown;
  readonly failures: number;
  /** Until then, callers get `error` without a token request. */
  readonly retryAt: number;
}

/**
 * The caching engine around a {@link TokenSource}: cache, expiry margin, single-flight minting,
 * compare-and-swap invalidation, refresh-ahead, serve-stale on transient failure, failure backoff
 * and the rejection guard. It knows nothing of the grant: it calls the source's `mint` and caches
 * the answer. Safe to call concurrently; at most one mint runs per session. With a shared `store`
 * the same holds across a fleet of processes through a `FleetSource` (`fleet.ts`), a source around
 * the grant's: one mint, one compare-and-swap, one rotating secret, and the hot path still never
 * leaves the process. Every
 * grant class is this engine around the grant's source (`ClientCredentialsAuth` is
 * `new CachingSession(clientCredentials(options), options)`).
 *
 * @example
 * ```ts
 * const session = new CachingSession({
 *   instanceUrl: 'https://acme.my.salesforce.com',
 *   mint: async function mintFromVault() {
 *     return { accessToken: await vault.read('salesforce/token') };
 *   },
 * });
 * ```
 */
export class CachingSession extends Redacted implements AuthSession {
  readonly instanceUrl: string;
  /** What mints: the grant's source (reporting its token requests), or the fleet around it. */
  readonly #source: TokenSource;
  /** The session's name in events and log lines: the class's, or the source's own. */
  readonly #name: string;
  /** This process's copy of the current token. */
  readonly #store: MemoryTokenStore;
  readonly #lifetimes: LifetimePolicy;
  readonly #backoff: BackoffPolicy | undefined;
  readonly #logger: Logger | undefined;
  readonly #now: () => number;
  /** Serialises mints and store updates, so an invalidation never races a mint's write. */
  readonly #lock = new Mutex();
  /** The last token read from or written to the store: the lock-free fast path. */
  #cached: Cached | undefined;
  /**
   * `#cached` while it is not yet due for refresh, cleared by an unref'd timer at `refreshAt`: the
   * hot path reads no clock. Only with the real clock; an injected one is read on every call.
   */
  #fresh: Cached | undefined;
  #freshTimer: ReturnType<typeof setTimeout> | undefined;
  #self: { deref(): CachingSession | undefined } | undefined;
  readonly #realClock: boolean;
  /** The mint every concurrent caller joins, whatever started it. */
  #pending: Promise<string> | undefined;
  #failure: Failure | undefined;
  #minted = false;
  #closed = false;
  /**
   * Aborted by close(): the source stops waiting on others (a fleet polling for a token). Made
   * for a mint and dropped after it, so an idle session holds none (a pool keeps thousands).
   */
  #closing: AbortController | undefined;
  /**
   * The info of the last few tokens handed out, newest last: `getTokenInfo()` answers from it. A
   * short array, not a Map: an idle session keeps one entry.
   */
  #infos: [token: string, info: TokenInfo][] = [];
  /** `identity()` of one token, shared by concurrent callers, dropped when it fails. */
  #identity: { readonly token: string; readonly promise: Promise<Identity> } | undefined;
  readonly #fetch: typeof fetch;
  readonly #timeoutMs: number;
  readonly #loginOrigin: string | undefined;
  /** The grant's single-use secret, without a shared store (with one, the fleet source keeps it). */
  #secret: string | undefined;
  /**
   * The token this process minted last to replace a rejected one, until a request with it succeeds
   * ({@link confirm}): its rejection means the org refuses every token, new or old (the guard).
   */
  #unconfirmed: string | undefined;
  /** When `#unconfirmed` was minted (or adopted from a shared store), on the session's clock. */
  #mintedAt = 0;
  /** The last token a request confirmed: adopting it again from a store does not re-arm the guard. */
  #confirmed: string | undefined;
  /** The rejection guard's window: `token` is kept and no mint runs until `until`. */
  #guard:
    | {
        readonly token: string;
        readonly failures: number;
        readonly until: number;
        /** The window is over and one re-mint was let through. */
        readonly spent: boolean;
      }
    | undefined;

  /**
   * @param source what to cache: a grant's source (`clientCredentials(options)`…) or your own.
   * @param options the cache's options; a wrong one is a `ConfigError` naming it.
   */
  constructor(source: TokenSource, options: CachingSessionOptions = {}) {
    super();
    const engine = tokenSourceOf(source);
    this.instanceUrl = normaliseBaseUrl('instanceUrl', engine.instanceUrl);
    this.#name = engine.name ?? new.target.name;
    this.#store = new MemoryTokenStore();
    this.#lifetimes = {
      ttlMs: positiveMs('tokenTtlMs', options.tokenTtlMs, DEFAULT_TOKEN_TTL_MS),
      aheadMs:
        options.refreshAheadMs === 0
          ? 0
          : positiveMs('refreshAheadMs', options.refreshAheadMs, DEFAULT_REFRESH_AHEAD_MS),
    };
    this.#backoff = backoffOf(options.backoff);
    this.#logger = loggerOf(options.logger);
    this.#now = clockOf(options.now);
    this.#realClock = options.now === undefined;
    this.#fetch = engine.fetch ?? lateGlobalFetch;
    this.#timeoutMs = positiveMs(
      'source.timeoutMs',
      engine.timeoutMs,
      DEFAULT_MINT_TIMEOUT_MS,
      MAX_TIMER_MS,
    );
    this.#loginOrigin = originOf(engine.identity?.loginUrl);
    // The grant's token requests are reported innermost, so a fleet's store reads are not.
    const reporting: TokenSource = {
      ...engine,
      mint: instrumented(engine.mint.bind(engine), this.#name, this.instanceUrl, this.#logger),
    };
    // Last: the fleet source reads the options parsed above.
    const shared = sharedOf(this.#name, options, engine.identity);
    if (shared === undefined) {
      this.#source = reporting;
      this.#secret = engine.secret;
    } else {
      const fleet = new FleetSource(reporting, shared.store, shared.key, {
        session: this.#name,
        instanceUrl: this.instanceUrl,
        logger: this.#logger,
        now: this.#now,
        backoff: this.#backoff,
        lifetimes: this.#lifetimes,
        mintTimeoutMs: this.#timeoutMs,
      });
      this.#source = fleet;
      // Held weakly: a session dropped without close() stays collectable.
      const session = this.#weak();
      fleet.watch((token) => {
        const live = session.deref();
        if (live !== undefined) live.#adoptLearned(token);
      });
    }
    if (engine.seed !== undefined) {
      // Kept in this process only: writing it to a shared store would need the mint lock.
      const token = this.#cacheable(engine.seed, this.#now());
      this.#remember(token);
      this.#store.set(token);
    }
  }

  /**
   * Resolves to a usable access token: from the cache without I/O, or from the one mint that all
   * concurrent callers share. Inside the refresh-ahead window the cached token is returned at once
   * and one background mint starts. A caller's `signal` ends only that caller's wait.
   */
  getToken(options?: GetTokenOptions): Promise<string> {
    const hot = this.#fresh;
    if (hot !== undefined) {
      // The hot path, with or without a live signal: no clock, one settled promise handed out.
      const signal = options?.signal;
      if (signal === undefined || (signal instanceof AbortSignal && !signal.aborted))
        return hot.promise;
    }
    const hit = this.#cached;
    // Under an injected clock: no options, a cached token not yet due for refresh.
    if (options === undefined && hit !== undefined && this.#now() < hit.token.refreshAt) {
      return hit.promise;
    }
    let signal: AbortSignal | undefined;
    try {
      signal = checkSignal(options?.signal);
    } catch (error) {
      return Promise.reject(error);
    }
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#closed) return Promise.reject(new SessionClosedError());
    const now = this.#now();
    if (hit !== undefined && now < hit.token.staleAt) {
      if (now >= hit.token.refreshAt) this.#background('ahead', hit.token.accessToken);
      return hit.promise;
    }

    // Stale or missing. The local TTL is a guess (Salesforce sends no `expires_in`), so while
    // minting fails, for any reason, the token the org has not rejected is still served, until a
    // server-declared expiry passes; a token that was invalidated is gone from #cached for good.
    const declared = hit?.token.declaredExpiresAt;
    const servable =
      hit !== undefined && (declared === undefined || now < declared) ? hit : undefined;
    const failure = this.#failure;
    if (servable !== undefined && failure !== undefined) {
      if (now >= failure.retryAt) this.#background('retry');
      return servable.promise;
    }
    if (failure !== undefined && now < failure.retryAt && this.#pending === undefined) {
      return Promise.reject(failure.error);
    }
    const reason: MintReason =
      hit !== undefined ? 'expired' : this.#minted ? 'invalidated' : 'cold';
    const pending = this.#singleFlight(reason);
    const result =
      servable === undefined ? pending : pending.catch(() => servable.token.accessToken);
    return raceAbort(result, signal);
  }

  /** The token {@link getToken} hands out at once on its hot path, else `undefined`; see {@link peekToken}. */
  [peekToken](): string | undefined {
    return this.#fresh?.token.accessToken;
  }

  /**
   * What the token answer said about the current token (org, user, scopes, issue time, whether
   * its signature was verified), minting first if needed: the same single-flight as
   * {@link getToken}. With a shared store every process of the fleet answers the same. No access
   * or refresh token in it.
   */
  async getTokenInfo(options?: GetTokenOptions): Promise<TokenInfo> {
    const token = await this.getToken(options);
    return this.#infoOf(token);
  }

  /**
   * The session's identity: `GET` the identity URL (or `/services/oauth2/userinfo`) with the
   * session's token; a rejected token is invalidated and the request tried once more with a new
   * one, like the adapters do. Cached per token: the next call with the same token asks nobody.
   * Fails with an `IdentityError` (its `status` says why).
   */
  async identity(options?: IdentityOptions): Promise<Identity> {
    const signal = checkSignal(options?.signal);
    const token = await this.getToken({ signal });
    const cached = this.#identity;
    if (cached?.token === token) return raceAbort(cached.promise, signal);
    const promise = fetchIdentity(
      {
        session: this,
        infoOf: (t) => this.#infoOf(t),
        origins: this.#loginOrigin === undefined ? [] : [this.#loginOrigin],
        fetch: this.#fetch,
        timeoutMs: this.#timeoutMs,
      },
      undefined,
    );
    const entry = { token, promise };
    this.#identity = entry;
    promise.catch(() => {
      if (this.#identity === entry) this.#identity = undefined;
    });
    return raceAbort(promise, signal);
  }

  #infoOf(token: string): TokenInfo {
    return this.#infos.find(([t]) => t === token)?.[1] ?? bareTokenInfo(this.instanceUrl);
  }

  /**
   * Compare-and-swap: forgets `staleToken` only if it is still the cached token. Resolves once the
   * store agrees (after any mint in flight), so a following `getToken()` sees the outcome.
   */
  async invalidate(staleToken: string): Promise<void> {
    if (typeof staleToken !== 'string') throw new ConfigError('staleToken', 'must be a string');
    if (staleToken === this.#unconfirmed && this.#holdRejected(staleToken)) return;
    // The org rejected it: whatever a request proved before no longer holds (a re-mint may hand
    // the very same token back).
    if (staleToken === this.#confirmed) this.#confirmed = undefined;
    // Stop handing the token out at once, before waiting for the lock.
    const hit = this.#cached?.token.accessToken === staleToken;
    if (hit) this.#forgetCached();
    publish('invalidate', () => ({
      session: this.#name,
      instanceUrl: this.instanceUrl,
      hit,
    }));
    await this.#lock.runExclusive(async () => {
      this.#store.deleteIf(staleToken);
      await this.#source.invalidate?.(staleToken);
      // A mint that held the lock may have re-read the same token from a shared store.
      if (this.#cached?.token.accessToken === staleToken) this.#forgetCached();
    });
  }

  /**
   * Tells the session that a request with `acceptedToken` succeeded: the org accepts it. Adapters
   * call it after each such answer; it costs one comparison. It ends the rejection guard: when a token this session minted to
   * replace a rejected one is rejected too, within {@link FRESH_TOKEN_MS} and before any request
   * with it succeeded, the session stops minting for a backoff window and keeps handing that token
   * out (IP restrictions, High Assurance sessions, API Access Control or a blocked app reject every
   * token; minting again only burns logins). If you call `invalidate` yourself, call `confirm`
   * after a request that worked.
   */
  confirm(acceptedToken: string): void {
    // The hot path: the same token again, nothing armed. One or three comparisons.
    if (
      acceptedToken === this.#confirmed &&
      this.#unconfirmed === undefined &&
      this.#guard === undefined
    )
      return;
    this.#confirmed = acceptedToken;
    // The org accepts this session's tokens again, whichever one a request carried (a client
    // such as jsforce may still hold an older one): nothing armed is left, and the guard's
    // escalation starts over.
    this.#unconfirmed = undefined;
    this.#guard = undefined;
  }

  /**
   * The rejection guard, for a rejected replacement token no request confirmed: answers true (keep
   * it, mint nothing) while its window is open, opening one on a rejection within
   * {@link FRESH_TOKEN_MS} of its mint; false once the window is over (the caller re-mints, once:
   * the window is spent, and a rejection of what that mint returns, the same token included,
   * opens a longer one) or for a token older than that.
   */
  #holdRejected(token: string): boolean {
    const backoff = this.#backoff;
    if (backoff === undefined) return false;
    const guard = this.#guard;
    const now = this.#now();
    if (guard?.token === token && !guard.spent) {
      if (now < guard.until) return true;
      this.#guard = { ...guard, spent: true };
      return false;
    }
    if (now - this.#mintedAt >= FRESH_TOKEN_MS) return false;
    const failures = (guard?.failures ?? 0) + 1;
    const retryInMs = backoffDelayMs(backoff, failures);
    this.#guard = { token, failures, until: now + retryInMs, spent: false };
    const event = {
      session: this.#name,
      instanceUrl: this.instanceUrl,
      failures,
      retryInMs,
      code: TOKEN_REJECTED,
    };
    publish('backoff', () => event);
    this.#logger?.warn?.(
      event,
      'cirrus-auth: a freshly minted token was rejected before any request succeeded; not minting again for a while',
    );
    return true;
  }

  /**
   * Stops background work: no refresh-ahead or retry mints start any more, and `getToken()` then
   * rejects with `SessionClosedError`. A mint already running is awaited, not cut off, so a rotated
   * refresh token is never lost.
   */
  async close(): Promise<void> {
    this.#closed = true;
    this.#closing?.abort();
    this.#forgetCached();
    this.#infos = [];
    this.#identity = undefined;
    await this.#pending?.catch(() => {});
    await this.#source.close?.();
  }

  /** `await using session = new ClientCredentialsAuth(...)` closes it at the end of the scope. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Starts a mint nobody waits for, unless one is running or backoff says not yet. */
  #background(reason: MintReason, aheadOf?: string): void {
    if (this.#closed || this.#pending !== undefined) return;
    if (this.#failure !== undefined && this.#now() < this.#failure.retryAt) return;
    this.#singleFlight(reason, aheadOf).catch(() => {});
  }

  /** The one mint in flight; every caller joins it, whatever started it. */
  #singleFlight(reason: MintReason, aheadOf?: string): Promise<string> {
    this.#pending ??= this.#lock
      .runExclusive(() => this.#refresh(reason, aheadOf))
      .finally(() => {
        this.#pending = undefined;
      });
    return this.#pending;
  }

  /** Runs under the lock: re-check the store (another writer may have filled it), else mint. */
  async #refresh(reason: MintReason, aheadOf: string | undefined): Promise<string> {
    const stored = this.#store.get();
    if (stored !== undefined && this.#now() < stored.staleAt && stored.accessToken !== aheadOf) {
      this.#remember(stored);
      return stored.accessToken;
    }
    const token = await this.#mintToken(reason, aheadOf);
    this.#adopt(token);
    return token.accessToken;
  }

  /** A token the source learned outside a mint (a fleet's store is back): cached under the lock. */
  #adoptLearned(minted: MintedToken): void {
    this.#lock
      .runExclusive(() => {
        if (this.#closed) return;
        this.#adopt(this.#cacheable(minted, this.#now()));
      })
      .catch(() => {});
  }

  /** Caches a token in this process: the lock-free fast path and the local store. */
  #adopt(token: CachedToken): void {
    this.#failure = undefined;
    this.#remember(token);
    this.#store.set(token);
    // A replacement arms the guard (unless a request confirmed that very token already), the same
    // token again included: a re-mint that hands back the rejected token does not cure it either.
    if (token.replacement !== true) {
      if (token.accessToken !== this.#unconfirmed) this.#unconfirmed = undefined;
      return;
    }
    if (token.accessToken === this.#confirmed) return;
    this.#unconfirmed = token.accessToken;
    this.#mintedAt = token.obtainedAt ?? this.#now();
  }

  /** One mint through the source, with its backoff bookkeeping. */
  async #mintToken(reason: MintReason, aheadOf: string | undefined): Promise<CachedToken> {
    const startedAt = this.#now();
    let minted: MintedToken;
    const closing = this.#closing ?? new AbortController();
    // A mint that starts after close() (queued behind the lock) starts aborted.
    if (this.#closed) closing.abort();
    this.#closing = closing;
    try {
      minted = await this.#source.mint({
        reason,
        aheadOf,
        secret: this.#secret,
        signal: closing.signal,
        adoptSecret: async (secret) => {
          this.#secret = secret;
        },
      });
    } catch (error) {
      this.#fail(error);
      throw error;
    } finally {
      if (this.#closing === closing && !this.#closed) this.#closing = undefined;
    }
    this.#failure = undefined;
    this.#minted = true;
    const token = this.#cacheable(minted, startedAt);
    // Only a token minted because the last one was rejected can show that a new token does not
    // cure the rejection; the flag travels with it through a shared store.
    const replacement = minted.replacement ?? reason === 'invalidated';
    return replacement ? { ...token, replacement: true } : token;
  }

  /**
   * Opens the backoff window after a failed mint. A fleet's shared window is joined as it is; a
   * shared store's own trouble (unreachable, a lock held too long) is no reason to stop minting.
   */
  #fail(error: unknown): void {
    if (this.#backoff === undefined) return;
    if (error instanceof TokenStoreError || error instanceof SessionClosedError) return;
    const failures = (this.#failure?.failures ?? 0) + 1;
    if (error instanceof SharedBackoffError) {
      this.#failure = { error, failures, retryAt: this.#now() + error.retryAfterMs };
      return;
    }
    const retryInMs = retryWindowMs(this.#backoff, failures, error);
    this.#failure = { error, failures, retryAt: this.#now() + retryInMs };
    const code = errorCode(error);
    const event = {
      session: this.#name,
      instanceUrl: this.instanceUrl,
      failures,
      retryInMs,
      code,
    };
    publish('backoff', () => event);
    this.#logger?.warn?.(event, 'cirrus-auth: backing off the token endpoint');
  }

  /**
   * Expiry of a token obtained at `obtainedAt` (minus its age, for one a source had in hand): the
   * local TTL, capped by `expires_in`.
   */
  #cacheable(minted: MintedToken, obtainedAt: number): CachedToken {
    const mintedAt = obtainedAt - Math.max(0, minted.ageMs ?? 0);
    const times = lifetimesOf(this.#lifetimes, minted.expiresInMs);
    return {
      accessToken: minted.accessToken,
      expiresAt: mintedAt + times.expiresInMs,
      staleAt: mintedAt + times.staleInMs,
      refreshAt: mintedAt + times.refreshInMs,
      obtainedAt: mintedAt,
      ...(minted.info === undefined ? {} : { info: minted.info }),
      ...(minted.expiresInMs === undefined
        ? {}
        : { declaredExpiresAt: mintedAt + minted.expiresInMs }),
    };
  }

  /**
   * Runs `fn` under the mint lock, after any mint in flight: for grant-level operations that must
   * not overlap a mint (revoking the refresh token, for one). `fn` must not call `getToken`.
   */
  protected exclusive<T>(fn: () => Promise<T>): Promise<T> {
    return this.#lock.runExclusive(fn);
  }

  /**
   * Runs `fn` with the grant's current secret while no mint runs, here or (with a shared store)
   * anywhere in the fleet, then forgets the token and the secret everywhere: for revocation. The
   * secret is the store's latest, so a token another process rotated is the one revoked.
   */
  protected retireSecret(fn: (secret: string | undefined) => Promise<void>): Promise<void> {
    return this.#lock.runExclusive(async () => {
      const source = this.#source;
      if (source.retire === undefined) await fn(this.#secret);
      else await source.retire(fn);
      this.#forgetCached();
      this.#store.clear();
      this.#infos = [];
      this.#identity = undefined;
    });
  }

  #remember(token: CachedToken): void {
    if (this.#closed) return;
    // The info of a few recent tokens: a caller whose getToken() resolved just before a re-mint
    // still gets its own token's info.
    const infos = this.#infos.filter(([t]) => t !== token.accessToken);
    infos.push([token.accessToken, token.info ?? bareTokenInfo(this.instanceUrl)]);
    this.#infos = infos.length > 4 ? infos.slice(-4) : infos;
    const hit: Cached = { token, promise: Promise.resolve(token.accessToken) };
    this.#forgetCached();
    this.#cached = hit;
    const dueInMs = token.refreshAt - this.#now();
    if (this.#realClock && dueInMs > 0 && dueInMs < MAX_TIMER_MS) {
      this.#fresh = hit;
      // Holds the session weakly: a session dropped without close() is collectable at once.
      const session = this.#weak();
      this.#freshTimer = setTimeout(() => {
        const live = session.deref();
        if (live !== undefined) live.#cool(hit);
      }, dueInMs);
      unrefTimer(this.#freshTimer);
    }
  }

  /**
   * One weak reference to this session, made once, for timers and watchers. Where the runtime has
   * no WeakRef (workerd before its 2025-05-05 compatibility date), a strong one: the timers it
   * serves are cleared by close() and end with the token they were set for.
   */
  #weak(): { deref(): CachingSession | undefined } {
    this.#self ??= typeof WeakRef === 'function' ? new WeakRef(this) : { deref: () => this };
    return this.#self;
  }

  #cool(hit: Cached): void {
    if (this.#fresh === hit) this.#fresh = undefined;
  }

  #forgetCached(): void {
    this.#cached = undefined;
    this.#fresh = undefined;
    clearTimeout(this.#freshTimer);
  }
}

function sharedOf(
  session: string,
  options: CachingSessionOptions,
  identity: SourceIdentity | undefined,
): { store: SharedTokenStore; key: string } | undefined {
  const storeKey =
    options.storeKey === undefined ? undefined : requiredString('storeKey', options.storeKey);
  const store = options.store;
  if (store === undefined) return undefined;
  if (!isSharedTokenStore(store)) {
    throw new ConfigError('store', 'must be a shared token store such as RedisTokenStore');
  }
  if (identity === undefined) throw new ConfigError('store', `is not supported by ${session}`);
  const user = storeKey ?? identity.user;
  if (user === undefined) throw new ConfigError('storeKey', `is required with store here`);
  return { store, key: sessionKey({ ...identity, user }) };
}

function originOf(url: string | undefined): string | undefined {
  if (url === undefined) return undefined;
  try {
    return new URL(url).origin;
  } catch {
    return undefined;
  }
}

/** The `code` the rejection guard's backoff event and log line carry. */
const TOKEN_REJECTED = 'ERR_TOKEN_REJECTED';

/** The injected clock, read once here: one that does not answer epoch milliseconds fails now. */
function clockOf(value: unknown): () => number {
  const now = optionalFunction('now', value as (() => number) | undefined) ?? Date.now;
  let first: unknown;
  try {
    first = now();
  } catch {
    throw new ConfigError('now', 'threw when called');
  }
  if (typeof first !== 'number' || !Number.isFinite(first)) {
    throw new ConfigError('now', 'must return epoch milliseconds as a finite number');
  }
  return now;
}

const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;

/**
 * Validates a logger (each level it has must be a function) and wraps it so a logger that throws
 * never fails a mint: a log line is never worth a login.
 */
function loggerOf(value: unknown): Logger | undefined {
  if (value === undefined) return undefined;
  if ((typeof value !== 'object' && typeof value !== 'function') || value === null)
    throw new ConfigError('logger', 'must be a pino- or console-shaped object');
  const logger = value as Record<string, unknown>;
  const safe: Logger = {};
  for (const level of LOG_LEVELS) {
    const method = logger[level];
    if (method === undefined || method === null) continue;
    if (typeof method !== 'function')
      throw new ConfigError(`logger.${level}`, 'must be a function');
    safe[level] = (fields, message) => {
      try {
        method.call(logger, fields, message);
      } catch {
        // A broken logger loses its line, never the token.
      }
    };
  }
  return safe;
}
