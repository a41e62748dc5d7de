// Many orgs in one process: one session per tenant, made on first use, bounded, each its own.
// Run: TENANTS='{"acme":{"clientId":"…","clientSecret":"…","loginUrl":"https://acme.my.salesforce.com","instanceUrl":"https://acme.my.salesforce.com"}}' node examples/many-orgs.ts
import { SessionPool } from 'cirrus-auth';
import { authFetch } from 'cirrus-auth/fetch';

// Your tenant registry (a table, or PostgresTokenStore's credentials table); client-credentials apps here.
type Tenant = { clientId: string; clientSecret: string; loginUrl?: string; instanceUrl: string };
const tenants: Record<string, Tenant> = JSON.parse(process.env.TENANTS ?? '{}');

const pool = new SessionPool({
  loginUrl: process.env.SF_LOGIN_URL, // for tenants that name none
  maxSessions: 1_000,
  resolve: (tenant) => {
    const options = tenants[tenant];
    return options && { grant: 'client-credentials', options };
  },
});
// Which tenant a request is for: a header here; an AsyncLocalStorage lookup works as well.
const api = authFetch(pool, { tenant: (request) => request.headers.get('x-tenant') ?? '' });

for (const tenant of Object.keys(tenants)) {
  const headers = { 'x-tenant': tenant };
  const response = await api('/services/data/v62.0/limits', { headers }); // on the tenant's instance
  const { orgId } = await (await pool.session(tenant)).getTokenInfo();
  console.log(`many-orgs example: ${tenant} answered ${response.status}, org ${orgId}`);
}
await pool.close();
