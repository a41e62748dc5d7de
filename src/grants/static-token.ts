import { ConfigError } from '../errors.js';
import { checkSignal } from '../internal/abort.js';
import { optionsObject } from '../internal/options.js';
import { requiredToken } from '../internal/token-text.js';
import { normaliseBaseUrl } from '../internal/url.js';
import type { AuthSession, GetTokenOptions } from '../session/auth-session.js';
import { Redacted } from '../session/redacted.js';

/** Options of {@link StaticTokenAuth}. */
export interface StaticTokenOptions {
  /** An access token obtained elsewhere (for example `sf org display`). Never logged. */
  accessToken: string;
  /** The org's instance URL. Plain http only for loopback. */
  instanceUrl: string;
}

/**
 * A session around one access token obtained elsewhere. It cannot mint: `invalidate` is a no-op, so
 * once the token is rejected every request fails until you build a new session.
 *
 * @example
 * ```ts
 * const session = new StaticTokenAuth({
 *   accessToken: process.env.SF_ACCESS_TOKEN ?? '',
 *   instanceUrl: 'https://acme.my.salesforce.com',
 * });
 * ```
 */
export class StaticTokenAuth extends Redacted implements AuthSession {
  readonly instanceUrl: string;
  readonly #token: Promise<string>;

  constructor(options: StaticTokenOptions) {
    super();
    const o = optionsObject(options);
    // A token no header can carry would fail at the first request, quoted in the runtime's error.
    const accessToken = requiredToken('accessToken', o.accessToken);
    this.instanceUrl = normaliseBaseUrl('instanceUrl', o.instanceUrl);
    this.#token = Promise.resolve(accessToken);
  }

  /** Resolves to the configured token (rejects at once if `signal` is already aborted). */
  async getToken(options?: GetTokenOptions): Promise<string> {
    checkSignal(options?.signal)?.throwIfAborted();
    return this.#token;
  }

  /** A no-op: a static token cannot be replaced. */
  async invalidate(staleToken: string): Promise<void> {
    if (typeof staleToken !== 'string') throw new ConfigError('staleToken', 'must be a string');
  }
}
