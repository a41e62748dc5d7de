import {
  createHmac,
  generateKeyPairSync,
  type KeyObject,
  randomBytes,
  randomUUID,
} from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import { type FakeStreaming, fakeStreaming } from './cometd-server.js';
import { FakeGrants, type GrantTenant, publicKeyOf } from './fake-grants.js';
import { type FakePubSub, startFakePubSub } from './pubsub-server.js';

/** Options of {@link startFakeOrg}. */
export interface FakeOrgOptions {
  /** The connected app's client id the org accepts. @default a random value */
  clientId?: string;
  /** The connected app's client secret the org accepts. @default a random value */
  clientSecret?: string;
  /**
   * Answer a token request with the access token already issued to the same client while it is
   * still valid, as Salesforce does while the server-side session lives.
   * @default false
   */
  reuseAccessToken?: boolean;
  /** Added to every token answer as `expires_in` (seconds). Salesforce usually sends none. */
  expiresInSeconds?: number;
  /** Usernames that have approved the app: the JWT bearer grant accepts these as `sub`. @default ['admin@example.com'] */
  users?: string[];
  /**
   * The key the JWT bearer grant verifies assertions with (the certificate on the connected app):
   * a PEM or `KeyObject`, public or private. @default a new RSA key pair; its private half is
   * `FakeOrg.jwtPrivateKey`.
   */
  jwtKey?: string | KeyObject;
  /**
   * The `aud` the JWT bearer grant requires, as Salesforce does: its login host, whatever host the
   * assertion was POSTed to. `https://test.salesforce.com` plays a sandbox, a site URL an
   * Experience Cloud site. A wrong one gets 400 `invalid_grant` "audience is invalid", and a My
   * Domain (this org's `loginUrl`, or any `https://NAME.my.salesforce.com`) the misleading "user
   * hasn't approved this consumer" Salesforce often answers it with.
   * @default 'https://login.salesforce.com' (a production org)
   */
  audience?: string;
  /**
   * An Experience Cloud site: every token answer carries `sfdc_community_url` and
   * `sfdc_community_id`, as Salesforce's answers to a site login do.
   */
  community?: { url: string; id: string };
  /** Added to every token answer as `api_instance_url`. */
  apiInstanceUrl?: string;
  /**
   * Refresh Token Rotation: every refresh answers a new refresh token, and presenting a rotated-away
   * one revokes the whole family (refresh token and its access tokens), as Salesforce does.
   * @default true
   */
  refreshTokenRotation?: boolean;
  /** Whether the refresh and authorization-code grants require `client_secret` (a confidential app). @default true */
  requireClientSecret?: boolean;
  /**
   * Salesforce's login rate limit: past `logins` logins of one user within `windowMs`, every grant
   * for that user answers 400 `invalid_grant` "login rate exceeded" (nothing is issued and no
   * refresh token rotates) until the oldest login leaves the window. Refused logins do not count.
   * @default { logins: 3600, windowMs: 3_600_000 } (about Salesforce's own: 3,600 an hour)
   */
  loginRate?: { logins: number; windowMs?: number };
  /**
   * How many refresh-token approvals of the app one user keeps, as Salesforce keeps 5: a new
   * family (`issueRefreshToken`, an authorization code with `refresh_token` scope) past it revokes
   * the user's oldest (its refresh token and access tokens). @default 5
   */
  refreshTokenApprovals?: number;
  /** How many recent API requests `apiRequests` keeps; 0 keeps none (for long load runs). @default 10,000 */
  apiLogLimit?: number;
  /**
   * Also serve the Pub/Sub API: a real gRPC server on another loopback port (`FakeOrg.pubsub`).
   * Needs the optional peers `@grpc/grpc-js` and `@grpc/proto-loader`.
   * @default false
   */
  pubsub?: boolean;
  /**
   * How long the Streaming API (`/cometd/NN.N`) holds a long-polling `/meta/connect` open when no
   * event comes (Salesforce: 110 s).
   * @default 5,000
   */
  streamingHoldMs?: number;
  /**
   * The event channels the org defines (platform events, PushTopics, change data capture), for
   * the Streaming and Pub/Sub APIs: as in a real org, subscribing or publishing to any other is
   * refused ("does not exist", NOT_FOUND).
   * @default ['/event/Order__e']
   */
  channels?: string[];
  /**
   * The org's CORS allowlist (Setup → CORS, with "Enable CORS for OAuth endpoints"), for code in a
   * browser page: a listed origin gets `Access-Control-Allow-Origin` on the API and the OAuth
   * endpoints and its preflights are answered; any other origin's preflight, and its API request,
   * gets 403, and the OAuth endpoints answer it without CORS headers, so the browser withholds the
   * answer. Requests without an `Origin` header (every server-side client) are not affected.
   * @default [] (no browser origin allowed, as in a new org)
   */
  corsOrigins?: string[];
}

/**
 * A way for the token endpoint to misbehave, set with {@link FakeOrg.failTokenEndpoint}.
 * - `status`: answer with this status, body and headers (HTML, non-JSON, OAuth errors, 429, 5xx…).
 * - `stall`: read the request, never answer.
 * - `stall-body`: send 200 headers and half a JSON body, then nothing.
 * - `reset`: destroy the connection without answering.
 * - `reset-mid-body`: send 200 headers and part of the body, then destroy the connection.
 * - `gzip-bomb`: a small gzip body (`content-encoding: gzip`) that inflates to `inflatedBytes`.
 * - `redirect`: answer a 3xx pointing at `location`.
 * - `oversized`: a 200 JSON body of `bytes` bytes, streamed, with or without `content-length`.
 * - `instance-url`: a valid token for another `instance_url`.
 * - `forged-signature`: a valid token whose `signature` is not the HMAC of `id + issued_at` with
 *   the client secret (an answer not from this org, or rewritten on the way).
 * - `malformed-echo`: a response the HTTP client cannot parse, quoting the request body in a header
 *   (a broken proxy echoing the request): the client's parser error then holds the form's secrets.
 */
