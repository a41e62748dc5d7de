/**
 * A token this close to its local expiry is no longer handed out. For short lifetimes the margin
 * shrinks to a quarter of the lifetime, so a `tokenTtlMs` of a few seconds still caches.
 */
export const EXPIRY_MARGIN_MS = 60_000;

/** The margin applied to a token of lifetime `ttlMs`; see {@link EXPIRY_MARGIN_MS}. */
export function expiryMarginMs(ttlMs: number): number {
  return Math.min(EXPIRY_MARGIN_MS, Math.floor(ttlMs / 4));
}

/** The local lifetime rules: the TTL guess and the refresh-ahead window, both validated. */
export interface LifetimePolicy {
  readonly ttlMs: number;
  readonly aheadMs: number;
}

/** A token's times, relative to when it was obtained, in milliseconds. */
export interface Lifetimes {
  /** Until it is presumed dead: the local TTL, capped by `expires_in` when sent. */
  readonly expiresInMs: number;
  /** Until it is no longer handed out. */
  readonly staleInMs: number;
  /** Until a background refresh starts. */
  readonly refreshInMs: number;
}

/** The times of a token obtained now whose server-declared lifetime is `declaredMs`, if any. */
export function lifetimesOf(policy: LifetimePolicy, declaredMs: number | undefined): Lifetimes {
  const ttlMs = Math.min(policy.ttlMs, declaredMs ?? Number.POSITIVE_INFINITY);
  const staleInMs = ttlMs - expiryMarginMs(ttlMs);
  const aheadMs = Math.min(policy.aheadMs, Math.floor(ttlMs / 4));
  return { expiresInMs: ttlMs, staleInMs, refreshInMs: staleInMs - aheadMs };
}
