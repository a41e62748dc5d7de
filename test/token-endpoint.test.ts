import { createHmac } from 'node:crypto';
import nock from 'nock';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { OAuthError, SignatureMismatchError, UnexpectedResponseError } from '../src/errors.js';
import { loginEndpoint, requestToken, TOKEN_PATH, tokenEndpoint } from '../src/token-endpoint.js';
import { caught, expectNoSecrets } from './_secrets.js';

// Narrow unit tests of the response parser: nock answers global fetch, no server needed.
const HOST = 'https://acme.my.salesforce.com';
const IDENTITY = 'https://login.salesforce.com/id/00D000000000001EAA/005000000000001AAA';
const endpoint = tokenEndpoint({ loginUrl: HOST, instanceUrl: HOST, timeoutMs: 2_000 });
const params = { grant_type: 'client_credentials', client_id: 'id', client_secret: 'shh-secret' };
const sign = (id: string, issuedAt: string, secret = 'shh-secret') =>
  createHmac('sha256', secret)
    .update(id + issuedAt)
    .digest('base64');

beforeAll(() => nock.disableNetConnect());
afterEach(() => nock.cleanAll());
afterAll(() => nock.enableNetConnect());

describe('requestToken', () => {
  it('POSTs the grant form-encoded and parses a full success body', async () => {
    const scope = nock(HOST)
      .matchHeader('content-type', 'application/x-www-form-urlencoded')
      .post(TOKEN_PATH, 'grant_type=client_credentials&client_id=id&client_secret=shh-secret')
      .reply(200, {
        access_token: '00Dxx!token',
        instance_url: `${HOST}/`,
        id: IDENTITY,
        token_type: 'Bearer',
        issued_at: '1700000000000',
        signature: sign(IDENTITY, '1700000000000'),
        scope: 'api refresh_token',
        refresh_token: '5Aep-refresh',
        expires_in: '7200',
        id_token: 'eyJhbGciOiJSUzI1NiJ9.e30.id-token-signature',
        sfdc_community_url: 'https://acme.my.site.com/partners',
        sfdc_community_id: '0DB000000000001',
        api_instance_url: 'https://api.salesforce.com',
      });
    const answer = await requestToken(endpoint, params);
    const { info, ...rest } = answer;
    expect(rest).toEqual({
      accessToken: '00Dxx!token',
      instanceUrl: HOST,
      id: IDENTITY,
      scope: 'api refresh_token',
      refreshToken: '5Aep-refresh',
      expiresInMs: 7_200_000,
    });
    expect(info).toEqual({
      instanceUrl: HOST,
      identityUrl: IDENTITY,
      orgId: '00D000000000001EAA',
      userId: '005000000000001AAA',
      issuedAt: 1_700_000_000_000,
      scopes: ['api', 'refresh_token'],
      tokenType: 'Bearer',
      signatureVerified: true,
      communityUrl: 'https://acme.my.site.com/partners',
      communityId: '0DB000000000001',
      apiInstanceUrl: 'https://api.salesforce.com',
    });
    // The ID token is readable by name, and listed nowhere.
    expect(info.idToken).toBe('eyJhbGciOiJSUzI1NiJ9.e30.id-token-signature');
    expect(Object.keys(info)).not.toContain('idToken');
    expectNoSecrets(info, ['id-token-signature', '00Dxx!token', '5Aep-refresh']);
    expect(scope.isDone()).toBe(true);
  });

  it('a signature that is not HMAC-SHA256(client secret, id + issued_at) is refused', async () => {
    const forged = [
      sign(IDENTITY, '1700000000000', 'another-secret'),
      sign(IDENTITY, '1700000000001'),
      `${sign(IDENTITY, '1700000000000')}junk`,
      '',
      42,
    ];
    for (const signature of forged) {
      nock(HOST).post(TOKEN_PATH).reply(200, {
        access_token: '00Dxx!forged',
        instance_url: HOST,
        id: IDENTITY,
        issued_at: '1700000000000',
        signature,
      });
      const error = await caught(() => requestToken(endpoint, params));
      expect(error).toBeInstanceOf(SignatureMismatchError);
      expect(error).toMatchObject({ code: 'ERR_SIGNATURE_MISMATCH', transient: false });
      expectNoSecrets(error, ['shh-secret', '00Dxx!forged']);
    }
    // A signature without the id it signs cannot be checked: refused too.
    nock(HOST)
      .post(TOKEN_PATH)
      .reply(200, {
        access_token: 't',
        instance_url: HOST,
        issued_at: '1',
        signature: sign('', '1'),
      });
    expect(await caught(() => requestToken(endpoint, params))).toBeInstanceOf(
      SignatureMismatchError,
    );
  });

  it('signatureVerified is false without a client secret, without a signature, or with verifySignature off', async () => {
    const body = {
      access_token: 't',
      instance_url: HOST,
      id: IDENTITY,
      issued_at: '1700000000000',
      signature: 'not-checked',
    };
    nock(HOST).post(TOKEN_PATH).reply(200, body);
    const publicApp = { grant_type: 'refresh_token', refresh_token: 'r', client_id: 'id' };
    expect((await requestToken(endpoint, publicApp)).info.signatureVerified).toBe(false);

    nock(HOST)
      .post(TOKEN_PATH)
      .reply(200, { ...body, signature: undefined });
    expect((await requestToken(endpoint, params)).info.signatureVerified).toBe(false);

    const unchecked = tokenEndpoint({ loginUrl: HOST, instanceUrl: HOST, verifySignature: false });
    nock(HOST).post(TOKEN_PATH).reply(200, body);
    expect((await requestToken(unchecked, params)).info).toMatchObject({
      signatureVerified: false,
      orgId: '00D000000000001EAA',
    });
    expect(() =>
      tokenEndpoint({ loginUrl: HOST, instanceUrl: HOST, verifySignature: 'no' as never }),
    ).toThrow(expect.objectContaining({ code: 'ERR_CONFIG', option: 'verifySignature' }));
  });

  it('accepts a numeric expires_in and omits absent optional fields', async () => {
    nock(HOST)
      .post(TOKEN_PATH)
      .reply(200, { access_token: 't', instance_url: HOST, expires_in: 60 });
    expect(await requestToken(endpoint, params)).toEqual({
      accessToken: 't',
      instanceUrl: HOST,
      expiresInMs: 60_000,
      info: { instanceUrl: HOST, scopes: [], signatureVerified: false },
    });
  });

  it.each([0, -5, 'NaN'])('rejects expires_in %s', async (expiresIn) => {
    nock(HOST)
      .post(TOKEN_PATH)
      .reply(200, { access_token: 't', instance_url: HOST, expires_in: expiresIn });
    expect(await caught(() => requestToken(endpoint, params))).toBeInstanceOf(
      UnexpectedResponseError,
    );
  });

  it('an OAuth error on a 503 is transient and keeps the status', async () => {
    nock(HOST)
      .post(TOKEN_PATH)
      .reply(503, { error: 'server_error', error_description: 'try later' });
    const error = await caught(() => requestToken(endpoint, params));
    expect(error).toBeInstanceOf(OAuthError);
    expect(error).toMatchObject({ status: 503, transient: true, error: 'server_error' });
    expect((error as OAuthError).errorDescription()).toBe('try later');
  });

  it('a JSON error body that is not OAuth-shaped is an UnexpectedResponseError', async () => {
    nock(HOST)
      .post(TOKEN_PATH)
      .reply(400, [{ message: 'nope', errorCode: 'X' }]);
    expect(await caught(() => requestToken(endpoint, params))).toMatchObject({
      name: 'UnexpectedResponseError',
      status: 400,
    });
    nock(HOST).post(TOKEN_PATH).reply(400, { error: '' });
    expect(await caught(() => requestToken(endpoint, params))).toBeInstanceOf(
      UnexpectedResponseError,
    );
  });

  it('an error code that is not a plain code is not put into a message', async () => {
    nock(HOST).post(TOKEN_PATH).reply(400, { error: 'bad secret shh-secret in the request' });
    const error = await caught(() => requestToken(endpoint, params));
    expect(error).toBeInstanceOf(UnexpectedResponseError);
    expect(String((error as Error).message)).not.toContain('shh-secret');
  });

  it('a secret echoed in another case or in part stays out of messages', async () => {
    nock(HOST).post(TOKEN_PATH).reply(400, { error: 'SHH-SECRET' });
    expect(
      await caught(() => requestToken(endpoint, { ...params, client_secret: 'shh-secret-value' })),
    ).toBeInstanceOf(UnexpectedResponseError);
    nock(HOST)
      .post(TOKEN_PATH)
      .reply(200, { access_token: 't', instance_url: 'https://SHH-SECRET-VALUE.evil.com' });
    const error = await caught(() =>
      requestToken(endpoint, { ...params, client_secret: 'shh-secret-value' }),
    );
    expect(error).toMatchObject({ name: 'InstanceUrlMismatchError', returned: '(hidden)' });
    expect(String((error as Error).message)).not.toMatch(/shh-secret/i);
  });

  it('an instance_url mismatch names only the returned origin', async () => {
    nock(HOST)
      .post(TOKEN_PATH)
      .reply(200, { access_token: 't', instance_url: 'https://evil.example.com/path/secret?x=1' });
    const error = await caught(() => requestToken(endpoint, params));
    expect(error).toMatchObject({
      name: 'InstanceUrlMismatchError',
      returned: 'https://evil.example.com',
    });
    expect(String((error as Error).message)).not.toContain('secret');
  });

  it('without a configured instance, a plain-http instance_url must be loopback by spelling', async () => {
    const open = loginEndpoint({ loginUrl: HOST });
    for (const instance_url of [
      'http://evil.localhost',
      'http://localhost.',
      'http://[::ffff:7f00:1]',
    ]) {
      nock(HOST).post(TOKEN_PATH).reply(200, { access_token: 't', instance_url });
      expect(await caught(() => requestToken(open, params))).toMatchObject({
        name: 'UnexpectedResponseError',
        message: expect.stringContaining('instance_url'),
      });
    }
    nock(HOST).post(TOKEN_PATH).reply(200, { access_token: 't', instance_url: 'http://127.1:8' });
    expect(await requestToken(open, params)).toMatchObject({ instanceUrl: 'http://127.0.0.1:8' });
  });

  // Visible ASCII only (0x21-0x7E): what an Authorization or X-SFDC-Session header can carry as is.
  it.each([
    ['CR LF', '00Dxx!AQsekrit\r\nx-injected: 1'],
    ['LF', '00Dxx!AQsekrit\n'],
    ['NUL', '00Dxx!AQ\u0000sekrit'],
    ['a space', '00Dxx!AQ sekrit'],
    ['DEL', '00Dxx!AQsekrit\u007f'],
    ['Latin-1 beyond ASCII', '00Dxx!AQsekrité'],
    ['beyond Latin-1', '00Dxx!AQsekrit€'],
    ['a lone surrogate', '00Dxx!AQsekrit\ud800'],
  ])('refuses an access_token with %s, and keeps its text out of the error', async (_, token) => {
    nock(HOST).post(TOKEN_PATH).reply(200, { access_token: token, instance_url: HOST });
    const error = await caught(() => requestToken(endpoint, params));
    expect(error).toBeInstanceOf(UnexpectedResponseError);
    expect(error).toMatchObject({ code: 'ERR_UNEXPECTED_RESPONSE', status: 200 });
    expectNoSecrets(error, ['AQsek', 'sekrit']);
  });

  it('accepts every visible ASCII character in an access_token', async () => {
    const everything = Array.from({ length: 0x7e - 0x20 }, (_, i) => String.fromCharCode(0x21 + i));
    const token = `00Dxx!${everything.join('')}`;
    nock(HOST).post(TOKEN_PATH).reply(200, { access_token: token, instance_url: HOST });
    expect(await requestToken(endpoint, params)).toMatchObject({ accessToken: token });
  });

  it('a refresh_token goes in a form body: only one that cannot be sent as issued is refused', async () => {
    const adopted: string[] = [];
    const hooks = {
      adoptRefreshToken: async (t: string) => {
        adopted.push(t);
      },
    };
    // A lone surrogate cannot be form-encoded as is (it becomes U+FFFD): refused, never adopted.
    nock(HOST)
      .post(TOKEN_PATH)
      .reply(200, { access_token: 't', instance_url: HOST, refresh_token: '5Aep-rt\ud800' });
    expect(await caught(() => requestToken(endpoint, params, hooks))).toMatchObject({
      name: 'UnexpectedResponseError',
      message: expect.not.stringContaining('5Aep'),
    });
    expect(adopted).toEqual([]);
    // Any other text is percent-encoded losslessly, so the server's token is kept as it was issued.
    nock(HOST)
      .post(TOKEN_PATH)
      .reply(200, { access_token: 't', instance_url: HOST, refresh_token: '5Aep rt\r\né€' });
    expect(await requestToken(endpoint, params, hooks)).toMatchObject({
      refreshToken: '5Aep rt\r\né€',
    });
    expect(adopted).toEqual(['5Aep rt\r\né€']);
  });

  it('a body that is not UTF-8 is not JSON', async () => {
    nock(HOST)
      .post(TOKEN_PATH)
      .reply(200, Buffer.from([0x7b, 0xff, 0xfe, 0x7d]));
    expect(await caught(() => requestToken(endpoint, params))).toMatchObject({
      name: 'UnexpectedResponseError',
      message: expect.stringContaining('not JSON'),
    });
  });

  it('a transport error from fetch keeps its cause', async () => {
    nock(HOST).post(TOKEN_PATH).replyWithError('socket hang up');
    const error = await caught(() => requestToken(endpoint, params));
    expect(error).toMatchObject({ name: 'TransportError', transient: true });
    expect((error as Error).cause).toBeInstanceOf(Error);
  });

  it('settles at the timeout even when a custom fetch ignores its signal', async () => {
    const neverSettles = (() => new Promise<Response>(() => {})) as typeof fetch;
    const stuck = tokenEndpoint({
      loginUrl: HOST,
      instanceUrl: HOST,
      timeoutMs: 50,
      fetch: neverSettles,
    });
    expect(await caught(() => requestToken(stuck, params))).toMatchObject({
      name: 'TransportError',
      message: expect.stringContaining('timed out'),
    });
  });

  it('refuses a response that a custom fetch followed through a redirect', async () => {
    const followed = (async () => {
      const response = new Response('{"access_token":"t","instance_url":"x"}', { status: 200 });
      Object.defineProperty(response, 'redirected', { value: true });
      return response;
    }) as typeof fetch;
    const sneaky = tokenEndpoint({ loginUrl: HOST, instanceUrl: HOST, fetch: followed });
    expect(await caught(() => requestToken(sneaky, params))).toMatchObject({
      name: 'UnexpectedResponseError',
      message: expect.stringContaining('redirect'),
    });
  });
});
