import { ConfigError, SubjectTokenError } from '../errors.js';
import { optionsObject, requiredString } from '../internal/options.js';
import { within } from '../internal/timeout.js';
import { normaliseBaseUrl } from '../internal/url.js';
import { CachingSession, type CachingSessionOptions } from '../session/caching-session.js';
import { secretFingerprint } from '../session/shared-store.js';
import type { TokenSource } from '../session/token-source.js';
import { requestToken, type TokenEndpointOptions, tokenEndpoint } from '../token-endpoint.js';

/** The `grant_type` of RFC 8693 token exchange. */
export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';

/** The subject token types Salesforce's token exchange accepts (RFC 8693 §3). */
export const SubjectTokenType = {
  ACCESS_TOKEN: 'urn:ietf:params:oauth:token-type:access_token',
  ID_TOKEN: 'urn:ietf:params:oauth:token-type:id_token',
  JWT: 'urn:ietf:params:oauth:token-type:jwt',
  REFRESH_TOKEN: 'urn:ietf:params:oauth:token-type:refresh_token',
  SAML2: 'urn:ietf:params:oauth:token-type:saml2',
} as const;

/** One of the {@link SubjectTokenType} URNs. */
export type SubjectTokenType = (typeof SubjectTokenType)[keyof typeof SubjectTokenType];

/** Options of {@link TokenExchangeAuth}. */
export interface TokenExchangeOptions extends TokenEndpointOptions, CachingSessionOptions {
  /** The connected app's client id ("consumer key"). */
  clientId: string;
  /** The client secret, for confidential apps; omitted from the request when absent. */
  clientSecret?: string | undefined;
  /**
   * The token to exchange (from your identity provider), or a function that returns a current one;
   * the function is called for each token request, so it can hand out a fresh token every time.
   */
  subjectToken: string | (() => string | Promise<string>);
  /** What `subjectToken` is: one of the {@link SubjectTokenType} URNs. */
  subjectTokenType: SubjectTokenType;
  /** Space-separated scopes to request. */
  scope?: string | undefined;
  /**
   * Token exchange runs on the org's My Domain, where the Apex token-exchange handler lives.
   * @default instanceUrl
   */
  loginUrl?: string | undefined;
}

/**
 * A session for OAuth 2.0 token exchange (RFC 8693): trades a token from another identity provider
 * for a Salesforce access token. Needs a token-exchange handler (Apex) on the org. Safe to call
 * concurrently; at most one exchange runs per session.
 *
 * @see https://www.rfc-editor.org/rfc/rfc8693
 * @example
 * ```ts
 * const session = new TokenExchangeAuth({
 *   clientId: process.env.SF_CLIENT_ID ?? '',
 *   subjectToken: () => idp.currentAccessToken(),
 *   subjectTokenType: SubjectTokenType.ACCESS_TOKEN,
 *   instanceUrl: 'https://acme.my.salesforce.com',
 * });
 * ```
 */
export class TokenExchangeAuth extends CachingSession {
  constructor(options: TokenExchangeOptions) {
    super(tokenExchange(options), options);
  }
}

/**
 * The token exchange grant as a {@link TokenSource}: each `mint` reads the subject token (calling
 * it when it is a function) and makes one token request, no cache.
 * `new TokenExchangeAuth(options)` is `new CachingSession(tokenExchange(options), options)`.
 */
export function tokenExchange(options: TokenExchangeOptions): TokenSource {
  const o = optionsObject(options);
  const clientId = requiredString('clientId', o.clientId);
  const clientSecret =
    o.clientSecret === undefined ? undefined : requiredString('clientSecret', o.clientSecret);
  const subject = o.subjectToken;
  if (typeof subject !== 'function') requiredString('subjectToken', subject);
  const types: readonly string[] = Object.values(SubjectTokenType);
  if (!types.includes(o.subjectTokenType)) {
    throw new ConfigError('subjectTokenType', 'must be one of the SubjectTokenType URNs');
  }
  const scope = o.scope === undefined ? undefined : requiredString('scope', o.scope);
  normaliseBaseUrl('instanceUrl', o.instanceUrl); // named as itself, not as the loginUrl it defaults
  const endpoint = tokenEndpoint({ ...o, loginUrl: o.loginUrl ?? o.instanceUrl });
  // A subject token in hand identifies the user; a function's tokens change, so it needs storeKey.
  const user =
    typeof subject === 'string'
      ? `${o.subjectTokenType} ${scope ?? ''} ${secretFingerprint(subject)}`
      : undefined;
  return {
    instanceUrl: endpoint.instanceUrl,
    mint: async function mintTokenExchange() {
      const params: Record<string, string> = {
        grant_type: TOKEN_EXCHANGE_GRANT,
        subject_token: await subjectTokenOf(subject, endpoint.timeoutMs),
        subject_token_type: o.subjectTokenType,
        client_id: clientId,
      };
      if (clientSecret !== undefined) params.client_secret = clientSecret;
      if (scope !== undefined) params.scope = scope;
      return requestToken(endpoint, params);
    },
    identity: { loginUrl: endpoint.loginUrl, clientId, grant: 'token_exchange', user },
    timeoutMs: endpoint.timeoutMs,
    fetch: endpoint.fetch,
  };
}

async function subjectTokenOf(
  subject: TokenExchangeOptions['subjectToken'],
  timeoutMs: number,
): Promise<string> {
  if (typeof subject === 'string') return subject;
  let token: unknown;
  try {
    const outcome = await within(subject, timeoutMs);
    if (!outcome.done)
      throw new SubjectTokenError(`the subjectToken function took over ${timeoutMs} ms`);
    token = outcome.value;
  } catch (error) {
    if (error instanceof SubjectTokenError) throw error;
    throw new SubjectTokenError('the subjectToken function failed', { cause: error });
  }
  if (typeof token !== 'string' || token === '') {
    throw new SubjectTokenError('the subjectToken function returned no token');
  }
  return token;
}
