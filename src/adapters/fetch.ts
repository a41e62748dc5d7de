import { ConfigError } from '../errors.js';
import { bufferUpTo } from '../internal/bytes.js';
import { optionalFunction, optionsObject } from '../internal/options.js';
import {
  type AuthSession,
  isTenantSessions,
  peekOf,
  type TenantSessions,
} from '../session/auth-session.js';
import {
  type AdapterOptions,
  adapterPolicy,
  BULK_SESSION_HEADER,
  formSize,
  isOwned,
  type OrgApi,
  own,
  ownedInit,
  perTenant,
  tenantOption,
  withSoapSession,
  withSoapSessionBytes,
} from './shared.js';

/**
 * Any fetch-shaped function: the global `fetch`, or one whose own `Request`/`Response` types differ
 * from the DOM's (`undici.fetch` from the undici package, node-fetch), taken without a cast. It is
 * called with the arguments a fetch takes and its answer used as a fetch `Response`.
 */
export type FetchLike = typeof fetch | ((input: never, init?: never) => Promise<unknown>);

/** Options of {@link authFetch}. */
export interface AuthFetchOptions extends AdapterOptions {
  /**
   * The `fetch` that sends the requests (`undici.fetch` works as it is).
   * @default globalThis.fetch (looked up on each call)
   */
  fetch?: FetchLike | undefined;
}

/**
 * What a pooled adapter's `tenant` function sees of a request: its URL as given (relative paths
 * are resolved against the tenant's instance afterwards), method and headers.
 */
export interface TenantRequest {
  readonly url: string;
  readonly method: string;
  readonly headers: Headers;
}

/** Options of {@link authFetch} over a SessionPool: which tenant a request is for. */
export interface PooledFetchOptions extends AuthFetchOptions {
  /**
   * The tenant key of a request (a header, a path segment, or your request context's
   * AsyncLocalStorage): its session authenticates it, under its own bearer rules.
   */
  tenant: (request: TenantRequest) => string | Promise<string>;
}

/**
 * Wraps `fetch` so requests to the org carry the session where each API reads it (the bearer;
 * also `X-SFDC-Session` for Bulk API 1.0 and the envelope's `<sessionId>` for SOAP) and an auth
 * failure is retried once with a new token. Requests to any other origin pass through untouched,
 * with no token. Relative paths resolve against `session.instanceUrl`. On an auth failure it
 * invalidates the exact token it sent; if the session then hands back the same token, the
 * rejection is returned as is.
 *
 * @example
 * ```ts
 * import { authFetch } from 'cirrus-auth/fetch';
 * const sfFetch = authFetch(session);
 * const res = await sfFetch('/services/data/v62.0/limits');
 * ```
 */
export function authFetch(session: AuthSession, options?: AuthFetchOptions): typeof fetch;
/**
 * Over a `SessionPool`: each request goes through its tenant's session (`tenant` says which), with
 * that tenant's bearer rules, so a token only ever goes to its own tenant's instance.
 *
 * @example
 * ```ts
 * const api = authFetch(pool, { tenant: (request) => request.headers.get('x-tenant') ?? '' });
 * ```
 */
export function authFetch(pool: TenantSessions, options: PooledFetchOptions): typeof fetch;
export function authFetch(
  session: AuthSession | TenantSessions,
  options: AuthFetchOptions | PooledFetchOptions = {},
): typeof fetch {
  if (isTenantSessions(session)) return pooledFetch(session, options as PooledFetchOptions);
  return sessionFetch(session, options);
}

function pooledFetch(pool: TenantSessions, options: PooledFetchOptions): typeof fetch {
  const { tenant: tenantOf, ...rest } = optionsObject(options);
  const tenant = tenantOption(tenantOf, rest);
  optionalFunction('fetch', rest.fetch);
  const sessionFetchOf = perTenant(pool, (session) => sessionFetch(session, rest));
  return async (input, init) => {
    const request =
      input instanceof Request
        ? {
            url: input.url,
            method: init?.method ?? input.method,
            headers: new Headers(init?.headers ?? input.headers),
          }
        : {
            url: String(input),
            method: init?.method ?? 'GET',
            headers: new Headers(init?.headers),
          };
    const key = await tenant(request);
    const adapter = sessionFetchOf(key, init?.signal ?? undefined);
    return (adapter instanceof Promise ? await adapter : adapter)(input, init);
  };
}

