import {
  ConfigError,
  InstanceUrlMismatchError,
  OAuthError,
  ResponseTooLargeError,
  SignatureMismatchError,
  TransportError,
  UnexpectedResponseError,
} from './errors.js';
import { concat, type ReadResult, readUpTo } from './internal/bytes.js';
import { lateGlobalFetch } from './internal/late-fetch.js';
import { MAX_TIMER_MS, optionalFunction, positiveMs } from './internal/options.js';
import {
  base64,
  constantTimeEqual,
  fromBase64,
  hmacSha256,
  unrefTimer,
} from './internal/runtime.js';
import { scrubbedCause } from './internal/scrub.js';
import { isHeaderSafeToken, isWellFormedText } from './internal/token-text.js';
import { normaliseBaseUrl, sameBaseUrl } from './internal/url.js';
import { idsOf, type TokenInfo, type TokenInfoRecord, tokenInfo } from './token-info.js';

/** Path of Salesforce's OAuth 2.0 token endpoint, relative to the login URL. */
export const TOKEN_PATH = '/services/oauth2/token';

/** Salesforce's production login host: the default `loginUrl` where a grant allows one. */
export const DEFAULT_LOGIN_URL = 'https://login.salesforce.com';

/** Default for `timeoutMs`: the whole token exchange, connect to last byte. */
export const DEFAULT_TIMEOUT_MS = 30_000;

/** Token endpoint answers larger than this are refused without being buffered. */
export const MAX_TOKEN_RESPONSE_BYTES = 64 * 1024;

/** Options shared by every session that talks to the token endpoint. */
export interface TokenEndpointOptions {
  /**
   * Where to send token requests: your My Domain URL (`https://NAME.my.salesforce.com`),
   * `https://login.salesforce.com` or `https://test.salesforce.com`. Plain http only for loopback.
   */
  loginUrl?: string | undefined;
  /**
   * The org's instance URL. Every token response's `instance_url` must match it (ASCII
   * case-insensitive, trailing slashes ignored), so a token for another org is never used.
   */
  instanceUrl: string;
  /**
   * Time limit for one token exchange, from connect to the last byte of the answer.
   * @default DEFAULT_TIMEOUT_MS (30 s)
   */
  timeoutMs?: number | undefined;
  /**
   * The `fetch` used for token requests. It must honour `redirect: 'manual'` and `signal`.
   * @default globalThis.fetch
   */
  fetch?: typeof fetch | undefined;
  /**
   * Verify each token answer's `signature` (`base64(HMAC-SHA256(clientSecret, id + issued_at))`)
   * when the grant has a client secret, and refuse an answer whose signature does not match with
   * a `SignatureMismatchError`. Turn it off only for an org behind a proxy that rewrites token
   * answers; `TokenInfo.signatureVerified` then says `false`.
   * @default true
   */
  verifySignature?: boolean | undefined;
}

/** A token endpoint after its options were validated. Internal to the grants. */
export interface TokenEndpoint {
  readonly loginUrl: string;
  /** The configured instance URL; undefined when the answer decides it (web server flow). */
  readonly instanceUrl: string | undefined;
  readonly timeoutMs: number;
  readonly fetch: typeof fetch;
  /** Whether answers to a request with a `client_secret` must carry a matching signature. */
  readonly verifySignature: boolean;
}

/** A successful token response, parsed and checked. */
export interface TokenResponse {
  accessToken: string;
  /** The `instance_url`, already checked against the configured one. */
  instanceUrl: string;
  /** Lifetime from `expires_in` when the server sent one (Salesforce usually does not). */
  expiresInMs?: number;
  /** Present only for grants that issue one (refresh token, web server). */
  refreshToken?: string;
  /** The identity URL, `https://login.salesforce.com/id/<orgId>/<userId>`. */
  id?: string;
  scope?: string;
  /** What the answer says about the token, without the token. */
  info: TokenInfo;
}

/**
 * Validates the options shared by every token-endpoint session. Throws `ConfigError` (or its
 * subclass `InsecureUrlError`) naming the offending option; never echoes a value.
 */