export type TokenFault =
  | { kind: 'status'; status: number; body?: string; headers?: Record<string, string> }
  | { kind: 'stall' }
  | { kind: 'stall-body' }
  | { kind: 'reset' }
  | { kind: 'reset-mid-body' }
  | { kind: 'gzip-bomb'; inflatedBytes: number }
  | { kind: 'redirect'; location: string; status?: 301 | 302 | 303 | 307 | 308 }
  | { kind: 'oversized'; bytes: number; declareLength?: boolean }
  | { kind: 'instance-url'; instanceUrl: string }
  | { kind: 'forged-signature' }
  | { kind: 'malformed-echo' };

/** Counters of what the org has served since it started (or since `resetStats()`). */
export interface FakeOrgStats {
  /** Requests to `/services/oauth2/token`, whatever their outcome. */
  tokenRequests: number;
  /** Token requests by `grant_type`. */
  tokenRequestsByGrant: Record<string, number>;
  /** Access tokens issued. */
  tokensIssued: number;
  /**
   * Requests to the API surface: REST (`/services/data`, `/services/apexrest`), SOAP
   * (`/services/Soap`), Bulk API 1.0 (`/services/async`), userinfo and the identity URL.
   */
  apiRequests: number;
  /** API requests by the status they were answered with. */
  apiRequestsByStatus: Record<string, number>;
  /** Refresh-token families revoked because a rotated-away refresh token was presented. */
  familyRevocations: number;
  /** Tokens revoked through `/services/oauth2/revoke`. */
  revocations: number;
  /** Refresh-token families revoked because their user approved the app past `refreshTokenApprovals`. */
  approvalRevocations: number;
}

/** One API request as the org saw it. */
export interface ApiRequestRecord {
  method: string;
  path: string;
  /**
   * The session the request presented where its API reads it, if any: the SOAP envelope's
   * `<sessionId>` under `/services/Soap/`, `X-SFDC-Session` under `/services/async/`, else the
   * `Authorization: Bearer` header.
   */
  token: string | undefined;
  status: number;
}

/** A request to `/services/apexrest/echo`, whatever its token: what the org received, in full. */
export interface EchoedRequest {
  method: string;
  /** Path and query. */
  path: string;
  /** Every header but `authorization`. */
  headers: Record<string, string | string[] | undefined>;
  /** The bearer token it carried, if any. */
  token: string | undefined;
  body: Buffer;
}

/**
 * Another org (and its user) behind the fake's login host, for tests of many tenants at once:
 * its own org id, user, connected app and, if asked for, its own instance URL (another loopback
 * port). Its tokens work only at its instance; another tenant's token there gets 401.
 */
export interface FakeTenant {
  readonly orgId: string;
  readonly userId: string;
  /** The username the JWT bearer grant accepts as `sub` for this tenant. */
  readonly username: string;
  /** Where its tokens work: the org's `instanceUrl`, or its own port with `ownInstance`. */
  readonly instanceUrl: string;
  /** Its own connected app: the client credentials grant with these mints for this tenant. */
  readonly clientId: string;
  readonly clientSecret: string;
  /** What this tenant got: access tokens issued, API requests that presented a live one at its instance. */
  readonly stats: { readonly tokensIssued: number; readonly apiRequests: number };
  /** A new refresh token for this tenant's user (a new family), for the org's own app. */
  issueRefreshToken(): string;
  /** {@link FakeOrg.rejectApiTokens} for this tenant only (its tokens, new or old). */
  rejectApiTokens(mode: ApiRejection | undefined): void;
}

/** Options of {@link FakeOrg.addTenant}. */
export interface FakeTenantOptions {
  /** Serve this tenant's API on a port of its own (another origin). @default false */
  ownInstance?: boolean;
}

/** How the API treats tokens; see {@link FakeOrg.rejectApiTokens}. */
export type ApiRejection = 'invalid-session' | 'not-valid-for-rest';

