// Which org API a URL goes to (and whether it is the org's at all): the answer that decides whether
// an adapter attaches the bearer. An adapter remembers the answer for the last URL; a remembered
// answer must be the one working it out gives, whatever came in between.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { adapterPolicy, apiOfPath } from '../../src/adapters/shared.js';
import { StaticTokenAuth } from '../../src/index.js';

const ORG = 'https://acme.my.salesforce.com';
const session = new StaticTokenAuth({ accessToken: '00Dxx0000001gEREAY!AQ4AQ', instanceUrl: ORG });
const ORIGINS = [ORG, 'https://acme--c.vf.force.com'];
const fresh = () => adapterPolicy(session, { origins: ORIGINS.slice(1) });

/** What a URL parser makes of `url`: the answer every shortcut of apiOf must agree with. */
function parsed(url: string): string | undefined {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return undefined;
  }
  return ORIGINS.includes(u.origin) ? apiOfPath(u.pathname) : undefined;
}

const CASES: [string, string | undefined][] = [
  [`${ORG}/services/data/v62.0/limits`, 'rest'],
  [`${ORG}/services/data/v62.0/query?q=SELECT+Id+FROM+Account`, 'rest'],
  [`${ORG}/services/apexrest/echo#frag`, 'rest'],
  [`${ORG}/services/Soap/u/62.0`, 'soap'],
  [`${ORG}/services/async/62.0/job`, 'bulk'],
  [`${ORG}/services/oauth2/userinfo`, 'identity'],
  [`${ORG}/id/00Dxx0000001gEREAY/005xx000001SwiUAAS`, 'identity'],
  [`${ORG}/services/oauth2/token`, undefined],
  [`${ORG}/SERVICES/OAUTH2/TOKEN/`, undefined],
  [`${ORG}/services/data/v62.0/services/OAuth2/token`, undefined],
  [`${ORG}/services/data/x/services/oauth2/userinfo/`, 'identity'],
  // A URL parser rewrites these paths: they are judged on what it makes of them.
  [`${ORG}/services/data/../oauth2/token`, undefined],
  [`${ORG}/services/data/%2e%2e/oauth2/revoke`, undefined],
  [`${ORG}/services\\oauth2\\token`, undefined],
  ['https://acme--c.vf.force.com/services/data/v62.0/limits', 'rest'],
  ['https://acme.my.salesforce.com.evil.example/services/data/v62.0/limits', undefined],
  ['https://evil.example/services/data/v62.0/limits', undefined],
  [`${ORG}@evil.example/services/data/v62.0/limits`, undefined],
  ['/services/data/v62.0/limits', undefined],
  ['not a url', undefined],
];

describe('apiOf', () => {
  it('answers each API, and the org origins only, the same the first time and from memory', () => {
    const policy = fresh();
    for (const [url, api] of CASES) expect([url, policy.apiOf(url)]).toEqual([url, api]);
    for (const [url, api] of CASES) expect([url, policy.apiOf(url)]).toEqual([url, api]);
    for (const [url, api] of CASES) expect([url, parsed(url)]).toEqual([url, api]);
    // Equal text in a new string is the same URL.
    for (const [url, api] of CASES) expect(policy.apiOf(`${url} `.trimEnd())).toBe(api);
  });

  it("agrees with a URL parser's reading, the first time and from memory, whatever came between", () => {
    const segment = fc.constantFrom(
      'services',
      'data',
      'v62.0',
      'oauth2',
      'token',
      'userinfo',
      'Soap',
      'async',
      'id',
      '00Dxx0000001gEREAY',
      '005xx000001SwiUAAS',
      '..',
      '.',
      '%2e',
      'a b',
      'x\\y',
      'SERVICES',
      'OAuth2',
      'oAUTH2',
      'revoke',
      'data',
      'Data',
      'a\tb',
      '%41',
      '',
    );
    const url = fc
      .tuple(
        fc.constantFrom(
          ORG,
          'https://acme--c.vf.force.com',
          'https://evil.example',
          'https://ACME.my.salesforce.com',
          'https://acme.my.salesforce.com:443',
          `${ORG}.evil.example`,
          '',
        ),
        fc.constantFrom('', 'services/data/', 'services/data/v62.0/services/'),
        fc.array(segment, { minLength: 0, maxLength: 6 }),
        fc.constantFrom('', '/', '?q=1', '#x', '?a=/services/oauth2/token'),
      )
      .map(([origin, start, segments, tail]) => `${origin}/${start}${segments.join('/')}${tail}`);
    const policy = fresh();
    fc.assert(
      fc.property(fc.array(url, { minLength: 100, maxLength: 200 }), (urls) => {
        // Each URL asked twice in a row (the second answer from memory), in an order that revisits.
        for (const u of [...urls, ...urls]) {
          const expected = parsed(u);
          expect(policy.apiOf(u)).toBe(expected);
          expect(policy.apiOf(u)).toBe(expected);
        }
      }),
      { numRuns: 200 },
    );
  });
});
