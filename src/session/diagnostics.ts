import { nodeBuiltin } from '../internal/runtime.js';

/**
 * The `node:diagnostics_channel` names cirrus-auth publishes on. Subscribe to feed OpenTelemetry,
 * metrics or logs; no payload ever carries a token, a secret or server-supplied free text.
 *
 * @example
 * ```ts
 * import { subscribe } from 'node:diagnostics_channel';
 * subscribe(DIAGNOSTICS_CHANNELS.mintEnd, (event) => metrics.observe((event as MintEndEvent).durationMs));
 * ```
 */
export const DIAGNOSTICS_CHANNELS = {
  /** {@link MintStartEvent}: a token request starts. */
  mintStart: 'cirrus-auth:mint:start',
  /** {@link MintEndEvent}: a token request ended, with its duration and outcome. */
  mintEnd: 'cirrus-auth:mint:end',
  /** {@link InvalidateEvent}: a token was reported rejected; `hit` says whether it was the cached one. */
  invalidate: 'cirrus-auth:invalidate',
  /** {@link BackoffEvent}: a failed mint closed the token endpoint to this session for a while. */
  backoff: 'cirrus-auth:backoff',
  /** {@link RetryEvent}: an adapter saw an auth failure and retried (or chose not to). */
  retry: 'cirrus-auth:retry',
  /**
   * {@link StoreEvent}: a shared token store became unavailable (the session now mints in process)
   * or came back (the session rejoined the fleet), or holds an access token this session cannot
   * read (treated as none, and replaced by the next mint).
   */
  store: 'cirrus-auth:store',
} as const;

/** Why a mint ran. */
export type MintReason = 'cold' | 'expired' | 'invalidated' | 'ahead' | 'retry';

interface SessionEvent {
  /** The session's class name, for example `ClientCredentialsAuth`. */
  session: string;
  instanceUrl: string;
}

export interface MintStartEvent extends SessionEvent {
  reason: MintReason;
}

export interface MintEndEvent extends SessionEvent {
  reason: MintReason;
  durationMs: number;
  /** `'ok'`, or the `code` of the `AuthError` the mint failed with. */
  outcome: string;
  transient: boolean;
}

export interface InvalidateEvent extends SessionEvent {
  hit: boolean;
}

export interface BackoffEvent extends SessionEvent {
  /** Consecutive failed mints so far. */
  failures: number;
  /** How long callers get the last error without a new token request. */
  retryInMs: number;
  /** The `code` of the error that caused it. */
  code: string;
}

export interface RetryEvent {
  adapter: 'fetch' | 'axios' | 'ky' | 'jsforce' | 'got' | 'undici';
  instanceUrl: string;
  /** The HTTP status that was judged an auth failure (0 for jsforce, which does not say). */
  status: number;
  /** Whether a second request was sent (false: same token back, or a body that cannot be replayed). */
  retried: boolean;
}

export interface StoreEvent extends SessionEvent {
  outcome: 'unavailable' | 'rejoined' | 'unreadable';
  /** With `'unavailable'`: the `code` of the error that caused it; with `'unreadable'`: `ERR_TOKEN_STORE`. */
  code: string | undefined;
}

// Where the runtime has no diagnostics_channel (a browser, a plain Worker) nobody can subscribe:
// a channel that never has subscribers costs the same one property read per event.
const diagnostics = nodeBuiltin('node:diagnostics_channel');
const silent = { hasSubscribers: false, publish(_message: unknown) {} };
const channel = (name: string) => diagnostics?.channel(name) ?? silent;

const channels = {
  mintStart: channel(DIAGNOSTICS_CHANNELS.mintStart),
  mintEnd: channel(DIAGNOSTICS_CHANNELS.mintEnd),
  invalidate: channel(DIAGNOSTICS_CHANNELS.invalidate),
  backoff: channel(DIAGNOSTICS_CHANNELS.backoff),
  retry: channel(DIAGNOSTICS_CHANNELS.retry),
  store: channel(DIAGNOSTICS_CHANNELS.store),
};

/** Publishes `event` on the named channel, building it only when someone listens. */
export function publish<K extends keyof typeof channels>(
  name: K,
  event: () => K extends 'mintStart'
    ? MintStartEvent
    : K extends 'mintEnd'
      ? MintEndEvent
      : K extends 'invalidate'
        ? InvalidateEvent
        : K extends 'backoff'
          ? BackoffEvent
          : K extends 'store'
            ? StoreEvent
            : RetryEvent,
): void {
  const target = channels[name];
  if (target.hasSubscribers) target.publish(event());
}

/**
 * A logger cirrus-auth can write to: pino, bunyan, winston-style or `console`. Each method is called
 * as `(fields, message)`; missing methods are skipped. Nothing logged carries a secret.
 */
export interface Logger {
  debug?(fields: object, message: string): void;
  info?(fields: object, message: string): void;
  warn?(fields: object, message: string): void;
  error?(fields: object, message: string): void;
}
