import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  ClientCredentialsAuth,
  ConfigError,
  fromEnv,
  fromSfdxAuthUrl,
  JwtBearerAuth,
  RefreshTokenAuth,
  StaticTokenAuth,
  selectGrant,
  TokenStoreError,
} from '../../src/index.js';
import { useFakeOrg } from '../_org.js';
import { caught, expectNoSecrets } from '../_secrets.js';

const fx = useFakeOrg();
const host = () => new URL(fx.org.instanceUrl).host;

describe('fromSfdxAuthUrl', () => {
  it('builds a rotation-safe RefreshTokenAuth for the instance in the URL', async () => {
    const refreshToken = fx.org.issueRefreshToken();
    const rotated: string[] = [];
    const session = fromSfdxAuthUrl(
      `force://${fx.org.clientId}:${fx.org.clientSecret}:${refreshToken}@${host()}`,
      {
        onRefreshTokenRotated: (t) => void rotated.push(t),
      },
    );
    expect(session).toBeInstanceOf(RefreshTokenAuth);
    expect(session.instanceUrl).toBe(fx.org.instanceUrl);
    expect(fx.org.isValidToken(await session.getToken())).toBe(true);
    expect(fx.org.lastTokenRequest).toMatchObject({
      refresh_token: refreshToken,
      client_secret: fx.org.clientSecret,
    });
    expect(rotated).toHaveLength(1);
    expectNoSecrets(session, [refreshToken, fx.org.clientSecret]);
  });

  it('accepts an empty secret (a public app such as the CLI) and sends none', async () => {
    const refreshToken = fx.org.issueRefreshToken();
    const session = fromSfdxAuthUrl(`force://${fx.org.clientId}::${refreshToken}@${host()}`);
    await caught(() => session.getToken());
    expect(fx.org.lastTokenRequest).not.toHaveProperty('client_secret');
    expect(fx.org.lastTokenRequest?.refresh_token).toBe(refreshToken);
  });

  it('an explicit loginUrl: undefined still refreshes against the instance host', async () => {
    const refreshToken = fx.org.issueRefreshToken();
    const session = fromSfdxAuthUrl(
      `force://${fx.org.clientId}:${fx.org.clientSecret}:${refreshToken}@${host()}`,
      {
        loginUrl: undefined,
      },
    );
    expect(fx.org.isValidToken(await session.getToken())).toBe(true);
  });

  it('uses https for a real host', () => {
    expect(
      fromSfdxAuthUrl('force://PlatformCLI::5Aep861abc@acme.my.salesforce.com/').instanceUrl,
    ).toBe('https://acme.my.salesforce.com');
  });

  it.each([
    'https://acme.my.salesforce.com',
    'force://id:secret@acme.my.salesforce.com',
    'force://id:secret:5Aep-secret-refresh:extra@acme.my.salesforce.com',
    'force://:secret:5Aep-secret-refresh@acme.my.salesforce.com',
    'force://id:secret:@acme.my.salesforce.com',
    'force://id:secret:5Aep-secret-refresh@',
    'force://id:secret:5Aep-secret-refresh@evil.com/path?x=1',
    '',
  ])('a malformed URL is a ConfigError that does not echo it: %s', (url) => {
    const error = (() => {
      try {
        fromSfdxAuthUrl(url);
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(ConfigError);
    expect(error).toMatchObject({ option: 'sfdxAuthUrl' });
    expectNoSecrets(error, ['5Aep-secret-refresh', 'secret:']);
  });
});

describe('fromEnv', () => {
  const base = () => ({
    SF_CLIENT_ID: fx.org.clientId,
    SF_INSTANCE_URL: fx.org.instanceUrl,
    SF_LOGIN_URL: fx.org.loginUrl,
  });

  it('picks client credentials from SF_CLIENT_SECRET and mints', async () => {
    const session = fromEnv({
      SF_CLIENT_ID: fx.org.clientId,
      SF_CLIENT_SECRET: fx.org.clientSecret,
      SF_LOGIN_URL: fx.org.loginUrl,
    });
    expect(session).toBeInstanceOf(ClientCredentialsAuth);
    expect(session.instanceUrl).toBe(fx.org.instanceUrl);
    expect(fx.org.isValidToken(await session.getToken())).toBe(true);
  });

  it('picks the refresh token grant from SF_REFRESH_TOKEN (secret optional, access token seeds)', async () => {
    const session = fromEnv({
      ...base(),
      SF_CLIENT_SECRET: fx.org.clientSecret,
      SF_REFRESH_TOKEN: fx.org.issueRefreshToken(),
    });
    expect(session).toBeInstanceOf(RefreshTokenAuth);
    expect(fx.org.isValidToken(await session.getToken())).toBe(true);
    const seeded = fromEnv({ ...base(), SF_REFRESH_TOKEN: 'rt', SF_ACCESS_TOKEN: 'at-in-hand' });
    expect(await seeded.getToken()).toBe('at-in-hand');
  });

  it('SF_REFRESH_TOKEN_FILE: a saved rotation wins over its own variable, a newly set variable wins over it', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'cirrus-')), 'refresh-token');
    const first = fx.org.issueRefreshToken();
    const env = {
      ...base(),
      SF_CLIENT_SECRET: fx.org.clientSecret,
      SF_REFRESH_TOKEN: first,
      SF_REFRESH_TOKEN_FILE: file,
    };
    await fromEnv(env).getToken(); // rotates `first` away and saves its successor
    const saved = readFileSync(file, 'utf8').split('\n')[0] as string;
    expect(fx.org.isValidRefreshToken(first)).toBe(false);
    expect(fx.org.isValidRefreshToken(saved)).toBe(true);
    // Same variable: the saved token is used (presenting `first` would revoke the family).
    await fromEnv(env).getToken();
    expect(fx.org.stats.familyRevocations).toBe(0);
    // A re-authorisation sets a new variable: it wins over the file, which is then rewritten.
    const second = fx.org.issueRefreshToken();
    const before = fx.org.stats.tokenRequests;
    await fromEnv({ ...env, SF_REFRESH_TOKEN: second }).getToken();
    expect(fx.org.stats.tokenRequests).toBe(before + 1);
    expect(fx.org.lastTokenRequest?.refresh_token).toBe(second);
    expect(fx.org.stats.familyRevocations).toBe(0);
    // A file written before the origin line existed is still trusted.
    const legacy = fx.org.issueRefreshToken();
    writeFileSync(file, legacy);
    await fromEnv({ ...env, SF_REFRESH_TOKEN: 'a-variable-rotation-killed' }).getToken();
    expect(fx.org.lastTokenRequest?.refresh_token).toBe(legacy);
    // Edited on Windows, with a blank first line: still read.
    const edited = fx.org.issueRefreshToken();
    writeFileSync(file, `\r\n${edited}\r\n`);
    await fromEnv({ ...env, SF_REFRESH_TOKEN: 'a-variable-rotation-killed' }).getToken();
    expect(fx.org.lastTokenRequest?.refresh_token).toBe(edited);
  });

  it('SF_REFRESH_TOKEN_FILE: sessions sharing the file refresh one at a time, each with the newest token', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'cirrus-')), 'refresh-token');
    const env = {
      ...base(),
      SF_CLIENT_SECRET: fx.org.clientSecret,
      SF_REFRESH_TOKEN: fx.org.issueRefreshToken(),
      SF_REFRESH_TOKEN_FILE: file,
    };
    // Built at once, so all read the same token: without the lock each would present it.
    const sessions = Array.from({ length: 4 }, () => fromEnv(env));
    const tokens = await Promise.all(sessions.map((session) => session.getToken()));
    for (const token of tokens) expect(fx.org.isValidToken(token)).toBe(true);
    expect(fx.org.stats.familyRevocations).toBe(0);
    expect(fx.org.stats.tokenRequests).toBe(4);
    expect(fx.org.isValidRefreshToken(readFileSync(file, 'utf8').split('\n')[0] as string)).toBe(
      true,
    );
    expect(existsSync(`${file}.lock`)).toBe(false);
  });

  it('SF_REFRESH_TOKEN_FILE: a lock a live process holds is waited for, then a TokenStoreError, with no request', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'cirrus-')), 'refresh-token');
    const refreshToken = fx.org.issueRefreshToken();
    const lock = JSON.stringify({ pid: process.pid, host: hostname(), time: Date.now() });
    writeFileSync(`${file}.lock`, lock);
    const session = fromEnv(
      {
        ...base(),
        SF_CLIENT_SECRET: fx.org.clientSecret,
        SF_REFRESH_TOKEN: refreshToken,
        SF_REFRESH_TOKEN_FILE: file,
      },
      { timeoutMs: 500 }, // waits timeoutMs + 1 s
    );
    const started = Date.now();
    const error = await caught(() => session.getToken());
    expect(error).toBeInstanceOf(TokenStoreError);
    expect(error).toMatchObject({ code: 'ERR_TOKEN_STORE', problem: 'lock-wait', transient: true });
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_000);
    expectNoSecrets(error, [refreshToken, fx.org.clientSecret]);
    expect(fx.org.stats.tokenRequests).toBe(0);
    expect(readFileSync(`${file}.lock`, 'utf8')).toBe(lock); // not ours to remove
  });

  it('SF_REFRESH_TOKEN_FILE in a missing directory is a ConfigError at once, before any request', () => {
    const refreshToken = fx.org.issueRefreshToken();
    const file = join(mkdtempSync(join(tmpdir(), 'cirrus-')), 'missing', 'refresh-token');
    const error = (() => {
      try {
        fromEnv({ ...base(), SF_REFRESH_TOKEN: refreshToken, SF_REFRESH_TOKEN_FILE: file });
      } catch (e) {
        return e;
      }
    })();
    expect(error).toMatchObject({ name: 'ConfigError', option: 'SF_REFRESH_TOKEN_FILE' });
    expectNoSecrets(error, [refreshToken, file]);
    expect(fx.org.stats.tokenRequests).toBe(0);
  });

  it('picks JWT bearer from SF_PRIVATE_KEY or SF_PRIVATE_KEY_FILE', async () => {
    const pem = fx.org.jwtPrivateKey as string;
    const inline = fromEnv({
      ...base(),
      SF_USERNAME: fx.org.username,
      SF_PRIVATE_KEY: pem.replace(/\n/g, '\\n'),
    });
    expect(inline).toBeInstanceOf(JwtBearerAuth);
    expect(fx.org.isValidToken(await inline.getToken())).toBe(true);
    const file = join(mkdtempSync(join(tmpdir(), 'cirrus-')), 'server.key');
    writeFileSync(file, pem);
    const fromFile = fromEnv({
      ...base(),
      SF_USERNAME: fx.org.username,
      SF_PRIVATE_KEY_FILE: file,
    });
    expect(fx.org.isValidToken(await fromFile.getToken())).toBe(true);
    expect(() =>
      fromEnv({ ...base(), SF_USERNAME: 'u', SF_PRIVATE_KEY_FILE: `${file}.missing` }),
    ).toThrow(expect.objectContaining({ option: 'SF_PRIVATE_KEY_FILE' }));
  });

  it('picks SFDX_AUTH_URL, and a lone SF_ACCESS_TOKEN as a static token', async () => {
    const refreshToken = fx.org.issueRefreshToken();
    const sfdx = fromEnv({
      SFDX_AUTH_URL: `force://${fx.org.clientId}:${fx.org.clientSecret}:${refreshToken}@${host()}`,
    });
    expect(sfdx).toBeInstanceOf(RefreshTokenAuth);
    expect(fx.org.isValidToken(await sfdx.getToken())).toBe(true);
    const fixed = fromEnv({
      SF_ACCESS_TOKEN: 'tok',
      SF_INSTANCE_URL: 'https://acme.my.salesforce.com',
    });
    expect(fixed).toBeInstanceOf(StaticTokenAuth);
    expect(selectGrant({ SF_ACCESS_TOKEN: 'x' }).grant).toBe('static-token');
  });

  it.each([
    [{ SF_PRIVATE_KEY: 'k', SF_REFRESH_TOKEN: 'r' }, 'SF_PRIVATE_KEY'],
    [{ SF_PRIVATE_KEY: 'k', SF_PRIVATE_KEY_FILE: 'f' }, 'SF_PRIVATE_KEY_FILE'],
    [{ SFDX_AUTH_URL: 'force://a::b@c', SF_REFRESH_TOKEN: 'r' }, 'SF_REFRESH_TOKEN'],
    [{ SF_CLIENT_SECRET: 's', SF_ACCESS_TOKEN: 'a' }, 'SF_ACCESS_TOKEN'],
    [{ SF_PRIVATE_KEY: 'k', SF_CLIENT_SECRET: 's' }, 'SF_CLIENT_SECRET'],
    [{}, 'env'],
    [{ SF_CLIENT_ID: 'only-an-id' }, 'env'],
  ])('an ambiguous or empty set is a ConfigError naming a variable (%j)', (env, option) => {
    expect(() => fromEnv(env)).toThrow(expect.objectContaining({ name: 'ConfigError', option }));
  });

  it('an incomplete set names what is missing and never prints a value', () => {
    const env = {
      SF_PRIVATE_KEY: '-----BEGIN PRIVATE KEY-----secret-key-material',
      SF_CLIENT_ID: 'client-id-value',
    };
    const error = (() => {
      try {
        fromEnv(env);
      } catch (e) {
        return e;
      }
    })() as ConfigError;
    expect(error).toMatchObject({ name: 'ConfigError', option: 'SF_USERNAME' });
    expect(error.message).toContain('SF_INSTANCE_URL');
    expectNoSecrets(error, ['secret-key-material', 'client-id-value']);
    expect(() => fromEnv({ SF_CLIENT_ID: 'x', SF_CLIENT_SECRET: 'y' })).toThrow(
      expect.objectContaining({ option: 'SF_LOGIN_URL' }),
    );
  });
});
