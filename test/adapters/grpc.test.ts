import { credentials } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type ConsumerEvent,
  type PubSubClient,
  pubsubClient,
  pubsubErrorOf,
  resubscribe,
} from '../../src/adapters/grpc.js';
import {
  type ClientCredentialsAuth,
  ConfigError,
  PubSubError,
  StaticTokenAuth,
} from '../../src/index.js';
import { type FakeOrg, PUBSUB_AUTH_ERROR, startFakeOrg } from '../../src/testing/index.js';
import { sessionFor as orgSession } from '../_org.js';
import { caught } from '../_secrets.js';
import { until } from '../_wait.js';

// The Pub/Sub API over real loopback gRPC: the fake org's server checks the three metadata
// headers as Salesforce does; every claim is a count it made.
let org: FakeOrg;
beforeAll(async () => {
  org = await startFakeOrg({ pubsub: true });
});
afterAll(() => org?.close());

const TOPIC = '/event/Order__e';
const sessionFor = () => orgSession(org);

const clientFor = (
  session:
    | ConstructorParameters<typeof StaticTokenAuth>[0]
    | ClientCredentialsAuth
    | StaticTokenAuth,
  tenantId?: string,
) =>
  pubsubClient(session as ClientCredentialsAuth, {
    target: org.pubsub?.target,
    credentials: credentials.createInsecure(),
    tenantId,
  });
const call = <T>(fn: (cb: (error: unknown, value?: T) => void) => unknown) =>
  new Promise<T>((resolve, reject) => {
    fn((error, value) => (error ? reject(error) : resolve(value as T)));
  });
describe('cirrus-auth/grpc against the fake Pub/Sub API', () => {
  it('a subscription keeps receiving across 5 revocations: 5 re-mints, no event lost or repeated', async () => {
    org.resetStats();
    const session = sessionFor();
    const client = clientFor(session);
    const received: ConsumerEvent[] = [];
    const subscription = resubscribe(client, {
      topicName: TOPIC,
      replayPreset: 'EARLIEST',
      numRequested: 7, // flow control: asked again as each batch is used up
      onEvent: (event) => received.push(event),
    });
    const published: Buffer[] = [];
    const publish = (n: number) =>
      published.push(
        ...(org.pubsub?.publish(
          TOPIC,
          Array.from({ length: n }, (_, i) => Buffer.from(`event ${published.length + i}`)),
        ) ?? []),
      );
    publish(10);
    await until(() => received.length === 10);
    for (let revocation = 1; revocation <= 5; revocation++) {
      org.revokeAllTokens(); // the open stream ends UNAUTHENTICATED, as Salesforce ends it
      publish(10);
      await until(() => received.length === 10 * (revocation + 1));
    }
    expect(received.map((e) => e.replay_id.toString('hex'))).toEqual(
      published.map((id) => id.toString('hex')),
    );
    expect(received.map((e) => e.event.payload.toString())).toEqual(
      published.map((_, i) => `event ${i}`),
    );
    expect(org.stats.tokenRequests).toBe(6);
    expect(subscription.opens).toBe(6);
    expect(subscription.lastReplayId?.equals(published.at(-1) as Buffer)).toBe(true);
    subscription.close();
    client.close();
    await session.close();
  });

  it('a unary Publish after a revocation succeeds with 1 re-mint; GetTopic names the org', async () => {
    const session = sessionFor();
    const client = clientFor(session);
    const topic = await call<{ tenant_guid: string; schema_id: string }>((cb) =>
      client.GetTopic({ topic_name: TOPIC }, cb),
    );
    expect(topic.tenant_guid).toBe('00D000000000001EAA');
    org.resetStats();
    org.revokeAllTokens();
    const answer = await call<{ results: { replay_id: Buffer }[] }>((cb) =>
      client.Publish(
        { topic_name: TOPIC, events: [{ schema_id: topic.schema_id, payload: Buffer.from('x') }] },
        cb,
      ),
    );
    expect(answer.results).toHaveLength(1);
    expect(org.stats.tokenRequests).toBe(1);
    expect(org.pubsub?.stats.unauthenticated).toBeGreaterThanOrEqual(1);
    client.close();
    await session.close();
  });

  it('a tenantId that is not the token’s org is refused with a typed error before anything is sent', async () => {
    const session = sessionFor();
    const client = clientFor(session, '00D000000000009AAA');
    const before = org.pubsub?.stats.calls;
    const error = await caught(() => call((cb) => client.GetTopic({ topic_name: TOPIC }, cb)));
    const typed = pubsubErrorOf(error as never);
    expect(typed).toBeInstanceOf(ConfigError);
    expect(typed).toMatchObject({ option: 'tenantId' });
    expect(org.pubsub?.stats.calls).toBe(before);
    client.close();
    await session.close();
  });

  it('the server refuses a wrong tenantid and a bad token: one retry at most, then PubSubError', async () => {
    const token = await sessionFor().getToken();
    // A static token cannot say its org: tenantId is taken as given, and the server checks it.
    const wrongOrg = new StaticTokenAuth({ accessToken: token, instanceUrl: org.instanceUrl });
    const client = clientFor(wrongOrg, '00D000000000009AAA');
    const before = org.pubsub?.stats.calls as number;
    const error = pubsubErrorOf(
      (await caught(() => call((cb) => client.GetTopic({ topic_name: TOPIC }, cb)))) as never,
    );
    expect(error).toBeInstanceOf(PubSubError);
    expect(error).toMatchObject({ grpcCode: 16, errorCode: PUBSUB_AUTH_ERROR, transient: false });
    // The static token came back the same: no second call.
    expect(org.pubsub?.stats.calls).toBe(before + 1);
    client.close();
  });

  it('a topic the org does not define is NOT_FOUND, as Salesforce answers', async () => {
    const session = sessionFor();
    const client = clientFor(session);
    const error = await caught(() =>
      call((cb) => client.GetTopic({ topic_name: '/event/Nope__e' }, cb)),
    );
    expect(pubsubErrorOf(error as never)).toMatchObject({ grpcCode: 5, transient: false });
    expect(() => org.pubsub?.publish('/event/Nope__e', [])).toThrow();
    // A trailer that is not in the shape of Salesforce's codes is not repeated in a message.
    const odd = new PubSubError(16, 'Bearer 00Dx!secret', false);
    expect(odd.message).not.toContain('secret');
    expect(odd.errorCode).toBeUndefined();
    client.close();
    await session.close();
  });

  it('plaintext is refused except to loopback; the token never shows in an error', async () => {
    const session = sessionFor();
    expect(() =>
      pubsubClient(session, {
        target: 'api.pubsub.salesforce.com:7443',
        credentials: credentials.createInsecure(),
      }),
    ).toThrow(ConfigError);
    expect(() => pubsubClient(session, { target: 'not a target' })).toThrow(ConfigError);
    const bad = new StaticTokenAuth({ accessToken: '00Dbad!token', instanceUrl: org.instanceUrl });
    const client: PubSubClient = clientFor(bad, '00D000000000001EAA');
    const error = await caught(() => call((cb) => client.GetTopic({ topic_name: TOPIC }, cb)));
    expect(JSON.stringify(error)).not.toContain('00Dbad!token');
    expect(String((error as Error).message)).not.toContain('00Dbad!token');
    client.close();
  });
});
