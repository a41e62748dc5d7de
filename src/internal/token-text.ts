import { ConfigError } from '../errors.js';
import { requiredString } from './options.js';

/**
 * Whether `token` can be sent as it is in an HTTP header (`Authorization: Bearer <token>`,
 * `X-SFDC-Session`): a string of one or more visible ASCII characters, 0x21 to 0x7E. No space, no
 * control character (CR, LF, NUL, DEL), nothing beyond ASCII: undici throws a TypeError that quotes
 * the whole header value (the token) for CR, LF, NUL and anything beyond Latin-1, and the rest is
 * not a token Salesforce issues (`00D…!AQ…`). RFC 6750's `b64token` is a subset, but lacks the `!`
 * of Salesforce's tokens. Not an escape for XML: a token put into a SOAP envelope still needs one.
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-2.1
 */
export function isHeaderSafeToken(token: unknown): token is string {
  return typeof token === 'string' && /^[\x21-\x7e]+$/.test(token);
}

/**
 * Whether `text` is well-formed UTF-16 (no lone surrogate), so a form body carries it losslessly:
 * `URLSearchParams` turns a lone surrogate into U+FFFD, which would send another token.
 * `String.prototype.isWellFormed` is ES2024; this is the same test.
 */
export function isWellFormedText(text: string): boolean {
  return !/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(text);
}

/** Validates an access token option: {@link requiredString}, then {@link isHeaderSafeToken}. */
export function requiredToken(option: string, value: unknown): string {
  const token = requiredString(option, value);
  if (!isHeaderSafeToken(token)) {
    throw new ConfigError(option, 'must be visible ASCII text: no spaces, line breaks or controls');
  }
  return token;
}
