import { AuthError, ConfigError } from '../errors.js';
import { raceAbort } from '../internal/abort.js';
import { concat, readUpTo } from '../internal/bytes.js';
import { optionalFunction } from '../internal/options.js';
import { utf8Length } from '../internal/runtime.js';
import { isHeaderSafeToken } from '../internal/token-text.js';
import { normaliseBaseUrl } from '../internal/url.js';
import type { AuthSession, TenantSessions } from '../session/auth-session.js';
import { tenantSessions } from '../session/auth-session.js';
import { publish, type RetryEvent } from '../session/diagnostics.js';

/** Options every adapter (fetch, axios, ky) accepts. */
export interface AdapterOptions {
  /**
   * Origins besides the session's instance origin that receive the bearer token, for example a
   * second My Domain host or `https://acme.my.site.com`. Plain http only for loopback.
   * @default []
   */
  origins?: string[] | undefined;
  /**
   * Decides whether a response from an org origin means "the token was rejected": the adapter then
   * invalidates the token it sent and retries once with a new one. It gets its own copy of the
   * response, so reading the body does not consume the caller's.
   * @default by path: a 401 from an org origin (except Salesforce's two 401s a new token cannot
   * cure), a SOAP 500 `INVALID_SESSION_ID` fault on `/services/Soap/`, a Bulk API 1.0 400
   * `InvalidSessionId` on `/services/async/`, a 403 `Bad_OAuth_Token` from the identity endpoints
   */
  isAuthFailure?: ((response: Response) => boolean | Promise<boolean>) | undefined;
  /**
   * fetch and ky: how much of a one-shot stream body (a `ReadableStream`, an async iterable, a
   * `Request` carrying a body) is buffered so it can be replayed after an auth failure. A larger
   * body is streamed once and its 401 returned untried. axios has serialised bodies already and
   * sends a Node stream body once, untried on 401.
   * @default MAX_REPLAY_BODY_BYTES (1 MiB)
   */
  maxReplayBodyBytes?: number | undefined;
}

/** Default for `maxReplayBodyBytes`. */
export const MAX_REPLAY_BODY_BYTES = 1024 * 1024;

/**
 * 401 answers that a new token does not cure: retrying them only burns a login.
 * @see docs/salesforce.md "Rejections a new token does not cure"
 */
export const NON_CURABLE_401_MESSAGES: readonly string[] = [
  'This session is not valid for use with the REST API',
  'Connected app is not attached to Agent',
];

/**
 * OAuth endpoints authenticate with client credentials, never with a bearer: requests to them pass
 * through untouched. Without this, a session whose token request goes through a wrapped global
 * fetch (the login URL is often the instance URL) would wait for its own token.
 */
const OAUTH_ENDPOINT = /\/services\/oauth2\/(token|revoke|introspect|authorize)\/?$/i;

/**
 * Which Salesforce API a request goes to: each reads the session in its own place and says "bad
 * token" its own way.
 * - `rest`: REST, Apex REST, Composite, GraphQL, Bulk 2.0: `Authorization`, 401.
 * - `soap`: `/services/Soap/` (Partner, Enterprise, Metadata, Tooling, Apex): the envelope's
 *   `<sessionId>`, 500 `INVALID_SESSION_ID` fault.
 * - `bulk`: Bulk API 1.0, `/services/async/`: `X-SFDC-Session`, 400 `InvalidSessionId`.
 * - `identity`: `/services/oauth2/userinfo` and the identity URL `/id/{orgId}/{userId}`:
 *   `Authorization`, 403 `Bad_OAuth_Token`.
 */
export type OrgApi = 'rest' | 'soap' | 'bulk' | 'identity';

/** How much of an error body the failure predicates read. */
export const DETECTION_PEEK_BYTES = 16 * 1024;

/**
 * How long the failure predicates wait for an error body. A body that has not arrived by then (or
 * before the caller's signal aborts) is judged on its status alone.
 */
export const DETECTION_PEEK_TIMEOUT_MS = 1_000;

