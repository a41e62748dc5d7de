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
   * Whether `expiresAt` is the server's (`expires_in`): only then is the token dead at
   * `expiresAt`. Otherwise it is the local TTL's guess, and the token is served past it while
   * minting fails.
   */
  readonly declared?: boolean | undefined;
  /**
   * Minted to replace a rejected token, and no request has confirmed it yet: its rejection means a
   * new token does not cure the rejection (the rejection guard).
   */
  readonly replacement?: boolean | undefined;
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
