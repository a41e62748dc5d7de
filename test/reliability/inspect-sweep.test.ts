// Every error class and every session, in the states a program can hold them in, shown every way
// Node can show a value (test/_secrets.ts INSPECT_SWEEP: every util.inspect option combination,
// customInspect: false included), JSON.stringify, message and stack: no secret anywhere.
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { StreamingAuth } from '../../src/adapters/streaming.js';
import {
  AuthError,
  ConfigError,
  FlowMismatchError,
  InsecureUrlError,
  InstanceUrlMismatchError,
  JwtBearerAuth,
  OAuthError,
  RefreshTokenAuth,
  RefreshTokenHandlerError,
  ResponseTooLargeError,
  SessionClosedError,
  SessionPool,
  SessionRevokedError,
  SharedBackoffError,
  SigningError,
  StateMismatchError,
  StaticTokenAuth,
  SubjectTokenError,
  SubjectTokenType,
  TokenExchangeAuth,
  TokenStoreError,
  TransportError,
  UnexpectedResponseError,
  UnknownTenantError,
  WebServerFlow,
} from '../../src/index.js';
import { PostgresTokenStore } from '../../src/stores/postgres.js';
import { RedisTokenStore } from '../../src/stores/redis.js';
import { useFakeOrg } from '../_org.js';
import { caught, expectNoSecrets } from '../_secrets.js';

const fx = useFakeOrg();
const SECRET = 'sweep-secret-9f3a7c';
const SUBJECT_TOKEN = 'sweep-subject-token-4d1e';

describe('how util.inspect reaches a value', () => {
  // The ground truth the redaction design rests on (Node 22): an own accessor is listed always and
  // run with `getters`; a prototype accessor is listed with `showHidden` and run with both; a
  // `#private` field is never reached; `customInspect: false` skips `[util.inspect.custom]`.
  class Holder {
    readonly #hidden = 'private-field-value';
    constructor() {
      Object.defineProperty(this, 'own', { get: () => 'own-getter-value', enumerable: false });
    }
    get proto(): string {
      return `prototype-getter-value ${this.#hidden.length}`;
    }
    [inspect.custom](): string {
      return 'Holder {}';
    }
  }
  const seen = (options: Parameters<typeof inspect>[1]) => inspect(new Holder(), options);

  it('runs own accessors with getters, prototype accessors with showHidden and getters', () => {
    expect(seen({ customInspect: false, showHidden: true, getters: true })).toContain(
      'own-getter-value',
    );
    expect(seen({ customInspect: false, getters: true })).not.toContain('prototype-getter-value');
    expect(seen({ customInspect: false, showHidden: true })).toContain('[proto]: [Getter]');
    expect(seen({ customInspect: false, showHidden: true, getters: true })).toContain(
      'prototype-getter-value',
    );
    expect(seen({})).toBe('Holder {}');
  });

  it('never shows a #private field', () => {
    for (const options of [{}, { customInspect: false, showHidden: true, depth: Infinity }]) {
      expect(seen(options)).not.toContain('private-field-value');
    }
  });
});

describe('every error class passes the inspect sweep', () => {
  it('OAuthError keeps its description off every view, readable through errorDescription()', () => {
    const error = new OAuthError('invalid_grant', 400, `bad ${SECRET}`);
    expectNoSecrets(error, [SECRET]);
    expect(error.errorDescription()).toBe(`bad ${SECRET}`);
  });

  it('errors built from real failures show no secret', async () => {
    const session = fx.session({ backoff: false });
    fx.org.failTokenEndpoint({
      kind: 'status',
      status: 400,
      body: JSON.stringify({ error: 'invalid_client', error_description: fx.org.clientSecret }),
    });
    const oauth = await caught(() => session.getToken());
    expect(oauth).toBeInstanceOf(OAuthError);
    expectNoSecrets(oauth, [fx.org.clientSecret]);
    expectNoSecrets(session, [fx.org.clientSecret]);
    await session.close();
    const closed = await caught(() => session.getToken());
    expect(closed).toBeInstanceOf(SessionClosedError);
    expectNoSecrets(closed, [fx.org.clientSecret]);
  });

  it('every class, constructed directly, shows only its own fields', () => {
    const cause = { cause: new Error('cause text') };
    const errors: AuthError[] = [
      new AuthError('m'),
      new ConfigError('clientSecret', 'must be a string'),
      new InsecureUrlError('loginUrl'),
      new OAuthError('invalid_grant', 400, SECRET, 1000),
      new InstanceUrlMismatchError('https://a.my.salesforce.com', 'https://b.my.salesforce.com'),
      new UnexpectedResponseError(502, 'not an OAuth error body'),
      new ResponseTooLargeError(65_536),
      new TransportError('Token request failed'),
      new SigningError(cause),
      new StateMismatchError(),
      new FlowMismatchError(),
      new SessionRevokedError(),
      new SubjectTokenError('the subjectToken function failed', cause),
      new RefreshTokenHandlerError(cause),
      new SessionClosedError(),
      new TokenStoreError('undecryptable', cause),
      new SharedBackoffError('ERR_OAUTH', false, 1000),
      new UnknownTenantError('acme'),
    ];
    for (const error of errors) expectNoSecrets(error, [SECRET]);
  });
});

