import type { AfterResponseHook, BeforeRedirectHook, BeforeRequestHook } from 'got';
import { optionsObject } from '../internal/options.js';
import type { AuthSession } from '../session/auth-session.js';
import {
  type AdapterOptions,
  adapterPolicy,
  BULK_SESSION_HEADER,
  fetchHeaders,
  type OrgApi,
  withSoapSession,
  withSoapSessionBytes,
} from './shared.js';

/** Options of {@link authHooks}: the ones every adapter shares. */
export type GotAuthOptions = AdapterOptions;

/** The hooks {@link authHooks} returns, for `got.extend({ hooks })` (merged with yours). */
export interface GotAuthHooks {
  /** Sets the session where the org's API reads it, on every attempt. */
  beforeRequest: BeforeRequestHook[];
  /** Keeps `X-SFDC-Session` from following a redirect off the org (got drops `authorization`). */
  beforeRedirect: BeforeRedirectHook[];
  /** Judges the first answer; an auth failure is retried once with a new token. */
  afterResponse: AfterResponseHook[];
}

/** What the hooks remember of a call, in got's `context`. */
interface CallState {
  sent: string;
  api: OrgApi;
  /** The one auth retry has been made. */
  retried: boolean;
}

const STATE = 'cirrusAuth';

/**
 * got hooks that authenticate requests to the org: the bearer (and `X-SFDC-Session` for Bulk API
 * 1.0, the envelope's `<sessionId>` for SOAP) goes to the instance origin and `origins` only, and
 * an auth failure on the first answer is retried once with a new token through got's own
 * `retryWithMergedOptions` (so got's `retry` budget is untouched and your hooks run as got runs
 * them). SOAP and Bulk 1.0 calls do not follow redirects (the session they carry would go along).
 *
 * @example
 * ```ts
 * import got from 'got';
 * import { authHooks } from 'cirrus-auth/got';
 * const api = got.extend({ prefixUrl: session.instanceUrl, hooks: authHooks(session) });
 * const limits = await api.get('services/data/v62.0/limits').json();
 * ```
 */
export function authHooks(session: AuthSession, options: GotAuthOptions = {}): GotAuthHooks {
  const policy = adapterPolicy(session, optionsObject(options));

  const beforeRequest: BeforeRequestHook = async (request) => {
    const url = request.url instanceof URL ? request.url.href : String(request.url ?? '');
    const requested = policy.apiOf(url);
    if (requested === undefined) return;
    // got encodes a FormData into a one-shot async generator before this hook runs: read into
    // bytes here (its parts are in memory already), it can be sent again on the auth retry.
    const pending = request.body as unknown;
    if (
      pending !== null &&
      typeof pending === 'object' &&
      !(pending instanceof Uint8Array) &&
      typeof (pending as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function' &&
      typeof (pending as { pipe?: unknown }).pipe !== 'function'
    ) {
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of pending as AsyncIterable<Uint8Array | string>) {
        const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.from(chunk);
        size += bytes.byteLength;
        chunks.push(bytes);
      }
      request.body = Buffer.concat(chunks, size);
    }
    const body = request.body;
    const bytes =
      typeof body === 'string'
        ? body
        : body instanceof Uint8Array
          ? Buffer.from(body).toString('utf8')
          : undefined;
    // A SOAP call counts as SOAP only when its body is an envelope with a `<sessionId>` to write.
    const api: OrgApi =
      requested === 'soap' && (bytes === undefined || withSoapSession(bytes, 'probe') === undefined)
        ? 'rest'
        : requested;
    const signal = request.signal as AbortSignal | undefined;
    const token = policy.sendable(await session.getToken({ signal }));
    request.headers.authorization = `Bearer ${token}`;
    if (api === 'bulk') request.headers[BULK_SESSION_HEADER] = token;
    if (api === 'soap' && bytes !== undefined) {
      const envelope =
        typeof body === 'string'
          ? (withSoapSession(body, token) as string)
          : Buffer.from(withSoapSessionBytes(body as Uint8Array, token) as Uint8Array);
      request.body = envelope;
      // got has measured the body already: the envelope with the session is another length.
      if (request.headers['content-length'] !== undefined) {
        request.headers['content-length'] = String(Buffer.byteLength(envelope));
      }
    }
    if (api === 'soap' || api === 'bulk') request.followRedirect = false;
    const previous = request.context[STATE] as CallState | undefined;
    request.context[STATE] = { sent: token, api, retried: previous?.retried ?? false };
  };

  const beforeRedirect: BeforeRedirectHook = (request) => {
    const url = request.url instanceof URL ? request.url.href : String(request.url ?? '');
    if (!policy.isOrgUrl(url)) delete request.headers[BULK_SESSION_HEADER];
  };

  const afterResponse: AfterResponseHook = async (response, retryWithMergedOptions) => {
    const state = response.request.options.context[STATE] as CallState | undefined;
    if (state === undefined) return response;
    const { sent, api } = state;
    const answeredBy = response.url;
    // Only an answer from the org judges its token.
    if (policy.apiOf(answeredBy) === undefined) return response;
    const judged = () =>
      new Response(response.rawBody.byteLength === 0 ? null : new Uint8Array(response.rawBody), {
        status: response.statusCode,
        headers: fetchHeaders(response.headers),
      });
    const signal = response.request.options.signal as AbortSignal | undefined;
    if (state.retried) {
      await policy.settleRetry(sent, judged(), api, answeredBy, signal);
      return response;
    }
    if (!policy.mayBeAuthFailure(response.statusCode, api)) {
      policy.accepted(sent, answeredBy);
      return response;
    }
    const body = response.request.options.body;
    const fresh = await policy.decideRetry(sent, judged(), api, answeredBy, {
      adapter: 'got',
      signal,
      // A stream body was sent once and is gone.
      replayable: !(typeof (body as { pipe?: unknown } | undefined)?.pipe === 'function'),
    });
    if (fresh === undefined) return response;
    state.retried = true;
    // beforeRequest runs again for the retry and sets the fresh token where the API reads it.
    return retryWithMergedOptions({ preserveHooks: true });
  };

  return {
    beforeRequest: [beforeRequest],
    beforeRedirect: [beforeRedirect],
    afterResponse: [afterResponse],
  };
}
