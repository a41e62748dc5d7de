import { ConfigError } from '../errors.js';
import { positiveMs } from '../internal/options.js';

/** First wait after a failed mint; it doubles per consecutive failure, with jitter. */
export const BACKOFF_INITIAL_MS = 1_000;

/** The longest wait between failed mints (a `Retry-After` may ask for more, up to 10 minutes). */
export const BACKOFF_MAX_MS = 60_000;

/** A server's `Retry-After` is honoured up to this long. */
export const RETRY_AFTER_CAP_MS = 10 * 60_000;

/** A validated `backoff` option; `undefined` when it is `false`. */
export interface BackoffPolicy {
  readonly initialMs: number;
  readonly maxMs: number;
}

/** Validates the `backoff` option; a wrong one is a `ConfigError` naming it. */
export function backoffOf(
  value: { initialMs?: number | undefined; maxMs?: number | undefined } | false | undefined,
): BackoffPolicy | undefined {
  if (value === false) return undefined;
  if (value !== undefined && (typeof value !== 'object' || value === null)) {
    throw new ConfigError('backoff', 'must be an object or false');
  }
  const initialMs = positiveMs('backoff.initialMs', value?.initialMs, BACKOFF_INITIAL_MS);
  const maxMs = positiveMs('backoff.maxMs', value?.maxMs, Math.max(BACKOFF_MAX_MS, initialMs));
  if (maxMs < initialMs)
    throw new ConfigError('backoff.maxMs', 'must not be less than backoff.initialMs');
  return { initialMs, maxMs };
}

/** The wait after `failures` consecutive failures: doubling from `initialMs`, capped, jittered to [base/2, base]. */
export function backoffDelayMs(policy: BackoffPolicy, failures: number): number {
  const base = Math.min(policy.maxMs, policy.initialMs * 2 ** (failures - 1));
  return base / 2 + (Math.random() * base) / 2;
}

/** The window after `failures` failures ending in `error`: the jittered wait, or its `Retry-After` if longer. */
export function retryWindowMs(policy: BackoffPolicy, failures: number, error: unknown): number {
  const asked = (error as { retryAfterMs?: unknown } | null)?.retryAfterMs;
  const retryAfter = typeof asked === 'number' ? Math.min(asked, RETRY_AFTER_CAP_MS) : 0;
  return Math.max(backoffDelayMs(policy, failures), retryAfter);
}
