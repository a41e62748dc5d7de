import { describe, expect, it } from 'vitest';
import {
  JWT_BEARER_GRANT,
  JwtBearerAuth,
  OAuthError,
  type OAuthErrorReason,
  oauthErrorReason,
} from '../src/index.js';
import { loginThrough, useFakeOrg, webServerFlowFor } from './_org.js';
import { caught, expectNoSecrets } from './_secrets.js';

const fx = useFakeOrg();

/**
 * Salesforce's error answers as documented and seen (error, error_description, HTTP status), and
 * the reason each one must get. The fake org sends each over real HTTP; the grant decides the two
 * meanings of "expired authorization code".
 */
const ANSWERS: [string, string, number, 'client' | 'jwt', OAuthErrorReason][] = [
  ['invalid_client_id', 'client identifier invalid', 400, 'client', 'invalid-client'],
  ['invalid_client', 'invalid client credentials', 400, 'client', 'invalid-client'],
  ['invalid_client_credentials', 'client secret invalid', 400, 'client', 'invalid-client'],
  [
    'invalid_grant',
    'authentication failure - invalid client credentials',
    400,
    'client',
    'invalid-client',
  ],
  ['invalid_grant', "user hasn't approved this consumer", 400, 'jwt', 'user-not-approved'],
  ['invalid_grant', 'ip restricted', 400, 'client', 'ip-restricted'],
  ['invalid_grant', 'inactive user', 400, 'client', 'inactive-user'],
  ['inactive_org', 'organization is inactive', 400, 'client', 'inactive-org'],
  ['invalid_grant', 'login rate exceeded', 400, 'client', 'rate-exceeded'],
  ['invalid_grant', 'audience is invalid', 400, 'jwt', 'audience-invalid'],
  ['invalid_grant', 'expired authorization code', 400, 'jwt', 'assertion-expired'],
  ['invalid_grant', 'invalid assertion', 400, 'jwt', 'invalid-assertion'],
  ['invalid_grant', 'request not supported on this domain', 400, 'client', 'domain-not-supported'],
  ['invalid_grant', 'no client credentials user enabled', 400, 'client', 'run-as-user-missing'],
  ['invalid_grant', 'expired access/refresh token', 400, 'client', 'refresh-token-expired'],
  ['invalid_grant', 'invalid code verifier', 400, 'client', 'invalid-code-verifier'],
  ['unsupported_grant_type', 'grant type not supported', 400, 'client', 'unsupported-grant-type'],
  ['invalid_grant', 'authentication failure', 400, 'client', 'authentication-failure'],
  ['rate_limit_exceeded', 'too many requests', 429, 'client', 'rate-exceeded'],
  ['invalid_grant', 'something new', 400, 'client', 'unknown'],
  ['server_error', 'try later', 503, 'client', 'unknown'],
];

describe('OAuthError.reason', () => {
  it.each(ANSWERS)(
    '%s "%s" (HTTP %i, %s grant) is %s',
    async (error, description, status, grant, reason) => {
      const session =
        grant === 'jwt'
          ? new JwtBearerAuth({
              clientId: fx.org.clientId,
              username: fx.org.username,
              privateKey: fx.org.jwtPrivateKey as string,
              loginUrl: fx.org.loginUrl,
              instanceUrl: fx.org.instanceUrl,
            })
          : fx.session();
      fx.org.failTokenEndpoint({
        kind: 'status',
        status,
        body: JSON.stringify({ error, error_description: description }),
      });
      const failure = await caught(() => session.getToken());
      expect(failure).toBeInstanceOf(OAuthError);
      expect(failure).toMatchObject({ error, reason, status });
      // The description is for whoever reads it on purpose, never in a message.
      expect((failure as OAuthError).errorDescription()).toBe(description);
      expectNoSecrets(failure, [description]);
    },
  );

  it('a rate limit is transient (it lifts); an unapproved user is not', () => {
    expect(new OAuthError('invalid_grant', 400, 'login rate exceeded').transient).toBe(true);
    expect(
      new OAuthError('invalid_grant', 400, "user hasn't approved this consumer").transient,
    ).toBe(false);
  });

  it('"expired authorization code" is an expired code for the web server flow, an expired assertion for JWT', async () => {
    expect(oauthErrorReason('invalid_grant', 'expired authorization code', JWT_BEARER_GRANT)).toBe(
      'assertion-expired',
    );
    // A code used twice, through the real flow: the fake org answers as Salesforce does.
    const flow = webServerFlowFor(fx.org);
    const { pending, callback } = await loginThrough(flow, fx.org);
    await flow.complete(pending, callback);
    const again = await caught(() => flow.complete(pending, callback));
    expect(again).toMatchObject({ error: 'invalid_grant', reason: 'code-expired' });
  });

  it('a denied login on the callback is access-denied', async () => {
    const flow = webServerFlowFor(fx.org);
    fx.org.denyNextAuthorization('access_denied');
    const { pending, callback } = await loginThrough(flow, fx.org);
    expect(await caught(() => flow.complete(pending, callback))).toMatchObject({
      error: 'access_denied',
      reason: 'access-denied',
    });
  });
});
