// The rejection guard in the engine, with an injected clock and a scripted mint: when a token
// minted to replace a rejected one is rejected too, before any request with it succeeded, the
// session keeps it and mints nothing for a backoff window.
import { describe, expect, it } from 'vitest';
import {
  CachingSession,
  FRESH_TOKEN_MS,
  type MintedToken,
} from '../../src/session/caching-session.js';

const INSTANCE = 'https://acme.my.salesforce.com';

/** A session whose mint answers `token-N`, or always `same` when given. */
function guarded(options: { initialMs?: number; maxMs?: number; same?: string } = {}) {
  const clock = { now: 1_000_000 };
  let mints = 0;
  const session = new CachingSession(
    {
      instanceUrl: INSTANCE,
      mint: async (): Promise<MintedToken> => {
        mints++;
        return { accessToken: options.same ?? `token-${mints}` };
      },
    },
    {
      now: () => clock.now,
      backoff: { initialMs: options.initialMs ?? 1_000, maxMs: options.maxMs ?? 60_000 },
    },
  );
  return {
    session,
    clock,
    get mints() {
      return mints;
    },
    /** What an adapter does on a rejection: invalidate the token sent, take the next. */
    async reject(token: string): Promise<string> {
      await session.invalidate(token);
      return session.getToken();
    },
  };
}

describe('rejection guard', () => {
  it('a success with an older token of the session disarms the guard (jsforce may still send one)', async () => {
    const g = guarded();
    const first = await g.session.getToken();
    g.session.confirm(first);
    // A rejection: the replacement is armed (rejected now, it would open a window).
    const replacement = await g.reject(first);
    expect(replacement).toBe('token-2');
    // A request with the older token comes back fine: the org accepts the session's tokens.
    g.session.confirm(first);
    // A real revocation of the replacement is then cured at once, not held back.
    expect(await g.reject(replacement)).toBe('token-3');
    expect(g.mints).toBe(3);
  });

  it('a re-mint that hands back the rejected token re-arms the guard: no login per call', async () => {
    const g = guarded({ same: 'same-token', initialMs: 1_000, maxMs: 4_000 });
    let token = await g.session.getToken();
    g.session.confirm(token);
    // The org starts refusing every token; a re-mint keeps answering the same one.
    for (let call = 0; call < 200; call++) {
      token = await g.reject(token);
      g.clock.now += 100; // 200 calls over 20 s
    }
    // Windows of up to 4 s over 20 s: a handful of mints, not one per call.
    expect(g.mints).toBeLessThanOrEqual(10);
    expect(g.mints).toBeGreaterThan(2);
  });

  it('an open window holds however long it is, past FRESH_TOKEN_MS', async () => {
    const g = guarded({ initialMs: 4 * FRESH_TOKEN_MS, maxMs: 4 * FRESH_TOKEN_MS });
    const first = await g.session.getToken();
    g.session.confirm(first);
    const replacement = await g.reject(first); // a legitimate revocation: re-minted
    expect(replacement).toBe('token-2');
    expect(await g.reject(replacement)).toBe('token-2'); // rejected too: the window opens (≥ 60 s)
    g.clock.now += 1.5 * FRESH_TOKEN_MS;
    expect(await g.reject(replacement)).toBe('token-2');
    expect(g.mints).toBe(2);
  });

  it('a rejection reported right after the mint opens the window even for a caller that comes back much later', async () => {
    const g = guarded();
    const first = await g.session.getToken();
    g.session.confirm(first);
    const replacement = await g.reject(first);
    // The adapter reports the retry's rejection at once (settleRetry): the window opens now.
    await g.session.invalidate(replacement);
    expect(await g.session.getToken()).toBe(replacement);
    expect(g.mints).toBe(2);
  });

  it('a token older than FRESH_TOKEN_MS is taken to have worked: its rejection re-mints', async () => {
    const g = guarded();
    const first = await g.session.getToken();
    const replacement = await g.reject(first);
    g.clock.now += FRESH_TOKEN_MS; // used for a while by a caller that never confirms
    expect(await g.reject(replacement)).toBe('token-3');
  });

  it('a confirmed token ends the guard and its escalation', async () => {
    const g = guarded({ initialMs: 1_000, maxMs: 60_000 });
    const first = await g.session.getToken();
    const second = await g.reject(first);
    expect(await g.reject(second)).toBe(second); // window 1
    g.clock.now += 1_000;
    const third = await g.reject(second); // window over: one re-mint
    expect(third).toBe('token-3');
    expect(await g.reject(third)).toBe(third); // window 2 (longer)
    g.session.confirm(third); // the org accepts tokens again
    const fourth = await g.reject(third);
    expect(fourth).toBe('token-4'); // a revocation after that is cured at once
  });

  it('backoff: false turns the guard off', async () => {
    const clock = { now: 0 };
    let mints = 0;
    const session = new CachingSession(
      { instanceUrl: INSTANCE, mint: async () => ({ accessToken: `token-${++mints}` }) },
      { now: () => clock.now, backoff: false },
    );
    let token = await session.getToken();
    for (let i = 0; i < 5; i++) {
      await session.invalidate(token);
      token = await session.getToken();
    }
    expect(mints).toBe(6);
  });
});

describe('soft TTL with a server-declared expiry', () => {
  it('an expires_in longer than tokenTtlMs is kept: served past the local TTL up to it, never after', async () => {
    const clock = { now: 0 };
    let fail = false;
    const session = new CachingSession(
      {
        instanceUrl: INSTANCE,
        mint: async () => {
          if (fail) throw new Error('token endpoint down');
          return { accessToken: 'declared', expiresInMs: 120_000 };
        },
      },
      { now: () => clock.now, tokenTtlMs: 60_000, refreshAheadMs: 0 },
    );
    expect(await session.getToken()).toBe('declared');
    fail = true;
    clock.now = 90_000; // past the local TTL, before the server's expiry
    expect(await session.getToken()).toBe('declared');
    clock.now = 120_000; // the server said it dies now
    await expect(session.getToken()).rejects.toThrow('token endpoint down');
  });
});