function sessionFetch(session: AuthSession, options: AuthFetchOptions): typeof fetch {
  const o = optionsObject(options);
  const policy = adapterPolicy(session, o);
  const inner: typeof fetch =
    (optionalFunction('fetch', o.fetch) as typeof fetch | undefined) ??
    ((input, init) => globalThis.fetch(input, init));

  /** The answer to the first attempt: accepted, or judged, retried once and settled. */
  const finish = async (prepared: Prepared, sent: string, response: Response) => {
    const { signal, api } = prepared;
    if (!policy.mayBeAuthFailure(response.status, api)) {
      policy.accepted(sent, response);
      return response;
    }
    const fresh = await policy.decideRetry(sent, response, api, response.url, {
      adapter: 'fetch',
      signal,
      replayable: prepared.replayable,
      abandon: () => void response.body?.cancel().catch(() => {}),
    });
    if (fresh === undefined) return response;
    await response.body?.cancel().catch(() => {});
    const retried = await inner(...prepared.build(fresh));
    await policy.settleRetry(fresh, retried, api, retried.url, signal);
    return retried;
  };

  const authenticated = async (
    input: string | URL | Request,
    init: RequestInit | undefined,
  ): Promise<Response> => {
    // A call an outer cirrus-auth adapter built (another authFetch, ky's hooks, axios's fetch
    // adapter) is that adapter's to authenticate and retry: pass it on.
    if (isOwned((input instanceof Request ? input : (init ?? input)) as object))
      return inner(input, init);
    const url = policy.resolve(input instanceof Request ? input.url : String(input));
    const requested = policy.apiOf(url);
    if (requested === undefined) return inner(input, init);

    const target = input instanceof Request ? input : url;
    const prepared = isOneShot(target, init)
      ? await prepareOneShot(target, init, policy.maxReplayBodyBytes, requested)
      : prepareInMemory(
          target,
          init?.body instanceof FormData && formSize(init.body) <= policy.maxReplayBodyBytes
            ? await serialiseForm(init)
            : init,
          requested,
        );

    let sent: string;
    let response: Response;
    try {
      sent = policy.sendable(await session.getToken({ signal: prepared.signal }));
      response = await inner(...prepared.build(sent));
    } catch (error) {
      // A one-shot body left half read must not stay locked open (a file, a socket).
      prepared.discard?.(error);
      throw error;
    }
    return finish(prepared, sent, response);
  };

  const peek = peekOf(session);
  return function sfFetch(input: string | URL | Request, init?: RequestInit): Promise<Response> {
    // The hot path: a string URL to a REST or identity path, no init, and a token the session
    // hands out at once. No await, no Request or Headers: one plain init, one look at the status.
    if (init === undefined && typeof input === 'string' && peek !== undefined) {
      // A URL apiOf places on the org is absolute (resolve would answer it as it is): a repeated
      // one costs a string comparison.
      let url = input;
      let api = policy.apiOf(input);
      if (api === undefined) {
        url = policy.resolve(input);
        if (url !== input) api = policy.apiOf(url);
      }
      const token = api === 'rest' || api === 'identity' ? peek() : undefined;
      if (token !== undefined && policy.isSendable(token)) {
        return inner(url, ownedInit({ authorization: `Bearer ${token}` })).then((response) => {
          if (!policy.mayBeAuthFailure(response.status, api as OrgApi)) {
            policy.accepted(token, response);
            return response;
          }
          return finish(prepareInMemory(url, undefined, api as OrgApi), token, response);
        });
      }
    }
    return authenticated(input, init);
  };
}

interface Prepared {
  readonly signal: AbortSignal | undefined;
  /**
   * The API as far as the session goes: a SOAP call whose body carries no `<sessionId>` this
   * adapter can write counts as REST (its faults say nothing about the token it sent).
   */
  readonly api: OrgApi;
  /** Whether a second attempt can carry the same body. */
  readonly replayable: boolean;
  /** The arguments of one attempt carrying `token`; called at most twice. */
  build(token: string): [string | Request, RequestInit | undefined];
  /** Releases a one-shot body that will not be sent after all. */
  discard?(reason: unknown): void;
}

const bearer = (token: string) => `Bearer ${token}`;

/** Puts the session on a Request where `api` reads it (SOAP bodies are written separately). */
function carryOn(request: Request, token: string, api: OrgApi): void {
  request.headers.set('authorization', bearer(token));
  if (api === 'bulk') request.headers.set(BULK_SESSION_HEADER, token);
}

