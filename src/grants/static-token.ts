import { ConfigError } from '../errors.js';
import { checkSignal, raceAbort } from '../internal/abort.js';
import { optionsObject } from '../internal/options.js';
import { requiredToken } from '../internal/token-text.js';
import { normaliseBaseUrl } from '../internal/url.js';
import { type AuthSession, type GetTokenOptions, peekToken } from '../session/auth-session.js';
import { fetchIdentity, type Identity, type IdentityOptions } from '../session/identity.js';
import { Redacted } from '../session/redacted.js';
import { DEFAULT_TIMEOUT_MS } from '../token-endpoint.js';
import { bareTokenInfo, seedInfo, type TokenInfo } from '../token-info.js';

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
  readonly #accessToken: string;
  readonly #info: TokenInfo;
  #identity: Promise<Identity> | undefined;

  constructor(options: StaticTokenOptions) {
    super();
    const o = optionsObject(options);
    // A token no header can carry would fail at the first request, quoted in the runtime's error.
    const accessToken = requiredToken('accessToken', o.accessToken);
    this.instanceUrl = normaliseBaseUrl('instanceUrl', o.instanceUrl);
    this.#token = Promise.resolve(accessToken);
    this.#accessToken = accessToken;
    // From the web server flow: what the code exchange's answer said.
    const seeded = (o as { [seedInfo]?: TokenInfo })[seedInfo];
    this.#info = seeded ?? bareTokenInfo(this.instanceUrl);
  }

  /**
   * What is known about the token: its instance URL, and when the session came from a code
   * exchange (`WebServerFlow.complete`), everything that answer said.
   */
  async getTokenInfo(options?: GetTokenOptions): Promise<TokenInfo> {
    checkSignal(options?.signal)?.throwIfAborted();
    return this.#info;
  }

  /**
   * The token's identity, from the identity URL (or userinfo) at the instance; fails with an
   * `IdentityError` once the token is rejected (a static token cannot be replaced). Cached.
   */
  identity(options?: IdentityOptions): Promise<Identity> {
    const signal = checkSignal(options?.signal);
    if (signal?.aborted) return Promise.reject(signal.reason);
    const promise =
      this.#identity ??
      fetchIdentity(
        {
          session: this,
          infoOf: () => this.#info,
          origins: [],
          fetch: (input, init) => globalThis.fetch(input, init),
          timeoutMs: DEFAULT_TIMEOUT_MS,
        },
        undefined,
      );
    this.#identity = promise;
    promise.catch(() => {
      if (this.#identity === promise) this.#identity = undefined;
    });
    return raceAbort(promise, signal);
  }

  /** The configured token: what {@link getToken} resolves to, synchronously (for adapters). */
  [peekToken](): string {
    return this.#accessToken;
  }

  /** Resolves to the configured token (rejects at once if `signal` is already aborted). */
  getToken(options?: GetTokenOptions): Promise<string> {
    // The hot path: one settled promise, no async frame.
    if (options === undefined || options.signal === undefined) return this.#token;
    try {
      checkSignal(options.signal)?.throwIfAborted();
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#token;
  }

  /** A no-op: a static token cannot be replaced. */
  async invalidate(staleToken: string): Promise<void> {
    if (typeof staleToken !== 'string') throw new ConfigError('staleToken', 'must be a string');
  }
}