describe('every session passes the inspect sweep, fresh, minted and failed', () => {
  it('client credentials', async () => {
    const session = fx.session();
    expectNoSecrets(session, [fx.org.clientSecret]);
    const token = await session.getToken();
    expectNoSecrets(session, [fx.org.clientSecret, token]);
  });

  it('JWT bearer, with a PEM string', async () => {
    const session = new JwtBearerAuth({
      clientId: fx.org.clientId,
      username: fx.org.username,
      privateKey: fx.org.jwtPrivateKey as string,
      loginUrl: fx.org.loginUrl,
      instanceUrl: fx.org.instanceUrl,
    });
    const keyLine = (fx.org.jwtPrivateKey as string).split('\n')[3] ?? 'unset';
    const token = await session.getToken();
    const assertion = fx.org.lastTokenRequest?.assertion ?? 'unset';
    expectNoSecrets(session, [keyLine, token, assertion]);
  });

  it('refresh token, after a rotation and after a refusal', async () => {
    const { session, refreshToken, rotated } = fx.refreshing({ backoff: false });
    expectNoSecrets(session, [fx.org.clientSecret, refreshToken]);
    const token = await session.getToken();
    expectNoSecrets(session, [fx.org.clientSecret, refreshToken, token, ...rotated]);
    await session.invalidate(token);
    fx.org.failTokenEndpoint({ kind: 'status', status: 500, body: '' });
    expect(await caught(() => session.getToken())).toBeInstanceOf(UnexpectedResponseError);
    expectNoSecrets(session, [fx.org.clientSecret, refreshToken, token, ...rotated]);
  });

  it('a refresh-token session seeded with an access token', () => {
    const session = new RefreshTokenAuth({
      clientId: fx.org.clientId,
      clientSecret: fx.org.clientSecret,
      refreshToken: `5Aep${SECRET}`,
      accessToken: `00D!${SECRET}`,
      loginUrl: fx.org.loginUrl,
      instanceUrl: fx.org.instanceUrl,
    });
    expectNoSecrets(session, [fx.org.clientSecret, SECRET]);
  });

  it('static token', async () => {
    const session = new StaticTokenAuth({
      accessToken: `00D!${SECRET}`,
      instanceUrl: fx.org.instanceUrl,
    });
    await session.getToken();
    expectNoSecrets(session, [SECRET]);
  });

  it('token exchange, with a string and with a function', async () => {
    fx.org.addSubjectToken(SUBJECT_TOKEN, SubjectTokenType.ACCESS_TOKEN);
    for (const subjectToken of [SUBJECT_TOKEN, async () => SUBJECT_TOKEN]) {
      const session = new TokenExchangeAuth({
        clientId: fx.org.clientId,
        clientSecret: fx.org.clientSecret,
        subjectToken,
        subjectTokenType: SubjectTokenType.ACCESS_TOKEN,
        loginUrl: fx.org.loginUrl,
        instanceUrl: fx.org.instanceUrl,
      });
      const token = await session.getToken();
      expectNoSecrets(session, [fx.org.clientSecret, SUBJECT_TOKEN, token]);
    }
  });

  it('the web server flow and the session it completes to', async () => {
    const flow = new WebServerFlow({
      clientId: fx.org.clientId,
      clientSecret: fx.org.clientSecret,
      redirectUri: 'http://127.0.0.1:3000/callback',
      loginUrl: fx.org.loginUrl,
    });
    expectNoSecrets(flow, [fx.org.clientSecret]);
    const { url, pending } = flow.start();
    const callback = await fx.org.approve(url);
    const code = callback.searchParams.get('code') ?? 'unset';
    const rotated: string[] = [];
    const session = await flow.complete(pending, callback.searchParams, {
      onRefreshTokenRotated: (refreshToken) => {
        rotated.push(refreshToken);
      },
    });
    const token = await session.getToken();
    expect(rotated).toHaveLength(1);
    expectNoSecrets(flow, [fx.org.clientSecret, pending.codeVerifier, code]);
    expectNoSecrets(session, [fx.org.clientSecret, pending.codeVerifier, code, token, ...rotated]);
  });
});

