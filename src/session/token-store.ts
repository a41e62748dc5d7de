import type { TokenInfo } from '../token-info.js';

/** A token as a session caches it. Times are milliseconds on the session's clock. */
export interface CachedToken {
  readonly accessToken: string;
  /** When the token is presumed dead: the local TTL, capped by `expires_in` when sent. */
  readonly expiresAt: number;
  /** When the session stops handing the token out: `expiresAt` minus the expiry margin. */
  readonly staleAt: number;
  /** When a background refresh starts, while the token is still handed out. */
  readonly refreshAt: number;
  /**
   * When the server said the token dies (`expires_in`), if it said: only then is the token dead
   * at a time. Past the local TTL (`expiresAt`) it is served while minting fails, up to this.
   */
  readonly declaredExpiresAt?: number | undefined;
  /** When it was minted (or, from a shared store, about when), on the session's clock. */
  readonly obtainedAt?: number | undefined;
  /**
   * Minted to replace a rejected token, and no request has confirmed it yet: its rejection means a
   * new token does not cure the rejection (the rejection guard).
   */
  readonly replacement?: boolean | undefined;
  /** What the token answer said about it, when the grant told. */
  readonly info?: TokenInfo | undefined;
}

/** One token in process memory: a session's own copy, shared store or not. */
export class MemoryTokenStore {
  #token: CachedToken | undefined;

  get(): CachedToken | undefined {
    return this.#token;
  }

  set(token: CachedToken): void {
    this.#token = token;
  }

  clear(): void {
    this.#token = undefined;
  }

  deleteIf(staleToken: string): boolean {
    if (this.#token?.accessToken !== staleToken) return false;
    this.#token = undefined;
    return true;
  }
}
