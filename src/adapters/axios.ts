import { Readable } from 'node:stream';
import axios, {
  type AxiosAdapter,
  type AxiosInstance,
  type AxiosResponse,
  type InternalAxiosRequestConfig,
} from 'axios';
import { ConfigError } from '../errors.js';
import { raceAbort } from '../internal/abort.js';
import { optionsObject } from '../internal/options.js';
import {
  type AuthSession,
  isTenantSessions,
  peekOf,
  type TenantSessions,
} from '../session/auth-session.js';
import { guardRedirects, type RedirectTrail } from './redirect-guard.js';
import {
  type AdapterOptions,
  type AdapterPolicy,
  adapterPolicy,
  BULK_SESSION_HEADER,
  DETECTION_PEEK_BYTES,
  DETECTION_PEEK_TIMEOUT_MS,
  formSize,
  type OrgApi,
  owningFetch,
  perTenant,
  tenantOption,
  withSoapSession,
  withSoapSessionBytes,
} from './shared.js';

/** Each adapter this module installed: the adapter it wraps, and the attachment that made it. */
const wrapped = new WeakMap<
  object,
  { original: InternalAxiosRequestConfig['adapter']; attachment: symbol }
>();

/** Whether `adapter`'s chain of wrappers holds a layer made by `attachment`. */
function hasLayer(adapter: InternalAxiosRequestConfig['adapter'], attachment: symbol): boolean {
  for (
    let layer = wrapped.get(adapter as object);
    layer !== undefined;
    layer = wrapped.get(layer.original as object)
  ) {
    if (layer.attachment === attachment) return true;
  }
  return false;
}

/** Options of {@link attachAuth}: the ones every adapter shares. */
export type AxiosAuthOptions = AdapterOptions;

/** Options of {@link attachAuth} over a SessionPool: which tenant a request is for. */
export interface PooledAxiosAuthOptions extends AxiosAuthOptions {
  /**
   * The tenant key of a request, from its config after every interceptor ran (a header, a param,
   * your request context): its session authenticates it.
   */
  tenant: (config: InternalAxiosRequestConfig) => string | Promise<string>;
}

/**
 * Makes an axios instance authenticate to the org: requests to the instance origin (and `origins`)
 * carry `Authorization: Bearer <token>`, and an auth failure is retried once with a new token.
 * Requests to any other origin are left alone. Returns a function that detaches it again.
 *
 * The bearer is set and the retry made inside the instance's adapter, below every interceptor:
 * your own request and response interceptors run once per call, and the bearer is decided on the
 * final URL, after every interceptor had its say. A 401 that is not retried rejects with axios's
 * own `AxiosError`, as it would without cirrus-auth.
 *
 * @example
 * ```ts
 * import axios from 'axios';
 * import { attachAuth } from 'cirrus-auth/axios';
 * const api = axios.create({ baseURL: session.instanceUrl });
 * const detach = attachAuth(api, session);
 * const { data } = await api.get('/services/data/v62.0/limits');
 * ```
 */
export function attachAuth(
  instance: AxiosInstance,
  session: AuthSession,
  options?: AxiosAuthOptions,
): () => void;
/**
 * Over a `SessionPool`: each request goes through its tenant's session (`tenant` says which), with
 * that tenant's bearer rules, so a token only ever goes to its own tenant's instance.
 *
 * @example
 * ```ts
 * attachAuth(api, pool, { tenant: (config) => String(config.headers['x-tenant']) });
 * ```
 */
export function attachAuth(
  instance: AxiosInstance,
  pool: TenantSessions,
  options: PooledAxiosAuthOptions,
): () => void;
export function attachAuth(
  instance: AxiosInstance,
  session: AuthSession | TenantSessions,
  options: AxiosAuthOptions | PooledAxiosAuthOptions = {},
): () => void {
  if (typeof instance?.interceptors?.request?.use !== 'function') {
    throw new ConfigError('instance', 'must be an axios instance');
  }
  const attachment = Symbol('attachAuth');
  if (isTenantSessions(session)) {
    const { tenant: tenantOf, ...rest } = optionsObject(options as PooledAxiosAuthOptions);
    const tenant = tenantOption(tenantOf, rest);
    const layers = perTenant(session, (s) => ({
      s,
      policy: adapterPolicy(s, optionsObject(rest)),
      peek: peekOf(s),
    }));
    return intercept(instance, attachment, (original) => async (config) => {
      const layer = await layers(await tenant(config), config.signal as AbortSignal | undefined);
      return authAdapter(original, layer.s, layer.policy, layer.peek)(config);
    });
  }
  const policy = adapterPolicy(session, optionsObject(options));
  const peek = peekOf(session);
  return intercept(instance, attachment, (original) =>
    authAdapter(original, session, policy, peek),
  );
}

