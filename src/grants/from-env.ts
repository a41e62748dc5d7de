import { ConfigError, InsecureUrlError, TokenStoreError } from '../errors.js';
import { acquireFileLock, type FileLock } from '../internal/file-lock.js';
import { MAX_TIMER_MS, optionalFunction, optionsObject, positiveMs } from '../internal/options.js';
import { nodeBuiltin, randomHex, runtimeProcess } from '../internal/runtime.js';
import type { CachingSessionOptions } from '../session/caching-session.js';
import { secretFingerprint } from '../session/shared-store.js';
import { DEFAULT_TIMEOUT_MS, type TokenEndpointOptions } from '../token-endpoint.js';
import { ClientCredentialsAuth } from './client-credentials.js';
import { JwtBearerAuth } from './jwt-bearer.js';
import {
  type RefreshGuard,
  RefreshTokenAuth,
  type RefreshTokenOptions,
  refreshGuard,
} from './refresh-token.js';
import { fromSfdxAuthUrl } from './sfdx-auth-url.js';
import { StaticTokenAuth } from './static-token.js';

/** Options of {@link fromEnv} that do not come from the environment. */
export interface FromEnvOptions
  extends Pick<TokenEndpointOptions, 'timeoutMs' | 'fetch'>,
    CachingSessionOptions,
    Pick<RefreshTokenOptions, 'onRefreshTokenRotated'> {}

/** Every session `fromEnv` can build. */
export type EnvSession = ClientCredentialsAuth | JwtBearerAuth | RefreshTokenAuth | StaticTokenAuth;

/** The grant `fromEnv` picked, and why: for `cirrus-auth check` and error messages. */
export type EnvGrant =
  | 'sfdx-auth-url'
  | 'refresh-token'
  | 'jwt-bearer'
  | 'client-credentials'
  | 'static-token';

/** Every variable `fromEnv` reads: each must be a string or absent. */
const VARIABLES = [
  'SFDX_AUTH_URL',
  'SF_REFRESH_TOKEN',
  'SF_REFRESH_TOKEN_FILE',
  'SF_PRIVATE_KEY',
  'SF_PRIVATE_KEY_FILE',
  'SF_CLIENT_ID',
  'SF_CLIENT_SECRET',
  'SF_USERNAME',
  'SF_INSTANCE_URL',
  'SF_LOGIN_URL',
  'SF_ACCESS_TOKEN',
] as const;

const MARKERS: Record<string, EnvGrant> = {
  SFDX_AUTH_URL: 'sfdx-auth-url',
  SF_REFRESH_TOKEN: 'refresh-token',
  SF_PRIVATE_KEY: 'jwt-bearer',
  SF_PRIVATE_KEY_FILE: 'jwt-bearer',
};

/**
 * Builds the session the environment describes. One variable picks the grant:
 *
 * | set | grant | also required | optional |
 * |---|---|---|---|
 * | `SFDX_AUTH_URL` | refresh token, from the URL | | `SF_LOGIN_URL`, `SF_ACCESS_TOKEN` |
 * | `SF_REFRESH_TOKEN` | refresh token | `SF_CLIENT_ID`, `SF_INSTANCE_URL` | `SF_CLIENT_SECRET`, `SF_LOGIN_URL`, `SF_ACCESS_TOKEN` |
 * | `SF_PRIVATE_KEY` or `SF_PRIVATE_KEY_FILE` | JWT bearer | `SF_CLIENT_ID`, `SF_USERNAME`, `SF_INSTANCE_URL` | `SF_LOGIN_URL` |
 * | `SF_CLIENT_SECRET` (none of the above) | client credentials | `SF_CLIENT_ID`, `SF_LOGIN_URL` | `SF_INSTANCE_URL` (default: `SF_LOGIN_URL`) |
 * | `SF_ACCESS_TOKEN` (alone) | static token | `SF_INSTANCE_URL` | |
 *
 * With a refresh token, `SF_REFRESH_TOKEN_FILE` names a file that keeps the rotated ones across
 * runs; processes sharing it take turns through a lock file next to it, so they never present one
 * token twice (which would revoke it and its whole family), and its directory must exist and be
 * writable.
 *
 * An ambiguous or incomplete set, or a variable that is not a string, is a `ConfigError` whose
 * `option` names a variable; no value is ever printed. `SF_PRIVATE_KEY` may hold a PEM with literal `\n` escapes, as CI secrets often do.
 *
 * @example
 * ```ts
 * const session = fromEnv(); // reads process.env
 * ```
 */
