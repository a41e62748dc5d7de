import type { Connection } from 'jsforce';
import { AuthError, ConfigError, RefreshLoopError } from '../errors.js';
import { optionsObject } from '../internal/options.js';
import { type AuthSession, peekOf } from '../session/auth-session.js';
import type { TokenInfo } from '../token-info.js';
import { type AdapterPolicy, adapterPolicy, reportRetry } from './shared.js';

/**
 * @deprecated A no-op since the refresh window was replaced by a per-request bound: jsforce
 * re-sends a request at most once after a refresh, and persistent rejection is held back by the
 * session's rejection guard.
 */
export const JSFORCE_MAX_REFRESHES = 5;

/** @deprecated A no-op; see {@link JSFORCE_MAX_REFRESHES}. */
export const JSFORCE_REFRESH_WINDOW_MS = 60_000;

/** Also exported from the package root; kept here, where jsforce users first met it. */
export { RefreshLoopError };

/** The Salesforce API version used when none is given. */
export const DEFAULT_API_VERSION = '62.0';

/** Options of {@link jsforceOptions}. */
export interface JsforceOptions {
  /** The API version jsforce uses. @default DEFAULT_API_VERSION */
  version?: string | undefined;
  /**
   * Origins besides the session's instance origin that may receive the bearer, as for the other
   * adapters. A request or redirect to any other origin is sent without the session headers.
   * @default []
   */
  origins?: string[] | undefined;
  /** @deprecated Ignored: each request is re-sent at most once after a refresh. */
  maxRefreshes?: number | undefined;
  /** @deprecated Ignored: each request is re-sent at most once after a refresh. */
  refreshWindowMs?: number | undefined;
  /** @deprecated Ignored: there is no refresh window any more. */
  now?: (() => number) | undefined;
}

/** What {@link jsforceOptions} answers: spread it into `new jsforce.Connection(...)`. */
export interface JsforceConnectionOptions {
  instanceUrl: string;
  accessToken: string;
  version: string;
  refreshFn: (
    conn: Connection,
    callback: (error: Error | null, accessToken?: string, res?: JsforceTokenResponse) => void,
  ) => void;
}

/**
 * What `refreshFn` hands jsforce as `res` (and jsforce emits with its `refresh` event): the token
 * answer in Salesforce's field names, shaped like jsforce's own `TokenResponse`, without the
 * refresh token (the session keeps it). `signature` is empty (the session verified it when it
 * held the client secret; `getTokenInfo()` says whether), and so is any field the answer lacked.
 */
export interface JsforceTokenResponse {
  access_token: string;
  instance_url: string;
  id: string;
  token_type: 'Bearer';
  /** Epoch milliseconds, as a string. */
  issued_at: string;
  scope: string;
  signature: string;
  sfdc_community_url?: string;
  sfdc_community_id?: string;
}

/** jsforce's `conn.userInfo`. */
interface JsforceUserInfo {
  id: string;
  organizationId: string;
  url: string;
}

/** jsforce's request, response and transport, as far as this module touches them. */
interface JsforceRequest {
  url?: unknown;
  method?: string;
  headers?: Record<string, string>;
}
interface JsforceResponse {
  statusCode: number;
  headers: Record<string, string>;
  body: string;
}
type HttpRequest = (
  request: JsforceRequest,
  options?: Record<string, unknown>,
) => PromiseLike<unknown>;
interface JsforceTransport {
  httpRequest: HttpRequest;
}

/** Session headers that never go to another origin. */
const SESSION_HEADERS = new Set(['authorization', 'x-sfdc-session']);

/** Transports already guarded, and the guard each connection's refreshFn installs. */
const guardedTransports = new WeakSet<object>();
const guards = new WeakMap<object, (conn: Connection) => void>();
let listening: Promise<void> | undefined;

/**
 * Listens for jsforce's `connection:new` (jsforce 3 and `@jsforce/jsforce-node`, whichever is
 * installed), so a connection built from {@link jsforceOptions} is guarded from its first request.
 */
function listenForConnections(): Promise<void> {
  listening ??= (async () => {
    for (const name of JSFORCE_PACKAGES) {
      try {
        const module = (await import(name)) as { default?: { default?: unknown } };
        const registry = (module.default?.default ?? module.default) as
          | { on?: (event: string, listener: (conn: Connection) => void) => void }
          | undefined;
        registry?.on?.('connection:new', (conn) => {
          const delegate = (conn as unknown as { _refreshDelegate?: { _refreshFn?: object } })
            ._refreshDelegate;
          const guard =
            delegate?._refreshFn === undefined ? undefined : guards.get(delegate._refreshFn);
          guard?.(conn);
        });
      } catch {
        // Not installed: connections are guarded by jsforceConnection, or from their first refresh.
      }
    }
  })();
  return listening;
}

