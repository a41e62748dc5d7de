/**
 * Every error cirrus-auth raises is an {@link AuthError}: branch on `instanceof` or on the stable
 * `code`, never on `message`. Messages never contain a token, a secret, a refresh token, an
 * assertion or server-supplied free text (`error_description`, non-OAuth bodies).
 *
 * @example
 * ```ts
 * import { AuthError, OAuthError } from 'cirrus-auth';
 * try {
 *   await session.getToken();
 * } catch (error) {
 *   if (error instanceof OAuthError && error.error === 'invalid_client') alertOps();
 *   else if (error instanceof AuthError && error.transient) scheduleRetry();
 *   else throw error;
 * }
 * ```
 */

/** The stable `code` values, one per error class. */
export const ErrorCode = {
  AUTH: 'ERR_AUTH',
  CONFIG: 'ERR_CONFIG',
  INSECURE_URL: 'ERR_INSECURE_URL',
  OAUTH: 'ERR_OAUTH',
  INSTANCE_URL_MISMATCH: 'ERR_INSTANCE_URL_MISMATCH',
  UNEXPECTED_RESPONSE: 'ERR_UNEXPECTED_RESPONSE',
  RESPONSE_TOO_LARGE: 'ERR_RESPONSE_TOO_LARGE',
  TRANSPORT: 'ERR_TRANSPORT',
  SIGNING: 'ERR_SIGNING',
  STATE_MISMATCH: 'ERR_STATE_MISMATCH',
  FLOW_MISMATCH: 'ERR_FLOW_MISMATCH',
  SESSION_REVOKED: 'ERR_SESSION_REVOKED',
  SUBJECT_TOKEN: 'ERR_SUBJECT_TOKEN',
  ROTATION_HANDLER: 'ERR_ROTATION_HANDLER',
  REFRESH_LOOP: 'ERR_REFRESH_LOOP',
  SESSION_CLOSED: 'ERR_SESSION_CLOSED',
  TOKEN_STORE: 'ERR_TOKEN_STORE',
  SHARED_BACKOFF: 'ERR_SHARED_BACKOFF',
  SIGNATURE_MISMATCH: 'ERR_SIGNATURE_MISMATCH',
  IDENTITY: 'ERR_IDENTITY',
  UNKNOWN_TENANT: 'ERR_UNKNOWN_TENANT',
  PUBSUB: 'ERR_PUBSUB',
  STREAMING_AUTH: 'ERR_STREAMING_AUTH',
} as const;

/** One of the {@link ErrorCode} values. */
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** Options every {@link AuthError} constructor accepts. */
export interface AuthErrorOptions {
  /** The underlying error, kept as the standard `cause`. */
  cause?: unknown;
}

/**
 * Base class of every error cirrus-auth raises.
 * `transient` is true only when retrying later may succeed: network failures, timeouts, and
 * 429/5xx answers from the token endpoint.
 */
export class AuthError extends Error {
  /** A stable machine-readable code; see {@link ErrorCode}. */
  readonly code: ErrorCode;
  /** True when the same request may succeed later (transport failure, 429 or 5xx). */
  readonly transient: boolean;

  constructor(
    message: string,
    code: ErrorCode = ErrorCode.AUTH,
    transient = false,
    options?: AuthErrorOptions,
  ) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.transient = transient;
  }
}

/** A constructor option is missing or wrong. Thrown at construction, before any network traffic. */
export class ConfigError extends AuthError {
  /** The name of the offending option (its value is never echoed). */
  readonly option: string;
  /** What is wrong with it, in words that never quote the value. */
  readonly problem: string;

  constructor(option: string, problem: string, code: ErrorCode = ErrorCode.CONFIG) {
    super(`Invalid option "${option}": ${problem}`, code);
    this.option = option;
    this.problem = problem;
  }
}

/**
 * A URL option uses plain `http` for a host that is not loopback. Credentials only travel over
 * HTTPS, except to `localhost`, `127.0.0.0/8` and `[::1]` (not `*.localhost`, which is resolved).
 */
export class InsecureUrlError extends ConfigError {
  constructor(option: string) {
    super(
      option,
      'plain http is only allowed for loopback hosts; use https',
      ErrorCode.INSECURE_URL,
    );
  }
}

/** Whether a token-endpoint HTTP status means "try again later". */
export function isTransientStatus(status: number): boolean {
  return status === 429 || status >= 500;
}

