import axios, { AxiosError, CanceledError } from 'axios';
import got, { HTTPError as GotHTTPError, RequestError as GotRequestError } from 'got';
import ky, { HTTPError, type KyInstance } from 'ky';
import { Agent, interceptors, FormData as UndiciFormData, request as undiciRequest } from 'undici';
import { expect } from 'vitest';
import { attachAuth } from '../../src/adapters/axios.js';
import { authFetch } from '../../src/adapters/fetch.js';
import { authHooks as gotAuthHooks } from '../../src/adapters/got.js';
import { jsforceConnection, RefreshLoopError } from '../../src/adapters/jsforce.js';
import { authHooks } from '../../src/adapters/ky.js';
import { authInterceptor } from '../../src/adapters/undici.js';
import type { AdapterOptions, AuthSession } from '../../src/index.js';

/** A request body, in a form each driver turns into its client's own way of sending it. */
export type BodyCase =
  | { kind: 'json'; value: unknown }
  | { kind: 'text'; value: string }
  | { kind: 'urlencoded'; value: Record<string, string> }
  | { kind: 'form'; fields: Record<string, string>; file: Uint8Array }
  | { kind: 'binary'; bytes: Uint8Array };

/** One logical request through an adapter. */
export interface Call {
  url: string;
  method?: string;
  headers?: Record<string, string>;
  body?: BodyCase;
  signal?: AbortSignal;
}

/** What came back: a status and body, or what the client threw (with the status it carried). */
export interface Outcome {
  status: number | undefined;
  text: string;
  error?: unknown;
}

export interface Client {
  send(call: Call): Promise<Outcome>;
}

/** One adapter as the contract suite drives it. */
export interface Driver {
  name: 'fetch' | 'axios' | 'ky' | 'jsforce' | 'got' | 'undici';
  /** How the suite names it. */
  label: string;
  /** A client of this kind wired to `session`. */
  client(session: AuthSession, options?: AdapterOptions): Client;
  /** Asserts `outcome` is a 401 surfaced the way this client normally surfaces one. */
  expectUsual401(outcome: Outcome): void;
  /** Asserts `error` is this client's usual abort error. */
  expectAbortError(error: unknown): void;
  /** The AuthError a token-endpoint failure became: the error itself or its documented cause. */
  authErrorOf(error: unknown): unknown;
  /**
   * Points of the contract this client cannot express (a reduced driver), by section or test
   * name; the suite says which it skips.
   */
  readonly cannot?: ReadonlySet<string>;
}

const bytesToBlob = (bytes: Uint8Array) =>
  new Blob([new Uint8Array(bytes)], { type: 'application/octet-stream' });

function formData(body: Extract<BodyCase, { kind: 'form' }>): FormData {
  const form = new FormData();
  for (const [key, value] of Object.entries(body.fields)) form.set(key, value);
  form.set('file', bytesToBlob(body.file), 'data.bin');
  return form;
}

/** Body and content type for clients that take a fetch `BodyInit`. */
function fetchBody(body: BodyCase | undefined): { body?: BodyInit; type?: string } {
  switch (body?.kind) {
    case undefined:
      return {};
    case 'json':
      return { body: JSON.stringify(body.value), type: 'application/json' };
    case 'text':
      return { body: body.value, type: 'text/plain' };
    case 'urlencoded':
      return { body: new URLSearchParams(body.value) };
    case 'form':
      return { body: formData(body) };
    case 'binary':
      return { body: new Uint8Array(body.bytes), type: 'application/octet-stream' };
  }
}

function withType(headers: Record<string, string> | undefined, type: string | undefined) {
  return type === undefined ? { ...headers } : { 'content-type': type, ...headers };
}

/** For clients that hand a 401 back as an answer and abort with an AbortError (fetch, undici). */
const answersAs401: Pick<Driver, 'expectUsual401' | 'expectAbortError' | 'authErrorOf'> = {
  expectUsual401(outcome) {
    expect(outcome.error).toBeUndefined();
    expect(outcome.status).toBe(401);
  },
  expectAbortError(error) {
    expect(error).toMatchObject({ name: 'AbortError' });
  },
  authErrorOf: (error) => error,
};

export const fetchDriver: Driver = {
  name: 'fetch',
  label: 'fetch',
  client(session, options) {
    const sfFetch = authFetch(session, options);
    return {
      async send(call) {
        const { body, type } = fetchBody(call.body);
        const init: RequestInit = {
          method: call.method ?? 'GET',
          headers: withType(call.headers, type),
        };
        if (body !== undefined) init.body = body;
        if (call.signal !== undefined) init.signal = call.signal;
        const response = await sfFetch(call.url, init);
        return { status: response.status, text: await response.text() };
      },
    };
  },
  ...answersAs401,
};

