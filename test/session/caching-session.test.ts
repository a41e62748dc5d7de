import { describe, expect, it } from 'vitest';
import { ConfigError, TransportError } from '../../src/errors.js';
import {
  BACKOFF_INITIAL_MS,
  CachingSession,
  DEFAULT_TOKEN_TTL_MS,
  EXPIRY_MARGIN_MS,
  expiryMarginMs,
  type MintedToken,
} from '../../src/session/caching-session.js';
import { caught } from '../_secrets.js';

/** A mint function under the test's control: each call waits until the test settles it. */
function controlledMint() {
  const calls: { resolve: (t: MintedToken) => void; reject: (e: unknown) => void }[] = [];
  const mint = () =>
    new Promise<MintedToken>((resolve, reject) => {
      calls.push({ resolve, reject });
    });
  const settle = async (index: number, outcome: MintedToken | Error) => {
    for (let i = 0; i < 50 && calls[index] === undefined; i++) await Promise.resolve();
    const call = calls[index];
    if (call === undefined) throw new Error(`mint ${index} was never called`);
    if (outcome instanceof Error) call.reject(outcome);
    else call.resolve(outcome);
  };
  return { mint, calls, settle };
}

/** A mint function that answers at once with token-1, token-2, ... */
function countingMint(extra: Partial<MintedToken> = {}) {
  let count = 0;
  const mint = async (): Promise<MintedToken> => ({ accessToken: `token-${++count}`, ...extra });
  return {
    mint,
    get count() {
      return count;
    },
  };
}

const INSTANCE = 'https://acme.my.salesforce.com';

