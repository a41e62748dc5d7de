// The one contract every adapter keeps, run over fetch, axios (with and without baseURL), ky, got,
// undici and jsforce (a reduced driver: the points it cannot express are named in its `cannot`) against the
// fake org through real HTTP on loopback, so their behaviour cannot drift apart.
import { describe, expect, it } from 'vitest';
import {
  AuthError,
  ClientCredentialsAuth,
  isSalesforceAuthFailure,
  OAuthError,
} from '../../src/index.js';
import { startFakeOrg } from '../../src/testing/index.js';
import { useFakeOrg } from '../_org.js';
import { caught, expectNoSecrets } from '../_secrets.js';
import { type BodyCase, drivers } from './_drivers.js';

const fx = useFakeOrg();

const LIMITS = '/services/data/v62.0/limits';
const SOAP = '/services/Soap/u/62.0';
const BULK = '/services/async/62.0/job';
const USERINFO = '/services/oauth2/userinfo';
const IDENTITY = '/id/00D000000000001EAA/005000000000001AAA';

/** A Partner API envelope whose SessionHeader carries `session` (self-closing when undefined). */
function envelope(session: string | undefined, ns = ''): string {
  const p = ns === '' ? '' : 'urn:';
  const id =
    session === undefined ? `<${p}sessionId/>` : `<${p}sessionId>${session}</${p}sessionId>`;
  return `<?xml version="1.0" encoding="utf-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"${ns === '' ? '' : ' xmlns:urn="urn:partner.soap.sforce.com"'}><soapenv:Header><${p}SessionHeader>${id}</${p}SessionHeader></soapenv:Header><soapenv:Body><${p}getUserInfo/></soapenv:Body></soapenv:Envelope>`;
}
const ECHO = '/services/apexrest/echo';
const N = 200;

