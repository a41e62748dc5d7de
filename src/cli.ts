#!/usr/bin/env node
/**
 * `cirrus-auth`: a Salesforce token and one authenticated request from the terminal, configured by
 * the same `SF_*` variables as `fromEnv()`. Never prints a secret; errors are one line with the
 * error code, and a hint where one helps (`--debug` adds the stack).
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { authFetch } from './adapters/fetch.js';
import {
  AuthError,
  ConfigError,
  OAuthError,
  type OAuthErrorReason,
  TokenStoreError,
} from './errors.js';
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
    const info = await session.getTokenInfo();
    // Who the token is: asked once, with the same retry-once as the adapters; null if refused.
    const identity = await session.identity().catch(() => undefined);
    const out = {
      access_token: accessToken,
      instance_url: session.instanceUrl,
      org_id: info.orgId ?? null,
      user_id: info.userId ?? null,
      scopes: info.scopes,
      identity:
        identity === undefined
          ? null
          : {
              user_id: identity.userId,
              organization_id: identity.orgId,
              username: identity.username ?? null,
            },
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
    const name = colon < 1 ? '' : line.slice(0, colon).trim();
    const value = line.slice(colon + 1).trim();
    // Never echo the argument, nor let Headers quote it in its own error: it may well hold a token.
    if (!HEADER_NAME.test(name))
      throw new UsageError(`-H number ${index + 1} is not of the form 'Name: value'`);
    if (!HEADER_VALUE.test(value)) {
      throw new UsageError(
        `-H ${name}: the value has characters a header cannot carry (control characters, CR/LF, or beyond Latin-1)`,
      );
    }
    headers.append(name, value);
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

/** A header name: an RFC 9110 token. */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** A header value: visible ASCII, space, tab and obs-text (RFC 9110 field-value), nothing else. */
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

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

/** One line of advice per {@link OAuthErrorReason}; never a value from the environment. */
const REASON_HINTS: Partial<Record<OAuthErrorReason, (grant: EnvGrant | undefined) => string>> = {
  'invalid-client': () =>
    "check SF_CLIENT_ID and SF_CLIENT_SECRET: the connected app's consumer key and secret",
  'user-not-approved': (grant) =>
    grant === 'jwt-bearer'
      ? "the user is not pre-authorized for the app (Admin approved users, with the user's profile or a permission set), or the assertion's audience is wrong"
      : 'the user has not approved the app: log in through the app again',
  'ip-restricted': () =>
    "this machine's IP address is outside the app's or the user's profile's Login IP Ranges: relax the app's IP Relaxation policy or add the range",
  'inactive-user': () => 'the Salesforce user is deactivated: an admin must reactivate it',
  'inactive-org': () => 'the org is locked, expired or deleted',
  'rate-exceeded': () =>
    'the user hit the login rate limit (about 3,600 logins an hour): wait, and share one session per process',
  'audience-invalid': () =>
    'the JWT audience must be https://login.salesforce.com (production and My Domain) or https://test.salesforce.com (sandboxes); set SF_LOGIN_URL to the host you log in through',
  'assertion-expired': () =>
    "the JWT expired before Salesforce read it: check this machine's clock",
  'invalid-assertion': () =>
    'the JWT is not signed with the key whose certificate is on the connected app (SF_PRIVATE_KEY)',
  'domain-not-supported': () =>
    'client credentials only work on your My Domain: set SF_LOGIN_URL to https://NAME.my.salesforce.com',
  'run-as-user-missing': () =>
    'the connected app has no Run As user for the client credentials flow: set one in its policies',
  'refresh-token-expired': () =>
    'the refresh token is expired, revoked or was rotated away: log in again',
  'unsupported-grant-type': () =>
    'the connected app does not allow this grant: enable it in its OAuth settings',
  'authentication-failure': (grant) =>
    grant === 'client-credentials'
      ? 'client credentials only work on your My Domain (SF_LOGIN_URL), with a Run As user set on the app'
      : 'Salesforce refused the credentials',
};

/** A line of advice for the errors people hit first; never a value from the environment. */
function hint(error: unknown, grant: EnvGrant | undefined): string | undefined {
  if (error instanceof ConfigError) {
    const malformed = !error.problem.startsWith('is required');
    if ((error.option === 'SF_LOGIN_URL' || error.option === 'SF_INSTANCE_URL') && malformed) {
      return `${error.option} is a base URL: https://NAME.my.salesforce.com, with https:// and no /services/oauth2/… path`;
    }
    if (error.option === 'SF_LOGIN_URL' && grant === 'client-credentials') {
      return 'client credentials need your My Domain URL as SF_LOGIN_URL (https://NAME.my.salesforce.com)';
    }
    if (error.option === 'env')
      return 'set the SF_* variables of one grant; see fromEnv in the README';
    if (error.option === 'SF_REFRESH_TOKEN_FILE')
      return 'SF_REFRESH_TOKEN_FILE must name a file in a directory that exists and that you can write: each run stores the rotated refresh token there';
    return undefined;
  }
  if (error instanceof TokenStoreError && error.problem === 'lock-wait') {
    return 'another run is refreshing with the same SF_REFRESH_TOKEN_FILE; if none is, delete the .lock file next to it';
  }
  if (error instanceof OAuthError) return REASON_HINTS[error.reason]?.(grant);
  if (error instanceof AuthError && error.code === 'ERR_SIGNATURE_MISMATCH')
    return "the token answer's signature does not match SF_CLIENT_SECRET: check the secret, or whether a proxy rewrites token answers";
  if (error instanceof AuthError && error.code === 'ERR_TRANSPORT')
    return 'check network access to SF_LOGIN_URL';
  if (error instanceof AuthError && error.code === 'ERR_INSTANCE_URL_MISMATCH') {
    return "SF_INSTANCE_URL must be the org's instance URL";
  }
  return undefined;
}

/**
 * The one line printed for a failure. An `AuthError`'s message never holds a secret; any other
 * error's may quote a value (undici's header validation quotes the whole header, `Bearer <token>`
 * included), so of those only the name and Node's `code` are printed, and the message only for a
 * system error (Node builds it from the code, the call and the path) or undici's fixed
 * "fetch failed".
 */
function failureLine(error: unknown): string {
  if (error instanceof AuthError) return `${error.code}: ${error.message}`;
  if (!(error instanceof Error)) return 'failed (the error is not shown)';
  const code = codeOf(error);
  if (code !== undefined && typeof (error as { syscall?: unknown }).syscall === 'string')
    return error.message;
  const cause = codeOf(error.cause);
  if (error.message === 'fetch failed')
    return `${error.name}: fetch failed${cause ? ` (${cause})` : ''}`;
  return `${error.name}${code ? ` ${code}` : ''}: its message is not shown, as it may quote a secret (--debug shows where it was thrown)`;
}

function codeOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' && /^[\w.-]{1,64}$/.test(code) ? code : undefined;
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
    process.stderr.write(`cirrus-auth: ${failureLine(error)}\n`);
    const advice = hint(error, grant);
    if (advice !== undefined) process.stderr.write(`hint: ${advice}\n`);
    if (debug && error instanceof Error && error.stack) {
      // Only our own messages are safe to print; of any other error, the frames without the message.
      const frames = error.stack.split('\n').filter((line) => /^\s+at /.test(line));
      process.stderr.write(
        error instanceof AuthError ? `${error.stack}\n` : `${[error.name, ...frames].join('\n')}\n`,
      );
    }
    process.exitCode = EXIT.failure;
  },
);
