import { isIP } from 'node:net';
import { ConfigError, InsecureUrlError } from '../errors.js';

/** Whether `hostname` (as `URL#hostname` gives it) is loopback: localhost, 127.0.0.0/8 or ::1. */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.toLowerCase();
  if (host === 'localhost' || host.endsWith('.localhost')) return true;
  if (host === '[::1]') return true;
  return isIP(host) === 4 && host.startsWith('127.');
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
    throw new ConfigError(option, 'is not an absolute URL');
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
