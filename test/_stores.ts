import type { SharedTokenStore } from '../src/index.js';

/** `inner` with some of its methods replaced: a store that fails, stalls or records, for a test. */
export function delegating(
  inner: SharedTokenStore,
  overrides: Partial<Omit<SharedTokenStore, 'lockTtlMs'>>,
): SharedTokenStore {
  return {
    lockTtlMs: inner.lockTtlMs,
    read: (key) => inner.read(key),
    acquire: (key) => inner.acquire(key),
    renew: (key, fence, ttlMs) => inner.renew(key, fence, ttlMs),
    release: (key, fence) => inner.release(key, fence),
    write: (key, fence, entry) => inner.write(key, fence, entry),
    deleteIf: (key, token) => inner.deleteIf(key, token),
    swapSecret: (key, presented, secret) => inner.swapSecret(key, presented, secret),
    ...overrides,
  };
}