describe('the other objects that hold a secret pass the inspect sweep', () => {
  it('the fake org, after token and API requests, while its fields stay readable', async () => {
    const session = fx.session();
    const token = await session.getToken();
    await fetch(`${fx.org.instanceUrl}/services/data/v62.0/limits`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(fx.org.lastTokenRequest?.client_secret).toBe(fx.org.clientSecret);
    expect(fx.org.apiRequests.at(-1)?.token).toBe(token);
    const keyLine = (fx.org.jwtPrivateKey as string).split('\n')[3] ?? 'unset';
    expectNoSecrets(fx.org, [fx.org.clientSecret, keyLine, token]);
    // What tests rely on: spreading it into session options, `in`, Object.keys.
    expect({ ...fx.org }).toMatchObject({ clientSecret: fx.org.clientSecret });
    expect('clientSecret' in fx.org).toBe(true);
    expect(Object.keys(fx.org)).toContain('jwtPrivateKey');
    expect(JSON.parse(JSON.stringify(fx.org))).toEqual({
      loginUrl: fx.org.loginUrl,
      instanceUrl: fx.org.instanceUrl,
      clientId: fx.org.clientId,
    });
  });

  it('a session pool and its tenant sessions, fresh and minted, and a fake tenant', async () => {
    const tenant = await fx.org.addTenant({ ownInstance: true });
    const pool = new SessionPool({
      loginUrl: fx.org.loginUrl,
      resolve: () => ({
        grant: 'client-credentials',
        options: {
          clientId: tenant.clientId,
          clientSecret: tenant.clientSecret,
          instanceUrl: tenant.instanceUrl,
        },
      }),
    });
    const session = await pool.session('acme');
    expectNoSecrets(pool, [tenant.clientSecret]);
    expectNoSecrets(session, [tenant.clientSecret]);
    const token = await session.getToken();
    expectNoSecrets(pool, [tenant.clientSecret, token]);
    expectNoSecrets(session, [tenant.clientSecret, token]);
    expectNoSecrets(tenant, [tenant.clientSecret, token]);
    expect({ ...tenant }).toMatchObject({ clientSecret: tenant.clientSecret });
    await pool.close();
  });

  it('the Streaming API extension, after a handshake carried a token', async () => {
    const session = fx.session();
    const auth = new StreamingAuth(session).attach({ setHeader: () => {} });
    await new Promise((resolve) => auth.outgoing({ channel: '/meta/handshake' }, resolve));
    expectNoSecrets(auth, [await session.getToken(), fx.org.clientSecret]);
  });

  it('a PostgreSQL token store with an encryption key', () => {
    const encryptionKey = 'cd'.repeat(32);
    const client = { query: async () => ({ rows: [], rowCount: 0 }) };
    const store = new PostgresTokenStore({ client, encryptionKey });
    expectNoSecrets(store, [encryptionKey, Buffer.from(encryptionKey, 'hex').toString('base64')]);
    expectNoSecrets(store.credentials, [encryptionKey]);
  });

  it('a Redis token store with an encryption key', () => {
    const encryptionKey = 'ab'.repeat(32);
    const store = new RedisTokenStore({ client: { call: async () => null }, encryptionKey });
    expectNoSecrets(store, [encryptionKey, Buffer.from(encryptionKey, 'hex').toString('base64')]);
  });
});
