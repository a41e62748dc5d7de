import type { SharedToken } from '../session/shared-store.js';

/**
 * A token as written, moved on to `remainingMs` before its expiry (the store's clock): the margins
 * written with it give the other times, and its age grows by how long it has been stored.
 * `undefined` once nothing is left.
 */
export function aged(written: SharedToken, remainingMs: number): SharedToken | undefined {
  if (!(remainingMs > 0)) return undefined;
  const elapsedMs = Math.max(0, written.expiresInMs - remainingMs);
  return {
    accessToken: written.accessToken,
    expiresInMs: remainingMs,
    staleInMs: remainingMs - (written.expiresInMs - written.staleInMs),
    refreshInMs: remainingMs - (written.expiresInMs - written.refreshInMs),
    ageMs: (Number.isFinite(written.ageMs) ? (written.ageMs as number) : 0) + elapsedMs,
    ...(Number.isFinite(written.declaredInMs)
      ? { declaredInMs: (written.declaredInMs as number) - elapsedMs }
      : {}),
    ...(written.replacement === true ? { replacement: true } : {}),
    // Kept as written: the session checks it (and ignores one it cannot read).
    ...(typeof written.info === 'object' && written.info !== null ? { info: written.info } : {}),
  };
}
