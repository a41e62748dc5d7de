import type { AfterResponseHook, BeforeRequestHook, BeforeRetryHook, InitHook } from 'ky';
import { bufferUpTo } from '../internal/bytes.js';
import { optionsObject } from '../internal/options.js';
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
  type OrgApi,
  own,
  perTenant,
  tenantOption,
  withSoapSessionBytes,
} from './shared.js';

/** Options of {@link authHooks}: the ones every adapter shares. */
export type KyAuthOptions = AdapterOptions;

/** Options of {@link authHooks} over a SessionPool: which tenant a request is for. */
export interface PooledKyAuthOptions extends KyAuthOptions {
  /** The tenant key of a request (ky's `Request`, headers and all): its session authenticates it. */
  tenant: (request: Request) => string | Promise<string>;
}

/** The hooks {@link authHooks} returns, to pass as ky's `hooks` option or to merge with yours. */
export interface KyAuthHooks {
  /**
   * Wraps ky's `fetch` for the call: the first answer is judged there and an auth failure retried
   * once with a new token, inside ky's timeout and signal.
   */
  init: InitHook[];
  /** Empty: the bearer is set in the call's `fetch` (see `init`), on every attempt. */
  beforeRequest: BeforeRequestHook[];
  /** Empty: ky's own retries (429, 5xx...) get the current bearer in the call's `fetch`. */
  beforeRetry: BeforeRetryHook[];
  /**
   * Empty: kept so the shape stays what it was. The auth retry moved into ky's `fetch` (see
   * `init`), because ky clones every response once per `afterResponse` hook.
   */
  afterResponse: AfterResponseHook[];
}

/**
 * ky hooks that authenticate requests to the org: the bearer goes to the instance origin (and
 * `origins`) only, and an auth failure on the first answer is retried once with a new token. The
 * auth retry is made inside the call's `fetch` (the `init` hook wraps ky's), so it waits for no
 * backoff, does not use your ky `retry` budget, works with `retry: 0`, runs within ky's `timeout`
 * and signal, and your own hooks see one request and one answer. A 401 that is not retried throws
 * ky's `HTTPError`.
 *
 * @example
 * ```ts
 * import ky from 'ky';
 * import { authHooks } from 'cirrus-auth/ky';
 * const api = ky.create({ baseUrl: session.instanceUrl, hooks: authHooks(session) });
 * const limits = await api.get('services/data/v62.0/limits').json();
 * ```
 */
export function authHooks(session: AuthSession, options?: KyAuthOptions): KyAuthHooks;
/**
 * Over a `SessionPool`: each call goes through its tenant's session (`tenant` says which, from the
 * call's first request), with that tenant's bearer rules.
 *
 * @example
 * ```ts
 * const api = ky.create({ hooks: authHooks(pool, { tenant: (r) => r.headers.get('x-tenant') ?? '' }) });
 * ```
 */
export function authHooks(pool: TenantSessions, options: PooledKyAuthOptions): KyAuthHooks;
export function authHooks(
  session: AuthSession | TenantSessions,
  options: KyAuthOptions | PooledKyAuthOptions = {},
): KyAuthHooks {
  if (isTenantSessions(session)) return pooledHooks(session, options as PooledKyAuthOptions);
  return sessionHooks(session, options);
}

function pooledHooks(pool: TenantSessions, options: PooledKyAuthOptions): KyAuthHooks {
  const { tenant: tenantOf, ...rest } = optionsObject(options);
  const tenant = tenantOption(tenantOf, rest);
  const initOf = perTenant(pool, (session) => sessionHooks(session, rest).init[0] as InitHook);
  const init: InitHook = (kyOptions) => {
    const send: typeof fetch = kyOptions.fetch ?? ((input, init) => globalThis.fetch(input, init));
    // Every attempt of one call goes through the fetch its tenant's hooks made for that call.
    let call: Promise<typeof fetch> | undefined;
    kyOptions.fetch = async (input, init) => {
      call ??= (async () => {
        const request = input instanceof Request ? input : new Request(input, init);
        const hook = await initOf(await tenant(request), request.signal);
        const options = { fetch: send } as Parameters<InitHook>[0];
        await hook(options);
        return options.fetch as typeof fetch;
      })();
      return (await call)(input, init);
    };
  };
  return { init: [init], beforeRequest: [], beforeRetry: [], afterResponse: [] };
}

