// The clients bench figures 9, 9b and 9c compare: each bare (a fixed `Authorization` header) and
// with its cirrus-auth adapter around a `StaticTokenAuth`. Defined once, so the CPU-time figures
// and the instruction counts measure the very same calls.
import { Agent } from 'node:http';
import axios, { type AxiosAdapter } from 'axios';
import { StaticTokenAuth } from 'cirrus-auth';
import { attachAuth } from 'cirrus-auth/axios';
import { authFetch } from 'cirrus-auth/fetch';
import { authHooks } from 'cirrus-auth/ky';
import ky from 'ky';

/** One client's two sides: the bare call and the same call through the adapter. */
export type Pair = readonly [bare: () => Promise<unknown>, adapter: () => Promise<unknown>];
export type ClientName = 'fetch' | 'axios' | 'ky';
/** The instant transport's clients: the three, and fetch with a new URL (a new query) each call. */
export type InstantName = ClientName | 'fetch-new-url';

const TOKEN = '00D000000000001!bench-static-token';
const fixed = { authorization: `Bearer ${TOKEN}` };

/**
 * Calls over a real socket to `serverUrl` (the loopback server child), each reading the whole
 * answer. `axios A/A` and `ky A/A` are two identical bare clients: what they read is the noise floor.
 */
export type LoopbackName = ClientName | 'axios A/A' | 'ky A/A';
export function loopbackPairs(serverUrl: string): Record<LoopbackName, Pair> {
  const session = new StaticTokenAuth({ accessToken: TOKEN, instanceUrl: serverUrl });
  const url = `${serverUrl}/services/data/v62.0/limits`;
  const sfFetch = authFetch(session);
  // One agent for every axios instance: the same pool of sockets, as fetch and ky share theirs.
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  const bareAxios = axios.create({ httpAgent: agent, headers: fixed });
  const otherBareAxios = axios.create({ httpAgent: agent, headers: fixed });
  const authAxios = axios.create({ httpAgent: agent });
  attachAuth(authAxios, session);
  const bareKy = ky.create({ headers: fixed, retry: 0 });
  const otherBareKy = ky.create({ headers: fixed, retry: 0 });
  const authKy = ky.create({ hooks: authHooks(session), retry: 0 });
  return {
    fetch: [
      () => fetch(url, { headers: fixed }).then((r) => r.arrayBuffer()),
      () => sfFetch(url).then((r) => r.arrayBuffer()),
    ],
    axios: [() => bareAxios.get(url), () => authAxios.get(url)],
    'axios A/A': [() => bareAxios.get(url), () => otherBareAxios.get(url)],
    ky: [() => bareKy.get(url).arrayBuffer(), () => authKy.get(url).arrayBuffer()],
    'ky A/A': [() => bareKy.get(url).arrayBuffer(), () => otherBareKy.get(url).arrayBuffer()],
  };
}

/**
 * Calls over an instant transport (a fetch that answers at once, an axios adapter that resolves at
 * once): no socket, no server, only the clients' and the adapters' own work.
 */
export function instantPairs(): Record<InstantName, Pair> {
  const base = 'https://acme.my.salesforce.com';
  const session = new StaticTokenAuth({ accessToken: TOKEN, instanceUrl: base });
  const url = `${base}/services/data/v62.0/limits`;
  const instantFetch = (async () => new Response('{}')) as unknown as typeof fetch;
  const instantAdapter: AxiosAdapter = async (config) => ({
    data: {},
    status: 200,
    statusText: 'OK',
    headers: {},
    config,
    request: {},
  });
  const sfFetch = authFetch(session, { fetch: instantFetch });
  let bareCalls = 0;
  let adapterCalls = 0;
  const bareAxios = axios.create({ adapter: instantAdapter, headers: fixed });
  const authAxios = axios.create({ adapter: instantAdapter });
  attachAuth(authAxios, session);
  const bareKy = ky.create({ headers: fixed, retry: 0, fetch: instantFetch });
  const authKy = ky.create({ hooks: authHooks(session), retry: 0, fetch: instantFetch });
  return {
    fetch: [() => instantFetch(url, { headers: fixed }), () => sfFetch(url)],
    // The adapter remembers the last URL's API: this side pays for working it out every call.
    'fetch-new-url': [
      () => instantFetch(`${url}?n=${bareCalls++}`, { headers: fixed }),
      () => sfFetch(`${url}?n=${adapterCalls++}`),
    ],
    axios: [() => bareAxios.get(url), () => authAxios.get(url)],
    ky: [() => bareKy.get(url), () => authKy.get(url)],
  };
}

/**
 * `calls` instant calls of `send` in batches of 16, with a turn of the event loop per batch, as a
 * transport would give: ky releases what it holds for a call only on a later turn (with none, its
 * heap grows until it runs out).
 */
export async function instantBatches(calls: number, send: () => Promise<unknown>): Promise<void> {
  for (let i = 0; i < calls; i += 16) {
    await Promise.all(Array.from({ length: 16 }, send));
    await new Promise((resolve) => setImmediate(resolve));
  }
}