/** What an adapter needs from its options, validated once when the adapter is created. */
export interface AdapterPolicy {
  readonly instanceUrl: string;
  readonly maxReplayBodyBytes: number;
  /**
   * The org API an absolute URL belongs to, or `undefined` when the bearer must not go there
   * (another origin, or an OAuth endpoint).
   */
  apiOf(url: string): OrgApi | undefined;
  /** Whether the bearer may go to this absolute URL: an org origin, and not an OAuth endpoint. */
  isOrgUrl(url: string): boolean;
  /** Resolves a relative path against the instance URL; absolute URLs are returned unchanged. */
  resolve(input: string): string;
  /**
   * Runs the configured or default detection on a copy of `response`, which came from `answeredBy`
   * (the URL that answered, after any redirect). Reading the body is bounded by
   * {@link DETECTION_PEEK_TIMEOUT_MS} and by `signal`.
   */
  isAuthFailure(
    response: Response,
    api: OrgApi,
    answeredBy: string,
    signal?: AbortSignal | undefined,
  ): Promise<boolean>;
  /** False when a response with this status cannot be an auth failure: no need to look closer. */
  mayBeAuthFailure(status: number, api: OrgApi): boolean;
  /**
   * Tells the session that `token` was accepted (a request with it got an answer that is not an
   * auth failure): the session's rejection guard needs it. `answeredBy` is the URL
   * that answered when a redirect led elsewhere: another origin's answer proves nothing.
   */
  accepted(token: string, answeredBy?: string | Response | undefined): void;
  /**
   * After the retry: confirms `token` if the org accepted it, and reports it rejected if not, to a
   * session that keeps a rejection guard (one with `confirm`), so the guard opens now rather than
   * on the next call. Never throws.
   */
  settleRetry(
    token: string,
    response: Response,
    api: OrgApi,
    answeredBy: string,
    signal?: AbortSignal | undefined,
  ): Promise<void>;
  /**
   * Returns `token` if an HTTP header can carry it; else throws an `AuthError` that does not
   * quote it (the runtime's own header error would). Checked once per token.
   */
  sendable(token: string): string;
  /** Whether an HTTP header can carry `token`, as {@link sendable} checks it, without throwing. */
  isSendable(token: string): boolean;
  /**
   * The retry-once decision, for a first answer that {@link mayBeAuthFailure} (the adapter handles
   * the common case, an answer that cannot be one, inline). Answers the token to send the one
   * retry with, or `undefined` for "hand the answer back":
   * - not an auth failure (by the API's rule or `isAuthFailure`): the token is confirmed, unless
   *   the answer is a 401 a new token does not cure;
   * - an auth failure: exactly `sent` is invalidated (compare-and-swap), and a fresh token taken
   *   when the request can be sent again (`replayable`); the session handing back `sent` itself
   *   (a new token does not cure this, or its rejection guard holds minting back) means no retry.
   * Publishes the decision on `cirrus-auth:retry`. `wait` bounds each wait (by default by
   * `signal`); `abandon` runs when a wait fails, before the error is thrown on.
   */
  decideRetry(
    sent: string,
    response: Response,
    api: OrgApi,
    answeredBy: string,
    how: RetryHow,
  ): Promise<string | undefined>;
}

/** How one adapter waits and cleans up during {@link AdapterPolicy.decideRetry}. */
export interface RetryHow {
  readonly adapter: RetryEvent['adapter'];
  readonly signal?: AbortSignal | undefined;
  /** Whether the request can be sent a second time (a one-shot body cannot). */
  readonly replayable: boolean;
  /** Bounds a wait on the session (axios's cancellation, say). @default raceAbort with `signal` */
  readonly wait?: (<T>(promise: Promise<T>) => Promise<T>) | undefined;
  /** Releases the first answer when a wait fails (its body, a stream). */
  readonly abandon?: (() => void) | undefined;
}

