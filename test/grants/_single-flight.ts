import { expect } from 'vitest';
import type { AuthSession } from '../../src/index.js';
import type { FakeOrg } from '../../src/testing/index.js';

/**
 * The engine's two promises, checked through a real grant against the fake org: 100 concurrent
 * callers on a cold cache cause one token request, and 100 concurrent invalidations of the same
 * stale token cause one more.
 */
export async function expectSingleFlightAndCas(
  session: AuthSession,
  org: FakeOrg,
  grant: string,
): Promise<void> {
  org.resetStats();
  org.setTokenDelay(20);
  const first = await Promise.all(Array.from({ length: 100 }, () => session.getToken()));
  expect(new Set(first).size).toBe(1);
  expect(org.stats.tokenRequestsByGrant).toEqual({ [grant]: 1 });

  const stale = first[0] as string;
  const fresh = await Promise.all(
    Array.from({ length: 100 }, async () => {
      await session.invalidate(stale);
      return session.getToken();
    }),
  );
  expect(new Set(fresh).size).toBe(1);
  expect(fresh[0]).not.toBe(stale);
  expect(org.isValidToken(fresh[0] as string)).toBe(true);
  expect(org.stats.tokenRequestsByGrant).toEqual({ [grant]: 2 });
  org.setTokenDelay(0);
}