export function tokenEndpoint(
  options: TokenEndpointOptions,
  defaultLoginUrl?: string,
): TokenEndpoint & { readonly instanceUrl: string } {
  // The instance first: a grant whose login URL defaults to it must name the real culprit.
  const instanceUrl = normaliseBaseUrl('instanceUrl', options.instanceUrl);
  return { ...loginEndpoint(options, defaultLoginUrl), instanceUrl };
}

/**
 * Like {@link tokenEndpoint} for a flow that learns the instance URL from the token answer (the web
 * server flow): any `instance_url` that is an https URL (or http to loopback) is accepted.
 */
export function loginEndpoint(
  options: Omit<TokenEndpointOptions, 'instanceUrl'>,
  defaultLoginUrl?: string,
): TokenEndpoint {
  const loginUrl = normaliseBaseUrl('loginUrl', options.loginUrl ?? defaultLoginUrl);
  const timeoutMs = positiveMs('timeoutMs', options.timeoutMs, DEFAULT_TIMEOUT_MS, MAX_TIMER_MS);
  const customFetch = optionalFunction('fetch', options.fetch);
  // Resolve the global lazily so a fetch installed after construction (or a test double) is used.
  const fetchFn: typeof fetch = customFetch ?? lateGlobalFetch;
  const verify = options.verifySignature;
  if (verify !== undefined && typeof verify !== 'boolean')
    throw new ConfigError('verifySignature', 'must be a boolean');
  return {
    loginUrl,
    instanceUrl: undefined,
    timeoutMs,
    fetch: fetchFn,
    verifySignature: verify !== false,
  };
}

/** What a grant may ask of {@link requestToken} besides the form fields. */
export interface TokenRequestHooks {
  /**
   * Called with a `refresh_token` found in a 2xx answer, before anything else about the answer is
   * checked: under rotation the presented token is already dead, so the new one must be kept even if
   * the rest of the answer turns out unusable.
   */
  adoptRefreshToken?: (refreshToken: string) => Promise<void>;
}

/**
 * POSTs one grant to `{loginUrl}/services/oauth2/token` and returns the checked answer. The one
 * place that talks to the token endpoint: never follows redirects, bounds time and body size, and
 * never puts a body into an error message.
 * @see https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_endpoints.htm
 */
export async function requestToken(
  endpoint: TokenEndpoint,
  params: Readonly<Record<string, string>>,
  hooks: TokenRequestHooks = {},
): Promise<TokenResponse> {
  const { status, json } = await postForm(endpoint, TOKEN_PATH, params);
  if (isRecord(json) && isUsableRefreshToken(json.refresh_token)) {
    await hooks.adoptRefreshToken?.(json.refresh_token);
  }
  return parseSuccess(json, status, endpoint, params);
}

/**
 * Revokes `token` (a refresh token, which also kills its access tokens, or an access token) at
 * `{loginUrl}/services/oauth2/revoke`.
 * @see https://help.salesforce.com/s/articleView?id=sf.remoteaccess_revoke_token.htm
 */
export async function revokeToken(endpoint: TokenEndpoint, token: string): Promise<void> {
  await postForm(endpoint, REVOKE_PATH, { token }, { emptyOk: true });
}

/** Path of Salesforce's OAuth 2.0 revocation endpoint, relative to the login URL. */
export const REVOKE_PATH = '/services/oauth2/revoke';

/**
 * POSTs a form to an OAuth endpoint within `timeoutMs` and answers the 2xx JSON body; any other
 * outcome throws the matching {@link AuthError} subclass.
 */
