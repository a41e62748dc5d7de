/**
 * cirrus-auth: Salesforce OAuth 2.0 sessions for any JavaScript HTTP client.
 * The root entry imports no HTTP client; adapters live at `cirrus-auth/fetch` and friends.
 * @packageDocumentation
 */

export {
  type AdapterOptions,
  isRestAuthFailure,
  isSalesforceAuthFailure,
  MAX_REPLAY_BODY_BYTES,
  NON_CURABLE_401_MESSAGES,
} from './adapters/shared.js';
export {
  AuthError,
  type AuthErrorOptions,
  ConfigError,
  ErrorCode,
  InsecureUrlError,
  InstanceUrlMismatchError,
  OAuthError,
  ResponseTooLargeError,
  TransportError,
  UnexpectedResponseError,
} from './errors.js';
export {
  ClientCredentialsAuth,
  type ClientCredentialsOptions,
} from './grants/client-credentials.js';
export { StaticTokenAuth, type StaticTokenOptions } from './grants/static-token.js';
export type { AuthSession, GetTokenOptions } from './session/auth-session.js';
export {
  type CachingSessionOptions,
  DEFAULT_TOKEN_TTL_MS,
  EXPIRY_MARGIN_MS,
} from './session/caching-session.js';
export {
  DEFAULT_TIMEOUT_MS,
  MAX_TOKEN_RESPONSE_BYTES,
  TOKEN_PATH,
  type TokenEndpointOptions,
} from './token-endpoint.js';
