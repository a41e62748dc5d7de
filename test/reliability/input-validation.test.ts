// Every option of every public constructor and function, fed wrong types, empty strings,
// whitespace, non-URLs, javascript: and file: URLs, plain http to a non-loopback host, URLs with
// credentials or fragments, and enormous values: a ConfigError naming the option at construction,
// no network traffic, and no echo of the value.
import { generateKeyPairSync } from 'node:crypto';
import axios from 'axios';
import { describe, expect, it } from 'vitest';
import { attachAuth } from '../../src/adapters/axios.js';
import { authFetch, installGlobalFetch } from '../../src/adapters/fetch.js';
import { authHooks as gotAuthHooks } from '../../src/adapters/got.js';
import { pubsubClient } from '../../src/adapters/grpc.js';
import { jsforceOptions } from '../../src/adapters/jsforce.js';
import { authHooks } from '../../src/adapters/ky.js';
import { StreamingAuth } from '../../src/adapters/streaming.js';
import { authInterceptor as undiciAuthInterceptor } from '../../src/adapters/undici.js';
import {
  ClientCredentialsAuth,
  ConfigError,
  fromEnv,
  fromSfdxAuthUrl,
  JwtBearerAuth,
  OAuthError,
  RefreshTokenAuth,
  SessionPool,
  StateMismatchError,
  StaticTokenAuth,
  SubjectTokenType,
  selectGrant,
  TokenExchangeAuth,
  WebServerFlow,
} from '../../src/index.js';
import { PostgresTokenStore } from '../../src/stores/postgres.js';
import { caught, expectNoSecrets } from '../_secrets.js';

const MARK = 'Zq9secretValueZq9';
const URL_OK = 'https://acme.my.salesforce.com';
const PEM = generateKeyPairSync('rsa', { modulusLength: 2048 })
  .privateKey.export({ type: 'pkcs8', format: 'pem' })
  .toString();
let requests = 0;
const fetch = (async () => {
  requests++;
  return new Response('{}');
}) as typeof globalThis.fetch;

const badStrings = [undefined, null, 42, {}, [], '', '   ', '\t\n'];
const badUrls = [
  42,
  '',
  '   ',
  'not a url',
  `javascript:alert('${MARK}')`,
  `file:///etc/${MARK}`,
  `http://acme.my.salesforce.com/${MARK}`,
  `https://user:${MARK}@acme.my.salesforce.com`,
  `https://acme.my.salesforce.com/#${MARK}`,
  `https://acme.my.salesforce.com/?q=${MARK}`,
  `ftp://acme.my.salesforce.com/${MARK}`,
];
const badMs = [
  0,
  -1,
  1.5,
  Number.NaN,
  Number.POSITIVE_INFINITY,
  Number.MAX_VALUE,
  2 ** 53,
  '1000',
  {},
];
const badFunctions = ['fetch', 42, {}, []];

type Kind = 'string' | 'url' | 'ms' | 'msOrZero' | 'function' | 'boolean';
const valuesFor: Record<Kind, unknown[]> = {
  string: badStrings,
  url: badUrls,
  ms: badMs,
  msOrZero: badMs.filter((v) => v !== 0), // refreshAheadMs: 0 turns refresh-ahead off
  function: badFunctions,
  boolean: ['true', 0, 1, null, {}, []],
};
/** Options that may be left out: undefined is a valid value for them. */
const OPTIONAL = new Set([
  'clientSecret',
  'accessToken',
  'loginUrl',
  'audience',
  'scope',
  'onRefreshTokenRotated',
  'target',
]);

interface Subject {
  name: string;
  valid: Record<string, unknown>;
  options: Record<string, Kind>;
  make(options: Record<string, unknown>): unknown;
}

