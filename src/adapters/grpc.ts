import { fileURLToPath } from 'node:url';
import {
  type ChannelCredentials,
  type Client,
  type ClientDuplexStream,
  credentials as grpcCredentials,
  InterceptingCall,
  type Interceptor,
  type InterceptorOptions,
  type Listener,
  loadPackageDefinition,
  Metadata,
  type ServiceError,
  type StatusObject,
  status,
} from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { AuthError, ConfigError, PubSubError } from '../errors.js';
import { optionalFunction, optionsObject, positiveMs } from '../internal/options.js';
import type { AuthSession } from '../session/auth-session.js';

/** Salesforce's Pub/Sub API endpoint (TLS). */
export const PUBSUB_TARGET = 'api.pubsub.salesforce.com:7443';

/** The `error-code` trailer Salesforce's Pub/Sub API sets on an authentication failure. */
export const PUBSUB_AUTH_ERROR_CODE = 'sfdc.platform.eventbus.grpc.service.auth.error';

/** Options of {@link authInterceptor}. */
export interface GrpcAuthOptions {
  /**
   * The org id to send as `tenantid`. By default the org of the session's token
   * (`getTokenInfo().orgId`); needed for a session that cannot say (a static token without an
   * identity URL). One that is not the token's org is refused before anything is sent.
   */
  tenantId?: string | undefined;
  /**
   * Called when a streaming call (Pub/Sub `Subscribe`) ends UNAUTHENTICATED: the token it sent
   * has been invalidated; open the stream again (from the last replay id) to go on with a new one.
   * {@link resubscribe} does that for you.
   */
  onStreamRejected?: ((event: StreamRejectedEvent) => void) | undefined;
}

/** What {@link GrpcAuthOptions.onStreamRejected} is told: which method, nothing secret. */
export interface StreamRejectedEvent {
  readonly method: string;
  readonly code: number;
}

export { PubSubError };

/**
 * The typed error for a gRPC call's failure: a {@link PubSubError} (UNAUTHENTICATED is not
 * transient; UNAVAILABLE and RESOURCE_EXHAUSTED are), or the `AuthError` the session or this
 * adapter raised (a token that could not be minted, a `tenantId` that is not the token's org).
 */
export function pubsubErrorOf(error: ServiceError): AuthError {
  const own = (error as { cirrusError?: unknown }).cirrusError;
  if (own instanceof AuthError) return own;
  const trailer = error.metadata?.get('error-code')[0];
  const transient = error.code === status.UNAVAILABLE || error.code === status.RESOURCE_EXHAUSTED;
  return new PubSubError(error.code, typeof trailer === 'string' ? trailer : undefined, transient);
}

/** The listener an interceptor's `start` is handed: the caller's side, called with one argument. */
interface Downstream {
  onReceiveMetadata(metadata: Metadata): void;
  onReceiveMessage(message: unknown): void;
  onReceiveStatus(status: StatusObject): void;
}

/** Local failures travel to the caller as a status carrying the typed error (see pubsubErrorOf). */
function failed(listener: Downstream, error: unknown): void {
  const metadata = new Metadata();
  const status_: StatusObject & { cirrusError?: unknown } = {
    code: status.UNAUTHENTICATED,
    details: error instanceof AuthError ? `cirrus-auth: ${error.code}` : 'cirrus-auth: no token',
    metadata,
  };
  // grpc-js copies a status's own fields onto the ServiceError it gives the caller.
  status_.cirrusError = error;
  listener.onReceiveStatus(status_);
}

/**
 * A `@grpc/grpc-js` client interceptor that authenticates every call as Salesforce's Pub/Sub API
 * reads it: `accesstoken` (the session's token), `instanceurl` (its instance URL) and `tenantid`
 * (its org id). A unary call (GetTopic, GetSchema, Publish) that ends UNAUTHENTICATED invalidates
 * the exact token it sent and is sent once more with a new one (not if the session hands back
 * the same token). A streaming call cannot be replayed: its token is invalidated and
 * `onStreamRejected` told, so the caller resubscribes from its last replay id ({@link resubscribe}).
 *
 * @example
 * ```ts
 * const client = pubsubClient(session); // or: new PubSub(target, creds, { interceptors: [authInterceptor(session)] })
 * ```
 */
