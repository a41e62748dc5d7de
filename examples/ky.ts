// Give a ky client Salesforce auth with a pair of hooks.
// Run: SF_CLIENT_ID=… SF_CLIENT_SECRET=… SF_LOGIN_URL=https://acme.my.salesforce.com node examples/ky.ts
import { ClientCredentialsAuth } from 'cirrus-auth';
import { authHooks } from 'cirrus-auth/ky';
import ky from 'ky';

const loginUrl = process.env.SF_LOGIN_URL ?? '';
const session = new ClientCredentialsAuth({
  clientId: process.env.SF_CLIENT_ID ?? '',
  clientSecret: process.env.SF_CLIENT_SECRET ?? '',
  loginUrl,
  instanceUrl: process.env.SF_INSTANCE_URL ?? loginUrl,
});

const api = ky.create({ baseUrl: session.instanceUrl, hooks: authHooks(session) });

const result = await api
  .get('services/data/v62.0/query', { searchParams: { q: 'SELECT Id, Name FROM Account' } })
  .json<{ totalSize: number; records: { Name: string }[] }>();
console.log(`ky example: ${result.totalSize} account(s), first is ${result.records[0]?.Name}`);