describe('CachingSession', () => {
  it('serves a cached token without minting again', async () => {
    const source = countingMint();
    const session = new CachingSession({ instanceUrl: INSTANCE, mint: source.mint });
    expect(await session.getToken()).toBe('token-1');
    expect(await session.getToken()).toBe('token-1');
    expect(source.count).toBe(1);
  });

  it('coalesces concurrent callers on a cold cache into one mint', async () => {
    const { mint, calls, settle } = controlledMint();
    const session = new CachingSession({ instanceUrl: INSTANCE, mint: mint });
    const waiters = Array.from({ length: 100 }, () => session.getToken());
    await settle(0, { accessToken: 'shared' });
    expect(await Promise.all(waiters)).toEqual(Array(100).fill('shared'));
    expect(calls).toHaveLength(1);
  });

  it('hands one mint error to every concurrent caller, then mints afresh after the backoff window', async () => {
    const { mint, calls, settle } = controlledMint();
    let now = 0;
    const session = new CachingSession({ instanceUrl: INSTANCE, mint: mint }, { now: () => now });
    const waiters = Array.from({ length: 20 }, () => session.getToken());
    const failure = new TransportError('down');
    await settle(0, failure);
    const outcomes = await Promise.allSettled(waiters);
    expect(outcomes.every((o) => o.status === 'rejected' && o.reason === failure)).toBe(true);
    expect(calls).toHaveLength(1);

    await expect(session.getToken()).rejects.toBe(failure); // backoff: no second request yet
    expect(calls).toHaveLength(1);
    now += BACKOFF_INITIAL_MS;
    const next = session.getToken();
    await settle(1, { accessToken: 'recovered' });
    expect(await next).toBe('recovered');
    expect(calls).toHaveLength(2);
  });

  it('expires a token at its TTL minus the margin, on the injected clock', async () => {
    let now = 1_000_000;
    const source = countingMint();
    const session = new CachingSession(
      { instanceUrl: INSTANCE, mint: source.mint },
      { now: () => now },
    );
    await session.getToken();
    now += DEFAULT_TOKEN_TTL_MS - EXPIRY_MARGIN_MS - 1;
    expect(await session.getToken()).toBe('token-1');
    now += 1;
    expect(await session.getToken()).toBe('token-2');
    expect(source.count).toBe(2);
  });

  it('caps the TTL by expires_in when the server sends one', async () => {
    let now = 0;
    const source = countingMint({ expiresInMs: 120_000 });
    const session = new CachingSession(
      { instanceUrl: INSTANCE, mint: source.mint },
      { now: () => now },
    );
    await session.getToken();
    now = 120_000 - expiryMarginMs(120_000) - 1;
    expect(await session.getToken()).toBe('token-1');
    now += 1;
    expect(await session.getToken()).toBe('token-2');
  });

  it('still caches with a TTL of a few seconds (the margin shrinks)', async () => {
    let now = 0;
    const source = countingMint();
    // Refresh-ahead off: this is about the margin alone.
    const session = new CachingSession(
      { instanceUrl: INSTANCE, mint: source.mint },
      {
        tokenTtlMs: 4_000,
        refreshAheadMs: 0,
        now: () => now,
      },
    );
    expect(expiryMarginMs(4_000)).toBe(1_000);
    await session.getToken();
    now = 2_999;
    await session.getToken();
    expect(source.count).toBe(1);
    now = 3_000;
    await session.getToken();
    expect(source.count).toBe(2);
  });

  it('invalidate(stale) clears the cache only while it still holds that token', async () => {
    const source = countingMint();
    const session = new CachingSession({ instanceUrl: INSTANCE, mint: source.mint });
    const first = await session.getToken();
    await session.invalidate(first);
    const second = await session.getToken();
    expect(second).toBe('token-2');
    // A late report about the old token must not evict the newer one.
    await session.invalidate(first);
    expect(await session.getToken()).toBe('token-2');
    await session.invalidate('never-issued');
    expect(await session.getToken()).toBe('token-2');
    expect(source.count).toBe(2);
  });

  it('N concurrent invalidations of the same stale token cause one re-mint', async () => {
    const source = countingMint();
    const session = new CachingSession({ instanceUrl: INSTANCE, mint: source.mint });
    const stale = await session.getToken();
    const fresh = await Promise.all(
      Array.from({ length: 50 }, async () => {
        await session.invalidate(stale);
        return session.getToken();
      }),
    );
    expect(new Set(fresh)).toEqual(new Set(['token-2']));
    expect(source.count).toBe(2);
  });

  it('an invalidation that arrives during a mint never evicts the token that mint produces', async () => {
    const { mint, calls, settle } = controlledMint();
    const session = new CachingSession({ instanceUrl: INSTANCE, mint: mint });
    const first = session.getToken();
    await settle(0, { accessToken: 'one' });
    await first;
    await session.invalidate('one');
    const second = session.getToken();
    const lateInvalidate = session.invalidate('one');
    await settle(1, { accessToken: 'two' });
    await lateInvalidate;
    expect(await second).toBe('two');
    expect(await session.getToken()).toBe('two');
    expect(calls).toHaveLength(2);
  });

  it("a caller's abort ends only its own wait; the shared mint goes on and is cached", async () => {
    const { mint, calls, settle } = controlledMint();
    const session = new CachingSession({ instanceUrl: INSTANCE, mint: mint });
    const controller = new AbortController();
    const aborted = session.getToken({ signal: controller.signal });
    const patient = session.getToken();
    const reason = new Error('caller gave up');
    controller.abort(reason);
    await expect(aborted).rejects.toBe(reason);
    await settle(0, { accessToken: 'kept' });
    expect(await patient).toBe('kept');
    expect(await session.getToken()).toBe('kept');
    expect(calls).toHaveLength(1);
  });

  it('rejects at once for an already-aborted signal, without minting', async () => {
    const source = countingMint();
    const session = new CachingSession({ instanceUrl: INSTANCE, mint: source.mint });
    const signal = AbortSignal.abort();
    await expect(session.getToken({ signal })).rejects.toBe(signal.reason);
    expect(source.count).toBe(0);
  });

  it('hands every cache-hit caller the same settled promise', async () => {
    const session = new CachingSession({ instanceUrl: INSTANCE, mint: countingMint().mint });
    await session.getToken();
    expect(session.getToken()).toBe(session.getToken());
  });

  it('rejects bad arguments with ConfigError naming them', async () => {
    expect(
      () =>
        new CachingSession(
          { instanceUrl: INSTANCE, mint: countingMint().mint },
          { tokenTtlMs: -1 },
        ),
    ).toThrow(ConfigError);
    expect(
      () =>
        new CachingSession(
          { instanceUrl: INSTANCE, mint: countingMint().mint },
          { tokenTtlMs: 1.5 },
        ),
    ).toThrow(expect.objectContaining({ option: 'tokenTtlMs' }));
    const session = new CachingSession({ instanceUrl: INSTANCE, mint: countingMint().mint });
    const badSignal = { signal: 'nope' } as unknown as { signal: AbortSignal };
    expect(await caught(() => session.getToken(badSignal))).toMatchObject({
      code: 'ERR_CONFIG',
      option: 'signal',
    });
    expect(await caught(() => session.invalidate(42 as unknown as string))).toBeInstanceOf(
      ConfigError,
    );
  });
});
