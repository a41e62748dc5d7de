import { hex, sha256 } from '../internal/runtime.js';
import type { TokenInfoRecord } from '../token-info.js';

/**
 * What a session's shared cache entry is keyed on: the login URL, the client id, the grant and the
 * user. `user` is a username, or a hash of a secret (never the secret itself).
 */
export interface SessionIdentity {
  readonly loginUrl: string;
  readonly clientId: string;
  readonly grant: string;
  readonly user: string;
}

/**
 * A token as a shared store keeps it: lifetimes are relative (milliseconds left), so processes
 * whose clocks differ, or a test's injected clock, agree on when it goes stale.
 */
export interface SharedToken {
  readonly accessToken: string;
  /** Until it is presumed dead. */
  readonly expiresInMs: number;
  /** Until sessions stop handing it out. */
  readonly staleInMs: number;
  /** Until a background refresh starts. */
  readonly refreshInMs: number;
  /**
   * Minted to replace a rejected token: a process that adopts it and sees it rejected before any
   * request with it succeeded holds minting back (the rejection guard), fleet-wide. A store keeps
   * it as written.
   */
  readonly replacement?: boolean | undefined;
  /** How long ago it was minted, when the writer said; a store adds the time it has been stored. */
  readonly ageMs?: number | undefined;
  /** Until the server said it dies (`expires_in`), when it said; a store counts it down. */
  readonly declaredInMs?: number | undefined;
  /**
   * What the token answer said about the token (org, user, scopes…), so every process of a fleet
   * answers the same `getTokenInfo()`. It holds an ID token when there is one: a store keeps it
   * as written, sealed like the access token.
   */
  readonly info?: TokenInfoRecord | undefined;
}

/** One session's entry in a shared store, as read. */
export interface SharedSlot {
  /** The current access token, if one is stored and decrypts, with the time it has left. */
  readonly token: SharedToken | undefined;
  /**
   * Whether an access token is stored that this store cannot read (it does not decrypt with this
   * store's key, or is not a value such a store writes). `token` is then `undefined`: the session
   * reports it and mints, and its write replaces the value.
   */
  readonly tokenUnreadable?: boolean | undefined;
  /**
   * The grant's current single-use secret (a rotating refresh token), if one is stored. One that
   * is stored but cannot be read makes `read` reject with a non-transient
   * TokenStoreError (`undecryptable`): it is never guessed at nor replaced.
   */
  readonly secret: string | undefined;
  /** Whether some process holds the mint lock. */
  readonly locked: boolean;
  /** The last mint's failure, while the fleet backs off from the token endpoint. */
  readonly failure?: SharedFailure | undefined;
}

/** A failed mint, shared so the whole fleet backs off together. */
export interface SharedFailure {
  /** The failure's error `code` (never its message). */
  readonly code: string;
  readonly transient: boolean;
  /** Consecutive failed mints across the fleet, so the window keeps doubling whoever tries next. */
  readonly failures: number;
  /** How long the fleet waits before the next token request. */
  readonly retryInMs: number;
}

/** A fenced write: applied only while the writer still holds the lock with `fence`. */
export interface SharedWrite {
  /**
   * Replaces the token, for `token.expiresInMs` (with 0 or less left, clears it instead), and
   * ends any shared backoff.
   */
  readonly token?: SharedToken;
  /** Opens a shared backoff window of `failure.retryInMs`. */
  readonly failure?: SharedFailure;
  /** Clears the token, the secret and any shared failure (after a revocation). */
  readonly clear?: boolean;
}

/**
 * A token store shared by many processes: what a session needs to mint once per fleet. Pass one as
 * the `store` option of any minting session; `RedisTokenStore` from
 * `cirrus-auth/redis` is the implementation we ship. Keys come from {@link sessionKey}; every
 * method rejects (never hangs) when the backend is unreachable, and the session then falls back to
 * minting in process.
 */
export interface SharedTokenStore {
  /** How long a mint lock lives unless renewed: a dead holder's lock frees itself after this. */
  readonly lockTtlMs: number;
  /** Reads one session's entry. */
  read(key: string): Promise<SharedSlot>;
  /** Takes the mint lock if free, answering its fencing value, else `undefined`. */
  acquire(key: string): Promise<string | undefined>;
  /**
   * Extends the lock held with `fence` so it lives at least `ttlMs` from now (never shortening
   * it); answers whether it was still held. A session asks for more than `lockTtlMs` before it
   * presents a single-use secret, so that the lock outlives the request even if the holder is
   * then cut off from the store: a store must honour `ttlMs`.
   */
  renew(key: string, fence: string, ttlMs?: number): Promise<boolean>;
  /** Frees the lock if it is still held with `fence`. */
  release(key: string, fence: string): Promise<void>;
  /** Writes while the lock is held with `fence`; answers whether it was. */
  write(key: string, fence: string, entry: SharedWrite): Promise<boolean>;
  /**
   * Stores a rotated `secret` if the stored one is still `presented` (or none is stored); answers
   * whether it did. Not fenced: a holder that lost its lock
   * mid-mint must still be able to store what it got. Idempotent: storing the `secret` already
   * stored answers true, so a retry after a lost answer (the write landed, the reply did not) is
   * no conflict.
   */
  swapSecret(key: string, presented: string, secret: string): Promise<boolean>;
  /** Clears the token only if it is still `staleToken` (compare-and-swap); answers whether it did. */
  deleteIf(key: string, staleToken: string): Promise<boolean>;
}

/**
 * The store key of a session: the grant in clear (for operators), then a hash of the login URL,
 * client id and user, so no secret, username or client id is readable in the key.
 */
export function sessionKey(identity: SessionIdentity): string {
  const digest = hex(
    sha256(JSON.stringify([identity.loginUrl, identity.clientId, identity.grant, identity.user])),
  ).slice(0, 40);
  return `${identity.grant}:${digest}`;
}

/** A stable, one-way stand-in for a secret in a key: its SHA-256, hex. */
export function secretFingerprint(secret: string): string {
  return hex(sha256(secret));
}

/** Whether `value` looks like a {@link SharedTokenStore}. */
export function isSharedTokenStore(value: unknown): value is SharedTokenStore {
  if (typeof value !== 'object' || value === null) return false;
  const store = value as Record<string, unknown>;
  return (
    typeof store.lockTtlMs === 'number' &&
    ['read', 'acquire', 'renew', 'release', 'write', 'swapSecret', 'deleteIf'].every(
      (name) => typeof store[name] === 'function',
    )
  );
}
