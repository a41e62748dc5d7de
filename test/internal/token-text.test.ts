import { describe, expect, it } from 'vitest';
import { isHeaderSafeToken, isWellFormedText } from '../../src/internal/token-text.js';

describe('isHeaderSafeToken', () => {
  it('accepts Salesforce-shaped tokens and every visible ASCII character', () => {
    expect(isHeaderSafeToken('00D5g000004XXXX!AQ4AQFtxYz.Ab_c-d~e+f/g=')).toBe(true);
    for (let code = 0x21; code <= 0x7e; code++) {
      expect(isHeaderSafeToken(String.fromCharCode(code))).toBe(true);
    }
  });

  it('refuses what a header value cannot carry as is, and what is not a token', () => {
    const bad: unknown[] = ['', ' ', 'a b', 'a\tb', 'a\r\nb', 'a\nb', 'a\0b', 'a\x7fb', 'é', '€'];
    bad.push('\ud800', 'x\u2028y', undefined, null, 42, { toString: () => 'token' });
    for (let code = 0; code <= 0x20; code++) bad.push(`tok${String.fromCharCode(code)}en`);
    for (const token of bad) expect(isHeaderSafeToken(token)).toBe(false);
  });

  it('agrees with the runtime: whatever it accepts, Headers takes as a bearer value', () => {
    for (let code = 0; code < 0x3000; code++) {
      const token = `00Dxx!AQ${String.fromCharCode(code)}z`;
      if (!isHeaderSafeToken(token)) continue;
      expect(new Headers({ authorization: `Bearer ${token}` }).get('authorization')).toBe(
        `Bearer ${token}`,
      );
    }
  });
});

describe('isWellFormedText', () => {
  it('refuses only lone surrogates', () => {
    expect(isWellFormedText('5Aep rt\r\n\0é€😀')).toBe(true);
    for (const text of ['\ud800', 'a\udc00', '\udc00\ud800', 'x\ud83d']) {
      expect(isWellFormedText(text)).toBe(false);
    }
  });
});