export function fromEnv(
  env: Record<string, string | undefined> = runtimeProcess()?.env ?? {},
  options: FromEnvOptions = {},
): EnvSession {
  try {
    return sessionFromEnv(env, options);
  } catch (error) {
    // A session's option came from a variable: name the variable, which is what the user set.
    let variable = error instanceof ConfigError ? VARIABLE_OF[error.option] : undefined;
    // Client credentials default the instance URL to SF_LOGIN_URL: that is the variable at fault.
    if (variable === 'SF_INSTANCE_URL' && selectGrant(env).get('SF_INSTANCE_URL') === undefined) {
      variable = 'SF_LOGIN_URL';
    }
    const given =
      variable !== undefined &&
      (options as Record<string, unknown>)[(error as ConfigError).option] !== undefined;
    if (variable === undefined || given) throw error;
    const renamed =
      error instanceof InsecureUrlError
        ? new InsecureUrlError(variable)
        : new ConfigError(variable, (error as ConfigError).problem);
    throw renamed;
  }
}

/** The variable each session option is read from. */
const VARIABLE_OF: Record<string, string> = {
  loginUrl: 'SF_LOGIN_URL',
  instanceUrl: 'SF_INSTANCE_URL',
  clientId: 'SF_CLIENT_ID',
  clientSecret: 'SF_CLIENT_SECRET',
  username: 'SF_USERNAME',
  privateKey: 'SF_PRIVATE_KEY',
  refreshToken: 'SF_REFRESH_TOKEN',
  accessToken: 'SF_ACCESS_TOKEN',
};

function sessionFromEnv(
  env: Record<string, string | undefined>,
  options: FromEnvOptions,
): EnvSession {
  const { grant, get } = selectGrant(env);
  optionsObject(options);
  optionalFunction('onRefreshTokenRotated', options.onRefreshTokenRotated);
  const need = (...names: string[]) => {
    const missing = names.filter((name) => get(name) === undefined);
    const [first] = missing;
    if (first !== undefined) {
      throw new ConfigError(
        first,
        `is required for the ${grant} grant (missing: ${missing.join(', ')})`,
      );
    }
    return names.map((name) => get(name) as string);
  };
  const optional = (name: string, value: string | undefined) =>
    value === undefined ? {} : { [name]: value };

  const refreshing = grant === 'sfdx-auth-url' || grant === 'refresh-token';
  const rotation = refreshTokenFile(
    refreshing ? get('SF_REFRESH_TOKEN_FILE') : undefined,
    options.onRefreshTokenRotated,
    grant === 'sfdx-auth-url' ? get('SFDX_AUTH_URL') : get('SF_REFRESH_TOKEN'),
    // A shared store already serialises refreshes across the fleet, and holds the newest token.
    options.store === undefined
      ? positiveMs('timeoutMs', options.timeoutMs, DEFAULT_TIMEOUT_MS, MAX_TIMER_MS)
      : undefined,
  );
  // With a shared store, key on the variable's token, not on a saved rotation of it: every process
  // of the fleet then meets in one entry, whatever its file holds.
  const storeKeyOf = (source: string) =>
    options.store === undefined || options.storeKey !== undefined
      ? {}
      : { storeKey: `env:${secretFingerprint(source)}` };
  switch (grant) {
    case 'sfdx-auth-url': {
      const [url] = need('SFDX_AUTH_URL');
      const session = fromSfdxAuthUrl(url as string, {
        ...options,
        ...rotation.handler,
        ...rotation.guard,
        ...optional('loginUrl', get('SF_LOGIN_URL')),
        ...optional('accessToken', get('SF_ACCESS_TOKEN')),
        ...storeKeyOf(url as string),
        ...rotation.saved,
      });
      return session;
    }
    case 'refresh-token': {
      const [refreshToken, clientId, instanceUrl] = need(
        'SF_REFRESH_TOKEN',
        'SF_CLIENT_ID',
        'SF_INSTANCE_URL',
      );
      return new RefreshTokenAuth({
        ...options,
        refreshToken: refreshToken as string,
        clientId: clientId as string,
        instanceUrl: instanceUrl as string,
        ...optional('clientSecret', get('SF_CLIENT_SECRET')),
        ...optional('loginUrl', get('SF_LOGIN_URL')),
        ...optional('accessToken', get('SF_ACCESS_TOKEN')),
        ...rotation.handler,
        ...rotation.guard,
        ...storeKeyOf(refreshToken as string),
        ...rotation.saved,
      });
    }
    case 'jwt-bearer': {
      const [clientId, username, instanceUrl] = need(
        'SF_CLIENT_ID',
        'SF_USERNAME',
        'SF_INSTANCE_URL',
      );
      return new JwtBearerAuth({
        ...options,
        clientId: clientId as string,
        username: username as string,
        instanceUrl: instanceUrl as string,
        privateKey: privateKeyFrom(get),
        ...optional('loginUrl', get('SF_LOGIN_URL')),
      });
    }
    case 'client-credentials': {
      const [clientId, clientSecret, loginUrl] = need(
        'SF_CLIENT_ID',
        'SF_CLIENT_SECRET',
        'SF_LOGIN_URL',
      );
      return new ClientCredentialsAuth({
        ...options,
        clientId: clientId as string,
        clientSecret: clientSecret as string,
        loginUrl: loginUrl as string,
        instanceUrl: get('SF_INSTANCE_URL') ?? (loginUrl as string),
      });
    }
    case 'static-token': {
      const [accessToken, instanceUrl] = need('SF_ACCESS_TOKEN', 'SF_INSTANCE_URL');
      return new StaticTokenAuth({
        accessToken: accessToken as string,
        instanceUrl: instanceUrl as string,
      });
    }
  }
}

