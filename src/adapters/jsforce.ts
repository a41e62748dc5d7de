import type { Connection } from 'jsforce';
import { AuthError, ConfigError, ErrorCode } from '../errors.js';
import { optionalFunction, optionsObject, positiveMs } from '../internal/options.js';
import type { AuthSession } from '../session/auth-session.js';
import { adapterPolicy, reportRetry } from './shared.js';

/** A connection may ask for at most this many refreshes within {@link JSFORCE_REFRESH_WINDOW_MS}. */
export const JSFORCE_MAX_REFRESHES = 5;

/** The window {@link JSFORCE_MAX_REFRESHES} counts over. */
export const JSFORCE_REFRESH_WINDOW_MS = 60_000;

/** The Salesforce API version used when none is given. */
export const DEFAULT_API_VERSION = '62.0';

/** Options of {@link jsforceOptions}. */
export interface JsforceOptions {
  /** The API version jsforce uses. @default DEFAULT_API_VERSION */
  version?: string | undefined;
  /** @default JSFORCE_MAX_REFRESHES */
  maxRefreshes?: number | undefined;
  /** @default JSFORCE_REFRESH_WINDOW_MS */
  refreshWindowMs?: number | undefined;
  /** The clock for the refresh window. @default Date.now */
  now?: (() => number) | undefined;
}

/** What {@link jsforceOptions} answers: spread it into `new jsforce.Connection(...)`. */
export interface JsforceConnectionOptions {
  instanceUrl: string;
  accessToken: string;
  version: string;
  refreshFn: (
    conn: Connection,
    callback: (error: Error | null, accessToken?: string) => void,
  ) => void;
}

/**
 * jsforce asked for refreshes in a loop: the session handed back the token that was just rejected,
 * or a connection asked for more than `maxRefreshes` within `refreshWindowMs`. jsforce itself has
 * no cap and would resend forever.
 */
export class RefreshLoopError extends AuthError {
  constructor(reason: 'same-token' | 'too-many') {
    super(
      reason === 'same-token'
        ? 'The session returned the token jsforce just reported as rejected; not retrying'
        : 'jsforce asked for too many token refreshes in a short window; not retrying',
      ErrorCode.REFRESH_LOOP,
    );
  }
}

/**
 * Options for `new jsforce.Connection(...)` backed by `session`: the current token, the instance
 * URL and a `refreshFn`. The `refreshFn` invalidates the exact token jsforce holds, takes a fresh one
 * from the session, updates `conn.instanceUrl`, and breaks jsforce's unbounded refresh-and-resend
 * loop with a {@link RefreshLoopError}. Under Refresh Token Rotation it is rotation-safe, unlike
 * jsforce's own `oauth2` + `refreshToken` refresh, which drops the rotated token.
 *
 * @example
 * ```ts
 * import jsforce from 'jsforce';
 * const conn = new jsforce.Connection(await jsforceOptions(session));
 * const { records } = await conn.query('SELECT Id FROM Account');
 * ```
 */
export async function jsforceOptions(
  session: AuthSession,
  options: JsforceOptions = {},
): Promise<JsforceConnectionOptions> {
  const o = optionsObject(options);
  adapterPolicy(session, {});
  const version = o.version ?? DEFAULT_API_VERSION;
  if (typeof version !== 'string' || !/^\d+\.\d$/.test(version)) {
    throw new ConfigError('version', 'must look like "62.0"');
  }
  const maxRefreshes = o.maxRefreshes ?? JSFORCE_MAX_REFRESHES;
  const windowMs = positiveMs('refreshWindowMs', o.refreshWindowMs, JSFORCE_REFRESH_WINDOW_MS);
  if (!Number.isSafeInteger(maxRefreshes) || maxRefreshes < 1) {
    throw new ConfigError('maxRefreshes', 'must be a whole number, 1 or more');
  }
  const now = optionalFunction('now', o.now) ?? Date.now;
  const refreshes = new WeakMap<object, number[]>();

  const refreshFn: JsforceConnectionOptions['refreshFn'] = (conn, callback) => {
    const stale = conn.accessToken ?? undefined;
    const at = now();
    const recent = (refreshes.get(conn) ?? []).filter((t) => at - t < windowMs);
    recent.push(at);
    refreshes.set(conn, recent);
    (async () => {
      if (recent.length > maxRefreshes) throw new RefreshLoopError('too-many');
      if (stale) await session.invalidate(stale);
      const fresh = await session.getToken();
      if (fresh === stale) throw new RefreshLoopError('same-token');
      conn.instanceUrl = session.instanceUrl;
      return fresh;
    })().then(
      (fresh) => {
        reportRetry('jsforce', session.instanceUrl, 0, true);
        callback(null, fresh);
      },
      (error: unknown) => {
        reportRetry('jsforce', session.instanceUrl, 0, false);
        callback(error instanceof Error ? error : new AuthError(String(error)));
      },
    );
  };

  return {
    instanceUrl: session.instanceUrl,
    accessToken: await session.getToken(),
    version,
    refreshFn,
  };
}

/** Options of {@link jsforceConnection}. */
export interface JsforceConnectionFactoryOptions extends JsforceOptions {
  /** The jsforce `Connection` class. @default the one from the installed `jsforce` package */
  Connection?: (new (options: JsforceConnectionOptions) => Connection) | undefined;
}

/**
 * A ready jsforce `Connection` backed by `session`: `jsforceOptions` in one line.
 *
 * @example
 * ```ts
 * const conn = await jsforceConnection(fromEnv());
 * ```
 */
export async function jsforceConnection(
  session: AuthSession,
  options: JsforceConnectionFactoryOptions = {},
): Promise<Connection> {
  const { Connection: Ctor, ...rest } = optionsObject(options);
  const Connection =
    Ctor ?? ((await import('jsforce')).default.Connection as unknown as NonNullable<typeof Ctor>);
  return new Connection(await jsforceOptions(session, rest));
}
