import { Mutex } from 'async-mutex';
import { ConfigError } from '../errors.js';
import { checkSignal, raceAbort } from '../internal/abort.js';
import { optionalFunction, positiveMs } from '../internal/options.js';
import type { AuthSession, GetTokenOptions } from './auth-session.js';
import { Redacted } from './redacted.js';
import { type CachedToken, MemoryTokenStore, type TokenStore } from './token-store.js';

/** Default local lifetime of a token whose response carries no `expires_in` (Salesforce's usual). */
export const DEFAULT_TOKEN_TTL_MS = 30 * 60_000;

/**
 * A token this close to its local expiry is no longer handed out. For short lifetimes the margin
 * shrinks to a quarter of the lifetime, so a `tokenTtlMs` of a few seconds still caches.
 */
export const EXPIRY_MARGIN_MS = 60_000;

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
   * The clock, in epoch milliseconds. Inject one in tests instead of sleeping.
   * @default Date.now
   */
  now?: (() => number) | undefined;
}

/** What a grant hands the engine: one freshly minted token. */
export interface MintedToken {
  accessToken: string;
  /** The server-declared lifetime, when it sent `expires_in`. */
  expiresInMs?: number;
}

/** A grant's mint function: one token request, no caching. */
export type MintFn = () => Promise<MintedToken>;

/** The margin applied to a token of lifetime `ttlMs`; see {@link EXPIRY_MARGIN_MS}. */
export function expiryMarginMs(ttlMs: number): number {
  return Math.min(EXPIRY_MARGIN_MS, Math.floor(ttlMs / 4));
}

interface Hit {
  readonly token: CachedToken;
  /** Settled once and handed to every cache-hit caller: no allocation on the hot path. */
  readonly promise: Promise<string>;
}

/**
 * The caching engine behind every minting session: cache, expiry margin, single-flight minting and
 * compare-and-swap invalidation. It knows nothing of the grant: it calls `mint` and caches the
 * answer. Safe to call concurrently; at most one mint runs per session.
 */
export class CachingSession extends Redacted implements AuthSession {
  readonly instanceUrl: string;
  readonly #mint: MintFn;
  readonly #store: TokenStore;
  readonly #ttlMs: number;
  readonly #now: () => number;
  /** Serialises mints and store updates, so an invalidation never races a mint's write. */
  readonly #lock = new Mutex();
  /** The last token read from or written to the store: the lock-free fast path. */
  #hit: Hit | undefined;
  /** The mint every concurrent caller joins. */
  #pending: Promise<string> | undefined;

  /**
   * @param mint one token request of the grant; never called concurrently for one session.
   * @param engine.seed an access token already in hand (from a code exchange, say), used until it
   *   expires or is rejected.
   */
  constructor(
    instanceUrl: string,
    mint: MintFn,
    options: CachingSessionOptions = {},
    engine: { store?: TokenStore; seed?: MintedToken } = {},
  ) {
    super();
    this.instanceUrl = instanceUrl;
    this.#mint = mint;
    this.#store = engine.store ?? new MemoryTokenStore();
    this.#ttlMs = positiveMs('tokenTtlMs', options.tokenTtlMs, DEFAULT_TOKEN_TTL_MS);
    this.#now = optionalFunction('now', options.now) ?? Date.now;
    if (engine.seed !== undefined) {
      const token = this.#cacheable(engine.seed, this.#now());
      this.#remember(token);
      void this.#store.set(token);
    }
  }

  /**
   * Resolves to a fresh access token: from the cache without I/O, or from the one mint that all
   * concurrent callers share. A caller's `signal` ends only that caller's wait.
   */
  getToken(options?: GetTokenOptions): Promise<string> {
    const hit = this.#hit;
    // The hot path: no options, a fresh cached token, one settled promise handed out again.
    if (options === undefined && hit !== undefined && this.#now() < hit.token.staleAt)
      return hit.promise;
    let signal: AbortSignal | undefined;
    try {
      signal = checkSignal(options?.signal);
    } catch (error) {
      return Promise.reject(error);
    }
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (hit !== undefined && this.#now() < hit.token.staleAt) return hit.promise;
    this.#pending ??= this.#lock
      .runExclusive(() => this.#refresh())
      .finally(() => {
        this.#pending = undefined;
      });
    return raceAbort(this.#pending, signal);
  }

  /**
   * Compare-and-swap: forgets `staleToken` only if it is still the cached token. Resolves once the
   * store agrees (after any mint in flight), so a following `getToken()` sees the outcome.
   */
  async invalidate(staleToken: string): Promise<void> {
    if (typeof staleToken !== 'string') throw new ConfigError('staleToken', 'must be a string');
    // Stop handing the token out at once, before waiting for the lock.
    if (this.#hit?.token.accessToken === staleToken) this.#hit = undefined;
    await this.#lock.runExclusive(() => this.#store.deleteIf(staleToken));
  }

  /** Runs under the lock: re-check the store (another writer may have filled it), else mint. */
  async #refresh(): Promise<string> {
    const stored = await this.#store.get();
    if (stored !== undefined && this.#now() < stored.staleAt) {
      this.#remember(stored);
      return stored.accessToken;
    }
    const startedAt = this.#now();
    const token = this.#cacheable(await this.#mint(), startedAt);
    await this.#store.set(token);
    this.#remember(token);
    return token.accessToken;
  }

  /** Expiry of a token obtained at `obtainedAt`: the local TTL, capped by `expires_in`. */
  #cacheable(minted: MintedToken, obtainedAt: number): CachedToken {
    const ttlMs = Math.min(this.#ttlMs, minted.expiresInMs ?? Number.POSITIVE_INFINITY);
    const expiresAt = obtainedAt + ttlMs;
    return {
      accessToken: minted.accessToken,
      expiresAt,
      staleAt: expiresAt - expiryMarginMs(ttlMs),
    };
  }

  /**
   * Runs `fn` under the mint lock, after any mint in flight: for grant-level operations that must
   * not overlap a mint (revoking the refresh token, for one). `fn` must not call `getToken`.
   */
  protected exclusive<T>(fn: () => Promise<T>): Promise<T> {
    return this.#lock.runExclusive(fn);
  }

  /** Forgets the cached token, whatever it is. Call it inside {@link exclusive}. */
  protected async forgetToken(): Promise<void> {
    this.#hit = undefined;
    const stored = await this.#store.get();
    if (stored !== undefined) await this.#store.deleteIf(stored.accessToken);
  }

  #remember(token: CachedToken): void {
    this.#hit = { token, promise: Promise.resolve(token.accessToken) };
  }
}
