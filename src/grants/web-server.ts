import {
  ConfigError,
  FlowMismatchError,
  InsecureUrlError,
  OAuthError,
  StateMismatchError,
} from '../errors.js';
import { optionalFunction, optionsObject, requiredString } from '../internal/options.js';
import { base64url, constantTimeEqual, randomBytes, sha256 } from '../internal/runtime.js';
import { isLoopbackHost } from '../internal/url.js';
import type { CachingSessionOptions } from '../session/caching-session.js';
import {
  DEFAULT_LOGIN_URL,
  loginEndpoint,
  requestToken,
  type TokenEndpoint,
  type TokenEndpointOptions,
} from '../token-endpoint.js';
import { seedInfo } from '../token-info.js';
import { RefreshTokenAuth, type RefreshTokenOptions, reportRotation } from './refresh-token.js';
import { StaticTokenAuth, type StaticTokenOptions } from './static-token.js';

/** Path of Salesforce's authorization endpoint, relative to the login URL. */
export const AUTHORIZE_PATH = '/services/oauth2/authorize';

/** What an OAuth `error` code may look like (RFC 6749 §4.1.2.1), as the token endpoint checks it. */
const OAUTH_ERROR_CODE = /^[\w.-]{1,64}$/;

/** Scopes requested when `scopes` is not given: the REST API, and a refresh token. */
export const DEFAULT_SCOPES: readonly string[] = ['api', 'refresh_token'];

/** Options of {@link WebServerFlow}. */
export interface WebServerFlowOptions extends Omit<TokenEndpointOptions, 'instanceUrl'> {
  /** The connected app's client id ("consumer key"). */
  clientId: string;
  /** The client secret, for confidential apps; omitted from the code exchange when absent. */
  clientSecret?: string | undefined;
  /** The callback URL registered on the connected app, exactly. https, http to loopback, or an app scheme. */
  redirectUri: string;
  /** @default DEFAULT_LOGIN_URL (`https://login.salesforce.com`); `https://test.salesforce.com` or a My Domain. */
  loginUrl?: string | undefined;
  /** @default DEFAULT_SCOPES (`api refresh_token`): `refresh_token` (or `offline_access`) is needed for a refresh token. */
  scopes?: string[] | undefined;
}

/**
 * What {@link WebServerFlow.start} hands you to keep server-side (in the user's server session)
 * until the callback: plain JSON. It holds the PKCE verifier, so never send it to the browser.
 */
export interface PendingLogin {
  readonly state: string;
  readonly codeVerifier: string;
  /** A fingerprint of the client id, redirect URI and login URL of the flow that issued it. */
  readonly flow: string;
}

/** The query of the callback request: pass `url.searchParams` or an object of its fields. */
export type CallbackParams =
  | URLSearchParams
  | {
      code?: string | null;
      state?: string | null;
      error?: string | null;
      error_description?: string | null;
    };

/** Options for the session {@link WebServerFlow.complete} builds. */
export interface CompleteOptions extends CachingSessionOptions {
  /**
   * Called with the refresh token the code exchange granted, then with every rotated one: persist it.
   * See `RefreshTokenOptions.onRefreshTokenRotated`.
   */
  onRefreshTokenRotated?: RefreshTokenOptions['onRefreshTokenRotated'] | undefined;
}

/**
 * The OAuth 2.0 authorization code flow with PKCE (RFC 7636, S256) for web apps: `start()` gives the
 * URL to send the user to, `complete()` turns the callback into a ready session. The `state` is
 * checked (constant time) and a pending login from a differently configured flow is refused, both
 * before any request.
 *
 * @see https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_web_server_flow.htm
 * @example
 * ```ts
 * const flow = new WebServerFlow({ clientId, redirectUri: 'https://app.example.com/callback' });
 * // GET /login
 * const { url, pending } = flow.start();
 * req.session.pending = pending;
 * res.redirect(url);
 * // GET /callback
 * const session = await flow.complete(req.session.pending, new URL(req.url, base).searchParams);
 * ```
 */
export class WebServerFlow {
  readonly #endpoint: TokenEndpoint;
  readonly #clientId: string;
  readonly #clientSecret: string | undefined;
  readonly #redirectUri: string;
  readonly #scopes: readonly string[];
  readonly #fingerprint: string;
  readonly #options: Pick<TokenEndpointOptions, 'timeoutMs' | 'fetch'>;