const endpoint = {
  timeoutMs: 'ms',
  tokenTtlMs: 'ms',
  refreshAheadMs: 'msOrZero',
  fetch: 'function',
  now: 'function',
  verifySignature: 'boolean',
} as const;
const subjects: Subject[] = [
  {
    name: 'ClientCredentialsAuth',
    valid: { clientId: 'id', clientSecret: MARK, loginUrl: URL_OK, instanceUrl: URL_OK, fetch },
    options: {
      clientId: 'string',
      clientSecret: 'string',
      loginUrl: 'url',
      instanceUrl: 'url',
      ...endpoint,
    },
    make: (o) => new ClientCredentialsAuth(o as never),
  },
  {
    name: 'JwtBearerAuth',
    valid: { clientId: 'id', username: 'u@acme.com', privateKey: PEM, instanceUrl: URL_OK, fetch },
    options: {
      clientId: 'string',
      username: 'string',
      loginUrl: 'url',
      audience: 'url',
      instanceUrl: 'url',
      ...endpoint,
    },
    make: (o) => new JwtBearerAuth(o as never),
  },
  {
    name: 'RefreshTokenAuth',
    valid: { clientId: 'id', refreshToken: MARK, instanceUrl: URL_OK, fetch },
    options: {
      clientId: 'string',
      clientSecret: 'string',
      refreshToken: 'string',
      accessToken: 'string',
      loginUrl: 'url',
      instanceUrl: 'url',
      onRefreshTokenRotated: 'function',
      ...endpoint,
    },
    make: (o) => new RefreshTokenAuth(o as never),
  },
  {
    name: 'TokenExchangeAuth',
    valid: {
      clientId: 'id',
      subjectToken: MARK,
      subjectTokenType: SubjectTokenType.JWT,
      instanceUrl: URL_OK,
      fetch,
    },
    options: {
      clientId: 'string',
      clientSecret: 'string',
      scope: 'string',
      loginUrl: 'url',
      instanceUrl: 'url',
      ...endpoint,
    },
    make: (o) => new TokenExchangeAuth(o as never),
  },
  {
    name: 'StaticTokenAuth',
    valid: { accessToken: MARK, instanceUrl: URL_OK },
    options: { accessToken: 'string', instanceUrl: 'url' },
    make: (o) => new StaticTokenAuth(o as never),
  },
  {
    name: 'WebServerFlow',
    valid: { clientId: 'id', clientSecret: MARK, redirectUri: 'https://app.example.com/cb', fetch },
    options: {
      clientId: 'string',
      clientSecret: 'string',
      loginUrl: 'url',
      timeoutMs: 'ms',
      fetch: 'function',
    },
    make: (o) => new WebServerFlow(o as never),
  },
  {
    name: 'SessionPool',
    valid: { resolve: () => undefined, fetch },
    options: {
      resolve: 'function',
      maxSessions: 'ms',
      idleMs: 'ms',
      loginUrl: 'url',
      ...endpoint,
    },
    make: (o) => new SessionPool(o as never),
  },
  {
    name: 'PostgresTokenStore',
    valid: { client: { query: fetch } },
    options: {
      table: 'string',
      credentialsTable: 'string',
      lockTtlMs: 'ms',
      queryTimeoutMs: 'ms',
    },
    make: (o) => new PostgresTokenStore(o as never),
  },
  {
    name: 'got authHooks',
    valid: {},
    options: { isAuthFailure: 'function' },
    make: (o) =>
      gotAuthHooks(new StaticTokenAuth({ accessToken: MARK, instanceUrl: URL_OK }), o as never),
  },
  {
    name: 'undici authInterceptor',
    valid: {},
    options: { isAuthFailure: 'function' },
    make: (o) =>
      undiciAuthInterceptor(
        new StaticTokenAuth({ accessToken: MARK, instanceUrl: URL_OK }),
        o as never,
      ),
  },
  {
    name: 'pubsubClient',
    valid: { target: '127.0.0.1:7443' },
    options: { target: 'string', tenantId: 'string', onStreamRejected: 'function' },
    make: (o) =>
      pubsubClient(new StaticTokenAuth({ accessToken: MARK, instanceUrl: URL_OK }), o as never),
  },
  {
    name: 'StreamingAuth',
    valid: {},
    options: { onFailure: 'function', replay: 'boolean' },
    make: (o) =>
      new StreamingAuth(
        new StaticTokenAuth({ accessToken: MARK, instanceUrl: URL_OK }),
        o as never,
      ),
  },
  {
    name: 'authFetch over a SessionPool',
    valid: { tenant: () => 'acme' },
    options: { tenant: 'function', isAuthFailure: 'function', fetch: 'function' },
    make: (o) => authFetch(new SessionPool({ resolve: () => undefined }), o as never),
  },
  {
    name: 'authHooks over a SessionPool',
    valid: { tenant: () => 'acme' },
    options: { tenant: 'function', isAuthFailure: 'function' },
    make: (o) => authHooks(new SessionPool({ resolve: () => undefined }), o as never),
  },
  {
    name: 'attachAuth over a SessionPool',
    valid: { tenant: () => 'acme' },
    options: { tenant: 'function', isAuthFailure: 'function' },
    make: (o) =>
      attachAuth(axios.create(), new SessionPool({ resolve: () => undefined }), o as never),
  },
  {
    name: 'authFetch',
    valid: {},
    options: { isAuthFailure: 'function', fetch: 'function' },
    make: (o) =>
      authFetch(new StaticTokenAuth({ accessToken: MARK, instanceUrl: URL_OK }), o as never),
  },
  {
    name: 'authHooks',
    valid: {},
    options: { isAuthFailure: 'function' },
    make: (o) =>
      authHooks(new StaticTokenAuth({ accessToken: MARK, instanceUrl: URL_OK }), o as never),
  },
  {
    name: 'attachAuth',
    valid: {},
    options: { isAuthFailure: 'function' },
    make: (o) =>
      attachAuth(
        axios.create(),
        new StaticTokenAuth({ accessToken: MARK, instanceUrl: URL_OK }),
        o as never,
      ),
  },
];

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  return undefined;
}