export function authInterceptor(session: AuthSession, options: GrpcAuthOptions = {}): Interceptor {
  const o = optionsObject(options);
  const fixedTenant = o.tenantId === undefined ? undefined : tenantIdOf(o.tenantId);
  const onStreamRejected = optionalFunction('onStreamRejected', o.onStreamRejected);

  /** The three headers for the session's current token, or the typed reason there are none. */
  const authenticate = async (metadata: Metadata): Promise<string> => {
    const token = await session.getToken();
    const info = await session.getTokenInfo?.();
    const orgId = info?.orgId;
    if (fixedTenant !== undefined && orgId !== undefined && orgId !== fixedTenant) {
      throw new ConfigError('tenantId', "is not the org of the session's token");
    }
    const tenant = fixedTenant ?? orgId;
    if (tenant === undefined) {
      throw new ConfigError('tenantId', 'is required: the session does not know its org id');
    }
    metadata.set('accesstoken', token);
    metadata.set('instanceurl', session.instanceUrl);
    metadata.set('tenantid', tenant);
    return token;
  };

  return (callOptions: InterceptorOptions, nextCall) => {
    const method = callOptions.method_definition;
    const streaming = method.requestStream || method.responseStream;
    let sent: string | undefined;
    let request: unknown;
    let baseMetadata: Metadata | undefined;
    return new InterceptingCall(nextCall(callOptions), {
      start(metadata, listener, next) {
        baseMetadata = metadata.clone();
        authenticate(metadata).then(
          (token) => {
            sent = token;
            if (streaming) return next(metadata, streamListener(method.path));
            next(metadata, unaryListener(listener));
          },
          (error: unknown) => failed(listener, error),
        );
      },
      sendMessage(message, next) {
        if (!streaming) request = message;
        next(message);
      },
    });

    function streamListener(path: string): Listener {
      return {
        onReceiveMetadata: (metadata, next) => next(metadata),
        onReceiveMessage: (message, next) => {
          if (sent !== undefined) session.confirm?.(sent);
          next(message);
        },
        onReceiveStatus: (received, next) => {
          if (received.code !== status.UNAUTHENTICATED || sent === undefined) return next(received);
          // The caller hears of it once the token is invalidated: reopening then gets a new one.
          session
            .invalidate(sent)
            .catch(() => {})
            .then(() => {
              onStreamRejected?.({ method: path, code: received.code });
              next(received);
            });
        },
      };
    }

    function unaryListener(listener: Downstream): Listener {
      // The first attempt's headers and message are held (with the callbacks that pass them on,
      // which grpc-js waits for) until its status says whether the call is retried.
      let received: Metadata | undefined;
      let metadataNext: ((metadata: Metadata) => void) | undefined;
      let message: unknown;
      let messageNext: ((message: unknown) => void) | undefined;
      return {
        onReceiveMetadata: (metadata, next) => {
          received = metadata;
          metadataNext = next;
        },
        onReceiveMessage: (m, next) => {
          message = m;
          messageNext = next;
        },
        onReceiveStatus: (first, next) => {
          const deliver = (final: StatusObject, headers?: Metadata, body?: unknown) => {
            const h = headers ?? received;
            if (metadataNext !== undefined) metadataNext(h ?? new Metadata());
            else if (h !== undefined) listener.onReceiveMetadata(h);
            const b = body ?? message;
            if (messageNext !== undefined) messageNext(b);
            else if (b !== undefined) listener.onReceiveMessage(b);
            next(final);
          };
          if (first.code !== status.UNAUTHENTICATED || sent === undefined) {
            if (first.code === status.OK && sent !== undefined) session.confirm?.(sent);
            return deliver(first);
          }
          // Rejected: invalidate exactly the token sent, and send once more with a new one.
          const stale = sent;
          const metadata = (baseMetadata as Metadata).clone();
          session
            .invalidate(stale)
            .then(() => authenticate(metadata))
            .catch(() => undefined)
            .then((token) => {
              // No new token (or the same one back: a new token does not cure this): stop here.
              if (token === undefined || token === stale) return deliver(first);
              sent = token;
              let retryHeaders: Metadata | undefined;
              let retryBody: unknown;
              const retry = nextCall(callOptions);
              retry.start(metadata, {
                onReceiveMetadata: (m) => {
                  retryHeaders = m;
                },
                onReceiveMessage: (m) => {
                  retryBody = m;
                },
                onReceiveStatus: (final) => {
                  if (final.code === status.OK) session.confirm?.(token);
                  deliver(final, retryHeaders, retryBody);
                },
              });
              retry.sendMessageWithContext({}, request);
              retry.halfClose();
            });
        },
      };
    }
  };
}