/**
 * Options for `new jsforce.Connection(...)` backed by `session`: the current token, the instance
 * URL and a `refreshFn`. The `refreshFn` invalidates the exact token jsforce holds, takes a fresh one
 * from the session and updates `conn.instanceUrl`. The connection is guarded (see
 * {@link jsforceConnection}) from its first request when cirrus-auth can see the jsforce package
 * that built it, else from its first refresh: prefer `jsforceConnection`. Under Refresh Token
 * Rotation it is rotation-safe, unlike jsforce's own `oauth2` + `refreshToken` refresh, which drops
 * the rotated token.
 *
 * @example
 * ```ts
 * import jsforce from 'jsforce';
 * const conn = new jsforce.Connection(await jsforceOptions(session));
 * const { records } = await conn.query('SELECT Id FROM Account');
 * ```
 */
export async function jsforceOptions(
  session: AuthSession,
  options: JsforceOptions = {},
): Promise<JsforceConnectionOptions> {
  const o = optionsObject(options);
  const policy = adapterPolicy(session, { origins: o.origins });
  const version = o.version ?? DEFAULT_API_VERSION;
  if (typeof version !== 'string' || !/^\d+\.\d$/.test(version)) {
    throw new ConfigError('version', 'must look like "62.0"');
  }
  // The user the token is for, for conn.userInfo: from the token answer, as jsforce's own login
  // sets it. Its url is the identity URL on the instance, the org's own origin: jsforce's
  // conn.identity() puts the access token into that URL's query.
  let userInfo: JsforceUserInfo | undefined;
  const learn = async (token: string): Promise<TokenInfo | undefined> => {
    const info = await session.getTokenInfo?.().catch(() => undefined);
    if (info === undefined || (await session.getToken().catch(() => undefined)) !== token)
      return info;
    if (info.orgId !== undefined && info.userId !== undefined) {
      userInfo = {
        id: info.userId,
        organizationId: info.orgId,
        url: `${session.instanceUrl}/id/${info.orgId}/${info.userId}`,
      };
    }
    return info;
  };
  const guard = (conn: Connection) => {
    guardConnection(conn, session, policy);
    const c = conn as unknown as { userInfo?: JsforceUserInfo | null };
    if (userInfo !== undefined) c.userInfo = userInfo;
  };

  const refreshFn: JsforceConnectionOptions['refreshFn'] = (conn, callback) => {
    guard(conn);
    const stale = conn.accessToken ?? undefined;
    (async () => {
      if (stale) await session.invalidate(stale);
      const fresh = policy.sendable(await session.getToken());
      if (fresh === stale) throw new RefreshLoopError('same-token');
      conn.instanceUrl = session.instanceUrl;
      const info = await learn(fresh);
      if (userInfo !== undefined)
        (conn as unknown as { userInfo?: JsforceUserInfo }).userInfo = userInfo;
      return { fresh, res: tokenResponseOf(fresh, session.instanceUrl, info) };
    })().then(
      ({ fresh, res }) => {
        reportRetry('jsforce', session.instanceUrl, 0, true);
        callback(null, fresh, res);
      },
      (error: unknown) => {
        reportRetry('jsforce', session.instanceUrl, 0, false);
        callback(error instanceof Error ? error : new AuthError(String(error)));
      },
    );
  };
  guards.set(refreshFn, guard);
  await listenForConnections();

  const accessToken = policy.sendable(await session.getToken());
  await learn(accessToken);
  return {
    instanceUrl: session.instanceUrl,
    accessToken,
    version,
    refreshFn,
  };
}

/** The token answer as jsforce's own refresh would hand it over. */
function tokenResponseOf(
  accessToken: string,
  instanceUrl: string,
  info: TokenInfo | undefined,
): JsforceTokenResponse {
  const res: JsforceTokenResponse = {
    access_token: accessToken,
    instance_url: instanceUrl,
    id: info?.identityUrl ?? '',
    token_type: 'Bearer',
    issued_at: info?.issuedAt === undefined ? '' : String(info.issuedAt),
    scope: info?.scopes.join(' ') ?? '',
    signature: '',
  };
  if (info?.communityUrl !== undefined) res.sfdc_community_url = info.communityUrl;
  if (info?.communityId !== undefined) res.sfdc_community_id = info.communityId;
  return res;
}

