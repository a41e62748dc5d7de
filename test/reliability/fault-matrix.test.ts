// Every minting grant against every token-endpoint fault: the documented AuthError subclass with the
// right `transient` flag, settled within timeoutMs plus a margin, no secret anywhere, and a working
// session once the fault is cleared. The matrix is printed as a table at the end.
import { afterAll, describe, expect, it } from 'vitest';
import {
  type AuthSession,
  InstanceUrlMismatchError,
  JwtBearerAuth,
  OAuthError,
  ResponseTooLargeError,
  SubjectTokenType,
  TokenExchangeAuth,
  TransportError,
  UnexpectedResponseError,
} from '../../src/index.js';
import { startEchoServer, type TokenFault } from '../../src/testing/index.js';
import { useFakeOrg } from '../_org.js';
import { caught, expectNoSecrets } from '../_secrets.js';

const fx = useFakeOrg();
const TIMEOUT_MS = 300;
const SUBJECT_TOKEN = 'idp-subject-token-secret';
// Backoff is tested on its own; here the next call after clearing a fault must reach the org.
const common = { timeoutMs: TIMEOUT_MS, backoff: false as const };

interface Grant {
  name: string;
  session(loginUrl?: string): AuthSession;
  /** Values that must never show in an error, beyond the client secret. */
  secrets(): string[];
}

let lastRefreshToken = 'unset';
const grants: Grant[] = [
  {
    name: 'client credentials',
    session: (loginUrl) => fx.session({ ...common, ...(loginUrl ? { loginUrl } : {}) }),
    secrets: () => [],
  },
  {
    name: 'JWT bearer',
    session: (loginUrl) =>
      new JwtBearerAuth({
        clientId: fx.org.clientId,
        username: fx.org.username,
        privateKey: fx.org.jwtPrivateKey as string,
        loginUrl: loginUrl ?? fx.org.loginUrl,
        instanceUrl: fx.org.instanceUrl,
        ...common,
      }),
    secrets: () => [
      (fx.org.jwtPrivateKey as string).split('\n')[3] ?? 'unset',
      fx.org.lastTokenRequest?.assertion ?? 'unset',
    ],
  },
  {
    name: 'refresh token',
    session: (loginUrl) => {
      const { session, refreshToken } = fx.refreshing({
        ...common,
        ...(loginUrl ? { loginUrl } : {}),
      });
      lastRefreshToken = refreshToken;
      return session;
    },
    secrets: () => [lastRefreshToken],
  },
  {
    name: 'token exchange',
    session: (loginUrl) => {
      fx.org.addSubjectToken(SUBJECT_TOKEN, SubjectTokenType.ACCESS_TOKEN);
      return new TokenExchangeAuth({
        clientId: fx.org.clientId,
        clientSecret: fx.org.clientSecret,
        subjectToken: SUBJECT_TOKEN,
        subjectTokenType: SubjectTokenType.ACCESS_TOKEN,
        loginUrl: loginUrl ?? fx.org.loginUrl,
        instanceUrl: fx.org.instanceUrl,
        ...common,
      });
    },
    secrets: () => [SUBJECT_TOKEN],
  },
];

type ErrorClass = new (...args: never[]) => Error;
interface Fault {
  name: string;
  fault: (secret: string, elsewhere: string) => TokenFault | 'refused';
  error: ErrorClass;
  transient: boolean;
}

