/** A token as a session caches it. Times are milliseconds on the session's clock. */
export interface CachedToken {
  readonly accessToken: string;
  /** When the token is presumed dead: the local TTL, capped by `expires_in` when sent. */
  readonly expiresAt: number;
  /** When the session stops handing the token out: `expiresAt` minus the expiry margin. */
  readonly staleAt: number;
  /** When a background refresh starts, while the token is still handed out. */
  readonly refreshAt: number;
}

/**
 * Where a session keeps its current token. The default keeps it in process memory; a shared
 * store (for example one backed by Redis) implements the same three operations. Every call is made
 * under the session's mint lock, so a store sees no overlapping calls from one session.
 */
export interface TokenStore {
  /** The current token, if any. */
  get(): CachedToken | undefined | Promise<CachedToken | undefined>;
  /** Replaces the current token. */
  set(token: CachedToken): void | Promise<void>;
  /** Clears the current token only if it is `staleToken`; answers whether it did. */
  deleteIf(staleToken: string): boolean | Promise<boolean>;
}

/** The default {@link TokenStore}: one token in process memory. */
export class MemoryTokenStore implements TokenStore {
  #token: CachedToken | undefined;

  get(): CachedToken | undefined {
    return this.#token;
  }

  set(token: CachedToken): void {
    this.#token = token;
  }

  deleteIf(staleToken: string): boolean {
    if (this.#token?.accessToken !== staleToken) return false;
    this.#token = undefined;
    return true;
  }
}
