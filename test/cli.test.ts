import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { useFakeOrg } from './_org.js';

const fx = useFakeOrg();
const CLI = new URL('../dist/cli.js', import.meta.url).pathname;

/** Runs the real binary as its own process with only the given variables. */
function run(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      { env: { PATH: process.env.PATH ?? '', ...env }, timeout: 30_000 },
      (error, stdout, stderr) => {
        resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr });
      },
    );
  });
}

const clientCredentials = () => ({
  SF_CLIENT_ID: fx.org.clientId,
  SF_CLIENT_SECRET: fx.org.clientSecret,
  SF_LOGIN_URL: fx.org.loginUrl,
});
/** A refresh-token environment on a new token family of the fake org. */
const refreshing = () => ({
  ...clientCredentials(),
  SF_REFRESH_TOKEN: fx.org.issueRefreshToken(),
  SF_INSTANCE_URL: fx.org.instanceUrl,
});

describe('the cirrus-auth command', () => {
  it('token prints a token the org accepts, plain, as a header line, or as JSON with the identity', async () => {
    const plain = await run(['token'], clientCredentials());
    expect(plain.code).toBe(0);
    expect(fx.org.isValidToken(plain.stdout.trim())).toBe(true);

    const header = await run(['token', '--header'], clientCredentials());
    expect(header.stdout).toMatch(/^Authorization: Bearer 00D\S+\n$/);

    const json = await run(['token', '--json'], clientCredentials());
    const parsed = JSON.parse(json.stdout);
    expect(parsed).toMatchObject({
      instance_url: fx.org.instanceUrl,
      org_id: expect.stringMatching(/^00D/),
      user_id: expect.stringMatching(/^005/),
      scopes: ['api'],
      identity: {
        user_id: expect.stringMatching(/^005/),
        organization_id: expect.stringMatching(/^00D/),
      },
    });
    expect(fx.org.isValidToken(parsed.access_token)).toBe(true);
  });

  it('request sends one authenticated request and retries once when the token is rejected', async () => {
    const stale = await fx.session().getToken();
    fx.org.revokeAllTokens();
    fx.org.resetStats();
    const env = { ...refreshing(), SF_ACCESS_TOKEN: stale };
    const result = await run(['request', '/services/data/v62.0/limits'], env);
    expect(result.code).toBe(0);
    expect(result.stderr).toContain('HTTP 200 OK\n');
    expect(result.stderr).toContain('set SF_REFRESH_TOKEN_FILE'); // the org rotated it
    expect(JSON.parse(result.stdout)).toMatchObject({ DailyApiRequests: { Max: 15000 } });
    expect(fx.org.stats.apiRequestsByStatus).toEqual({ 200: 1, 401: 1 });
    expect(fx.org.stats.tokenRequestsByGrant).toEqual({ refresh_token: 1 });
  });

  it('request sends a method, a body from the command line or a file, and headers', async () => {
    const created = await run(
      ['request', '/services/data/v62.0/sobjects/Account', '-d', '{"Name":"Initech"}'],
      clientCredentials(),
    );
    expect(created.code).toBe(0);
    expect(created.stderr).toContain('HTTP 201');
    expect(JSON.parse(created.stdout)).toMatchObject({
      success: true,
      record: { Name: 'Initech' },
    });

    const file = join(mkdtempSync(join(tmpdir(), 'cirrus-cli-')), 'body.txt');
    writeFileSync(file, 'from a file');
    const echoed = await run(
      ['request', '/services/apexrest/echo', '-X', 'PUT', '-d', `@${file}`, '-H', 'X-Trace: 42'],
      clientCredentials(),
    );
    const echo = JSON.parse(echoed.stdout);
    expect(echo).toMatchObject({
      method: 'PUT',
      headers: { 'x-trace': '42', 'content-type': 'text/plain' },
    });
    expect(Buffer.from(echo.bodyBase64, 'base64').toString()).toBe('from a file');
  });

  it('request exits non-zero on an HTTP error, with the status on stderr', async () => {
    const result = await run(['request', '/services/data/v62.0/nothing'], clientCredentials());
    expect(result.code).toBe(1);
    expect(result.stderr).toBe('HTTP 404 Not Found\n');
    expect(result.stdout).toContain('NOT_FOUND');
  });

  it('check names the grant and mints, printing no secret', async () => {
    const result = await run(['check'], clientCredentials());
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(
      /^grant: client-credentials\ninstance: http:\/\/127\.0\.0\.1:\d+\ntoken: minted in \d+ ms\n$/,
    );
    expect(result.stdout + result.stderr).not.toContain(fx.org.clientSecret);
  });

  it('a refused secret is one line with the code and a hint, no stack, no secret; --debug adds the stack', async () => {
    const env = { ...clientCredentials(), SF_CLIENT_SECRET: 'wrong-secret-value' };
    const result = await run(['check'], env);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(
      "cirrus-auth: ERR_OAUTH: Token endpoint refused the request: invalid_client (invalid-client)\nhint: check SF_CLIENT_ID and SF_CLIENT_SECRET: the connected app's consumer key and secret\n",
    );
    const all = result.stdout + result.stderr;
    for (const secret of [
      'wrong-secret-value',
      fx.org.clientSecret,
      'invalid client credentials',
    ]) {
      expect(all).not.toContain(secret);
    }
    const debug = await run(['check', '--debug'], env);
    expect(debug.stderr).toContain('    at ');
    expect(debug.stderr).not.toContain('wrong-secret-value');
  });

  it.each([
    ['invalid_grant', 'ip restricted', 'ip-restricted', 'Login IP Ranges'],
    ['invalid_grant', 'login rate exceeded', 'rate-exceeded', 'login rate limit'],
    ['invalid_grant', 'inactive user', 'inactive-user', 'deactivated'],
    ['invalid_grant', 'no client credentials user enabled', 'run-as-user-missing', 'Run As user'],
  ])(
    '%s "%s" prints its reason and a hint, never the description',
    async (error, description, reason, hint) => {
      fx.org.failTokenEndpoint({
        kind: 'status',
        status: 400,
        body: JSON.stringify({ error, error_description: description }),
      });
      const result = await run(['check'], clientCredentials());
      expect(result.code).toBe(1);
      expect(result.stderr).toContain(`refused the request: ${error} (${reason})\nhint: `);
      expect(result.stderr).toContain(hint);
      expect(result.stderr).not.toContain(description);
    },
  );

  it('a login host that refuses connections is named with the cause code, without --debug', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const { port } = closed.address() as AddressInfo;
    await new Promise((resolve) => closed.close(resolve));
    const result = await run(['check'], {
      ...clientCredentials(),
      SF_LOGIN_URL: `http://127.0.0.1:${port}`,
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(
      `cirrus-auth: ERR_TRANSPORT: Token request failed: 127.0.0.1:${port} (ECONNREFUSED)\n`,
    );
    expect(result.stderr).not.toContain(fx.org.clientSecret);
  });

  it.each([
    ['https://acme.my.salesforce.com/services/oauth2/token', 'is an OAuth endpoint URL'],
    ['acme.my.salesforce.com', 'is not an absolute URL: start it with https://'],
  ])(
    'SF_LOGIN_URL=%s names the variable, says what is wrong and hints the shape',
    async (url, problem) => {
      const result = await run(['check'], { ...clientCredentials(), SF_LOGIN_URL: url });
      expect(result.code).toBe(1);
      expect(result.stderr).toContain(`ERR_CONFIG: Invalid option "SF_LOGIN_URL": ${problem}`);
      expect(result.stderr).toContain(
        'hint: SF_LOGIN_URL is a base URL: https://NAME.my.salesforce.com',
      );
      expect(result.stderr).not.toContain(fx.org.clientSecret);
    },
  );

  it('an incomplete environment names the missing variable with a hint', async () => {
    const result = await run(['token'], { SF_CLIENT_ID: 'x', SF_CLIENT_SECRET: 'hidden-value' });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('ERR_CONFIG: Invalid option "SF_LOGIN_URL"');
    expect(result.stderr).toContain(
      'hint: client credentials need your My Domain URL as SF_LOGIN_URL',
    );
    expect(result.stderr).not.toContain('hidden-value');
  });

  it('keeps rotated refresh tokens in SF_REFRESH_TOKEN_FILE across runs; without it, warns', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'cirrus-cli-')), 'refresh-token');
    const env = refreshing();
    for (let attempt = 0; attempt < 3; attempt++) {
      const result = await run(['check'], { ...env, SF_REFRESH_TOKEN_FILE: file });
      expect(result.code).toBe(0);
    }
    expect(fx.org.isValidRefreshToken(readFileSync(file, 'utf8').split('\n')[0] ?? '')).toBe(true);
    expect(fx.org.stats.familyRevocations).toBe(0);

    const warned = await run(['check'], { ...env, SF_REFRESH_TOKEN: fx.org.issueRefreshToken() });
    expect(warned.code).toBe(0);
    expect(warned.stderr).toContain('set SF_REFRESH_TOKEN_FILE');
    expect(warned.stderr).not.toMatch(/5Aep/);
  });

  it.each([3, 5])(
    '%i concurrent runs sharing SF_REFRESH_TOKEN_FILE under rotation revoke nothing, and the file ends live',
    async (n) => {
      const dir = mkdtempSync(join(tmpdir(), 'cirrus-cli-'));
      const file = join(dir, 'refresh-token');
      const first = fx.org.issueRefreshToken();
      const env = {
        SF_CLIENT_ID: fx.org.clientId,
        SF_CLIENT_SECRET: fx.org.clientSecret,
        SF_REFRESH_TOKEN: first,
        SF_INSTANCE_URL: fx.org.instanceUrl,
        SF_LOGIN_URL: fx.org.loginUrl,
        SF_REFRESH_TOKEN_FILE: file,
      };
      // The first round starts without the file (every run reads the variable), the second from it.
      for (const round of [1, 2]) {
        const results = await Promise.all(Array.from({ length: n }, () => run(['check'], env)));
        for (const result of results) {
          expect(result.stderr, `round ${round}`).toBe('');
          expect(result.code).toBe(0);
          expect(result.stdout).not.toMatch(/5Aep/);
        }
      }
      expect(fx.org.stats.familyRevocations).toBe(0);
      expect(fx.org.stats.tokenRequestsByGrant).toEqual({ refresh_token: 2 * n });
      expect(fx.org.isValidRefreshToken(readFileSync(file, 'utf8').split('\n')[0] ?? '')).toBe(
        true,
      );
      expect(readdirSync(dir)).toEqual(['refresh-token']); // no lock or temp file left behind
    },
  );

  it('a SF_REFRESH_TOKEN_FILE that cannot be written fails the run before any token request', async () => {
    const refreshToken = fx.org.issueRefreshToken();
    const file = join(mkdtempSync(join(tmpdir(), 'cirrus-cli-')), 'missing', 'refresh-token');
    for (const command of [['check'], ['token'], ['request', '/services/data/v62.0/limits']]) {
      const result = await run(command, {
        SF_CLIENT_ID: fx.org.clientId,
        SF_CLIENT_SECRET: fx.org.clientSecret,
        SF_REFRESH_TOKEN: refreshToken,
        SF_INSTANCE_URL: fx.org.instanceUrl,
        SF_LOGIN_URL: fx.org.loginUrl,
        SF_REFRESH_TOKEN_FILE: file,
      });
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(
        /^cirrus-auth: ERR_CONFIG: Invalid option "SF_REFRESH_TOKEN_FILE": [^\n]+\nhint: [^\n]+\n$/,
      );
      expect(result.stdout + result.stderr).not.toContain(refreshToken);
    }
    expect(fx.org.stats.tokenRequests).toBe(0);
    expect(fx.org.isValidRefreshToken(refreshToken)).toBe(true);
  });

  it('takes over the SF_REFRESH_TOKEN_FILE lock of a run that died, or an old one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cirrus-cli-'));
    const file = join(dir, 'refresh-token');
    const env = {
      ...refreshing(),
      SF_REFRESH_TOKEN_FILE: file,
    };
    const dead = spawnSync(process.execPath, ['-e', '']).pid;
    // Behind the dead run's lock, four at once: one removes it, and they still take turns.
    for (const [holder, runs] of [
      [{ pid: dead, host: hostname(), time: Date.now() }, 4],
      [{ pid: process.pid, host: hostname(), time: Date.now() - 10 * 60_000 }, 1],
    ] as const) {
      writeFileSync(`${file}.lock`, JSON.stringify(holder));
      const results = await Promise.all(Array.from({ length: runs }, () => run(['check'], env)));
      for (const result of results) {
        expect(result.stderr).toBe('');
        expect(result.code).toBe(0);
      }
      expect(readdirSync(dir)).toEqual(['refresh-token']);
    }
    expect(fx.org.stats.tokenRequestsByGrant).toEqual({ refresh_token: 5 });
    expect(fx.org.stats.familyRevocations).toBe(0);
    expect(fx.org.isValidRefreshToken(readFileSync(file, 'utf8').split('\n')[0] ?? '')).toBe(true);
  });

  it('never echoes a malformed -H argument', async () => {
    const result = await run(
      ['request', '/x', '-H', 'Authorization Bearer 00Dsecret-token-value'],
      clientCredentials(),
    );
    expect(result.code).toBe(2);
    expect(result.stderr).not.toContain('00Dsecret');
  });

  it('refuses a -H value HTTP cannot carry, naming only the header, before any request', async () => {
    for (const value of [
      'secret-header-value\r\nX-Injected: 1',
      'secret-header-value\u20ac',
      'secret-header-value\u0001',
    ]) {
      const result = await run(
        ['request', '/services/apexrest/echo', '-H', `X-Api-Key: ${value}`],
        clientCredentials(),
      );
      expect(result.code).toBe(2);
      expect(result.stderr).toContain('-H X-Api-Key');
      expect(result.stderr).not.toContain('secret-header-value');
      expect(result.stderr).not.toMatch(/invalid header|Cannot convert|X-Injected/);
    }
    expect(fx.org.stats.tokenRequests).toBe(0);
    expect(fx.org.stats.apiRequests).toBe(0);
  });

  it('prints no header-validation text: a token HTTP cannot carry stays off stderr, even with --debug', async () => {
    for (const token of [
      '00Dsecret-token-value\nX-Injected: 1',
      '00Dsecret-token-value\u20ac',
      '00Dsecret-token-value\u0001',
    ]) {
      for (const flags of [[], ['--debug']]) {
        const result = await run(['request', '/services/data/v62.0/limits', ...flags], {
          SF_ACCESS_TOKEN: token,
          SF_INSTANCE_URL: fx.org.instanceUrl,
        });
        expect(result.code).toBe(1);
        // Refused before any request: a token no header can carry is a ConfigError at construction.
        expect(result.stderr).toMatch(/^cirrus-auth: ERR_CONFIG/);
        expect(result.stderr).not.toContain('secret-token-value');
        // Undici's wording: 'Headers.set: "Bearer …" is an invalid header value', 'Cannot convert
        // argument to a ByteString …'.
        expect(result.stderr).not.toMatch(/invalid header|Cannot convert|X-Injected/);
      }
    }
    expect(fx.org.stats.apiRequests).toBe(0);
  });

  it('follows the sf and gh conventions: --version, help <command>, <command> --help', async () => {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
    for (const args of [['--version'], ['-v']]) {
      expect(await run(args, {})).toMatchObject({
        code: 0,
        stdout: `cirrus-auth ${pkg.version}\n`,
      });
    }
    for (const command of ['token', 'request', 'check']) {
      const viaHelp = await run(['help', command], {});
      const viaFlag = await run([command, '--help'], {});
      expect(viaHelp.code).toBe(0);
      expect(viaHelp.stdout).toMatch(new RegExp(`^Usage: cirrus-auth ${command}`));
      expect(viaFlag).toEqual(viaHelp);
    }
    const unknown = await run(['help', 'nope'], {});
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('no help for "nope"');
  });

  it("never prints Node's parseArgs text; an unreadable -d @file is one line", async () => {
    const bogus = await run(['token', '--bogus'], {});
    expect(bogus.code).toBe(2);
    expect(bogus.stderr.split('\n')[0]).toBe('cirrus-auth: unknown option --bogus');
    expect(bogus.stderr).not.toContain('To specify a positional argument');
    const secretish = await run(['token', '--00Dsecret!value'], {});
    expect(secretish.stderr).not.toContain('00Dsecret');
    const missingValue = await run(['request', '/x', '-X'], {});
    expect(missingValue.stderr.split('\n')[0]).toBe(
      'cirrus-auth: an option that takes a value (-X, -d, -H) was given none',
    );
    const noFile = await run(['request', '/x', '-d', '@/no/such/file'], clientCredentials());
    expect(noFile).toMatchObject({
      code: 1,
      stderr: 'cirrus-auth: -d @file: the file cannot be read (ENOENT)\n',
    });
  });

  it('--json on every command, errors too, as { error: { code, reason, message, hint } }', async () => {
    const check = await run(['check', '--json'], clientCredentials());
    expect(check.code).toBe(0);
    expect(JSON.parse(check.stdout)).toMatchObject({
      grant: 'client-credentials',
      instance_url: fx.org.instanceUrl,
    });
    const request = await run(
      ['request', '/services/data/v62.0/limits', '--json'],
      clientCredentials(),
    );
    expect(JSON.parse(request.stdout)).toMatchObject({
      status: 200,
      body: { DailyApiRequests: {} },
    });
    const refused = await run(['check', '--json'], {
      ...clientCredentials(),
      SF_CLIENT_SECRET: 'wrong-value',
    });
    expect(refused.code).toBe(1);
    const { error } = JSON.parse(refused.stdout);
    expect(error).toMatchObject({ code: 'ERR_OAUTH', reason: 'invalid-client' });
    expect(error.hint).toContain('SF_CLIENT_SECRET');
    expect(refused.stdout + refused.stderr).not.toContain('wrong-value');
    const usage = await run(['nope', '--json'], {});
    expect(usage.code).toBe(2);
    expect(JSON.parse(usage.stdout).error.code).toBe('ERR_USAGE');
  });

  it('bad usage exits 2 with the usage text', async () => {
    const result = await run(['frobnicate'], clientCredentials());
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('unknown command "frobnicate"');
    expect(result.stderr).toContain('Usage:');
    expect((await run(['--help'], {})).code).toBe(0);
  });
});