/** Validates adapter options against `session`; throws `ConfigError` naming the bad option. */
export function adapterPolicy(session: AuthSession, options: AdapterOptions): AdapterPolicy {
  if (
    typeof session !== 'object' ||
    session === null ||
    typeof session.getToken !== 'function' ||
    typeof session.invalidate !== 'function'
  ) {
    throw new ConfigError('session', 'must implement AuthSession');
  }
  const instanceUrl = normaliseBaseUrl('instanceUrl', session.instanceUrl);
  if (options.origins !== undefined && !Array.isArray(options.origins)) {
    throw new ConfigError('origins', 'must be an array of URLs');
  }
  const origins = new Set([new URL(instanceUrl).origin]);
  for (const origin of options.origins ?? []) {
    origins.add(new URL(normaliseBaseUrl('origins', origin)).origin);
  }
  const custom = optionalFunction('isAuthFailure', options.isAuthFailure);
  const maxReplayBodyBytes = options.maxReplayBodyBytes ?? MAX_REPLAY_BODY_BYTES;
  if (!Number.isSafeInteger(maxReplayBodyBytes) || maxReplayBodyBytes < 0) {
    throw new ConfigError('maxReplayBodyBytes', 'must be a whole number of bytes, 0 or more');
  }

  const prefixes = [...origins].map((origin) => `${origin}/`);
  // The commonest request in one expression (a builtin call costs what ten lines of checks do):
  // REST under /services/data/ on an org origin, with a path no URL parser would rewrite and no
  // "oauth2" in it (the OAuth endpoints and userinfo each have one).
  const plainRest = new RegExp(
    `^(?:${[...origins].map((o) => o.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')).join('|')})` +
      '(?=\\/services\\/data\\/)(?![^?#]*(?:\\/\\.|\\\\|%|\\s|[oO][aA][uU][tT][hH]2))',
  );
  const classify = (url: string): OrgApi | undefined => {
    if (plainRest.test(url)) return 'rest';
    // Fast path for the common absolute URL of an org origin: a prefix check and the path, as long
    // as the path has nothing a URL parser would rewrite (dot segments, backslashes, percent
    // escapes, white space).
    const prefix = prefixes.find((p) => url.startsWith(p));
    if (prefix !== undefined) {
      const start = prefix.length - 1;
      let end = url.indexOf('?', start);
      const hash = url.indexOf('#', start);
      if (hash !== -1 && (end === -1 || hash < end)) end = hash;
      const path = end === -1 ? url.slice(start) : url.slice(start, end);
      if (!UNSAFE_PATH.test(path)) return apiOfPath(path);
    }
    try {
      const parsed = new URL(url);
      return origins.has(parsed.origin) ? apiOfPath(parsed.pathname) : undefined;
    } catch {
      return undefined;
    }
  };
  // The answer is a function of the URL alone, and working it out costs about 2,500 instructions
  // (each string builtin or expression a few hundred): the last URL's answer is kept, which a
  // repeated URL gets for one comparison and a new one pays about 400 instructions for. (A Map of
  // the last few dozen saved as much on a hit and cost 2,200 on a miss: a new record id or query
  // in each URL is common.)
  let lastUrl: string | undefined;
  let lastApi: OrgApi | undefined;
  const apiOf = (url: string): OrgApi | undefined => {
    if (url === lastUrl) return lastApi;
    const api = classify(url);
    lastUrl = url;
    lastApi = api;
    return api;
  };
  let checked: string | undefined;
  const confirms = typeof session.confirm === 'function';
  const confirm = confirms ? (session.confirm as (token: string) => void).bind(session) : () => {};

  return {
    instanceUrl,
    maxReplayBodyBytes,
    apiOf,
    isOrgUrl: (url) => apiOf(url) !== undefined,
    resolve: (input) => resolveAgainst(instanceUrl, input),
    mayBeAuthFailure: (status, api) =>
      custom !== undefined || status === 401 || status === FAILURE_STATUS[api],
    isSendable(token) {
      if (token === checked) return true;
      if (!isHeaderSafeToken(token)) return false;
      checked = token;
      return true;
    },
    sendable(token) {
      if (!this.isSendable(token)) {
        throw new AuthError('The session handed out a token no HTTP header can carry');
      }
      return token;
    },
    accepted(token, answeredBy) {
      if (!confirms) return;
      const by =
        typeof answeredBy === 'object'
          ? answeredBy.redirected
            ? answeredBy.url
            : undefined
          : answeredBy;
      if (by !== undefined && !isOrgOrigin(by, origins)) return;
      // The session keeps the flag per token (one comparison per call, no allocation); a token
      // rejected since is confirmed anew.
      confirm(token);
    },
    async settleRetry(token, response, api, answeredBy, signal) {
      try {
        const failed =
          (custom !== undefined ||
            response.status === 401 ||
            response.status === FAILURE_STATUS[api]) &&
          (await this.isAuthFailure(response, api, answeredBy, signal));
        if (!failed) {
          if (response.status !== 401) this.accepted(token, answeredBy);
        } else if (typeof session.confirm === 'function') {
          await session.invalidate(token);
        }
      } catch {
        // The caller gets the answer whatever the bookkeeping did.
      }
    },
    async decideRetry(sent, response, api, answeredBy, how) {
      if (!(await this.isAuthFailure(response, api, answeredBy, how.signal))) {
        if (response.status !== 401) this.accepted(sent, answeredBy);
        return undefined;
      }
      const wait = how.wait ?? (<T>(promise: Promise<T>) => raceAbort(promise, how.signal));
      let fresh: string;
      try {
        await wait(session.invalidate(sent));
        // A body that cannot be replayed ends here: the stale token is gone, the rejection goes back.
        fresh = how.replayable
          ? this.sendable(await wait(session.getToken({ signal: how.signal })))
          : sent;
      } catch (error) {
        how.abandon?.();
        throw error;
      }
      // The same token again means a new token does not cure this (or the session's rejection
      // guard holds minting back): surface the rejection rather than burn a retry.
      reportRetry(how.adapter, instanceUrl, response.status, fresh !== sent);
      return fresh === sent ? undefined : fresh;
    },
    async isAuthFailure(response, api, answeredBy, signal) {
      // A redirect may have led elsewhere; a rejection from a host we sent no token to is not ours.
      if (answeredBy !== '' && !isOrgOrigin(answeredBy, origins)) return false;
      if (custom !== undefined) {
        const copy = response.clone();
        try {
          return (await custom(copy)) === true;
        } finally {
          // Stop the copy from buffering whatever the predicate did not read.
          copy.body?.cancel().catch(() => {});
        }
      }
      return isApiAuthFailure(response, api, signal);
    },
  };
}

