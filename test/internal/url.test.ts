import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { authFetch } from '../../src/adapters/fetch.js';
import {
  ClientCredentialsAuth,
  fromSfdxAuthUrl,
  InsecureUrlError,
  JwtBearerAuth,
  StaticTokenAuth,
  WebServerFlow,
} from '../../src/index.js';
import { isLoopbackHost, normaliseBaseUrl } from '../../src/internal/url.js';

// Plain http carries credentials only to a host that is loopback by its spelling, decided on the
// hostname the WHATWG URL parser gives (which is also what fetch connects to): no resolver asked.
describe('plain http only to a literal loopback host', () => {
  it.each([
    ['http://127.0.0.1:8080', 'http://127.0.0.1:8080'],
    ['http://127.8.9.10', 'http://127.8.9.10'],
    ['http://[::1]:9', 'http://[::1]:9'],
    ['http://[0:0:0:0:0:0:0:1]', 'http://[::1]'],
    ['http://localhost:3000', 'http://localhost:3000'],
    ['HTTP://LOCALHOST', 'http://localhost'],
    // The parser turns these IPv4 spellings into 127.0.0.1 itself; fetch connects to that literal.
    ['http://127.1', 'http://127.0.0.1'],
    ['http://0x7f.0.0.1', 'http://127.0.0.1'],
    ['http://0177.0.0.1', 'http://127.0.0.1'],
    ['http://2130706433', 'http://127.0.0.1'],
    ['http://127.0.0.1.', 'http://127.0.0.1'],
  ])('accepts %s as %s', (url, normalised) => {
    expect(normaliseBaseUrl('loginUrl', url)).toBe(normalised);
  });

  it.each([
    'http://foo.localhost',
    'http://FOO.LOCALHOST:8080',
    'http://localhost.',
    'http://localhost..',
    'http://a.b.localhost',
    'http://[::ffff:127.0.0.1]',
    'http://[::]',
    'http://0.0.0.0',
    'http://0',
    'http://127.0.0.1.nip.io',
    'http://localhost.evil.com',
    'http://acme.my.salesforce.com',
  ])('refuses %s with InsecureUrlError', (url) => {
    expect(() => normaliseBaseUrl('loginUrl', url)).toThrow(InsecureUrlError);
    expect(() => normaliseBaseUrl('loginUrl', url.replace(/^http:/i, 'https:'))).not.toThrow();
  });

  it('judges the parsed hostname only: an unparsed IPv4 spelling is not loopback', () => {
    expect(isLoopbackHost('127.0.0.1')).toBe(true);
    expect(isLoopbackHost('localhost')).toBe(true);
    expect(isLoopbackHost('[::1]')).toBe(true);
    for (const host of ['127.1', '2130706433', '0x7f.0.0.1', 'foo.localhost', 'localhost.']) {
      expect(isLoopbackHost(host)).toBe(false);
    }
  });

  it('every option that may be plain http applies the rule', () => {
    const host = 'http://app.localhost:8080';
    const base = { clientId: 'id', clientSecret: 'secret-value' };
    expect(() => new ClientCredentialsAuth({ ...base, loginUrl: host, instanceUrl: host })).toThrow(
      InsecureUrlError,
    );
    expect(
      () =>
        new ClientCredentialsAuth({
          ...base,
          loginUrl: 'http://127.0.0.1:1',
          instanceUrl: host,
        }),
    ).toThrow(expect.objectContaining({ code: 'ERR_INSECURE_URL', option: 'instanceUrl' }));
    expect(() => new StaticTokenAuth({ accessToken: '00D!x', instanceUrl: host })).toThrow(
      InsecureUrlError,
    );
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    expect(
      () =>
        new JwtBearerAuth({
          clientId: 'id',
          username: 'u@example.com',
          privateKey,
          loginUrl: 'http://127.0.0.1:1',
          instanceUrl: 'http://127.0.0.1:1',
          audience: host,
        }),
    ).toThrow(expect.objectContaining({ code: 'ERR_INSECURE_URL', option: 'audience' }));
    expect(() => new WebServerFlow({ clientId: 'id', redirectUri: `${host}/callback` })).toThrow(
      InsecureUrlError,
    );
    const session = new StaticTokenAuth({
      accessToken: '00D!x',
      instanceUrl: 'http://127.0.0.1:1',
    });
    expect(() => authFetch(session, { origins: [host] })).toThrow(InsecureUrlError);
    // An SFDX auth URL's host gets https unless it is loopback by spelling.
    expect(fromSfdxAuthUrl('force://id:secret:5Aep-refresh@app.localhost:8080').instanceUrl).toBe(
      'https://app.localhost:8080',
    );
    expect(fromSfdxAuthUrl('force://id:secret:5Aep-refresh@localhost:8080').instanceUrl).toBe(
      'http://localhost:8080',
    );
  });
});

describe('base URLs pasted from the docs', () => {
  it('an OAuth endpoint URL is a ConfigError with a hint, at construction', async () => {
    const { ClientCredentialsAuth, ConfigError } = await import('../../src/index.js');
    for (const loginUrl of [
      'https://acme.my.salesforce.com/services/oauth2/token',
      'https://login.salesforce.com/services/oauth2/authorize/',
      'https://acme.my.salesforce.com/services/oauth2',
    ]) {
      const make = () =>
        new ClientCredentialsAuth({
          clientId: 'id',
          clientSecret: 's',
          loginUrl,
          instanceUrl: 'https://acme.my.salesforce.com',
        });
      expect(make).toThrow(ConfigError);
      expect(make).toThrow(/OAuth endpoint URL: give the base URL/);
    }
    // A site's path is a base URL, not an endpoint.
    expect(normaliseBaseUrl('loginUrl', 'https://acme.my.site.com/partners')).toBe(
      'https://acme.my.site.com/partners',
    );
  });

  it('a host without its scheme is told to start with https://', () => {
    expect(() => normaliseBaseUrl('loginUrl', 'acme.my.salesforce.com')).toThrow(
      'start it with https://',
    );
    expect(() => normaliseBaseUrl('loginUrl', 'not a url')).toThrow(/is not an absolute URL$/);
  });
});