describe('input validation', () => {
  for (const subject of subjects) {
    describe(subject.name, () => {
      it.each(Object.entries(subject.options))(
        'a bad %s is a ConfigError naming it, before any traffic',
        (option, kind) => {
          requests = 0;
          for (const value of valuesFor[kind]) {
            // An optional option may be left out: undefined is a valid value for it.
            if (value === undefined && (OPTIONAL.has(option) || !(option in subject.valid)))
              continue;
            const error = thrown(() => subject.make({ ...subject.valid, [option]: value }));
            expect(error, `${option} = ${String(value).slice(0, 40)}`).toBeInstanceOf(ConfigError);
            expect(error).toMatchObject({ option });
            expectNoSecrets(error, [MARK]);
          }
          expect(requests).toBe(0);
        },
      );
    });
  }

  it('a non-object options argument is a ConfigError', () => {
    for (const subject of subjects.slice(0, 6)) {
      for (const value of [null, 42, 'options']) {
        expect(thrown(() => subject.make(value as never))).toBeInstanceOf(ConfigError);
      }
    }
  });

  it('origins, maxReplayBodyBytes, backoff, logger and the other helpers validate too', async () => {
    const session = new StaticTokenAuth({ accessToken: MARK, instanceUrl: URL_OK });
    for (const origins of [
      'x',
      [42],
      [`javascript:${MARK}`],
      [`http://evil.example.com/${MARK}`],
      [`https://u:${MARK}@x.com`],
    ]) {
      expect(thrown(() => authFetch(session, { origins: origins as never }))).toMatchObject({
        option: 'origins',
      });
    }
    for (const maxReplayBodyBytes of [-1, 1.5, Number.NaN, '10']) {
      expect(
        thrown(() => authFetch(session, { maxReplayBodyBytes: maxReplayBodyBytes as never })),
      ).toMatchObject({
        option: 'maxReplayBodyBytes',
      });
    }
    const base = { clientId: 'id', clientSecret: MARK, loginUrl: URL_OK, instanceUrl: URL_OK };
    expect(thrown(() => new ClientCredentialsAuth({ ...base, backoff: 5 as never }))).toMatchObject(
      { option: 'backoff' },
    );
    expect(
      thrown(() => new ClientCredentialsAuth({ ...base, backoff: { initialMs: -1 } })),
    ).toMatchObject({
      option: 'backoff.initialMs',
    });
    expect(
      thrown(() => new ClientCredentialsAuth({ ...base, logger: 'console' as never })),
    ).toMatchObject({ option: 'logger' });
    expect(thrown(() => installGlobalFetch(session, { fetch } as never))).toMatchObject({
      option: 'fetch',
    });
    expect(thrown(() => fromSfdxAuthUrl(`force://${MARK}`))).toMatchObject({
      option: 'sfdxAuthUrl',
    });
    expectNoSecrets(
      thrown(() => fromSfdxAuthUrl(`force://${MARK}`)),
      [MARK],
    );
    expect(await caught(() => jsforceOptions(session, { version: 'latest' }))).toMatchObject({
      option: 'version',
    });
    expect(
      thrown(() => new WebServerFlow({ clientId: 'id', redirectUri: `javascript:${MARK}` })),
    ).toMatchObject({
      option: 'redirectUri',
    });
    expect(
      thrown(
        () =>
          new JwtBearerAuth({
            clientId: 'id',
            username: 'u',
            privateKey: MARK,
            instanceUrl: URL_OK,
          }),
      ),
    ).toMatchObject({
      option: 'privateKey',
    });
    expect(requests).toBe(0);
  });
});