/** Installs the request interceptor that wraps each config's adapter in `layer`. */
function intercept(
  instance: AxiosInstance,
  attachment: symbol,
  layer: (original: InternalAxiosRequestConfig['adapter']) => AxiosAdapter,
): () => void {
  // One layer per adapter it wraps (the instance's default is the same value on every call), not
  // a closure and a WeakMap entry per request: objects and functions weakly, names in a Map.
  const byObject = new WeakMap<object, AxiosAdapter>();
  const byName = new Map<unknown, AxiosAdapter>();
  const id = instance.interceptors.request.use(
    (config) => {
      // A re-sent config (axios-retry, a hand-written retry) already carries this attachment's
      // layer: wrapping again would nest one more retrying layer. Other attachments' layers stay.
      if (hasLayer(config.adapter, attachment)) return config;
      const original = config.adapter;
      const keyed = typeof original === 'object' || typeof original === 'function';
      let adapter = keyed ? byObject.get(original as object) : byName.get(original);
      if (adapter === undefined) {
        adapter = layer(original);
        wrapped.set(adapter, { original, attachment });
        if (keyed) byObject.set(original as object, adapter);
        else byName.set(original, adapter);
      }
      config.adapter = adapter;
      return config;
    },
    undefined,
    { synchronous: true },
  );
  return () => instance.interceptors.request.eject(id);
}

function authAdapter(
  original: InternalAxiosRequestConfig['adapter'],
  session: AuthSession,
  policy: AdapterPolicy,
  peek: (() => string | undefined) | undefined,
): AxiosAdapter {
  return (config) => {
    const url = config.url ?? '';
    if (!config.baseURL && !isAbsoluteUrl(url)) config.baseURL = policy.instanceUrl;
    const requested = policy.apiOf(fullUrl(config));
    if (requested === undefined) return axios.getAdapter(original, config)(config);
    let send = axios.getAdapter(original, config);
    if (!NO_FETCH_ADAPTERS.has((send as { adapterName?: unknown }).adapterName)) {
      // axios's fetch adapter builds its own Requests: they are marked as authenticated here, so
      // a cirrus-auth global fetch below passes them on (one retry per call). It takes its fetch
      // when it is resolved, so it is resolved again with the marking one.
      config.env = {
        ...config.env,
        fetch: owningFetch(config.env?.fetch as typeof fetch | undefined),
      };
      send = axios.getAdapter(original, config);
    }
    const redirects = guardRedirects(config, policy);
    // The hot path: a REST or identity call without a form, and a token the session hands out at
    // once: sent without an await, its answer looked at once.
    const token =
      (requested === 'rest' || requested === 'identity') && !(config.data instanceof FormData)
        ? peek?.()
        : undefined;
    if (token === undefined || !policy.isSendable(token)) {
      return authenticated(config, requested, send, redirects);
    }
    config.headers.set('Authorization', `Bearer ${token}`);
    const carry = (fresh: string) => {
      policy.sendable(fresh);
      config.headers.set('Authorization', `Bearer ${fresh}`);
    };
    return send(config).then(
      (response) => {
        if (!policy.mayBeAuthFailure(response.status, requested)) {
          policy.accepted(token, redirects.url);
          return response;
        }
        return judge(config, requested, send, redirects, carry, token, { response });
      },
      (error: unknown) => {
        const response = axios.isAxiosError(error) ? error.response : undefined;
        if (response === undefined) throw error;
        if (!policy.mayBeAuthFailure(response.status, requested)) {
          policy.accepted(token, redirects.url);
          throw error;
        }
        return judge(config, requested, send, redirects, carry, token, { error });
      },
    );
  };

  /** Every other call: forms serialised once, SOAP envelopes and Bulk headers, waiting for a token. */
  async function authenticated(
    config: InternalAxiosRequestConfig,
    requested: OrgApi,
    send: AxiosAdapter,
    redirects: RedirectTrail,
  ): Promise<AxiosResponse> {
    if (config.data instanceof FormData && formSize(config.data) <= policy.maxReplayBodyBytes) {
      // Serialised once, so a retry sends the same bytes and multipart boundary. A larger form is
      // serialised by axios on each attempt (a new boundary, the same parts).
      const encoded = new Response(config.data);
      config.headers.set('Content-Type', encoded.headers.get('content-type'));
      config.data = Buffer.from(await encoded.arrayBuffer());
    }
    const envelope = requested === 'soap' ? soapTemplate(config.data) : undefined;
    // A SOAP call whose body has no <sessionId> to write (a stream, say) is judged as REST.
    const api = requested === 'soap' && envelope === undefined ? 'rest' : requested;
    if (api === 'soap' || api === 'bulk') {
      // The session travels in the body or a custom header: a redirect is not followed with it.
      config.maxRedirects = 0;
      config.fetchOptions = { ...config.fetchOptions, redirect: 'manual' };
    }
    const carry = (token: string) => {
      policy.sendable(token);
      config.headers.set('Authorization', `Bearer ${token}`);
      if (api === 'bulk') config.headers.set(BULK_SESSION_HEADER, token);
      if (envelope !== undefined) config.data = envelope(token);
    };

    const signal = config.signal instanceof AbortSignal ? config.signal : undefined;
    const sent = await cancellable(session.getToken({ signal }), config, signal);
    carry(sent);
    const first = await outcome(send(config));
    const response = responseOf(first);
    if (response === undefined) return settle(first);
    if (!policy.mayBeAuthFailure(response.status, api)) {
      policy.accepted(sent, redirects.url);
      return settle(first);
    }
    return judge(config, api, send, redirects, carry, sent, first);
  }

  /** A first answer that may be an auth failure: judged, and retried once with a new token. */
  async function judge(
    config: InternalAxiosRequestConfig,
    api: OrgApi,
    send: AxiosAdapter,
    redirects: RedirectTrail,
    carry: (token: string) => void,
    sent: string,
    first: Outcome,
  ): Promise<AxiosResponse> {
    const response = responseOf(first) as AxiosResponse;
    const signal = config.signal instanceof AbortSignal ? config.signal : undefined;
    // A streamed error body (responseType: 'stream') is peeked, and handed on whole.
    let head: Buffer | undefined;
    if (isNodeStream(response.data)) {
      const peeked = await peekStream(response.data, DETECTION_PEEK_BYTES, signal);
      head = peeked.head;
      response.data = peeked.replay;
    }
    const answeredBy = redirects.url ?? answeringUrl(response) ?? '';
    const fresh = await policy.decideRetry(sent, toFetchResponse(response, head), api, answeredBy, {
      adapter: 'axios',
      signal,
      // A one-shot body (a stream) cannot be sent twice.
      replayable: isReplayable(config.data),
      wait: (promise) => cancellable(promise, config, signal),
      abandon: () => destroyStream(response.data),
    });
    if (fresh === undefined) return settle(first);
    carry(fresh);
    destroyStream(response.data);
    redirects.url = undefined;
    const second = await outcome(send(config));
    const retried = responseOf(second);
    if (retried !== undefined) {
      const by = redirects.url ?? answeringUrl(retried) ?? '';
      await policy.settleRetry(fresh, toFetchResponse(retried), api, by, signal);
    }
    return settle(second);
  }
}