/**
 * A stable classification of Salesforce's `error` + `error_description` pairs: branch on it, and
 * hint with it, without parsing the description (which stays out of every message).
 * - `invalid-client`: the client id or secret is wrong (`invalid_client_id`, `invalid_client`,
 *   `invalid_client_credentials`).
 * - `user-not-approved`: "user hasn't approved this consumer": the user is not pre-authorized for
 *   the app (JWT bearer), or, for JWT, often a wrong `aud`.
 * - `ip-restricted`: "ip restricted": the app's or profile's IP ranges exclude this caller.
 * - `inactive-user`: "inactive user". `inactive-org`: the org is locked or expired (`inactive_org`).
 * - `rate-exceeded`: "login rate exceeded" (about 3,600 logins per user per hour).
 * - `audience-invalid`: "audience is invalid": the JWT `aud` is not the login host.
 * - `assertion-expired`: a JWT bearer grant got "expired authorization code": its `exp` has passed
 *   (a clock skewed by minutes).
 * - `invalid-assertion`: "invalid assertion": a malformed JWT, or one not signed by the app's
 *   certificate.
 * - `domain-not-supported`: "request not supported on this domain": client credentials sent to
 *   `login.salesforce.com` instead of the My Domain.
 * - `run-as-user-missing`: "no client credentials user enabled": the app has no Run As user.
 * - `refresh-token-expired`: "expired access/refresh token": revoked, expired by policy, or
 *   rotated away.
 * - `code-expired`: an authorization code that expired or was used already.
 * - `invalid-code-verifier`: the PKCE `code_verifier` does not match the challenge.
 * - `redirect-uri-mismatch`: the `redirect_uri` is not a callback URL of the app.
 * - `access-denied`: the user pressed Deny (web server flow callback).
 * - `authentication-failure`: "authentication failure" with no more specific cause.
 * - `unsupported-grant-type`: the app does not allow this grant (or the org does not know it).
 * - `unknown`: anything else.
 */
export type OAuthErrorReason =
  | 'invalid-client'
  | 'user-not-approved'
  | 'ip-restricted'
  | 'inactive-user'
  | 'inactive-org'
  | 'rate-exceeded'
  | 'audience-invalid'
  | 'assertion-expired'
  | 'invalid-assertion'
  | 'domain-not-supported'
  | 'run-as-user-missing'
  | 'refresh-token-expired'
  | 'code-expired'
  | 'invalid-code-verifier'
  | 'redirect-uri-mismatch'
  | 'access-denied'
  | 'authentication-failure'
  | 'unsupported-grant-type'
  | 'unknown';

/** Codes whose meaning does not depend on the description. */
const REASON_BY_ERROR: Readonly<Record<string, OAuthErrorReason>> = {
  invalid_client_id: 'invalid-client',
  invalid_client: 'invalid-client',
  invalid_client_credentials: 'invalid-client',
  inactive_org: 'inactive-org',
  unsupported_grant_type: 'unsupported-grant-type',
  redirect_uri_mismatch: 'redirect-uri-mismatch',
  access_denied: 'access-denied',
  rate_limit_exceeded: 'rate-exceeded',
};

/**
 * Descriptions, lowercased, matched in order as substrings: the first match wins, so a more
 * specific text comes before "authentication failure", which Salesforce prefixes to several.
 */
const REASON_BY_DESCRIPTION: readonly (readonly [string, OAuthErrorReason])[] = [
  ["user hasn't approved this consumer", 'user-not-approved'],
  ['user has not approved this consumer', 'user-not-approved'],
  ['ip restricted', 'ip-restricted'],
  ['inactive user', 'inactive-user'],
  ['inactive organization', 'inactive-org'],
  ['login rate exceeded', 'rate-exceeded'],
  ['audience is invalid', 'audience-invalid'],
  ['audience validation failed', 'audience-invalid'],
  ['invalid assertion', 'invalid-assertion'],
  ['request not supported on this domain', 'domain-not-supported'],
  ['no client credentials user enabled', 'run-as-user-missing'],
  ['expired access/refresh token', 'refresh-token-expired'],
  ['invalid code verifier', 'invalid-code-verifier'],
  ['invalid client credentials', 'invalid-client'],
  ['redirect_uri must match', 'redirect-uri-mismatch'],
  ['redirect uri does not match', 'redirect-uri-mismatch'],
  ['authentication failure', 'authentication-failure'],
];

const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';

/**
 * Classifies an OAuth error answer; `grantType` is the request's `grant_type`, which tells apart
 * the two meanings of "expired authorization code" (an expired JWT assertion, or an expired code).
 */