const faults: Fault[] = [
  { name: 'connection refused', fault: () => 'refused', error: TransportError, transient: true },
  {
    name: 'reset mid-body',
    fault: () => ({ kind: 'reset-mid-body' }),
    error: TransportError,
    transient: true,
  },
  {
    name: 'stall before headers',
    fault: () => ({ kind: 'stall' }),
    error: TransportError,
    transient: true,
  },
  {
    name: 'stall mid-body',
    fault: () => ({ kind: 'stall-body' }),
    error: TransportError,
    transient: true,
  },
  {
    name: 'unparsable response echoing the request',
    fault: () => ({ kind: 'malformed-echo' }),
    error: TransportError,
    transient: true,
  },
  {
    name: '500',
    fault: () => ({ kind: 'status', status: 500, body: '' }),
    error: UnexpectedResponseError,
    transient: true,
  },
  {
    name: '502 HTML echoing the secret',
    fault: (secret) => ({
      kind: 'status',
      status: 502,
      headers: { 'content-type': 'text/html' },
      body: `<html>bad gateway for ${secret}</html>`,
    }),
    error: UnexpectedResponseError,
    transient: true,
  },
  {
    name: '503 with Retry-After',
    fault: () => ({ kind: 'status', status: 503, body: '', headers: { 'retry-after': '1' } }),
    error: UnexpectedResponseError,
    transient: true,
  },
  {
    name: '429',
    fault: () => ({ kind: 'status', status: 429, body: '' }),
    error: UnexpectedResponseError,
    transient: true,
  },
  ...([301, 302, 307, 308] as const).map((status) => ({
    name: `${status} to another host`,
    fault: (_: string, elsewhere: string): TokenFault => ({
      kind: 'redirect',
      status,
      location: `${elsewhere}/token`,
    }),
    error: UnexpectedResponseError,
    transient: false,
  })),
  {
    name: '200 non-JSON',
    fault: () => ({ kind: 'status', status: 200, body: 'ok' }),
    error: UnexpectedResponseError,
    transient: false,
  },
  {
    name: '200 JSON without access_token',
    fault: () => ({ kind: 'status', status: 200, body: '{"instance_url":"x"}' }),
    error: UnexpectedResponseError,
    transient: false,
  },
  {
    name: '200 with wrong types',
    fault: () => ({ kind: 'status', status: 200, body: '{"access_token":["a"],"instance_url":7}' }),
    error: UnexpectedResponseError,
    transient: false,
  },
  {
    name: '200 body of 10 MB',
    fault: () => ({ kind: 'oversized', bytes: 10 * 1024 * 1024 }),
    error: ResponseTooLargeError,
    transient: false,
  },
  {
    name: '200 gzip inflating past the cap',
    fault: () => ({ kind: 'gzip-bomb', inflatedBytes: 5 * 1024 * 1024 }),
    error: ResponseTooLargeError,
    transient: false,
  },
  {
    name: 'instance_url of another org',
    fault: () => ({ kind: 'instance-url', instanceUrl: 'https://other.my.salesforce.com' }),
    error: InstanceUrlMismatchError,
    transient: false,
  },
  {
    name: 'OAuth error describing the secret',
    fault: (secret) => ({
      kind: 'status',
      status: 400,
      body: JSON.stringify({ error: 'invalid_grant', error_description: `bad value ${secret}` }),
    }),
    error: OAuthError,
    transient: false,
  },
];

const cells = new Map<string, Record<string, string>>();
const record = (fault: string, grant: string, passed: boolean) => {
  const row = cells.get(fault) ?? {};
  row[grant] = passed ? '1/1' : '0/1';
  cells.set(fault, row);
};

afterAll(() => {
  console.log('\nToken-endpoint fault matrix (cells: passed / total)');
  console.table(Object.fromEntries(cells));
});

describe.each(grants)('fault matrix: $name', (grant) => {
  it.each(faults)('$name', async (fault) => {
    let passed = false;
    const elsewhere = await startEchoServer();
    try {
      const spec = fault.fault(fx.org.clientSecret, elsewhere.url);
      let loginUrl: string | undefined;
      if (spec === 'refused') {
        const closed = await startEchoServer();
        await closed.close();
        loginUrl = closed.url;
      } else {
        fx.org.failTokenEndpoint(spec);
      }
      const session = grant.session(loginUrl);
      const started = performance.now();
      const error = await caught(() => session.getToken());
      expect(performance.now() - started).toBeLessThan(TIMEOUT_MS + 2_000);
      expect(error).toBeInstanceOf(fault.error);
      expect(error).toMatchObject({ transient: fault.transient });
      expectNoSecrets(error, [fx.org.clientSecret, ...grant.secrets()]);
      expectNoSecrets(session, [fx.org.clientSecret, ...grant.secrets()]);
      expect(elsewhere.requests).toHaveLength(0);

      // Cleared: the same session works again on its next call (refused: a session for the live org).
      fx.org.healTokenEndpoint();
      const healed = spec === 'refused' ? grant.session() : session;
      expect(fx.org.isValidToken(await healed.getToken())).toBe(true);
      expect(fx.org.stats.familyRevocations).toBe(0);
      passed = true;
    } finally {
      record(fault.name, grant.name, passed);
      fx.org.healTokenEndpoint();
      await elsewhere.close();
    }
  });
});
