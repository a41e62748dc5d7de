// One process of a fleet: a session sharing a RedisTokenStore or a PostgresTokenStore, driven by
// its parent over IPC.
// It imports the built package (dist/, built by the test's global setup), as a user's app would.
import { createHash } from 'node:crypto';
import { subscribe } from 'node:diagnostics_channel';
import Redis from 'ioredis';
import pg from 'pg';
import { createClient } from 'redis';
import { authFetch } from '../../dist/adapters/fetch.js';
import { ClientCredentialsAuth, DIAGNOSTICS_CHANNELS, RefreshTokenAuth } from '../../dist/index.js';
import { PostgresTokenStore } from '../../dist/stores/postgres.js';
import { RedisTokenStore } from '../../dist/stores/redis.js';

const config = JSON.parse(process.env.FLEET_CONFIG ?? '{}');
let rotations = 0;
const send = (message) => process.send?.(message);
const digest = (token) => createHash('sha256').update(token).digest('hex').slice(0, 16);

let client;
if (config.client === 'postgres') {
  client = new pg.Pool({ connectionString: config.storeUrl, max: 4, connectionTimeoutMillis: 500 });
  client.on('error', () => {});
} else if (config.client === 'ioredis') {
  client = new Redis(config.storeUrl, { maxRetriesPerRequest: 1, retryStrategy: () => 100 });
  client.on('error', () => {});
} else {
  client = createClient({
    url: config.storeUrl,
    disableOfflineQueue: true,
    socket: { reconnectStrategy: () => 100, connectTimeout: 500 },
  });
  client.on('error', () => {});
  await client.connect();
}

const store =
  config.client === 'postgres'
    ? new PostgresTokenStore({
        client,
        lockTtlMs: config.lockTtlMs,
        queryTimeoutMs: config.commandTimeoutMs,
        encryptionKey: config.encryptionKey,
      })
    : new RedisTokenStore({
        client,
        lockTtlMs: config.lockTtlMs,
        commandTimeoutMs: config.commandTimeoutMs,
        encryptionKey: config.encryptionKey,
      });
// `noStore`: the same process without the shared store, for the bench's side-by-side figure.
const common = {
  clientId: config.clientId,
  instanceUrl: config.instanceUrl,
  loginUrl: config.loginUrl,
  ...(config.noStore ? {} : { store, storeKey: config.storeKey }),
};
const session =
  config.grant === 'refresh_token'
    ? new RefreshTokenAuth({
        ...common,
        clientSecret: config.clientSecret,
        refreshToken: config.refreshToken,
        onRefreshTokenRotated: (token) => {
          rotations++;
          send({ type: 'rotated', token });
        },
      })
    : new ClientCredentialsAuth({ ...common, clientSecret: config.clientSecret });

subscribe(DIAGNOSTICS_CHANNELS.mintStart, () => send({ type: 'mintStart', pid: process.pid }));
subscribe(DIAGNOSTICS_CHANNELS.store, (event) => send({ type: 'store', outcome: event.outcome }));

const api = authFetch(session);
let load;

async function runLoad(concurrency) {
  // `okByWorker`: each worker's successes, so the parent can wait until every worker has gone on.
  const counts = { ok: 0, failed: 0, statuses: {}, okByWorker: Array(concurrency).fill(0) };
  let running = true;
  const worker = async (_, index) => {
    while (running) {
      try {
        const response = await api('/services/data/v62.0/limits');
        await response.arrayBuffer();
        counts.statuses[response.status] = (counts.statuses[response.status] ?? 0) + 1;
        if (response.ok) {
          counts.ok++;
          counts.okByWorker[index]++;
        } else counts.failed++;
      } catch (error) {
        counts.failed++;
        counts.statuses[error?.code ?? 'error'] =
          (counts.statuses[error?.code ?? 'error'] ?? 0) + 1;
      }
    }
  };
  const workers = Array.from({ length: concurrency }, worker);
  return {
    counts,
    stop: async () => {
      running = false;
      await Promise.all(workers);
      return counts;
    },
  };
}

const handlers = {
  async getTokens({ n }) {
    const tokens = await Promise.all(Array.from({ length: n }, () => session.getToken()));
    return { distinct: [...new Set(tokens.map(digest))] };
  },
  async refresh({ n }) {
    const stale = await session.getToken();
    // The token worked, then the org rejected it: a forced refresh, not a rejection storm.
    session.confirm(stale);
    await session.invalidate(stale);
    const tokens = await Promise.all(Array.from({ length: n }, () => session.getToken()));
    return { distinct: [...new Set(tokens.map(digest))], replaced: !tokens.includes(stale) };
  },
  async rotate() {
    // Rejects the token at hand until this process has rotated the refresh token once: the token
    // it holds may be older than the fleet's (a rejection of it then adopts the newer one).
    const before = rotations;
    let token = await session.getToken();
    for (let i = 0; i < 5 && rotations === before; i++) {
      session.confirm(token);
      await session.invalidate(token);
      token = await session.getToken();
    }
    return { rotated: rotations - before };
  },
  async current() {
    return { token: digest(await session.getToken()) };
  },
  async startLoad({ concurrency }) {
    load = await runLoad(concurrency);
    return {};
  },
  async loadCounts() {
    return { ...load.counts, okByWorker: [...load.counts.okByWorker] };
  },
  async stopLoad() {
    return await load.stop();
  },
  async exit() {
    await session.close();
    if (config.client === 'postgres') await client.end().catch(() => {});
    else if (config.client === 'ioredis') client.disconnect();
    else await client.close?.().catch?.(() => {});
    setImmediate(() => process.exit(0));
    return {};
  },
};

process.on('message', async (message) => {
  try {
    const result = await handlers[message.cmd](message);
    send({ type: 'reply', id: message.id, ok: true, result });
  } catch (error) {
    send({
      type: 'reply',
      id: message.id,
      ok: false,
      error: { name: error?.name, code: error?.code, message: error?.message },
    });
  }
});

send({ type: 'ready', pid: process.pid });