/**
 * The caller's headers plus `authorization` (and, for Bulk API 1.0, `x-sfdc-session`), replacing
 * any of any case. A plain object (or none) stays a plain object, which fetch takes faster than a
 * Headers instance.
 */
function withBearer(headers: HeadersInit | undefined, token: string, api: OrgApi): HeadersInit {
  if (headers === undefined) {
    return api === 'bulk'
      ? { authorization: bearer(token), [BULK_SESSION_HEADER]: token }
      : { authorization: bearer(token) };
  }
  const proto =
    typeof headers === 'object' && headers !== null ? Object.getPrototypeOf(headers) : undefined;
  if (proto !== Object.prototype && proto !== null) {
    // A Headers of any implementation, an array of pairs, a Map-like: let Headers read it.
    const copy = new Headers(headers);
    copy.set('authorization', bearer(token));
    if (api === 'bulk') copy.set(BULK_SESSION_HEADER, token);
    return copy;
  }
  const copy: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers as Record<string, string>)) {
    const lower = name.toLowerCase();
    if (lower !== 'authorization' && (api !== 'bulk' || lower !== BULK_SESSION_HEADER))
      copy[name] = value;
  }
  copy.authorization = bearer(token);
  if (api === 'bulk') copy[BULK_SESSION_HEADER] = token;
  return copy;
}

/**
 * An in-memory SOAP body with `token` in its Header's `<sessionId>`, or `undefined` when the body
 * is no such envelope (a Blob, FormData, an envelope without one).
 */
function soapBody(body: BodyInit | null | undefined, token: string): BodyInit | undefined {
  if (typeof body === 'string') return withSoapSession(body, token);
  if (body instanceof Uint8Array) return withSoapSessionBytes(body, token);
  if (body instanceof ArrayBuffer) return withSoapSessionBytes(new Uint8Array(body), token);
  return undefined;
}

/**
 * SOAP and Bulk 1.0 calls carry the session where fetch does not know it (the body, a custom
 * header), and fetch would forward both on a redirect to any host: their redirects are not
 * followed (`redirect: 'manual'`, or `'error'` when the caller asked for it).
 */
function redirectFor(api: OrgApi, asked: RequestRedirect | undefined): RequestRedirect | undefined {
  if (api !== 'soap' && api !== 'bulk') return undefined;
  return asked === 'error' ? 'error' : 'manual';
}

function signalOf(
  target: string | Request,
  init: RequestInit | undefined,
): AbortSignal | undefined {
  return init?.signal ?? (target instanceof Request ? target.signal : undefined) ?? undefined;
}

/** A one-shot body: a stream or async iterable in `init`, or a Request carrying a body. */
function isOneShot(target: string | Request, init: RequestInit | undefined): boolean {
  return init?.body != null
    ? isStreamBody(init.body)
    : target instanceof Request && target.body !== null;
}

/**
 * In-memory bodies (string, binary, Blob, URLSearchParams, FormData serialised once), or none, are
 * simply reused: each attempt is built from the same arguments, so both carry the same bytes. A URL
 * is passed with an init, so no Request is built here.
 */
function prepareInMemory(
  target: string | Request,
  init: RequestInit | undefined,
  requested: OrgApi,
): Prepared {
  const api =
    requested === 'soap' && soapBody(init?.body, 'probe') === undefined ? 'rest' : requested;
  const redirect = redirectFor(
    api,
    init?.redirect ?? (target instanceof Request ? target.redirect : undefined),
  );
  return {
    signal: signalOf(target, init),
    api,
    replayable: true,
    build: (token) => {
      let attempt = init;
      if (api === 'soap') attempt = { ...init, body: soapBody(init?.body, token) as BodyInit };
      if (redirect !== undefined) attempt = { ...attempt, redirect };
      if (target instanceof Request) {
        const request = new Request(target, attempt);
        carryOn(request, token, api);
        return [own(request), undefined];
      }
      const next: RequestInit = { ...attempt, headers: withBearer(init?.headers, token, api) };
      return [target, own(next)];
    },
  };
}

/**
 * Serialises a FormData body once, so a retry sends the same bytes with the same multipart
 * boundary (serialising it again would pick a new boundary).
 */
async function serialiseForm(init: RequestInit): Promise<RequestInit> {
  const encoded = new Response(init.body as FormData);
  const headers = new Headers(init.headers);
  headers.set('content-type', encoded.headers.get('content-type') ?? 'multipart/form-data');
  return { ...init, headers, body: new Uint8Array(await encoded.arrayBuffer()) };
}