export function oauthErrorReason(
  error: string,
  description: string | undefined,
  grantType?: string,
  status?: number,
): OAuthErrorReason {
  const text = (description ?? '').toLowerCase();
  if (text.includes('expired authorization code')) {
    if (grantType === JWT_BEARER) return 'assertion-expired';
    return 'code-expired';
  }
  if (error === 'invalid_grant' && grantType === 'authorization_code') {
    if (text.includes('invalid authorization code')) return 'code-expired';
  }
  for (const [needle, reason] of REASON_BY_DESCRIPTION) if (text.includes(needle)) return reason;
  const byError = REASON_BY_ERROR[error];
  if (byError !== undefined) return byError;
  if (status === 429) return 'rate-exceeded';
  return 'unknown';
}

/**
 * The token endpoint answered with an OAuth error body (`{"error": "...", ...}`).
 * The message carries the `error` code and the {@link OAuthErrorReason} only; the
 * `error_description` is free text from the server that may echo sensitive input, so it is read
 * with {@link OAuthError.errorDescription} and kept out of the message, `JSON.stringify` and every
 * `util.inspect` view.
 * @see https://www.rfc-editor.org/rfc/rfc6749#section-5.2
 */
export class OAuthError extends AuthError {
  /** The OAuth `error` code, for example `invalid_grant` or `invalid_client`. */
  readonly error: string;
  /** What the `error` and `error_description` pair means; see {@link OAuthErrorReason}. */
  readonly reason: OAuthErrorReason;
  /** The HTTP status of the answer. */
  readonly status: number;
  /** The server's `Retry-After`, in milliseconds, when it sent one. */
  readonly retryAfterMs: number | undefined;
  readonly #errorDescription: string | undefined;

  /**
   * @param grantType the request's `grant_type`, when known: it refines {@link reason}.
   */
  constructor(
    error: string,
    status: number,
    errorDescription?: string,
    retryAfterMs?: number,
    grantType?: string,
  ) {
    const reason = oauthErrorReason(error, errorDescription, grantType, status);
    super(
      `Token endpoint refused the request: ${error}${reason === 'unknown' ? '' : ` (${reason})`}`,
      ErrorCode.OAUTH,
      // A login rate limit lifts within the hour: retrying later may succeed.
      isTransientStatus(status) || reason === 'rate-exceeded',
    );
    this.error = error;
    this.reason = reason;
    this.status = status;
    this.retryAfterMs = retryAfterMs;
    this.#errorDescription = errorDescription;
  }

  /**
   * The server's `error_description`. Possibly sensitive: never log it unreviewed.
   * A method rather than a getter: `util.inspect` with `showHidden` and `getters` runs the
   * getters of an object's prototypes, and would print it.
   */
  errorDescription(): string | undefined {
    return this.#errorDescription;
  }
}

/**
 * The token answer's `signature` is not `base64(HMAC-SHA256(clientSecret, id + issued_at))`: the
 * answer was not issued for this connected app, or something between rewrote it. Nothing from it
 * is cached. Not transient. Behind a proxy that rewrites token answers, set
 * `verifySignature: false`.
 */
export class SignatureMismatchError extends AuthError {
  constructor() {
    super(
      'The token answer carries a signature that does not match the client secret; it was not used',
      ErrorCode.SIGNATURE_MISMATCH,
    );
  }
}

/** The token endpoint returned an `instance_url` that is not the configured `instanceUrl`. */
export class InstanceUrlMismatchError extends AuthError {
  /** The normalised `instanceUrl` the session was configured with. */
  readonly configured: string;
  /** The `instance_url` the token endpoint returned. */
  readonly returned: string;

  constructor(configured: string, returned: string) {
    super(
      `Token endpoint returned instance_url ${returned}, expected ${configured}`,
      ErrorCode.INSTANCE_URL_MISMATCH,
    );
    this.configured = configured;
    this.returned = returned;
  }
}

/**
 * The token endpoint answered with something that is not a usable token response: a redirect, a
 * non-OAuth error body, non-JSON, or JSON without the required fields. The body is never kept.
 */
export class UnexpectedResponseError extends AuthError {
  /** The HTTP status of the answer. */
  readonly status: number;
  /** The server's `Retry-After`, in milliseconds, when it sent one. */
  readonly retryAfterMs: number | undefined;

  constructor(status: number, problem: string, retryAfterMs?: number) {
    super(
      `Unexpected token endpoint response (HTTP ${status}): ${problem}`,
      ErrorCode.UNEXPECTED_RESPONSE,
      isTransientStatus(status),
    );
    this.status = status;
    this.retryAfterMs = retryAfterMs;
  }
}

/** The token endpoint's body exceeded the size limit; it was refused without being buffered. */
export class ResponseTooLargeError extends AuthError {
  /** The limit in bytes. */
  readonly limitBytes: number;

