import type { InternalAxiosRequestConfig } from 'axios';
import type { AdapterPolicy } from './shared.js';

/** Where the last redirect of a request led, as {@link guardRedirects} saw it. */
export interface RedirectTrail {
  url: string | undefined;
}

/** Session headers a redirect to another origin must not carry. */
const SESSION_HEADERS = new Set(['authorization', 'x-sfdc-session']);

/**
 * Drops the session headers from a redirect to an origin that is not the org's, and records where
 * each redirect led (the answer then comes from there). axios 1.x already drops `Authorization` on
 * cross-origin redirects; older 1.x releases kept it for subdomains.
 */
export function guardRedirects(
  config: Pick<InternalAxiosRequestConfig, 'beforeRedirect'>,
  policy: Pick<AdapterPolicy, 'isOrgUrl'>,
): RedirectTrail {
  const trail: RedirectTrail = { url: undefined };
  const user = config.beforeRedirect;
  config.beforeRedirect = (options, responseDetails, requestDetails) => {
    const href = typeof options.href === 'string' ? options.href : '';
    trail.url = href;
    if (!policy.isOrgUrl(href) && typeof options.headers === 'object' && options.headers !== null) {
      for (const name of Object.keys(options.headers)) {
        if (SESSION_HEADERS.has(name.toLowerCase())) delete options.headers[name];
      }
    }
    user?.(options, responseDetails, requestDetails);
  };
  return trail;
}
