import { ConfigError } from '../errors.js';

/** Checks an optional `signal` argument; a non-signal is a `ConfigError`. */
export function checkSignal(signal: unknown): AbortSignal | undefined {
  if (signal === undefined || signal instanceof AbortSignal) return signal;
  throw new ConfigError('signal', 'must be an AbortSignal');
}

/**
 * Settles with `promise`, or rejects with `signal.reason` as soon as `signal` aborts. Only the
 * caller's wait ends: `promise` itself goes on (its rejection is still observed, never unhandled).
 */
export function raceAbort<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise;
  if (signal.aborted) {
    promise.catch(() => {});
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}
