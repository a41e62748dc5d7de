import {
  AuthError,
  ErrorCode,
  OAuthError,
  ResponseTooLargeError,
  SessionClosedError,
  type SharedBackoffError,
  TokenStoreError,
  UnexpectedResponseError,
} from '../errors.js';
import { tokenInfoFromRecord, tokenInfoRecord } from '../token-info.js';
import { type Logger, type MintReason, publish } from './diagnostics.js';
import type {
  SharedFailure,
  SharedSlot,
  SharedToken,
  SharedTokenStore,
  SharedWrite,
} from './shared-store.js';
import type { CachedToken } from './token-store.js';

/** While a shared store is unreachable, how often a session checks whether it is back. */
export const STORE_REJOIN_INTERVAL_MS = 1_000;

/** How many recently invalidated tokens a session remembers, so a shared store never hands one back. */
const REJECTED_TOKENS_KEPT = 16;

/** What a fleet member needs from the caching engine it serves. */
export interface FleetHost {
  /** The session's class name, for events and logs. */
  readonly session: string;
  readonly instanceUrl: string;
  readonly logger: Logger | undefined;
  /** Whether failed mints open a backoff window (`backoff` is not `false`). */
  readonly backsOff: boolean;
  now(): number;
  isClosed(): boolean;
  /** One token request, with the engine's events, logs and backoff bookkeeping. */
  mint(
    reason: MintReason,
    secret: string | undefined,
    adoptSecret: (secret: string) => Promise<void>,
  ): Promise<CachedToken>;
  /** The backoff window `error` opened in this process, if it opened one. */
  windowOf(error: unknown): { failures: number; retryAt: number } | undefined;
  /** Joins a backoff window another process opened; answers the error callers get meanwhile. */
  joinBackoff(failure: SharedFailure): SharedBackoffError;
  /** Caches a token in this process. */
  adopt(token: CachedToken): void;
  /** The token this process holds, if any. */
  cached(): CachedToken | undefined;
  /** Runs `fn` under the session's mint lock. */
  exclusive<T>(fn: () => Promise<T>): Promise<T>;
}

/**
 * One session's membership of a fleet sharing a {@link SharedTokenStore}: fleet-wide
 * single-flight (one process mints under a fenced, renewed lock; the others poll for its token),
 * fleet-wide compare-and-swap invalidation, a rotating secret kept in the store and never
 * presented twice, a shared backoff window, and falling back to in-process minting while the
 * store is unreachable (then rejoining). Every method but `invalidate` and `close` runs under the
 * session's mint lock.
 */
export class FleetMember {
  readonly #store: SharedTokenStore;
  readonly #key: string;
  readonly #host: FleetHost;
  /** The longest one mint may take (the grant's request timeout). */
  readonly #mintTimeoutMs: number;
  /** The grant's single-use secret, as last read from the store or adopted. */
  #secret: string | undefined;
  /** A rotated secret the store missed, and the one presented to get it. */
  #unsaved: { presented: string } | undefined;
  /** While a rotated secret is retried into the store: one last attempt, for close(). */
  #flushing: { finish(): Promise<void> } | undefined;
  /** True while the store is unreachable and this process mints on its own. */
  #degraded = false;
  #rejoinTimer: NodeJS.Timeout | undefined;
  /** Tokens this process invalidated lately: a store that still holds one is not believed. */
  readonly #rejected: string[] = [];

  constructor(
    store: SharedTokenStore,
    key: string,
    host: FleetHost,
    mintTimeoutMs: number,
    secret: string | undefined,
  ) {
    this.#store = store;
    this.#key = key;
    this.#host = host;
    this.#mintTimeoutMs = mintTimeoutMs;
    this.#secret = secret;
  }

  /** Whether the store is unreachable for now (the session mints in process). */
  get degraded(): boolean {
    return this.#degraded;
  }

  /** Whether the grant has a single-use secret: then it never mints outside the store. */
  get hasSecret(): boolean {
    return this.#secret !== undefined;
  }

