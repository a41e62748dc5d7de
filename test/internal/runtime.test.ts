// The portable paths the root entry takes where the runtime has no Node built-ins (browsers,
// Workers), checked against Node's own implementations; and the sessions built with
// `process.getBuiltinModule` hidden, as a browser would build them.
import { createHash, generateKeyPairSync, verify } from 'node:crypto';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { rs256SignerOf } from '../../src/grants/rsa-signer.js';
import { ConfigError, fromEnv, JwtBearerAuth, SigningError } from '../../src/index.js';
import {
  base64,
  base64url,
  fromBase64,
  nodeBuiltin,
  sha256,
  sha256Portable,
  utf8Length,
} from '../../src/internal/runtime.js';

const getBuiltinModule = process.getBuiltinModule;
/** Runs as a browser would: no `process.getBuiltinModule`, so no node:crypto, node:fs. */
function withoutBuiltins(): void {
  Object.defineProperty(process, 'getBuiltinModule', { value: undefined, configurable: true });
}
afterEach(() => {
  Object.defineProperty(process, 'getBuiltinModule', {
    value: getBuiltinModule,
    configurable: true,
    writable: true,
  });
});

const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const pkcs8 = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const pkcs1 = privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();

describe('portable primitives agree with Node', () => {
  it('SHA-256 (FIPS 180-4) equals node:crypto for any text, including the padding edges', () => {
    for (const n of [0, 1, 55, 56, 63, 64, 65, 119, 120, 1000]) {
      const text = 'a'.repeat(n);
      expect(Buffer.from(sha256Portable(new TextEncoder().encode(text))).toString('hex')).toBe(
        createHash('sha256').update(text).digest('hex'),
      );
    }
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme' }), (text) => {
        const expected = createHash('sha256').update(text).digest('hex');
        expect(Buffer.from(sha256Portable(new TextEncoder().encode(text))).toString('hex')).toBe(
          expected,
        );
        expect(Buffer.from(sha256(text)).toString('hex')).toBe(expected);
      }),
      { numRuns: 300 },
    );
  });

  it('UTF-8 length equals Buffer.byteLength, lone surrogates included', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (text) => {
        expect(utf8Length(text)).toBe(Buffer.byteLength(text));
      }),
      { numRuns: 500 },
    );
  });

  it('base64 and base64url equal Buffer; fromBase64 refuses what is not base64', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        expect(base64(bytes)).toBe(Buffer.from(bytes).toString('base64'));
        expect(base64url(bytes)).toBe(Buffer.from(bytes).toString('base64url'));
        expect(fromBase64(base64(bytes))).toEqual(bytes);
      }),
    );
    for (const junk of ['ab$c', 'abcde', 'a b c d', '====', 'YQ==junk']) {
      expect(fromBase64(junk)).toBeUndefined();
    }
  });
});