async function postForm(
  endpoint: TokenEndpoint,
  path: string,
  params: Readonly<Record<string, string>>,
  options: { emptyOk?: boolean } = {},
): Promise<{ status: number; json: unknown }> {
  const controller = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const host = hostOf(endpoint.loginUrl);
      const error = new TransportError(
        `Token request to ${host} timed out after ${endpoint.timeoutMs} ms (ETIMEDOUT)`,
        { host, causeCode: 'ETIMEDOUT' },
      );
      controller.abort(error);
      reject(error);
    }, endpoint.timeoutMs);
    // The socket keeps the process alive while the request is open; the timer need not.
    unrefTimer(timer);
  });
  const exchange = sendForm(endpoint, path, params, controller.signal, options.emptyOk === true);
  // A custom fetch that ignores `signal` could settle after the timeout; that late outcome is moot.
  exchange.catch(() => {});
  try {
    return await Promise.race([exchange, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function sendForm(
  endpoint: TokenEndpoint,
  path: string,
  params: Readonly<Record<string, string>>,
  signal: AbortSignal,
  emptyOk: boolean,
): Promise<{ status: number; json: unknown }> {
  let response: Response;
  try {
    response = await endpoint.fetch(endpoint.loginUrl + path, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: new URLSearchParams(params).toString(),
      redirect: 'manual',
      signal,
    });
  } catch (error) {
    throw transportError('Token request failed', error, signal, endpoint, params);
  }

  // A redirect could carry the credentials to another host on the next hop: never follow one.
  // `redirected` catches a custom fetch that followed anyway; status 0 is a browser-style opaque one.
  if (
    response.redirected ||
    response.status === 0 ||
    (response.status >= 300 && response.status < 400)
  ) {
    await discard(response);
    throw new UnexpectedResponseError(response.status, 'redirects are not followed');
  }

  const retryAfterMs = parseRetryAfter(response.headers.get('retry-after'));
  const body = await readLimited(response, signal, endpoint, params);
  if (emptyOk && response.ok && body.byteLength === 0)
    return { status: response.status, json: undefined };
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body));
  } catch {
    throw new UnexpectedResponseError(response.status, 'body is not JSON', retryAfterMs);
  }

  if (!response.ok) {
    // Only a well-formed error code (RFC 6749 §5.2 style) goes into a message; anything else is
    // server free text and is treated as a non-OAuth body.
    if (
      isRecord(json) &&
      typeof json.error === 'string' &&
      /^[\w.-]{1,64}$/.test(json.error) &&
      !echoesSecret(json.error, params)
    ) {
      const description =
        typeof json.error_description === 'string' ? json.error_description : undefined;
      throw new OAuthError(
        json.error,
        response.status,
        description,
        retryAfterMs,
        params.grant_type,
      );
    }
    throw new UnexpectedResponseError(response.status, 'not an OAuth error body', retryAfterMs);
  }
  return { status: response.status, json };
}

async function parseSuccess(
  json: unknown,
  status: number,
  endpoint: TokenEndpoint,
  params: Readonly<Record<string, string>>,
): Promise<TokenResponse> {
  const configuredInstanceUrl = endpoint.instanceUrl;
  if (!isRecord(json)) throw new UnexpectedResponseError(status, 'body is not a JSON object');
  const { access_token, instance_url, expires_in, refresh_token, id, scope } = json;
  if (typeof access_token !== 'string' || access_token === '') {
    throw new UnexpectedResponseError(status, 'access_token missing or not a string');
  }
  // Refused here, not at the first request: the runtime's TypeError for a bad header value quotes
  // the value, token included.
  if (!isHeaderSafeToken(access_token)) {
    throw new UnexpectedResponseError(status, 'access_token is not visible ASCII text');
  }
  if (typeof instance_url !== 'string' || instance_url === '') {
    throw new UnexpectedResponseError(status, 'instance_url missing or not a string');
  }
  const optional = { refresh_token, id, scope };
  for (const [name, value] of Object.entries(optional)) {
    if (value !== undefined && typeof value !== 'string') {
      throw new UnexpectedResponseError(status, `${name} is not a string`);
    }
  }
  if (typeof refresh_token === 'string' && !isUsableRefreshToken(refresh_token)) {
    throw new UnexpectedResponseError(status, 'refresh_token is empty or not well-formed text');
  }
  let expiresInMs: number | undefined;
  if (expires_in !== undefined) {
    const seconds = typeof expires_in === 'string' ? Number(expires_in) : expires_in;
    if (typeof seconds !== 'number' || !Number.isFinite(seconds) || seconds <= 0) {
      throw new UnexpectedResponseError(status, 'expires_in is not a positive number');
    }
    expiresInMs = Math.floor(seconds * 1000);
  }
  let instanceUrl: string;
  if (configuredInstanceUrl === undefined) {
    // No instance configured (web server flow): the answer names it, and it must be a safe URL.
    try {
      instanceUrl = normaliseBaseUrl('instance_url', instance_url);
    } catch {
      throw new UnexpectedResponseError(status, 'instance_url is not an https URL');
    }
  } else if (sameBaseUrl(instance_url, configuredInstanceUrl)) {
    instanceUrl = configuredInstanceUrl;
  } else {
    const returned = safeUrlForMessage(instance_url);
    // The answer's own tokens are secrets too: a host name must not smuggle one into a message.
    const seen = {
      ...params,
      access_token,
      ...(typeof refresh_token === 'string' ? { refresh_token } : {}),
    };
    throw new InstanceUrlMismatchError(
      configuredInstanceUrl,
      echoesSecret(returned, seen) ? '(hidden)' : returned,
    );
  }
  const secret = params.client_secret;
  let signatureVerified = false;
  if (endpoint.verifySignature && secret !== undefined && secret !== '' && 'signature' in json) {
    // Checked before anything is kept: an answer not signed for this app is not used at all.
    if (!(await signatureMatches(secret, json.id, json.issued_at, json.signature)))
      throw new SignatureMismatchError();
    signatureVerified = true;
  }
  const info = infoOf(json, instanceUrl, signatureVerified);
  const result: TokenResponse = { accessToken: access_token, instanceUrl, info };
  if (expiresInMs !== undefined) result.expiresInMs = expiresInMs;
  if (typeof refresh_token === 'string') result.refreshToken = refresh_token;
  if (typeof id === 'string') result.id = id;
  if (typeof scope === 'string') result.scope = scope;
  return result;
}

