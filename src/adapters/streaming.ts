import { AuthError, ConfigError, StreamingAuthError } from '../errors.js';
import { optionalFunction, optionsObject } from '../internal/options.js';
import type { AuthSession } from '../session/auth-session.js';

/** A Bayeux message as faye's extensions see it. */
export interface BayeuxMessage {
  channel: string;
  successful?: boolean;
  error?: string;
  advice?: { reconnect?: string; interval?: number; timeout?: number };
  ext?: Record<string, unknown> & {
    sfdc?: { failureReason?: string };
    replay?: Record<string, number>;
  };
  subscription?: string;
  data?: unknown;
  [field: string]: unknown;
}

/** A faye extension: what `client.addExtension()` and jsforce's `createClient([…])` take. */
export interface FayeExtension {
  incoming?(message: BayeuxMessage, callback: (message: BayeuxMessage) => void): void;
  outgoing?(message: BayeuxMessage, callback: (message: BayeuxMessage) => void): void;
}

/** The part of a faye client (jsforce's streaming client) the extension drives. */
export interface FayeClientLike {
  setHeader(name: string, value: string): unknown;
}

export { StreamingAuthError };

/** Options of {@link StreamingAuth} and {@link streamingClient}. */
export interface StreamingAuthOptions {
  /**
   * Called when the Streaming API refuses a session a new token does not cure (the same token
   * back: the session's rejection guard holds minting, or it cannot mint); the client then stays
   * disconnected, as Salesforce advises.
   */
  onFailure?: ((error: AuthError) => void) | undefined;
  /**
   * Resubscribe from the last replay id received on each channel (the `replay` extension), so
   * events published while the client was re-authenticating are delivered, once.
   * @default true
   */
  replay?: boolean | undefined;
}

/** Whether a Bayeux reply says the session is not (or no longer) valid. */
export function isStreamingAuthFailure(message: BayeuxMessage): boolean {
  if (message.successful !== false) return false;
  if (message.channel === '/meta/handshake') {
    return String(message.ext?.sfdc?.failureReason ?? '').startsWith('401::');
  }
  return String(message.error ?? '').startsWith('401::');
}

/**
 * A faye extension that keeps a Streaming API (CometD) client authenticated from a session:
 * every handshake carries the session's current token (`Authorization: OAuth …`); when Salesforce
 * answers `401::Authentication invalid` (advice `reconnect: none`, after which faye would stop for
 * good), it invalidates exactly the token the client used, takes a new one and tells faye to
 * handshake again, which resubscribes every channel (from the last replay id seen, with `replay`).
 * At most once per token: a token rejected again before anything succeeded with it is the
 * session's rejection guard's to hold, and `onFailure` is told.
 */
export class StreamingAuth implements FayeExtension {
  readonly #session: AuthSession;
  readonly #onFailure: ((error: AuthError) => void) | undefined;
  readonly #replay: boolean;
  readonly #last = new Map<string, number>();
  #client: FayeClientLike | undefined;
  #sent: string | undefined;
  #gaveUpOn: string | undefined;

  constructor(session: AuthSession, options: StreamingAuthOptions = {}) {
    const o = optionsObject(options);
    this.#session = session;
    this.#onFailure = optionalFunction('onFailure', o.onFailure);
    if (o.replay !== undefined && typeof o.replay !== 'boolean') {
      throw new ConfigError('replay', 'must be a boolean');
    }
    this.#replay = o.replay !== false;
  }

  /** The client whose `Authorization` header this extension sets. */
  attach(client: FayeClientLike): this {
    this.#client = client;
    return this;
  }

  /** The last replay id received on `channel`, if any. */
  lastReplayId(channel: string): number | undefined {
    return this.#last.get(channel);
  }

  outgoing(message: BayeuxMessage, callback: (message: BayeuxMessage) => void): void {
    if (message.channel === '/meta/handshake') {
      this.#session.getToken().then(
        (token) => {
          this.#sent = token;
          this.#client?.setHeader('Authorization', `OAuth ${token}`);
          callback(message);
        },
        // No token: the handshake goes as it is and is refused; incoming() reports it.
        () => callback(message),
      );
      return;
    }
    const channel = message.subscription;
    const last = channel === undefined ? undefined : this.#last.get(channel);
    if (this.#replay && message.channel === '/meta/subscribe' && last !== undefined) {
      message.ext = {
        ...message.ext,
        replay: { ...message.ext?.replay, [channel as string]: last },
      };
    }
    callback(message);
  }

  incoming(message: BayeuxMessage, callback: (message: BayeuxMessage) => void): void {
    if (!isStreamingAuthFailure(message)) {
      this.#observe(message);
      callback(message);
      return;
    }
    const stale = this.#sent;
    const reason =
      message.channel === '/meta/handshake'
        ? String(message.ext?.sfdc?.failureReason ?? message.error)
        : String(message.error);
    if (stale !== undefined && this.#gaveUpOn === stale) {
      callback(message);
      return;
    }
    const renewal =
      stale === undefined
        ? this.#session.getToken()
        : this.#session.invalidate(stale).then(() => this.#session.getToken());
    renewal.then(
      (fresh) => {
        if (fresh === stale) {
          this.#gaveUpOn = stale;
          this.#onFailure?.(new StreamingAuthError(reason));
          return callback(message);
        }
        this.#sent = fresh;
        this.#client?.setHeader('Authorization', `OAuth ${fresh}`);
        // Faye stops for good on `reconnect: none`; a new handshake (and resubscription) it is.
        callback({
          ...message,
          advice: { ...message.advice, reconnect: 'handshake', interval: 0 },
        });
      },
      (error: unknown) => {
        if (stale !== undefined) this.#gaveUpOn = stale;
        this.#onFailure?.(error instanceof AuthError ? error : new StreamingAuthError(reason));
        callback(message);
      },
    );
  }

  /** A success with the current token confirms it; an event's replay id is remembered. */
  #observe(message: BayeuxMessage): void {
    const sent = this.#sent;
    if (
      message.successful === true &&
      sent !== undefined &&
      message.channel !== '/meta/handshake'
    ) {
      this.#session.confirm?.(sent);
    }
    const replayId = (message.data as { event?: { replayId?: unknown } } | undefined)?.event
      ?.replayId;
    if (!message.channel.startsWith('/meta/') && typeof replayId === 'number') {
      this.#last.set(message.channel, replayId);
    }
  }

  /** `util.inspect` and `JSON.stringify` show no token. */
  toJSON(): { type: string } {
    return { type: 'StreamingAuth' };
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return 'StreamingAuth {}';
  }
}

/** A jsforce `Connection` as far as streaming goes (jsforce 3 or @jsforce/jsforce-node). */
export interface StreamingConnection<Client extends FayeClientLike> {
  streaming: { createClient(extensions?: FayeExtension[]): Client };
}

/**
 * A jsforce streaming client (faye, `/cometd/NN.N` on the connection's instance) that re-
 * authenticates itself from `session` (see {@link StreamingAuth}): subscriptions keep receiving
 * across revocations and expiries.
 *
 * @example
 * ```ts
 * const client = streamingClient(conn, session);
 * client.subscribe('/event/Order__e', (message) => handle(message));
 * ```
 */
export function streamingClient<Client extends FayeClientLike>(
  conn: StreamingConnection<Client>,
  session: AuthSession,
  options: StreamingAuthOptions & { extensions?: FayeExtension[] | undefined } = {},
): Client {
  const { extensions = [], ...rest } = optionsObject(options);
  const auth = new StreamingAuth(session, rest);
  const client = conn.streaming.createClient([auth, ...extensions]);
  auth.attach(client);
  return client;
}
