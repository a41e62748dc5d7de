import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { describe, expect, it } from 'vitest';
import { authFetch } from '../../src/adapters/fetch.js';
import {
  BACKOFF_INITIAL_MS,
  DIAGNOSTICS_CHANNELS,
  OAuthError,
  RefreshTokenHandlerError,
  SessionClosedError,
  TransportError,
} from '../../src/index.js';
import { CachingSession, type MintedToken } from '../../src/session/caching-session.js';
import { useFakeOrg } from '../_org.js';

const INSTANCE = 'https://acme.my.salesforce.com';
// With a 40 s lifetime: margin 10 s (stale at 30 s), refresh-ahead 10 s (refresh from 20 s).
const TTL = 40_000;
const REFRESH_AT = 20_000;
const STALE_AT = 30_000;
const WAITED = Symbol('waited');

/** A mint whose calls the test settles; `token-N` by default. */
function controlled() {
  const calls: { resolve: (t: MintedToken) => void; reject: (e: unknown) => void }[] = [];
  const mint = () => new Promise<MintedToken>((resolve, reject) => calls.push({ resolve, reject }));
  const settle = async (outcome?: Error | Omit<MintedToken, 'accessToken'>) => {
    for (let i = 0; i < 20 && calls.length === 0; i++) await Promise.resolve();
    const call = calls.shift();
    if (call === undefined) throw new Error('no mint is waiting');
    if (outcome instanceof Error) call.reject(outcome);
    else call.resolve({ accessToken: `token-${++settled}`, ...outcome });
    for (let i = 0; i < 20; i++) await Promise.resolve();
  };
  let settled = 0;
  let started = 0;
  return {
    mint: () => {
      started++;
      return mint();
    },
    settle,
    get started() {
      return started;
    },
    get waiting() {
      return calls.length;
    },
  };
}

/** What `promise` gives within one turn of the event loop, or WAITED if it is still pending. */
function now_<T>(promise: Promise<T>): Promise<T | typeof WAITED> {
  return Promise.race([promise, new Promise<typeof WAITED>((r) => setImmediate(() => r(WAITED)))]);
}

function engine(options: ConstructorParameters<typeof CachingSession>[1] = {}) {
  const source = controlled();
  const clock = { now: 0 };
  const session = new CachingSession(
    { instanceUrl: INSTANCE, mint: source.mint },
    {
      tokenTtlMs: TTL,
      now: () => clock.now,
      ...options,
    },
  );
  return { session, source, clock };
}

async function warm(e: ReturnType<typeof engine>) {
  const first = e.session.getToken();
  await e.source.settle();
  return first;
}

describe('refresh-ahead', () => {
  it('inside the window, callers get the cached token at once and one background mint starts', async () => {
    const e = engine();
    expect(await warm(e)).toBe('token-1');
    e.clock.now = REFRESH_AT - 1;
    await e.session.getToken();
    expect(e.source.started).toBe(1);
    e.clock.now = REFRESH_AT;
    const answers = await Promise.all(
      Array.from({ length: 100 }, () => now_(e.session.getToken())),
    );
    expect(new Set(answers)).toEqual(new Set(['token-1']));
    expect(e.source.started).toBe(2);
    await e.source.settle();
    expect(await e.session.getToken()).toBe('token-2');
    expect(e.source.started).toBe(2);
  });

  it('a 401-driven invalidate during a background mint joins it instead of starting another', async () => {
    const e = engine();
    await warm(e);
    e.clock.now = REFRESH_AT + 1;
    await e.session.getToken(); // starts the background mint
    // invalidate() resolves once the mint in flight has finished; the caller's getToken joins it.
    const invalidated = e.session.invalidate('token-1');
    const reactive = e.session.getToken();
    expect(await now_(reactive)).toBe(WAITED);
    await e.source.settle();
    await invalidated;
    expect(await reactive).toBe('token-2');
    expect(e.source.started).toBe(2);
  });

  it('after warm-up no caller waits on a mint over many lifetimes', async () => {
    const e = engine();
    await warm(e);
    let waits = 0;
    for (let t = 0; t <= 10 * TTL; t += 500) {
      e.clock.now = t;
      if ((await now_(e.session.getToken())) === WAITED) waits++;
      // The token endpoint answers within 2 s of a background mint starting.
      if (e.source.waiting > 0 && t % 2_000 === 0) await e.source.settle();
    }
    expect(waits).toBe(0);
    expect(e.source.started).toBeGreaterThan(10);
  });

  it('refreshAheadMs: 0 turns it off: callers wait for the mint once the token is stale', async () => {
    const e = engine({ refreshAheadMs: 0 });
    await warm(e);
    e.clock.now = STALE_AT - 1;
    await e.session.getToken();
    expect(e.source.started).toBe(1);
    e.clock.now = STALE_AT;
    expect(await now_(e.session.getToken())).toBe(WAITED);
  });
});

