import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes } from 'node:crypto';
import { ConfigError, TokenStoreError } from '../errors.js';
import type { SharedFailure, SharedToken } from '../session/shared-store.js';
import { aged } from './aged.js';

/**
 * What every shared store that keeps values as text needs, written once: encryption at rest,
 * the one-way digests compare-and-swap compares, and the lifetime arithmetic that keeps stored
 * times relative. A store keeps `digest|sealed` strings and the backend's own TTLs; this opens
 * them. A new store is its backend's atomic operations plus this.
 */
export class StoreCodec {
  readonly #key: Buffer | undefined;

  /** @param encryptionKey 32 bytes (a `Uint8Array`, or a base64 or hex string), or none for clear text. */
  constructor(encryptionKey: string | Uint8Array | undefined) {
    this.#key = encryptionKey === undefined ? undefined : keyOf(encryptionKey);
  }

  /** Whether values are encrypted (AES-256-GCM, bound to their key name). */
  get encrypted(): boolean {
    return this.#key !== undefined;
  }

  /**
   * What compare-and-swap compares: a one-way digest of a token (keyed when encrypting), and
   * the prefix of every value sealed for that token.
   */
  casPrefix(token: string): string {
    const digest =
      this.#key === undefined
        ? createHash('sha256').update(token)
        : createHmac('sha256', this.#key).update(token);
    return `${digest.digest('hex').slice(0, 32)}|`;
  }

  /** An access token with its lifetimes, as stored under `name`: `digest|sealed JSON`. */
  sealToken(name: string, token: SharedToken): string {
    return this.casPrefix(token.accessToken) + this.#seal(name, JSON.stringify(token));
  }

  /**
   * A stored access token with the time it has left (`remainingMs`, the backend's TTL), or
   * `undefined` when it is not a value such a store writes (another `encryptionKey`, none, or
   * foreign): the fleet then treats it as no token, and its next mint overwrites it.
   */
  openToken(name: string, value: string, remainingMs: number): SharedToken | undefined {
    let written: SharedToken;
    try {
      written = JSON.parse(this.#open(name, afterDigest(value))) as SharedToken;
    } catch {
      return undefined;
    }
    const valid =
      typeof written === 'object' &&
      written !== null &&
      typeof written.accessToken === 'string' &&
      [written.expiresInMs, written.staleInMs, written.refreshInMs].every(Number.isFinite);
    return valid ? aged(written, remainingMs) : undefined;
  }

  /** A single-use secret as stored under `name`: `digest|sealed`. */
  sealSecret(name: string, secret: string): string {
    return this.casPrefix(secret) + this.#seal(name, secret);
  }

  /** A stored secret; one this store cannot open is a non-transient TokenStoreError, never a guess. */
  openSecret(name: string, value: string): string {
    return this.#open(name, afterDigest(value));
  }

  /** `util.inspect` and `JSON.stringify` never show the key. */
  toJSON(): { encrypted: boolean } {
    return { encrypted: this.encrypted };
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `StoreCodec { encrypted: ${this.encrypted} }`;
  }

  #seal(name: string, plaintext: string): string {
    if (this.#key === undefined) return PLAIN + plaintext;
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.#key, iv);
    cipher.setAAD(Buffer.from(name));
    const sealed = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return ENCRYPTED + Buffer.concat([iv, cipher.getAuthTag(), sealed]).toString('base64url');
  }

  #open(name: string, value: string): string {
    if (this.#key === undefined) {
      if (value.startsWith(PLAIN)) return value.slice(PLAIN.length);
      throw new TokenStoreError('undecryptable');
    }
    if (!value.startsWith(ENCRYPTED)) throw new TokenStoreError('undecryptable');
    try {
      const bytes = Buffer.from(value.slice(ENCRYPTED.length), 'base64url');
      if (bytes.length < 28) throw new Error('too short');
      const decipher = createDecipheriv('aes-256-gcm', this.#key, bytes.subarray(0, 12), {
        authTagLength: 16,
      });
      decipher.setAAD(Buffer.from(name));
      decipher.setAuthTag(bytes.subarray(12, 28));
      return Buffer.concat([decipher.update(bytes.subarray(28)), decipher.final()]).toString(
        'utf8',
      );
    } catch {
      throw new TokenStoreError('undecryptable');
    }
  }
}

const ENCRYPTED = 'e1.';
const PLAIN = 'p1.';

function afterDigest(value: string): string {
  return value.slice(value.indexOf('|') + 1);
}

/**
 * One backend call, bounded: its result, or a transient TokenStoreError (`unavailable`) when it
 * fails or outlives `timeoutMs`. A client error may quote what it was sent (a sealed token): the
 * kept cause is `describe(error)`, the backend's own safe summary (a command name, a SQLSTATE).
 */
export async function bounded<T>(
  call: () => Promise<T>,
  timeoutMs: number,
  describe: (error: unknown) => string,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TokenStoreError('unavailable')), timeoutMs);
  });
  try {
    return await Promise.race([call(), timeout]);
  } catch (error) {
    if (error instanceof TokenStoreError) throw error;
    throw new TokenStoreError('unavailable', { cause: new Error(describe(error)) });
  } finally {
    clearTimeout(timer);
  }
}

/** A shared failure as stored (code and transient, in clear: no secret). */
export function encodeFailure(failure: SharedFailure): string {
  return JSON.stringify({
    code: failure.code,
    transient: failure.transient,
    failures: failure.failures,
  });
}

/** A stored failure with the time it has left, or `undefined` when it is not one or has none left. */
export function decodeFailure(value: string, remainingMs: number): SharedFailure | undefined {
  try {
    const { code, transient, failures } = JSON.parse(value) as Record<string, unknown>;
    if (typeof code !== 'string' || typeof transient !== 'boolean' || !(remainingMs > 0)) {
      return undefined;
    }
    const count = typeof failures === 'number' && Number.isSafeInteger(failures) ? failures : 1;
    return { code, transient, failures: Math.max(1, count), retryInMs: remainingMs };
  } catch {
    return undefined;
  }
}

function keyOf(value: unknown): Buffer {
  let key: Buffer | undefined;
  if (value instanceof Uint8Array) key = Buffer.from(value);
  else if (typeof value === 'string' && /^[0-9a-f]{64}$/i.test(value))
    key = Buffer.from(value, 'hex');
  else if (typeof value === 'string') key = Buffer.from(value, 'base64');
  if (key?.length !== 32) {
    throw new ConfigError('encryptionKey', 'must be 32 bytes: a Uint8Array, base64 or hex string');
  }
  return key;
}
