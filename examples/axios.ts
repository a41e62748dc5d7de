// Plug a Salesforce session into an axios instance you already have.
// Run: SF_CLIENT_ID=… SF_CLIENT_SECRET=… SF_LOGIN_URL=https://acme.my.salesforce.com node examples/axios.ts
import axios from 'axios';
import { fromEnv } from 'cirrus-auth';
import { attachAuth } from 'cirrus-auth/axios';

// fromEnv() picks the grant from SF_* variables; here SF_CLIENT_ID, SF_CLIENT_SECRET, SF_LOGIN_URL.
const session = fromEnv();

const api = axios.create({ baseURL: session.instanceUrl });
const detach = attachAuth(api, session); // call detach() to undo

const { data: created } = await api.post('/services/data/v62.0/sobjects/Account', { Name: 'Acme' });
const { data: limits } = await api.get('/services/data/v62.0/limits');
console.log(
  `axios example: created ${created.id}, ${limits.DailyApiRequests.Remaining} API calls left`,
);
detach();
