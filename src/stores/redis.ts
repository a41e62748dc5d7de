import { randomUUID } from 'node:crypto';
import { ConfigError } from '../errors.js';
import { MAX_TIMER_MS, optionsObject, positiveMs } from '../internal/options.js';
import type { SharedSlot, SharedTokenStore, SharedWrite } from '../session/shared-store.js';
import { bounded, decodeFailure, encodeFailure, StoreCodec } from './codec.js';

/** Default `lockTtlMs`: how long a dead mint-lock holder blocks the fleet. */
export const DEFAULT_LOCK_TTL_MS = 10_000;

/** Default `commandTimeoutMs`: a Redis command slower than this counts as Redis being down. */
export const DEFAULT_COMMAND_TIMEOUT_MS = 1_000;

/** Default `keyPrefix`. */
export const DEFAULT_KEY_PREFIX = 'cirrus-auth:';

/**
 * The part of a Redis client `RedisTokenStore` uses, so any client works: a connected node-redis
 * client (`redis` package, `createClient()`) has `sendCommand(args)`; an ioredis client has
 * `call(command, ...args)`. Either method is enough. node-redis's cluster client has another
 * `sendCommand` signature and is not supported.
 */
export type RedisCommandClient =
  | { sendCommand(args: string[]): Promise<unknown> }
  | { call(command: string, ...args: string[]): Promise<unknown> };

/** Options of {@link RedisTokenStore}. */
export interface RedisTokenStoreOptions {
  /**
   * A connected client: node-redis (`await createClient({ url }).connect()`) or ioredis. Listen
   * for its `error` event yourself (node-redis throws unhandled ones); the store never closes it.
   */
  client: RedisCommandClient;
  /**
   * Prefix of every key the store writes. Change it when you change `encryptionKey`: a refresh
   * token written under another key is refused, not guessed at (an access token is replaced).
   * @default DEFAULT_KEY_PREFIX (`cirrus-auth:`)
   */
  keyPrefix?: string | undefined;
  /**
   * How long the mint lock lives unless its holder renews it (a live holder renews it every third
   * of this while its token request runs). A holder that dies mid-mint blocks the others this long;
   * one that dies while presenting a rotating refresh token, up to its `timeoutMs` plus this (its
   * lock outlives the request, so that a holder cut off from Redis is not taken over mid-refresh).
   * @default DEFAULT_LOCK_TTL_MS (10 seconds)
   */
  lockTtlMs?: number | undefined;
  /**
   * 32 bytes (a `Uint8Array`, or a base64 or hex string: `openssl rand -base64 32`). With it,
   * access and refresh tokens are stored AES-256-GCM encrypted and bound to their key name.
   * Without it they are stored in clear: anyone who can read this Redis (its users, its backups, a
   * `MONITOR` session) can use them.
   * @default none
   */
  encryptionKey?: string | Uint8Array | undefined;
  /**
   * A command slower than this rejects, and the session falls back to minting in process.
   * @default DEFAULT_COMMAND_TIMEOUT_MS (1 second)
   */
  commandTimeoutMs?: number | undefined;
}

