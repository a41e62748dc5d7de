// Where each API reads the session, and what must never carry it elsewhere: SOAP envelopes and
// Bulk 1.0's X-SFDC-Session are written by the adapters, so they must not follow a redirect to
// another host, and an envelope the adapter could not write must not cost a login.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withSoapSession } from '../../src/adapters/shared.js';
import { closeServer, readBody } from '../../src/testing/fake-org.js';
import { useFakeOrg } from '../_org.js';
import { drivers } from './_drivers.js';

const fx = useFakeOrg();
const ENVELOPE = (session: string) =>
  `<se:Envelope xmlns:se="http://schemas.xmlsoap.org/soap/envelope/"><se:Header><SessionHeader xmlns="urn:partner.soap.sforce.com"><sessionId>${session}</sessionId></SessionHeader></se:Header><se:Body><getUserInfo xmlns="urn:partner.soap.sforce.com"/></se:Body></se:Envelope>`;

describe('withSoapSession', () => {
  it.each([
    ['a plain placeholder', ENVELOPE('X'), true],
    [
      'a prefixed, empty element',
      '<s:Envelope><s:Header><u:SessionHeader><u:sessionId></u:sessionId></u:SessionHeader></s:Header></s:Envelope>',
      true,
    ],
    [
      'a self-closing one with xsi:nil',
      '<s:Envelope><s:Header><SessionHeader><sessionId xsi:nil="true"/></SessionHeader></s:Header></s:Envelope>',
      true,
    ],
    [
      'an attribute holding >',
      '<s:Envelope><s:Header><SessionHeader><sessionId a="x>y">old</sessionId></SessionHeader></s:Header></s:Envelope>',
      true,
    ],
    ['no Header', '<s:Envelope><s:Body><sessionId>x</sessionId></s:Body></s:Envelope>', false],
    [
      'CDATA',
      '<s:Envelope><s:Header><SessionHeader><sessionId><![CDATA[x]]></sessionId></SessionHeader></s:Header></s:Envelope>',
      false,
    ],
  ])('%s', (_, envelope, writes) => {
    const out = withSoapSession(envelope, 'NEW&<TOKEN>');
    if (!writes) return expect(out).toBeUndefined();
    expect(out).toContain('>NEW&amp;&lt;TOKEN&gt;</');
    expect(out).not.toContain('nil=');
    if (envelope.includes('a="x>y"')) expect(out).toContain('<sessionId a="x>y">NEW');
  });

  it('leaves a sessionId in the Body alone (business data, not the session)', () => {
    const envelope =
      '<s:Envelope><s:Header><SessionHeader><sessionId>old</sessionId></SessionHeader></s:Header><s:Body><m:call><sessionId>data</sessionId></m:call></s:Body></s:Envelope>';
    const out = withSoapSession(envelope, 'T') as string;
    expect(out).toContain('<SessionHeader><sessionId>T</sessionId></SessionHeader>');
    expect(out).toContain('<m:call><sessionId>data</sessionId></m:call>');
  });
});

describe('SOAP and Bulk 1.0 redirects', () => {
  let redirector: { url: string; close(): Promise<void> };
  beforeAll(async () => {
    // An org origin that answers every SOAP and Bulk call with a 307 to another host.
    const server = createServer((req, res) => {
      readBody(req).then(() => {
        res.writeHead(307, { location: `${fx.other.url}/stolen` });
        res.end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    redirector = { url, close: () => closeServer(server) };
  });
  afterAll(() => redirector.close());

  for (const driver of drivers) {
    it.each([
      ['Bulk 1.0', '/services/async/62.0/job', '<jobInfo/>'],
      ['SOAP', '/services/Soap/u/62.0', ENVELOPE('placeholder')],
    ])(
      `${driver.label}: a %s redirect to another host carries no session there`,
      async (_, path, body) => {
        const session = fx.session();
        const token = await session.getToken();
        const before = fx.other.requests.length;
        const client = driver.client(session, { origins: [redirector.url] });
        await client
          .send({
            url: `${redirector.url}${path}`,
            method: 'POST',
            body: { kind: 'text', value: body },
          })
          .catch(() => {});
        for (const seen of fx.other.requests.slice(before)) {
          expect(seen.headers['x-sfdc-session']).toBeUndefined();
          expect(seen.headers.authorization).toBeUndefined();
          expect(seen.body.toString()).not.toContain(token);
        }
      },
    );
  }
});

describe('an envelope the adapter cannot write costs no login', () => {
  for (const driver of drivers) {
    it(`${driver.label}: a SOAP fault for an envelope without a Header sessionId is returned, no re-mint`, async () => {
      const session = fx.session();
      const client = driver.client(session);
      await client.send({ url: '/services/data/v62.0/limits' });
      fx.org.resetStats();
      const outcome = await client.send({
        url: '/services/Soap/u/62.0',
        method: 'POST',
        body: {
          kind: 'text',
          value: '<se:Envelope><se:Body><getUserInfo/></se:Body></se:Envelope>',
        },
      });
      expect(outcome.status ?? 500).toBe(500);
      expect(fx.org.stats.tokenRequests).toBe(0);
      expect(fx.org.stats.apiRequests).toBe(1);
    });
  }
});
