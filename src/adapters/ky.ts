import type { AfterResponseHook, BeforeRequestHook, BeforeRetryHook, InitHook } from 'ky';
import { raceAbort } from '../internal/abort.js';
import { bufferUpTo } from '../internal/bytes.js';
import { optionsObject } from '../internal/options.js';
import type { AuthSession } from '../session/auth-session.js';
import { type AdapterOptions, adapterPolicy, reportRetry } from './shared.js';

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

  const bearer = async (request: Request): Promise<string> => {
    const token = await session.getToken({ signal: request.signal });
    request.headers.set('authorization', `Bearer ${token}`);
    return token;
  };

  const init: InitHook = (kyOptions) => {
    const send: Send = { fetch: kyOptions.fetch, timeout: kyOptions.timeout };
    kyOptions.context = { ...kyOptions.context, [SEND]: send };
  };

  const beforeRequest: BeforeRequestHook = async ({ request }) => {
    if (!policy.isOrgUrl(request.url)) return;
    await bearer(request);
    if (request.body === null) return;
    const { buffered, rest } = await bufferUpTo(
      request.body,
      policy.maxReplayBodyBytes,
      request.signal,
    );
    const replacement = new Request(request, {
      body: rest ?? buffered,
      duplex: 'half',
    } as RequestInit);
    if (rest === undefined) bodies.set(replacement, buffered);
    return replacement;
  };

  const beforeRetry: BeforeRetryHook = async ({ request }) => {
    if (policy.isOrgUrl(request.url)) await bearer(request);
  };

  const afterResponse: AfterResponseHook = async ({
    request,
    response,
    retryCount,
    options: kyOptions,
  }) => {
    // One auth retry per call, on the first answer; ky's own retries are not retried again here.
    if (
      retryCount !== 0 ||
      !policy.mayBeAuthFailure(response.status) ||
      !policy.isOrgUrl(request.url)
    ) {
      return;
    }
    const sent = request.headers.get('authorization')?.replace(/^Bearer /, '');
    if (sent === undefined || !(await policy.isAuthFailure(response))) return;

    await raceAbort(session.invalidate(sent), request.signal);
    // ky keeps an unread copy when its retry is on; with `retry: 0` use the body read beforehand.
    const body = request.bodyUsed ? bodies.get(request) : undefined;
    if (request.bodyUsed && body === undefined) {
      reportRetry('ky', policy.instanceUrl, response.status, false);
      return;
    }
    const fresh = await session.getToken({ signal: request.signal });
    // The same token again means the 401 is not an expiry: surface it rather than burn a retry.
    reportRetry('ky', policy.instanceUrl, response.status, fresh !== sent);
    if (fresh === sent) return;
    const retry = body === undefined ? new Request(request) : new Request(request, { body });
    retry.headers.set('authorization', `Bearer ${fresh}`);
    const send = (kyOptions.context as Record<symbol, Send | undefined>)[SEND];
    const timeout = send?.timeout ?? 10_000;
    const signal =
      timeout === false
        ? retry.signal
        : AbortSignal.any([retry.signal, AbortSignal.timeout(timeout)]);
    return (send?.fetch ?? globalThis.fetch)(new Request(retry, { signal }));
  };

  return {
    init: [init],
    beforeRequest: [beforeRequest],
    beforeRetry: [beforeRetry],
    afterResponse: [afterResponse],
  };
}
