import {
  AuthError,
  ErrorCode,
  OAuthError,
  ResponseTooLargeError,
  SessionClosedError,
  SharedBackoffError,
  TokenStoreError,
  UnexpectedResponseError,
} from '../errors.js';
import { unrefTimer } from '../internal/runtime.js';
import { tokenInfoFromRecord, tokenInfoRecord } from '../token-info.js';
import { type BackoffPolicy, retryWindowMs } from './backoff.js';
import { type Logger, publish } from './diagnostics.js';
import { type LifetimePolicy, lifetimesOf } from './lifetimes.js';
import type { SharedSlot, SharedToken, SharedTokenStore, SharedWrite } from './shared-store.js';
import type { MintContext, MintedToken, TokenSource } from './token-source.js';

const noop = () => {};
/** The settled promise every idle fleet source's queue ends in. */
const IDLE: Promise<unknown> = Promise.resolve();

/** While a shared store is unreachable, how often a session checks whether it is back. */
export const STORE_REJOIN_INTERVAL_MS = 1_000;

/** How many recently invalidated tokens a session remembers, so a shared store never hands one back. */
const REJECTED_TOKENS_KEPT = 16;

/** What a fleet source is told when it is built: plain values, never a way back into the engine. */
export interface FleetOptions {
  /** The session's name, for events and logs. */
  readonly session: string;
  readonly instanceUrl: string;
  readonly logger: Logger | undefined;
  /** The session's clock. */
  readonly now: () => number;
  /** The session's backoff; a failed mint's window is shared through the store. */
  readonly backoff: BackoffPolicy | undefined;
  /** The session's lifetime rules, for the times written with a token. */
  readonly lifetimes: LifetimePolicy;
  /** The longest one mint may take (the grant's request timeout). */
  readonly mintTimeoutMs: number;
}

/**
 * A {@link TokenSource} around another one and a {@link SharedTokenStore}: the fleet as a
 * wrapper. Fleet-wide single-flight (one process mints under a fenced, renewed lock; the others
 * poll for its token), fleet-wide compare-and-swap invalidation, a rotating secret kept in the
 * store and never presented twice, a shared backoff window, and minting in process while the store
 * is unreachable (then rejoining). The caching engine sees only a source: it calls `mint`,
 * `invalidate`, `retire` and `close`, and gets tokens back through `watch`. Its own methods run one
 * at a time (its mutex), so a rejoin never races a mint.
 */
export class FleetSource implements TokenSource {
  readonly instanceUrl: string;
  readonly name: string;
  readonly #inner: TokenSource;
  readonly #store: SharedTokenStore;
  readonly #key: string;
  readonly #o: FleetOptions;
  /**
   * The tail of this source's queue of operations (mint, retire, rejoin), which run one at a time.
   * A promise chain rather than the engine's async-mutex: an idle source then holds one shared
   * settled promise, not a mutex, its semaphore and their queues (a SessionPool keeps thousands).
   */
  #tail: Promise<unknown> = IDLE;
  /** The inner source's single-use secret, as last read from the store or adopted. */
  #secret: string | undefined;
  /** A rotated secret the store missed, and the one presented to get it. */
  #unsaved: { presented: string } | undefined;
  /** While a rotated secret is retried into the store: one last attempt, for close(). */
  #flushing: { finish(): Promise<void> } | undefined;
  /** True while the store is unreachable and this process mints on its own. */
  #degraded = false;
  #closed = false;
  #rejoinTimer: ReturnType<typeof setTimeout> | undefined;
  /** Tokens this process invalidated lately: a store that still holds one is not believed. */
  readonly #rejected: string[] = [];
  /** Consecutive failed mints, as this process counts them (the store's count wins when higher). */
  #failures = 0;
  /** The last token this source handed out, with when it was obtained on the session's clock. */
  #last: { readonly token: MintedToken; readonly obtainedAt: number } | undefined;
  /** Where the engine takes tokens learned outside a mint. */
  #adopt: ((token: MintedToken) => void) | undefined;

  constructor(inner: TokenSource, store: SharedTokenStore, key: string, options: FleetOptions) {
    this.instanceUrl = inner.instanceUrl;
    this.name = options.session;
    this.#inner = inner;
    this.#store = store;
    this.#key = key;
    this.#o = options;
    this.#secret = inner.secret;
  }