  /**
   * The fleet-wide refresh: use the shared token if it is good; else take the shared lock and
   * mint, or wait (polling) while another process holds it. A dead holder's lock expires after
   * `lockTtlMs`, and a waiter then takes it. Rejects with a transient TokenStoreError when the
   * store fails (the caller then degrades).
   */
  async refresh(reason: MintReason, aheadOf: string | undefined): Promise<string> {
    const fence = await this.#acquire((slot) => {
      const usable = this.#usable(slot.token, aheadOf);
      if (usable !== undefined) {
        this.#host.adopt(usable);
        return usable.accessToken;
      }
      // Another process's mint just failed: back off with the fleet instead of asking again.
      if (slot.failure !== undefined && this.#host.backsOff) {
        throw this.#host.joinBackoff(slot.failure);
      }
      return undefined;
    });
    if (typeof fence !== 'object') return fence;
    return await this.#mintHolding(fence.fence, reason);
  }

  /** Records `staleToken` as rejected and clears it from the store if it is still the shared one. */
  async invalidate(staleToken: string): Promise<void> {
    this.#rejected.push(staleToken);
    if (this.#rejected.length > REJECTED_TOKENS_KEPT) this.#rejected.shift();
    if (this.#degraded) return;
    try {
      await guard(() => this.#store.deleteIf(this.#key, staleToken));
    } catch (error) {
      this.degrade(error);
    }
  }

  /**
   * Runs `fn` with the fleet's current secret while holding the fleet's lock (renewed), then
   * clears the entry: for revocation. While the store is unreachable it rejects instead: the
   * secret this process knows may be one the fleet has rotated since.
   */
  async retire(fn: (secret: string | undefined) => Promise<void>): Promise<void> {
    if (this.#degraded) throw new TokenStoreError('unavailable');
    const taken = await this.#acquire(() => undefined);
    const fence = (taken as { fence: string }).fence;
    const renewal = this.#renewing(fence);
    try {
      await fn(this.#secret);
      if (!(await guard(() => this.#store.write(this.#key, fence, { clear: true })))) {
        throw new TokenStoreError('lock-wait');
      }
    } finally {
      clearInterval(renewal);
      await this.#release(fence);
    }
  }

  /** Stops probing, and gives a rotated secret the store missed one last chance to reach it. */
  async close(): Promise<void> {
    clearInterval(this.#rejoinTimer);
    await this.#flushing?.finish();
  }

  /**
   * The store failed (transiently): the session mints in process from now on, and checks every
   * so often whether the store is back. A non-transient failure (a value that does not decrypt)
   * is no outage.
   */
  degrade(error: unknown): void {
    if (this.#degraded || this.#host.isClosed()) return;
    if (error instanceof AuthError && !error.transient) return;
    this.#degraded = true;
    const event = {
      session: this.#host.session,
      instanceUrl: this.#host.instanceUrl,
      outcome: 'unavailable' as const,
      code: error instanceof AuthError ? error.code : 'ERR_UNKNOWN',
    };
    publish('store', () => event);
    this.#host.logger?.warn?.(
      event,
      'cirrus-auth: shared token store unavailable; minting in process',
    );
    let probing = false;
    this.#rejoinTimer = setInterval(() => {
      if (probing) return;
      probing = true;
      this.#host
        .exclusive(() => this.#rejoin())
        .catch(() => {})
        .finally(() => {
          probing = false;
        });
    }, STORE_REJOIN_INTERVAL_MS);
    this.#rejoinTimer.unref();
  }

  /**
   * Polls the entry until `done` finds what it needs in it (answered as a string), or the lock
   * is free, then takes the lock (answered as `{ fence }`). Gives up
   * (TokenStoreError 'lock-wait') after a live holder's longest possible hold.
   */
  async #acquire(
    done: (slot: SharedSlot) => string | undefined,
  ): Promise<string | { fence: string }> {
    const store = this.#store;
    const key = this.#key;
    const giveUpAt = performance.now() + this.#holdBoundMs();
    let pauseMs = 5;
    let reported = false;
    for (;;) {
      if (this.#host.isClosed()) throw new SessionClosedError();
      const slot = await guard(() => store.read(key));
      this.#learnSecret(slot);
      if (slot.tokenUnreadable && !reported) {
        reported = true;
        this.#reportUnreadable();
      }
      const found = done(slot);
      if (found !== undefined) return found;
      if (!slot.locked) {
        const fence = await guard(() => store.acquire(key));
        if (fence !== undefined) {
          // Another process may have written between our read and our lock: read again.
          let late: string | undefined;
          let again: SharedSlot;
          try {
            again = await guard(() => store.read(key));
            this.#learnSecret(again);
            late = done(again);
          } catch (error) {
            await this.#release(fence);
            throw error;
          }
          if (late === undefined) return { fence };
          await this.#release(fence);
          return late;
        }
      }
      if (performance.now() > giveUpAt) throw new TokenStoreError('lock-wait');
      await new Promise((resolve) => setTimeout(resolve, pauseMs));
      pauseMs = Math.min(pauseMs * 2, 50);
    }
  }

  /**
   * How long a live holder may keep the lock: its token request and its rotation handler, each
   * bounded by the mint timeout, plus the lock's TTL. Waiters give up after this.
   */
  #holdBoundMs(): number {
    return 2 * this.#mintTimeoutMs + this.#store.lockTtlMs;
  }

  /** Renews the lock every third of its TTL until stopped (a longer lease is left as it is). */
  #renewing(fence: string): NodeJS.Timeout {
    const renewal = setInterval(
      () => {
        Promise.resolve()
          .then(() => this.#store.renew(this.#key, fence))
          .catch(() => {});
      },
      Math.max(1, Math.floor(this.#store.lockTtlMs / 3)),
    );
    renewal.unref();
    return renewal;
  }

  async #release(fence: string): Promise<void> {
    await Promise.resolve()
      .then(() => this.#store.release(this.#key, fence))
      .catch(() => {});
  }

  /**
   * Mints while holding the lock with `fence`, renewing it until the mint settles. A rotated
   * secret the store missed keeps the lock held, renewed and retried until it is stored: until
   * then nobody else presents the old one.
   */
  async #mintHolding(fence: string, reason: MintReason): Promise<string> {
    const store = this.#store;
    const key = this.#key;
    const renewal = this.#renewing(fence);
    let keep = false;
    try {
      const presented = this.#secret;
      if (presented !== undefined) await this.#leaseForPresenting(fence);
      let token: CachedToken;
      try {
        token = await this.#host.mint(reason, presented, async (secret) => {
          this.#secret = secret;
          this.#unsaved = { presented: presented as string };
          try {
            if (await guard(() => store.swapSecret(key, presented as string, secret))) {
              this.#unsaved = undefined;
            }
          } catch {
            // Retried while the lock stays held (see below).
          }
        });
      } catch (error) {
        // Share the backoff window this failure opened, when the token endpoint caused it (not
        // this process's own key, config or network): the fleet waits it out together.
        const window = this.#host.windowOf(error);
        if (window !== undefined && fromTokenEndpoint(error)) {
          const failure = {
            code: (error as AuthError).code,
            transient: (error as AuthError).transient,
            failures: window.failures,
            retryInMs: window.retryAt - this.#host.now(),
          };
          await this.#write(fence, { failure });
        }
        throw error;
      } finally {
        keep = this.#unsaved !== undefined;
      }
      this.#host.adopt(token);
      if (!(await this.#write(fence, { token: this.#sharedToken(token) }))) {
        this.#host.logger?.warn?.(
          { session: this.#host.session, instanceUrl: this.#host.instanceUrl },
          'cirrus-auth: the shared token store missed a new token',
        );
      }
      return token.accessToken;
    } finally {
      if (keep) this.#keepUntilSaved(fence, renewal);
      else {
        clearInterval(renewal);
        await this.#release(fence);
      }
    }
  }

  /**
   * Before a single-use secret is presented: extends the lock to outlive the token request (its
   * timeout, plus one `lockTtlMs` to store what comes back), awaiting Redis's answer, and refuses
   * if the lock is no longer ours or the lease may be short. The renewals that run meanwhile are
   * fire-and-forget, so a holder cut off from the store mid-request cannot renew; with only
   * `lockTtlMs` (10 s by default, under the 30 s request timeout) its lock would expire while
   * Salesforce still had the request, and the next process to take it would present the same
   * secret and get the whole token family revoked.
   */
  async #leaseForPresenting(fence: string): Promise<void> {
    const store = this.#store;
    const asked = performance.now();
    const leased = await guard(() =>
      store.renew(this.#key, fence, this.#mintTimeoutMs + store.lockTtlMs),
    );
    if (!leased) throw new TokenStoreError('lock-wait');
    // The lease started no earlier than `asked`: it outlives the request only if the renewal
    // took less than the margin.
    if (performance.now() - asked >= store.lockTtlMs) throw new TokenStoreError('unavailable');
  }

  /**
   * Retries storing a rotated secret every third of the lock's TTL, keeping the lock renewed
   * meanwhile; frees them once stored (or once the store holds another lineage).
   */
  #keepUntilSaved(fence: string, renewal: NodeJS.Timeout): void {
    const halt = () => {
      clearInterval(retry);
      clearInterval(renewal);
      this.#flushing = undefined;
    };
    const stop = async () => {
      halt();
      await this.#release(fence);
    };
    // One attempt at a time, whether the timer or close() asks.
    let running: Promise<void> | undefined;
    const once = () => {
      running ??= attempt().finally(() => {
        running = undefined;
      });
      return running;
    };
    const attempt = async (): Promise<void> => {
      const unsaved = this.#unsaved;
      const secret = this.#secret;
      if (unsaved === undefined || secret === undefined) return stop();
      if (!(await guard(() => this.#store.swapSecret(this.#key, unsaved.presented, secret)))) {
        // The fleet moved on without it (the lock expired while this process was cut off).
        this.#host.logger?.warn?.(
          { session: this.#host.session, instanceUrl: this.#host.instanceUrl },
          'cirrus-auth: a rotated refresh token was superseded in the shared store',
        );
      }
      this.#unsaved = undefined;
      await stop();
    };
    const retry = setInterval(
      () => {
        once().catch(() => {});
      },
      Math.max(1, Math.floor(this.#store.lockTtlMs / 3)),
    );
    retry.unref();
    // On close, a last attempt; if it fails too the lock is left to expire (nobody will store it).
    this.#flushing = { finish: () => once().catch(halt) };
  }

  /** A token as the store keeps it: the time it has left, not this clock's readings. */
  #sharedToken(token: CachedToken): SharedToken {
    const now = this.#host.now();
    return {
      accessToken: token.accessToken,
      expiresInMs: token.expiresAt - now,
      staleInMs: token.staleAt - now,
      refreshInMs: token.refreshAt - now,
      ageMs: Math.max(0, now - (token.obtainedAt ?? now)),
      ...(token.declaredExpiresAt === undefined
        ? {}
        : { declaredInMs: token.declaredExpiresAt - now }),
      ...(token.replacement === true ? { replacement: true } : {}),
      ...(token.info === undefined ? {} : { info: tokenInfoRecord(token.info) }),
    };
  }

  /** Takes the fleet's current secret, unless this process holds a newer one the store missed. */
  #learnSecret(slot: SharedSlot): void {
    if (slot.secret !== undefined && this.#unsaved === undefined) this.#secret = slot.secret;
  }

  /**
   * The store holds an access token this process cannot read: it is treated as none, so the
   * fleet mints and overwrites it instead of failing every refresh until someone deletes it.
   */
  #reportUnreadable(): void {
    const event = {
      session: this.#host.session,
      instanceUrl: this.#host.instanceUrl,
      outcome: 'unreadable' as const,
      code: ErrorCode.TOKEN_STORE,
    };
    publish('store', () => event);
    this.#host.logger?.warn?.(
      event,
      'cirrus-auth: the shared access token is unreadable (another encryptionKey, or not ours); replacing it',
    );
  }

  /** A fenced write that never throws: an unreachable store degrades. */
  async #write(fence: string, entry: SharedWrite): Promise<boolean> {
    try {
      return await guard(() => this.#store.write(this.#key, fence, entry));
    } catch (error) {
      this.degrade(error);
      return false;
    }
  }

  /** A shared token this session may hand out (fresh, not being refreshed, not rejected), on its clock. */
  #usable(shared: SharedToken | undefined, aheadOf?: string): CachedToken | undefined {
    if (shared === undefined || shared.staleInMs <= 0) return undefined;
    if (shared.accessToken === aheadOf || this.#rejected.includes(shared.accessToken)) {
      return undefined;
    }
    const now = this.#host.now();
    const info = tokenInfoFromRecord(shared.info);
    return {
      accessToken: shared.accessToken,
      expiresAt: now + shared.expiresInMs,
      staleAt: now + shared.staleInMs,
      refreshAt: now + shared.refreshInMs,
      obtainedAt: now - (shared.ageMs ?? 0),
      ...(shared.declaredInMs === undefined
        ? {}
        : { declaredExpiresAt: now + shared.declaredInMs }),
      ...(shared.replacement === true ? { replacement: true } : {}),
      ...(info === undefined ? {} : { info }),
    };
  }

  /**
   * Runs under the lock while degraded: if the store answers, adopt its token or, when it has
   * none, offer ours, so the fleet converges on one token again.
   */
  async #rejoin(): Promise<void> {
    if (!this.#degraded || this.#host.isClosed()) return;
    const store = this.#store;
    const key = this.#key;
    let usable: CachedToken | undefined;
    try {
      const slot = await guard(() => store.read(key));
      this.#learnSecret(slot);
      if (slot.tokenUnreadable) this.#reportUnreadable();
      usable = this.#usable(slot.token);
      // Someone is writing (perhaps another process offering its token): look again next time.
      if (usable === undefined && slot.locked) return;
      const local = this.#host.cached();
      if (usable === undefined && local !== undefined && this.#host.now() < local.staleAt) {
        const fence = await guard(() => store.acquire(key));
        if (fence === undefined) return;
        try {
          usable = this.#usable((await guard(() => store.read(key))).token);
          if (usable === undefined) {
            const token = this.#sharedToken(local);
            if (!(await guard(() => store.write(key, fence, { token })))) return;
          }
        } finally {
          await this.#release(fence);
        }
      }
    } catch {
      return;
    }
    if (usable !== undefined) this.#host.adopt(usable);
    this.#degraded = false;
    clearInterval(this.#rejoinTimer);
    const event = {
      session: this.#host.session,
      instanceUrl: this.#host.instanceUrl,
      outcome: 'rejoined' as const,
      code: undefined,
    };
    publish('store', () => event);
    this.#host.logger?.info?.(event, 'cirrus-auth: shared token store is back');
  }
}

/** Any failure of a shared store, as a transient {@link TokenStoreError} (kept if it is one). */
export async function guard<T>(operation: () => Promise<T>): Promise<T> {
  try {
    return await operation();
  } catch (error) {
    if (error instanceof TokenStoreError) throw error;
    throw new TokenStoreError('unavailable', { cause: error });
  }
}

/**
 * Whether a failed mint is the token endpoint's doing, and so the same for every process: an
 * OAuth error, an answer that is not a token (a 5xx, a 429, HTML), or one too large.
 */
function fromTokenEndpoint(error: unknown): boolean {
  return (
    error instanceof OAuthError ||
    error instanceof UnexpectedResponseError ||
    error instanceof ResponseTooLargeError
  );
}