describe('serve stale on transient failure, and backoff', () => {
  it('a transient failure inside the expiry margin serves the cached token and retries in the background', async () => {
    const e = engine({ refreshAheadMs: 0 });
    await warm(e);
    e.clock.now = STALE_AT; // stale, but not yet at its local expiry (40 s)
    const waiting = e.session.getToken();
    await e.source.settle(new TransportError('reset'));
    expect(await waiting).toBe('token-1');
    // Inside the backoff window: the cached token at once, no request.
    expect(await now_(e.session.getToken())).toBe('token-1');
    expect(e.source.started).toBe(2);
    // After it: the cached token at once, and one background retry.
    e.clock.now += BACKOFF_INITIAL_MS;
    expect(await now_(e.session.getToken())).toBe('token-1');
    expect(e.source.started).toBe(3);
    await e.source.settle();
    expect(await e.session.getToken()).toBe('token-2');
  });

  it('the local TTL is soft: past it, any mint failure keeps serving the token the org has not rejected', async () => {
    const e = engine({ refreshAheadMs: 0 });
    await warm(e);
    e.clock.now = TTL; // the local TTL has lapsed
    const late = e.session.getToken();
    const limited = new OAuthError('invalid_grant', 400, 'login rate exceeded');
    await e.source.settle(limited);
    expect(await late).toBe('token-1');
    // Inside the backoff window: served at once, no token request.
    e.clock.now = TTL * 10;
    const started = e.source.started;
    expect(await now_(e.session.getToken())).toBe('token-1');
    // That call found the window over and retried in the background; it fails permanently again.
    expect(e.source.started).toBe(started + 1);
    await e.source.settle(new OAuthError('invalid_client', 400));
    expect(await now_(e.session.getToken())).toBe('token-1');
    // The org's word wins: once the token is rejected it is gone, and the failure shows.
    await e.session.invalidate('token-1');
    await expect(e.session.getToken()).rejects.toBeInstanceOf(OAuthError);
  });

  it('a server-declared expires_in is not soft: past it the token is never served', async () => {
    const f = engine({ refreshAheadMs: 0 });
    const first = f.session.getToken();
    await f.source.settle({ expiresInMs: TTL });
    expect(await first).toBe('token-1');
    f.clock.now = TTL; // at the server's expiry
    const late = f.session.getToken();
    const down = new TransportError('down');
    await f.source.settle(down);
    await expect(late).rejects.toBe(down);
    // Inside its margin (before the declared expiry) a transient failure still serves it.
    const g = engine({ refreshAheadMs: 0 });
    const seeded = g.session.getToken();
    await g.source.settle({ expiresInMs: TTL });
    await seeded;
    g.clock.now = STALE_AT;
    const served = g.session.getToken();
    await g.source.settle(new TransportError('down'));
    expect(await served).toBe('token-1');
  });

  it('after a failure, callers inside the window get the same error with no request; the window grows', async () => {
    const e = engine();
    const first = e.session.getToken();
    const down = new TransportError('down');
    await e.source.settle(down);
    await expect(first).rejects.toBe(down);
    const refusals = await Promise.allSettled(
      Array.from({ length: 1000 }, () => e.session.getToken()),
    );
    expect(refusals.every((r) => r.status === 'rejected' && r.reason === down)).toBe(true);
    expect(e.source.started).toBe(1);

    e.clock.now = BACKOFF_INITIAL_MS; // the first window is at most 1 s
    const second = e.session.getToken();
    await e.source.settle(down);
    await expect(second).rejects.toBe(down);
    e.clock.now += BACKOFF_INITIAL_MS - 1; // the second is at least 1 s
    await expect(e.session.getToken()).rejects.toBe(down);
    expect(e.source.started).toBe(2);
    e.clock.now += BACKOFF_INITIAL_MS + 1; // and at most 2 s
    const third = e.session.getToken();
    await e.source.settle();
    expect(await third).toBe('token-1');
    // Success resets it: the next failure opens a first-size window again.
    await e.session.invalidate('token-1');
    const fourth = e.session.getToken();
    await e.source.settle(down);
    await expect(fourth).rejects.toBe(down);
    e.clock.now += BACKOFF_INITIAL_MS;
    const fifth = e.session.getToken();
    await e.source.settle();
    expect(await fifth).toBe('token-2');
  });

  it('honours a 429/503 Retry-After', async () => {
    const e = engine();
    const first = e.session.getToken();
    const busy = new OAuthError('server_error', 503, undefined, 30_000);
    await e.source.settle(busy);
    await expect(first).rejects.toBe(busy);
    e.clock.now = 29_999;
    await expect(e.session.getToken()).rejects.toBe(busy);
    expect(e.source.started).toBe(1);
    e.clock.now = 30_000;
    const next = e.session.getToken();
    await e.source.settle();
    expect(await next).toBe('token-1');
  });

  it('backoff: false mints on every call after a failure', async () => {
    const e = engine({ backoff: false });
    const first = e.session.getToken();
    await e.source.settle(new TransportError('down'));
    await expect(first).rejects.toThrow();
    const second = e.session.getToken();
    await e.source.settle();
    expect(await second).toBe('token-1');
  });
});

