import { ConfigError } from '../errors.js';
import { optionsObject, requiredString } from '../internal/options.js';
import { CachingSession, type CachingSessionOptions } from '../session/caching-session.js';
import type { TokenSource } from '../session/token-source.js';
import { requestToken, type TokenEndpointOptions, tokenEndpoint } from '../token-endpoint.js';

/** Options of {@link ClientCredentialsAuth}. */
export interface ClientCredentialsOptions extends TokenEndpointOptions, CachingSessionOptions {
  /** The connected app's client id (Salesforce's UI calls it the "consumer key"). */
  clientId: string;
  /** The connected app's client secret ("consumer secret"). Kept private; never logged. */
  clientSecret: string;
  /**
   * The org's My Domain URL, `https://NAME.my.salesforce.com`. Required, with no default:
   * Salesforce refuses this grant on `login.salesforce.com` and `test.salesforce.com`.
   */
  loginUrl: string;
}

/**
 * A session for the OAuth 2.0 client credentials grant: the connected app's "Run As" user, no
 * refresh token. Safe to call concurrently; at most one token request runs per session.
 * Throws `ConfigError` at construction for a missing or malformed option.
 *
 * @see https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_client_credentials_flow.htm
 * @example
 * ```ts
 * const session = new ClientCredentialsAuth({
 *   clientId: process.env.SF_CLIENT_ID ?? '',
 *   clientSecret: process.env.SF_CLIENT_SECRET ?? '',
 *   loginUrl: 'https://acme.my.salesforce.com',
 *   instanceUrl: 'https://acme.my.salesforce.com',
 * });
 * const token = await session.getToken();
 * ```
 */
export class ClientCredentialsAuth extends CachingSession {
  constructor(options: ClientCredentialsOptions) {
    super(clientCredentials(options), options);
  }
}

/** The generic login hosts, where Salesforce refuses the client credentials grant. */
const GENERIC_LOGIN_HOSTS = new Set(['login.salesforce.com', 'test.salesforce.com']);

/**
 * The client credentials grant as a {@link TokenSource}: one token request per `mint`, no cache.
 * `new ClientCredentialsAuth(options)` is `new CachingSession(clientCredentials(options), options)`.
 * Throws `ConfigError` for a missing or malformed option.
 */
export function clientCredentials(options: ClientCredentialsOptions): TokenSource {
  const o = optionsObject(options);
  const clientId = requiredString('clientId', o.clientId);
  const clientSecret = requiredString('clientSecret', o.clientSecret);
  requiredString('loginUrl', o.loginUrl);
  const endpoint = tokenEndpoint(o);
  // Salesforce answers this grant on the org's own host only: on the generic login hosts it is
  // 400 invalid_grant "request not supported on this domain", at the first mint.
  if (GENERIC_LOGIN_HOSTS.has(new URL(endpoint.loginUrl).hostname)) {
    throw new ConfigError(
      'loginUrl',
      "must be the org's My Domain URL (https://NAME.my.salesforce.com): Salesforce refuses the client credentials grant on login.salesforce.com and test.salesforce.com",
    );
  }
  const params = {
    grant_type: 'client_credentials',
    client_id: clientId,
    client_secret: clientSecret,
  };
  return {
    instanceUrl: endpoint.instanceUrl,
    mint: function mintClientCredentials() {
      return requestToken(endpoint, params);
    },
    identity: { loginUrl: endpoint.loginUrl, clientId, grant: 'client_credentials', user: '' },
    timeoutMs: endpoint.timeoutMs,
    fetch: endpoint.fetch,
  };
}
