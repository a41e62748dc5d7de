import { describe, expect, it } from 'vitest';
import {
  InstanceUrlMismatchError,
  OAuthError,
  RefreshTokenAuth,
  RefreshTokenHandlerError,
  type RefreshTokenOptions,
  SessionRevokedError,
} from '../../src/index.js';
import { startFakeOrg } from '../../src/testing/index.js';
import { useFakeOrg } from '../_org.js';
import { caught, expectNoSecrets } from '../_secrets.js';
import { expectSingleFlightAndCas } from './_single-flight.js';

const fx = useFakeOrg();

const refreshing = (overrides: Partial<RefreshTokenOptions> = {}) => fx.refreshing(overrides);

/** Waits for the next process warning. */
function nextWarning(): Promise<Error> {
  return new Promise((resolve) => process.once('warning', resolve));
}

describe('RefreshTokenAuth', () => {
  it('refreshes, adopts each rotated token, hands it to the handler, and presents it next time', async () => {
    const { session, rotated } = refreshing();
    const first = await session.getToken();
    expect(fx.org.isValidToken(first)).toBe(true);
    expect(rotated).toHaveLength(1);
    await session.invalidate(first);
    await session.getToken();
    expect(fx.org.lastTokenRequest?.refresh_token).toBe(rotated[0]);
    expect(rotated).toHaveLength(2);
    expect(fx.org.isValidRefreshToken(rotated[1] as string)).toBe(true);
    expect(fx.org.stats.familyRevocations).toBe(0);
  });

  it('sends client_secret only for confidential apps', async () => {
    await refreshing().session.getToken();
    expect(fx.org.lastTokenRequest).toMatchObject({
      grant_type: 'refresh_token',
      client_secret: fx.org.clientSecret,
    });

    const session = new RefreshTokenAuth({
      clientId: fx.org.clientId,
      refreshToken: fx.org.issueRefreshToken(),
      loginUrl: fx.org.loginUrl,
      instanceUrl: fx.org.instanceUrl,
    });
    // This org requires the secret, so the public request is refused, and carried no secret at all.
    expect(await caught(() => session.getToken())).toMatchObject({
      name: 'OAuthError',
      error: 'invalid_client',
    });
    expect(fx.org.lastTokenRequest).not.toHaveProperty('client_secret');

    const lenient = await startFakeOrg({ requireClientSecret: false });
    try {
      const open = new RefreshTokenAuth({
        clientId: lenient.clientId,
        refreshToken: lenient.issueRefreshToken(),
        loginUrl: lenient.loginUrl,
        instanceUrl: lenient.instanceUrl,
      });
      await expect(open.getToken()).resolves.toBeTypeOf('string');
      expect(lenient.lastTokenRequest).not.toHaveProperty('client_secret');
    } finally {
      await lenient.close();
    }
  });

  it('without rotation, keeps presenting the same refresh token and never calls the handler', async () => {
    const steady = await startFakeOrg({ refreshTokenRotation: false });
    try {
      const refreshToken = steady.issueRefreshToken();
      const rotated: string[] = [];
      const session = new RefreshTokenAuth({
        clientId: steady.clientId,
        clientSecret: steady.clientSecret,
        refreshToken,
        loginUrl: steady.loginUrl,
        instanceUrl: steady.instanceUrl,
        onRefreshTokenRotated: (t) => void rotated.push(t),
      });
      for (let i = 0; i < 3; i++) {
        // Each token worked (confirm), then was rejected: a forced refresh, not a storm.
        const token = await session.getToken();
        session.confirm(token);
        await session.invalidate(token);
      }
      await session.getToken();
      expect(steady.stats.tokenRequests).toBe(4);
      expect(steady.lastTokenRequest?.refresh_token).toBe(refreshToken);
      expect(rotated).toEqual([]);
    } finally {
      await steady.close();
    }
  });

  it('adopts the rotated token even when the rest of the answer fails (another instance_url)', async () => {
    const { session, rotated } = refreshing({ backoff: false });
    fx.org.failTokenEndpoint(
      { kind: 'instance-url', instanceUrl: 'https://evil.my.salesforce.com' },
      { times: 1 },
    );
    expect(await caught(() => session.getToken())).toBeInstanceOf(InstanceUrlMismatchError);
    expect(rotated).toHaveLength(1);
    await expect(session.getToken()).resolves.toBeTypeOf('string');
    expect(fx.org.lastTokenRequest?.refresh_token).toBe(rotated[0]);
    expect(fx.org.stats.familyRevocations).toBe(0);
  });

  it('awaits the handler before handing out the new access token', async () => {
    const events: string[] = [];
    const { session } = refreshing({
      onRefreshTokenRotated: async () => {
        events.push('handler started');
        await new Promise((r) => setTimeout(r, 30));
        events.push('handler finished');
      },
    });
    await session.getToken();
    events.push('token handed out');
    expect(events).toEqual(['handler started', 'handler finished', 'token handed out']);
  });

  it('a throwing handler loses nothing: the token is kept, a warning is emitted, the session goes on', async () => {
    const { session } = refreshing({
      onRefreshTokenRotated: () => {
        throw new Error('disk full');
      },
    });
    const warning = nextWarning();
    const first = await session.getToken();
    const emitted = await warning;
    expect(emitted).toBeInstanceOf(RefreshTokenHandlerError);
    expect(emitted).toMatchObject({ code: 'ERR_ROTATION_HANDLER' });
    expect((emitted.cause as Error).message).toBe('disk full');
    await session.invalidate(first);
    const again = nextWarning();
    await expect(session.getToken()).resolves.toBeTypeOf('string');
    await again;
    expect(fx.org.stats.familyRevocations).toBe(0);
  });

  it('a handler that outlives timeoutMs still sees rotations in order: a late call never persists an older token last', async () => {
    const persisted: string[] = [];
    let calls = 0;
    const { session, refreshToken } = refreshing({
      timeoutMs: 150,
      onRefreshTokenRotated: async (token) => {
        // The first call hangs past timeoutMs; the engine moves on and rotates twice more.
        if (calls++ === 0) await new Promise((r) => setTimeout(r, 400));
        persisted.push(token);
      },
    });
    const warned = nextWarning();
    const issued: string[] = [];
    for (let i = 0; i < 3; i++) {
      const token = await session.getToken();
      issued.push(fx.org.lastTokenRequest?.refresh_token ?? '');
      session.confirm(token);
      await session.invalidate(token);
    }
    expect((await warned).cause).toBeInstanceOf(Error);
    await new Promise((r) => setTimeout(r, 500));
    expect(persisted).toHaveLength(3);
    // Each persisted token is the one the next refresh presented, in that order.
    expect(issued[0]).toBe(refreshToken);
    expect(persisted.slice(0, 2)).toEqual(issued.slice(1));
    expect(fx.org.isValidRefreshToken(persisted[2] as string)).toBe(true);
  });

  it('a caller aborting mid-refresh does not strand the rotation', async () => {
    const { session, rotated } = refreshing();
    fx.org.setTokenDelay(100);
    const controller = new AbortController();
    const aborted = session.getToken({ signal: controller.signal });
    while (fx.org.stats.tokenRequests === 0) await new Promise((r) => setTimeout(r, 5));
    controller.abort();
    await expect(aborted).rejects.toMatchObject({ name: 'AbortError' });
    const token = await session.getToken();
    expect(fx.org.isValidToken(token)).toBe(true);
    expect(rotated).toHaveLength(1);
    expect(fx.org.stats.tokenRequests).toBe(1);
  });

  it('presenting a rotated-away token revokes the family at the fake org, as Salesforce does', async () => {
    const refreshToken = fx.org.issueRefreshToken();
    const options = {
      clientId: fx.org.clientId,
      clientSecret: fx.org.clientSecret,
      refreshToken,
      loginUrl: fx.org.loginUrl,
      instanceUrl: fx.org.instanceUrl,
    };
    // Two holders of one refresh token: the bug rotation-unaware clients have.
    const first = await new RefreshTokenAuth(options).getToken();
    const failure = await caught(() => new RefreshTokenAuth(options).getToken());
    expect(failure).toBeInstanceOf(OAuthError);
    expect(failure).toMatchObject({ error: 'invalid_grant' });
    expect(fx.org.stats.familyRevocations).toBe(1);
    expect(fx.org.isValidToken(first)).toBe(false);
  });

  it('revoke() revokes at Salesforce, leaves the session unusable with SessionRevokedError, and is idempotent', async () => {
    const { session, rotated } = refreshing();
    const token = await session.getToken();
    await session.revoke();
    expect(fx.org.stats.revocations).toBe(1);
    expect(fx.org.isValidRefreshToken(rotated[0] as string)).toBe(false);
    expect(fx.org.isValidToken(token)).toBe(false);
    const error = await caught(() => session.getToken());
    expect(error).toBeInstanceOf(SessionRevokedError);
    expect(error).toMatchObject({ code: 'ERR_SESSION_REVOKED' });
    await session.revoke();
    expect(fx.org.stats.revocations).toBe(1);
  });

  it('seeds an access token it was given, and never shows a token or the secret', async () => {
    const minted = await refreshing().session.getToken();
    fx.org.resetStats();
    const refreshToken = fx.org.issueRefreshToken();
    const session = new RefreshTokenAuth({
      clientId: fx.org.clientId,
      clientSecret: fx.org.clientSecret,
      refreshToken,
      accessToken: minted,
      loginUrl: fx.org.loginUrl,
      instanceUrl: fx.org.instanceUrl,
    });
    expect(await session.getToken()).toBe(minted);
    expect(fx.org.stats.tokenRequests).toBe(0);
    expectNoSecrets(session, [refreshToken, minted, fx.org.clientSecret]);
    // A seed no header can carry is a ConfigError at construction.
    expect(
      () =>
        new RefreshTokenAuth({
          clientId: fx.org.clientId,
          refreshToken,
          accessToken: `${minted}\r\n`,
          instanceUrl: fx.org.instanceUrl,
        }),
    ).toThrow(expect.objectContaining({ code: 'ERR_CONFIG', option: 'accessToken' }));
  });

  it('single-flight and compare-and-swap hold for the refresh grant', async () => {
    await expectSingleFlightAndCas(refreshing().session, fx.org, 'refresh_token');
  });

  it('stress: 200 refreshes, 50 concurrent callers, random aborts: no family revocation, every token delivered once, in order', async () => {
    let seed = 42;
    const random = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const issued: string[] = [];
    const presented: string[] = [];
    const recording: typeof fetch = async (input, init) => {
      presented.push(new URLSearchParams(String(init?.body)).get('refresh_token') ?? '');
      const response = await fetch(input, init);
      const body = (await response.clone().json()) as { refresh_token?: string };
      if (body.refresh_token) issued.push(body.refresh_token);
      return response;
    };
    const initial = fx.org.issueRefreshToken();
    const delivered: string[] = [];
    const session = new RefreshTokenAuth({
      clientId: fx.org.clientId,
      clientSecret: fx.org.clientSecret,
      refreshToken: initial,
      loginUrl: fx.org.loginUrl,
      instanceUrl: fx.org.instanceUrl,
      fetch: recording,
      onRefreshTokenRotated: async (token) => {
        if (random() < 0.3) await new Promise((r) => setTimeout(r, 1));
        delivered.push(token);
      },
    });

    let aborts = 0;
    for (let round = 0; round < 200; round++) {
      const callers = Array.from({ length: 50 }, () => {
        if (random() < 0.2) {
          aborts++;
          const controller = new AbortController();
          setTimeout(() => controller.abort(), Math.floor(random() * 3));
          return session.getToken({ signal: controller.signal }).catch(() => undefined);
        }
        return session.getToken();
      });
      const tokens = (await Promise.all(callers)).filter((t) => t !== undefined);
      expect(new Set(tokens).size).toBe(1);
      session.confirm(tokens[0] as string);
      await session.invalidate(tokens[0] as string);
    }

    expect(aborts).toBeGreaterThan(1000);
    expect(fx.org.stats.familyRevocations).toBe(0);
    expect(fx.org.stats.tokenRequests).toBe(200);
    expect(issued).toHaveLength(200);
    expect(delivered).toEqual(issued);
    expect(new Set(delivered).size).toBe(200);
    expect(presented).toEqual([initial, ...issued.slice(0, -1)]);
    expect(fx.org.isValidRefreshToken(delivered.at(-1) as string)).toBe(true);
  });
});
