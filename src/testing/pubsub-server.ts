import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';

/** What the fake Pub/Sub server needs from its org: whose token a token is. */
export interface PubSubHost {
  /** The org id and instance URL of a live access token's org, or `undefined`. */
  ownerOf(token: string): { readonly orgId: string; readonly instanceUrl: string } | undefined;
  /** Whether the org defines this topic (a platform event, a change-data-capture channel). */
  defines(topic: string): boolean;
}

/** Counters of the fake Pub/Sub server. */
export interface FakePubSubStats {
  /** RPCs started (a Subscribe stream counts once). */
  calls: number;
  /** RPCs refused with UNAUTHENTICATED (a bad, revoked or foreign token, or a wrong tenantid). */
  unauthenticated: number;
  /** Events published. */
  published: number;
  /** Events delivered to subscribers. */
  delivered: number;
}

/** The fake org's Pub/Sub API: a real gRPC server on loopback (`@grpc/grpc-js`). */
export interface FakePubSub {
  /** `127.0.0.1:PORT`: the gRPC target (plaintext; loopback only). */
  readonly target: string;
  readonly stats: FakePubSubStats;
  /** Publishes events on `topic` as another publisher would (no token needed); answers their replay ids. */
  publish(topic: string, payloads: readonly Uint8Array[]): Buffer[];
  /** Ends every open Subscribe stream whose token is no longer valid (a server-side sweep). */
  sweep(): void;
  close(): Promise<void>;
}

/** The trailer Salesforce's Pub/Sub API sets on an authentication failure. */
export const PUBSUB_AUTH_ERROR = 'sfdc.platform.eventbus.grpc.service.auth.error';

/** The proto the fake serves (and `cirrus-auth/grpc` loads): Salesforce's published interface. */
export const PUBSUB_PROTO = fileURLToPath(new URL('../../proto/pubsub_api.proto', import.meta.url));

interface StoredEvent {
  readonly id: string;
  readonly schemaId: string;
  readonly payload: Buffer;
  readonly replayId: Buffer;
}

interface Topic {
  readonly name: string;
  readonly schemaId: string;
  readonly events: StoredEvent[];
  readonly subscribers: Set<() => void>;
}

const TOPIC = /^\/(event|data)\/\w+$/;
const MAX_NUM_REQUESTED = 100;

/**
 * Starts the fake Pub/Sub API: GetTopic, GetSchema, Publish and Subscribe (flow control by
 * `num_requested`, replay presets and ids), each authenticated by the `accesstoken`,
 * `instanceurl` and `tenantid` metadata as Salesforce does. A bad, revoked or foreign token, or
 * a `tenantid` that is not its org's, gets `UNAUTHENTICATED` with the `error-code` trailer
 * `sfdc.platform.eventbus.grpc.service.auth.error`; an open Subscribe stream whose token is
 * revoked ends so too, at its next delivery.
 */