describe('observability and close', () => {
  const fx = useFakeOrg();

  it('publishes mint, invalidate, backoff and retry events without a secret in any payload', async () => {
    const events: [string, unknown][] = [];
    const listeners = Object.values(DIAGNOSTICS_CHANNELS).map((name) => {
      const listener = (message: unknown) => events.push([name, message]);
      subscribe(name, listener);
      return [name, listener] as const;
    });
    try {
      const session = fx.session();
      const sfFetch = authFetch(session);
      await sfFetch('/services/data/v62.0/limits');
      fx.org.revokeAllTokens();
      await sfFetch('/services/data/v62.0/limits');
      const broken = fx.session({ clientSecret: 'wrong-secret-value' });
      await broken.getToken().catch(() => {});

      const names = events.map(([name]) => name);
      expect(names).toEqual([
        'cirrus-auth:mint:start',
        'cirrus-auth:mint:end',
        'cirrus-auth:invalidate',
        'cirrus-auth:mint:start',
        'cirrus-auth:mint:end',
        'cirrus-auth:retry',
        'cirrus-auth:mint:start',
        'cirrus-auth:mint:end',
        'cirrus-auth:backoff',
      ]);
      expect(events[1]?.[1]).toMatchObject({
        session: 'ClientCredentialsAuth',
        reason: 'cold',
        outcome: 'ok',
      });
      expect(events[2]?.[1]).toMatchObject({ hit: true });
      expect(events[3]?.[1]).toMatchObject({ reason: 'invalidated' });
      expect(events[5]?.[1]).toEqual({
        adapter: 'fetch',
        instanceUrl: fx.org.instanceUrl,
        status: 401,
        retried: true,
      });
      expect(events[7]?.[1]).toMatchObject({ outcome: 'ERR_OAUTH', transient: false });
      expect(events[8]?.[1]).toMatchObject({ failures: 1, code: 'ERR_OAUTH' });
      const all = JSON.stringify(events);
      for (const secret of [
        fx.org.clientSecret,
        'wrong-secret-value',
        await session.getToken(),
        'invalid client credentials',
      ]) {
        expect(all).not.toContain(secret);
      }
    } finally {
      for (const [name, listener] of listeners) unsubscribe(name, listener);
    }
  });

  it('writes to a pino/console-shaped logger, never a secret', async () => {
    const lines: [string, object, string][] = [];
    const logger = Object.fromEntries(
      ['debug', 'info', 'warn', 'error'].map((level) => [
        level,
        (fields: object, message: string) => lines.push([level, fields, message]),
      ]),
    );
    const session = fx.session({ logger });
    const token = await session.getToken();
    await fx
      .session({ logger, clientSecret: 'wrong-secret-value' })
      .getToken()
      .catch(() => {});
    expect(lines.map(([level, , message]) => `${level} ${message}`)).toEqual([
      'debug cirrus-auth: token minted',
      'warn cirrus-auth: token request failed',
      'warn cirrus-auth: backing off the token endpoint',
    ]);
    const all = JSON.stringify(lines);
    for (const secret of [token, fx.org.clientSecret, 'wrong-secret-value'])
      expect(all).not.toContain(secret);
  });

  it('a mint that finishes after close() does not bring the token back', async () => {
    const e = engine();
    const cold = e.session.getToken();
    const closing = e.session.close();
    await e.source.settle();
    await closing;
    await expect(cold).resolves.toBe('token-1'); // its own caller still gets it
    await expect(e.session.getToken()).rejects.toBeInstanceOf(SessionClosedError);
  });

  it('a hung onRefreshTokenRotated does not hang callers: it is cut off at timeoutMs with a warning', async () => {
    const warning = new Promise<Error>((resolve) => process.once('warning', resolve));
    const { session } = fx.refreshing({
      timeoutMs: 200,
      onRefreshTokenRotated: () => new Promise(() => {}),
    });
    expect(fx.org.isValidToken(await session.getToken())).toBe(true);
    expect(await warning).toBeInstanceOf(RefreshTokenHandlerError);
  });

  it('close() waits for a mint in flight, stops background mints, and then refuses', async () => {
    const e = engine();
    await warm(e);
    e.clock.now = REFRESH_AT;
    await e.session.getToken(); // a background mint is now in flight
    const closing = e.session.close();
    expect(await now_(closing)).toBe(WAITED);
    await e.source.settle();
    await closing;
    await expect(
      e.session.getToken({ signal: new AbortController().signal }),
    ).rejects.toBeInstanceOf(SessionClosedError);
    expect(e.source.started).toBe(2);
    const f = engine();
    await warm(f);
    await f.session[Symbol.asyncDispose]();
    f.clock.now = REFRESH_AT;
    await expect(f.session.getToken()).rejects.toBeInstanceOf(SessionClosedError);
    expect(f.source.started).toBe(1);
  });
});
