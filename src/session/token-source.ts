import { ConfigError } from '../errors.js';
import type { TokenInfo } from '../token-info.js';
import type { MintReason } from './diagnostics.js';

/** What a source's `mint` answers: one freshly minted token. */
export interface MintedToken {
  accessToken: string;
  /** The server-declared lifetime, when it sent `expires_in`. */
  expiresInMs?: number;
  /** What the token answer said about the token; see `getTokenInfo()`. */
  info?: TokenInfo | undefined;
  /**
   * How long ago it was minted, for a token a source had in hand (a shared store's): the cache
   * counts its lifetime from then. @default 0
   */
  ageMs?: number | undefined;
  /**
   * Whether it was minted to replace a rejected token (the rejection guard's flag, as a shared
   * store carries it). @default whether this mint's `reason` is `'invalidated'`
   */
  replacement?: boolean | undefined;
}

/** What the caching engine hands a source's `mint`. */
export interface MintContext {
  /**
   * The source's current single-use secret (a rotating refresh token): the one in the shared
   * store when there is one, else the last one this process saw.
   */
  readonly secret: string | undefined;
  /**
   * Adopts a rotated secret: kept in memory and written to the shared store (under the mint lock)
   * before it resolves. Never rejects.
   */
  adoptSecret(secret: string): Promise<void>;
  /** Why the engine mints: a cold cache, an expired or invalidated token, refresh-ahead, a retry. */
  readonly reason: MintReason;
  /**
   * The token being refreshed ahead of its expiry, if that is why: a source that has tokens in
   * hand (a shared store) must not answer this one.
   */
  readonly aheadOf?: string | undefined;
  /**
   * Aborted when the session closes: a source waiting on others (a fleet polling for another
   * process's token) stops. A token request already sent is never cut off by it (a rotated
   * refresh token must not be lost).
   */
  readonly signal?: AbortSignal | undefined;
}

/** One token request, no caching. */
export type MintFn = (context: MintContext) => Promise<MintedToken>;

/**
 * A session's identity in a shared store: the login URL, the client id, the grant and the user
 * (a username, or a hash of a secret: never the secret). `user` may be left out where the source
 * cannot tell; `storeKey` must then name it.
 */
export interface SourceIdentity {
  readonly loginUrl: string;
  readonly clientId: string;
  readonly grant: string;
  readonly user: string | undefined;
}

/**
 * What a grant is: how to mint one token, and what the caching engine must know to cache it.
 * Every grant file exports one (`clientCredentials(options)`, `jwtBearer(options)`…); wrap your own
 * in a `CachingSession` and it gets the cache, single-flight, compare-and-swap, refresh-ahead,
 * backoff, the rejection guard and, with an `identity`, a shared store, for free.
 *
 * @example
 * ```ts
 * const source: TokenSource = {
 *   instanceUrl: 'https://acme.my.salesforce.com',
 *   mint: async function mintFromVault() {
 *     return { accessToken: await vault.read('salesforce/token') };
 *   },
 * };
 * const session = new CachingSession(source);
 * ```
 */
export interface TokenSource {
  /** The org's instance URL: every token is for it. */
  readonly instanceUrl: string;
  /** One token request. Never called concurrently for one session; never cached by the source. */
  readonly mint: MintFn;
  /** What the source is called in events and log lines. @default the session's class name */
  readonly name?: string | undefined;
  /** The session's identity in a shared store; a source without one does not support `store`. */
  readonly identity?: SourceIdentity | undefined;
  /**
   * A single-use secret the mint consumes and may rotate (a refresh token). With a shared store it
   * lives in the store, and no mint runs outside it.
   */
  readonly secret?: string | undefined;
  /**
   * The longest one mint may take (the request timeout): a process waiting for another's mint
   * gives up after twice this (the request, then the rotation handler) plus the lock's TTL.
   * @default 30 s
   */
  readonly timeoutMs?: number | undefined;
  /** An access token already in hand (from a code exchange, say), used until it expires or is rejected. */
  readonly seed?: MintedToken | undefined;
  /** The `fetch` that `identity()` uses (the grant's own). @default globalThis.fetch */
  readonly fetch?: typeof fetch | undefined;
  /**
   * Optional: `staleToken` was rejected; a source that hands out tokens it holds (a shared store)
   * must not hand it out again. Called under the session's mint lock.
   */
  invalidate?(staleToken: string): Promise<void>;
  /**
   * Optional: runs `fn` with the source's current single-use secret while nobody mints with it,
   * then forgets the secret and any token everywhere the source keeps them (revocation).
   */
  retire?(fn: (secret: string | undefined) => Promise<void>): Promise<void>;
  /** Optional: stops the source's background work; the session's `close()` awaits it. */
  close?(): Promise<void>;
  /**
   * Optional: the session calls it once with a function through which the source may hand over a
   * token it learned outside a mint (a shared store that is reachable again); the session caches
   * it as if minted.
   */
  watch?(adopt: (token: MintedToken) => void): void;
}

/** Checks that `value` is a {@link TokenSource}, else a `ConfigError` naming `source`. */
export function tokenSourceOf(value: unknown): TokenSource {
  const source = value as Partial<TokenSource> | null;
  if (typeof source !== 'object' || source === null || typeof source.mint !== 'function')
    throw new ConfigError('source', 'must be a TokenSource: an object with a mint function');
  if (source.fetch !== undefined && typeof source.fetch !== 'function')
    throw new ConfigError('source.fetch', 'must be a function');
  if (source.secret !== undefined && (typeof source.secret !== 'string' || source.secret === ''))
    throw new ConfigError('source.secret', 'must be a non-empty string');
  return source as TokenSource;
}
