import { ConfigError } from '../errors.js';
import { optionsObject } from '../internal/options.js';
import { isLoopbackHost } from '../internal/url.js';
import { RefreshTokenAuth, type RefreshTokenOptions } from './refresh-token.js';

/** Options of {@link fromSfdxAuthUrl}: those of `RefreshTokenAuth` the URL does not carry. */
export type SfdxAuthUrlOptions = Omit<
  RefreshTokenOptions,
  'clientId' | 'clientSecret' | 'refreshToken' | 'instanceUrl'
> & {
  /** A newer refresh token than the URL's (saved after a rotation); the URL's is used otherwise. */
  refreshToken?: string | undefined;
};

/**
 * Builds a {@link RefreshTokenAuth} from an SFDX auth URL,
 * `force://<clientId>:<clientSecret>:<refreshToken>@<instanceHost>` (the secret may be empty), as
 * `sf org display --verbose --json` prints at `result.sfdxAuthUrl`. The instance is
 * `https://<instanceHost>` (plain http for a loopback host), and token requests go there unless
 * `loginUrl` says otherwise. A malformed URL is a `ConfigError` that does not echo the URL.
 *
 * @example
 * ```ts
 * const session = fromSfdxAuthUrl(process.env.SFDX_AUTH_URL ?? '', {
 *   onRefreshTokenRotated: (token) => secrets.save('sfdx-refresh-token', token),
 * });
 * ```
 */
export function fromSfdxAuthUrl(url: string, options: SfdxAuthUrlOptions = {}): RefreshTokenAuth {
  optionsObject(options);
  const parsed = parseSfdxAuthUrl(url);
  return new RefreshTokenAuth({
    ...options,
    loginUrl: options.loginUrl ?? parsed.instanceUrl,
    ...parsed,
    refreshToken: options.refreshToken ?? parsed.refreshToken,
  });
}

function parseSfdxAuthUrl(url: unknown) {
  const malformed = () =>
    new ConfigError(
      'sfdxAuthUrl',
      'must look like force://clientId:clientSecret:refreshToken@host',
    );
  if (typeof url !== 'string' || !url.trim().startsWith('force://')) throw malformed();
  const rest = url.trim().slice('force://'.length);
  const at = rest.lastIndexOf('@');
  if (at < 0) throw malformed();
  const parts = rest.slice(0, at).split(':');
  const host = rest.slice(at + 1).replace(/\/+$/, '');
  const [clientId, clientSecret, refreshToken] = parts;
  if (parts.length !== 3 || !clientId || clientSecret === undefined || !refreshToken)
    throw malformed();
  if (!/^[a-z0-9.-]+(:\d{1,5})?$/i.test(host)) throw malformed();
  const scheme = isLoopbackHost(host.replace(/:\d+$/, '')) ? 'http' : 'https';
  const decode = (s: string) => {
    try {
      return decodeURIComponent(s);
    } catch {
      throw malformed();
    }
  };
  return {
    clientId: decode(clientId),
    ...(clientSecret === '' ? {} : { clientSecret: decode(clientSecret) }),
    refreshToken: decode(refreshToken),
    instanceUrl: `${scheme}://${host}`,
  };
}
