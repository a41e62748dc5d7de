import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeOrg, startFakeOrg } from '../../src/testing/index.js';
import { expectNoSecrets } from '../_secrets.js';

let org: FakeOrg;
beforeAll(async () => {
  org = await startFakeOrg({ expiresInSeconds: 900 });
});
afterAll(() => org.close());

async function mint(body: Record<string, string>) {
  const response = await fetch(`${org.loginUrl}/services/oauth2/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(body),
  });
  return { status: response.status, json: (await response.json()) as Record<string, unknown> };
}

describe('the fake org speaks Salesforce', () => {
  it('answers client credentials with Salesforce’s success shape', async () => {
    const { status, json } = await mint({
      grant_type: 'client_credentials',
      client_id: org.clientId,
      client_secret: org.clientSecret,
    });
    expect(status).toBe(200);
    expect(json).toMatchObject({
      access_token: expect.stringMatching(/^00D\w+!/),
      instance_url: org.instanceUrl,
      id: expect.stringMatching(/\/id\/00D\w+\/005\w+$/),
      token_type: 'Bearer',
      issued_at: expect.stringMatching(/^\d{13}$/),
      signature: expect.any(String),
      expires_in: 900,
    });
    expect(json).not.toHaveProperty('refresh_token');
  });

  it('answers errors with Salesforce’s OAuth error shape', async () => {
    expect(await mint({ grant_type: 'password' })).toEqual({
      status: 400,
      json: { error: 'unsupported_grant_type', error_description: 'grant type not supported' },
    });
    expect((await mint({ grant_type: 'client_credentials', client_id: 'x' })).json.error).toBe(
      'invalid_client_id',
    );
    expect(
      (
        await mint({
          grant_type: 'client_credentials',
          client_id: org.clientId,
          client_secret: 'x',
        })
      ).json.error,
    ).toBe('invalid_client');
  });

  it('answers the REST API with 401 INVALID_SESSION_ID for unknown and revoked tokens', async () => {
    const { json } = await mint({
      grant_type: 'client_credentials',
      client_id: org.clientId,
      client_secret: org.clientSecret,
    });
    const call = (token: string) =>
      fetch(`${org.instanceUrl}/services/data/v62.0/query?q=SELECT+Id+FROM+Account`, {
        headers: { authorization: `Bearer ${token}` },
      });
    const ok = await call(json.access_token as string);
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({ totalSize: 1, done: true });
    const unknown = await call('00Dnope!x');
    expect(unknown.status).toBe(401);
    expect(await unknown.json()).toEqual([
      { message: 'Session expired or invalid', errorCode: 'INVALID_SESSION_ID' },
    ]);
    org.revokeAllTokens();
    expect((await call(json.access_token as string)).status).toBe(401);
    expect(org.stats.apiRequestsByStatus).toMatchObject({ 200: 1, 401: 2 });
  });

  it('never shows its client secret', () => {
    expectNoSecrets(org, [org.clientSecret]);
  });
});
