// Give a ky client Salesforce auth with a pair of hooks.
// Run: SF_CLIENT_ID=… SF_CLIENT_SECRET=… SF_LOGIN_URL=https://acme.my.salesforce.com node examples/ky.ts
import { fromEnv } from 'cirrus-auth';
import { authHooks } from 'cirrus-auth/ky';
import ky from 'ky';

// fromEnv() picks the grant from SF_* variables; here SF_CLIENT_ID, SF_CLIENT_SECRET, SF_LOGIN_URL.
const session = fromEnv();

const api = ky.create({ baseUrl: session.instanceUrl, hooks: authHooks(session) });

const result = await api
  .get('services/data/v62.0/query', { searchParams: { q: 'SELECT Id, Name FROM Account' } })
  .json<{ totalSize: number; records: { Name: string }[] }>();
console.log(`ky example: ${result.totalSize} account(s), first is ${result.records[0]?.Name}`);