/**
 * Whether `signature` is `base64(HMAC-SHA256(secret, id + issued_at))`, compared in constant
 * time. Anything missing or of the wrong type does not match.
 * @see https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_web_server_flow.htm
 */
async function signatureMatches(
  secret: string,
  id: unknown,
  issuedAt: unknown,
  signature: unknown,
): Promise<boolean> {
  if (typeof id !== 'string' || typeof signature !== 'string') return false;
  if (typeof issuedAt !== 'string' && typeof issuedAt !== 'number') return false;
  const given = fromBase64(signature.trim());
  // Only canonical base64 counts: a signature padded with junk or spelt another way does not match.
  if (given === undefined || base64(given) !== signature.trim()) return false;
  return constantTimeEqual(given, await hmacSha256(secret, `${id}${issuedAt}`));
}

/**
 * The {@link TokenInfo} of a checked answer. Fields of the wrong type are left out rather than
 * failing the mint: they describe the token, they are not needed to use it.
 */
function infoOf(
  json: Record<string, unknown>,
  instanceUrl: string,
  signatureVerified: boolean,
): TokenInfo {
  const text = (value: unknown) => (typeof value === 'string' && value !== '' ? value : undefined);
  const identityUrl = text(json.id);
  const scope = text(json.scope);
  const fields: TokenInfoRecord = {
    instanceUrl,
    scopes: scope === undefined ? [] : scope.split(/\s+/).filter((s) => s !== ''),
    signatureVerified,
    ...idsOf(identityUrl),
  };
  if (identityUrl !== undefined) fields.identityUrl = identityUrl;
  const issuedAt = Number(json.issued_at);
  if (json.issued_at !== undefined && json.issued_at !== '' && Number.isSafeInteger(issuedAt))
    fields.issuedAt = issuedAt;
  const optional = {
    tokenType: json.token_type,
    idToken: json.id_token,
    communityUrl: json.sfdc_community_url,
    communityId: json.sfdc_community_id,
    apiInstanceUrl: json.api_instance_url,
  } as const;
  for (const [name, value] of Object.entries(optional)) {
    const found = text(value);
    if (found !== undefined) fields[name as keyof typeof optional] = found;
  }
  return tokenInfo(fields);
}

/** Reads the body, refusing more than {@link MAX_TOKEN_RESPONSE_BYTES} without buffering it. */
async function readLimited(
  response: Response,
  signal: AbortSignal,
  endpoint: TokenEndpoint,
  params: Readonly<Record<string, string>>,
): Promise<Uint8Array> {
  const limit = MAX_TOKEN_RESPONSE_BYTES;
  const declared = Number(response.headers.get('content-length') ?? Number.NaN);
  if (declared > limit) {
    await discard(response);
    throw new ResponseTooLargeError(limit);
  }
  if (response.body === null) return new Uint8Array();
  const reader = response.body.getReader();
  let read: ReadResult;
  try {
    read = await readUpTo(reader, limit);
  } catch (error) {
    throw transportError('Token response body could not be read', error, signal, endpoint, params);
  }
  if (read.exceeded) {
    reader.cancel().catch(() => {});
    throw new ResponseTooLargeError(limit);
  }
  return concat(read.chunks, read.size);
}