describe('fromEnv, fromSfdxAuthUrl and WebServerFlow.complete with values of the wrong type', () => {
  /** Every variable fromEnv reads. */
  const VARIABLES = [
    'SFDX_AUTH_URL',
    'SF_REFRESH_TOKEN',
    'SF_REFRESH_TOKEN_FILE',
    'SF_PRIVATE_KEY',
    'SF_PRIVATE_KEY_FILE',
    'SF_CLIENT_ID',
    'SF_CLIENT_SECRET',
    'SF_USERNAME',
    'SF_INSTANCE_URL',
    'SF_LOGIN_URL',
    'SF_ACCESS_TOKEN',
  ];
  /** One environment per grant, each complete: the bad value is the only thing wrong. */
  const ENVS: Record<string, Record<string, string>> = {
    'sfdx-auth-url': { SFDX_AUTH_URL: `force://id::${MARK}@acme.my.salesforce.com` },
    'refresh-token': { SF_REFRESH_TOKEN: MARK, SF_CLIENT_ID: 'id', SF_INSTANCE_URL: URL_OK },
    'jwt-bearer': {
      SF_PRIVATE_KEY: PEM,
      SF_CLIENT_ID: 'id',
      SF_USERNAME: 'u@acme.com',
      SF_INSTANCE_URL: URL_OK,
    },
    'client-credentials': { SF_CLIENT_ID: 'id', SF_CLIENT_SECRET: MARK, SF_LOGIN_URL: URL_OK },
    'static-token': { SF_ACCESS_TOKEN: MARK, SF_INSTANCE_URL: URL_OK },
  };
  const nonStrings: unknown[] = [42, true, null, { value: MARK }, [MARK], () => MARK];
  const nonObjects: unknown[] = [null, 42, 'options', true];

  it.each(VARIABLES)('a non-string %s is a ConfigError naming it, whatever the grant', (name) => {
    for (const [grant, env] of Object.entries(ENVS)) {
      for (const value of nonStrings) {
        const bad = { ...env, [name]: value } as never;
        for (const call of [() => fromEnv(bad, { fetch }), () => selectGrant(bad)]) {
          const error = thrown(call);
          expect(error, `${grant}, ${name} = ${typeof value}`).toBeInstanceOf(ConfigError);
          expect(error).toMatchObject({ option: name });
          expectNoSecrets(error, [MARK]);
        }
      }
    }
    expect(requests).toBe(0);
  });

  it('a fromEnv argument that is not an object, or a handler that is not a function, is a ConfigError', () => {
    for (const env of nonObjects)
      expect(thrown(() => fromEnv(env as never))).toMatchObject({ option: 'env' });
    for (const env of Object.values(ENVS)) {
      for (const options of nonObjects) {
        expect(thrown(() => fromEnv(env, options as never))).toMatchObject({
          name: 'ConfigError',
          option: 'options',
        });
      }
      for (const handler of badFunctions) {
        const error = thrown(() => fromEnv(env, { onRefreshTokenRotated: handler as never }));
        expect(error).toMatchObject({ name: 'ConfigError', option: 'onRefreshTokenRotated' });
      }
    }
    expect(requests).toBe(0);
  });

  it('fromSfdxAuthUrl: a URL that is not a string, or options that are not an object, is a ConfigError', () => {
    for (const url of nonStrings) {
      const error = thrown(() => fromSfdxAuthUrl(url as never));
      expect(error).toMatchObject({ name: 'ConfigError', option: 'sfdxAuthUrl' });
      expectNoSecrets(error, [MARK]);
    }
    for (const options of nonObjects) {
      const error = thrown(() =>
        fromSfdxAuthUrl(ENVS['sfdx-auth-url']?.SFDX_AUTH_URL as string, options as never),
      );
      expect(error).toMatchObject({ name: 'ConfigError', option: 'options' });
      expectNoSecrets(error, [MARK]);
    }
  });

  it('WebServerFlow.complete: every argument of the wrong type is a typed error before any request', async () => {
    const flow = new WebServerFlow({
      clientId: 'id',
      redirectUri: 'https://app.example.com/cb',
      fetch,
    });
    const { pending } = flow.start();
    const ok = { state: pending.state, code: 'code-value' };
    const cases: [string, unknown[], new (...args: never[]) => Error, string | undefined][] = [
      ['pending', [null, 42, 'pending', {}, { ...pending, state: 42 }], ConfigError, 'pending'],
      [
        'callback',
        [
          [pending, null],
          [pending, 42],
          [pending, 'state=x'],
        ],
        ConfigError,
        'callback',
      ],
      ['options', nonObjects.map((o) => [pending, ok, o]), ConfigError, 'options'],
      [
        'options.onRefreshTokenRotated',
        badFunctions.map((f) => [pending, ok, { onRefreshTokenRotated: f }]),
        ConfigError,
        'onRefreshTokenRotated',
      ],
      [
        'callback.state',
        nonStrings.map((state) => [pending, { ...ok, state }]),
        StateMismatchError,
        undefined,
      ],
      [
        'callback.code',
        nonStrings.filter((c) => c !== null).map((code) => [pending, { ...ok, code }]),
        OAuthError,
        undefined,
      ],
      [
        'callback.error',
        nonStrings.filter((e) => e !== null).map((error) => [pending, { ...ok, error }]),
        OAuthError,
        undefined,
      ],
    ];
    for (const [position, argLists, type, option] of cases) {
      for (const args of argLists) {
        const list = position === 'pending' ? [args, ok] : (args as unknown[]);
        const error = await caught(() => (flow.complete as (...a: unknown[]) => unknown)(...list));
        expect(error, position).toBeInstanceOf(type);
        if (option !== undefined) expect(error).toMatchObject({ option });
        if (type === OAuthError) expect(error).toMatchObject({ error: 'invalid_request' });
        expectNoSecrets(error, [MARK, pending.state, pending.codeVerifier]);
      }
    }
    // Wrong arguments are reported before a wrong state.
    expect(
      await caught(() => flow.complete(pending, { state: 'forged', code: 'c' }, null as never)),
    ).toMatchObject({ name: 'ConfigError', option: 'options' });
    expect(requests).toBe(0);
  });
});