  /**
   * The fleet-wide mint: the shared token if it is good; else take the shared lock and mint
   * through the inner source, or wait (polling) while another process holds it. A dead holder's
   * lock expires after `lockTtlMs`, and a waiter then takes it. While the store is unreachable the
   * inner source mints in process, except with a single-use secret: two processes presenting the
   * same rotating refresh token revoke its whole family, so then it rejects (TokenStoreError).
   */
  mint(context: MintContext): Promise<MintedToken> {
    return this.#exclusive(() => this.#mint(context));
  }

  async #mint(context: MintContext): Promise<MintedToken> {
    if (!this.#degraded) {
      try {
        return await this.#refresh(context);
      } catch (error) {
        if (!(error instanceof TokenStoreError && error.transient)) throw error;
        // A lock held too long is no outage: mint here this once, stay with the fleet.
        if (error.problem !== 'lock-wait') this.#degrade(error);
      }
    }
    if (this.#secret !== undefined) throw new TokenStoreError('unavailable');
    return this.#handOut(await this.#inner.mint(context), this.#o.now());
  }

  /** Records `staleToken` as rejected and clears it from the store if it is still the shared one. */
  async invalidate(staleToken: string): Promise<void> {
    this.#rejected.push(staleToken);
    if (this.#rejected.length > REJECTED_TOKENS_KEPT) this.#rejected.shift();
    if (this.#last?.token.accessToken === staleToken) this.#last = undefined;
    if (this.#degraded) return;
    try {
      await guard(() => this.#store.deleteIf(this.#key, staleToken));
    } catch (error) {
      this.#degrade(error);
    }
  }

  /**
   * Runs `fn` with the fleet's current secret while holding the fleet's lock (renewed), then
   * clears the entry: for revocation. While the store is unreachable it rejects instead: the
   * secret this process knows may be one the fleet has rotated since.
   */
  retire(fn: (secret: string | undefined) => Promise<void>): Promise<void> {
    return this.#exclusive(async () => {
      if (this.#degraded) throw new TokenStoreError('unavailable');
      const taken = await this.#acquire(undefined, () => undefined);
      const fence = (taken as { fence: string }).fence;
      const renewal = this.#renewing(fence);
      try {
        await fn(this.#secret);
        if (!(await guard(() => this.#store.write(this.#key, fence, { clear: true })))) {
          throw new TokenStoreError('lock-wait');
        }
        this.#last = undefined;
      } finally {
        clearInterval(renewal);
        await this.#release(fence);
      }
    });
  }

  /** Stops probing, and gives a rotated secret the store missed one last chance to reach it. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#rejoinTimer);
    await this.#flushing?.finish();
    await this.#inner.close?.();
  }

  /** Runs `fn` once every operation queued before it has settled. */
  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(fn, fn);
    const tail = result.then(noop, noop);
    this.#tail = tail;
    // Back to the shared settled promise once nothing is queued behind this one.
    tail.then(() => {
      if (this.#tail === tail) this.#tail = IDLE;
    });
    return result;
  }

  watch(adopt: (token: MintedToken) => void): void {
    this.#adopt = adopt;
  }

  /** Remembers what was handed out (to offer it to the store on rejoin) and hands it out. */
  #handOut(token: MintedToken, obtainedAt: number): MintedToken {
    this.#last = { token, obtainedAt };
    this.#failures = 0;
    return token;
  }

  async #refresh(context: MintContext): Promise<MintedToken> {
    const fence = await this.#acquire(context.signal, (slot) => {
      const usable = this.#usable(slot.token, context.aheadOf);
      if (usable !== undefined) return usable;
      // Another process's mint just failed: back off with the fleet instead of asking again.
      if (slot.failure !== undefined && this.#o.backoff !== undefined) {
        const { code, transient, failures, retryInMs } = slot.failure;
        this.#failures = Math.max(this.#failures, failures);
        throw new SharedBackoffError(code, transient, retryInMs);
      }
      return undefined;
    });
    if (!('fence' in fence)) return this.#handOut(fence, this.#o.now() - (fence.ageMs ?? 0));
    return await this.#mintHolding(fence.fence, context);
  }

  /**
   * The store failed (transiently): the session mints in process from now on, and checks every
   * so often whether the store is back. A non-transient failure (a value that does not decrypt)
   * is no outage.
   */
  #degrade(error: unknown): void {
    if (this.#degraded || this.#closed) return;
    if (error instanceof AuthError && !error.transient) return;
    this.#degraded = true;
    const event = {
      session: this.#o.session,
      instanceUrl: this.#o.instanceUrl,
      outcome: 'unavailable' as const,
      code: error instanceof AuthError ? error.code : 'ERR_UNKNOWN',
    };
    publish('store', () => event);
    this.#o.logger?.warn?.(
      event,
      'cirrus-auth: shared token store unavailable; minting in process',
    );
    let probing = false;
    this.#rejoinTimer = setInterval(() => {
      if (probing) return;
      probing = true;
      this.#exclusive(() => this.#rejoin())
        .catch(() => {})
        .finally(() => {
          probing = false;
        });
    }, STORE_REJOIN_INTERVAL_MS);
    unrefTimer(this.#rejoinTimer);
  }

