import { ConfigError, InsecureUrlError } from '../errors.js';

/** 127.0.0.0/8 as a dotted quad of decimal octets (0-255, no leading zeros), as URL#hostname writes it. */
const IPV4_LOOPBACK = /^127(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/**
 * Whether `hostname`, as `URL#hostname` gives it, is loopback by its spelling alone, so plain http
 * to it never leaves the machine: an IPv4 literal in 127.0.0.0/8, `[::1]`, or the bare name
 * `localhost` (resolved from the hosts file, which only root can change). Not `*.localhost` nor
 * `localhost.`: Node asks the system resolver for those, and without systemd-resolved that is DNS.
 * Not `[::ffff:127.0.0.1]`: whether an IPv4-mapped address reaches loopback depends on the stack.
 * The WHATWG parser has already turned `127.1`, `0x7f.0.0.1` and `2130706433` into `127.0.0.1`;
 * an unparsed spelling like those is refused here, the safe way.
 */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.toLowerCase();
  if (host === 'localhost' || host === '[::1]') return true;
  return IPV4_LOOPBACK.test(host);
}

/**
 * Validates and normalises a base URL option (`loginUrl`, `instanceUrl`): an absolute http(s) URL
 * without credentials, query or fragment, trimmed, trailing slashes removed. Plain http only for
 * loopback hosts. Throws {@link ConfigError} naming the option; the value is never echoed.
 */
export function normaliseBaseUrl(option: string, value: unknown): string {
  if (typeof value !== 'string' || value.trim() === '') {
    throw new ConfigError(option, 'must be a non-empty absolute URL string');
  }
  let url: URL;
  try {
    url = new URL(value.trim());
  } catch {
    // `acme.my.salesforce.com`, pasted without its scheme.
    const hint = /^[\w-]+(\.[\w-]+)+(:\d+)?(\/.*)?$/.test(value.trim())
      ? ': start it with https://'
      : '';
    throw new ConfigError(option, `is not an absolute URL${hint}`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new ConfigError(option, 'must use https');
  }
  if (url.username !== '' || url.password !== '') {
    throw new ConfigError(option, 'must not contain credentials');
  }
  if (url.search !== '' || url.hash !== '') {
    throw new ConfigError(option, 'must not contain a query or fragment');
  }
  if (url.protocol === 'http:' && !isLoopbackHost(url.hostname)) {
    throw new InsecureUrlError(option);
  }
  // Pasted from the docs: the token endpoint, where the base URL it hangs off belongs.
  if (/\/services\/oauth2(\/[\w-]*)?\/?$/i.test(url.pathname)) {
    throw new ConfigError(
      option,
      'is an OAuth endpoint URL: give the base URL (https://NAME.my.salesforce.com), without /services/oauth2/…',
    );
  }
  return url.href.replace(/\/+$/, '');
}

/**
 * Whether two base URLs name the same place: ASCII case-insensitive, trailing slashes ignored.
 * Salesforce's sample `instance_url` carries a trailing slash.
 */
export function sameBaseUrl(a: string, b: string): boolean {
  const trim = (s: string) => s.trim().replace(/\/+$/, '').toLowerCase();
  return trim(a) === trim(b);
}