describe('without Node built-ins (a browser, a Worker)', () => {
  it('nodeBuiltin answers undefined', () => {
    withoutBuiltins();
    expect(nodeBuiltin('node:crypto')).toBeUndefined();
  });

  it('signs RS256 through Web Crypto from a PKCS#8 or a PKCS#1 PEM; Node verifies the signature', async () => {
    withoutBuiltins();
    const data = new TextEncoder().encode('header.claims');
    for (const pem of [pkcs8, pkcs1]) {
      const signature = await rs256SignerOf(pem).sign(data);
      expect(verify('sha256', data, publicKey, signature)).toBe(true);
    }
  });

  it('takes a Web Crypto CryptoKey, and refuses one that cannot sign RS256', async () => {
    withoutBuiltins();
    const pair = await crypto.subtle.generateKey(
      {
        name: 'RSASSA-PKCS1-v1_5',
        modulusLength: 2048,
        publicExponent: new Uint8Array([1, 0, 1]),
        hash: 'SHA-256',
      },
      false,
      ['sign', 'verify'],
    );
    const data = new TextEncoder().encode('x');
    const signature = await rs256SignerOf(pair.privateKey).sign(data);
    expect(
      await crypto.subtle.verify(
        'RSASSA-PKCS1-v1_5',
        pair.publicKey,
        signature as Uint8Array<ArrayBuffer>,
        data,
      ),
    ).toBe(true);
    expect(() => rs256SignerOf(pair.publicKey)).toThrow(ConfigError);
  });

  it('refuses at construction what Node would refuse: a short key, an EC key, junk, an encrypted key', () => {
    withoutBuiltins();
    const short = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey;
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const encrypted = privateKey
      .export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'x' })
      .toString();
    const cases = [
      short.export({ type: 'pkcs8', format: 'pem' }).toString(),
      short.export({ type: 'pkcs1', format: 'pem' }).toString(),
      ec.export({ type: 'pkcs8', format: 'pem' }).toString(),
      encrypted,
      '-----BEGIN PRIVATE KEY-----\nnot base64!\n-----END PRIVATE KEY-----\n',
      pkcs8.replace('BEGIN PRIVATE KEY', 'BEGIN RSA PRIVATE KEY'),
      'secret',
      42,
    ];
    for (const value of cases) {
      const error = (() => {
        try {
          rs256SignerOf(value);
        } catch (e) {
          return e;
        }
      })();
      expect(error, String(value).slice(0, 40)).toBeInstanceOf(ConfigError);
      expect(String((error as Error).message)).not.toContain('BEGIN');
    }
  });

  it('a JwtBearerAuth built without node:crypto mints with a Web Crypto signature the org checks', async () => {
    withoutBuiltins();
    let assertion = '';
    const session = new JwtBearerAuth({
      clientId: 'id',
      username: 'u@example.com',
      privateKey: pkcs1.replace(/\n/g, '\\n'),
      loginUrl: 'https://login.salesforce.com',
      instanceUrl: 'https://acme.my.salesforce.com',
      fetch: async (_url, init) => {
        assertion = new URLSearchParams(String(init?.body)).get('assertion') ?? '';
        return Response.json({
          access_token: 'tok',
          instance_url: 'https://acme.my.salesforce.com',
        });
      },
    });
    expect(await session.getToken()).toBe('tok');
    const [header, claims, signature] = assertion.split('.') as [string, string, string];
    expect(JSON.parse(Buffer.from(header, 'base64url').toString())).toEqual({ alg: 'RS256' });
    expect(JSON.parse(Buffer.from(claims, 'base64url').toString())).toMatchObject({
      iss: 'id',
      sub: 'u@example.com',
      aud: 'https://login.salesforce.com',
    });
    expect(
      verify(
        'sha256',
        Buffer.from(`${header}.${claims}`),
        publicKey,
        Buffer.from(signature, 'base64url'),
      ),
    ).toBe(true);
  });

  it('a key Web Crypto cannot import fails the first mint as a SigningError, not at construction', async () => {
    withoutBuiltins();
    // An RSAPrivateKey with a 2048-bit modulus and nothing after it: it passes the structural
    // checks made at construction, and no Web Crypto imports it.
    const modulus = [0x02, 0x82, 0x01, 0x01, 0x00, 0xc0, ...new Array(255).fill(0x11)];
    const body = [0x02, 0x01, 0x00, ...modulus];
    const der = Buffer.from([0x30, 0x82, body.length >> 8, body.length & 0xff, ...body]);
    const pem = `-----BEGIN RSA PRIVATE KEY-----\n${der.toString('base64')}\n-----END RSA PRIVATE KEY-----\n`;
    const signer = rs256SignerOf(pem);
    await expect(signer.sign(new Uint8Array([1]))).rejects.toBeInstanceOf(SigningError);
  });

  it('fromEnv names the variable when a file is asked for and there is no file system', () => {
    withoutBuiltins();
    expect(() =>
      fromEnv({
        SF_CLIENT_ID: 'id',
        SF_USERNAME: 'u@example.com',
        SF_PRIVATE_KEY_FILE: '/etc/key.pem',
        SF_LOGIN_URL: 'https://login.salesforce.com',
        SF_INSTANCE_URL: 'https://acme.my.salesforce.com',
      }),
    ).toThrow(expect.objectContaining({ option: 'SF_PRIVATE_KEY_FILE' }));
  });
});
