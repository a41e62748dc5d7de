#!/usr/bin/env node
/**
 * `cirrus-auth`: a Salesforce token and one authenticated request from the terminal, configured by
 * the same `SF_*` variables as `fromEnv()`. Never prints a secret; errors are one line with the
 * error code, and a hint where one helps (`--debug` adds the stack).
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { authFetch } from './adapters/fetch.js';
import { AuthError, ConfigError, OAuthError } from './errors.js';
import { type EnvGrant, fromEnv, selectGrant } from './grants/from-env.js';

const USAGE = `Usage:
  cirrus-auth token [--json | --header]     print an access token for the org in SF_* variables
  cirrus-auth request <path> [-X METHOD] [-d BODY | -d @file] [-H 'Name: value']...
                                            one authenticated request (retried once on 401)
  cirrus-auth check                         which grant the environment selects, and whether it mints
Options: --debug (stack traces), --help. Variables: see fromEnv in the README.`;

/** The exit codes: 0 success, 1 an auth or HTTP failure, 2 bad usage. */
const EXIT = { ok: 0, failure: 1, usage: 2 } as const;

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      json: { type: 'boolean' },
      header: { type: 'boolean' },
      method: { type: 'string', short: 'X' },
      data: { type: 'string', short: 'd' },
      headers: { type: 'string', short: 'H', multiple: true },
      debug: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [command, ...rest] = positionals;
  if (values.help || command === undefined) {
    process.stdout.write(`${USAGE}\n`);
    return values.help ? EXIT.ok : EXIT.usage;
  }
  switch (command) {
    case 'token':
      return token(values.json === true, values.header === true);
    case 'request':
      return request(rest[0], values.method, values.data, values.headers ?? []);
    case 'check':
      return check();
    default:
      throw new UsageError(`unknown command "${command}"`);
  }
}

async function token(json: boolean, header: boolean): Promise<number> {
  if (json && header) throw new UsageError('--json and --header exclude each other');
  const session = envSession();
  const accessToken = await session.getToken();
  if (header) {
    process.stdout.write(`Authorization: Bearer ${accessToken}\n`);
  } else if (json) {
    const response = await authFetch(session)('/services/oauth2/userinfo');
    const info = response.ok ? ((await response.json()) as Record<string, unknown>) : undefined;
    const identity = info && {
      user_id: info.user_id,
      organization_id: info.organization_id,
      username: info.preferred_username,
    };
    const out = {
      access_token: accessToken,
      instance_url: session.instanceUrl,
      identity: identity ?? null,
    };
    process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
  } else {
    process.stdout.write(`${accessToken}\n`);
  }
  return EXIT.ok;
}

async function request(
  path: string | undefined,
  method: string | undefined,
  data: string | undefined,
  headerArgs: string[],
): Promise<number> {
  if (path === undefined)
    throw new UsageError('request needs a path, for example /services/data/v62.0/limits');
  const headers = new Headers();
  for (const [index, line] of headerArgs.entries()) {
    const colon = line.indexOf(':');
    // Never echo the argument: it may well hold a token.
    if (colon < 1) throw new UsageError(`-H number ${index + 1} is not of the form 'Name: value'`);
    headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
  }
  let body: string | undefined;
  if (data !== undefined) {
    body = data.startsWith('@') ? readFileSync(data.slice(1), 'utf8') : data;
    if (!headers.has('content-type'))
      headers.set('content-type', isJson(body) ? 'application/json' : 'text/plain');
  }
  const sfFetch = authFetch(envSession());
  const init: RequestInit = { method: method ?? (body === undefined ? 'GET' : 'POST'), headers };
  if (body !== undefined) init.body = body;
  const response = await sfFetch(path, init);
  process.stderr.write(`HTTP ${response.status} ${response.statusText}\n`);
  const text = await response.text();
  process.stdout.write(text.endsWith('\n') || text === '' ? text : `${text}\n`);
  return response.ok ? EXIT.ok : EXIT.failure;
}

