import { afterAll, afterEach, beforeAll } from 'vitest';
import {
  ClientCredentialsAuth,
  type ClientCredentialsOptions,
  RefreshTokenAuth,
  type RefreshTokenOptions,
  WebServerFlow,
  type WebServerFlowOptions,
} from '../src/index.js';
import {
  type EchoServer,
  type FakeOrg,
  type FakeOrgOptions,
  startEchoServer,
  startFakeOrg,
} from '../src/testing/index.js';

/** What {@link useFakeOrg} gives a test file. */
export interface OrgFixture {
  /** The fake org, started before the file's tests and closed after them. */
  readonly org: FakeOrg;
  /** An echo server: another origin, which must never see a token. */
  readonly other: EchoServer;
  /** A client-credentials session for the org; `overrides` replace any option. */
  session(overrides?: Partial<ClientCredentialsOptions>): ClientCredentialsAuth;
  /**
   * A confidential-app refresh-token session on a new token family; `rotated` collects every
   * refresh token handed to `onRefreshTokenRotated` (unless `overrides` replaces the handler).
   */
  refreshing(overrides?: Partial<RefreshTokenOptions>): {
    session: RefreshTokenAuth;
    rotated: string[];
    refreshToken: string;
  };
  /** A session whose cached token the org has just revoked (counters zeroed): one 401 ahead. */
  staleSession(): Promise<ClientCredentialsAuth>;
}

/** A client-credentials session for `org`. */
export function sessionFor(org: FakeOrg, overrides: Partial<ClientCredentialsOptions> = {}) {
  return new ClientCredentialsAuth({
    clientId: org.clientId,
    clientSecret: org.clientSecret,
    loginUrl: org.loginUrl,
    instanceUrl: org.instanceUrl,
    ...overrides,
  });
}

/** A confidential web server flow on `org`, with a loopback callback URL. */
export function webServerFlowFor(org: FakeOrg, overrides: Partial<WebServerFlowOptions> = {}) {
  return new WebServerFlow({
    clientId: org.clientId,
    clientSecret: org.clientSecret,
    redirectUri: 'http://localhost:3000/callback',
    loginUrl: org.loginUrl,
    ...overrides,
  });
}

/** Starts a login on `flow` and lets `org` play the browser: the pending login and the callback. */
export async function loginThrough(flow: WebServerFlow, org: FakeOrg) {
  const { url, pending } = flow.start();
  return { pending, callback: (await org.approve(url)).searchParams };
}

/**
 * Registers the hooks every file that talks to the fake org needs: start it and an echo server
 * before the tests, undo every fault and zero the counters after each test, close both at the end.
 */
export function useFakeOrg(options?: FakeOrgOptions): OrgFixture {
  let org: FakeOrg | undefined;
  let other: EchoServer | undefined;
  beforeAll(async () => {
    [org, other] = await Promise.all([startFakeOrg(options), startEchoServer()]);
  });
  afterAll(async () => {
    await Promise.all([org?.close(), other?.close()]);
  });
  afterEach(() => {
    if (org === undefined) return;
    org.healTokenEndpoint();
    org.setTokenDelay(0);
    org.setApiDelay(0);
    org.rejectApiTokens(undefined);
    org.failApiRequests(200, { times: 0 });
    org.resetStats();
  });
  const started = <T>(value: T | undefined): T => {
    if (value === undefined)
      throw new Error('the fake org is not started yet: use it inside a test');
    return value;
  };
  return {
    get org() {
      return started(org);
    },
    get other() {
      return started(other);
    },
    session: (overrides) => sessionFor(started(org), overrides),
    refreshing(overrides = {}) {
      const live = started(org);
      const rotated: string[] = [];
      const refreshToken = live.issueRefreshToken();
      const session = new RefreshTokenAuth({
        clientId: live.clientId,
        clientSecret: live.clientSecret,
        refreshToken,
        loginUrl: live.loginUrl,
        instanceUrl: live.instanceUrl,
        onRefreshTokenRotated: (token) => {
          rotated.push(token);
        },
        ...overrides,
      });
      return { session, rotated, refreshToken };
    },
    async staleSession() {
      const session = sessionFor(started(org));
      await session.getToken();
      started(org).revokeAllTokens();
      started(org).resetStats();
      return session;
    },
  };
}
