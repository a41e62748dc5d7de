import type { Dispatcher } from 'undici';
import { optionsObject } from '../internal/options.js';
import type { AuthSession } from '../session/auth-session.js';
import {
  type AdapterOptions,
  type AdapterPolicy,
  adapterPolicy,
  BULK_SESSION_HEADER,
  DETECTION_PEEK_BYTES,
  fetchHeaders,
  formSize,
  type OrgApi,
  withSoapSession,
  withSoapSessionBytes,
} from './shared.js';

/** Options of {@link authInterceptor}: the ones every adapter shares. */
export type UndiciAuthOptions = AdapterOptions;

type DispatchOptions = Dispatcher.DispatchOptions;
type Handler = Dispatcher.DispatchHandler;
type Controller = Dispatcher.DispatchController;
type Dispatch = Dispatcher['dispatch'];

/**
 * An undici interceptor, for `dispatcher.compose(authInterceptor(session))`: requests to the org
 * made with `undici.request`, `stream`, `pipeline` (or `fetch` given that dispatcher) carry the
 * session where each API reads it (the bearer; also `X-SFDC-Session` for Bulk API 1.0 and the
 * envelope's `<sessionId>` for SOAP), and an auth failure is retried once with a new token,
 * invalidating exactly the token sent. Requests to any other origin pass through untouched.
 * A body that can be sent twice (none, a string, bytes, a `FormData`, a `Blob`) is retried; a
 * stream body is not (the 401 is returned as it is).
 *
 * Compose it first, so that it is the innermost interceptor: then undici's redirect interceptor,
 * composed after it, hands it every hop, and only hops to the org get the session.
 *
 * @example
 * ```ts
 * import { Agent, interceptors, request } from 'undici';
 * import { authInterceptor } from 'cirrus-auth/undici';
 * const dispatcher = new Agent().compose(authInterceptor(session), interceptors.redirect());
 * const { statusCode, body } = await request(`${session.instanceUrl}/services/data/v62.0/limits`, { dispatcher });
 * ```
 */
export function authInterceptor(
  session: AuthSession,
  options: UndiciAuthOptions = {},
): Dispatcher.DispatcherComposeInterceptor {
  const policy = adapterPolicy(session, optionsObject(options));
  return (dispatch) =>
    function cirrusAuthInterceptor(opts: DispatchOptions, handler: Handler): boolean {
      const url = urlOf(opts);
      const requested = url === undefined ? undefined : policy.apiOf(url);
      if (url === undefined || requested === undefined || opts.upgrade) {
        return dispatch(opts, handler);
      }
      const api: OrgApi =
        requested === 'soap' && soapText(opts.body) === undefined ? 'rest' : requested;
      new AuthCall(policy, session, dispatch, opts, handler, api, url).start();
      return true;
    };
}

function urlOf(opts: DispatchOptions): string | undefined {
  try {
    return new URL(opts.path, opts.origin as string | URL).href;
  } catch {
    return undefined;
  }
}

/** The envelope text of a SOAP body with a `<sessionId>` to write, or `undefined`. */
function soapText(body: DispatchOptions['body']): string | undefined {
  const text =
    typeof body === 'string'
      ? body
      : body instanceof Uint8Array
        ? new TextDecoder().decode(body)
        : undefined;
  return text !== undefined && withSoapSession(text, 'probe') !== undefined ? text : undefined;
}

/** Whether undici can send `body` again: a stream or an iterator is consumed by the first send. */
function isReplayable(body: DispatchOptions['body']): boolean {
  return (
    body === undefined ||
    body === null ||
    typeof body === 'string' ||
    body instanceof Uint8Array ||
    // By tag, not by class: undici's own FormData and Blob are not the global ones.
    ['FormData', 'Blob', 'File'].includes(
      (body as { [Symbol.toStringTag]?: unknown })[Symbol.toStringTag] as string,
    )
  );
}