async function check(): Promise<number> {
  const { grant } = selectGrant(process.env);
  process.stdout.write(`grant: ${grant}\n`);
  const session = envSession();
  process.stdout.write(`instance: ${session.instanceUrl}\n`);
  const started = performance.now();
  await session.getToken();
  process.stdout.write(`token: minted in ${Math.round(performance.now() - started)} ms\n`);
  return EXIT.ok;
}

class UsageError extends Error {}

/**
 * The session the environment describes. Under Refresh Token Rotation each run gets a new refresh
 * token: kept in SF_REFRESH_TOKEN_FILE when set, else the user is told the variable is now dead
 * (the token itself is never printed).
 */
function envSession() {
  const { grant } = selectGrant(process.env);
  const refreshing = grant === 'refresh-token' || grant === 'sfdx-auth-url';
  if (!refreshing || process.env.SF_REFRESH_TOKEN_FILE) return fromEnv(process.env);
  return fromEnv(process.env, {
    onRefreshTokenRotated: () => {
      process.stderr.write(
        'cirrus-auth: warning: the org rotated the refresh token, so the one in your environment is now dead; set SF_REFRESH_TOKEN_FILE=path to keep rotated tokens\n',
      );
    },
  });
}

function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

/** A line of advice for the errors people hit first; never a value from the environment. */
function hint(error: unknown, grant: EnvGrant | undefined): string | undefined {
  if (error instanceof ConfigError) {
    if (error.option === 'SF_LOGIN_URL' && grant === 'client-credentials') {
      return 'client credentials need your My Domain URL as SF_LOGIN_URL (https://NAME.my.salesforce.com)';
    }
    if (error.option === 'env')
      return 'set the SF_* variables of one grant; see fromEnv in the README';
    return undefined;
  }
  if (error instanceof OAuthError) {
    if (error.error === 'invalid_client_id' || error.error === 'invalid_client') {
      return "check SF_CLIENT_ID and SF_CLIENT_SECRET: the connected app's consumer key and secret";
    }
    if (error.error === 'invalid_grant' && grant === 'client-credentials') {
      return 'client credentials only work on your My Domain (SF_LOGIN_URL), with a Run As user set on the app';
    }
    if (error.error === 'invalid_grant' && grant === 'jwt-bearer') {
      return 'the user must be pre-authorized for the app, and SF_LOGIN_URL must be the host you log in through';
    }
    if (error.error === 'invalid_grant')
      return 'the refresh token is expired, revoked or was rotated away: log in again';
  }
  if (error instanceof AuthError && error.code === 'ERR_TRANSPORT')
    return 'check network access to SF_LOGIN_URL';
  if (error instanceof AuthError && error.code === 'ERR_INSTANCE_URL_MISMATCH') {
    return "SF_INSTANCE_URL must be the org's instance URL";
  }
  return undefined;
}

const argv = process.argv.slice(2);
main(argv).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    const debug = argv.includes('--debug');
    let grant: EnvGrant | undefined;
    try {
      grant = selectGrant(process.env).grant;
    } catch {
      grant = undefined;
    }
    if (
      error instanceof UsageError ||
      (error instanceof Error && 'code' in error && String(error.code).startsWith('ERR_PARSE_ARGS'))
    ) {
      process.stderr.write(`cirrus-auth: ${error.message}\n${USAGE}\n`);
      process.exitCode = EXIT.usage;
      return;
    }
    const line =
      error instanceof AuthError
        ? `${error.code}: ${error.message}`
        : error instanceof Error
          ? error.message
          : String(error);
    process.stderr.write(`cirrus-auth: ${line}\n`);
    const advice = hint(error, grant);
    if (advice !== undefined) process.stderr.write(`hint: ${advice}\n`);
    if (debug && error instanceof Error && error.stack) process.stderr.write(`${error.stack}\n`);
    process.exitCode = EXIT.failure;
  },
);