/** axios's adapters that never call fetch (their `adapterName`): no need to mark its Requests. */
const NO_FETCH_ADAPTERS = new Set<unknown>(['http', 'xhr']);

/** The response an attempt got, whether axios resolved with it or rejected with it. */
function responseOf(result: Outcome): AxiosResponse | undefined {
  return result.response ?? (axios.isAxiosError(result.error) ? result.error.response : undefined);
}

/**
 * axios's own absolute-URL test (`isAbsoluteURL`): a scheme and `//`, or `//`, at the very start.
 * `URL.canParse()` is more lenient (it strips leading white space and tabs inside the scheme), and
 * deciding the origin by it sent the bearer to a foreign `baseURL`.
 */
function isAbsoluteUrl(url: string): boolean {
  return /^([a-z][a-z\d+\-.]*:)?\/\//i.test(url);
}

/**
 * The URL axios sends `config` to, joined as axios joins it (`buildFullPath`, `combineURLs`); axios
 * then hands it to the WHATWG parser, and so does `apiOf` unless the URL is one the parser would
 * not change (an org prefix and a plain path): the origin decision is made on exactly that.
 */
function fullUrl(config: InternalAxiosRequestConfig): string {
  const url = config.url ?? '';
  const baseURL = config.baseURL;
  return baseURL && (!isAbsoluteUrl(url) || config.allowAbsoluteUrls === false)
    ? url
      ? `${baseURL.replace(/\/+$/, '')}/${url.replace(/^\/+/, '')}`
      : baseURL
    : url;
}

/** The URL that answered, after redirects, when the transport tells (Node http, XHR). */
function answeringUrl(response: AxiosResponse): string | undefined {
  const request = response.request as
    | { res?: { responseUrl?: unknown }; responseURL?: unknown }
    | undefined;
  const url = request?.res?.responseUrl ?? request?.responseURL;
  return typeof url === 'string' && url !== '' ? url : undefined;
}

/**
 * For a SOAP call whose body is in-memory text: a function giving that body with a token in its
 * `<sessionId>`. A stream is sent as is.
 */
function soapTemplate(data: unknown): ((token: string) => string | Buffer) | undefined {
  if (typeof data === 'string') {
    if (withSoapSession(data, 'probe') === undefined) return undefined;
    return (token) => withSoapSession(data, token) ?? data;
  }
  if (Buffer.isBuffer(data)) {
    if (withSoapSessionBytes(data, 'probe') === undefined) return undefined;
    return (token) => Buffer.from(withSoapSessionBytes(data, token) ?? data);
  }
  return undefined;
}