/** A running fake org. */
export interface FakeOrg {
  /** Where token requests go (`http://127.0.0.1:PORT`). For this org it is also the instance URL. */
  readonly loginUrl: string;
  /** The org's instance URL: the REST API lives here. */
  readonly instanceUrl: string;
  /**
   * Plays the generic login host (`login.salesforce.com`) on a port of its own: its token, revoke
   * and authorize endpoints answer as `loginUrl`'s do, except that the client credentials grant is
   * refused there with 400 `invalid_grant` "request not supported on this domain", as Salesforce
   * refuses it anywhere but the org's My Domain. It serves no API.
   */
  readonly genericLoginUrl: string;
  readonly clientId: string;
  readonly clientSecret: string;
  /** A snapshot of the counters. */
  readonly stats: FakeOrgStats;
  /** Every API request so far (the most recent 10,000). */
  readonly apiRequests: readonly ApiRequestRecord[];
  /** The last 100 or more requests to `/services/apexrest/echo` in full, accepted or not. */
  readonly echoes: readonly EchoedRequest[];
  /** The username the JWT bearer grant accepts first (`users[0]`). */
  readonly username: string;
  /** The PEM (PKCS#8) private key whose public half the JWT bearer grant trusts, unless `jwtKey` was given. */
  readonly jwtPrivateKey: string | undefined;
  /** The last token request's form fields (secrets included: it is a test double). */
  readonly lastTokenRequest: Readonly<Record<string, string>> | undefined;
  /** Server-side revocation of every access token issued so far: the next API call with one gets 401. */
  revokeAllTokens(): void;
  /** A new refresh token, as if a user had approved the app (a new token family). */
  issueRefreshToken(): string;
  /**
   * Adds a tenant: another org with its own user, connected app and, with `ownInstance`, its own
   * instance URL. The org's own app's refresh tokens, the JWT bearer grant (with the tenant's
   * username) and the tenant's app (client credentials) all mint tokens for it.
   */
  addTenant(options?: FakeTenantOptions): Promise<FakeTenant>;
  /** Whether `token` is the live refresh token of a family that is not revoked. */
  isValidRefreshToken(token: string): boolean;
  /** Lets the token-exchange grant accept `token` as a subject token of `type` (a token-type URN). */
  addSubjectToken(token: string, type: string): void;
  /** Makes the next authorization answer the callback with `error` (for example `access_denied`). */
  denyNextAuthorization(error?: string): void;
  /**
   * Plays the browser for the web server flow: requests `authorizeUrl` as a logged-in user who
   * approves, and answers the callback URL the org redirects to (with `code` and `state`, or `error`).
   */
  approve(authorizeUrl: string): Promise<URL>;
  /** Whether `token` is an access token the org currently accepts. */
  isValidToken(token: string): boolean;
  /** Makes the token endpoint misbehave, for the next `times` requests or until healed. */
  failTokenEndpoint(fault: TokenFault, options?: { times?: number }): void;
  /** Undoes {@link failTokenEndpoint}. */
  healTokenEndpoint(): void;
  /** Delays every token answer by `ms` (0 to stop). Widens race windows in concurrency tests. */
  setTokenDelay(ms: number): void;
  /** Delays every API answer by `ms` (0 to stop). */
  setApiDelay(ms: number): void;
  /**
   * Makes the API reject every token, new or old, as an org with IP restrictions, High Assurance
   * sessions or a blocked app does (`invalid-session`: each API's own "bad token" answer, REST's
   * 401 INVALID_SESSION_ID; `not-valid-for-rest`: REST's 401 a new token does not cure), or accept
   * valid ones again (undefined). Token requests still succeed.
   */
  rejectApiTokens(mode: ApiRejection | undefined): void;
  /**
   * Answers the next `times` API requests that carry a valid token with `status` (for example 503),
   * as an overloaded org would. Requests with a bad token still get their 401 first. `times: 0`
   * turns it off.
   */
  failApiRequests(status: number, options?: { times?: number }): void;
  /** Zeroes the counters and clears the request logs (`apiRequests`, `echoes`). */
  resetStats(): void;
  /** The Streaming API (CometD at `/cometd/NN.N` on each instance): `stats` and `publish`. */
  readonly streaming: FakeStreaming;
  /** The Pub/Sub API's gRPC server, with `pubsub: true`: its `target`, `stats` and `publish`. */
  readonly pubsub: FakePubSub | undefined;
  /** Stops the server, cutting any open connection. */
  close(): Promise<void>;
}

const API_LOG_LIMIT = 10_000;
const USERINFO = '/services/oauth2/userinfo';
const SOAP_INVALID_SESSION =
  '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:sf="urn:fault.partner.soap.sforce.com"><soapenv:Body><soapenv:Fault><faultcode>sf:INVALID_SESSION_ID</faultcode><faultstring>INVALID_SESSION_ID: Invalid Session ID found in SessionHeader: Illegal Session</faultstring></soapenv:Fault></soapenv:Body></soapenv:Envelope>';
const SOAP_OK =
  '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><getUserInfoResponse/></soapenv:Body></soapenv:Envelope>';
const BULK_INVALID_SESSION =
  '<?xml version="1.0" encoding="UTF-8"?><error xmlns="http://www.force.com/2009/06/asyncapi/dataload"><exceptionCode>InvalidSessionId</exceptionCode><exceptionMessage>Invalid session id</exceptionMessage></error>';
const BULK_JOB =
  '<?xml version="1.0" encoding="UTF-8"?><jobInfo xmlns="http://www.force.com/2009/06/asyncapi/dataload"><id>750000000000001AAA</id><state>Open</state></jobInfo>';
const ORG_ID = '00D000000000001EAA';
const USER_ID = '005000000000001AAA';
/** The identity URL a token answer's `id` names: `/id/{orgId}/{userId}`. */
const IDENTITY_PATH = /^\/id\/(00D\w{12}|00D\w{15})\/(005\w{12}|005\w{15})\/?$/;

/** A tenant as the org keeps it (see {@link FakeTenant}). */
interface Tenant extends GrantTenant {
  readonly orgId: string;
  readonly userId: string;
  readonly username: string;
  /** Its instance URL: the org's own, or that of its own server. */
  instanceUrl(): string;
  lastIssued: string | undefined;
  readonly stats: { tokensIssued: number; apiRequests: number };
  /** The API refuses this tenant's tokens (as for the whole org with `rejectApiTokens`). */
  rejection?: ApiRejection | undefined;
}

/** The `n`th 18-character Salesforce id with a 3-character key prefix. */
function salesforceId(prefix: string, n: number): string {
  return `${prefix}${String(n).padStart(12, '0')}AAA`;
}
/**
 * Where Salesforce reads a SOAP session: the envelope's Header, its SessionHeader, its sessionId
 * (any namespace prefixes). A sessionId anywhere else (the Body, say) is not a session.
 */
const SOAP_SESSION_ID =
  /<((?:[\w.-]+:)?Header)\b[^>]*>[\s\S]*?<((?:[\w.-]+:)?SessionHeader)\b[^>]*>[\s\S]*?<(?:[\w.-]+:)?sessionId(?:\s[^>]*)?>([^<]*)<\/(?:[\w.-]+:)?sessionId\s*>[\s\S]*?<\/\2\s*>[\s\S]*?<\/\1\s*>/;

/** The session a request presents where its API reads it, if any. */
function presentedSession(
  req: IncomingMessage,
  carrier: 'soap' | 'bulk' | 'bearer',
  body: Buffer,
): string | undefined {
  if (carrier === 'soap') {
    const found = SOAP_SESSION_ID.exec(body.toString('utf8'))?.[3];
    return found
      ? found.replace(
          /&lt;|&gt;|&amp;/g,
          (e) => ({ '&lt;': '<', '&gt;': '>', '&amp;': '&' })[e] ?? e,
        )
      : undefined;
  }
  if (carrier === 'bulk') {
    const session = req.headers['x-sfdc-session'];
    return typeof session === 'string' && session !== '' ? session : undefined;
  }
  const auth = req.headers.authorization;
  return auth?.startsWith('Bearer ') ? auth.slice('Bearer '.length) : undefined;
}

