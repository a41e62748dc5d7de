import { describe, expect, it } from 'vitest';
import { guardRedirects } from '../../src/adapters/redirect-guard.js';

// axios 1.x releases before the cross-origin stripping relied on follow-redirects, which keeps
// Authorization on a redirect to a subdomain. The guard drops it for any origin not the org's.
describe('guardRedirects (axios)', () => {
  const policy = { isOrgUrl: (url: string) => url.startsWith('https://acme.my.salesforce.com/') };

  it('drops Authorization of any case on a redirect to a non-org origin, and calls the user hook', () => {
    const seen: unknown[] = [];
    const config: Parameters<typeof guardRedirects>[0] = {
      beforeRedirect: (options) => seen.push({ ...options.headers }),
    };
    guardRedirects(config, policy);
    const options = {
      href: 'https://evil.acme.my.salesforce.com/x',
      headers: { AUTHORIZATION: 'Bearer t', authorization: 'Bearer t', 'x-kept': '1' },
    };
    config.beforeRedirect?.(options, { headers: {}, statusCode: 302 }, {
      headers: {},
      url: '',
    } as never);
    expect(options.headers).toEqual({ 'x-kept': '1' });
    expect(seen).toEqual([{ 'x-kept': '1' }]);
  });

  it('keeps Authorization on a redirect within the org', () => {
    const config: Parameters<typeof guardRedirects>[0] = {};
    guardRedirects(config, policy);
    const options = {
      href: 'https://acme.my.salesforce.com/y',
      headers: { Authorization: 'Bearer t' },
    };
    config.beforeRedirect?.(options, { headers: {}, statusCode: 307 }, {
      headers: {},
      url: '',
    } as never);
    expect(options.headers).toEqual({ Authorization: 'Bearer t' });
  });
});
