// Streaming API (CometD) through jsforce, re-authenticating itself when the session dies.
// Run: SF_CLIENT_ID=… SF_CLIENT_SECRET=… SF_LOGIN_URL=https://acme.my.salesforce.com node examples/streaming.ts
import { ClientCredentialsAuth } from 'cirrus-auth';
import { jsforceConnection } from 'cirrus-auth/jsforce';
import { streamingClient } from 'cirrus-auth/streaming';

const loginUrl = process.env.SF_LOGIN_URL ?? '';
const session = new ClientCredentialsAuth({
  clientId: process.env.SF_CLIENT_ID ?? '',
  clientSecret: process.env.SF_CLIENT_SECRET ?? '',
  loginUrl,
  instanceUrl: process.env.SF_INSTANCE_URL ?? loginUrl,
});
const conn = await jsforceConnection(session);
// On 401::Authentication invalid: a new token, a new handshake, resubscribed from the last replay id.
const client = streamingClient(conn, session, { onFailure: (error) => console.error(error.code) });

const channel = process.env.STREAMING_CHANNEL ?? '/event/Order__e';
const wanted = Number(process.env.STREAMING_EVENTS ?? '1');
let received = 0;
await new Promise<void>((resolve) => {
  client.subscribe(channel, () => ++received === wanted && resolve());
});
console.log(`streaming example: received ${received} event(s) on ${channel}`);
(client as unknown as { disconnect(): void }).disconnect();
await session.close();
