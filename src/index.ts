/**
 * cirrus-auth: Salesforce OAuth 2.0 sessions for any JavaScript HTTP client.
 * The root entry imports no HTTP client; adapters live at `cirrus-auth/fetch` and friends.
 * @packageDocumentation
 */

export {
  type AdapterOptions,
  DETECTION_PEEK_BYTES,
  DETECTION_PEEK_TIMEOUT_MS,
  isRestAuthFailure,
  isSalesforceAuthFailure,
  MAX_REPLAY_BODY_BYTES,
  NON_CURABLE_401_MESSAGES,
  type OrgApi,
} from './adapters/shared.js';
export {
  AuthError,
  type AuthErrorOptions,
  ConfigError,
  ErrorCode,
  FlowMismatchError,
  IdentityError,
  InsecureUrlError,
  InstanceUrlMismatchError,
  OAuthError,
  type OAuthErrorReason,
  oauthErrorReason,
  PubSubError,
  RefreshLoopError,
  RefreshTokenHandlerError,
  ResponseTooLargeError,
  SessionClosedError,
  SessionRevokedError,
  SharedBackoffError,
  SignatureMismatchError,
  SigningError,
  StateMismatchError,
  StreamingAuthError,
  SubjectTokenError,
  TokenStoreError,
  type TokenStoreProblem,
  TransportError,
  UnexpectedResponseError,
  UnknownTenantError,
} from './errors.js';
export {
  ClientCredentialsAuth,
  type ClientCredentialsOptions,
  clientCredentials,
} from './grants/client-credentials.js';
// selectGrant: tells which grant an environment describes without building a session (a config
// check, the CLI's `check`); it never reads a secret into its answer.
export {
  type EnvGrant,
  type EnvSession,
  type FromEnvOptions,
  fromEnv,
  selectGrant,
} from './grants/from-env.js';
export {
  JWT_ASSERTION_LIFETIME_S,
  JWT_BEARER_GRANT,
  JwtBearerAuth,
  type JwtBearerOptions,
  jwtAudienceFor,
  jwtBearer,
  SANDBOX_LOGIN_URL,
} from './grants/jwt-bearer.js';
export {
  RefreshTokenAuth,
  type RefreshTokenOptions,
  type RefreshTokenSource,
  refreshToken,
} from './grants/refresh-token.js';
export { fromSfdxAuthUrl, type SfdxAuthUrlOptions } from './grants/sfdx-auth-url.js';
export { StaticTokenAuth, type StaticTokenOptions } from './grants/static-token.js';
export {
  SubjectTokenType,
  TOKEN_EXCHANGE_GRANT,
  TokenExchangeAuth,
  type TokenExchangeOptions,
  tokenExchange,
} from './grants/token-exchange.js';
export {
  AUTHORIZE_PATH,
  type CallbackParams,
  type CompleteOptions,
  DEFAULT_SCOPES,
  type PendingLogin,
  WebServerFlow,
  type WebServerFlowOptions,
} from './grants/web-server.js';
export {
  DEFAULT_POOL_IDLE_MS,
  DEFAULT_POOL_MAX_SESSIONS,
  type PoolFilled,
  SessionPool,
  type SessionPoolOptions,
  type TenantConfig,
  type TenantGrant,
  TenantSession,
} from './pool.js';
export type { AuthSession, GetTokenOptions, TenantSessions } from './session/auth-session.js';
export {
  BACKOFF_INITIAL_MS,
  BACKOFF_MAX_MS,
  CachingSession,
  type CachingSessionOptions,
  DEFAULT_REFRESH_AHEAD_MS,
  DEFAULT_TOKEN_TTL_MS,
  EXPIRY_MARGIN_MS,
  FRESH_TOKEN_MS,
} from './session/caching-session.js';
export {
  type BackoffEvent,
  DIAGNOSTICS_CHANNELS,
  type InvalidateEvent,
  type Logger,
  type MintEndEvent,
  type MintReason,
  type MintStartEvent,
  type RetryEvent,
  type StoreEvent,
} from './session/diagnostics.js';
// A documented default (how soon a degraded session tries its store again), named with its unit.
export { STORE_REJOIN_INTERVAL_MS } from './session/fleet.js';
export type { Identity, IdentityOptions } from './session/identity.js';
export { MAX_IDENTITY_RESPONSE_BYTES } from './session/identity.js';
// sessionKey: the key a session's entry has in a shared store, so an operator can find or clear
// one session's entry (the key holds no secret); custom stores receive these keys.
export {
  type SessionIdentity,
  type SharedFailure,
  type SharedSlot,
  type SharedToken,
  type SharedTokenStore,
  type SharedWrite,
  sessionKey,
} from './session/shared-store.js';
export type {
  MintContext,
  MintedToken,
  MintFn,
  SourceIdentity,
  TokenSource,
} from './session/token-source.js';
export {
  InMemoryTokenStore,
  type InMemoryTokenStoreOptions,
  MEMORY_LOCK_TTL_MS,
} from './stores/memory.js';
// TOKEN_PATH and REVOKE_PATH: for allowlists of egress proxies and for test doubles of the org.
export {
  DEFAULT_LOGIN_URL,
  DEFAULT_TIMEOUT_MS,
  MAX_TOKEN_RESPONSE_BYTES,
  REVOKE_PATH,
  TOKEN_PATH,
  type TokenEndpointOptions,
} from './token-endpoint.js';
export type { TokenInfo } from './token-info.js';