/** Dispatch headers in any of undici's shapes, as a list of pairs. */
function headerPairs(headers: DispatchOptions['headers']): [string, string][] {
  if (headers === undefined || headers === null) return [];
  const pairs: [string, string][] = [];
  const add = (name: unknown, value: unknown) => {
    if (value === undefined || value === null) return;
    for (const one of Array.isArray(value) ? value : [value])
      pairs.push([String(name), String(one)]);
  };
  if (Array.isArray(headers)) {
    if (headers.every((item) => Array.isArray(item))) {
      for (const [name, value] of headers as unknown as [string, string][]) add(name, value);
    } else {
      for (let i = 0; i + 1 < headers.length; i += 2) add(headers[i], headers[i + 1]);
    }
  } else if (typeof (headers as Iterable<unknown>)[Symbol.iterator] === 'function') {
    for (const [name, value] of headers as Iterable<[string, string]>) add(name, value);
  } else {
    for (const [name, value] of Object.entries(headers)) add(name, value);
  }
  return pairs;
}

/** A controller that stays the same for the caller's handler across the attempts of one call. */
class CallController implements Controller {
  target: Controller | undefined;
  #aborted = false;
  #paused = false;
  #reason: Error | null = null;
  readonly #onAbort: (reason: Error) => void;

  constructor(onAbort: (reason: Error) => void) {
    this.#onAbort = onAbort;
  }
  get aborted(): boolean {
    return this.#aborted || (this.target?.aborted ?? false);
  }
  get paused(): boolean {
    return this.#paused;
  }
  get reason(): Error | null {
    return this.#reason ?? this.target?.reason ?? null;
  }
  abort(reason: Error): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#reason = reason;
    this.target?.abort(reason);
    this.#onAbort(reason);
  }
  pause(): void {
    this.#paused = true;
    this.target?.pause();
  }
  resume(): void {
    this.#paused = false;
    this.target?.resume();
  }
}

/** One request through the interceptor: the first attempt and, at most, one auth retry. */
class AuthCall {
  readonly #controller: CallController;
  readonly #waiting = new AbortController();
  #settled = false;
  #retried = false;

  readonly policy: AdapterPolicy;
  readonly session: AuthSession;
  readonly dispatch: Dispatch;
  readonly opts: DispatchOptions;
  readonly handler: Handler;
  readonly api: OrgApi;
  readonly url: string;