export function axiosDriver(withBaseUrl: boolean): Driver {
  return {
    name: 'axios',
    label: withBaseUrl ? 'axios (baseURL)' : 'axios (no baseURL)',
    client(session, options) {
      const instance = axios.create(withBaseUrl ? { baseURL: session.instanceUrl } : {});
      attachAuth(instance, session, options);
      return {
        async send(call) {
          let data: unknown;
          let type: string | undefined;
          switch (call.body?.kind) {
            case 'json': {
              // axios serialises objects and arrays itself; a bare JSON primitive is sent as text.
              const value = call.body.value;
              data = typeof value === 'object' && value !== null ? value : JSON.stringify(value);
              type = 'application/json';
              break;
            }
            case 'text':
              data = call.body.value;
              type = 'text/plain';
              break;
            case 'urlencoded':
              data = new URLSearchParams(call.body.value);
              break;
            case 'form':
              data = formData(call.body);
              break;
            case 'binary':
              data = Buffer.from(call.body.bytes);
              type = 'application/octet-stream';
              break;
          }
          try {
            const response = await instance.request({
              url: call.url,
              method: call.method ?? 'GET',
              headers: withType(call.headers, type),
              data,
              responseType: 'text',
              ...(call.signal ? { signal: call.signal } : {}),
            });
            return { status: response.status, text: String(response.data) };
          } catch (error) {
            if (!(error instanceof AxiosError) || error.response === undefined) throw error;
            return {
              status: error.response.status,
              text: String(error.response.data ?? ''),
              error,
            };
          }
        },
      };
    },
    expectUsual401(outcome) {
      expect(outcome.error).toBeInstanceOf(AxiosError);
      expect((outcome.error as AxiosError).response?.status).toBe(401);
    },
    expectAbortError(error) {
      expect(error).toBeInstanceOf(CanceledError);
      expect(error).toMatchObject({ code: 'ERR_CANCELED' });
    },
    authErrorOf: (error) => error,
  };
}

/** ky with its default retry settings, or with `retry` set to `retry`. */
export function kyDriver(retry?: number): Driver {
  return {
    name: 'ky',
    label: retry === undefined ? 'ky (default retry)' : `ky (retry: ${retry})`,
    client(session, options) {
      const client: KyInstance = ky.create({
        baseUrl: session.instanceUrl,
        hooks: authHooks(session, options),
        ...(retry === undefined ? {} : { retry }),
      });
      return {
        async send(call) {
          const { body, type } = fetchBody(call.body);
          const url = call.url.startsWith('/') ? call.url.slice(1) : call.url;
          try {
            const response = await client(url, {
              method: call.method ?? 'GET',
              headers: withType(call.headers, type),
              ...(body === undefined ? {} : { body }),
              ...(call.signal ? { signal: call.signal } : {}),
            });
            return { status: response.status, text: await response.text() };
          } catch (error) {
            if (error instanceof HTTPError) {
              // ky has read the body already and keeps it, parsed, on `data`.
              const data: unknown = error.data;
              return {
                status: error.response.status,
                text: typeof data === 'string' ? data : JSON.stringify(data),
                error,
              };
            }
            throw error;
          }
        },
      };
    },
    expectUsual401(outcome) {
      expect(outcome.error).toBeInstanceOf(HTTPError);
      expect(outcome.status).toBe(401);
    },
    expectAbortError(error) {
      expect(error).toMatchObject({ name: 'AbortError' });
    },
    authErrorOf: (error) => error,
  };
}

/**
 * jsforce through `jsforceConnection`: `conn.request` with a string body. jsforce has no abort
 * signal, no way to send FormData or bytes through `request`, builds SOAP envelopes itself (a body
 * it is handed is sent as is) and takes no `isAuthFailure`: those points are left out. Its own
 * refresh-and-resend is the retry; a rejection surfaces as an error, not a response.
 */