/** Path characters a URL parser may rewrite: such a path is judged on the parsed URL. */
const UNSAFE_PATH = /\/\.|\\|%|\s/;

/** The status each API answers a bad token with, besides a 401. */
const FAILURE_STATUS: Record<OrgApi, number> = { rest: 401, soap: 500, bulk: 400, identity: 403 };

/**
 * The org API a path on an org origin belongs to, or `undefined` for an OAuth endpoint. A site
 * path prefix (`/portal/services/...` on an Experience Cloud site) is allowed.
 */
export function apiOfPath(path: string): OrgApi | undefined {
  if (OAUTH_ENDPOINT.test(path)) return undefined;
  const at = path.indexOf('/services/');
  if (at !== -1) {
    const from = at + '/services/'.length;
    if (path.startsWith('Soap/', from)) return 'soap';
    if (path.startsWith('async/', from)) return 'bulk';
    return USERINFO.test(path) ? 'identity' : 'rest';
  }
  return IDENTITY_URL.test(path) ? 'identity' : 'rest';
}

const USERINFO = /\/services\/oauth2\/userinfo\/?$/i;
/** The identity URL, `/id/{orgId}/{userId}`. */
const IDENTITY_URL = /\/id\/00D\w{12,15}\/005\w{12,15}\/?$/;

function isOrgOrigin(url: string, origins: ReadonlySet<string>): boolean {
  try {
    return origins.has(new URL(url).origin);
  } catch {
    return false;
  }
}

/**
 * The default detection for a response from `api`: a 401 anywhere (but Salesforce's
 * {@link NON_CURABLE_401_MESSAGES}), a SOAP 500 `INVALID_SESSION_ID` fault, a Bulk API 1.0 400
 * `InvalidSessionId`, an identity endpoint's 403 `Bad_OAuth_Token`. A body that has not arrived
 * within {@link DETECTION_PEEK_TIMEOUT_MS} is judged on the status alone (a 401 is a failure).
 */
