import type { KeyObject } from 'node:crypto';
import { ConfigError, SigningError } from '../errors.js';
import { fromBase64, nodeBuiltin } from '../internal/runtime.js';

/** Signs JWT assertions with RS256 (RSASSA-PKCS1-v1_5 over SHA-256). */
export interface Rs256Signer {
  /** The signature of `data`; rejects with {@link SigningError}. */
  sign(data: Uint8Array): Promise<Uint8Array>;
}

const MIN_MODULUS_BITS = 2048;
const BAD_KEY = 'must be a PEM private key, a KeyObject or a CryptoKey';
const WEAK_KEY = `must be an RSA private key of at least ${MIN_MODULUS_BITS} bits`;

/**
 * Turns the `privateKey` option into a signer, or throws {@link ConfigError} at construction.
 * With `node:crypto` (Node, Bun, Deno) the key is parsed by it, as before; without (a browser, a
 * Worker) a PEM is checked here (PKCS#8 or PKCS#1, RSA, modulus size) and imported into Web
 * Crypto at the first mint, and a `CryptoKey` is used as it is.
 */
export function rs256SignerOf(value: unknown): Rs256Signer {
  const nodeCrypto = nodeBuiltin('node:crypto');
  const pem = typeof value === 'string' ? value.replace(/\\n/g, '\n') : undefined;
  const webKey = isCryptoKey(value) ? value : undefined;
  if (nodeCrypto !== undefined && webKey === undefined) {
    let key: KeyObject;
    try {
      if (pem !== undefined) key = nodeCrypto.createPrivateKey(pem);
      else if (value instanceof nodeCrypto.KeyObject) key = value;
      else throw new TypeError('not a key');
    } catch {
      throw new ConfigError('privateKey', BAD_KEY);
    }
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    if (key.type !== 'private' || key.asymmetricKeyType !== 'rsa' || bits < MIN_MODULUS_BITS)
      throw new ConfigError('privateKey', WEAK_KEY);
    return {
      sign: async (data) => {
        try {
          return new Uint8Array(nodeCrypto.sign('sha256', data, key));
        } catch (error) {
          throw new SigningError({ cause: error });
        }
      },
    };
  }
  if (webKey !== undefined) {
    const algorithm = webKey.algorithm as RsaHashedKeyAlgorithm;
    if (
      webKey.type !== 'private' ||
      algorithm.name !== 'RSASSA-PKCS1-v1_5' ||
      algorithm.hash?.name !== 'SHA-256' ||
      !(algorithm.modulusLength >= MIN_MODULUS_BITS) ||
      !webKey.usages.includes('sign')
    )
      throw new ConfigError(
        'privateKey',
        `as a CryptoKey must be an RSASSA-PKCS1-v1_5 SHA-256 signing key of at least ${MIN_MODULUS_BITS} bits`,
      );
    return webSigner(async () => webKey);
  }
  if (pem === undefined) throw new ConfigError('privateKey', BAD_KEY);
  const pkcs8 = pkcs8Of(pem);
  let imported: Promise<CryptoKey> | undefined;
  // Imported once, at the first mint: Web Crypto imports only asynchronously.
  return webSigner(() => {
    imported ??= crypto.subtle.importKey(
      'pkcs8',
      pkcs8 as Uint8Array<ArrayBuffer>,
      { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
      false,
      ['sign'],
    );
    return imported;
  });
}

function webSigner(key: () => Promise<CryptoKey>): Rs256Signer {
  return {
    sign: async (data) => {
      try {
        const signature = await crypto.subtle.sign(
          'RSASSA-PKCS1-v1_5',
          await key(),
          data as Uint8Array<ArrayBuffer>,
        );
        return new Uint8Array(signature);
      } catch (error) {
        throw new SigningError({ cause: error });
      }
    },
  };
}

function isCryptoKey(value: unknown): value is CryptoKey {
  const CryptoKeyClass = (globalThis as { CryptoKey?: typeof CryptoKey }).CryptoKey;
  return CryptoKeyClass !== undefined && value instanceof CryptoKeyClass;
}

/** rsaEncryption, 1.2.840.113549.1.1.1, as DER. */
const RSA_OID = [0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

/**
 * The PKCS#8 DER of an RSA private key PEM (a PKCS#1 `RSA PRIVATE KEY` is wrapped into one), after
 * checking what Node's parser would: one PEM block of a private key type, DER inside, an RSA key
 * with a modulus of at least 2048 bits. Encrypted keys are refused (as without a passphrase).
 */
function pkcs8Of(pem: string): Uint8Array {
  const block =
    /^\s*-----BEGIN (RSA )?PRIVATE KEY-----\r?\n([A-Za-z0-9+/=\r\n]+)-----END \1PRIVATE KEY-----\s*$/.exec(
      pem,
    );
  const der =
    block === undefined || block === null
      ? undefined
      : fromBase64((block[2] as string).replace(/\s+/g, ''));
  if (block === null || der === undefined) throw new ConfigError('privateKey', BAD_KEY);
  try {
    if (block[1] !== undefined) {
      checkModulus(der);
      return sequence([0x02, 0x01, 0x00], sequence(RSA_OID, [0x05, 0x00]), tagged(0x04, der));
    }
    const info = readTlv(der, 0, 0x30);
    const version = readTlv(der, info.start, 0x02);
    const algorithm = readTlv(der, version.end, 0x30);
    const oid = der.subarray(algorithm.start, algorithm.start + RSA_OID.length);
    if (!RSA_OID.every((byte, i) => oid[i] === byte)) throw new ConfigError('privateKey', WEAK_KEY);
    const inner = readTlv(der, algorithm.end, 0x04);
    checkModulus(der.subarray(inner.start, inner.end));
    return der;
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    throw new ConfigError('privateKey', BAD_KEY);
  }
}

/** Throws unless `pkcs1` is an RSAPrivateKey whose modulus has at least 2048 bits. */
function checkModulus(pkcs1: Uint8Array): void {
  const key = readTlv(pkcs1, 0, 0x30);
  const version = readTlv(pkcs1, key.start, 0x02);
  const modulus = readTlv(pkcs1, version.end, 0x02);
  let first = modulus.start;
  while (first < modulus.end && pkcs1[first] === 0) first++;
  const top = pkcs1[first] ?? 0;
  const bits = first >= modulus.end ? 0 : (modulus.end - first - 1) * 8 + (32 - Math.clz32(top));
  if (bits < MIN_MODULUS_BITS) throw new ConfigError('privateKey', WEAK_KEY);
}

/** One DER element with tag `tag` at `offset`: where its content starts and ends. */
function readTlv(der: Uint8Array, offset: number, tag: number): { start: number; end: number } {
  if (der[offset] !== tag) throw new TypeError('unexpected DER tag');
  let length = der[offset + 1] ?? 0;
  let start = offset + 2;
  if (length & 0x80) {
    const count = length & 0x7f;
    if (count < 1 || count > 4) throw new TypeError('bad DER length');
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + (der[start + i] ?? 0);
    start += count;
  }
  const end = start + length;
  if (end > der.length) throw new TypeError('truncated DER');
  return { start, end };
}

function tagged(tag: number, content: ArrayLike<number>): number[] {
  const n = content.length;
  const length =
    n < 0x80
      ? [n]
      : n < 0x100
        ? [0x81, n]
        : n < 0x10000
          ? [0x82, n >> 8, n & 0xff]
          : [0x83, n >> 16, (n >> 8) & 0xff, n & 0xff];
  return [tag, ...length, ...Array.from(content)];
}

function sequence(...parts: ArrayLike<number>[]): Uint8Array {
  return new Uint8Array(
    tagged(
      0x30,
      parts.flatMap((part) => Array.from(part)),
    ),
  );
}