function tenantIdOf(value: unknown): string {
  if (typeof value !== 'string' || !/^00D[A-Za-z0-9]{12}([A-Za-z0-9]{3})?$/.test(value)) {
    throw new ConfigError('tenantId', 'must be a 15- or 18-character org id (00D…)');
  }
  return value;
}

/** The Pub/Sub API's messages as `pubsubClient` loads them (`keepCase`, bytes as Buffers). */
export interface PubSubClient extends Client {
  GetTopic(
    request: { topic_name: string },
    callback: (error: ServiceError | null, value?: TopicInfo) => void,
  ): unknown;
  GetSchema(
    request: { schema_id: string },
    callback: (
      error: ServiceError | null,
      value?: { schema_id: string; schema_json: string },
    ) => void,
  ): unknown;
  Publish(
    request: { topic_name: string; events: ProducerEvent[] },
    callback: (error: ServiceError | null, value?: PublishResponse) => void,
  ): unknown;
  Subscribe(): ClientDuplexStream<FetchRequest, FetchResponse>;
}

export interface TopicInfo {
  topic_name: string;
  tenant_guid: string;
  can_publish: boolean;
  can_subscribe: boolean;
  schema_id: string;
}
export interface ProducerEvent {
  id?: string;
  schema_id: string;
  payload: Uint8Array;
}
export interface ConsumerEvent {
  event: { id: string; schema_id: string; payload: Buffer };
  replay_id: Buffer;
}
export interface PublishResponse {
  results: { replay_id: Buffer; correlation_key: string }[];
  schema_id: string;
}
export interface FetchRequest {
  topic_name: string;
  replay_preset: 'LATEST' | 'EARLIEST' | 'CUSTOM';
  replay_id?: Uint8Array;
  num_requested: number;
}
export interface FetchResponse {
  events: ConsumerEvent[];
  latest_replay_id: Buffer;
  pending_num_requested: number;
}

/** Options of {@link pubsubClient}. */
export interface PubSubClientOptions extends GrpcAuthOptions {
  /** @default PUBSUB_TARGET (`api.pubsub.salesforce.com:7443`) */
  target?: string | undefined;
  /**
   * The channel's credentials. Plaintext (`credentials.createInsecure()`) is refused except to a
   * loopback target: the access token would travel in clear.
   * @default credentials.createSsl()
   */
  credentials?: ChannelCredentials | undefined;
}

const PROTO = fileURLToPath(new URL('../../proto/pubsub_api.proto', import.meta.url));

/**
 * A Pub/Sub API client (`eventbus.v1.PubSub`, from the proto shipped in the package) whose every
 * call carries the session through {@link authInterceptor}. TLS unless the target is loopback.
 *
 * @example
 * ```ts
 * const client = pubsubClient(session);
 * client.GetTopic({ topic_name: '/event/Order__e' }, (error, topic) => { ... });
 * ```
 */
export function pubsubClient(
  session: AuthSession,
  options: PubSubClientOptions = {},
): PubSubClient {
  const o = optionsObject(options);
  const target = o.target === undefined ? PUBSUB_TARGET : o.target;
  if (typeof target !== 'string' || !/^[\w.-]+:\d+$|^\[[0-9a-f:]+\]:\d+$/i.test(target)) {
    throw new ConfigError('target', 'must be host:port');
  }
  const channel = o.credentials ?? grpcCredentials.createSsl();
  const secure = (channel as { _isSecure?: () => boolean })._isSecure?.() !== false;
  const host = target.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  if (!secure && !/^(127\.\d+\.\d+\.\d+|::1|localhost)$/.test(host)) {
    throw new ConfigError(
      'credentials',
      'plaintext is for loopback only: the token would go in clear',
    );
  }
  const { tenantId, onStreamRejected } = o;
  const definition = loadSync(PROTO, { keepCase: true, longs: Number, defaults: true });
  const pkg = loadPackageDefinition(definition) as unknown as {
    eventbus: { v1: { PubSub: new (t: string, c: ChannelCredentials, o: object) => PubSubClient } };
  };
  return new pkg.eventbus.v1.PubSub(target, channel, {
    interceptors: [authInterceptor(session, { tenantId, onStreamRejected })],
  });
}