/**
 * Starts a fake Salesforce org: a real `node:http` server on a loopback port that answers the token
 * endpoint and a small REST surface with Salesforce's shapes, counts every request, and can be
 * told to revoke tokens or to fail in the ways real token endpoints fail.
 *
 * @example
 * ```ts
 * import { startFakeOrg } from 'cirrus-auth/testing';
 * const org = await startFakeOrg();
 * const session = new ClientCredentialsAuth({ ...org, loginUrl: org.loginUrl });
 * // ... exercise your code ...
 * expect(org.stats.tokenRequests).toBe(1);
 * await org.close();
 * ```
 */
export async function startFakeOrg(options: FakeOrgOptions = {}): Promise<FakeOrg> {
  const clientId = options.clientId ?? `3MVG9${randomBytes(24).toString('base64url')}`;
  const clientSecret = options.clientSecret ?? randomBytes(32).toString('hex');
  /** Every live access token, with the tenant it was issued to. */
  const valid = new Map<string, Tenant>();
  let stats = emptyStats();
  let log: ApiRequestRecord[] = [];
  let fault: { fault: TokenFault; remaining: number } | undefined;
  let tokenDelayMs = 0;
  let apiDelayMs = 0;
  let rejection: ApiRejection | undefined;
  let apiFailure: { status: number; remaining: number } | undefined;
  let lastTokenRequest: Record<string, string> | undefined;
  const accounts = new Map<string, Record<string, unknown>>();
  const echoes: EchoedRequest[] = [];
  let baseUrl = '';
  const users = options.users ?? ['admin@example.com'];
  const loginRate = {
    logins: options.loginRate?.logins ?? 3_600,
    windowMs: options.loginRate?.windowMs ?? 3_600_000,
  };
  if (!Number.isSafeInteger(loginRate.logins) || loginRate.logins < 1)
    throw new RangeError('loginRate.logins must be a whole number, 1 or more');
  if (!(loginRate.windowMs > 0)) throw new RangeError('loginRate.windowMs must be above 0');
  const approvals = options.refreshTokenApprovals ?? 5;
  if (!Number.isSafeInteger(approvals) || approvals < 1)
    throw new RangeError('refreshTokenApprovals must be a whole number, 1 or more');
  /** Each user's logins within the window, oldest first (a user is a tenant's). */
  const logins = new Map<Tenant, number[]>();
  const mayLogin = (tenant: Tenant): boolean => {
    const now = Date.now();
    const times = logins.get(tenant) ?? [];
    logins.set(tenant, times);
    let expired = 0;
    while (expired < times.length && (times[expired] as number) <= now - loginRate.windowMs)
      expired++;
    if (expired > 0) times.splice(0, expired);
    if (times.length >= loginRate.logins) return false;
    times.push(now);
    return true;
  };
  const apiLogLimit = options.apiLogLimit ?? API_LOG_LIMIT;
  let jwtPrivateKey: string | undefined;
  let jwtKey = options.jwtKey;
  if (jwtKey === undefined) {
    const pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
    jwtPrivateKey = pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    jwtKey = pair.publicKey;
  }
  const first: Tenant = {
    orgId: ORG_ID,
    userId: USER_ID,
    username: users[0] ?? '',
    clientId,
    clientSecret,
    instanceUrl: () => baseUrl,
    lastIssued: undefined,
    stats: { tokensIssued: 0, apiRequests: 0 },
  };
  const tenants: Tenant[] = [first];
  let tenantsNumbered = 1;
  const tenantsByUser = new Map<string, Tenant>();
  const tenantsByClient = new Map<string, Tenant>();
  const servers: Server[] = [];
  const grants = new FakeGrants(
    {
      clientId,
      clientSecret,
      loginUrl: () => baseUrl,
      issue: (extra, tenant, secret) => issue(extra, tenant as Tenant | undefined, secret),
      tenantOfUser: (username) => tenantsByUser.get(username),
      tenantOfClient: (id) => tenantsByClient.get(id),
      revokeAccessTokens: (tokens) => {
        for (const t of tokens) valid.delete(t);
      },
      mayLogin: (tenant) => mayLogin((tenant as Tenant | undefined) ?? first),
    },
    {
      users,
      audience: options.audience,
      jwtPublicKey: publicKeyOf(jwtKey),
      refreshTokenRotation: options.refreshTokenRotation ?? true,
      requireClientSecret: options.requireClientSecret ?? true,
      refreshTokenApprovals: approvals,
    },
  );

  /** A server answering as `instance()` (the org's own, or a tenant's own instance). */
  /** A server answering as `instance()`, or as the generic login host (`generic`). */
  const serve = (instance: () => string, generic = false) =>
    createServer((req, res) => {
      handle(req, res, instance(), generic).catch(() => {
        if (!res.headersSent)
          json(res, 500, [{ message: 'internal', errorCode: 'UNKNOWN_EXCEPTION' }]);
        else res.destroy();
      });
    });
  const server = serve(() => baseUrl);
  /** Whose a live token is (org id and instance), unless the API refuses it. */
  const ownerOf = (token: string) => {
    const owner = valid.get(token);
    if (owner === undefined || (rejection ?? owner.rejection) !== undefined) return undefined;
    return { orgId: owner.orgId, instanceUrl: owner.instanceUrl() };
  };
  const definedChannels = new Set(options.channels ?? ['/event/Order__e']);
  const corsOrigins = new Set(options.corsOrigins ?? []);
  const defines = (channel: string) => definedChannels.has(channel);
  const cometd = fakeStreaming({ ownerOf, defines }, { holdMs: options.streamingHoldMs ?? 5_000 });

  async function handle(
    req: IncomingMessage,
    res: ServerResponse,
    instance: string,
    generic = false,
  ): Promise<void> {
    const url = new URL(req.url ?? '/', baseUrl);
    if (req.headers.origin !== undefined && !cors(req, res, url)) return;
    if (url.pathname === '/services/oauth2/token') return token(req, res, generic);
    if (generic && !/^\/services\/oauth2\/(revoke|authorize)$/.test(url.pathname)) {
      return json(res, 404, [
        { errorCode: 'NOT_FOUND', message: 'The requested resource does not exist' },
      ]);
    }
    if (cometd.matches(url.pathname) && req.method === 'POST') {
      return cometd.handle(req, res, await readBody(req), instance);
    }
    if (url.pathname === '/services/oauth2/revoke') {
      const params = new URLSearchParams((await readBody(req)).toString('utf8'));
      const answer = grants.revoke(params, (t) => valid.has(t));
      return answer.status === 200
        ? void res.writeHead(200).end()
        : json(res, answer.status, answer.body);
    }
    if (url.pathname === '/services/oauth2/authorize') {
      const posted = req.method === 'POST';
      const query = posted
        ? new URLSearchParams((await readBody(req)).toString('utf8'))
        : url.searchParams;
      const decision = posted ? (query.get('decision') === 'allow' ? 'allow' : 'deny') : 'ask';
      query.delete('decision');
      const answer = grants.authorize(query, decision);
      if (answer.location !== undefined)
        return void res.writeHead(302, { location: answer.location }).end();
      if (answer.status === 200) return approvalPage(res, query);
      return json(res, answer.status, answer.body);
    }
    if (
      /^\/services\/(data|apexrest|Soap|async)\//.test(url.pathname) ||
      url.pathname === USERINFO ||
      IDENTITY_PATH.test(url.pathname)
    ) {
      return api(req, res, url, instance);
    }
    json(res, 404, [{ errorCode: 'NOT_FOUND', message: 'The requested resource does not exist' }]);
  }

  /**
   * Salesforce's CORS allowlist for a request that carries `Origin`: answers whether the request
   * goes on (with the allow headers set for a listed origin); a preflight is answered here.
   */
  function cors(req: IncomingMessage, res: ServerResponse, url: URL): boolean {
    const origin = req.headers.origin as string;
    const listed = corsOrigins.has(origin);
    const preflight =
      req.method === 'OPTIONS' && req.headers['access-control-request-method'] !== undefined;
    if (listed) {
      res.setHeader('access-control-allow-origin', origin);
      res.setHeader('vary', 'Origin');
    }
    if (preflight && listed) {
      res.writeHead(204, {
        'access-control-allow-methods': 'GET, POST, PATCH, PUT, DELETE, HEAD',
        'access-control-allow-headers': req.headers['access-control-request-headers'] ?? '',
        'access-control-max-age': '600',
      });
      res.end();
      return false;
    }
    if (listed || (!preflight && url.pathname.startsWith('/services/oauth2/'))) return true;
    res.writeHead(403).end();
    return false;
  }

  async function token(req: IncomingMessage, res: ServerResponse, generic: boolean): Promise<void> {
    const body = await readBody(req);
    const params = new URLSearchParams(body.toString('utf8'));
    const grant = params.get('grant_type') ?? '(none)';
    stats.tokenRequests++;
    lastTokenRequest = Object.fromEntries(params);
    stats.tokenRequestsByGrant[grant] = (stats.tokenRequestsByGrant[grant] ?? 0) + 1;
    if (tokenDelayMs > 0) await delay(tokenDelayMs);

    const active = takeFault();
    if (
      active !== undefined &&
      active.kind !== 'instance-url' &&
      active.kind !== 'forged-signature'
    )
      return misbehave(active, res, body);

    if (req.method !== 'POST') return oauthError(res, 400, 'invalid_request', 'must use HTTP POST');
    if (!String(req.headers['content-type']).startsWith('application/x-www-form-urlencoded')) {
      return oauthError(res, 400, 'invalid_request', 'unsupported content type');
    }
    if (generic && grant === 'client_credentials') {
      return oauthError(res, 400, 'invalid_grant', 'request not supported on this domain');
    }
    const answer = grants.token(params);
    if (answer.status === 200 && active?.kind === 'instance-url')
      answer.body.instance_url = active.instanceUrl;
    if (answer.status === 200 && active?.kind === 'forged-signature')
      answer.body.signature = randomBytes(32).toString('base64');
    json(res, answer.status, answer.body);
  }

  function issue(
    extra: Record<string, unknown> = {},
    tenant: Tenant = first,
    signingSecret = clientSecret,
  ): {
    accessToken: string;
    body: Record<string, unknown>;
  } {
    const last = tenant.lastIssued;
    let accessToken = options.reuseAccessToken && last && valid.has(last) ? last : undefined;
    if (accessToken === undefined) {
      accessToken = `${tenant.orgId}!${randomBytes(48).toString('base64url')}`;
      valid.set(accessToken, tenant);
      tenant.lastIssued = accessToken;
    }
    stats.tokensIssued++;
    tenant.stats.tokensIssued++;
    const body: Record<string, unknown> = {
      access_token: accessToken,
      instance_url: tenant.instanceUrl(),
      id: `${baseUrl}/id/${tenant.orgId}/${tenant.userId}`,
      token_type: 'Bearer',
      issued_at: String(Date.now()),
      scope: 'api',
      ...extra,
    };
    if (options.community !== undefined) {
      body.sfdc_community_url = options.community.url;
      body.sfdc_community_id = options.community.id;
    }
    if (options.apiInstanceUrl !== undefined) body.api_instance_url = options.apiInstanceUrl;
    if (options.expiresInSeconds !== undefined) body.expires_in = options.expiresInSeconds;
    // As Salesforce signs: base64(HMAC-SHA256(client secret, id + issued_at)).
    body.signature = createHmac('sha256', signingSecret)
      .update(`${body.id}${body.issued_at}`)
      .digest('base64');
    return { accessToken, body };
  }

  function takeFault(): TokenFault | undefined {
    if (fault === undefined) return undefined;
    const current = fault.fault;
    if (--fault.remaining <= 0) fault = undefined;
    return current;
  }

  function misbehave(
    f: Exclude<TokenFault, { kind: 'instance-url' | 'forged-signature' }>,
    res: ServerResponse,
    requestBody: Buffer,
  ): void {
    switch (f.kind) {
      case 'status':
        res.writeHead(f.status, { 'content-type': 'application/json', ...f.headers });
        res.end(f.body ?? '');
        return;
      case 'stall':
        return;
      case 'stall-body':
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write('{"access_token":"');
        return;
      case 'reset':
        res.socket?.destroy();
        return;
      case 'reset-mid-body':
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': '1000' });
        res.write('{"access_token":"00Dpartial');
        setTimeout(() => res.socket?.destroy(), 10);
        return;
      case 'gzip-bomb': {
        const bomb = gzipSync(Buffer.alloc(f.inflatedBytes, 0x20));
        res.writeHead(200, {
          'content-type': 'application/json',
          'content-encoding': 'gzip',
          'content-length': String(bomb.byteLength),
        });
        res.end(bomb);
        return;
      }
      case 'redirect':
        res.writeHead(f.status ?? 302, { location: f.location });
        res.end();
        return;
      case 'malformed-echo':
        // Written past node:http: a control character is not allowed in a header value.
        res.socket?.end(
          Buffer.concat([
            Buffer.from('HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-echo: \x01'),
            requestBody,
            Buffer.from('\r\n\r\n'),
          ]),
        );
        return;
      case 'oversized': {
        const headers: Record<string, string | number> = { 'content-type': 'application/json' };
        if (f.declareLength) headers['content-length'] = f.bytes;
        res.writeHead(200, headers);
        streamFiller(res, f.bytes);
        return;
      }
    }
  }

  async function api(
    req: IncomingMessage,
    res: ServerResponse,
    url: URL,
    instance: string,
  ): Promise<void> {
    const body = await readBody(req);
    // `?delayMs=` on any API path holds that one answer back, to stage interleavings in tests.
    const extraDelayMs = Math.min(Number(url.searchParams.get('delayMs')) || 0, 10_000);
    if (apiDelayMs + extraDelayMs > 0) await delay(apiDelayMs + extraDelayMs);
    // Each API reads the session where Salesforce does: SOAP from the envelope (Authorization is
    // ignored), Bulk API 1.0 from X-SFDC-Session, everything else from the bearer.
    const path = url.pathname;
    const carrier = path.startsWith('/services/Soap/')
      ? 'soap'
      : path.startsWith('/services/async/')
        ? 'bulk'
        : 'bearer';
    const presented = presentedSession(req, carrier, body);
    const record = (status: number) => {
      stats.apiRequests++;
      stats.apiRequestsByStatus[status] = (stats.apiRequestsByStatus[status] ?? 0) + 1;
      if (apiLogLimit > 0)
        log.push({
          method: req.method ?? 'GET',
          path: url.pathname + url.search,
          token: presented,
          status,
        });
      // Trim in blocks, not per request: a long load test must not pay O(n) per request.
      if (log.length > 2 * apiLogLimit) log = log.slice(-apiLogLimit);
    };
    const answer = (status: number, payload: unknown, headers?: Record<string, string>) => {
      record(status);
      json(res, status, payload, headers);
    };
    const xml = (status: number, payload: string) => {
      record(status);
      res.writeHead(status, { 'content-type': 'text/xml;charset=UTF-8' });
      res.end(payload);
    };

    if (url.pathname === '/services/apexrest/echo') {
      const { authorization: _, ...headers } = req.headers;
      echoes.push({
        method: req.method ?? 'GET',
        path: url.pathname + url.search,
        headers,
        token: presented,
        body,
      });
      if (echoes.length > 200) echoes.splice(0, 100);
    }

    // Each API says "bad token" its own way. A token works only at its own org's instance.
    const owner = presented === undefined ? undefined : valid.get(presented);
    const refusal = rejection ?? owner?.rejection;
    const rejected =
      owner === undefined || owner.instanceUrl() !== instance || refusal !== undefined;
    const tenant = owner ?? first;
    if (!rejected) tenant.stats.apiRequests++;
    if (carrier === 'soap') {
      return rejected ? xml(500, SOAP_INVALID_SESSION) : xml(200, SOAP_OK);
    }
    if (carrier === 'bulk') {
      return rejected ? xml(400, BULK_INVALID_SESSION) : xml(200, BULK_JOB);
    }
    const identity = path === USERINFO || IDENTITY_PATH.test(path);
    if (rejected && identity) {
      record(403);
      res.writeHead(403, { 'content-type': 'text/plain;charset=UTF-8' });
      res.end('Bad_OAuth_Token');
      return;
    }
    if (rejected && refusal === 'not-valid-for-rest') {
      return answer(401, [
        {
          message: 'This session is not valid for use with the REST API',
          errorCode: 'INVALID_SESSION_ID',
        },
      ]);
    }
    if (rejected) {
      return answer(401, [
        { message: 'Session expired or invalid', errorCode: 'INVALID_SESSION_ID' },
      ]);
    }
    if (apiFailure !== undefined) {
      const { status } = apiFailure;
      if (--apiFailure.remaining <= 0) apiFailure = undefined;
      return answer(status, [{ message: 'Service unavailable', errorCode: 'SERVER_UNAVAILABLE' }]);
    }

    const ids = IDENTITY_PATH.exec(path);
    if (ids !== null && (ids[1] !== tenant.orgId || ids[2] !== tenant.userId)) {
      // Another user's identity URL: this token does not open it.
      record(403);
      res.writeHead(403, { 'content-type': 'text/plain;charset=UTF-8' });
      res.end('Bad_OAuth_Token');
      return;
    }
    if (ids !== null) {
      return answer(200, {
        id: `${baseUrl}${path}`,
        asserted_user: true,
        user_id: tenant.userId,
        organization_id: tenant.orgId,
        username: tenant.username,
        display_name: 'Admin User',
        urls: { rest: `${baseUrl}/services/data/v{version}/` },
      });
    }
    if (path === USERINFO) {
      return answer(200, {
        sub: `${baseUrl}/id/${tenant.orgId}/${tenant.userId}`,
        user_id: tenant.userId,
        organization_id: tenant.orgId,
        preferred_username: tenant.username,
        name: 'Admin User',
      });
    }
    if (path === '/services/apexrest/echo') {
      const headers = { ...req.headers };
      delete headers.authorization;
      return answer(200, {
        method: req.method,
        path,
        query: url.search,
        headers,
        bodyBase64: body.toString('base64'),
      });
    }
    if (path === '/services/apexrest/redirect') {
      const location = url.searchParams.get('to') ?? '/';
      record(302);
      res.writeHead(302, { location });
      res.end();
      return;
    }
    const data = /^\/services\/data\/v\d+\.\d+(\/.*)?$/.exec(path);
    const resource = data?.[1] ?? '';
    if (req.method === 'GET' && resource === '/limits') {
      return answer(200, {
        DailyApiRequests: { Max: 15000, Remaining: 15000 - stats.apiRequests },
      });
    }
    if (req.method === 'GET' && resource === '/query') {
      return answer(200, {
        totalSize: 1,
        done: true,
        records: [{ attributes: { type: 'Account' }, Id: '001000000000001AAA', Name: 'Acme' }],
      });
    }
    if (req.method === 'POST' && resource === '/sobjects/Account') {
      let record: unknown;
      try {
        record = JSON.parse(body.toString('utf8'));
      } catch {
        return answer(400, [{ message: 'JSON parser error', errorCode: 'JSON_PARSER_ERROR' }]);
      }
      const id = `001${randomUUID().replaceAll('-', '').slice(0, 15)}`;
      accounts.set(id, { ...(record as object), Id: id });
      return answer(201, { id, success: true, errors: [], record });
    }
    const retrieve = /^\/sobjects\/Account\/(\w+)$/.exec(resource);
    if (req.method === 'GET' && retrieve !== null) {
      const found = accounts.get(retrieve[1] as string);
      if (found !== undefined) {
        return answer(200, { attributes: { type: 'Account', url: `${path}` }, ...found });
      }
    }
    if (req.method === 'POST' && resource === '/jobs/ingest') {
      let job: { object?: string; operation?: string } = {};
      try {
        job = JSON.parse(body.toString('utf8'));
      } catch {
        return answer(400, [{ message: 'JSON parser error', errorCode: 'JSON_PARSER_ERROR' }]);
      }
      return answer(200, {
        id: `750${randomUUID().replaceAll('-', '').slice(0, 15)}`,
        object: job.object,
        operation: job.operation,
        state: 'Open',
        contentType: 'CSV',
        apiVersion: Number(/v(\d+\.\d+)/.exec(path)?.[1]),
      });
    }
    return answer(404, [
      { errorCode: 'NOT_FOUND', message: 'The requested resource does not exist' },
    ]);
  }

  baseUrl = await listenOnLoopback(server);
  const generic = serve(() => baseUrl, true);
  const genericLoginUrl = await listenOnLoopback(generic);
  servers.push(generic);
  const pubsub = options.pubsub === true ? await startFakePubSub({ ownerOf, defines }) : undefined;

  const org: FakeOrg = {
    loginUrl: baseUrl,
    instanceUrl: baseUrl,
    genericLoginUrl,
    clientId,
    clientSecret,
    username: users[0] ?? '',
    jwtPrivateKey,
    get lastTokenRequest() {
      return lastTokenRequest;
    },
    get stats() {
      return { ...structuredClone(stats), ...grants.stats };
    },
    get echoes() {
      return [...echoes];
    },
    get apiRequests() {
      return log.slice(-apiLogLimit);
    },
    revokeAllTokens: () => {
      valid.clear();
      // Salesforce ends a revoked session's open streams: the next delivery would, here it is now.
      pubsub?.sweep();
      cometd.sweep();
    },
    issueRefreshToken: () => grants.issueRefreshToken(),
    addTenant: async (o = {}) => {
      // Numbered before any await: tenants added concurrently each get their own ids.
      const n = ++tenantsNumbered;
      let own: string | undefined;
      if (o.ownInstance === true) {
        const instance = serve(() => own as string);
        own = await listenOnLoopback(instance);
        servers.push(instance);
      }
      const tenant: Tenant = {
        orgId: salesforceId('00D', n),
        userId: salesforceId('005', n),
        username: `user${n}@tenant${n}.example`,
        clientId: `3MVG9${randomBytes(24).toString('base64url')}`,
        clientSecret: randomBytes(32).toString('hex'),
        instanceUrl: () => own ?? baseUrl,
        lastIssued: undefined,
        stats: { tokensIssued: 0, apiRequests: 0 },
      };
      tenants.push(tenant);
      tenantsByUser.set(tenant.username, tenant);
      tenantsByClient.set(tenant.clientId, tenant);
      const view: FakeTenant = {
        orgId: tenant.orgId,
        userId: tenant.userId,
        username: tenant.username,
        instanceUrl: tenant.instanceUrl(),
        clientId: tenant.clientId,
        clientSecret: tenant.clientSecret,
        get stats() {
          return { ...tenant.stats };
        },
        issueRefreshToken: () => grants.issueRefreshToken(tenant),
        rejectApiTokens: (mode) => {
          tenant.rejection = mode;
        },
      };
      return redactedView(
        view,
        {
          instanceUrl: view.instanceUrl,
          orgId: view.orgId,
          clientId: view.clientId,
        },
        'FakeTenant',
      );
    },
    isValidRefreshToken: (t) => grants.isValidRefreshToken(t),
    addSubjectToken: (t, type) => grants.addSubjectToken(t, type),
    denyNextAuthorization: (e = 'access_denied') => grants.denyNextAuthorization(e),
    approve: async (authorizeUrl) => {
      // What a browser does: load the approval page, then press "Allow" (the form's POST).
      const page = await fetch(authorizeUrl, { redirect: 'manual' });
      await page.body?.cancel();
      const form = new URLSearchParams(new URL(authorizeUrl).search);
      form.set('decision', 'allow');
      const response =
        page.status === 200
          ? await fetch(`${baseUrl}/services/oauth2/authorize`, {
              method: 'POST',
              body: form,
              redirect: 'manual',
            })
          : page;
      await response.body?.cancel();
      const location = response.headers.get('location');
      if (response.status !== 302 || location === null) {
        throw new Error(`the authorize endpoint answered ${response.status}, not a redirect`);
      }
      return new URL(location);
    },
    isValidToken: (t) => valid.has(t),
    failTokenEndpoint: (f, o) => {
      fault = { fault: f, remaining: o?.times ?? Number.POSITIVE_INFINITY };
    },
    healTokenEndpoint: () => {
      fault = undefined;
    },
    setTokenDelay: (ms) => {
      tokenDelayMs = ms;
    },
    setApiDelay: (ms) => {
      apiDelayMs = ms;
    },
    failApiRequests: (status, o) => {
      const times = o?.times ?? Number.POSITIVE_INFINITY;
      apiFailure = times > 0 ? { status, remaining: times } : undefined;
    },
    rejectApiTokens: (mode) => {
      rejection = mode;
    },
    resetStats: () => {
      stats = emptyStats();
      echoes.length = 0;
      grants.stats.familyRevocations = 0;
      grants.stats.revocations = 0;
      grants.stats.approvalRevocations = 0;
      for (const t of tenants) {
        t.stats.tokensIssued = 0;
        t.stats.apiRequests = 0;
      }
      log = [];
    },
    pubsub,
    streaming: cometd.view,
    close: async () => {
      await Promise.all([...[server, ...servers].map(closeServer), pubsub?.close()]);
    },
  };
  return redactedView(org, { loginUrl: baseUrl, instanceUrl: baseUrl, clientId });
}