/**
 * Which grant `env` selects, without building anything or reading a value beyond presence.
 * Throws the same `ConfigError` as {@link fromEnv} for an ambiguous or empty set.
 */
export function selectGrant(
  env: Record<string, string | undefined> = runtimeProcess()?.env ?? {},
): {
  grant: EnvGrant;
  get: (name: string) => string | undefined;
} {
  if (typeof env !== 'object' || env === null) throw new ConfigError('env', 'must be an object');
  // All of them first, whichever the grant: a number or an object in any variable is a mistake.
  for (const name of VARIABLES) {
    const value: unknown = env[name];
    if (value !== undefined && typeof value !== 'string')
      throw new ConfigError(name, 'must be a string');
  }
  const get = (name: string) => {
    const value = env[name]?.trim();
    return value === undefined || value === '' ? undefined : value;
  };
  const set = Object.keys(MARKERS).filter((name) => get(name) !== undefined);
  const grants = new Set(set.map((name) => MARKERS[name]));
  const [first, second] = set;
  if (grants.size > 1 || (set.includes('SF_PRIVATE_KEY') && set.includes('SF_PRIVATE_KEY_FILE'))) {
    throw new ConfigError(
      second ?? 'env',
      `conflicts with ${first}: set the variables of one grant only`,
    );
  }
  let grant = [...grants][0];
  if (grant === undefined) {
    if (get('SF_CLIENT_SECRET') !== undefined) grant = 'client-credentials';
    else if (get('SF_ACCESS_TOKEN') !== undefined) grant = 'static-token';
    else {
      throw new ConfigError(
        'env',
        'names no Salesforce credentials: set SFDX_AUTH_URL, SF_REFRESH_TOKEN, SF_PRIVATE_KEY, SF_CLIENT_SECRET or SF_ACCESS_TOKEN',
      );
    }
  }
  if (grant === 'client-credentials' && get('SF_ACCESS_TOKEN') !== undefined) {
    throw new ConfigError(
      'SF_ACCESS_TOKEN',
      'conflicts with SF_CLIENT_SECRET: set the variables of one grant only',
    );
  }
  if (
    (grant === 'jwt-bearer' || grant === 'sfdx-auth-url') &&
    get('SF_CLIENT_SECRET') !== undefined
  ) {
    throw new ConfigError(
      'SF_CLIENT_SECRET',
      `is not used by the ${grant} grant: unset it or pick one grant`,
    );
  }
  return { grant, get };
}

/** Besides the token request and the rotation handler (`timeoutMs` each), a lock holder's slack. */
const LOCK_SLACK_MS = 1_000;

/**
 * `SF_REFRESH_TOKEN_FILE`: the last rotated refresh token, and a digest of the variable it
 * descends from. A saved token is used only while that variable is unchanged: after a fresh
 * authorisation sets a new SF_REFRESH_TOKEN (or SFDX_AUTH_URL), the new one wins. Each new token is
 * written atomically (0600) before the app's own handler runs.
 *
 * Processes sharing the file take turns (with `lockTimeoutMs`, absent with a shared store): each
 * refresh holds the lock file `<file>.lock` from before the request until the rotated token is
 * written, and presents the token the file holds by then when another process rotated it meanwhile;
 * two presenting one token would revoke the family. A lock is waited for at most `timeoutMs` + 1 s
 * (then a `TokenStoreError` `lock-wait`), and taken over when its process is gone or it is older
 * than a refresh can hold it (2 × `timeoutMs` + 1 s). A file that cannot be written is a
 * `ConfigError` here, before any refresh: later, the org would already have rotated the token away.
 */
