import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';

/** What the fake Streaming API needs from its org: whose token a token is. */
export interface CometdHost {
  ownerOf(token: string): { readonly orgId: string; readonly instanceUrl: string } | undefined;
  /** Whether the org defines this channel (a platform event, a PushTopic…). */
  defines(channel: string): boolean;
}

/** Counters of the fake Streaming API. */
export interface FakeStreamingStats {
  /** Successful `/meta/handshake`s. */
  handshakes: number;
  /** Bayeux messages refused for authentication (`401::…`, or a handshake denied for it). */
  authFailures: number;
  /** Events delivered to clients. */
  delivered: number;
}

/** The fake org's Streaming API (CometD / Bayeux over HTTP long polling at `/cometd/NN.N`). */
export interface FakeStreaming {
  readonly stats: FakeStreamingStats;
  /** Publishes an event on `channel` (`/event/Name__e`, `/topic/Name`, `/data/…`); answers its replay id. */
  publish(channel: string, payload: Record<string, unknown>): number;
}

interface Client {
  readonly id: string;
  readonly token: string;
  readonly orgId: string;
  readonly cookie: string;
  readonly subscriptions: Map<string, number>;
  readonly queue: Record<string, unknown>[];
  pending: { readonly flush: (extra?: Record<string, unknown>) => void } | undefined;
}

const PATH = /^\/cometd\/\d+\.\d+\/?$/;
const CHANNEL = /^\/(event|topic|data|u)\/[\w/.-]+$/;
const COOKIE = 'BAYEUX_BROWSER';

/**
 * The Streaming API as Salesforce serves it, for the fake org: handshake (the session from the
 * `Authorization` header, `OAuth` or `Bearer`), long-polling connect, subscribe with the `replay`
 * extension (-1 new events, -2 all retained, or after a replay id), and Salesforce's auth failures:
 * a handshake without a valid session is `403::Handshake denied` with `ext.sfdc.failureReason`
 * `401::Authentication invalid` (or `401::Request requires authentication` without one); a connect
 * or subscribe whose session was invalidated is `401::Authentication invalid` with advice
 * `reconnect: none`. A client must send back the `BAYEUX_BROWSER` cookie its handshake set.
 */