export async function startFakePubSub(host: PubSubHost): Promise<FakePubSub> {
  const grpc = await import('@grpc/grpc-js');
  const loader = await import('@grpc/proto-loader');
  const definition = loader.loadSync(PUBSUB_PROTO, {
    keepCase: true,
    longs: Number,
    defaults: true,
  });
  const proto = grpc.loadPackageDefinition(definition) as unknown as {
    eventbus: { v1: { PubSub: { service: import('@grpc/grpc-js').ServiceDefinition } } };
  };
  const stats: FakePubSubStats = { calls: 0, unauthenticated: 0, published: 0, delivered: 0 };
  const topics = new Map<string, Topic>();
  const sweeps = new Set<() => void>();
  let sequence = 0n;

  const topicOf = (name: string): Topic | undefined => {
    // As in a real org, only a topic the org defines exists: a misspelt one is NOT_FOUND.
    if (!TOPIC.test(name) || !host.defines(name)) return undefined;
    let topic = topics.get(name);
    if (topic === undefined) {
      topic = { name, schemaId: `schema${topics.size + 1}`, events: [], subscribers: new Set() };
      topics.set(name, topic);
    }
    return topic;
  };
  const schemaFor = (schemaId: string) =>
    JSON.stringify({
      type: 'record',
      name: `Event_${schemaId}`,
      fields: [{ name: 'Message__c', type: ['null', 'string'], default: null }],
    });

  const failure = (code: number, errorCode: string, message: string) => {
    const rpcId = randomUUID();
    const metadata = new grpc.Metadata();
    metadata.set('error-code', errorCode);
    metadata.set('rpc-id', rpcId);
    return Object.assign(new Error(`${message} rpcId: ${rpcId}`), {
      code,
      details: `${message} rpcId: ${rpcId}`,
      metadata,
    });
  };
  const topicNotFound = () =>
    failure(
      grpc.status.NOT_FOUND,
      'sfdc.platform.eventbus.grpc.service.topic.not.found',
      'topic not found',
    );
  const unauthenticated = () => {
    stats.unauthenticated++;
    return failure(
      grpc.status.UNAUTHENTICATED,
      PUBSUB_AUTH_ERROR,
      'An authentication exception occurred. Provide valid authentication via metadata headers.',
    );
  };
  /** The caller's org, if its metadata authenticates it. */
  const authenticate = (metadata: import('@grpc/grpc-js').Metadata) => {
    const one = (key: string) => {
      const value = metadata.get(key)[0];
      return typeof value === 'string' ? value : undefined;
    };
    const token = one('accesstoken');
    const owner = token === undefined ? undefined : host.ownerOf(token);
    if (owner === undefined || token === undefined) return undefined;
    if (one('instanceurl')?.replace(/\/+$/, '') !== owner.instanceUrl) return undefined;
    if (one('tenantid') !== owner.orgId) return undefined;
    return { token, orgId: owner.orgId };
  };
  const stillValid = (token: string, orgId: string) => host.ownerOf(token)?.orgId === orgId;

  const publish = (topic: Topic, events: { id?: string; schema_id?: string; payload?: Buffer }[]) =>
    events.map((event) => {
      sequence++;
      const replayId = Buffer.alloc(8);
      replayId.writeBigUInt64BE(sequence);
      topic.events.push({
        id: event.id || randomUUID(),
        schemaId: event.schema_id || topic.schemaId,
        payload: Buffer.from(event.payload ?? []),
        replayId,
      });
      stats.published++;
      for (const wake of topic.subscribers) wake();
      return { replayId, correlationKey: event.id ?? '' };
    });

  type Unary = import('@grpc/grpc-js').handleUnaryCall<Record<string, unknown>, unknown>;
  const unary =
    (answer: (request: Record<string, unknown>, orgId: string) => unknown): Unary =>
    (call, callback) => {
      stats.calls++;
      const caller = authenticate(call.metadata);
      if (caller === undefined) return callback(unauthenticated() as never);
      try {
        callback(null, answer(call.request, caller.orgId));
      } catch (error) {
        callback(error as import('@grpc/grpc-js').ServiceError);
      }
    };

  const server = new grpc.Server();
  server.addService(proto.eventbus.v1.PubSub.service, {
    GetTopic: unary((request, orgId) => {
      const topic = topicOf(String(request.topic_name));
      if (topic === undefined) {
        throw topicNotFound();
      }
      return {
        topic_name: topic.name,
        tenant_guid: orgId,
        can_publish: true,
        can_subscribe: true,
        schema_id: topic.schemaId,
        rpc_id: randomUUID(),
      };
    }),
    GetSchema: unary((request) => ({
      schema_id: String(request.schema_id),
      schema_json: schemaFor(String(request.schema_id)),
      rpc_id: randomUUID(),
    })),
    Publish: unary((request) => {
      const topic = topicOf(String(request.topic_name));
      if (topic === undefined) {
        throw topicNotFound();
      }
      const results = publish(topic, (request.events ?? []) as never[]);
      return {
        results: results.map((r) => ({ replay_id: r.replayId, correlation_key: r.correlationKey })),
        schema_id: topic.schemaId,
        rpc_id: randomUUID(),
      };
    }),
    Subscribe: (
      call: import('@grpc/grpc-js').ServerDuplexStream<Record<string, unknown>, unknown>,
    ) => {
      stats.calls++;
      const caller = authenticate(call.metadata);
      if (caller === undefined) {
        call.emit('error', unauthenticated());
        return;
      }
      let topic: Topic | undefined;
      let cursor = 0;
      let credit = 0;
      let ended = false;
      const end = (error: unknown) => {
        if (ended) return;
        ended = true;
        cleanup();
        call.emit('error', error);
      };
      const pump = () => {
        if (ended || topic === undefined) return;
        if (!stillValid(caller.token, caller.orgId)) return end(unauthenticated());
        while (credit > 0 && cursor < topic.events.length) {
          const batch = topic.events.slice(cursor, cursor + credit);
          cursor += batch.length;
          credit -= batch.length;
          stats.delivered += batch.length;
          call.write({
            events: batch.map((e) => ({
              event: { id: e.id, schema_id: e.schemaId, payload: e.payload, headers: [] },
              replay_id: e.replayId,
            })),
            latest_replay_id: batch.at(-1)?.replayId,
            rpc_id: randomUUID(),
            pending_num_requested: credit,
          });
        }
      };
      const sweep = () => {
        if (!stillValid(caller.token, caller.orgId)) end(unauthenticated());
      };
      const cleanup = () => {
        topic?.subscribers.delete(pump);
        sweeps.delete(sweep);
      };
      sweeps.add(sweep);
      call.on('data', (request: Record<string, unknown>) => {
        if (ended) return;
        if (!stillValid(caller.token, caller.orgId)) return end(unauthenticated());
        if (topic === undefined) {
          topic = topicOf(String(request.topic_name));
          if (topic === undefined) {
            return end(topicNotFound());
          }
          const preset = request.replay_preset;
          if (preset === 'EARLIEST' || preset === 1) cursor = 0;
          else if (preset === 'CUSTOM' || preset === 2) {
            const wanted = Buffer.from((request.replay_id as Buffer | undefined) ?? []);
            const at = topic.events.findIndex((e) => e.replayId.equals(wanted));
            if (at < 0) {
              return end(
                failure(
                  grpc.status.INVALID_ARGUMENT,
                  'sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted',
                  'The replay ID is not valid',
                ),
              );
            }
            cursor = at + 1;
          } else cursor = topic.events.length;
          topic.subscribers.add(pump);
        }
        const asked = Number(request.num_requested);
        if (!Number.isInteger(asked) || asked < 1 || asked > MAX_NUM_REQUESTED) {
          return end(
            failure(
              grpc.status.INVALID_ARGUMENT,
              'sfdc.platform.eventbus.grpc.subscription.fetch.invalid.numrequested',
              'num_requested must be between 1 and 100',
            ),
          );
        }
        credit = Math.min(MAX_NUM_REQUESTED, credit + asked);
        pump();
      });
      call.on('end', () => {
        cleanup();
        if (!ended) {
          ended = true;
          call.end();
        }
      });
      call.on('error', () => cleanup());
      call.on('cancelled', () => cleanup());
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) =>
      error ? reject(error) : resolve(bound),
    ),
  );
  return {
    target: `127.0.0.1:${port}`,
    get stats() {
      return { ...stats };
    },
    publish: (name, payloads) => {
      const topic = topicOf(name);
      if (topic === undefined) throw new Error(`not a topic name: ${name}`);
      return publish(
        topic,
        payloads.map((p) => ({ payload: Buffer.from(p) })),
      ).map((r) => r.replayId);
    },
    sweep: () => {
      for (const s of [...sweeps]) s();
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.tryShutdown(() => resolve());
        setTimeout(() => server.forceShutdown(), 200).unref();
      }),
  };
}
