import { ConfigError } from '../errors.js';
import { MAX_TIMER_MS, optionalFunction, optionsObject, positiveMs } from '../internal/options.js';
import { randomHex } from '../internal/runtime.js';
import type {
  SharedFailure,
  SharedSlot,
  SharedToken,
  SharedTokenStore,
  SharedWrite,
} from '../session/shared-store.js';
import { aged } from './aged.js';

/** Default `lockTtlMs` of {@link InMemoryTokenStore}, as for the Redis store. */
export const MEMORY_LOCK_TTL_MS = 10_000;

/** Options of {@link InMemoryTokenStore}. */
export interface InMemoryTokenStoreOptions {
  /**
   * How long the mint lock lives unless its holder renews it.
   * @default MEMORY_LOCK_TTL_MS (10 seconds)
   */
  lockTtlMs?: number | undefined;
  /**
   * The store's clock (its TTLs run on it), in epoch milliseconds: share one injected clock with
   * the sessions in a test instead of sleeping.
   * @default Date.now
   */
  now?: (() => number) | undefined;
}

interface Entry {
  token?: { readonly written: SharedToken; readonly expiresAt: number } | undefined;
  secret?: string | undefined;
  lock?: { readonly fence: string; expiresAt: number } | undefined;
  failure?: { readonly failure: SharedFailure; readonly expiresAt: number } | undefined;
}

/**
 * A {@link SharedTokenStore} in this process's memory: sessions built with the same instance share
 * one token, one mint lock and one rotating refresh token, exactly as the processes of a fleet do
 * through Redis (the same protocol, the same contract suite). For one process with several
 * sessions on the same credentials, and for tests: it is what `cirrus-auth`'s own fleet tests run
 * on where no `redis-server` is installed. Nothing survives the process.
 *
 * @example
 * ```ts
 * const store = new InMemoryTokenStore();
 * const a = new ClientCredentialsAuth({ ...options, store });
 * const b = new ClientCredentialsAuth({ ...options, store });
 * await Promise.all([a.getToken(), b.getToken()]); // one token request
 * ```
 */
export class InMemoryTokenStore implements SharedTokenStore {
  readonly lockTtlMs: number;
  readonly #now: () => number;
  readonly #entries = new Map<string, Entry>();

  constructor(options: InMemoryTokenStoreOptions = {}) {
    const o = optionsObject(options);
    this.lockTtlMs = positiveMs('lockTtlMs', o.lockTtlMs, MEMORY_LOCK_TTL_MS, MAX_TIMER_MS);
    const now = optionalFunction('now', o.now) ?? Date.now;
    if (!Number.isFinite(now())) throw new ConfigError('now', 'must return epoch milliseconds');
    this.#now = now;
  }

  async read(key: string): Promise<SharedSlot> {
    const entry = this.#live(key);
    const now = this.#now();
    return {
      token:
        entry.token === undefined
          ? undefined
          : aged(entry.token.written, entry.token.expiresAt - now),
      tokenUnreadable: false,
      secret: entry.secret,
      locked: entry.lock !== undefined,
      failure:
        entry.failure === undefined
          ? undefined
          : { ...entry.failure.failure, retryInMs: entry.failure.expiresAt - now },
    };
  }

  async acquire(key: string): Promise<string | undefined> {
    const entry = this.#live(key);
    if (entry.lock !== undefined) return undefined;
    const fence = randomHex(16);
    entry.lock = { fence, expiresAt: this.#now() + this.lockTtlMs };
    return fence;
  }

  async renew(key: string, fence: string, ttlMs = this.lockTtlMs): Promise<boolean> {
    const lock = this.#live(key).lock;
    if (lock?.fence !== fence) return false;
    // Never shortens: a longer lease taken before a secret is presented must hold.
    lock.expiresAt = Math.max(lock.expiresAt, this.#now() + Math.max(1, Math.ceil(ttlMs)));
    return true;
  }

  async release(key: string, fence: string): Promise<void> {
    const entry = this.#live(key);
    if (entry.lock?.fence === fence) entry.lock = undefined;
  }

  async write(key: string, fence: string, write: SharedWrite): Promise<boolean> {
    const entry = this.#live(key);
    if (entry.lock?.fence !== fence) return false;
    if (write.clear) {
      entry.token = undefined;
      entry.secret = undefined;
      entry.failure = undefined;
      return true;
    }
    const now = this.#now();
    if (write.token !== undefined) {
      entry.failure = undefined;
      const ttlMs = Math.floor(write.token.expiresInMs);
      entry.token = ttlMs > 0 ? { written: copy(write.token), expiresAt: now + ttlMs } : undefined;
    }
    if (write.failure !== undefined) {
      const { code, transient, failures } = write.failure;
      entry.failure = {
        failure: { code, transient, failures, retryInMs: 0 },
        expiresAt: now + Math.max(1, Math.floor(write.failure.retryInMs)),
      };
    }
    return true;
  }

  async swapSecret(key: string, presented: string, secret: string): Promise<boolean> {
    const entry = this.#live(key);
    // Storing the secret already stored succeeds: a retry after a lost answer is no conflict.
    if (entry.secret !== undefined && entry.secret !== presented && entry.secret !== secret) {
      return false;
    }
    entry.secret = secret;
    return true;
  }

  async deleteIf(key: string, staleToken: string): Promise<boolean> {
    const entry = this.#live(key);
    if (entry.token?.written.accessToken !== staleToken) return false;
    entry.token = undefined;
    return true;
  }

  /** Forgets every entry: tokens, secrets, locks and failures. */
  clear(): void {
    this.#entries.clear();
  }

  /** `util.inspect` and `JSON.stringify` show how many entries it holds, never a token. */
  toJSON(): { type: string; entries: number } {
    return { type: 'InMemoryTokenStore', entries: this.#entries.size };
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `InMemoryTokenStore { entries: ${this.#entries.size} }`;
  }

  /** `key`'s entry with whatever has expired dropped, as a backend's TTLs would. */
  #live(key: string): Entry {
    let entry = this.#entries.get(key);
    if (entry === undefined) {
      entry = {};
      this.#entries.set(key, entry);
    }
    const now = this.#now();
    if (entry.token !== undefined && entry.token.expiresAt <= now) entry.token = undefined;
    if (entry.lock !== undefined && entry.lock.expiresAt <= now) entry.lock = undefined;
    if (entry.failure !== undefined && entry.failure.expiresAt <= now) entry.failure = undefined;
    return entry;
  }
}

/**
 * A stored copy: what a caller later does to the object it wrote does not change the store.
 * Strings are immutable, so they are shared, not duplicated (a JSON round trip would copy each).
 */
function copy(token: SharedToken): SharedToken {
  const { info } = token;
  if (typeof info !== 'object' || info === null) return { ...token };
  const scopes = Array.isArray(info.scopes) ? [...info.scopes] : info.scopes;
  return { ...token, info: { ...info, scopes } };
}