/**
 * Maps a failure below HTTP to `TransportError`, preferring the timeout error when that fired. The
 * client's error is kept as a scrubbed `cause` (class names and codes, no text): a parser error
 * holds the bytes the server sent, which can echo the request's secrets.
 */
function transportError(
  message: string,
  error: unknown,
  signal: AbortSignal,
  endpoint: TokenEndpoint,
  params: Readonly<Record<string, string>>,
): TransportError {
  if (signal.aborted && signal.reason instanceof TransportError) return signal.reason;
  const cause = scrubbedCause(error);
  const host = hostOf(endpoint.loginUrl);
  // The innermost code is the network's (undici wraps ECONNREFUSED in a TypeError "fetch failed").
  let code: string | undefined;
  for (let at: unknown = cause; at instanceof Error; at = at.cause) {
    const found = (at as { code?: unknown }).code;
    if (typeof found === 'string') code = found;
  }
  // A custom fetch's "code" could be anything, a secret the request sent included: such a code
  // leaves the message and the kept cause both.
  for (let at: unknown = cause; at instanceof Error; at = at.cause) {
    const found = (at as { code?: unknown }).code;
    if (typeof found === 'string' && echoesSecret(found, params)) {
      delete (at as { code?: unknown }).code;
      at.message = 'details withheld';
      at.stack = `${at.name}: ${at.message}`;
      if (code === found) code = undefined;
    }
  }
  return new TransportError(`${message}: ${host}${code === undefined ? '' : ` (${code})`}`, {
    cause,
    host,
    causeCode: code,
  });
}

/** The host (and port) of a configured URL, for messages: never a path or query. */
function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return '(unknown host)';
  }
}

async function discard(response: Response): Promise<void> {
  await response.body?.cancel().catch(() => {});
}

/** `Retry-After` as milliseconds: delta-seconds or an HTTP date; undefined when absent or unreadable. */
function parseRetryAfter(value: string | null): number | undefined {
  if (value === null) return undefined;
  const seconds = Number(value);
  if (value.trim() !== '' && Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

/**
 * Whether a refresh token can be presented as issued. It only travels in form bodies, which
 * percent-encode any text losslessly, so only an empty one or one with a lone surrogate is refused:
 * never adopted, never persisted. Anything else the server issued is kept as it is.
 */
function isUsableRefreshToken(value: unknown): value is string {
  return typeof value === 'string' && value !== '' && isWellFormedText(value);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Form fields that are not secret; every other value sent (secrets, tokens, assertions, codes) is. */
const PUBLIC_FIELDS = new Set([
  'grant_type',
  'client_id',
  'redirect_uri',
  'scope',
  'subject_token_type',
]);

/**
 * Whether server-supplied `text` contains a secret value this request sent: a server that echoes
 * the client secret back as an "error code" or a host name must not get it into a message.
 */
function echoesSecret(text: string, params: Readonly<Record<string, string>>): boolean {
  const haystack = text.toLowerCase();
  return Object.entries(params).some(([name, value]) => {
    if (PUBLIC_FIELDS.has(name) || value.length < 6) return false;
    // Any 8 characters of a secret, in any case: URL parsing lowercases host names, and a partial
    // echo is a leak too.
    const needle = value.toLowerCase();
    const width = Math.min(8, needle.length);
    for (let at = 0; at + width <= needle.length; at++) {
      if (haystack.includes(needle.slice(at, at + width))) return true;
    }
    return false;
  });
}

/** The origin of a server-supplied URL, or a placeholder: never a path, query or userinfo. */
function safeUrlForMessage(value: string): string {
  try {
    const { origin } = new URL(value);
    return origin === 'null' ? '(not an http URL)' : origin;
  } catch {
    return '(not a URL)';
  }
}