async function isApiAuthFailure(
  response: Response,
  api: OrgApi,
  signal: AbortSignal | undefined,
): Promise<boolean> {
  if (response.status === 401) return isRestAuthFailure(response, signal);
  if (response.status !== FAILURE_STATUS[api]) return false;
  return matchesFailureBody(api, await peekText(response, signal));
}

function matchesFailureBody(api: OrgApi, text: string): boolean {
  switch (api) {
    case 'soap':
      return text.includes('INVALID_SESSION_ID');
    case 'bulk':
      return BULK_INVALID_SESSION.test(text);
    case 'identity':
      return text.includes('Bad_OAuth_Token');
    case 'rest':
      return false;
  }
}

/** Bulk API 1.0 says it in XML or, for JSON jobs, in JSON. */
const BULK_INVALID_SESSION =
  /<exceptionCode>\s*InvalidSessionId\s*<\/exceptionCode>|"exceptionCode"\s*:\s*"InvalidSessionId"/;

/**
 * A 401 (REST, Bulk 2.0, Connect, Apex REST) whose body is not one of Salesforce's
 * {@link NON_CURABLE_401_MESSAGES}. Reads at most 16 KiB of a copy of the body, waiting at most
 * {@link DETECTION_PEEK_TIMEOUT_MS} for it.
 */
export async function isRestAuthFailure(
  response: Response,
  signal?: AbortSignal | undefined,
): Promise<boolean> {
  if (response.status !== 401) return false;
  const text = await peekText(response, signal);
  return !NON_CURABLE_401_MESSAGES.some((message) => text.includes(message));
}

/**
 * An `isAuthFailure` that recognises every Salesforce API's "bad token" whatever the path, for
 * custom setups (a proxy that rewrites paths, say): {@link isRestAuthFailure}, a SOAP fault (HTTP
 * 500 carrying `INVALID_SESSION_ID`), a Bulk API 1.0 error (HTTP 400 carrying `InvalidSessionId`)
 * and an identity endpoint's 403 `Bad_OAuth_Token`. The adapters' default detection already
 * covers these by path. Reads at most 16 KiB of a copy of the body; the caller's body is untouched.
 * @see https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_calls_concepts_core_data_objects.htm
 * @example
 * ```ts
 * const sfFetch = authFetch(session, { isAuthFailure: isSalesforceAuthFailure });
 * ```
 */
export async function isSalesforceAuthFailure(response: Response): Promise<boolean> {
  if (response.status === 401) return isRestAuthFailure(response);
  const api = (Object.keys(FAILURE_STATUS) as OrgApi[]).find(
    (name) => name !== 'rest' && FAILURE_STATUS[name] === response.status,
  );
  return api !== undefined && matchesFailureBody(api, await peekText(response));
}

/**
 * Reads up to {@link DETECTION_PEEK_BYTES} of a copy of the body, leaving the caller's body
 * untouched. Stops at {@link DETECTION_PEEK_TIMEOUT_MS} or when `signal` aborts, with what it has.
 */
async function peekText(response: Response, signal?: AbortSignal | undefined): Promise<string> {
  const body = response.clone().body;
  if (body === null) return '';
  const reader = body.getReader();
  const bound = AbortSignal.timeout(DETECTION_PEEK_TIMEOUT_MS);
  const stop = signal === undefined ? bound : AbortSignal.any([bound, signal]);
  try {
    const { chunks, size } = await readUpTo(reader, DETECTION_PEEK_BYTES, stop);
    return new TextDecoder().decode(concat(chunks, size));
  } catch {
    // A body that fails to read, or does not arrive in time, is judged on its status alone; the
    // caller sees the failure itself.
    return '';
  } finally {
    reader.cancel().catch(() => {});
  }
}

/**
 * Resolves `input` against the instance URL when it is relative. A path starting with `/` is
 * appended to the instance URL (keeping an Experience Cloud site path); absolute URLs pass as is.
 */
