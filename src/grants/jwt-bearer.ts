import type { KeyObject } from 'node:crypto';
import { optionalFunction, optionsObject, requiredString } from '../internal/options.js';
import { base64url, utf8 } from '../internal/runtime.js';
import { normaliseBaseUrl } from '../internal/url.js';
import { CachingSession, type CachingSessionOptions } from '../session/caching-session.js';
import type { TokenSource } from '../session/token-source.js';
import {
  DEFAULT_LOGIN_URL,
  requestToken,
  type TokenEndpointOptions,
  tokenEndpoint,
} from '../token-endpoint.js';
import { type Rs256Signer, rs256SignerOf } from './rsa-signer.js';

/** How far ahead of now a JWT bearer assertion's `exp` is set. Salesforce wants a few minutes at most. */
export const JWT_ASSERTION_LIFETIME_S = 150;

/** The `grant_type` of RFC 7523's JWT bearer grant. */
export const JWT_BEARER_GRANT = 'urn:ietf:params:oauth:grant-type:jwt-bearer';

/** Salesforce's sandbox login host: the JWT `aud` of every sandbox, whatever host it is POSTed to. */
export const SANDBOX_LOGIN_URL = 'https://test.salesforce.com';

/**
 * Sandbox hosts, whose JWT `aud` is `https://test.salesforce.com`: the sandbox login host,
 * enhanced-domain sandboxes (`NAME--SBX.sandbox.my.salesforce.com`), scratch orgs
 * (`NAME.scratch.my.salesforce.com`), legacy sandbox My Domains (`NAME--SBX.my.salesforce.com`,
 * `NAME--SBX.csNN.my.salesforce.com`) and CS instances (`csNN.salesforce.com`).
 */
const SANDBOX_HOSTS = [
  /^test\.salesforce\.com$/,
  /\.sandbox\.my\.salesforce\.com$/,
  /\.scratch\.my\.salesforce\.com$/,
  /^[a-z0-9-]+--[a-z0-9-]+(?:\.cs\d+)?\.my\.salesforce\.com$/,
  /^cs\d+(?:\.my)?\.salesforce\.com$/,
  /\.cs\d+\.my\.salesforce\.com$/,
];

/** Experience Cloud site hosts (`NAME.my.site.com`), whose JWT `aud` is the site's own URL. */
const SITE_HOST = /\.my\.site\.com$/;

/**
 * The JWT `aud` Salesforce expects for assertions POSTed to `loginUrl`: the site's own URL for an
 * Experience Cloud site, `https://test.salesforce.com` for a sandbox host, else
 * `https://login.salesforce.com` (production and My Domain hosts alike: a My Domain `aud` is
 * refused, often as the misleading "user hasn't approved this consumer").
 * @see https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_jwt_flow.htm
 */
export function jwtAudienceFor(loginUrl: string): string {
  let url: URL;
  try {
    url = new URL(loginUrl);
  } catch {
    return DEFAULT_LOGIN_URL;
  }
  const host = url.hostname.toLowerCase();
  if (SITE_HOST.test(host)) return url.origin + url.pathname.replace(/\/+$/, '');
  if (SANDBOX_HOSTS.some((pattern) => pattern.test(host))) return SANDBOX_LOGIN_URL;
  return DEFAULT_LOGIN_URL;
}

/** Options of {@link JwtBearerAuth}. */
export interface JwtBearerOptions extends TokenEndpointOptions, CachingSessionOptions {
  /** The connected app's client id ("consumer key"): the assertion's `iss`. */
  clientId: string;
  /** The Salesforce username to act as: the assertion's `sub`. */
  username: string;
  /**
   * The RSA private key (2048 bits or more) whose certificate is uploaded to the connected app: a
   * PEM string (PKCS#8 or PKCS#1), a `KeyObject` or a `CryptoKey`. Checked at construction.
   */
  privateKey: string | KeyObject | CryptoKey;
  /** @default DEFAULT_LOGIN_URL (`https://login.salesforce.com`); `https://test.salesforce.com` for sandboxes. */
  loginUrl?: string | undefined;
  /**
   * The assertion's `aud`. Salesforce wants `https://login.salesforce.com` for production and My
   * Domain logins, `https://test.salesforce.com` for sandboxes, and the site's URL for an
   * Experience Cloud site, whatever host the assertion is POSTed to.
   * @default jwtAudienceFor(loginUrl)
   */
  audience?: string | undefined;
}

/**
 * A session for the OAuth 2.0 JWT bearer grant (RFC 7523): signs an RS256 assertion with your
 * private key for each token request. No client secret, no refresh token. Safe to call
 * concurrently; at most one token request runs per session.
 *
 * @see https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_jwt_flow.htm
 * @example
 * ```ts
 * const session = new JwtBearerAuth({
 *   clientId: process.env.SF_CLIENT_ID ?? '',
 *   username: 'integration@acme.com',
 *   privateKey: await readFile('server.key', 'utf8'),
 *   instanceUrl: 'https://acme.my.salesforce.com',
 * });
 * ```
 */
export class JwtBearerAuth extends CachingSession {
  constructor(options: JwtBearerOptions) {
    super(jwtBearer(options), options);
  }
}

/**
 * The JWT bearer grant as a {@link TokenSource}: each `mint` signs a fresh assertion (its `exp`
 * from the `now` option's clock) and makes one token request, no cache.
 * `new JwtBearerAuth(options)` is `new CachingSession(jwtBearer(options), options)`.
 */
export function jwtBearer(options: JwtBearerOptions): TokenSource {
  const o = optionsObject(options);
  const clientId = requiredString('clientId', o.clientId);
  const username = requiredString('username', o.username);
  const signer = rs256SignerOf(o.privateKey);
  const endpoint = tokenEndpoint(o, DEFAULT_LOGIN_URL);
  const audience =
    o.audience === undefined
      ? jwtAudienceFor(endpoint.loginUrl)
      : normaliseBaseUrl('audience', o.audience);
  const now = optionalFunction('now', o.now) ?? Date.now;
  return {
    instanceUrl: endpoint.instanceUrl,
    mint: async function mintJwtBearer() {
      const exp = Math.floor(now() / 1000) + JWT_ASSERTION_LIFETIME_S;
      const assertion = await signAssertion(signer, {
        iss: clientId,
        sub: username,
        aud: audience,
        exp,
      });
      return requestToken(endpoint, { grant_type: JWT_BEARER_GRANT, assertion });
    },
    identity: { loginUrl: endpoint.loginUrl, clientId, grant: 'jwt_bearer', user: username },
    timeoutMs: endpoint.timeoutMs,
    fetch: endpoint.fetch,
  };
}

async function signAssertion(
  signer: Rs256Signer,
  claims: { iss: string; sub: string; aud: string; exp: number },
): Promise<string> {
  const encode = (value: object) => base64url(utf8(JSON.stringify(value)));
  const signingInput = `${encode({ alg: 'RS256' })}.${encode(claims)}`;
  return `${signingInput}.${base64url(await signer.sign(utf8(signingInput)))}`;
}