/**
 * One-shot bodies are read up to `limit` bytes before sending, so they can be sent again. A SOAP
 * envelope read whole gets the token like an in-memory one; a longer stream is sent as is.
 */
async function prepareOneShot(
  target: string | Request,
  init: RequestInit | undefined,
  limit: number,
  requested: OrgApi,
): Promise<Prepared> {
  const signal = signalOf(target, init);
  // Takes over the caller's stream; a Request built from a disturbed one may still get a new body.
  const template = new Request(
    target,
    init === undefined ? undefined : ({ ...init, duplex: 'half' } as RequestInit),
  );
  const body = template.body as ReadableStream<Uint8Array>;
  const { buffered, rest } = await bufferUpTo(body, limit, signal);
  const api =
    requested === 'soap' &&
    (rest !== undefined || withSoapSessionBytes(buffered, 'probe') === undefined)
      ? 'rest'
      : requested;
  const redirect = redirectFor(api, template.redirect);
  const attempt = (token: string, init: RequestInit): [Request, undefined] => {
    const request = new Request(template, redirect === undefined ? init : { ...init, redirect });
    carryOn(request, token, api);
    return [own(request), undefined];
  };
  if (rest === undefined) {
    return {
      signal,
      api,
      replayable: true,
      build: (token) =>
        attempt(token, {
          body: api === 'soap' ? (withSoapSessionBytes(buffered, token) ?? buffered) : buffered,
        }),
    };
  }
  return {
    signal,
    api,
    replayable: false,
    build: (token) => attempt(token, { body: rest, duplex: 'half' } as RequestInit),
    discard: (reason) => {
      // Locked when fetch took it: fetch then owns cancelling it.
      if (!rest.locked) rest.cancel(reason).catch(() => {});
    },
  };
}

function isStreamBody(body: BodyInit): boolean {
  return (
    body instanceof ReadableStream ||
    (typeof body === 'object' && body !== null && Symbol.asyncIterator in body)
  );
}

/** Options of {@link installGlobalFetch}: those of {@link authFetch} but `fetch`, which is the global. */
export type GlobalFetchOptions = AdapterOptions;

interface Layer {
  readonly previous: typeof fetch;
  active: boolean;
}

/** Every installed global layer, by the function it put on `globalThis.fetch`. */
const layers = new WeakMap<typeof fetch, Layer>();

/**
 * Replaces `globalThis.fetch` with `authFetch(session, { ...options, fetch: <the previous fetch> })`,
 * so libraries that call the global `fetch` with no hook of their own get the org's bearer. Requests
 * to any other origin go to the previous fetch with their own arguments, untouched. Returns a
 * function that uninstalls this layer.
 *
 * Layers compose: install for two orgs and each handles only its own org's origins; a request for
 * neither passes through both untouched. A request is authenticated by the outermost layer that
 * owns its origin, once. Uninstalling in any order works: a layer that is not on top becomes a
 * pass-through, and once no active layer is left on top `globalThis.fetch` is exactly the function
 * that was there before the first install. A library that captured `fetch` before installation is
 * not affected: give it `authFetch(session)` through its own `fetch` option instead.
 *
 * @example
 * ```ts
 * import { installGlobalFetch } from 'cirrus-auth/fetch';
 * const uninstall = installGlobalFetch(session);
 * await someSdk.listAccounts(); // calls fetch itself; now carries the bearer
 * uninstall();
 * ```
 */
export function installGlobalFetch(
  session: AuthSession,
  options: GlobalFetchOptions = {},
): () => void {
  const o = optionsObject(options);
  if ((o as { fetch?: unknown }).fetch !== undefined)
    throw new ConfigError('fetch', 'is the current global fetch; use authFetch for another one');
  const previous = globalThis.fetch;
  const authenticated = authFetch(session, { ...o, fetch: previous });
  const layer: Layer = { previous, active: true };
  const installed: typeof fetch = (input, init) =>
    layer.active ? authenticated(input, init) : previous(input, init);
  layers.set(installed, layer);
  globalThis.fetch = installed;
  return () => {
    layer.active = false;
    // Unwind every inactive layer on top, down to the first active one or the original fetch.
    for (
      let top = layers.get(globalThis.fetch);
      top !== undefined && !top.active;
      top = layers.get(globalThis.fetch)
    ) {
      globalThis.fetch = top.previous;
    }
  };
}
