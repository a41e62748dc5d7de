import jsforce from 'jsforce';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StreamingAuthError, streamingClient } from '../../src/adapters/streaming.js';
import type { ClientCredentialsAuth } from '../../src/index.js';
import { type FakeOrg, startFakeOrg } from '../../src/testing/index.js';
import { sessionFor as orgSession } from '../_org.js';
import { until } from '../_wait.js';

// The Streaming API (CometD) with the real jsforce 3 streaming client (faye) against the fake
// org's /cometd: every claim is a count the org made.
let org: FakeOrg;
beforeAll(async () => {
  org = await startFakeOrg({ streamingHoldMs: 500 });
});
afterAll(() => org?.close());

const sessionFor = () => orgSession(org);
/** A plain jsforce connection on the session's current token, as an app would build one. */
const connectionFor = async (session: ClientCredentialsAuth) =>
  new jsforce.Connection({
    instanceUrl: org.instanceUrl,
    accessToken: await session.getToken(),
    version: '62.0',
  });

describe('cirrus-auth/streaming with jsforce against the fake Streaming API', () => {
  it('a channel the org does not define is refused, as Salesforce refuses it', async () => {
    const session = sessionFor();
    const client = streamingClient(await connectionFor(session), session);
    const error = await (
      client.subscribe('/event/Nope__e', () => {}) as unknown as Promise<unknown>
    ).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(String((error as { message?: unknown })?.message ?? error)).toContain('does not exist');
    expect(() => org.streaming.publish('/event/Nope__e', {})).toThrow(/defines no channel/);
    (client as unknown as { disconnect(): void }).disconnect();
    await session.close();
  });

  it('StreamingAuthError keeps server text only in the shape of a Bayeux error', () => {
    expect(new StreamingAuthError('401::Authentication invalid').message).toContain(
      '401::Authentication invalid',
    );
    const echoed = new StreamingAuthError('401::00Dx!AQ4AQsecret-token');
    expect(echoed.message).not.toContain('secret');
    expect(echoed.reason).toBe('(not shown)');
  });

  it('a subscription keeps receiving across 5 revocations: 5 re-mints, every event once, in order', async () => {
    org.resetStats();
    const before = org.streaming.stats;
    const session = sessionFor();
    const conn = await connectionFor(session);
    const client = streamingClient(conn, session);
    const received: number[] = [];
    const channel = '/event/Order__e';
    const subscription = client.subscribe(channel, (message: { event: { replayId: number } }) => {
      received.push(message.event.replayId);
    });
    await subscription;
    const publish = (n: number) => {
      for (let i = 0; i < n; i++) org.streaming.publish(channel, { Message__c: `m${i}` });
    };
    publish(3);
    await until(() => received.length === 3);
    for (let revocation = 1; revocation <= 5; revocation++) {
      org.revokeAllTokens(); // the held connect answers 401::Authentication invalid, reconnect none
      publish(3); // published while the client re-authenticates: replayed from the last id
      await until(() => received.length === 3 * (revocation + 1));
    }
    expect(received).toEqual(Array.from({ length: 18 }, (_, i) => i + 1));
    expect(org.stats.tokenRequests).toBe(6);
    expect(org.streaming.stats.handshakes - before.handshakes).toBe(6);
    expect(org.streaming.stats.authFailures - before.authFailures).toBe(5);
    (client as unknown as { disconnect(): void }).disconnect();
    await session.close();
  });

  it('a session the org refuses whatever the token: at most 3 logins, then StreamingAuthError', async () => {
    org.resetStats();
    const session = sessionFor();
    const conn = await connectionFor(session);
    org.rejectApiTokens('invalid-session'); // every token refused, new or old
    const failures: unknown[] = [];
    const client = streamingClient(conn, session, { onFailure: (error) => failures.push(error) });
    client.subscribe('/event/Order__e', () => {});
    await until(() => failures.length === 1);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(failures[0]).toBeInstanceOf(StreamingAuthError);
    expect(org.stats.tokenRequests).toBeLessThanOrEqual(3);
    expect(failures).toHaveLength(1);
    org.rejectApiTokens(undefined);
    (client as unknown as { disconnect(): void }).disconnect();
    await session.close();
  });
});
