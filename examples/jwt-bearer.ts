// A server-to-server integration with the JWT bearer grant: no secret, no refresh token.
// Run: SF_CLIENT_ID=… SF_USERNAME=… SF_PRIVATE_KEY_FILE=server.key SF_INSTANCE_URL=https://acme.my.salesforce.com node examples/jwt-bearer.ts
import { readFileSync } from 'node:fs';
import { JwtBearerAuth } from 'cirrus-auth';
import { authFetch } from 'cirrus-auth/fetch';

const session = new JwtBearerAuth({
  clientId: process.env.SF_CLIENT_ID ?? '', // the connected app's consumer key
  username: process.env.SF_USERNAME ?? '', // a user pre-approved for the app
  privateKey: readFileSync(process.env.SF_PRIVATE_KEY_FILE ?? 'server.key', 'utf8'),
  loginUrl: process.env.SF_LOGIN_URL ?? 'https://login.salesforce.com', // test.salesforce.com for sandboxes
  instanceUrl: process.env.SF_INSTANCE_URL ?? '',
});

const sfFetch = authFetch(session);
const response = await sfFetch('/services/data/v62.0/limits');
if (!response.ok) throw new Error(`limits failed: HTTP ${response.status}`);
const limits = (await response.json()) as { DailyApiRequests: { Remaining: number } };
// What the token answer said: the org and user (the Pub/Sub API's tenantid is the org id).
const { orgId, userId } = await session.getTokenInfo();
console.log(
  `jwt-bearer example: ${limits.DailyApiRequests.Remaining} API calls left in org ${orgId} as user ${userId}`,
);
