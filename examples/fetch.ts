// Wrap fetch with a client-credentials session: the bearer goes to the org only, a 401 is retried once.
// Run: SF_CLIENT_ID=… SF_CLIENT_SECRET=… SF_LOGIN_URL=https://acme.my.salesforce.com node examples/fetch.ts
import { fromEnv } from 'cirrus-auth';
import { authFetch } from 'cirrus-auth/fetch';

// fromEnv() picks the grant from SF_* variables; here SF_CLIENT_ID, SF_CLIENT_SECRET, SF_LOGIN_URL.
const session = fromEnv();
const sfFetch = authFetch(session);

// Relative paths resolve against the instance URL; ten concurrent calls share one token request.
const responses = await Promise.all(
  Array.from({ length: 10 }, () =>
    sfFetch('/services/data/v62.0/query?q=SELECT+Id,Name+FROM+Account'),
  ),
);
for (const response of responses) {
  if (!response.ok) throw new Error(`query failed: HTTP ${response.status}`);
}
const result = (await responses[0]?.json()) as { totalSize: number };
console.log(`fetch example: 10 queries OK, ${result.totalSize} account(s)`);