  constructor(limitBytes: number) {
    super(`Token endpoint response exceeds ${limitBytes} bytes`, ErrorCode.RESPONSE_TOO_LARGE);
    this.limitBytes = limitBytes;
  }
}

/**
 * The token request failed below HTTP: connection refused or reset, DNS, TLS, an answer the HTTP
 * client cannot parse, or the timeout. Its `cause` is the client's error scrubbed down to class
 * names and `code`s (for example `TypeError`, then `HTTPParserError` with
 * `HPE_INVALID_HEADER_TOKEN`, or an `Error` with `ECONNREFUSED`): the client's own text can quote
 * bytes the server sent, and a server can echo the request's secrets into them.
 */
export class TransportError extends AuthError {
  /** The host the request went to (the login URL's), when known. */
  readonly host: string | undefined;
  /**
   * The network failure's code, when the HTTP client gave one: Node's (`ECONNREFUSED`,
   * `ENOTFOUND`, `ECONNRESET`), undici's (`UND_ERR_CONNECT_TIMEOUT`, `UND_ERR_SOCKET`…), or
   * `ETIMEDOUT` for `timeoutMs`.
   */
  readonly causeCode: string | undefined;

  constructor(
    message: string,
    options?: AuthErrorOptions & { host?: string | undefined; causeCode?: string | undefined },
  ) {
    super(message, ErrorCode.TRANSPORT, true, options);
    this.host = options?.host;
    this.causeCode = options?.causeCode;
  }
}

/** Signing the JWT bearer assertion failed (for example a `CryptoKey` not usable for signing). */
export class SigningError extends AuthError {
  constructor(options?: AuthErrorOptions) {
    super('Could not sign the JWT bearer assertion', ErrorCode.SIGNING, false, options);
  }
}

/**
 * The `state` on the authorization callback is not the one `start()` issued: a forged or replayed
 * callback. Raised before any request.
 */
export class StateMismatchError extends AuthError {
  constructor() {
    super('The callback state does not match the pending login', ErrorCode.STATE_MISMATCH);
  }
}

/**
 * The pending login was issued by a flow with another client id, redirect URI or login URL.
 * Raised before any request.
 */
export class FlowMismatchError extends AuthError {
  constructor() {
    super(
      'The pending login was started by a differently configured flow',
      ErrorCode.FLOW_MISMATCH,
    );
  }
}

/** The session's refresh token was revoked with `revoke()`; build a new session to go on. */
export class SessionRevokedError extends AuthError {
  constructor() {
    super('This session was revoked and can no longer mint tokens', ErrorCode.SESSION_REVOKED);
  }
}

/** The subject token function of a token-exchange session failed or returned no token. */
export class SubjectTokenError extends AuthError {
  constructor(problem: string, options?: AuthErrorOptions) {
    super(`Could not get the subject token: ${problem}`, ErrorCode.SUBJECT_TOKEN, false, options);
  }
}

/**
 * `onRefreshTokenRotated` threw or rejected. The new refresh token is kept in memory and the session
 * goes on working; this error is emitted as a process warning (`process.on('warning', ...)`) with
 * the handler's error as `cause`, so the app can alert on tokens that were not persisted.
 */
export class RefreshTokenHandlerError extends AuthError {
  constructor(options?: AuthErrorOptions) {
    super(
      'onRefreshTokenRotated failed; the new refresh token is kept in memory only',
      ErrorCode.ROTATION_HANDLER,
      false,
      options,
    );
  }
}

/** The session was closed with `close()` (or `await using`); build a new one to go on. */
export class SessionClosedError extends AuthError {
  constructor() {
    super('This session was closed', ErrorCode.SESSION_CLOSED);
  }
}

/**
 * A SessionPool's `resolve` answered `undefined`: no credentials for this tenant. Not transient,
 * and not remembered either: the next call for the tenant asks `resolve` again (it may have been
 * onboarded since).
 */
export class UnknownTenantError extends AuthError {
  /** The tenant key that was asked for. */
  readonly tenant: string;

  constructor(tenant: string) {
    super('No credentials are configured for this tenant', ErrorCode.UNKNOWN_TENANT);
    this.tenant = tenant;
  }
}

/**
 * The Pub/Sub API refused a call (`cirrus-auth/grpc`): its token (after the one retry, for a
 * unary call), its tenant, or something else. `grpcCode` is the gRPC status, `errorCode`
 * Salesforce's `error-code` trailer (`sfdc.platform.eventbus.grpc.service.auth.error`…).
 */
