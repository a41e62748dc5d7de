import axios, { AxiosError, CanceledError } from 'axios';
import ky, { HTTPError, type KyInstance } from 'ky';
import { expect } from 'vitest';
import { attachAuth } from '../../src/adapters/axios.js';
import { authFetch } from '../../src/adapters/fetch.js';
import { authHooks } from '../../src/adapters/ky.js';
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
  name: 'fetch' | 'axios' | 'ky';
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
  expectUsual401(outcome) {
    expect(outcome.error).toBeUndefined();
    expect(outcome.status).toBe(401);
  },
  expectAbortError(error) {
    expect(error).toMatchObject({ name: 'AbortError' });
  },
  authErrorOf: (error) => error,
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

/** Every adapter the contract covers: axios with and without a `baseURL`, ky with and without retry. */
export const drivers: Driver[] = [
  fetchDriver,
  axiosDriver(true),
  axiosDriver(false),
  kyDriver(),
  kyDriver(0),
];
