// One process of a fleet: a session sharing a RedisTokenStore, driven by its parent over IPC.
// It imports the built package (dist/, built by the test's global setup), as a user's app would.
import { createHash } from 'node:crypto';
import { subscribe } from 'node:diagnostics_channel';
import Redis from 'ioredis';
import { createClient } from 'redis';
import { authFetch } from '../../dist/adapters/fetch.js';
import { ClientCredentialsAuth, DIAGNOSTICS_CHANNELS, RefreshTokenAuth } from '../../dist/index.js';
import { RedisTokenStore } from '../../dist/stores/redis.js';

const config = JSON.parse(process.env.FLEET_CONFIG ?? '{}');
const send = (message) => process.send?.(message);
const digest = (token) => createHash('sha256').update(token).digest('hex').slice(0, 16);

let client;
if (config.client === 'ioredis') {
  client = new Redis(config.redisUrl, { maxRetriesPerRequest: 1, retryStrategy: () => 100 });
  client.on('error', () => {});
} else {
  client = createClient({
    url: config.redisUrl,
    disableOfflineQueue: true,
    socket: { reconnectStrategy: () => 100, connectTimeout: 500 },
  });
  client.on('error', () => {});
  await client.connect();
}

const store = new RedisTokenStore({
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
        onRefreshTokenRotated: (token) => send({ type: 'rotated', token }),
      })
    : new ClientCredentialsAuth({ ...common, clientSecret: config.clientSecret });

subscribe(DIAGNOSTICS_CHANNELS.mintStart, () => send({ type: 'mintStart', pid: process.pid }));
subscribe(DIAGNOSTICS_CHANNELS.store, (event) => send({ type: 'store', outcome: event.outcome }));

const api = authFetch(session);
let load;

async function runLoad(concurrency) {
  const counts = { ok: 0, failed: 0, statuses: {} };
  let running = true;
  const worker = async () => {
    while (running) {
      try {
        const response = await api('/services/data/v62.0/limits');
        await response.arrayBuffer();
        counts.statuses[response.status] = (counts.statuses[response.status] ?? 0) + 1;
        if (response.ok) counts.ok++;
        else counts.failed++;
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
  async current() {
    return { token: digest(await session.getToken()) };
  },
  async startLoad({ concurrency }) {
    load = await runLoad(concurrency);
    return {};
  },
  async loadCounts() {
    return { ...load.counts };
  },
  async stopLoad() {
    return await load.stop();
  },
  async exit() {
    await session.close();
    if (config.client === 'ioredis') client.disconnect();
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
