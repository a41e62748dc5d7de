// The rejection guard through every adapter against the fake org: an org that refuses every token
// (IP restrictions, High Assurance sessions, a blocked app) costs a few logins, not one per call,
// while legitimate revocations, however close together, stay fully cured.
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { describe, expect, it } from 'vitest';
import { type BackoffEvent, DIAGNOSTICS_CHANNELS } from '../../src/index.js';
import { startFakeOrg } from '../../src/testing/index.js';
import { sessionFor, useFakeOrg } from '../_org.js';
import { drivers } from './_drivers.js';

const fx = useFakeOrg();
const LIMITS = '/services/data/v62.0/limits';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

for (const driver of drivers) {
  describe(`rejection guard: ${driver.label}`, () => {
    it('an org refusing every token for 2.5 s: at most a dozen token requests, at most 2 API requests a call, then calls work again', async () => {
      const backoff = { initialMs: 200, maxMs: 1_000 };
      const logged: unknown[] = [];
      const session = fx.session({ backoff, logger: { warn: (f: unknown) => logged.push(f) } });
      const client = driver.client(session);
      expect((await client.send({ url: LIMITS })).status).toBe(200);
      fx.org.rejectApiTokens('invalid-session');
      fx.org.resetStats();
      let calls = 0;
      let maxPerCall = 0;
      const until = Date.now() + 2_500;
      // 4 concurrent callers, back to back, each counting the API requests its call cost.
      await Promise.all(
        Array.from({ length: 4 }, async () => {
          while (Date.now() < until) {
            const before = fx.org.stats.apiRequests;
            const outcome = await client.send({ url: LIMITS });
            expect(outcome.status).toBe(401);
            calls++;
            maxPerCall = Math.max(maxPerCall, fx.org.stats.apiRequests - before);
          }
        }),
      );
      expect(calls).toBeGreaterThan(50);
      expect(fx.org.stats.tokenRequests).toBeLessThanOrEqual(12);
      expect(fx.org.stats.apiRequests).toBeLessThanOrEqual(2 * calls);
      expect(logged.length).toBeGreaterThan(0);
      expect(JSON.stringify(logged)).not.toContain(await session.getToken());
      // The rejection lifts: within the backoff cap, calls succeed again.
      fx.org.rejectApiTokens(undefined);
      const healed = Date.now() + backoff.maxMs + 500;
      let ok = false;
      while (!ok && Date.now() < healed) {
        ok = (await client.send({ url: LIMITS })).status === 200;
        if (!ok) await sleep(50);
      }
      expect(ok).toBe(true);
      // And the first success reset the guard: a revocation is cured at once again.
      fx.org.revokeAllTokens();
      expect((await client.send({ url: LIMITS })).status).toBe(200);
    });

    it('an org refusing every token while a re-mint hands back the same one: a few logins, not one per call', async () => {
      const reusing = await startFakeOrg({ reuseAccessToken: true });
      try {
        const client = driver.client(
          sessionFor(reusing, { backoff: { initialMs: 100, maxMs: 400 } }),
        );
        expect((await client.send({ url: LIMITS })).status).toBe(200);
        reusing.rejectApiTokens('invalid-session');
        reusing.resetStats();
        let calls = 0;
        const until = Date.now() + 1_500;
        while (Date.now() < until) {
          expect((await client.send({ url: LIMITS })).status).toBe(401);
          calls++;
        }
        expect(calls).toBeGreaterThan(30);
        expect(reusing.stats.tokenRequests).toBeLessThanOrEqual(10);
      } finally {
        await reusing.close();
      }
    });

    it('40 back-to-back revocations with 8 concurrent calls each: 0 failed calls, 1 re-mint each', async () => {
      const client = driver.client(fx.session());
      await client.send({ url: LIMITS });
      fx.org.resetStats();
      for (let round = 0; round < 40; round++) {
        fx.org.revokeAllTokens();
        const outcomes = await Promise.all(
          Array.from({ length: 8 }, () => client.send({ url: LIMITS })),
        );
        expect(outcomes.map((o) => o.status)).toEqual(Array(8).fill(200));
      }
      expect(fx.org.stats.tokenRequests).toBe(40);
    });
  });
}

describe('rejection guard: events', () => {
  it('publishes a backoff event naming the reason class, never the token', async () => {
    const seen: BackoffEvent[] = [];
    const listener = (event: unknown) => seen.push(event as BackoffEvent);
    subscribe(DIAGNOSTICS_CHANNELS.backoff, listener);
    try {
      const session = fx.session();
      const client = drivers[0]?.client(session);
      fx.org.rejectApiTokens('invalid-session');
      await client?.send({ url: LIMITS });
      await client?.send({ url: LIMITS });
      expect(seen).toHaveLength(1);
      expect(seen[0]).toMatchObject({ code: 'ERR_TOKEN_REJECTED', failures: 1 });
      expect(JSON.stringify(seen)).not.toContain(await session.getToken());
    } finally {
      unsubscribe(DIAGNOSTICS_CHANNELS.backoff, listener);
    }
  });
});