/**
 * Wraps a connection's transport, below every jsforce API (REST, SOAP, Bulk, Metadata):
 * - the bearer goes only to the org: a request to another origin (`conn.request('https://…')`,
 *   a redirect from the org to another host) is sent without `Authorization` and `X-SFDC-Session`;
 * - a request rejected again right after jsforce re-sent it with a new token fails with a
 *   {@link RefreshLoopError} instead of a second refresh (jsforce would loop);
 * - an answer that is not an auth failure tells the session its token was accepted;
 * - a request whose header carries the token jsforce holds goes out with the session's current one
 *   when the session has moved on (another client of it had the old one rejected and re-minted),
 *   and the connection takes that token: jsforce would otherwise send the old one, and a
 *   revocation of both would cost the call (the old one rejected, the session's one rejected
 *   on the retry). SOAP envelopes, built from the token before the request reaches the
 *   transport, go as built.
 */
function guardConnection(conn: Connection, session: AuthSession, policy: AdapterPolicy): void {
  const transport = (conn as unknown as { _transport?: JsforceTransport })._transport;
  if (transport === undefined || guardedTransports.has(transport)) return;
  guardedTransports.add(transport);
  const send = transport.httpRequest.bind(transport);
  const sends = new WeakMap<object, number>();
  const peek = peekOf(session);

  transport.httpRequest = (request, options = {}) => {
    const url = typeof request.url === 'string' ? policy.resolve(request.url) : '';
    const api = policy.apiOf(url);
    if (api === undefined) {
      const trail = redirectTrail(request, url, false, policy);
      return send(
        { ...request, headers: withoutSession(request.headers) },
        { ...options, followRedirect: options.followRedirect === false ? false : trail.follow },
      );
    }
    const attempt = (sends.get(request) ?? 0) + 1;
    sends.set(request, attempt);
    // jsforce's SOAP requests carry the session only in the envelope it built from accessToken.
    const carried = sessionOf(request.headers);
    let token = carried ?? conn.accessToken ?? undefined;
    let sent = request;
    const current = carried === undefined ? undefined : peek?.();
    if (
      current !== undefined &&
      current !== carried &&
      carried === conn.accessToken &&
      policy.isSendable(current)
    ) {
      sent = { ...request, headers: withSession(request.headers, current) };
      conn.accessToken = current;
      token = current;
    }
    const trail = redirectTrail(sent, url, true, policy);
    const followRedirect = options.followRedirect === false ? false : trail.follow;
    const pending = send(sent, { ...options, followRedirect });
    const judged = Promise.resolve(pending).then(async (response) => {
      const res = response as JsforceResponse | undefined;
      if (res === undefined || typeof res.statusCode !== 'number' || token === undefined)
        return response;
      const answeredBy = trail.at === url ? '' : trail.at;
      if (!policy.mayBeAuthFailure(res.statusCode, api)) {
        policy.accepted(token, answeredBy || undefined);
        return response;
      }
      const answer = new Response(String(res.body ?? ''), {
        status: res.statusCode < 200 || res.statusCode > 599 ? 500 : res.statusCode,
      });
      if (!(await policy.isAuthFailure(answer, api, answeredBy))) {
        if (res.statusCode !== 401) policy.accepted(token, answeredBy || undefined);
        return response;
      }
      if (attempt < 2) return response;
      // Rejected right after jsforce re-sent it with a new token: tell the session (its rejection
      // guard opens now), and end jsforce's loop.
      await session.invalidate(token).catch(() => {});
      throw new RefreshLoopError('rejected-again');
    });
    // jsforce reads the answer as a StreamPromise: keep its stream, judge its result.
    const StreamPromise = (pending as { constructor?: { create?: unknown } }).constructor;
    const stream = (pending as { stream?: () => unknown }).stream;
    if (typeof StreamPromise?.create === 'function' && typeof stream === 'function') {
      return (
        StreamPromise.create as (
          b: () => { stream: unknown; promise: Promise<unknown> },
        ) => PromiseLike<unknown>
      )(() => ({
        stream: stream.call(pending),
        promise: judged,
      }));
    }
    return judged;
  };
}

/**
 * jsforce's redirect hook for one request: follows each redirect from the URL the last hop came
 * from, with the session headers only while every hop stayed on an org origin (once a hop left,
 * no later hop gets them back). `at` is where the answer came from.
 */
function redirectTrail(
  request: JsforceRequest,
  url: string,
  onOrg: boolean,
  policy: AdapterPolicy,
): { at: string; follow: (location: string) => unknown } {
  let stayed = onOrg;
  const trail = {
    at: url,
    follow: (location: string) => {
      let next: string;
      try {
        next = new URL(location, trail.at || undefined).href;
      } catch {
        return undefined;
      }
      trail.at = next;
      stayed &&= policy.isOrgUrl(next);
      return {
        method: 'GET',
        url: next,
        headers: stayed ? request.headers : withoutSession(request.headers),
      };
    },
  };
  return trail;
}