/** Options of {@link resubscribe}. */
export interface ResubscribeOptions {
  topicName: string;
  /** Called with each event, in order, exactly once across resubscriptions. */
  onEvent: (event: ConsumerEvent) => void;
  /** Called once when the subscription gives up (with its typed error) or is closed (`undefined`). */
  onEnd?: ((error: AuthError | undefined) => void) | undefined;
  /** Start after this replay id (`CUSTOM`), or from `replayPreset`. */
  replayId?: Uint8Array | undefined;
  /** @default 'LATEST' */
  replayPreset?: 'LATEST' | 'EARLIEST' | undefined;
  /** Events asked for at a time (flow control); asked again as they arrive. @default 100 */
  numRequested?: number | undefined;
  /** Consecutive failed openings before giving up (an event received resets it). @default 5 */
  maxAttempts?: number | undefined;
  /** The wait before the n-th consecutive reopening: `initialMs * 2^(n-1)`, at most `maxMs`. */
  backoff?: { initialMs?: number | undefined; maxMs?: number | undefined } | undefined;
}

/** A running {@link resubscribe}: where it is, and how to stop it. */
export interface Subscription {
  /** The replay id of the last event delivered: resume from it. */
  readonly lastReplayId: Buffer | undefined;
  /** How many times the stream was opened. */
  readonly opens: number;
  close(): void;
}

/**
 * Keeps a Pub/Sub `Subscribe` stream open on `client` (a {@link pubsubClient}): flow control
 * (asks for `numRequested` more events as each batch is used up), and when the stream ends
 * UNAUTHENTICATED (a revoked or expired session: the interceptor has invalidated its token) or
 * UNAVAILABLE, opens it again from the last replay id it delivered, so no event is lost or
 * delivered twice. Bounded: `maxAttempts` consecutive openings that deliver nothing, with
 * doubling waits; then `onEnd` gets the typed error.
 */
export function resubscribe(client: PubSubClient, options: ResubscribeOptions): Subscription {
  const o = optionsObject(options);
  const numRequested = o.numRequested ?? 100;
  if (!Number.isInteger(numRequested) || numRequested < 1 || numRequested > 100) {
    throw new ConfigError('numRequested', 'must be a whole number from 1 to 100');
  }
  const maxAttempts = o.maxAttempts ?? 5;
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1) {
    throw new ConfigError('maxAttempts', 'must be a positive whole number');
  }
  const initialMs = positiveMs('backoff.initialMs', o.backoff?.initialMs, 100);
  const maxMs = positiveMs('backoff.maxMs', o.backoff?.maxMs, 5_000);
  if (typeof o.onEvent !== 'function') throw new ConfigError('onEvent', 'must be a function');
  const onEnd = optionalFunction('onEnd', o.onEnd);
  let last = o.replayId === undefined ? undefined : Buffer.from(o.replayId);
  let opens = 0;
  let failures = 0;
  let closed = false;
  let stream: ClientDuplexStream<FetchRequest, FetchResponse> | undefined;
  let timer: NodeJS.Timeout | undefined;

  const finish = (error: AuthError | undefined) => {
    if (closed) return;
    closed = true;
    clearTimeout(timer);
    onEnd?.(error);
  };
  const open = () => {
    if (closed) return;
    opens++;
    const current = client.Subscribe();
    stream = current;
    let pending = numRequested;
    const ask = (first: boolean) =>
      current.write({
        topic_name: o.topicName,
        replay_preset: last !== undefined ? 'CUSTOM' : (o.replayPreset ?? 'LATEST'),
        ...(first && last !== undefined ? { replay_id: last } : {}),
        num_requested: numRequested,
      });
    current.on('data', (response: FetchResponse) => {
      for (const event of response.events) {
        // A replay after a reconnect never hands an event over twice.
        if (last !== undefined && Buffer.compare(event.replay_id, last) <= 0) continue;
        last = Buffer.from(event.replay_id);
        failures = 0;
        o.onEvent(event);
      }
      pending = response.pending_num_requested;
      if (pending === 0 && !closed) ask(false);
    });
    current.on('error', (error: ServiceError) => {
      if (closed || stream !== current) return;
      const again = error.code === status.UNAUTHENTICATED || error.code === status.UNAVAILABLE;
      if (!again || ++failures > maxAttempts) return finish(pubsubErrorOf(error));
      const waitMs = Math.min(maxMs, initialMs * 2 ** (failures - 1));
      timer = setTimeout(open, failures === 1 ? 0 : waitMs);
      timer.unref?.();
    });
    // 'end' only says no more messages come; the status (an 'error' unless OK) says why.
    current.on('status', (final: StatusObject) => {
      if (final.code === status.OK && stream === current && !closed) finish(undefined);
    });
    ask(true);
  };
  open();
  return {
    get lastReplayId() {
      return last;
    },
    get opens() {
      return opens;
    },
    close: () => {
      finish(undefined);
      stream?.cancel();
    },
  };
}
