import type { TokenInfo } from '../token-info.js';

/** Options for {@link AuthSession.getToken}. */
export interface GetTokenOptions {
  /**
   * Aborts this caller's wait only (rejecting with the signal's reason). A token request already
   * under way for other callers goes on and its result is cached.
   */
  signal?: AbortSignal | undefined;
}

/**
 * A source of access tokens for one Salesforce org: the contract every session implements and
 * every adapter consumes.
 *
 * @example
 * ```ts
 * const token = await session.getToken();
 * const res = await fetch(`${session.instanceUrl}/services/data/v62.0/limits`, {
 *   headers: { authorization: `Bearer ${token}` },
 * });
 * if (res.status === 401) await session.invalidate(token); // the next getToken() re-mints
 * ```
 */
export interface AuthSession {
  /** The org's instance URL, normalised (no trailing slash). API requests go here. */
  readonly instanceUrl: string;
  /**
   * Resolves to a usable access token. Safe to call concurrently; at most one token request runs
   * per session, and every caller waiting for it gets its token or its error.
   */
  getToken(options?: GetTokenOptions): Promise<string>;
  /**
   * Tells the session that `staleToken` was rejected. Compare-and-swap: the cache is cleared only if
   * it still holds `staleToken`, so a late report about an old token never evicts a newer one.
   */
  invalidate(staleToken: string): Promise<void>;
  /**
   * Optional: tells the session that a request with `acceptedToken` succeeded. Adapters call it
   * when the org answered a request with anything but an auth failure. A session
   * uses it for the rejection guard: a token it minted that is rejected before any request with it
   * succeeded means the org refuses every token, and minting again would only burn logins.
   */
  confirm?(acceptedToken: string): void;
  /**
   * Optional: what the token answer said about the current token (org, user, scopes…), minting
   * first if needed. Every session cirrus-auth ships has it; the jsforce adapter fills
   * `conn.userInfo` from it.
   */
  getTokenInfo?(options?: GetTokenOptions): Promise<TokenInfo>;
}

/**
 * Internal: a session's synchronous hot path, for adapters. `session[peekToken]()` answers the
 * token `getToken()` would hand out at once, without a mint, a clock read or any side effect, or
 * `undefined` when `getToken()` has work to do; an adapter then calls `getToken()` as usual.
 */
export const peekToken: unique symbol = Symbol.for('cirrus-auth.peekToken');

/** A session's {@link peekToken}, bound, when it has one. */
export function peekOf(session: AuthSession): (() => string | undefined) | undefined {
  const peek = (session as { [peekToken]?: unknown })[peekToken];
  return typeof peek === 'function' ? (peek as () => string | undefined).bind(session) : undefined;
}

/**
 * Internal: what adapters need from a SessionPool: a tenant's session, at once when it is open
 * (no promise on the hot path), else once the pool has opened it.
 */
export const tenantSessions: unique symbol = Symbol.for('cirrus-auth.tenantSessions');

/** Something that hands out one session per tenant: a `SessionPool`. */
export interface TenantSessions {
  [tenantSessions](tenant: string, signal?: AbortSignal): AuthSession | Promise<AuthSession>;
}

/** Whether `value` is a {@link TenantSessions} (a `SessionPool`), not a session. */
export function isTenantSessions(value: unknown): value is TenantSessions {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { [tenantSessions]?: unknown })[tenantSessions] === 'function'
  );
}