function refreshTokenFile(
  file: string | undefined,
  handler: FromEnvOptions['onRefreshTokenRotated'],
  source: string | undefined,
  lockTimeoutMs: number | undefined,
): {
  saved: { refreshToken?: string };
  handler: { onRefreshTokenRotated?: (token: string) => Promise<void> };
  guard: { [refreshGuard]?: RefreshGuard };
} {
  if (file === undefined)
    return {
      saved: {},
      handler: handler ? { onRefreshTokenRotated: async (t) => handler(t) } : {},
      guard: {},
    };
  const {
    accessSync,
    closeSync,
    constants,
    fsyncSync,
    openSync,
    readFileSync,
    renameSync,
    writeSync,
  } = filesFor('SF_REFRESH_TOKEN_FILE');
  const { dirname } = nodeBuiltin('node:path') as typeof import('node:path');
  try {
    accessSync(dirname(file), constants.W_OK);
  } catch {
    throw new ConfigError(
      'SF_REFRESH_TOKEN_FILE',
      'must be in a directory that exists and can be written, to keep rotated refresh tokens',
    );
  }
  const lineage = `source=${secretFingerprint(source ?? '').slice(0, 32)}`;
  const read = (): string | undefined => {
    try {
      const [token, origin] = readFileSync(file, 'utf8')
        .split(/\r?\n/)
        .map((line) => line.trim())
        .filter((line) => line !== '');
      // A file without an origin line predates it: trusted, as before.
      return origin === undefined || origin === lineage ? token : undefined;
    } catch (error) {
      // Not written yet: the first rotation creates it. Any other failure must not silently fall
      // back to a variable that rotation may have killed.
      if ((error as { code?: string }).code === 'ENOENT') return undefined;
      throw new ConfigError('SF_REFRESH_TOKEN_FILE', 'exists but could not be read');
    }
  };
  /** The token this process last read from the file or wrote to it. */
  let known = read();
  const save = async (token: string) => {
    // A temp file of its own (with a shared store two runs may rotate at once), flushed, then
    // renamed over the file.
    const temp = `${file}.${runtimeProcess()?.pid ?? 0}.${randomHex(4)}.tmp`;
    const fd = openSync(temp, 'wx', 0o600);
    try {
      writeSync(fd, `${token}\n${lineage}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, file);
    known = token;
    await handler?.(token);
  };
  const guard: RefreshGuard | undefined =
    lockTimeoutMs === undefined
      ? undefined
      : async (current, refresh) => {
          let lock: FileLock | undefined;
          try {
            lock = await acquireFileLock(`${file}.lock`, {
              waitMs: lockTimeoutMs + LOCK_SLACK_MS,
              staleMs: 2 * lockTimeoutMs + LOCK_SLACK_MS,
            });
          } catch {
            throw new ConfigError('SF_REFRESH_TOKEN_FILE', 'could not be locked (<file>.lock)');
          }
          if (lock === undefined) throw new TokenStoreError('lock-wait');
          try {
            // Changed since this process last looked: another one rotated, and `current` is dead.
            const latest = read();
            if (latest !== undefined && latest !== known) {
              known = latest;
              return await refresh(latest);
            }
            return await refresh(current);
          } finally {
            lock.release();
          }
        };
  return {
    saved: known === undefined ? {} : { refreshToken: known },
    handler: { onRefreshTokenRotated: save },
    guard: guard === undefined ? {} : { [refreshGuard]: guard },
  };
}

function privateKeyFrom(get: (name: string) => string | undefined): string {
  const inline = get('SF_PRIVATE_KEY');
  if (inline !== undefined) return inline;
  const { readFileSync } = filesFor('SF_PRIVATE_KEY_FILE');
  try {
    return readFileSync(get('SF_PRIVATE_KEY_FILE') as string, 'utf8');
  } catch {
    throw new ConfigError('SF_PRIVATE_KEY_FILE', 'could not be read');
  }
}

/**
 * `node:fs`, for the variables that name a file; where the runtime has none (a browser, a plain
 * Worker) such a variable is a configuration error, named.
 */
function filesFor(variable: string): typeof import('node:fs') {
  const fs = nodeBuiltin('node:fs');
  if (fs === undefined)
    throw new ConfigError(variable, 'names a file, and this runtime has no file system (node:fs)');
  return fs;
}
