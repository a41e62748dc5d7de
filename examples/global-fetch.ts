// Give Salesforce auth to an SDK that calls the global fetch itself (here a generated OpenAPI client).
// Run: SF_CLIENT_ID=… SF_CLIENT_SECRET=… SF_LOGIN_URL=https://acme.my.salesforce.com node examples/global-fetch.ts
import { fromEnv } from 'cirrus-auth';
import { installGlobalFetch } from 'cirrus-auth/fetch';
import createClient from 'openapi-fetch';

// fromEnv() picks the grant from SF_* variables; here SF_CLIENT_ID, SF_CLIENT_SECRET, SF_LOGIN_URL.
const session = fromEnv();

// Install before the SDK is created: openapi-fetch captures globalThis.fetch in createClient().
const uninstall = installGlobalFetch(session);
// In an app these types come from openapi-typescript; one path is enough here.
type Limit = { Max: number; Remaining: number };
type Paths = {
  '/services/data/v62.0/limits': {
    get: { responses: { 200: { content: { 'application/json': Record<string, Limit> } } } };
  };
};
const sdk = createClient<Paths>({ baseUrl: session.instanceUrl });

const { data, response } = await sdk.GET('/services/data/v62.0/limits');
if (!response.ok || data === undefined) throw new Error(`limits failed: HTTP ${response.status}`);
console.log(`global-fetch example: the SDK sees ${data.DailyApiRequests?.Max} daily API requests`);
uninstall(); // globalThis.fetch is the original again