function sessionHooks(session: AuthSession, options: KyAuthOptions): KyAuthHooks {
  const policy = adapterPolicy(session, optionsObject(options));
  const peek = peekOf(session);
  /** Bodies read before sending, for the auth retry's copy of the request. */
  const bodies = new WeakMap<Request, Uint8Array<ArrayBuffer>>();

  /** Sets the session on `request` where `api` reads it, and marks it ours; returns the token. */
  const carry = async (request: Request, api: OrgApi): Promise<string> => {
    const token = policy.sendable(await session.getToken({ signal: request.signal }));
    request.headers.set('authorization', `Bearer ${token}`);
    if (api === 'bulk') request.headers.set(BULK_SESSION_HEADER, token);
    own(request);
    return token;
  };

  /**
   * A copy of `request` carrying `token` in `body` (a SOAP envelope's `<sessionId>`), remembered
   * for a replay; SOAP and Bulk 1.0 redirects are not followed (fetch would forward the session
   * they carry to any host).
   */
  const replace = (
    request: Request,
    api: OrgApi,
    token: string,
    body?: Uint8Array<ArrayBuffer>,
  ): Request => {
    const redirect = api === 'soap' || api === 'bulk' ? { redirect: 'manual' as const } : {};
    const carried = body === undefined || api !== 'soap' ? body : withSoapSessionBytes(body, token);
    const replacement = new Request(
      request,
      body === undefined ? redirect : { ...redirect, body: carried ?? body },
    );
    if (body !== undefined) bodies.set(replacement, body);
    return own(replacement);
  };

  /** A SOAP call counts as SOAP only when its body is an envelope with a `<sessionId>` to write. */
  const effectiveApi = (api: OrgApi, body: Uint8Array | undefined): OrgApi =>
    api === 'soap' && (body === undefined || withSoapSessionBytes(body, 'probe') === undefined)
      ? 'rest'
      : api;

  /**
   * The request as it goes to the org: the bearer (and, for Bulk API 1.0, `X-SFDC-Session`) set
   * where the API reads it, a body read up to `maxReplayBodyBytes` so it can be sent again (a SOAP
   * envelope's `<sessionId>` written), marked ours. A body too large to keep is streamed once.
   */
  const prepare = async (request: Request, requested: OrgApi): Promise<Request> => {
    if (request.body === null) {
      const api = effectiveApi(requested, undefined);
      const token = await carry(request, api);
      return api === 'bulk' ? replace(request, api, token) : request;
    }
    const { buffered, rest } = await bufferUpTo(
      request.body,
      policy.maxReplayBodyBytes,
      request.signal,
    );
    if (rest === undefined) {
      const api = effectiveApi(requested, buffered);
      return replace(request, api, await carry(request, api), buffered);
    }
    // Too large to keep: streamed once, as is (a SOAP envelope keeps its own sessionId).
    const api = effectiveApi(requested, undefined);
    await carry(request, api);
    const redirect = api === 'bulk' ? { redirect: 'manual' as const } : {};
    return own(
      new Request(request, { ...redirect, body: rest, duplex: 'half' } as unknown as RequestInit),
    );
  };

  const init: InitHook = (kyOptions) => {
    // A fetch of this call's own (init hooks run once per call): it authenticates every attempt
    // ky makes (its own retries get the current token) and judges the first answer.
    const send: typeof fetch = kyOptions.fetch ?? ((input, init) => globalThis.fetch(input, init));
    let attempts = 0;
    kyOptions.fetch = (input, init) => {
      const requested = input instanceof Request ? policy.apiOf(input.url) : undefined;
      if (requested === undefined) return send(input, init);
      const request = input as Request;
      const first = ++attempts === 1;
      // The hot path: no body, a REST or identity path, a token the session hands out at once.
      const token =
        request.body === null && (requested === 'rest' || requested === 'identity')
          ? peek?.()
          : undefined;
      if (token !== undefined && policy.isSendable(token)) {
        request.headers.set('authorization', `Bearer ${token}`);
        own(request);
        return send(request, init).then((response) =>
          authRetry(request, response, send, init, first),
        );
      }
      return prepare(request, requested).then((prepared) =>
        send(prepared, init).then((response) => authRetry(prepared, response, send, init, first)),
      );
    };
  };

  /**
   * The auth retry, inside ky's `fetch`: judges the first answer of a call and, on an auth
   * failure, sends the one retry right there. No `afterResponse` hook, so ky clones no response.
   */
  const authRetry = (
    request: Request,
    response: Response,
    send: typeof fetch,
    init: RequestInit | undefined,
    first: boolean,
  ): Response | Promise<Response> => {
    const requested = policy.apiOf(request.url);
    const sent = request.headers.get('authorization')?.replace(/^Bearer /, '');
    if (requested === undefined || sent === undefined) return response;
    const body = bodies.get(request);
    const api = effectiveApi(requested, body);
    if (!policy.mayBeAuthFailure(response.status, api)) {
      policy.accepted(sent, response);
      return response;
    }
    return retryOnce(request, response, send, init, first, sent, api, body);
  };

  const retryOnce = async (
    request: Request,
    response: Response,
    send: typeof fetch,
    init: RequestInit | undefined,
    first: boolean,
    sent: string,
    api: OrgApi,
    body: Uint8Array<ArrayBuffer> | undefined,
  ): Promise<Response> => {
    // One auth retry per call, on the first answer; ky's own retries are not retried again here.
    if (!first) return response;
    const fresh = await policy.decideRetry(sent, response, api, response.url, {
      adapter: 'ky',
      signal: request.signal,
      // A body too large to keep was streamed once: it cannot be sent again.
      replayable: request.body === null || body !== undefined,
    });
    if (fresh === undefined) return response;
    await response.body?.cancel().catch(() => {});
    const retry =
      body === undefined ? own(new Request(request)) : replace(request, api, fresh, body);
    retry.headers.set('authorization', `Bearer ${fresh}`);
    if (api === 'bulk') retry.headers.set(BULK_SESSION_HEADER, fresh);
    // Inside ky's own timeout and signal: the retry is bounded by them, as the first attempt is.
    const retried = await send(retry, init);
    await policy.settleRetry(fresh, retried, api, retried.url, request.signal);
    return retried;
  };

  return { init: [init], beforeRequest: [], beforeRetry: [], afterResponse: [] };
}