/**
 * `org` as tests use it (reads, `in`, `Object.keys`, `{ ...org }` all reach every field, secrets
 * included: it is a test double), but never shown with its secrets in a test failure or a log
 * line: `JSON.stringify` gives `shown`, and `util.inspect` formats a Proxy's target without running
 * its traps, under every option (`customInspect: false`, `showHidden`, `getters`, `showProxy`), and
 * the target holds only `shown`. Plain properties or getters would be listed by those options.
 */
function redactedView<T extends object>(
  org: T,
  shown: Record<string, string>,
  name = 'FakeOrg',
): T {
  const target = {
    ...shown,
    toJSON: () => shown,
    [Symbol.for('nodejs.util.inspect.custom')]: () =>
      `${name} { instanceUrl: '${shown.instanceUrl}' }`,
  };
  return new Proxy(target, {
    get: (_, key) => (key === 'toJSON' ? target.toJSON : Reflect.get(org, key)),
    has: (_, key) => Reflect.has(org, key),
    ownKeys: () => Reflect.ownKeys(org),
    getOwnPropertyDescriptor: (_, key) => {
      const descriptor = Reflect.getOwnPropertyDescriptor(org, key);
      // A Proxy may only report a key its target lacks as configurable.
      return descriptor && { ...descriptor, configurable: true };
    },
  }) as unknown as T;
}