export function fakeStreaming(host: CometdHost, options: { holdMs: number }) {
  const stats: FakeStreamingStats = { handshakes: 0, authFailures: 0, delivered: 0 };
  const clients = new Map<string, Client>();
  const channels = new Map<string, { events: { replayId: number; data: unknown }[] }>();

  const channelOf = (name: string) => {
    let channel = channels.get(name);
    if (channel === undefined) {
      channel = { events: [] };
      channels.set(name, channel);
    }
    return channel;
  };
  const valid = (client: Client) => host.ownerOf(client.token)?.orgId === client.orgId;
  const deliverable = (
    client: Client,
    name: string,
    event: { replayId: number; data: unknown },
  ) => {
    client.queue.push({ channel: name, data: event.data });
    client.subscriptions.set(name, event.replayId);
  };
  const authInvalid = (channel: string, client?: Client) => {
    stats.authFailures++;
    if (client !== undefined) clients.delete(client.id);
    return {
      channel,
      ...(client === undefined ? {} : { clientId: client.id }),
      successful: false,
      error: '401::Authentication invalid',
      advice: { reconnect: 'none', interval: 0 },
    };
  };

  /** Ends held connects of clients whose session is gone (a revocation: Salesforce notices). */
  const sweep = () => {
    for (const client of [...clients.values()]) {
      if (!valid(client) && client.pending !== undefined) {
        client.pending.flush(authInvalid('/meta/connect', client));
      }
    }
  };

  const publish = (name: string, payload: Record<string, unknown>): number => {
    if (!CHANNEL.test(name) || !host.defines(name)) {
      throw new Error(`the org defines no channel ${name}: add it to the channels option`);
    }
    const channel = channelOf(name);
    const replayId = channel.events.length + 1;
    const data = name.startsWith('/topic/')
      ? {
          event: { type: 'created', createdDate: new Date().toISOString(), replayId },
          sobject: payload,
        }
      : { schema: `schema-${name}`, payload, event: { replayId } };
    const event = { replayId, data };
    channel.events.push(event);
    for (const client of clients.values()) {
      if (!client.subscriptions.has(name)) continue;
      deliverable(client, name, event);
      client.pending?.flush();
    }
    return replayId;
  };

  const json = (
    res: ServerResponse,
    status: number,
    body: unknown,
    headers: Record<string, string> = {},
  ) => {
    res.writeHead(status, { 'content-type': 'application/json;charset=UTF-8', ...headers });
    res.end(JSON.stringify(body));
  };

  /** Answers a request to `/cometd/NN.N`; `instance` is the origin the request came in on. */
  async function handle(req: IncomingMessage, res: ServerResponse, body: Buffer, instance: string) {
    let messages: Record<string, unknown>[];
    try {
      const parsed = JSON.parse(body.toString('utf8')) as unknown;
      messages = (Array.isArray(parsed) ? parsed : [parsed]) as Record<string, unknown>[];
    } catch {
      return json(res, 400, [{ successful: false, error: '400::Invalid JSON' }]);
    }
    const auth = req.headers.authorization;
    const token = /^(OAuth|Bearer) (.+)$/.exec(auth ?? '')?.[2];
    const cookie = /(?:^|;\s*)BAYEUX_BROWSER=([^;]+)/.exec(req.headers.cookie ?? '')?.[1];
    const replies: Record<string, unknown>[] = [];
    let held: Client | undefined;
    let setCookie: string | undefined;
    for (const message of messages) {
      const channel = String(message.channel ?? '');
      const id = message.id;
      const reply = (fields: Record<string, unknown>) =>
        replies.push({ channel, ...(id === undefined ? {} : { id }), ...fields });
      if (channel === '/meta/handshake') {
        const owner = token === undefined ? undefined : host.ownerOf(token);
        if (owner === undefined || owner.instanceUrl !== instance) {
          stats.authFailures++;
          const reason =
            token === undefined
              ? '401::Request requires authentication'
              : '401::Authentication invalid';
          reply({
            successful: false,
            error: '403::Handshake denied',
            ext: { sfdc: { failureReason: reason } },
            advice: { reconnect: 'none' },
          });
          continue;
        }
        const client: Client = {
          id: randomBytes(12).toString('base64url'),
          token: token as string,
          orgId: owner.orgId,
          cookie: randomBytes(12).toString('hex'),
          subscriptions: new Map(),
          queue: [],
          pending: undefined,
        };
        clients.set(client.id, client);
        stats.handshakes++;
        setCookie = `${COOKIE}=${client.cookie}; Path=/`;
        reply({
          version: '1.0',
          minimumVersion: '1.0',
          clientId: client.id,
          supportedConnectionTypes: ['long-polling'],
          successful: true,
          advice: { reconnect: 'retry', interval: 0, timeout: options.holdMs + 1_000 },
        });
        continue;
      }
      const client = clients.get(String(message.clientId ?? ''));
      if (client === undefined) {
        reply({
          successful: false,
          error: '403::Unknown client',
          advice: { reconnect: 'handshake', interval: 0 },
        });
        continue;
      }
      if (cookie !== client.cookie) {
        reply({
          clientId: client.id,
          successful: false,
          error: `400::Client ${client.id} has established a session, but no ${COOKIE} cookie present`,
        });
        continue;
      }
      if (!valid(client)) {
        replies.push({ ...authInvalid(channel, client), ...(id === undefined ? {} : { id }) });
        continue;
      }
      if (channel === '/meta/subscribe') {
        const name = String(message.subscription ?? '');
        if (!CHANNEL.test(name) || !host.defines(name)) {
          reply({
            clientId: client.id,
            subscription: name,
            successful: false,
            error: `400::The channel you requested to subscribe to does not exist {${name}}`,
          });
          continue;
        }
        const events = channelOf(name).events;
        const replay = (message.ext as { replay?: Record<string, unknown> } | undefined)?.replay?.[
          name
        ];
        let from = events.length; // -1 (the default): new events only
        if (replay === -2) from = 0;
        else if (typeof replay === 'number' && replay >= 0) {
          if (replay > events.length) {
            reply({
              clientId: client.id,
              subscription: name,
              successful: false,
              error: `400::The replayId {${replay}} you provided was invalid.`,
            });
            continue;
          }
          from = replay;
        }
        client.subscriptions.set(name, from);
        for (const event of events.slice(from)) deliverable(client, name, event);
        reply({ clientId: client.id, subscription: name, successful: true });
        continue;
      }
      if (channel === '/meta/unsubscribe') {
        client.subscriptions.delete(String(message.subscription ?? ''));
        reply({ clientId: client.id, subscription: message.subscription, successful: true });
        continue;
      }
      if (channel === '/meta/disconnect') {
        clients.delete(client.id);
        reply({ clientId: client.id, successful: true });
        continue;
      }
      if (channel === '/meta/connect') {
        replies.push({
          channel,
          ...(id === undefined ? {} : { id }),
          clientId: client.id,
          successful: true,
          advice: { reconnect: 'retry', interval: 0, timeout: options.holdMs + 1_000 },
        });
        held = client;
        continue;
      }
      reply({ successful: false, error: `400::Unknown channel ${channel}` });
    }
    const headers: Record<string, string> =
      setCookie === undefined ? {} : { 'set-cookie': setCookie };
    const send = (extra: Record<string, unknown>[]) =>
      json(res, 200, [...extra, ...replies], headers);
    if (held === undefined) return send([]);
    const client = held;
    const flush = (failure?: Record<string, unknown>) => {
      if (client.pending?.flush !== flush) return;
      client.pending = undefined;
      clearTimeout(timer);
      if (failure !== undefined) return json(res, 200, [failure], headers);
      const events = client.queue.splice(0);
      stats.delivered += events.length;
      send(events);
    };
    const timer = setTimeout(() => flush(), client.queue.length > 0 ? 0 : options.holdMs);
    timer.unref?.();
    client.pending?.flush();
    client.pending = { flush };
    if (client.queue.length > 0) flush();
    res.on('close', () => {
      if (client.pending?.flush === flush) {
        client.pending = undefined;
        clearTimeout(timer);
      }
    });
  }

  return {
    handle,
    matches: (path: string) => PATH.test(path),
    sweep,
    view: {
      get stats() {
        return { ...stats };
      },
      publish,
    } satisfies FakeStreaming,
  };
}
