import { RefreshTokenHandlerError, SessionRevokedError } from '../errors.js';
import { optionalFunction, optionsObject, requiredString } from '../internal/options.js';
import { runtimeProcess } from '../internal/runtime.js';
import { within } from '../internal/timeout.js';
import { requiredToken } from '../internal/token-text.js';
import { CachingSession, type CachingSessionOptions } from '../session/caching-session.js';
import { secretFingerprint } from '../session/shared-store.js';
import type { MintContext, TokenSource } from '../session/token-source.js';
import {
  DEFAULT_LOGIN_URL,
  requestToken,
  revokeToken,
  type TokenEndpointOptions,
  tokenEndpoint,
} from '../token-endpoint.js';
import { seedInfo, type TokenInfo } from '../token-info.js';

/** Options of {@link RefreshTokenAuth}. */
export interface RefreshTokenOptions extends TokenEndpointOptions, CachingSessionOptions {
  /** The connected app's client id ("consumer key"). */
  clientId: string;
  /** The client secret, for confidential apps only; omitted from the request when absent. */
  clientSecret?: string | undefined;
  /** The refresh token. Kept private; never logged. */
  refreshToken: string;
  /** @default DEFAULT_LOGIN_URL (`https://login.salesforce.com`); your My Domain URL works too. */
  loginUrl?: string | undefined;
  /**
   * Called with every new refresh token Salesforce issues under Refresh Token Rotation, awaited
   * before the new access token is handed out: persist it here, or the next process start presents
   * a dead token. It must not call `getToken()` on this session. If it throws, the new token is kept
   * in memory, the session goes on, and a {@link RefreshTokenHandlerError} is emitted as a process
   * warning.
   */
  onRefreshTokenRotated?: ((refreshToken: string) => void | Promise<void>) | undefined;
  /** An access token already in hand (for example from a code exchange), used until rejected. */
  accessToken?: string | undefined;
}

/**
 * Runs one refresh while holding a lock shared with other processes (`fromEnv`'s lock next to
 * `SF_REFRESH_TOKEN_FILE`): calls `refresh` with the refresh token to present, which is `current`
 * unless another process rotated it meanwhile, and keeps the lock until `refresh` settles (by then
 * the rotated token went to `onRefreshTokenRotated`). Internal: not exported from the package root.
 */
export type RefreshGuard = <T>(
  current: string,
  refresh: (refreshToken: string) => Promise<T>,
) => Promise<T>;

/** The options key of a {@link RefreshGuard}: a symbol, so it stays out of the public options. */
export const refreshGuard: unique symbol = Symbol('cirrus-auth.refreshGuard');

/**
 * A session for the refresh token grant, safe under Refresh Token Rotation: refreshes are
 * serialised (two requests never carry the same refresh token), each rotated token is adopted
 * before anything else about the answer can fail, and a caller that aborts does not strand a
 * rotation. Safe to call concurrently; at most one refresh runs per session.
 *
 * @see https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_refresh_token_flow.htm
 * @example
 * ```ts
 * const session = new RefreshTokenAuth({
 *   clientId: process.env.SF_CLIENT_ID ?? '',
 *   refreshToken: await store.load(),
 *   instanceUrl: 'https://acme.my.salesforce.com',
 *   onRefreshTokenRotated: (token) => store.save(token),
 * });
 * ```
 */
export class RefreshTokenAuth extends CachingSession {
  readonly #source: RefreshTokenSource;

  constructor(options: RefreshTokenOptions) {
    const source = refreshToken(options);
    super(source, options);
    this.#source = source;
  }

