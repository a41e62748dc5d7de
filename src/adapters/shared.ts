import { ConfigError } from '../errors.js';
import { concat, readUpTo } from '../internal/bytes.js';
import { optionalFunction } from '../internal/options.js';
import { normaliseBaseUrl } from '../internal/url.js';
import type { AuthSession } from '../session/auth-session.js';
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
   * @default a 401 from an org origin, except Salesforce's two 401s a new token cannot cure
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
 * @see ../shared/SALESFORCE.md "How the APIs say bad token"
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

/** How many bytes of a response the default detection reads at most. */
/** How much of an error body the failure predicates read. */
export const DETECTION_PEEK_BYTES = 16 * 1024;

/** What an adapter needs from its options, validated once when the adapter is created. */
export interface AdapterPolicy {
  readonly instanceUrl: string;
  readonly maxReplayBodyBytes: number;
  /** Whether the bearer may go to this absolute URL: an org origin, and not an OAuth endpoint. */
  isOrgUrl(url: string): boolean;
  /** Resolves a relative path against the instance URL; absolute URLs are returned unchanged. */
  resolve(input: string): string;
  /** Runs the configured or default detection on a copy of `response`. */
  isAuthFailure(response: Response): Promise<boolean>;
  /** False when a response with this status cannot be an auth failure: no need to look closer. */
  mayBeAuthFailure(status: number): boolean;
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
  const isOrgUrl = (url: string): boolean => {
    // Fast path for the common absolute URL of an org origin: a prefix check and the path, as long
    // as the path has nothing a URL parser would rewrite (dot segments, backslashes).
    const prefix = prefixes.find((p) => url.startsWith(p));
    if (prefix !== undefined) {
      const path = url.slice(prefix.length - 1).split(/[?#]/, 1)[0] ?? '';
      if (!path.includes('/.') && !path.includes('\\')) return !OAUTH_ENDPOINT.test(path);
    }
    try {
      const parsed = new URL(url);
      return origins.has(parsed.origin) && !OAUTH_ENDPOINT.test(parsed.pathname);
    } catch {
      return false;
    }
  };

  return {
    instanceUrl,
    maxReplayBodyBytes,
    isOrgUrl,
    resolve: (input) => resolveAgainst(instanceUrl, input),
    mayBeAuthFailure: (status) => custom !== undefined || status === 401,
    async isAuthFailure(response) {
      if (custom === undefined && response.status !== 401) return false;
      // A redirect may have led elsewhere; a 401 from a host we sent no token to is not ours.
      if (response.url !== '' && !isOrgUrl(response.url)) return false;
      if (custom !== undefined) {
        const copy = response.clone();
        try {
          return (await custom(copy)) === true;
        } finally {
          // Stop the copy from buffering whatever the predicate did not read.
          copy.body?.cancel().catch(() => {});
        }
      }
      return isRestAuthFailure(response);
    },
  };
}

/**
 * The default `isAuthFailure`: a 401 (REST, Bulk 2.0, Connect, Apex REST) whose body is not one of
 * Salesforce's {@link NON_CURABLE_401_MESSAGES}. Reads at most 16 KiB of a copy of the body.
 */
export async function isRestAuthFailure(response: Response): Promise<boolean> {
  if (response.status !== 401) return false;
  const text = await peekText(response, DETECTION_PEEK_BYTES);
  return !NON_CURABLE_401_MESSAGES.some((message) => text.includes(message));
}

/**
 * An `isAuthFailure` for every Salesforce API, not only REST: {@link isRestAuthFailure}, plus a
 * SOAP or Metadata API fault (HTTP 500 carrying `INVALID_SESSION_ID`) and a Bulk API 1.0 error
 * (HTTP 400 carrying `<exceptionCode>InvalidSessionId</exceptionCode>`). Reads at most 16 KiB of a
 * copy of the body; the caller's body is untouched.
 * @see https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_calls_concepts_core_data_objects.htm
 * @example
 * ```ts
 * const sfFetch = authFetch(session, { isAuthFailure: isSalesforceAuthFailure });
 * ```
 */
export async function isSalesforceAuthFailure(response: Response): Promise<boolean> {
  if (response.status === 401) return isRestAuthFailure(response);
  if (response.status !== 500 && response.status !== 400) return false;
  const text = await peekText(response, DETECTION_PEEK_BYTES);
  return response.status === 500
    ? text.includes('INVALID_SESSION_ID')
    : /<exceptionCode>\s*InvalidSessionId\s*<\/exceptionCode>/.test(text);
}

/** Reads up to `limit` bytes of a copy of the body, leaving the caller's body untouched. */
async function peekText(response: Response, limit: number): Promise<string> {
  const body = response.clone().body;
  if (body === null) return '';
  const reader = body.getReader();
  try {
    const { chunks, size } = await readUpTo(reader, limit);
    return new TextDecoder().decode(concat(chunks, size));
  } catch {
    // A body that fails to read is judged on its status alone; the caller sees the failure itself.
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

/** Publishes an adapter's decision after an auth failure on the `cirrus-auth:retry` channel. */
export function reportRetry(
  adapter: RetryEvent['adapter'],
  instanceUrl: string,
  status: number,
  retried: boolean,
): void {
  publish('retry', () => ({ adapter, instanceUrl, status, retried }));
}

/** The size of a FormData's parts, without reading any file: strings as UTF-8 plus Blob sizes. */
export function formSize(form: FormData): number {
  let size = 0;
  for (const [name, value] of form) {
    size +=
      Buffer.byteLength(name) + (typeof value === 'string' ? Buffer.byteLength(value) : value.size);
  }
  return size;
}
