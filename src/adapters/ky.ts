import type { AfterResponseHook, BeforeRequestHook, BeforeRetryHook, InitHook } from 'ky';
import { raceAbort } from '../internal/abort.js';
import { bufferUpTo } from '../internal/bytes.js';
import { optionsObject } from '../internal/options.js';
import type { AuthSession } from '../session/auth-session.js';
import {
  type AdapterOptions,
  adapterPolicy,
  BULK_SESSION_HEADER,
  noteAttached,
  type OrgApi,
  reportRetry,
  withSoapSessionBytes,
} from './shared.js';

/** Options of {@link authHooks}: the ones every adapter shares. */
export type KyAuthOptions = AdapterOptions;

/** The hooks {@link authHooks} returns, to pass as ky's `hooks` option or to merge with yours. */
export interface KyAuthHooks {
  /** Notes ky's `fetch` and `timeout` so the auth retry is sent the way ky sends. */
  init: InitHook[];
  /** Sets the bearer on requests to the org. */
  beforeRequest: BeforeRequestHook[];
  /** Sets the current bearer on ky's own retries (429, 5xx...), which reuse the first request. */
  beforeRetry: BeforeRetryHook[];
  /** On an auth failure of the first answer, invalidates the sent token and retries once. */
  afterResponse: AfterResponseHook[];
}

const SEND = Symbol('cirrus-auth.ky.send');

interface Send {
  fetch: typeof fetch | undefined;
  timeout: number | false | undefined;
}

/**
 * ky hooks that authenticate requests to the org: the bearer goes to the instance origin (and
 * `origins`) only, and an auth failure on the first answer is retried once with a new token. The
 * auth retry is made inside `afterResponse`, so it waits for no backoff and does not use your ky
 * `retry` budget, and it works with `retry: 0`. A 401 that is not retried throws ky's `HTTPError`.
 *
 * @example
 * ```ts
 * import ky from 'ky';
 * import { authHooks } from 'cirrus-auth/ky';
 * const api = ky.create({ baseUrl: session.instanceUrl, hooks: authHooks(session) });
 * const limits = await api.get('services/data/v62.0/limits').json();
 * ```
 */
export function authHooks(session: AuthSession, options: KyAuthOptions = {}): KyAuthHooks {
  const policy = adapterPolicy(session, optionsObject(options));
  /** Bodies read in `beforeRequest`, for requests ky sends without keeping a copy (`retry: 0`). */
  const bodies = new WeakMap<Request, Uint8Array<ArrayBuffer>>();

  /** Sets the session on `request` where `api` reads it; returns the token. */
  const carry = async (request: Request, api: OrgApi): Promise<string> => {
    const token = policy.sendable(await session.getToken({ signal: request.signal }));
    noteAttached(token);
    request.headers.set('authorization', `Bearer ${token}`);
    if (api === 'bulk') request.headers.set(BULK_SESSION_HEADER, token);
    return token;
  };

  /** A copy of `request` with `body`, SOAP bodies carrying `token`; remembered for a replay. */
  const withBody = (
    request: Request,
    body: Uint8Array<ArrayBuffer>,
    api: OrgApi,
    token: string,
  ) => {
    const replacement = new Request(request, {
      body: api === 'soap' ? withSoapSessionBytes(body, token) : body,
    });
    bodies.set(replacement, body);
    return replacement;
  };

  const init: InitHook = (kyOptions) => {
    const send: Send = { fetch: kyOptions.fetch, timeout: kyOptions.timeout };
    kyOptions.context = { ...kyOptions.context, [SEND]: send };
  };

  const beforeRequest: BeforeRequestHook = async ({ request }) => {
    const api = policy.apiOf(request.url);
    if (api === undefined) return;
    const token = await carry(request, api);
    if (request.body === null) return;
    const { buffered, rest } = await bufferUpTo(
      request.body,
      policy.maxReplayBodyBytes,
      request.signal,
    );
    if (rest === undefined) return withBody(request, buffered, api, token);
    // Too large to keep: streamed once, as is (a SOAP envelope keeps its own sessionId).
    return new Request(request, { body: rest, duplex: 'half' } as RequestInit);
  };

  const beforeRetry: BeforeRetryHook = async ({ request }) => {
    const api = policy.apiOf(request.url);
    if (api === undefined) return;
    const token = await carry(request, api);
    const body = bodies.get(request);
    if (api === 'soap' && body !== undefined) return withBody(request, body, api, token);
  };

  const afterResponse: AfterResponseHook = async ({
    request,
    response,
    retryCount,
    options: kyOptions,
  }) => {
    const api = policy.apiOf(request.url);
    const sent = request.headers.get('authorization')?.replace(/^Bearer /, '');
    if (api === undefined || sent === undefined) return;
    if (!policy.mayBeAuthFailure(response.status, api)) {
      policy.accepted(sent);
      return;
    }
    // One auth retry per call, on the first answer; ky's own retries are not retried again here.
    if (retryCount !== 0) return;
    if (!(await policy.isAuthFailure(response, api, response.url, request.signal))) {
      if (response.status !== 401) policy.accepted(sent);
      return;
    }

    await raceAbort(session.invalidate(sent), request.signal);
    // ky keeps an unread copy when its retry is on; with `retry: 0` use the body read beforehand.
    // A SOAP envelope is read from ky's copy, to write the new token into it.
    let body = bodies.get(request);
    if (body === undefined && api === 'soap' && !request.bodyUsed && request.body !== null) {
      body = new Uint8Array(await request.clone().arrayBuffer());
    }
    if (request.bodyUsed && body === undefined) {
      reportRetry('ky', policy.instanceUrl, response.status, false);
      return;
    }
    const fresh = policy.sendable(await session.getToken({ signal: request.signal }));
    // The same token again means a new token does not cure this (or the session's rejection guard
    // holds minting back): surface the rejection rather than burn a retry.
    reportRetry('ky', policy.instanceUrl, response.status, fresh !== sent);
    if (fresh === sent) return;
    const retry =
      body === undefined
        ? new Request(request)
        : new Request(request, { body: api === 'soap' ? withSoapSessionBytes(body, fresh) : body });
    noteAttached(fresh);
    retry.headers.set('authorization', `Bearer ${fresh}`);
    if (api === 'bulk') retry.headers.set(BULK_SESSION_HEADER, fresh);
    const send = (kyOptions.context as Record<symbol, Send | undefined>)[SEND];
    const timeout = send?.timeout ?? 10_000;
    const signal =
      timeout === false
        ? retry.signal
        : AbortSignal.any([retry.signal, AbortSignal.timeout(timeout)]);
    const retried = await (send?.fetch ?? globalThis.fetch)(new Request(retry, { signal }));
    if (!policy.mayBeAuthFailure(retried.status, api)) policy.accepted(fresh);
    return retried;
  };

  return {
    init: [init],
    beforeRequest: [beforeRequest],
    beforeRetry: [beforeRetry],
    afterResponse: [afterResponse],
  };
}