  constructor(
    policy: AdapterPolicy,
    session: AuthSession,
    dispatch: Dispatch,
    opts: DispatchOptions,
    handler: Handler,
    api: OrgApi,
    url: string,
  ) {
    this.policy = policy;
    this.session = session;
    this.dispatch = dispatch;
    this.opts = opts;
    this.handler = handler;
    this.api = api;
    this.url = url;
    this.#controller = new CallController((reason) => {
      this.#waiting.abort(reason);
      this.fail(reason);
    });
  }

  get signal(): AbortSignal {
    return this.#waiting.signal;
  }

  get retried(): boolean {
    return this.#retried;
  }

  get controller(): CallController {
    return this.#controller;
  }

  /** The caller's handler learns of the call at once, so an abort while a token is awaited works. */
  start(): void {
    this.handler.onRequestStart?.(this.#controller, {});
    if (this.#controller.aborted) return;
    this.#send(undefined).catch((error: unknown) => this.fail(error as Error));
  }

  /** Sends the one retry with `fresh`. */
  retry(fresh: string): void {
    this.#retried = true;
    this.#send(fresh).catch((error: unknown) => this.fail(error as Error));
  }

  /** A FormData body, serialised once: the retry then sends the same bytes and boundary. */
  #encoded: { body: Uint8Array; type: string } | undefined;

  async #send(fresh: string | undefined): Promise<void> {
    if (fresh === undefined) await this.#encodeForm();
    const token =
      fresh ?? this.policy.sendable(await this.session.getToken({ signal: this.#waiting.signal }));
    if (this.#settled) return;
    this.dispatch(this.#withSession(token), new Attempt(this, token));
  }

  /**
   * undici encodes a FormData on each dispatch, with a new multipart boundary: one up to
   * `maxReplayBodyBytes` is encoded here once instead (undici's own FormData copied into the
   * runtime's, whose Response encodes it). A larger one is left to undici: the retry then sends the
   * same parts under another boundary.
   */
  async #encodeForm(): Promise<void> {
    const body = this.opts.body as unknown;
    if ((body as { [Symbol.toStringTag]?: unknown })?.[Symbol.toStringTag] !== 'FormData') return;
    let form: FormData;
    if (body instanceof FormData) form = body;
    else {
      form = new FormData();
      for (const [name, value] of body as Iterable<[string, string | Blob]>)
        form.append(name, value);
    }
    if (formSize(form) > this.policy.maxReplayBodyBytes) return;
    const encoded = new Response(form);
    this.#encoded = {
      body: new Uint8Array(await encoded.arrayBuffer()),
      type: encoded.headers.get('content-type') ?? 'multipart/form-data',
    };
  }

  /** The caller's options with the session where this API reads it. */
  #withSession(token: string): DispatchOptions {
    const encoded = this.#encoded;
    const replaced = new Set(['authorization', BULK_SESSION_HEADER]);
    if (encoded !== undefined) replaced.add('content-type').add('content-length');
    const headers = headerPairs(this.opts.headers).filter(
      ([name]) => !replaced.has(name.toLowerCase()),
    );
    if (encoded !== undefined) headers.push(['content-type', encoded.type]);
    headers.push(['authorization', `Bearer ${token}`]);
    if (this.api === 'bulk') headers.push([BULK_SESSION_HEADER, token]);
    let body = encoded?.body ?? this.opts.body;
    if (this.api === 'soap') {
      body =
        typeof body === 'string'
          ? withSoapSession(body, token)
          : withSoapSessionBytes(body as Uint8Array, token);
      const length =
        typeof body === 'string'
          ? new TextEncoder().encode(body).byteLength
          : (body as Uint8Array).byteLength;
      for (const pair of headers)
        if (pair[0].toLowerCase() === 'content-length') pair[1] = String(length);
    }
    return {
      ...this.opts,
      headers: headers.flat(),
      body,
      // The session SOAP and Bulk 1.0 carry in the body or X-SFDC-Session must not follow a redirect.
      ...(this.api === 'soap' || this.api === 'bulk' ? { maxRedirections: 0 } : {}),
    } as DispatchOptions;
  }

  /** Hands the caller its answer: the status, headers and body an attempt held back. */
  deliver(
    status: number,
    headers: Record<string, string | string[]>,
    statusMessage: string,
    chunks: Buffer[],
    trailers: Record<string, string | string[]> | undefined,
  ): void {
    if (this.#settled) return;
    const handler = this.handler;
    handler.onResponseStart?.(this.#controller, status, headers, statusMessage);
    for (const chunk of chunks) handler.onResponseData?.(this.#controller, chunk);
    if (trailers !== undefined) this.end(trailers);
  }

  end(trailers: Record<string, string | string[]>): void {
    if (this.#settled) return;
    this.#settled = true;
    this.handler.onResponseEnd?.(this.#controller, trailers);
  }

  fail(error: Error): void {
    if (this.#settled) return;
    this.#settled = true;
    this.handler.onResponseError?.(this.#controller, error);
  }
}

/**
 * One attempt's answer. An answer that cannot be an auth failure streams straight to the caller;
 * one that may be is held back (up to {@link DETECTION_PEEK_BYTES}, the connection paused beyond
 * that) until the policy has judged it: then it is either handed over as it came or replaced by
 * the one retry.
 */
class Attempt implements Handler {
  #mode: 'pass' | 'hold' | 'dropped' = 'pass';
  #status = 0;
  #headers: Record<string, string | string[]> = {};
  #message = '';
  #chunks: Buffer[] = [];
  #size = 0;
  #judging = false;
  /** The trailers, once the held answer has ended. */
  #ended: Record<string, string | string[]> | undefined;
  #inner: Controller | undefined;

  readonly call: AuthCall;
  readonly token: string;

  constructor(call: AuthCall, token: string) {
    this.call = call;
    this.token = token;
  }

  onRequestStart(controller: Controller): void {
    this.#inner = controller;
    this.call.controller.target = controller;
    if (this.call.controller.aborted) controller.abort(this.call.controller.reason as Error);
    else if (this.call.controller.paused) controller.pause();
  }

  onRequestUpgrade(
    _controller: Controller,
    status: number,
    headers: Record<string, string | string[]>,
    socket: import('node:stream').Duplex,
  ): void {
    this.call.handler.onRequestUpgrade?.(this.call.controller, status, headers, socket);
  }

  onResponseStart(
    _controller: Controller,
    status: number,
    headers: Record<string, string | string[]>,
    statusMessage?: string,
  ): void {
    const { policy, api, url } = this.call;
    if (status < 200) return;
    if (!policy.mayBeAuthFailure(status, api)) {
      policy.accepted(this.token, url);
      this.call.deliver(status, headers, statusMessage ?? '', [], undefined);
      return;
    }
    this.#mode = 'hold';
    this.#status = status;
    this.#headers = headers;
    this.#message = statusMessage ?? '';
  }

  onResponseData(controller: Controller, chunk: Buffer): void {
    if (this.#mode === 'dropped') return;
    if (this.#mode === 'pass') {
      this.call.handler.onResponseData?.(this.call.controller, chunk);
      return;
    }
    this.#chunks.push(chunk);
    this.#size += chunk.byteLength;
    if (this.#size > DETECTION_PEEK_BYTES && !this.#judging) {
      // Judged on what has come; the rest waits until the decision.
      controller.pause();
      this.#judge(undefined);
    }
  }

  onResponseEnd(_controller: Controller, trailers: Record<string, string | string[]>): void {
    if (this.#mode === 'dropped') return;
    if (this.#mode === 'pass') {
      this.call.end(trailers);
      return;
    }
    if (this.#judging) {
      this.#ended = trailers;
      return;
    }
    this.#judge(trailers);
  }

  onResponseError(_controller: Controller, error: Error): void {
    if (this.#mode === 'dropped') return;
    this.call.fail(error);
  }

  /** Decides on the held answer (`trailers` once it has ended): hand it over, or retry once. */
  #judge(trailers: Record<string, string | string[]> | undefined): void {
    this.#judging = true;
    if (trailers !== undefined) this.#ended = trailers;
    const { call } = this;
    const response = new Response(
      this.#size === 0 ? null : new Uint8Array(Buffer.concat(this.#chunks, this.#size)),
      { status: this.#status, headers: fetchHeaders(this.#headers) },
    );
    const decided = call.retried
      ? call.policy
          .settleRetry(this.token, response, call.api, call.url, call.signal)
          .then(() => undefined)
      : call.policy.decideRetry(this.token, response, call.api, call.url, {
          adapter: 'undici',
          signal: call.signal,
          replayable: isReplayable(call.opts.body),
        });
    decided.then(
      (fresh) => {
        if (fresh !== undefined) {
          this.#mode = 'dropped';
          if (this.#ended === undefined)
            this.#inner?.abort(new Error('superseded by the auth retry'));
          call.retry(fresh);
          return;
        }
        this.#mode = 'pass';
        call.deliver(this.#status, this.#headers, this.#message, this.#chunks, this.#ended);
        this.#chunks = [];
        if (this.#ended === undefined) this.#inner?.resume();
      },
      (error: unknown) => {
        this.#mode = 'dropped';
        this.#inner?.abort(error as Error);
        call.fail(error as Error);
      },
    );
  }
}