export class PubSubError extends AuthError {
  readonly grpcCode: number;
  readonly errorCode: string | undefined;

  constructor(grpcCode: number, errorCode: string | undefined, transient: boolean) {
    // The trailer is the server's text: kept only in the shape Salesforce's codes have.
    const code =
      errorCode !== undefined && /^[a-z][a-z0-9.]{0,127}$/.test(errorCode) ? errorCode : undefined;
    super(
      `Pub/Sub API call failed with gRPC status ${grpcCode}${code ? ` (${code})` : ''}`,
      ErrorCode.PUBSUB,
      transient,
    );
    this.grpcCode = grpcCode;
    this.errorCode = code;
  }
}

/**
 * The Streaming API (CometD, `cirrus-auth/streaming`) refused the session and a new token did not
 * cure it. `reason` is Salesforce's (`401::Authentication invalid`…), never a token.
 */
export class StreamingAuthError extends AuthError {
  readonly reason: string;

  constructor(reason: string) {
    // The server's text: kept only in the shape of Salesforce's Bayeux errors (`401::Words`).
    const shown = /^\d{3}::[A-Za-z ]{1,80}$/.test(reason) ? reason : '(not shown)';
    super(`The Streaming API refused the session: ${shown}`, ErrorCode.STREAMING_AUTH);
    this.reason = shown;
  }
}

/** What went wrong with a shared token store. */
export type TokenStoreProblem = 'unavailable' | 'lock-wait' | 'undecryptable';

/**
 * A shared token store (Redis, say) could not be used. `problem` says why: `'unavailable'` (the
 * store failed or did not answer in time; transient), `'lock-wait'` (another process held the mint
 * lock for too long; transient) or `'undecryptable'` (a stored value does not decrypt with this
 * process's `encryptionKey`: a key mismatch across the fleet; not transient).
 */
export class TokenStoreError extends AuthError {
  readonly problem: TokenStoreProblem;

  constructor(problem: TokenStoreProblem, options?: AuthErrorOptions) {
    const messages: Record<TokenStoreProblem, string> = {
      unavailable: 'The shared token store is unavailable',
      'lock-wait': 'Another process held the shared mint lock for too long',
      undecryptable: 'A value in the shared token store does not decrypt with this encryptionKey',
    };
    super(messages[problem], ErrorCode.TOKEN_STORE, problem !== 'undecryptable', options);
    this.problem = problem;
  }
}

/**
 * Another process of the fleet just failed to mint (its failure is shared through the store), so
 * this one does not try either until `retryAfterMs` has passed: one token request per backoff
 * window for the whole fleet, not one per process. `failedWith` is that failure's `code`;
 * `transient` is its `transient`.
 */
export class SharedBackoffError extends AuthError {
  readonly failedWith: string;
  readonly retryAfterMs: number;

  constructor(failedWith: string, transient: boolean, retryAfterMs: number) {
    super(
      `Another process's token request failed (${failedWith}); retrying in ${Math.ceil(retryAfterMs)} ms`,
      ErrorCode.SHARED_BACKOFF,
      transient,
    );
    this.failedWith = failedWith;
    this.retryAfterMs = retryAfterMs;
  }
}

/**
 * `identity()` failed: the identity URL (or userinfo) answered `status` (a token still rejected
 * after one re-mint answers 401 or 403), or an answer that is not the identity JSON. The body is
 * never kept. Transient for 429 and 5xx.
 */
export class IdentityError extends AuthError {
  /** The HTTP status of the answer (0 when the request failed below HTTP). */
  readonly status: number;

  constructor(status: number, problem: string, options?: AuthErrorOptions) {
    super(
      `Identity request failed (HTTP ${status}): ${problem}`,
      ErrorCode.IDENTITY,
      status === 0 || isTransientStatus(status),
      options,
    );
    this.status = status;
  }
}

/**
 * jsforce would loop on refresh-and-resend: the session handed back the token that was just
 * rejected (`same-token`: a new token does not cure this, or the session's rejection guard holds
 * minting back), or a request was rejected again right after it was re-sent with a new token
 * (`rejected-again`). jsforce itself has no cap and would resend forever.
 */
export class RefreshLoopError extends AuthError {
  /** Why the loop was broken. */
  readonly reason: 'same-token' | 'rejected-again';
  constructor(reason: 'same-token' | 'rejected-again') {
    super(
      reason === 'same-token'
        ? 'The session returned the token jsforce just reported as rejected; not retrying'
        : 'The org rejected a request again right after it was re-sent with a new token; not retrying',
      ErrorCode.REFRESH_LOOP,
    );
    this.reason = reason;
  }
}
