// The fake org's CORS allowlist answers a browser's requests as Salesforce's does: only a listed
// origin gets allow headers; any other's preflight and API request get 403, and the OAuth
// endpoints answer it without allow headers (so the browser withholds the answer).
import { describe, expect, it } from 'vitest';
import { sessionFor, useFakeOrg } from '../_org.js';

const listed = 'https://app.example.com';
const fx = useFakeOrg({ corsOrigins: [listed] });

const preflight = (origin: string, path: string) =>
  fetch(`${fx.org.instanceUrl}${path}`, {
    method: 'OPTIONS',
    headers: {
      origin,
      'access-control-request-method': 'GET',
      'access-control-request-headers': 'authorization',
    },
  });

describe('fake org CORS allowlist', () => {
  it('a listed origin: preflight allowed, API answer readable', async () => {
    const answer = await preflight(listed, '/services/data/v62.0/limits');
    expect(answer.status).toBe(204);
    expect(answer.headers.get('access-control-allow-origin')).toBe(listed);
    expect(answer.headers.get('access-control-allow-headers')).toBe('authorization');
    const token = await sessionFor(fx.org).getToken();
    const api = await fetch(`${fx.org.instanceUrl}/services/data/v62.0/limits`, {
      headers: { origin: listed, authorization: `Bearer ${token}` },
    });
    expect(api.status).toBe(200);
    expect(api.headers.get('access-control-allow-origin')).toBe(listed);
  });

  it('an origin not listed: 403 on preflight and on the API, no allow headers from the token endpoint', async () => {
    const other = 'https://evil.example.com';
    expect((await preflight(other, '/services/data/v62.0/limits')).status).toBe(403);
    expect((await preflight(other, '/services/oauth2/token')).status).toBe(403);
    const token = await sessionFor(fx.org).getToken();
    const api = await fetch(`${fx.org.instanceUrl}/services/data/v62.0/limits`, {
      headers: { origin: other, authorization: `Bearer ${token}` },
    });
    expect(api.status).toBe(403);
    const before = fx.org.stats.apiRequests;
    const minted = await fetch(`${fx.org.loginUrl}/services/oauth2/token`, {
      method: 'POST',
      headers: { origin: other, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'client_credentials',
        client_id: fx.org.clientId,
        client_secret: fx.org.clientSecret,
      }),
    });
    expect(minted.status).toBe(200);
    expect(minted.headers.get('access-control-allow-origin')).toBeNull();
    expect(fx.org.stats.apiRequests).toBe(before);
  });

  it('server-side clients (no Origin header) are not affected', async () => {
    const token = await sessionFor(fx.org).getToken();
    const api = await fetch(`${fx.org.instanceUrl}/services/data/v62.0/limits`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(api.status).toBe(200);
    expect(api.headers.get('access-control-allow-origin')).toBeNull();
  });
});