// Lua scripts run atomically in Redis. A session's keys share one hash tag (one cluster slot).
const READ = `return {redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1]),
redis.call('GET', KEYS[2]), redis.call('EXISTS', KEYS[3]),
redis.call('GET', KEYS[4]), redis.call('PTTL', KEYS[4])}`;
// Never shortens: the periodic renewals must not cut the longer lease taken before a secret is presented.
const RENEW = `if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1`;
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;
const WRITE = `if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '1' then redis.call('DEL', KEYS[2], KEYS[3], KEYS[4]) return 1 end
if ARGV[3] ~= '' then redis.call('DEL', KEYS[4]) end
if ARGV[3] == '-' then redis.call('DEL', KEYS[2])
elseif ARGV[3] ~= '' then redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4]) end
if ARGV[5] ~= '' then redis.call('SET', KEYS[4], ARGV[5], 'PX', ARGV[6]) end
return 1`;
// Storing the secret already stored (ARGV[3] is its digest) succeeds: a retry after a lost answer.
const SWAP_SECRET = `local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, #ARGV[1]) ~= ARGV[1] and string.sub(v, 1, #ARGV[3]) ~= ARGV[3] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
return 1`;
const DELETE_IF = `local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, #ARGV[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

/**
 * A token store in Redis, shared by every process and machine of a fleet: pass it as the `store`
 * option of any minting session. The fleet then makes one token request where each process would
 * make its own, invalidates with one compare-and-swap, and keeps a rotating refresh token in Redis,
 * read and replaced under a fenced lock, so no two processes ever present the same one. Safe to
 * share between sessions: each has its own entry, keyed on login URL, client id, grant and user.
 *
 * @example
 * ```ts
 * import { createClient } from 'redis';
 * import { ClientCredentialsAuth } from 'cirrus-auth';
 * import { RedisTokenStore } from 'cirrus-auth/redis';
 *
 * const client = await createClient({ url: process.env.REDIS_URL }).on('error', log).connect();
 * const session = new ClientCredentialsAuth({
 *   clientId, clientSecret, loginUrl, instanceUrl: loginUrl,
 *   store: new RedisTokenStore({ client, encryptionKey: process.env.TOKEN_STORE_KEY }),
 * });
 * ```
 */
export class RedisTokenStore implements SharedTokenStore {
  readonly lockTtlMs: number;
  readonly #send: (args: string[]) => Promise<unknown>;
  readonly #prefix: string;
  readonly #codec: StoreCodec;
  readonly #timeoutMs: number;

  constructor(options: RedisTokenStoreOptions) {
    const o = optionsObject(options);
    this.#send = senderOf(o.client);
    const prefix = o.keyPrefix ?? DEFAULT_KEY_PREFIX;
    if (typeof prefix !== 'string' || /[{}]/.test(prefix)) {
      throw new ConfigError('keyPrefix', 'must be a string without braces');
    }
    this.#prefix = prefix;
    this.lockTtlMs = positiveMs('lockTtlMs', o.lockTtlMs, DEFAULT_LOCK_TTL_MS, MAX_TIMER_MS);
    this.#timeoutMs = positiveMs(
      'commandTimeoutMs',
      o.commandTimeoutMs,
      DEFAULT_COMMAND_TIMEOUT_MS,
      MAX_TIMER_MS,
    );
    this.#codec = new StoreCodec(o.encryptionKey);
  }

  async read(key: string): Promise<SharedSlot> {
    const names = this.#names(key);
    const reply = await this.#command([
      'EVAL',
      READ,
      '4',
      names.token,
      names.secret,
      names.lock,
      names.failure,
    ]);
    const [token, pttl, secret, locked, failure, failurePttl] = Array.isArray(reply) ? reply : [];
    const stored =
      typeof token === 'string'
        ? this.#codec.openToken(names.token, token, Number(pttl))
        : undefined;
    return {
      token: stored,
      tokenUnreadable: typeof token === 'string' && stored === undefined,
      // Unlike an access token, a refresh token that does not open is refused, never replaced.
      secret: typeof secret === 'string' ? this.#codec.openSecret(names.secret, secret) : undefined,
      locked: Number(locked) === 1,
      failure:
        typeof failure === 'string' ? decodeFailure(failure, Number(failurePttl)) : undefined,
    };
  }

  async acquire(key: string): Promise<string | undefined> {
    const fence = randomUUID();
    const { lock } = this.#names(key);
    const reply = await this.#command(['SET', lock, fence, 'NX', 'PX', String(this.lockTtlMs)]);
    return reply === 'OK' ? fence : undefined;
  }

  async renew(key: string, fence: string, ttlMs = this.lockTtlMs): Promise<boolean> {
    const { lock } = this.#names(key);
    const args = ['EVAL', RENEW, '1', lock, fence, String(Math.max(1, Math.ceil(ttlMs)))];
    return Number(await this.#command(args)) === 1;
  }

  async release(key: string, fence: string): Promise<void> {
    await this.#command(['EVAL', RELEASE, '1', this.#names(key).lock, fence]);
  }

  async write(key: string, fence: string, entry: SharedWrite): Promise<boolean> {
    const names = this.#names(key);
    const ttlMs = Math.floor(entry.token?.expiresInMs ?? 0);
    let token = '';
    if (entry.token !== undefined) {
      token = ttlMs > 0 ? this.#codec.sealToken(names.token, entry.token) : '-';
    }
    const args = [
      fence,
      entry.clear ? '1' : '0',
      token,
      String(ttlMs),
      entry.failure === undefined ? '' : encodeFailure(entry.failure),
      String(Math.max(1, Math.floor(entry.failure?.retryInMs ?? 1))),
    ];
    const keys = [names.lock, names.token, names.secret, names.failure];
    return Number(await this.#command(['EVAL', WRITE, '4', ...keys, ...args])) === 1;
  }

  async swapSecret(key: string, presented: string, secret: string): Promise<boolean> {
    const names = this.#names(key);
    const value = this.#codec.sealSecret(names.secret, secret);
    const prefix = this.#codec.casPrefix(presented);
    const again = this.#codec.casPrefix(secret);
    const args = ['EVAL', SWAP_SECRET, '1', names.secret, prefix, value, again];
    const reply = await this.#command(args);
    return Number(reply) === 1;
  }

  async deleteIf(key: string, staleToken: string): Promise<boolean> {
    const { token } = this.#names(key);
    const prefix = this.#codec.casPrefix(staleToken);
    return Number(await this.#command(['EVAL', DELETE_IF, '1', token, prefix])) === 1;
  }

  /** `util.inspect` and `JSON.stringify` show the prefix only, never the encryption key. */
  toJSON(): { type: string; keyPrefix: string; encrypted: boolean } {
    return { type: 'RedisTokenStore', keyPrefix: this.#prefix, encrypted: this.#codec.encrypted };
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `RedisTokenStore { keyPrefix: '${this.#prefix}', encrypted: ${this.#codec.encrypted} }`;
  }

  #names(key: string) {
    const base = `${this.#prefix}{${key}}`;
    return {
      token: `${base}:token`,
      secret: `${base}:refresh`,
      lock: `${base}:lock`,
      failure: `${base}:failure`,
    };
  }

  /** One command, or a transient TokenStoreError when it fails or outlives commandTimeoutMs. */
  #command(args: string[]): Promise<unknown> {
    // A client error may quote the command it failed on: keep only its name and class.
    return bounded(
      () => this.#send(args),
      this.#timeoutMs,
      (error) => `${args[0]} failed: ${(error as Error)?.name ?? 'Error'}`,
    );
  }
}

function senderOf(client: unknown): (args: string[]) => Promise<unknown> {
  const c = client as Record<string, unknown> | null;
  // ioredis first: it has a sendCommand too, taking a Command object.
  if (typeof c === 'object' && c !== null && typeof c.call === 'function') {
    const call = c.call as (command: string, ...args: string[]) => Promise<unknown>;
    return ([command, ...args]) => call.call(c, command as string, ...args);
  }
  if (typeof c === 'object' && c !== null && typeof c.sendCommand === 'function') {
    const send = c.sendCommand as (args: string[]) => Promise<unknown>;
    return (args) => send.call(c, args);
  }
  throw new ConfigError('client', 'must be a node-redis or ioredis client (sendCommand or call)');
}