  constructor(options: WebServerFlowOptions) {
    const o = optionsObject(options);
    this.#clientId = requiredString('clientId', o.clientId);
    this.#clientSecret =
      o.clientSecret === undefined ? undefined : requiredString('clientSecret', o.clientSecret);
    this.#redirectUri = redirectUriOf(o.redirectUri);
    this.#scopes = scopesOf(o.scopes);
    this.#endpoint = loginEndpoint(o, DEFAULT_LOGIN_URL);
    this.#fingerprint = base64url(
      sha256(`${this.#clientId}\n${this.#redirectUri}\n${this.#endpoint.loginUrl}`),
    );
    this.#options = {
      ...(o.timeoutMs === undefined ? {} : { timeoutMs: o.timeoutMs }),
      ...(o.fetch === undefined ? {} : { fetch: o.fetch }),
    };
  }

  /** Starts a login: the authorize URL to redirect the user to, and what to keep until the callback. */
  start(): { url: string; pending: PendingLogin } {
    const state = base64url(randomBytes(32));
    const codeVerifier = base64url(randomBytes(48)); // 64 characters, within 43-128
    const query = new URLSearchParams({
      response_type: 'code',
      client_id: this.#clientId,
      redirect_uri: this.#redirectUri,
      scope: this.#scopes.join(' '),
      state,
      code_challenge: base64url(sha256(codeVerifier)),
      code_challenge_method: 'S256',
    });
    return {
      url: `${this.#endpoint.loginUrl}${AUTHORIZE_PATH}?${query}`,
      pending: { state, codeVerifier, flow: this.#fingerprint },
    };
  }

  /**
   * Completes a login from the callback's query: checks the pending login and the state, exchanges
   * the code, and answers a {@link RefreshTokenAuth} when a refresh token was granted (its
   * `onRefreshTokenRotated` first receives that token), else a {@link StaticTokenAuth}. An argument
   * of the wrong shape is a `ConfigError`, a `state` that is not the issued one (or no string) a
   * {@link StateMismatchError}, both before any request. An `error` on the callback becomes an
   * `OAuthError` (status 400) with that code, or `invalid_request` when it is no well-formed OAuth
   * error code (the text is dropped: anyone can put it on the redirect).
   */
  async complete(
    pending: PendingLogin,
    callback: CallbackParams,
    options: CompleteOptions = {},
  ): Promise<RefreshTokenAuth | StaticTokenAuth> {
    // Every argument first: a wrong one is a ConfigError, whatever the callback says.
    const expected = pendingOf(pending);
    const params = callbackOf(callback);
    const onRotated = optionalFunction(
      'onRefreshTokenRotated',
      optionsObject(options).onRefreshTokenRotated,
    );
    if (expected.flow !== this.#fingerprint) throw new FlowMismatchError();
    // A state that is not a string was not issued by start(): a mismatch like any other.
    if (typeof params.state !== 'string' || !sameSecret(params.state, expected.state))
      throw new StateMismatchError();
    if (params.error) {
      // The token endpoint's rule: only a well-formed OAuth error code reaches a message. Anything
      // else on the redirect is text an attacker chose (CR/LF for forged log lines) and is dropped.
      if (typeof params.error !== 'string' || !OAUTH_ERROR_CODE.test(params.error))
        throw new OAuthError('invalid_request', 400, 'the callback carries a malformed error');
      const description =
        typeof params.error_description === 'string' ? params.error_description : undefined;
      throw new OAuthError(params.error, 400, description);
    }
    if (typeof params.code !== 'string' || params.code === '')
      throw new OAuthError('invalid_request', 400, 'the callback carries no code');

    const form: Record<string, string> = {
      grant_type: 'authorization_code',
      code: params.code,
      redirect_uri: this.#redirectUri,
      client_id: this.#clientId,
      code_verifier: expected.codeVerifier,
    };
    if (this.#clientSecret !== undefined) form.client_secret = this.#clientSecret;
    const answer = await requestToken(this.#endpoint, form);
    if (answer.refreshToken === undefined) {
      return new StaticTokenAuth({
        accessToken: answer.accessToken,
        instanceUrl: answer.instanceUrl,
        [seedInfo]: answer.info,
      } as StaticTokenOptions);
    }
    await reportRotation(onRotated, answer.refreshToken, this.#endpoint.timeoutMs);
    return new RefreshTokenAuth({
      ...this.#options,
      ...withoutUndefined(options),
      clientId: this.#clientId,
      ...(this.#clientSecret === undefined ? {} : { clientSecret: this.#clientSecret }),
      refreshToken: answer.refreshToken,
      accessToken: answer.accessToken,
      loginUrl: this.#endpoint.loginUrl,
      instanceUrl: answer.instanceUrl,
      [seedInfo]: answer.info,
    } as RefreshTokenOptions);
  }

  /** Only the class name: never the client secret. */
  toJSON(): { type: string } {
    return { type: 'WebServerFlow' };
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return 'WebServerFlow {}';
  }
}

function redirectUriOf(value: unknown): string {
  const uri = requiredString('redirectUri', value);
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    throw new ConfigError('redirectUri', 'is not an absolute URL');
  }
  if (['javascript:', 'data:', 'file:', 'blob:'].includes(url.protocol)) {
    throw new ConfigError('redirectUri', 'must be https, http to loopback, or an app scheme');
  }
  if (url.protocol === 'http:' && !isLoopbackHost(url.hostname))
    throw new InsecureUrlError('redirectUri');
  return uri;
}

function scopesOf(value: unknown): readonly string[] {
  if (value === undefined) return DEFAULT_SCOPES;
  if (
    !Array.isArray(value) ||
    value.length === 0 ||
    !value.every((s) => typeof s === 'string' && /^\S+$/.test(s))
  ) {
    throw new ConfigError('scopes', 'must be a non-empty array of scope names without spaces');
  }
  return [...value];
}

function pendingOf(value: unknown): PendingLogin {
  const v = value as Partial<PendingLogin> | null;
  if (
    typeof v !== 'object' ||
    v === null ||
    typeof v.state !== 'string' ||
    typeof v.flow !== 'string' ||
    typeof v.codeVerifier !== 'string' ||
    !/^[A-Za-z0-9._~-]{43,128}$/.test(v.codeVerifier)
  ) {
    throw new ConfigError('pending', 'must be the object start() returned');
  }
  return v as PendingLogin;
}

function callbackOf(value: CallbackParams): {
  code?: string | null;
  state?: string | null;
  error?: string | null;
  error_description?: string | null;
} {
  if (value instanceof URLSearchParams) {
    return {
      code: value.get('code'),
      state: value.get('state'),
      error: value.get('error'),
      error_description: value.get('error_description'),
    };
  }
  if (typeof value !== 'object' || value === null)
    throw new ConfigError('callback', 'must be the callback query');
  return value;
}

/** Constant-time comparison of two strings. */
function sameSecret(a: string, b: string): boolean {
  return constantTimeEqual(sha256(a), sha256(b)) && a.length === b.length;
}

function withoutUndefined<T extends object>(
  value: T,
): { [K in keyof T]?: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as never;
}
