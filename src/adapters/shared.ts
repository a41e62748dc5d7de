import { ConfigError } from '../errors.js';
import { concat, readUpTo } from '../internal/bytes.js';
import { optionalFunction } from '../internal/options.js';
import { normaliseBaseUrl } from '../internal/url.js';
import type { AuthSession } from '../session/auth-session.js';

/** Options every adapter (fetch, axios, ky) accepts. */
export interface AdapterOptions {
  /**
   * Origins besides the session's instance origin that receive the bearer token, for example a
   * second My Domain host or `https://acme.my.site.com`. Plain http only for loopback.
   * @default []
   */
  origins?: string[];
  /**
   * Decides whether a response from an org origin means "the token was rejected": the adapter then
   * invalidates the token it sent and retries once with a new one. It gets its own copy of the
   * response, so reading the body does not consume the caller's.
   * @default a 401 from an org origin, except Salesforce's two 401s a new token cannot cure
   */
  isAuthFailure?: (response: Response) => boolean | Promise<boolean>;
}

/**
 * 401 answers that a new token does not cure: retrying them only burns a login.
 * @see ../shared/SALESFORCE.md "How the APIs say bad token"
 */
export const NON_CURABLE_401_MESSAGES: readonly string[] = [
  'This session is not valid for use with the REST API',
  'Connected app is not attached to Agent',
];

/** How many bytes of a response the default detection reads at most. */
const DETECTION_PEEK_BYTES = 16 * 1024;

/** What an adapter needs from its options, validated once when the adapter is created. */
export interface AdapterPolicy {
  readonly instanceUrl: string;
  /** Whether the bearer may go to this absolute URL. */
  isOrgUrl(url: string): boolean;
  /** Resolves a relative path against the instance URL; absolute URLs are returned unchanged. */
  resolve(input: string): string;
  /** Runs the configured or default detection on a copy of `response`. */
  isAuthFailure(response: Response): Promise<boolean>;
}

/** Validates adapter options against `session`; throws `ConfigError` naming the bad option. */
export function adapterPolicy(session: AuthSession, options: AdapterOptions): AdapterPolicy {
  if (typeof session !== 'object' || session === null || typeof session.getToken !== 'function') {
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

  const isOrgUrl = (url: string): boolean => {
    try {
      return origins.has(new URL(url).origin);
    } catch {
      return false;
    }
  };

  return {
    instanceUrl,
    isOrgUrl,
    resolve: (input) => resolveAgainst(instanceUrl, input),
    async isAuthFailure(response) {
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
      return isCurable401(response);
    },
  };
}

/** The default detection: a 401 whose body is not one of {@link NON_CURABLE_401_MESSAGES}. */
async function isCurable401(response: Response): Promise<boolean> {
  if (response.status !== 401) return false;
  const text = await peekText(response, DETECTION_PEEK_BYTES);
  return !NON_CURABLE_401_MESSAGES.some((message) => text.includes(message));
}

/** Reads up to `limit` bytes of a copy of the body, leaving the caller's body untouched. */
export async function peekText(response: Response, limit: number): Promise<string> {
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
export function resolveAgainst(instanceUrl: string, input: string): string {
  if (URL.canParse(input)) return input;
  if (input.startsWith('//')) return new URL(input, instanceUrl).href;
  return input.startsWith('/') ? instanceUrl + input : `${instanceUrl}/${input}`;
}