function resolveAgainst(instanceUrl: string, input: string): string {
  if (input.startsWith('/') && !input.startsWith('//')) return instanceUrl + input;
  if (input.startsWith('https://') || input.startsWith('http://') || URL.canParse(input))
    return input;
  if (input.startsWith('//')) return new URL(input, instanceUrl).href;
  return input.startsWith('/') ? instanceUrl + input : `${instanceUrl}/${input}`;
}

/** The `X-SFDC-Session` header, which Bulk API 1.0 reads the session from. */
export const BULK_SESSION_HEADER = 'x-sfdc-session';

/** A SOAP envelope's Header, with any namespace prefix. */
const SOAP_HEADER = /<((?:[\w.-]+:)?Header)(?:\s(?:[^>"']|"[^"]*"|'[^']*')*)?>([\s\S]*?)<\/\1\s*>/;

/**
 * A `<sessionId>` element, with any namespace prefix: empty, self-closing or with text (not
 * CDATA or comments: those are left alone). Attribute values may hold `>`.
 */
const SOAP_SESSION_ID =
  /<((?:[\w.-]+:)?sessionId)(\s(?:[^>"'/]|"[^"]*"|'[^']*')*)?(?:\/>|>[^<]*<\/\1\s*>)/g;

/** An `xsi:nil` attribute: a session written into the element must not stay "nil". */
const NIL_ATTRIBUTE = /\s+(?:[\w.-]+:)?nil\s*=\s*(?:"[^"]*"|'[^']*')/g;

/**
 * Writes `token` into a SOAP envelope's `<sessionId>` elements in its Header (any namespace
 * prefix, any placeholder), where the SOAP APIs read the session. Answers `undefined` when the
 * envelope has no such element there: the session does not travel in it, and its faults are not
 * this adapter's to judge.
 */
export function withSoapSession(envelope: string, token: string): string | undefined {
  if (!envelope.includes('essionId')) return undefined;
  const header = SOAP_HEADER.exec(envelope);
  if (header === null) return undefined;
  const inner = header[2] as string;
  const escaped = token.replace(/[&<>]/g, (c) =>
    c === '&' ? '&amp;' : c === '<' ? '&lt;' : '&gt;',
  );
  let found = false;
  const rewritten = inner.replace(
    SOAP_SESSION_ID,
    (_match, name: string, attributes: string | undefined) => {
      found = true;
      return `<${name}${(attributes ?? '').replace(NIL_ATTRIBUTE, '')}>${escaped}</${name}>`;
    },
  );
  if (!found) return undefined;
  const at = header.index + header[0].indexOf(inner, header[0].indexOf('>') + 1);
  return envelope.slice(0, at) + rewritten + envelope.slice(at + inner.length);
}

const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true });

/** {@link withSoapSession} over UTF-8 bytes; `undefined` for bytes that are not such an envelope. */
export function withSoapSessionBytes(
  body: Uint8Array,
  token: string,
): Uint8Array<ArrayBuffer> | undefined {
  let text: string;
  try {
    text = STRICT_UTF8.decode(body);
  } catch {
    return undefined;
  }
  const rewritten = withSoapSession(text, token);
  return rewritten === undefined ? undefined : new TextEncoder().encode(rewritten);
}

/**
 * The mark on requests a cirrus-auth adapter built for the org, with its bearer: any cirrus-auth
 * `fetch` layer below (a global one, say) passes them on untouched, so a call is authenticated and
 * retried once, by the outermost owner. A non-enumerable property, not a WeakSet: a weak set's
 * entries cost the garbage collector per request.
 */
const OWNED = Symbol('cirrus-auth.owned');

/**
 * Marks a Request (or a fetch init) as built and authenticated by a cirrus-auth adapter. A plain
 * symbol-keyed property: V8 adds it through a cached transition, where `Object.defineProperty`
 * takes a runtime call on every request (1,400 instructions a ky call, Valgrind-counted).
 */
export function own<T extends object>(request: T): T {
  (request as { [OWNED]?: true })[OWNED] = true;
  return request;
}

/**
 * A fetch init carrying `headers`, marked as {@link own} marks one, built as one object literal:
 * the hot path's, where `Object.defineProperty` on a fresh object costs more than the rest of it.
 */
export function ownedInit(headers: Record<string, string>): RequestInit {
  return { headers, [OWNED]: true } as RequestInit;
}

/** Whether a cirrus-auth adapter built this Request (or init). */
export function isOwned(request: object): boolean {
  return (request as { [OWNED]?: unknown })[OWNED] === true;
}

/**
 * A `fetch` that marks every Request it sends as {@link own}ed, for a client that builds its
 * Requests itself (axios's fetch adapter). One per underlying fetch: axios caches per function.
 */
export function owningFetch(inner: typeof fetch | undefined): typeof fetch {
  const key = inner ?? DEFAULT_FETCH_KEY;
  let wrapped = owningFetches.get(key);
  if (wrapped === undefined) {
    wrapped = (input, init) => {
      const send = inner ?? globalThis.fetch;
      if (input instanceof Request && init === undefined) return send(own(input));
      return send(input, own({ ...init }));
    };
    owningFetches.set(key, wrapped);
  }
  return wrapped;
}
const DEFAULT_FETCH_KEY = {};
const owningFetches = new WeakMap<object, typeof fetch>();

/** Publishes an adapter's decision after an auth failure on the `cirrus-auth:retry` channel. */
export function reportRetry(
  adapter: RetryEvent['adapter'],
  instanceUrl: string,
  status: number,
  retried: boolean,
): void {
  publish('retry', () => ({ adapter, instanceUrl, status, retried }));
}

/**
 * A fetch `Headers` of a Node-style header record (got's, undici's), for the shared detection:
 * several values become several entries; a header fetch's `Headers` refuses (a forbidden name) is
 * left out, as detection never needs one.
 */
export function fetchHeaders(headers: Record<string, string | string[] | undefined>): Headers {
  const out = new Headers();
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    for (const one of Array.isArray(value) ? value : [value]) {
      try {
        out.append(name, one);
      } catch {
        // refused by Headers: not needed to judge the answer
      }
    }
  }
  return out;
}

/** The size of a FormData's parts, without reading any file: strings as UTF-8 plus Blob sizes. */
export function formSize(form: FormData): number {
  let size = 0;
  for (const [name, value] of form) {
    size += utf8Length(name) + (typeof value === 'string' ? utf8Length(value) : value.size);
  }
  return size;
}

/**
 * For an adapter over a SessionPool: the adapter `build` makes for each tenant's session, made once
 * per session and found without a promise while the session is open. Bearer rules are then the
 * tenant's own: a tenant's token goes only to its own instance (and `origins`).
 */
export function perTenant<T>(
  pool: TenantSessions,
  build: (session: AuthSession) => T,
): (tenant: string, signal?: AbortSignal) => T | Promise<T> {
  const built = new WeakMap<AuthSession, T>();
  const of = (session: AuthSession): T => {
    let adapter = built.get(session);
    if (adapter === undefined) {
      adapter = build(session);
      built.set(session, adapter);
    }
    return adapter;
  };
  return (tenant, signal) => {
    if (typeof tenant !== 'string' || tenant === '') {
      return Promise.reject(new ConfigError('tenant', 'must answer a non-empty string'));
    }
    const session = pool[tenantSessions](tenant, signal);
    return session instanceof Promise ? session.then(of) : of(session);
  };
}

/**
 * Validates the options of an adapter over a pool when it is made, not at a tenant's first
 * request: the `tenant` function it requires, and the options each tenant's adapter will get
 * (checked by the same policy, on a session that is never asked for a token).
 */
export function tenantOption<T extends (...args: never[]) => unknown>(
  value: T | undefined,
  shared: AdapterOptions,
): T {
  if (typeof value !== 'function') {
    throw new ConfigError(
      'tenant',
      'is required with a SessionPool: a function answering the tenant key',
    );
  }
  adapterPolicy(VALIDATION_SESSION, shared);
  return value;
}

const VALIDATION_SESSION: AuthSession = {
  instanceUrl: 'https://validation.invalid',
  getToken: () => Promise.reject(new ConfigError('tenant', 'no session')),
  invalidate: async () => {},
};