function isNodeStream(data: unknown): data is Readable {
  return data instanceof Readable;
}

/**
 * Reads up to `limit` bytes of a stream, and answers them with a stream that yields them and then
 * the rest: the caller still gets the whole body. Destroying the replay destroys the original.
 */
async function peekStream(
  stream: Readable,
  limit: number,
  signal: AbortSignal | undefined,
): Promise<{ head: Buffer; replay: Readable }> {
  const iterator = stream[Symbol.asyncIterator]();
  const chunks: Buffer[] = [];
  let size = 0;
  let done = false;
  // Bounded by time and by the caller's signal: a stalled body is judged on its status alone.
  const bound = AbortSignal.timeout(DETECTION_PEEK_TIMEOUT_MS);
  const stop = signal === undefined ? bound : AbortSignal.any([bound, signal]);
  let pending: Promise<IteratorResult<unknown>> | undefined;
  try {
    while (size < limit) {
      pending = iterator.next();
      const next = await raceAbort(pending, stop);
      pending = undefined;
      if (next.done) {
        done = true;
        break;
      }
      const chunk = Buffer.isBuffer(next.value) ? next.value : Buffer.from(String(next.value));
      chunks.push(chunk);
      size += chunk.length;
    }
  } catch {
    // A late body: the rest still follows. A broken one: what was read is all there is.
    if (!stop.aborted) {
      done = true;
      pending = undefined;
    }
  }
  const head = Buffer.concat(chunks);
  const replay = Readable.from(
    (async function* () {
      if (head.length > 0) yield head;
      if (done) return;
      if (pending !== undefined) {
        const next = await pending;
        if (next.done) return;
        yield next.value;
      }
      for (;;) {
        const next = await iterator.next();
        if (next.done) return;
        yield next.value;
      }
    })(),
  );
  replay.once('close', () => stream.destroy());
  return { head, replay };
}

/** A 401 read as a stream (responseType: 'stream') holds its socket until destroyed. */
function destroyStream(data: unknown): void {
  if (typeof (data as { destroy?: unknown } | null)?.destroy === 'function') {
    (data as { destroy(): void }).destroy();
  }
}

type Outcome = { response: AxiosResponse; error?: never } | { response?: never; error: unknown };

function outcome(pending: Promise<AxiosResponse>): Promise<Outcome> {
  return pending.then(
    (response) => ({ response }),
    (error: unknown) => ({ error }),
  );
}

function settle(result: Outcome): AxiosResponse {
  if (result.response !== undefined) return result.response;
  throw result.error;
}

/** Waits for `promise`; an abort rejects with axios's usual `CanceledError`. */
function cancellable<T>(
  promise: Promise<T>,
  config: InternalAxiosRequestConfig,
  signal: AbortSignal | undefined,
): Promise<T> {
  if (signal === undefined) return promise;
  return raceAbort(promise, signal).catch((error: unknown) => {
    if (signal.aborted && error === signal.reason) throw new axios.CanceledError(undefined, config);
    throw error;
  });
}

/**
 * Whether the adapter can send `data` a second time: anything axios serialised already (strings,
 * buffers, numbers, URLSearchParams, Blob), but not a stream (a Node Readable, a web
 * ReadableStream, or a `form-data` package object, which is a stream too).
 */
function isReplayable(data: unknown): boolean {
  if (typeof data !== 'object' || data === null) return true;
  if (data instanceof ReadableStream) return false;
  return typeof (data as { pipe?: unknown }).pipe !== 'function' && !(Symbol.asyncIterator in data);
}

const NULL_BODY_STATUSES = new Set([101, 103, 204, 205, 304]);

/** A fetch `Response` view of an axios response, for the shared `isAuthFailure` predicate. */
function toFetchResponse(response: AxiosResponse, peeked?: Buffer): Response {
  const headers = new Headers();
  for (const [name, value] of Object.entries(response.headers ?? {})) {
    if (value === undefined || value === null) continue;
    headers.set(name, Array.isArray(value) ? value.join(', ') : String(value));
  }
  const { data } = response;
  let body: BodyInit | null = peeked === undefined ? null : new Uint8Array(peeked);
  if (peeked !== undefined) {
    // The head of a streamed body, already read.
  } else if (typeof data === 'string' || data instanceof ArrayBuffer || ArrayBuffer.isView(data)) {
    body = data as BodyInit;
  } else if (data !== undefined && data !== null && typeof data === 'object' && !('pipe' in data)) {
    body = JSON.stringify(data);
  }
  const status = response.status >= 200 && response.status <= 599 ? response.status : 500;
  return new Response(NULL_BODY_STATUSES.has(status) ? null : body, { status, headers });
}
