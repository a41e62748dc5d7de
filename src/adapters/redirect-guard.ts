import type { InternalAxiosRequestConfig } from 'axios';
import type { AdapterPolicy } from './shared.js';

/**
 * Drops the bearer from a redirect to an origin that is not the org's. axios 1.x already drops
 * `Authorization` on cross-origin redirects; older 1.x releases kept it for subdomains.
 */
export function guardRedirects(
  config: Pick<InternalAxiosRequestConfig, 'beforeRedirect'>,
  policy: Pick<AdapterPolicy, 'isOrgUrl'>,
): void {
  const user = config.beforeRedirect;
  config.beforeRedirect = (options, responseDetails, requestDetails) => {
    const href = typeof options.href === 'string' ? options.href : '';
    if (!policy.isOrgUrl(href) && typeof options.headers === 'object' && options.headers !== null) {
      for (const name of Object.keys(options.headers)) {
        if (name.toLowerCase() === 'authorization') delete options.headers[name];
      }
    }
    user?.(options, responseDetails, requestDetails);
  };
}