for (const driver of drivers) {
  describe(`adapter contract: ${driver.label}`, () => {
    describe('1. the bearer goes only to the org', () => {
      it('sends no Authorization to another origin, and the token to a listed one', async () => {
        const session = fx.session();
        const token = await session.getToken();
        const plain = driver.client(session);
        const before = fx.other.requests.length;
        expect((await plain.send({ url: `${fx.other.url}/public` })).status).toBe(200);
        expect(fx.other.requests.at(-1)?.headers.authorization).toBeUndefined();

        const listing = driver.client(session, { origins: [fx.other.url] });
        expect((await listing.send({ url: `${fx.other.url}/listed` })).status).toBe(200);
        expect(fx.other.requests.at(-1)?.headers.authorization).toBe(`Bearer ${token}`);
        expect(fx.other.requests.length).toBe(before + 2);
      });

      it('sends no bearer to an OAuth endpoint, even on an org origin', async () => {
        const client = driver.client(fx.session(), { origins: [fx.other.url] });
        await client.send({ url: `${fx.other.url}/services/oauth2/token`, method: 'POST' });
        expect(fx.other.requests.at(-1)?.path).toBe('/services/oauth2/token');
        expect(fx.other.requests.at(-1)?.headers.authorization).toBeUndefined();
        // jsforce needs its token before its first request: the one token request is that.
        expect(fx.org.stats.tokenRequests).toBe(driver.cannot?.has('a lazy first token') ? 1 : 0);
      });

      it('a cross-origin redirect from the org does not carry the token onward', async () => {
        const client = driver.client(fx.session());
        const to = encodeURIComponent(`${fx.other.url}/landed`);
        const outcome = await client.send({ url: `/services/apexrest/redirect?to=${to}` });
        expect(outcome.status).toBe(200);
        expect(fx.other.requests.at(-1)?.path).toBe('/landed');
        expect(fx.other.requests.at(-1)?.headers.authorization).toBeUndefined();
        expect(fx.org.apiRequests.at(-1)?.token).toBeDefined();
      });
    });

    describe('2. concurrency, proven by counts', () => {
      it(`${N} concurrent requests on a cold cache make exactly 1 token request`, async () => {
        const client = driver.client(fx.session());
        fx.org.setTokenDelay(30);
        const outcomes = await Promise.all(
          Array.from({ length: N }, () => client.send({ url: LIMITS })),
        );
        expect(outcomes.map((o) => o.status)).toEqual(Array(N).fill(200));
        expect(fx.org.stats.tokenRequests).toBe(1);
      });

      it(`${N} concurrent 401s with the same stale token cause exactly 1 re-mint, and all succeed`, async () => {
        const session = fx.session();
        const client = driver.client(session);
        await client.send({ url: LIMITS });
        fx.org.revokeAllTokens();
        fx.org.resetStats();
        fx.org.setTokenDelay(30);
        const outcomes = await Promise.all(
          Array.from({ length: N }, () => client.send({ url: LIMITS })),
        );
        expect(outcomes.map((o) => o.status)).toEqual(Array(N).fill(200));
        expect(fx.org.stats.tokenRequests).toBe(1);
        expect(fx.org.stats.apiRequestsByStatus).toEqual({ 200: N, 401: N });
      });

      it('requests in flight with the stale token when the re-mint finished succeed without a second re-mint', async () => {
        const session = fx.session();
        const client = driver.client(session);
        await client.send({ url: LIMITS });
        const stale = await session.getToken();
        fx.org.revokeAllTokens();
        fx.org.resetStats();
        fx.org.setTokenDelay(50);
        const fast = Array.from({ length: 20 }, () => client.send({ url: LIMITS }));
        const slow = Array.from({ length: 20 }, () => client.send({ url: `${ECHO}?delayMs=300` }));
        const outcomes = await Promise.all([...fast, ...slow]);
        expect(outcomes.map((o) => o.status)).toEqual(Array(40).fill(200));
        expect(fx.org.stats.tokenRequests).toBe(1);
        expect(
          fx.org.apiRequests.filter((r) => r.token === stale && r.path.startsWith(ECHO)),
        ).toHaveLength(20);
      });
    });

    describe('3. retry at most once', () => {
      it('a persistent 401 makes exactly 2 API requests and surfaces the 401 the usual way', async () => {
        const client = driver.client(fx.session());
        await client.send({ url: LIMITS });
        fx.org.resetStats();
        fx.org.rejectApiTokens('invalid-session');
        const outcome = await client.send({ url: LIMITS });
        driver.expectUsual401(outcome);
        // jsforce surfaces the loop error, not the org's body.
        if (!driver.cannot?.has('the rejection body'))
          expect(outcome.text).toContain('INVALID_SESSION_ID');
        expect(fx.org.stats.apiRequests).toBe(2);
        expect(fx.org.stats.tokenRequests).toBe(1);
      });

      it('a re-minted token rejected before any request with it succeeded is not re-minted again', async () => {
        const client = driver.client(fx.session());
        fx.org.rejectApiTokens('invalid-session');
        driver.expectUsual401(await client.send({ url: LIMITS }));
        expect(fx.org.stats.apiRequests).toBe(2);
        expect(fx.org.stats.tokenRequests).toBe(2);
        // The guard's window: one request per call, no token request.
        for (let call = 1; call <= 3; call++) {
          driver.expectUsual401(await client.send({ url: LIMITS }));
          expect(fx.org.stats.apiRequests).toBe(2 + call);
          expect(fx.org.stats.tokenRequests).toBe(2);
        }
      });

      it('makes no retry when re-minting returns the token that failed', async () => {
        const reusing = await startFakeOrg({ reuseAccessToken: true });
        try {
          const session = new ClientCredentialsAuth({
            clientId: reusing.clientId,
            clientSecret: reusing.clientSecret,
            loginUrl: reusing.loginUrl,
            instanceUrl: reusing.instanceUrl,
          });
          const client = driver.client(session);
          await client.send({ url: LIMITS });
          reusing.resetStats();
          reusing.rejectApiTokens('invalid-session');
          const outcome = await client.send({ url: LIMITS });
          driver.expectUsual401(outcome);
          expect(reusing.stats.apiRequests).toBe(1);
          expect(reusing.stats.tokenRequests).toBe(1);
        } finally {
          await reusing.close();
        }
      });
    });

    describe.skipIf(driver.cannot?.has('4. the retried request is the same request'))(
      '4. the retried request is the same request',
      () => {
        const file = new Uint8Array([0, 1, 2, 127, 128, 254, 255, 13, 10]);
        const cases: [string, BodyCase, (body: Buffer, type: string) => Promise<void> | void][] = [
          [
            'JSON',
            { kind: 'json', value: { Name: 'Acme', n: 1, nested: { ok: true } } },
            (b) =>
              expect(JSON.parse(b.toString())).toEqual({
                Name: 'Acme',
                n: 1,
                nested: { ok: true },
              }),
          ],
          [
            'a string',
            { kind: 'text', value: 'plain text ✓' },
            (b) => expect(b.toString()).toBe('plain text ✓'),
          ],
          [
            'URLSearchParams',
            { kind: 'urlencoded', value: { a: '1', b: 'x y&z' } },
            (b) =>
              expect(Object.fromEntries(new URLSearchParams(b.toString()))).toEqual({
                a: '1',
                b: 'x y&z',
              }),
          ],
          [
            'FormData',
            { kind: 'form', fields: { name: 'Acme' }, file },
            async (b, type) => {
              const form = await new Response(new Uint8Array(b), {
                headers: { 'content-type': type },
              }).formData();
              expect(form.get('name')).toBe('Acme');
              expect(new Uint8Array(await (form.get('file') as Blob).arrayBuffer())).toEqual(file);
            },
          ],
          [
            'binary',
            { kind: 'binary', bytes: file },
            (b) => expect(new Uint8Array(b)).toEqual(file),
          ],
        ];

        it.each(cases)(
          '%s: method, URL, query, headers and body arrive intact on the retry',
          async (_, body, check) => {
            const session = fx.session();
            const client = driver.client(session);
            await client.send({ url: LIMITS });
            const stale = await session.getToken();
            fx.org.revokeAllTokens();
            const outcome = await client.send({
              url: `${ECHO}?q=1&x=a%20b`,
              method: 'PUT',
              headers: { 'x-custom': 'kept' },
              body,
            });
            expect(outcome.status).toBe(200);
            const echo = JSON.parse(outcome.text) as {
              method: string;
              query: string;
              headers: Record<string, string>;
              bodyBase64: string;
            };
            expect(echo.method).toBe('PUT');
            expect(echo.query).toBe('?q=1&x=a%20b');
            expect(echo.headers['x-custom']).toBe('kept');
            await check(Buffer.from(echo.bodyBase64, 'base64'), echo.headers['content-type'] ?? '');
            const [first, second] = fx.org.apiRequests.slice(-2);
            expect(first).toMatchObject({ status: 401, token: stale, method: 'PUT' });
            expect(second).toMatchObject({ status: 200, method: 'PUT' });
            expect(second?.token).not.toBe(stale);
            expect(fx.org.isValidToken(second?.token ?? '')).toBe(true);
          },
        );
      },
    );

    describe('7. auth failure detection', () => {
      it("does not retry Salesforce's non-curable 401, and the caller still gets its body", async () => {
        const client = driver.client(fx.session());
        fx.org.rejectApiTokens('not-valid-for-rest');
        const outcome = await client.send({ url: LIMITS });
        driver.expectUsual401(outcome);
        expect(outcome.text).toContain('This session is not valid for use with the REST API');
        expect(fx.org.stats.apiRequests).toBe(1);
        expect(fx.org.stats.tokenRequests).toBe(1);
      });

      it.skipIf(driver.cannot?.has('isSalesforceAuthFailure')).each([
        ['SOAP (500 INVALID_SESSION_ID)', SOAP, 'getUserInfoResponse'],
        ['Bulk 1.0 (400 InvalidSessionId)', BULK, 'jobInfo'],
      ])(
        'isSalesforceAuthFailure still retries a %s once, and the body stays readable',
        async (_, path, marker) => {
          const session = fx.session();
          const client = driver.client(session, { isAuthFailure: isSalesforceAuthFailure });
          await client.send({ url: LIMITS });
          fx.org.revokeAllTokens();
          fx.org.resetStats();
          const outcome = await client.send({
            url: path,
            method: 'POST',
            body: { kind: 'text', value: envelope('placeholder') },
          });
          expect(outcome.status).toBe(200);
          expect(outcome.text).toContain(marker);
          expect(fx.org.stats.apiRequests).toBe(2);
          expect(fx.org.stats.tokenRequests).toBe(1);
        },
      );
    });

    describe.skipIf(
      driver.cannot?.has(
        '7b. each API gets the session where it reads it, and survives a revocation',
      ),
    )('7b. each API gets the session where it reads it, and survives a revocation', () => {
      it.each([
        ['SOAP, envelope with a prefixed placeholder', SOAP, envelope('PLACEHOLDER', 'urn:')],
        ['SOAP, envelope with an empty sessionId', SOAP, envelope('')],
        ['SOAP, envelope with a self-closing sessionId', SOAP, envelope(undefined)],
        ['Bulk 1.0', BULK, '<jobInfo/>'],
        ['userinfo', USERINFO, undefined],
        ['the identity URL', IDENTITY, undefined],
      ])('%s: by default, exactly 1 re-mint and 1 retry', async (_, path, body) => {
        const session = fx.session();
        const client = driver.client(session);
        const call = () =>
          client.send(
            body === undefined
              ? { url: path }
              : { url: path, method: 'POST', body: { kind: 'text', value: body } },
          );
        expect((await call()).status).toBe(200);
        const stale = await session.getToken();
        fx.org.revokeAllTokens();
        fx.org.resetStats();
        const outcome = await call();
        expect(outcome.status).toBe(200);
        expect(fx.org.stats.tokenRequests).toBe(1);
        const [first, second] = fx.org.apiRequests;
        expect(fx.org.apiRequests).toHaveLength(2);
        // The fake org records the session where the API reads it (envelope, X-SFDC-Session).
        expect(first?.token).toBe(stale);
        expect(second?.token).not.toBe(stale);
        expect(fx.org.isValidToken(second?.token ?? '')).toBe(true);
      });

      it('a SOAP call with a valid bearer but a bad envelope is refused, as Salesforce does', async () => {
        const session = fx.session();
        await session.getToken();
        const token = await session.getToken();
        const response = await fetch(`${fx.org.instanceUrl}${SOAP}`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'text/xml' },
          body: envelope('not-a-session'),
        });
        expect(response.status).toBe(500);
        expect(await response.text()).toContain('INVALID_SESSION_ID');
      });
    });

    describe.skipIf(driver.cannot?.has('8. abort'))('8. abort', () => {
      it('an abort while waiting for a token rejects promptly with the usual abort error; the mint goes on', async () => {
        const client = driver.client(fx.session());
        fx.org.setTokenDelay(300);
        const controller = new AbortController();
        const aborted = client.send({ url: LIMITS, signal: controller.signal });
        const patient = client.send({ url: LIMITS });
        while (fx.org.stats.tokenRequests === 0) await new Promise((r) => setTimeout(r, 5));
        controller.abort();
        driver.expectAbortError(await caught(() => aborted));
        expect((await patient).status).toBe(200);
        expect(fx.org.stats.tokenRequests).toBe(1);
        expect(fx.org.stats.apiRequests).toBe(1);
      });
    });

    describe('9. token endpoint failures', () => {
      it('reach the caller as the AuthError subclass, with no secret in any message', async () => {
        const wrong = 'definitely-wrong-secret';
        const client = driver.client(fx.session({ clientSecret: wrong }));
        const error = driver.authErrorOf(await caught(() => client.send({ url: LIMITS })));
        expect(error).toBeInstanceOf(OAuthError);
        expect(error).toBeInstanceOf(AuthError);
        expect(error).toMatchObject({ code: 'ERR_OAUTH', error: 'invalid_client' });
        expectNoSecrets(error, [wrong, fx.org.clientSecret]);
        expect(fx.org.stats.apiRequests).toBe(0);
      });
    });
  });
}
