// Pub/Sub API (gRPC) on a session that renews itself: publish, then subscribe from the start.
// Run: SF_CLIENT_ID=… SF_CLIENT_SECRET=… SF_LOGIN_URL=https://acme.my.salesforce.com node examples/pubsub.ts
import { promisify } from 'node:util';
import { credentials } from '@grpc/grpc-js';
import { ClientCredentialsAuth } from 'cirrus-auth';
import { pubsubClient, resubscribe } from 'cirrus-auth/grpc';

const loginUrl = process.env.SF_LOGIN_URL ?? '';
const session = new ClientCredentialsAuth({
  clientId: process.env.SF_CLIENT_ID ?? '',
  clientSecret: process.env.SF_CLIENT_SECRET ?? '',
  loginUrl,
  instanceUrl: process.env.SF_INSTANCE_URL ?? loginUrl,
});
// Salesforce's endpoint over TLS by default; the fake org's is plaintext on loopback.
const target = process.env.PUBSUB_TARGET;
const client = pubsubClient(
  session,
  target ? { target, credentials: credentials.createInsecure() } : {},
);
const topic_name = process.env.PUBSUB_TOPIC ?? '/event/Order__e';

const { schema_id = '' } = (await promisify(client.GetTopic.bind(client))({ topic_name })) ?? {};
const events = ['one', 'two', 'three'].map((m) => ({ schema_id, payload: Buffer.from(m) }));
await promisify(client.Publish.bind(client))({ topic_name, events });

// Reopens from the last replay id whenever the session dies (revoked, expired): none lost.
let received = 0;
await new Promise<void>((resolve, reject) => {
  const subscription = resubscribe(client, {
    topicName: topic_name,
    replayPreset: 'EARLIEST',
    onEvent: () => ++received === events.length && subscription.close(),
    onEnd: (error) => (error ? reject(error) : resolve()),
  });
});
console.log(`pubsub example: published and received ${received} events on ${topic_name}`);
client.close();