export const jsforceDriver: Driver = {
  name: 'jsforce',
  label: 'jsforce',
  cannot: new Set([
    '4. the retried request is the same request',
    '7b. each API gets the session where it reads it, and survives a revocation',
    '8. abort',
    'isSalesforceAuthFailure',
    'the rejection body',
    'a lazy first token',
  ]),
  client(session, options) {
    let conn: Promise<import('jsforce').Connection> | undefined;
    return {
      async send(call) {
        conn ??= jsforceConnection(session, options?.origins ? { origins: options.origins } : {});
        const c = await conn;
        const { body, type } = fetchBody(call.body);
        try {
          const result = await c.request({
            method: (call.method ?? 'GET') as 'GET',
            url: call.url,
            headers: withType(call.headers, type),
            // jsforce sends a POST without a body with no length: the echo server waits for one.
            ...(typeof body === 'string' ? { body } : call.method === 'POST' ? { body: '' } : {}),
          });
          return {
            status: 200,
            text: typeof result === 'string' ? result : JSON.stringify(result),
          };
        } catch (error) {
          const e = error as { errorCode?: string; name?: string; message?: string };
          // An HTTP error jsforce parsed (its errorCode is Salesforce's), or the guard's loop error.
          const status =
            e.errorCode === 'INVALID_SESSION_ID' ||
            error instanceof RefreshLoopError ||
            /refresh session/.test(e.message ?? '')
              ? 401
              : undefined;
          if (status === undefined && e.errorCode === undefined) throw error;
          return { status, text: `${e.errorCode ?? ''} ${e.message ?? ''}`, error };
        }
      },
    };
  },
  expectUsual401(outcome) {
    // jsforce surfaces a rejection it will not retry as an error: the guard's RefreshLoopError,
    // jsforce's wrapped "Unable to refresh session", or the org's INVALID_SESSION_ID.
    expect(outcome.error).toBeInstanceOf(Error);
    expect(outcome.status).toBe(401);
  },
  expectAbortError() {
    throw new Error('jsforce has no abort signal');
  },
  authErrorOf: (error) => error,
};

/**
 * Every adapter the contract covers: fetch, axios with and without a `baseURL`, ky with and
 * without retry, and jsforce (reduced: see {@link jsforceDriver}).
 */
/** got 14+ with its default retry settings, through `got.extend({ hooks: authHooks(session) })`. */
export const gotDriver: Driver = {
  name: 'got',
  label: 'got',
  client(session, options) {
    const client = got.extend({
      prefixUrl: session.instanceUrl,
      hooks: gotAuthHooks(session, options),
    });
    return {
      async send(call) {
        // got's own way for a form: `form`; everything else as a fetch body.
        const urlencoded = call.body?.kind === 'urlencoded' ? call.body.value : undefined;
        const { body, type } = urlencoded === undefined ? fetchBody(call.body) : {};
        const url = call.url.startsWith('/') ? call.url.slice(1) : call.url;
        const absolute = /^https?:/.test(url);
        try {
          const response = await (absolute
            ? got.extend({ hooks: gotAuthHooks(session, options) })
            : client)(url, {
            method: (call.method ?? 'GET') as 'GET',
            headers: withType(call.headers, type),
            ...(body === undefined ? {} : { body: body as string }),
            ...(urlencoded === undefined ? {} : { form: urlencoded }),
            ...(call.signal ? { signal: call.signal } : {}),
          });
          return { status: response.statusCode, text: response.body };
        } catch (error) {
          if (error instanceof GotHTTPError) {
            return { status: error.response.statusCode, text: String(error.response.body), error };
          }
          throw error;
        }
      },
    };
  },
  expectUsual401(outcome) {
    expect(outcome.error).toBeInstanceOf(GotHTTPError);
    expect(outcome.status).toBe(401);
  },
  expectAbortError(error) {
    expect(error).toMatchObject({ name: 'AbortError' });
  },
  // got wraps what a hook throws in a RequestError: the AuthError is its cause.
  authErrorOf: (error) => (error instanceof GotRequestError ? error.cause : error),
};

/**
 * undici's own `request` over `new Agent().compose(authInterceptor(session), interceptors.redirect())`:
 * bodies as undici takes them (a string, bytes, FormData), answers read as text; a 401 is an answer.
 */
export const undiciDriver: Driver = {
  name: 'undici',
  label: 'undici (Dispatcher interceptor)',
  client(session, options) {
    const dispatcher = new Agent().compose(
      authInterceptor(session, options),
      interceptors.redirect({ maxRedirections: 3 }),
    );
    return {
      async send(call) {
        const { body, type } = fetchBody(call.body);
        let sent: string | Uint8Array | FormData | undefined;
        let contentType = type;
        if (body instanceof URLSearchParams) {
          sent = body.toString();
          contentType = 'application/x-www-form-urlencoded;charset=UTF-8';
        } else if (body instanceof FormData) {
          // undici's request takes its own FormData (the global one is Node's bundled copy's).
          const form = new UndiciFormData();
          for (const [name, value] of body) form.append(name, value as string);
          sent = form as unknown as FormData;
        } else sent = body as string | Uint8Array | undefined;
        const { statusCode, body: answer } = await undiciRequest(
          new URL(call.url, session.instanceUrl),
          {
            dispatcher,
            method: (call.method ?? 'GET') as 'GET',
            headers: withType(call.headers, contentType),
            ...(sent === undefined ? {} : { body: sent as string }),
            ...(call.signal ? { signal: call.signal } : {}),
          },
        );
        return { status: statusCode, text: await answer.text() };
      },
    };
  },
  ...answersAs401,
};

export const drivers: Driver[] = [
  fetchDriver,
  axiosDriver(true),
  axiosDriver(false),
  kyDriver(),
  kyDriver(0),
  gotDriver,
  undiciDriver,
  jsforceDriver,
];