  /**
   * Polls the entry until `done` finds a token in it, or the lock is free, then takes the lock
   * (answered as `{ fence }`). Gives up (TokenStoreError 'lock-wait') after a live holder's
   * longest possible hold.
   */
  async #acquire(
    closing: AbortSignal | undefined,
    done: (slot: SharedSlot) => MintedToken | undefined,
  ): Promise<MintedToken | { fence: string }> {
    const store = this.#store;
    const key = this.#key;
    const giveUpAt = performance.now() + this.#holdBoundMs();
    let pauseMs = 5;
    let reported = false;
    for (;;) {
      if (this.#closed || closing?.aborted) throw new SessionClosedError();
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
          let late: MintedToken | undefined;
          try {
            const again = await guard(() => store.read(key));
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
    return 2 * this.#o.mintTimeoutMs + this.#store.lockTtlMs;
  }

  /** Renews the lock every third of its TTL until stopped (a longer lease is left as it is). */
  #renewing(fence: string): ReturnType<typeof setTimeout> {
    const renewal = setInterval(
      () => {
        Promise.resolve()
          .then(() => this.#store.renew(this.#key, fence))
          .catch(() => {});
      },
      Math.max(1, Math.floor(this.#store.lockTtlMs / 3)),
    );
    unrefTimer(renewal);
    return renewal;
  }

  async #release(fence: string): Promise<void> {
    await Promise.resolve()
      .then(() => this.#store.release(this.#key, fence))
      .catch(() => {});
  }

  /**
   * Mints through the inner source while holding the lock with `fence`, renewing it until the
   * mint settles. A rotated secret the store missed keeps the lock held, renewed and retried until
   * it is stored: until then nobody else presents the old one.
   */
  async #mintHolding(fence: string, context: MintContext): Promise<MintedToken> {
    const store = this.#store;
    const key = this.#key;
    const renewal = this.#renewing(fence);
    let keep = false;
    try {
      const presented = this.#secret;
      if (presented !== undefined) await this.#leaseForPresenting(fence);
      const obtainedAt = this.#o.now();
      let minted: MintedToken;
      try {
        minted = await this.#inner.mint({
          reason: context.reason,
          aheadOf: context.aheadOf,
          signal: context.signal,
          secret: presented,
          adoptSecret: async (secret) => {
            this.#secret = secret;
            this.#unsaved = { presented: presented as string };
            try {
              if (await guard(() => store.swapSecret(key, presented as string, secret))) {
                this.#unsaved = undefined;
              }
            } catch {
              // Retried while the lock stays held (see below).
            }
          },
        });
      } catch (error) {
        // Share the backoff window this failure opens, when the token endpoint caused it (not
        // this process's own key, config or network): the fleet waits it out together.
        const backoff = this.#o.backoff;
        this.#failures++;
        if (backoff !== undefined && fromTokenEndpoint(error)) {
          const failure = {
            code: (error as AuthError).code,
            transient: (error as AuthError).transient,
            failures: this.#failures,
            retryInMs: retryWindowMs(backoff, this.#failures, error),
          };
          await this.#write(fence, { failure });
        }
        throw error;
      } finally {
        keep = this.#unsaved !== undefined;
      }
      const replacement = minted.replacement ?? context.reason === 'invalidated';
      const token: MintedToken = { ...minted, replacement };
      if (!(await this.#write(fence, { token: this.#sharedToken(token, obtainedAt) }))) {
        this.#o.logger?.warn?.(
          { session: this.#o.session, instanceUrl: this.#o.instanceUrl },
          'cirrus-auth: the shared token store missed a new token',
        );
      }
      return this.#handOut(token, obtainedAt);
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
      store.renew(this.#key, fence, this.#o.mintTimeoutMs + store.lockTtlMs),
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
  #keepUntilSaved(fence: string, renewal: ReturnType<typeof setTimeout>): void {
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
        this.#o.logger?.warn?.(
          { session: this.#o.session, instanceUrl: this.#o.instanceUrl },
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
    unrefTimer(retry);
    // On close, a last attempt; if it fails too the lock is left to expire (nobody will store it).
    this.#flushing = { finish: () => once().catch(halt) };
  }

  /** A token as the store keeps it: the time it has left, not this clock's readings. */
  #sharedToken(token: MintedToken, obtainedAt: number): SharedToken {
    const ageMs = Math.max(0, this.#o.now() - obtainedAt) + (token.ageMs ?? 0);
    const times = lifetimesOf(this.#o.lifetimes, token.expiresInMs);
    return {
      accessToken: token.accessToken,
      expiresInMs: times.expiresInMs - ageMs,
      staleInMs: times.staleInMs - ageMs,
      refreshInMs: times.refreshInMs - ageMs,
      ageMs,
      ...(token.expiresInMs === undefined ? {} : { declaredInMs: token.expiresInMs - ageMs }),
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
      session: this.#o.session,
      instanceUrl: this.#o.instanceUrl,
      outcome: 'unreadable' as const,
      code: ErrorCode.TOKEN_STORE,
    };
    publish('store', () => event);
    this.#o.logger?.warn?.(
      event,
      'cirrus-auth: the shared access token is unreadable (another encryptionKey, or not ours); replacing it',
    );
  }

  /** A fenced write that never throws: an unreachable store degrades. */
  async #write(fence: string, entry: SharedWrite): Promise<boolean> {
    try {
      return await guard(() => this.#store.write(this.#key, fence, entry));
    } catch (error) {
      this.#degrade(error);
      return false;
    }
  }

  /**
   * A shared token this session may hand out (fresh, not being refreshed, not rejected), as a
   * minted token of its age.
   */
  #usable(shared: SharedToken | undefined, aheadOf?: string): MintedToken | undefined {
    if (shared === undefined || shared.staleInMs <= 0) return undefined;
    if (shared.accessToken === aheadOf || this.#rejected.includes(shared.accessToken)) {
      return undefined;
    }
    const ageMs = shared.ageMs ?? 0;
    const info = tokenInfoFromRecord(shared.info);
    return {
      accessToken: shared.accessToken,
      ageMs,
      replacement: shared.replacement === true,
      ...(shared.declaredInMs === undefined ? {} : { expiresInMs: shared.declaredInMs + ageMs }),
      ...(info === undefined ? {} : { info }),
    };
  }

  /** Whether the last token handed out is still one to hand out, on the session's clock. */
  #lastUsable(): MintedToken | undefined {
    const last = this.#last;
    if (last === undefined) return undefined;
    const times = lifetimesOf(this.#o.lifetimes, last.token.expiresInMs);
    const age = this.#o.now() - last.obtainedAt + (last.token.ageMs ?? 0);
    return age < times.staleInMs ? last.token : undefined;
  }

  /**
   * Runs under the mutex while degraded: if the store answers, hand its token to the session or,
   * when it has none, offer the one this process holds, so the fleet converges on one token again.
   */
  async #rejoin(): Promise<void> {
    if (!this.#degraded || this.#closed) return;
    const store = this.#store;
    const key = this.#key;
    let usable: MintedToken | undefined;
    try {
      const slot = await guard(() => store.read(key));
      this.#learnSecret(slot);
      if (slot.tokenUnreadable) this.#reportUnreadable();
      usable = this.#usable(slot.token);
      // Someone is writing (perhaps another process offering its token): look again next time.
      if (usable === undefined && slot.locked) return;
      const local = this.#lastUsable();
      const obtainedAt = this.#last?.obtainedAt ?? this.#o.now();
      if (usable === undefined && local !== undefined) {
        const fence = await guard(() => store.acquire(key));
        if (fence === undefined) return;
        try {
          usable = this.#usable((await guard(() => store.read(key))).token);
          if (usable === undefined) {
            const token = this.#sharedToken(local, obtainedAt);
            if (!(await guard(() => store.write(key, fence, { token })))) return;
          }
        } finally {
          await this.#release(fence);
        }
      }
    } catch {
      return;
    }
    if (usable !== undefined && usable.accessToken !== this.#last?.token.accessToken) {
      this.#handOut(usable, this.#o.now() - (usable.ageMs ?? 0));
      this.#adopt?.(usable);
    }
    this.#degraded = false;
    clearInterval(this.#rejoinTimer);
    const event = {
      session: this.#o.session,
      instanceUrl: this.#o.instanceUrl,
      outcome: 'rejoined' as const,
      code: undefined,
    };
    publish('store', () => event);
    this.#o.logger?.info?.(event, 'cirrus-auth: shared token store is back');
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