function withoutSession(headers: Record<string, string> | undefined): Record<string, string> {
  const kept: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers ?? {})) {
    if (!SESSION_HEADERS.has(name.toLowerCase())) kept[name] = value;
  }
  return kept;
}

/** `headers` with the session header that carried a token carrying `token` instead. */
function withSession(
  headers: Record<string, string> | undefined,
  token: string,
): Record<string, string> {
  const swapped: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers ?? {})) {
    const lower = name.toLowerCase();
    swapped[name] =
      lower === 'authorization' && value.startsWith('Bearer ')
        ? `Bearer ${token}`
        : lower === 'x-sfdc-session'
          ? token
          : value;
  }
  return swapped;
}

/** The token a jsforce request carries (`Authorization: Bearer`, or `X-SFDC-Session`). */
function sessionOf(headers: Record<string, string> | undefined): string | undefined {
  for (const [name, value] of Object.entries(headers ?? {})) {
    const lower = name.toLowerCase();
    if (lower === 'authorization' && value.startsWith('Bearer ')) return value.slice(7);
    if (lower === 'x-sfdc-session') return value;
  }
  return undefined;
}

/** Options of {@link jsforceConnection}. */
export interface JsforceConnectionFactoryOptions<C = Connection> extends JsforceOptions {
  /**
   * The jsforce `Connection` class: jsforce 3's or `@jsforce/jsforce-node`'s (what
   * `@salesforce/core` uses); the connection answered is of its type.
   * @default the installed `jsforce`'s, else `@jsforce/jsforce-node`'s
   */
  // `never`: any jsforce's constructor fits, whatever it calls its options type.
  Connection?: (new (options: never) => C) | undefined;
}

/** The packages a `Connection` class is looked for in, in order. */
const JSFORCE_PACKAGES = ['jsforce', '@jsforce/jsforce-node'] as const;

/** The installed jsforce's `Connection` class, or a ConfigError saying to pass one. */
async function installedConnection(): Promise<new (options: JsforceConnectionOptions) => unknown> {
  for (const name of JSFORCE_PACKAGES) {
    try {
      const module = (await import(name)) as {
        default?: { Connection?: unknown; default?: { Connection?: unknown } };
        Connection?: unknown;
      };
      const found =
        module.Connection ?? module.default?.Connection ?? module.default?.default?.Connection;
      if (typeof found === 'function')
        return found as new (
          options: JsforceConnectionOptions,
        ) => unknown;
    } catch {
      // Not installed: try the next one.
    }
  }
  throw new ConfigError(
    'Connection',
    'is required: neither jsforce nor @jsforce/jsforce-node is installed; pass the Connection class of the one you use',
  );
}

/**
 * A ready jsforce `Connection` backed by `session`: `jsforceOptions` in one line, guarded from
 * its first request: the bearer goes only to the org's origins (a foreign absolute URL or a
 * cross-origin redirect is sent without it), and a request is re-sent at most once after a refresh.
 *
 * @example
 * ```ts
 * const conn = await jsforceConnection(fromEnv());
 * ```
 */
export function jsforceConnection(
  session: AuthSession,
  options?: JsforceConnectionFactoryOptions & { Connection?: undefined },
): Promise<Connection>;
/** With a `Connection` class of your own (`@jsforce/jsforce-node`'s): a connection of its type. */
export function jsforceConnection<C>(
  session: AuthSession,
  options: JsforceConnectionFactoryOptions<C> & { Connection: new (options: never) => C },
): Promise<C>;
export async function jsforceConnection<C>(
  session: AuthSession,
  options: JsforceConnectionFactoryOptions<C> = {},
): Promise<C> {
  const { Connection: Ctor, ...rest } = optionsObject(options);
  if (Ctor !== undefined && typeof Ctor !== 'function') {
    throw new ConfigError('Connection', 'must be a jsforce Connection class');
  }
  const Connection = (Ctor ?? (await installedConnection())) as new (
    options: JsforceConnectionOptions,
  ) => C;
  const connectionOptions = await jsforceOptions(session, rest);
  const conn = new Connection(connectionOptions);
  // Guarded here too, whichever jsforce package `Connection` came from.
  (guards.get(connectionOptions.refreshFn) as (conn: Connection) => void)(
    conn as unknown as Connection,
  );
  return conn;
}