  /**
   * Revokes the refresh token at Salesforce (which also kills its access tokens), after any refresh
   * in flight. From then on `getToken()` rejects with {@link SessionRevokedError}. Calling it again
   * does nothing.
   */
  revoke(): Promise<void> {
    return this.retireSecret((secret) => this.#source.revoke(secret));
  }
}

/** The refresh token grant as a source, plus revocation of its current refresh token. */
export interface RefreshTokenSource extends TokenSource {
  /**
   * Revokes `current` (the session's latest refresh token; the initial one when undefined) at
   * Salesforce; from then on `mint` rejects with {@link SessionRevokedError}. Idempotent.
   */
  revoke(current: string | undefined): Promise<void>;
}

/**
 * The refresh token grant as a {@link TokenSource}, safe under Refresh Token Rotation: each `mint`
 * presents the context's current refresh token once and adopts a rotated one through
 * `adoptSecret` before anything else about the answer can fail. No cache.
 * `new RefreshTokenAuth(options)` is `new CachingSession(refreshToken(options), options)`.
 */
export function refreshToken(options: RefreshTokenOptions): RefreshTokenSource {
  const o = optionsObject(options);
  const clientId = requiredString('clientId', o.clientId);
  const clientSecret =
    o.clientSecret === undefined ? undefined : requiredString('clientSecret', o.clientSecret);
  const initial = requiredString('refreshToken', o.refreshToken);
  const state = { revoked: false };
  const onRotated = optionalFunction('onRefreshTokenRotated', o.onRefreshTokenRotated);
  const seed =
    o.accessToken === undefined ? undefined : requiredToken('accessToken', o.accessToken);
  const endpoint = tokenEndpoint(o, DEFAULT_LOGIN_URL);
  const guard = optionalFunction(
    'refreshGuard',
    (o as { [refreshGuard]?: RefreshGuard })[refreshGuard],
  );

  // Handler calls run one after another, in rotation order, even when one outlives timeoutMs
  // and the engine moves on: a late call must never persist an older token over a newer one.
  let handlers = Promise.resolve();
  const inOrder =
    onRotated &&
    ((token: string) => {
      const call = handlers.then(() => onRotated(token));
      handlers = call.then(
        () => {},
        () => {},
      );
      return call;
    });
  // The engine keeps the current refresh token (in the shared store when there is one) and hands
  // it to each mint; a rotated one goes back through adoptSecret before anything else happens.
  const mintRefreshToken = ({ secret, adoptSecret }: MintContext) => {
    if (state.revoked) return Promise.reject(new SessionRevokedError());
    const current = secret ?? initial;
    const refresh = async (presented: string) => {
      // Another process's rotation, seen by the guard: this session's token is dead, adopt it.
      if (presented !== current) await adoptSecret(presented);
      const params: Record<string, string> = {
        grant_type: 'refresh_token',
        refresh_token: presented,
        client_id: clientId,
      };
      if (clientSecret !== undefined) params.client_secret = clientSecret;
      const adoptRefreshToken = async (rotated: string): Promise<void> => {
        if (rotated === presented) return;
        await adoptSecret(rotated);
        await reportRotation(inOrder, rotated, endpoint.timeoutMs);
      };
      return requestToken(endpoint, params, { adoptRefreshToken });
    };
    return guard === undefined ? refresh(current) : guard(current, refresh);
  };
  const info = (o as { [seedInfo]?: TokenInfo })[seedInfo];
  return {
    instanceUrl: endpoint.instanceUrl,
    mint: mintRefreshToken,
    seed: seed === undefined ? undefined : { accessToken: seed, info },
    secret: initial,
    timeoutMs: endpoint.timeoutMs,
    fetch: endpoint.fetch,
    identity: {
      loginUrl: endpoint.loginUrl,
      clientId,
      grant: 'refresh_token',
      user: `rt:${secretFingerprint(initial)}`,
    },
    async revoke(current) {
      if (state.revoked) return;
      await revokeToken(endpoint, current ?? initial);
      state.revoked = true;
    },
  };
}

/**
 * Hands a new refresh token to the app's handler, at most `timeoutMs` long (the mint lock is held
 * meanwhile). A handler that throws or hangs is reported as a {@link RefreshTokenHandlerError}
 * process warning; the token stays adopted in memory either way.
 */
export async function reportRotation(
  handler: ((refreshToken: string) => void | Promise<void>) | undefined,
  refreshToken: string,
  timeoutMs: number,
): Promise<void> {
  if (handler === undefined) return;
  try {
    const outcome = await within(() => handler(refreshToken), timeoutMs);
    if (!outcome.done) {
      warn(
        new RefreshTokenHandlerError({
          cause: new Error(`onRefreshTokenRotated took over ${timeoutMs} ms`),
        }),
      );
    }
  } catch (error) {
    warn(new RefreshTokenHandlerError({ cause: error }));
  }
}

/** A process warning in Node, Bun and Deno; `console.warn` where there is no `process`. */
function warn(error: Error): void {
  const host = runtimeProcess();
  if (typeof host?.emitWarning === 'function') host.emitWarning(error);
  else console.warn(error);
}
