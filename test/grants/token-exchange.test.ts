import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  SubjectTokenError,
  SubjectTokenType,
  TOKEN_EXCHANGE_GRANT,
  TokenExchangeAuth,
  type TokenExchangeOptions,
} from '../../src/index.js';
import { useFakeOrg } from '../_org.js';
import { caught, expectNoSecrets } from '../_secrets.js';
import { expectSingleFlightAndCas } from './_single-flight.js';

const fx = useFakeOrg();

const exchange = (overrides: Partial<TokenExchangeOptions> = {}) =>
  new TokenExchangeAuth({
    clientId: fx.org.clientId,
    clientSecret: fx.org.clientSecret,
    subjectToken: 'idp-token-1',
    subjectTokenType: SubjectTokenType.ACCESS_TOKEN,
    instanceUrl: fx.org.instanceUrl,
    ...overrides,
  });

describe('TokenExchangeAuth', () => {
  it('exchanges a subject token on the My Domain (loginUrl defaults to instanceUrl)', async () => {
    fx.org.addSubjectToken('idp-token-1', SubjectTokenType.ACCESS_TOKEN);
    const token = await exchange({ scope: 'api' }).getToken();
    expect(fx.org.isValidToken(token)).toBe(true);
    expect(fx.org.lastTokenRequest).toEqual({
      grant_type: TOKEN_EXCHANGE_GRANT,
      subject_token: 'idp-token-1',
      subject_token_type: SubjectTokenType.ACCESS_TOKEN,
      client_id: fx.org.clientId,
      client_secret: fx.org.clientSecret,
      scope: 'api',
    });
  });

  it('calls a subject token function for every exchange', async () => {
    let calls = 0;
    fx.org.addSubjectToken('idp-a', SubjectTokenType.JWT);
    fx.org.addSubjectToken('idp-b', SubjectTokenType.JWT);
    const session = exchange({
      subjectToken: async () => (++calls === 1 ? 'idp-a' : 'idp-b'),
      subjectTokenType: SubjectTokenType.JWT,
    });
    await session.invalidate(await session.getToken());
    await session.getToken();
    expect(calls).toBe(2);
    expect(fx.org.lastTokenRequest?.subject_token).toBe('idp-b');
  });

  it('an untrusted subject token, or one of the wrong type, is an OAuthError invalid_grant', async () => {
    fx.org.addSubjectToken('idp-id-token', SubjectTokenType.ID_TOKEN);
    for (const options of [
      { subjectToken: 'unknown' },
      { subjectToken: 'idp-id-token', subjectTokenType: SubjectTokenType.SAML2 },
    ]) {
      expect(await caught(() => exchange(options).getToken())).toMatchObject({
        name: 'OAuthError',
        error: 'invalid_grant',
      });
    }
  });

  it('a failing subject token function is a SubjectTokenError with its cause, and no request', async () => {
    const failing = exchange({
      subjectToken: () => {
        throw new Error('idp down');
      },
    });
    const error = await caught(() => failing.getToken());
    expect(error).toBeInstanceOf(SubjectTokenError);
    expect((error as Error).cause).toMatchObject({ message: 'idp down' });
    expect(
      await caught(() => exchange({ subjectToken: async () => '' }).getToken()),
    ).toBeInstanceOf(SubjectTokenError);
    expect(fx.org.stats.tokenRequests).toBe(0);
  });

  it('validates its options and never shows the subject token', () => {
    expect(() => exchange({ subjectTokenType: 'access_token' as never })).toThrow(
      expect.objectContaining({ option: 'subjectTokenType' }),
    );
    expect(() => exchange({ subjectToken: '' })).toThrow(ConfigError);
    expectNoSecrets(exchange({ subjectToken: 'secret-subject-token' }), [
      'secret-subject-token',
      fx.org.clientSecret,
    ]);
  });

  it('single-flight and compare-and-swap hold for token exchange', async () => {
    fx.org.addSubjectToken('idp-token-1', SubjectTokenType.ACCESS_TOKEN);
    await expectSingleFlightAndCas(exchange(), fx.org, TOKEN_EXCHANGE_GRANT);
  });
});