/** The org's approval page: what the user sees after logging in, with an Allow and a Deny button. */
function approvalPage(res: ServerResponse, query: URLSearchParams): void {
  const escapeHtml = (v: string) => v.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  const fields = [...query]
    .map(
      ([name, value]) =>
        `<input type="hidden" name="${escapeHtml(name)}" value="${escapeHtml(value)}">`,
    )
    .join('');
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
  res.end(`<!doctype html><html><head><title>Allow Access?</title></head><body>
<h1>Allow Access?</h1><p>The app <b>${escapeHtml(query.get('client_id') ?? '')}</b> asks for: ${escapeHtml(query.get('scope') ?? 'api')}</p>
<form method="post" action="/services/oauth2/authorize">${fields}
<button type="submit" name="decision" value="allow" id="allow">Allow</button>
<button type="submit" name="decision" value="deny" id="deny">Deny</button></form></body></html>`);
}

function emptyStats(): Omit<
  FakeOrgStats,
  'familyRevocations' | 'revocations' | 'approvalRevocations'
> {
  return {
    tokenRequests: 0,
    tokenRequestsByGrant: {},
    tokensIssued: 0,
    apiRequests: 0,
    apiRequestsByStatus: {},
  };
}

function json(
  res: ServerResponse,
  status: number,
  payload: unknown,
  headers?: Record<string, string>,
): void {
  const body = JSON.stringify(payload);
  res.writeHead(status, { 'content-type': 'application/json;charset=UTF-8', ...headers });
  res.end(body);
}

/** Starts `server` on a free loopback port; answers its `http://127.0.0.1:PORT`. */
async function listenOnLoopback(server: Server): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function oauthError(res: ServerResponse, status: number, error: string, description: string): void {
  json(res, status, { error, error_description: description });
}

/** Reads a request body; refuses more than 8 MiB so a runaway client cannot exhaust the test. */
export async function readBody(req: IncomingMessage, limit = 8 * 1024 * 1024): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).byteLength;
    if (size > limit) throw new Error('request body too large');
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

function streamFiller(res: ServerResponse, bytes: number): void {
  const chunk = Buffer.alloc(16 * 1024, 0x20);
  res.write('{"access_token":"x","instance_url":"x","pad":"');
  let left = bytes;
  const pump = () => {
    while (left > 0) {
      const n = Math.min(left, chunk.byteLength);
      left -= n;
      if (!res.write(chunk.subarray(0, n))) return void res.once('drain', pump);
    }
    res.end('"}');
  };
  res.on('error', () => {});
  pump();
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Closes `server`, cutting keep-alive and stalled connections so tests never wait on them. */
export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
